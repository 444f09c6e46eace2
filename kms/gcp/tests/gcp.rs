//! Google Cloud KMS against an in-test stand-in that speaks the documented REST/JSON protocol
//! (`POST /v1/{name}:encrypt|:decrypt`, camelCase fields, base64 bytes, CRC32C values as
//! decimal strings, `{"error": {code, message, status}}` bodies) with real AES-256-GCM inside.
//! No Cloud KMS emulator exists; this server is what the official client talks to here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kmseal::{DataKey, EncryptionContext, Kek, KeyUri, KmsErrorKind};
use kmseal_gcp::GcpKek;
use kmseal_test_support::fake_gcp::{FakeKms, Fault};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_the_stand_in() {
    let fake = FakeKms::start().await;
    fake.create_key(KEY_A);
    fake.create_key(KEY_B);
    let a = kek(&fake, KEY_A, 3, Duration::from_secs(5)).await;
    let b = kek(&fake, KEY_B, 3, Duration::from_secs(5)).await;
    kmseal_test_support::conformance::run(Arc::new(a), Arc::new(b)).await;
}

#[tokio::test]
async fn a_data_key_encrypted_without_aad_by_another_tool_opens_with_unwrap_foreign() {
    let fake = FakeKms::start().await;
    fake.create_key(KEY_A);
    fake.create_key(KEY_B);
    let a = kek(&fake, KEY_A, 0, Duration::from_secs(5)).await;
    let b = kek(&fake, KEY_B, 0, Duration::from_secs(5)).await;
    let dek = DataKey::generate().unwrap();
    // What SOPS's gcp_kms entries hold: Cloud KMS encrypt of the raw key, no AAD.
    let foreign = kmseal::WrappedKey {
        provider: "gcp-kms".into(),
        key_id: KEY_A.into(),
        ciphertext: fake.encrypt(KEY_A, dek.expose_secret(), None),
    };
    kmseal_test_support::conformance::foreign_unwrap(&a, &b, &foreign, &dek).await;
    // Cloud KMS treats absent AAD as empty: explicitly empty AAD opens the same way.
    let empty = kmseal::WrappedKey {
        ciphertext: fake.encrypt(KEY_A, dek.expose_secret(), Some(b"")),
        ..foreign.clone()
    };
    assert!(a.unwrap_foreign(&empty).await.unwrap() == dek);
    // Any AAD at all (here the bytes of an empty kmseal context) and it does not.
    let with_aad = kmseal::WrappedKey {
        ciphertext: fake.encrypt(KEY_A, dek.expose_secret(), Some(&[0, 0])),
        ..foreign
    };
    let err = a.unwrap_foreign(&with_aad).await.unwrap_err();
    assert_eq!(
        err.kms_kind(),
        Some(KmsErrorKind::InvalidCiphertext),
        "{err}"
    );
    assert!(
        a.unwrap(&with_aad, &EncryptionContext::new())
            .await
            .unwrap()
            == dek
    );
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
        assert_eq!(err.kms_kind(), Some(KmsErrorKind::Integrity), "{op}: {err}");
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
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::Throttled), "{err}");
    fake.set_fault(Fault::Status(503), 100);
    let err = k.wrap(&dek, &ctx).await.unwrap_err();
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::Unavailable), "{err}");
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
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::NotFound), "{err}");

    fake.create_key(KEY_A);
    fake.set_fault(Fault::Hang, 100);
    let start = Instant::now();
    let err = k
        .wrap(&DataKey::generate().unwrap(), &EncryptionContext::new())
        .await
        .unwrap_err();
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::Timeout), "{err}");
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
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::Unavailable), "{err}");
}

#[test]
fn retries_work_from_the_blocking_facade_without_a_runtime() {
    // The stand-in runs on its own runtime; the caller below has none (kmseal's block_on).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeKms::start());
    fake.create_key(KEY_A);
    let k: Arc<dyn Kek> = Arc::new(
        kmseal::blocking::block_on(async {
            let uri: KeyUri = format!("gcp-kms://{KEY_A}").parse().unwrap();
            GcpKek::builder(&uri)
                .unwrap()
                .endpoint(fake.endpoint())
                .dangerous_anonymous_credentials()
                .build()
                .await
        })
        .unwrap(),
    );
    kmseal_test_support::conformance::blocking_round_trip(
        k,
        || fake.set_fault(Fault::Status(503), 1),
        || fake.set_fault(Fault::CorruptChecksum, 1),
    );
    drop(rt);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_injected_by_a_proxy_are_retried_bounded_and_never_give_a_wrong_key() {
    use kmseal_test_support::fault_proxy::{FaultProxy, run_scenarios};
    let fake = FakeKms::start().await;
    fake.create_key(KEY_A);
    let upstream = fake
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(upstream).await;
    let endpoint = format!("http://{}", proxy.addr());
    run_scenarios(
        &proxy,
        |timeout, retries| {
            let endpoint = endpoint.clone();
            async move {
                let uri: KeyUri = format!("gcp-kms://{KEY_A}").parse().unwrap();
                Arc::new(
                    GcpKek::builder(&uri)
                        .unwrap()
                        .endpoint(endpoint)
                        .dangerous_anonymous_credentials()
                        .retries(retries)
                        .timeout(timeout)
                        .build()
                        .await
                        .unwrap(),
                ) as Arc<dyn Kek>
            }
        },
        true,
    )
    .await;
}
