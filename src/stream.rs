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
use crate::suite::{KEY_LEN, MessageKeys, TAG_LEN, frame_aad, frame_nonce, scrub_stack};

/// Most worker threads one message uses when the caller sets no limit.
pub(crate) const DEFAULT_MAX_THREADS: usize = 16;

/// Worker threads for a one-shot message of `len` bytes in `frames` frames: as many as give
/// each worker at least [`PayloadCipher::min_bytes_per_thread`] (spawning a thread costs
/// ~25 µs here), at most the machine's parallelism, at most `max` (the caller's limit, or
/// [`DEFAULT_MAX_THREADS`]) and at most one per frame.
fn threads_for(
    cipher: &crate::suite::PayloadCipher,
    len: usize,
    frames: usize,
    max: Option<usize>,
) -> usize {
    let by_size = len / cipher.min_bytes_per_thread();
    let max = max.unwrap_or(DEFAULT_MAX_THREADS);
    cores().min(frames).min(max).min(by_size).max(1)
}

/// The machine's available parallelism, read once: `available_parallelism` reads cgroup
/// files on Linux (~24 µs here), too slow to ask per message.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Runs `job` over `items` split into `threads` contiguous groups (the first group on the
/// calling thread), scrubbing each worker's stack afterwards; the first error wins.
fn in_parallel<T: Send>(
    items: Vec<T>,
    threads: usize,
    job: impl Fn(T) -> Result<(), Error> + Sync,
) -> Result<(), Error> {
    let per = items.len().div_ceil(threads.max(1));
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
    let mut groups = groups.into_iter();
    let first = groups.next();
    std::thread::scope(|scope| {
        let handles: Vec<_> = groups.map(|g| scope.spawn(|| run(g))).collect();
        let mine = first.map_or(Ok(()), &run);
        let theirs = handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or(Err(Error::InvalidArgument("a frame worker panicked")))
        });
        mine.and(theirs)
    })
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
        threads_for(&keys.cipher, plaintext.len(), frames, max_threads),
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
    let fs = frame_size as usize;
    let expected = crate::format::body_len(plaintext.len() as u64, frame_size);
    if expected != Some(body.len() as u64) {
        return Err(Error::InvalidArgument(
            "output buffer does not match the message size",
        ));
    }
    let pts = plaintext.chunks_exact(fs);
    let last = pts.remainder();
    let mut rest = body;
    // Each job: frame index, plaintext, and the exact slice its ciphertext and tag go to.
    let jobs = (0u64..)
        .zip(pts.chain(std::iter::once(last)))
        .map(move |(index, pt)| {
            let (dst, tail) = std::mem::take(&mut rest).split_at_mut(pt.len() + TAG_LEN);
            rest = tail;
            (index, pt, dst)
        });
    let seal = |(index, pt, dst): (u64, &[u8], &mut [u8])| -> Result<(), Error> {
        let is_final = pt.len() < fs;
        let (ct, tag_out) = dst.split_at_mut(pt.len());
        let tag = keys.cipher.seal_into(
            &frame_nonce(index, is_final),
            &frame_aad(message_id, index, is_final),
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
        .ok_or(Error::Truncated("the body does not end with a final frame"))
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
                threads_for(&keys.cipher, len, frames, max_threads),
            )
        });
    if result.is_err() {
        out.clear();
    }
    result
}

/// Opens every frame of `body` into `plain` (sized by `plaintext_len`), on `threads` threads.
pub(crate) fn open_all_into(
    keys: &MessageKeys,
    header: &Header,
    body: &[u8],
    plain: &mut [u8],
    threads: usize,
) -> Result<(), Error> {
    let fs = header.frame_size();
    let full = fs as usize + TAG_LEN;
    if threads > 1 {
        let mut work: Vec<(u64, &[u8], &mut [u8])> = Vec::new();
        let mut rest = &mut plain[..];
        for (index, frame) in (0u64..).zip(body.chunks(full)) {
            let n = frame.len().checked_sub(TAG_LEN).ok_or(Error::Decrypt)?;
            if n > rest.len() {
                return Err(Error::Decrypt);
            }
            let (dst, tail) = rest.split_at_mut(n);
            rest = tail;
            work.push((index, frame, dst));
        }
        return in_parallel(work, threads, |(index, frame, dst)| {
            let is_final = frame.len() < full;
            let (ct, tag) = frame.split_at(frame.len() - TAG_LEN);
            let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Error::Decrypt)?;
            keys.cipher.open_into(
                &frame_nonce(index, is_final),
                &frame_aad(header.message_id(), index, is_final),
                ct,
                dst,
                tag,
            )
        });
    }
    let mut pos = 0usize;
    for (index, frame) in (0u64..).zip(body.chunks(full)) {
        let is_final = frame.len() < full;
        let (ct, tag) = frame.split_at(frame.len() - TAG_LEN);
        let dst = &mut plain[pos..pos + ct.len()];
        let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Error::Decrypt)?;
        keys.cipher.open_into(
            &frame_nonce(index, is_final),
            &frame_aad(header.message_id(), index, is_final),
            ct,
            dst,
            tag,
        )?;
        pos += ct.len();
    }
    // `plaintext_len` guaranteed the last chunk is a short (final) frame.
    Ok(())
}

/// Most plaintext one stream holds for its frame batch (read-ahead when decrypting, frames
/// awaiting encryption when encrypting): peak memory of a stream stays bounded whatever the
/// input size or core count.
pub(crate) const STREAM_BATCH_MAX: usize = 8 << 20;

/// Frames a stream batches so that its `max_threads` workers each get a worthwhile share
/// (see [`threads_for`]); 1 (one frame at a time, no read-ahead) on one thread.
fn stream_batch(
    cipher: &crate::suite::PayloadCipher,
    frame_size: usize,
    max_threads: Option<usize>,
) -> usize {
    let threads = cores().min(max_threads.unwrap_or(DEFAULT_MAX_THREADS));
    if threads <= 1 {
        return 1;
    }
    let per_worker = cipher.min_bytes_per_thread().div_ceil(frame_size).max(1);
    let cap = (STREAM_BATCH_MAX / (frame_size + TAG_LEN)).max(1);
    threads.saturating_mul(per_worker).min(cap)
}

/// Grows a stream's batch after each full batch, doubling up to its limit `max`: a short
/// stream never pays for (or locks) a large buffer. `buf` holds nothing the caller still needs
/// (it is overwritten, not copied). If the larger buffer cannot be had (a strict lock policy
/// over `RLIMIT_MEMLOCK`) the batch stays as it is: slower, never failing where a one-frame
/// stream would not.
fn grow_batch(buf: &mut SecretBytes, batch: &mut usize, max: usize, slot: usize) {
    if *batch < max {
        let next = (*batch * 2).min(max);
        if buf.set_len_for_overwrite(next * slot).is_ok() {
            *batch = next;
        }
    }
}

/// Streaming encryptor: a [`Write`] that emits the header at once and frames as they fill.
/// Call [`finish`](Self::finish) to write the final frame; a stream dropped without it is
/// truncated, and decryption will say so.
///
/// Plaintext waits in locked memory until its frame is sealed. With more than one thread
/// allowed ([`Encryptor::threads`](crate::Encryptor::threads), default: all cores) full
/// frames are gathered into batches (at most 8 MiB) and sealed on several threads; on one
/// thread each frame is sealed and written as soon as it is full. The output is the same.
pub struct EncryptWriter<W: Write> {
    /// `None` only after `finish` has taken it.
    inner: Option<W>,
    keys: MessageKeys,
    message_id: [u8; KEY_LEN],
    frame_size: usize,
    max_threads: Option<usize>,
    /// `batch` slots of `frame_size + TAG_LEN` bytes: plaintext, sealed in place. The batch
    /// starts at one frame and doubles up to `max_batch`.
    buf: SecretBytes,
    batch: usize,
    max_batch: usize,
    /// Complete frames in the batch, and bytes in the slot after them.
    full: usize,
    fill: usize,
    /// Index of the first frame of the batch.
    index: u64,
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
    ) -> Result<Self, Error> {
        inner.write_all(&header.to_bytes())?;
        let frame_size = header.frame_size() as usize;
        let max_batch = stream_batch(&keys.cipher, frame_size, max_threads);
        let buf = SecretBytes::zeroed(frame_size + TAG_LEN)?;
        Ok(EncryptWriter {
            inner: Some(inner),
            keys,
            message_id: *header.message_id(),
            frame_size,
            max_threads,
            buf,
            batch: 1,
            max_batch,
            full: 0,
            fill: 0,
            index: 0,
        })
    }

    /// Seals the batch's complete frames (and, when `with_final`, the partial slot as the
    /// final frame), possibly on several threads, and writes them.
    fn emit(&mut self, with_final: bool) -> Result<(), Error> {
        let inner = self
            .inner
            .as_mut()
            .ok_or(Error::InvalidArgument("the stream is already finished"))?;
        let (fs, slot) = (self.frame_size, self.frame_size + TAG_LEN);
        let frames = self.full + usize::from(with_final);
        let used = self.full * slot + if with_final { self.fill + TAG_LEN } else { 0 };
        let plain = self.full * fs + if with_final { self.fill } else { 0 };
        let (keys, message_id, first) = (&self.keys, &self.message_id, self.index);
        let jobs: Vec<(u64, &mut [u8])> = (first..)
            .zip(self.buf.expose_secret_mut()[..used].chunks_mut(slot))
            .collect();
        let seal = |(index, frame): (u64, &mut [u8])| -> Result<(), Error> {
            let (pt, tag_out) = frame.split_at_mut(frame.len() - TAG_LEN);
            let is_final = pt.len() < fs;
            let tag = keys.cipher.seal(
                &frame_nonce(index, is_final),
                &frame_aad(message_id, index, is_final),
                pt,
            )?;
            tag_out.copy_from_slice(&tag);
            Ok(())
        };
        let threads = threads_for(&keys.cipher, plain, frames, self.max_threads);
        if threads > 1 {
            in_parallel(jobs, threads, seal)?;
        } else {
            let r = jobs.into_iter().try_for_each(seal);
            scrub_stack();
            r?;
        }
        inner.write_all(&self.buf.expose_secret()[..used])?;
        self.index = self
            .index
            .checked_add(frames as u64)
            .ok_or(Error::InvalidArgument("too many frames"))?;
        self.full = 0;
        self.fill = 0;
        Ok(())
    }

    /// Writes the final frame (with any frames still batched), flushes, and returns the
    /// inner writer.
    pub fn finish(mut self) -> Result<W, Error> {
        self.emit(true)?;
        let mut inner = self
            .inner
            .take()
            .ok_or(Error::InvalidArgument("the stream is already finished"))?;
        inner.flush()?;
        Ok(inner)
    }
}

impl<W: Write> Drop for EncryptWriter<W> {
    fn drop(&mut self) {
        if self.inner.is_some() {
            tracing::warn!(
                frames_written = self.index,
                "kmseal: EncryptWriter dropped without finish(); the output has no final frame \
                 and will fail to decrypt as truncated"
            );
        }
    }
}

fn to_io(e: Error) -> io::Error {
    match e {
        Error::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.inner.is_none() {
            return Err(to_io(Error::InvalidArgument(
                "the stream is already finished",
            )));
        }
        let start = self.full * (self.frame_size + TAG_LEN) + self.fill;
        let n = (self.frame_size - self.fill).min(data.len());
        self.buf.expose_secret_mut()[start..start + n].copy_from_slice(&data[..n]);
        self.fill += n;
        if self.fill == self.frame_size {
            // A full frame is never final (the final frame is strictly shorter), so once the
            // batch is full it can go.
            self.full += 1;
            self.fill = 0;
            if self.full == self.batch {
                self.emit(false).map_err(to_io)?;
                let slot = self.frame_size + TAG_LEN;
                grow_batch(&mut self.buf, &mut self.batch, self.max_batch, slot);
            }
        }
        Ok(n)
    }

    /// Flushes the inner writer. Frames still batched stay in locked memory until the batch
    /// fills or [`finish`](Self::finish): a partial frame cannot be sealed early.
    fn flush(&mut self) -> io::Result<()> {
        match self.inner.as_mut() {
            Some(inner) => inner.flush(),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    Frames,
    Done,
    Failed,
}

/// Streaming decryptor: a [`Read`] that releases only verified frames, reading ahead into
/// locked memory. With one thread ([`Decryptor::threads`](crate::Decryptor::threads)) it
/// holds and verifies one frame at a time; with more it reads a batch of frames ahead (at
/// most 8 MiB) and verifies and decrypts them on several threads. Either way it releases
/// exactly the frames a frame-by-frame reader would: those before the first one that fails.
/// Errors surface as `io::Error` of kind `InvalidData` wrapping a
/// [`kmseal::Error`](crate::Error) (use `into_inner` and downcast to inspect); after an error
/// every further read fails.
pub struct DecryptReader<R: Read> {
    inner: R,
    keys: MessageKeys,
    message_id: [u8; KEY_LEN],
    frame_size: usize,
    max_threads: Option<usize>,
    /// `batch` frames of `frame_size + TAG_LEN` bytes, decrypted in place. The batch starts
    /// at one frame and doubles up to `max_batch`.
    buf: SecretBytes,
    batch: usize,
    max_batch: usize,
    /// Plaintext ranges of `buf` not yet handed out, the current one first (reversed).
    spans: Vec<(usize, usize)>,
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
        let max_batch = stream_batch(&keys.cipher, frame_size, max_threads);
        let buf = SecretBytes::zeroed(frame_size + TAG_LEN)?;
        Ok(DecryptReader {
            inner,
            keys,
            message_id: *header.message_id(),
            frame_size,
            max_threads,
            buf,
            batch: 1,
            max_batch,
            spans: Vec::new(),
            index: 0,
            state: ReadState::Frames,
            pending: None,
        })
    }

    /// Reads up to a batch of frames, verifies and decrypts them, and queues the plaintext
    /// of the frames before the first one that failed (exactly what a frame-by-frame reader
    /// would have released); that failure, or a truncation, is reported once they are read.
    /// Everything from the failed frame on is wiped.
    fn next_batch(&mut self) -> Result<(), Error> {
        let full = self.frame_size + TAG_LEN;
        if self.index > 0 {
            // The stream goes on past a full batch: read further ahead next time.
            grow_batch(&mut self.buf, &mut self.batch, self.max_batch, full);
        }
        let cap = self.batch * full;
        let mut got = 0;
        {
            let buf = self.buf.expose_secret_mut();
            while got < cap {
                match self.inner.read(&mut buf[got..cap]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::Io(e)),
                }
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
        let frames = body.div_ceil(full);
        let first_bad = std::sync::atomic::AtomicUsize::new(frames);
        let (keys, message_id, first) = (&self.keys, &self.message_id, self.index);
        let jobs: Vec<(usize, &mut [u8])> = self.buf.expose_secret_mut()[..body]
            .chunks_mut(full)
            .enumerate()
            .collect();
        let open = |(k, frame): (usize, &mut [u8])| -> Result<(), Error> {
            let index = first + k as u64;
            let is_final = frame.len() < full;
            let (ct, tag) = frame.split_at_mut(frame.len() - TAG_LEN);
            let opened = <&[u8; TAG_LEN]>::try_from(&*tag)
                .map_err(|_| Error::Decrypt)
                .and_then(|tag| {
                    keys.cipher.open(
                        &frame_nonce(index, is_final),
                        &frame_aad(message_id, index, is_final),
                        ct,
                        tag,
                    )
                });
            if opened.is_err() {
                ct.fill(0);
                first_bad.fetch_min(k, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        };
        let plain = body - frames * TAG_LEN;
        let threads = threads_for(&keys.cipher, plain, frames, self.max_threads);
        if threads > 1 {
            in_parallel(jobs, threads, open)?;
        } else {
            let r = jobs.into_iter().try_for_each(open);
            scrub_stack();
            r?;
        }
        let good = first_bad.into_inner();
        if good < frames {
            // Frames after the failed one verified, but a sequential reader would never have
            // reached them: withhold and wipe them.
            zeroize::Zeroize::zeroize(&mut self.buf.expose_secret_mut()[good * full..body]);
            pending = Some(Error::Decrypt);
        }
        self.spans.clear();
        for i in (0..good).rev() {
            let start = i * full;
            let len = (body - start).min(full) - TAG_LEN;
            self.spans.push((start, start + len));
        }
        self.index = self.index.checked_add(good as u64).ok_or(Error::Decrypt)?;
        match pending {
            Some(e) => self.pending = Some(e),
            None if at_end => self.state = ReadState::Done,
            None => {}
        }
        Ok(())
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
            if let Some(&(pos, end)) = self.spans.last() {
                let n = (end - pos).min(out.len());
                out[..n].copy_from_slice(&self.buf.expose_secret()[pos..pos + n]);
                if pos + n == end {
                    self.spans.pop();
                } else if let Some(span) = self.spans.last_mut() {
                    span.0 += n;
                }
                if n > 0 || out.is_empty() {
                    return Ok(n);
                }
                // An empty span (the empty final frame): look further.
                continue;
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
                    if let Err(e) = self.next_batch() {
                        self.state = ReadState::Failed;
                        return Err(to_io(e));
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
                let header =
                    Header::seal(&keys, suite, fs, id, EncryptionContext::new(), wrapped).unwrap();
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
        // Batches double from one frame to their largest (1,050 frames of 1000 bytes for
        // 512 KiB per worker on two threads; 4,196 for aws-lc's AES-GCM at 2 MiB), and then
        // at least one full batch is sealed on several threads.
        let len = match crate::Backend::current() {
            crate::Backend::AwsLc => 13_000_123,
            crate::Backend::RustCrypto => 3_300_123usize,
        };
        let pt: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        for suite in Suite::ALL {
            let header = |keys: &MessageKeys| {
                let wrapped = vec![crate::kek::WrappedKey {
                    provider: "local".into(),
                    key_id: "k".into(),
                    ciphertext: vec![1],
                }];
                Header::seal(keys, suite, fs, id, EncryptionContext::new(), wrapped).unwrap()
            };
            let mut outputs = Vec::new();
            for threads in [1, 2, 5] {
                let keys = MessageKeys::derive(&dek, &id, suite);
                let h = header(&keys);
                let mut w = EncryptWriter::new(Vec::new(), &h, keys, Some(threads)).unwrap();
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
