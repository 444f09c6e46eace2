//! Streams with batched frames on several threads: they round-trip with every other path, and
//! a reader releases exactly what a frame-by-frame reader would (the frames before the first
//! bad one) before failing, whatever the batch and thread count.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::sync::Arc;

use crate::common::*;
use kmseal::{Decryptor, Encryptor, Error, Kek, Suite};

const FS: usize = 4096;
const SLOT: usize = FS + 16;

/// Long enough that the batches grow to their largest (doubling from one frame: 512 frames
/// of 4 KiB on two cores, 1 MiB per worker) and a full-size batch goes parallel.
fn long_len() -> usize {
    (4 << 20) + 123
}

pub(crate) fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761) as u8)
        .collect()
}

fn encryptor(k: &Arc<kmseal::LocalKek>, suite: Suite, threads: usize) -> Encryptor {
    Encryptor::new(k.clone() as Arc<dyn Kek>)
        .suite(suite)
        .frame_size(kmseal::FrameSize::new(FS as u32).unwrap())
        .threads(threads)
}

fn write_stream(enc: &Encryptor, pt: &[u8], chunk: usize) -> Vec<u8> {
    let mut w = enc.writer_blocking(Vec::new()).unwrap();
    for c in pt.chunks(chunk) {
        w.write_all(c).unwrap();
    }
    w.finish().unwrap()
}

/// Reads until the end or the first error: what was released, and the error if any.
pub(crate) fn read_stream(dec: &Decryptor, msg: &[u8], chunk: usize) -> (Vec<u8>, Option<Error>) {
    let mut r = dec.reader_blocking(msg).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => {
                let inner = e.into_inner().expect("a kmseal error inside");
                let err = *inner.downcast::<Error>().expect("kmseal::Error");
                // Sticky: the next read fails too.
                assert!(r.read(&mut buf).is_err());
                return (out, Some(err));
            }
        }
    }
}

#[test]
fn batched_streams_round_trip_with_every_other_path() {
    let k = kek();
    let pt = pattern(long_len());
    for suite in Suite::ALL {
        for threads in [1, 2] {
            let enc = encryptor(&k, suite, threads);
            // Small writes go through the locked buffer, large ones are sealed in place from
            // the caller's slice, and 65543 mixes both.
            let streamed = write_stream(&enc, &pt, 65536 + 7);
            let whole = write_stream(&enc, &pt, usize::MAX);
            let small = write_stream(&enc, &pt, 1000);
            let one_shot = enc.encrypt_blocking(&pt).unwrap();
            assert_eq!(streamed.len(), one_shot.len());
            for msg in [&streamed, &whole, &small, &one_shot] {
                let whole = Decryptor::new(k.clone() as Arc<dyn Kek>)
                    .threads(threads)
                    .decrypt_blocking(msg)
                    .unwrap();
                assert!(
                    whole.expose_secret() == &pt[..],
                    "{suite} threads={threads}"
                );
                // Reads of whole frames go straight to the caller's buffer, smaller ones
                // through the locked buffer.
                for (reader_threads, chunk) in [(1, 100_003), (2, 100_003), (2, 1000)] {
                    let dec = Decryptor::new(k.clone() as Arc<dyn Kek>).threads(reader_threads);
                    let (out, err) = read_stream(&dec, msg, chunk);
                    assert!(err.is_none(), "{err:?}");
                    assert!(
                        out == pt,
                        "{suite} threads={threads}/{reader_threads} {chunk}"
                    );
                }
            }
        }
    }
}

#[test]
fn exact_multiples_and_tiny_streams_survive_batching() {
    let k = kek();
    for len in [0, 1, FS - 1, FS, FS + 1, 64 * FS, 300 * FS] {
        let pt = pattern(len);
        let enc = encryptor(&k, Suite::Aes256Gcm, 2);
        let msg = write_stream(&enc, &pt, 1000);
        let dec = Decryptor::new(k.clone() as Arc<dyn Kek>).threads(2);
        let (out, err) = read_stream(&dec, &msg, 4096);
        assert!(err.is_none(), "len={len}: {err:?}");
        assert!(out == pt, "len={len}");
    }
}

#[test]
fn a_bad_frame_releases_exactly_the_frames_before_it() {
    let k = kek();
    let pt = pattern(long_len());
    let msg = encryptor(&k, Suite::ChaCha20Poly1305, 2)
        .encrypt_blocking(&pt)
        .unwrap();
    let head = msg.len() - (pt.len() / FS) * SLOT - (pt.len() % FS + 16);
    let frames = pt.len() / FS + 1;
    let dec = Decryptor::new(k.clone() as Arc<dyn Kek>).threads(2);
    // First frame, inside the first batches, deep inside a large batch, the final frame.
    for bad in [0, 1, 5, 200, frames / 2, frames - 2, frames - 1] {
        let mut m = msg.clone();
        m[head + bad * SLOT + 9] ^= 0x40;
        for chunk in [65536, 1000] {
            let (out, err) = read_stream(&dec, &m, chunk);
            assert!(matches!(err, Some(Error::Decrypt)), "frame {bad}: {err:?}");
            assert_eq!(out.len(), bad * FS, "frame {bad}");
            assert!(out == pt[..bad * FS], "frame {bad}");
        }
    }
}

#[test]
fn a_truncated_stream_releases_its_whole_frames_then_fails() {
    let k = kek();
    let pt = pattern(long_len());
    let msg = encryptor(&k, Suite::Aes256Gcm, 2)
        .encrypt_blocking(&pt)
        .unwrap();
    let head = msg.len() - (pt.len() / FS) * SLOT - (pt.len() % FS + 16);
    let frames = pt.len() / FS + 1;
    let dec = Decryptor::new(k.clone() as Arc<dyn Kek>).threads(2);
    for cut_frames in [0, 1, 3, 255, 256, frames / 2, frames - 1] {
        // At a frame boundary: every whole frame verifies, then the final one is missing.
        let (out, err) = read_stream(&dec, &msg[..head + cut_frames * SLOT], 65536);
        assert!(
            matches!(err, Some(Error::Truncated(_))),
            "{cut_frames}: {err:?}"
        );
        assert!(out == pt[..cut_frames * FS], "{cut_frames}");
        let (out, err) = read_stream(&dec, &msg[..head + cut_frames * SLOT], 999);
        assert!(
            matches!(err, Some(Error::Truncated(_))),
            "{cut_frames}: {err:?}"
        );
        assert!(out == pt[..cut_frames * FS], "{cut_frames}");
        // Mid-frame: the frames before verify; the stub is too short or fails as final.
        for into in [5, 100] {
            let (out, err) = read_stream(&dec, &msg[..head + cut_frames * SLOT + into], 65536);
            assert!(
                matches!(err, Some(Error::Truncated(_) | Error::Decrypt)),
                "{cut_frames}+{into}: {err:?}"
            );
            assert!(out == pt[..cut_frames * FS], "{cut_frames}+{into}");
        }
    }
    // Trailing garbage makes the final frame longer: it fails, the frames before it are out.
    let mut long = msg.clone();
    long.extend_from_slice(b"trailing");
    let (out, err) = read_stream(&dec, &long, 65536);
    assert!(err.is_some());
    assert!(out == pt[..(frames - 1) * FS]);
}
