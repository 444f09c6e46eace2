#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Read;
use std::sync::Arc;

use kmseal::{Decryptor, Encryptor, Error, Kek, LocalKek, SecretBytes, Suite};

pub fn kek() -> Arc<LocalKek> {
    Arc::new(LocalKek::generate().unwrap())
}

pub fn encrypt(kek: &Arc<LocalKek>, suite: Suite, frame_size: u32, pt: &[u8]) -> Vec<u8> {
    Encryptor::new(kek.clone() as Arc<dyn Kek>)
        .context("app", "test")
        .unwrap()
        .suite(suite)
        .frame_size(frame_size)
        .unwrap()
        .encrypt_blocking(pt)
        .unwrap()
}

pub fn decryptor(kek: &Arc<LocalKek>) -> Decryptor {
    Decryptor::new(kek.clone() as Arc<dyn Kek>)
        .expect_context("app", "test")
        .unwrap()
}

/// One-shot decryption.
pub fn open(kek: &Arc<LocalKek>, msg: &[u8]) -> Result<SecretBytes, Error> {
    decryptor(kek).decrypt_blocking(msg)
}

/// Streaming decryption with reads of `chunk` bytes; returns the plaintext or the first error
/// (as a kmseal error when it is one).
pub fn open_stream(kek: &Arc<LocalKek>, msg: &[u8], chunk: usize) -> Result<Vec<u8>, String> {
    let mut r = decryptor(kek)
        .reader_blocking(msg)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk.max(1)];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
}
