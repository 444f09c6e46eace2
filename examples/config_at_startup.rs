//! Open a sealed config document at start-up: decrypt in memory, fail fast when a secret is
//! missing or weak, and never write plaintext to disk.
//!
//! ```sh
//! cargo run -p kmseal-examples --example config_at_startup            # seals a sample first
//! KMSEAL_KEY=vault://vault.internal:8200/transit/keys/app \
//!   cargo run -p kmseal-examples --example config_at_startup -- config.yaml
//! ```
#![allow(clippy::print_stdout)]

use kmseal::{Decryptor, Encryptor};
use kmseal_config::{Format, Policy, Require, Sealer};

const SAMPLE: &str = "\
database:
  host: db.internal
  password: correct-horse-battery-staple
jwt:
  secret: 0123456789abcdef0123456789abcdef
";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keyring = kmseal_examples::keyring_from_env_or_dev_key()?;
    let dec = Decryptor::with_keks(keyring.iter().cloned())?;
    let (text, format) = match std::env::args().nth(1) {
        Some(path) => {
            let format = Format::from_path(path.as_ref()).ok_or("unknown config format")?;
            (std::fs::read_to_string(&path)?, format)
        }
        None => {
            // Seal a sample the way `kmseal config encrypt` would.
            let sealer = Sealer::new(Encryptor::with_keks(keyring)?, dec.clone())
                .policy(Policy::only(["*password", "*secret"])?);
            let sealed = kmseal::blocking::block_on(sealer.seal(SAMPLE, Format::Yaml))?;
            (sealed, Format::Yaml)
        }
    };

    // At start-up: open in memory and check every rule before serving anything.
    let secrets = kmseal::blocking::block_on(kmseal_config::open(&text, format, &dec))?;
    secrets.check(&[
        Require::secret("database.password").min_len(16),
        Require::secret("jwt.secret").min_len(32),
    ])?;
    let password = secrets
        .secret("database.password")
        .ok_or("database.password is missing")?;
    println!(
        "connecting to {} with a {}-byte password (never printed)",
        secrets.plain("database.host").unwrap_or("?"),
        password.expose_secret().len()
    );
    Ok(())
}
