//! User examples of kmseal (see the `[[example]]` entries; run one with
//! `cargo run -p kmseal-examples --example NAME`). This library only holds what they share.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;

use kmseal::{Error, Kek, LocalKek};

/// The README's Rust examples, compiled and run as doctests here, where every crate they use
/// (core, kmseal-keys, kmseal-config) is a dependency.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

/// The keyring `KMSEAL_KEY` names (`aws-kms://…`, `vault://…`, a comma list), or, when it is
/// unset, a development key made in a private temporary directory, so every example runs on
/// a fresh clone with no cloud account.
pub fn keyring_from_env_or_dev_key() -> Result<Vec<Arc<dyn Kek>>, Error> {
    if std::env::var_os(kmseal_keys::KEY_ENV).is_some() {
        return kmseal::blocking::block_on(kmseal_keys::from_env(kmseal_keys::KEY_ENV));
    }
    let dir = scratch_dir("key")?;
    let path = dir.join("dev.key");
    let _ = std::fs::remove_file(&path);
    LocalKek::create_file(&path)?;
    tracing_note(&format!(
        "KMSEAL_KEY is unset: using a development key at {}",
        path.display()
    ));
    let kek = kmseal_keys::from_uri_blocking(&format!("local://{}", path.display()))?;
    // The key is in locked memory now; the file is not needed any more.
    std::fs::remove_dir_all(&dir)?;
    Ok(vec![kek])
}

/// A directory of this process's own under the system temp dir (mode 0700).
pub fn scratch_dir(what: &str) -> Result<PathBuf, Error> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("kmseal-example-{what}-{}", std::process::id()));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    Ok(dir)
}

#[allow(clippy::print_stderr)]
fn tracing_note(message: &str) {
    eprintln!("note: {message}");
}
