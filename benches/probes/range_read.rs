//! A range read against a full decrypt, side by side in one run (issue 24's numbers): a 1 GiB
//! message in a file (64 KiB frames), 1 MiB read from its middle with `Decryptor::open_range`,
//! next to a streaming decrypt of the whole file; bytes read from the file and time, medians
//! of interleaved rounds. Prints a Markdown table (quoted in BENCHMARKS.md).
//!
//! `cargo run --release --example range_read -- [MIB] [ROUNDS]` (default 1024 MiB, 5 rounds).

#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

#[path = "stats.rs"]
mod stats;
use stats::median;

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::Instant;

use kmseal::stream::copy_locked;
use kmseal::{Decryptor, Encryptor, Kek, LocalKek, SecretBytes};

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: u64 = args.next().map_or(1024, |a| a.parse().unwrap());
    let rounds: usize = args.next().map_or(5, |a| a.parse().unwrap());
    let kek: Arc<dyn Kek> = Arc::new(LocalKek::generate().unwrap());
    let path = std::env::temp_dir().join(format!("kmseal-range-{}.kmseal", std::process::id()));
    {
        // Seal `mib` MiB of a pattern, streamed (setup, not timed).
        let file = std::fs::File::create(&path).unwrap();
        let mut w = Encryptor::new(kek.clone())
            .writer_blocking(std::io::BufWriter::new(file))
            .unwrap();
        let chunk: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
        for _ in 0..mib {
            w.write_all(&chunk).unwrap();
        }
        w.finish().unwrap().flush().unwrap();
    }
    let size = std::fs::metadata(&path).unwrap().len();
    let dec = Decryptor::new(kek);
    let middle = (mib << 20) / 2;
    let (mut t_range, mut t_full) = (Vec::new(), Vec::new());
    let (mut read_range, mut read_full) = (0, 0);
    for _ in 0..rounds {
        let mut src = Counting {
            inner: std::fs::File::open(&path).unwrap(),
            read: 0,
        };
        let t = Instant::now();
        let part = dec
            .open_range_blocking(&mut src, middle..middle + (1 << 20))
            .unwrap();
        t_range.push(t.elapsed().as_secs_f64());
        assert_eq!(part.len(), 1 << 20);
        read_range = src.read;

        let mut src = Counting {
            inner: std::fs::File::open(&path).unwrap(),
            read: 0,
        };
        let t = Instant::now();
        let mut r = dec.reader_blocking(&mut src).unwrap();
        let mut sink = SecretBytes::new();
        let mut total = 0u64;
        // Into a 1 MiB locked buffer, emptied each time (the plaintext is discarded).
        loop {
            sink.clear();
            let n = copy_locked(&mut (&mut r).take(1 << 20), &mut sink).unwrap();
            if n == 0 {
                break;
            }
            total += n;
        }
        t_full.push(t.elapsed().as_secs_f64());
        assert_eq!(total, mib << 20);
        drop(r);
        read_full = src.read;
    }
    std::fs::remove_file(&path).unwrap();
    let (tr, tf) = (median(&mut t_range), median(&mut t_full));
    println!("| {mib} MiB message ({size} bytes on disk), 64 KiB frames | bytes read | time |");
    println!("| --- | ---: | ---: |");
    println!(
        "| 1 MiB from the middle, `open_range` | {read_range} | {:.2} ms |",
        tr * 1e3
    );
    println!(
        "| whole message, streaming decrypt | {read_full} | {:.0} ms |",
        tf * 1e3
    );
    println!(
        "| range / whole | {:.5} | {:.4} |",
        read_range as f64 / read_full as f64,
        tr / tf
    );
    println!();
    println!("{rounds} interleaved rounds, medians; file in the page cache (a warm object store).");
}
