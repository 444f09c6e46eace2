//! Object rotation against moto's S3, side by side in one run (issue 24's numbers): per object
//! size, a rewrap (new header, the same frames) next to a re-encryption (decrypt, encrypt
//! again) of the same objects, alternating rounds; requests per object (a multipart upload
//! counts once: its part PUTs and completion are not counted), bytes moved per byte of stored
//! object, and time per object (medians). Prints a Markdown table (quoted in
//! BENCHMARKS.md). `scripts/bench-objects` starts moto and runs it.
//!
//! `cargo run --release -p kmseal-objects --example object_rotation -- [ROUNDS]`

#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use common::*;
use kmseal::rotate::Rotator;
use kmseal::{Decryptor, Encryptor, Kek};
use kmseal_objects::ObjectRotator;
use object_store::{ObjectStoreExt, PutPayload};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args().nth(1).map_or(3, |a| a.parse().unwrap());
    let (a, b) = (local(), local());
    println!(
        "| object size | mode | GETs / object | PUTs / object | multipart uploads / object | HEADs / object | bytes read / object size | bytes written / object size | ms / object |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (size, count) in [
        (4usize << 10, 40usize),
        (1 << 20, 16),
        (12 << 20, 4),
        (64 << 20, 2),
    ] {
        let bucket = moto_bucket(&bucket_name(&format!("bench{size}")));
        let store = Hooked::new(bucket.store.clone());
        let loc = store.location(&bucket.prefix);
        let pt = pattern(size, 1);
        let mut stored = 0usize;
        for i in 0..count {
            let msg = Encryptor::new(a.clone() as Arc<dyn Kek>)
                .encrypt(&pt)
                .await
                .unwrap();
            stored = msg.len();
            let key = bucket.prefix.clone().join(format!("o{i}.kmseal"));
            store.inner.put(&key, PutPayload::from(msg)).await.unwrap();
        }
        // Alternate the direction so every round rotates every object.
        let mut keys = [a.clone(), b.clone()];
        let mut stats: [Vec<[f64; 7]>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..rounds {
            for (m, mode) in ["rewrap", "re-encrypt"].iter().enumerate() {
                let [from, to] = keys.clone();
                let from_dec = Decryptor::new(from as Arc<dyn Kek>);
                let to = vec![to as Arc<dyn Kek>];
                let rot = if m == 0 {
                    Rotator::rewrap(from_dec, to)
                } else {
                    Rotator::reencrypt(from_dec, to)
                };
                let before = [
                    store.gets.load(Ordering::Relaxed),
                    store.puts.load(Ordering::Relaxed),
                    store.multiparts.load(Ordering::Relaxed),
                    store.heads_and_lists.load(Ordering::Relaxed),
                ];
                let t = Instant::now();
                let report = ObjectRotator::new(rot)
                    .rotate_prefix(&loc, |_, _| {})
                    .await
                    .unwrap();
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                assert_eq!(report.rotated.len(), count, "{mode}: {:?}", report.failed);
                let n = count as f64;
                let d = |i: usize, c: &std::sync::atomic::AtomicUsize| {
                    (c.load(Ordering::Relaxed) - before[i]) as f64 / n
                };
                let total = (stored * count) as f64;
                stats[m].push([
                    d(0, &store.gets),
                    d(1, &store.puts),
                    d(2, &store.multiparts),
                    // The listing is one request for all: not per object.
                    d(3, &store.heads_and_lists) - 1.0 / n,
                    report.bytes_read as f64 / total,
                    report.bytes_written as f64 / total,
                    ms / n,
                ]);
                keys.reverse();
            }
        }
        for (m, mode) in ["rewrap", "re-encrypt"].iter().enumerate() {
            let col = |i: usize| median(stats[m].iter().map(|s| s[i]).collect());
            println!(
                "| {} | {mode} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} |",
                if size >= 1 << 20 {
                    format!("{} MiB", size >> 20)
                } else {
                    format!("{} KiB", size >> 10)
                },
                col(0),
                col(1),
                col(2),
                col(3),
                col(4),
                col(5),
                col(6)
            );
        }
        // A rerun over objects already under the target: the header read alone.
        let current = keys[0].clone();
        let gets = store.gets.load(Ordering::Relaxed);
        let t = Instant::now();
        let report = ObjectRotator::new(Rotator::rewrap(
            Decryptor::new(current.clone() as Arc<dyn Kek>),
            vec![current as Arc<dyn Kek>],
        ))
        .rotate_prefix(&loc, |_, _| {})
        .await
        .unwrap();
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(report.already_current.len(), count);
        let n = count as f64;
        println!(
            "| {} | rerun, already current | {:.1} | 0.0 | 0.0 | 0.0 | {:.4} | 0.00 | {:.2} |",
            if size >= 1 << 20 {
                format!("{} MiB", size >> 20)
            } else {
                format!("{} KiB", size >> 10)
            },
            (store.gets.load(Ordering::Relaxed) - gets) as f64 / n,
            report.bytes_read as f64 / (stored * count) as f64,
            ms / n
        );
    }
}
