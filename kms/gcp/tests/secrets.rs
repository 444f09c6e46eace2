//! Google Secret Manager against the in-test stand-in (`fake_gcp`): the documented REST/JSON
//! protocol with CRC32C on payloads. No Secret Manager emulator exists.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kmseal::StoreErrorKind;
use kmseal::store::{SecretRef, SecretStore};
use kmseal_gcp::GcpSecretsStore;
use kmseal_test_support::fake_gcp::{FakeKms, Fault};
use kmseal_test_support::store_conformance::{self, StoreFixture};

fn reference(text: &str) -> SecretRef {
    text.parse().unwrap()
}

fn unique(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{name}-{}", N.fetch_add(1, Ordering::Relaxed))
}

async fn store_at(endpoint: String, retries: u32, timeout: Duration) -> GcpSecretsStore {
    GcpSecretsStore::builder(&reference("gcp-sm://projects/p/secrets/x"))
        .unwrap()
        .endpoint(endpoint)
        .dangerous_anonymous_credentials()
        .retries(retries)
        .timeout(timeout)
        .build()
        .await
        .unwrap()
}

async fn store(fake: &FakeKms) -> GcpSecretsStore {
    store_at(fake.endpoint(), 3, Duration::from_secs(5)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite_on_the_stand_in() {
    let fake = FakeKms::start().await;
    let refused = FakeKms::start().await;
    refused.deny_all();
    let counting = fake.clone();
    store_conformance::run(&StoreFixture {
        store: Arc::new(store(&fake).await),
        fresh: Box::new(|| reference(&format!("gcp-sm://projects/p/secrets/{}", unique("suite")))),
        denied: Arc::new(store(&refused).await),
        server_reads: Box::new(move |r| counting.accesses(r.body()) as usize),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_checksum_mismatches_are_retried_then_reported_as_integrity_errors() {
    let fake = FakeKms::start().await;
    let s = store_at(fake.endpoint(), 2, Duration::from_secs(5)).await;
    let r = reference("gcp-sm://projects/p/secrets/crc");
    s.put(&r, b"checked").await.unwrap();
    fake.set_fault(Fault::CorruptChecksum, 1);
    assert_eq!(s.get(&r).await.unwrap().value.expose_secret(), b"checked");
    fake.set_fault(Fault::CorruptChecksum, 100);
    let before = fake.requests.load(Ordering::SeqCst);
    let e = s.get(&r).await.unwrap_err();
    assert_eq!(e.store_kind(), Some(StoreErrorKind::Integrity), "{e}");
    assert_eq!(
        fake.requests.load(Ordering::SeqCst) - before,
        3,
        "retries + 1 attempts"
    );
    assert!(!e.to_string().contains("checked"), "{e}");
    fake.set_fault(Fault::None, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_by_number_latest_and_disabled_ones() {
    let fake = FakeKms::start().await;
    let s = store(&fake).await;
    let r = reference("gcp-sm://projects/p/secrets/jwt");
    for n in 1..=3 {
        let v = s.put(&r, format!("v{n}").as_bytes()).await.unwrap();
        assert_eq!(v.id, n.to_string());
    }
    fake.set_version_state("projects/p/secrets/jwt", 3, "DISABLED");
    // `latest` is the newest enabled version.
    let latest = s.get(&r).await.unwrap();
    assert_eq!(
        (latest.version.id.as_str(), latest.value.expose_secret()),
        ("2", &b"v2"[..])
    );
    assert_eq!(latest.version.stages, ["latest"]);
    let by_path = s
        .get(&reference("gcp-sm://projects/p/secrets/jwt/versions/1"))
        .await
        .unwrap();
    assert_eq!(by_path.value.expose_secret(), b"v1");
    let e = s
        .get(&reference("gcp-sm://projects/p/secrets/jwt?version=3"))
        .await
        .unwrap_err();
    assert_eq!(e.store_kind(), Some(StoreErrorKind::NotFound), "{e}");
    assert!(e.to_string().contains("DISABLED"), "{e}");
    let versions = s.versions(&r).await.unwrap();
    let summary: Vec<(&str, bool)> = versions
        .iter()
        .map(|v| (v.id.as_str(), v.disabled))
        .collect();
    assert_eq!(summary, [("3", true), ("2", false), ("1", false)]);
    assert_eq!(versions[1].stages, ["latest"]);
    assert!(versions.iter().all(|v| v.created.is_some()));
    // Another project is another store.
    assert!(!s.serves(&reference("gcp-sm://projects/q/secrets/jwt")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_injected_by_a_proxy_are_retried_bounded_and_never_give_a_wrong_value() {
    use kmseal_test_support::fault_proxy::{FaultProxy, run_store_scenarios};
    let fake = FakeKms::start().await;
    let upstream = fake
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(upstream).await;
    let via = format!("http://{}", proxy.addr());
    run_store_scenarios(
        &proxy,
        |timeout, retries| {
            let via = via.clone();
            async move { Arc::new(store_at(via, retries, timeout).await) as Arc<dyn SecretStore> }
        },
        &reference("gcp-sm://projects/p/secrets/faults"),
        true,
    )
    .await;
}
