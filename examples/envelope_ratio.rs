//! Interleaved side-by-side measurement: envelope vs raw AEAD, ratio per round, median.
//!
//! Criterion runs benchmarks one after another, so load on a noisy machine lands on them
//! unevenly. Here every round times the raw primitive, envelope encrypt and envelope decrypt
//! back to back on the same data, and the ratio is taken within the round.
//! Run with `scripts/bench-ratio` (release build).
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

#[cfg(not(feature = "aws-lc"))]
use aes_gcm::aead::{AeadInOut, KeyInit};
use kmseal::{Decryptor, Encryptor, Kek, LocalKek, Suite};

fn time<F: FnMut()>(iters: u32, mut f: F) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_secs_f64() / f64::from(iters)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let rounds = 21;
    println!("backend: {:?}", kmseal::Backend::current());
    let kek: Arc<dyn Kek> = Arc::new(LocalKek::generate().unwrap());
    #[cfg(not(feature = "aws-lc"))]
    let aes = aes_gcm::Aes256Gcm::new(&[7u8; 32].into());
    #[cfg(not(feature = "aws-lc"))]
    let chacha = chacha20poly1305::ChaCha20Poly1305::new(&[7u8; 32].into());
    println!("| suite | size | raw | envelope encrypt | ratio | envelope decrypt | ratio |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for suite in Suite::ALL {
        for size in [1usize << 10, 64 << 10, 1 << 20, 64 << 20] {
            let iters = ((64u32 << 20) / size as u32).clamp(3, 20_000);
            let enc = Encryptor::new(kek.clone()).suite(suite);
            let dec = Decryptor::new(kek.clone());
            let pt = vec![0x5Au8; size];
            let msg = enc.encrypt_blocking(&pt).unwrap();
            let mut buf = pt.clone();
            let (mut raw, mut e, mut d, mut re, mut rd) = (vec![], vec![], vec![], vec![], vec![]);
            for _ in 0..rounds {
                // The raw primitive of the backend the envelope uses (aws-lc with the
                // feature on), keyed once outside the timed loop.
                #[cfg(feature = "aws-lc")]
                let key = aws_lc_rs::aead::LessSafeKey::new(
                    aws_lc_rs::aead::UnboundKey::new(
                        match suite {
                            Suite::Aes256Gcm => &aws_lc_rs::aead::AES_256_GCM,
                            _ => &aws_lc_rs::aead::CHACHA20_POLY1305,
                        },
                        &[7u8; 32],
                    )
                    .unwrap(),
                );
                #[cfg(feature = "aws-lc")]
                let r = time(iters, || {
                    let tag = key.seal_in_place_separate_tag(
                        aws_lc_rs::aead::Nonce::assume_unique_for_key([0u8; 12]),
                        aws_lc_rs::aead::Aad::empty(),
                        &mut buf[..],
                    );
                    let _ = black_box(tag.unwrap());
                });
                #[cfg(not(feature = "aws-lc"))]
                let r = time(iters, || {
                    let tag = match suite {
                        Suite::Aes256Gcm => aes.encrypt_inout_detached(
                            &Default::default(),
                            b"",
                            (&mut buf[..]).into(),
                        ),
                        _ => chacha.encrypt_inout_detached(
                            &Default::default(),
                            b"",
                            (&mut buf[..]).into(),
                        ),
                    };
                    black_box(tag.unwrap());
                });
                let te = time(iters, || {
                    drop(black_box(enc.encrypt_blocking(black_box(&pt)).unwrap()))
                });
                let td = time(iters, || {
                    drop(black_box(dec.decrypt_blocking(black_box(&msg)).unwrap()))
                });
                raw.push(r);
                e.push(te);
                d.push(td);
                re.push(r / te);
                rd.push(r / td);
            }
            let fmt = |s: f64| {
                let gbps = size as f64 / s / 1e9;
                if s < 1e-4 {
                    format!("{:.2} µs ({gbps:.2} GB/s)", s * 1e6)
                } else {
                    format!("{:.0} µs ({gbps:.2} GB/s)", s * 1e6)
                }
            };
            println!(
                "| {suite} | {size} | {} | {} | {:.0}% | {} | {:.0}% |",
                fmt(median(&mut raw)),
                fmt(median(&mut e)),
                100.0 * median(&mut re),
                fmt(median(&mut d)),
                100.0 * median(&mut rd),
            );
        }
    }
}
