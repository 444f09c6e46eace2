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
    /// its URL-encoded form and its JSON-escaped form, where they differ. Returns `false`
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
    out.push(url);
    out.push(json);
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
            if let Some((len, label)) = whole {
                inner.write_all(&buf[emitted..i])?;
                write!(inner, "[REDACTED:{}]", r.labels[label])?;
                i += len;
                emitted = i;
                continue;
            }
            if partial > 0 {
                if !at_end {
                    held_from = i;
                    break;
                }
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
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.inner.is_none() {
            return Err(io::Error::other("kmseal: the redacting writer is finished"));
        }
        if self.redactor.is_empty() {
            return self.inner.as_mut().map_or(Ok(0), |w| w.write(data));
        }
        self.pending
            .extend_from_slice(data)
            .map_err(io::Error::other)?;
        self.drain(false)?;
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
    fn through(r: &Arc<Redactor>, input: &[u8], cuts: &[usize]) -> Vec<u8> {
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
