//! Recovering the data key from the file's key sources: age first (in the file's order), then
//! AWS KMS and Azure Key Vault through kmseal's providers. GCP KMS and Vault transit are
//! refused with a reason: kmseal's providers always send associated data (the encryption
//! context's canonical bytes, two bytes even when empty) where SOPS sends none, so their
//! `unwrap` cannot open a SOPS-wrapped key.

use std::sync::Arc;

use base64::Engine;
use kmseal::{DataKey, EncryptionContext, Kek, WrappedKey};

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

    /// Trusts `kek` (an `aws-kms://` or `azure-kv://` KEK from `kmseal_keys::from_uri`) to
    /// unwrap the file's copy wrapped by that same key. A file entry is matched by
    /// [`Kek::matches`]: provider and key id (for AWS, the key ARN the file records).
    pub fn kek(mut self, kek: Arc<dyn Kek>) -> Keys {
        self.keks.push(kek);
        self
    }

    /// Also calls the KMS keys the file itself names (`sops.kms[].arn`,
    /// `sops.azure_kv[]`), building a KEK for each with `kmseal_keys::from_uri` and the
    /// default credential chain: the file then chooses which KMS key is asked. The KMS's
    /// own access control still decides; the MAC is checked either way.
    pub fn dangerous_kms_from_file(mut self, allow: bool) -> Keys {
        self.kms_from_file = allow;
        self
    }
}

/// The data key, or every reason it could not be had.
pub(crate) async fn data_key(sources: &[Source], keys: &Keys) -> Result<DataKey, Error> {
    let mut tried = Vec::new();
    let ages = sources.iter().filter(|s| matches!(s, Source::Age { .. }));
    for s in ages {
        let Source::Age { recipient, enc } = s else {
            continue;
        };
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
        let (what, wrapped, context) = match s {
            Source::Age { .. } => continue,
            Source::Kms {
                arn,
                enc,
                context,
                role,
                profile,
            } => {
                let what = format!("aws kms {arn}");
                if !role.is_empty() || !profile.is_empty() {
                    tried.push(format!(
                        "{what}: `role`/`aws_profile` are not supported (set AWS_PROFILE or \
                         credentials for the default chain and import again)"
                    ));
                    continue;
                }
                let Ok(ct) = base64::engine::general_purpose::STANDARD.decode(enc) else {
                    tried.push(format!("{what}: `enc` is not base64"));
                    continue;
                };
                let mut ctx = EncryptionContext::new();
                let mut ok = true;
                for (k, v) in context {
                    match ctx.clone().with(k.as_str(), v.as_str()) {
                        Ok(c) => ctx = c,
                        Err(_) => ok = false,
                    }
                }
                if !ok {
                    tried.push(format!("{what}: its encryption context is not usable"));
                    continue;
                }
                (
                    what,
                    WrappedKey {
                        provider: "aws-kms".into(),
                        key_id: arn.clone(),
                        ciphertext: ct,
                    },
                    ctx,
                )
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
                let what = format!("azure key vault {host}/keys/{name}/{version}");
                let Ok(ct) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(enc) else {
                    tried.push(format!("{what}: `enc` is not base64url"));
                    continue;
                };
                // kmseal-azure's wrapped-key layout: a tag byte naming the algorithm
                // (1 = RSA-OAEP-256, what SOPS's azkv uses) and the raw wrapKey result.
                let mut tagged = vec![1u8];
                tagged.extend_from_slice(&ct);
                (
                    what,
                    WrappedKey {
                        provider: "azure-kv".into(),
                        key_id: format!("{host}/keys/{name}/{version}"),
                        ciphertext: tagged,
                    },
                    EncryptionContext::new(),
                )
            }
            Source::Gcp { resource_id } => {
                tried.push(format!(
                    "gcp kms {resource_id}: not supported (kmseal's GCP provider always sends \
                     additional authenticated data; SOPS encrypts without)"
                ));
                continue;
            }
            Source::Vault {
                address,
                engine_path,
                key_name,
            } => {
                tried.push(format!(
                    "vault transit {address}/v1/{engine_path}/keys/{key_name}: not supported \
                     (kmseal's Vault provider always sends associated_data or a derivation \
                     context; SOPS encrypts without)"
                ));
                continue;
            }
            Source::Pgp { fingerprint } => {
                tried.push(format!("pgp {fingerprint}: PGP is not supported"));
                continue;
            }
        };
        match unwrap_with(keys, &wrapped, &context).await {
            Ok(Some(k)) => return Ok(k),
            Ok(None) => tried.push(format!(
                "{what}: no trusted KEK for it (pass it as a KEK, or allow the file's KMS keys)"
            )),
            Err(e) => tried.push(format!("{what}: {e}")),
        }
    }
    Err(Error::NoDataKey(tried))
}

async fn unwrap_with(
    keys: &Keys,
    wrapped: &WrappedKey,
    context: &EncryptionContext,
) -> Result<Option<DataKey>, kmseal::Error> {
    if let Some(kek) = keys.keks.iter().find(|k| k.matches(wrapped)) {
        return kek.unwrap(wrapped, context).await.map(Some);
    }
    if !keys.kms_from_file {
        return Ok(None);
    }
    let uri = format!("{}://{}", wrapped.provider, wrapped.key_id);
    let kek = kmseal_keys::from_uri(&uri).await?;
    // The KEK names the resolved key (an alias ARN becomes its key ARN).
    let wrapped = WrappedKey {
        key_id: kek.key_id().to_owned(),
        ..wrapped.clone()
    };
    kek.unwrap(&wrapped, context).await.map(Some)
}
