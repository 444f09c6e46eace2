//! Against a real OpenBao dev server started by `scripts/test` (address in
//! `KMSEAL_TEST_VAULT_ADDR`, root token in `KMSEAL_TEST_VAULT_TOKEN`). Without it these tests
//! fail: they never skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use kmseal::rotate::{Outcome, Rotator};
use kmseal::{
    DataKey, Decryptor, EncryptionContext, Encryptor, Kek, KeyUri, KmsErrorKind, SecretString,
};
use kmseal_vault::{TokenSource, VaultKek};

#[path = "openbao/kv.rs"]
mod kv;

fn server() -> (String, String) {
    let addr = std::env::var("KMSEAL_TEST_VAULT_ADDR")
        .expect("KMSEAL_TEST_VAULT_ADDR is not set: run scripts/test, which starts OpenBao");
    let token = std::env::var("KMSEAL_TEST_VAULT_TOKEN").unwrap_or_else(|_| "root".into());
    (addr, token)
}

/// Admin calls with the root token (creating, rotating, configuring keys).
async fn admin(
    method: reqwest::Method,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let (addr, token) = server();
    let resp = reqwest::Client::new()
        .request(method, format!("http://{addr}/v1/{path}"))
        .header("X-Vault-Token", token)
        .json(&body)
        .send()
        .await
        .expect("OpenBao must be reachable (scripts/test starts it)");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

fn unique(name: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{name}-{}-{n}", std::process::id())
}

async fn new_key(extra: serde_json::Value) -> String {
    let name = unique("kmseal");
    let (status, body) = admin(
        reqwest::Method::POST,
        &format!("transit/keys/{name}"),
        extra,
    )
    .await;
    assert!(status < 300, "creating key {name}: {status} {body}");
    name
}

fn kek_with_token(name: &str, token: &str) -> VaultKek {
    let (addr, _) = server();
    let uri: KeyUri = format!("vault+http://{addr}/transit/keys/{name}")
        .parse()
        .unwrap();
    VaultKek::builder(&uri)
        .unwrap()
        .token(TokenSource::Token(
            SecretString::copy_from_str(token).unwrap(),
        ))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn kek(name: &str) -> VaultKek {
    kek_with_token(name, &server().1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_openbao() {
    let a = new_key(serde_json::json!({})).await;
    let b = new_key(serde_json::json!({})).await;
    kmseal_test_support::conformance::run(Arc::new(kek(&a)), Arc::new(kek(&b))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_a_derived_chacha_key() {
    let a = new_key(serde_json::json!({"derived": true, "type": "chacha20-poly1305"})).await;
    let b = new_key(serde_json::json!({"derived": true})).await;
    kmseal_test_support::conformance::run(Arc::new(kek(&a)), Arc::new(kek(&b))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_key_encrypted_without_associated_data_opens_with_unwrap_foreign() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let dek = DataKey::generate().unwrap();
    // What SOPS's hc_vault entries hold: transit encrypt of the raw key, nothing else. Any
    // key type transit decrypts with opens (SOPS's own tests make rsa-4096 keys).
    for options in [
        serde_json::json!({}),
        serde_json::json!({"type": "rsa-2048"}),
    ] {
        let plain_aead = options.get("type").is_none();
        let (a, b) = (new_key(options).await, new_key(serde_json::json!({})).await);
        let (status, body) = admin(
            reqwest::Method::POST,
            &format!("transit/encrypt/{a}"),
            serde_json::json!({"plaintext": b64.encode(dek.expose_secret())}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let foreign = kmseal::WrappedKey {
            provider: "vault".into(),
            key_id: format!("transit/keys/{a}"),
            ciphertext: body["data"]["ciphertext"].as_str().unwrap().into(),
        };
        let (a, b) = (kek(&a), kek(&b));
        if plain_aead {
            kmseal_test_support::conformance::foreign_unwrap(&a, &b, &foreign, &dek).await;
        } else {
            assert!(a.unwrap_foreign(&foreign).await.unwrap() == dek);
        }
    }
    // A derived key needs a context, which a foreign ciphertext does not have: refused.
    let d = new_key(serde_json::json!({"derived": true})).await;
    let (status, body) = admin(
        reqwest::Method::POST,
        &format!("transit/encrypt/{d}"),
        serde_json::json!({"plaintext": b64.encode(dek.expose_secret()),
                           "context": b64.encode(b"ctx")}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let foreign = kmseal::WrappedKey {
        provider: "vault".into(),
        key_id: format!("transit/keys/{d}"),
        ciphertext: body["data"]["ciphertext"].as_str().unwrap().into(),
    };
    assert!(kek(&d).unwrap_foreign(&foreign).await.is_err());
}

#[tokio::test]
async fn a_missing_key_is_refused_and_not_created() {
    let name = unique("missing");
    let err = kek(&name)
        .wrap(&DataKey::generate().unwrap(), &EncryptionContext::new())
        .await
        .unwrap_err();
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::NotFound), "{err}");
    assert!(err.to_string().contains("write -f transit/keys/"), "{err}");
    let (status, _) = admin(
        reqwest::Method::GET,
        &format!("transit/keys/{name}"),
        serde_json::json!(null),
    )
    .await;
    assert_eq!(status, 404, "the key must not have been created");
}

#[tokio::test]
async fn key_types_that_cannot_bind_the_context_are_refused() {
    let name = new_key(serde_json::json!({"type": "rsa-2048"})).await;
    let err = kek(&name)
        .wrap(&DataKey::generate().unwrap(), &EncryptionContext::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot bind the encryption context"),
        "{err}"
    );
}

#[tokio::test]
async fn rotation_is_visible_rewrap_works_and_old_versions_can_be_disabled() {
    rotation(serde_json::json!({})).await;
}

#[tokio::test]
async fn rotation_with_a_derived_key_uses_the_server_rewrap() {
    rotation(serde_json::json!({"derived": true})).await;
}

async fn rotation(key_options: serde_json::Value) {
    let derived = key_options["derived"] == true;
    let name = new_key(key_options).await;
    let k = kek(&name);
    let ctx = EncryptionContext::new().with("app", "rot").unwrap();
    let dek = DataKey::generate().unwrap();
    let v1 = k.wrap(&dek, &ctx).await.unwrap();
    assert_eq!(VaultKek::key_version(&v1), Some(1));
    let (s, _) = admin(
        reqwest::Method::POST,
        &format!("transit/keys/{name}/rotate"),
        serde_json::json!({}),
    )
    .await;
    assert!(s < 300);
    let v2 = k.wrap(&dek, &ctx).await.unwrap();
    assert_eq!(VaultKek::key_version(&v2), Some(2));
    assert!(
        k.unwrap(&v1, &ctx).await.unwrap() == dek,
        "old versions still decrypt"
    );
    let rewrap_path = format!("transit/rewrap/{name}");
    let server_rewraps_before = audited_requests(&rewrap_path);
    let rewrapped = k.rewrap(&v1, &dek, &ctx).await.unwrap();
    assert_eq!(VaultKek::key_version(&rewrapped), Some(2));
    assert!(k.unwrap(&rewrapped, &ctx).await.unwrap() == dek);
    assert_eq!(k.key_info().await.unwrap().latest_version, 2);
    // "Disable" version 1: raise the minimum decryption version.
    let (s, body) = admin(
        reqwest::Method::POST,
        &format!("transit/keys/{name}/config"),
        serde_json::json!({"min_decryption_version": 2}),
    )
    .await;
    assert!(s < 300, "{body}");
    let err = k.unwrap(&v1, &ctx).await.unwrap_err();
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::Disabled), "{err}");
    assert!(k.unwrap(&v2, &ctx).await.unwrap() == dek);

    // Rotation reaches the server-side rewrap (derived keys) through Kek::rewrap, on the KEK
    // instance that opened the message; the other target wraps the verified data key.
    let k: Arc<dyn Kek> = Arc::new(k);
    let msg = Encryptor::new(k.clone())
        .with_context(ctx.clone())
        .encrypt(b"rotated")
        .await
        .unwrap();
    let local: Arc<dyn Kek> = Arc::new(kmseal::LocalKek::generate().unwrap());
    let rot = Rotator::rewrap(Decryptor::new(k.clone()), vec![k.clone(), local.clone()]);
    let Outcome::Rotated(out) = rot.rotate_message(&msg).await.unwrap() else {
        panic!("expected a rotation")
    };
    for kek in [k, local] {
        let pt = Decryptor::new(kek).decrypt(&out).await.unwrap();
        assert_eq!(pt.expose_secret(), b"rotated");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server_rewraps = audited_requests(&rewrap_path) - server_rewraps_before;
    assert_eq!(
        server_rewraps,
        if derived { 2 } else { 0 },
        "transit/rewrap calls (derived: {derived})"
    );
}

#[tokio::test]
async fn a_wrong_token_is_access_denied() {
    let name = new_key(serde_json::json!({})).await;
    let err = kek_with_token(&name, "not-a-token")
        .wrap(&DataKey::generate().unwrap(), &EncryptionContext::new())
        .await
        .unwrap_err();
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::AccessDenied), "{err}");
    assert!(!err.to_string().contains("not-a-token"));
}

#[tokio::test]
async fn an_unreachable_or_hanging_server_fails_within_the_timeout() {
    // Nothing listens: connection refused, retried, then Unavailable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let uri: KeyUri = format!("vault+http://127.0.0.1:{port}/transit/keys/k")
        .parse()
        .unwrap();
    let k = VaultKek::builder(&uri)
        .unwrap()
        .token(TokenSource::Token(
            SecretString::copy_from_str("t").unwrap(),
        ))
        .retries(1)
        .build()
        .unwrap();
    let err = k
        .wrap(&DataKey::generate().unwrap(), &EncryptionContext::new())
        .await
        .unwrap_err();
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::Unavailable), "{err}");

    // Accepts connections and never answers: Timeout after about retries+1 timeouts.
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hang.local_addr().unwrap().port();
    let uri: KeyUri = format!("vault+http://127.0.0.1:{port}/transit/keys/k")
        .parse()
        .unwrap();
    let k = VaultKek::builder(&uri)
        .unwrap()
        .token(TokenSource::Token(
            SecretString::copy_from_str("t").unwrap(),
        ))
        .timeout(Duration::from_millis(500))
        .retries(1)
        .build()
        .unwrap();
    let start = Instant::now();
    let err = k
        .wrap(&DataKey::generate().unwrap(), &EncryptionContext::new())
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::Timeout), "{err}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    drop(hang);
}

#[test]
fn the_blocking_facade_works_without_a_runtime() {
    let name = {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(new_key(serde_json::json!({})))
    };
    kmseal_test_support::conformance::blocking_round_trip(Arc::new(kek(&name)), || {}, || {});
}

/// A fake Kubernetes API server answering TokenReview: `authenticated` only for `good_jwt`.
/// Returns its port and a counter of reviews served.
fn fake_kubernetes_api(good_jwt: String) -> (u16, Arc<std::sync::atomic::AtomicU32>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let reviews = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = reviews.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut line, mut len) = (String::new(), 0usize);
            let _ = reader.read_line(&mut line);
            let is_review = line.contains("/apis/authentication.k8s.io/v1/tokenreviews");
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            let body = String::from_utf8_lossy(&body);
            let ok = is_review && body.contains(&good_jwt);
            counter.fetch_add(u32::from(is_review), std::sync::atomic::Ordering::SeqCst);
            let reply = if ok {
                serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                    "status": {"authenticated": true, "user": {
                        "username": "system:serviceaccount:default:app",
                        "uid": "11111111-2222-3333-4444-555555555555",
                        "groups": ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]}}})
            } else {
                serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                    "status": {"authenticated": false, "error": "invalid token"}})
            }
            .to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (port, reviews)
}

fn service_account_jwt() -> String {
    use base64::Engine;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let header = b64(serde_json::json!({"alg": "RS256", "typ": "JWT"}));
    let claims = b64(serde_json::json!({
        "iss": "kubernetes/serviceaccount",
        "sub": "system:serviceaccount:default:app",
        "kubernetes.io/serviceaccount/namespace": "default",
        "kubernetes.io/serviceaccount/secret.name": "app-token",
        "kubernetes.io/serviceaccount/service-account.name": "app",
        "kubernetes.io/serviceaccount/service-account.uid": "11111111-2222-3333-4444-555555555555"
    }));
    format!("{header}.{claims}.c2lnbmF0dXJl")
}

/// A Kubernetes auth mount on OpenBao (against the fake API server) with a role `app` bound
/// to the service account of [`service_account_jwt`] and a policy of `policy`; returns the
/// mount, a directory holding the service-account token file `token`, and the count of
/// token reviews the fake API server answered.
async fn kubernetes_auth(
    policy: &str,
) -> (
    String,
    std::path::PathBuf,
    Arc<std::sync::atomic::AtomicU32>,
) {
    let jwt = service_account_jwt();
    let (k8s_port, reviews) = fake_kubernetes_api(jwt.clone());
    let mount = unique("k8s");
    let post = reqwest::Method::POST;
    let (s, b) = admin(
        post.clone(),
        &format!("sys/auth/{mount}"),
        serde_json::json!({"type": "kubernetes"}),
    )
    .await;
    assert!(s < 300, "{b}");
    let (s, b) = admin(
        post.clone(),
        &format!("auth/{mount}/config"),
        serde_json::json!({"kubernetes_host": format!("http://127.0.0.1:{k8s_port}"),
                           "disable_local_ca_jwt": true, "token_reviewer_jwt": "reviewer-token",
                           // Parsed only: the fake API is plain http. A throwaway public cert.
                           "kubernetes_ca_cert": include_str!("data/fake-k8s-ca.pem")}),
    )
    .await;
    assert!(s < 300, "{b}");
    let (s, b) = admin(
        post.clone(),
        &format!("sys/policies/acl/{mount}"),
        serde_json::json!({"policy": policy}),
    )
    .await;
    assert!(s < 300, "{b}");
    let (s, b) = admin(
        post.clone(),
        &format!("auth/{mount}/role/app"),
        serde_json::json!({"bound_service_account_names": ["app"], "bound_service_account_namespaces": ["default"],
                           "policies": [mount.clone()], "ttl": "1h"}),
    )
    .await;
    assert!(s < 300, "{b}");
    let dir = std::env::temp_dir().join(unique("sa"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), format!("{jwt}\n")).unwrap();
    (mount, dir, reviews)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_auth_logs_in_and_uses_a_scoped_token() {
    let key = new_key(serde_json::json!({})).await;
    let policy = format!(
        "path \"transit/encrypt/{key}\" {{ capabilities = [\"update\"] }}\n\
         path \"transit/decrypt/{key}\" {{ capabilities = [\"update\"] }}\n\
         path \"transit/keys/{key}\" {{ capabilities = [\"read\"] }}\n"
    );
    let (mount, dir, reviews) = kubernetes_auth(&policy).await;
    let jwt_path = dir.join("token");
    let (addr, _) = server();
    let uri: KeyUri = format!("vault+http://{addr}/transit/keys/{key}")
        .parse()
        .unwrap();
    let build = |role: &str, path: &std::path::Path| {
        VaultKek::builder(&uri)
            .unwrap()
            .token(TokenSource::Kubernetes {
                role: role.into(),
                mount: mount.clone(),
                jwt_path: path.into(),
            })
            .build()
            .unwrap()
    };
    let k = build("app", &jwt_path);
    let ctx = EncryptionContext::new().with("pod", "app").unwrap();
    let dek = DataKey::generate().unwrap();
    let w = k
        .wrap(&dek, &ctx)
        .await
        .unwrap_or_else(|e| panic!("wrap with Kubernetes auth: {e}"));
    assert!(k.unwrap(&w, &ctx).await.unwrap() == dek);
    assert_eq!(
        reviews.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one login, token reused"
    );

    // The scoped token cannot use another key: access denied (after one re-login attempt).
    let other = new_key(serde_json::json!({})).await;
    let other_uri: KeyUri = format!("vault+http://{addr}/transit/keys/{other}")
        .parse()
        .unwrap();
    let k_other = VaultKek::builder(&other_uri)
        .unwrap()
        .token(TokenSource::Kubernetes {
            role: "app".into(),
            mount: mount.clone(),
            jwt_path: jwt_path.clone(),
        })
        .build()
        .unwrap();
    let err = k_other.wrap(&dek, &ctx).await.unwrap_err();
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::AccessDenied), "{err}");

    // A token the cluster rejects, and a role that does not exist: clear login errors.
    let bad_path = dir.join("bad");
    std::fs::write(
        &bad_path,
        service_account_jwt().replace("c2lnbmF0dXJl", "b3RoZXI"),
    )
    .unwrap();
    let err = build("app", &bad_path).wrap(&dek, &ctx).await.unwrap_err();
    assert!(err.to_string().contains("Kubernetes login"), "{err}");
    let err = build("no-such-role", &jwt_path)
        .wrap(&dek, &ctx)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Kubernetes login"), "{err}");
    let err = build("app", &dir.join("missing"))
        .wrap(&dek, &ctx)
        .await
        .unwrap_err();
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::AccessDenied), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_injected_by_a_proxy_are_retried_bounded_and_never_give_a_wrong_key() {
    use kmseal_test_support::fault_proxy::{FaultProxy, run_scenarios};
    let name = new_key(serde_json::json!({})).await;
    let (addr, token) = server();
    let proxy = FaultProxy::start(addr.parse().unwrap()).await;
    let uri: KeyUri = format!("vault+http://{}/transit/keys/{name}", proxy.addr())
        .parse()
        .unwrap();
    run_scenarios(
        &proxy,
        |timeout, retries| {
            let (uri, token) = (uri.clone(), token.clone());
            async move {
                Arc::new(
                    VaultKek::builder(&uri)
                        .unwrap()
                        .token(TokenSource::Token(
                            SecretString::copy_from_str(&token).unwrap(),
                        ))
                        .timeout(timeout)
                        .retries(retries)
                        .build()
                        .unwrap(),
                ) as Arc<dyn Kek>
            }
        },
        true,
    )
    .await;
}

/// Requests OpenBao's audit log recorded for `path` (its own count, not ours).
fn audited_requests(path: &str) -> usize {
    audited(path, None)
}

/// Requests OpenBao's audit log recorded for `path` with `operation` (`read`, `update`), or
/// any operation.
fn audited(path: &str, operation: Option<&str>) -> usize {
    let log = std::env::var("KMSEAL_TEST_VAULT_AUDIT")
        .expect("KMSEAL_TEST_VAULT_AUDIT is not set: run scripts/test");
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "request" && v["request"]["path"] == path)
        .filter(|v| operation.is_none_or(|op| v["request"]["operation"] == op))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_decrypts_through_the_cache_cost_one_unwrap_per_data_key() {
    let name = new_key(serde_json::json!({})).await;
    let path = format!("transit/decrypt/{name}");
    kmseal_test_support::conformance::cached_concurrent_decrypts(Arc::new(kek(&name)), || {
        audited_requests(&path)
    })
    .await;
}
