//! AWS Secrets Manager as a [`SecretStore`].

use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::primitives::Blob;
use kmseal::store::{
    MAX_SECRET_LEN, SecretRef, SecretStore, StoreKind, StoredSecret, VersionInfo, too_large,
};
use kmseal::{Error, SecretBytes, StoreErrorKind};
use kmseal_kms_common::on_runtime;

use crate::uri::AwsSecretId;
use crate::{PROVIDER, map_sdk_error, sdk};

/// Settings for an [`AwsSecretsStore`].
#[derive(Debug)]
pub struct AwsSecretsBuilder {
    sdk: sdk::Settings,
    for_names: bool,
}

impl AwsSecretsBuilder {
    sdk::sdk_setters!();

    /// The region (default: the ARN's, else the chain's: `AWS_REGION`, the profile).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.sdk.region = Some(region.into());
        self
    }

    /// Loads the configuration (credential chain, region); no call to Secrets Manager yet.
    pub async fn build(self) -> Result<AwsSecretsStore, Error> {
        on_runtime(PROVIDER, self.build_here()).await
    }

    async fn build_here(self) -> Result<AwsSecretsStore, Error> {
        let shared = self.sdk.load().await;
        let region = shared
            .region()
            .map(|r| r.as_ref().to_owned())
            .ok_or_else(|| Error::Store {
                reference: "aws-sm".into(),
                kind: StoreErrorKind::Other,
                message: "no AWS region: set AWS_REGION, or use the secret's ARN".into(),
            })?;
        let conf = aws_sdk_secretsmanager::config::Builder::from(&shared)
            .retry_classifier(sdk::retry_429_and_5xx())
            .build();
        Ok(AwsSecretsStore {
            client: Client::from_conf(conf),
            region,
            for_names: self.for_names,
        })
    }
}

/// Secrets Manager in one region with one set of credentials: `aws-sm://NAME` (the default
/// region) and `aws-sm://arn:aws:secretsmanager:REGION:…` (that region).
///
/// `get` is `GetSecretValue` (`?version=` is a version id, `?stage=` a staging label such as
/// `AWSPREVIOUS`), `put` is `PutSecretValue` (or `CreateSecret` for a name that does not exist
/// yet), `versions` is `ListSecretVersionIds` (deprecated versions included, marked
/// disabled). Least privilege for reading is `secretsmanager:GetSecretValue` on the secret's
/// ARN (plus `kms:Decrypt` on its KMS key when that is a customer managed key).
///
/// ```no_run
/// # async fn demo() -> Result<(), kmseal::Error> {
/// use std::sync::Arc;
/// use kmseal::store::Resolver;
/// use kmseal_aws::AwsSecretsStore;
///
/// let reference = "aws-sm://prod/billing/db#password".parse()?;
/// let store = AwsSecretsStore::for_reference(&reference).await?; // IRSA, EKS Pod Identity, …
/// let resolver = Resolver::with_stores(vec![Arc::new(store)], Default::default());
/// let password = resolver.resolve(&reference).await?;
/// # Ok(()) }
/// ```
pub struct AwsSecretsStore {
    client: Client,
    region: String,
    /// Built for a name (not an ARN): serves names.
    for_names: bool,
}

impl std::fmt::Debug for AwsSecretsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSecretsStore")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl AwsSecretsStore {
    /// Settings for the store `reference` needs: for an ARN, a store in its region serving
    /// ARNs there; for a name, a store in the default region serving names.
    pub fn builder(reference: &SecretRef) -> Result<AwsSecretsBuilder, Error> {
        let id = AwsSecretId::try_from(reference)?;
        Ok(AwsSecretsBuilder {
            sdk: sdk::Settings::new(id.region().map(str::to_owned)),
            for_names: id.is_name(),
        })
    }

    /// The store `reference` needs, with the default credential chain.
    pub async fn for_reference(reference: &SecretRef) -> Result<AwsSecretsStore, Error> {
        AwsSecretsStore::builder(reference)?.build().await
    }

    /// The region this store calls.
    pub fn region(&self) -> &str {
        &self.region
    }
}

fn sm_error<E>(
    reference: &SecretRef,
    op: &str,
    err: aws_sdk_secretsmanager::error::SdkError<E, aws_sdk_kms::config::http::HttpResponse>,
) -> Error
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
{
    map_sdk_error(op, err).for_reference(reference)
}

fn time_of(t: Option<&aws_sdk_secretsmanager::primitives::DateTime>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

#[async_trait]
impl SecretStore for AwsSecretsStore {
    fn kind(&self) -> StoreKind {
        StoreKind::AwsSm
    }

    fn describe(&self) -> String {
        format!("aws-sm ({})", self.region)
    }

    fn serves(&self, reference: &SecretRef) -> bool {
        AwsSecretId::try_from(reference).is_ok_and(|id| match id.region() {
            Some(region) => region == self.region,
            None => self.for_names,
        })
    }

    async fn get(&self, reference: &SecretRef) -> Result<StoredSecret, Error> {
        let id = AwsSecretId::try_from(reference)?;
        let call = self
            .client
            .get_secret_value()
            .secret_id(id.id())
            .set_version_id(reference.version().map(str::to_owned))
            .set_version_stage(reference.stage().map(str::to_owned));
        let out = on_runtime(PROVIDER, async move { Ok(call.send().await) })
            .await?
            .map_err(|e| sm_error(reference, "GetSecretValue", e))?;
        let version = VersionInfo::new(out.version_id().unwrap_or_default())
            .stages(out.version_stages().to_vec());
        let version = match time_of(out.created_date()) {
            Some(t) => version.created(t),
            None => version,
        };
        // Into locked memory at once; the SDK's string or blob is wiped as it moves in. (The
        // SDK's JSON response buffer is not ours to wipe: see SECURITY.md.)
        let mut out = out;
        let value = if let Some(text) = out.secret_string.take() {
            SecretBytes::from_vec_zeroizing(text.into_bytes())?
        } else if let Some(blob) = out.secret_binary.take() {
            SecretBytes::from_vec_zeroizing(blob.into_inner())?
        } else {
            return Err(reference.error(StoreErrorKind::NotFound, "the version holds no value"));
        };
        if value.len() > MAX_SECRET_LEN {
            return Err(too_large(reference, value.len()));
        }
        Ok(StoredSecret { value, version })
    }

    async fn put(&self, reference: &SecretRef, value: &[u8]) -> Result<VersionInfo, Error> {
        reference.check_no_selectors()?;
        if value.len() > MAX_SECRET_LEN {
            return Err(too_large(reference, value.len()));
        }
        let id = AwsSecretId::try_from(reference)?;
        let client = self.client.clone();
        let secret_id = id.id().to_owned();
        let (t, b) = sdk_value(value);
        let put = on_runtime(PROVIDER, async move {
            Ok(client
                .put_secret_value()
                .secret_id(secret_id)
                .set_secret_string(t)
                .set_secret_binary(b)
                .send()
                .await)
        })
        .await?;
        let (version_id, stages) = match put {
            Ok(out) => (
                out.version_id().unwrap_or_default().to_owned(),
                out.version_stages().to_vec(),
            ),
            Err(e) if id.is_name() && is_not_found(&e) => {
                let client = self.client.clone();
                let name = id.id().to_owned();
                let (text, binary) = sdk_value(value);
                let out = on_runtime(PROVIDER, async move {
                    Ok(client
                        .create_secret()
                        .name(name)
                        .set_secret_string(text)
                        .set_secret_binary(binary)
                        .send()
                        .await)
                })
                .await?
                .map_err(|e| sm_error(reference, "CreateSecret", e))?;
                (
                    out.version_id().unwrap_or_default().to_owned(),
                    vec!["AWSCURRENT".to_owned()],
                )
            }
            Err(e) => return Err(sm_error(reference, "PutSecretValue", e)),
        };
        Ok(VersionInfo::new(version_id).stages(stages))
    }

    async fn versions(&self, reference: &SecretRef) -> Result<Vec<VersionInfo>, Error> {
        let id = AwsSecretId::try_from(reference)?;
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let call = self
                .client
                .list_secret_version_ids()
                .secret_id(id.id())
                .include_deprecated(true)
                .set_next_token(next.take());
            let page = on_runtime(PROVIDER, async move { Ok(call.send().await) })
                .await?
                .map_err(|e| sm_error(reference, "ListSecretVersionIds", e))?;
            for v in page.versions() {
                // A version without a staging label is deprecated (Secrets Manager may delete
                // it), but still readable by its id: not marked disabled.
                let mut info = VersionInfo::new(v.version_id().unwrap_or_default())
                    .stages(v.version_stages().to_vec());
                info.created = time_of(v.created_date());
                out.push(info);
            }
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_owned()),
                _ => break,
            }
        }
        // Newest first; versions created within the same timestamp tick are ordered by
        // their stages (current, then previous).
        let rank = |v: &VersionInfo| {
            let has = |s: &str| v.stages.iter().any(|x| x == s);
            u8::from(has("AWSCURRENT")) * 2 + u8::from(has("AWSPREVIOUS"))
        };
        out.sort_by_key(|v| std::cmp::Reverse((v.created, rank(v))));
        Ok(out)
    }
}

/// The value as the SDK takes it, owned (ordinary memory it does not wipe; see SECURITY.md):
/// text as a string, anything else as binary. Made once per request and moved into it, so no
/// copy stays with us.
fn sdk_value(value: &[u8]) -> (Option<String>, Option<Blob>) {
    match std::str::from_utf8(value) {
        Ok(t) => (Some(t.to_owned()), None),
        Err(_) => (None, Some(Blob::new(value.to_vec()))),
    }
}

fn is_not_found<E, R>(e: &aws_sdk_secretsmanager::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|se| se.code())
        .is_some_and(|c| c == "ResourceNotFoundException")
}
