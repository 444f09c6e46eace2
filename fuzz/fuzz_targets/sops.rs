//! SOPS files (`kmseal import sops`): parsing, the metadata, the age stanzas and the values
//! of arbitrary text never panic, and a file only decrypts when its MAC verifies. The
//! identity is the sops project's public test key, so the seeds (files the real sops made)
//! reach the decryption and MAC paths.
#![no_main]
use std::sync::OnceLock;

use kmseal_config::Format;
use kmseal_sops::{Identities, Keys};
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let ids = Identities::parse(include_str!("../../sops/tests/fixtures/keys.txt"))
            .expect("the fixture identities parse");
        Keys::new(ids)
    })
}

fuzz_target!(|input: (u8, &str)| {
    let (which, text) = input;
    let format = [Format::Yaml, Format::Json, Format::Dotenv, Format::Toml][usize::from(which % 4)];
    // Every path, `mac_only_encrypted` files included (refused by default: opted in here).
    let options = kmseal_sops::DecryptOptions::new().dangerous_accept_unauthenticated_plain(which & 4 != 0);
    if let Ok(out) = kmseal::blocking::block_on(kmseal_sops::decrypt_with(text, format, keys(), &options)) {
        // What SOPS verified must be a document kmseal can parse (no panic either way).
        let _ = kmseal_config::inspect(out.plaintext(), format);
        let _ = out.unauthenticated();
    }
});
