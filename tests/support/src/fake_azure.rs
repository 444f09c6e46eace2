//! A protocol-faithful Azure Key Vault stand-in for tests.
//!
//! HTTPS with a certificate chain made here (rcgen; [`FakeVault::ca_pem`] is the root to
//! trust), the bearer challenge (`401` + `WWW-Authenticate: Bearer authorization=…,
//! resource=…`) for every request without a valid token, an Entra ID token endpoint
//! (`POST /{tenant}/oauth2/v2.0/token`, client-assertion grant, as workload identity uses it),
//! and the key operations the client uses: `GET /keys/{name}[/{version}]`,
//! `POST …/wrapkey`, `POST /keys/{name}/{version}/unwrapkey`, `POST …/encrypt`,
//! `POST /keys/{name}/{version}/decrypt` (RSA keys), with base64url values; and the
//! secret operations: `PUT /secrets/{name}`, `GET /secrets/{name}[/{version}]`,
//! `GET /secrets/{name}/versions` (with `nextLink` paging);
//! `{"error": {code, message}}` bodies, real RSA-OAEP-256 (rsa crate) and A256KW (aes-kw)
//! inside, key versions, disabled keys, and fault modes. No Key Vault emulator exists.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aes_kw::KwAes256;
use aes_kw::cipher::KeyInit;
use async_trait::async_trait;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use kmseal::SecretBytes;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, PrivateKey};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::rustls;

/// The tenant the stand-in's challenge and token endpoint use.
pub const TENANT: &str = "00000000-0000-0000-0000-00000000cafe";

/// What the fake does to the next authenticated requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    None,
    /// Answer with this status and a Key Vault error body (429 with `Retry-After`).
    Status(u16),
    /// Accept the request and never answer.
    Hang,
}

enum Material {
    Rsa(Box<PrivateKey>),
    Oct([u8; 32]),
}

struct KeyEntry {
    versions: Vec<(String, Material)>,
    enabled: bool,
}

/// One version of a secret: (version id, value, enabled, created as Unix seconds).
type SecretVersionEntry = (String, String, bool, i64);

#[derive(Default)]
struct State {
    keys: HashMap<String, KeyEntry>,
    /// Secrets: name → versions, oldest first.
    secrets: HashMap<String, Vec<SecretVersionEntry>>,
    /// Reads of each secret (Get Secret, any version), for load tests.
    secret_reads: HashMap<String, u32>,
    /// Refuse every authenticated request with 403 (a caller without permissions).
    deny_all: bool,
    /// Issued access tokens and whether they are still accepted.
    tokens: HashMap<String, bool>,
    /// The federated token (client assertion) the token endpoint accepts.
    assertion: Option<String>,
    fault: Option<(Fault, u32)>,
}

/// The stand-in; clones share one server.
#[derive(Clone)]
pub struct FakeVault {
    state: Arc<Mutex<State>>,
    /// Authenticated key operations served (faulted ones included).
    pub requests: Arc<AtomicU32>,
    /// 401 challenges sent.
    pub challenges: Arc<AtomicU32>,
    /// Tokens issued (token endpoint and [`FakeCredential`]).
    pub tokens_issued: Arc<AtomicU32>,
    port: u16,
    host: String,
    ca_pem: String,
}

fn random_hex(bytes: usize) -> String {
    SecretBytes::random(bytes)
        .unwrap()
        .expose_secret()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn kv_error(status: u16, code: &str, message: &str) -> (u16, Value) {
    (status, json!({"error": {"code": code, "message": message}}))
}

/// Appends what the peer sent next; false when the connection ended or failed.
async fn read_more<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk).await {
        Ok(n) if n > 0 => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        _ => false,
    }
}

struct Request {
    method: String,
    path: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

/// Reads one HTTP/1.1 request (headers, then Content-Length bytes of body).
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Request> {
    let mut buf = Vec::new();
    let header_end = loop {
        if !read_more(stream, &mut buf).await {
            return None;
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let len = header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < header_end + len {
        if !read_more(stream, &mut buf).await {
            return None;
        }
    }
    let mut first = head.split_whitespace();
    Some(Request {
        method: first.next().unwrap_or("").to_owned(),
        path: first.next().unwrap_or("").to_owned(),
        authorization: header("authorization"),
        body: buf[header_end..header_end + len].to_vec(),
    })
}

impl FakeVault {
    /// Starts the server on a free port of 127.0.0.1 (inside a tokio runtime), with a
    /// certificate for `vault_host` (e.g. `kmseal-test.vault.azure.net`) and `localhost`.
    pub async fn start(vault_host: &str) -> FakeVault {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kmseal test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec![vault_host.to_owned(), "localhost".into()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone(), ca.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeVault {
            state: Arc::default(),
            requests: Arc::default(),
            challenges: Arc::default(),
            tokens_issued: Arc::default(),
            port: listener.local_addr().unwrap().port(),
            host: vault_host.to_owned(),
            ca_pem: ca.pem(),
        };
        let server = fake.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (server, acceptor) = (server.clone(), acceptor.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        server.serve(tls).await;
                    }
                });
            }
        });
        fake
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The root certificate (PEM) clients must trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// `azure-kv://HOST:PORT/keys/NAME` (connect to 127.0.0.1 to reach it).
    pub fn uri(&self, name: &str) -> String {
        format!("azure-kv://{}:{}/keys/{name}", self.host, self.port)
    }

    /// `https://localhost:PORT`, the Entra ID authority host to give a real credential.
    pub fn authority_host(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// Creates an RSA-2048 key, or a new version of it (which becomes current); returns the
    /// version.
    pub fn create_rsa_key(&self, name: &str) -> String {
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let key = PrivateKey::new(&mut rng, 2048).unwrap();
        self.add_version(name, Material::Rsa(Box::new(key)))
    }

    /// Creates a Managed HSM `oct-HSM` AES-256 key (or a new version); returns the version.
    pub fn create_oct_key(&self, name: &str) -> String {
        let key: [u8; 32] = SecretBytes::random(32)
            .unwrap()
            .expose_secret()
            .try_into()
            .unwrap();
        self.add_version(name, Material::Oct(key))
    }

    fn add_version(&self, name: &str, material: Material) -> String {
        let version = random_hex(16);
        let mut st = self.state.lock().unwrap();
        let entry = st.keys.entry(name.to_owned()).or_insert(KeyEntry {
            versions: Vec::new(),
            enabled: true,
        });
        entry.versions.push((version.clone(), material));
        version
    }

    /// What Key Vault's `encrypt` returns for `plaintext` under `name`/`version` with `alg`
    /// (e.g. `RSA-OAEP-256`, as SOPS calls it), through the same handler as HTTPS requests.
    /// For making foreign ciphertexts in tests; counts no request.
    pub fn encrypt(&self, name: &str, version: &str, alg: &str, plaintext: &[u8]) -> Vec<u8> {
        let body = json!({"alg": alg, "value": B64URL.encode(plaintext)}).to_string();
        let path = format!("/keys/{name}/{version}/encrypt");
        let (status, reply) = self.key_operation("POST", &path, body.as_bytes());
        assert_eq!(status, 200, "{reply}");
        B64URL.decode(reply["value"].as_str().unwrap()).unwrap()
    }

    pub fn set_enabled(&self, name: &str, enabled: bool) {
        if let Some(k) = self.state.lock().unwrap().keys.get_mut(name) {
            k.enabled = enabled;
        }
    }

    /// Reads (Get Secret) of the secret `name` so far.
    pub fn secret_reads(&self, name: &str) -> u32 {
        self.state
            .lock()
            .unwrap()
            .secret_reads
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Enables or disables one version of a secret (1 = the oldest), as the portal would.
    pub fn set_secret_version_enabled(&self, name: &str, version: usize, enabled: bool) {
        let mut st = self.state.lock().unwrap();
        st.secrets.get_mut(name).unwrap()[version - 1].2 = enabled;
    }

    /// `azure-secret://HOST:PORT/NAME` (connect to 127.0.0.1 to reach it).
    pub fn secret_uri(&self, name: &str) -> String {
        format!("azure-secret://{}:{}/{name}", self.host, self.port)
    }

    /// From now on, refuses every authenticated request with 403 `Forbidden`.
    pub fn deny_all(&self) {
        self.state.lock().unwrap().deny_all = true;
    }

    /// Applies `fault` to the next `times` authenticated requests.
    pub fn set_fault(&self, fault: Fault, times: u32) {
        self.state.lock().unwrap().fault = Some((fault, times));
    }

    /// The token endpoint will accept this client assertion (a workload identity token).
    pub fn accept_assertion(&self, assertion: &str) {
        self.state.lock().unwrap().assertion = Some(assertion.to_owned());
    }

    /// Every token issued so far stops being accepted (as when it expires server-side).
    pub fn expire_tokens(&self) {
        for valid in self.state.lock().unwrap().tokens.values_mut() {
            *valid = false;
        }
    }

    /// Issues an access token (what Entra ID would).
    pub fn issue_token(&self) -> String {
        let token = format!("kv-token-{}", random_hex(16));
        self.state
            .lock()
            .unwrap()
            .tokens
            .insert(token.clone(), true);
        self.tokens_issued.fetch_add(1, Ordering::SeqCst);
        token
    }

    fn take_fault(&self) -> Fault {
        let mut st = self.state.lock().unwrap();
        match st.fault {
            Some((f, n)) if n > 0 => {
                st.fault = Some((f, n - 1));
                f
            }
            _ => Fault::None,
        }
    }

    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&self, mut stream: S) {
        while let Some(req) = read_request(&mut stream).await {
            let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
            let (status, extra, reply) = if path.ends_with("/oauth2/v2.0/token") {
                let (s, v) = self.token_endpoint(path, &req.body);
                (s, String::new(), v)
            } else if let Some(problem) = self.unauthorized(req.authorization.as_deref()) {
                self.challenges.fetch_add(1, Ordering::SeqCst);
                let challenge = format!(
                    "WWW-Authenticate: Bearer authorization=\"https://login.microsoftonline.com/{TENANT}\", resource=\"https://vault.azure.net\"{problem}\r\n"
                );
                let (s, v) = kv_error(
                    401,
                    "Unauthorized",
                    "AKV10000: Request is missing a Bearer or PoP token.",
                );
                (s, challenge, v)
            } else {
                self.requests.fetch_add(1, Ordering::SeqCst);
                match self.take_fault() {
                    Fault::Hang => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    Fault::Status(429) => {
                        let (s, v) = kv_error(
                            429,
                            "Throttled",
                            "Request was not processed because too many requests were received.",
                        );
                        (s, "Retry-After: 0\r\n".into(), v)
                    }
                    Fault::Status(code) => {
                        let (s, v) =
                            kv_error(code, "ServiceUnavailable", "The service is unavailable.");
                        (s, String::new(), v)
                    }
                    Fault::None => {
                        let (s, v) = if self.state.lock().unwrap().deny_all {
                            kv_error(
                                403,
                                "Forbidden",
                                "Caller is not authorized to perform action on resource.",
                            )
                        } else if !query.contains("api-version=") {
                            kv_error(400, "MissingApiVersionParameter", "api-version is required")
                        } else if path.starts_with("/secrets/") {
                            self.secret_operation(&req.method, path, query, &req.body)
                        } else if query.contains("api-version=") {
                            self.key_operation(&req.method, path, &req.body)
                        } else {
                            kv_error(400, "MissingApiVersionParameter", "api-version is required")
                        };
                        (s, String::new(), v)
                    }
                }
            };
            let text = reply.to_string();
            let reason = match status {
                200 => "OK",
                401 => "Unauthorized",
                _ => "Error",
            };
            let response = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n{extra}Content-Length: {}\r\n\r\n{text}",
                text.len()
            );
            if stream.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    /// `None` when the bearer token is valid; otherwise the challenge's error parameters.
    fn unauthorized(&self, authorization: Option<&str>) -> Option<&'static str> {
        let Some(token) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else {
            return Some("");
        };
        match self.state.lock().unwrap().tokens.get(token) {
            Some(true) => None,
            Some(false) => Some(", error=\"invalid_token\", error_description=\"expired\""),
            None => Some(", error=\"invalid_token\""),
        }
    }

    fn token_endpoint(&self, path: &str, body: &[u8]) -> (u16, Value) {
        let form: HashMap<String, String> = String::from_utf8_lossy(body)
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), url_decode(v)))
            .collect();
        let oauth_error = |code: &str, description: &str| {
            (
                400,
                json!({"error": code, "error_description": description}),
            )
        };
        if path != format!("/{TENANT}/oauth2/v2.0/token") {
            return oauth_error("invalid_request", "AADSTS90002: Tenant not found.");
        }
        let field = |k: &str| form.get(k).map(String::as_str);
        if field("grant_type") != Some("client_credentials")
            || field("client_assertion_type")
                != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            || field("client_id").is_none_or(str::is_empty)
        {
            return oauth_error("invalid_request", "AADSTS900144: malformed request.");
        }
        if field("scope") != Some("https://vault.azure.net/.default") {
            return oauth_error("invalid_scope", "AADSTS70011: invalid scope.");
        }
        let accepted = self.state.lock().unwrap().assertion.clone();
        if accepted.is_none() || field("client_assertion") != accepted.as_deref() {
            return oauth_error(
                "invalid_client",
                "AADSTS700024: Client assertion is not within its valid time range.",
            );
        }
        (
            200,
            json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                   "access_token": self.issue_token()}),
        )
    }

    fn kid(&self, name: &str, version: &str) -> String {
        format!("https://{}/keys/{name}/{version}", self.host)
    }

    /// The secret operations, as documented for API version 7.x.
    fn secret_operation(&self, method: &str, path: &str, query: &str, body: &[u8]) -> (u16, Value) {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (host, port) = (self.host.clone(), self.port);
        let bundle = |name: &str, v: &SecretVersionEntry, with_value: bool| {
            let mut b = json!({
                "id": format!("https://{host}/secrets/{name}/{}", v.0),
                "attributes": {"enabled": v.2, "created": v.3, "updated": v.3,
                               "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90}
            });
            if with_value {
                b["value"] = json!(v.1);
            }
            b
        };
        let not_found = |name: &str| {
            kv_error(
                404,
                "SecretNotFound",
                &format!("A secret with (name/id) {name} was not found in this key vault."),
            )
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut st = self.state.lock().unwrap();
        match (method, &segments[..]) {
            ("PUT", ["secrets", name]) => {
                let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                let Some(value) = body.get("value").and_then(Value::as_str) else {
                    return kv_error(400, "BadParameter", "Property value is required.");
                };
                if value.len() > 25 * 1024 {
                    return kv_error(
                        413,
                        "RequestEntityTooLarge",
                        "The secret value is too large.",
                    );
                }
                let entry = (random_hex(16), value.to_owned(), true, now);
                let versions = st.secrets.entry((*name).to_owned()).or_default();
                versions.push(entry);
                (200, bundle(name, versions.last().unwrap(), true))
            }
            ("GET", ["secrets", name, "versions"]) => {
                let Some(versions) = st.secrets.get(*name) else {
                    return not_found(name);
                };
                // Two per page, so clients must follow nextLink.
                let skip: usize = query
                    .split('&')
                    .find_map(|kv| {
                        kv.strip_prefix("$skiptoken=")
                            .or_else(|| kv.strip_prefix("%24skiptoken="))
                    })
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let page: Vec<Value> = versions
                    .iter()
                    .skip(skip)
                    .take(2)
                    .map(|v| bundle(name, v, false))
                    .collect();
                let next = (skip + 2 < versions.len()).then(|| {
                    format!(
                        "https://{host}:{port}/secrets/{name}/versions?api-version=7.6&$skiptoken={}",
                        skip + 2
                    )
                });
                (200, json!({"value": page, "nextLink": next}))
            }
            ("GET", ["secrets", name])
            | ("GET", ["secrets", name, ""])
            | ("GET", ["secrets", name, _]) => {
                *st.secret_reads.entry((*name).to_owned()).or_default() += 1;
                let Some(versions) = st.secrets.get(*name) else {
                    return not_found(name);
                };
                let wanted = match segments.get(2) {
                    Some(v) if !v.is_empty() => versions.iter().find(|x| x.0 == *v),
                    _ => versions.last(),
                };
                let Some(v) = wanted else {
                    return not_found(name);
                };
                if !v.2 {
                    return kv_error(
                        403,
                        "Forbidden",
                        "Operation get is not allowed on a disabled secret.",
                    );
                }
                (200, bundle(name, v, true))
            }
            _ => kv_error(400, "BadParameter", "unknown secret operation"),
        }
    }

    fn key_operation(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (name, version, op) = match (method, &segments[..]) {
            ("GET", ["keys", name]) | ("GET", ["keys", name, ""]) => (*name, None, "get"),
            ("GET", ["keys", name, version]) => (*name, Some(*version), "get"),
            ("POST", ["keys", name, op]) | ("POST", ["keys", name, "", op]) => (*name, None, *op),
            ("POST", ["keys", name, version, op]) => (*name, Some(*version), *op),
            _ => return kv_error(404, "NotFound", "unknown operation"),
        };
        let st = self.state.lock().unwrap();
        let Some(entry) = st.keys.get(name) else {
            return kv_error(
                404,
                "KeyNotFound",
                &format!("A key with (name/id) {name} was not found in this key vault."),
            );
        };
        let found = match version {
            None => entry.versions.last(),
            Some(v) => entry.versions.iter().find(|(ver, _)| ver == v),
        };
        let Some((version, material)) = found else {
            return kv_error(
                404,
                "KeyNotFound",
                &format!(
                    "A key with (name/id) {name}/{} was not found in this key vault.",
                    version.unwrap_or("")
                ),
            );
        };
        if !entry.enabled {
            return (
                403,
                json!({"error": {"code": "Forbidden",
                    "message": format!("Operation {op} is not allowed on a disabled key."),
                    "innererror": {"code": "KeyDisabled"}}}),
            );
        }
        let kid = self.kid(name, version);
        if op == "get" {
            let key = match material {
                Material::Rsa(k) => json!({"kid": kid, "kty": "RSA",
                    "key_ops": ["wrapKey", "unwrapKey", "encrypt", "decrypt"],
                    "n": B64URL.encode(k.n().to_be_bytes()),
                    "e": B64URL.encode(k.e().to_be_bytes())}),
                Material::Oct(_) => json!({"kid": kid, "kty": "oct-HSM",
                    "key_ops": ["wrapKey", "unwrapKey"]}),
            };
            return (
                200,
                json!({"key": key, "attributes": {"enabled": true, "recoveryLevel": "Recoverable+Purgeable"}}),
            );
        }
        if matches!(op, "unwrapkey" | "decrypt") && version.is_empty() {
            return kv_error(400, "BadParameter", "A key version is required.");
        }
        let params: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let alg = params.get("alg").and_then(Value::as_str).unwrap_or("");
        let Some(value) = params
            .get("value")
            .and_then(Value::as_str)
            .and_then(|v| B64URL.decode(v.trim_end_matches('=')).ok())
        else {
            return kv_error(400, "BadParameter", "Property 'value' is required.");
        };
        let result = match (op, material, alg) {
            ("wrapkey", Material::Rsa(k), "RSA-OAEP-256") => {
                let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
                k.to_public_key()
                    .encrypt(&mut rng, Oaep::<sha2::Sha256>::new(), &value)
                    .ok()
            }
            ("unwrapkey" | "decrypt", Material::Rsa(k), "RSA-OAEP-256") => {
                k.decrypt(Oaep::<sha2::Sha256>::new(), &value).ok()
            }
            // `encrypt` with RSA-OAEP-256 is the same RSA-OAEP as `wrapkey` (SOPS uses it).
            ("encrypt", Material::Rsa(k), "RSA-OAEP-256") => {
                let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
                k.to_public_key()
                    .encrypt(&mut rng, Oaep::<sha2::Sha256>::new(), &value)
                    .ok()
            }
            ("wrapkey", Material::Oct(k), "A256KW") => {
                let mut out = vec![0u8; value.len() + 8];
                KwAes256::new(k.into())
                    .wrap_key(&value, &mut out)
                    .ok()
                    .map(|w| w.to_vec())
            }
            ("unwrapkey", Material::Oct(k), "A256KW") if value.len() >= 16 => {
                let mut out = vec![0u8; value.len() - 8];
                KwAes256::new(k.into())
                    .unwrap_key(&value, &mut out)
                    .ok()
                    .map(|w| w.to_vec())
            }
            ("wrapkey" | "unwrapkey" | "encrypt" | "decrypt", _, _) => {
                return kv_error(
                    400,
                    "BadParameter",
                    &format!("Algorithm '{alg}' is not supported for this key type."),
                );
            }
            _ => return kv_error(404, "NotFound", "unknown operation"),
        };
        match result {
            Some(r) => (200, json!({"kid": kid, "value": B64URL.encode(r)})),
            None => kv_error(400, "BadParameter", "Unable to unwrap the key."),
        }
    }
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A token credential that gets its tokens straight from the stand-in (as Entra ID would
/// issue them), counting calls.
#[derive(Clone)]
pub struct FakeCredential {
    vault: FakeVault,
    pub calls: Arc<AtomicU32>,
}

impl std::fmt::Debug for FakeCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeCredential").finish_non_exhaustive()
    }
}

impl FakeCredential {
    pub fn new(vault: &FakeVault) -> FakeCredential {
        FakeCredential {
            vault: vault.clone(),
            calls: Arc::default(),
        }
    }
}

#[async_trait]
impl TokenCredential for FakeCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if scopes != ["https://vault.azure.net/.default"] {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                format!("unexpected scopes {scopes:?}"),
            ));
        }
        Ok(AccessToken::new(
            Secret::new(self.vault.issue_token()),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}
