//! With the `aws-lc` feature: messages made with one AEAD backend open with the other, across
//! sizes and suites, and the frozen vectors open with both. The backend is chosen per
//! encryptor and decryptor; enabling the feature alone changes nothing.

#![allow(clippy::cast_possible_truncation)] // test patterns and helpers
#![cfg(feature = "aws-lc")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use kmseal::{Backend, Decryptor, Encryptor, Kek, LocalKek, Suite};

#[test]
fn each_backend_opens_the_others_messages() {
    let kek: Arc<dyn Kek> = Arc::new(LocalKek::generate().unwrap());
    for suite in Suite::ALL {
        for len in [0usize, 1, 100, 65535, 65536, 65537, 1 << 20, (3 << 20) + 7] {
            let pt: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            for (enc, dec) in [
                (Backend::RustCrypto, Backend::AwsLc),
                (Backend::AwsLc, Backend::RustCrypto),
            ] {
                let msg = Encryptor::new(kek.clone())
                    .backend(enc)
                    .unwrap()
                    .suite(suite)
                    .encrypt_blocking(&pt)
                    .unwrap();
                let d = Decryptor::new(kek.clone()).backend(dec).unwrap();
                let out = d.decrypt_blocking(&msg).unwrap();
                assert!(
                    out.expose_secret() == &pt[..],
                    "{suite} {len} {enc:?}->{dec:?}"
                );
                let mut bad = msg.clone();
                let n = bad.len();
                bad[n - 20] ^= 1;
                assert!(d.decrypt_blocking(&bad).is_err());
            }
        }
    }
    // The frozen vectors, with both.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let key: Vec<u8> = (0u8..32).collect();
    let a: Arc<dyn Kek> = Arc::new(
        LocalKek::from_key_bytes(&kmseal::SecretBytes::from_slice(&key).unwrap()).unwrap(),
    );
    for b in [Backend::RustCrypto, Backend::AwsLc] {
        for name in [
            "v1_aes256gcm_frames",
            "v1_chacha20poly1305_frames",
            "v1_multi_kek",
        ] {
            let msg = std::fs::read(dir.join(format!("{name}.kmseal"))).unwrap();
            let want = std::fs::read(dir.join(format!("{name}.plaintext"))).unwrap();
            let d = Decryptor::new(a.clone()).backend(b).unwrap();
            let out = d.decrypt_blocking(&msg).unwrap();
            assert_eq!(out.expose_secret(), &want[..], "{b:?} {name}");
        }
    }
}

#[test]
fn the_feature_alone_changes_no_default_and_the_default_is_set_once() {
    assert_eq!(Backend::available(), [Backend::RustCrypto, Backend::AwsLc]);
    // Compiled in, yet not chosen: the process default stays RustCrypto, and once read it
    // is fixed.
    assert_eq!(Backend::process_default(), Backend::RustCrypto);
    assert!(Backend::set_process_default(Backend::AwsLc).is_err());
    assert!(Backend::set_process_default(Backend::RustCrypto).is_ok());
    assert_eq!(Backend::process_default(), Backend::RustCrypto);
}
