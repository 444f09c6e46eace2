//! Measures the cost of allocating, touching and dropping locked buffers (diagnostic).
#![allow(clippy::unwrap_used, clippy::print_stdout)]
fn main() {
    for size in [64usize << 10, 1 << 20] {
        let n = 200;
        let t = std::time::Instant::now();
        for _ in 0..n {
            let mut s = kmseal::SecretBytes::zeroed(size).unwrap();
            s.expose_secret_mut()[size / 2] = 1;
            std::hint::black_box(&s);
        }
        let locked = t.elapsed() / n;
        let t = std::time::Instant::now();
        for _ in 0..n {
            let mut v = vec![0u8; size];
            v[size / 2] = 1;
            std::hint::black_box(&v);
        }
        println!(
            "{size:>8} B: SecretBytes alloc+drop {locked:?}, Vec {:?}",
            t.elapsed() / n
        );
    }
}
