//! Diagnostic: a tight loop of `Header::parse` on a typical header (one local wrapped key, a
//! two-entry context), for profiling and for A/B runs of two builds side by side.
//! `cargo run --release --example header_loop -- [ITERS]`; prints nanoseconds per parse
//! (the owned `Header` is dropped each time, so that is included).
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]
use std::sync::Arc;
fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .map_or(2_000_000, |s| s.parse().unwrap());
    let kek: Arc<dyn kmseal::Kek> = Arc::new(kmseal::LocalKek::generate().unwrap());
    let enc = kmseal::Encryptor::new(kek)
        .context("tenant", "acme")
        .unwrap()
        .context("purpose", "orders")
        .unwrap();
    let msg = enc.encrypt_blocking(&[0u8; 1024]).unwrap();
    let limits = kmseal::Limits::default();
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(kmseal::Header::parse(std::hint::black_box(&msg), &limits).unwrap());
    }
    println!(
        "{:.1} ns per parse",
        t.elapsed().as_nanos() as f64 / f64::from(n)
    );
}
