//! The machine's copy bandwidth for 64 MiB, one thread against two: the ceiling for any
//! out-of-place pass over a message that size (read input, write output), which is what
//! limits aws-lc's AES-GCM (already ~13-18 GB/s on one core) from scaling with threads.
//! `cargo run --release --example memcpy_ceiling`
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]
use std::time::Instant;

fn main() {
    let n: usize = 64 << 20;
    let src = vec![1u8; n];
    let mut dst = vec![0u8; n];
    dst.copy_from_slice(&src);
    for threads in [1usize, 2] {
        let mut times = Vec::new();
        for _ in 0..21 {
            let t = Instant::now();
            let per = n / threads;
            std::thread::scope(|s| {
                for (d, sr) in dst.chunks_mut(per).zip(src.chunks(per)) {
                    s.spawn(move || d.copy_from_slice(sr));
                }
            });
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let med = times[times.len() / 2];
        println!(
            "memcpy 64 MiB, {threads} thread(s): median {:.2} ms = {:.1} GB/s copied",
            med * 1e3,
            n as f64 / med / 1e9
        );
    }
}
