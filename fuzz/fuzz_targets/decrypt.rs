//! One-shot, streaming and random-access decryption of arbitrary bytes never panics and never
//! succeeds for input that was not produced by the encryptor (with overwhelming probability);
//! a range that opens equals those bytes of the whole plaintext.
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
    // A range picked from the input's own length, so seeds reach every frame.
    let n = data.len() as u64;
    let (a, b) = (n % 97, n % 97 + n % 31);
    if let Ok(part) = decryptor().open_range_blocking(&mut std::io::Cursor::new(data), a..b) {
        let pt = one_shot.as_ref().map(|p| p.expose_secret());
        if let Ok(pt) = pt {
            assert_eq!(part.expose_secret(), &pt[a as usize..b as usize]);
        }
    }
});
