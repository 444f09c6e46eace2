//! Tokio streams against the blocking ones, side by side in one run (issue 24's numbers): 1 GiB
//! sealed through `AsyncEncryptWriter` into `tokio::io::sink()` next to `EncryptWriter` into
//! `io::sink()`, and opened through `AsyncDecryptReader` next to `DecryptReader`, both from the
//! same message in memory; 1 MiB writes and reads, 64 KiB frames, a 2-worker multi-thread
//! runtime. Medians of interleaved rounds; prints a Markdown table (quoted in BENCHMARKS.md).
//!
//! `cargo run --release --features tokio --example async_stream -- [MIB] [ROUNDS]`
//! (default 1024 MiB, 5 rounds).

#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

#[path = "stats.rs"]
mod stats;
use stats::median;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use kmseal::{Decryptor, Encryptor, Kek, LocalKek, SecretBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().map_or(1024, |a| a.parse().unwrap());
    let rounds: usize = args.next().map_or(5, |a| a.parse().unwrap());
    let kek: Arc<dyn Kek> = Arc::new(LocalKek::generate().unwrap());
    let enc = Encryptor::new(kek.clone());
    let dec = Decryptor::new(kek);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let chunk: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let message = {
        let mut w = enc
            .writer_blocking(Vec::with_capacity((mib + 1) << 20))
            .unwrap();
        for _ in 0..mib {
            w.write_all(&chunk).unwrap();
        }
        w.finish().unwrap()
    };
    let bytes = (mib << 20) as f64;
    let mut t = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..rounds {
        // Blocking encrypt.
        let start = Instant::now();
        let mut w = enc.writer_blocking(std::io::sink()).unwrap();
        for _ in 0..mib {
            w.write_all(&chunk).unwrap();
        }
        w.finish().unwrap();
        t[0].push(bytes / start.elapsed().as_secs_f64() / 1e9);
        // Async encrypt.
        let start = Instant::now();
        rt.block_on(async {
            let mut w = enc.async_writer(tokio::io::sink()).await.unwrap();
            for _ in 0..mib {
                w.write_all(&chunk).await.unwrap();
            }
            w.shutdown().await.unwrap();
        });
        t[1].push(bytes / start.elapsed().as_secs_f64() / 1e9);
        // Blocking decrypt.
        let mut buf = SecretBytes::zeroed(1 << 20).unwrap();
        let start = Instant::now();
        let mut r = dec.reader_blocking(&message[..]).unwrap();
        let mut total = 0;
        loop {
            let n = r.read(buf.expose_secret_mut()).unwrap();
            if n == 0 {
                break;
            }
            total += n;
        }
        assert_eq!(total, mib << 20);
        t[2].push(bytes / start.elapsed().as_secs_f64() / 1e9);
        // Async decrypt.
        let start = Instant::now();
        let total = rt.block_on(async {
            let mut r = dec.async_reader(&message[..]).await.unwrap();
            let mut total = 0;
            loop {
                let n = r.read(buf.expose_secret_mut()).await.unwrap();
                if n == 0 {
                    break total;
                }
                total += n;
            }
        });
        assert_eq!(total, mib << 20);
        t[3].push(bytes / start.elapsed().as_secs_f64() / 1e9);
    }
    let m: Vec<f64> = t.iter_mut().map(|v| median(v)).collect();
    println!("| op | blocking stream | tokio stream | tokio / blocking |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| encrypt {mib} MiB | {:.2} GB/s | {:.2} GB/s | **{:.0}%** |",
        m[0],
        m[1],
        100.0 * m[1] / m[0]
    );
    println!(
        "| decrypt {mib} MiB | {:.2} GB/s | {:.2} GB/s | **{:.0}%** |",
        m[2],
        m[3],
        100.0 * m[3] / m[2]
    );
}
