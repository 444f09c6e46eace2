//! Wire format v1: the header, parsed and written side by side. FORMAT.md has the byte layout.
//!
//! ```text
//! Header = Authenticated || Tag || KeySection
//! Authenticated = magic "KMSEAL" | version u8 = 1 | suite u16 | frame_size u32
//!               | message_id [32] | context | commitment [32]
//! Tag           = HMAC-SHA-256(header_key, Authenticated)            [32]
//! KeySection    = count u8 (>= 1) | count x (provider u8-len | key_id u16-len | wrapped u16-len)
//! ```
//!
//! The wrapped-key section is deliberately outside the tag: rewrapping (adding a KEK, removing a
//! retired one, a KMS-side rewrap) replaces it without touching the payload. It needs no tag:
//! any wrapped key that opens to a different data key fails the key commitment. All integers
//! are big-endian. Every length is checked against [`Limits`] before anything is allocated.

use std::io::Read;

use crate::aead::Backend;
use crate::context::EncryptionContext;
use crate::error::Error;
pub use crate::frame::body_len;
use crate::kek::{WrappedKey, valid_provider_id};
use crate::key_schedule::MessageKeys;
use crate::suite::{KEY_LEN, Suite};

/// The first bytes of every message.
pub const MAGIC: [u8; 6] = *b"KMSEAL";
/// The format version this module reads and writes.
pub const VERSION: u8 = 1;
/// Largest frame size the format allows (64 MiB).
pub const MAX_FRAME_SIZE: u32 = 64 << 20;
/// Default frame size (64 KiB; see BENCHMARKS.md for the measurement behind it).
pub const DEFAULT_FRAME_SIZE: u32 = 64 << 10;
/// Plaintext bytes per frame: from 1 byte to [`MAX_FRAME_SIZE`] (64 MiB). Checked once, when
/// made, so an [`Encryptor`](crate::Encryptor) or [`Rotator`](crate::rotate::Rotator) given one
/// cannot hold an invalid size.
///
/// ```
/// use kmseal::FrameSize;
/// assert_eq!(FrameSize::default().get(), 64 << 10);
/// assert_eq!(FrameSize::new(4096)?.get(), 4096);
/// assert!(FrameSize::new(0).is_err() && FrameSize::new((64 << 20) + 1).is_err());
/// # Ok::<(), kmseal::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FrameSize(u32);

impl FrameSize {
    /// The default, 64 KiB ([`DEFAULT_FRAME_SIZE`]).
    pub const DEFAULT: FrameSize = FrameSize(DEFAULT_FRAME_SIZE);
    /// The largest the format allows, 64 MiB ([`MAX_FRAME_SIZE`]).
    pub const MAX: FrameSize = FrameSize(MAX_FRAME_SIZE);

    /// `bytes` per frame, or [`Error::InvalidArgument`] outside 1 byte to 64 MiB.
    pub fn new(bytes: u32) -> Result<FrameSize, Error> {
        if bytes == 0 || bytes > MAX_FRAME_SIZE {
            return Err(Error::InvalidArgument(
                "frame size must be between 1 byte and 64 MiB",
            ));
        }
        Ok(FrameSize(bytes))
    }

    /// The size in bytes.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for FrameSize {
    fn default() -> Self {
        FrameSize::DEFAULT
    }
}

impl TryFrom<u32> for FrameSize {
    type Error = Error;

    fn try_from(bytes: u32) -> Result<FrameSize, Error> {
        FrameSize::new(bytes)
    }
}

impl From<FrameSize> for u32 {
    fn from(f: FrameSize) -> u32 {
        f.0
    }
}

impl std::fmt::Display for FrameSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes", self.0)
    }
}

/// Bytes of the fixed part before the context: magic, version, suite, frame size, message id.
const FIXED_LEN: usize = 6 + 1 + 2 + 4 + KEY_LEN;
/// Initial capacity of a parsed header's authenticated bytes: the fixed part, the commitment
/// and up to 256 bytes of context without a reallocation.
const AUTHENTICATED_RESERVE: usize = FIXED_LEN + 256 + KEY_LEN;

/// Bounds on untrusted input. Parsing checks each one before allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wrapped keys per message (default 8; the format allows 255).
    pub max_wrapped_keys: usize,
    /// Header bytes including the wrapped-key section (default 64 KiB).
    pub max_header_bytes: usize,
    /// Frame size (default 4 MiB; the format allows 64 MiB). A streaming decryptor holds
    /// one frame in locked memory.
    pub max_frame_size: u32,
    /// Encryption-context entries (default 64).
    pub max_context_entries: usize,
    /// Encoded encryption-context bytes (default 16 KiB).
    pub max_context_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_wrapped_keys: 8,
            max_header_bytes: 64 << 10,
            max_frame_size: 4 << 20,
            max_context_entries: 64,
            max_context_bytes: 16 << 10,
        }
    }
}

/// A parsed message header. Nothing in it is secret; nothing in it is trusted until the data
/// key has been unwrapped, the commitment matched and the tag verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    suite: Suite,
    /// A signed suite (wire id with [`SIGNED_FLAG`]): a signature trailer follows the frames.
    signed: bool,
    frame_size: u32,
    message_id: [u8; KEY_LEN],
    context: EncryptionContext,
    commitment: [u8; KEY_LEN],
    tag: [u8; KEY_LEN],
    wrapped_keys: Vec<WrappedKey>,
    /// The authenticated bytes exactly as read or written (the tag covers these).
    authenticated: Vec<u8>,
}

impl Header {
    /// The payload suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Whether the message is signed (suite ids `0x0101`, `0x0102`): its encryption context
    /// names an Ed25519 public key ([`SIGNING_KEY_CONTEXT`](crate::SIGNING_KEY_CONTEXT)) and a
    /// signature follows the final frame.
    pub fn is_signed(&self) -> bool {
        self.signed
    }

    /// The suite id on the wire.
    pub(crate) fn wire_suite_id(&self) -> u16 {
        wire_id(self.suite, self.signed)
    }

    /// Feeds the bytes a signature covers from the header: the authenticated part and the
    /// header tag (not the key section, so a rewrap keeps the signature valid).
    pub(crate) fn signed_prefix(&self, mut put: impl FnMut(&[u8])) {
        put(&self.authenticated);
        put(&self.tag);
    }

    /// Plaintext bytes per non-final frame.
    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// The random per-message id.
    pub fn message_id(&self) -> &[u8; KEY_LEN] {
        &self.message_id
    }

    /// The encryption context (authenticated, not secret).
    pub fn context(&self) -> &EncryptionContext {
        &self.context
    }

    /// The wrapped copies of the data key, one per KEK.
    pub fn wrapped_keys(&self) -> &[WrappedKey] {
        &self.wrapped_keys
    }

    /// Encoded length of the header in bytes.
    pub fn encoded_len(&self) -> usize {
        self.authenticated.len() + KEY_LEN + key_section_len(&self.wrapped_keys)
    }

    /// Builds and authenticates a header for a new message.
    pub(crate) fn seal(
        keys: &MessageKeys,
        suite: Suite,
        signed: bool,
        frame_size: u32,
        message_id: [u8; KEY_LEN],
        context: EncryptionContext,
        wrapped_keys: Vec<WrappedKey>,
    ) -> Result<Header, Error> {
        check_frame_size(frame_size)?;
        check_key_section(&wrapped_keys)?;
        let mut authenticated = Vec::with_capacity(FIXED_LEN + context.encoded_len() + KEY_LEN);
        authenticated.extend_from_slice(&MAGIC);
        authenticated.push(VERSION);
        authenticated.extend_from_slice(&wire_id(suite, signed).to_be_bytes());
        authenticated.extend_from_slice(&frame_size.to_be_bytes());
        authenticated.extend_from_slice(&message_id);
        context.encode_into(&mut authenticated);
        authenticated.extend_from_slice(&keys.commitment);
        let tag = keys.header_tag(&authenticated);
        Ok(Header {
            suite,
            signed,
            frame_size,
            message_id,
            context,
            commitment: keys.commitment,
            tag,
            wrapped_keys,
            authenticated,
        })
    }

    /// Derives the message keys from a candidate data key, checks the commitment and then the
    /// header tag. Either failure is the opaque [`Error::Decrypt`].
    pub(crate) fn open(
        &self,
        dek: &crate::DataKey,
        backend: Backend,
    ) -> Result<MessageKeys, Error> {
        let keys = MessageKeys::derive_committed(
            dek,
            &self.message_id,
            self.suite,
            self.wire_suite_id(),
            &self.commitment,
            backend,
        )?;
        keys.verify_header_tag(&self.authenticated, &self.tag)?;
        Ok(keys)
    }

    /// A copy of this header with a different wrapped-key section. The authenticated part and
    /// the tag are unchanged, so the payload frames stay valid (rewrap).
    pub fn with_wrapped_keys(&self, wrapped_keys: Vec<WrappedKey>) -> Result<Header, Error> {
        check_key_section(&wrapped_keys)?;
        Ok(Header {
            wrapped_keys,
            ..self.clone()
        })
    }

    /// Appends the encoded header to `out`.
    pub fn write_to_vec(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        self.encode(|bytes| out.extend_from_slice(bytes));
    }

    /// Writes the encoded header over the start of `out`, which must hold at least
    /// [`encoded_len`](Self::encoded_len) bytes; returns the bytes written.
    pub(crate) fn write_to_slice(&self, out: &mut [u8]) -> Result<usize, Error> {
        let len = self.encoded_len();
        let mut rest = out
            .get_mut(..len)
            .ok_or_else(|| Error::Internal("output buffer too small for the header"))?;
        self.encode(|bytes| {
            let (dst, tail) = std::mem::take(&mut rest).split_at_mut(bytes.len());
            dst.copy_from_slice(bytes);
            rest = tail;
        });
        Ok(len)
    }

    /// Feeds the encoding to `put`, piece by piece ([`encoded_len`](Self::encoded_len) bytes
    /// in all).
    fn encode(&self, mut put: impl FnMut(&[u8])) {
        put(&self.authenticated);
        put(&self.tag);
        // Every length was bounded when the header was made (`check_key_section`); a length
        // that did not fit would saturate, making a header that fails to parse, never one
        // that parses as something else.
        put(&[u8::try_from(self.wrapped_keys.len()).unwrap_or(u8::MAX)]);
        for w in &self.wrapped_keys {
            put(&[u8::try_from(w.provider.len()).unwrap_or(u8::MAX)]);
            put(w.provider.as_bytes());
            put(&u16::try_from(w.key_id.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes());
            put(w.key_id.as_bytes());
            put(&u16::try_from(w.ciphertext.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes());
            put(&w.ciphertext);
        }
    }

    /// The encoded header.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to_vec(&mut v);
        v
    }

    /// Parses a header at the start of `bytes`; returns it and its length.
    pub fn parse(bytes: &[u8], limits: &Limits) -> Result<(Header, usize), Error> {
        let mut input = SliceInput { bytes, pos: 0 };
        let header = parse(&mut input, limits)?;
        Ok((header, input.pos))
    }

    /// Reads a header from the start of a stream, consuming exactly its bytes.
    pub fn read_from<R: Read>(reader: &mut R, limits: &Limits) -> Result<Header, Error> {
        parse(&mut ReadInput { reader, pos: 0 }, limits)
    }
}

/// The flag a signed suite's wire id carries on top of its AEAD's id (`0x0101`, `0x0102`).
pub(crate) const SIGNED_FLAG: u16 = 0x0100;

/// The wire suite id: the AEAD's id, with [`SIGNED_FLAG`] for a signed suite.
pub(crate) fn wire_id(suite: Suite, signed: bool) -> u16 {
    if signed {
        suite.id() | SIGNED_FLAG
    } else {
        suite.id()
    }
}

/// The suite and signedness of a wire suite id: `0x0001`, `0x0002`, or either with the
/// signed flag (`0x0101`, `0x0102`); anything else is [`Error::UnknownSuite`].
fn suite_of(id: u16) -> Result<(Suite, bool), Error> {
    let signed = id & SIGNED_FLAG != 0;
    Suite::from_id(id & !SIGNED_FLAG)
        .map(|s| (s, signed))
        .map_err(|_| Error::UnknownSuite(id))
}

fn check_frame_size(frame_size: u32) -> Result<(), Error> {
    FrameSize::new(frame_size).map(|_| ())
}

fn check_key_section(keys: &[WrappedKey]) -> Result<(), Error> {
    if keys.is_empty() || keys.len() > 255 {
        return Err(Error::InvalidArgument(
            "a message needs between 1 and 255 wrapped keys",
        ));
    }
    for w in keys {
        if !valid_provider_id(&w.provider)
            || w.key_id.is_empty()
            || w.key_id.len() > u16::MAX as usize
            || w.ciphertext.is_empty()
            || w.ciphertext.len() > u16::MAX as usize
        {
            return Err(Error::InvalidArgument(
                "wrapped key has an invalid provider id, or an empty or over-long key id or ciphertext",
            ));
        }
    }
    Ok(())
}

fn key_section_len(keys: &[WrappedKey]) -> usize {
    1 + keys
        .iter()
        .map(|w| 1 + w.provider.len() + 2 + w.key_id.len() + 2 + w.ciphertext.len())
        .sum::<usize>()
}

/// Where the parser reads from: a slice (no I/O errors) or a `Read`.
trait Input {
    /// Fills `buf` completely or fails with [`Error::Truncated`] / [`Error::Io`].
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), Error>;
    /// Bytes consumed so far.
    fn pos(&self) -> usize;
    /// The next `n` bytes as a new vector (one allocation, no zero-fill for slices).
    fn take_vec(&mut self, n: usize) -> Result<Vec<u8>, Error> {
        let mut v = vec![0u8; n];
        self.fill(&mut v)?;
        Ok(v)
    }
}

struct SliceInput<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> SliceInput<'a> {
    /// The next `n` bytes, borrowed; consumes them.
    fn next(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let bytes: &'a [u8] = self.bytes;
        let taken = self
            .pos
            .checked_add(n)
            .and_then(|end| bytes.get(self.pos..end))
            .ok_or_else(|| Error::Truncated("the header ends early"))?;
        self.pos += n;
        Ok(taken)
    }
}

impl Input for SliceInput<'_> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        buf.copy_from_slice(self.next(buf.len())?);
        Ok(())
    }
    fn pos(&self) -> usize {
        self.pos
    }
    fn take_vec(&mut self, n: usize) -> Result<Vec<u8>, Error> {
        Ok(self.next(n)?.to_vec())
    }
}

struct ReadInput<'a, R> {
    reader: &'a mut R,
    pos: usize,
}

impl<R: Read> Input for ReadInput<'_, R> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        self.reader.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Error::Truncated("the header ends early"),
            _ => Error::Io(e),
        })?;
        self.pos += buf.len();
        Ok(())
    }
    fn pos(&self) -> usize {
        self.pos
    }
}

/// Reads `n` bytes after checking the running header size against the limit.
fn take(input: &mut impl Input, n: usize, limits: &Limits) -> Result<Vec<u8>, Error> {
    let total = input.pos() + n;
    if total > limits.max_header_bytes {
        return Err(Error::LimitExceeded {
            what: "header size",
            limit: limits.max_header_bytes as u64,
            actual: total as u64,
        });
    }
    input.take_vec(n)
}

fn take_array<const N: usize>(input: &mut impl Input) -> Result<[u8; N], Error> {
    let mut a = [0u8; N];
    input.fill(&mut a)?;
    Ok(a)
}

fn take_u16(input: &mut impl Input) -> Result<usize, Error> {
    Ok(u16::from_be_bytes(take_array(input)?) as usize)
}

fn utf8(bytes: Vec<u8>, what: &'static str) -> Result<String, Error> {
    String::from_utf8(bytes).map_err(|_| Error::Malformed(what))
}

fn parse(input: &mut impl Input, limits: &Limits) -> Result<Header, Error> {
    let ends_early = |e| match e {
        Error::Truncated(_) => Error::Truncated("the header ends early"),
        other => other,
    };
    // The magic first, a byte at a time, so that any non-kmseal input, however short, is
    // reported as such, and only a true prefix of the magic as truncated.
    for expected in MAGIC {
        let [b] = take_array::<1>(input).map_err(ends_early)?;
        if b != expected {
            return Err(Error::NotKmseal);
        }
    }
    let magic = MAGIC;
    let rest: [u8; FIXED_LEN - 6] = take_array(input).map_err(ends_early)?;
    let mut fixed = [0u8; FIXED_LEN];
    fixed[..6].copy_from_slice(&magic);
    fixed[6..].copy_from_slice(&rest);
    if fixed[6] != VERSION {
        return Err(Error::UnsupportedVersion(fixed[6]));
    }
    let (suite, signed) = suite_of(u16::from_be_bytes([fixed[7], fixed[8]]))?;
    let frame_size = u32::from_be_bytes([fixed[9], fixed[10], fixed[11], fixed[12]]);
    if frame_size == 0 {
        return Err(Error::Malformed("frame size is zero"));
    }
    if frame_size > limits.max_frame_size.min(MAX_FRAME_SIZE) {
        return Err(Error::LimitExceeded {
            what: "frame size",
            limit: u64::from(limits.max_frame_size.min(MAX_FRAME_SIZE)),
            actual: u64::from(frame_size),
        });
    }
    let mut message_id = [0u8; KEY_LEN];
    message_id.copy_from_slice(&fixed[13..]);
    // Room for the fixed part, a typical context and the commitment in one allocation.
    let mut authenticated = Vec::with_capacity(AUTHENTICATED_RESERVE);
    authenticated.extend_from_slice(&fixed);

    // Encryption context: sorted, unique, non-empty UTF-8 keys.
    let count_bytes: [u8; 2] = take_array(input)?;
    authenticated.extend_from_slice(&count_bytes);
    let count = u16::from_be_bytes(count_bytes) as usize;
    if count > limits.max_context_entries {
        return Err(Error::LimitExceeded {
            what: "encryption context entries",
            limit: limits.max_context_entries as u64,
            actual: count as u64,
        });
    }
    let mut context = EncryptionContext::new();
    let mut context_bytes = 2usize;
    for _ in 0..count {
        let mut entry = [String::new(), String::new()];
        for (i, slot) in entry.iter_mut().enumerate() {
            let len_bytes: [u8; 2] = take_array(input)?;
            let len = u16::from_be_bytes(len_bytes) as usize;
            context_bytes += 2 + len;
            if context_bytes > limits.max_context_bytes {
                return Err(Error::LimitExceeded {
                    what: "encryption context bytes",
                    limit: limits.max_context_bytes as u64,
                    actual: context_bytes as u64,
                });
            }
            let raw = take(input, len, limits)?;
            authenticated.extend_from_slice(&len_bytes);
            authenticated.extend_from_slice(&raw);
            *slot = utf8(raw, "encryption context is not UTF-8")?;
            if i == 0 && slot.is_empty() {
                return Err(Error::Malformed("empty encryption context key"));
            }
        }
        let [key, value] = entry;
        if !context.push_sorted(key, value) {
            return Err(Error::Malformed(
                "encryption context keys are not sorted and unique",
            ));
        }
    }
    let commitment: [u8; KEY_LEN] = take_array(input)?;
    authenticated.extend_from_slice(&commitment);
    let tag: [u8; KEY_LEN] = take_array(input)?;

    // Wrapped-key section.
    let [n] = take_array::<1>(input)?;
    let n = n as usize;
    if n == 0 {
        return Err(Error::Malformed("no wrapped keys"));
    }
    if n > limits.max_wrapped_keys {
        return Err(Error::LimitExceeded {
            what: "wrapped keys",
            limit: limits.max_wrapped_keys as u64,
            actual: n as u64,
        });
    }
    let mut wrapped_keys = Vec::with_capacity(n);
    for _ in 0..n {
        let [plen] = take_array::<1>(input)?;
        let provider = utf8(
            take(input, plen as usize, limits)?,
            "provider id is not UTF-8",
        )?;
        if !valid_provider_id(&provider) {
            return Err(Error::Malformed("invalid provider id in a wrapped key"));
        }
        let klen = take_u16(input)?;
        let key_id = utf8(take(input, klen, limits)?, "key id is not UTF-8")?;
        if key_id.is_empty() {
            return Err(Error::Malformed("empty key id in a wrapped key"));
        }
        let clen = take_u16(input)?;
        if clen == 0 {
            return Err(Error::Malformed("empty wrapped key"));
        }
        let ciphertext = take(input, clen, limits)?;
        wrapped_keys.push(WrappedKey {
            provider,
            key_id,
            ciphertext,
        });
    }
    if input.pos() > limits.max_header_bytes {
        return Err(Error::LimitExceeded {
            what: "header size",
            limit: limits.max_header_bytes as u64,
            actual: input.pos() as u64,
        });
    }
    Ok(Header {
        suite,
        signed,
        frame_size,
        message_id,
        context,
        commitment,
        tag,
        wrapped_keys,
        authenticated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `bytes` with both parsers (slice and reader); they must agree.
    fn parse_both(bytes: &[u8]) -> Result<Header, Error> {
        let l = Limits::default();
        let from_slice = Header::parse(bytes, &l).map(|(h, _)| h);
        let mut r = bytes;
        let from_reader = Header::read_from(&mut r, &l);
        assert_eq!(
            format!("{from_slice:?}"),
            format!("{from_reader:?}"),
            "the slice and reader parsers disagree"
        );
        from_slice
    }

    #[test]
    fn short_inputs_are_not_kmseal_unless_they_are_a_prefix_of_the_magic() {
        let l = Limits::default();
        for input in [&b""[..], b"KMS", b"KMSEAL", b"KMSEAL\x01"] {
            assert!(
                matches!(Header::parse(input, &l), Err(Error::Truncated(_))),
                "{input:?}"
            );
        }
        for input in [
            &b"x"[..],
            b"plain",
            b"KMSx",
            b"{\"json\": true}",
            b"KMSEAX and more",
        ] {
            assert!(
                matches!(Header::parse(input, &l), Err(Error::NotKmseal)),
                "{input:?}"
            );
            let mut r = input;
            assert!(matches!(
                Header::read_from(&mut r, &l),
                Err(Error::NotKmseal)
            ));
        }
    }

    #[test]
    fn context_keys_out_of_order_or_repeated_are_malformed() {
        let dek = crate::DataKey::generate().unwrap();
        let id = [9u8; KEY_LEN];
        let keys = MessageKeys::derive(&dek, &id, Suite::Aes256Gcm);
        let context = EncryptionContext::new()
            .with("aa", "1")
            .unwrap()
            .with("bb", "2")
            .unwrap();
        let wrapped = vec![WrappedKey {
            provider: "local".into(),
            key_id: "k".into(),
            ciphertext: vec![1, 2, 3],
        }];
        let header =
            Header::seal(&keys, Suite::Aes256Gcm, false, 4096, id, context, wrapped).unwrap();
        let bytes = header.to_bytes();
        let parsed = parse_both(&bytes).unwrap();
        assert_eq!(parsed, header);

        let entry_a = b"\x00\x02aa\x00\x011";
        let entry_b = b"\x00\x02bb\x00\x012";
        let at = bytes
            .windows(entry_a.len())
            .position(|w| w == entry_a)
            .unwrap();
        let span = at..at + 2 * entry_a.len();
        assert_eq!(&bytes[span.clone()], [&entry_a[..], &entry_b[..]].concat());
        for (what, replacement) in [
            ("swapped", [&entry_b[..], &entry_a[..]].concat()),
            ("repeated", [&entry_a[..], &entry_a[..]].concat()),
        ] {
            let mut bad = bytes.clone();
            bad[span.clone()].copy_from_slice(&replacement);
            assert!(
                matches!(parse_both(&bad), Err(Error::Malformed(m)) if m.contains("sorted")),
                "{what}"
            );
        }
    }

    #[test]
    fn limits_default_are_conservative() {
        let l = Limits::default();
        assert!(l.max_wrapped_keys <= 16);
        assert!(l.max_frame_size <= MAX_FRAME_SIZE);
    }
}
