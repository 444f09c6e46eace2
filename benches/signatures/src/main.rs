//! Per-message cost of the signature part of a signed suite, for each candidate scheme:
//! a fresh key pair, hashing the message, signing the digest, and verifying it (hash again,
//! verify). Schemes are measured in interleaved rounds (each round runs every scheme once per
//! size), and the median per scheme is printed, so that machine noise hits all alike.
//!
//!   cargo run --release --manifest-path benches/signatures/Cargo.toml -- [ROUNDS]

use std::hint::black_box;
use std::time::{Duration, Instant};

use rand_core::OsRng;
use sha2::{Digest, Sha256, Sha384};

type Case = (&'static str, fn(&[u8]));

fn ed25519(msg: &[u8]) {
    use ed25519_dalek::{Signer, SigningKey};
    use rand_core::RngCore;
    // As kmseal makes its key: 32 random bytes.
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    let key = SigningKey::from_bytes(&seed);
    let digest = Sha256::digest(msg);
    let sig = key.sign(&digest);
    let pk = key.verifying_key();
    let digest2 = Sha256::digest(msg);
    assert!(pk.verify_strict(&digest2, &sig).is_ok());
}

fn p256(msg: &[u8]) {
    use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
    use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
    let key = SigningKey::random(&mut OsRng);
    let digest = Sha256::digest(msg);
    let sig: Signature = key.sign_prehash(&digest).unwrap();
    let pk = VerifyingKey::from(&key);
    let digest2 = Sha256::digest(msg);
    assert!(pk.verify_prehash(&digest2, &sig).is_ok());
}

fn p384(msg: &[u8]) {
    use p384::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
    use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
    let key = SigningKey::random(&mut OsRng);
    let digest = Sha384::digest(msg);
    let sig: Signature = key.sign_prehash(&digest).unwrap();
    let pk = VerifyingKey::from(&key);
    let digest2 = Sha384::digest(msg);
    assert!(pk.verify_prehash(&digest2, &sig).is_ok());
}

fn hash_only_sha256(msg: &[u8]) {
    black_box(Sha256::digest(msg));
}

fn hash_only_sha384(msg: &[u8]) {
    black_box(Sha384::digest(msg));
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let cases: [Case; 5] = [
        ("ed25519 + sha-256", ed25519),
        ("ecdsa p-256 + sha-256", p256),
        ("ecdsa p-384 + sha-384 (esdk's signed default)", p384),
        ("sha-256 alone (one pass)", hash_only_sha256),
        ("sha-384 alone (one pass)", hash_only_sha384),
    ];
    println!(
        "per message: key pair + hash + sign + hash + verify; median of {rounds} interleaved rounds"
    );
    for size in [1usize << 10, 1 << 20] {
        let msg = vec![0x5au8; size];
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
        for _ in 0..rounds {
            for (i, (_, f)) in cases.iter().enumerate() {
                let t = Instant::now();
                f(black_box(&msg));
                times[i].push(t.elapsed());
            }
        }
        let label = if size == 1 << 10 { "1 KiB" } else { "1 MiB" };
        let base = median(times[0].clone());
        for ((name, _), t) in cases.iter().zip(times) {
            let m = median(t);
            println!(
                "{label:>6}  {name:<48} {:>9.1} us  ({:.2}x ed25519)",
                m.as_secs_f64() * 1e6,
                m.as_secs_f64() / base.as_secs_f64()
            );
        }
    }
}
