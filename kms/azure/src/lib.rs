//! Azure Key Vault and Managed HSM key wrapping for [`kmseal`], with the official
//! `azure_security_keyvault_keys` client and `azure_identity` credentials.
//!
//! Wrap is Key Vault's `wrapKey`, unwrap is `unwrapKey`, with **RSA-OAEP-256** (RSA and
//! RSA-HSM keys, in a vault or a Managed HSM) or **A256KW** (Managed HSM `oct-HSM` keys).
//! Unless told with [`AzureBuilder::algorithm`], the algorithm follows the key's type, read
//! once with `get` (the *Key Vault Crypto Service Encryption User* role allows it).
//!
//! **Versions.** A URI without a version wraps with the key's current version; the version
//! Key Vault used is recorded in the wrapped key (`VAULT/keys/NAME/VERSION`), so unwrapping
//! after a key rotation still asks for the version that wrapped.
//!
//! **No associated data.** Key Vault's wrap operations take no AAD, so unlike the other
//! providers the encryption context is not bound by the KMS: it is bound by kmseal's header
//! (authenticated with a key derived from the data key) alone. See SECURITY.md.
//!
//! **Foreign ciphertexts.** [`Kek::unwrap_foreign`] opens a data key another tool encrypted
//! with Key Vault's `encrypt` and RSA-OAEP-256 (SOPS's `azure_kv` entries), through Key
//! Vault's `decrypt`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kmseal::Error> {
//! use std::sync::Arc;
//! use kmseal::KeyUri;
//! use kmseal_azure::AzureKek;
//!
//! // Workload identity on AKS, managed identity on a VM, or `az login` on a laptop.
//! let uri: KeyUri = "azure-kv://myvault.vault.azure.net/keys/kmseal".parse()?;
//! let kek = Arc::new(AzureKek::from_uri(&uri).await?);
//! let sealed = kmseal::Encryptor::new(kek).encrypt(b"secret").await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod credential;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::{Body, Url};
use azure_security_keyvault_keys::models::{
    KeyClientGetKeyOptions, KeyClientWrapKeyOptions, KeyOperationResult, KeyType,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use kmseal::{
    DataKey, EncryptionContext, Error, Kek, KeyUri, KmsErrorKind, SecretBytes, WrappedKey,
};
use kmseal_kms_common::locked_bytes;
use tokio::sync::OnceCell;

mod connection;
mod secrets;
mod uri;
use connection::{Connection, connection_setters};
pub use credential::ChainCredential;
pub use secrets::{AzureSecretsBuilder, AzureSecretsStore};
use uri::is_version;
pub use uri::{AzureKeyId, AzureSecretId};

const PROVIDER: &str = "azure-kv";

pub(crate) fn kms_error(kind: KmsErrorKind, message: impl Into<String>) -> Error {
    kmseal_kms_common::kms_error(PROVIDER, kind, message)
}

/// The key-wrapping algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WrapAlgorithm {
    /// RSA-OAEP with SHA-256 (RSA and RSA-HSM keys).
    RsaOaep256,
    /// AES key wrap with a 256-bit key (RFC 3394; Managed HSM `oct-HSM` keys).
    A256Kw,
}

impl WrapAlgorithm {
    /// The JWA name Key Vault uses.
    pub fn name(self) -> &'static str {
        match self {
            WrapAlgorithm::RsaOaep256 => "RSA-OAEP-256",
            WrapAlgorithm::A256Kw => "A256KW",
        }
    }

    /// The byte that records the algorithm in front of Key Vault's result (see FORMAT.md).
    fn tag(self) -> u8 {
        match self {
            WrapAlgorithm::RsaOaep256 => 1,
            WrapAlgorithm::A256Kw => 2,
        }
    }

    fn from_tag(tag: u8) -> Option<WrapAlgorithm> {
        match tag {
            1 => Some(WrapAlgorithm::RsaOaep256),
            2 => Some(WrapAlgorithm::A256Kw),
            _ => None,
        }
    }
}

impl std::str::FromStr for WrapAlgorithm {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_uppercase().as_str() {
            "RSA-OAEP-256" => Ok(WrapAlgorithm::RsaOaep256),
            "A256KW" => Ok(WrapAlgorithm::A256Kw),
            _ => Err(kms_error(
                KmsErrorKind::Other,
                format!("unknown wrap algorithm `{s}`; expected RSA-OAEP-256 or A256KW"),
            )),
        }
    }
}

/// Maps a client error to a kind. Key Vault error bodies carry codes and messages, never
/// key material.
pub(crate) fn map_error(op: &str, e: &azure_core::Error) -> Error {
    let kind = match e.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => {
            // A disabled key is a 403 whose inner error is `KeyDisabled` and whose message
            // says "disabled key"; the client surfaces the outer code and the message.
            let disabled = error_code.as_deref().unwrap_or("").contains("Disabled")
                || e.to_string().to_ascii_lowercase().contains("disabled");
            match u16::from(*status) {
                401 | 403 if disabled => KmsErrorKind::Disabled,
                400 if op == "unwrapKey" || op == "decrypt" => KmsErrorKind::InvalidCiphertext,
                status => kmseal_kms_common::status_kind(status),
            }
        }
        ErrorKind::Credential => KmsErrorKind::AccessDenied,
        ErrorKind::Connection | ErrorKind::Io => KmsErrorKind::Unavailable,
        _ => KmsErrorKind::Other,
    };
    kms_error(kind, format!("{op} failed: {e}"))
}

/// Settings for an [`AzureKek`].
pub struct AzureBuilder {
    key: AzureKeyId,
    algorithm: Option<WrapAlgorithm>,
    conn: Connection,
}

impl std::fmt::Debug for AzureBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureBuilder")
            .field("uri", &self.key.to_string())
            .field("algorithm", &self.algorithm)
            .field("connection", &self.conn)
            .finish_non_exhaustive()
    }
}

impl AzureBuilder {
    connection_setters!();

    /// The wrap algorithm (default: from the key's type, read once with Key Vault's `get`).
    pub fn algorithm(mut self, algorithm: WrapAlgorithm) -> Self {
        self.algorithm = Some(algorithm);
        self
    }

    /// Builds the client.
    pub async fn build(self) -> Result<AzureKek, Error> {
        let (client_options, credential) = self.conn.client_options(self.key.host_name())?;
        let client = KeyClient::new(
            &format!("https://{}", self.key.host()),
            credential,
            Some(KeyClientOptions {
                client_options,
                ..Default::default()
            }),
        )
        .map_err(|e| connection::setup_error("client", &e))?;
        let algorithm = OnceCell::new_with(self.algorithm);
        Ok(AzureKek {
            inner: Arc::new(Inner {
                client,
                key: self.key,
                algorithm,
                timeout: self.conn.timeout,
                retries: self.conn.retries,
            }),
        })
    }
}

struct Inner {
    client: KeyClient,
    key: AzureKeyId,
    algorithm: OnceCell<WrapAlgorithm>,
    timeout: Duration,
    retries: u32,
}

/// An Azure Key Vault or Managed HSM key used as a KEK. See the [crate docs](crate).
#[derive(Clone)]
pub struct AzureKek {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AzureKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureKek")
            .field("uri", &self.inner.key.to_string())
            .field("algorithm", &self.inner.algorithm.get())
            .finish_non_exhaustive()
    }
}

impl AzureKek {
    /// A KEK for `azure-kv://VAULT.vault.azure.net/keys/NAME[/VERSION]` with the default
    /// credential chain.
    pub async fn from_uri(uri: &KeyUri) -> Result<AzureKek, Error> {
        AzureKek::builder(uri)?.build().await
    }

    /// Settings for a KEK; finish with [`AzureBuilder::build`].
    pub fn builder(uri: &KeyUri) -> Result<AzureBuilder, Error> {
        Ok(AzureKek::builder_for(AzureKeyId::try_from(uri)?))
    }

    /// Settings for a KEK on a parsed key id.
    pub fn builder_for(key: AzureKeyId) -> AzureBuilder {
        AzureBuilder {
            key,
            algorithm: None,
            conn: Connection::default(),
        }
    }

    /// Runs `op` with retries on retryable kinds, each attempt within the timeout. The whole
    /// loop runs on a tokio runtime (the caller's or the shared one).
    async fn with_retries<T, F, Fut>(&self, op: F) -> Result<T, Error>
    where
        F: Fn(Arc<Inner>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
        T: Send + 'static,
    {
        let inner = self.inner.clone();
        connection::with_retries(inner.retries, inner.timeout, move || op(inner.clone())).await
    }

    /// The wrap algorithm: configured, or learned from the key's type.
    async fn algorithm(&self) -> Result<WrapAlgorithm, Error> {
        let this = self.clone();
        self.inner
            .algorithm
            .get_or_try_init(|| async move {
                this.with_retries(|inner| async move { inner.key_algorithm().await })
                    .await
            })
            .await
            .copied()
    }
}

impl Inner {
    async fn key_algorithm(&self) -> Result<WrapAlgorithm, Error> {
        let key = self
            .client
            .get_key(
                self.key.name(),
                Some(KeyClientGetKeyOptions {
                    key_version: self.key.version().map(str::to_owned),
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| map_error("get", &e))?
            .into_model()
            .map_err(|e| kms_error(KmsErrorKind::Other, format!("get: bad response: {e}")))?;
        match key.key.and_then(|k| k.kty) {
            Some(KeyType::Rsa | KeyType::RsaHsm) => Ok(WrapAlgorithm::RsaOaep256),
            Some(KeyType::Oct | KeyType::OctHsm) => Ok(WrapAlgorithm::A256Kw),
            other => Err(kms_error(
                KmsErrorKind::Other,
                format!(
                    "key {} has type {other:?}, which cannot wrap keys (use an RSA or oct-HSM key)",
                    self.key.name()
                ),
            )),
        }
    }

    /// Checks that `kid` names our vault and key, and returns its version.
    fn version_from_kid(&self, op: &str, kid: Option<&str>) -> Result<String, Error> {
        let integrity = |why: &str| kms_error(KmsErrorKind::Integrity, format!("{op}: {why}"));
        let url = kid
            .and_then(|k| Url::parse(k).ok())
            .ok_or_else(|| integrity("no key id in the answer"))?;
        if url.host_str() != Some(self.key.host_name()) {
            return Err(integrity("answered by another vault"));
        }
        let segments: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
        match segments[..] {
            ["keys", name, version] if name == self.key.name() && is_version(version) => {
                if self.key.version().is_some_and(|v| v != version) {
                    return Err(integrity("answered by another key version"));
                }
                Ok(version.to_owned())
            }
            _ => Err(integrity("answered by another key")),
        }
    }

    async fn wrap_once(
        &self,
        algorithm: WrapAlgorithm,
        body: bytes::Bytes,
    ) -> Result<(String, Vec<u8>), Error> {
        let resp = self
            .client
            .wrap_key(
                self.key.name(),
                Body::Bytes(body).into(),
                Some(KeyClientWrapKeyOptions {
                    key_version: self.key.version().map(str::to_owned),
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| map_error("wrapKey", &e))?;
        let result: KeyOperationResult = resp
            .into_model()
            .map_err(|e| kms_error(KmsErrorKind::Other, format!("wrapKey: bad response: {e}")))?;
        let version = self.version_from_kid("wrapKey", result.kid.as_deref())?;
        let wrapped = result.result.unwrap_or_default();
        let plausible = match algorithm {
            // RFC 3394: 8 bytes of integrity check value in front of the 32-byte key.
            WrapAlgorithm::A256Kw => wrapped.len() == 40,
            // One RSA block: 2048 to 4096-bit keys.
            WrapAlgorithm::RsaOaep256 => (256..=512).contains(&wrapped.len()),
        };
        if !plausible {
            return Err(kms_error(
                KmsErrorKind::Integrity,
                format!(
                    "wrapKey: {} bytes is not a {} result",
                    wrapped.len(),
                    algorithm.name()
                ),
            ));
        }
        Ok((version, wrapped))
    }

    async fn unwrap_once(
        &self,
        version: String,
        algorithm: WrapAlgorithm,
        ciphertext: Vec<u8>,
    ) -> Result<SecretBytes, Error> {
        let body = format!(
            r#"{{"alg":"{}","value":"{}"}}"#,
            algorithm.name(),
            B64URL.encode(&ciphertext)
        );
        let resp = self
            .client
            .unwrap_key(
                self.key.name(),
                &version,
                Body::Bytes(bytes::Bytes::from(body)).into(),
                None,
            )
            .await
            .map_err(|e| map_error("unwrapKey", &e))?;
        self.opened_key("unwrapKey", &version, resp)
    }

    /// Key Vault's `decrypt` with RSA-OAEP-256 (what a foreign `encrypt` made; the same
    /// RSA-OAEP as `unwrapKey`, but the `decrypt` permission rather than `unwrapKey`).
    async fn decrypt_once(
        &self,
        version: String,
        ciphertext: Vec<u8>,
    ) -> Result<SecretBytes, Error> {
        let body = format!(
            r#"{{"alg":"{}","value":"{}"}}"#,
            WrapAlgorithm::RsaOaep256.name(),
            B64URL.encode(&ciphertext)
        );
        let resp = self
            .client
            .decrypt(
                self.key.name(),
                &version,
                Body::Bytes(bytes::Bytes::from(body)).into(),
                None,
            )
            .await
            .map_err(|e| map_error("decrypt", &e))?;
        self.opened_key("decrypt", &version, resp)
    }

    /// The key in an `unwrapKey` or `decrypt` response (`op`), into locked memory at once
    /// (the decoded copy is wiped; the client's response buffer is not ours to wipe), if the
    /// answer came from `version`.
    fn opened_key(
        &self,
        op: &str,
        version: &str,
        resp: azure_core::http::Response<KeyOperationResult>,
    ) -> Result<SecretBytes, Error> {
        let result: KeyOperationResult = resp
            .into_model()
            .map_err(|e| kms_error(KmsErrorKind::Other, format!("{op}: bad response: {e}")))?;
        let kid_version = self.version_from_kid(op, result.kid.as_deref())?;
        let key = SecretBytes::from_vec_zeroizing(result.result.unwrap_or_default())?;
        if kid_version != version {
            return Err(kms_error(
                KmsErrorKind::Integrity,
                format!("{op}: answered by another key version"),
            ));
        }
        Ok(key)
    }
}

/// `{"alg":"…","value":"<base64url key>"}` built in locked memory.
fn wrap_request(algorithm: WrapAlgorithm, key: &[u8]) -> Result<bytes::Bytes, Error> {
    let head = format!(r#"{{"alg":"{}","value":""#, algorithm.name());
    let encoded_len = base64::encoded_len(key.len(), false).unwrap_or(0);
    let mut body = SecretBytes::zeroed(head.len() + encoded_len + 2)?;
    let buf = body.expose_secret_mut();
    buf[..head.len()].copy_from_slice(head.as_bytes());
    let end = head.len()
        + B64URL
            .encode_slice(key, &mut buf[head.len()..])
            .map_err(|e| kms_error(KmsErrorKind::Other, format!("encoding: {e}")))?;
    buf[end..end + 2].copy_from_slice(b"\"}");
    body.truncate(end + 2);
    Ok(locked_bytes(body))
}

#[async_trait]
impl Kek for AzureKek {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn key_id(&self) -> &str {
        self.inner.key.id()
    }

    fn describe(&self) -> String {
        self.inner.key.to_string()
    }

    /// Key Vault's wrapKey takes no associated data.
    fn binds_context(&self) -> bool {
        false
    }

    /// Ours when the wrapped key names our vault and key, and our version if the URI pins one.
    fn matches(&self, wrapped: &WrappedKey) -> bool {
        if wrapped.provider != PROVIDER {
            return false;
        }
        match self.inner.key.version() {
            Some(_) => wrapped.key_id == self.inner.key.id(),
            None => wrapped
                .key_id
                .strip_prefix(self.inner.key.id())
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(is_version),
        }
    }

    async fn wrap(&self, key: &DataKey, _context: &EncryptionContext) -> Result<WrappedKey, Error> {
        // Key Vault takes no associated data: the context is bound by kmseal's header.
        let algorithm = self.algorithm().await?;
        let body = wrap_request(algorithm, key.expose_secret())?;
        let (version, wrapped) = self
            .with_retries(move |inner| {
                let body = body.clone();
                async move { inner.wrap_once(algorithm, body).await }
            })
            .await?;
        let mut ciphertext = Vec::with_capacity(1 + wrapped.len());
        ciphertext.push(algorithm.tag());
        ciphertext.extend_from_slice(&wrapped);
        let base = format!("{}/keys/{}", self.inner.key.host(), self.inner.key.name());
        Ok(WrappedKey {
            provider: PROVIDER.to_owned(),
            key_id: format!("{base}/{version}"),
            ciphertext,
        })
    }

    async fn unwrap(
        &self,
        wrapped: &WrappedKey,
        _context: &EncryptionContext,
    ) -> Result<DataKey, Error> {
        if !self.matches(wrapped) {
            return Err(kms_error(
                KmsErrorKind::InvalidCiphertext,
                format!(
                    "wrapped key {wrapped} was not made by {}",
                    self.inner.key.id()
                ),
            ));
        }
        let version = wrapped
            .key_id
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let (algorithm, ct) = match wrapped.ciphertext.split_first() {
            Some((&tag, ct)) if !ct.is_empty() => match WrapAlgorithm::from_tag(tag) {
                Some(a) => (a, ct.to_vec()),
                None => {
                    return Err(kms_error(
                        KmsErrorKind::InvalidCiphertext,
                        format!("unknown wrap algorithm tag {tag}"),
                    ));
                }
            },
            _ => {
                return Err(kms_error(
                    KmsErrorKind::InvalidCiphertext,
                    "empty wrapped key",
                ));
            }
        };
        let key = self
            .with_retries(move |inner| {
                let (version, ct) = (version.clone(), ct.clone());
                async move { inner.unwrap_once(version, algorithm, ct).await }
            })
            .await?;
        DataKey::from_secret(key)
    }

    /// [`Kek::unwrap_foreign`]: `wrapped.ciphertext` is what Key Vault's `encrypt` returned
    /// for a raw 32-byte key with **RSA-OAEP-256** (SOPS's `azure_kv[].enc`, base64url-decoded;
    /// no algorithm tag in front, unlike [`Kek::unwrap`]'s layout); `wrapped.key_id` is
    /// `HOST/keys/NAME/VERSION`, matched as by [`Kek::matches`]. Opened with Key Vault's
    /// `decrypt` (the identity needs the `decrypt` key permission, as for `sops`).
    async fn unwrap_foreign(&self, wrapped: &WrappedKey) -> Result<DataKey, Error> {
        if !self.matches(wrapped) {
            return Err(kms_error(
                KmsErrorKind::InvalidCiphertext,
                format!(
                    "wrapped key {wrapped} was not made by {}",
                    self.inner.key.id()
                ),
            ));
        }
        if wrapped.ciphertext.is_empty() {
            return Err(kms_error(
                KmsErrorKind::InvalidCiphertext,
                "empty wrapped key",
            ));
        }
        let version = wrapped
            .key_id
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let ct = wrapped.ciphertext.clone();
        let key = self
            .with_retries(move |inner| {
                let (version, ct) = (version.clone(), ct.clone());
                async move { inner.decrypt_once(version, ct).await }
            })
            .await?;
        DataKey::from_secret(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_parses_versions_and_rejects_other_providers() {
        let uri: KeyUri = "vault://h:1/transit/keys/k".parse().unwrap();
        assert!(AzureKek::builder(&uri).is_err());
        let uri: KeyUri = "azure-kv://v.vault.azure.net/keys/k/0123abc"
            .parse()
            .unwrap();
        let b = AzureKek::builder(&uri).unwrap();
        assert_eq!(
            (b.key.host(), b.key.name(), b.key.version()),
            ("v.vault.azure.net", "k", Some("0123abc"))
        );
    }

    #[test]
    fn wrap_request_is_the_documented_json() {
        let body = wrap_request(WrapAlgorithm::A256Kw, &[0xfb; 32]).unwrap();
        let expected = format!(
            r#"{{"alg":"A256KW","value":"{}"}}"#,
            B64URL.encode([0xfb; 32])
        );
        assert_eq!(&body[..], expected.as_bytes());
        assert!(
            !expected.contains('+') && !expected.contains('='),
            "base64url"
        );
    }

    #[test]
    fn algorithm_names_and_tags_round_trip() {
        for a in [WrapAlgorithm::RsaOaep256, WrapAlgorithm::A256Kw] {
            assert_eq!(a.name().parse::<WrapAlgorithm>().unwrap(), a);
            assert_eq!(WrapAlgorithm::from_tag(a.tag()), Some(a));
        }
        assert!("RSA1_5".parse::<WrapAlgorithm>().is_err());
        assert_eq!(WrapAlgorithm::from_tag(0), None);
    }
}
