//! Encrypt arbitrary data with an arbitrary frame size, suite and context; decrypt; compare.
#![no_main]
use std::sync::{Arc, OnceLock};

use kmseal::{Decryptor, Encryptor, Kek, LocalKek, Suite};
use libfuzzer_sys::fuzz_target;

fn kek() -> Arc<dyn Kek> {
    static K: OnceLock<Arc<dyn Kek>> = OnceLock::new();
    K.get_or_init(|| Arc::new(LocalKek::generate().unwrap())).clone()
}

fuzz_target!(|input: (u16, bool, Vec<(String, String)>, Vec<u8>)| {
    let (frame_size, chacha, context, data) = input;
    let suite = if chacha { Suite::ChaCha20Poly1305 } else { Suite::Aes256Gcm };
    let Ok(context) = kmseal::EncryptionContext::try_from(context) else { return };
    let enc = Encryptor::new(kek())
        .suite(suite)
        .with_context(context.clone())
        .frame_size(u32::from(frame_size).max(1))
        .unwrap();
    let msg = enc.encrypt_blocking(&data).unwrap();
    let pt = Decryptor::new(kek()).expect(context).decrypt_blocking(&msg).unwrap();
    assert_eq!(pt.expose_secret(), &data[..]);
});
