//! Proves that evicting a cached data key wipes it: while cached, the key's bytes are found in
//! the process's writable memory; after `clear()` and the last message's end, nowhere.
//! One test in this file, so no other test runs in this process during the scan.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{MASK, scan};
use kmseal::{
    CacheLimits, DecryptCache, Decryptor, EncryptCache, Encryptor, Header, Kek, Limits, LocalKek,
};

/// The data key of `msg`, XOR-masked (so the scanner never finds the test's own copy).
fn masked_data_key(kek: &LocalKek, msg: &[u8]) -> Vec<u8> {
    let (h, _) = Header::parse(msg, &Limits::default()).unwrap();
    let dek = kmseal::blocking::block_on(kek.unwrap(&h.wrapped_keys()[0], h.context())).unwrap();
    dek.expose_secret().iter().map(|b| b ^ MASK).collect()
}

#[test]
fn evicted_data_keys_are_wiped_from_memory() {
    let kek = Arc::new(LocalKek::generate().unwrap());
    let enc_cache = EncryptCache::new(CacheLimits::default());
    let msg = Encryptor::new(kek.clone())
        .cache(enc_cache.clone())
        .encrypt_blocking(b"cached")
        .unwrap();
    let masked = masked_data_key(&kek, &msg);
    assert!(scan(&masked) >= 1, "the scanner must see the cached key");
    enc_cache.clear();
    assert_eq!(scan(&masked), 0, "encrypt cache: key survived eviction");

    let dec_cache = DecryptCache::new(Duration::from_secs(600), 8);
    let dec = Decryptor::new(kek.clone()).cache(dec_cache.clone());
    assert_eq!(
        dec.decrypt_blocking(&msg).unwrap().expose_secret(),
        b"cached"
    );
    assert!(scan(&masked) >= 1, "the scanner must see the cached key");
    dec_cache.clear();
    assert_eq!(scan(&masked), 0, "decrypt cache: key survived eviction");
    assert_eq!(dec_cache.stats().evictions, 1);
}
