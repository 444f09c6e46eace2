//! Google Cloud KMS against an in-test stand-in that speaks the documented REST/JSON protocol
//! (`POST /v1/{name}:encrypt|:decrypt`, camelCase fields, base64 bytes, CRC32C values as
//! decimal strings, `{"error": {code, message, status}}` bodies) with real AES-256-GCM inside.
//! No Cloud KMS emulator exists; this server is what the official client talks to here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kmseal::{
    DataKey, Decryptor, EncryptionContext, Encryptor, Error, Kek, KeyUri, KmsErrorKind, SecretBytes,
};
use kmseal_gcp::GcpKek;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the fake does to the next requests.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
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
struct FakeKms {
    state: Arc<Mutex<State>>,
    requests: Arc<AtomicU32>,
    port: u16,
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
    async fn start() -> FakeKms {
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

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn create_key(&self, name: &str) {
        let key: [u8; 32] = SecretBytes::random(32)
            .unwrap()
            .expose_secret()
            .try_into()
            .unwrap();
        self.state.lock().unwrap().keys.insert(name.to_owned(), key);
    }

    fn set_fault(&self, fault: Fault, times: u32) {
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
                let mut chunk = [0u8; 4096];
                let Ok(n) = stream.read(&mut chunk).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
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
                let mut chunk = [0u8; 4096];
                let Ok(n) = stream.read(&mut chunk).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
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

const KEY_A: &str = "projects/p/locations/europe-west1/keyRings/r/cryptoKeys/a";
const KEY_B: &str = "projects/p/locations/europe-west1/keyRings/r/cryptoKeys/b";

async fn kek(fake: &FakeKms, name: &str, retries: u32, timeout: Duration) -> GcpKek {
    let uri: KeyUri = format!("gcp-kms://{name}").parse().unwrap();
    GcpKek::builder(&uri)
        .unwrap()
        .endpoint(fake.endpoint())
        .dangerous_anonymous_credentials()
        .retries(retries)
        .timeout(timeout)
        .build()
        .await
        .unwrap()
}

fn kind(e: &Error) -> Option<KmsErrorKind> {
    match e {
        Error::Kms { kind, .. } => Some(*kind),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_the_stand_in() {
    let fake = FakeKms::start().await;
    fake.create_key(KEY_A);
    fake.create_key(KEY_B);
    let a = kek(&fake, KEY_A, 3, Duration::from_secs(5)).await;
    let b = kek(&fake, KEY_B, 3, Duration::from_secs(5)).await;
    kmseal::testing::run(Arc::new(a), Arc::new(b)).await;
}

#[tokio::test]
async fn response_checksum_mismatches_are_retried_then_reported_as_integrity_errors() {
    let fake = FakeKms::start().await;
    fake.create_key(KEY_A);
    let k = kek(&fake, KEY_A, 2, Duration::from_secs(5)).await;
    let ctx = EncryptionContext::new().with("app", "crc").unwrap();
    let dek = DataKey::generate().unwrap();
    // One corrupted answer: retried, then fine.
    fake.set_fault(Fault::CorruptChecksum, 1);
    let w = k.wrap(&dek, &ctx).await.unwrap();
    fake.set_fault(Fault::CorruptChecksum, 1);
    assert!(k.unwrap(&w, &ctx).await.unwrap() == dek);
    // Always corrupted: retries + 1 requests, then an integrity error; no key returned.
    for op in ["wrap", "unwrap"] {
        fake.set_fault(Fault::CorruptChecksum, 100);
        let before = fake.requests.load(Ordering::SeqCst);
        let err = if op == "wrap" {
            k.wrap(&dek, &ctx).await.unwrap_err()
        } else {
            k.unwrap(&w, &ctx).await.unwrap_err()
        };
        assert_eq!(kind(&err), Some(KmsErrorKind::Integrity), "{op}: {err}");
        assert_eq!(
            fake.requests.load(Ordering::SeqCst) - before,
            3,
            "{op}: 1 try + 2 retries"
        );
    }
    fake.set_fault(Fault::None, 0);
}

#[tokio::test]
async fn throttling_and_unavailability_are_retried_with_backoff() {
    let fake = FakeKms::start().await;
    fake.create_key(KEY_A);
    let k = kek(&fake, KEY_A, 3, Duration::from_secs(5)).await;
    let ctx = EncryptionContext::new();
    let dek = DataKey::generate().unwrap();
    for status in [429, 503] {
        fake.set_fault(Fault::Status(status), 2);
        let before = fake.requests.load(Ordering::SeqCst);
        let w = k
            .wrap(&dek, &ctx)
            .await
            .unwrap_or_else(|e| panic!("{status}: {e}"));
        assert_eq!(
            fake.requests.load(Ordering::SeqCst) - before,
            3,
            "{status}: two failures, one success"
        );
        assert!(k.unwrap(&w, &ctx).await.unwrap() == dek);
    }
    fake.set_fault(Fault::Status(429), 100);
    let err = k.wrap(&dek, &ctx).await.unwrap_err();
    assert_eq!(kind(&err), Some(KmsErrorKind::Throttled), "{err}");
    fake.set_fault(Fault::Status(503), 100);
    let err = k.wrap(&dek, &ctx).await.unwrap_err();
    assert_eq!(kind(&err), Some(KmsErrorKind::Unavailable), "{err}");
    fake.set_fault(Fault::None, 0);
}

#[tokio::test]
async fn unknown_keys_hangs_and_closed_ports() {
    let fake = FakeKms::start().await;
    let k = kek(&fake, KEY_A, 0, Duration::from_millis(500)).await;
    let err = k
        .wrap(&DataKey::generate().unwrap(), &EncryptionContext::new())
        .await
        .unwrap_err();
    assert_eq!(kind(&err), Some(KmsErrorKind::NotFound), "{err}");

    fake.create_key(KEY_A);
    fake.set_fault(Fault::Hang, 100);
    let start = Instant::now();
    let err = k
        .wrap(&DataKey::generate().unwrap(), &EncryptionContext::new())
        .await
        .unwrap_err();
    assert_eq!(kind(&err), Some(KmsErrorKind::Timeout), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let uri: KeyUri = format!("gcp-kms://{KEY_A}").parse().unwrap();
    let k = GcpKek::builder(&uri)
        .unwrap()
        .endpoint(format!("http://127.0.0.1:{port}"))
        .dangerous_anonymous_credentials()
        .retries(0)
        .build()
        .await
        .unwrap();
    let err = k
        .wrap(&DataKey::generate().unwrap(), &EncryptionContext::new())
        .await
        .unwrap_err();
    assert_eq!(kind(&err), Some(KmsErrorKind::Unavailable), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_round_trip_with_a_local_break_glass_key() {
    let fake = FakeKms::start().await;
    fake.create_key(KEY_A);
    let gcp: Arc<dyn Kek> = Arc::new(kek(&fake, KEY_A, 3, Duration::from_secs(5)).await);
    let local: Arc<dyn Kek> = Arc::new(kmseal::LocalKek::generate().unwrap());
    let pt: Vec<u8> = (0..3u32 << 20).map(|i| i as u8).collect();
    let msg = Encryptor::new(gcp.clone())
        .add_kek(local.clone())
        .context("app", "e2e")
        .unwrap()
        .encrypt(&pt)
        .await
        .unwrap();
    for k in [gcp, local] {
        let out = Decryptor::new(k)
            .expect_context("app", "e2e")
            .unwrap()
            .decrypt(&msg)
            .await
            .unwrap();
        assert!(out.expose_secret() == &pt[..]);
    }
}
