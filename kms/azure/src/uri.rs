//! `azure-kv://` key URIs, parsed once into their parts.

use std::fmt;
use std::str::FromStr;

use kmseal::{Error, KeyUri, Provider};
use kmseal_kms_common::uri::{body_for, invalid, is_host, is_name};

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
        self.host
            .split_once(':')
            .map_or(&self.host, |(name, _)| name)
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
}
