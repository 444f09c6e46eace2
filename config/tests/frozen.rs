//! Frozen config-document vectors (config/tests/data/frozen, made once by its `make` script
//! under the frozen KEK A): they must open to the fixtures' values forever, re-sealing them
//! must reproduce them byte for byte (the encoder is stable), and the `fail_*` copies must be
//! refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use kmseal::{Decryptor, Encryptor, LocalKek, SecretBytes};
use kmseal_config::{Entry, Format, Sealer};

fn kek_a() -> Arc<LocalKek> {
    let key: Vec<u8> = (0u8..32).collect();
    Arc::new(LocalKek::from_key_bytes(&SecretBytes::from_slice(&key).unwrap()).unwrap())
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    kmseal::blocking::block_on(f)
}

fn dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn values(text: &str, f: Format) -> Vec<(String, String)> {
    let s = block(kmseal_config::open(text, f, &Decryptor::new(kek_a()))).unwrap();
    s.iter()
        .map(|(p, e)| {
            let v = match e {
                Entry::Secret { value, .. } => value.expose_secret().to_owned(),
                Entry::Plain { value, .. } => value.clone(),
            };
            (p.to_string(), v)
        })
        .collect()
}

#[test]
fn frozen_documents_open_and_reseal_byte_for_byte() {
    for (ext, f) in [
        ("yaml", Format::Yaml),
        ("json", Format::Json),
        ("toml", Format::Toml),
        ("env", Format::Dotenv),
    ] {
        let frozen =
            std::fs::read_to_string(dir().join(format!("frozen/v1_service.{ext}"))).unwrap();
        let fixture = std::fs::read_to_string(dir().join(format!("service.{ext}"))).unwrap();
        // The same values as the fixture (whole-blob mode reads the fixture as the reference).
        let msg = Encryptor::new(kek_a())
            .encrypt_blocking(fixture.as_bytes())
            .unwrap();
        let reference = block(kmseal_config::open_blob(&msg, f, &Decryptor::new(kek_a()))).unwrap();
        let want: Vec<(String, String)> = reference
            .iter()
            .map(|(p, e)| {
                let v = match e {
                    Entry::Secret { value, .. } => value.expose_secret().to_owned(),
                    Entry::Plain { value, .. } => value.clone(),
                };
                (p.to_string(), v)
            })
            .collect();
        assert_eq!(values(&frozen, f), want, "{ext}");
        // Decrypt keeping the metadata, seal again: the very same bytes.
        let plain = block(kmseal_config::decrypt(
            &frozen,
            f,
            &Decryptor::new(kek_a()),
            true,
        ))
        .unwrap();
        let sealer = Sealer::new(Encryptor::new(kek_a()), Decryptor::new(kek_a()));
        assert_eq!(
            block(sealer.seal(&plain, f)).unwrap(),
            frozen,
            "{ext}: encoder changed"
        );
    }
}

#[test]
fn frozen_failure_vectors_are_refused() {
    for name in ["fail_plain_edited", "fail_swapped", "fail_mac_from_other"] {
        let text = std::fs::read_to_string(dir().join(format!("frozen/{name}.yaml"))).unwrap();
        let r = block(kmseal_config::open(
            &text,
            Format::Yaml,
            &Decryptor::new(kek_a()),
        ));
        assert!(
            matches!(r, Err(kmseal_config::Error::Tampered(_))),
            "{name}: {:?}",
            r.map(|_| ())
        );
    }
}
