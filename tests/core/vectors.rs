//! Frozen vectors (tests/data/): every valid vector decrypts to its recorded plaintext,
//! forever; every `fail_*` vector fails, one-shot and streaming. Keys and randomness are
//! described in tests/data/README.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use kmseal::{Decryptor, Kek, LocalKek, SecretBytes};

fn local(start: u8) -> Arc<dyn Kek> {
    let bytes: Vec<u8> = (0..32).map(|i| start + i).collect();
    Arc::new(LocalKek::from_key_bytes(&SecretBytes::from_slice(&bytes).unwrap()).unwrap())
}

fn decryptor() -> Decryptor {
    Decryptor::new(local(0x00))
        .add_kek(local(0x20))
        .expect_context("app", "kmseal-test-vectors")
        .unwrap()
}

fn stream(msg: &[u8]) -> Result<Vec<u8>, String> {
    let mut r = decryptor()
        .reader_blocking(msg)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

#[test]
fn frozen_vectors() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let (mut valid, mut failing) = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("kmseal") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let msg = std::fs::read(&path).unwrap();
        if name.starts_with("fail_") {
            let one_shot = decryptor().decrypt_blocking(&msg);
            assert!(one_shot.is_err(), "{name} decrypted but must fail");
            assert!(
                stream(&msg).is_err(),
                "{name} stream-decrypted but must fail"
            );
            failing += 1;
        } else {
            let expected = std::fs::read(path.with_extension("plaintext")).unwrap();
            let pt = decryptor()
                .decrypt_blocking(&msg)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(pt.expose_secret(), &expected[..], "{name}");
            assert_eq!(stream(&msg).unwrap(), expected, "{name} (streaming)");
            valid += 1;
        }
    }
    assert!(
        valid >= 7 && failing >= 20,
        "found {valid} valid and {failing} failing vectors"
    );
}
