//! What signing costs per message in kmseal: encrypt + decrypt of a 1 KiB and a 1 MiB message,
//! unsigned and signed (Ed25519), with the local KEK, one thread, in interleaved rounds
//! (median of each). Run with `cargo run --release --example signed_ratio [ROUNDS]`; BENCHMARKS.md
//! quotes it beside `scripts/bench-signatures`.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use kmseal::{Decryptor, Encryptor, LocalKek};

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e6
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    let kek = Arc::new(LocalKek::generate().unwrap());
    let dec = Decryptor::new(kek.clone()).threads(1);
    let plain = Encryptor::new(kek.clone()).threads(1);
    let signed = Encryptor::new(kek).threads(1).signed(true);
    println!("encrypt + decrypt, local KEK, one thread; median of {rounds} interleaved rounds");
    for size in [1usize << 10, 1 << 20] {
        let data = vec![0x42u8; size];
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            for (enc, times) in [(&plain, &mut a), (&signed, &mut b)] {
                let t = Instant::now();
                let m = enc.encrypt_blocking(&data).unwrap();
                let p = dec.decrypt_blocking(&m).unwrap();
                times.push(t.elapsed());
                assert_eq!(p.len(), size);
            }
        }
        let (u, s) = (median(a), median(b));
        let label = if size == 1 << 10 { "1 KiB" } else { "1 MiB" };
        println!(
            "{label:>6}  unsigned {u:>9.1} us   signed {s:>9.1} us   signed/unsigned {:.2}x   (+{:.1} us)",
            s / u,
            s - u
        );
    }
}
