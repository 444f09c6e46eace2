//! A key URI becomes a KEK in one call: `kmseal_keys::from_uri("aws-kms://…")`; a secret
//! reference becomes a value in one call: `kmseal_keys::get_secret("vault-kv://…#password")`
//! (or a caching [`resolver`]).
//!
//! The same resolution the `kmseal` command uses, for services (take `KMSEAL_KEY` from the
//! environment the way the CLI does) and for bindings. Each provider parses its own URI into
//! a typed one (`AwsKeyArn`, `GcpKeyName`, `AzureKeyId`, `VaultKeyPath`); this crate only
//! dispatches on the scheme and applies the environment's settings.
//!
//! ```
//! # kmseal::blocking::block_on(async {
//! use kmseal::{Decryptor, Encryptor, LocalKek};
//!
//! # let dir = std::env::temp_dir().join(format!("kmseal-keys-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # let path = dir.join("dev.key");
//! # let _ = std::fs::remove_file(&path);
//! LocalKek::create_file(&path)?; // a development key (mode 0600)
//! let kek = kmseal_keys::from_uri(&format!("local://{}", path.display())).await?;
//! let sealed = Encryptor::new(kek.clone()).encrypt(b"hello").await?;
//! assert_eq!(Decryptor::new(kek).decrypt(&sealed).await?.expose_secret(), b"hello");
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), kmseal::Error>(())
//! # }).unwrap();
//! ```
//!
//! # URIs and settings
//! | URI | provider | settings from the environment |
//! | --- | --- | --- |
//! | `local:///path/to/key`, `local://env:VAR` | the core's [`LocalKek`] | none |
//! | `aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID` | `kmseal-aws` (feature `aws`) | the AWS default chain: `AWS_*`, IRSA, EKS Pod Identity, `AWS_ENDPOINT_URL` |
//! | `gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K` | `kmseal-gcp` (feature `gcp`) | Application Default Credentials; `KMSEAL_GCP_ENDPOINT`; `KMSEAL_GCP_DANGEROUS_ANONYMOUS` (test servers only) |
//! | `azure-kv://VAULT.vault.azure.net/keys/NAME[/VERSION]` | `kmseal-azure` (feature `azure`) | the Azure chain (`AZURE_*`, workload identity, managed identity); `KMSEAL_AZURE_ALGORITHM`, `KMSEAL_AZURE_CA_FILE`, `KMSEAL_AZURE_CONNECT_TO` |
//! | `vault://HOST[:PORT]/MOUNT/keys/NAME`, `vault+http://…` | `kmseal-vault` (feature `vault`) | `VAULT_TOKEN`, `VAULT_TOKEN_FILE`, `~/.vault-token`, Kubernetes auth, `VAULT_CACERT`, `VAULT_NAMESPACE` |
//!
//! A URI whose provider is not compiled in is an [`Error::InvalidKeyUri`] that names the
//! feature to enable.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod stores;

pub use stores::{Stores, get_secret, get_secret_blocking, resolver};

use std::sync::Arc;

use kmseal::{Error, Kek, KeyUri, LocalKek, Provider};

/// The environment variable [`from_env`] reads by convention: one key URI, or several
/// separated by commas (the first wraps; all may open).
pub const KEY_ENV: &str = "KMSEAL_KEY";

/// Builds the KEK a key URI names, with the provider's default credentials and the
/// environment's settings (see the [crate docs](crate)). Cloud providers make no KMS call
/// here, except AWS for an alias (resolved to its key with `DescribeKey`).
pub async fn from_uri(uri: &str) -> Result<Arc<dyn Kek>, Error> {
    let uri: KeyUri = uri.parse()?;
    match uri.provider() {
        Provider::Local => Ok(Arc::new(LocalKek::from_uri(&uri)?)),
        #[cfg(feature = "aws")]
        Provider::AwsKms => Ok(Arc::new(kmseal_aws::AwsKek::from_uri(&uri).await?)),
        #[cfg(feature = "gcp")]
        Provider::GcpKms => gcp(&uri).await,
        #[cfg(feature = "azure")]
        Provider::AzureKv => azure(&uri).await,
        #[cfg(feature = "vault")]
        Provider::Vault => Ok(Arc::new(kmseal_vault::VaultKek::from_uri(&uri)?)),
        #[allow(unreachable_patterns)] // every provider compiled in
        other => Err(not_compiled(&uri, other)),
    }
}

/// Blocking form of [`from_uri`], for callers without an async runtime.
pub fn from_uri_blocking(uri: &str) -> Result<Arc<dyn Kek>, Error> {
    kmseal::blocking::block_on(from_uri(uri))
}

/// Builds a keyring: one KEK per URI, in order. An empty list is an error (a keyring that
/// can wrap nothing is never what the caller meant).
pub async fn from_uris<S: AsRef<str>>(uris: &[S]) -> Result<Vec<Arc<dyn Kek>>, Error> {
    if uris.is_empty() {
        return Err(Error::InvalidArgument("no key URI given"));
    }
    let mut keks = Vec::with_capacity(uris.len());
    for uri in uris {
        keks.push(from_uri(uri.as_ref()).await?);
    }
    Ok(keks)
}

/// Builds the keyring an environment variable names (conventionally [`KEY_ENV`],
/// `KMSEAL_KEY`): see [`from_list`]. An unset or empty variable is an error that names it.
pub async fn from_env(var: &str) -> Result<Vec<Arc<dyn Kek>>, Error> {
    let value = std::env::var(var).unwrap_or_default();
    if split_list(&value).is_empty() {
        return Err(Error::InvalidKeyUri {
            uri: format!("${var}"),
            reason: format!("{var} is unset or empty; set it to a key URI such as local://PATH"),
        });
    }
    from_list(&value).await
}

/// Builds the keyring a list names: one key URI, or several separated by commas (surrounding
/// spaces ignored), as `KMSEAL_KEY` holds them. The first wraps; any may open.
///
/// ```
/// # kmseal::blocking::block_on(async {
/// # use kmseal::LocalKek;
/// # let dir = std::env::temp_dir().join(format!("kmseal-keys-list-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let (a, b) = (dir.join("a.key"), dir.join("b.key"));
/// # for p in [&a, &b] { let _ = std::fs::remove_file(p); LocalKek::create_file(p)?; }
/// let list = format!("local://{}, local://{}", a.display(), b.display());
/// let keyring = kmseal_keys::from_list(&list).await?;
/// assert_eq!(keyring.len(), 2);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), kmseal::Error>(())
/// # }).unwrap();
/// ```
pub async fn from_list(list: &str) -> Result<Vec<Arc<dyn Kek>>, Error> {
    from_uris(&split_list(list)).await
}

/// The providers this build can resolve.
pub fn compiled_providers() -> Vec<Provider> {
    let mut p = vec![Provider::Local];
    if cfg!(feature = "aws") {
        p.push(Provider::AwsKms);
    }
    if cfg!(feature = "gcp") {
        p.push(Provider::GcpKms);
    }
    if cfg!(feature = "azure") {
        p.push(Provider::AzureKv);
    }
    if cfg!(feature = "vault") {
        p.push(Provider::Vault);
    }
    p
}

fn split_list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

#[allow(dead_code)] // unused when every provider is compiled in
fn not_compiled(uri: &KeyUri, provider: Provider) -> Error {
    let feature = match provider {
        Provider::AwsKms => "aws",
        Provider::GcpKms => "gcp",
        Provider::AzureKv => "azure",
        _ => "vault",
    };
    Error::InvalidKeyUri {
        uri: uri.to_string(),
        reason: format!(
            "this build cannot use {} keys (enable kmseal-keys' `{feature}` feature)",
            provider.scheme()
        ),
    }
}

/// A non-empty environment variable.
#[allow(dead_code)]
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A Cloud KMS KEK with Application Default Credentials, and the environment's
/// `KMSEAL_GCP_ENDPOINT` and `KMSEAL_GCP_DANGEROUS_ANONYMOUS`.
#[cfg(feature = "gcp")]
async fn gcp(uri: &KeyUri) -> Result<Arc<dyn Kek>, Error> {
    let mut b = kmseal_gcp::GcpKek::builder(uri)?;
    if let Some(url) = env("KMSEAL_GCP_ENDPOINT") {
        b = b.endpoint(url);
    }
    if std::env::var_os("KMSEAL_GCP_DANGEROUS_ANONYMOUS").is_some() {
        b = b.dangerous_anonymous_credentials();
    }
    Ok(Arc::new(b.build().await?))
}

/// An Azure Key Vault KEK with the default credential chain, and the environment's
/// `KMSEAL_AZURE_ALGORITHM`, `KMSEAL_AZURE_CA_FILE` and `KMSEAL_AZURE_CONNECT_TO`.
#[cfg(feature = "azure")]
async fn azure(uri: &KeyUri) -> Result<Arc<dyn Kek>, Error> {
    let mut b = kmseal_azure::AzureKek::builder(uri)?;
    if let Some(alg) = env("KMSEAL_AZURE_ALGORITHM") {
        b = b.algorithm(alg.parse()?);
    }
    let b = azure_connection(
        b,
        &uri.to_string(),
        kmseal_azure::AzureBuilder::add_root_certificate_pem,
        kmseal_azure::AzureBuilder::connect_to,
    )?;
    Ok(Arc::new(b.build().await?))
}

/// Applies `KMSEAL_AZURE_CA_FILE` and `KMSEAL_AZURE_CONNECT_TO` to any Key Vault builder
/// (keys and secrets share these settings); errors name `what` (a URI or reference).
#[cfg(feature = "azure")]
pub(crate) fn azure_connection<B>(
    mut b: B,
    what: &str,
    add_root: fn(B, Vec<u8>) -> B,
    connect_to: fn(B, std::net::IpAddr) -> B,
) -> Result<B, Error> {
    let bad = |reason: String| Error::InvalidKeyUri {
        uri: what.to_owned(),
        reason,
    };
    if let Some(path) = env("KMSEAL_AZURE_CA_FILE") {
        let pem = std::fs::read(&path)
            .map_err(|e| bad(format!("cannot read KMSEAL_AZURE_CA_FILE {path}: {e}")))?;
        b = add_root(b, pem);
    }
    if let Some(ip) = env("KMSEAL_AZURE_CONNECT_TO") {
        let ip = ip
            .parse()
            .map_err(|_| bad(format!("KMSEAL_AZURE_CONNECT_TO={ip} is not an IP address")))?;
        b = connect_to(b, ip);
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_on_commas_and_ignore_blanks() {
        assert_eq!(split_list(" a , b,,c "), ["a", "b", "c"]);
        assert!(split_list(" , ").is_empty());
        assert!(split_list("").is_empty());
    }

    #[test]
    fn every_provider_is_compiled_in_by_default() {
        assert_eq!(compiled_providers().len(), 5);
        let e = not_compiled(
            &"gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k"
                .parse()
                .unwrap(),
            Provider::GcpKms,
        );
        assert!(e.to_string().contains("`gcp` feature"), "{e}");
    }
}
