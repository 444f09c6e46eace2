//! Azure Key Vault secrets as a [`SecretStore`].

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use azure_security_keyvault_secrets::models::{SecretClientGetSecretOptions, SetSecretParameters};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use futures_util::StreamExt;
use kmseal::store::{
    MAX_SECRET_LEN, SecretRef, SecretStore, StoreKind, StoredSecret, VersionInfo, too_large,
};
use kmseal::{Error, KmsErrorKind, SecretBytes};

use crate::connection::{self, Connection, connection_setters};
use crate::uri::AzureSecretId;
use crate::{kms_error, map_error};

/// Settings for an [`AzureSecretsStore`].
#[derive(Debug)]
pub struct AzureSecretsBuilder {
    host: String,
    host_name: String,
    conn: Connection,
}

impl AzureSecretsBuilder {
    connection_setters!();

    /// Builds the client (no call to Key Vault yet).
    pub fn build(self) -> Result<AzureSecretsStore, Error> {
        let (client_options, credential) = self.conn.client_options(&self.host_name)?;
        let client = SecretClient::new(
            &format!("https://{}", self.host),
            credential,
            Some(SecretClientOptions {
                client_options,
                ..Default::default()
            }),
        )
        .map_err(|e| connection::setup_error("client", &e))?;
        Ok(AzureSecretsStore {
            inner: Arc::new(Inner {
                client,
                host: self.host,
                timeout: self.conn.timeout,
                retries: self.conn.retries,
            }),
        })
    }
}

struct Inner {
    client: SecretClient,
    host: String,
    timeout: std::time::Duration,
    retries: u32,
}

/// The secrets of one Key Vault, with one credential:
/// `azure-secret://VAULT.vault.azure.net/NAME[/VERSION]`.
///
/// `get` is Get Secret (the current version unless one is selected), `put` is Set Secret (a
/// new version), `versions` lists the secret's versions (disabled ones marked). Credentials
/// come from the same chain as `azure-kv://` keys (workload identity, managed identity,
/// `az login`). Least privilege for reading is the *Key Vault Secrets User* role on the
/// secret (or a `get` secret permission in an access policy).
///
/// ```no_run
/// # async fn demo() -> Result<(), kmseal::Error> {
/// use std::sync::Arc;
/// use kmseal::store::Resolver;
/// use kmseal_azure::AzureSecretsStore;
///
/// let reference = "azure-secret://billing-kv.vault.azure.net/db-password".parse()?;
/// let store = AzureSecretsStore::builder(&reference)?.build()?; // workload identity on AKS
/// let resolver = Resolver::with_stores(vec![Arc::new(store)], Default::default());
/// let password = resolver.resolve(&reference).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AzureSecretsStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AzureSecretsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureSecretsStore")
            .field("vault", &self.inner.host)
            .finish_non_exhaustive()
    }
}

/// The version at the end of a secret id (`https://V.vault.azure.net/secrets/NAME/VERSION`).
fn version_of(id: Option<&str>) -> String {
    id.and_then(|id| id.rsplit('/').next())
        .unwrap_or_default()
        .to_owned()
}

fn info_of(
    id: Option<&str>,
    attributes: Option<&azure_security_keyvault_secrets::models::SecretAttributes>,
) -> VersionInfo {
    let mut info = VersionInfo::new(version_of(id))
        .disabled(attributes.and_then(|a| a.enabled) == Some(false));
    info.created = attributes.and_then(|a| a.created).map(SystemTime::from);
    info
}

impl AzureSecretsStore {
    /// Settings for the store of the vault `reference` names.
    pub fn builder(reference: &SecretRef) -> Result<AzureSecretsBuilder, Error> {
        let id = AzureSecretId::try_from(reference)?;
        Ok(AzureSecretsBuilder {
            host: id.host().to_owned(),
            host_name: id.host_name().to_owned(),
            conn: Connection::default(),
        })
    }
}

#[async_trait]
impl SecretStore for AzureSecretsStore {
    fn kind(&self) -> StoreKind {
        StoreKind::AzureSecret
    }

    fn describe(&self) -> String {
        format!("azure-secret ({})", self.inner.host)
    }

    fn serves(&self, reference: &SecretRef) -> bool {
        AzureSecretId::try_from(reference).is_ok_and(|id| id.host() == self.inner.host)
    }

    async fn get(&self, reference: &SecretRef) -> Result<StoredSecret, Error> {
        let id = AzureSecretId::try_from(reference)?;
        let (name, version) = (id.name().to_owned(), id.version().map(str::to_owned));
        let inner = self.inner.clone();
        let (value, info) = connection::with_retries(inner.retries, inner.timeout, move || {
            let (inner, name, version) = (inner.clone(), name.clone(), version.clone());
            async move {
                let options = SecretClientGetSecretOptions {
                    secret_version: version,
                    ..Default::default()
                };
                let secret = inner
                    .client
                    .get_secret(&name, Some(options))
                    .await
                    .and_then(|r| r.into_model())
                    .map_err(|e| map_error("getSecret", &e))?;
                let info = info_of(secret.id.as_deref(), secret.attributes.as_ref());
                let mut secret = secret;
                // Into locked memory at once; the model's string is wiped as it moves in.
                let text = secret
                    .value
                    .take()
                    .ok_or_else(|| kms_error(KmsErrorKind::Other, "getSecret returned no value"))?;
                Ok((SecretBytes::from_vec_zeroizing(text.into_bytes())?, info))
            }
        })
        .await
        .map_err(|e| e.for_reference(reference))?;
        if value.len() > MAX_SECRET_LEN {
            return Err(too_large(reference, value.len()));
        }
        let mut info = info;
        if id.version().is_none() {
            info.stages = vec!["current".into()];
        }
        Ok(StoredSecret {
            value,
            version: info,
        })
    }

    async fn put(&self, reference: &SecretRef, value: &[u8]) -> Result<VersionInfo, Error> {
        reference.check_no_selectors()?;
        if value.len() > MAX_SECRET_LEN {
            return Err(too_large(reference, value.len()));
        }
        let id = AzureSecretId::try_from(reference)?;
        if id.version().is_some() {
            return Err(reference.invalid("Set Secret makes a new version: drop /VERSION"));
        }
        // Key Vault secrets are text. Our copy stays in locked memory; each attempt hands the
        // client an owned string of its own, which it does not wipe (see SECURITY.md).
        if std::str::from_utf8(value).is_err() {
            return Err(reference.invalid("a Key Vault secret is UTF-8 text"));
        }
        let locked = Arc::new(SecretBytes::from_slice(value)?);
        let name = id.name().to_owned();
        let inner = self.inner.clone();
        let info = connection::with_retries(inner.retries, inner.timeout, move || {
            let (inner, name, locked) = (inner.clone(), name.clone(), locked.clone());
            async move {
                let text = String::from_utf8(locked.expose_secret().to_vec())
                    .map_err(|_| Error::Internal("checked UTF-8 is not UTF-8"))?;
                let parameters = SetSecretParameters {
                    value: Some(text),
                    ..Default::default()
                };
                let body = parameters
                    .try_into()
                    .map_err(|e: azure_core::Error| map_error("setSecret", &e))?;
                let secret = inner
                    .client
                    .set_secret(&name, body, None)
                    .await
                    .and_then(|r| r.into_model())
                    .map_err(|e| map_error("setSecret", &e))?;
                Ok(info_of(secret.id.as_deref(), secret.attributes.as_ref()))
            }
        })
        .await
        .map_err(|e| e.for_reference(reference))?;
        Ok(info.stages(vec!["current".into()]))
    }

    async fn versions(&self, reference: &SecretRef) -> Result<Vec<VersionInfo>, Error> {
        let id = AzureSecretId::try_from(reference)?;
        let name = id.name().to_owned();
        let inner = self.inner.clone();
        let mut out = connection::with_retries(inner.retries, inner.timeout, move || {
            let (inner, name) = (inner.clone(), name.clone());
            async move {
                let mut pager = inner
                    .client
                    .list_secret_properties_versions(&name, None)
                    .map_err(|e| map_error("getSecretVersions", &e))?;
                let mut out = Vec::new();
                while let Some(item) = pager.next().await {
                    let p = item.map_err(|e| map_error("getSecretVersions", &e))?;
                    out.push(info_of(p.id.as_deref(), p.attributes.as_ref()));
                }
                Ok(out)
            }
        })
        .await
        .map_err(|e| e.for_reference(reference))?;
        if out.is_empty() {
            return Err(reference.error(
                kmseal::StoreErrorKind::NotFound,
                "the secret has no versions",
            ));
        }
        // Newest first; the newest enabled one is what a read without a version gets. Key
        // Vault records creation in whole seconds and lists versions oldest first: within one
        // second, the later in the list is the newer.
        out.reverse();
        out.sort_by_key(|v| std::cmp::Reverse(v.created));
        if let Some(current) = out.iter_mut().find(|v| !v.disabled) {
            current.stages = vec!["current".into()];
        }
        Ok(out)
    }
}
