//! A protocol-faithful Cloud KMS stand-in for tests: the documented
//! REST/JSON protocol (`POST /v1/{name}:encrypt|:decrypt`, camelCase fields, base64 bytes,
//! CRC32C values as decimal strings, `{"error": {code, message, status}}` bodies) with real
//! AES-256-GCM inside, and fault modes. No Cloud KMS emulator exists.
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

#[derive(Default)]
struct State {
    keys: HashMap<String, [u8; 32]>,
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
            let path = head
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .split('?')
                .next()
                .unwrap_or("")
                .to_owned();
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
