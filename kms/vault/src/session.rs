//! One authenticated connection to Vault / OpenBao, shared by the transit KEK and the KV
//! store: where the token comes from (a token, a token file, Kubernetes auth with re-login),
//! TLS settings, and calls that renew a refused Kubernetes token once.

use std::path::PathBuf;
use std::time::Duration;

use kmseal::{Error, KmsErrorKind, SecretBytes, SecretString};
use reqwest::Method;

use crate::client::{Http, bad_response, kms_error};

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

/// Connection settings common to every Vault client of this crate.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) token: TokenSource,
    pub(crate) namespace: Option<String>,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            token: TokenSource::Default,
            namespace: None,
            ca_file: None,
            timeout: Duration::from_secs(10),
            retries: 3,
        }
    }
}

/// The setters of [`Settings`] for a builder with a `conn: Settings` field, so the KEK and the
/// KV store builders offer the same ones with the same docs.
macro_rules! connection_setters {
    () => {
        /// Where the token comes from (default: [`TokenSource::Default`]).
        pub fn token(mut self, token: TokenSource) -> Self {
            self.conn.token = token;
            self
        }

        /// Vault Enterprise / OpenBao namespace (default: `VAULT_NAMESPACE` if set).
        pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
            self.conn.namespace = Some(namespace.into());
            self
        }

        /// PEM file of CA certificates to trust in addition to the system roots (default:
        /// `VAULT_CACERT` if set).
        pub fn ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
            self.conn.ca_file = Some(path.into());
            self
        }

        /// Time limit for one HTTP request, connection included (default 10 s).
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.conn.timeout = timeout;
            self
        }

        /// Retries after throttling, 5xx and transport errors, with exponential backoff
        /// from 100 ms (default 3).
        pub fn retries(mut self, retries: u32) -> Self {
            self.conn.retries = retries;
            self
        }
    };
}
pub(crate) use connection_setters;

impl Settings {
    /// Reads the token and CA file and builds the HTTP client for `address`
    /// (`http(s)://HOST:PORT`); no network I/O yet.
    pub(crate) fn connect(self, address: String, plain_http: bool) -> Result<Session, Error> {
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
            // the URI at the active node or a load balancer instead.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(5)))
            .https_only(!plain_http);
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
        Ok(Session {
            http: Http {
                client,
                addr: address,
                namespace: self
                    .namespace
                    .or_else(|| std::env::var("VAULT_NAMESPACE").ok()),
                retries: self.retries,
            },
            auth,
        })
    }
}

pub(crate) fn config_error(message: String) -> Error {
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

/// An HTTP client for one server and the way its requests are authenticated.
pub(crate) struct Session {
    pub(crate) http: Http,
    auth: Auth,
}

impl Session {
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
    pub(crate) async fn call(
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
}

/// `Ok` when `address` (`http(s)://HOST:PORT`) is the server `VAULT_ADDR` (or `BAO_ADDR`)
/// names, the only one the token from the environment may be sent to; otherwise why not.
pub(crate) fn check_default_token_address(address: &str) -> Result<(), String> {
    let addr = std::env::var("VAULT_ADDR")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| std::env::var("BAO_ADDR").ok().filter(|v| !v.is_empty()));
    let Some(addr) = addr else {
        return Err(
            "set VAULT_ADDR to the Vault server (for example https://vault.internal:8200): \
                    the token from the environment is sent only there"
                .into(),
        );
    };
    if normalize_address(&addr).as_deref() != Some(address) {
        return Err(format!(
            "names {address}, not VAULT_ADDR ({}): the token from the environment is sent only \
             to VAULT_ADDR",
            kmseal::escape_untrusted(&addr)
        ));
    }
    Ok(())
}

/// `scheme://host:port` of a Vault address as `VAULT_ADDR` holds it (`https://h`,
/// `http://h:8200/`), the port defaulting to the scheme's; `None` when it is not one.
fn normalize_address(addr: &str) -> Option<String> {
    let (scheme, rest) = addr.trim().trim_end_matches('/').split_once("://")?;
    let default_port = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    let with_port = match rest.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => rest.to_owned(),
        Some(_) => return None,
        None => format!("{rest}:{default_port}"),
    };
    Some(format!("{scheme}://{with_port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_addresses_normalize_to_scheme_host_and_port() {
        assert_eq!(
            normalize_address("https://v.internal").as_deref(),
            Some("https://v.internal:443")
        );
        assert_eq!(
            normalize_address("http://127.0.0.1:8200/").as_deref(),
            Some("http://127.0.0.1:8200")
        );
        for bad in [
            "v.internal:8200",
            "ftp://v",
            "https://",
            "https://u@v",
            "https://v/path",
            "https://v:x",
        ] {
            assert_eq!(normalize_address(bad), None, "{bad}");
        }
    }
}
