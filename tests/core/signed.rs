//! Signed suites (audit finding 4): round trips one-shot and streamed, every bit flip and
//! truncation refused, nothing of a bad final batch released, unsigned messages refused
//! before any KMS call when signatures are required, rewrap keeping the signature, and no
//! data-key sharing through a cache. The co-recipient forgeries are frozen vectors
//! (`tests/data/fail_signed_*`, built in `src/vectors.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::common::Counting;
use kmseal::rotate::{Outcome, Rotator};
use kmseal::{
    CacheLimits, Decryptor, EncryptCache, Encryptor, Error, Header, Limits, LocalKek,
    SIGNING_KEY_CONTEXT, Suite,
};

fn stream_open(dec: &Decryptor, msg: &[u8]) -> Result<Vec<u8>, std::io::Error> {
    let mut r = dec
        .reader_blocking(msg)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn signed_messages_round_trip_one_shot_and_streamed() {
    let kek = Arc::new(LocalKek::generate().unwrap());
    let dec = Decryptor::new(kek.clone()).require_signed(true);
    for suite in Suite::ALL {
        for threads in [1, 4] {
            let enc = Encryptor::new(kek.clone())
                .signed(true)
                .suite(suite)
                .frame_size(kmseal::FrameSize::new(1000).unwrap())
                .threads(threads)
                .context("app", "billing")
                .unwrap();
            for len in [0, 1, 999, 1000, 1001, 5000, 600_000] {
                let pt: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
                let sealed = enc.encrypt_blocking(&pt).unwrap();
                let (h, _) = Header::parse(&sealed, &Limits::default()).unwrap();
                assert!(h.is_signed());
                assert!(h.context().get(SIGNING_KEY_CONTEXT).is_some());
                assert_eq!(h.context().get("app"), Some("billing"));
                assert_eq!(
                    dec.decrypt_blocking(&sealed).unwrap().expose_secret(),
                    &pt[..]
                );
                assert_eq!(stream_open(&dec, &sealed).unwrap(), pt, "{suite} {len}");
                // The streaming writer produces a message of the same shape that opens too.
                let mut w = enc.writer_blocking(Vec::new()).unwrap();
                for chunk in pt.chunks(777) {
                    w.write_all(chunk).unwrap();
                }
                let streamed = w.finish().unwrap();
                assert_eq!(streamed.len(), sealed.len());
                assert_eq!(
                    dec.decrypt_blocking(&streamed).unwrap().expose_secret(),
                    &pt[..]
                );
                assert_eq!(stream_open(&dec, &streamed).unwrap(), pt);
            }
        }
    }
}

#[test]
fn every_bit_flip_and_truncation_of_a_signed_message_fails() {
    let kek = Arc::new(LocalKek::generate().unwrap());
    let enc = Encryptor::new(kek.clone())
        .signed(true)
        .frame_size(kmseal::FrameSize::new(16).unwrap());
    let msg = enc
        .encrypt_blocking(b"forty bytes of signed plaintext, two frames")
        .unwrap();
    let dec = Decryptor::new(kek);
    assert!(dec.decrypt_blocking(&msg).is_ok());
    let (_, head) = Header::parse(&msg, &Limits::default()).unwrap();
    for i in 0..msg.len() {
        for bit in [0x01, 0x80] {
            let mut bad = msg.clone();
            bad[i] ^= bit;
            let one_shot = dec.decrypt_blocking(&bad);
            let streamed = stream_open(&dec, &bad);
            // Flips in the wrapped-key section only change which key is tried; every other
            // flip must fail.
            if one_shot.is_ok() || streamed.is_ok() {
                panic!("a flip of bit {bit:#x} at byte {i} (header {head} bytes) was accepted");
            }
        }
    }
    for len in 0..msg.len() {
        assert!(dec.decrypt_blocking(&msg[..len]).is_err(), "{len}");
        assert!(stream_open(&dec, &msg[..len]).is_err(), "{len}");
    }
    assert!(dec.decrypt_blocking(&[&msg[..], b"x"].concat()).is_err());
    assert!(stream_open(&dec, &[&msg[..], b"x"].concat()).is_err());
}

#[test]
fn a_stream_never_releases_its_final_batch_before_the_signature_verified() {
    let kek = Arc::new(LocalKek::generate().unwrap());
    let mut msg = Encryptor::new(kek.clone())
        .signed(true)
        .encrypt_blocking(b"one frame, a bad signature")
        .unwrap();
    let last = msg.len() - 1;
    msg[last] ^= 1;
    let mut r = Decryptor::new(kek).reader_blocking(&msg[..]).unwrap();
    let mut buf = [0u8; 4096];
    let err = r.read(&mut buf).unwrap_err();
    let inner = err.into_inner().unwrap().downcast::<Error>().unwrap();
    assert!(matches!(*inner, Error::Decrypt), "{inner}");
    assert!(
        buf.iter().all(|&b| b == 0),
        "plaintext of an unverified stream reached the caller"
    );
    assert!(r.read(&mut buf).is_err(), "the reader must stay failed");
}

#[test]
fn unsigned_messages_are_refused_before_any_kms_call_when_signatures_are_required() {
    let kek = Counting::new();
    let unsigned = Encryptor::new(kek.clone()).encrypt_blocking(b"x").unwrap();
    let dec = Decryptor::new(kek.clone()).require_signed(true);
    assert!(matches!(
        dec.decrypt_blocking(&unsigned),
        Err(Error::Unsigned)
    ));
    assert!(matches!(
        dec.reader_blocking(&unsigned[..]).map(|_| ()),
        Err(Error::Unsigned)
    ));
    assert_eq!(kek.unwraps.load(Ordering::SeqCst), 0);
    // Without the requirement, unsigned messages open as before.
    Decryptor::new(kek.clone())
        .decrypt_blocking(&unsigned)
        .unwrap();
}

#[test]
fn the_signing_key_context_entry_is_reserved() {
    let kek = Arc::new(LocalKek::generate().unwrap());
    let enc = Encryptor::new(kek)
        .context(SIGNING_KEY_CONTEXT, "AAAA")
        .unwrap();
    assert!(matches!(
        enc.encrypt_blocking(b"x"),
        Err(Error::InvalidContext(_))
    ));
    assert!(matches!(
        enc.signed(true).encrypt_blocking(b"x"),
        Err(Error::InvalidContext(_))
    ));
}

#[test]
fn signed_messages_get_a_fresh_data_key_each_even_with_a_cache() {
    let kek = Counting::new();
    let enc = Encryptor::new(kek.clone())
        .signed(true)
        .cache(EncryptCache::new(CacheLimits::default()));
    for _ in 0..5 {
        enc.encrypt_blocking(b"record").unwrap();
    }
    // The public key is part of what the KEK wraps under, so no two messages share a wrap.
    assert_eq!(kek.wraps.load(Ordering::SeqCst), 5);
}

#[test]
fn rewrap_keeps_the_signature_and_reencrypt_signs_anew() {
    let (old, new) = (Counting::new(), Counting::new());
    let sealed = Encryptor::new(old.clone())
        .signed(true)
        .context("app", "x")
        .unwrap()
        .encrypt_blocking(b"rotate me")
        .unwrap();
    let dec_new = Decryptor::new(new.clone()).require_signed(true);
    let Outcome::Rotated(rewrapped) =
        Rotator::rewrap(Decryptor::new(old.clone()), vec![new.clone()])
            .rotate_message_blocking(&sealed)
            .unwrap()
    else {
        panic!("not rotated")
    };
    assert_eq!(rewrapped.len() - sealed.len(), {
        let (a, _) = Header::parse(&rewrapped, &Limits::default()).unwrap();
        let (b, _) = Header::parse(&sealed, &Limits::default()).unwrap();
        a.encoded_len() - b.encoded_len()
    });
    assert_eq!(
        dec_new
            .decrypt_blocking(&rewrapped)
            .unwrap()
            .expose_secret(),
        b"rotate me"
    );
    let Outcome::Rotated(reencrypted) =
        Rotator::reencrypt(Decryptor::new(old.clone()), vec![new.clone()])
            .rotate_message_blocking(&sealed)
            .unwrap()
    else {
        panic!("not rotated")
    };
    let (h_old, _) = Header::parse(&sealed, &Limits::default()).unwrap();
    let (h_new, _) = Header::parse(&reencrypted, &Limits::default()).unwrap();
    assert!(h_new.is_signed());
    assert_eq!(h_new.context().get("app"), Some("x"));
    assert_ne!(
        h_new.context().get(SIGNING_KEY_CONTEXT),
        h_old.context().get(SIGNING_KEY_CONTEXT),
        "re-encryption signs with a new key"
    );
    assert_eq!(
        dec_new
            .decrypt_blocking(&reencrypted)
            .unwrap()
            .expose_secret(),
        b"rotate me"
    );
}

/// An inner reader that returns at most `chunk` bytes per read.
struct Trickle<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.chunk.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn the_held_back_trailer_is_exact_whatever_the_inner_read_sizes() {
    let kek = Arc::new(LocalKek::generate().unwrap());
    let enc = Encryptor::new(kek.clone())
        .signed(true)
        .frame_size(kmseal::FrameSize::new(100).unwrap());
    for threads in [1, 3] {
        let dec = Decryptor::new(kek.clone()).threads(threads);
        for len in [0, 1, 99, 100, 101, 1000, 30_000] {
            let pt: Vec<u8> = (0..len).map(|i| (i * 11) as u8).collect();
            let msg = enc.encrypt_blocking(&pt).unwrap();
            let mut bad = msg.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            for chunk in [1, 2, 65, 66, 67, 100, 116, 131, 4096] {
                let read = |m: &[u8]| {
                    let mut r = dec.reader_blocking(Trickle { data: m, chunk }).unwrap();
                    let mut out = Vec::new();
                    r.read_to_end(&mut out).map(|_| out)
                };
                assert_eq!(read(&msg).unwrap(), pt, "len {len} chunk {chunk}");
                assert!(read(&bad).is_err(), "len {len} chunk {chunk}");
                assert!(
                    read(&msg[..msg.len() - 1]).is_err(),
                    "len {len} chunk {chunk}"
                );
            }
        }
    }
}
