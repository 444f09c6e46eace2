//! AWS KMS key wrapping for [`kmseal`].
//!
//! Wrap is KMS `Encrypt` of the locally generated data key with the encryption context as the
//! KMS `EncryptionContext`; unwrap is `Decrypt` that always names the key (never letting the
//! ciphertext choose it: the flaw behind CVE-2020-8897) with the same context.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kmseal::Error> {
//! use std::sync::Arc;
//! use kmseal::{Decryptor, Encryptor, KeyUri};
//! use kmseal_aws::AwsKek;
//!
//! // Credentials from the default chain: environment, profile, IRSA web identity,
//! // ECS/EKS container credentials, EC2 instance metadata. Region from the ARN.
//! let uri: KeyUri = "aws-kms://arn:aws:kms:eu-west-1:111122223333:alias/billing".parse()?;
//! let kek = Arc::new(AwsKek::from_uri(&uri).await?);
//! let sealed = Encryptor::new(kek.clone()).context("app", "billing")?.encrypt(b"secret").await?;
//! let plain = Decryptor::new(kek).decrypt(&sealed).await?;
//! # Ok(()) }
//! ```
//!
//! Wrapped keys record provider `aws-kms` and the **key ARN** (an alias URI is resolved once,
//! with `DescribeKey`, when the KEK is built), so a message stays tied to the key that wrapped
//! it even if the alias is later pointed elsewhere.
#![forbid(unsafe_code)]

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use kmseal::{
    DataKey, EncryptionContext, Error, Kek, KeyUri, KmsErrorKind, SecretBytes, WrappedKey,
};
use kmseal_kms_common::on_runtime;

mod sdk;
mod secrets;
mod uri;
pub use secrets::{AwsSecretsBuilder, AwsSecretsStore};
pub use uri::{AwsKeyArn, AwsSecretId};

const PROVIDER: &str = "aws-kms";

fn kms_error(kind: KmsErrorKind, message: impl Into<String>) -> Error {
    kmseal_kms_common::kms_error(PROVIDER, kind, message)
}

/// Maps an SDK error to a kmseal error kind, keeping KMS's error code and message (which
/// carry no key material).
pub(crate) fn map_sdk_error<E>(op: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (kind, detail) = match &err {
        SdkError::TimeoutError(_) => (KmsErrorKind::Timeout, "the call timed out".to_owned()),
        SdkError::DispatchFailure(d) => {
            let kind = if d.is_timeout() {
                KmsErrorKind::Timeout
            } else {
                KmsErrorKind::Unavailable
            };
            (kind, "could not reach AWS KMS".to_owned())
        }
        SdkError::ResponseError(_) => (KmsErrorKind::Unavailable, "unreadable response".to_owned()),
        SdkError::ServiceError(se) => {
            let e = se.err();
            let code = e.code().unwrap_or("Unknown");
            let status = se.raw().status().as_u16();
            let kind = match code_kind(code) {
                // An error body the SDK could not read: fall back to the HTTP status.
                KmsErrorKind::Other => kmseal_kms_common::status_kind(status),
                kind => kind,
            };
            (
                kind,
                format!("{code} (HTTP {status}): {}", e.message().unwrap_or("")),
            )
        }
        _ => (KmsErrorKind::Other, err.to_string()),
    };
    kms_error(kind, format!("{op} failed: {detail}"))
}

/// KMS error codes to kinds.
fn code_kind(code: &str) -> KmsErrorKind {
    match code {
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException"
        | "IncompleteSignature" => KmsErrorKind::AccessDenied,
        // Secrets Manager: no such secret, version or stage.
        "NotFoundException" | "ResourceNotFoundException" => KmsErrorKind::NotFound,
        "DisabledException" | "KeyUnavailableException" | "KMSInvalidStateException" => {
            KmsErrorKind::Disabled
        }
        "InvalidCiphertextException" | "IncorrectKeyException" | "InvalidKeyUsageException" => {
            KmsErrorKind::InvalidCiphertext
        }
        "ThrottlingException" | "LimitExceededException" | "TooManyRequestsException" => {
            KmsErrorKind::Throttled
        }
        "KMSInternalException"
        | "DependencyTimeoutException"
        | "ServiceUnavailable"
        | "InternalFailure"
        | "InternalServiceError" => KmsErrorKind::Unavailable,
        // Secrets Manager could not decrypt the secret with its KMS key: the caller lacks
        // kms:Decrypt on that key.
        "DecryptionFailure" => KmsErrorKind::AccessDenied,
        _ => KmsErrorKind::Other,
    }
}

/// Settings for an [`AwsKek`].
#[derive(Debug)]
pub struct AwsBuilder {
    key: AwsKeyArn,
    sdk: sdk::Settings,
}

impl AwsBuilder {
    sdk::sdk_setters!();

    /// Loads the configuration (credential chain, region from the ARN) and, for an alias,
    /// resolves it to its key ARN with `DescribeKey`.
    pub async fn build(self) -> Result<AwsKek, Error> {
        on_runtime(PROVIDER, self.build_here()).await
    }

    async fn build_here(self) -> Result<AwsKek, Error> {
        let arn = self.key.arn().to_owned();
        let shared = self.sdk.load().await;
        let conf = aws_sdk_kms::config::Builder::from(&shared)
            .retry_classifier(sdk::retry_429_and_5xx())
            .build();
        let client = Client::from_conf(conf);
        let key_arn = if self.key.is_alias() {
            let out = client
                .describe_key()
                .key_id(&arn)
                .send()
                .await
                .map_err(|e| map_sdk_error("DescribeKey (resolving the alias)", e))?;
            out.key_metadata()
                .map(|m| m.arn().unwrap_or(m.key_id()).to_owned())
                .ok_or_else(|| {
                    kms_error(
                        KmsErrorKind::NotFound,
                        format!("alias {arn} resolves to no key"),
                    )
                })?
        } else {
            arn
        };
        Ok(AwsKek {
            client,
            key_arn,
            uri: self.key,
        })
    }
}

/// An AWS KMS key used as a KEK. See the [crate docs](crate).
pub struct AwsKek {
    client: Client,
    key_arn: String,
    uri: AwsKeyArn,
}

impl std::fmt::Debug for AwsKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKek")
            .field("uri", &self.uri.to_string())
            .field("key_arn", &self.key_arn)
            .finish_non_exhaustive()
    }
}

fn to_kms_context(context: &EncryptionContext) -> Option<HashMap<String, String>> {
    (!context.is_empty()).then(|| {
        context
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    })
}

impl AwsKek {
    /// A KEK for `aws-kms://ARN` with default settings.
    pub async fn from_uri(uri: &KeyUri) -> Result<AwsKek, Error> {
        AwsKek::builder(uri)?.build().await
    }

    /// Settings for a KEK; finish with [`AwsBuilder::build`].
    pub fn builder(uri: &KeyUri) -> Result<AwsBuilder, Error> {
        Ok(AwsKek::builder_for(AwsKeyArn::try_from(uri)?))
    }

    /// Settings for a KEK on a parsed key ARN.
    pub fn builder_for(key: AwsKeyArn) -> AwsBuilder {
        AwsBuilder {
            sdk: sdk::Settings::new(Some(key.region().to_owned())),
            key,
        }
    }

    /// The key ARN this KEK wraps under and names in every `Decrypt`.
    pub fn key_arn(&self) -> &str {
        &self.key_arn
    }
}

#[async_trait]
impl Kek for AwsKek {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn key_id(&self) -> &str {
        &self.key_arn
    }

    fn describe(&self) -> String {
        self.uri.to_string()
    }

    async fn wrap(&self, key: &DataKey, context: &EncryptionContext) -> Result<WrappedKey, Error> {
        let client = self.client.clone();
        let key_arn = self.key_arn.clone();
        // The SDK needs an owned buffer; it is ordinary memory (see SECURITY.md).
        let plaintext = Blob::new(key.expose_secret().to_vec());
        let ctx = to_kms_context(context);
        let out = on_runtime(PROVIDER, async move {
            client
                .encrypt()
                .key_id(key_arn)
                .plaintext(plaintext)
                .set_encryption_context(ctx)
                .send()
                .await
                .map_err(|e| map_sdk_error("Encrypt", e))
        })
        .await?;
        let ciphertext = out
            .ciphertext_blob
            .map(Blob::into_inner)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| kms_error(KmsErrorKind::Other, "Encrypt returned no ciphertext"))?;
        Ok(WrappedKey {
            provider: PROVIDER.to_owned(),
            key_id: self.key_arn.clone(),
            ciphertext,
        })
    }

    /// KMS `GenerateDataKey` (AES_256), used only when the caller opts in with
    /// `Encryptor::data_key_from_kms(true)`.
    async fn generate_data_key(
        &self,
        context: &EncryptionContext,
    ) -> Result<Option<(DataKey, WrappedKey)>, Error> {
        let client = self.client.clone();
        let key_arn = self.key_arn.clone();
        let ctx = to_kms_context(context);
        let mut out = on_runtime(PROVIDER, async move {
            client
                .generate_data_key()
                .key_id(key_arn)
                .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
                .set_encryption_context(ctx)
                .send()
                .await
                .map_err(|e| map_sdk_error("GenerateDataKey", e))
        })
        .await?;
        let plain = out.plaintext.take().map(Blob::into_inner).ok_or_else(|| {
            kms_error(KmsErrorKind::Other, "GenerateDataKey returned no plaintext")
        })?;
        let key = DataKey::from_secret(SecretBytes::from_vec_zeroizing(plain)?)?;
        let ciphertext = out
            .ciphertext_blob
            .map(Blob::into_inner)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                kms_error(
                    KmsErrorKind::Other,
                    "GenerateDataKey returned no ciphertext",
                )
            })?;
        let wrapped = WrappedKey {
            provider: PROVIDER.to_owned(),
            key_id: self.key_arn.clone(),
            ciphertext,
        };
        Ok(Some((key, wrapped)))
    }

    async fn unwrap(
        &self,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
    ) -> Result<DataKey, Error> {
        if !self.matches(wrapped) {
            return Err(kms_error(
                KmsErrorKind::InvalidCiphertext,
                format!("wrapped key {wrapped} was not made by {}", self.key_arn),
            ));
        }
        let client = self.client.clone();
        let key_arn = self.key_arn.clone();
        let blob = Blob::new(wrapped.ciphertext.clone());
        let ctx = to_kms_context(context);
        let mut out = on_runtime(PROVIDER, async move {
            client
                .decrypt()
                .key_id(key_arn) // always name the key: the ciphertext never chooses it
                .ciphertext_blob(blob)
                .set_encryption_context(ctx)
                .send()
                .await
                .map_err(|e| map_sdk_error("Decrypt", e))
        })
        .await?;
        if out.key_id.as_deref().is_some_and(|k| k != self.key_arn) {
            return Err(kms_error(
                KmsErrorKind::InvalidCiphertext,
                "Decrypt answered for another key",
            ));
        }
        // Into locked memory at once; the SDK's vector is wiped by from_vec_zeroizing.
        let plain = out
            .plaintext
            .take()
            .map(Blob::into_inner)
            .ok_or_else(|| kms_error(KmsErrorKind::Other, "Decrypt returned no plaintext"))?;
        DataKey::from_secret(SecretBytes::from_vec_zeroizing(plain)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_kinds() {
        assert_eq!(
            code_kind("AccessDeniedException"),
            KmsErrorKind::AccessDenied
        );
        assert_eq!(code_kind("NotFoundException"), KmsErrorKind::NotFound);
        assert_eq!(code_kind("DisabledException"), KmsErrorKind::Disabled);
        assert_eq!(
            code_kind("InvalidCiphertextException"),
            KmsErrorKind::InvalidCiphertext
        );
        assert_eq!(
            code_kind("IncorrectKeyException"),
            KmsErrorKind::InvalidCiphertext
        );
        assert_eq!(code_kind("ThrottlingException"), KmsErrorKind::Throttled);
        assert_eq!(code_kind("KMSInternalException"), KmsErrorKind::Unavailable);
        assert_eq!(code_kind("Whatever"), KmsErrorKind::Other);
    }

    #[test]
    fn builder_rejects_other_providers() {
        let uri: KeyUri = "vault://h:1/transit/keys/k".parse().unwrap();
        assert!(AwsKek::builder(&uri).is_err());
    }
}
