//! Tokio adapters (feature `tokio`): [`AsyncEncryptWriter`] (an `AsyncWrite`) and
//! [`AsyncDecryptReader`] (an `AsyncRead`), with the guarantees of the blocking
//! [`EncryptWriter`] and [`DecryptReader`] they drive: the same frames byte for byte, only
//! verified frames released, truncation detected, poisoned after an error.
//!
//! Each adapter owns a blocking stream over an in-memory buffer of ciphertext (not secret) and
//! moves bytes between that buffer and the async writer or reader it wraps. Sealing or opening
//! a batch of at least [`OFFLOAD_MIN`] bytes never stalls the executor: on a multi-thread
//! runtime it runs under `block_in_place` (the worker's other tasks move to another worker;
//! the caller's bytes are used where they are), on a current-thread runtime on the blocking
//! pool (the plaintext copied into locked memory first); from there the frame workers take
//! it, as in the blocking streams. Smaller batches run in place. Plaintext the writer holds
//! waits in locked memory, as in the blocking writer.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::JoinHandle;

use crate::envelope::{Decryptor, Encryptor};
use crate::error::Error;
use crate::secret::SecretBytes;
use crate::stream::{DecryptReader, EncryptWriter, to_io};

/// Batches of at least this many bytes are sealed or opened off the executor: under
/// `block_in_place` on a multi-thread runtime (no copy), on the blocking pool on a
/// current-thread runtime (the plaintext copied into locked memory first). Smaller ones run on
/// the calling task (about 30 µs of AES-GCM on one core, below what a hand-off is worth).
pub const OFFLOAD_MIN: usize = 128 << 10;

/// Most plaintext an [`AsyncEncryptWriter`] accepts from one `poll_write`: the caller's bytes
/// are copied into locked memory before they are sealed elsewhere.
const MAX_ACCEPT: usize = 8 << 20;

/// How much ciphertext an [`AsyncDecryptReader`] asks its source for at once.
const READ_CHUNK: usize = 64 << 10;

fn poisoned_error(what: &'static str) -> io::Error {
    to_io(Error::Finished(what))
}

fn join_error(e: tokio::task::JoinError) -> io::Error {
    if e.is_panic() {
        io::Error::other("kmseal: a sealing task panicked")
    } else {
        io::Error::other("kmseal: a sealing task was cancelled (the runtime is shutting down)")
    }
}

/// Polls a blocking-pool task.
fn poll_task<T>(cx: &mut Context<'_>, task: &mut JoinHandle<T>) -> Poll<io::Result<T>> {
    Pin::new(task).poll(cx).map_err(join_error)
}

/// Where a large batch runs.
enum Offload {
    /// A multi-thread runtime: on this thread, after `block_in_place` hands the executor's
    /// other tasks to another worker (no copy of the caller's bytes).
    InPlace,
    /// A current-thread runtime (which cannot do that): on the blocking pool, with a copy.
    Pool(tokio::runtime::Handle),
    /// No runtime: in place.
    None,
}

fn offload() -> Offload {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            Offload::InPlace
        }
        Ok(h) => Offload::Pool(h),
        Err(_) => Offload::None,
    }
}

type Sealer = Box<EncryptWriter<Vec<u8>>>;

enum WriteState {
    /// The blocking writer, ready for the next write.
    Ready(Sealer),
    /// A large write being sealed on the blocking pool (the plaintext copy goes with it, and
    /// comes back wiped for the next one).
    Sealing(JoinHandle<(Sealer, SecretBytes, io::Result<()>)>),
    /// The final frame being sealed on the blocking pool.
    Finishing(JoinHandle<Result<Vec<u8>, Error>>),
    /// Finished: everything is sealed (and waits in `out` until written).
    Finished,
    /// An error happened: the output is incomplete.
    Poisoned,
}

/// Streaming encryptor for tokio: an [`AsyncWrite`] that writes the header, then frames as
/// they fill, to the inner writer. [`shutdown`](AsyncWrite::poll_shutdown) (or
/// [`finish`](Self::finish)) writes the final frame; a stream dropped without it is
/// truncated, and decryption says so. The output is byte for byte what the blocking
/// [`EncryptWriter`] writes for the same header and keys.
///
/// A write that completes a batch of [`OFFLOAD_MIN`] bytes or more is sealed off the executor
/// (see [`OFFLOAD_MIN`]); its ciphertext reaches the inner writer during the
/// next write, flush or shutdown. An error (the inner writer's included) poisons the writer:
/// every later call fails, and the partial output must be discarded.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use kmseal::{Decryptor, Encryptor, LocalKek, SecretBytes};
///
/// let kek = Arc::new(LocalKek::generate()?);
/// let mut w = Encryptor::new(kek.clone()).async_writer(Vec::new()).await?;
/// w.write_all(b"rows of a large export").await?;
/// w.shutdown().await?; // the final frame; without it the stream is truncated
/// let sealed = w.into_inner();
///
/// let mut r = Decryptor::new(kek).async_reader(&sealed[..]).await?;
/// let mut plain = SecretBytes::new();
/// let mut chunk = SecretBytes::zeroed(64 << 10)?;
/// loop {
///     let n = r.read(chunk.expose_secret_mut()).await?;
///     if n == 0 { break }
///     plain.extend_from_slice(&chunk.expose_secret()[..n])?;
/// }
/// assert_eq!(plain.expose_secret(), b"rows of a large export");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct AsyncEncryptWriter<W> {
    inner: W,
    state: WriteState,
    /// Sealed bytes not yet written to `inner`: `out[out_pos..]`.
    out: Vec<u8>,
    out_pos: usize,
    /// Whether the inner writer was shut down.
    closed: bool,
    /// The locked buffer large writes are copied into, between uses (empty).
    spare: Option<SecretBytes>,
}

impl<W> std::fmt::Debug for AsyncEncryptWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            WriteState::Ready(_) => "ready",
            WriteState::Sealing(_) => "sealing",
            WriteState::Finishing(_) => "finishing",
            WriteState::Finished => "finished",
            WriteState::Poisoned => "poisoned",
        };
        f.debug_struct("AsyncEncryptWriter")
            .field("state", &state)
            .field("unwritten", &(self.out.len() - self.out_pos))
            .finish_non_exhaustive()
    }
}

impl<W: AsyncWrite + Unpin> AsyncEncryptWriter<W> {
    fn new(inner: W, sealer: EncryptWriter<Vec<u8>>) -> AsyncEncryptWriter<W> {
        let mut w = AsyncEncryptWriter {
            inner,
            state: WriteState::Ready(Box::new(sealer)),
            out: Vec::new(),
            out_pos: 0,
            closed: false,
            spare: None,
        };
        w.take_sealed(); // the header
        w
    }

    /// The inner writer (after [`shutdown`](AsyncWrite::poll_shutdown) or
    /// [`finish`](Self::finish): the complete message has been written to it).
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// Writes the final frame and flushes, without shutting the inner writer down (a file
    /// that is written on, a socket that carries more), and returns it.
    pub async fn finish(mut self) -> Result<W, Error> {
        std::future::poll_fn(|cx| self.poll_finish(cx))
            .await
            .map_err(crate::stream::from_io)?;
        std::future::poll_fn(|cx| Pin::new(&mut self.inner).poll_flush(cx)).await?;
        Ok(self.inner)
    }

    /// Moves what the blocking writer sealed into `out`.
    fn take_sealed(&mut self) {
        if let WriteState::Ready(w) = &mut self.state
            && let Some(sealed) = w.inner_mut()
            && !sealed.is_empty()
        {
            if self.out_pos == self.out.len() {
                // Swap buffers: no copy, and both allocations are reused.
                self.out.clear();
                self.out_pos = 0;
                std::mem::swap(&mut self.out, sealed);
            } else {
                self.out.extend_from_slice(sealed);
                sealed.clear();
            }
        }
    }

    fn poison<T>(&mut self, e: io::Error) -> Poll<io::Result<T>> {
        self.state = WriteState::Poisoned;
        Poll::Ready(Err(e))
    }

    /// Writes `out` to the inner writer and waits for a seal on the blocking pool: when it
    /// returns ready and ok, the writer is `Ready`, `Finished` or `Poisoned`, and `out` is
    /// written.
    fn poll_settle(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            while self.out_pos < self.out.len() {
                match ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.out_pos..])) {
                    Ok(0) => return self.poison(io::ErrorKind::WriteZero.into()),
                    Ok(n) => self.out_pos += n,
                    Err(e) => return self.poison(e),
                }
            }
            match &mut self.state {
                WriteState::Sealing(task) => {
                    let (w, spare, result) = match ready!(poll_task(cx, task)) {
                        Ok(done) => done,
                        Err(e) => return self.poison(e),
                    };
                    self.state = WriteState::Ready(w);
                    self.spare = Some(spare);
                    if let Err(e) = result {
                        return self.poison(e);
                    }
                    self.take_sealed();
                }
                WriteState::Finishing(task) => {
                    let sealed = match ready!(poll_task(cx, task)) {
                        Ok(Ok(sealed)) => sealed,
                        Ok(Err(e)) => return self.poison(to_io(e)),
                        Err(e) => return self.poison(e),
                    };
                    self.state = WriteState::Finished;
                    self.out.extend_from_slice(&sealed);
                }
                WriteState::Poisoned => {
                    return Poll::Ready(Err(poisoned_error(
                        "this AsyncEncryptWriter failed earlier and its output is incomplete; \
                         start a new message",
                    )));
                }
                WriteState::Ready(_) | WriteState::Finished => {
                    if self.out_pos == self.out.len() {
                        return Poll::Ready(Ok(()));
                    }
                }
            }
        }
    }

    /// Seals the final frame and writes everything sealed to the inner writer.
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_settle(cx))?;
            let WriteState::Ready(w) = std::mem::replace(&mut self.state, WriteState::Poisoned)
            else {
                // Settled and not ready: finished (and written).
                self.state = WriteState::Finished;
                return Poll::Ready(Ok(()));
            };
            let large = w.buffered() >= OFFLOAD_MIN;
            match offload() {
                Offload::Pool(rt) if large => {
                    self.state = WriteState::Finishing(rt.spawn_blocking(move || w.finish()));
                }
                Offload::InPlace if large => match tokio::task::block_in_place(|| w.finish()) {
                    Ok(sealed) => {
                        self.state = WriteState::Finished;
                        self.out.extend_from_slice(&sealed);
                    }
                    Err(e) => return self.poison(to_io(e)),
                },
                _ => match w.finish() {
                    Ok(sealed) => {
                        self.state = WriteState::Finished;
                        self.out.extend_from_slice(&sealed);
                    }
                    Err(e) => return self.poison(to_io(e)),
                },
            }
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for AsyncEncryptWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_settle(cx))?;
        let WriteState::Ready(w) = &mut this.state else {
            return Poll::Ready(Err(poisoned_error(
                "the stream is already finished (shut down)",
            )));
        };
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let large = w.seal_cost(data.len()) >= OFFLOAD_MIN;
        match offload() {
            Offload::InPlace if large => {
                match tokio::task::block_in_place(|| io::Write::write(&mut **w, data)) {
                    Ok(n) => {
                        this.take_sealed();
                        Poll::Ready(Ok(n))
                    }
                    Err(e) => this.poison(e),
                }
            }
            Offload::Pool(rt) if large => {
                // The plaintext goes to the blocking pool in locked memory; the sealed frames
                // come back with the writer and are written by the next call.
                let n = data.len().min(MAX_ACCEPT);
                let mut copy = match this.spare.take() {
                    Some(spare) => spare,
                    None => match SecretBytes::with_capacity_and_policy(n, w.lock_policy()) {
                        Ok(c) => c,
                        Err(e) => return this.poison(to_io(e)),
                    },
                };
                if let Err(e) = copy.extend_from_slice(&data[..n]) {
                    return this.poison(to_io(e));
                }
                let WriteState::Ready(mut w) =
                    std::mem::replace(&mut this.state, WriteState::Poisoned)
                else {
                    return Poll::Ready(Err(io::Error::other("kmseal: writer state lost")));
                };
                this.state = WriteState::Sealing(rt.spawn_blocking(move || {
                    let result = io::Write::write_all(&mut *w, copy.expose_secret());
                    copy.clear(); // wiped here, off the executor
                    (w, copy, result)
                }));
                Poll::Ready(Ok(n))
            }
            _ => match io::Write::write(&mut **w, data) {
                Ok(n) => {
                    this.take_sealed();
                    Poll::Ready(Ok(n))
                }
                Err(e) => this.poison(e),
            },
        }
    }

    /// Writes what is sealed and flushes the inner writer. Plaintext short of a frame stays
    /// in locked memory: a partial frame cannot be sealed early.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_settle(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    /// Seals the final frame, writes everything, and shuts the inner writer down.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closed {
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_finish(cx))?;
        ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
        this.closed = true;
        Poll::Ready(Ok(()))
    }
}

/// The ciphertext an [`AsyncDecryptReader`] has read from its source and not yet handed to
/// its blocking reader: a `Read` that ends only where the source ended.
pub(crate) struct Feed {
    /// Storage, initialised once and reused: `buf[pos..end]` is unread.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// The source has ended: an empty feed is the end of the message.
    eof: bool,
}

impl Feed {
    fn new() -> Feed {
        Feed {
            buf: Vec::new(),
            pos: 0,
            end: 0,
            eof: false,
        }
    }

    fn available(&self) -> usize {
        self.end - self.pos
    }

    /// The bytes read past the header, not yet consumed.
    pub(crate) fn remaining(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// Room for at least `more` bytes after `end`: unread bytes move to the front when that
    /// makes room, the storage grows only when it must (and is never zeroed again).
    fn reserve(&mut self, more: usize) {
        if self.buf.len() - self.end >= more {
            return;
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.buf.len() - self.end < more {
            self.buf.resize(self.end + more, 0);
        }
    }
}

impl io::Read for Feed {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.available().min(out.len());
        if n == 0 && !out.is_empty() && !self.eof {
            // The async reader fills the feed with all a read can take first: reaching here
            // is a bug, and must not pass for the end of the message.
            return Err(io::Error::other("kmseal: the stream's input ran dry"));
        }
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        if self.pos == self.end {
            (self.pos, self.end) = (0, 0);
        }
        Ok(n)
    }
}

type Opener = Box<DecryptReader<Feed>>;

enum ReadState {
    Ready(Opener),
    /// A large batch being verified and decrypted on the blocking pool.
    Opening(JoinHandle<(Opener, io::Result<()>)>),
    Failed,
}

/// Streaming decryptor for tokio: an [`AsyncRead`] that releases only verified frames, like
/// the blocking [`DecryptReader`] it drives (the same frames, the same errors: a tampered
/// frame, a truncated stream, a bad signature). Ciphertext is read ahead from the source up
/// to one batch (at most about 8 MiB); batches of [`OFFLOAD_MIN`] bytes or more are verified
/// off the executor. Errors are `io::Error`s of kind `InvalidData` wrapping a
/// [`kmseal::Error`](crate::Error); after one, every read fails.
pub struct AsyncDecryptReader<R> {
    inner: R,
    state: ReadState,
}

impl<R> std::fmt::Debug for AsyncDecryptReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            ReadState::Ready(_) => "ready",
            ReadState::Opening(_) => "opening",
            ReadState::Failed => "failed",
        };
        f.debug_struct("AsyncDecryptReader")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin> AsyncDecryptReader<R> {
    /// The source (positioned somewhere after what was read: it is read ahead).
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn fail<T>(&mut self, e: io::Error) -> Poll<io::Result<T>> {
        self.state = ReadState::Failed;
        Poll::Ready(Err(e))
    }
}

/// Reads from `inner` into `feed` until it holds `want` bytes or the source ends.
fn poll_fill<R: AsyncRead + Unpin>(
    inner: &mut R,
    feed: &mut Feed,
    want: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while !feed.eof && feed.available() < want {
        feed.reserve((want - feed.available()).max(READ_CHUNK));
        let end = feed.end;
        let mut rb = ReadBuf::new(&mut feed.buf[end..]);
        let polled = Pin::new(&mut *inner).poll_read(cx, &mut rb);
        let got = rb.filled().len();
        feed.end += got;
        match polled {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) if got == 0 => feed.eof = true,
            Poll::Ready(Ok(())) => {}
        }
    }
    Poll::Ready(Ok(()))
}

impl<R: AsyncRead + Unpin> AsyncRead for AsyncDecryptReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                ReadState::Failed => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "kmseal: the stream already failed to decrypt",
                    )));
                }
                ReadState::Opening(task) => {
                    let (r, result) = match ready!(poll_task(cx, task)) {
                        Ok(done) => done,
                        Err(e) => return this.fail(e),
                    };
                    this.state = ReadState::Ready(r);
                    if let Err(e) = result {
                        return this.fail(e);
                    }
                }
                ReadState::Ready(r) => {
                    if buf.remaining() == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    // A large batch runs in place (multi-thread runtime), straight into the
                    // caller's buffer, or on the blocking pool (current-thread runtime) into
                    // the reader's locked buffer; a small one in place.
                    let mode = offload();
                    let out_len = match mode {
                        Offload::Pool(_) => None,
                        _ => Some(buf.remaining()),
                    };
                    let want = r.input_wanted(out_len);
                    let large = want >= OFFLOAD_MIN;
                    if want > 0 {
                        if let Err(e) = ready!(poll_fill(&mut this.inner, r.get_mut(), want, cx)) {
                            return this.fail(e);
                        }
                        if let (Offload::Pool(rt), true) = (&mode, large) {
                            let ReadState::Ready(mut r) =
                                std::mem::replace(&mut this.state, ReadState::Failed)
                            else {
                                return this.fail(io::Error::other("kmseal: reader state lost"));
                            };
                            this.state = ReadState::Opening(rt.spawn_blocking(move || {
                                let result = r.prefetch();
                                (r, result)
                            }));
                            continue;
                        }
                    }
                    let dst = buf.initialize_unfilled();
                    let read = if let (Offload::InPlace, true) = (&mode, large) {
                        tokio::task::block_in_place(|| io::Read::read(&mut **r, dst))
                    } else {
                        io::Read::read(&mut **r, dst)
                    };
                    return match read {
                        Ok(n) => {
                            buf.advance(n);
                            Poll::Ready(Ok(()))
                        }
                        Err(e) => this.fail(e),
                    };
                }
            }
        }
    }
}

impl Encryptor {
    /// A streaming encryptor writing to a tokio `AsyncWrite` (feature `tokio`): the header at
    /// once, frames as they fill; shut it down (or [`finish`](AsyncEncryptWriter::finish) it)
    /// to write the final frame. See [`AsyncEncryptWriter`].
    pub async fn async_writer<W: AsyncWrite + Unpin>(
        &self,
        writer: W,
    ) -> Result<AsyncEncryptWriter<W>, Error> {
        let sealer = self.writer(Vec::new()).await?;
        Ok(AsyncEncryptWriter::new(writer, sealer))
    }
}

impl Decryptor {
    /// Reads the header from a tokio `AsyncRead` (feature `tokio`), unwraps the data key, and
    /// returns a streaming decryptor over the rest. See [`AsyncDecryptReader`].
    pub async fn async_reader<R: AsyncRead + Unpin>(
        &self,
        mut reader: R,
    ) -> Result<AsyncDecryptReader<R>, Error> {
        let (header, feed) = self.read_header_async(&mut reader).await?;
        self.open_header(&header).await?.async_reader(reader, feed)
    }

    /// Reads a header from `reader` under this decryptor's limits: a prefix, grown until the
    /// header parses (at most the limit). Returns it with the bytes read past it.
    pub(crate) async fn read_header_async<R: AsyncRead + Unpin>(
        &self,
        reader: &mut R,
    ) -> Result<(crate::format::Header, Feed), Error> {
        let mut feed = Feed::new();
        let limit = self.configured_limits().max_header_bytes;
        let mut want = 4096usize;
        loop {
            std::future::poll_fn(|cx| poll_fill(reader, &mut feed, want, cx)).await?;
            match self.parse_header(feed.remaining()) {
                Ok((header, rest)) => {
                    feed.pos = feed.end - rest.len();
                    return Ok((header, feed));
                }
                Err(Error::Truncated(_)) if !feed.eof && want <= limit => {
                    want = want.saturating_mul(4).min(limit.saturating_add(1));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl crate::envelope::OpenedHeader<'_> {
    /// An async reader over the body: `feed` holds what was read past the header.
    pub(crate) fn async_reader<R: AsyncRead + Unpin>(
        self,
        inner: R,
        feed: Feed,
    ) -> Result<AsyncDecryptReader<R>, Error> {
        Ok(AsyncDecryptReader {
            inner,
            state: ReadState::Ready(Box::new(self.reader(feed)?)),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::cast_possible_truncation)]
mod tests {
    use super::*;
    use crate::context::EncryptionContext;
    use crate::format::Header;
    use crate::kek::{DataKey, WrappedKey};
    use crate::key_schedule::MessageKeys;
    use crate::secret::LockPolicy;
    use crate::suite::{KEY_LEN, Suite};
    use std::io::Write;
    use tokio::io::AsyncWriteExt;

    fn sealer(suite: Suite, fs: u32, threads: usize) -> EncryptWriter<Vec<u8>> {
        let dek = DataKey::from_bytes(&[9u8; 32]).unwrap();
        let id = [4u8; KEY_LEN];
        let keys = MessageKeys::derive(&dek, &id, suite);
        let wrapped = vec![WrappedKey {
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
        EncryptWriter::new(
            Vec::new(),
            &header,
            keys,
            Some(threads),
            None,
            LockPolicy::BestEffort,
        )
        .unwrap()
    }

    /// The async writer's output is the blocking writer's, byte for byte, whatever the
    /// write sizes (small writes sealed in place, large ones on the blocking pool) and the
    /// runtime flavour.
    #[test]
    fn async_writer_output_is_the_blocking_writers_byte_for_byte() {
        let pt: Vec<u8> = (0..5_000_017usize).map(|i| (i * 31 + 7) as u8).collect();
        for suite in Suite::ALL {
            for fs in [1000u32, 65_536] {
                let mut sync = sealer(suite, fs, 2);
                for c in pt.chunks(4093) {
                    sync.write_all(c).unwrap();
                }
                let expected = sync.finish().unwrap();
                for (chunk, multi) in [
                    (4093, false),
                    (1 << 20, true),
                    (3 << 20, false),
                    (777, true),
                ] {
                    let rt = if multi {
                        tokio::runtime::Builder::new_multi_thread()
                            .worker_threads(2)
                            .build()
                            .unwrap()
                    } else {
                        tokio::runtime::Builder::new_current_thread()
                            .build()
                            .unwrap()
                    };
                    let out = rt.block_on(async {
                        let mut w = AsyncEncryptWriter::new(Vec::new(), sealer(suite, fs, 2));
                        for c in pt.chunks(chunk) {
                            w.write_all(c).await.unwrap();
                        }
                        w.shutdown().await.unwrap();
                        w.into_inner()
                    });
                    assert!(out == expected, "{suite} fs={fs} chunk={chunk}");
                }
                // And with no runtime at all (everything sealed in place).
                let out = crate::blocking::block_on(async {
                    let mut w = AsyncEncryptWriter::new(Vec::new(), sealer(suite, fs, 2));
                    let mut rest = &pt[..];
                    while !rest.is_empty() {
                        let n = std::future::poll_fn(|cx| Pin::new(&mut w).poll_write(cx, rest))
                            .await
                            .unwrap();
                        rest = &rest[n..];
                    }
                    w.finish().await.unwrap()
                });
                assert!(out == expected, "{suite} fs={fs} without a runtime");
            }
        }
    }
}
