//! The data-key caches' effect: KMS calls per 10,000 messages, and messages per second with
//! and without the caches, measured side by side (interleaved rounds, median of the per-round
//! ratios). Against the local KEK (a wrap costs one AES-GCM), and against the same KEK behind
//! a simulated 1 ms network round trip. Run with `scripts/bench-cache` (release build).
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

#[path = "stats.rs"]
mod stats;
use stats::median;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kmseal::{
    CacheLimits, DataKey, DecryptCache, Decryptor, EncryptCache, EncryptionContext, Encryptor,
    Error, Kek, LocalKek, WrappedKey,
};

/// A local KEK that counts calls and optionally sleeps like a network round trip.
#[derive(Debug)]
struct Kms {
    inner: LocalKek,
    delay: Duration,
    calls: AtomicU64,
}

#[async_trait]
impl Kek for Kms {
    fn provider(&self) -> &str {
        self.inner.provider()
    }
    fn key_id(&self) -> &str {
        self.inner.key_id()
    }
    async fn wrap(&self, key: &DataKey, c: &EncryptionContext) -> Result<WrappedKey, Error> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        self.inner.wrap(key, c).await
    }
    async fn unwrap(&self, w: &WrappedKey, c: &EncryptionContext) -> Result<DataKey, Error> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        self.inner.unwrap(w, c).await
    }
}

/// (seconds per message encrypting, seconds per message decrypting, KMS calls)
fn run(kms: &Arc<Kms>, n: usize, cached: bool, msgs_out: &mut Vec<Vec<u8>>) -> (f64, f64, u64) {
    let before = kms.calls.load(Ordering::Relaxed);
    let mut enc = Encryptor::new(kms.clone()).context("app", "bench").unwrap();
    let mut dec = Decryptor::new(kms.clone());
    if cached {
        enc = enc.cache(EncryptCache::new(CacheLimits::default()));
        dec = dec.cache(DecryptCache::new(Duration::from_secs(300), 1000));
    }
    let record = [0x42u8; 1024];
    msgs_out.clear();
    let t = Instant::now();
    for _ in 0..n {
        msgs_out.push(enc.encrypt_blocking(&record).unwrap());
    }
    let e = t.elapsed().as_secs_f64() / n as f64;
    let t = Instant::now();
    for m in msgs_out.iter() {
        std::hint::black_box(dec.decrypt_blocking(m).unwrap());
    }
    let d = t.elapsed().as_secs_f64() / n as f64;
    (e, d, kms.calls.load(Ordering::Relaxed) - before)
}

fn main() {
    let mut msgs = Vec::new();
    println!(
        "| KEK | messages | KMS calls, no cache | KMS calls, cache | encrypt msg/s, no cache | encrypt msg/s, cache | speed-up | decrypt msg/s, no cache | decrypt msg/s, cache | speed-up |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (label, delay, n, rounds) in [
        ("local", Duration::ZERO, 10_000, 11),
        (
            "local + 1 ms simulated RTT",
            Duration::from_millis(1),
            1_000,
            3,
        ),
    ] {
        let kms = Arc::new(Kms {
            inner: LocalKek::generate().unwrap(),
            delay,
            calls: AtomicU64::new(0),
        });
        let (mut e0, mut e1, mut d0, mut d1, mut re, mut rd) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let (mut calls0, mut calls1) = (0, 0);
        for _ in 0..rounds {
            let (ea, da, ca) = run(&kms, n, false, &mut msgs);
            let (eb, db, cb) = run(&kms, n, true, &mut msgs);
            e0.push(1.0 / ea);
            e1.push(1.0 / eb);
            d0.push(1.0 / da);
            d1.push(1.0 / db);
            re.push(ea / eb);
            rd.push(da / db);
            (calls0, calls1) = (ca, cb);
        }
        println!(
            "| {label} | {n} | {calls0} | {calls1} | {:.0} | {:.0} | {:.1}× | {:.0} | {:.0} | {:.1}× |",
            median(&mut e0),
            median(&mut e1),
            median(&mut re),
            median(&mut d0),
            median(&mut d1),
            median(&mut rd)
        );
    }
}
