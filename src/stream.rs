//! Streaming `Write` / `Read` adapters over the frame layer (`frame.rs`): an
//! [`EncryptWriter`] that seals frames as they fill, a [`DecryptReader`] that releases only
//! verified frames, and [`copy_locked`] to move plaintext between them through locked memory.
//! With the `tokio` feature, `AsyncEncryptWriter` and `AsyncDecryptReader` drive them from
//! tokio's `AsyncWrite` / `AsyncRead`.

use std::io::{self, Read, Write};

use crate::error::Error;
use crate::format::Header;
use crate::frame::{FrameOpener, FrameSealer};
use crate::key_schedule::MessageKeys;
use crate::parallel::{next_batch_size, stream_batch};
use crate::secret::{LockPolicy, SecretBytes};
use crate::signature::{MessageSigner, MessageVerifier, TRAILER_LEN};
use crate::suite::TAG_LEN;

#[cfg(feature = "tokio")]
pub use crate::async_io::{AsyncDecryptReader, AsyncEncryptWriter, OFFLOAD_MIN};

/// Streaming encryptor: a [`Write`] that emits the header at once and frames as they fill.
/// Call [`finish`](Self::finish) to write the final frame; a stream dropped without it is
/// truncated, and decryption will say so.
///
/// Plaintext the writer must hold until its frame is complete waits in locked memory. Whole
/// frames inside one large `write` are sealed straight from the caller's buffer (no copy).
/// With more than one thread allowed ([`Encryptor::threads`](crate::Encryptor::threads),
/// default: all cores) frames are sealed in batches (growing up to 8 MiB) on several
/// threads; on one thread a frame at a time. The output is the same either way.
pub struct EncryptWriter<W: Write> {
    /// The inner writer (and the signer of a signed message, which sees every byte written).
    sink: Sink<W>,
    /// The keys, the next frame index, and the buffer sealed frames pass through.
    frames: FrameSealer,
    /// Plaintext of up to `batch` frames awaiting encryption (`fill` bytes so far).
    buf: SecretBytes,
    fill: usize,
    /// Frames per batch: starts at one, doubles up to `max_batch`.
    batch: usize,
    max_batch: usize,
    /// Set by any error: the output may hold part of a batch, and sealing again could reuse
    /// a frame index (a nonce) for different plaintext. A poisoned writer refuses everything.
    poisoned: bool,
}

impl<W: Write> std::fmt::Debug for EncryptWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptWriter")
            .field("frame_index", &self.frames.next_index())
            .field("batch_frames", &self.batch)
            .field("max_batch_frames", &self.max_batch)
            .finish_non_exhaustive()
    }
}

impl<W: Write> EncryptWriter<W> {
    pub(crate) fn new(
        mut inner: W,
        header: &Header,
        keys: MessageKeys,
        max_threads: Option<usize>,
        signer: Option<MessageSigner>,
        lock_policy: LockPolicy,
    ) -> Result<Self, Error> {
        // The signer has already seen the header's signed bytes (the key section is not
        // signed).
        inner.write_all(&header.to_bytes())?;
        let frame_size = header.frame_size() as usize;
        let max_batch = stream_batch(frame_size, max_threads);
        Ok(EncryptWriter {
            sink: Sink {
                inner: Some(inner),
                signer,
            },
            frames: FrameSealer::new(keys, *header.message_id(), header.frame_size(), max_threads),
            buf: {
                let mut buf = SecretBytes::with_capacity_and_policy(frame_size, lock_policy)?;
                buf.resize(frame_size)?;
                buf
            },
            fill: 0,
            batch: 1,
            max_batch,
            poisoned: false,
        })
    }

    fn check_poisoned(&self) -> Result<(), Error> {
        if self.poisoned {
            return Err(Error::Finished(
                "this EncryptWriter failed earlier and its output is incomplete; start a new message",
            ));
        }
        Ok(())
    }

    /// Seals the buffered plaintext (with the final frame when `with_final`) and writes it.
    fn emit_buffered(&mut self, with_final: bool) -> Result<(), Error> {
        let sealed = self
            .frames
            .seal_next(&self.buf.expose_secret()[..self.fill], with_final)?;
        self.sink.write_all(sealed)?;
        self.fill = 0;
        Ok(())
    }

    /// The inner writer (`None` once finished): the async writer drains sealed bytes from it.
    #[cfg(feature = "tokio")]
    pub(crate) fn inner_mut(&mut self) -> Option<&mut W> {
        self.sink.inner.as_mut()
    }

    /// The lock policy of the plaintext buffer.
    #[cfg(feature = "tokio")]
    pub(crate) fn lock_policy(&self) -> LockPolicy {
        self.buf.policy()
    }

    /// Plaintext bytes buffered, awaiting their frame.
    #[cfg(feature = "tokio")]
    pub(crate) fn buffered(&self) -> usize {
        self.fill
    }

    /// Plaintext bytes that one `write` of `len` bytes would seal at once (mirrors
    /// `write_frames`): the async writer moves large seals off the executor's threads.
    #[cfg(feature = "tokio")]
    pub(crate) fn seal_cost(&self, len: usize) -> usize {
        let fs = self.frames.frame_size();
        if self.fill == 0 && len >= fs {
            return (len / fs).min(self.max_batch) * fs;
        }
        let cap = self.batch * fs;
        if self.fill + (cap - self.fill).min(len) == cap {
            cap
        } else {
            0
        }
    }

    /// Writes the final frame (with any frames still buffered), flushes, and returns the
    /// inner writer.
    ///
    /// After any earlier error (a failed write of the inner writer included) the writer is
    /// poisoned: `finish` and `write` fail, and the partial output must be discarded.
    pub fn finish(mut self) -> Result<W, Error> {
        self.check_poisoned()?;
        if let Err(e) = self.emit_buffered(true) {
            self.poisoned = true;
            return Err(e);
        }
        let mut inner = self
            .sink
            .inner
            .take()
            .ok_or(Error::Finished("the stream is already finished"))?;
        if let Some(signer) = self.sink.signer.take() {
            inner.write_all(&signer.finish())?;
        }
        inner.flush()?;
        Ok(inner)
    }
}

impl<W: Write> Drop for EncryptWriter<W> {
    fn drop(&mut self) {
        if self.sink.inner.is_some() {
            tracing::warn!(
                frames_written = self.frames.next_index(),
                "kmseal: EncryptWriter dropped without finish(); the output has no final frame \
                 and will fail to decrypt as truncated"
            );
        }
    }
}

/// Where an [`EncryptWriter`]'s sealed bytes go: the inner writer (`None` only after
/// `finish` took it) and, for a signed message, the signer, which sees exactly the bytes
/// written.
struct Sink<W> {
    inner: Option<W>,
    signer: Option<MessageSigner>,
}

impl<W: Write> Sink<W> {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let inner = self
            .inner
            .as_mut()
            .ok_or(Error::Finished("the stream is already finished"))?;
        if let Some(signer) = &mut self.signer {
            signer.update(bytes);
        }
        inner.write_all(bytes)?;
        Ok(())
    }
}

/// The end of a signed message as a [`DecryptReader`] reads it: every byte but the last
/// [`TRAILER_LEN`] goes to the frames (and the verifier); those last bytes, the signature
/// trailer, are held back until the input ends.
struct SignedTail {
    verifier: MessageVerifier,
    /// The last `held_len` bytes read, not yet handed on (the trailer, once the input ends).
    held: [u8; TRAILER_LEN],
    held_len: usize,
}

impl SignedTail {
    fn new(verifier: MessageVerifier) -> SignedTail {
        SignedTail {
            verifier,
            held: [0; TRAILER_LEN],
            held_len: 0,
        }
    }

    /// Reads from `inner` straight into `out`, holding back the last `TRAILER_LEN` bytes of
    /// the input; `Ok(0)` only at the end of the input.
    fn read<R: Read>(&mut self, inner: &mut R, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            let n = loop {
                match inner.read(out) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => break other?,
                }
            };
            if n == 0 {
                return Ok(0);
            }
            let h = self.held_len;
            if h + n <= TRAILER_LEN {
                self.held[h..h + n].copy_from_slice(&out[..n]);
                self.held_len = h + n;
                continue;
            }
            // The input so far ends `held[..h] || out[..n]`: its last TRAILER_LEN bytes stay
            // held, the `give` bytes before them go to the caller, in order, in `out`.
            let give = h + n - TRAILER_LEN;
            let mut tail = [0u8; TRAILER_LEN];
            if n >= TRAILER_LEN {
                tail.copy_from_slice(&out[n - TRAILER_LEN..n]);
                out.copy_within(..n - TRAILER_LEN, h);
                out[..h].copy_from_slice(&self.held[..h]);
            } else {
                // Fewer new bytes than a trailer: only held bytes go out.
                let keep = h - give;
                tail[..keep].copy_from_slice(&self.held[give..h]);
                tail[keep..].copy_from_slice(&out[..n]);
                out[..give].copy_from_slice(&self.held[..give]);
            }
            self.held = tail;
            self.held_len = TRAILER_LEN;
            self.verifier.update(&out[..give]);
            return Ok(give);
        }
    }

    /// At the end of the input: checks the signature over everything handed on.
    fn finish(self) -> Result<(), Error> {
        self.verifier.verify(&self.held[..self.held_len])
    }
}

/// One read of a [`DecryptReader`]'s input: through the signed tail when there is one.
fn read_input<R: Read>(
    inner: &mut R,
    tail: &mut Option<SignedTail>,
    out: &mut [u8],
) -> io::Result<usize> {
    match tail {
        Some(t) => t.read(inner, out),
        None => inner.read(out),
    }
}

pub(crate) fn to_io(e: Error) -> io::Error {
    match e {
        Error::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

/// The inverse of [`to_io`]: the kmseal error a stream wrapped in an `io::Error`, or the I/O
/// error itself.
pub(crate) fn from_io(e: io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        if let Some(inner) = e.into_inner()
            && let Ok(err) = inner.downcast::<Error>()
        {
            return *err;
        }
        return Error::Decrypt;
    }
    Error::Io(e)
}

/// Bytes [`copy_locked`] moves per write: whole frames at the default frame size, so an
/// [`EncryptWriter`] seals them straight from its buffer and a [`DecryptReader`] opens them
/// straight into it, batched over its threads.
pub const COPY_CHUNK: usize = 1 << 20;

/// Copies `reader` to `writer` through one locked buffer of [`COPY_CHUNK`] bytes, filled
/// before each write, and returns the bytes copied: for plaintext going into an
/// [`EncryptWriter`] or coming out of a [`DecryptReader`], where `std::io::copy` would pass
/// it through an ordinary stack buffer that is never wiped. The buffer starts on a page, so
/// the kernel's copy from a file is never misaligned against the page cache (BENCHMARKS.md:
/// 4-6x slower on some AMD hosts). A kmseal error that a stream reported inside an
/// `io::Error` comes back as itself (for example [`Error::Decrypt`] or
/// [`Error::Truncated`]); bytes already written stay written, so write plaintext somewhere
/// that is discarded on error.
///
/// ```
/// use std::sync::Arc;
/// use kmseal::{stream::copy_locked, Decryptor, Encryptor, LocalKek, SecretBytes};
///
/// let kek = Arc::new(LocalKek::generate()?);
/// let plaintext = vec![7u8; 3 << 20];
/// let mut w = Encryptor::new(kek.clone()).writer_blocking(Vec::new())?;
/// assert_eq!(copy_locked(&mut &plaintext[..], &mut w)?, 3 << 20);
/// let sealed = w.finish()?;
///
/// let mut r = Decryptor::new(kek).reader_blocking(&sealed[..])?;
/// let mut opened = SecretBytes::new();
/// copy_locked(&mut r, &mut opened)?;
/// assert_eq!(opened.expose_secret(), &plaintext[..]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn copy_locked<R: Read + ?Sized, W: Write + ?Sized>(
    reader: &mut R,
    writer: &mut W,
) -> Result<u64, Error> {
    copy_locked_with(reader, writer, COPY_CHUNK)
}

/// [`copy_locked`] with a buffer of `chunk` bytes.
pub(crate) fn copy_locked_with<R: Read + ?Sized, W: Write + ?Sized>(
    reader: &mut R,
    writer: &mut W,
    chunk: usize,
) -> Result<u64, Error> {
    let mut buf = SecretBytes::zeroed(chunk.max(1))?;
    let buf = buf.expose_secret_mut();
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(from_io(e)),
            }
        }
        writer.write_all(&buf[..filled]).map_err(from_io)?;
        total += filled as u64;
        if filled < buf.len() {
            return Ok(total);
        }
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    /// Buffers or seals `data`. Any error poisons the writer (see
    /// [`finish`](EncryptWriter::finish)): every later call fails.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.check_poisoned().map_err(to_io)?;
        let written = self.write_frames(data);
        if written.is_err() {
            self.poisoned = true;
        }
        written
    }

    /// Flushes the inner writer. Plaintext still buffered stays in locked memory until its
    /// batch fills or [`finish`](Self::finish): a partial frame cannot be sealed early.
    fn flush(&mut self) -> io::Result<()> {
        match self.sink.inner.as_mut() {
            Some(inner) => inner.flush(),
            None => Ok(()),
        }
    }
}

impl<W: Write> EncryptWriter<W> {
    fn write_frames(&mut self, data: &[u8]) -> io::Result<usize> {
        let fs = self.frames.frame_size();
        if self.fill == 0 && data.len() >= fs {
            // Whole frames straight from the caller's buffer: a full frame is never final,
            // so they can go now.
            let n = (data.len() / fs).min(self.max_batch) * fs;
            let sealed = self.frames.seal_next(&data[..n], false).map_err(to_io)?;
            self.sink.write_all(sealed).map_err(to_io)?;
            return Ok(n);
        }
        let cap = self.batch * fs;
        if self.buf.len() < cap {
            // Keep what is buffered: `fill` bytes, copied into the larger locked buffer.
            self.buf.resize(cap).map_err(to_io)?;
        }
        let n = (cap - self.fill).min(data.len());
        self.buf.expose_secret_mut()[self.fill..self.fill + n].copy_from_slice(&data[..n]);
        self.fill += n;
        if self.fill == cap {
            // Whole frames only, so none of them is final.
            self.emit_buffered(false).map_err(to_io)?;
            self.batch = next_batch_size(self.batch, self.max_batch);
        }
        Ok(n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    Frames,
    Done,
    Failed,
}

/// Streaming decryptor: a [`Read`] that releases only verified frames. With one thread
/// ([`Decryptor::threads`](crate::Decryptor::threads)) it reads and verifies one frame at a
/// time; with more it reads ahead a batch of frames (growing up to 8 MiB) and verifies and
/// decrypts them on several threads. Either way it releases exactly the frames a
/// frame-by-frame reader would: those before the first one that fails. Plaintext goes
/// straight into the caller's buffer when it has room for whole frames, else through a
/// locked buffer. Errors surface as `io::Error` of kind `InvalidData` wrapping a
/// [`kmseal::Error`](crate::Error) (use `into_inner` and downcast to inspect); after an error
/// every further read fails.
pub struct DecryptReader<R: Read> {
    inner: R,
    /// A signed message's verifier and held-back trailer (`None`: unsigned, or verified).
    signed: Option<SignedTail>,
    /// The keys and the index of the next frame.
    frames: FrameOpener,
    /// Ciphertext read ahead (ordinary memory: it is not secret).
    sealed: Vec<u8>,
    /// Verified plaintext not yet handed out: `buf[pos..end]`.
    buf: SecretBytes,
    pos: usize,
    end: usize,
    /// Frames per batch: starts at one, doubles up to `max_batch`.
    batch: usize,
    max_batch: usize,
    state: ReadState,
    /// An error to report once the verified frames before it have been read.
    pending: Option<Error>,
}

impl<R: Read> std::fmt::Debug for DecryptReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptReader")
            .field("frame_index", &self.frames.next_index())
            .field("batch_frames", &self.batch)
            .field("max_batch_frames", &self.max_batch)
            .finish_non_exhaustive()
    }
}

impl<R: Read> DecryptReader<R> {
    pub(crate) fn new(
        inner: R,
        header: &Header,
        keys: MessageKeys,
        max_threads: Option<usize>,
        lock_policy: LockPolicy,
        verifier: Option<MessageVerifier>,
    ) -> Result<Self, Error> {
        let frame_size = header.frame_size() as usize;
        let max_batch = stream_batch(frame_size, max_threads);
        let signed = verifier.map(SignedTail::new);
        Ok(DecryptReader {
            inner,
            signed,
            frames: FrameOpener::new(keys, *header.message_id(), header.frame_size(), max_threads),
            sealed: Vec::new(),
            buf: SecretBytes::with_capacity_and_policy(0, lock_policy)?,
            pos: 0,
            end: 0,
            batch: 1,
            max_batch,
            state: ReadState::Frames,
            pending: None,
        })
    }

    /// Reads up to a batch of frames (at most as many as `direct` has room for, when given),
    /// verifies and decrypts them into `direct` or the locked buffer, and returns the bytes
    /// of plaintext released: those of the frames before the first bad one. That failure, or
    /// a truncation, is kept in `pending` for after they are read.
    fn next_batch(&mut self, direct: Option<&mut [u8]>) -> Result<usize, Error> {
        let fs = self.frames.frame_size();
        let full = fs + TAG_LEN;
        // Past the first batch, the stream goes on: read further ahead this time.
        self.batch = self.next_batch_frames();
        let frames_cap = match &direct {
            Some(out) => (out.len() / fs).clamp(1, self.batch),
            None => self.batch,
        };
        let cap = frames_cap * full;
        if self.sealed.len() < cap {
            self.sealed.resize(cap, 0);
        }
        let mut got = 0;
        while got < cap {
            match read_input(
                &mut self.inner,
                &mut self.signed,
                &mut self.sealed[got..cap],
            ) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
        let at_end = got < cap;
        let last = got % full;
        // At the end of input the last frame must be a final one: shorter than a full frame
        // and long enough for a tag. A batch that fills up holds only full (non-final) frames.
        let (body, mut pending) = if at_end && last < TAG_LEN {
            let e = Error::Truncated("the stream ends before its final frame");
            (got - last, Some(e))
        } else {
            (got, None)
        };
        let count = body.div_ceil(full);
        let plain = body - count * TAG_LEN;
        let dst = match direct {
            Some(out) => &mut out[..plain],
            None => {
                self.buf.set_len_for_overwrite(plain)?;
                self.buf.expose_secret_mut()
            }
        };
        let good = self.frames.open_next(&self.sealed[..body], dst)?;
        if good < count {
            pending = Some(Error::Decrypt);
        }
        let mut released = (good * fs).min(plain);
        if at_end
            && pending.is_none()
            && let Some(tail) = self.signed.take()
            && let Err(e) = tail.finish()
        {
            // A signed stream's last batch is released only once its signature verified.
            zeroize::Zeroize::zeroize(&mut dst[..plain]);
            released = 0;
            pending = Some(e);
        }
        match pending {
            Some(e) => self.pending = Some(e),
            None if at_end => self.state = ReadState::Done,
            None => {}
        }
        Ok(released)
    }

    /// Returns the inner reader (positioned after the message if it was read to the end;
    /// with read-ahead, possibly further on an error).
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> DecryptReader<R> {
    /// Whether a read would consume input: nothing verified is waiting, no error is pending,
    /// and the message has not ended.
    #[cfg(feature = "tokio")]
    fn needs_input(&self) -> bool {
        self.pos == self.end && self.pending.is_none() && self.state == ReadState::Frames
    }

    /// The most input bytes the next read can consume (0 when it consumes none): into a
    /// buffer of `out_len` bytes, or into the locked buffer when `None`
    /// ([`prefetch`](Self::prefetch)). The async reader buffers this much (or the input's
    /// end) before each read, so the read never mistakes a slow source for the end of the
    /// message.
    #[cfg(feature = "tokio")]
    pub(crate) fn input_wanted(&self, out_len: Option<usize>) -> usize {
        if !self.needs_input() {
            return 0;
        }
        let fs = self.frames.frame_size();
        let batch = self.next_batch_frames();
        let frames = match out_len {
            Some(len) if len >= fs => (len / fs).clamp(1, batch),
            _ => batch,
        };
        let trailer = if self.signed.is_some() {
            TRAILER_LEN
        } else {
            0
        };
        frames * (fs + TAG_LEN) + trailer
    }

    /// Frames the next batch holds at most (before the room in the caller's buffer).
    fn next_batch_frames(&self) -> usize {
        if self.frames.next_index() > 0 {
            next_batch_size(self.batch, self.max_batch)
        } else {
            self.batch
        }
    }

    /// Verifies and decrypts the next batch into the locked buffer if nothing is waiting
    /// there: the async reader runs this on the blocking pool, then reads the result.
    #[cfg(feature = "tokio")]
    pub(crate) fn prefetch(&mut self) -> io::Result<()> {
        if !self.needs_input() {
            return Ok(());
        }
        self.fill_batch(None).map(|_| ())
    }

    /// The inner reader.
    #[cfg(feature = "tokio")]
    pub(crate) fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Runs one batch into `direct` (returning the bytes released there) or into the locked
    /// buffer (returning 0); an error fails the reader for good.
    fn fill_batch(&mut self, direct: Option<&mut [u8]>) -> io::Result<usize> {
        let is_direct = direct.is_some();
        match self.next_batch(direct) {
            Ok(n) if is_direct => Ok(n),
            Ok(n) => {
                self.pos = 0;
                self.end = n;
                Ok(0)
            }
            Err(e) => {
                self.state = ReadState::Failed;
                Err(to_io(e))
            }
        }
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.end {
                let n = (self.end - self.pos).min(out.len());
                out[..n].copy_from_slice(&self.buf.expose_secret()[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if let Some(e) = self.pending.take() {
                self.state = ReadState::Failed;
                return Err(to_io(e));
            }
            match self.state {
                ReadState::Done => return Ok(0),
                ReadState::Failed => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "kmseal: the stream already failed to decrypt",
                    ));
                }
                ReadState::Frames => {
                    if out.is_empty() {
                        return Ok(0);
                    }
                    let direct = out.len() >= self.frames.frame_size();
                    let n = self.fill_batch(if direct { Some(&mut *out) } else { None })?;
                    if n > 0 {
                        return Ok(n);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test patterns
mod tests {
    use super::*;
    use crate::context::EncryptionContext;
    use crate::frame::seal_all_with;
    use crate::kek::DataKey;
    use crate::suite::{KEY_LEN, Suite};

    #[test]
    fn batched_writers_match_the_one_frame_writer_byte_for_byte() {
        let dek = DataKey::from_bytes(&[5u8; 32]).unwrap();
        let id = [3u8; KEY_LEN];
        let fs = 1000u32;
        // Batches double from one frame to their largest (2,098 frames of 1000 bytes for
        // 1 MiB per worker on two threads), then a batch of 1,253 frames is sealed on several.
        let pt: Vec<u8> = (0..3_300_123usize).map(|i| (i * 7) as u8).collect();
        for suite in Suite::ALL {
            let header = |keys: &MessageKeys| {
                let wrapped = vec![crate::kek::WrappedKey {
                    provider: "local".into(),
                    key_id: "k".into(),
                    ciphertext: vec![1],
                }];
                Header::seal(
                    keys,
                    suite,
                    false,
                    fs,
                    id,
                    EncryptionContext::new(),
                    wrapped,
                )
                .unwrap()
            };
            let mut outputs = Vec::new();
            for threads in [1, 2, 5] {
                let keys = MessageKeys::derive(&dek, &id, suite);
                let h = header(&keys);
                let mut w = EncryptWriter::new(
                    Vec::new(),
                    &h,
                    keys,
                    Some(threads),
                    None,
                    LockPolicy::BestEffort,
                )
                .unwrap();
                for chunk in pt.chunks(4093) {
                    w.write_all(chunk).unwrap();
                }
                outputs.push(w.finish().unwrap());
            }
            assert!(outputs.iter().all(|o| *o == outputs[0]), "{suite}");
            // And the one-shot path writes the same body.
            let keys = MessageKeys::derive(&dek, &id, suite);
            let h = header(&keys);
            let body_len = crate::format::body_len(pt.len() as u64, fs).unwrap() as usize;
            let mut body = vec![0u8; body_len];
            seal_all_with(&keys, &id, fs, &pt, &mut body, 2).unwrap();
            assert!(outputs[0][h.encoded_len()..] == body[..], "{suite}");
        }
    }
}
