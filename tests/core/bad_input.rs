//! Every parse and decrypt path against truncation, bit flips, oversized lengths, wrong
//! context, wrong KEK, unknown suite and version, and mismatched wrapped keys.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::sync::Arc;

use crate::common::*;
use kmseal::{Decryptor, Error, Header, Kek, Limits, Suite};

const FS: u32 = 16;

fn sample() -> (Arc<kmseal::LocalKek>, Vec<u8>, Vec<u8>) {
    let k = kek();
    let pt: Vec<u8> = (0..40u8).collect(); // three frames: 16 + 16 + 8
    let msg = encrypt(&k, Suite::Aes256Gcm, FS, &pt);
    (k, pt, msg)
}

fn header_len(msg: &[u8]) -> usize {
    Header::parse(msg, &Limits::default()).unwrap().1
}

#[test]
fn sample_is_valid() {
    let (k, pt, msg) = sample();
    assert_eq!(open(&k, &msg).unwrap().expose_secret(), &pt[..]);
    assert_eq!(open_stream(&k, &msg, 7).unwrap(), pt);
}

#[test]
fn truncation_at_every_byte_fails() {
    for suite in Suite::ALL {
        let k = kek();
        let pt: Vec<u8> = (0..40u8).collect();
        let msg = encrypt(&k, suite, FS, &pt);
        for cut in 0..msg.len() {
            let t = &msg[..cut];
            assert!(
                open(&k, t).is_err(),
                "{suite}: one-shot accepted a cut at {cut}"
            );
            assert!(
                open_stream(&k, t, 5).is_err(),
                "{suite}: stream accepted a cut at {cut}"
            );
        }
    }
}

#[test]
fn truncation_at_a_frame_boundary_is_reported_as_truncation() {
    let (k, _, msg) = sample();
    let h = header_len(&msg);
    let cut = &msg[..h + 2 * (FS as usize + 16)]; // two full frames, final frame missing
    assert!(matches!(open(&k, cut), Err(Error::Truncated(_))));
    let e = open_stream(&k, cut, 64).unwrap_err();
    assert!(e.contains("truncated"), "{e}");
}

#[test]
fn every_single_bit_flip_fails() {
    for suite in Suite::ALL {
        let k = kek();
        let pt: Vec<u8> = (0..40u8).collect();
        let msg = encrypt(&k, suite, FS, &pt);
        for byte in 0..msg.len() {
            for bit in 0..8 {
                let mut m = msg.clone();
                m[byte] ^= 1 << bit;
                assert!(open(&k, &m).is_err(), "{suite}: flip {byte}.{bit} accepted");
                assert!(
                    open_stream(&k, &m, 64).is_err(),
                    "{suite}: stream flip {byte}.{bit} accepted"
                );
            }
        }
    }
}

#[test]
fn trailing_data_fails() {
    let (k, _, mut msg) = sample();
    msg.push(0);
    assert!(open(&k, &msg).is_err());
    assert!(open_stream(&k, &msg, 64).is_err());
    let (k, _, mut msg) = sample();
    msg.extend_from_slice(&[0u8; 32]);
    assert!(open(&k, &msg).is_err());
    assert!(open_stream(&k, &msg, 3).is_err());
}

#[test]
fn reordered_and_duplicated_frames_fail() {
    let (k, _, msg) = sample();
    let h = header_len(&msg);
    let full = FS as usize + 16;
    let (head, body) = msg.split_at(h);
    let f0 = &body[..full];
    let f1 = &body[full..2 * full];
    let last = &body[2 * full..];
    let swapped = [head, f1, f0, last].concat();
    let duplicated = [head, f0, f0, f1, last].concat();
    let dropped_middle = [head, f0, last].concat();
    for m in [swapped, duplicated, dropped_middle] {
        assert!(matches!(open(&k, &m), Err(Error::Decrypt)));
        assert!(open_stream(&k, &m, 64).is_err());
    }
}

#[test]
fn garbage_is_rejected_with_typed_errors() {
    let k = kek();
    assert!(matches!(open(&k, b""), Err(Error::Truncated(_))));
    assert!(matches!(
        open(&k, b"hello world, this is not a kmseal message at all....."),
        Err(Error::NotKmseal)
    ));
    let mut rng = 0x1234_5678_9abc_def0u64;
    for len in [1usize, 10, 100, 1000] {
        let mut g = vec![0u8; len];
        for b in &mut g {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            *b = rng as u8;
        }
        assert!(open(&k, &g).is_err());
        if len > 7 {
            g[..6].copy_from_slice(b"KMSEAL");
            g[6] = 1;
            assert!(open(&k, &g).is_err());
            assert!(open_stream(&k, &g, 9).is_err());
        }
    }
}

#[test]
fn unknown_version_and_suite() {
    let (k, _, msg) = sample();
    let mut m = msg.clone();
    m[6] = 2;
    assert!(matches!(open(&k, &m), Err(Error::UnsupportedVersion(2))));
    let mut m = msg.clone();
    m[7..9].copy_from_slice(&0x00ffu16.to_be_bytes());
    assert!(matches!(open(&k, &m), Err(Error::UnknownSuite(0x00ff))));
    // A known but different suite id: parses, then fails authentication.
    let mut m = msg;
    m[7..9].copy_from_slice(&Suite::ChaCha20Poly1305.id().to_be_bytes());
    assert!(open(&k, &m).is_err());
}

/// Offsets in a header built with context {app=test}: fixed part 45 bytes, then context.
const CTX_COUNT: usize = 45;

#[test]
fn oversized_counts_and_lengths_hit_limits_before_allocating() {
    let (k, _, msg) = sample();
    // Context entry count far above the limit.
    let mut m = msg.clone();
    m[CTX_COUNT..CTX_COUNT + 2].copy_from_slice(&u16::MAX.to_be_bytes());
    assert!(matches!(
        open(&k, &m),
        Err(Error::LimitExceeded {
            what: "encryption context entries",
            ..
        })
    ));
    // Context key length 65535 with a tight byte limit.
    let mut m = msg.clone();
    m[CTX_COUNT + 2..CTX_COUNT + 4].copy_from_slice(&u16::MAX.to_be_bytes());
    assert!(matches!(open(&k, &m), Err(Error::LimitExceeded { .. })));
    // Frame size above the limit (and above the format maximum).
    for fs in [u32::MAX, (4 << 20) + 1] {
        let mut m = msg.clone();
        m[9..13].copy_from_slice(&fs.to_be_bytes());
        assert!(matches!(
            open(&k, &m),
            Err(Error::LimitExceeded {
                what: "frame size",
                ..
            })
        ));
    }
    let mut m = msg.clone();
    m[9..13].copy_from_slice(&0u32.to_be_bytes());
    assert!(matches!(open(&k, &m), Err(Error::Malformed(_))));
    // Wrapped-key count: the byte after context (2 + 2+3 + 2+4 = 13 bytes), commitment and tag.
    let wk = CTX_COUNT + 13 + 64;
    let mut m = msg.clone();
    assert_eq!(m[wk], 1);
    m[wk] = 255;
    assert!(matches!(
        open(&k, &m),
        Err(Error::LimitExceeded {
            what: "wrapped keys",
            ..
        })
    ));
    m[wk] = 0;
    assert!(matches!(open(&k, &m), Err(Error::Malformed(_))));
    // Header size limit.
    let tight = Limits {
        max_header_bytes: 100,
        ..Limits::default()
    };
    assert!(matches!(
        Header::parse(&msg, &tight),
        Err(Error::LimitExceeded {
            what: "header size",
            ..
        })
    ));
    let tight = Limits {
        max_wrapped_keys: 0,
        ..Limits::default()
    };
    assert!(matches!(
        decryptor(&k).limits(tight).decrypt_blocking(&msg),
        Err(Error::LimitExceeded {
            what: "wrapped keys",
            ..
        })
    ));
}

#[test]
fn wrong_context_and_wrong_kek() {
    let (k, _, msg) = sample();
    let wrong_ctx = Decryptor::new(k.clone() as Arc<dyn Kek>)
        .expect_context("app", "other")
        .unwrap();
    assert!(matches!(
        wrong_ctx.decrypt_blocking(&msg),
        Err(Error::ContextMismatch { .. })
    ));
    let missing = Decryptor::new(k.clone() as Arc<dyn Kek>)
        .expect_context("tenant", "a")
        .unwrap();
    assert!(matches!(
        missing.decrypt_blocking(&msg),
        Err(Error::ContextMismatch { .. })
    ));
    let other = kek();
    match open(&other, &msg) {
        Err(Error::NoMatchingKek { trusted, present }) => {
            assert_eq!(trusted.len(), 1);
            assert!(present[0].contains(k.key_id()));
        }
        other => panic!("expected NoMatchingKek, got {other:?}"),
    }
}

#[test]
fn a_kek_claiming_the_wrong_key_id_is_never_asked() {
    // Strict unwrap: the header names key A; a decryptor trusting only key B never calls B,
    // even though B is a perfectly good local KEK.
    let (_, _, msg) = sample();
    let b = kek();
    assert!(matches!(open(&b, &msg), Err(Error::NoMatchingKek { .. })));
}

#[test]
fn wrapped_keys_that_open_to_different_data_keys_are_rejected() {
    let a = kek();
    let b = kek();
    let pt = b"two recipients, one data key";
    let msg = kmseal::Encryptor::new(a.clone() as Arc<dyn Kek>)
        .add_kek(b.clone() as Arc<dyn Kek>)
        .context("app", "test")
        .unwrap()
        .encrypt_blocking(pt)
        .unwrap();
    let (header, len) = Header::parse(&msg, &Limits::default()).unwrap();
    // Replace B's wrapped key by a wrap of a different data key (what a malicious sender
    // would do to show recipient B another message).
    let other = kmseal::DataKey::generate().unwrap();
    let forged_b = kmseal::blocking::block_on(b.wrap(&other, header.context())).unwrap();
    let keys = vec![header.wrapped_keys()[0].clone(), forged_b];
    let forged = [
        header.with_wrapped_keys(keys).unwrap().to_bytes(),
        msg[len..].to_vec(),
    ]
    .concat();
    // Recipient A still decrypts; recipient B is refused by the key commitment.
    assert_eq!(open(&a, &forged).unwrap().expose_secret(), pt);
    match open(&b, &forged) {
        Err(Error::UnwrapFailed { failures }) => {
            assert_eq!(failures.len(), 1);
            assert!(matches!(failures[0].error, Error::Decrypt));
        }
        other => panic!("expected commitment failure, got {other:?}"),
    }
    // Trusting both, in the order B then A: B fails, A succeeds, same plaintext.
    let both = Decryptor::new(b.clone() as Arc<dyn Kek>)
        .add_kek(a.clone() as Arc<dyn Kek>)
        .decrypt_blocking(&forged)
        .unwrap();
    assert_eq!(both.expose_secret(), pt);
}

#[test]
fn a_stream_failure_is_sticky_and_releases_nothing_unverified() {
    use std::io::Read;
    let (k, pt, msg) = sample();
    let h = header_len(&msg);
    let mut m = msg.clone();
    let second_frame = h + FS as usize + 16 + 3;
    m[second_frame] ^= 1;
    let mut r = decryptor(&k).reader_blocking(&m[..]).unwrap();
    let mut buf = [0u8; 64];
    let n = r.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], &pt[..16], "the verified first frame is released");
    assert!(
        r.read(&mut buf).is_err(),
        "the tampered second frame is not"
    );
    assert!(r.read(&mut buf).is_err(), "and the stream stays failed");
}

/// A KMS that wraps but refuses every unwrap: the error names each KEK tried and why, and
/// nothing is decrypted; a KEK further down the caller's list still opens the message.
#[test]
fn a_kek_that_wraps_but_never_unwraps_is_reported_by_name_and_reason() {
    use std::sync::Arc;

    use async_trait::async_trait;
    use kmseal::{DataKey, EncryptionContext, Error, Kek, KmsErrorKind, LocalKek, WrappedKey};

    #[derive(Debug)]
    struct WrapOnly(LocalKek, &'static str);

    #[async_trait]
    impl Kek for WrapOnly {
        fn provider(&self) -> &str {
            self.0.provider()
        }
        fn key_id(&self) -> &str {
            self.0.key_id()
        }
        fn describe(&self) -> String {
            self.1.to_owned()
        }
        async fn wrap(&self, k: &DataKey, c: &EncryptionContext) -> Result<WrappedKey, Error> {
            self.0.wrap(k, c).await
        }
        async fn unwrap(&self, _: &WrappedKey, _: &EncryptionContext) -> Result<DataKey, Error> {
            Err(Error::Kms {
                provider: "local",
                kind: KmsErrorKind::AccessDenied,
                message: "kms:Decrypt is not allowed for this role".into(),
                source: None,
            })
        }
    }

    let broken: Arc<dyn Kek> = Arc::new(WrapOnly(LocalKek::generate().unwrap(), "kms://primary"));
    let backup: Arc<dyn Kek> = Arc::new(LocalKek::generate().unwrap());
    let msg = kmseal::Encryptor::new(broken.clone())
        .add_kek(backup.clone())
        .encrypt_blocking(b"payload")
        .unwrap();
    let err = kmseal::Decryptor::new(broken.clone())
        .decrypt_blocking(&msg)
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, Error::UnwrapFailed { failures } if failures.len() == 1),
        "{text}"
    );
    assert!(text.contains("kms://primary"), "names the KEK: {text}");
    assert!(
        text.contains("kms:Decrypt is not allowed"),
        "says why: {text}"
    );
    assert!(text.contains("access denied"), "{text}");
    let out = kmseal::Decryptor::new(broken)
        .add_kek(backup)
        .decrypt_blocking(&msg)
        .unwrap();
    assert_eq!(out.expose_secret(), b"payload");
}
