//! Encrypt a file with a KMS key, then decrypt it and check the round trip.
//!
//! ```sh
//! KMSEAL_KEY=aws-kms://arn:aws:kms:eu-west-1:111122223333:alias/billing \
//!   cargo run -p kmseal-examples --example encrypt_file -- report.csv report.csv.kmseal
//! ```
//!
//! Any key URI works (`gcp-kms://…`, `azure-kv://…`, `vault://…`, `local://…`, or several
//! separated by commas); with `KMSEAL_KEY` unset a development key is used. The file is
//! streamed in constant memory through locked buffers; the output is written to a temporary
//! name and renamed only once complete, so a failure never leaves a partial file behind.
#![allow(clippy::print_stdout)]

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};

use kmseal::stream::copy_locked;
use kmseal::{Decryptor, Encryptor, Error, SecretBytes};

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (input, output, scratch) = match (args.next(), args.next()) {
        (Some(i), Some(o)) => (i, o, None),
        _ => {
            // No arguments: encrypt this example's own source into a scratch directory.
            let dir = kmseal_examples::scratch_dir("encrypt-file")?;
            let out = dir.join("encrypt_file.rs.kmseal");
            (file!().to_owned(), out.display().to_string(), Some(dir))
        }
    };
    let keyring = kmseal_examples::keyring_from_env_or_dev_key()?;

    // Encrypt: every KEK of the keyring wraps the data key; the context is authenticated.
    let enc = Encryptor::with_keks(keyring.iter().cloned())?.context("file", &input)?;
    let partial = format!("{output}.partial");
    let mut writer = enc.writer_blocking(BufWriter::new(File::create(&partial)?))?;
    copy_locked(&mut File::open(&input)?, &mut writer)?;
    writer.finish()?.flush()?;
    std::fs::rename(&partial, &output)?;

    // Decrypt: only the KEKs we trust are asked, and the context must match.
    let dec = Decryptor::with_keks(keyring)?.expect_context("file", &input)?;
    let mut reader = dec.reader_blocking(BufReader::new(File::open(&output)?))?;
    let mut plain = SecretBytes::new();
    copy_locked(&mut reader, &mut plain)?;
    assert!(plain.expose_secret() == std::fs::read(&input)?.as_slice());
    println!("{input} -> {output}: {} bytes, round trip OK", plain.len());
    if let Some(dir) = scratch {
        std::fs::remove_dir_all(dir)?;
    }
    Ok(())
}
