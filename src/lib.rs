#![doc = include_str!("../README.md")]
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
//! * [`format`](mod@format) is the wire format ([`Header`], [`Limits`]).
//! * [`stream`] has the streaming [`EncryptWriter`] and [`DecryptReader`].
//! * [`kek`] has the [`Kek`] trait, [`DataKey`], [`WrappedKey`] and [`KeyUri`].
//! * [`local`] is the embedded [`LocalKek`].
//! * [`cache`] has the data-key caches ([`EncryptCache`], [`DecryptCache`]).
//! * [`rotate`] rewraps and re-encrypts messages, files and directory trees.
//! * [`blocking`] is a tiny executor for synchronous callers.
//!
//! # Feature flags
//! * `testing`: the provider conformance suite (`kmseal::testing`), for provider crates' tests.
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod aead;
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
pub mod rotate;
pub mod secret;
mod signature;
pub mod stream;
mod suite;
#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test patterns
mod vectors;

pub use aead::Backend;
pub use cache::{CacheLimits, CacheStats, DecryptCache, EncryptCache};
pub use context::EncryptionContext;
pub use envelope::{Decryptor, Encryptor, OpenedHeader};
pub use error::{Error, KekFailure, KmsErrorKind, escape_untrusted};
pub use format::{FrameSize, Header, Limits};
pub use kek::{DataKey, Kek, KeyUri, Provider, WrappedKey};
pub use local::LocalKek;
pub use secret::{LockPolicy, SecretBytes, SecretString};
pub use signature::SIGNING_KEY_CONTEXT;
pub use stream::{DecryptReader, EncryptWriter};
pub use suite::Suite;
