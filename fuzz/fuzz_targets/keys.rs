//! Key URIs, secret references, generator specs, requirements and local key files: parsing
//! arbitrary input never panics; what parses prints back to text that parses to the same
//! value.
#![no_main]
use kmseal::secret::GenerateSpec;
use kmseal::store::SecretRef;
use kmseal_config::Require;
use kmseal::{KeyUri, LocalKek};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First line: a key URI or a secret reference; the rest: a key file.
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (uri, key_file) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let uri = std::str::from_utf8(uri).unwrap_or_default();
    if let Ok(u) = uri.parse::<KeyUri>() {
        let again: KeyUri = u.to_string().parse().expect("a printed URI parses");
        assert_eq!(again, u);
    }
    if let Ok(r) = uri.parse::<SecretRef>() {
        assert_eq!(r.to_string(), uri, "a reference prints back as given");
        let whole = r.without_field();
        let again: SecretRef = whole.to_string().parse().expect("a printed reference parses");
        assert_eq!(again, whole);
    }
    if let Ok(g) = uri.parse::<GenerateSpec>() {
        assert_eq!(g.to_string().parse::<GenerateSpec>().ok(), Some(g));
    }
    if let Ok(r) = uri.parse::<Require>() {
        let printed = r.to_string();
        let again: Require = printed.parse().expect("a printed requirement parses");
        assert_eq!(again, r);
        assert_eq!(again.to_string(), printed);
    }
    let _ = LocalKek::from_key_file_contents(key_file, "fuzz");
});
