//! Google Cloud KMS key wrapping for [`kmseal`], with the official `google-cloud-kms-v1`
//! client (HTTP/JSON).
//!
//! Wrap is `cryptoKeys.encrypt` of the data key, unwrap is `cryptoKeys.decrypt`, both naming
//! the CryptoKey from the caller's URI and carrying the encryption context (kmseal's canonical
//! encoding) as `additionalAuthenticatedData`.
//!
//! **CRC32C, both ways.** The client library neither computes nor checks checksums, so this
//! crate does what Google's documentation asks: it sets `plaintextCrc32c` /
//! `ciphertextCrc32c` and `additionalAuthenticatedDataCrc32c` on requests, requires the
//! `verified…Crc32c` flags on encrypt responses, and checks `ciphertextCrc32c` /
//! `plaintextCrc32c` of responses. A mismatch is retried a few times (as the docs advise) and
//! then reported as an integrity error.
//!
//! **Foreign ciphertexts.** [`Kek::unwrap_foreign`] decrypts a data key another tool
//! encrypted under the CryptoKey *without* AAD (SOPS's `gcp_kms` entries). Because kmseal's own
//! wraps always carry AAD (the canonical context, two bytes even when empty), neither kind
//! opens as the other.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kmseal::Error> {
//! use std::sync::Arc;
//! use kmseal::KeyUri;
//! use kmseal_gcp::GcpKek;
//!
//! // Application Default Credentials: GKE Workload Identity, a service account, gcloud.
//! let uri: KeyUri = "gcp-kms://projects/p/locations/europe-west1/keyRings/r/cryptoKeys/k".parse()?;
//! let kek = Arc::new(GcpKek::from_uri(&uri).await?);
//! let sealed = kmseal::Encryptor::new(kek).encrypt(b"secret").await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::options::RequestOptionsBuilder;
use google_cloud_gax::retry_policy::NeverRetry;
use google_cloud_kms_v1::client::KeyManagementService;
use kmseal::{
    DataKey, EncryptionContext, Error, Kek, KeyUri, KmsErrorKind, SecretBytes, WrappedKey,
};
use kmseal_kms_common::{locked_bytes, on_runtime, retry};

mod secrets;
mod uri;
pub use secrets::{GcpSecretsBuilder, GcpSecretsStore};
pub use uri::{GcpKeyName, GcpSecretName};

const PROVIDER: &str = "gcp-kms";

pub(crate) fn kms_error(kind: KmsErrorKind, message: impl Into<String>) -> Error {
    kmseal_kms_common::kms_error(PROVIDER, kind, message)
}

/// CRC32C as the API carries it (an int64 that never exceeds 2^32 - 1).
pub(crate) fn crc(data: &[u8]) -> i64 {
    i64::from(crc32c::crc32c(data))
}

/// Maps a client error to a kind; Cloud KMS status messages carry no key material.
pub(crate) fn map_error(op: &str, e: &google_cloud_kms_v1::Error) -> Error {
    let kind = if let Some(status) = e.status() {
        match status.code {
            Code::PermissionDenied | Code::Unauthenticated => KmsErrorKind::AccessDenied,
            Code::NotFound => KmsErrorKind::NotFound,
            Code::FailedPrecondition => KmsErrorKind::Disabled,
            Code::InvalidArgument => KmsErrorKind::InvalidCiphertext,
            Code::ResourceExhausted => KmsErrorKind::Throttled,
            Code::Unavailable | Code::Internal | Code::Aborted => KmsErrorKind::Unavailable,
            Code::DeadlineExceeded => KmsErrorKind::Timeout,
            _ => status_kind(e.http_status_code()),
        }
    } else if e.is_timeout() {
        KmsErrorKind::Timeout
    } else if let Some(code) = e.http_status_code() {
        // An HTTP status without a Google error body (a proxy or load balancer answered):
        // the status still says what happened (found by the fault-injection proxy test).
        status_kind(Some(code))
    } else if e.is_io() || e.is_connect() || e.is_transport() {
        KmsErrorKind::Unavailable
    } else if e.is_authentication() {
        KmsErrorKind::AccessDenied
    } else {
        status_kind(e.http_status_code())
    };
    let detail = e
        .status()
        .map(|s| format!("{}: {}", s.code.name(), s.message))
        .unwrap_or_else(|| e.to_string());
    kms_error(kind, format!("{op} failed: {detail}"))
}

fn status_kind(status: Option<u16>) -> KmsErrorKind {
    status.map_or(KmsErrorKind::Other, kmseal_kms_common::status_kind)
}

/// Settings for a [`GcpKek`].
#[derive(Debug)]
pub struct GcpBuilder {
    key: GcpKeyName,
    conn: Connection,
}

impl GcpBuilder {
    connection_setters!();

    /// Builds the client (Application Default Credentials unless told otherwise).
    pub async fn build(self) -> Result<GcpKek, Error> {
        on_runtime(PROVIDER, async move {
            let client = self
                .conn
                .configure(KeyManagementService::builder())
                .build()
                .await
                .map_err(|e| {
                    kms_error(
                        KmsErrorKind::AccessDenied,
                        format!("cannot set up the Cloud KMS client: {e}"),
                    )
                })?;
            Ok(GcpKek {
                client,
                name: self.key.name().to_owned(),
                key: self.key,
                timeout: self.conn.timeout,
                retries: self.conn.retries,
            })
        })
        .await
    }
}

/// Runs `op` on a clone of `client` with retries on retryable kinds and integrity failures
/// (a checksum mismatch is worth another try). The whole loop, backoff sleeps included, runs
/// on a tokio runtime (the caller's or the shared one). Shared by the KEK and the store.
pub(crate) async fn with_retries<S, T, F, Fut>(client: &S, retries: u32, op: F) -> Result<T, Error>
where
    S: Clone + Send + Sync + 'static,
    F: Fn(S) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    let client = client.clone();
    on_runtime(PROVIDER, async move {
        retry(PROVIDER, retries, true, || op(client.clone())).await
    })
    .await
}

/// Connection settings shared by [`GcpBuilder`] and [`GcpSecretsBuilder`].
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) endpoint: Option<String>,
    pub(crate) anonymous: bool,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
}

impl Default for Connection {
    fn default() -> Connection {
        Connection {
            endpoint: None,
            anonymous: false,
            timeout: Duration::from_secs(10),
            retries: 3,
        }
    }
}

impl Connection {
    /// Applies the settings to a Google client builder (our retries, not the client's).
    pub(crate) fn configure<F, Cr>(
        &self,
        b: google_cloud_gax::client_builder::ClientBuilder<F, Cr>,
    ) -> google_cloud_gax::client_builder::ClientBuilder<F, Cr>
    where
        google_cloud_auth::credentials::Credentials: Into<Cr>,
    {
        let mut b = b.with_retry_policy(NeverRetry);
        if let Some(url) = &self.endpoint {
            b = b.with_endpoint(url);
        }
        if self.anonymous {
            b = b.with_credentials(
                google_cloud_auth::credentials::anonymous::Builder::new().build(),
            );
        }
        b
    }
}

/// The setters of [`Connection`] for a builder with a `conn: Connection` field.
macro_rules! connection_setters {
    () => {
        /// An explicit endpoint (Private Service Connect, a regional endpoint, a test server).
        pub fn endpoint(mut self, url: impl Into<String>) -> Self {
            self.conn.endpoint = Some(url.into());
            self
        }

        /// Dangerous: send no credentials. Only for local test servers.
        pub fn dangerous_anonymous_credentials(mut self) -> Self {
            self.conn.anonymous = true;
            self
        }

        /// Time limit for one attempt (default 10 s).
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.conn.timeout = timeout;
            self
        }

        /// Retries after throttling, unavailability, timeouts and checksum mismatches, with
        /// exponential backoff from 100 ms (default 3).
        pub fn retries(mut self, retries: u32) -> Self {
            self.conn.retries = retries;
            self
        }
    };
}
pub(crate) use connection_setters;

/// A Cloud KMS CryptoKey used as a KEK. See the [crate docs](crate).
#[derive(Clone)]
pub struct GcpKek {
    client: KeyManagementService,
    name: String,
    key: GcpKeyName,
    timeout: Duration,
    retries: u32,
}

impl std::fmt::Debug for GcpKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpKek")
            .field("uri", &self.key.to_string())
            .finish_non_exhaustive()
    }
}

impl GcpKek {
    /// A KEK for `gcp-kms://projects/…/cryptoKeys/K` with Application Default Credentials.
    pub async fn from_uri(uri: &KeyUri) -> Result<GcpKek, Error> {
        GcpKek::builder(uri)?.build().await
    }

    /// Settings for a KEK; finish with [`GcpBuilder::build`].
    pub fn builder(uri: &KeyUri) -> Result<GcpBuilder, Error> {
        Ok(GcpKek::builder_for(GcpKeyName::try_from(uri)?))
    }

    /// Settings for a KEK on a parsed key name.
    pub fn builder_for(key: GcpKeyName) -> GcpBuilder {
        GcpBuilder {
            key,
            conn: Connection::default(),
        }
    }

    /// Runs `op` with retries on retryable kinds and integrity failures. The whole loop,
    /// backoff sleeps included, runs on a tokio runtime (the caller's or the shared one).
    async fn with_retries<T, F, Fut>(&self, op: F) -> Result<T, Error>
    where
        F: Fn(GcpKek) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
        T: Send + 'static,
    {
        with_retries(self, self.retries, op).await
    }

    async fn encrypt_once(self, key: Bytes, key_crc: i64, aad: Vec<u8>) -> Result<Vec<u8>, Error> {
        let aad_crc = crc(&aad);
        let resp = self
            .client
            .encrypt()
            .set_name(&self.name)
            .set_plaintext(key)
            .set_plaintext_crc32c(key_crc)
            .set_additional_authenticated_data(aad)
            .set_additional_authenticated_data_crc32c(aad_crc)
            .with_attempt_timeout(self.timeout)
            .send()
            .await
            .map_err(|e| map_error("encrypt", &e))?;
        if !resp.verified_plaintext_crc32c || !resp.verified_additional_authenticated_data_crc32c {
            return Err(kms_error(
                KmsErrorKind::Integrity,
                "encrypt: the service did not verify the request checksums",
            ));
        }
        if resp.ciphertext_crc32c != Some(crc(&resp.ciphertext)) {
            return Err(kms_error(
                KmsErrorKind::Integrity,
                "encrypt: ciphertext checksum mismatch",
            ));
        }
        let version_of_ours = resp
            .name
            .strip_prefix(self.name.as_str())
            .is_some_and(|rest| rest.starts_with("/cryptoKeyVersions/"));
        if !version_of_ours {
            return Err(kms_error(
                KmsErrorKind::Integrity,
                "encrypt: answered by another key",
            ));
        }
        Ok(resp.ciphertext.to_vec())
    }

    /// `cryptoKeys.decrypt`, with `aad` as `additionalAuthenticatedData`, or with no AAD
    /// fields at all for `None` (a foreign ciphertext: Cloud KMS then authenticates empty AAD).
    async fn decrypt_once(
        self,
        ciphertext: Vec<u8>,
        aad: Option<Vec<u8>>,
    ) -> Result<SecretBytes, Error> {
        let ct_crc = crc(&ciphertext);
        let mut req = self
            .client
            .decrypt()
            .set_name(&self.name)
            .set_ciphertext(ciphertext)
            .set_ciphertext_crc32c(ct_crc);
        if let Some(aad) = aad {
            let aad_crc = crc(&aad);
            req = req
                .set_additional_authenticated_data(aad)
                .set_additional_authenticated_data_crc32c(aad_crc);
        }
        let resp = req
            .with_attempt_timeout(self.timeout)
            .send()
            .await
            .map_err(|e| map_error("decrypt", &e))?;
        if resp.plaintext_crc32c != Some(crc(&resp.plaintext)) {
            return Err(kms_error(
                KmsErrorKind::Integrity,
                "decrypt: plaintext checksum mismatch",
            ));
        }
        // Into locked memory at once (the client's response buffers are not ours to wipe).
        SecretBytes::from_slice(&resp.plaintext)
    }
}

#[async_trait]
impl Kek for GcpKek {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn key_id(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        self.key.to_string()
    }

    async fn wrap(&self, key: &DataKey, context: &EncryptionContext) -> Result<WrappedKey, Error> {
        let aad = context.canonical_bytes();
        let key_crc = crc(key.expose_secret());
        let locked = SecretBytes::from_slice(key.expose_secret())?;
        let body = locked_bytes(locked);
        let ciphertext = self
            .with_retries(move |k| k.encrypt_once(body.clone(), key_crc, aad.clone()))
            .await?;
        Ok(WrappedKey {
            provider: PROVIDER.to_owned(),
            key_id: self.name.clone(),
            ciphertext,
        })
    }

    async fn unwrap(
        &self,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
    ) -> Result<DataKey, Error> {
        if !self.matches(wrapped) {
            return Err(kms_error(
                KmsErrorKind::InvalidCiphertext,
                format!("wrapped key {wrapped} was not made by {}", self.name),
            ));
        }
        let aad = context.canonical_bytes();
        let ct = wrapped.ciphertext.clone();
        let key = self
            .with_retries(move |k| k.decrypt_once(ct.clone(), Some(aad.clone())))
            .await?;
        DataKey::from_secret(key)
    }

    /// [`Kek::unwrap_foreign`]: `wrapped.ciphertext` is what Cloud KMS `encrypt` returned
    /// for a raw 32-byte key sent without `additionalAuthenticatedData` (SOPS's `gcp_kms[].enc`,
    /// base64-decoded); `wrapped.key_id` is the CryptoKey name. Decrypted with no AAD.
    async fn unwrap_foreign(&self, wrapped: &WrappedKey) -> Result<DataKey, Error> {
        if !self.matches(wrapped) {
            return Err(kms_error(
                KmsErrorKind::InvalidCiphertext,
                format!("wrapped key {wrapped} was not made by {}", self.name),
            ));
        }
        let ct = wrapped.ciphertext.clone();
        let key = self
            .with_retries(move |k| k.decrypt_once(ct.clone(), None))
            .await?;
        DataKey::from_secret(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_published_check_value() {
        // CRC-32C of "123456789" is 0xE3069283 (RFC 3720, appendix B.4).
        assert_eq!(crc(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn builder_rejects_other_providers() {
        let uri: KeyUri = "vault://h:1/transit/keys/k".parse().unwrap();
        assert!(GcpKek::builder(&uri).is_err());
    }
}
