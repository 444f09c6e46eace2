//! The one joint between the envelope and key management: the [`Kek`] trait, the data key and
//! wrapped key types, and [`KeyUri`] parsing.
//!
//! A provider implements two operations, wrap and unwrap, plus its identity. Conveniences
//! (keyrings, caching, retries across providers) live on the caller's side.
//!
//! Unwrapping is *strict*: the [`Decryptor`](crate::Decryptor) only ever asks the KEKs its
//! caller configured, and only for wrapped keys whose provider and key id those KEKs claim
//! ([`Kek::matches`]). The ciphertext never chooses which KMS key is called.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;

use crate::context::EncryptionContext;
use crate::error::Error;
use crate::secret::SecretBytes;
use crate::suite::KEY_LEN;

/// A 256-bit data key in locked memory.
#[derive(PartialEq, Eq)]
pub struct DataKey(SecretBytes);

impl DataKey {
    /// A fresh key from the OS CSPRNG, generated straight into locked memory.
    pub fn generate() -> Result<DataKey, Error> {
        Ok(DataKey(SecretBytes::random(KEY_LEN)?))
    }

    /// Takes a 32-byte secret (for example what a KMS returned). Other lengths are refused.
    pub fn from_secret(secret: SecretBytes) -> Result<DataKey, Error> {
        if secret.len() != KEY_LEN {
            return Err(Error::Decrypt);
        }
        Ok(DataKey(secret))
    }

    /// Copies 32 bytes into locked memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<DataKey, Error> {
        if bytes.len() != KEY_LEN {
            return Err(Error::InvalidArgument("a data key is exactly 32 bytes"));
        }
        Ok(DataKey(SecretBytes::from_slice(bytes)?))
    }

    /// Reads the key.
    pub fn expose_secret(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// `Err(`[`Error::ForkedSecret`]`)` for a key made before a `fork()`, in the child.
    pub fn check_process(&self) -> Result<(), Error> {
        self.0.check_process()
    }

    /// An explicit copy into new locked memory.
    pub fn try_clone(&self) -> Result<DataKey, Error> {
        Ok(DataKey(self.0.try_clone()?))
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([REDACTED])")
    }
}

/// A data key wrapped by one KEK, as stored in the message header.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct WrappedKey {
    /// Provider id: the key URI scheme (`local`, `aws-kms`, ...). 1 to 255 bytes of
    /// `[a-z0-9+.-]`.
    pub provider: String,
    /// The provider's key id (an ARN, a resource name, a local key fingerprint). 1 to 65535
    /// bytes of UTF-8.
    pub key_id: String,
    /// The provider's wrapped bytes, 1 to 65535 bytes. Not secret, but opaque.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("provider", &self.provider)
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

impl fmt::Display for WrappedKey {
    /// `provider:key_id`, with control characters escaped: both come from a header that may
    /// be an attacker's ([`escape_untrusted`](crate::escape_untrusted)).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            crate::escape_untrusted(&self.provider),
            crate::escape_untrusted(&self.key_id)
        )
    }
}

pub(crate) fn valid_provider_id(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 255
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+.-".contains(&b))
}

/// A key-encryption key: wraps and unwraps data keys. Implemented by [`LocalKek`](crate::LocalKek)
/// here and by the provider crates (`kmseal-aws`, `kmseal-gcp`, `kmseal-azure`, `kmseal-vault`).
///
/// Implementations must bind `context` to the wrapped key when the KMS supports associated
/// data, must put the unwrapped key into [`SecretBytes`] at once, and must never include key
/// bytes in errors or logs.
#[async_trait]
pub trait Kek: Send + Sync + fmt::Debug {
    /// The provider id recorded in [`WrappedKey::provider`] (the URI scheme).
    fn provider(&self) -> &str;

    /// The key id recorded in [`WrappedKey::key_id`].
    fn key_id(&self) -> &str;

    /// A human-readable name for errors (usually the key URI).
    fn describe(&self) -> String {
        format!("{}:{}", self.provider(), self.key_id())
    }

    /// Whether this KEK is the one that produced `wrapped`. The default compares provider
    /// and key id exactly; providers with aliases may resolve more cleverly, but must never
    /// claim a key they do not control.
    fn matches(&self, wrapped: &WrappedKey) -> bool {
        wrapped.provider == self.provider() && wrapped.key_id == self.key_id()
    }

    /// Whether the KMS itself binds the encryption context to the wrapped key (as associated
    /// data), so that unwrapping under another context fails at the KMS. True for every
    /// provider except Azure Key Vault, whose wrap operations take no associated data; there
    /// the context is bound by kmseal's authenticated header alone (see SECURITY.md).
    fn binds_context(&self) -> bool {
        true
    }

    /// Wraps `key`, binding `context` when the KMS can ([`Kek::binds_context`]).
    async fn wrap(&self, key: &DataKey, context: &EncryptionContext) -> Result<WrappedKey, Error>;

    /// Unwraps a key this KEK wrapped under the same `context`.
    async fn unwrap(
        &self,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
    ) -> Result<DataKey, Error>;

    /// Wraps again, under the same `context` and this KEK's current key version, a data key
    /// this KEK wrapped earlier: `wrapped` is that earlier wrapped key, `key` its plaintext,
    /// which the caller has verified against the message's key commitment.
    /// [`OpenedHeader::rewrap`] calls it only on the KEK instance that unwrapped `wrapped`.
    ///
    /// The default wraps `key` afresh: one KMS call, no unwrap, and the result holds the
    /// verified key by construction. A KMS with a server-side rewrap may use `wrapped`
    /// instead (Vault transit's `rewrap` for derived keys, so the server picks the version).
    ///
    /// [`OpenedHeader::rewrap`]: crate::OpenedHeader::rewrap
    async fn rewrap(
        &self,
        wrapped: &WrappedKey,
        key: &DataKey,
        context: &EncryptionContext,
    ) -> Result<WrappedKey, Error> {
        let _ = wrapped;
        self.wrap(key, context).await
    }

    /// Optionally has the KMS generate a data key and return it with its wrapped form (AWS
    /// `GenerateDataKey`). Used only when the caller asks for it with
    /// [`Encryptor::data_key_from_kms`](crate::Encryptor::data_key_from_kms); by default kmseal
    /// generates data keys locally. Returns `Ok(None)` when the provider cannot.
    async fn generate_data_key(
        &self,
        context: &EncryptionContext,
    ) -> Result<Option<(DataKey, WrappedKey)>, Error> {
        let _ = context;
        Ok(None)
    }

    /// Unwraps a data key that **another tool** encrypted with this KEK's key through the
    /// KMS's plain encrypt operation, **without associated data**: what SOPS writes in its
    /// `gcp_kms`, `hc_vault` and `azure_kv` entries (`kmseal-sops` is the caller). `wrapped`
    /// names this KEK (checked as by [`Kek::matches`]) and carries the KMS's ciphertext in
    /// the layout the provider documents. The result must be a 32-byte key.
    ///
    /// Nothing is bound: no encryption context reaches the KMS, so the caller must
    /// authenticate what it opens with the key by other means (SOPS: its MAC). The
    /// [`Decryptor`](crate::Decryptor) never calls this. Where the KMS binds associated data
    /// ([`Kek::binds_context`]), kmseal's own wrapped keys always carry some (the canonical
    /// context is at least two bytes), so they never open here, and a foreign ciphertext never
    /// opens under [`Kek::unwrap`].
    ///
    /// The default refuses with [`Error::InvalidArgument`]: a provider opts in (GCP KMS,
    /// Vault transit and Azure Key Vault do).
    async fn unwrap_foreign(&self, wrapped: &WrappedKey) -> Result<DataKey, Error> {
        let _ = wrapped;
        Err(Error::InvalidArgument(
            "this KEK cannot unwrap data keys encrypted by other tools",
        ))
    }
}

/// Which key management system a [`KeyUri`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Provider {
    /// `local://PATH` (a key file) or `local://env:VAR` (base64 in an environment variable).
    Local,
    /// `aws-kms://arn:PARTITION:kms:REGION:ACCOUNT:key/ID` or `.../alias/NAME`.
    AwsKms,
    /// `gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K`.
    GcpKms,
    /// `azure-kv://VAULT.vault.azure.net/keys/NAME[/VERSION]`.
    AzureKv,
    /// `vault://HOST[:PORT]/MOUNT/keys/NAME` (https), or `vault+http://...` (plain http,
    /// only when asked for explicitly).
    Vault,
}

impl Provider {
    /// The URI scheme, which is also the provider id in wrapped keys.
    pub fn scheme(self) -> &'static str {
        match self {
            Provider::Local => "local",
            Provider::AwsKms => "aws-kms",
            Provider::GcpKms => "gcp-kms",
            Provider::AzureKv => "azure-kv",
            Provider::Vault => "vault",
        }
    }
}

/// A key URI split into its provider and body, in Tink's style: the scheme names the
/// provider. The body's form is the provider's business: `local://` is checked here, and each
/// provider crate parses its own into a typed URI (`kmseal_aws::AwsKeyArn`,
/// `kmseal_gcp::GcpKeyName`, `kmseal_azure::AzureKeyId`, `kmseal_vault::VaultKeyPath`) when
/// a KEK is built. `kmseal-keys` turns any URI into a KEK in one call.
///
/// ```
/// use kmseal::{KeyUri, Provider};
/// let uri: KeyUri = "aws-kms://arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd".parse()?;
/// assert_eq!(uri.provider(), Provider::AwsKms);
/// assert_eq!(uri.body(), "arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd");
/// assert!("s3://bucket/key".parse::<KeyUri>().is_err());
/// # Ok::<(), kmseal::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyUri {
    provider: Provider,
    body: String,
    plain_http: bool,
}

impl KeyUri {
    /// The provider.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Everything after `scheme://`.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// For `vault+http://`: plain HTTP was asked for explicitly.
    pub fn plain_http(&self) -> bool {
        self.plain_http
    }
}

impl fmt::Display for KeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.plain_http {
            "vault+http"
        } else {
            self.provider.scheme()
        };
        write!(f, "{scheme}://{}", self.body)
    }
}

fn bad(uri: &str, reason: impl Into<String>) -> Error {
    Error::InvalidKeyUri {
        uri: uri.to_owned(),
        reason: reason.into(),
    }
}

impl FromStr for KeyUri {
    type Err = Error;

    fn from_str(uri: &str) -> Result<KeyUri, Error> {
        // Input that is not URI-shaped may be a secret pasted in the wrong place (a base64
        // key where `local://env:VAR` was meant): errors never repeat it.
        let hidden = |what: String| Error::InvalidKeyUri {
            uri: format!("({what}; {} characters, not shown)", uri.chars().count()),
            reason: "expected SCHEME://..., where SCHEME is local, aws-kms, gcp-kms, azure-kv, \
                     vault or vault+http"
                .into(),
        };
        let Some((scheme, body)) = uri.split_once("://") else {
            return Err(hidden("no SCHEME://".into()));
        };
        let scheme_like = !scheme.is_empty()
            && scheme.len() <= 32
            && scheme
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+.-".contains(&b));
        if !scheme_like {
            return Err(hidden("not a scheme before ://".into()));
        }
        if body.is_empty() {
            return Err(bad(uri, "nothing after ://"));
        }
        if body.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad(uri, "contains whitespace or control characters"));
        }
        let (provider, plain_http) = match scheme {
            "local" => (Provider::Local, false),
            "aws-kms" => (Provider::AwsKms, false),
            "gcp-kms" => (Provider::GcpKms, false),
            "azure-kv" => (Provider::AzureKv, false),
            "vault" => (Provider::Vault, false),
            "vault+http" => (Provider::Vault, true),
            other => return Err(hidden(format!("unknown scheme `{other}`"))),
        };
        // The local KEK lives here, so its rules do too; every other provider parses its
        // own body into a typed URI (`kmseal_aws::AwsKeyArn`, `kmseal_vault::VaultKeyPath`,
        // ...) when a KEK is built from it.
        if provider == Provider::Local {
            validate_local(uri, body)?;
        }
        Ok(KeyUri {
            provider,
            body: body.to_owned(),
            plain_http,
        })
    }
}

fn validate_local(uri: &str, body: &str) -> Result<(), Error> {
    if let Some(var) = body.strip_prefix("env:") {
        let ok = !var.is_empty()
            && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !var.as_bytes()[0].is_ascii_digit();
        if !ok {
            return Err(bad(uri, "expected local://env:VARIABLE_NAME"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_uris() {
        for (s, p) in [
            ("local:///home/me/.config/kmseal/dev.key", Provider::Local),
            ("local://env:KMSEAL_LOCAL_KEY", Provider::Local),
            (
                "aws-kms://arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                Provider::AwsKms,
            ),
            (
                "aws-kms://arn:aws:kms:eu-west-1:111122223333:alias/app/prod",
                Provider::AwsKms,
            ),
            (
                "aws-kms://arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-abc",
                Provider::AwsKms,
            ),
            (
                "gcp-kms://projects/p-1/locations/europe-west1/keyRings/r/cryptoKeys/k",
                Provider::GcpKms,
            ),
            (
                "azure-kv://myvault.vault.azure.net/keys/kek",
                Provider::AzureKv,
            ),
            (
                "azure-kv://hsm.managedhsm.azure.net/keys/kek/0123abcd",
                Provider::AzureKv,
            ),
            (
                "vault://vault.internal:8200/transit/keys/app",
                Provider::Vault,
            ),
            (
                "vault+http://127.0.0.1:8200/team/transit/keys/app",
                Provider::Vault,
            ),
        ] {
            let uri: KeyUri = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(uri.provider(), p);
            assert_eq!(uri.to_string(), s);
        }
    }

    #[test]
    fn what_is_not_a_key_uri_is_never_repeated_in_the_error() {
        let secret = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        for input in [
            secret.to_owned(),
            format!("{secret}://x"),
            format!("s3cret-scheme-{secret}://x"),
            format!("unknown://{secret}"),
        ] {
            let e = input.parse::<KeyUri>().unwrap_err().to_string();
            assert!(!e.contains(secret), "{e}");
            assert!(e.contains("not shown") && e.contains("SCHEME://"), "{e}");
        }
    }

    #[test]
    fn bad_uris_say_why() {
        for s in [
            "",
            "local",
            "local://",
            "local://env:",
            "local://env:1BAD",
            "s3://bucket/key",
            "AWS-KMS://arn",
            "aws-kms://",
            "vault://host:8200/transit/keys/a b",
            "vault://host:8200/transit/keys/a\tb",
        ] {
            match s.parse::<KeyUri>() {
                Err(Error::InvalidKeyUri { reason, .. }) => assert!(!reason.is_empty()),
                other => panic!("{s:?} should be rejected, got {other:?}"),
            }
        }
    }
}
