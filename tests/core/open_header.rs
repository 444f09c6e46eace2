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
        );
        let targets: [Arc<dyn Kek>; 2] = [old.clone(), other.clone()];
        let new_header = block_on(opened.rewrap(&targets)).unwrap();
        // The KEK that opened the header rewraps its own key; the other wraps the data key.
        assert_eq!(old.rewraps.load(Ordering::SeqCst), before.1 + 1);
        assert_eq!(old.wraps.load(Ordering::SeqCst), before.0);
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
