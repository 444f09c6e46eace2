//! Redaction of loaded secrets from output: a [`Redactor`] knows the values a process holds
//! (and their base64, URL- and JSON-encoded forms) and a [`RedactWriter`] replaces them with
//! `[REDACTED:label]` in whatever is written through it — a log, a child's stdout — even
//! when a value is split across writes. The patterns live in locked memory.
//!
//! ```
//! use std::io::Write;
//! use std::sync::Arc;
//! use kmseal::redact::Redactor;
//!
//! let mut r = Redactor::new();
//! r.add("db.password", b"hunter2-hunter2")?;
//! let r = Arc::new(r);
//!
//! let mut out = Vec::new();
//! let mut w = r.writer(&mut out);
//! w.write_all(b"connecting with password=hunter2-hun")?; // split across writes
//! w.write_all(b"ter2 failed\n")?;
//! w.finish()?;
//! assert_eq!(out, b"connecting with password=[REDACTED:db.password] failed\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With `tracing-subscriber`, every event goes through a fresh writer:
//! `fmt().with_writer(move || redactor.writer(std::io::stderr()))`.

use std::io::{self, Write};
use std::sync::Arc;

use base64::Engine as _;

use crate::error::Error;
use crate::secret::SecretBytes;

/// Values shorter than this are not redacted: replacing every `ab` would wreck the output
/// without protecting anything.
pub const MIN_SECRET_LEN: usize = 4;

/// At the end of a stream, a suffix this long that begins a secret is redacted too (the
/// secret's start was printed, its end never came).
const MIN_PARTIAL_AT_END: usize = 6;

/// Bytes a writer takes into locked memory at a time.
const FEED: usize = 16 << 10;

struct Pattern {
    start: usize,
    len: usize,
    label: usize,
}

/// The secrets to redact (see the [module docs](self)). Build it with [`add`](Self::add),
/// then share it (`Arc`) with the writers that use it.
pub struct Redactor {
    /// Every pattern's bytes, one after another (locked).
    bytes: SecretBytes,
    patterns: Vec<Pattern>,
    labels: Vec<String>,
    /// Bit `(b0 << 8) | b1` set when some pattern starts with b0 b1 (locked: it holds 16 bits
    /// of each secret).
    first_two: SecretBytes,
    /// Bit `b0` set when some pattern starts with b0.
    first_one: [u64; 4],
    /// Bit `hash3(b0, b1, b2)` set when some pattern starts with b0 b1 b2 (2^20 bits, locked):
    /// the filter for positions with three bytes to look at (every pattern has four or more).
    first_three: SecretBytes,
    max_len: usize,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.patterns.len())
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl Default for Redactor {
    fn default() -> Redactor {
        Redactor::new()
    }
}

impl Redactor {
    /// A redactor with no secrets (it passes everything through).
    pub fn new() -> Redactor {
        Redactor {
            bytes: SecretBytes::new(),
            patterns: Vec::new(),
            labels: Vec::new(),
            first_two: SecretBytes::new(),
            first_one: [0; 4],
            first_three: SecretBytes::new(),
            max_len: 0,
        }
    }

    /// Adds `secret` under `label` (a path or variable name, shown in place of the value):
    /// the value itself, its base64 forms (standard and URL-safe, with and without padding),
    /// its URL-encoded forms (upper- and lower-case hex, `/` kept, `+` for a space) and its
    /// JSON-escaped forms (`/` as is and as `\/`), where they differ. Returns `false`
    /// (adding nothing) for a value shorter than [`MIN_SECRET_LEN`] bytes.
    pub fn add(&mut self, label: &str, secret: &[u8]) -> Result<bool, Error> {
        if secret.len() < MIN_SECRET_LEN {
            return Ok(false);
        }
        if self.first_two.is_empty() {
            self.first_two = SecretBytes::zeroed(8192)?;
            self.first_three = SecretBytes::zeroed(THREE_BITS / 8)?;
        }
        let label = match self.labels.iter().position(|l| l == label) {
            Some(i) => i,
            None => {
                self.labels.push(label.to_owned());
                self.labels.len() - 1
            }
        };
        for form in forms(secret)? {
            self.push(form.expose_secret(), label)?;
        }
        Ok(true)
    }

    fn push(&mut self, pattern: &[u8], label: usize) -> Result<(), Error> {
        let existing = self.patterns.iter().any(|p| {
            p.len == pattern.len()
                && &self.bytes.expose_secret()[p.start..p.start + p.len] == pattern
        });
        if existing {
            return Ok(());
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(pattern)?;
        self.patterns.push(Pattern {
            start,
            len: pattern.len(),
            label,
        });
        let two = (usize::from(pattern[0]) << 8) | usize::from(pattern[1]);
        self.first_two.expose_secret_mut()[two / 8] |= 1 << (two % 8);
        self.first_one[usize::from(pattern[0]) / 64] |= 1 << (pattern[0] % 64);
        if let [b0, b1, b2, ..] = *pattern {
            let k = hash3(b0, b1, b2);
            self.first_three.expose_secret_mut()[k / 8] |= 1 << (k % 8);
        }
        self.max_len = self.max_len.max(pattern.len());
        Ok(())
    }

    /// The number of patterns (values and their encoded forms).
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// A writer that redacts into `inner`. Call [`RedactWriter::finish`] (or drop it) at the
    /// end of the stream.
    pub fn writer<W: Write>(self: &Arc<Self>, inner: W) -> RedactWriter<W> {
        RedactWriter {
            redactor: self.clone(),
            inner: Some(inner),
            pending: SecretBytes::new(),
        }
    }

    /// `input` with every secret replaced (the whole input at once).
    pub fn redact(self: &Arc<Self>, input: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(input.len());
        let mut w = self.writer(&mut out);
        w.write_all(input)?;
        w.finish()?;
        Ok(out)
    }

    /// At `buf[i..]`: the longest pattern that matches whole (its length and label), and
    /// the length of the longest proper prefix of a pattern that runs to the end of `buf`.
    fn match_at(&self, bytes: &[u8], buf: &[u8], i: usize) -> (Option<(usize, usize)>, usize) {
        let rest = &buf[i..];
        let (mut whole, mut partial) = (None::<(usize, usize)>, 0);
        for p in &self.patterns {
            let pat = &bytes[p.start..p.start + p.len];
            if rest.len() >= pat.len() {
                if rest[..pat.len()] == *pat && whole.is_none_or(|(len, _)| pat.len() > len) {
                    whole = Some((pat.len(), p.label));
                }
            } else if pat[..rest.len()] == *rest {
                partial = rest.len();
            }
        }
        (whole, partial)
    }
}

/// Bits in the 3-byte start filter.
const THREE_BITS: usize = 1 << 20;

/// Where the bytes b0 b1 b2 fall in the 3-byte filter (a multiplicative hash, top 20 bits).
#[inline]
fn hash3(b0: u8, b1: u8, b2: u8) -> usize {
    let x = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
    (x.wrapping_mul(0x9E37_79B1) >> 12) as usize
}

/// The start filters, read out of locked memory once per drain (`expose_secret` checks the
/// process on every call).
struct Filters<'a> {
    three: &'a [u8],
    two: &'a [u8],
    one: &'a [u64; 4],
}

impl Filters<'_> {
    /// Whether a pattern may start at `buf[i]`: by its first three bytes, or its first two
    /// or one at the end of `buf`.
    #[inline]
    fn may_start(&self, buf: &[u8], i: usize) -> bool {
        match buf.get(i..i + 3) {
            Some(&[b0, b1, b2]) => {
                let k = hash3(b0, b1, b2);
                self.three[k / 8] & (1 << (k % 8)) != 0
            }
            _ => match buf.get(i + 1) {
                Some(&b1) => {
                    let k = (usize::from(buf[i]) << 8) | usize::from(b1);
                    self.two[k / 8] & (1 << (k % 8)) != 0
                }
                None => self.one[usize::from(buf[i]) / 64] & (1 << (buf[i] % 64)) != 0,
            },
        }
    }
}

/// The encoded forms of a secret worth looking for, deduplicated, in locked memory.
fn forms(secret: &[u8]) -> Result<Vec<SecretBytes>, Error> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let mut out: Vec<SecretBytes> = vec![SecretBytes::from_slice(secret)?];
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        let mut b = SecretBytes::zeroed(secret.len().div_ceil(3) * 4)?;
        let n = engine
            .encode_slice(secret, b.expose_secret_mut())
            .map_err(|_| Error::Internal("base64 buffer too small"))?;
        b.truncate(n);
        out.push(b);
    }
    // URL encoding (RFC 3986 unreserved kept) and JSON string escaping.
    let mut url = SecretBytes::with_capacity(secret.len() * 3)?;
    let mut json = SecretBytes::with_capacity(secret.len() * 6)?;
    for &b in secret {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            url.extend_from_slice(&[b])?;
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            url.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])?;
        }
        match b {
            b'"' => json.extend_from_slice(b"\\\"")?,
            b'\\' => json.extend_from_slice(b"\\\\")?,
            b'\n' => json.extend_from_slice(b"\\n")?,
            b'\r' => json.extend_from_slice(b"\\r")?,
            b'\t' => json.extend_from_slice(b"\\t")?,
            c if c < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                json.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 15)],
                ])?;
            }
            c => json.extend_from_slice(&[c])?,
        }
    }
    // The variants common encoders write: `/` kept (Python's `quote`), `+` for a space
    // (forms), lower-case hex, and JSON with `\/` (PHP's `json_encode`).
    type Rewrite<'a> = &'a dyn Fn(&[u8], &mut SecretBytes) -> Result<(), Error>;
    let variant = |from: &SecretBytes, f: Rewrite<'_>| {
        let mut v = SecretBytes::with_capacity(from.len() * 2)?;
        f(from.expose_secret(), &mut v)?;
        Ok::<SecretBytes, Error>(v)
    };
    // `%2F` written as `/`, `%20` as `+`: one escape back to one byte.
    let unescape = |escape: &'static [u8; 3], to: u8| {
        move |u: &[u8], v: &mut SecretBytes| -> Result<(), Error> {
            let mut i = 0;
            while i < u.len() {
                if u[i..].starts_with(escape) {
                    v.extend_from_slice(&[to])?;
                    i += 3;
                } else {
                    v.extend_from_slice(&u[i..=i])?;
                    i += 1;
                }
            }
            Ok(())
        }
    };
    let url_slash = variant(&url, &unescape(b"%2F", b'/'))?;
    let url_plus = variant(&url, &unescape(b"%20", b'+'))?;
    let url_lower = variant(&url, &|u, v| {
        let mut i = 0;
        while i < u.len() {
            if u[i] == b'%' && i + 2 < u.len() {
                v.extend_from_slice(&[
                    b'%',
                    u[i + 1].to_ascii_lowercase(),
                    u[i + 2].to_ascii_lowercase(),
                ])?;
                i += 3;
            } else {
                v.extend_from_slice(&u[i..=i])?;
                i += 1;
            }
        }
        Ok(())
    })?;
    let json_slash = variant(&json, &|j, v| {
        for &b in j {
            if b == b'/' {
                v.extend_from_slice(b"\\/")?;
            } else {
                v.extend_from_slice(&[b])?;
            }
        }
        Ok(())
    })?;
    out.extend([url, url_slash, url_plus, url_lower, json, json_slash]);
    let mut unique: Vec<SecretBytes> = Vec::new();
    for f in out {
        if f.len() >= 2 && !unique.iter().any(|u| u == &f) {
            unique.push(f);
        }
    }
    Ok(unique)
}

/// A [`Write`] that replaces a [`Redactor`]'s secrets with `[REDACTED:label]` on the way to
/// its inner writer. Bytes that could begin a secret are held back (in locked memory) until
/// the rest shows whether they do; everything else goes through at once, so line-oriented
/// output is not delayed. [`finish`](Self::finish) (or drop) writes what is held; a held
/// suffix of 6 bytes or more that begins a secret is redacted then too.
pub struct RedactWriter<W: Write> {
    redactor: Arc<Redactor>,
    inner: Option<W>,
    pending: SecretBytes,
}

impl<W: Write> std::fmt::Debug for RedactWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedactWriter")
            .field("held", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl<W: Write> RedactWriter<W> {
    /// Writes what is held (redacted) and flushes; returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.drain(true)?;
        let mut inner = self
            .inner
            .take()
            .ok_or_else(|| io::Error::other("kmseal: the redacting writer is finished"))?;
        inner.flush()?;
        Ok(inner)
    }

    /// Redacts and writes `pending`, keeping only a tail that may begin a secret (none at the
    /// end of the stream).
    fn drain(&mut self, at_end: bool) -> io::Result<()> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(());
        };
        let r = &self.redactor;
        let buf = self.pending.expose_secret();
        // The locked index and patterns, read once: `expose_secret` checks the process.
        let bytes = r.bytes.expose_secret();
        let filters = Filters {
            three: r.first_three.expose_secret(),
            two: r.first_two.expose_secret(),
            one: &r.first_one,
        };
        let (mut i, mut emitted) = (0, 0);
        let mut held_from = buf.len();
        while i < buf.len() {
            if !filters.may_start(buf, i) {
                i += 1;
                continue;
            }
            let (whole, partial) = r.match_at(bytes, buf, i);
            // A longer secret may still be arriving: wait for it before taking a shorter one
            // that is its prefix (else the longer one's tail would go out).
            if partial > 0 && !at_end {
                held_from = i;
                break;
            }
            if let Some((len, label)) = whole {
                inner.write_all(&buf[emitted..i])?;
                write!(inner, "[REDACTED:{}]", r.labels[label])?;
                i += len;
                emitted = i;
                continue;
            }
            // At the end: the stream stopped inside a secret.
            if partial >= MIN_PARTIAL_AT_END {
                let label = r
                    .patterns
                    .iter()
                    .find(|p| bytes[p.start..p.start + p.len].starts_with(&buf[i..]))
                    .map_or("secret", |p| r.labels[p.label].as_str());
                inner.write_all(&buf[emitted..i])?;
                write!(inner, "[REDACTED:{label}]")?;
                emitted = buf.len();
                break;
            }
            i += 1;
        }
        let end = held_from.max(emitted);
        inner.write_all(&buf[emitted.min(end)..end])?;
        // Keep the held tail: move it to the front of the locked buffer.
        let held = self.pending.len() - end;
        let bytes = self.pending.expose_secret_mut();
        bytes.copy_within(end.., 0);
        self.pending.truncate(held);
        Ok(())
    }
}

impl<W: Write> Write for RedactWriter<W> {
    /// Redacts `data` on its way to the inner writer, a piece at a time (so only the held
    /// tail and one piece are ever in locked memory). An error of the inner writer poisons
    /// this writer: what was written before it is complete, nothing is written twice, and
    /// every later call fails.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.inner.is_none() {
            return Err(io::Error::other(
                "kmseal: the redacting writer is finished, or failed earlier",
            ));
        }
        if self.redactor.is_empty() {
            return self.inner.as_mut().map_or(Ok(0), |w| w.write(data));
        }
        for piece in data.chunks(FEED) {
            self.pending
                .extend_from_slice(piece)
                .map_err(io::Error::other)?;
            if let Err(e) = self.drain(false) {
                // Poisoned: a retry of this write would repeat what already went out.
                self.inner = None;
                self.pending.clear();
                return Err(e);
            }
        }
        // A large write grew the locked buffer: give the memory back.
        if self.pending.capacity() > 4 * FEED + self.redactor.max_len {
            let mut smaller = SecretBytes::with_capacity(self.pending.len().max(FEED))
                .map_err(io::Error::other)?;
            smaller
                .extend_from_slice(self.pending.expose_secret())
                .map_err(io::Error::other)?;
            self.pending = smaller;
        }
        Ok(data.len())
    }

    /// Flushes the inner writer; bytes that may begin a secret stay held.
    fn flush(&mut self) -> io::Result<()> {
        match self.inner.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl<W: Write> Drop for RedactWriter<W> {
    fn drop(&mut self) {
        if self.inner.is_some() {
            let _ = self.drain(true);
            if let Some(w) = self.inner.as_mut() {
                let _ = w.flush();
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn redactor(secrets: &[(&str, &[u8])]) -> Arc<Redactor> {
        let mut r = Redactor::new();
        for (label, s) in secrets {
            r.add(label, s).unwrap();
        }
        Arc::new(r)
    }

    /// Writes `input` in pieces cut at `cuts` and returns the output.
    pub(super) fn through(r: &Arc<Redactor>, input: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = r.writer(&mut out);
        let mut at = 0;
        for &c in cuts.iter().chain(std::iter::once(&input.len())) {
            let c = c.clamp(at, input.len());
            w.write_all(&input[at..c]).unwrap();
            at = c;
        }
        w.finish().unwrap();
        out
    }

    #[test]
    fn a_secret_split_at_every_point_across_writes_is_redacted() {
        let r = redactor(&[("jwt.secret", b"s3cr3t-signing-key"), ("db", b"hunter22")]);
        let input = b"auth s3cr3t-signing-key and db=hunter22; again:s3cr3t-signing-key.\n";
        let expected =
            b"auth [REDACTED:jwt.secret] and db=[REDACTED:db]; again:[REDACTED:jwt.secret].\n";
        for a in 0..=input.len() {
            for b in [a, a + 1, a + 7, a + 19] {
                assert_eq!(through(&r, input, &[a, b]), expected, "cuts {a},{b}");
            }
        }
        // One byte at a time.
        let cuts: Vec<usize> = (0..input.len()).collect();
        assert_eq!(through(&r, input, &cuts), expected);
    }

    #[test]
    fn encoded_forms_are_redacted_and_short_values_ignored() {
        let secret = b"p@ss w/rd\"x";
        let r = redactor(&[("pw", secret)]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        for form in [
            b64.as_str(),
            b64url.as_str(),
            "p%40ss%20w%2Frd%22x",
            "p@ss w/rd\\\"x",
        ] {
            let out = r.redact(format!("value={form};").as_bytes()).unwrap();
            assert_eq!(out, b"value=[REDACTED:pw];", "{form}");
        }
        let mut short = Redactor::new();
        assert!(!short.add("pin", b"123").unwrap());
        assert!(short.is_empty());
        let short = Arc::new(short);
        assert_eq!(short.redact(b"123 stays").unwrap(), b"123 stays");
    }

    #[test]
    fn output_is_not_held_back_when_nothing_can_begin_a_secret() {
        let r = redactor(&[("k", b"0123456789abcdef")]);
        let mut out = Vec::new();
        {
            let mut w = r.writer(&mut out);
            w.write_all(b"line one\n").unwrap();
            w.write_all(b"tail 0123").unwrap(); // could begin the secret: held
            w.flush().unwrap();
            drop(w);
        }
        // Dropped at the end: the held "0123" is only 4 bytes, printed as is.
        assert_eq!(out, b"line one\ntail 0123");
        let mut out = Vec::new();
        let mut w = r.writer(&mut out);
        w.write_all(b"line one\n").unwrap();
        assert_eq!(
            w.inner.as_ref().map(|o| o.len()),
            Some(9),
            "written at once"
        );
        w.write_all(b"tail 0123456").unwrap();
        w.finish().unwrap();
        // A stream that ends inside a secret (6 bytes or more of it) is redacted.
        assert_eq!(out, b"line one\ntail [REDACTED:k]");
    }

    #[test]
    fn overlapping_and_multiline_secrets() {
        let pem = b"-----BEGIN KEY-----\nMIIBOgIBAAJBAK\n-----END KEY-----";
        let r = redactor(&[
            ("short", b"abcd1234"),
            ("long", b"abcd1234efgh"),
            ("pem", pem),
        ]);
        assert_eq!(
            r.redact(b"x abcd1234efgh y abcd1234 z").unwrap(),
            b"x [REDACTED:long] y [REDACTED:short] z"
        );
        let mut log = b"key:\n".to_vec();
        log.extend_from_slice(pem);
        log.extend_from_slice(b"\ndone\n");
        let cuts: Vec<usize> = (0..log.len()).step_by(3).collect();
        assert_eq!(through(&r, &log, &cuts), b"key:\n[REDACTED:pem]\ndone\n");
        assert!(!format!("{r:?}").contains("MIIB"));
    }

    #[test]
    fn the_redactor_never_shows_a_secret_in_debug() {
        let r = redactor(&[("label", b"super-secret-value")]);
        let text = format!("{r:?} {:?}", r.writer(Vec::new()));
        assert!(!text.contains("super-secret"), "{text}");
        assert!(text.contains("label"));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::cast_possible_truncation)]
/// An adversarial review's cases (issue 20): a differential test against a leftmost-longest
/// reference (it found the prefix leak: a shorter secret taken while a longer one, which it
/// begins, was still arriving), and the repros of what it found.
mod review {
    use super::tests::through;
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Every pattern the redactor holds, with its label.
    fn patterns(r: &Redactor) -> Vec<(Vec<u8>, String)> {
        let bytes = r.bytes.expose_secret();
        r.patterns
            .iter()
            .map(|p| {
                (
                    bytes[p.start..p.start + p.len].to_vec(),
                    r.labels[p.label].clone(),
                )
            })
            .collect()
    }

    /// Reference: leftmost-longest over the whole input; a suffix >= 6 bytes that is a
    /// proper prefix of a pattern is redacted at the end (the documented end rule).
    fn reference(pats: &[(Vec<u8>, String)], input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < input.len() {
            let rest = &input[i..];
            let whole = pats
                .iter()
                .filter(|(p, _)| rest.starts_with(p))
                .max_by_key(|(p, _)| p.len());
            if let Some((p, l)) = whole {
                out.extend_from_slice(format!("[REDACTED:{l}]").as_bytes());
                i += p.len();
                continue;
            }
            if rest.len() >= MIN_PARTIAL_AT_END
                && let Some((_, l)) = pats
                    .iter()
                    .find(|(p, _)| p.len() > rest.len() && p.starts_with(rest))
            {
                out.extend_from_slice(format!("[REDACTED:{l}]").as_bytes());
                break;
            }
            out.push(input[i]);
            i += 1;
        }
        out
    }

    #[test]
    fn review20_differential_against_leftmost_longest() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let alpha = b"ab\n\xc3";
        let mut failures = 0;
        let mut first = None::<String>;
        let mut ran = 0;
        for round in 0..20_000 {
            let mut r = Redactor::new();
            let mut secrets: Vec<Vec<u8>> = Vec::new();
            for k in 0..1 + rng.below(3) {
                let s: Vec<u8> = if k > 0 && rng.below(2) == 0 {
                    // a prefix/extension of an earlier secret
                    let base = secrets[rng.below(secrets.len())].clone();
                    let mut s = base.clone();
                    if rng.below(2) == 0 && s.len() > 4 {
                        s.truncate(4 + rng.below(s.len() - 4));
                    } else {
                        for _ in 0..1 + rng.below(4) {
                            s.push(alpha[rng.below(alpha.len())]);
                        }
                    }
                    s
                } else {
                    (0..4 + rng.below(5))
                        .map(|_| alpha[rng.below(alpha.len())])
                        .collect()
                };
                r.add(&format!("s{k}"), &s).unwrap();
                secrets.push(s);
            }
            let r = Arc::new(r);
            let pats = patterns(&r);
            ran += 1;
            let mut input = Vec::new();
            while input.len() < 40 {
                if rng.below(3) == 0 {
                    input.extend_from_slice(&secrets[rng.below(secrets.len())]);
                } else {
                    input.push(alpha[rng.below(alpha.len())]);
                }
            }
            let want = reference(&pats, &input);
            let mut cuts: Vec<usize> = (0..rng.below(8))
                .map(|_| rng.below(input.len() + 1))
                .collect();
            cuts.sort_unstable();
            let got = through(&r, &input, &cuts);
            if got != want {
                failures += 1;
                first.get_or_insert_with(|| {
                    format!(
                        "round {round}: input {:?}, cuts {cuts:?}, want {:?}, got {:?}",
                        String::from_utf8_lossy(&input),
                        String::from_utf8_lossy(&want),
                        String::from_utf8_lossy(&got)
                    )
                });
            }
        }
        assert_eq!(ran, 20_000);
        assert_eq!(failures, 0, "{failures} mismatches; the first: {first:?}");
    }

    #[test]
    fn a_secret_that_begins_a_longer_one_never_lets_the_longer_ones_tail_out() {
        let mut r = Redactor::new();
        r.add("db.password", b"Tr0ub4dor").unwrap();
        r.add("db.url_password", b"Tr0ub4dor&3-long-random-tail-XYZ")
            .unwrap();
        let r = Arc::new(r);
        let input = b"url pw=Tr0ub4dor&3-long-random-tail-XYZ and pw=Tr0ub4dor.\n";
        let cuts: Vec<usize> = (0..input.len()).collect();
        assert_eq!(
            String::from_utf8(through(&r, input, &cuts)).unwrap(),
            "url pw=[REDACTED:db.url_password] and pw=[REDACTED:db.password].\n"
        );
    }

    #[test]
    fn a_huge_write_keeps_only_a_piece_in_locked_memory() {
        let mut r = Redactor::new();
        r.add("k", b"0123456789abcdef").unwrap();
        let r = Arc::new(r);
        let mut out = Vec::new();
        let mut w = r.writer(&mut out);
        w.write_all(&vec![b'x'; 16 << 20]).unwrap();
        w.write_all(b"tail 0123").unwrap();
        assert!(w.pending.capacity() <= 1 << 17, "{}", w.pending.capacity());
        w.finish().unwrap();
        assert_eq!(out.len(), (16 << 20) + 9);
    }

    #[test]
    fn an_inner_error_poisons_the_writer_and_nothing_is_written_twice() {
        struct Flaky {
            out: Vec<u8>,
            calls: usize,
        }
        impl Write for Flaky {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.calls += 1;
                if self.calls == 2 {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                self.out.extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut r = Redactor::new();
        r.add("k", b"0123456789abcdef").unwrap();
        let r = Arc::new(r);
        let mut out = Flaky {
            out: Vec::new(),
            calls: 0,
        };
        {
            let mut w = r.writer(&mut out);
            let line = b"a 0123456789abcdef b\n";
            assert!(w.write(line).is_err());
            assert!(w.write(line).is_err(), "poisoned");
            assert!(w.finish().is_err());
        }
        assert_eq!(
            String::from_utf8_lossy(&out.out),
            "a ",
            "the part before the error, once"
        );
    }

    #[test]
    fn the_encodings_common_encoders_write_are_redacted() {
        let secret = b"q8+Zk/3vT0pXb1Lm+9sRw/Yh2NcE4uJ7aKfD0gWtS6o=";
        let mut r = Redactor::new();
        r.add("jwt.secret", secret).unwrap();
        r.add("pw", b"two words/here").unwrap();
        let r = Arc::new(r);
        for form in [
            &br#"{"jwt":"q8+Zk\/3vT0pXb1Lm+9sRw\/Yh2NcE4uJ7aKfD0gWtS6o="}"#[..],
            b"GET /cb?k=q8%2BZk/3vT0pXb1Lm%2B9sRw/Yh2NcE4uJ7aKfD0gWtS6o%3D",
            b"k=q8%2bZk%2f3vT0pXb1Lm%2b9sRw%2fYh2NcE4uJ7aKfD0gWtS6o%3d",
            b"pw=two+words%2Fhere",
        ] {
            let out = r.redact(form).unwrap();
            assert!(
                out.windows(10).any(|w| w == b"[REDACTED:")
                    && !String::from_utf8_lossy(&out).contains("3vT0p")
                    && !String::from_utf8_lossy(&out).contains("words"),
                "{}",
                String::from_utf8_lossy(&out)
            );
        }
    }
}
