//! Secret stores behind one small trait, and a resolver that keeps what it fetched in locked
//! memory.
//!
//! A [`SecretStore`] gets a secret (the current version, or the one a reference selects) into
//! [`SecretBytes`] with its [`VersionInfo`], puts a new version, and lists versions: nothing
//! more, as [`Kek`](crate::Kek) only wraps and unwraps. Stores are named by references
//! ([`SecretRef`]): `env://`, `file://` (here), `aws-sm://`, `gcp-sm://`, `azure-secret://`,
//! `vault-kv://` (the provider crates; `kmseal-keys` builds any of them from a reference).
//!
//! A [`Resolver`] turns references into values: one store call per secret and TTL however many
//! callers ask at once, the last good value for a bounded time when the store fails, and a
//! cache keyed by the store *instance*, so a value fetched with one set of credentials or from
//! one endpoint is never served to a reference resolved through another.
//!
//! ```
//! # kmseal::blocking::block_on(async {
//! use kmseal::store::{LocalStores, Resolver};
//!
//! let resolver = Resolver::new(LocalStores); // env:// and file://
//! let home = resolver.resolve(&"env://HOME".parse()?).await?;
//! assert_eq!(home.value().expose_secret(), std::env::var("HOME").unwrap().as_bytes());
//! resolver.resolve_str("env://HOME").await?; // from the cache
//! assert_eq!((resolver.stats().fetches, resolver.stats().hits), (1, 1));
//! # Ok::<(), kmseal::Error>(())
//! # }).unwrap();
//! ```

mod json;
mod local;
mod reference;
mod resolver;

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;

pub use json::json_field;
pub use local::{EnvStore, FileStore, LocalStores};
pub use reference::{SecretRef, StoreKind};
pub use resolver::{Resolved, Resolver, ResolverSettings, ResolverStats, StoreSource};

use crate::error::{Error, StoreErrorKind};
use crate::secret::SecretBytes;

/// The largest secret value a store returns or accepts: 64 KiB, the limit of AWS Secrets
/// Manager and Google Secret Manager (Azure Key Vault's is 25 KiB). A larger value is an
/// [`Error::Store`] of kind [`StoreErrorKind::TooLarge`], never a silently cut one.
pub const MAX_SECRET_LEN: usize = 64 * 1024;

/// What a store says about one version of a secret.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct VersionInfo {
    /// The store's version id (`1`, a UUID, a 32-hex Azure version); empty where the store
    /// keeps no versions (`env://`, `file://`, KV v1).
    pub id: String,
    /// When the version was created, where the store records it.
    pub created: Option<SystemTime>,
    /// Stages or labels attached to the version (`AWSCURRENT`, `AWSPREVIOUS`, `current`).
    pub stages: Vec<String>,
    /// Whether the version is disabled or deleted (listed, but cannot be read).
    pub disabled: bool,
}

impl VersionInfo {
    /// A version with this id and nothing else known.
    pub fn new(id: impl Into<String>) -> VersionInfo {
        VersionInfo {
            id: id.into(),
            ..VersionInfo::default()
        }
    }

    /// With a creation time.
    pub fn created(mut self, at: SystemTime) -> VersionInfo {
        self.created = Some(at);
        self
    }

    /// With stages.
    pub fn stages(mut self, stages: Vec<String>) -> VersionInfo {
        self.stages = stages;
        self
    }

    /// Marked disabled or deleted.
    pub fn disabled(mut self, disabled: bool) -> VersionInfo {
        self.disabled = disabled;
        self
    }

    /// The creation time as RFC 3339 (`2026-12-01T19:20:01Z`, UTC, whole seconds).
    pub fn created_rfc3339(&self) -> Option<String> {
        self.created.map(crate::time::rfc3339)
    }
}

/// A secret as a store returned it: the whole value, in locked memory, and its version.
pub struct StoredSecret {
    /// The value (for a JSON object secret, the whole object: `#field` is applied by
    /// [`SecretRef::select`]).
    pub value: SecretBytes,
    /// The version it came from.
    pub version: VersionInfo,
}

impl fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSecret")
            .field("value", &self.value)
            .field("version", &self.version)
            .finish()
    }
}

/// A secret store: reads, writes and lists versions of secrets named by [`SecretRef`]s.
///
/// One instance serves one endpoint with one set of credentials (an AWS region and account,
/// a Vault address and token, this process's environment); [`serves`](Self::serves) says
/// which references it is for.
///
/// Implementations must put a fetched value into [`SecretBytes`] at once (reading a
/// response body chunk by chunk into locked memory where the client allows it), refuse values
/// over [`MAX_SECRET_LEN`], honour the reference's `?version=` / `?stage=` and ignore its
/// `#field` (the caller applies it), and never include a value in errors or logs.
#[async_trait]
pub trait SecretStore: Send + Sync + fmt::Debug {
    /// The kind of store.
    fn kind(&self) -> StoreKind;

    /// Which endpoint and identity this instance uses, for logs and errors (never a
    /// credential): `vault-kv://127.0.0.1:8200`, `aws-sm (eu-west-1)`.
    fn describe(&self) -> String;

    /// Whether this instance is the one for `reference` (same kind, and the same endpoint
    /// where the reference names one).
    fn serves(&self, reference: &SecretRef) -> bool;

    /// The secret `reference` names: the version or stage it selects, else the current one.
    async fn get(&self, reference: &SecretRef) -> Result<StoredSecret, Error>;

    /// Stores `value` as the new current version of the secret `reference` names (which must
    /// carry no selectors), creating the secret if the store allows. Default: unsupported.
    async fn put(&self, reference: &SecretRef, value: &[u8]) -> Result<VersionInfo, Error> {
        let _ = value;
        Err(unsupported(reference, "this store cannot write secrets"))
    }

    /// The versions of the secret `reference` names, newest first. Default: unsupported.
    async fn versions(&self, reference: &SecretRef) -> Result<Vec<VersionInfo>, Error> {
        Err(unsupported(reference, "this store keeps no versions"))
    }
}

impl SecretRef {
    /// What this reference resolves to in `secret`: its `#field` when it has one, else the
    /// whole value (a copy in locked memory).
    pub fn select(&self, secret: &StoredSecret) -> Result<SecretBytes, Error> {
        match self.field() {
            Some(field) => match json::json_field_if_present(secret.value.expose_secret(), field) {
                Ok(Some(value)) => Ok(value),
                Ok(None) => Err(self.error(
                    StoreErrorKind::NotFound,
                    format!("the secret has no field `{field}`"),
                )),
                Err(Error::SecretShape(message)) => Err(self.error(StoreErrorKind::Other, message)),
                Err(other) => Err(other),
            },
            None => secret.value.try_clone(),
        }
    }

    /// A store error for this reference.
    pub fn error(&self, kind: StoreErrorKind, message: impl Into<String>) -> Error {
        Error::Store {
            reference: self.to_string(),
            kind,
            message: message.into(),
        }
    }

    /// Refuses a reference with selectors (for `put`, which always writes a new current
    /// version).
    pub fn check_no_selectors(&self) -> Result<(), Error> {
        if self.version().is_some() || self.stage().is_some() || self.field().is_some() {
            return Err(self.invalid(
                "a secret is written whole, as its new current version: drop ?version=, \
                 ?stage= and #field",
            ));
        }
        Ok(())
    }
}

/// The error for a value over [`MAX_SECRET_LEN`].
pub fn too_large(reference: &SecretRef, len: usize) -> Error {
    reference.error(
        StoreErrorKind::TooLarge,
        format!("the value is {len} bytes, over the limit of {MAX_SECRET_LEN}"),
    )
}

fn unsupported(reference: &SecretRef, why: &str) -> Error {
    reference.error(StoreErrorKind::Unsupported, why)
}
