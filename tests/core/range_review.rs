//! Regression tests from an adversarial review of random access (`open_range`,
//! `open_range_with`): hostile object lengths, header limits, splicing, bounds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Cursor, Read, Seek, SeekFrom};
use std::ops::Bound;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use kmseal::{
    CacheLimits, Decryptor, EncryptCache, Encryptor, Error, FrameSize, Header, Kek, Limits,
    LocalKek, Suite,
};

fn kek() -> Arc<LocalKek> {
    Arc::new(LocalKek::generate().unwrap())
}

fn enc(k: &Arc<LocalKek>, fs: u32) -> Encryptor {
    Encryptor::new(k.clone() as Arc<dyn Kek>)
        .suite(Suite::Aes256Gcm)
        .frame_size(FrameSize::new(fs).unwrap())
}

fn dec(k: &Arc<LocalKek>) -> Decryptor {
    Decryptor::new(k.clone() as Arc<dyn Kek>)
}

fn header_len(msg: &[u8]) -> u64 {
    Header::parse(msg, &Limits::default()).unwrap().1 as u64
}

/// A fetch over `object`, answering reads past its end with what exists (short).
fn fetch_over(
    object: Vec<u8>,
) -> impl FnMut(u64, usize) -> std::future::Ready<std::io::Result<Vec<u8>>> {
    move |offset: u64, len: usize| {
        let n = object.len() as u64;
        let a = offset.min(n) as usize;
        let b = (offset.saturating_add(len as u64)).min(n) as usize;
        std::future::ready(Ok(object[a..b].to_vec()))
    }
}

/// A fetch over `object` followed by zeros (an object that is as long as it is said to be).
fn fetch_padded(
    object: Vec<u8>,
) -> impl FnMut(u64, usize) -> std::future::Ready<std::io::Result<Vec<u8>>> {
    move |offset: u64, len: usize| {
        let mut out = vec![0u8; len];
        let n = object.len() as u64;
        if offset < n {
            let a = offset as usize;
            let b = (offset.saturating_add(len as u64)).min(n) as usize;
            out[..b - a].copy_from_slice(&object[a..b]);
        }
        std::future::ready(Ok(out))
    }
}

/// A frame size for which `object_len = u64::MAX` gives a well-shaped body (final frame of
/// at least 16 bytes) whose `(final_index + 1) * (frame_size + 16)` does not fit in a u64.
fn overflowing_frame_size(h: u64) -> u32 {
    (1000u32..5000)
        .find(|&fs| {
            let full = u64::from(fs) + 16;
            let body = u64::MAX - h;
            let r = body % full;
            r >= 16 && (body / full + 1).checked_mul(full).is_none()
        })
        .unwrap()
}

// ---- Finding 1: an object length near u64::MAX panics (overflow in FrameRun::read). ----

#[test]
fn f1_object_len_near_u64_max_is_an_error_not_a_panic() {
    let k = kek();
    let probe = enc(&k, 1000).encrypt_blocking(b"x").unwrap();
    let h = header_len(&probe); // the header's length does not depend on the frame size
    let fs = overflowing_frame_size(h);
    let msg = enc(&k, fs).encrypt_blocking(&[7u8; 100]).unwrap();
    assert_eq!(header_len(&msg), h);
    let result = catch_unwind(AssertUnwindSafe(|| {
        kmseal::blocking::block_on(dec(&k).open_range_with(u64::MAX, fetch_padded(msg), 0..10))
    }));
    match result {
        Ok(r) => assert!(r.is_err(), "a lying object length must be an error"),
        Err(_) => panic!("open_range_with panicked on object_len = u64::MAX (fs {fs})"),
    }
}

/// A Read + Seek whose end is at u64::MAX (a sparse or virtual source).
struct HugeEnd {
    inner: Cursor<Vec<u8>>,
}
impl Read for HugeEnd {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}
impl Seek for HugeEnd {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        match pos {
            SeekFrom::End(0) => Ok(u64::MAX),
            p => self.inner.seek(p),
        }
    }
}

#[test]
fn f1b_seekable_source_ending_at_u64_max_is_an_error_not_a_panic() {
    let k = kek();
    let probe = enc(&k, 1000).encrypt_blocking(b"x").unwrap();
    let fs = overflowing_frame_size(header_len(&probe));
    let msg = enc(&k, fs).encrypt_blocking(&[7u8; 100]).unwrap();
    let mut src = HugeEnd {
        inner: Cursor::new(msg),
    };
    let result = catch_unwind(AssertUnwindSafe(|| {
        dec(&k).open_range_blocking(&mut src, 0..10)
    }));
    match result {
        Ok(r) => assert!(r.is_err()),
        Err(_) => panic!("open_range panicked on a source whose end is u64::MAX"),
    }
}

// ---- Finding 2: max_header_bytes = usize::MAX: panic (debug) / endless fetch loop (release). ----

#[test]
fn f2_header_prefix_growth_terminates_with_an_unlimited_header_limit() {
    let k = kek();
    // A header over 4 KiB, so the first prefix does not hold it and the prefix must grow.
    let mut e = enc(&k, 4096);
    for i in 0..40 {
        e = e.context(format!("k{i}"), "v".repeat(250)).unwrap();
    }
    let pt = vec![1u8; 5000];
    let msg = e.encrypt_blocking(&pt).unwrap();
    assert!(header_len(&msg) > 4096);
    let limits = Limits {
        max_header_bytes: usize::MAX, // "no limit": Header::parse and decrypt accept this
        ..Limits::default()
    };
    let d = dec(&k).limits(limits);
    // The whole-message path is fine with this configuration.
    assert_eq!(d.decrypt_blocking(&msg).unwrap().expose_secret(), &pt[..]);

    let calls = std::cell::Cell::new(0u32);
    let len = msg.len() as u64;
    let mut inner = fetch_over(msg);
    let fetch = |offset: u64, n: usize| {
        calls.set(calls.get() + 1);
        if calls.get() > 50 {
            // Stop a runaway loop (release builds: `limit + 1` wraps to 0, want stays 0).
            return std::future::ready(Err(std::io::Error::other("runaway")));
        }
        inner(offset, n)
    };
    let result = catch_unwind(AssertUnwindSafe(|| {
        kmseal::blocking::block_on(d.open_range_with(len, fetch, 10..20))
    }));
    match result {
        Ok(r) => {
            assert!(
                calls.get() <= 50,
                "the header prefix loop did not terminate"
            );
            assert_eq!(r.unwrap().expose_secret(), &pt[10..20]);
        }
        Err(_) => panic!("open_range_with panicked with max_header_bytes = usize::MAX"),
    }
}

// ---- Areas checked and found clean (these pass). ----

#[test]
fn clean_splice_from_another_message_under_the_same_data_key_is_refused() {
    let k = kek();
    let cache = EncryptCache::new(CacheLimits::default());
    let e = enc(&k, 16).cache(cache);
    let a = e.encrypt_blocking(&[0xaa; 100]).unwrap();
    let b = e.encrypt_blocking(&[0xbb; 100]).unwrap();
    let h = header_len(&a) as usize;
    // Same wrapped key (one data key), different message ids.
    assert_eq!(
        Header::parse(&a, &Limits::default())
            .unwrap()
            .0
            .wrapped_keys(),
        Header::parse(&b, &Limits::default())
            .unwrap()
            .0
            .wrapped_keys()
    );
    let mut spliced = a.clone();
    spliced[h + 32..h + 64].copy_from_slice(&b[h + 32..h + 64]); // frame 1 from b
    let e = dec(&k)
        .open_range_blocking(&mut Cursor::new(&spliced), 16..32)
        .unwrap_err();
    assert!(matches!(e, Error::Decrypt), "{e}");
    // The final frame from b.
    let mut spliced = a.clone();
    let n = spliced.len();
    spliced[n - 20..].copy_from_slice(&b[n - 20..]);
    assert!(
        dec(&k)
            .open_range_blocking(&mut Cursor::new(&spliced), 0..1)
            .is_err()
    );
}

#[test]
fn clean_frame_moved_to_another_index_is_refused() {
    let k = kek();
    let pt: Vec<u8> = (0..100u8).collect();
    let m = enc(&k, 16).encrypt_blocking(&pt).unwrap();
    let h = header_len(&m) as usize;
    let mut swapped = m.clone();
    let (f1, f2) = (m[h + 32..h + 64].to_vec(), m[h + 64..h + 96].to_vec());
    swapped[h + 32..h + 64].copy_from_slice(&f2);
    swapped[h + 64..h + 96].copy_from_slice(&f1);
    for r in [16u64..32, 32..48, 20..40] {
        assert!(
            dec(&k)
                .open_range_blocking(&mut Cursor::new(&swapped), r.clone())
                .is_err(),
            "{r:?}"
        );
    }
}

#[test]
fn clean_bounds_edge_cases() {
    let k = kek();
    let pt: Vec<u8> = (0..50u8).collect();
    let m = enc(&k, 16).encrypt_blocking(&pt).unwrap();
    let d = dec(&k);
    let open = |r: (Bound<u64>, Bound<u64>)| {
        d.open_range_blocking(&mut Cursor::new(&m), r)
            .map(|p| p.expose_secret().to_vec())
    };
    use Bound::*;
    assert_eq!(open((Excluded(9), Included(19))).unwrap(), pt[10..20]);
    assert_eq!(open((Excluded(48), Unbounded)).unwrap(), pt[49..]);
    assert_eq!(open((Excluded(49), Unbounded)).unwrap(), b"");
    assert!(open((Excluded(50), Unbounded)).is_err());
    assert!(open((Excluded(u64::MAX), Unbounded)).is_err());
    assert!(open((Included(0), Included(u64::MAX))).is_err());
    assert!(open((Included(u64::MAX), Unbounded)).is_err());
    assert!(open((Included(50), Excluded(50))).unwrap().is_empty());
    assert!(open((Included(51), Excluded(51))).is_err());
    assert!(open((Unbounded, Included(49))).unwrap() == pt);
    assert!(open((Unbounded, Included(50))).is_err());
}

#[test]
fn clean_frame_size_one_and_empty_message() {
    let k = kek();
    let pt: Vec<u8> = (0..40u8).collect();
    let m = enc(&k, 1).encrypt_blocking(&pt).unwrap();
    for a in 0..=40u64 {
        for b in a..=40 {
            let got = dec(&k)
                .open_range_blocking(&mut Cursor::new(&m), a..b)
                .unwrap();
            assert_eq!(got.expose_secret(), &pt[a as usize..b as usize]);
        }
    }
    let empty = enc(&k, 1).encrypt_blocking(b"").unwrap();
    assert!(
        dec(&k)
            .open_range_blocking(&mut Cursor::new(&empty), ..)
            .unwrap()
            .is_empty()
    );
    assert!(
        dec(&k)
            .open_range_blocking(&mut Cursor::new(&empty), 0..1)
            .is_err()
    );
}

#[test]
fn clean_object_len_lie_allocates_at_most_a_frame_before_failing() {
    let k = kek();
    let m = enc(&k, 4096).encrypt_blocking(&[3u8; 100_000]).unwrap();
    for lie in [1u64 << 40, (1 << 40) + 7, u64::MAX / 2, m.len() as u64 * 3] {
        let biggest = std::cell::Cell::new(0usize);
        let mut inner = fetch_over(m.clone());
        let fetch = |o: u64, n: usize| {
            biggest.set(biggest.get().max(n));
            inner(o, n)
        };
        let r = kmseal::blocking::block_on(dec(&k).open_range_with(lie, fetch, ..));
        assert!(r.is_err(), "{lie}");
        assert!(
            biggest.get() <= 4096 + 16,
            "{lie}: asked for {}",
            biggest.get()
        );
    }
    // Smaller than the header.
    for lie in [0u64, 1, 6, 100] {
        let r = kmseal::blocking::block_on(dec(&k).open_range_with(lie, fetch_over(m.clone()), ..));
        assert!(r.is_err(), "{lie}");
    }
}

#[test]
fn clean_object_swapped_between_fetches_is_refused() {
    // The final frame from one object, the covering run from another (same key, same length).
    let k = kek();
    let e = enc(&k, 16).cache(EncryptCache::new(CacheLimits::default()));
    let a = e.encrypt_blocking(&[0xaa; 100]).unwrap();
    let b = e.encrypt_blocking(&[0xbb; 100]).unwrap();
    let calls = std::cell::Cell::new(0);
    let (mut fa, mut fb) = (fetch_over(a.clone()), fetch_over(b));
    let fetch = |o: u64, n: usize| {
        calls.set(calls.get() + 1);
        if calls.get() >= 3 { fb(o, n) } else { fa(o, n) }
    };
    let r = kmseal::blocking::block_on(dec(&k).open_range_with(a.len() as u64, fetch, 0..20));
    assert!(matches!(r.unwrap_err(), Error::Decrypt));
}

#[test]
fn clean_signed_policy_and_require_signed() {
    let k = kek();
    let m = enc(&k, 16).encrypt_blocking(&[1u8; 50]).unwrap();
    let e = dec(&k)
        .require_signed(true)
        .open_range_blocking(&mut Cursor::new(&m), 0..1)
        .unwrap_err();
    assert!(matches!(e, Error::Unsigned), "{e}");
    let s = enc(&k, 16)
        .signed(true)
        .encrypt_blocking(&[1u8; 50])
        .unwrap();
    assert!(
        dec(&k)
            .open_range_blocking(&mut Cursor::new(&s), 0..1)
            .is_err()
    );
}
