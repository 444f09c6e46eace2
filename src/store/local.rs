//! The stores that need no service: `env://NAME` and `file://PATH`.

use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use super::{
    MAX_SECRET_LEN, SecretRef, SecretStore, StoreKind, StoreSource, StoredSecret, VersionInfo,
    too_large,
};
use crate::error::{Error, StoreErrorKind};
use crate::private_file::{Refusal, read_private};
use crate::secret::SecretBytes;

/// `env://NAME`: an environment variable of this process.
///
/// The value is copied into locked memory and our copy of the variable is wiped; the
/// process environment itself (which the kernel and libc keep) cannot be, so prefer a store
/// or a sealed document for anything long-lived (see SECURITY.md).
#[derive(Debug, Default, Clone, Copy)]
pub struct EnvStore;

#[async_trait]
impl SecretStore for EnvStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Env
    }

    fn describe(&self) -> String {
        "env (this process's environment)".into()
    }

    fn serves(&self, reference: &SecretRef) -> bool {
        reference.kind() == StoreKind::Env
    }

    async fn get(&self, reference: &SecretRef) -> Result<StoredSecret, Error> {
        let name = reference.body();
        let Some(value) = std::env::var_os(name) else {
            return Err(reference.error(
                StoreErrorKind::NotFound,
                format!("environment variable {name} is not set"),
            ));
        };
        let value = SecretBytes::from_vec_zeroizing(value.into_vec())?;
        if value.len() > MAX_SECRET_LEN {
            return Err(too_large(reference, value.len()));
        }
        Ok(StoredSecret {
            value,
            version: VersionInfo::default(),
        })
    }
}

/// `file://PATH`: a file holding the secret, with the checks made of local key files (not a
/// symbolic link, a regular file, owned by this user or root, mode 0600 or stricter, in a
/// directory nobody else can write). Relative paths are relative to the working directory.
///
/// A Kubernetes Secret volume presents each key as a symbolic link (`NAME -> ..data/NAME`)
/// with mode 0644 by default: set `defaultMode: 0400` on the volume and reference the file
/// through the link's target directory, `file:///mnt/secret/..data/NAME`.
#[derive(Debug, Default, Clone, Copy)]
pub struct FileStore;

#[async_trait]
impl SecretStore for FileStore {
    fn kind(&self) -> StoreKind {
        StoreKind::File
    }

    fn describe(&self) -> String {
        "file (this host's filesystem)".into()
    }

    fn serves(&self, reference: &SecretRef) -> bool {
        reference.kind() == StoreKind::File
    }

    async fn get(&self, reference: &SecretRef) -> Result<StoredSecret, Error> {
        let path = Path::new(reference.body());
        let limit = MAX_SECRET_LEN as u64;
        let value = read_private(path, limit, "check the path").map_err(|r| match r {
            Refusal::Missing(reason) => {
                reference.error(StoreErrorKind::NotFound, format!("the file {reason}"))
            }
            Refusal::TooLarge(reason) => {
                reference.error(StoreErrorKind::TooLarge, format!("the file {reason}"))
            }
            Refusal::Unsafe(reason) => {
                reference.error(StoreErrorKind::AccessDenied, format!("the file {reason}"))
            }
        })?;
        Ok(StoredSecret {
            value,
            version: VersionInfo::default(),
        })
    }
}

/// The [`StoreSource`] for `env://` and `file://` references; every other store needs its
/// provider crate (`kmseal-keys` resolves all of them).
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalStores;

#[async_trait]
impl StoreSource for LocalStores {
    async fn open(&self, reference: &SecretRef) -> Result<Arc<dyn SecretStore>, Error> {
        match reference.kind() {
            StoreKind::Env => Ok(Arc::new(EnvStore)),
            StoreKind::File => Ok(Arc::new(FileStore)),
            other => Err(reference.invalid(format!(
                "{} references need a provider crate: resolve them with kmseal-keys",
                other.scheme()
            ))),
        }
    }
}
