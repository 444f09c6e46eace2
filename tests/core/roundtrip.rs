//! Round-trip properties: one-shot and streaming, both suites, sizes 0 to three frames plus
//! one byte, arbitrary write and read chunking, several KEKs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::io::Write;
use std::sync::Arc;

use crate::common::*;
use kmseal::{Decryptor, Encryptor, Header, Kek, Limits, Suite};
use proptest::prelude::*;

fn suite() -> impl Strategy<Value = Suite> {
    prop_oneof![Just(Suite::Aes256Gcm), Just(Suite::ChaCha20Poly1305)]
}

/// Encrypts through the streaming writer in chunks of the given sizes (cycled).
fn encrypt_stream(
    k: &Arc<kmseal::LocalKek>,
    suite: Suite,
    fs: u32,
    pt: &[u8],
    chunks: &[usize],
) -> Vec<u8> {
    let enc = Encryptor::new(k.clone() as Arc<dyn Kek>)
        .context("app", "test")
        .unwrap()
        .suite(suite)
        .frame_size(kmseal::FrameSize::new(fs).unwrap());
    let mut w = enc.writer_blocking(Vec::new()).unwrap();
    let mut rest = pt;
    let mut i = 0;
    while !rest.is_empty() {
        let n = chunks[i % chunks.len()].clamp(1, rest.len());
        // `write` may accept fewer bytes than offered; write_all loops.
        w.write_all(&rest[..n]).unwrap();
        rest = &rest[n..];
        i += 1;
    }
    w.finish().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn one_shot_round_trips(suite in suite(), fs in 1u32..64, extra in 0usize..2, data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let k = kek();
        // Sizes 0 ..= 3 frames + 1 byte.
        let len = data.len().min(3 * fs as usize + extra);
        let pt = &data[..len];
        let msg = encrypt(&k, suite, fs, pt);
        let got = open(&k, &msg).unwrap();
        prop_assert_eq!(got.expose_secret(), pt);
        let (h, _) = Header::parse(&msg, &Limits::default()).unwrap();
        prop_assert_eq!(h.suite(), suite);
        prop_assert_eq!(h.frame_size(), fs);
    }

    #[test]
    fn streaming_matches_one_shot(suite in suite(), fs in 1u32..48, len in 0usize..200,
                                  wchunks in proptest::collection::vec(1usize..70, 1..5),
                                  rchunk in 1usize..70) {
        let k = kek();
        let len = len.min(3 * fs as usize + 1);
        let pt: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
        let streamed = encrypt_stream(&k, suite, fs, &pt, &wchunks);
        // A streamed message is an ordinary message: both decryptors accept it.
        let got = open(&k, &streamed).unwrap();
        prop_assert_eq!(got.expose_secret(), &pt[..]);
        prop_assert_eq!(open_stream(&k, &streamed, rchunk).unwrap(), pt.clone());
        let one_shot = encrypt(&k, suite, fs, &pt);
        prop_assert_eq!(one_shot.len(), streamed.len());
        prop_assert_eq!(open_stream(&k, &one_shot, rchunk).unwrap(), pt);
    }
}

#[test]
fn exact_multiples_of_the_frame_size_get_an_empty_final_frame() {
    let k = kek();
    for n in [0usize, 1, 2, 3] {
        let pt = vec![0xABu8; 16 * n];
        let msg = encrypt(&k, Suite::Aes256Gcm, 16, &pt);
        let (_, h) = Header::parse(&msg, &Limits::default()).unwrap();
        assert_eq!(msg.len() - h, 16 * n + 16 * (n + 1));
        assert_eq!(open(&k, &msg).unwrap().expose_secret(), &pt[..]);
    }
}

#[test]
fn any_trusted_kek_of_a_keyring_decrypts() {
    let (a, b, c) = (kek(), kek(), kek());
    let msg = Encryptor::new(a.clone() as Arc<dyn Kek>)
        .add_kek(b.clone() as Arc<dyn Kek>)
        .encrypt_blocking(b"shared")
        .unwrap();
    for k in [&a, &b] {
        let pt = Decryptor::new(k.clone() as Arc<dyn Kek>)
            .decrypt_blocking(&msg)
            .unwrap();
        assert_eq!(pt.expose_secret(), b"shared");
    }
    // A decryptor trusting an unrelated key first still succeeds through the second.
    let pt = Decryptor::new(c.clone() as Arc<dyn Kek>)
        .add_kek(b.clone() as Arc<dyn Kek>)
        .decrypt_blocking(&msg)
        .unwrap();
    assert_eq!(pt.expose_secret(), b"shared");
    assert!(
        Decryptor::new(c as Arc<dyn Kek>)
            .decrypt_blocking(&msg)
            .is_err()
    );
}

#[test]
fn large_message_round_trips_with_the_default_frame_size() {
    let k = kek();
    let pt: Vec<u8> = (0..(1usize << 20) + 12345)
        .map(|i| (i % 251) as u8)
        .collect();
    let msg = Encryptor::new(k.clone() as Arc<dyn Kek>)
        .encrypt_blocking(&pt)
        .unwrap();
    let out = Decryptor::new(k.clone() as Arc<dyn Kek>)
        .decrypt_blocking(&msg)
        .unwrap();
    assert!(out.expose_secret() == &pt[..]);
    let mut r = Decryptor::new(k as Arc<dyn Kek>)
        .reader_blocking(&msg[..])
        .unwrap();
    let mut streamed = Vec::new();
    std::io::copy(&mut r, &mut streamed).unwrap();
    assert!(streamed == pt);
}

#[test]
fn messages_are_randomized() {
    let k = kek();
    let a = encrypt(&k, Suite::Aes256Gcm, 64, b"same");
    let b = encrypt(&k, Suite::Aes256Gcm, 64, b"same");
    assert_ne!(a, b, "fresh data key and message id per message");
}

#[tokio::test]
async fn async_api_works_inside_a_runtime() {
    let k = kek();
    let msg = Encryptor::new(k.clone() as Arc<dyn Kek>)
        .encrypt(b"async")
        .await
        .unwrap();
    let pt = Decryptor::new(k as Arc<dyn Kek>)
        .decrypt(&msg)
        .await
        .unwrap();
    assert_eq!(pt.expose_secret(), b"async");
}

#[test]
fn a_writer_dropped_without_finish_yields_a_truncated_message() {
    use std::io::Write;
    let k = kek();
    let mut out = Vec::new();
    {
        let mut w = Encryptor::new(k.clone() as Arc<dyn Kek>)
            .frame_size(kmseal::FrameSize::new(8).unwrap())
            .writer_blocking(&mut out)
            .unwrap();
        w.write_all(b"sixteen bytes!!!").unwrap();
        // dropped here without finish()
    }
    let err = Decryptor::new(k as Arc<dyn Kek>)
        .decrypt_blocking(&out)
        .unwrap_err();
    assert!(matches!(err, kmseal::Error::Truncated(_)), "{err:?}");
}
