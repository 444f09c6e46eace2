//! Imports [SOPS](https://getsops.io) files into kmseal: decrypts a SOPS-encrypted YAML,
//! JSON or `.env` document in memory, verifies SOPS's MAC, and returns the plaintext document
//! **without** the `sops` metadata, in the same format, ready for
//! [`kmseal_config::Sealer::seal`] (what `kmseal import sops FILE -k URI…` does).
//!
//! ```
//! # kmseal::blocking::block_on(async {
//! use kmseal_config::Format;
//! use kmseal_sops::{Identities, Keys};
//!
//! let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
//! let keys = Keys::new(Identities::from_file(format!("{dir}/keys.txt"))?);
//! let sops = std::fs::read_to_string(format!("{dir}/regex.sops.yaml")).unwrap();
//! let plain = kmseal_sops::decrypt(&sops, Format::Yaml, &keys).await?;
//! assert!(plain.contains("db_password: pw-regex-1"));
//! assert!(!plain.contains("sops:"));
//! # Ok::<(), kmseal_sops::Error>(())
//! # }).unwrap();
//! ```
//!
//! **What is checked.** Every encrypted value is opened under the data key with its path as
//! associated data, and the SHA-512 MAC over the values in document order (stored encrypted
//! under the data key, bound to `lastmodified`) must match, or nothing is returned
//! ([`Error::MacMismatch`]). Which values are ciphertext and what the MAC covers follow the
//! file's `unencrypted_suffix`, `encrypted_suffix`, `unencrypted_regex`, `encrypted_regex`,
//! `unencrypted_comment_regex`, `encrypted_comment_regex` and `mac_only_encrypted`, as SOPS
//! 3.x does (`sops.go`, `Tree.Decrypt`).
//!
//! **Threat model.** A SOPS file is authenticated against change by anyone without its data
//! key, not against its author: anyone who knows an age recipient can write a valid file for
//! it. Import proves the values are the ones that were encrypted together, not who wrote them.
//! By default only the caller's KEKs are asked to unwrap KMS copies of the data key
//! ([`Keys::kek`]); [`Keys::dangerous_kms_from_file`] lets the file name them, as `sops`
//! does. Plaintext and the data key live in zeroize-on-drop buffers (the data key in kmseal's
//! locked memory); errors name paths and key ids, never values.
//!
//! **Data-key sources**, tried in this order: age X25519 identities (`sops.age[]`), then the
//! KMS entries in the file's order of kinds: AWS KMS (`sops.kms[]`, with its encryption
//! context; `role`/`aws_profile` entries are refused), Google Cloud KMS (`sops.gcp_kms[]`,
//! symmetric keys), Azure Key Vault (`sops.azure_kv[]`, RSA-OAEP-256 through Key Vault's
//! `decrypt`) and Vault / OpenBao transit (`sops.hc_vault[]`). SOPS encrypts the data key for
//! the last three without associated data, so they are opened with
//! [`kmseal::Kek::unwrap_foreign`], which kmseal's own messages never use (see
//! [`Keys::kek`] for how entries are matched to KEKs). PGP entries and Shamir key groups
//! (several `key_groups`) are refused.
//!
//! **Output.** Key order is kept. Decrypted ints, floats and booleans are written as plain
//! scalars, strings plain when unambiguous and double-quoted otherwise. YAML is re-emitted in
//! block style with a two-space indent; own-line comments are kept (decrypted) where they
//! stood, comments after a value on the same line are dropped. JSON is re-indented with two
//! spaces. `.env` comments are kept; values are quoted as `kmseal_config` reads them.
//! Multi-document YAML, YAML tags other than the core ones, and TOML are refused.
//!
//! Feature flags: `aws`, `azure`, `gcp` and `vault` (all default) let
//! [`Keys::dangerous_kms_from_file`] build that provider's KEK from the file's names; KEKs
//! passed with [`Keys::kek`] work without them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod age;
mod cipher;
mod dotenv;
mod emit;
mod error;
mod json;
mod keys;
mod metadata;
mod scalar;
mod tree;
mod yaml;

pub use age::Identities;
pub use error::Error;
pub use keys::Keys;
pub use kmseal_config::Format;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use metadata::Metadata;
use tree::{Key, Node};

/// Decrypts the SOPS document `text` (in `format`: YAML, JSON or .env) with `keys`, verifies
/// its MAC, and returns the plaintext document without the `sops` metadata.
///
/// Errors: [`Error::Parse`] or [`Error::Metadata`] for a malformed file,
/// [`Error::NoDataKey`] when no source yields the data key, [`Error::Decrypt`] when a value
/// does not open, [`Error::MacMismatch`] when the values are not the ones encrypted together.
pub async fn decrypt(text: &str, format: Format, keys: &Keys) -> Result<Zeroizing<String>, Error> {
    let (mut root, meta_node) = match format {
        Format::Yaml => split_meta(yaml::parse(text)?),
        Format::Json => split_meta(json::parse(text)?),
        Format::Dotenv => dotenv::parse(text)?,
        Format::Toml => {
            return Err(Error::Unsupported(
                "TOML (SOPS has no TOML store; convert it to YAML or JSON)".into(),
            ));
        }
    };
    let meta_node = meta_node
        .ok_or_else(|| Error::Metadata("no `sops` metadata found (not a SOPS file?)".into()))?;
    let meta = Metadata::from_node(&meta_node)?;
    let aad = meta.mac_aad()?;
    let data_key = keys::data_key(&meta.sources, keys).await?;
    let key = data_key.expose_secret();
    let computed = tree::decrypt(&mut root, key, &meta.rules)?;
    let stored = match cipher::decrypt(&meta.mac, key, &aad) {
        Ok((cipher::Ty::Str, mac)) => mac,
        _ => return Err(Error::MacMismatch),
    };
    if !bool::from(computed.as_bytes().ct_eq(stored.as_bytes())) {
        return Err(Error::MacMismatch);
    }
    match format {
        Format::Json => json::emit(&root),
        Format::Dotenv => dotenv::emit(&root),
        _ => yaml::emit(&root),
    }
}

/// Takes the top-level `sops` entry out of a parsed YAML or JSON document.
fn split_meta(mut root: Node) -> (Node, Option<Node>) {
    let mut meta = None;
    if let Node::Map(items) = &mut root
        && let Some(i) = items
            .iter()
            .position(|(k, _)| matches!(k, Key::Name(n) if n == "sops"))
    {
        meta = Some(items.remove(i).1);
    }
    (root, meta)
}
