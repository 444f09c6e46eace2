//! Keyrings and the data-key caches: limits under concurrency, TTLs, single flight, failures
//! that do not poison, and what each KEK of a keyring can open.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::Counting;
use kmseal::{
    CacheLimits, DecryptCache, Decryptor, EncryptCache, Encryptor, Error, Header, Limits, LocalKek,
};

fn limits(max_messages: u64, max_bytes: u64, max_age: Duration) -> CacheLimits {
    CacheLimits {
        max_age,
        max_messages,
        max_bytes,
        ..CacheLimits::default()
    }
}

/// The wrapped-key bytes of a message: equal for messages sharing a data key (local wraps are
/// randomized, so two wraps of one key differ).
fn wrapped_of(msg: &[u8]) -> Vec<u8> {
    let (h, _) = Header::parse(msg, &Limits::default()).unwrap();
    h.wrapped_keys()[0].ciphertext.clone()
}

#[test]
fn message_limit_is_kept_under_64_concurrent_threads_with_one_wrap_per_key() {
    let kek = Counting::new();
    let cache = EncryptCache::new(limits(10, 1 << 30, Duration::from_secs(600)));
    let enc = Encryptor::new(kek.clone()).cache(cache.clone());
    let messages: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..64)
            .map(|t| {
                let enc = enc.clone();
                s.spawn(move || {
                    (0..10)
                        .map(|i| enc.encrypt_blocking(format!("{t}:{i}").as_bytes()).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(messages.len(), 640);
    // 640 messages at 10 per key: exactly 64 wraps (single flight: no key wrapped twice).
    assert_eq!(kek.wraps.load(Ordering::SeqCst), 64);
    let stats = cache.stats();
    assert_eq!((stats.kms_calls, stats.hits, stats.misses), (64, 576, 64));
    let mut per_key: HashMap<Vec<u8>, u32> = HashMap::new();
    for m in &messages {
        *per_key.entry(wrapped_of(m)).or_default() += 1;
    }
    assert_eq!(per_key.len(), 64);
    assert!(per_key.values().all(|&n| n == 10), "{per_key:?}");
    // Every message has its own id, and all decrypt.
    let ids: std::collections::HashSet<_> = messages
        .iter()
        .map(|m| *Header::parse(m, &Limits::default()).unwrap().0.message_id())
        .collect();
    assert_eq!(ids.len(), 640);
    let dec = Decryptor::new(kek.clone());
    for m in messages.iter().step_by(37) {
        dec.decrypt_blocking(m).unwrap();
    }
}

#[test]
fn byte_and_age_limits_start_new_keys_and_big_messages_get_their_own() {
    let kek = Counting::new();
    let enc = Encryptor::new(kek.clone()).cache(EncryptCache::new(limits(
        1000,
        1000,
        Duration::from_secs(600),
    )));
    let msgs: Vec<_> = (0..10)
        .map(|_| enc.encrypt_blocking(&[7u8; 300]).unwrap())
        .collect();
    // 300-byte messages, 1000 bytes per key: 3 per key, so keys for 3+3+3+1.
    assert_eq!(kek.wraps.load(Ordering::SeqCst), 4);
    assert_eq!(wrapped_of(&msgs[0]), wrapped_of(&msgs[2]));
    assert_ne!(wrapped_of(&msgs[2]), wrapped_of(&msgs[3]));
    // A message above the byte limit gets a key of its own and leaves the cached one alone.
    let big = enc.encrypt_blocking(&[1u8; 1001]).unwrap();
    let after = enc.encrypt_blocking(&[7u8; 10]).unwrap();
    assert_eq!(kek.wraps.load(Ordering::SeqCst), 5);
    assert_ne!(wrapped_of(&big), wrapped_of(&after));
    assert_eq!(wrapped_of(&after), wrapped_of(&msgs[9]));

    let kek = Counting::new();
    let enc = Encryptor::new(kek.clone()).cache(EncryptCache::new(limits(
        1000,
        1 << 30,
        Duration::from_millis(150),
    )));
    enc.encrypt_blocking(b"a").unwrap();
    enc.encrypt_blocking(b"b").unwrap();
    assert_eq!(kek.wraps.load(Ordering::SeqCst), 1);
    std::thread::sleep(Duration::from_millis(200));
    enc.encrypt_blocking(b"c").unwrap();
    assert_eq!(kek.wraps.load(Ordering::SeqCst), 2, "max_age reached");
}

#[test]
fn contexts_and_keyrings_get_separate_cached_keys() {
    let (a, b) = (Counting::new(), Counting::new());
    let cache = EncryptCache::new(CacheLimits::default());
    let one = Encryptor::new(a.clone()).cache(cache.clone());
    let m1 = one
        .clone()
        .context("tenant", "1")
        .unwrap()
        .encrypt_blocking(b"x")
        .unwrap();
    let m2 = one
        .clone()
        .context("tenant", "2")
        .unwrap()
        .encrypt_blocking(b"x")
        .unwrap();
    let m3 = one
        .clone()
        .add_kek(b.clone())
        .encrypt_blocking(b"x")
        .unwrap();
    let m4 = one
        .clone()
        .add_kek(b.clone())
        .encrypt_blocking(b"x")
        .unwrap();
    assert_ne!(wrapped_of(&m1), wrapped_of(&m2));
    assert_ne!(wrapped_of(&m1), wrapped_of(&m3));
    assert_eq!(wrapped_of(&m3), wrapped_of(&m4));
    assert_eq!(cache.stats().entries, 3);
    // Tenant 2's key does not open under tenant 1's expectations.
    let err = Decryptor::new(a.clone())
        .expect_context("tenant", "1")
        .unwrap()
        .decrypt_blocking(&m2)
        .unwrap_err();
    assert!(matches!(err, Error::ContextMismatch { .. }), "{err}");
}

#[test]
fn decrypt_cache_costs_one_unwrap_per_wrapped_key_until_the_ttl() {
    let kek = Counting::new();
    let enc = Encryptor::new(kek.clone()).cache(EncryptCache::new(CacheLimits::default()));
    let msgs: Vec<_> = (0..100)
        .map(|i| {
            enc.encrypt_blocking(format!("record {i}").as_bytes())
                .unwrap()
        })
        .collect();
    let cache = DecryptCache::new(Duration::from_millis(300), 16);
    let dec = Decryptor::new(kek.clone()).cache(cache.clone());
    std::thread::scope(|s| {
        for chunk in msgs.chunks(10) {
            let dec = dec.clone();
            s.spawn(move || {
                for m in chunk {
                    dec.decrypt_blocking(m).unwrap();
                }
            });
        }
    });
    assert_eq!(
        kek.unwraps.load(Ordering::SeqCst),
        1,
        "single flight across threads"
    );
    assert_eq!(cache.stats().hits, 99);
    std::thread::sleep(Duration::from_millis(400));
    let out = dec.decrypt_blocking(&msgs[5]).unwrap();
    assert_eq!(out.expose_secret(), b"record 5");
    assert_eq!(kek.unwraps.load(Ordering::SeqCst), 2, "TTL expired");
    // Without a cache every message costs an unwrap.
    let plain = Decryptor::new(kek.clone());
    for m in &msgs[..10] {
        plain.decrypt_blocking(m).unwrap();
    }
    assert_eq!(kek.unwraps.load(Ordering::SeqCst), 12);
}

#[test]
fn a_failing_kek_does_not_poison_either_cache() {
    let kek = Counting::new();
    let enc = Encryptor::new(kek.clone()).cache(EncryptCache::new(CacheLimits::default()));
    kek.fail_next.store(1, Ordering::SeqCst);
    assert!(enc.encrypt_blocking(b"first").is_err());
    let m1 = enc.encrypt_blocking(b"second").unwrap();
    let m2 = enc.encrypt_blocking(b"third").unwrap();
    assert_eq!(
        kek.wraps.load(Ordering::SeqCst),
        2,
        "one failed, one cached"
    );

    let dec = Decryptor::new(kek.clone()).cache(DecryptCache::new(Duration::from_secs(60), 4));
    kek.fail_next.store(1, Ordering::SeqCst);
    assert!(dec.decrypt_blocking(&m1).is_err());
    assert_eq!(
        dec.decrypt_blocking(&m1).unwrap().expose_secret(),
        b"second"
    );
    assert_eq!(dec.decrypt_blocking(&m2).unwrap().expose_secret(), b"third");
    assert_eq!(kek.unwraps.load(Ordering::SeqCst), 2);
}

#[test]
fn a_cached_key_is_still_checked_against_each_message() {
    // Two messages whose wrapped keys are byte-identical but whose data keys differ: the second
    // must not open with the key cached for the first.
    let kek = Arc::new(LocalKek::generate().unwrap());
    let m1 = Encryptor::new(kek.clone())
        .encrypt_blocking(b"one")
        .unwrap();
    let m2 = Encryptor::new(kek.clone())
        .encrypt_blocking(b"two")
        .unwrap();
    let (h1, _) = Header::parse(&m1, &Limits::default()).unwrap();
    let (h2, used2) = Header::parse(&m2, &Limits::default()).unwrap();
    let forged_header = h2.with_wrapped_keys(h1.wrapped_keys().to_vec()).unwrap();
    let mut forged = forged_header.to_bytes();
    forged.extend_from_slice(&m2[used2..]);
    let dec = Decryptor::new(kek).cache(DecryptCache::new(Duration::from_secs(60), 4));
    assert_eq!(dec.decrypt_blocking(&m1).unwrap().expose_secret(), b"one");
    let err = dec.decrypt_blocking(&forged).unwrap_err();
    assert!(
        matches!(err, Error::UnwrapFailed { .. } | Error::Decrypt),
        "{err}"
    );
}

#[test]
fn keyring_any_one_kek_opens_none_is_a_clear_error_and_mixed_keys_fail() {
    let keks: Vec<Arc<LocalKek>> = (0..3)
        .map(|_| Arc::new(LocalKek::generate().unwrap()))
        .collect();
    let mut enc = Encryptor::new(keks[0].clone());
    for k in &keks[1..] {
        enc = enc.add_kek(k.clone());
    }
    let msg = enc.encrypt_blocking(b"three ways in").unwrap();
    for k in &keks {
        let out = Decryptor::new(k.clone()).decrypt_blocking(&msg).unwrap();
        assert_eq!(out.expose_secret(), b"three ways in");
    }
    let stranger = Arc::new(LocalKek::generate().unwrap());
    let err = Decryptor::new(stranger).decrypt_blocking(&msg).unwrap_err();
    match &err {
        Error::NoMatchingKek { present, .. } => assert_eq!(present.len(), 3),
        other => panic!("expected NoMatchingKek, got {other}"),
    }

    // A crafted message whose second wrapped key holds another data key: the KEK that opens
    // it gets a key that fails the commitment, and nothing is decrypted with it.
    let other = Encryptor::new(keks[1].clone())
        .encrypt_blocking(b"x")
        .unwrap();
    let (h, used) = Header::parse(&msg, &Limits::default()).unwrap();
    let (ho, _) = Header::parse(&other, &Limits::default()).unwrap();
    let mut wrapped = h.wrapped_keys().to_vec();
    wrapped[1] = ho.wrapped_keys()[0].clone();
    let mut crafted = h.with_wrapped_keys(wrapped).unwrap().to_bytes();
    crafted.extend_from_slice(&msg[used..]);
    assert!(
        Decryptor::new(keks[0].clone())
            .decrypt_blocking(&crafted)
            .is_ok()
    );
    let err = Decryptor::new(keks[1].clone())
        .decrypt_blocking(&crafted)
        .unwrap_err();
    match err {
        Error::UnwrapFailed { failures } => {
            assert_eq!(failures.len(), 1);
            assert!(
                matches!(failures[0].error, Error::Decrypt),
                "{}",
                failures[0].error
            );
        }
        other => panic!("expected UnwrapFailed, got {other}"),
    }
}
