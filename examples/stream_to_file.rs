//! Stream data of any size into an encrypted file and back, in constant memory: an
//! [`EncryptWriter`](kmseal::EncryptWriter) seals frames as they fill, a
//! [`DecryptReader`](kmseal::DecryptReader) releases only verified frames.
//!
//! ```sh
//! cargo run --release -p kmseal-examples --example stream_to_file -- 256   # MiB
//! ```
#![allow(clippy::print_stdout)]

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};

use kmseal::{Decryptor, Encryptor, Error};

fn main() -> Result<(), Error> {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let keyring = kmseal_examples::keyring_from_env_or_dev_key()?;
    let path = kmseal_examples::scratch_dir("stream")?.join("data.kmseal");

    // Write: generated records, 1 MiB at a time (think: a database export).
    let mut writer = Encryptor::with_keks(keyring.iter().cloned())?
        .writer_blocking(BufWriter::new(File::create(&path)?))?;
    let pattern = |i: usize| u8::try_from(i % 251).unwrap_or(0);
    let chunk: Vec<u8> = (0..1usize << 20).map(pattern).collect();
    for _ in 0..mib {
        writer.write_all(&chunk)?;
    }
    writer.finish()?.flush()?; // without finish() the file has no final frame

    // Read back and check, frame by frame.
    let mut reader =
        Decryptor::with_keks(keyring)?.reader_blocking(BufReader::new(File::open(&path)?))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0usize;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        assert!(
            buf[..n]
                .iter()
                .enumerate()
                .all(|(i, &b)| b == pattern((total + i) % (1 << 20)))
        );
        total += n;
    }
    assert_eq!(total, mib << 20);
    println!("{mib} MiB streamed to {} and back", path.display());
    if let Some(dir) = path.parent() {
        std::fs::remove_dir_all(dir)?;
    }
    Ok(())
}
