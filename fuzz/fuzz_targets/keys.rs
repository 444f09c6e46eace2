//! Key URIs and local key files: parsing arbitrary input never panics; a URI that parses
//! prints back to a URI that parses to the same value.
#![no_main]
use kmseal::{KeyUri, LocalKek};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First line: a key URI; the rest: a key file.
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (uri, key_file) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    if let Ok(u) = std::str::from_utf8(uri).unwrap_or_default().parse::<KeyUri>() {
        let again: KeyUri = u.to_string().parse().expect("a printed URI parses");
        assert_eq!(again, u);
    }
    let _ = LocalKek::from_key_file_contents(key_file, "fuzz");
});
