//! Interleaved side-by-side measurement: envelope vs raw AEAD, ratio per round, median.
//!
//! Criterion runs benchmarks one after another, so load on a noisy machine lands on them
//! unevenly. Here every round times the raw primitive, envelope encrypt and envelope decrypt
//! back to back on the same data, and the ratio is taken within the round.
//!
//! * Envelope vs raw: for each backend compiled in (RustCrypto always, aws-lc with the
//!   `aws-lc` feature), both suites, 64 B to 64 MiB. The envelope runs on one thread
//!   (`threads(1)`), like the raw primitive, with a fresh data key and local wrap per message.
//! * Parallel frames: 64 MiB with `threads(1)` against the default (all cores), same backend.
//!
//! Run with `scripts/bench-ratio` (release build, `--features aws-lc` for both backends).

#![allow(clippy::cast_possible_truncation)] // test patterns and helpers
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

#[path = "stats.rs"]
mod stats;
use stats::median;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use aes_gcm::aead::{AeadInOut, KeyInit};
use kmseal::blocking::block_on;
use kmseal::{Backend, Decryptor, Encryptor, Kek, LocalKek, SecretBytes, Suite};

fn time<F: FnMut()>(iters: u32, mut f: F) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_secs_f64() / f64::from(iters)
}

fn fmt(size: usize, s: f64) -> String {
    let gbps = size as f64 / s / 1e9;
    if s < 1e-4 {
        format!("{:.2} µs ({gbps:.2} GB/s)", s * 1e6)
    } else {
        format!("{:.0} µs ({gbps:.2} GB/s)", s * 1e6)
    }
}

type Sealer = Box<dyn Fn(&mut [u8])>;

/// The raw primitive of `backend`: one in-place seal of `buf`, keyed once outside the loop.
fn raw_sealer(backend: Backend, suite: Suite) -> Sealer {
    let key = [7u8; 32];
    match (backend, suite) {
        #[cfg(feature = "aws-lc")]
        (Backend::AwsLc, _) => {
            let alg = match suite {
                Suite::Aes256Gcm => &aws_lc_rs::aead::AES_256_GCM,
                _ => &aws_lc_rs::aead::CHACHA20_POLY1305,
            };
            let k = aws_lc_rs::aead::LessSafeKey::new(
                aws_lc_rs::aead::UnboundKey::new(alg, &key).unwrap(),
            );
            Box::new(move |buf| {
                let tag = k.seal_in_place_separate_tag(
                    aws_lc_rs::aead::Nonce::assume_unique_for_key([0u8; 12]),
                    aws_lc_rs::aead::Aad::empty(),
                    buf,
                );
                let _ = black_box(tag.unwrap());
            })
        }
        (_, Suite::Aes256Gcm) => {
            let c = aes_gcm::Aes256Gcm::new(&key.into());
            Box::new(move |buf| {
                black_box(
                    c.encrypt_inout_detached(&Default::default(), b"", buf.into())
                        .unwrap(),
                );
            })
        }
        _ => {
            let c = chacha20poly1305::ChaCha20Poly1305::new(&key.into());
            Box::new(move |buf| {
                black_box(
                    c.encrypt_inout_detached(&Default::default(), b"", buf.into())
                        .unwrap(),
                );
            })
        }
    }
}

fn size_name(size: usize) -> String {
    match size {
        s if s >= 1 << 20 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

fn iters_for(size: usize) -> u32 {
    ((64u32 << 20) / size as u32).clamp(3, 20_000)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = if args.iter().any(|a| a == "--quick") {
        5
    } else {
        21
    };
    let kek: Arc<dyn Kek> = Arc::new(LocalKek::generate().unwrap());
    let mut backends = vec![Backend::RustCrypto];
    if cfg!(feature = "aws-lc") {
        backends.push(Backend::AwsLc);
    }
    println!("### Envelope vs raw primitive, one thread ({rounds} rounds)\n");
    println!(
        "`encrypt`/`decrypt` return a fresh buffer per message; `_into` reuse the caller's \
         (`encrypt_into`, `decrypt_into`). Percent: share of the raw primitive's speed.\n"
    );
    println!(
        "| backend | suite | size | raw | encrypt | % | encrypt_into | % | decrypt | % | decrypt_into | % |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for &backend in &backends {
        for suite in Suite::ALL {
            let raw_seal = raw_sealer(backend, suite);
            for size in [64usize, 1 << 10, 64 << 10, 1 << 20, 64 << 20] {
                let iters = iters_for(size);
                let enc = Encryptor::new(kek.clone())
                    .backend(backend)
                    .unwrap()
                    .suite(suite)
                    .threads(1);
                let dec = Decryptor::new(kek.clone())
                    .backend(backend)
                    .unwrap()
                    .threads(1);
                let pt = vec![0x5Au8; size];
                let msg = enc.encrypt_blocking(&pt).unwrap();
                let mut buf = pt.clone();
                let mut sealed = Vec::new();
                let mut opened = SecretBytes::new();
                // [raw, encrypt, encrypt_into, decrypt, decrypt_into] times, then ratios.
                let mut t: [Vec<f64>; 5] = Default::default();
                let mut r: [Vec<f64>; 4] = Default::default();
                for _ in 0..rounds {
                    let raw = time(iters, || raw_seal(&mut buf[..]));
                    let ops = [
                        time(iters, || {
                            drop(black_box(enc.encrypt_blocking(black_box(&pt)).unwrap()))
                        }),
                        time(iters, || {
                            block_on(enc.encrypt_into(black_box(&pt), &mut sealed)).unwrap();
                            black_box(&sealed);
                        }),
                        time(iters, || {
                            drop(black_box(dec.decrypt_blocking(black_box(&msg)).unwrap()))
                        }),
                        time(iters, || {
                            block_on(dec.decrypt_into(black_box(&msg), &mut opened)).unwrap();
                            black_box(&opened);
                        }),
                    ];
                    t[0].push(raw);
                    for (i, op) in ops.into_iter().enumerate() {
                        t[i + 1].push(op);
                        r[i].push(raw / op);
                    }
                }
                let mut row = format!(
                    "| {backend:?} | {suite} | {} | {} |",
                    size_name(size),
                    fmt(size, median(&mut t[0]))
                );
                for i in 0..4 {
                    row += &format!(
                        " {} | {:.0}% |",
                        fmt(size, median(&mut t[i + 1])),
                        100.0 * median(&mut r[i])
                    );
                }
                println!("{row}");
            }
        }
    }

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("\n### Parallel frames: 64 MiB, one thread vs {cores} ({rounds} rounds)\n");
    println!("| backend | suite | op | 1 thread | {cores} threads | speed-up |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let size = 64usize << 20;
    for &backend in &backends {
        for suite in Suite::ALL {
            let enc = Encryptor::new(kek.clone()).backend(backend).unwrap();
            let dec = Decryptor::new(kek.clone()).backend(backend).unwrap();
            let one = enc.clone().suite(suite).threads(1);
            let all = enc.suite(suite);
            let dec1 = dec.clone().threads(1);
            let decn = dec;
            let pt = vec![0x5Au8; size];
            let msg = one.encrypt_blocking(&pt).unwrap();
            assert_eq!(
                decn.decrypt_blocking(&msg).unwrap().expose_secret(),
                &pt[..]
            );
            let mut sealed = Vec::new();
            let mut opened = SecretBytes::new();
            // Per op: [one thread, all threads, speed-up].
            let mut m: [[Vec<f64>; 3]; 4] = Default::default();
            for _ in 0..rounds {
                let pairs = [
                    (
                        time(3, || drop(black_box(one.encrypt_blocking(&pt).unwrap()))),
                        time(3, || drop(black_box(all.encrypt_blocking(&pt).unwrap()))),
                    ),
                    (
                        time(3, || block_on(one.encrypt_into(&pt, &mut sealed)).unwrap()),
                        time(3, || block_on(all.encrypt_into(&pt, &mut sealed)).unwrap()),
                    ),
                    (
                        time(3, || drop(black_box(dec1.decrypt_blocking(&msg).unwrap()))),
                        time(3, || drop(black_box(decn.decrypt_blocking(&msg).unwrap()))),
                    ),
                    (
                        time(3, || {
                            block_on(dec1.decrypt_into(&msg, &mut opened))
                                .map(drop)
                                .unwrap()
                        }),
                        time(3, || {
                            block_on(decn.decrypt_into(&msg, &mut opened))
                                .map(drop)
                                .unwrap()
                        }),
                    ),
                ];
                for (i, (a, b)) in pairs.into_iter().enumerate() {
                    m[i][0].push(a);
                    m[i][1].push(b);
                    m[i][2].push(a / b);
                }
            }
            for (i, op) in ["encrypt", "encrypt_into", "decrypt", "decrypt_into"]
                .into_iter()
                .enumerate()
            {
                let [a, b, c] = &mut m[i];
                println!(
                    "| {backend:?} | {suite} | {op} | {} | {} | **{:.2}×** |",
                    fmt(size, median(a)),
                    fmt(size, median(b)),
                    median(c)
                );
            }
        }
    }
}
