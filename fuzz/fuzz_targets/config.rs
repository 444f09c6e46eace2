//! Config documents in every format: parsing, sealing and opening arbitrary text never
//! panics; a document that opens was sealed by us (the document MAC); sealing what parses
//! gives a document that opens; a routine re-seal (no flags) of a document that opens (so is
//! exactly as last sealed) succeeds and changes nothing; and a routine re-seal never turns an
//! encrypted value into plaintext.
#![no_main]
use std::sync::{Arc, OnceLock};

use kmseal::{Decryptor, Encryptor, Kek, LocalKek, SecretBytes};
use kmseal_config::{Format, Sealer};
use libfuzzer_sys::fuzz_target;

fn kek() -> Arc<dyn Kek> {
    static K: OnceLock<Arc<dyn Kek>> = OnceLock::new();
    K.get_or_init(|| {
        let key: Vec<u8> = (0u8..32).collect();
        Arc::new(LocalKek::from_key_bytes(&SecretBytes::from_slice(&key).unwrap()).unwrap())
    })
    .clone()
}

fuzz_target!(|input: (u8, &str)| {
    let (which, text) = input;
    let format = [Format::Yaml, Format::Json, Format::Toml, Format::Dotenv][usize::from(which % 4)];
    let dec = Decryptor::new(kek());
    let _ = kmseal_config::inspect(text, format);
    // Format detection parses in every format: never a panic.
    let _ = Format::of_sealed(text);
    let opened_input = kmseal::blocking::block_on(kmseal_config::open(text, format, &dec));
    let sealer = Sealer::new(Encryptor::new(kek()), Decryptor::new(kek()));
    let resealed = kmseal::blocking::block_on(sealer.seal(text, format));
    if opened_input.is_ok() {
        let again = resealed.as_deref().map_err(ToString::to_string);
        assert!(again.is_ok(), "a verified document was refused by a routine seal: {again:?}");
    }
    if let Ok(sealed) = &resealed {
        let opened = kmseal::blocking::block_on(kmseal_config::open(sealed, format, &dec));
        assert!(opened.is_ok(), "a freshly sealed document does not open: {opened:?}");
        // Idempotent: sealing the sealed document changes nothing.
        let twice = kmseal::blocking::block_on(sealer.seal(sealed, format));
        assert_eq!(twice.as_deref().ok(), Some(sealed.as_str()), "re-seal changed a sealed document");
        // No value encrypted in the input is plaintext in the output (no declassify flag).
        let before = kmseal_config::inspect(text, format);
        let after = kmseal_config::inspect(sealed, format);
        if let (Ok(before), Ok(after)) = (before, after) {
            for (path, encrypted) in &before.values {
                if *encrypted {
                    let now = after.values.iter().find(|(p, _)| p == path);
                    assert!(
                        now.is_none_or(|(_, e)| *e),
                        "an encrypted value was declassified by a routine seal"
                    );
                }
            }
        }
    }
});
