//! Azure Key Vault against an in-test stand-in that speaks the documented protocol over HTTPS
//! (certificate chain made in the test, trusted by the client's reqwest transport), with the
//! bearer challenge, base64url values, real RSA-OAEP-256 and A256KW, key versions and faults.
//! No Key Vault emulator exists; this server is what the official client talks to here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use kmseal::{DataKey, EncryptionContext, Kek, KeyUri, KmsErrorKind};
use kmseal_azure::{AzureKek, WrapAlgorithm};
use kmseal_test_support::fake_azure::{FakeCredential, FakeVault, Fault, TENANT};

const HOST: &str = "kmseal-test.vault.azure.net";

async fn kek_for(
    fake: &FakeVault,
    uri: &str,
    cred: Arc<dyn TokenCredential>,
    retries: u32,
    timeout: Duration,
) -> AzureKek {
    let uri: KeyUri = uri.parse().unwrap();
    AzureKek::builder(&uri)
        .unwrap()
        .credential(cred)
        .add_root_certificate_pem(fake.ca_pem())
        .connect_to("127.0.0.1".parse().unwrap())
        .retries(retries)
        .timeout(timeout)
        .build()
        .await
        .unwrap()
}

async fn kek(fake: &FakeVault, name: &str) -> AzureKek {
    let cred = Arc::new(FakeCredential::new(fake));
    kek_for(fake, &fake.uri(name), cred, 3, Duration::from_secs(10)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_with_rsa_oaep_256() {
    let fake = FakeVault::start(HOST).await;
    fake.create_rsa_key("a");
    fake.create_rsa_key("b");
    let (a, b) = (kek(&fake, "a").await, kek(&fake, "b").await);
    kmseal_test_support::conformance::run(Arc::new(a), Arc::new(b)).await;
    // `b` never reaches the server (the suite's checks with it are refused locally); `a` met
    // the bearer challenge once, then reused its token.
    assert_eq!(fake.challenges.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_with_managed_hsm_a256kw() {
    let fake = FakeVault::start(HOST).await;
    fake.create_oct_key("a");
    fake.create_oct_key("b");
    let (a, b) = (kek(&fake, "a").await, kek(&fake, "b").await);
    let w = a
        .wrap(&DataKey::generate().unwrap(), &EncryptionContext::new())
        .await
        .unwrap();
    assert_eq!(w.ciphertext.len(), 1 + 40, "tag + RFC 3394 output");
    assert!(
        format!("{a:?}").contains("A256Kw"),
        "learned from the key type"
    );
    kmseal_test_support::conformance::run(Arc::new(a), Arc::new(b)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_key_encrypted_by_another_tool_opens_with_unwrap_foreign() {
    let fake = FakeVault::start(HOST).await;
    let v1 = fake.create_rsa_key("a");
    fake.create_rsa_key("b");
    let (a, b) = (kek(&fake, "a").await, kek(&fake, "b").await);
    let dek = DataKey::generate().unwrap();
    // What SOPS's azure_kv entries hold: Key Vault `encrypt` with RSA-OAEP-256, no tag.
    let host = format!("{HOST}:{}", fake.port());
    let foreign = kmseal::WrappedKey {
        provider: "azure-kv".into(),
        key_id: format!("{host}/keys/a/{v1}"),
        ciphertext: fake.encrypt("a", &v1, "RSA-OAEP-256", dek.expose_secret()),
    };
    kmseal_test_support::conformance::foreign_unwrap(&a, &b, &foreign, &dek).await;
    // After a rotation the entry's version is still the one asked.
    fake.create_rsa_key("a");
    assert!(a.unwrap_foreign(&foreign).await.unwrap() == dek);
    // A key id without a version is not claimed.
    let versionless = kmseal::WrappedKey {
        key_id: format!("{host}/keys/a"),
        ..foreign
    };
    let err = a.unwrap_foreign(&versionless).await.unwrap_err();
    assert_eq!(
        err.kms_kind(),
        Some(KmsErrorKind::InvalidCiphertext),
        "{err}"
    );
}

#[tokio::test]
async fn the_wrapping_version_is_recorded_and_used_after_rotation() {
    let fake = FakeVault::start(HOST).await;
    let v1 = fake.create_rsa_key("k");
    let k = kek(&fake, "k").await;
    let ctx = EncryptionContext::new().with("app", "rotation").unwrap();
    let dek = DataKey::generate().unwrap();
    let w1 = k.wrap(&dek, &ctx).await.unwrap();
    assert!(
        w1.key_id.ends_with(&format!("/keys/k/{v1}")),
        "{}",
        w1.key_id
    );
    let v2 = fake.create_rsa_key("k");
    let w2 = k.wrap(&dek, &ctx).await.unwrap();
    assert!(
        w2.key_id.ends_with(&format!("/keys/k/{v2}")),
        "{}",
        w2.key_id
    );
    // Both unwrap: each with the version that wrapped it (v1's key material differs from v2's).
    assert!(k.unwrap(&w1, &ctx).await.unwrap() == dek);
    assert!(k.unwrap(&w2, &ctx).await.unwrap() == dek);

    // A URI pinned to v1 keeps wrapping with v1, and does not claim v2's wrapped keys.
    let pinned = kek_for(
        &fake,
        &format!("{}/{v1}", fake.uri("k")),
        Arc::new(FakeCredential::new(&fake)),
        0,
        Duration::from_secs(10),
    )
    .await;
    let w3 = pinned.wrap(&dek, &ctx).await.unwrap();
    assert!(w3.key_id.ends_with(&v1));
    assert!(pinned.matches(&w1) && !pinned.matches(&w2));
    let err = pinned.unwrap(&w2, &ctx).await.unwrap_err();
    assert_eq!(
        err.kms_kind(),
        Some(KmsErrorKind::InvalidCiphertext),
        "{err}"
    );
    // Another key's wrapped key is not ours either.
    fake.create_rsa_key("other");
    let other = kek(&fake, "other").await;
    assert!(!k.matches(&other.wrap(&dek, &ctx).await.unwrap()));
}

#[tokio::test]
async fn tampered_wrapped_keys_are_refused() {
    let fake = FakeVault::start(HOST).await;
    fake.create_rsa_key("k");
    let k = kek(&fake, "k").await;
    let ctx = EncryptionContext::new();
    let w = k.wrap(&DataKey::generate().unwrap(), &ctx).await.unwrap();
    for i in [1, 100, w.ciphertext.len() - 1] {
        let mut bad = w.clone();
        bad.ciphertext[i] ^= 0x40;
        let err = k.unwrap(&bad, &ctx).await.unwrap_err();
        assert_eq!(
            err.kms_kind(),
            Some(KmsErrorKind::InvalidCiphertext),
            "{err}"
        );
    }
    let mut bad = w.clone();
    bad.ciphertext[0] = 9;
    assert!(
        k.unwrap(&bad, &ctx)
            .await
            .unwrap_err()
            .to_string()
            .contains("tag")
    );
    let mut bad = w.clone();
    bad.ciphertext[0] = 2; // claims A256KW for an RSA key
    let err = k.unwrap(&bad, &ctx).await.unwrap_err();
    assert_eq!(
        err.kms_kind(),
        Some(KmsErrorKind::InvalidCiphertext),
        "{err}"
    );
    let mut bad = w;
    bad.ciphertext.truncate(1);
    assert!(k.unwrap(&bad, &ctx).await.is_err());
}

#[tokio::test]
async fn throttling_and_unavailability_are_retried_with_backoff() {
    let fake = FakeVault::start(HOST).await;
    fake.create_rsa_key("k");
    let k = kek(&fake, "k").await;
    let ctx = EncryptionContext::new();
    let dek = DataKey::generate().unwrap();
    let w = k.wrap(&dek, &ctx).await.unwrap(); // learns the algorithm, authenticates
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
    let before = fake.requests.load(Ordering::SeqCst);
    let err = k.unwrap(&w, &ctx).await.unwrap_err();
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::Throttled), "{err}");
    assert_eq!(
        fake.requests.load(Ordering::SeqCst) - before,
        4,
        "1 + 3 retries"
    );
    fake.set_fault(Fault::Status(503), 100);
    let err = k.wrap(&dek, &ctx).await.unwrap_err();
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::Unavailable), "{err}");
    fake.set_fault(Fault::None, 0);
}

#[tokio::test]
async fn an_expired_token_is_replaced_and_a_refused_credential_is_access_denied() {
    let fake = FakeVault::start(HOST).await;
    fake.create_rsa_key("k");
    let cred = FakeCredential::new(&fake);
    let k = kek_for(
        &fake,
        &fake.uri("k"),
        Arc::new(cred.clone()),
        0,
        Duration::from_secs(10),
    )
    .await;
    let ctx = EncryptionContext::new();
    let dek = DataKey::generate().unwrap();
    let w = k.wrap(&dek, &ctx).await.unwrap();
    let calls = cred.calls.load(Ordering::SeqCst);
    let challenges = fake.challenges.load(Ordering::SeqCst);
    // The server stops accepting the token the client still holds: one 401, a new token,
    // the same request again, success (no retry budget needed: retries are 0 here).
    fake.expire_tokens();
    assert!(k.unwrap(&w, &ctx).await.unwrap() == dek);
    assert_eq!(
        cred.calls.load(Ordering::SeqCst),
        calls + 1,
        "one new token"
    );
    assert_eq!(fake.challenges.load(Ordering::SeqCst), challenges + 1);

    // A credential whose tokens the vault never accepts: access denied, not a retry loop.
    #[derive(Debug)]
    struct Forged;
    #[async_trait::async_trait]
    impl TokenCredential for Forged {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            Ok(azure_core::credentials::AccessToken::new(
                azure_core::credentials::Secret::new("forged"),
                azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
            ))
        }
    }
    let forged = kek_for(
        &fake,
        &fake.uri("k"),
        Arc::new(Forged),
        3,
        Duration::from_secs(10),
    )
    .await;
    let err = forged.unwrap(&w, &ctx).await.unwrap_err();
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::AccessDenied), "{err}");
}

#[tokio::test]
async fn workload_identity_through_the_token_endpoint() {
    use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
    use azure_core::http::{ClientOptions, Transport};
    use azure_identity::{
        ClientAssertionCredentialOptions, WorkloadIdentityCredential,
        WorkloadIdentityCredentialOptions,
    };

    let fake = FakeVault::start(HOST).await;
    fake.create_rsa_key("k");
    let dir = std::env::temp_dir().join(format!("kmseal-azure-wi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, "projected-service-account-jwt").unwrap();

    let credential = |assertion_ok: bool| {
        fake.accept_assertion(if assertion_ok {
            "projected-service-account-jwt"
        } else {
            "something-else"
        });
        let http = reqwest::Client::builder()
            .tls_certs_merge([reqwest::Certificate::from_pem(fake.ca_pem().as_bytes()).unwrap()])
            .build()
            .unwrap();
        let mut custom = CustomConfiguration::default();
        custom.authority_host = fake.authority_host();
        WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                client_options: ClientOptions {
                    transport: Some(Transport::new(Arc::new(http))),
                    cloud: Some(Arc::new(CloudConfiguration::Custom(custom))),
                    ..Default::default()
                },
            },
            client_id: Some("11111111-2222-3333-4444-555555555555".into()),
            tenant_id: Some(TENANT.into()),
            token_file_path: Some(token_file.clone()),
        }))
        .unwrap()
    };
    let k = kek_for(
        &fake,
        &fake.uri("k"),
        credential(true),
        0,
        Duration::from_secs(10),
    )
    .await;
    let ctx = EncryptionContext::new();
    let dek = DataKey::generate().unwrap();
    let w = k.wrap(&dek, &ctx).await.unwrap();
    assert!(k.unwrap(&w, &ctx).await.unwrap() == dek);
    assert_eq!(
        fake.tokens_issued.load(Ordering::SeqCst),
        1,
        "one token, cached"
    );

    let refused = kek_for(
        &fake,
        &fake.uri("k"),
        credential(false),
        0,
        Duration::from_secs(10),
    )
    .await;
    let err = refused.unwrap(&w, &ctx).await.unwrap_err();
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::AccessDenied), "{err}");
    assert!(err.to_string().contains("AADSTS700024"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn unknown_disabled_and_unreachable_keys() {
    let fake = FakeVault::start(HOST).await;
    let ctx = EncryptionContext::new();
    let dek = DataKey::generate().unwrap();
    let missing = kek(&fake, "missing").await;
    let err = missing.wrap(&dek, &ctx).await.unwrap_err();
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::NotFound), "{err}");

    fake.create_rsa_key("k");
    let k = kek(&fake, "k").await;
    let w = k.wrap(&dek, &ctx).await.unwrap();
    fake.set_enabled("k", false);
    let err = k.unwrap(&w, &ctx).await.unwrap_err();
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::Disabled), "{err}");
    fake.set_enabled("k", true);

    fake.set_fault(Fault::Hang, 100);
    let hung = kek_for(
        &fake,
        &fake.uri("k"),
        Arc::new(FakeCredential::new(&fake)),
        1,
        Duration::from_millis(500),
    )
    .await;
    let start = Instant::now();
    let err = hung.unwrap(&w, &ctx).await.unwrap_err();
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::Timeout), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    fake.set_fault(Fault::None, 0);

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let gone = kek_for(
        &fake,
        &format!("azure-kv://{HOST}:{port}/keys/k"),
        Arc::new(FakeCredential::new(&fake)),
        0,
        Duration::from_secs(5),
    )
    .await;
    let err = gone.wrap(&dek, &ctx).await.unwrap_err();
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::Unavailable), "{err}");

    // Without the test root the certificate is not trusted: no request is made.
    let uri: KeyUri = fake.uri("k").parse().unwrap();
    let untrusted = AzureKek::builder(&uri)
        .unwrap()
        .credential(Arc::new(FakeCredential::new(&fake)))
        .connect_to("127.0.0.1".parse().unwrap())
        .algorithm(WrapAlgorithm::RsaOaep256)
        .retries(0)
        .build()
        .await
        .unwrap();
    let before = fake.requests.load(Ordering::SeqCst);
    assert!(untrusted.wrap(&dek, &ctx).await.is_err());
    assert_eq!(fake.requests.load(Ordering::SeqCst), before);
}

#[test]
fn works_from_the_blocking_facade_without_a_runtime() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeVault::start(HOST));
    fake.create_rsa_key("k");
    let k: Arc<dyn Kek> = Arc::new(
        kmseal::blocking::block_on(async {
            let uri: KeyUri = fake.uri("k").parse().unwrap();
            AzureKek::builder(&uri)
                .unwrap()
                .credential(Arc::new(FakeCredential::new(&fake)))
                .add_root_certificate_pem(fake.ca_pem())
                .connect_to("127.0.0.1".parse().unwrap())
                .build()
                .await
        })
        .unwrap(),
    );
    kmseal_test_support::conformance::blocking_round_trip(
        k,
        || fake.set_fault(Fault::Status(503), 1),
        || fake.set_fault(Fault::Status(429), 1),
    );
    drop(rt);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_injected_by_a_proxy_are_retried_bounded_and_never_give_a_wrong_key() {
    use kmseal_test_support::fault_proxy::{FaultProxy, run_scenarios};
    let fake = FakeVault::start(HOST).await;
    fake.create_rsa_key("k");
    let proxy = FaultProxy::start(format!("127.0.0.1:{}", fake.port()).parse().unwrap()).await;
    // TLS passes through the proxy untouched: delays, drops and hangs (status faults are the
    // stand-in's own, tested above).
    let uri = format!("azure-kv://{HOST}:{}/keys/k", proxy.addr().port());
    run_scenarios(
        &proxy,
        |timeout, retries| {
            let (fake, uri) = (fake.clone(), uri.clone());
            async move {
                Arc::new(
                    kek_for(
                        &fake,
                        &uri,
                        Arc::new(FakeCredential::new(&fake)),
                        retries,
                        timeout,
                    )
                    .await,
                ) as Arc<dyn Kek>
            }
        },
        false,
    )
    .await;
}
