//! `azure-kv://` key URIs and `azure-secret://` secret references, parsed once into their parts.

use std::fmt;
use std::str::FromStr;

use kmseal::store::{SecretRef, StoreKind};
use kmseal::{Error, KeyUri, Provider};
use kmseal_kms_common::uri::{body_for, invalid, is_host, is_name, selected_version};

/// A parsed `azure-kv://VAULT.vault.azure.net/keys/NAME[/VERSION]` (or a Managed HSM's
/// `HSM.managedhsm.azure.net`).
///
/// ```
/// use kmseal_azure::AzureKeyId;
/// let key: AzureKeyId = "azure-kv://myvault.vault.azure.net/keys/kek/0123abcd".parse()?;
/// assert_eq!(key.host_name(), "myvault.vault.azure.net");
/// assert_eq!((key.name(), key.version()), ("kek", Some("0123abcd")));
/// # Ok::<(), kmseal::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AzureKeyId {
    id: String,
    host: String,
    name: String,
    version: Option<String>,
}

/// `HOST` of `HOST[:PORT]`.
fn host_name(host: &str) -> &str {
    host.split_once(':').map_or(host, |(name, _)| name)
}

/// A key version: letters and digits, at most 64.
pub(crate) fn is_version(v: &str) -> bool {
    !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl AzureKeyId {
    /// `HOST[:PORT]/keys/NAME[/VERSION]`: the key id recorded in wrapped keys.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The vault's `HOST[:PORT]`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The vault's host name, without a port (what TLS checks and key ids name).
    pub fn host_name(&self) -> &str {
        host_name(&self.host)
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pinned key version, if the URI names one.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }
}

impl TryFrom<&KeyUri> for AzureKeyId {
    type Error = Error;

    fn try_from(uri: &KeyUri) -> Result<AzureKeyId, Error> {
        let body = body_for(uri, Provider::AzureKv)?;
        let parts: Vec<&str> = body.split('/').collect();
        let (host, name, version) = match parts[..] {
            [host, "keys", name] => (host, name, None),
            [host, "keys", name, version] => (host, name, Some(version)),
            _ => {
                return Err(invalid(
                    uri,
                    "expected azure-kv://VAULT.vault.azure.net/keys/NAME[/VERSION]",
                ));
            }
        };
        if !is_host(host) || !is_name(name) {
            return Err(invalid(
                uri,
                "expected azure-kv://VAULT.vault.azure.net/keys/NAME[/VERSION]",
            ));
        }
        if version.is_some_and(|v| !is_version(v)) {
            return Err(invalid(uri, "a key version is letters and digits"));
        }
        Ok(AzureKeyId {
            id: body.to_owned(),
            host: host.to_owned(),
            name: name.to_owned(),
            version: version.map(str::to_owned),
        })
    }
}

impl FromStr for AzureKeyId {
    type Err = Error;

    /// Parses `azure-kv://HOST/keys/NAME[/VERSION]`.
    fn from_str(s: &str) -> Result<AzureKeyId, Error> {
        AzureKeyId::try_from(&s.parse::<KeyUri>()?)
    }
}

impl fmt::Display for AzureKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "azure-kv://{}", self.id)
    }
}

const SECRET_FORM: &str =
    "expected azure-secret://VAULT.vault.azure.net/NAME[/VERSION] (NAME: letters, digits, `-`)";

/// A parsed `azure-secret://VAULT.vault.azure.net/NAME[/VERSION]` reference. The version may
/// also come from `?version=` (not both); without one, the current version.
///
/// ```
/// use kmseal_azure::AzureSecretId;
/// let r = "azure-secret://myvault.vault.azure.net/db-password#password".parse()?;
/// let id = AzureSecretId::try_from(&r)?;
/// assert_eq!((id.host_name(), id.name(), id.version()), ("myvault.vault.azure.net", "db-password", None));
/// # Ok::<(), kmseal::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AzureSecretId {
    host: String,
    name: String,
    version: Option<String>,
}

impl AzureSecretId {
    /// The vault's `HOST[:PORT]`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The vault's host name, without a port.
    pub fn host_name(&self) -> &str {
        host_name(&self.host)
    }

    /// The secret's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The selected version, if any.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }
}

impl TryFrom<&SecretRef> for AzureSecretId {
    type Error = Error;

    fn try_from(reference: &SecretRef) -> Result<AzureSecretId, Error> {
        if reference.kind() != StoreKind::AzureSecret {
            return Err(reference.invalid("not an azure-secret:// reference"));
        }
        if reference.stage().is_some() {
            return Err(reference
                .invalid("Key Vault has versions, not stages: select one with ?version=ID"));
        }
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 127
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        let parts: Vec<&str> = reference.body().split('/').collect();
        let (host, name, in_path) = match parts[..] {
            [host, name] => (host, name, None),
            [host, name, version] => (host, name, Some(version)),
            _ => return Err(reference.invalid(SECRET_FORM)),
        };
        if !is_host(host) || !name_ok(name) || in_path.is_some_and(|v| !is_version(v)) {
            return Err(reference.invalid(SECRET_FORM));
        }
        let version = selected_version(reference, in_path)?;
        if version.as_deref().is_some_and(|v| !is_version(v)) {
            return Err(reference.invalid("a secret version is letters and digits"));
        }
        Ok(AzureSecretId {
            host: host.to_owned(),
            name: name.to_owned(),
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_into_their_parts_and_bad_ones_say_why() {
        let k: AzureKeyId = "azure-kv://hsm.managedhsm.azure.net:8443/keys/kek"
            .parse()
            .unwrap();
        assert_eq!(k.host(), "hsm.managedhsm.azure.net:8443");
        assert_eq!(k.host_name(), "hsm.managedhsm.azure.net");
        assert_eq!((k.name(), k.version()), ("kek", None));
        for bad in [
            "azure-kv://vault.azure.net/secrets/x",
            "azure-kv://v.vault.azure.net:99999/keys/x",
            "azure-kv://v.vault.azure.net/keys/x/ver-1",
            "azure-kv://v.vault.azure.net/keys/x/1/2",
            "azure-kv://v.vault.azure.net/keys/",
            "azure-kv://-v/keys/x",
            "vault://h:1/transit/keys/k",
        ] {
            assert!(
                matches!(bad.parse::<AzureKeyId>(), Err(Error::InvalidKeyUri { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn secret_ids_parse_and_bad_ones_say_why() {
        let parse = |s: &str| AzureSecretId::try_from(&s.parse::<SecretRef>().unwrap());
        let id = parse("azure-secret://v.vault.azure.net:8443/db-pw/0123abcd").unwrap();
        assert_eq!(
            (id.host(), id.host_name()),
            ("v.vault.azure.net:8443", "v.vault.azure.net")
        );
        assert_eq!((id.name(), id.version()), ("db-pw", Some("0123abcd")));
        let id = parse("azure-secret://v.vault.azure.net/db?version=abc1#f").unwrap();
        assert_eq!(id.version(), Some("abc1"));
        for bad in [
            "azure-secret://v.vault.azure.net",
            "azure-secret://v.vault.azure.net/db_pw",
            "azure-secret://v.vault.azure.net/db/v1/x",
            "azure-secret://v.vault.azure.net/db/v-1",
            "azure-secret://v.vault.azure.net/db/1?version=2",
            "azure-secret://v.vault.azure.net/db?stage=AWSCURRENT",
            "azure-secret://bad host/db",
            "aws-sm://prod/db",
        ] {
            let Ok(r) = bad.parse::<SecretRef>() else {
                continue;
            };
            assert!(
                matches!(
                    AzureSecretId::try_from(&r),
                    Err(Error::InvalidReference { .. })
                ),
                "{bad}"
            );
        }
    }
}
