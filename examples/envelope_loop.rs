//! Diagnostic: a tight loop of envelope encryptions for profiling (perf / callgrind).
//! `cargo run --release --example envelope_loop -- chacha20-poly1305 1048576 300 [threads]`
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]
use std::sync::Arc;
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
    let pt = vec![3u8; size];
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(enc.encrypt_blocking(&pt).unwrap());
    }
    let e = t.elapsed() / n;
    let msg = enc.encrypt_blocking(&pt).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(dec.decrypt_blocking(&msg).unwrap());
    }
    println!(
        "{suite} {size} B: encrypt {e:?}, decrypt {:?}",
        t.elapsed() / n
    );
}
