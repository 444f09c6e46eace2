//! Secret references become stores (and values) the same way key URIs become KEKs.

use std::sync::Arc;

use async_trait::async_trait;
use kmseal::store::{LocalStores, Resolver, SecretRef, SecretStore, StoreKind, StoreSource};
use kmseal::{Error, SecretBytes};

/// Opens the store any reference names, with the provider's default credentials and the
/// environment's settings (the same as for its keys; see the [crate docs](crate)):
///
/// | reference | store | settings from the environment |
/// | --- | --- | --- |
/// | `env://NAME`, `file://PATH` | the core's `EnvStore`, `FileStore` | none |
/// | `vault-kv://HOST[:PORT]/MOUNT/PATH`, `vault-kv+http://…` | `kmseal-vault` (feature `vault`) | `VAULT_TOKEN`, `BAO_TOKEN`, `~/.vault-token`, `VAULT_CACERT`, `VAULT_NAMESPACE` |
/// | `aws-sm://NAME`, `aws-sm://arn:aws:secretsmanager:…` | `kmseal-aws` (feature `aws`) | the AWS default chain: `AWS_*`, IRSA, EKS Pod Identity, `AWS_REGION` (for names), `AWS_ENDPOINT_URL` |
/// | `azure-secret://VAULT.vault.azure.net/NAME[/VERSION]` | `kmseal-azure` (feature `azure`) | the Azure chain (`AZURE_*`, workload identity, managed identity); `KMSEAL_AZURE_CA_FILE`, `KMSEAL_AZURE_CONNECT_TO` |
/// | `gcp-sm://projects/P/secrets/S[/versions/V]` | `kmseal-gcp` (feature `gcp`) | Application Default Credentials (Workload Identity); `KMSEAL_GCP_ENDPOINT`; `KMSEAL_GCP_DANGEROUS_ANONYMOUS` (test servers only) |
///
/// A kind whose provider is not compiled in (or not written yet) is an
/// [`Error::InvalidReference`] that says so.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stores;

#[async_trait]
impl StoreSource for Stores {
    async fn open(&self, reference: &SecretRef) -> Result<Arc<dyn SecretStore>, Error> {
        match reference.kind() {
            StoreKind::Env | StoreKind::File => LocalStores.open(reference).await,
            #[cfg(feature = "vault")]
            // The token from the environment goes only to VAULT_ADDR (enforced by the store).
            StoreKind::VaultKv => Ok(Arc::new(kmseal_vault::VaultKvStore::from_reference(
                reference,
            )?)),
            #[cfg(feature = "aws")]
            StoreKind::AwsSm => Ok(Arc::new(
                kmseal_aws::AwsSecretsStore::for_reference(reference).await?,
            )),
            #[cfg(feature = "azure")]
            StoreKind::AzureSecret => {
                let b = crate::azure_connection(
                    kmseal_azure::AzureSecretsStore::builder(reference)?,
                    &reference.to_string(),
                    kmseal_azure::AzureSecretsBuilder::add_root_certificate_pem,
                    kmseal_azure::AzureSecretsBuilder::connect_to,
                )?;
                Ok(Arc::new(b.build()?))
            }
            #[cfg(feature = "gcp")]
            StoreKind::GcpSm => {
                let mut b = kmseal_gcp::GcpSecretsStore::builder(reference)?;
                if let Some(url) = crate::env("KMSEAL_GCP_ENDPOINT") {
                    b = b.endpoint(url);
                }
                if std::env::var_os("KMSEAL_GCP_DANGEROUS_ANONYMOUS").is_some() {
                    b = b.dangerous_anonymous_credentials();
                }
                Ok(Arc::new(b.build().await?))
            }
            #[allow(unreachable_patterns)] // every provider compiled in
            other => Err(reference.invalid(format!(
                "this build cannot read {} secrets{}",
                other.scheme(),
                match other {
                    StoreKind::VaultKv => " (enable kmseal-keys' `vault` feature)",
                    StoreKind::AwsSm => " (enable kmseal-keys' `aws` feature)",
                    StoreKind::GcpSm => " (enable kmseal-keys' `gcp` feature)",
                    StoreKind::AzureSecret => " (enable kmseal-keys' `azure` feature)",
                    _ => " yet",
                }
            ))),
        }
    }
}

/// A [`Resolver`] over every store ([`Stores`]), with default settings: resolve references,
/// caching each secret for a TTL.
///
/// ```
/// # kmseal::blocking::block_on(async {
/// let resolver = kmseal_keys::resolver();
/// let home = resolver.resolve_str("env://HOME").await?;
/// assert!(!home.value().is_empty());
/// # Ok::<(), kmseal::Error>(())
/// # }).unwrap();
/// ```
pub fn resolver() -> Resolver {
    Resolver::new(Stores)
}

/// Fetches one secret (its `#field`, if the reference has one) into locked memory, with no
/// cache: for one-off reads (a CLI, a start-up). Services that read secrets more than once
/// keep a [`resolver`].
pub async fn get_secret(reference: &str) -> Result<SecretBytes, Error> {
    let reference: SecretRef = reference.parse()?;
    let store = Stores.open(&reference).await?;
    let secret = store
        .get(&reference.without_field())
        .await
        .map_err(|e| e.for_reference(&reference))?;
    if secret.value.len() > kmseal::store::MAX_SECRET_LEN {
        return Err(kmseal::store::too_large(&reference, secret.value.len()));
    }
    reference.select(&secret)
}

/// Blocking form of [`get_secret`], for callers without an async runtime.
pub fn get_secret_blocking(reference: &str) -> Result<SecretBytes, Error> {
    kmseal::blocking::block_on(get_secret(reference))
}
