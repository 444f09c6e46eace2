//! Random access (`Decryptor::open_range`): exact bytes for every range boundary around frame
//! edges, only the covering frames (and the final one) read, tampering and truncation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Cursor, Read, Seek, SeekFrom};

use crate::common::*;
use kmseal::{Error, Header, Limits, Suite};

/// A source that counts the bytes read from it.
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

fn range(
    msg: &[u8],
    k: &std::sync::Arc<kmseal::LocalKek>,
    r: std::ops::Range<u64>,
) -> Result<Vec<u8>, Error> {
    decryptor(k)
        .open_range_blocking(&mut Cursor::new(msg), r)
        .map(|p| p.expose_secret().to_vec())
}

#[test]
fn every_range_around_frame_edges_gives_exactly_its_bytes() {
    let k = kek();
    for suite in Suite::ALL {
        for fs in [16u32, 100] {
            let f = u64::from(fs);
            for len in [0u64, 1, f - 1, f, f + 1, 3 * f, 3 * f + 7] {
                let pt: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let msg = encrypt(&k, suite, fs, &pt);
                let mut points: Vec<u64> = [0, 1, f - 1, f, f + 1, 2 * f - 1, 2 * f, 2 * f + 1]
                    .into_iter()
                    .chain([len.saturating_sub(1), len])
                    .filter(|&p| p <= len)
                    .collect();
                points.sort_unstable();
                points.dedup();
                for &a in &points {
                    for &b in points.iter().filter(|&&b| b >= a) {
                        let got = range(&msg, &k, a..b)
                            .unwrap_or_else(|e| panic!("{suite} fs={fs} len={len} {a}..{b}: {e}"));
                        assert_eq!(
                            got,
                            pt[a as usize..b as usize],
                            "{suite} fs={fs} len={len} {a}..{b}"
                        );
                    }
                }
                let e = range(&msg, &k, 0..len + 1).unwrap_err();
                assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
                // The other range forms.
                let dec = decryptor(&k);
                let mid = len / 2;
                let cursor = || Cursor::new(&msg);
                let bytes = |p: kmseal::SecretBytes| p.expose_secret().to_vec();
                let (m, l) = (mid as usize, len as usize);
                assert_eq!(
                    bytes(dec.open_range_blocking(&mut cursor(), mid..).unwrap()),
                    pt[m..]
                );
                assert_eq!(
                    bytes(dec.open_range_blocking(&mut cursor(), ..mid).unwrap()),
                    pt[..m]
                );
                assert_eq!(
                    bytes(dec.open_range_blocking(&mut cursor(), ..).unwrap()),
                    pt
                );
                if len > 0 {
                    let got = dec
                        .open_range_blocking(&mut cursor(), mid..=len - 1)
                        .unwrap();
                    assert_eq!(bytes(got), pt[m..l]);
                }
            }
        }
    }
}

#[test]
fn only_the_covering_frames_and_the_final_one_are_read() {
    let k = kek();
    let fs = 1000u32;
    let pt: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    let msg = encrypt(&k, Suite::Aes256Gcm, fs, &pt);
    let header = Header::parse(&msg, &Limits::default()).unwrap().1 as u64;
    let mut src = Counting {
        inner: Cursor::new(&msg),
        read: 0,
    };
    let got = decryptor(&k)
        .open_range_blocking(&mut src, 50_500..50_510)
        .unwrap();
    assert_eq!(got.expose_secret(), &pt[50_500..50_510]);
    // The header, one frame for the range, and the final (empty) frame's tag.
    assert_eq!(src.read, header + 1016 + 16, "bytes read of {}", msg.len());
}

#[test]
fn tampering_in_the_range_or_the_final_frame_is_refused_elsewhere_unread() {
    let k = kek();
    let fs = 16u32;
    let pt: Vec<u8> = (0..100u8).collect(); // frames 0..=5 full, frame 6 final (4 bytes)
    let msg = encrypt(&k, Suite::ChaCha20Poly1305, fs, &pt);
    let body = Header::parse(&msg, &Limits::default()).unwrap().1;
    let frame = |i: usize| body + i * 32;
    let flip = |at: usize| {
        let mut m = msg.clone();
        m[at] ^= 1;
        m
    };
    // In a frame the range covers: refused, nothing returned.
    let e = range(&flip(frame(2) + 3), &k, 40..50).unwrap_err();
    assert!(matches!(e, Error::Decrypt), "{e}");
    // In the final frame: refused whatever the range (it authenticates the length).
    let e = range(&flip(frame(6) + 1), &k, 0..10).unwrap_err();
    assert!(matches!(e, Error::Decrypt), "{e}");
    // In a frame neither covered nor final: not read, so the range still opens.
    assert_eq!(range(&flip(frame(4) + 3), &k, 0..10).unwrap(), pt[0..10]);
    // The header: refused before any frame.
    assert!(range(&flip(20), &k, 0..10).is_err());
}

#[test]
fn truncated_extended_and_signed_objects_are_refused() {
    let k = kek();
    let pt: Vec<u8> = (0..100u8).collect();
    let msg = encrypt(&k, Suite::Aes256Gcm, 16, &pt);
    // Every truncation: an error, or (cut to a whole shorter message shape) an error from the
    // final frame, never bytes.
    for cut in 0..msg.len() {
        assert!(range(&msg[..cut], &k, 0..1).is_err(), "cut at {cut}");
    }
    let mut longer = msg.clone();
    longer.push(0);
    assert!(range(&longer, &k, 0..1).is_err());
    // A whole frame removed from the middle: the length looks right, the final frame does not
    // verify at its new index.
    let body = Header::parse(&msg, &Limits::default()).unwrap().1;
    let mut shorter = msg[..body + 32].to_vec();
    shorter.extend_from_slice(&msg[body + 64..]);
    assert!(matches!(
        range(&shorter, &k, 0..10).unwrap_err(),
        Error::Decrypt
    ));
    let (ten, five) = (10, 5);
    let e = range(&msg, &k, ten..five).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");

    let signed = kmseal::Encryptor::new(k.clone() as std::sync::Arc<dyn kmseal::Kek>)
        .context("app", "test")
        .unwrap()
        .signed(true)
        .encrypt_blocking(&pt)
        .unwrap();
    let e = range(&signed, &k, 0..10).unwrap_err();
    assert!(e.to_string().contains("signed"), "{e}");
}

#[test]
fn garbage_and_bit_flips_never_panic() {
    let k = kek();
    let pt: Vec<u8> = (0..40u8).collect();
    let msg = encrypt(&k, Suite::Aes256Gcm, 16, &pt);
    for i in 0..msg.len() {
        for bit in [0, 3, 7] {
            let mut m = msg.clone();
            m[i] ^= 1 << bit;
            if let Ok(got) = range(&m, &k, 0..40) {
                // A flip the range does not depend on can only be in nothing it read: but the
                // range covers everything here, so any success must be the right bytes.
                assert_eq!(got, pt, "flip {i}/{bit}");
            }
        }
    }
    for garbage in [&b""[..], b"KMSL", &[0u8; 100], &[0xff; 300]] {
        assert!(range(garbage, &k, 0..1).is_err());
    }
}

/// `open_range_with` over a "ranged GET" of `object`, counting the requests and bytes.
fn fetched(
    object: &[u8],
    k: &std::sync::Arc<kmseal::LocalKek>,
    r: std::ops::Range<u64>,
) -> (Result<Vec<u8>, Error>, usize, usize) {
    let calls = std::cell::Cell::new(0usize);
    let bytes = std::cell::Cell::new(0usize);
    let fetch = |offset: u64, len: usize| {
        calls.set(calls.get() + 1);
        let start = offset as usize;
        let got = object[start.min(object.len())..(start + len).min(object.len())].to_vec();
        bytes.set(bytes.get() + got.len());
        async move { Ok::<_, std::io::Error>(got) }
    };
    let out =
        kmseal::blocking::block_on(decryptor(k).open_range_with(object.len() as u64, fetch, r))
            .map(|p| p.expose_secret().to_vec());
    (out, calls.get(), bytes.get())
}

#[test]
fn ranged_gets_fetch_a_header_prefix_the_final_frame_and_the_covering_frames() {
    let k = kek();
    let pt: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let msg = encrypt(&k, Suite::Aes256Gcm, 1000, &pt);
    for (a, b) in [
        (0u64, 0u64),
        (0, 1),
        (999, 1001),
        (50_500, 50_510),
        (99_990, 100_000),
    ] {
        let (got, calls, bytes) = fetched(&msg, &k, a..b);
        assert_eq!(got.unwrap(), pt[a as usize..b as usize], "{a}..{b}");
        // A 4 KiB prefix for the header, the final frame, and (for a non-empty range) one
        // request for its frames.
        assert_eq!(calls, if a == b { 2 } else { 3 }, "{a}..{b}");
        assert!(bytes <= 4096 + 1016 + 2 * 1016, "{a}..{b}: {bytes} bytes");
    }
    // A fetch that comes back short (the object shrank) and one that fails.
    let short = |offset: u64, len: usize| {
        let got = msg[offset as usize..(offset as usize + len).min(msg.len())].to_vec();
        async move { Ok::<_, std::io::Error>(got[..got.len().saturating_sub(1)].to_vec()) }
    };
    let e =
        kmseal::blocking::block_on(decryptor(&k).open_range_with(msg.len() as u64, short, 0..10))
            .unwrap_err();
    assert!(matches!(e, Error::Truncated(_)), "{e}");
    let failing =
        |_: u64, _: usize| async { Err::<Vec<u8>, _>(std::io::Error::other("503 from the store")) };
    let e =
        kmseal::blocking::block_on(decryptor(&k).open_range_with(msg.len() as u64, failing, 0..10))
            .unwrap_err();
    assert!(matches!(e, Error::Io(_)), "{e}");
    // An object length that disagrees with the object: refused.
    let (got, _, _) = fetched(&msg[..msg.len() - 1], &k, 0..10);
    assert!(got.is_err());
}

#[test]
fn a_header_larger_than_the_first_prefix_is_fetched_in_full() {
    let k = kek();
    // A context of about 10 KiB makes the header larger than the 4 KiB first prefix.
    let mut enc = kmseal::Encryptor::new(k.clone() as std::sync::Arc<dyn kmseal::Kek>)
        .context("app", "test")
        .unwrap();
    for i in 0..40 {
        enc = enc.context(format!("k{i}"), "v".repeat(250)).unwrap();
    }
    let pt: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    let msg = enc.encrypt_blocking(&pt).unwrap();
    assert!(Header::parse(&msg, &Limits::default()).unwrap().1 > 4096);
    let (got, calls, _) = fetched(&msg, &k, 10..20);
    assert_eq!(got.unwrap(), pt[10..20]);
    assert!(calls >= 4, "the prefix grew: {calls} requests");
}
