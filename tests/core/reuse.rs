//! Buffer reuse (`encrypt_into` / `decrypt_into`) and the thread limit: whatever the output
//! buffer held before (more, fewer or garbage bytes), the result is exactly the message or
//! plaintext; a failure leaves the buffer empty; any thread count reads any other's output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use crate::common::*;
use async_trait::async_trait;
use kmseal::blocking::block_on;
use kmseal::{
    DataKey, Decryptor, EncryptionContext, Encryptor, Error, Kek, KmsErrorKind, LocalKek,
    SecretBytes, Suite, WrappedKey,
};

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn encrypt_into_overwrites_whatever_the_buffer_held() {
    let k = kek();
    let dec = Decryptor::new(k.clone() as Arc<dyn Kek>);
    for suite in Suite::ALL {
        let enc = Encryptor::new(k.clone() as Arc<dyn Kek>)
            .suite(suite)
            .frame_size(kmseal::FrameSize::new(1000).unwrap());
        let expected_len = enc.encrypt_blocking(&pattern(5000, 0)).unwrap().len();
        // Longer than needed, shorter with spare capacity, shorter without, and empty.
        let mut with_spare = Vec::with_capacity(1 << 16);
        with_spare.extend_from_slice(&[0x5a; 100]);
        for mut out in [
            vec![0xee_u8; 1 << 16],
            with_spare,
            vec![0x11_u8; 10],
            Vec::new(),
        ] {
            for (i, len) in [5000usize, 0, 999, 1000, 4321].into_iter().enumerate() {
                let pt = pattern(len, i as u8);
                block_on(enc.encrypt_into(&pt, &mut out)).unwrap();
                if len == 5000 {
                    assert_eq!(out.len(), expected_len);
                }
                // Any byte left over from the old contents would fail authentication.
                let opened = dec.decrypt_blocking(&out).unwrap();
                assert!(opened.expose_secret() == &pt[..], "{suite} len={len}");
            }
        }
    }
}

#[test]
fn decrypt_into_overwrites_and_reuses_locked_memory() {
    let k = kek();
    let dec = decryptor(&k);
    let big = encrypt(&k, Suite::Aes256Gcm, 1024, &pattern(10_000, 1));
    let small = encrypt(&k, Suite::ChaCha20Poly1305, 1024, &pattern(300, 2));
    let empty = encrypt(&k, Suite::Aes256Gcm, 1024, b"");

    let mut out = SecretBytes::from_slice(&[0xcc; 20_000]).unwrap();
    let cap = out.capacity();
    for (msg, pt) in [
        (&big, pattern(10_000, 1)),
        (&small, pattern(300, 2)),
        (&empty, Vec::new()),
        (&big, pattern(10_000, 1)),
    ] {
        let header = block_on(dec.decrypt_into(msg, &mut out)).unwrap();
        assert!(out.expose_secret() == &pt[..]);
        assert_eq!(header.frame_size(), 1024);
        // Fits, so the locked allocation is kept.
        assert_eq!(out.capacity(), cap);
    }

    // Too small: a fresh buffer of the right size.
    let mut out = SecretBytes::from_slice(&[0xcc; 10]).unwrap();
    block_on(dec.decrypt_into(&big, &mut out)).unwrap();
    assert!(out.expose_secret() == &pattern(10_000, 1)[..]);
}

#[test]
fn a_failed_decrypt_into_leaves_the_buffer_empty() {
    let k = kek();
    let dec = decryptor(&k);
    let pt = pattern(10_000, 3);
    let msg = encrypt(&k, Suite::Aes256Gcm, 1024, &pt);
    let last_frame_byte = msg.len() - 20;
    let mut flipped = msg.clone();
    flipped[last_frame_byte] ^= 0x01;
    let truncated = &msg[..msg.len() - 1];
    let garbage = pattern(500, 9);
    for bad in [&flipped[..], truncated, &garbage[..], &msg[..3]] {
        let mut out = SecretBytes::from_slice(b"previous plaintext").unwrap();
        assert!(block_on(dec.decrypt_into(bad, &mut out)).is_err());
        // Earlier frames of `flipped` verified, but nothing of them is left behind.
        assert!(out.is_empty());
        assert_eq!(out.len(), 0);
    }
}

#[derive(Debug)]
struct NeverWraps(LocalKek);

#[async_trait]
impl Kek for NeverWraps {
    fn provider(&self) -> &str {
        self.0.provider()
    }
    fn key_id(&self) -> &str {
        self.0.key_id()
    }
    async fn wrap(&self, _: &DataKey, _: &EncryptionContext) -> Result<WrappedKey, Error> {
        Err(Error::Kms {
            provider: "local",
            kind: KmsErrorKind::Unavailable,
            message: "injected failure".into(),
            source: None,
        })
    }
    async fn unwrap(&self, w: &WrappedKey, c: &EncryptionContext) -> Result<DataKey, Error> {
        self.0.unwrap(w, c).await
    }
}

#[test]
fn a_failed_encrypt_into_leaves_the_buffer_empty() {
    let enc = Encryptor::new(Arc::new(NeverWraps(LocalKek::generate().unwrap())));
    let mut out = b"an old message".to_vec();
    let err = block_on(enc.encrypt_into(b"payload", &mut out)).unwrap_err();
    assert!(matches!(err, Error::Kms { .. }), "{err:?}");
    assert!(out.is_empty());
}

#[test]
fn any_thread_count_opens_any_other() {
    let k = kek();
    // Large enough for five workers (256 KiB each at least).
    let pt = pattern((3 << 19) + 777, 4);
    for suite in Suite::ALL {
        let mut sealed = Vec::new();
        for threads in [1, 2] {
            let enc = Encryptor::new(k.clone() as Arc<dyn Kek>)
                .suite(suite)
                .frame_size(kmseal::FrameSize::new(64 * 1024).unwrap())
                .threads(threads);
            sealed.push(enc.encrypt_blocking(&pt).unwrap());
        }
        for msg in &sealed {
            for threads in [0, 2] {
                let dec = Decryptor::new(k.clone() as Arc<dyn Kek>).threads(threads);
                let out = dec.decrypt_blocking(msg).unwrap();
                assert!(out.expose_secret() == &pt[..], "{suite} threads={threads}");
            }
            let dec = Decryptor::new(k.clone() as Arc<dyn Kek>).threads(2);
            let mut bad = msg.clone();
            let at = bad.len() / 3;
            bad[at] ^= 0x80;
            assert!(matches!(dec.decrypt_blocking(&bad), Err(Error::Decrypt)));
        }
    }
}

/// `Encryptor::prepare` + `PreparedMessage::seal_into`: the caller owns the output buffer.
/// The message opens like any other (every suite, signed or not, with a cache), its length is
/// exactly `sealed_len`, and a plaintext or buffer of another length is refused before
/// anything is written.
#[test]
fn prepared_messages_seal_into_a_buffer_of_exactly_sealed_len() {
    let k = kek();
    let dec = Decryptor::new(k.clone() as Arc<dyn Kek>);
    for suite in Suite::ALL {
        for signed in [false, true] {
            let enc = Encryptor::new(k.clone() as Arc<dyn Kek>)
                .suite(suite)
                .signed(signed)
                .cache(kmseal::EncryptCache::new(kmseal::CacheLimits::default()))
                .frame_size(kmseal::FrameSize::new(1000).unwrap());
            for len in [0usize, 1, 999, 1000, 1001, 5000] {
                let plaintext = pattern(len, 7);
                let prepared = enc.prepare_blocking(len).unwrap();
                let total = prepared.sealed_len();
                assert_eq!(total, enc.encrypt_blocking(&plaintext).unwrap().len());
                let mut out = vec![0xAAu8; total];
                prepared.seal_into(&plaintext, &mut out).unwrap();
                assert_eq!(
                    dec.decrypt_blocking(&out).unwrap().expose_secret(),
                    &plaintext[..],
                    "{suite:?} signed={signed} len={len}"
                );
            }
            let plaintext = pattern(3000, 1);
            for (plain_len, out_delta) in [(2999usize, 0isize), (3000, -1), (3000, 1)] {
                let prepared = enc.prepare_blocking(3000).unwrap();
                let total = (prepared.sealed_len() as isize + out_delta) as usize;
                let mut out = vec![0x55u8; total];
                match prepared.seal_into(&plaintext[..plain_len], &mut out) {
                    Err(Error::InvalidArgument(_)) => {}
                    other => panic!("{plain_len} {out_delta}: {:?}", other.map(|_| ())),
                }
                assert!(out.iter().all(|&b| b == 0x55), "written before refusing");
            }
        }
    }
}
