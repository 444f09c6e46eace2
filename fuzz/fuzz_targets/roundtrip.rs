//! Encrypt arbitrary data with an arbitrary frame size, suite, signing and context; decrypt
//! one-shot and streamed; compare. Signed messages must also pass `require_signed`.
#![no_main]
use std::io::Read;
use std::sync::{Arc, OnceLock};

use kmseal::{Decryptor, Encryptor, Kek, LocalKek, SIGNING_KEY_CONTEXT, Suite};
use libfuzzer_sys::fuzz_target;

fn kek() -> Arc<dyn Kek> {
    static K: OnceLock<Arc<dyn Kek>> = OnceLock::new();
    K.get_or_init(|| Arc::new(LocalKek::generate().unwrap())).clone()
}

fuzz_target!(|input: (u16, bool, bool, Vec<(String, String)>, Vec<u8>)| {
    let (frame_size, chacha, signed, context, data) = input;
    let suite = if chacha { Suite::ChaCha20Poly1305 } else { Suite::Aes256Gcm };
    let Ok(context) = kmseal::EncryptionContext::try_from(context) else { return };
    let enc = Encryptor::new(kek())
        .suite(suite)
        .signed(signed)
        .with_context(context.clone())
        .frame_size(kmseal::FrameSize::new(u32::from(frame_size).max(1)).unwrap());
    let msg = match enc.encrypt_blocking(&data) {
        Ok(msg) => msg,
        Err(_) => {
            // Only the reserved context key is refused.
            assert!(context.get(SIGNING_KEY_CONTEXT).is_some());
            return;
        }
    };
    let dec = Decryptor::new(kek()).with_expected_context(context).require_signed(signed);
    let pt = dec.decrypt_blocking(&msg).unwrap();
    assert_eq!(pt.expose_secret(), &data[..]);
    let mut streamed = Vec::new();
    dec.reader_blocking(&msg[..]).unwrap().read_to_end(&mut streamed).unwrap();
    assert_eq!(streamed, data);
});
