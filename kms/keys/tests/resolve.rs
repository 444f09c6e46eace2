//! Key URIs resolve to working KEKs, and every malformed URI is a typed error from the
//! provider that owns its form.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kmseal::{Decryptor, Encryptor, Error, LocalKek};

#[test]
fn a_list_of_local_keys_resolves_to_a_keyring_that_works() {
    let dir = std::env::temp_dir().join(format!("kmseal-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("a.key"), dir.join("b.key"));
    let mut written = Vec::new();
    for p in [&a, &b] {
        let _ = std::fs::remove_file(p);
        written.push(LocalKek::create_file(p).unwrap());
    }
    let one = kmseal_keys::from_uri_blocking(&format!("local://{}", a.display())).unwrap();
    assert_eq!(one.key_id(), written[0].key_id());

    let list = format!(" local://{} ,, local://{} ", a.display(), b.display());
    let ring = kmseal::blocking::block_on(kmseal_keys::from_list(&list)).unwrap();
    assert_eq!(ring.len(), 2);
    assert_eq!(ring[1].key_id(), written[1].key_id());
    let mut enc = Encryptor::new(ring[0].clone());
    for k in &ring[1..] {
        enc = enc.add_kek(k.clone());
    }
    let sealed = enc.encrypt_blocking(b"both open it").unwrap();
    for k in ring {
        let got = Decryptor::new(k).decrypt_blocking(&sealed).unwrap();
        assert_eq!(got.expose_secret(), b"both open it");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unset_or_empty_lists_are_errors() {
    let e = kmseal::blocking::block_on(kmseal_keys::from_env(
        "KMSEAL_KEYS_TEST_SURELY_UNSET_VARIABLE",
    ))
    .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidKeyUri { reason, .. }
            if reason.contains("KMSEAL_KEYS_TEST_SURELY_UNSET_VARIABLE")),
        "{e}"
    );
    for list in ["", " , "] {
        assert!(matches!(
            kmseal::blocking::block_on(kmseal_keys::from_list(list)),
            Err(Error::InvalidArgument(_))
        ));
    }
}

#[test]
fn each_provider_refuses_a_malformed_uri_of_its_own_with_its_form() {
    for (uri, form) in [
        (
            "aws-kms://arn:aws:kms::111122223333:key/x",
            "aws-kms://arn:",
        ),
        (
            "gcp-kms://projects/p/locations/l/keyRings/r",
            "gcp-kms://projects/",
        ),
        ("azure-kv://v.vault.azure.net/secrets/x", "azure-kv://"),
        ("vault://h:1/transit/app", "vault://HOST"),
        ("local://env:1BAD", "local://env:"),
        ("s3://bucket/key", "unknown scheme"),
        ("not a uri", "SCHEME://"),
    ] {
        match kmseal_keys::from_uri_blocking(uri) {
            Err(e @ Error::InvalidKeyUri { .. }) => {
                assert!(e.to_string().contains(form), "{uri}: {e}")
            }
            other => panic!("{uri}: {other:?}"),
        }
    }
}
