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
#![forbid(unsafe_code)]

mod client;
mod uri;

pub use uri::VaultKeyPath;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kmseal::{
    DataKey, EncryptionContext, Error, Kek, KeyUri, KmsErrorKind, Provider, SecretBytes,
    SecretString, WrappedKey,
};
use reqwest::Method;

use client::{Http, kms_error};

/// Key types whose encryption authenticates `associated_data`.
const AEAD_TYPES: [&str; 4] = [
    "aes128-gcm96",
    "aes256-gcm96",
    "chacha20-poly1305",
    "xchacha20-poly1305",
];

/// Where the Vault token comes from.
#[derive(Debug)]
#[non_exhaustive]
pub enum TokenSource {
    /// `VAULT_TOKEN`, else `BAO_TOKEN`, else the token file `~/.vault-token` (the default).
    Default,
    /// A token file (for example one written by a Vault agent sidecar).
    File(PathBuf),
    /// A token given directly.
    Token(SecretString),
    /// Kubernetes auth: log in at `auth/MOUNT/login` with the pod's service-account JWT and
    /// a Vault role, on first use and again when the token is refused (expired).
    Kubernetes {
        /// The Vault role bound to this service account.
        role: String,
        /// The auth mount (usually `kubernetes`).
        mount: String,
        /// The projected service-account token file.
        jwt_path: PathBuf,
    },
}

impl TokenSource {
    /// Kubernetes auth with the default mount (`kubernetes`) and the default token file
    /// (`/var/run/secrets/kubernetes.io/serviceaccount/token`).
    pub fn kubernetes(role: impl Into<String>) -> TokenSource {
        TokenSource::Kubernetes {
            role: role.into(),
            mount: "kubernetes".into(),
            jwt_path: PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount/token"),
        }
    }
}

/// How requests are authenticated.
enum Auth {
    Static(SecretString),
    Kubernetes {
        role: String,
        mount: String,
        jwt_path: PathBuf,
        token: tokio::sync::Mutex<Option<SecretString>>,
    },
}

/// Settings for a [`VaultKek`].
#[derive(Debug)]
pub struct VaultBuilder {
    key: VaultKeyPath,
    token: TokenSource,
    namespace: Option<String>,
    ca_file: Option<PathBuf>,
    timeout: Duration,
    retries: u32,
    check_key: bool,
    assume_derived: bool,
}

impl VaultBuilder {
    /// Where the token comes from (default: [`TokenSource::Default`]).
    pub fn token(mut self, token: TokenSource) -> Self {
        self.token = token;
        self
    }

    /// Vault Enterprise / OpenBao namespace (default: `VAULT_NAMESPACE` if set).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// PEM file of CA certificates to trust in addition to the system roots (default:
    /// `VAULT_CACERT` if set).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Time limit for one HTTP request, connection included (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Retries after throttling, 5xx and transport errors, with exponential backoff from
    /// 100 ms (default 3).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

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
        let auth = match self.token {
            TokenSource::Kubernetes {
                role,
                mount,
                jwt_path,
            } => Auth::Kubernetes {
                role,
                mount,
                jwt_path,
                token: tokio::sync::Mutex::new(None),
            },
            other => Auth::Static(read_token(&other)?),
        };
        let mut http = reqwest::Client::builder()
            // Never follow redirects: reqwest would re-send `X-Vault-Token` (a custom header it
            // does not strip) and, on 307/308, the body to whatever host `Location` names.
            // Vault itself answers 307 only to forward to the active node of a cluster; point
            // the key URI at the active node or a load balancer instead.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(5)))
            .https_only(!self.key.plain_http());
        if let Some(ca) = self
            .ca_file
            .or_else(|| std::env::var_os("VAULT_CACERT").map(PathBuf::from))
        {
            let pem = std::fs::read(&ca)
                .map_err(|e| config_error(format!("cannot read CA file {}: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| config_error(format!("CA file {} is not PEM: {e}", ca.display())))?;
            http = http.tls_certs_merge(certs);
        }
        let client = http
            .build()
            .map_err(|e| config_error(format!("cannot build the HTTP client: {e}")))?;
        Ok(VaultKek {
            http: Http {
                client,
                addr: self.key.address(),
                namespace: self
                    .namespace
                    .or_else(|| std::env::var("VAULT_NAMESPACE").ok()),
                retries: self.retries,
            },
            mount: self.key.mount().to_owned(),
            name: self.key.name().to_owned(),
            key_id: self.key.key_id(),
            key: self.key,
            auth,
            check_key: self.check_key,
            derived: OnceLock::new(),
            assume_derived: self.assume_derived,
        })
    }
}

fn config_error(message: String) -> Error {
    kms_error(KmsErrorKind::Other, message)
}

fn read_token(source: &TokenSource) -> Result<SecretString, Error> {
    let from_file = |path: &PathBuf| -> Result<SecretString, Error> {
        let bytes = std::fs::read(path).map_err(|e| {
            kms_error(
                KmsErrorKind::AccessDenied,
                format!("cannot read Vault token file {}: {e}", path.display()),
            )
        })?;
        let secret = SecretBytes::from_vec_zeroizing(bytes)?;
        let text = SecretString::try_from_bytes(secret)?;
        SecretString::copy_from_str(text.expose_secret().trim())
    };
    match source {
        TokenSource::Token(t) => t.try_clone(),
        TokenSource::File(path) => from_file(path),
        TokenSource::Kubernetes { .. } => Err(Error::Internal("Kubernetes auth logs in lazily")),
        TokenSource::Default => {
            for var in ["VAULT_TOKEN", "BAO_TOKEN"] {
                if let Ok(v) = std::env::var(var) {
                    let v = zeroize::Zeroizing::new(v);
                    if !v.trim().is_empty() {
                        return SecretString::copy_from_str(v.trim());
                    }
                }
            }
            let home = std::env::var_os("HOME").map(PathBuf::from).ok_or_else(|| {
                kms_error(
                    KmsErrorKind::AccessDenied,
                    "no Vault token: set VAULT_TOKEN or BAO_TOKEN",
                )
            })?;
            let file = home.join(".vault-token");
            if file.exists() {
                from_file(&file)
            } else {
                Err(kms_error(
                    KmsErrorKind::AccessDenied,
                    "no Vault token: set VAULT_TOKEN or BAO_TOKEN, log in with `vault login`, or \
                     pass a token file",
                ))
            }
        }
    }
}

/// A transit key used as a KEK. See the [crate docs](crate).
pub struct VaultKek {
    http: Http,
    mount: String,
    name: String,
    key_id: String,
    key: VaultKeyPath,
    auth: Auth,
    check_key: bool,
    /// Whether the key is derived, learned from its metadata on first use.
    derived: OnceLock<bool>,
    assume_derived: bool,
}

impl std::fmt::Debug for VaultKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultKek")
            .field("uri", &self.key.to_string())
            .field("namespace", &self.http.namespace)
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

fn bad_response(what: &str) -> Error {
    kms_error(
        KmsErrorKind::Other,
        format!("unexpected response from Vault: {what}"),
    )
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
            token: TokenSource::Default,
            namespace: None,
            ca_file: None,
            timeout: Duration::from_secs(10),
            retries: 3,
            check_key: true,
            assume_derived: false,
        }
    }

    /// The current token (logging in with Kubernetes auth first if needed).
    async fn token(&self) -> Result<SecretString, Error> {
        match &self.auth {
            Auth::Static(t) => t.try_clone(),
            Auth::Kubernetes {
                role,
                mount,
                jwt_path,
                token,
            } => {
                let mut cached = token.lock().await;
                if let Some(t) = cached.as_ref() {
                    return t.try_clone();
                }
                let fresh = self.kubernetes_login(role, mount, jwt_path).await?;
                let out = fresh.try_clone()?;
                *cached = Some(fresh);
                Ok(out)
            }
        }
    }

    async fn kubernetes_login(
        &self,
        role: &str,
        mount: &str,
        jwt_path: &std::path::Path,
    ) -> Result<SecretString, Error> {
        let jwt = std::fs::read(jwt_path).map_err(|e| {
            kms_error(
                KmsErrorKind::AccessDenied,
                format!(
                    "cannot read the service-account token {}: {e}",
                    jwt_path.display()
                ),
            )
        })?;
        let jwt = SecretBytes::from_vec_zeroizing(jwt)?;
        let jwt_text = jwt.expose_secret().trim_ascii();
        // A JWT is three base64url parts joined by dots: anything else is not a token, and
        // must not be pasted into the JSON body.
        let jwt_ok = !jwt_text.is_empty()
            && jwt_text
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"-_.=".contains(&b));
        if !jwt_ok {
            return Err(kms_error(
                KmsErrorKind::AccessDenied,
                format!("{} does not hold a service-account JWT", jwt_path.display()),
            ));
        }
        let role_json = serde_json::to_string(role)
            .map_err(|_| Error::InvalidArgument("the Vault role cannot be encoded as JSON"))?;
        let mut body = SecretBytes::with_capacity(jwt_text.len() + role_json.len() + 32)?;
        body.extend_from_slice(b"{\"role\":")?;
        body.extend_from_slice(role_json.as_bytes())?;
        body.extend_from_slice(b",\"jwt\":\"")?;
        body.extend_from_slice(jwt_text)?;
        body.extend_from_slice(b"\"}")?;
        let resp = self
            .http
            .call(
                Method::POST,
                &format!("auth/{mount}/login"),
                b"",
                Some(&body),
            )
            .await
            .map_err(|e| match e {
                Error::Kms { kind, message, .. } => kms_error(
                    kind,
                    format!(
                        "Kubernetes login to auth/{mount} with role `{role}` failed: {message}"
                    ),
                ),
                other => other,
            })?;
        #[derive(serde::Deserialize)]
        struct Login<'a> {
            #[serde(borrow)]
            auth: LoginAuth<'a>,
        }
        #[derive(serde::Deserialize)]
        struct LoginAuth<'a> {
            #[serde(borrow)]
            client_token: &'a str,
        }
        let login: Login<'_> = serde_json::from_slice(resp.expose_secret())
            .map_err(|_| bad_response("login without a client token"))?;
        tracing::debug!(%mount, %role, "logged in to Vault with Kubernetes auth");
        SecretString::copy_from_str(login.auth.client_token)
    }

    /// One authenticated call; a refused Kubernetes-auth token is renewed by logging in
    /// again, once.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&SecretBytes>,
    ) -> Result<SecretBytes, Error> {
        let token = self.token().await?;
        let result = self
            .http
            .call(method.clone(), path, token.expose_secret().as_bytes(), body)
            .await;
        match (&self.auth, &result) {
            (
                Auth::Kubernetes { token, .. },
                Err(Error::Kms {
                    kind: KmsErrorKind::AccessDenied,
                    ..
                }),
            ) => {
                *token.lock().await = None;
                let fresh = self.token().await?;
                self.http
                    .call(method, path, fresh.expose_secret().as_bytes(), body)
                    .await
            }
            _ => result,
        }
    }

    /// Reads the key's metadata (needs `read` on `MOUNT/keys/NAME`).
    pub async fn key_info(&self) -> Result<KeyInfo, Error> {
        let path = format!("{}/keys/{}", self.mount, self.name);
        let body = self
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
        let resp = self.call(Method::POST, &path, Some(body)).await?;
        let env: Envelope<CiphertextData<'_>> = serde_json::from_slice(resp.expose_secret())
            .map_err(|_| bad_response("no ciphertext"))?;
        if !env.data.ciphertext.starts_with("vault:v") {
            return Err(bad_response("ciphertext without a vault:vN: prefix"));
        }
        Ok(env.data.ciphertext.as_bytes().to_vec())
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
        let path = format!("{}/decrypt/{}", self.mount, self.name);
        let resp = self.call(Method::POST, &path, Some(&body)).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(kek.http.addr, "http://127.0.0.1:18200");
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
        assert_eq!(kek.http.addr, "https://vault.example:8200");
        assert!(!format!("{kek:?}").contains("\"t\""));
    }
}
