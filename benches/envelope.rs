//! Envelope encrypt/decrypt against the raw AEAD primitive, measured side by side in one run.
//!
//! `cargo bench --bench envelope` (all groups) or `cargo bench --bench envelope -- GROUP`.
//! Groups:
//! * `aes256gcm/*` and `chacha20poly1305/*`: raw primitive (in place, no envelope), envelope
//!   one-shot encrypt, envelope one-shot decrypt, at 1 KiB, 64 KiB and 1 MiB. The envelope
//!   figures include data-key generation, the local KEK wrap/unwrap, HKDF, header encoding and
//!   parsing, the output copy and (decrypt) the locked output buffer.
//! * `frame_size/*`: streaming encryption of 16 MiB with frame sizes 4 KiB to 1 MiB, to
//!   choose the default frame size.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::io::Write;
use std::sync::Arc;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kmseal::{Decryptor, Encryptor, Kek, LocalKek, Suite};

const SIZES: [usize; 3] = [1 << 10, 64 << 10, 1 << 20];

fn raw<A: AeadInOut>(cipher: &A, buf: &mut [u8]) {
    let nonce = Default::default();
    let tag = cipher
        .encrypt_inout_detached(&nonce, b"", buf.into())
        .unwrap();
    black_box(tag);
}

fn suites(c: &mut Criterion) {
    let kek: Arc<dyn Kek> = Arc::new(LocalKek::generate().unwrap());
    let key = [7u8; 32];
    let aes = Aes256Gcm::new(&key.into());
    let chacha = ChaCha20Poly1305::new(&key.into());
    for suite in Suite::ALL {
        let mut g = c.benchmark_group(suite.name().replace('-', ""));
        let enc = Encryptor::new(kek.clone()).suite(suite);
        let dec = Decryptor::new(kek.clone());
        for size in SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            let pt = vec![0x5Au8; size];
            let mut buf = pt.clone();
            g.bench_with_input(BenchmarkId::new("raw", size), &size, |b, _| match suite {
                Suite::Aes256Gcm => b.iter(|| raw(&aes, &mut buf)),
                _ => b.iter(|| raw(&chacha, &mut buf)),
            });
            g.bench_with_input(BenchmarkId::new("envelope_encrypt", size), &size, |b, _| {
                b.iter(|| black_box(enc.encrypt_blocking(black_box(&pt)).unwrap()))
            });
            let msg = enc.encrypt_blocking(&pt).unwrap();
            g.bench_with_input(BenchmarkId::new("envelope_decrypt", size), &size, |b, _| {
                b.iter(|| black_box(dec.decrypt_blocking(black_box(&msg)).unwrap()))
            });
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

fn frame_sizes(c: &mut Criterion) {
    let kek: Arc<dyn Kek> = Arc::new(LocalKek::generate().unwrap());
    let total = 16usize << 20;
    let pt = vec![0x5Au8; 256 << 10];
    let mut g = c.benchmark_group("frame_size");
    g.throughput(Throughput::Bytes(total as u64));
    g.sample_size(20);
    for fs in [4u32 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20] {
        let enc = Encryptor::new(kek.clone()).frame_size(fs).unwrap();
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

criterion_group!(benches, suites, frame_sizes);
criterion_main!(benches);
