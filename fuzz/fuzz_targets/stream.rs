//! Streaming decryption with arbitrary read sizes agrees with one-shot decryption: the same
//! plaintext when both succeed, and never a success of one where the other fails.
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
    // Read sizes from 1 to ~9 KB, derived from the input so that seeds stay valid messages.
    let sizes: Vec<u16> = data.iter().take(64).map(|b| 1 + u16::from(*b) * 35).collect();
    let one_shot = decryptor().decrypt_blocking(data);
    let streamed = decryptor().reader_blocking(data).and_then(|mut r| {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 70_000];
        let mut i = 0;
        loop {
            let want = sizes.get(i % sizes.len().max(1)).map_or(4096, |s| usize::from(*s).max(1));
            i += 1;
            let end = want.min(buf.len());
            match r.read(&mut buf[..end]) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => return Err(kmseal::Error::Decrypt),
            }
        }
    });
    match (&one_shot, &streamed) {
        (Ok(a), Ok(b)) => assert_eq!(a.expose_secret(), &b[..]),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("one-shot {} but streaming {}", a.is_ok(), b.is_ok()),
    }
});
