//! The tokio adapters (feature `tokio`) keep the blocking streams' guarantees: they round-trip
//! with every other path (signed and unsigned, every suite, slow and bursty sources and
//! sinks), and on tampered, truncated or extended input the async reader releases exactly
//! what the blocking reader releases and fails with the same error; a writer whose sink
//! fails is poisoned, and one dropped unfinished leaves a stream that decrypts as truncated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::common::*;
use crate::parallel_streams::{pattern, read_stream};
use kmseal::{Decryptor, Encryptor, Error, FrameSize, Kek, Suite};

const FS: usize = 4096;
const SLOT: usize = FS + 16;

fn rt(multi: bool) -> tokio::runtime::Runtime {
    if multi {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }
}

fn encryptor(k: &Arc<kmseal::LocalKek>, suite: Suite, signed: bool) -> Encryptor {
    Encryptor::new(k.clone() as Arc<dyn Kek>)
        .suite(suite)
        .signed(signed)
        .frame_size(FrameSize::new(FS as u32).unwrap())
}

/// A source that hands out at most `step` bytes per read and says "not yet" every other poll.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    step: usize,
    stall: bool,
}

impl Trickle {
    fn new(data: &[u8], step: usize) -> Trickle {
        Trickle {
            data: data.to_vec(),
            pos: 0,
            step,
            stall: false,
        }
    }
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.stall = !self.stall;
        if self.stall {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let n = self
            .step
            .min(buf.remaining())
            .min(self.data.len() - self.pos);
        let at = self.pos;
        buf.put_slice(&self.data[at..at + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// A sink that takes at most `step` bytes per write, stalls every other poll, and fails
/// once `fail_after` bytes were written.
struct Sink {
    data: Vec<u8>,
    step: usize,
    stall: bool,
    fail_after: usize,
}

impl Sink {
    fn new(step: usize) -> Sink {
        Sink {
            data: Vec::new(),
            step,
            stall: false,
            fail_after: usize::MAX,
        }
    }
}

impl AsyncWrite for Sink {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stall = !self.stall;
        if self.stall {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if self.data.len() >= self.fail_after {
            return Poll::Ready(Err(io::Error::other("disk full")));
        }
        let n = buf
            .len()
            .min(self.step)
            .min(self.fail_after - self.data.len());
        self.data.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Reads an async reader to its end or first error, `chunk` bytes at a time; checks that an
/// error is sticky.
async fn read_async<R: AsyncRead + Unpin>(
    r: &mut kmseal::AsyncDecryptReader<R>,
    chunk: usize,
) -> (Vec<u8>, Option<Error>) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        match r.read(&mut buf).await {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => {
                let inner = e.into_inner().expect("a kmseal error inside");
                let err = *inner.downcast::<Error>().expect("kmseal::Error");
                assert!(r.read(&mut buf).await.is_err(), "errors are sticky");
                return (out, Some(err));
            }
        }
    }
}

async fn open_async(
    dec: &Decryptor,
    msg: &[u8],
    step: usize,
    chunk: usize,
) -> (Vec<u8>, Option<Error>) {
    match dec.async_reader(Trickle::new(msg, step)).await {
        Ok(mut r) => read_async(&mut r, chunk).await,
        Err(e) => (Vec::new(), Some(e)),
    }
}

async fn write_async(enc: &Encryptor, pt: &[u8], chunk: usize, step: usize) -> Vec<u8> {
    let mut w = enc.async_writer(Sink::new(step)).await.unwrap();
    for c in pt.chunks(chunk.max(1)) {
        w.write_all(c).await.unwrap();
    }
    w.shutdown().await.unwrap();
    w.into_inner().data
}

#[test]
fn async_streams_round_trip_with_the_blocking_ones() {
    let k = kek();
    for len in [0, 1, FS - 1, FS, FS + 1, 300 * FS + 17, (3 << 20) + 5] {
        let pt = pattern(len);
        for suite in Suite::ALL {
            for signed in [false, true] {
                let enc = encryptor(&k, suite, signed);
                let dec = Decryptor::new(k.clone() as Arc<dyn Kek>);
                for multi in [false, true] {
                    let rt = rt(multi);
                    // Async writer (small writes in place, 1 MiB writes on the blocking pool)
                    // → blocking reader.
                    for (chunk, step) in [(1000, 333), (1 << 20, 1 << 20)] {
                        let msg = rt.block_on(write_async(&enc, &pt, chunk, step));
                        let (out, err) = read_stream(&dec, &msg, 65536);
                        assert!(err.is_none(), "len={len} {suite} signed={signed}: {err:?}");
                        assert!(out == pt, "len={len} {suite} signed={signed} chunk={chunk}");
                    }
                    // Blocking writer → async reader, over a trickling source and a fast one,
                    // into small and large buffers.
                    let mut w = enc.writer_blocking(Vec::new()).unwrap();
                    w.write_all(&pt).unwrap();
                    let msg = w.finish().unwrap();
                    // (A 7-byte trickle only for the short ones: it is slow by design.)
                    let trickle = if len < 100_000 { 7 } else { 4099 };
                    for (step, chunk) in [(trickle, 1000), (1 << 20, 1 << 20), (65536, 100)] {
                        let (out, err) = rt.block_on(open_async(&dec, &msg, step, chunk));
                        assert!(err.is_none(), "len={len} {suite} signed={signed}: {err:?}");
                        assert!(out == pt, "len={len} {suite} signed={signed} step={step}");
                    }
                }
            }
        }
    }
}

/// On tampered, truncated and extended input the async reader is the blocking reader: the
/// same plaintext released (only verified frames), the same error.
#[test]
fn bad_input_releases_what_the_blocking_reader_releases() {
    let k = kek();
    let pt = pattern((2 << 20) + 999);
    let frames = pt.len() / FS + 1;
    let rt = rt(true);
    for signed in [false, true] {
        let msg = encryptor(&k, Suite::Aes256Gcm, signed)
            .encrypt_blocking(&pt)
            .unwrap();
        let trailer = if signed { 2 + 64 } else { 0 };
        let body = (frames - 1) * SLOT + pt.len() % FS + 16;
        let head = msg.len() - body - trailer;
        let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
        for bad in [0, 1, 200, frames / 2, frames - 1] {
            let mut m = msg.clone();
            m[head + bad * SLOT + 9] ^= 0x40;
            cases.push((format!("flip in frame {bad}"), m));
        }
        for cut in [
            head,
            head + 1,
            head + SLOT,
            head + 257 * SLOT + 5,
            msg.len() - 1,
        ] {
            cases.push((format!("cut at {cut}"), msg[..cut].to_vec()));
        }
        let mut long = msg.clone();
        long.extend_from_slice(b"trailing");
        cases.push(("trailing bytes".into(), long));
        let mut last = msg.clone();
        *last.last_mut().unwrap() ^= 1;
        cases.push(("last byte flipped".into(), last));
        for (what, m) in &cases {
            let dec = Decryptor::new(k.clone() as Arc<dyn Kek>);
            let (sync_out, sync_err) = read_stream(&dec, m, 65536);
            let sync_err =
                sync_err.unwrap_or_else(|| panic!("{what}: the blocking reader failed to fail"));
            for (step, chunk) in [(1 << 20, 65536), (13, 1000)] {
                let (out, err) = rt.block_on(open_async(&dec, m, step, chunk));
                let err = err.unwrap_or_else(|| panic!("{what}: the async reader did not fail"));
                assert_eq!(
                    std::mem::discriminant(&err),
                    std::mem::discriminant(&sync_err),
                    "signed={signed} {what}: {err:?} vs {sync_err:?}"
                );
                assert!(
                    out.len() <= sync_out.len() && out == sync_out[..out.len()],
                    "signed={signed} {what}: released {} vs {}",
                    out.len(),
                    sync_out.len()
                );
                assert!(out == pt[..out.len()], "{what}: only verified plaintext");
                if !signed {
                    assert_eq!(
                        out.len(),
                        sync_out.len(),
                        "{what}: the same frames released"
                    );
                }
            }
        }
    }
}

#[test]
fn a_failed_sink_poisons_the_writer() {
    let k = kek();
    let pt = pattern(1 << 20);
    rt(true).block_on(async {
        let enc = encryptor(&k, Suite::ChaCha20Poly1305, false);
        let mut sink = Sink::new(1 << 20);
        sink.fail_after = 100_000;
        let mut w = enc.async_writer(sink).await.unwrap();
        let mut failed = false;
        for c in pt.chunks(10_000) {
            if w.write_all(c).await.is_err() {
                failed = true;
                break;
            }
        }
        if !failed {
            assert!(w.shutdown().await.is_err(), "the sink failed");
        }
        assert!(
            w.write_all(b"more").await.is_err(),
            "poisoned: no more writes"
        );
        assert!(w.shutdown().await.is_err(), "poisoned: no final frame");
        assert!(w.flush().await.is_err(), "poisoned: no flush");
    });
}

#[test]
fn an_unfinished_async_writer_leaves_a_truncated_stream() {
    let k = kek();
    let pt = pattern(100_000);
    let rt = rt(false);
    let msg = rt.block_on(async {
        let mut w = encryptor(&k, Suite::Aes256Gcm, false)
            .async_writer(Vec::new())
            .await
            .unwrap();
        w.write_all(&pt).await.unwrap();
        w.flush().await.unwrap(); // whole frames are out; the final one never is
        w.into_inner()
    });
    let dec = Decryptor::new(k.clone() as Arc<dyn Kek>);
    let (out, err) = rt.block_on(open_async(&dec, &msg, 1 << 20, 65536));
    assert!(matches!(err, Some(Error::Truncated(_))), "{err:?}");
    assert!(out == pt[..out.len()] && out.len() < pt.len());
    // finish() is shutdown without closing the sink, and the writer takes no more after it.
    let msg = rt.block_on(async {
        let mut w = encryptor(&k, Suite::Aes256Gcm, false)
            .async_writer(Vec::new())
            .await
            .unwrap();
        w.write_all(&pt).await.unwrap();
        w.finish().await.unwrap()
    });
    let opened = Decryptor::new(k.clone() as Arc<dyn Kek>)
        .decrypt_blocking(&msg)
        .unwrap();
    assert_eq!(opened.expose_secret(), &pt[..]);
}

#[test]
fn the_async_reader_refuses_what_the_blocking_one_refuses_before_any_frame() {
    let k = kek();
    let rt = rt(false);
    let msg = encryptor(&k, Suite::Aes256Gcm, false)
        .encrypt_blocking(b"payload")
        .unwrap();
    // Garbage, a header cut short, a wrong key, a required signature.
    let other = kek();
    let dec = Decryptor::new(k.clone() as Arc<dyn Kek>);
    for (what, m) in [
        ("garbage", b"not a kmseal message at all".to_vec()),
        ("empty", Vec::new()),
        ("header cut", msg[..20].to_vec()),
    ] {
        let r = rt.block_on(dec.async_reader(&m[..]));
        assert!(r.is_err(), "{what}");
    }
    let r = rt.block_on(Decryptor::new(other as Arc<dyn Kek>).async_reader(&msg[..]));
    assert!(r.is_err(), "a KEK that does not open it");
    let r = rt.block_on(dec.clone().require_signed(true).async_reader(&msg[..]));
    assert!(matches!(r, Err(Error::Unsigned)), "{r:?}");
}

/// `Rotator::rotate_async` is `rotate_stream` over tokio streams: a rewrap keeps the frames
/// byte for byte under a new header, a re-encryption makes new frames, both open under the
/// target only, and the selection rules (already current, dry run) hold.
#[test]
fn rotate_async_matches_the_blocking_rotation() {
    use kmseal::rotate::{Outcome, Rotator, Skip};
    let (old, new) = (kek(), kek());
    let pt = pattern((1 << 20) + 4321);
    let rt = rt(true);
    for signed in [false, true] {
        let msg = encryptor(&old, Suite::Aes256Gcm, signed)
            .encrypt_blocking(&pt)
            .unwrap();
        let from = Decryptor::new(old.clone() as Arc<dyn Kek>);
        let to: Vec<Arc<dyn Kek>> = vec![new.clone()];
        let rewrap = Rotator::rewrap(from.clone(), to.clone());
        let reencrypt = Rotator::reencrypt(from.clone(), to.clone());
        for rot in [&rewrap, &reencrypt] {
            let out = rt
                .block_on(rot.rotate_async(Trickle::new(&msg, 5000), Sink::new(3000)))
                .unwrap();
            let Outcome::Rotated(sink) = out else {
                panic!("rotated")
            };
            let rotated = sink.data;
            let opened = Decryptor::new(new.clone() as Arc<dyn Kek>)
                .decrypt_blocking(&rotated)
                .unwrap();
            assert!(
                opened.expose_secret() == &pt[..],
                "signed={signed} {:?}",
                rot.mode()
            );
            assert!(
                from.decrypt_blocking(&rotated).is_err(),
                "the old KEK is gone"
            );
            let (h_old, body_old) = from.parse_header(&msg).unwrap();
            let (h_new, body_new) = from.parse_header(&rotated).unwrap();
            assert_eq!(
                h_old.message_id() == h_new.message_id(),
                rot.mode() == kmseal::rotate::Mode::Rewrap
            );
            if rot.mode() == kmseal::rotate::Mode::Rewrap {
                assert!(
                    body_old == body_new,
                    "a rewrap keeps the frames byte for byte"
                );
                // Already current: skipped, nothing written.
                let again = rt
                    .block_on(
                        Rotator::rewrap(Decryptor::new(new.clone() as Arc<dyn Kek>), to.clone())
                            .rotate_async(&rotated[..], Vec::new()),
                    )
                    .unwrap();
                assert!(matches!(again, Outcome::Skipped(Skip::AlreadyCurrent)));
            }
            let dry = rt
                .block_on(rot.clone().dry_run(true).rotate_async(&msg[..], Vec::new()))
                .unwrap();
            assert!(matches!(dry, Outcome::WouldRotate));
        }
        // A tampered frame: the re-encryption fails rather than seal unverified plaintext.
        let mut bad = msg.clone();
        let at = bad.len() / 2;
        bad[at] ^= 1;
        let r = rt.block_on(reencrypt.rotate_async(&bad[..], Vec::new()));
        assert!(r.is_err(), "signed={signed}");
    }
}
