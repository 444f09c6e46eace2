//! A protocol-faithful Cloud KMS and Secret Manager stand-in for tests: the documented
//! REST/JSON protocols (`POST /v1/{name}:encrypt|:decrypt`; `POST /v1/{parent}/secrets?secretId=`,
//! `POST /v1/{secret}:addVersion`, `GET /v1/{version}:access`, `GET /v1/{secret}/versions`),
//! camelCase fields, base64 bytes, CRC32C values as decimal strings,
//! `{"error": {code, message, status}}` bodies, with real AES-256-GCM inside, and fault modes.
//! No emulator of either service exists.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kmseal::SecretBytes;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the fake does to the next requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    None,
    /// Answer with a wrong response checksum.
    CorruptChecksum,
    /// Answer with this HTTP status and the matching Google error.
    Status(u16),
    /// Accept the request and never answer.
    Hang,
}

/// One version of a secret: its payload and state (`ENABLED`, `DISABLED`, `DESTROYED`).
struct StoredVersion {
    data: Vec<u8>,
    state: &'static str,
    created: String,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, [u8; 32]>,
    /// Secret Manager: secret name → versions (version N at index N - 1).
    secrets: HashMap<String, Vec<StoredVersion>>,
    /// Refuse every request as the service refuses credentials without the permission.
    deny_all: bool,
    /// Secret Manager requests seen, by request line (`GET /v1/…:access`), for load tests.
    accesses: HashMap<String, u32>,
    /// (fault, how many more requests it applies to)
    fault: Option<(Fault, u32)>,
}

#[derive(Clone)]
pub struct FakeKms {
    state: Arc<Mutex<State>>,
    /// Requests served so far.
    pub requests: Arc<AtomicU32>,
    port: u16,
}

/// Appends what the peer sent next; false when the connection ended or failed.
async fn read_more(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk).await {
        Ok(n) if n > 0 => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        _ => false,
    }
}

fn crc(data: &[u8]) -> String {
    crc32c::crc32c(data).to_string()
}

/// Now, as an RFC 3339 time (whole seconds).
fn now_rfc3339() -> String {
    kmseal::store::VersionInfo::default()
        .created(std::time::SystemTime::now())
        .created_rfc3339()
        .unwrap_or_default()
}

fn google_error(code: u16, status: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"error": {"code": code, "message": message, "status": status}}),
    )
}

impl FakeKms {
    /// Starts the server on a free port of 127.0.0.1 (inside a tokio runtime).
    pub async fn start() -> FakeKms {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeKms {
            state: Arc::default(),
            requests: Arc::default(),
            port: listener.local_addr().unwrap().port(),
        };
        let server = fake.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let server = server.clone();
                tokio::spawn(async move { server.serve(stream).await });
            }
        });
        fake
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a CryptoKey with a fresh random AES-256 key.
    pub fn create_key(&self, name: &str) {
        let key: [u8; 32] = SecretBytes::random(32)
            .unwrap()
            .expose_secret()
            .try_into()
            .unwrap();
        self.state.lock().unwrap().keys.insert(name.to_owned(), key);
    }

    /// What `:encrypt` returns for `plaintext` under the CryptoKey `name`, through the same
    /// handler as HTTP requests: with `aad` as `additionalAuthenticatedData`, or with no AAD
    /// fields for `None` (as SOPS and most other tools call it). For making foreign
    /// ciphertexts in tests; counts no request.
    pub fn encrypt(&self, name: &str, plaintext: &[u8], aad: Option<&[u8]>) -> Vec<u8> {
        let mut body =
            json!({"plaintext": B64.encode(plaintext), "plaintextCrc32c": crc(plaintext)});
        if let Some(aad) = aad {
            body["additionalAuthenticatedData"] = json!(B64.encode(aad));
            body["additionalAuthenticatedDataCrc32c"] = json!(crc(aad));
        }
        let (status, reply) = self.handle(&format!("/v1/{name}:encrypt"), &body, false);
        assert_eq!(status, 200, "{reply}");
        B64.decode(reply["ciphertext"].as_str().unwrap()).unwrap()
    }

    /// How many `:access` requests reached the fake for the secret `name`
    /// (`projects/P/secrets/S`), any version.
    pub fn accesses(&self, secret: &str) -> u32 {
        self.state
            .lock()
            .unwrap()
            .accesses
            .get(secret)
            .copied()
            .unwrap_or(0)
    }

    /// Sets a version's state (`DISABLED`, `DESTROYED`, `ENABLED`), as the console would.
    pub fn set_version_state(&self, secret: &str, version: usize, state: &'static str) {
        let mut st = self.state.lock().unwrap();
        let v = &mut st.secrets.get_mut(secret).unwrap()[version - 1];
        v.state = state;
        if state == "DESTROYED" {
            v.data.clear();
        }
    }

    /// From now on, refuses every request with 403 `PERMISSION_DENIED` (as for a caller
    /// without the permission).
    pub fn deny_all(&self) {
        self.state.lock().unwrap().deny_all = true;
    }

    /// Applies `fault` to the next `times` requests.
    pub fn set_fault(&self, fault: Fault, times: u32) {
        self.state.lock().unwrap().fault = Some((fault, times));
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

    async fn serve(&self, mut stream: tokio::net::TcpStream) {
        loop {
            // Read one request: headers, then Content-Length bytes of body.
            let mut buf = Vec::new();
            let header_end = loop {
                if !read_more(&mut stream, &mut buf).await {
                    return;
                }
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
            };
            let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            while buf.len() < header_end + len {
                if !read_more(&mut stream, &mut buf).await {
                    return;
                }
            }
            let body: Value =
                serde_json::from_slice(&buf[header_end..header_end + len]).unwrap_or(Value::Null);
            let method = head.split_whitespace().next().unwrap_or("").to_owned();
            let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p.to_owned(), q.to_owned()),
                None => (target.clone(), String::new()),
            };
            self.requests.fetch_add(1, Ordering::SeqCst);
            let fault = self.take_fault();
            if fault == Fault::Hang {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            let (status, reply) = match fault {
                Fault::Status(429) => google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded."),
                Fault::Status(code) => {
                    google_error(code, "UNAVAILABLE", "The service is currently unavailable.")
                }
                _ if self.state.lock().unwrap().deny_all => google_error(
                    403,
                    "PERMISSION_DENIED",
                    "Permission denied on resource (or it may not exist).",
                ),
                _ if path.contains("/secrets") => self.handle_secrets(
                    &method,
                    &path,
                    &query,
                    &body,
                    fault == Fault::CorruptChecksum,
                ),
                _ => self.handle(&path, &body, fault == Fault::CorruptChecksum),
            };
            let text = reply.to_string();
            let reason = if status == 200 { "OK" } else { "Error" };
            let response = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=UTF-8\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            );
            if stream.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    /// Secret Manager, as documented for v1 (the subset kmseal uses).
    fn handle_secrets(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: &Value,
        corrupt: bool,
    ) -> (u16, Value) {
        let Some(rest) = path.strip_prefix("/v1/") else {
            return google_error(404, "NOT_FOUND", "unknown path");
        };
        let mut st = self.state.lock().unwrap();
        let version_json = |name: &str, n: usize, v: &StoredVersion| {
            json!({"name": format!("{name}/versions/{n}"), "createTime": v.created,
                   "state": v.state, "etag": format!("\"{n}\""),
                   "clientSpecifiedPayloadChecksum": true})
        };
        let not_found = |what: &str| {
            google_error(
                404,
                "NOT_FOUND",
                &format!("Secret [{what}] not found or has no versions."),
            )
        };
        match (method, rest.rsplit_once(':')) {
            // Create a secret: POST /v1/projects/P/secrets?secretId=S
            ("POST", None) if rest.ends_with("/secrets") => {
                let id = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("secretId="))
                    .unwrap_or("");
                if id.is_empty() || body.pointer("/replication").is_none() {
                    return google_error(
                        400,
                        "INVALID_ARGUMENT",
                        "secret_id and replication are required.",
                    );
                }
                let name = format!("{rest}/{id}");
                if st.secrets.contains_key(&name) {
                    return google_error(
                        409,
                        "ALREADY_EXISTS",
                        &format!("Secret [{name}] already exists."),
                    );
                }
                st.secrets.insert(name.clone(), Vec::new());
                (
                    200,
                    json!({"name": name, "replication": {"automatic": {}}, "createTime": now_rfc3339()}),
                )
            }
            ("POST", Some((secret, "addVersion"))) => {
                let Some(versions) = st.secrets.get_mut(secret) else {
                    return not_found(secret);
                };
                let data = body
                    .pointer("/payload/data")
                    .and_then(Value::as_str)
                    .map(|d| B64.decode(d).unwrap_or_default())
                    .unwrap_or_default();
                if let Some(c) = body.pointer("/payload/dataCrc32c")
                    && c.as_str() != Some(&crc(&data))
                {
                    return google_error(
                        400,
                        "INVALID_ARGUMENT",
                        "Checksum mismatch for the payload data.",
                    );
                }
                if data.len() > 65536 {
                    return google_error(
                        400,
                        "INVALID_ARGUMENT",
                        "Secret Payload cannot be larger than 64KiB.",
                    );
                }
                versions.push(StoredVersion {
                    data,
                    state: "ENABLED",
                    created: now_rfc3339(),
                });
                let n = versions.len();
                (200, version_json(secret, n, &versions[n - 1]))
            }
            ("GET", Some((version, "access"))) => {
                let Some((secret, v)) = version.rsplit_once("/versions/") else {
                    return google_error(400, "INVALID_ARGUMENT", "malformed version name");
                };
                *st.accesses.entry(secret.to_owned()).or_default() += 1;
                let Some(versions) = st.secrets.get(secret) else {
                    return not_found(secret);
                };
                let n = if v == "latest" {
                    match versions.iter().rposition(|x| x.state == "ENABLED") {
                        Some(i) => i + 1,
                        None => return not_found(secret),
                    }
                } else {
                    match v.parse::<usize>() {
                        Ok(n) if n >= 1 && n <= versions.len() => n,
                        _ => {
                            return google_error(
                                404,
                                "NOT_FOUND",
                                &format!("Secret Version [{version}] not found."),
                            );
                        }
                    }
                };
                let stored = &versions[n - 1];
                if stored.state != "ENABLED" {
                    return google_error(
                        400,
                        "FAILED_PRECONDITION",
                        &format!(
                            "Secret Version [{secret}/versions/{n}] is in {} state.",
                            stored.state
                        ),
                    );
                }
                let mut checksum = crc(&stored.data);
                if corrupt {
                    checksum = (checksum.parse::<u64>().unwrap() ^ 1).to_string();
                }
                (
                    200,
                    json!({"name": format!("{secret}/versions/{n}"),
                             "payload": {"data": B64.encode(&stored.data), "dataCrc32c": checksum}}),
                )
            }
            ("GET", None) if rest.ends_with("/versions") => {
                let secret = rest.trim_end_matches("/versions");
                let Some(versions) = st.secrets.get(secret) else {
                    return not_found(secret);
                };
                // Newest first, as the service lists them.
                let list: Vec<Value> = versions
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(i, v)| version_json(secret, i + 1, v))
                    .collect();
                (200, json!({"versions": list, "totalSize": list.len()}))
            }
            _ => google_error(404, "NOT_FOUND", "unknown method"),
        }
    }

    fn handle(&self, path: &str, body: &Value, corrupt: bool) -> (u16, Value) {
        let Some(rest) = path.strip_prefix("/v1/") else {
            return google_error(404, "NOT_FOUND", "unknown path");
        };
        let (name, method) = match rest.rsplit_once(':') {
            Some((n, m)) => (n.to_owned(), m.to_owned()),
            None => return google_error(404, "NOT_FOUND", "unknown method"),
        };
        let Some(key) = self.state.lock().unwrap().keys.get(&name).copied() else {
            return google_error(404, "NOT_FOUND", &format!("{name} not found."));
        };
        let field = |f: &str| {
            body.get(f)
                .and_then(Value::as_str)
                .map(|s| B64.decode(s).unwrap_or_default())
        };
        // Int64 checksums travel as decimal strings; any other JSON type is a malformed request.
        let checksum_ok = |data: &[u8], f: &str| match body.get(f) {
            None => true,
            Some(Value::String(c)) => *c == crc(data),
            Some(_) => false,
        };
        let aad = field("additionalAuthenticatedData").unwrap_or_default();
        if !checksum_ok(&aad, "additionalAuthenticatedDataCrc32c") {
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "The checksum in field additional_authenticated_data_crc32c did not match the data in field additional_authenticated_data.",
            );
        }
        let cipher = Aes256Gcm::new(&key.into());
        let bump = |c: String| {
            if corrupt {
                (c.parse::<u64>().unwrap() ^ 1).to_string()
            } else {
                c
            }
        };
        match method.as_str() {
            "encrypt" => {
                let pt = field("plaintext").unwrap_or_default();
                if !checksum_ok(&pt, "plaintextCrc32c") {
                    return google_error(
                        400,
                        "INVALID_ARGUMENT",
                        "The checksum in field plaintext_crc32c did not match the data in field plaintext.",
                    );
                }
                let nonce: [u8; 12] = SecretBytes::random(12)
                    .unwrap()
                    .expose_secret()
                    .try_into()
                    .unwrap();
                let mut ct = nonce.to_vec();
                ct.extend(
                    cipher
                        .encrypt(
                            &nonce.into(),
                            Payload {
                                msg: &pt,
                                aad: &aad,
                            },
                        )
                        .unwrap(),
                );
                (
                    200,
                    json!({
                        "name": format!("{name}/cryptoKeyVersions/1"),
                        "ciphertext": B64.encode(&ct),
                        "ciphertextCrc32c": bump(crc(&ct)),
                        "verifiedPlaintextCrc32c": body.get("plaintextCrc32c").is_some_and(Value::is_string),
                        "verifiedAdditionalAuthenticatedDataCrc32c": body.get("additionalAuthenticatedDataCrc32c").is_some_and(Value::is_string),
                        "protectionLevel": "SOFTWARE"
                    }),
                )
            }
            "decrypt" => {
                let ct = field("ciphertext").unwrap_or_default();
                if !checksum_ok(&ct, "ciphertextCrc32c") {
                    return google_error(
                        400,
                        "INVALID_ARGUMENT",
                        "The checksum in field ciphertext_crc32c did not match the data in field ciphertext.",
                    );
                }
                if ct.len() < 28 {
                    return google_error(
                        400,
                        "INVALID_ARGUMENT",
                        "Decryption failed: the ciphertext is invalid.",
                    );
                }
                let (nonce, rest) = ct.split_at(12);
                let nonce: [u8; 12] = nonce.try_into().unwrap();
                match cipher.decrypt(
                    &nonce.into(),
                    Payload {
                        msg: rest,
                        aad: &aad,
                    },
                ) {
                    Ok(pt) => (
                        200,
                        json!({
                            "plaintext": B64.encode(&pt),
                            "plaintextCrc32c": bump(crc(&pt)),
                            "usedPrimary": true,
                            "protectionLevel": "SOFTWARE"
                        }),
                    ),
                    Err(_) => google_error(
                        400,
                        "INVALID_ARGUMENT",
                        "Decryption failed: the ciphertext is invalid.",
                    ),
                }
            }
            _ => google_error(404, "NOT_FOUND", "unknown method"),
        }
    }
}
