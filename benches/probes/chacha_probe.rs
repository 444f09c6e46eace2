//! Diagnostic: ChaCha20-Poly1305 throughput as a function of the AAD length.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]
use aes_gcm::aead::{AeadInOut, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use std::time::Instant;
fn main() {
    let c = ChaCha20Poly1305::new(&[7u8; 32].into());
    let aes = aes_gcm::Aes256Gcm::new(&[7u8; 32].into());
    let mut buf = vec![1u8; 1 << 20];
    let n = 200;
    for aad_len in [0usize, 16, 32, 41, 48, 64] {
        let aad = vec![9u8; aad_len];
        let t = Instant::now();
        for _ in 0..n {
            for ch in buf.chunks_mut(65536) {
                std::hint::black_box(
                    c.encrypt_inout_detached(&Default::default(), &aad, ch.into())
                        .unwrap(),
                );
            }
        }
        let cc = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n {
            for ch in buf.chunks_mut(65536) {
                std::hint::black_box(
                    aes.encrypt_inout_detached(&Default::default(), &aad, ch.into())
                        .unwrap(),
                );
            }
        }
        println!(
            "aad {aad_len:>2} B: chacha20poly1305 1 MiB in 64K frames {cc:?}, aes-256-gcm {:?}",
            t.elapsed() / n
        );
    }
}
