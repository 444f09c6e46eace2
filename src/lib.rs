//! Envelope encryption with KMS key wrapping, key commitment, streaming, and decrypted keys
//! and plaintext kept only in locked, zeroize-on-drop memory.
//!
//! ```
//! use std::sync::Arc;
//! use kmseal::{Decryptor, Encryptor, LocalKek};
//!
//! // A development KEK. In production: a KMS key, e.g.
//! // `kmseal_keys::from_uri("aws-kms://arn:aws:kms:eu-west-1:111122223333:alias/app")`.
//! let kek = Arc::new(LocalKek::generate()?);
//!
//! let sealed: Vec<u8> = Encryptor::new(kek.clone())
//!     .context("app", "billing")?          // authenticated, not secret
//!     .encrypt_blocking(b"db password: correct horse battery staple")?;
//!
//! let plain = Decryptor::new(kek)
//!     .expect_context("app", "billing")?   // refuse ciphertexts made for another purpose
//!     .decrypt_blocking(&sealed)?;         // SecretBytes: locked, zeroized on drop
//! assert_eq!(plain.expose_secret(), b"db password: correct horse battery staple");
//! # Ok::<(), kmseal::Error>(())
//! ```
//!
//! Async callers use [`Encryptor::encrypt`] / [`Decryptor::decrypt`]; large data goes through
//! [`Encryptor::writer`] (an `io::Write`) and [`Decryptor::reader`] (an `io::Read` that
//! releases only verified frames). To inspect a message before any KMS call (its context, its
//! wrapped keys) and then decide, parse its header and open it:
//! [`Decryptor::parse_header`], [`Decryptor::open_header`], [`OpenedHeader`].
//! Key URIs (`aws-kms://…`, `gcp-kms://…`, `azure-kv://…`, `vault://…`, `local://…`) become
//! KEKs in one call with the `kmseal-keys` crate; sealed config documents are
//! `kmseal-config`.
//!
//! # The crate in one paragraph
//!
//! A fresh 256-bit data key is generated in locked memory for every message and wrapped by one
//! or more key-encryption keys ([`Kek`]): a KMS, or the embedded [`LocalKek`]. The payload is
//! split into frames and sealed with AES-256-GCM or ChaCha20-Poly1305 under a per-message key
//! derived with HKDF from the data key and a random message id; a commitment to the data key
//! in the header makes a message open under at most one key. Decrypted data keys and plaintext
//! are returned only in [`SecretBytes`]: mlock'd, excluded from core dumps, zeroized on drop.
//!
//! **Threat model.** An attacker may read, modify, truncate, reorder and replay ciphertexts,
//! and may control what a wrapped-key entry names; they do not control the KEKs a decryptor
//! trusts, or the process's memory. See SECURITY.md for the guarantees and their limits, and
//! FORMAT.md for every byte on the wire.
//!
//! # Modules
//! * [`secret`] holds locked memory ([`SecretBytes`], [`SecretString`], [`LockPolicy`]).
//! * [`format`](mod@format) is the wire format ([`Header`], [`Limits`], [`FrameSize`]).
//! * [`stream`] has the streaming [`EncryptWriter`] and [`DecryptReader`].
//! * [`kek`] has the [`Kek`] trait, [`DataKey`], [`WrappedKey`] and [`KeyUri`].
//! * [`local`] is the embedded [`LocalKek`].
//! * [`cache`] has the data-key caches ([`EncryptCache`], [`DecryptCache`]).
//! * [`rotate`] rewraps and re-encrypts messages, files and directory trees.
//! * [`redact`] replaces loaded secrets in output (logs, a child's stdout) with a label.
//! * [`store`] has what secret stores share ([`store::json_field`]).
//! * [`blocking`] is a tiny executor for synchronous callers.
//!
//! # Feature flags
//! * `tokio`: [`AsyncEncryptWriter`] and [`AsyncDecryptReader`], tokio `AsyncWrite` /
//!   `AsyncRead` adapters with the blocking streams' guarantees
//!   ([`Encryptor::async_writer`], [`Decryptor::async_reader`]).
//! * `aws-lc`: makes [`Backend::AwsLc`] (aws-lc-rs) available for the payload AEADs. It
//!   changes no default: choose it per [`Encryptor::backend`] / [`Decryptor::backend`], or
//!   once per process with [`Backend::set_process_default`].
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod aead;
#[cfg(feature = "tokio")]
mod async_io;
pub mod blocking;
pub mod cache;
mod context;
mod envelope;
mod error;
#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test patterns
mod external_vectors;
pub mod format;
mod frame;
pub mod kek;
mod key_schedule;
pub mod local;
mod parallel;
mod private_file;
mod range;
pub mod redact;
pub mod rotate;
pub mod secret;
mod signature;
mod slots;
pub mod store;
pub mod stream;
mod suite;
pub mod time;
#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test patterns
mod vectors;

pub use aead::Backend;
pub use cache::{CacheLimits, CacheStats, DecryptCache, EncryptCache};
pub use context::EncryptionContext;
pub use envelope::{Decryptor, Encryptor, OpenedHeader, PreparedMessage};
pub use error::{Error, KekFailure, KmsErrorKind, StoreErrorKind, escape_untrusted};
pub use format::{FrameSize, Header, Limits};
pub use kek::{DataKey, Kek, KeyUri, Provider, WrappedKey};
pub use local::LocalKek;
pub use secret::{LockPolicy, SecretBytes, SecretString};
pub use signature::SIGNING_KEY_CONTEXT;
#[cfg(feature = "tokio")]
pub use stream::{AsyncDecryptReader, AsyncEncryptWriter};
pub use stream::{DecryptReader, EncryptWriter};
pub use suite::Suite;
