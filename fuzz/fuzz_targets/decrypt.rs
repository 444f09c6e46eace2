//! One-shot and streaming decryption of arbitrary bytes never panics and never succeeds
//! for input that was not produced by the encryptor (with overwhelming probability).
#![no_main]
use std::io::Read;
use std::sync::{Arc, OnceLock};

use kmseal::{Decryptor, Kek, LocalKek, SecretBytes};
use libfuzzer_sys::fuzz_target;

fn decryptor() -> &'static Decryptor {
    static D: OnceLock<Decryptor> = OnceLock::new();
    D.get_or_init(|| {
        // The frozen vectors' KEK A (bytes 00..1f), so the seed corpus reaches the frames.
        let key: Vec<u8> = (0u8..32).collect();
        let kek: Arc<dyn Kek> =
            Arc::new(LocalKek::from_key_bytes(&SecretBytes::from_slice(&key).unwrap()).unwrap());
        Decryptor::new(kek)
    })
}

fuzz_target!(|data: &[u8]| {
    let one_shot = decryptor().decrypt_blocking(data);
    if let Ok(mut r) = decryptor().reader_blocking(data) {
        let mut out = Vec::new();
        let streamed = r.read_to_end(&mut out);
        if let Ok(pt) = &one_shot {
            assert!(streamed.is_ok());
            assert_eq!(pt.expose_secret(), &out[..]);
        }
    }
});
