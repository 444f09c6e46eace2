//! `vault://` key URIs and `vault-kv://` secret references, parsed once into their parts.

use std::fmt;
use std::str::FromStr;

use kmseal::store::{SecretRef, StoreKind};
use kmseal::{Error, KeyUri, Provider};
use kmseal_kms_common::uri::{body_for, invalid, is_host, is_name};

const FORM: &str =
    "expected vault://HOST[:PORT]/MOUNT/keys/NAME (https; vault+http:// for plain http)";

/// A parsed `vault://HOST[:PORT]/MOUNT/keys/NAME` (https) or `vault+http://…` (plain http,
/// only when asked for explicitly). The port defaults to 8200; the mount may have several
/// segments (`team/transit`).
///
/// ```
/// use kmseal_vault::VaultKeyPath;
/// let key: VaultKeyPath = "vault://vault.internal/team/transit/keys/app".parse()?;
/// assert_eq!(key.address(), "https://vault.internal:8200");
/// assert_eq!((key.mount(), key.name()), ("team/transit", "app"));
/// # Ok::<(), kmseal::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VaultKeyPath {
    uri: String,
    host: String,
    mount: String,
    name: String,
    plain_http: bool,
}

impl VaultKeyPath {
    /// `http(s)://HOST:PORT`, the server's address.
    pub fn address(&self) -> String {
        address(&self.host, self.plain_http)
    }

    /// The transit mount (`transit`, `team/transit`).
    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `MOUNT/keys/NAME`: the key id recorded in wrapped keys.
    pub fn key_id(&self) -> String {
        format!("{}/keys/{}", self.mount, self.name)
    }

    /// Whether plain HTTP was asked for (`vault+http://`).
    pub fn plain_http(&self) -> bool {
        self.plain_http
    }
}

impl TryFrom<&KeyUri> for VaultKeyPath {
    type Error = Error;

    fn try_from(uri: &KeyUri) -> Result<VaultKeyPath, Error> {
        let body = body_for(uri, Provider::Vault)?;
        let (host, path) = body.split_once('/').ok_or_else(|| invalid(uri, FORM))?;
        let (mount, name) = path
            .rsplit_once("/keys/")
            .ok_or_else(|| invalid(uri, FORM))?;
        let mount_ok = !mount.is_empty() && mount.split('/').all(is_name);
        if !is_host(host) || !mount_ok || !is_name(name) {
            return Err(invalid(uri, FORM));
        }
        Ok(VaultKeyPath {
            uri: uri.to_string(),
            host: host.to_owned(),
            mount: mount.to_owned(),
            name: name.to_owned(),
            plain_http: uri.plain_http(),
        })
    }
}

impl FromStr for VaultKeyPath {
    type Err = Error;

    /// Parses `vault://…` or `vault+http://…`.
    fn from_str(s: &str) -> Result<VaultKeyPath, Error> {
        VaultKeyPath::try_from(&s.parse::<KeyUri>()?)
    }
}

impl fmt::Display for VaultKeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

const KV_FORM: &str = "expected vault-kv://HOST[:PORT]/MOUNT/PATH (https; vault-kv+http:// for \
                       plain http), path segments of letters, digits, `-`, `_` and `.`";

/// A parsed `vault-kv://HOST[:PORT]/MOUNT/PATH` (https) or `vault-kv+http://…` secret
/// reference. Where the mount ends and the secret's path begins is the server's to say (the
/// store asks it once per mount); selectors (`?version=`, `#field`) stay on the
/// [`SecretRef`].
///
/// ```
/// use kmseal_vault::VaultKvPath;
/// let r = "vault-kv://vault.internal/secret/app/db#password".parse()?;
/// let kv = VaultKvPath::try_from(&r)?;
/// assert_eq!(kv.address(), "https://vault.internal:8200");
/// assert_eq!(kv.path(), "secret/app/db");
/// # Ok::<(), kmseal::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VaultKvPath {
    host: String,
    path: String,
    plain_http: bool,
}

impl VaultKvPath {
    /// `http(s)://HOST:PORT`, the server's address.
    pub fn address(&self) -> String {
        address(&self.host, self.plain_http)
    }

    /// `MOUNT/PATH`, the mount not yet told apart.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether plain HTTP was asked for (`vault-kv+http://`).
    pub fn plain_http(&self) -> bool {
        self.plain_http
    }
}

impl TryFrom<&SecretRef> for VaultKvPath {
    type Error = Error;

    fn try_from(reference: &SecretRef) -> Result<VaultKvPath, Error> {
        if reference.kind() != StoreKind::VaultKv {
            return Err(reference.invalid("not a vault-kv:// reference"));
        }
        let (host, path) = reference
            .body()
            .split_once('/')
            .ok_or_else(|| reference.invalid(KV_FORM))?;
        // A mount and a secret: two segments at least.
        if !is_host(host) || !path.contains('/') || !path.split('/').all(is_name) {
            return Err(reference.invalid(KV_FORM));
        }
        Ok(VaultKvPath {
            host: host.to_owned(),
            path: path.to_owned(),
            plain_http: reference.plain_http(),
        })
    }
}

fn address(host: &str, plain_http: bool) -> String {
    let scheme = if plain_http { "http" } else { "https" };
    if host.contains(':') {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}:8200")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_into_their_parts_and_bad_ones_say_why() {
        let k: VaultKeyPath = "vault+http://127.0.0.1:18200/team/transit/keys/app"
            .parse()
            .unwrap();
        assert_eq!(k.address(), "http://127.0.0.1:18200");
        assert_eq!(k.key_id(), "team/transit/keys/app");
        assert!(k.plain_http());
        assert_eq!(
            k.to_string(),
            "vault+http://127.0.0.1:18200/team/transit/keys/app"
        );
        for bad in [
            "vault://h:1/transit/app",
            "vault://h:1/keys/app",
            "vault://h:0/transit/keys/app",
            "vault://h:1/transit/keys/",
            "vault://h:1/tran sit/keys/app",
            "vault://h:1//keys/app",
            "vault://h:1/transit/../sys/keys/app",
            "vault://h:1/transit/keys/..",
            "aws-kms://arn:aws:kms:us-east-1:111122223333:key/x",
        ] {
            assert!(
                matches!(
                    bad.parse::<VaultKeyPath>(),
                    Err(Error::InvalidKeyUri { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn kv_references_parse_and_bad_ones_say_why() {
        let r: SecretRef = "vault-kv+http://127.0.0.1:18200/team/kv/app/db?version=2#pw"
            .parse()
            .unwrap();
        let kv = VaultKvPath::try_from(&r).unwrap();
        assert_eq!(kv.address(), "http://127.0.0.1:18200");
        assert_eq!(kv.path(), "team/kv/app/db");
        for bad in [
            "vault-kv://h:1/secret",
            "vault-kv://h:1/secret/",
            "vault-kv://h:1//db",
            "vault-kv://h:0/secret/db",
            "vault-kv://h:1/secret/d%20b",
            "vault-kv://h:1/kv/x/../../auth/token/lookup-self",
            "vault-kv://h:1/secret/./db",
            "vault-kv://h:1/../secret/db",
            "aws-sm://prod/db",
        ] {
            let r: SecretRef = bad.parse().unwrap();
            assert!(
                matches!(
                    VaultKvPath::try_from(&r),
                    Err(Error::InvalidReference { .. })
                ),
                "{bad}"
            );
        }
    }
}
