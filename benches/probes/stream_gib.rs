//! One measurement of a large message (default 1 GiB) per process, for `scripts/bench-stream`:
//! streaming against in-memory, with the process's peak RSS (`ru_maxrss`).
//!
//! ```text
//! stream_gib BACKEND MODE [MIB] [FILE] [PLAIN]
//!   BACKEND: rustcrypto | aws-lc
//!   MODE:    write-plain      write MIB MiB of plaintext to PLAIN (setup, not timed)
//!            seal-file        stream-encrypt PLAIN to FILE (setup, not timed)
//!            stream-encrypt   EncryptWriter over PLAIN, copied with `stream::copy_locked` (1 MiB
//!                             reads into a locked, page-aligned buffer), output discarded
//!            memory-encrypt   Encryptor::encrypt of PLAIN's bytes (read untimed)
//!            memory-encrypt-reused   encrypt_into a buffer already used once (untimed)
//!            read-plain       `copy_locked` of PLAIN to a sink (the input cost of stream-encrypt)
//!            read-plain-unaligned   the same into a plain 1 MiB `Vec` (16 bytes into its page)
//!            stream-decrypt   DecryptReader over FILE, 1 MiB reads, output discarded
//!            memory-decrypt   Decryptor::decrypt of FILE's bytes (read untimed)
//!            memory-decrypt-reused   decrypt_into a buffer already used once (untimed)
//! ```
//!
//! Prints one line: `MODE seconds GB/s peak_rss_MiB bytes`. The key is fixed (a local KEK
//! from a constant), so a file sealed by one process opens in another.

#![allow(clippy::cast_possible_truncation)] // test patterns and helpers
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use kmseal::blocking::block_on;
use kmseal::stream::copy_locked;
use kmseal::{Backend, Decryptor, Encryptor, Kek, LocalKek};

/// Peak resident set of this process so far, in MiB.
fn peak_rss_mib() -> f64 {
    let mut status = String::new();
    std::fs::File::open("/proc/self/status")
        .and_then(|mut f| f.read_to_string(&mut status))
        .unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

/// Counts what is written and drops it.
struct Count(u64);

impl Write for Count {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn chunk() -> Vec<u8> {
    (0..1usize << 20).map(|i| (i * 31 + 7) as u8).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let backend = match args.get(1).map(String::as_str) {
        Some("aws-lc") => Backend::AwsLc,
        _ => Backend::RustCrypto,
    };
    let mode = args.get(2).map_or("stream-encrypt", String::as_str);
    let mib: usize = args.get(3).map_or(1024, |s| s.parse().unwrap());
    let file = args
        .get(4)
        .map_or("/tmp/kmseal-stream-gib.sealed", String::as_str);
    let plain_file = args
        .get(5)
        .map_or("/tmp/kmseal-stream-gib.plain", String::as_str);
    let master = kmseal::SecretBytes::from_slice(&[0x42; 32]).unwrap();
    let kek: Arc<dyn Kek> = Arc::new(LocalKek::from_key_bytes(&master).unwrap());
    let enc = Encryptor::new(kek.clone()).backend(backend).unwrap();
    let dec = Decryptor::new(kek).backend(backend).unwrap();
    let len = (mib as u64) << 20;

    let t;
    let bytes: u64;
    match mode {
        "write-plain" => {
            let c = chunk();
            let mut f = std::io::BufWriter::new(std::fs::File::create(plain_file).unwrap());
            t = Instant::now();
            for _ in 0..mib {
                f.write_all(&c).unwrap();
            }
            f.flush().unwrap();
            bytes = len;
        }
        "seal-file" | "stream-encrypt" => {
            let mut input = std::fs::File::open(plain_file).unwrap();
            let out: Box<dyn Write> = if mode == "seal-file" {
                Box::new(std::io::BufWriter::new(
                    std::fs::File::create(file).unwrap(),
                ))
            } else {
                Box::new(Count(0))
            };
            t = Instant::now();
            let mut w = enc.writer_blocking(out).unwrap();
            // 1 MiB reads into a locked buffer that starts on a page (see read-plain).
            let n = copy_locked(&mut input, &mut w).unwrap();
            let mut out = w.finish().unwrap();
            out.flush().unwrap();
            assert_eq!(n, len, "PLAIN holds MIB MiB");
            bytes = n;
        }
        "read-plain" => {
            let mut input = std::fs::File::open(plain_file).unwrap();
            t = Instant::now();
            bytes = copy_locked(&mut input, &mut std::io::sink()).unwrap();
        }
        "read-plain-unaligned" => {
            // A 1 MiB `Vec` is its own mmap and starts 16 bytes into its page; on some AMD
            // hosts the kernel copies page-cache data into it 4-6x more slowly (BENCHMARKS.md).
            let mut input = std::fs::File::open(plain_file).unwrap();
            let mut c = vec![0u8; 1 << 20];
            t = Instant::now();
            let mut n = 0u64;
            loop {
                let k = input.read(&mut c).unwrap();
                if k == 0 {
                    break;
                }
                std::hint::black_box(&c);
                n += k as u64;
            }
            bytes = n;
        }
        "memory-encrypt" | "memory-encrypt-reused" => {
            let pt = std::fs::read(plain_file).unwrap();
            let mut sealed = Vec::new();
            if mode == "memory-encrypt-reused" {
                block_on(enc.encrypt_into(&pt, &mut sealed)).unwrap();
            }
            t = Instant::now();
            block_on(enc.encrypt_into(&pt, &mut sealed)).unwrap();
            std::hint::black_box(&sealed);
            bytes = len;
        }
        "stream-decrypt" => {
            let f = std::fs::File::open(file).unwrap();
            let mut buf = vec![0u8; 1 << 20];
            let mut n = 0u64;
            t = Instant::now();
            let mut r = dec.reader_blocking(f).unwrap();
            loop {
                match r.read(&mut buf).unwrap() {
                    0 => break,
                    k => n += k as u64,
                }
            }
            assert_eq!(n, len, "the file holds a message of MIB MiB");
            bytes = n;
        }
        "memory-decrypt" | "memory-decrypt-reused" => {
            let sealed = std::fs::read(file).unwrap();
            let mut plain = kmseal::SecretBytes::new();
            if mode == "memory-decrypt-reused" {
                block_on(dec.decrypt_into(&sealed, &mut plain)).unwrap();
            }
            t = Instant::now();
            block_on(dec.decrypt_into(&sealed, &mut plain)).unwrap();
            bytes = plain.len() as u64;
            std::hint::black_box(&plain);
        }
        other => panic!("unknown mode {other}"),
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{mode} {secs:.4} {:.2} {:.1} {bytes}",
        bytes as f64 / secs / 1e9,
        peak_rss_mib()
    );
}
