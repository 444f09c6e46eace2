//! Redaction of a log stream, side by side in one run (issue 20's number): 1 GiB of log lines
//! (about 100 bytes each, one in 50 carrying a secret) written through a `RedactWriter` with
//! 20 secrets (80 patterns with their encoded forms) into `io::sink()`, next to a plain copy
//! of the same 64 KiB pieces into a reused buffer (a pipe's reads). Medians of interleaved rounds; prints a Markdown
//! table (quoted in BENCHMARKS.md).
//!
//! `cargo run --release --example redact_stream -- [MIB] [ROUNDS]` (default 1024 MiB, 5).

#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

#[path = "stats.rs"]
mod stats;
use stats::median;

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use kmseal::redact::Redactor;
use kmseal::secret::GenerateSpec;

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().map_or(1024, |a| a.parse().unwrap());
    let rounds: usize = args.next().map_or(5, |a| a.parse().unwrap());
    let mut redactor = Redactor::new();
    let mut secrets = Vec::new();
    for i in 0..20 {
        let s = GenerateSpec::default().generate().unwrap();
        redactor
            .add(&format!("secret{i}"), s.expose_secret().as_bytes())
            .unwrap();
        secrets.push(s);
    }
    let redactor = Arc::new(redactor);
    // 1 MiB of log lines; one line in 50 carries a secret.
    let mut block = Vec::with_capacity(1 << 20);
    let mut n = 0usize;
    while block.len() < (1 << 20) {
        n += 1;
        let line = if n.is_multiple_of(50) {
            format!(
                "2026-12-01T22:00:{:02}Z INFO request id={n} auth={} status=200\n",
                n % 60,
                secrets[n % 20].expose_secret()
            )
        } else {
            format!(
                "2026-12-01T22:00:{:02}Z INFO handled GET /api/v1/items/{n} user=app-{} in {}ms status=200\n",
                n % 60,
                n % 97,
                n % 13
            )
        };
        block.extend_from_slice(line.as_bytes());
    }
    block.truncate(1 << 20);
    let bytes = (mib << 20) as f64;
    let (mut plain, mut redacted) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        // A plain copy: each 64 KiB piece copied into a reused buffer (what a pump without
        // redaction does between a pipe and stdout).
        let t = Instant::now();
        let mut copy = Vec::with_capacity(64 << 10);
        for _ in 0..mib {
            for chunk in block.chunks(64 << 10) {
                copy.clear();
                copy.extend_from_slice(chunk);
                std::hint::black_box(&copy);
            }
        }
        plain.push(bytes / t.elapsed().as_secs_f64() / 1e9);
        let t = Instant::now();
        let mut w = redactor.writer(std::io::sink());
        for _ in 0..mib {
            for chunk in block.chunks(64 << 10) {
                w.write_all(chunk).unwrap();
            }
        }
        w.finish().unwrap();
        redacted.push(bytes / t.elapsed().as_secs_f64() / 1e9);
    }
    let (p, r) = (median(&mut plain), median(&mut redacted));
    println!("| {mib} MiB of log lines, 64 KiB writes | throughput |");
    println!("| --- | --- |");
    println!("| plain copy (64 KiB pieces into a reused buffer) | {p:.2} GB/s |");
    println!(
        "| through `RedactWriter`, 20 secrets ({} patterns) | {r:.2} GB/s |",
        redactor.len()
    );
    println!(
        "| time per GiB, redacted − plain | {:.0} ms |",
        1000.0 * (1.0 / r - 1.0 / p)
    );
}
