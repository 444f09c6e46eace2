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

/// Streaming encryptor: a [`Write`] that emits the header at once and each frame as it fills.
/// Call [`finish`](Self::finish) to write the final frame; a stream dropped without it is
/// truncated, and decryption will say so.
///
/// The plaintext frame buffer is locked memory.
pub struct EncryptWriter<W: Write> {
    /// `None` only after `finish` has taken it.
    inner: Option<W>,
    keys: MessageKeys,
    message_id: [u8; KEY_LEN],
    frame_size: usize,
    buf: SecretBytes,
    index: u64,
}

impl<W: Write> std::fmt::Debug for EncryptWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptWriter")
            .field("frame_index", &self.index)
            .finish_non_exhaustive()
    }
}

impl<W: Write> EncryptWriter<W> {
    pub(crate) fn new(mut inner: W, header: &Header, keys: MessageKeys) -> Result<Self, Error> {
        inner.write_all(&header.to_bytes())?;
        let frame_size = header.frame_size() as usize;
        Ok(EncryptWriter {
            inner: Some(inner),
            keys,
            message_id: *header.message_id(),
            frame_size,
            buf: SecretBytes::with_capacity(frame_size + TAG_LEN)?,
            index: 0,
        })
    }

    fn emit(&mut self, is_final: bool) -> Result<(), Error> {
        let len = self.buf.len();
        let tag = self.keys.cipher.seal(
            &frame_nonce(self.index, is_final),
            &frame_aad(&self.message_id, self.index, is_final),
            &mut self.buf.expose_secret_mut()[..len],
        );
        scrub_stack();
        let tag = tag?;
        self.buf.extend_from_slice(&tag)?;
        self.inner
            .as_mut()
            .ok_or(Error::InvalidArgument("the stream is already finished"))?
            .write_all(self.buf.expose_secret())?;
        self.buf.clear();
        self.index = self
            .index
            .checked_add(1)
            .ok_or(Error::InvalidArgument("too many frames"))?;
        Ok(())
    }

    /// Writes the final frame, flushes, and returns the inner writer.
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
        let room = self.frame_size - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]).map_err(to_io)?;
        if self.buf.len() == self.frame_size {
            // A full frame is never final (the final frame is strictly shorter), so it can go.
            self.emit(false).map_err(to_io)?;
        }
        Ok(n)
    }

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

/// Streaming decryptor: a [`Read`] that releases only verified frames, holding one frame in
/// locked memory. Errors surface as `io::Error` of kind `InvalidData` wrapping a
/// [`kmseal::Error`](crate::Error) (use `into_inner` and downcast to inspect); after an error
/// every further read fails.
pub struct DecryptReader<R: Read> {
    inner: R,
    keys: MessageKeys,
    message_id: [u8; KEY_LEN],
    frame_size: usize,
    buf: SecretBytes,
    pos: usize,
    end: usize,
    index: u64,
    state: ReadState,
}

impl<R: Read> std::fmt::Debug for DecryptReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptReader")
            .field("frame_index", &self.index)
            .finish_non_exhaustive()
    }
}

impl<R: Read> DecryptReader<R> {
    pub(crate) fn new(inner: R, header: &Header, keys: MessageKeys) -> Result<Self, Error> {
        let frame_size = header.frame_size() as usize;
        let mut buf = SecretBytes::with_capacity(frame_size + TAG_LEN)?;
        buf.resize(frame_size + TAG_LEN)?;
        Ok(DecryptReader {
            inner,
            keys,
            message_id: *header.message_id(),
            frame_size,
            buf,
            pos: 0,
            end: 0,
            index: 0,
            state: ReadState::Frames,
        })
    }

    /// Reads and verifies the next frame into the buffer.
    fn next_frame(&mut self) -> Result<(), Error> {
        let full = self.frame_size + TAG_LEN;
        let mut got = 0;
        {
            let buf = self.buf.expose_secret_mut();
            while got < full {
                match self.inner.read(&mut buf[got..full]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::Io(e)),
                }
            }
        }
        if got < TAG_LEN {
            return Err(Error::Truncated("the stream ends before its final frame"));
        }
        let is_final = got < full;
        let ct_len = got - TAG_LEN;
        let buf = self.buf.expose_secret_mut();
        let (ct, rest) = buf.split_at_mut(ct_len);
        let tag: [u8; TAG_LEN] = rest[..TAG_LEN].try_into().map_err(|_| Error::Decrypt)?;
        let opened = self.keys.cipher.open(
            &frame_nonce(self.index, is_final),
            &frame_aad(&self.message_id, self.index, is_final),
            ct,
            &tag,
        );
        scrub_stack();
        if let Err(e) = opened {
            ct.fill(0);
            return Err(e);
        }
        self.pos = 0;
        self.end = ct_len;
        self.index = self.index.checked_add(1).ok_or(Error::Decrypt)?;
        if is_final {
            self.state = ReadState::Done;
        }
        Ok(())
    }

    /// Returns the inner reader (positioned after the message if it was read to the end).
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
                    if let Err(e) = self.next_frame() {
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
}
