//! Envelope encryption next to the raw AEAD primitive of the same backend, in one run.
//!
//! `cargo bench --bench envelope` (RustCrypto only) or
//! `cargo bench --features aws-lc --bench envelope` (both backends); add `-- GROUP` to pick.
//! Groups:
//! * `{backend}/{suite}`: for RustCrypto and (with the feature) aws-lc, both suites, 64 B to
//!   64 MiB: `raw` (the backend's AEAD sealing the buffer in place, keyed once), `encrypt` and
//!   `decrypt` (the whole public call with a fresh output buffer: data key, local wrap or
//!   unwrap, HKDF, header, frames), `encrypt_into` and `decrypt_into` (reused output buffers).
//!   All on one thread (`threads(1)`), like the raw primitive.
//! * `cached_1KiB/{backend}`: 1 KiB messages with the data-key caches, against no cache.
//! * `parallel_64MiB/{backend}`: one thread against the default (all cores).
//! * `stream_1GiB/{backend}`: `EncryptWriter` / `DecryptReader` over 1 GiB in 1 MiB writes and
//!   reads, against one-shot `encrypt_into` / `decrypt_into` of 1 GiB. Peak memory of the
//!   stream is measured by `scripts/bench-stream` (criterion cannot).
//! * `header`: parsing and encoding a typical header (one wrapped key, a two-entry context),
//!   next to a whole cached 1 KiB `decrypt_into`, to show the parser's share of it.
//! * `frame_size`: streaming 16 MiB with frame sizes 4 KiB to 1 MiB (the default's choice).
//!
//! Criterion runs benchmarks one after another, so load that comes and goes skews ratios;
//! `scripts/bench-ratio` interleaves them and is what BENCHMARKS.md's targets quote.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::{AeadInOut, KeyInit};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kmseal::blocking::block_on;
use kmseal::{
    Backend, CacheLimits, DecryptCache, Decryptor, EncryptCache, Encryptor, Kek, LocalKek,
    SecretBytes, Suite,
};

const SIZES: [usize; 5] = [64, 1 << 10, 64 << 10, 1 << 20, 64 << 20];

fn backends() -> Vec<Backend> {
    let mut b = vec![Backend::RustCrypto];
    if cfg!(feature = "aws-lc") {
        b.push(Backend::AwsLc);
    }
    b
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::AwsLc => "aws-lc",
        _ => "rustcrypto",
    }
}

type Sealer = Box<dyn Fn(&mut [u8])>;

/// The raw primitive of `backend`: one in-place seal of `buf`, keyed once.
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
                let tag = c.encrypt_inout_detached(&Default::default(), b"", buf.into());
                black_box(tag.unwrap());
            })
        }
        _ => {
            let c = chacha20poly1305::ChaCha20Poly1305::new(&key.into());
            Box::new(move |buf| {
                let tag = c.encrypt_inout_detached(&Default::default(), b"", buf.into());
                black_box(tag.unwrap());
            })
        }
    }
}

fn kek() -> Arc<dyn Kek> {
    Arc::new(LocalKek::generate().unwrap())
}

fn envelope_vs_raw(c: &mut Criterion) {
    let kek = kek();
    for backend in backends() {
        for suite in Suite::ALL {
            let mut g = c.benchmark_group(format!("{}/{}", backend_name(backend), suite.name()));
            let enc = Encryptor::new(kek.clone())
                .backend(backend)
                .unwrap()
                .suite(suite)
                .threads(1);
            let dec = Decryptor::new(kek.clone())
                .backend(backend)
                .unwrap()
                .threads(1);
            let raw = raw_sealer(backend, suite);
            for size in SIZES {
                g.throughput(Throughput::Bytes(size as u64));
                if size >= 64 << 20 {
                    g.sample_size(10);
                    g.measurement_time(Duration::from_secs(3));
                }
                let pt = vec![0x5Au8; size];
                let mut buf = pt.clone();
                g.bench_with_input(BenchmarkId::new("raw", size), &size, |b, _| {
                    b.iter(|| raw(&mut buf))
                });
                g.bench_with_input(BenchmarkId::new("encrypt", size), &size, |b, _| {
                    b.iter(|| black_box(enc.encrypt_blocking(black_box(&pt)).unwrap()))
                });
                let mut sealed = Vec::new();
                g.bench_with_input(BenchmarkId::new("encrypt_into", size), &size, |b, _| {
                    b.iter(|| block_on(enc.encrypt_into(black_box(&pt), &mut sealed)).unwrap())
                });
                let msg = enc.encrypt_blocking(&pt).unwrap();
                g.bench_with_input(BenchmarkId::new("decrypt", size), &size, |b, _| {
                    b.iter(|| black_box(dec.decrypt_blocking(black_box(&msg)).unwrap()))
                });
                let mut opened = SecretBytes::new();
                g.bench_with_input(BenchmarkId::new("decrypt_into", size), &size, |b, _| {
                    b.iter(|| block_on(dec.decrypt_into(black_box(&msg), &mut opened)).unwrap())
                });
            }
            g.finish();
        }
    }
}

fn cached_small(c: &mut Criterion) {
    let kek = kek();
    let pt = vec![0x42u8; 1024];
    for backend in backends() {
        let mut g = c.benchmark_group(format!("cached_1KiB/{}", backend_name(backend)));
        g.throughput(Throughput::Elements(1));
        let plain_enc = Encryptor::new(kek.clone()).backend(backend).unwrap();
        let plain_dec = Decryptor::new(kek.clone()).backend(backend).unwrap();
        let enc = plain_enc
            .clone()
            .cache(EncryptCache::new(CacheLimits::default()));
        let dec = plain_dec
            .clone()
            .cache(DecryptCache::new(Duration::from_secs(300), 100));
        let msg = enc.encrypt_blocking(&pt).unwrap();
        let mut sealed = Vec::new();
        let mut opened = SecretBytes::new();
        g.bench_function("encrypt_no_cache", |b| {
            b.iter(|| block_on(plain_enc.encrypt_into(black_box(&pt), &mut sealed)).unwrap())
        });
        g.bench_function("encrypt_cached", |b| {
            b.iter(|| block_on(enc.encrypt_into(black_box(&pt), &mut sealed)).unwrap())
        });
        g.bench_function("decrypt_no_cache", |b| {
            b.iter(|| block_on(plain_dec.decrypt_into(black_box(&msg), &mut opened)).unwrap())
        });
        g.bench_function("decrypt_cached", |b| {
            b.iter(|| block_on(dec.decrypt_into(black_box(&msg), &mut opened)).unwrap())
        });
        g.finish();
    }
}

fn parallel(c: &mut Criterion) {
    let kek = kek();
    let size = 64usize << 20;
    let pt = vec![0x5Au8; size];
    for backend in backends() {
        let mut g = c.benchmark_group(format!("parallel_64MiB/{}", backend_name(backend)));
        g.throughput(Throughput::Bytes(size as u64));
        g.sample_size(10);
        for suite in Suite::ALL {
            let msg = Encryptor::new(kek.clone())
                .backend(backend)
                .unwrap()
                .suite(suite)
                .encrypt_blocking(&pt)
                .unwrap();
            for (label, threads) in [("1_thread", Some(1)), ("default", None)] {
                let mut enc = Encryptor::new(kek.clone())
                    .backend(backend)
                    .unwrap()
                    .suite(suite);
                let mut dec = Decryptor::new(kek.clone()).backend(backend).unwrap();
                if let Some(t) = threads {
                    enc = enc.threads(t);
                    dec = dec.threads(t);
                }
                let mut sealed = Vec::new();
                let mut opened = SecretBytes::new();
                let id = format!("{}/{label}", suite.name());
                g.bench_function(format!("encrypt_into/{id}"), |b| {
                    b.iter(|| block_on(enc.encrypt_into(&pt, &mut sealed)).unwrap())
                });
                g.bench_function(format!("decrypt_into/{id}"), |b| {
                    b.iter(|| block_on(dec.decrypt_into(&msg, &mut opened)).unwrap())
                });
            }
        }
        g.finish();
    }
}

/// Discards output but keeps the compiler from eliding writes.
struct Sink(u64);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.wrapping_add(buf.len() as u64);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn stream(c: &mut Criterion) {
    let kek = kek();
    let total = 1usize << 30;
    let chunk = vec![0x5Au8; 1 << 20];
    for backend in backends() {
        let mut g = c.benchmark_group(format!("stream_1GiB/{}", backend_name(backend)));
        g.throughput(Throughput::Bytes(total as u64));
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(10));
        let enc = Encryptor::new(kek.clone()).backend(backend).unwrap();
        let dec = Decryptor::new(kek.clone()).backend(backend).unwrap();
        g.bench_function("stream_encrypt", |b| {
            b.iter(|| {
                let mut w = enc.writer_blocking(Sink(0)).unwrap();
                for _ in 0..total / chunk.len() {
                    w.write_all(&chunk).unwrap();
                }
                black_box(w.finish().unwrap().0)
            })
        });
        let pt: Vec<u8> = chunk.iter().copied().cycle().take(total).collect();
        let mut sealed = Vec::new();
        g.bench_function("one_shot_encrypt_into", |b| {
            b.iter(|| block_on(enc.encrypt_into(&pt, &mut sealed)).unwrap())
        });
        drop(pt);
        let mut out = vec![0u8; 1 << 20];
        g.bench_function("stream_decrypt", |b| {
            b.iter(|| {
                let mut r = dec.reader_blocking(&sealed[..]).unwrap();
                let mut n = 0;
                loop {
                    match r.read(&mut out).unwrap() {
                        0 => break,
                        k => n += k,
                    }
                }
                black_box(n)
            })
        });
        let mut opened = SecretBytes::new();
        g.bench_function("one_shot_decrypt_into", |b| {
            b.iter(|| block_on(dec.decrypt_into(&sealed, &mut opened)).unwrap())
        });
        g.finish();
    }
}

fn header(c: &mut Criterion) {
    let kek = kek();
    let pt = vec![0x42u8; 1024];
    let enc = Encryptor::new(kek.clone())
        .context("tenant", "acme")
        .unwrap()
        .context("purpose", "orders")
        .unwrap();
    let dec = Decryptor::new(kek).cache(DecryptCache::new(Duration::from_secs(300), 100));
    let msg = enc.encrypt_blocking(&pt).unwrap();
    let limits = kmseal::Limits::default();
    let (parsed, len) = kmseal::Header::parse(&msg, &limits).unwrap();
    let mut g = c.benchmark_group("header");
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("parse_{len}B"), |b| {
        b.iter(|| black_box(kmseal::Header::parse(black_box(&msg), &limits).unwrap()))
    });
    let mut out = Vec::with_capacity(len);
    g.bench_function(format!("encode_{len}B"), |b| {
        b.iter(|| {
            out.clear();
            parsed.write_to_vec(&mut out);
            black_box(out.len())
        })
    });
    let mut opened = SecretBytes::new();
    g.bench_function("decrypt_into_1KiB_cached", |b| {
        b.iter(|| block_on(dec.decrypt_into(black_box(&msg), &mut opened)).unwrap())
    });
    g.finish();
}

fn frame_sizes(c: &mut Criterion) {
    let kek = kek();
    let total = 16usize << 20;
    let pt = vec![0x5Au8; 256 << 10];
    let mut g = c.benchmark_group("frame_size");
    g.throughput(Throughput::Bytes(total as u64));
    g.sample_size(20);
    for fs in [4u32 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20] {
        let enc = Encryptor::new(kek.clone())
            .frame_size(kmseal::FrameSize::new(fs).unwrap())
            .threads(1);
        g.bench_with_input(BenchmarkId::new("stream_encrypt_16MiB", fs), &fs, |b, _| {
            b.iter(|| {
                let mut w = enc.writer_blocking(Sink(0)).unwrap();
                for _ in 0..total / pt.len() {
                    w.write_all(&pt).unwrap();
                }
                black_box(w.finish().unwrap().0)
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    envelope_vs_raw,
    cached_small,
    parallel,
    stream,
    header,
    frame_sizes
);
criterion_main!(benches);
