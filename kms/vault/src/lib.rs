//! HashiCorp Vault / OpenBao transit key wrapping for [`kmseal`].
//!
//! The data key is encrypted by the transit engine (`MOUNT/encrypt/NAME`) and decrypted by
//! `MOUNT/decrypt/NAME`, always naming the key from the caller's URI. The encryption context,
//! in kmseal's canonical encoding, is bound as `associated_data` (authenticated by the AEAD) for
//! ordinary keys, and as `context` (it selects the derived key) for derived keys. Whether a key
//! is derived is read from its metadata once.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kmseal::Error> {
//! use std::sync::Arc;
//! use kmseal::{Decryptor, Encryptor, KeyUri};
//! use kmseal_vault::VaultKek;
//!
//! // Token from VAULT_TOKEN / BAO_TOKEN or ~/.vault-token; CA from VAULT_CACERT;
//! // namespace from VAULT_NAMESPACE.
//! let uri: KeyUri = "vault://vault.internal:8200/transit/keys/app".parse()?;
//! let kek = Arc::new(VaultKek::from_uri(&uri)?);
//! let sealed = Encryptor::new(kek.clone()).encrypt(b"secret").await?;
//! let plain = Decryptor::new(kek).decrypt(&sealed).await?;
//! # Ok(()) }
//! ```
//!
//! In Kubernetes, log in with the pod's service account instead of holding a token:
//!
//! ```no_run
//! # async fn demo() -> Result<(), kmseal::Error> {
//! use std::sync::Arc;
//! use kmseal_vault::{TokenSource, VaultKek};
//!
//! let uri = "vault://vault.internal:8200/transit/keys/app".parse()?;
//! let kek = VaultKek::builder(&uri)?
//!     .token(TokenSource::kubernetes("billing"))  // Vault role bound to the pod's service account
//!     .ca_file("/etc/ssl/vault-ca.pem")           // or VAULT_CACERT
//!     .build()?;
//! let sealed = kmseal::Encryptor::new(Arc::new(kek)).encrypt(b"secret").await?;
//! # Ok(()) }
//! ```
//!
//! Safety properties:
//! * **No silent key creation.** Transit creates a missing key on encrypt ("upsert"). Before
//!   the first wrap this crate reads the key's metadata and refuses a missing key, a key that
//!   cannot encrypt, and key types that cannot authenticate associated data.
//! * **Strict unwrap.** Decrypt always goes to the configured mount and key name.
//! * **Locked memory.** Request bodies carrying the data key and response bodies carrying it
//!   are built and read in `SecretBytes`; base64 is decoded straight into `SecretBytes`. The
//!   HTTP and TLS layers (hyper, rustls) still hold transient copies we cannot wipe; see
//!   SECURITY.md.
//!
//! Wrapped keys record provider `vault` and key id `MOUNT/keys/NAME` (without the address, so
//! a key reached through another address or a performance replica still matches).
//!
//! **Foreign ciphertexts.** [`Kek::unwrap_foreign`] decrypts a data key another tool encrypted
//! with the transit key and no associated data or context (SOPS's `hc_vault` entries). kmseal's
//! own wraps always carry one or the other, so neither kind opens as the other.
#![forbid(unsafe_code)]

mod client;
mod kv;
mod session;
mod uri;

pub use kv::{VaultKvBuilder, VaultKvStore};
pub use session::TokenSource;
pub use uri::{VaultKeyPath, VaultKvPath};

use std::sync::OnceLock;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kmseal::{
    DataKey, EncryptionContext, Error, Kek, KeyUri, KmsErrorKind, Provider, SecretBytes, WrappedKey,
};
use reqwest::Method;

use client::{bad_response, kms_error};
use session::{Session, Settings, connection_setters};

/// Key types whose encryption authenticates `associated_data`.
const AEAD_TYPES: [&str; 4] = [
    "aes128-gcm96",
    "aes256-gcm96",
    "chacha20-poly1305",
    "xchacha20-poly1305",
];

/// Settings for a [`VaultKek`].
#[derive(Debug)]
pub struct VaultBuilder {
    key: VaultKeyPath,
    conn: Settings,
    check_key: bool,
    assume_derived: bool,
}

impl VaultBuilder {
    connection_setters!();

    /// Dangerous: never read the key's metadata. Only for tokens that may encrypt and decrypt
    /// but not read `MOUNT/keys/NAME`. A mistyped key name will then be created silently by
    /// the server on the first wrap, and `derived` must say whether the key is a derived key
    /// (the context then goes in `context` instead of `associated_data`).
    pub fn dangerous_skip_key_check(mut self, derived: bool) -> Self {
        self.check_key = false;
        self.assume_derived = derived;
        self
    }

    /// Builds the KEK (reads the token and CA file; no network I/O yet).
    pub fn build(self) -> Result<VaultKek, Error> {
        let session = self
            .conn
            .connect(self.key.address(), self.key.plain_http())?;
        Ok(VaultKek {
            session,
            mount: self.key.mount().to_owned(),
            name: self.key.name().to_owned(),
            key_id: self.key.key_id(),
            key: self.key,
            check_key: self.check_key,
            derived: OnceLock::new(),
            assume_derived: self.assume_derived,
        })
    }
}

/// A transit key used as a KEK. See the [crate docs](crate).
pub struct VaultKek {
    session: Session,
    mount: String,
    name: String,
    key_id: String,
    key: VaultKeyPath,
    check_key: bool,
    /// Whether the key is derived, learned from its metadata on first use.
    derived: OnceLock<bool>,
    assume_derived: bool,
}

impl std::fmt::Debug for VaultKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultKek")
            .field("uri", &self.key.to_string())
            .field("namespace", &self.session.http.namespace)
            .finish_non_exhaustive()
    }
}

/// What the server says about a transit key.
#[derive(Debug, Clone, serde::Deserialize)]
#[non_exhaustive]
pub struct KeyInfo {
    /// Key type, e.g. `aes256-gcm96`.
    #[serde(rename = "type")]
    pub key_type: String,
    /// Newest version (new wraps use it).
    pub latest_version: u32,
    /// Oldest version that may still decrypt.
    pub min_decryption_version: u32,
    /// Whether the key derives per-context keys.
    #[serde(default)]
    pub derived: bool,
    /// Whether the key can encrypt.
    #[serde(default)]
    pub supports_encryption: bool,
}

#[derive(serde::Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(serde::Deserialize)]
struct CiphertextData<'a> {
    #[serde(borrow)]
    ciphertext: &'a str,
}

#[derive(serde::Deserialize)]
struct PlaintextData<'a> {
    #[serde(borrow)]
    plaintext: &'a str,
}

impl VaultKek {
    /// A KEK for `vault://…` or `vault+http://…` with default settings.
    pub fn from_uri(uri: &KeyUri) -> Result<VaultKek, Error> {
        VaultKek::builder(uri)?.build()
    }

    /// Settings for a KEK; finish with [`VaultBuilder::build`].
    pub fn builder(uri: &KeyUri) -> Result<VaultBuilder, Error> {
        Ok(VaultKek::builder_for(VaultKeyPath::try_from(uri)?))
    }

    /// Settings for a KEK on a parsed key path.
    pub fn builder_for(key: VaultKeyPath) -> VaultBuilder {
        VaultBuilder {
            key,
            conn: Settings::default(),
            check_key: true,
            assume_derived: false,
        }
    }

    /// Reads the key's metadata (needs `read` on `MOUNT/keys/NAME`).
    pub async fn key_info(&self) -> Result<KeyInfo, Error> {
        let path = format!("{}/keys/{}", self.mount, self.name);
        let body = self
            .session
            .call(Method::GET, &path, None)
            .await
            .map_err(|e| match e {
                Error::Kms {
                    kind: KmsErrorKind::NotFound,
                    ..
                } => kms_error(
                    KmsErrorKind::NotFound,
                    format!(
                        "transit key `{}` does not exist at mount `{}` (encrypting to it would \
                         silently create it); create it with `bao write -f {}/keys/{}`",
                        self.name, self.mount, self.mount, self.name
                    ),
                ),
                Error::Kms {
                    kind: KmsErrorKind::AccessDenied,
                    message,
                    ..
                } => kms_error(
                    KmsErrorKind::AccessDenied,
                    format!(
                        "{message}; the token must be allowed to read {}/keys/{} so kmseal can \
                         check the key exists before encrypting",
                        self.mount, self.name
                    ),
                ),
                other => other,
            })?;
        let env: Envelope<KeyInfo> = serde_json::from_slice(body.expose_secret())
            .map_err(|_| bad_response("key metadata"))?;
        Ok(env.data)
    }

    /// Checks the key once (exists, can encrypt, binds associated data or derives per
    /// context) and returns whether it is a derived key.
    async fn derived(&self) -> Result<bool, Error> {
        if !self.check_key {
            return Ok(self.assume_derived);
        }
        if let Some(&d) = self.derived.get() {
            return Ok(d);
        }
        let info = self.key_info().await?;
        if !info.supports_encryption {
            return Err(kms_error(
                KmsErrorKind::Other,
                format!(
                    "transit key `{}` (type {}) cannot encrypt",
                    self.name, info.key_type
                ),
            ));
        }
        if !AEAD_TYPES.contains(&info.key_type.as_str()) {
            return Err(kms_error(
                KmsErrorKind::Other,
                format!(
                    "transit key `{}` has type {}, which cannot bind the encryption context; \
                     use aes256-gcm96 or chacha20-poly1305",
                    self.name, info.key_type
                ),
            ));
        }
        let _ = self.derived.set(info.derived);
        Ok(info.derived)
    }

    /// The key version a wrapped key was made with (`vault:vN:…`), if it is a Vault one.
    pub fn key_version(wrapped: &WrappedKey) -> Option<u32> {
        let text = std::str::from_utf8(&wrapped.ciphertext).ok()?;
        let rest = text.strip_prefix("vault:v")?;
        rest.split_once(':')?.0.parse().ok()
    }

    /// [`Kek::rewrap`]: the data key under the newest key version.
    ///
    /// For a **derived** key this is transit's `MOUNT/rewrap/NAME` on the wrapped key (the
    /// server re-encrypts what it made; the data key does not travel again). For other keys
    /// the context is bound as `associated_data`, which transit's rewrap endpoint does not
    /// accept (it decrypts with no associated data; see OpenBao
    /// `builtin/logical/transit/path_rewrap.go`), so the verified data key is wrapped afresh.
    async fn rewrap_newest(
        &self,
        wrapped: &WrappedKey,
        key: &DataKey,
        context: &EncryptionContext,
    ) -> Result<WrappedKey, Error> {
        self.require_mine(wrapped)?;
        if !self.derived().await? {
            return self.wrap(key, context).await;
        }
        let mut body = SecretBytes::new();
        json_field_start(&mut body, "ciphertext")?;
        body.extend_from_slice(&wrapped.ciphertext)?;
        context_fields(&mut body, context, true)?;
        let ciphertext = self.post_for_ciphertext("rewrap", &body).await?;
        Ok(self.wrapped(ciphertext))
    }

    fn require_mine(&self, wrapped: &WrappedKey) -> Result<(), Error> {
        if !self.matches(wrapped) {
            return Err(kms_error(
                KmsErrorKind::InvalidCiphertext,
                format!("wrapped key {wrapped} was not made by {}", self.key_id),
            ));
        }
        let ok = wrapped.ciphertext.starts_with(b"vault:v")
            && wrapped
                .ciphertext
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"+/=:".contains(&b));
        if !ok {
            return Err(kms_error(
                KmsErrorKind::InvalidCiphertext,
                "not a Vault transit ciphertext",
            ));
        }
        Ok(())
    }

    fn wrapped(&self, ciphertext: Vec<u8>) -> WrappedKey {
        WrappedKey {
            provider: Provider::Vault.scheme().to_owned(),
            key_id: self.key_id.clone(),
            ciphertext,
        }
    }

    async fn post_for_ciphertext(&self, op: &str, body: &SecretBytes) -> Result<Vec<u8>, Error> {
        let path = format!("{}/{op}/{}", self.mount, self.name);
        let resp = self.session.call(Method::POST, &path, Some(body)).await?;
        let env: Envelope<CiphertextData<'_>> = serde_json::from_slice(resp.expose_secret())
            .map_err(|_| bad_response("no ciphertext"))?;
        if !env.data.ciphertext.starts_with("vault:v") {
            return Err(bad_response("ciphertext without a vault:vN: prefix"));
        }
        Ok(env.data.ciphertext.as_bytes().to_vec())
    }
}

impl VaultKek {
    /// `MOUNT/decrypt/NAME` with the JSON `body`; the plaintext key into locked memory.
    async fn decrypt(&self, body: &SecretBytes) -> Result<DataKey, Error> {
        let path = format!("{}/decrypt/{}", self.mount, self.name);
        let resp = self.session.call(Method::POST, &path, Some(body)).await?;
        let env: Envelope<PlaintextData<'_>> = serde_json::from_slice(resp.expose_secret())
            .map_err(|_| bad_response("no plaintext"))?;
        // Decode straight into locked memory: no String or Vec ever holds the key.
        let mut key = SecretBytes::zeroed(env.data.plaintext.len().div_ceil(4) * 3)?;
        let n = STANDARD
            .decode_slice(env.data.plaintext.as_bytes(), key.expose_secret_mut())
            .map_err(|_| bad_response("plaintext is not base64"))?;
        key.truncate(n);
        DataKey::from_secret(key)
    }
}

/// Appends `{"NAME":"` (or `,"NAME":"` after the first field).
fn json_field_start(body: &mut SecretBytes, name: &str) -> Result<(), Error> {
    body.extend_from_slice(if body.is_empty() { b"{\"" } else { b"\",\"" })?;
    body.extend_from_slice(name.as_bytes())?;
    body.extend_from_slice(b"\":\"")
}

/// Appends base64 of `bytes` into locked memory.
fn push_base64(body: &mut SecretBytes, bytes: &[u8]) -> Result<(), Error> {
    let start = body.len();
    body.resize(start + bytes.len().div_ceil(3) * 4)?;
    let n = STANDARD
        .encode_slice(bytes, &mut body.expose_secret_mut()[start..])
        .map_err(|_| Error::Internal("base64 buffer too small"))?;
    body.truncate(start + n);
    Ok(())
}

/// Appends the canonical context, base64, as `context` for a derived key (it selects the
/// derived key) or as `associated_data` otherwise (AEAD-authenticated), and closes the object.
fn context_fields(
    body: &mut SecretBytes,
    context: &EncryptionContext,
    derived: bool,
) -> Result<(), Error> {
    json_field_start(
        body,
        if derived {
            "context"
        } else {
            "associated_data"
        },
    )?;
    push_base64(body, &context.canonical_bytes())?;
    body.extend_from_slice(b"\"}")
}

#[async_trait]
impl Kek for VaultKek {
    fn provider(&self) -> &str {
        Provider::Vault.scheme()
    }

    fn key_id(&self) -> &str {
        &self.key_id
    }

    fn describe(&self) -> String {
        self.key.to_string()
    }

    async fn rewrap(
        &self,
        wrapped: &WrappedKey,
        key: &DataKey,
        context: &EncryptionContext,
    ) -> Result<WrappedKey, Error> {
        self.rewrap_newest(wrapped, key, context).await
    }

    async fn wrap(&self, key: &DataKey, context: &EncryptionContext) -> Result<WrappedKey, Error> {
        let derived = self.derived().await?;
        let mut body = SecretBytes::with_capacity(256)?;
        json_field_start(&mut body, "plaintext")?;
        push_base64(&mut body, key.expose_secret())?;
        context_fields(&mut body, context, derived)?;
        let ciphertext = self.post_for_ciphertext("encrypt", &body).await?;
        Ok(self.wrapped(ciphertext))
    }

    async fn unwrap(
        &self,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
    ) -> Result<DataKey, Error> {
        self.require_mine(wrapped)?;
        let derived = self.derived().await?;
        let mut body = SecretBytes::with_capacity(256)?;
        json_field_start(&mut body, "ciphertext")?;
        body.extend_from_slice(&wrapped.ciphertext)?;
        context_fields(&mut body, context, derived)?;
        self.decrypt(&body).await
    }

    /// [`Kek::unwrap_foreign`]: `wrapped.ciphertext` is a transit ciphertext (`vault:vN:…`)
    /// of a raw 32-byte key encrypted with no `associated_data` and no derivation `context`
    /// (SOPS's `hc_vault[].enc`); `wrapped.key_id` is `MOUNT/keys/NAME`. Decrypted with
    /// neither. The key's metadata is not read (decrypt never creates a key), so any key type
    /// transit can decrypt with works; a derived key refuses (it needs a context).
    async fn unwrap_foreign(&self, wrapped: &WrappedKey) -> Result<DataKey, Error> {
        self.require_mine(wrapped)?;
        let mut body = SecretBytes::with_capacity(256)?;
        json_field_start(&mut body, "ciphertext")?;
        body.extend_from_slice(&wrapped.ciphertext)?;
        body.extend_from_slice(b"\"}")?;
        self.decrypt(&body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmseal::SecretString;

    #[test]
    fn request_bodies_are_json_with_base64_fields() {
        let ctx = EncryptionContext::new().with("app", "x").unwrap();
        let mut body = SecretBytes::new();
        json_field_start(&mut body, "plaintext").unwrap();
        push_base64(&mut body, b"\x00\x01\x02").unwrap();
        context_fields(&mut body, &ctx, false).unwrap();
        let v: serde_json::Value = serde_json::from_slice(body.expose_secret()).unwrap();
        assert_eq!(v["plaintext"], "AAEC");
        let ad = STANDARD
            .decode(v["associated_data"].as_str().unwrap())
            .unwrap();
        assert_eq!(ad, ctx.canonical_bytes());
        assert!(v.get("context").is_none());
        let mut body = SecretBytes::new();
        json_field_start(&mut body, "ciphertext").unwrap();
        context_fields(&mut body, &ctx, true).unwrap();
        let v: serde_json::Value = serde_json::from_slice(body.expose_secret()).unwrap();
        assert_eq!(
            STANDARD.decode(v["context"].as_str().unwrap()).unwrap(),
            ctx.canonical_bytes()
        );
        assert!(v.get("associated_data").is_none());
    }

    #[test]
    fn key_versions_parse() {
        let w = |s: &str| WrappedKey {
            provider: "vault".into(),
            key_id: "t/keys/k".into(),
            ciphertext: s.as_bytes().to_vec(),
        };
        assert_eq!(VaultKek::key_version(&w("vault:v3:abcd")), Some(3));
        assert_eq!(VaultKek::key_version(&w("vault:vx:abcd")), None);
        assert_eq!(VaultKek::key_version(&w("nope")), None);
    }

    #[test]
    fn uri_to_address() {
        let uri: KeyUri = "vault+http://127.0.0.1:18200/team/transit/keys/app"
            .parse()
            .unwrap();
        let kek = VaultKek::builder(&uri)
            .unwrap()
            .token(TokenSource::Token(
                SecretString::copy_from_str("t").unwrap(),
            ))
            .build()
            .unwrap();
        assert_eq!(kek.session.http.addr, "http://127.0.0.1:18200");
        assert_eq!(kek.mount, "team/transit");
        assert_eq!(kek.key_id(), "team/transit/keys/app");
        let uri: KeyUri = "vault://vault.example/transit/keys/app".parse().unwrap();
        let kek = VaultKek::builder(&uri)
            .unwrap()
            .token(TokenSource::Token(
                SecretString::copy_from_str("t").unwrap(),
            ))
            .build()
            .unwrap();
        assert_eq!(kek.session.http.addr, "https://vault.example:8200");
        assert!(!format!("{kek:?}").contains("\"t\""));
    }
}
