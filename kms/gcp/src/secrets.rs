//! Google Cloud Secret Manager as a [`SecretStore`].

use std::future::Future;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::options::RequestOptionsBuilder;
use google_cloud_secretmanager_v1::client::SecretManagerService;
use google_cloud_secretmanager_v1::model::{Replication, Secret, SecretPayload, SecretVersion};
use kmseal::store::{
    MAX_SECRET_LEN, SecretRef, SecretStore, StoreKind, StoredSecret, VersionInfo, too_large,
};
use kmseal::{Error, KmsErrorKind, SecretBytes, StoreErrorKind};
use kmseal_kms_common::{locked_bytes, on_runtime};

use crate::uri::GcpSecretName;
use crate::{Connection, PROVIDER, connection_setters, crc, kms_error, map_error};

/// Settings for a [`GcpSecretsStore`].
#[derive(Debug)]
pub struct GcpSecretsBuilder {
    project: String,
    conn: Connection,
}

impl GcpSecretsBuilder {
    connection_setters!();

    /// Builds the client (Application Default Credentials unless told otherwise).
    pub async fn build(self) -> Result<GcpSecretsStore, Error> {
        on_runtime(PROVIDER, async move {
            let client = self
                .conn
                .configure(SecretManagerService::builder())
                .build()
                .await
                .map_err(|e| {
                    kms_error(
                        KmsErrorKind::AccessDenied,
                        format!("cannot set up the Secret Manager client: {e}"),
                    )
                })?;
            Ok(GcpSecretsStore {
                client,
                project: self.project,
                timeout: self.conn.timeout,
                retries: self.conn.retries,
            })
        })
        .await
    }
}

/// Secret Manager for one project with one set of credentials:
/// `gcp-sm://projects/P/secrets/S[/versions/V]`.
///
/// `get` is `AccessSecretVersion` (`latest` unless a version is selected) with the payload's
/// CRC32C checked (the client does not check it); `put` is `AddSecretVersion` with the
/// payload's CRC32C for the service to check (creating the secret, automatic replication,
/// on first use); `versions` is `ListSecretVersions` (disabled and destroyed versions marked).
/// Least privilege for reading is `roles/secretmanager.secretAccessor` on the secret.
///
/// ```no_run
/// # async fn demo() -> Result<(), kmseal::Error> {
/// use std::sync::Arc;
/// use kmseal::store::Resolver;
/// use kmseal_gcp::GcpSecretsStore;
///
/// let reference = "gcp-sm://projects/billing-prod/secrets/db#password".parse()?;
/// let store = GcpSecretsStore::for_reference(&reference).await?; // ADC, Workload Identity
/// let resolver = Resolver::with_stores(vec![Arc::new(store)], Default::default());
/// let password = resolver.resolve(&reference).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct GcpSecretsStore {
    client: SecretManagerService,
    project: String,
    timeout: Duration,
    retries: u32,
}

impl std::fmt::Debug for GcpSecretsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpSecretsStore")
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

fn time_of(t: Option<&google_cloud_wkt::Timestamp>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

fn info_of(v: &SecretVersion) -> VersionInfo {
    use google_cloud_secretmanager_v1::model::secret_version::State;
    let id = v.name.rsplit('/').next().unwrap_or_default();
    let mut info = VersionInfo::new(id).disabled(!matches!(v.state, State::Enabled));
    info.created = time_of(v.create_time.as_ref());
    info
}

impl GcpSecretsStore {
    /// Settings for the store of the project `reference` names.
    pub fn builder(reference: &SecretRef) -> Result<GcpSecretsBuilder, Error> {
        let name = GcpSecretName::try_from(reference)?;
        Ok(GcpSecretsBuilder {
            project: name.project().to_owned(),
            conn: Connection::default(),
        })
    }

    /// The store `reference` needs, with Application Default Credentials.
    pub async fn for_reference(reference: &SecretRef) -> Result<GcpSecretsStore, Error> {
        GcpSecretsStore::builder(reference)?.build().await
    }

    /// Runs `op` with retries on retryable kinds and integrity failures, on a tokio runtime.
    async fn with_retries<T, F, Fut>(&self, op: F) -> Result<T, Error>
    where
        F: Fn(GcpSecretsStore) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
        T: Send + 'static,
    {
        crate::with_retries(self, self.retries, op).await
    }

    async fn access_once(self, version: String) -> Result<(SecretBytes, String), Error> {
        let mut resp = self
            .client
            .access_secret_version()
            .set_name(&version)
            .with_attempt_timeout(self.timeout)
            .send()
            .await
            .map_err(|e| map_error("AccessSecretVersion", &e))?;
        let payload = resp.payload.take().ok_or_else(|| {
            kms_error(
                KmsErrorKind::Other,
                "AccessSecretVersion returned no payload",
            )
        })?;
        if payload.data.len() > MAX_SECRET_LEN {
            return Err(kms_error(
                KmsErrorKind::Other,
                format!(
                    "the payload is {} bytes, over {MAX_SECRET_LEN}",
                    payload.data.len()
                ),
            ));
        }
        // The client does not check the checksum: we do (a corrupted payload is retried).
        if payload.data_crc32c != Some(crc(&payload.data)) {
            return Err(kms_error(
                KmsErrorKind::Integrity,
                "AccessSecretVersion: payload checksum mismatch",
            ));
        }
        // Into locked memory at once (the client's response buffers are not ours to wipe).
        Ok((SecretBytes::from_slice(&payload.data)?, resp.name))
    }

    async fn add_once(
        self,
        secret: String,
        data: Bytes,
        data_crc: i64,
    ) -> Result<SecretVersion, Error> {
        let payload = SecretPayload::new()
            .set_data(data)
            .set_data_crc32c(data_crc);
        let added = self
            .client
            .add_secret_version()
            .set_parent(&secret)
            .set_payload(payload.clone())
            .with_attempt_timeout(self.timeout)
            .send()
            .await;
        match added {
            Err(e) if e.status().is_some_and(|s| s.code == Code::NotFound) => {
                // The secret does not exist yet: create it (automatic replication), then add.
                let (parent, id) = secret
                    .rsplit_once("/secrets/")
                    .ok_or(Error::Internal("a secret name without /secrets/"))?;
                self.client
                    .create_secret()
                    .set_parent(parent)
                    .set_secret_id(id)
                    .set_secret(
                        Secret::new().set_replication(Replication::new().set_automatic(
                            google_cloud_secretmanager_v1::model::replication::Automatic::new(),
                        )),
                    )
                    .with_attempt_timeout(self.timeout)
                    .send()
                    .await
                    .map_err(|e| map_error("CreateSecret", &e))?;
                self.client
                    .add_secret_version()
                    .set_parent(&secret)
                    .set_payload(payload)
                    .with_attempt_timeout(self.timeout)
                    .send()
                    .await
                    .map_err(|e| map_error("AddSecretVersion", &e))
            }
            other => other.map_err(|e| map_error("AddSecretVersion", &e)),
        }
    }
}

#[async_trait]
impl SecretStore for GcpSecretsStore {
    fn kind(&self) -> StoreKind {
        StoreKind::GcpSm
    }

    fn describe(&self) -> String {
        format!("gcp-sm (project {})", self.project)
    }

    fn serves(&self, reference: &SecretRef) -> bool {
        GcpSecretName::try_from(reference).is_ok_and(|n| n.project() == self.project)
    }

    async fn get(&self, reference: &SecretRef) -> Result<StoredSecret, Error> {
        let name = GcpSecretName::try_from(reference)?;
        let version = name.version();
        let (value, full_name) = self
            .with_retries(move |s| s.access_once(version.clone()))
            .await
            .map_err(|e| e.for_reference(reference))?;
        if value.len() > MAX_SECRET_LEN {
            return Err(too_large(reference, value.len()));
        }
        let id = full_name.rsplit('/').next().unwrap_or_default();
        let mut version = VersionInfo::new(id);
        if !name.has_version() {
            version.stages = vec!["latest".into()];
        }
        Ok(StoredSecret { value, version })
    }

    async fn put(&self, reference: &SecretRef, value: &[u8]) -> Result<VersionInfo, Error> {
        reference.check_no_selectors()?;
        if value.len() > MAX_SECRET_LEN {
            return Err(too_large(reference, value.len()));
        }
        let name = GcpSecretName::try_from(reference)?;
        if name.has_version() {
            return Err(reference.invalid("a new version is added to the secret: drop /versions/V"));
        }
        let secret = name.secret();
        let data_crc = crc(value);
        let data = locked_bytes(SecretBytes::from_slice(value)?);
        let added = self
            .with_retries(move |s| s.add_once(secret.clone(), data.clone(), data_crc))
            .await
            .map_err(|e| e.for_reference(reference))?;
        if !added.client_specified_payload_checksum {
            return Err(reference.error(
                StoreErrorKind::Integrity,
                "the service did not verify the payload checksum",
            ));
        }
        Ok(info_of(&added).stages(vec!["latest".into()]))
    }

    async fn versions(&self, reference: &SecretRef) -> Result<Vec<VersionInfo>, Error> {
        let secret = GcpSecretName::try_from(reference)?.secret();
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let (secret, page_token) = (secret.clone(), token.clone());
            let page = self
                .with_retries(move |s| {
                    let (secret, page_token) = (secret.clone(), page_token.clone());
                    async move {
                        s.client
                            .list_secret_versions()
                            .set_parent(&secret)
                            .set_page_token(page_token)
                            .with_attempt_timeout(s.timeout)
                            .send()
                            .await
                            .map_err(|e| map_error("ListSecretVersions", &e))
                    }
                })
                .await
                .map_err(|e| e.for_reference(reference))?;
            out.extend(page.versions.iter().map(info_of));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        // Newest first: version numbers grow.
        out.sort_by_key(|v| std::cmp::Reverse(v.id.parse::<u64>().unwrap_or(0)));
        if let Some(newest) = out.iter_mut().find(|v| !v.disabled) {
            newest.stages = vec!["latest".into()];
        }
        Ok(out)
    }
}
