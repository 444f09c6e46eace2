//! Frozen format vectors in `tests/data/`: this test rebuilds every vector from fixed
//! "randomness" and checks the encoder's output byte for byte against the committed files.
//! `tests/core/vectors.rs` checks, through the public API only, that valid vectors decrypt to the
//! recorded plaintext and every `fail_*` vector fails.
//!
//! A mismatch here is a format change. Never regenerate to make this pass; only a deliberate
//! new format version adds vectors (`KMSEAL_WRITE_VECTORS=1 cargo test --lib vectors` writes
//! missing files and never overwrites existing ones).

use std::path::PathBuf;

use crate::context::EncryptionContext;
use crate::envelope::{encrypt_deterministic, encrypt_deterministic_signed, signed_context};
use crate::format::{Header, Limits};
use crate::kek::{DataKey, WrappedKey};
use crate::local::LocalKek;
use crate::secret::SecretBytes;
use crate::suite::Suite;

const TEXT: &[u8] = b"kmseal frozen test vector: the quick brown fox jumps over the lazy dog";

fn seq<const N: usize>(start: u8) -> [u8; N] {
    std::array::from_fn(|i| start.wrapping_add(i as u8))
}

fn kek(start: u8) -> LocalKek {
    LocalKek::from_key_bytes(&SecretBytes::from_slice(&seq::<32>(start)).unwrap()).unwrap()
}

fn context() -> EncryptionContext {
    EncryptionContext::try_from(vec![("app", "kmseal-test-vectors"), ("purpose", "frozen")])
        .unwrap()
}

fn dek(start: u8) -> DataKey {
    DataKey::from_bytes(&seq::<32>(start)).unwrap()
}

fn wrap(kek: &LocalKek, dek: &DataKey, nonce_start: u8) -> WrappedKey {
    kek.wrap_with_nonce(dek, &context(), seq::<12>(nonce_start))
        .unwrap()
}

fn message(suite: Suite, frame_size: u32, wrapped: Vec<WrappedKey>, pt: &[u8]) -> Vec<u8> {
    encrypt_deterministic(
        &dek(0x40),
        seq::<32>(0x80),
        suite,
        frame_size,
        context(),
        wrapped,
        pt,
    )
    .unwrap()
}

/// (name, bytes, plaintext for valid vectors).
type Vector = (String, Vec<u8>, Option<Vec<u8>>);

fn all_vectors() -> Vec<Vector> {
    let (a, b) = (kek(0x00), kek(0x20));
    let d = dek(0x40);
    let wa = || vec![wrap(&a, &d, 0xC0)];
    let mut v: Vec<Vector> = Vec::new();
    let mut valid =
        |name: &str, bytes: Vec<u8>, pt: &[u8]| v.push((name.into(), bytes, Some(pt.to_vec())));

    let frames = message(Suite::Aes256Gcm, 16, wa(), TEXT);
    valid(
        "v1_aes256gcm_empty",
        message(Suite::Aes256Gcm, 16, wa(), b""),
        b"",
    );
    valid("v1_aes256gcm_frames", frames.clone(), TEXT);
    valid(
        "v1_aes256gcm_exact_frames",
        message(Suite::Aes256Gcm, 16, wa(), &TEXT[..64]),
        &TEXT[..64],
    );
    valid(
        "v1_chacha20poly1305_frames",
        message(Suite::ChaCha20Poly1305, 16, wa(), TEXT),
        TEXT,
    );
    valid(
        "v1_chacha20poly1305_one_frame",
        message(Suite::ChaCha20Poly1305, 65536, wa(), TEXT),
        TEXT,
    );
    let multi = message(
        Suite::Aes256Gcm,
        32,
        vec![wrap(&a, &d, 0xC0), wrap(&b, &d, 0xD0)],
        TEXT,
    );
    valid("v1_multi_kek", multi.clone(), TEXT);
    // What a rewrap produces: A's entry removed, B re-wrapped, payload untouched.
    let (h, hl) = Header::parse(&multi, &Limits::default()).unwrap();
    let rewrapped = [
        h.with_wrapped_keys(vec![wrap(&b, &d, 0xE0)])
            .unwrap()
            .to_bytes(),
        multi[hl..].to_vec(),
    ]
    .concat();
    valid("v1_rewrapped", rewrapped, TEXT);

    // Corruptions of v1_aes256gcm_frames: 4 full frames of 16+16 bytes, final frame 6+16.
    let (h, hl) = Header::parse(&frames, &Limits::default()).unwrap();
    let ctx_end = 45 + h.context().encoded_len();
    let (commit, tag) = (ctx_end, ctx_end + 32);
    let frame = |i: usize| hl + i * 32;
    let mut fail = |name: &str, bytes: Vec<u8>| v.push((format!("fail_{name}"), bytes, None));
    let flip = |at: usize| {
        let mut m = frames.clone();
        m[at] ^= 0x01;
        m
    };
    fail("empty", Vec::new());
    fail("header_only", frames[..hl].to_vec());
    fail("truncated_final_frame", frames[..frame(4)].to_vec());
    fail("truncated_mid_frame", frames[..frames.len() - 1].to_vec());
    fail("trailing_byte", [&frames[..], &[0]].concat());
    fail(
        "frames_swapped",
        [
            &frames[..frame(0)],
            &frames[frame(1)..frame(2)],
            &frames[frame(0)..frame(1)],
            &frames[frame(2)..],
        ]
        .concat(),
    );
    fail(
        "frame_duplicated",
        [&frames[..frame(1)], &frames[frame(0)..]].concat(),
    );
    fail(
        "frame_dropped",
        [&frames[..frame(1)], &frames[frame(2)..]].concat(),
    );
    fail("frame_bit_flip", flip(frame(2) + 5));
    fail("frame_tag_bit_flip", flip(frame(1) + 20));
    fail("bad_magic", flip(0));
    fail("unknown_version", {
        let mut m = frames.clone();
        m[6] = 2;
        m
    });
    fail("unknown_suite", {
        let mut m = frames.clone();
        m[7..9].copy_from_slice(&[0, 0x99]);
        m
    });
    fail("suite_swapped", {
        let mut m = frames.clone();
        m[7..9].copy_from_slice(&Suite::ChaCha20Poly1305.id().to_be_bytes());
        m
    });
    fail("frame_size_changed", {
        let mut m = frames.clone();
        m[12] = 17;
        m
    });
    fail("message_id_flipped", flip(13));
    fail("context_value_changed", {
        let mut m = frames.clone();
        let at = ctx_end - 1; // last byte of the last value ("frozen" -> "frozeo")
        m[at] ^= 0x01;
        m
    });
    fail("commitment_flipped", flip(commit));
    fail("header_tag_flipped", flip(tag + 31));
    fail("wrapped_key_flipped", flip(hl - 1));
    // The key section wraps a different data key: the commitment rejects it.
    fail(
        "wrong_data_key",
        [
            h.with_wrapped_keys(vec![wrap(&a, &dek(0x60), 0xC0)])
                .unwrap()
                .to_bytes(),
            frames[hl..].to_vec(),
        ]
        .concat(),
    );
    // Wrapped only for a KEK the decryptor does not trust: strict unwrap asks nobody.
    fail(
        "wrapped_for_unknown_kek",
        [
            h.with_wrapped_keys(vec![wrap(&kek(0x99), &d, 0xC0)])
                .unwrap()
                .to_bytes(),
            frames[hl..].to_vec(),
        ]
        .concat(),
    );
    signed_vectors(&mut v);
    v
}

/// Signed suites (0x0101, 0x0102): valid messages, and what a co-recipient who can open the
/// data key (with KEK A) but holds no signing key can try against the holder of KEK B.
fn signed_vectors(v: &mut Vec<Vector>) {
    let (a, b) = (kek(0x00), kek(0x20));
    let d = dek(0x40);
    let seed = seq::<32>(0xA0);
    let ctx = signed_context(&context(), &seed);
    let wrap_ctx = |k: &LocalKek, n: u8| k.wrap_with_nonce(&d, &ctx, seq::<12>(n)).unwrap();
    let signed = |suite: Suite, fs: u32, wrapped: Vec<WrappedKey>, pt: &[u8], signer: [u8; 32]| {
        encrypt_deterministic_signed(
            &d,
            seq::<32>(0x80),
            suite,
            fs,
            ctx.clone(),
            wrapped,
            pt,
            &signer,
        )
        .unwrap()
    };
    let mut valid =
        |name: &str, bytes: Vec<u8>, pt: &[u8]| v.push((name.into(), bytes, Some(pt.to_vec())));
    let frames = signed(Suite::Aes256Gcm, 16, vec![wrap_ctx(&a, 0xC0)], TEXT, seed);
    valid("v1_aes256gcm_ed25519_frames", frames.clone(), TEXT);
    valid(
        "v1_aes256gcm_ed25519_empty",
        signed(Suite::Aes256Gcm, 16, vec![wrap_ctx(&a, 0xC0)], b"", seed),
        b"",
    );
    valid(
        "v1_chacha20poly1305_ed25519_frames",
        signed(
            Suite::ChaCha20Poly1305,
            16,
            vec![wrap_ctx(&a, 0xC0)],
            TEXT,
            seed,
        ),
        TEXT,
    );
    let multi = signed(
        Suite::Aes256Gcm,
        32,
        vec![wrap_ctx(&a, 0xC0), wrap_ctx(&b, 0xD0)],
        TEXT,
        seed,
    );
    valid("v1_ed25519_multi_kek", multi.clone(), TEXT);
    // A rewrap keeps the signature valid: it covers the authenticated header and the frames,
    // not the key section.
    let (h, hl) = Header::parse(&multi, &Limits::default()).unwrap();
    valid(
        "v1_ed25519_rewrapped",
        [
            h.with_wrapped_keys(vec![wrap_ctx(&b, 0xE0)])
                .unwrap()
                .to_bytes(),
            multi[hl..].to_vec(),
        ]
        .concat(),
        TEXT,
    );

    let mut fail = |name: &str, bytes: Vec<u8>| v.push((format!("fail_{name}"), bytes, None));
    let flip = |at: usize| {
        let mut m = frames.clone();
        m[at] ^= 0x01;
        m
    };
    fail("signature_flipped", flip(frames.len() - 1));
    fail("signature_length_changed", flip(frames.len() - 65));
    fail("signature_truncated", frames[..frames.len() - 1].to_vec());
    fail("signature_missing", frames[..frames.len() - 66].to_vec());
    fail("signed_trailing_byte", [&frames[..], &[0]].concat());
    // The co-recipient's forgeries, with B's wrapped key (and so the context B's wrap binds,
    // naming the real signing key): other frames signed with another key ...
    let other = seq::<32>(0x10);
    fail(
        "signed_by_another_key",
        signed(
            Suite::Aes256Gcm,
            32,
            vec![wrap_ctx(&b, 0xD0)],
            b"forged by a co-recipient",
            other,
        ),
    );
    // ... or the same message re-keyed as unsigned (suite 0x0001), which needs no signature.
    fail(
        "signed_downgraded_to_unsigned",
        encrypt_deterministic(
            &d,
            seq::<32>(0x80),
            Suite::Aes256Gcm,
            32,
            ctx.clone(),
            vec![wrap_ctx(&b, 0xD0)],
            b"forged by a co-recipient",
        )
        .unwrap(),
    );
    // A context naming a public key for another signer: the wrap no longer matches (the
    // forger cannot re-wrap for B).
    fail(
        "signed_key_replaced",
        encrypt_deterministic_signed(
            &d,
            seq::<32>(0x80),
            Suite::Aes256Gcm,
            32,
            signed_context(&context(), &other),
            vec![wrap_ctx(&b, 0xD0)],
            b"forged by a co-recipient",
            &other,
        )
        .unwrap(),
    );
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
}

#[test]
fn encoder_output_matches_frozen_vectors_byte_for_byte() {
    let dir = data_dir();
    let write = std::env::var_os("KMSEAL_WRITE_VECTORS").is_some();
    let vectors = all_vectors();
    assert!(vectors.len() >= 25);
    for (name, bytes, pt) in vectors {
        let path = dir.join(format!("{name}.kmseal"));
        if write && !path.exists() {
            std::fs::write(&path, &bytes).unwrap();
            if let Some(pt) = &pt {
                std::fs::write(dir.join(format!("{name}.plaintext")), pt).unwrap();
            }
        }
        let frozen = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            frozen == bytes,
            "{name}: encoder output differs from the frozen vector (format change?)"
        );
    }
}
