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
//! **What is checked.** Every encrypted value is opened under the data key with its path (the
//! mapping keys above it joined by `:`) as associated data, and SOPS's MAC must match, or
//! nothing is returned ([`Error::MacMismatch`]). That MAC (`sops.go`, `Tree.Decrypt`) is
//! SHA-512 over the bytes of the *values alone*, in document order, run together without keys
//! or separators; it is stored encrypted under the data key with `lastmodified` as associated
//! data. Which values are ciphertext and which the MAC covers follow the file's
//! `unencrypted_suffix`, `encrypted_suffix`, `unencrypted_regex`, `encrypted_regex`,
//! `unencrypted_comment_regex`, `encrypted_comment_regex` and `mac_only_encrypted`, as SOPS
//! 3.x does.
//!
//! **What SOPS's MAC does not cover**, so what anyone who can write the file may change
//! without any key, and what this crate does about it ([`decrypt_with`] reports it,
//! `kmseal import sops` prints it as a warning):
//! - the keys of unencrypted values (an encrypted value's keys are bound by its associated
//!   data): such a key may be renamed, and its text split with or merged into an adjacent
//!   unencrypted value. Reported ([`Gap::Plain`]).
//! - nulls, empty strings, empty mappings and lists: they add nothing to the MAC, so such an
//!   entry may have been added, renamed or moved. Reported ([`Gap::Empty`]).
//! - comments: SOPS encrypts them but leaves them out of the MAC. Encrypted ones are kept
//!   (they may still have been removed, duplicated or moved within their mapping); plain ones
//!   are dropped ([`Decrypted::dropped_comments`]).
//! - with `mac_only_encrypted: true`, every unencrypted value, key and text: such files are
//!   refused ([`Error::UnauthenticatedPlain`]) unless
//!   [`DecryptOptions::dangerous_accept_unauthenticated_plain`], and their unencrypted values
//!   are then reported ([`Gap::OutsideMac`]).
//! - the type of a value: an encrypted value's `type:` is neither in its associated data nor
//!   in the MAC, which hashes the int `5432` and the string `"5432"` (the bool `true` and the
//!   string `"True"`) alike; an unencrypted value's quoting likewise. The text of a value is
//!   vouched for, not its type. Not reported (it holds for every value).
//! - the nesting of lists (a list item adds nothing to the path) and the split of a path into
//!   keys (`a:b: x` and `a: {b: x}` have the same path). Not reported.
//!
//! **Threat model.** A SOPS file is authenticated against change by anyone without its data
//! key, not against its author: anyone who knows an age recipient can write a valid file for
//! it. For the values the MAC covers, import vouches that they are the ones encrypted together
//! under the data key (not who wrote them), and it reports the entries it cannot vouch for.
//! By default only the caller's KEKs are asked to unwrap KMS copies of the data key
//! ([`Keys::kek`]); [`Keys::dangerous_kms_from_file`] lets the file name them, as `sops`
//! does. Plaintext and the data key live in zeroize-on-drop buffers (the data key in kmseal's
//! locked memory); errors name paths and key ids, escaped ([`kmseal::escape_untrusted`]),
//! never values. YAML aliases may expand to at most 100 times the document's nodes (at least
//! 10,000), and nesting is limited to 128 levels.
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
//! block style with a two-space indent; own-line comments SOPS encrypted are kept (decrypted)
//! where they stood, plain comments and comments after a value on the same line are dropped.
//! JSON is re-indented with two spaces. `.env` comments SOPS encrypted are kept; values are
//! quoted as `kmseal_config` reads them. Multi-document YAML, YAML tags other than the core
//! ones, and TOML are refused.
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
mod options;
mod scalar;
mod tree;
mod yaml;

pub use age::Identities;
pub use error::Error;
pub use keys::Keys;
pub use kmseal_config::Format;
pub use options::{DecryptOptions, Decrypted, Gap, Unauthenticated};

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use metadata::Metadata;
use tree::{Key, Node};

/// Decrypts the SOPS document `text` (in `format`: YAML, JSON or .env) with `keys`, verifies
/// its MAC, and returns the plaintext document without the `sops` metadata: [`decrypt_with`]
/// with the default [`DecryptOptions`], without the report of what the MAC does not cover.
///
/// Errors: [`Error::Parse`] or [`Error::Metadata`] for a malformed file,
/// [`Error::UnauthenticatedPlain`] for a `mac_only_encrypted` file, [`Error::NoDataKey`] when
/// no source yields the data key, [`Error::Decrypt`] when a value does not open,
/// [`Error::MacMismatch`] when the values the MAC covers are not the ones encrypted together.
pub async fn decrypt(text: &str, format: Format, keys: &Keys) -> Result<Zeroizing<String>, Error> {
    decrypt_with(text, format, keys, &DecryptOptions::new())
        .await
        .map(Decrypted::into_plaintext)
}

/// [`decrypt`] with `options`, returning also what SOPS's MAC does not authenticate
/// ([`Decrypted::unauthenticated`]) so that a caller can say so.
pub async fn decrypt_with(
    text: &str,
    format: Format,
    keys: &Keys,
    options: &DecryptOptions,
) -> Result<Decrypted, Error> {
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
    if meta.rules.mac_only_encrypted && !options.accept_unauthenticated_plain {
        return Err(Error::UnauthenticatedPlain);
    }
    let aad = meta.mac_aad()?;
    let data_key = keys::data_key(&meta.sources, keys).await?;
    let key = data_key.expose_secret();
    let walked = tree::decrypt(&mut root, key, &meta.rules)?;
    let stored = match cipher::decrypt(&meta.mac, key, &aad) {
        Ok((cipher::Ty::Str, mac)) => mac,
        _ => return Err(Error::MacMismatch),
    };
    if !bool::from(walked.mac.as_bytes().ct_eq(stored.as_bytes())) {
        return Err(Error::MacMismatch);
    }
    let plaintext = match format {
        Format::Json => json::emit(&root),
        Format::Dotenv => dotenv::emit(&root),
        _ => yaml::emit(&root),
    }?;
    Ok(Decrypted {
        plaintext,
        unauthenticated: walked.unauthenticated,
        dropped_comments: walked.dropped_comments,
    })
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
