//! Recovering the data key from the file's key sources: age first (in the file's order), then
//! the KMS entries through kmseal's providers, each only by a KEK that claims it
//! ([`Kek::matches`]: provider and key id).
//!
//! AWS KMS entries carry SOPS's encryption context, which kmseal's AWS provider passes as is:
//! they open with [`Kek::unwrap`]. SOPS encrypts the data key for GCP KMS, Azure Key Vault and
//! Vault transit *without* associated data, while kmseal's own wraps always carry some; those
//! entries open with [`Kek::unwrap_foreign`], which kmseal's own messages never use. What SOPS
//! 3.x stores (`gcpkms/keysource.go`, `azkv/keysource.go`, `hcvault/keysource.go`):
//!
//! | entry | key id | `enc` |
//! | --- | --- | --- |
//! | `kms[]` | `arn` | base64 of KMS `Encrypt` with `context` as EncryptionContext |
//! | `gcp_kms[]` | `resource_id` | base64 of Cloud KMS `encrypt` of the raw key, no AAD |
//! | `azure_kv[]` | `vault_url`, `name`, `version` | base64url (no padding) of Key Vault `encrypt`, RSA-OAEP-256 |
//! | `hc_vault[]` | `vault_address`, `engine_path`, `key_name` | transit ciphertext `vault:vN:…` of the raw key (sent as base64), no context |

use std::sync::Arc;

use base64::Engine;
use kmseal::{DataKey, EncryptionContext, Kek, WrappedKey, escape_untrusted};

use crate::metadata::Source;
use crate::{Error, Identities};

/// Where the data key may come from: age identities, and the KEKs trusted to unwrap the
/// file's KMS-wrapped copies.
///
/// By default only the KEKs given with [`Keys::kek`] are called, so a file never chooses
/// which KMS key kmseal asks. [`Keys::dangerous_kms_from_file`] instead builds a KEK for each
/// KMS key the file names (what `sops decrypt` does).
///
/// ```
/// use kmseal_sops::{Identities, Keys};
/// let keys = Keys::new(Identities::new());
/// assert!(format!("{keys:?}").contains("count: 0"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Keys {
    pub(crate) identities: Identities,
    pub(crate) keks: Vec<Arc<dyn Kek>>,
    pub(crate) kms_from_file: bool,
}

impl Keys {
    /// Age identities only (add KEKs with [`Keys::kek`]).
    pub fn new(identities: Identities) -> Keys {
        Keys {
            identities,
            ..Keys::default()
        }
    }

    /// Trusts `kek` (an `aws-kms://`, `gcp-kms://`, `azure-kv://` or `vault://` KEK, e.g.
    /// from `kmseal_keys::from_uri`) to unwrap the file's copy wrapped by that same key. A
    /// file entry is matched by [`Kek::matches`]: provider and key id. For AWS the key ARN the
    /// file records; for GCP the CryptoKey `resource_id`; for Azure `HOST/keys/NAME/VERSION`
    /// (a KEK without a version claims every version of the key); for Vault
    /// `ENGINE_PATH/keys/KEY_NAME`, whatever the address (the KEK's address is used, never
    /// the file's).
    pub fn kek(mut self, kek: Arc<dyn Kek>) -> Keys {
        self.keks.push(kek);
        self
    }

    /// Also calls the KMS keys the file itself names (`sops.kms[]`, `gcp_kms[]`,
    /// `azure_kv[]`, `hc_vault[]`), building a KEK for each with `kmseal_keys::from_uri` and
    /// the default credential chain: the file then chooses which KMS key is asked. The KMS's
    /// own access control still decides; the MAC is checked either way.
    ///
    /// A Vault entry's `vault_address` is used only when it is the address in `VAULT_ADDR`
    /// (or `BAO_ADDR`): the Vault token is a bearer secret, and a file must not be able to
    /// send it to a server of its choosing. Other entries go to the cloud's own endpoints.
    pub fn dangerous_kms_from_file(mut self, allow: bool) -> Keys {
        self.kms_from_file = allow;
        self
    }
}

/// How an entry's wrapped key is opened.
#[derive(Debug)]
enum Call {
    /// [`Kek::unwrap`] under this context (AWS KMS, whose entries record theirs).
    Unwrap(EncryptionContext),
    /// [`Kek::unwrap_foreign`] (no associated data).
    Foreign,
}

/// A KMS entry of the file, ready to open.
#[derive(Debug)]
struct Entry {
    /// What to call it in messages.
    what: String,
    wrapped: WrappedKey,
    call: Call,
    /// The key URI to build a KEK from when the file may choose
    /// ([`Keys::dangerous_kms_from_file`]), or why it may not.
    from_file: Result<String, String>,
}

/// The data key, or every reason it could not be had.
pub(crate) async fn data_key(sources: &[Source], keys: &Keys) -> Result<DataKey, Error> {
    let mut tried = Vec::new();
    let ages = sources.iter().filter(|s| matches!(s, Source::Age { .. }));
    for s in ages {
        let Source::Age { recipient, enc } = s else {
            continue;
        };
        let recipient = escape_untrusted(recipient);
        if keys.identities.is_empty() {
            tried.push(format!("age {recipient}: no age identities loaded"));
            continue;
        }
        match keys.identities.unwrap_file(enc) {
            Some(k) => {
                return DataKey::from_bytes(&k).map_err(|_| {
                    Error::NoDataKey(vec![format!("age {recipient}: not a 32-byte data key")])
                });
            }
            None => tried.push(format!(
                "age {recipient}: no identity opens it (or it was modified)"
            )),
        }
    }
    for s in sources {
        let entry = match entry(s) {
            Ok(Some(entry)) => entry,
            Ok(None) => continue,
            Err(why) => {
                tried.push(why);
                continue;
            }
        };
        match open(keys, &entry).await {
            Ok(Some(k)) => return Ok(k),
            Ok(None) => tried.push(format!(
                "{}: no trusted KEK for it (pass it as a KEK, or allow the file's KMS keys)",
                entry.what
            )),
            Err(e) => tried.push(format!("{}: {e}", entry.what)),
        }
    }
    Err(Error::NoDataKey(tried))
}

/// The entry for a KMS source; `Ok(None)` for age (handled first); `Err` says why a source
/// cannot be used.
fn entry(s: &Source) -> Result<Option<Entry>, String> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let wrapped = |provider: &str, key_id: String, ciphertext: Vec<u8>| WrappedKey {
        provider: provider.to_owned(),
        key_id,
        ciphertext,
    };
    let entry = match s {
        Source::Age { .. } => return Ok(None),
        Source::Kms {
            arn,
            enc,
            context,
            role,
            profile,
        } => {
            let what = format!("aws kms {}", escape_untrusted(arn));
            if !role.is_empty() || !profile.is_empty() {
                return Err(format!(
                    "{what}: `role`/`aws_profile` are not supported (set AWS_PROFILE or \
                     credentials for the default chain and import again)"
                ));
            }
            let ct = STANDARD
                .decode(enc)
                .map_err(|_| format!("{what}: `enc` is not base64"))?;
            let mut ctx = EncryptionContext::new();
            for (k, v) in context {
                ctx = ctx
                    .with(k.as_str(), v.as_str())
                    .map_err(|_| format!("{what}: its encryption context is not usable"))?;
            }
            Entry {
                from_file: Ok(format!("aws-kms://{arn}")),
                wrapped: wrapped("aws-kms", arn.clone(), ct),
                call: Call::Unwrap(ctx),
                what,
            }
        }
        Source::Gcp { resource_id, enc } => {
            let what = format!("gcp kms {}", escape_untrusted(resource_id));
            let ct = STANDARD
                .decode(enc)
                .map_err(|_| format!("{what}: `enc` is not base64"))?;
            Entry {
                from_file: Ok(format!("gcp-kms://{resource_id}")),
                wrapped: wrapped("gcp-kms", resource_id.clone(), ct),
                call: Call::Foreign,
                what,
            }
        }
        Source::Azure {
            vault_url,
            name,
            version,
            enc,
        } => {
            let host = vault_url
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .to_owned();
            let key_id = format!("{host}/keys/{name}/{version}");
            let what = format!("azure key vault {}", escape_untrusted(&key_id));
            if version.is_empty() {
                return Err(format!(
                    "{what}: the entry names no key version (SOPS records the one it used)"
                ));
            }
            // Go's base64.RawURLEncoding; padding is tolerated.
            let ct = URL_SAFE_NO_PAD
                .decode(enc.trim_end_matches('='))
                .map_err(|_| format!("{what}: `enc` is not base64url"))?;
            Entry {
                from_file: Ok(format!("azure-kv://{key_id}")),
                wrapped: wrapped("azure-kv", key_id, ct),
                call: Call::Foreign,
                what,
            }
        }
        Source::Vault {
            address,
            engine_path,
            key_name,
            enc,
        } => {
            let what = format!(
                "vault transit {}",
                escape_untrusted(&format!("{address}/v1/{engine_path}/keys/{key_name}"))
            );
            if engine_path.is_empty() || key_name.is_empty() {
                return Err(format!("{what}: `engine_path` or `key_name` is empty"));
            }
            if !enc.starts_with("vault:v") {
                return Err(format!("{what}: `enc` is not a transit ciphertext"));
            }
            let key_id = format!("{engine_path}/keys/{key_name}");
            Entry {
                from_file: vault_uri(address, &key_id),
                wrapped: wrapped("vault", key_id, enc.as_bytes().to_vec()),
                call: Call::Foreign,
                what,
            }
        }
        Source::Pgp { fingerprint } => {
            return Err(format!(
                "pgp {}: PGP is not supported",
                escape_untrusted(fingerprint)
            ));
        }
    };
    Ok(Some(entry))
}

/// The `vault://` (or `vault+http://`) URI for a Vault entry when the file may name the key,
/// which for Vault also needs the file's address to be the one in `VAULT_ADDR`/`BAO_ADDR`.
fn vault_uri(address: &str, key_id: &str) -> Result<String, String> {
    let configured = ["VAULT_ADDR", "BAO_ADDR"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.is_empty());
    vault_uri_for(address, key_id, configured.as_deref())
}

fn vault_uri_for(address: &str, key_id: &str, configured: Option<&str>) -> Result<String, String> {
    let address = address.trim_end_matches('/');
    if configured.map(|c| c.trim_end_matches('/')) != Some(address) {
        return Err(format!(
            "the file's vault_address is not VAULT_ADDR ({}): kmseal does not send a Vault \
             token to an address a file chooses; trust the key explicitly (a vault:// KEK, \
             `--sops-key` on the command line)",
            configured.unwrap_or("unset")
        ));
    }
    let (scheme, rest) = match address.split_once("://") {
        Some(("https", rest)) => ("vault", rest),
        Some(("http", rest)) => ("vault+http", rest),
        _ => return Err("vault_address is not an http(s) URL".into()),
    };
    if rest.is_empty() || rest.contains('/') {
        return Err("vault_address has a path (not supported by SOPS either)".into());
    }
    // kmseal's vault:// defaults to port 8200; a URL without a port means the scheme's.
    let has_port = rest
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let port = match (has_port, scheme) {
        (true, _) => "",
        (false, "vault") => ":443",
        (false, _) => ":80",
    };
    Ok(format!("{scheme}://{rest}{port}/{key_id}"))
}

/// Opens an entry with a trusted KEK that claims it, or (when allowed) one built from the
/// file's names; `Ok(None)` when no KEK may be asked.
async fn open(keys: &Keys, entry: &Entry) -> Result<Option<DataKey>, String> {
    let e = |e: kmseal::Error| e.to_string();
    if let Some(kek) = keys.keks.iter().find(|k| k.matches(&entry.wrapped)) {
        return call(kek.as_ref(), &entry.wrapped, &entry.call)
            .await
            .map(Some)
            .map_err(e);
    }
    if !keys.kms_from_file {
        return Ok(None);
    }
    let uri = entry.from_file.as_ref().map_err(Clone::clone)?;
    let kek = kmseal_keys::from_uri(uri).await.map_err(e)?;
    // The KEK names the resolved key (an AWS alias ARN becomes its key ARN).
    let wrapped = WrappedKey {
        key_id: kek.key_id().to_owned(),
        ..entry.wrapped.clone()
    };
    if !kek.matches(&wrapped) {
        return Err(format!(
            "the KEK built from the file ({}) does not claim it",
            kek.describe()
        ));
    }
    call(kek.as_ref(), &wrapped, &entry.call)
        .await
        .map(Some)
        .map_err(e)
}

async fn call(kek: &dyn Kek, wrapped: &WrappedKey, how: &Call) -> Result<DataKey, kmseal::Error> {
    match how {
        Call::Unwrap(context) => kek.unwrap(wrapped, context).await,
        Call::Foreign => kek.unwrap_foreign(wrapped).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_addresses_become_key_uris_only_when_they_are_vault_addr() {
        let id = "transit/keys/app";
        let ok = |a: &str, c: &str| vault_uri_for(a, id, Some(c)).unwrap();
        assert_eq!(
            ok("http://127.0.0.1:8200", "http://127.0.0.1:8200/"),
            "vault+http://127.0.0.1:8200/transit/keys/app"
        );
        assert_eq!(
            ok("https://vault.example.com", "https://vault.example.com"),
            "vault://vault.example.com:443/transit/keys/app"
        );
        assert_eq!(
            ok("https://v.example:8200/", "https://v.example:8200"),
            "vault://v.example:8200/transit/keys/app"
        );
        for (file, configured) in [
            (
                "https://attacker.example",
                Some("https://vault.example.com"),
            ),
            ("https://vault.example.com", None),
            ("ftp://vault.example.com", Some("ftp://vault.example.com")),
            ("https://v.example/prefix", Some("https://v.example/prefix")),
        ] {
            assert!(vault_uri_for(file, id, configured).is_err(), "{file}");
        }
    }

    #[test]
    fn entries_are_parsed_into_wrapped_keys() {
        let e = entry(&Source::Azure {
            vault_url: "https://v.vault.azure.net/".into(),
            name: "k".into(),
            version: "0123abcd".into(),
            enc: "AAEC".into(),
        })
        .unwrap()
        .unwrap();
        assert_eq!(e.wrapped.key_id, "v.vault.azure.net/keys/k/0123abcd");
        assert_eq!(e.wrapped.ciphertext, [0, 1, 2]);
        assert!(matches!(e.call, Call::Foreign));
        let versionless = Source::Azure {
            vault_url: "https://v.vault.azure.net".into(),
            name: "k".into(),
            version: String::new(),
            enc: "AAEC".into(),
        };
        assert!(entry(&versionless).unwrap_err().contains("no key version"));
        let e = entry(&Source::Vault {
            address: "http://127.0.0.1:8200".into(),
            engine_path: "team/transit".into(),
            key_name: "app".into(),
            enc: "vault:v1:abcd".into(),
        })
        .unwrap()
        .unwrap();
        assert_eq!(
            (e.wrapped.provider.as_str(), e.wrapped.key_id.as_str()),
            ("vault", "team/transit/keys/app")
        );
        let e = entry(&Source::Gcp {
            resource_id: "projects/p/locations/l/keyRings/r/cryptoKeys/k".into(),
            enc: "AAEC".into(),
        })
        .unwrap()
        .unwrap();
        assert_eq!(
            e.from_file.unwrap(),
            "gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k"
        );
        let bad = Source::Gcp {
            resource_id: "x".into(),
            enc: "not base64!".into(),
        };
        assert!(entry(&bad).unwrap_err().contains("not base64"));
    }
}
