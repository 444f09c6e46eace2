//! Diagnostic: a tight loop of envelope encryptions and decryptions for profiling (perf /
//! callgrind), reusing the output buffers (`encrypt_into` / `decrypt_into`).
//! `cargo run --release --example envelope_loop -- SUITE SIZE ITERS [THREADS] [cache|fresh]`,
//! e.g. `-- aes-256-gcm 1024 100000 1 cache` (cached data keys, the small-message path);
//! `fresh` uses `encrypt`/`decrypt` (a new output buffer per message) instead.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]
use std::sync::Arc;
use std::time::Duration;

use kmseal::blocking::block_on;
use kmseal::{CacheLimits, DecryptCache, EncryptCache, SecretBytes};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let suite = kmseal::Suite::from_name(args.get(1).map_or("aes-256-gcm", |s| s)).unwrap();
    let size: usize = args.get(2).map_or(1 << 20, |s| s.parse().unwrap());
    let n: u32 = args.get(3).map_or(300, |s| s.parse().unwrap());
    let kek: Arc<dyn kmseal::Kek> = Arc::new(kmseal::LocalKek::generate().unwrap());
    let mut enc = kmseal::Encryptor::new(kek.clone()).suite(suite);
    let mut dec = kmseal::Decryptor::new(kek);
    if let Some(t) = args.get(4) {
        enc = enc.threads(t.parse().unwrap());
        dec = dec.threads(t.parse().unwrap());
    }
    if args.get(5).is_some_and(|a| a == "cache") {
        let limits = CacheLimits {
            max_messages: u64::MAX,
            max_bytes: u64::MAX,
            max_age: Duration::from_secs(3600),
            ..CacheLimits::default()
        };
        enc = enc.cache(EncryptCache::new(limits));
        dec = dec.cache(DecryptCache::new(Duration::from_secs(3600), 16));
    }
    let fresh = args.get(5).is_some_and(|a| a == "fresh");
    let pt = vec![3u8; size];
    let mut sealed = Vec::new();
    let t = std::time::Instant::now();
    for _ in 0..n {
        if fresh {
            std::hint::black_box(enc.encrypt_blocking(&pt).unwrap());
        } else {
            block_on(enc.encrypt_into(&pt, &mut sealed)).unwrap();
            std::hint::black_box(&sealed);
        }
    }
    let e = t.elapsed() / n;
    if fresh {
        sealed = enc.encrypt_blocking(&pt).unwrap();
    }
    let mut opened = SecretBytes::new();
    let t = std::time::Instant::now();
    for _ in 0..n {
        if fresh {
            std::hint::black_box(dec.decrypt_blocking(&sealed).unwrap());
        } else {
            block_on(dec.decrypt_into(&sealed, &mut opened)).unwrap();
            std::hint::black_box(&opened);
        }
    }
    println!(
        "{suite} {size} B: encrypt {e:?}, decrypt {:?}",
        t.elapsed() / n
    );
}
