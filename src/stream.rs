//! Framed payload encryption: one-shot over slices, and streaming `Write` / `Read` adapters.
//!
//! Every non-final frame holds exactly `frame_size` plaintext bytes; the final frame holds
//! strictly fewer (possibly zero), so the end of the message is explicit. Each frame is
//! `ciphertext || 16-byte tag`, sealed with
//!
//! ```text
//! nonce = 00 00 00 || frame_index (u64 BE) || final (00 or 01)
//! aad   = message_id || frame_index (u64 BE) || final (00 or 01)
//! ```
//!
//! A reader therefore detects truncation (the last frame read was full: its final frame is
//! missing, or a short frame fails its tag as final), reordering and duplication (index in the
//! nonce), and trailing data (it would make the final frame longer, failing its tag). Only
//! frames whose tag verified are released.

use std::io::{self, Read, Write};

use crate::error::Error;
use crate::format::{Header, plaintext_len};
use crate::secret::SecretBytes;
use crate::signature::{MessageSigner, MessageVerifier, TRAILER_LEN};
use crate::suite::{KEY_LEN, MessageKeys, TAG_LEN, frame_aad, frame_nonce, scrub_stack};

/// Most worker threads one message uses when the caller sets no limit.
pub(crate) const DEFAULT_MAX_THREADS: usize = 16;

/// Smallest share of a message worth a thread of its own. Measured with
/// `examples/envelope_loop` (BENCHMARKS.md): two threads gain nothing at 128 KiB each, 1.3x
/// (aws-lc AES-GCM, ~20 GB/s on one core) to 1.5x (ChaCha20-Poly1305) at 256 KiB each.
pub(crate) const MIN_BYTES_PER_THREAD: usize = 256 << 10;

/// Worker threads for a message of `len` bytes in `frames` frames: as many as give each at
/// least [`MIN_BYTES_PER_THREAD`], at most the machine's parallelism, at most `max` (the
/// caller's limit, or [`DEFAULT_MAX_THREADS`]) and at most one per frame.
fn threads_for(len: usize, frames: usize, max: Option<usize>) -> usize {
    let by_size = len / MIN_BYTES_PER_THREAD;
    let max = max.unwrap_or(DEFAULT_MAX_THREADS);
    cores().min(frames).min(max).min(by_size).max(1)
}

/// The machine's available parallelism, read once: `available_parallelism` reads cgroup
/// files on Linux (~24 µs here), too slow to ask per message.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Whether rayon's global pool has workers in this process: false in the child of a `fork()`
/// made after the pool started (threads are not inherited). The first use records the fork
/// generation it happened in.
fn rayon_usable() -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STARTED_IN: AtomicU64 = AtomicU64::new(u64::MAX);
    let now = crate::secret::fork_generation();
    match STARTED_IN.compare_exchange(u64::MAX, now, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => true,
        Err(started) => started == now,
    }
}

/// Runs `job` over `items` split into `threads` contiguous groups: the first on the calling
/// thread, the others on rayon's pool (persistent workers: handing a group over costs a few
/// microseconds, where spawning a thread cost ~25). Each group scrubs its thread's stack when
/// done; the first error wins.
fn in_parallel<T: Send>(
    items: Vec<T>,
    threads: usize,
    job: impl Fn(T) -> Result<(), Error> + Sync,
) -> Result<(), Error> {
    let per = items.len().div_ceil(threads.max(1)).max(1);
    let mut groups: Vec<Vec<T>> = Vec::new();
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        groups.push(it.by_ref().take(per).collect());
    }
    let run = |group: Vec<T>| -> Result<(), Error> {
        let r = group.into_iter().try_for_each(&job);
        scrub_stack();
        r
    };
    if !rayon_usable() {
        // A forked child: rayon's workers were threads of the parent and do not exist here;
        // handing them work would wait forever. Run every group on this thread.
        return groups.into_iter().try_for_each(run);
    }
    let mut results: Vec<Result<(), Error>> = groups.iter().map(|_| Ok(())).collect();
    let mut groups = groups.into_iter();
    if let (Some(first), Some((mine, theirs))) = (groups.next(), results.split_first_mut()) {
        let run = &run;
        rayon_core::in_place_scope(|scope| {
            for (group, slot) in groups.zip(theirs.iter_mut()) {
                scope.spawn(move |_| *slot = run(group));
            }
            *mine = run(first);
        });
    }
    results.into_iter().collect()
}

/// Encrypts `plaintext` frame by frame into `body`, which must be exactly
/// [`body_len`](crate::format::body_len) bytes (its old contents are all overwritten, so it
/// need not be zeroed). Large messages use up to `max_threads` threads (`None`: the default),
/// with output identical to the sequential path.
pub(crate) fn seal_all(
    keys: &MessageKeys,
    message_id: &[u8; KEY_LEN],
    frame_size: u32,
    plaintext: &[u8],
    body: &mut [u8],
    max_threads: Option<usize>,
) -> Result<(), Error> {
    let frames = plaintext.len() / frame_size as usize + 1;
    seal_all_with(
        keys,
        message_id,
        frame_size,
        plaintext,
        body,
        threads_for(plaintext.len(), frames, max_threads),
    )
}

/// [`seal_all`] on exactly `threads` threads.
pub(crate) fn seal_all_with(
    keys: &MessageKeys,
    message_id: &[u8; KEY_LEN],
    frame_size: u32,
    plaintext: &[u8],
    body: &mut [u8],
    threads: usize,
) -> Result<(), Error> {
    let frames = Frames {
        keys,
        message_id,
        frame_size: frame_size as usize,
    };
    frames.seal(0, plaintext, true, body, threads)
}

/// The frame layer of one message: seals and opens runs of consecutive frames, out of place,
/// on one or several threads. Shared by the one-shot and streaming paths, so both produce
/// and accept exactly the same bytes.
struct Frames<'a> {
    keys: &'a MessageKeys,
    message_id: &'a [u8; KEY_LEN],
    frame_size: usize,
}

impl Frames<'_> {
    /// Bytes that frames holding `plain` plaintext bytes take (with a final frame: `plain`
    /// may be anything; without: a whole number of frames).
    fn sealed_len(&self, plain: usize, with_final: bool) -> usize {
        let full = plain / self.frame_size;
        let rest = plain % self.frame_size;
        full * (self.frame_size + TAG_LEN) + if with_final { rest + TAG_LEN } else { 0 }
    }

    /// Seals `plaintext` as frames `first`, `first + 1`, ... into `out`, which must be exactly
    /// [`sealed_len`](Self::sealed_len) bytes. Without `with_final` the plaintext must fill
    /// whole frames (full frames are never final); with it, the frames end with the final
    /// (short, possibly empty) frame.
    fn seal(
        &self,
        first: u64,
        plaintext: &[u8],
        with_final: bool,
        out: &mut [u8],
        threads: usize,
    ) -> Result<(), Error> {
        // A writer carried across fork(): parent and child would seal the same frame
        // indices (nonces) under the same key. Refuse in the child.
        self.keys.check_process()?;
        let fs = self.frame_size;
        if (!with_final && !plaintext.len().is_multiple_of(fs))
            || out.len() != self.sealed_len(plaintext.len(), with_final)
        {
            return Err(Error::InvalidArgument(
                "output buffer does not match the message size",
            ));
        }
        let pts = plaintext.chunks_exact(fs);
        let last = with_final.then_some(pts.remainder());
        let mut rest = out;
        // Each job: frame index, plaintext, and the exact slice its ciphertext and tag go to.
        let jobs = (first..).zip(pts.chain(last)).map(move |(index, pt)| {
            let (dst, tail) = std::mem::take(&mut rest).split_at_mut(pt.len() + TAG_LEN);
            rest = tail;
            (index, pt, dst)
        });
        let seal = |(index, pt, dst): (u64, &[u8], &mut [u8])| -> Result<(), Error> {
            let is_final = pt.len() < fs;
            let (ct, tag_out) = dst.split_at_mut(pt.len());
            let tag = self.keys.cipher.seal_into(
                &frame_nonce(index, is_final),
                &frame_aad(self.message_id, index, is_final),
                pt,
                ct,
            )?;
            tag_out.copy_from_slice(&tag);
            Ok(())
        };
        if threads > 1 {
            return in_parallel(jobs.collect(), threads, seal);
        }
        let result = { jobs }.try_for_each(seal);
        scrub_stack();
        result
    }

    /// Opens the frames in `body` (frames `first`, `first + 1`, ...; a frame shorter than a
    /// full one is taken as final) into `plain`, frame `k` at `k * frame_size`. Returns how
    /// many frames verified before the first that did not (all of them when all did), and
    /// zeroizes `plain` from that frame on: nothing after a bad frame is released, as a
    /// frame-by-frame reader would never have reached it. `plain` must hold the plaintext.
    fn open(&self, first: u64, body: &[u8], plain: &mut [u8], threads: usize) -> usize {
        let fs = self.frame_size;
        let full = fs + TAG_LEN;
        let frames = body.len().div_ceil(full);
        let first_bad = std::sync::atomic::AtomicUsize::new(frames);
        let mut rest = &mut plain[..];
        let mut jobs = Vec::with_capacity(if threads > 1 { frames } else { 0 });
        let open = |(k, frame, dst): (usize, &[u8], &mut [u8])| -> Result<(), Error> {
            let index = first + k as u64;
            let is_final = frame.len() < full;
            let opened = frame
                .len()
                .checked_sub(TAG_LEN)
                .map(|n| frame.split_at(n))
                .filter(|(ct, _)| ct.len() == dst.len())
                .and_then(|(ct, tag)| Some((ct, <&[u8; TAG_LEN]>::try_from(tag).ok()?)))
                .map_or(Err(Error::Decrypt), |(ct, tag)| {
                    self.keys.cipher.open_into(
                        &frame_nonce(index, is_final),
                        &frame_aad(self.message_id, index, is_final),
                        ct,
                        dst,
                        tag,
                    )
                });
            if opened.is_err() {
                first_bad.fetch_min(k, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        };
        for (k, frame) in body.chunks(full).enumerate() {
            let n = frame.len().saturating_sub(TAG_LEN).min(rest.len());
            let (dst, tail) = std::mem::take(&mut rest).split_at_mut(n);
            rest = tail;
            if threads > 1 {
                jobs.push((k, frame, dst));
            } else if first_bad.load(std::sync::atomic::Ordering::Relaxed) == frames {
                let _ = open((k, frame, dst));
            }
        }
        if threads > 1 {
            let _ = in_parallel(jobs, threads, open);
        } else {
            scrub_stack();
        }
        let good = first_bad.into_inner();
        if good < frames {
            let from = (good * fs).min(plain.len());
            zeroize::Zeroize::zeroize(&mut plain[from..]);
        }
        good
    }
}

/// Decrypts a complete body into `out` (locked memory), reusing its allocation when it is
/// large enough (its old contents are overwritten, never zero-filled first). Nothing is
/// returned unless every frame verified: on failure `out` is left empty, its partial
/// plaintext zeroized. Large messages use up to `max_threads` threads (`None`: the default).
pub(crate) fn open_all(
    keys: &MessageKeys,
    header: &Header,
    body: &[u8],
    out: &mut SecretBytes,
    max_threads: Option<usize>,
) -> Result<(), Error> {
    let fs = header.frame_size();
    let result = plaintext_len(body.len() as u64, fs)
        .ok_or_else(|| Error::Truncated("the body does not end with a final frame"))
        .and_then(|len| {
            usize::try_from(len)
                .map_err(|_| Error::Malformed("message too large for this platform"))
        })
        .and_then(|len| {
            out.set_len_for_overwrite(len)?;
            let frames = body.len().div_ceil(fs as usize + TAG_LEN);
            open_all_into(
                keys,
                header,
                body,
                out.expose_secret_mut(),
                threads_for(len, frames, max_threads),
            )
        });
    if result.is_err() {
        out.clear();
    }
    result
}

/// Opens every frame of `body` (laid out as `plaintext_len` checked) into `plain`, on
/// `threads` threads; any bad frame fails the whole message.
pub(crate) fn open_all_into(
    keys: &MessageKeys,
    header: &Header,
    body: &[u8],
    plain: &mut [u8],
    threads: usize,
) -> Result<(), Error> {
    let frames = Frames {
        keys,
        message_id: header.message_id(),
        frame_size: header.frame_size() as usize,
    };
    let total = body.len().div_ceil(header.frame_size() as usize + TAG_LEN);
    if frames.open(0, body, plain, threads) == total {
        Ok(())
    } else {
        Err(Error::Decrypt)
    }
}

/// Most plaintext one stream holds for its frame batch (read-ahead when decrypting, frames
/// awaiting encryption when encrypting): peak memory of a stream stays bounded whatever the
/// input size or core count.
pub(crate) const STREAM_BATCH_MAX: usize = 8 << 20;

/// Smallest share of a stream batch per worker thread: a stream hands out work once per batch
/// and copies between batches, so larger shares than a one-shot message's pay off.
const STREAM_MIN_PER_WORKER: usize = 1 << 20;

/// Frames a stream batches so that its `max_threads` workers each get a worthwhile share
/// (see [`threads_for`]); 1 (one frame at a time, no read-ahead) on one thread.
fn stream_batch(frame_size: usize, max_threads: Option<usize>) -> usize {
    let threads = cores().min(max_threads.unwrap_or(DEFAULT_MAX_THREADS));
    if threads <= 1 {
        return 1;
    }
    let per_worker = STREAM_MIN_PER_WORKER.div_ceil(frame_size).max(1);
    let cap = (STREAM_BATCH_MAX / (frame_size + TAG_LEN)).max(1);
    threads.saturating_mul(per_worker).min(cap)
}

/// The next batch size: doubling after each full batch up to `max`, so a short stream never
/// pays for (or locks) a large buffer.
fn next_batch_size(batch: usize, max: usize) -> usize {
    batch.saturating_mul(2).min(max).max(batch)
}

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
    keys: MessageKeys,
    message_id: [u8; KEY_LEN],
    frame_size: usize,
    max_threads: Option<usize>,
    /// Plaintext of up to `batch` frames awaiting encryption (`fill` bytes so far).
    buf: SecretBytes,
    fill: usize,
    /// Frames per batch: starts at one, doubles up to `max_batch`.
    batch: usize,
    max_batch: usize,
    /// Sealed frames on their way to `inner` (ciphertext: ordinary memory).
    sealed: Vec<u8>,
    /// Index of the next frame to seal.
    index: u64,
    /// Set by any error: the output may hold part of a batch, and sealing again could reuse
    /// a frame index (a nonce) for different plaintext. A poisoned writer refuses everything.
    poisoned: bool,
}

impl<W: Write> std::fmt::Debug for EncryptWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptWriter")
            .field("frame_index", &self.index)
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
            keys,
            message_id: *header.message_id(),
            frame_size,
            max_threads,
            buf: SecretBytes::zeroed(frame_size)?,
            fill: 0,
            batch: 1,
            max_batch,
            sealed: Vec::new(),
            index: 0,
            poisoned: false,
        })
    }

    fn check_poisoned(&self) -> Result<(), Error> {
        if self.poisoned {
            return Err(Error::InvalidArgument(
                "this EncryptWriter failed earlier and its output is incomplete; start a new message",
            ));
        }
        Ok(())
    }

    /// Seals `plaintext` (from the buffer or the caller) as the next frames and writes them.
    fn emit(
        sink: &mut Sink<W>,
        frames: &Frames<'_>,
        sealed: &mut Vec<u8>,
        index: &mut u64,
        max_threads: Option<usize>,
        plaintext: &[u8],
        with_final: bool,
    ) -> Result<(), Error> {
        let len = frames.sealed_len(plaintext.len(), with_final);
        if sealed.len() < len {
            sealed.resize(len, 0);
        }
        let count = plaintext.len() / frames.frame_size + usize::from(with_final);
        let threads = threads_for(plaintext.len(), count, max_threads);
        frames.seal(*index, plaintext, with_final, &mut sealed[..len], threads)?;
        sink.write_all(&sealed[..len])?;
        *index = index
            .checked_add(count as u64)
            .ok_or_else(|| Error::InvalidArgument("too many frames"))?;
        Ok(())
    }

    /// Seals the buffered plaintext (with the final frame when `with_final`) and writes it.
    fn emit_buffered(&mut self, with_final: bool) -> Result<(), Error> {
        let frames = Frames {
            keys: &self.keys,
            message_id: &self.message_id,
            frame_size: self.frame_size,
        };
        let plaintext = &self.buf.expose_secret()[..self.fill];
        Self::emit(
            &mut self.sink,
            &frames,
            &mut self.sealed,
            &mut self.index,
            self.max_threads,
            plaintext,
            with_final,
        )?;
        self.fill = 0;
        Ok(())
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
            .ok_or_else(|| Error::InvalidArgument("the stream is already finished"))?;
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
                frames_written = self.index,
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
            .ok_or_else(|| Error::InvalidArgument("the stream is already finished"))?;
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

fn to_io(e: Error) -> io::Error {
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
        let fs = self.frame_size;
        if self.fill == 0 && data.len() >= fs {
            // Whole frames straight from the caller's buffer: a full frame is never final,
            // so they can go now.
            let n = (data.len() / fs).min(self.max_batch) * fs;
            let frames = Frames {
                keys: &self.keys,
                message_id: &self.message_id,
                frame_size: fs,
            };
            Self::emit(
                &mut self.sink,
                &frames,
                &mut self.sealed,
                &mut self.index,
                self.max_threads,
                &data[..n],
                false,
            )
            .map_err(to_io)?;
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
    keys: MessageKeys,
    message_id: [u8; KEY_LEN],
    frame_size: usize,
    max_threads: Option<usize>,
    /// Ciphertext read ahead (ordinary memory: it is not secret).
    sealed: Vec<u8>,
    /// Verified plaintext not yet handed out: `buf[pos..end]`.
    buf: SecretBytes,
    pos: usize,
    end: usize,
    /// Frames per batch: starts at one, doubles up to `max_batch`.
    batch: usize,
    max_batch: usize,
    /// Index of the next frame to read.
    index: u64,
    state: ReadState,
    /// An error to report once the verified frames before it have been read.
    pending: Option<Error>,
}

impl<R: Read> std::fmt::Debug for DecryptReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptReader")
            .field("frame_index", &self.index)
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
    ) -> Result<Self, Error> {
        let frame_size = header.frame_size() as usize;
        let max_batch = stream_batch(frame_size, max_threads);
        let signed = MessageVerifier::for_header(header)?.map(SignedTail::new);
        Ok(DecryptReader {
            inner,
            signed,
            keys,
            message_id: *header.message_id(),
            frame_size,
            max_threads,
            sealed: Vec::new(),
            buf: SecretBytes::new(),
            pos: 0,
            end: 0,
            batch: 1,
            max_batch,
            index: 0,
            state: ReadState::Frames,
            pending: None,
        })
    }

    /// Reads up to a batch of frames (at most as many as `direct` has room for, when given),
    /// verifies and decrypts them into `direct` or the locked buffer, and returns the bytes
    /// of plaintext released: those of the frames before the first bad one. That failure, or
    /// a truncation, is kept in `pending` for after they are read.
    fn next_batch(&mut self, direct: Option<&mut [u8]>) -> Result<usize, Error> {
        let fs = self.frame_size;
        let full = fs + TAG_LEN;
        if self.index > 0 {
            // The stream goes on past a full batch: read further ahead this time.
            self.batch = next_batch_size(self.batch, self.max_batch);
        }
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
        let frames = Frames {
            keys: &self.keys,
            message_id: &self.message_id,
            frame_size: fs,
        };
        let threads = threads_for(plain, count, self.max_threads);
        let good = frames.open(self.index, &self.sealed[..body], dst, threads);
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
        self.index = self
            .index
            .checked_add(good as u64)
            .ok_or_else(|| Error::Decrypt)?;
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
                    let direct = out.len() >= self.frame_size;
                    let r = self.next_batch(if direct { Some(&mut *out) } else { None });
                    match r {
                        Ok(n) if direct && n > 0 => return Ok(n),
                        Ok(n) => {
                            if !direct {
                                self.pos = 0;
                                self.end = n;
                            }
                        }
                        Err(e) => {
                            self.state = ReadState::Failed;
                            return Err(to_io(e));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::EncryptionContext;
    use crate::kek::DataKey;
    use crate::suite::Suite;

    #[test]
    fn parallel_frames_match_the_sequential_path_and_fail_alike() {
        let dek = DataKey::from_bytes(&[9u8; 32]).unwrap();
        let id = [7u8; KEY_LEN];
        for suite in Suite::ALL {
            for (fs, len) in [
                (16u32, 0usize),
                (16, 1000),
                (1000, 7000),
                (1000, 10_000),
                (4096, 100_003),
            ] {
                let keys = MessageKeys::derive(&dek, &id, suite);
                let wrapped = vec![crate::kek::WrappedKey {
                    provider: "local".into(),
                    key_id: "k".into(),
                    ciphertext: vec![1],
                }];
                let header = Header::seal(
                    &keys,
                    suite,
                    false,
                    fs,
                    id,
                    EncryptionContext::new(),
                    wrapped,
                )
                .unwrap();
                let pt: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
                let body = crate::format::body_len(len as u64, fs).unwrap() as usize;
                let mut seq = vec![0u8; body];
                seal_all_with(&keys, &id, fs, &pt, &mut seq, 1).unwrap();
                assert!(seal_all_with(&keys, &id, fs, &pt, &mut seq[1..], 1).is_err());
                for threads in [2, 3, 7] {
                    // Garbage in the output buffer must not matter: every byte is overwritten.
                    let mut par = vec![0xa5u8; body];
                    seal_all_with(&keys, &id, fs, &pt, &mut par, threads).unwrap();
                    assert_eq!(par, seq, "{suite} fs={fs} len={len} threads={threads}");
                    let mut out = vec![0u8; len];
                    open_all_into(&keys, &header, &par, &mut out, threads).unwrap();
                    assert_eq!(out, pt);
                    if !par.is_empty() {
                        let mut bad = par.clone();
                        let at = bad.len() / 2;
                        bad[at] ^= 1;
                        let mut out = vec![0u8; len];
                        assert!(open_all_into(&keys, &header, &bad, &mut out, threads).is_err());
                    }
                }
            }
        }
    }

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
                let mut w = EncryptWriter::new(Vec::new(), &h, keys, Some(threads), None).unwrap();
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
