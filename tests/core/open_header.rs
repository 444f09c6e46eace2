//! The header-first seam: parse a header, decide, open it (`Decryptor::open_header`), then
//! decrypt, stream, derive an application key or rewrap, with the same checks as the
//! one-call paths.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::common::Counting;
use kmseal::blocking::block_on;
use kmseal::rotate::{Outcome, Rotator};
use kmseal::{Decryptor, Encryptor, Error, Kek, LocalKek};

fn sealed(kek: Arc<dyn Kek>, signed: bool, pt: &[u8]) -> Vec<u8> {
    Encryptor::new(kek)
        .context("tenant", "acme")
        .unwrap()
        .signed(signed)
        .frame_size(kmseal::FrameSize::new(1000).unwrap())
        .encrypt_blocking(pt)
        .unwrap()
}

#[test]
fn parse_decide_open_decrypt_matches_the_one_call_path() {
    let kek = Arc::new(LocalKek::generate().unwrap());
    let pt: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    for signed in [false, true] {
        let msg = sealed(kek.clone(), signed, &pt);
        let dec = Decryptor::new(kek.clone());
        let (header, body) = dec.parse_header(&msg).unwrap();
        assert_eq!(header.encoded_len() + body.len(), msg.len());
        assert_eq!(header.context().get("tenant"), Some("acme"));
        let opened = block_on(dec.open_header(&header)).unwrap();
        assert_eq!(opened.header(), &header);
        assert_eq!(opened.opened_with(), &header.wrapped_keys()[0]);
        assert_eq!(opened.decrypt(body).unwrap().expose_secret(), &pt[..]);
        // Streaming from the same opened header.
        let mut r = &msg[..];
        let h2 = dec.read_header(&mut r).unwrap();
        assert_eq!(h2, header);
        let mut out = Vec::new();
        block_on(dec.open_header(&h2))
            .unwrap()
            .reader(r)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, pt);
    }
}

#[test]
fn an_opened_header_refuses_tampered_truncated_and_garbage_bodies() {
    let kek = Arc::new(LocalKek::generate().unwrap());
    let pt = vec![7u8; 3000];
    for signed in [false, true] {
        let msg = sealed(kek.clone(), signed, &pt);
        let dec = Decryptor::new(kek.clone());
        let (header, body) = dec.parse_header(&msg).unwrap();
        let opened = block_on(dec.open_header(&header)).unwrap();
        for at in [0, body.len() / 2, body.len() - 1] {
            let mut bad = body.to_vec();
            bad[at] ^= 0x40;
            let mut out = kmseal::SecretBytes::new();
            assert!(opened.decrypt_into(&bad, &mut out).is_err(), "flip at {at}");
            assert!(out.is_empty(), "nothing is released after a failure");
        }
        for cut in [0, 1, 17, body.len() - 1] {
            let r = opened.decrypt(&body[..cut]);
            assert!(
                matches!(
                    r,
                    Err(Error::Truncated(_) | Error::Decrypt | Error::Malformed(_))
                ),
                "cut at {cut}: {r:?}"
            );
        }
        assert!(opened.decrypt(b"garbage garbage garbage").is_err());
        // The opened header still decrypts the real body.
        assert_eq!(opened.decrypt(body).unwrap().expose_secret(), &pt[..]);
    }
}

#[test]
fn open_header_applies_the_decryptors_policy_before_any_kms_call() {
    let kek = Counting::new();
    let msg = sealed(kek.clone(), false, b"x");
    let strict = Decryptor::new(kek.clone())
        .require_signed(true)
        .expect_context("tenant", "other")
        .unwrap();
    let (header, _) = strict.parse_header(&msg).unwrap();
    assert!(block_on(strict.open_header(&header)).is_err());
    let signed_only = Decryptor::new(kek.clone()).require_signed(true);
    assert!(matches!(
        block_on(signed_only.open_header(&header)),
        Err(Error::Unsigned)
    ));
    assert_eq!(kek.unwraps.load(Ordering::SeqCst), 0);
    // And the limits are the decryptor's own: a frame size above them is refused at parse.
    let tiny = Decryptor::new(kek.clone()).limits(kmseal::Limits {
        max_frame_size: 999,
        ..Default::default()
    });
    assert!(tiny.parse_header(&msg).is_err());
    assert_eq!(tiny.configured_limits().max_frame_size, 999);
}

#[test]
fn application_keys_come_from_unsigned_headers_only() {
    let kek = Arc::new(LocalKek::generate().unwrap());
    let (header, key) = block_on(Encryptor::new(kek.clone()).application_key("fmt/v1")).unwrap();
    let dec = Decryptor::new(kek.clone());
    let opened = block_on(dec.open_header(&header)).unwrap();
    assert!(opened.application_key("fmt/v1").unwrap() == key);
    assert!(opened.application_key("fmt/v2").unwrap() != key);
    let signed = sealed(kek.clone(), true, b"x");
    let (h, _) = dec.parse_header(&signed).unwrap();
    let opened = block_on(dec.open_header(&h)).unwrap();
    assert!(matches!(
        opened.application_key("fmt/v1"),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn rewrap_keeps_the_body_and_uses_kek_rewrap_for_the_opening_key() {
    let old = Counting::new();
    let other = Arc::new(LocalKek::generate().unwrap());
    let pt = vec![3u8; 2500];
    for signed in [false, true] {
        let msg = sealed(old.clone(), signed, &pt);
        let dec = Decryptor::new(old.clone());
        let (header, body) = dec.parse_header(&msg).unwrap();
        let opened = block_on(dec.open_header(&header)).unwrap();
        let before = (
            old.wraps.load(Ordering::SeqCst),
            old.rewraps.load(Ordering::SeqCst),
            old.unwraps.load(Ordering::SeqCst),
        );
        let targets: [Arc<dyn Kek>; 2] = [old.clone(), other.clone()];
        let new_header = block_on(opened.rewrap(&targets)).unwrap();
        // The KEK that opened the header rewraps its own key; the other wraps the data key;
        // nobody unwraps again (found by review: the first version unwrapped once more).
        assert_eq!(old.rewraps.load(Ordering::SeqCst), before.1 + 1);
        assert_eq!(old.wraps.load(Ordering::SeqCst), before.0);
        assert_eq!(old.unwraps.load(Ordering::SeqCst), before.2);
        assert_eq!(new_header.wrapped_keys().len(), 2);
        let mut moved = new_header.to_bytes();
        moved.extend_from_slice(body);
        for k in [old.clone() as Arc<dyn Kek>, other.clone()] {
            let got = Decryptor::new(k).decrypt_blocking(&moved).unwrap();
            assert_eq!(got.expose_secret(), &pt[..]);
        }
        assert!(matches!(
            block_on(opened.rewrap(&[])),
            Err(Error::InvalidArgument(_))
        ));
    }
}

#[test]
fn rotation_reaches_kek_rewrap_and_rotates_bare_headers() {
    let kek = Counting::new();
    let msg = sealed(kek.clone(), false, b"rotate me");
    let rot = Rotator::rewrap(Decryptor::new(kek.clone()), vec![kek.clone()]);
    // Already wrapped exactly under the target: nothing to do.
    let (header, _) = Decryptor::new(kek.clone()).parse_header(&msg).unwrap();
    assert!(matches!(
        block_on(rot.rotate_header(&header)).unwrap(),
        Outcome::Skipped(_)
    ));
    let new = Arc::new(LocalKek::generate().unwrap());
    let rot = Rotator::rewrap(Decryptor::new(kek.clone()), vec![kek.clone(), new.clone()]);
    let Outcome::Rotated(rotated) = rot.rotate_message_blocking(&msg).unwrap() else {
        panic!("expected a rotation")
    };
    assert_eq!(kek.rewraps.load(Ordering::SeqCst), 1);
    assert_eq!(
        Decryptor::new(new.clone())
            .decrypt_blocking(&rotated)
            .unwrap()
            .expose_secret(),
        b"rotate me"
    );
    let Outcome::Rotated(h) = block_on(rot.rotate_header(&header)).unwrap() else {
        panic!("expected a rotation")
    };
    assert_eq!(h.wrapped_keys().len(), 2);
    assert_eq!(kek.rewraps.load(Ordering::SeqCst), 2);
    let reenc = Rotator::reencrypt(Decryptor::new(kek.clone()), vec![new]);
    assert!(matches!(
        block_on(reenc.rotate_header(&header)),
        Err(Error::InvalidArgument(_))
    ));
}

/// A local KEK that claims a fixed key id: two of them with different keys stand for the same
/// key path on two clusters (Vault ids carry no host).
#[derive(Debug)]
struct SameId(LocalKek);

#[async_trait::async_trait]
impl Kek for SameId {
    fn provider(&self) -> &str {
        "local"
    }
    fn key_id(&self) -> &str {
        "shared/keys/app"
    }
    async fn wrap(
        &self,
        key: &kmseal::DataKey,
        context: &kmseal::EncryptionContext,
    ) -> Result<kmseal::WrappedKey, Error> {
        let mut w = self.0.wrap(key, context).await?;
        w.key_id = self.key_id().into();
        Ok(w)
    }
    async fn unwrap(
        &self,
        w: &kmseal::WrappedKey,
        context: &kmseal::EncryptionContext,
    ) -> Result<kmseal::DataKey, Error> {
        let mut w = w.clone();
        w.key_id = self.0.key_id().into();
        self.0.unwrap(&w, context).await
    }
    async fn rewrap(
        &self,
        _: &kmseal::WrappedKey,
        _: &kmseal::DataKey,
        _: &kmseal::EncryptionContext,
    ) -> Result<kmseal::WrappedKey, Error> {
        panic!("rewrap must only be asked of the KEK instance that opened the header")
    }
}

#[test]
fn rewrap_never_trusts_another_kek_with_the_same_id_and_never_unwraps_junk_again() {
    // Found by review: the first version asked any target that `matches` the opening wrapped
    // key to rewrap it, and its default unwrapped once more.
    let old = Arc::new(SameId(LocalKek::generate().unwrap()));
    let new = Arc::new(SameId(LocalKek::generate().unwrap()));
    let msg = sealed(old.clone(), false, b"moved");
    let dr = Arc::new(LocalKek::generate().unwrap());
    let rot = Rotator::rewrap(Decryptor::new(old.clone()), vec![new.clone(), dr]);
    let Outcome::Rotated(out) = rot.rotate_message_blocking(&msg).unwrap() else {
        panic!("expected a rotation")
    };
    let got = Decryptor::new(new).decrypt_blocking(&out).unwrap();
    assert_eq!(got.expose_secret(), b"moved");

    // A junk entry naming our KEK before the real one: two unwrap attempts in all, none more.
    let k = Counting::new();
    let msg = sealed(k.clone(), false, b"x");
    let (header, body) = Decryptor::new(k.clone()).parse_header(&msg).unwrap();
    let mut junk = header.wrapped_keys()[0].clone();
    junk.ciphertext = vec![0x41; junk.ciphertext.len()];
    let mut with_junk = header
        .with_wrapped_keys(vec![junk, header.wrapped_keys()[0].clone()])
        .unwrap()
        .to_bytes();
    with_junk.extend_from_slice(body);
    let before = k.unwraps.load(Ordering::SeqCst);
    let local = Arc::new(LocalKek::generate().unwrap());
    let rot = Rotator::rewrap(Decryptor::new(k.clone()), vec![k.clone(), local]);
    assert!(matches!(
        rot.rotate_message_blocking(&with_junk).unwrap(),
        Outcome::Rotated(_)
    ));
    assert_eq!(k.unwraps.load(Ordering::SeqCst) - before, 2);
}

#[test]
fn labels_too_long_to_encode_are_refused_before_any_kms_call() {
    let k = Counting::new();
    let label = "x".repeat(65536);
    let e = block_on(Encryptor::new(k.clone()).application_key(&label)).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    let (header, _) = block_on(Encryptor::new(k.clone()).application_key("ok")).unwrap();
    let unwraps = k.unwraps.load(Ordering::SeqCst);
    let e = block_on(Decryptor::new(k.clone()).open_application_key(&header, &label)).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert_eq!(k.wraps.load(Ordering::SeqCst), 1);
    assert_eq!(k.unwraps.load(Ordering::SeqCst), unwraps);
}

#[test]
fn rotate_header_applies_the_decryptors_limits_and_needs_a_target() {
    let kek = Arc::new(LocalKek::generate().unwrap());
    let msg = sealed(kek.clone(), false, b"x");
    let (header, _) = Decryptor::new(kek.clone()).parse_header(&msg).unwrap();
    let strict = Decryptor::new(kek.clone()).limits(kmseal::Limits {
        max_frame_size: 999,
        ..Default::default()
    });
    let other = Arc::new(LocalKek::generate().unwrap());
    let e = block_on(Rotator::rewrap(strict, vec![other]).rotate_header(&header)).unwrap_err();
    assert!(matches!(e, Error::LimitExceeded { .. }), "{e}");
    let none = Rotator::rewrap(Decryptor::new(kek), vec![]).dry_run(true);
    assert!(matches!(
        block_on(none.rotate_header(&header)),
        Err(Error::InvalidArgument(_))
    ));
}
