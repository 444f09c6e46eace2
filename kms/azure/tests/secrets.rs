//! Azure Key Vault secrets against the in-test HTTPS stand-in (`fake_azure`): the bearer
//! challenge, the documented secret bundles and error bodies, `nextLink` paging, disabled
//! versions. No Key Vault emulator exists.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kmseal::StoreErrorKind;
use kmseal::store::{SecretRef, SecretStore};
use kmseal_azure::AzureSecretsStore;
use kmseal_test_support::fake_azure::{FakeCredential, FakeVault, Fault};
use kmseal_test_support::store_conformance::{self, StoreFixture};

const HOST: &str = "kmseal-test.vault.azure.net";

fn reference(text: &str) -> SecretRef {
    text.parse().unwrap()
}

fn unique(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{name}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// A store for the vault at `port` (the stand-in's, or a proxy's in front of it).
fn store_at(fake: &FakeVault, port: u16, retries: u32, timeout: Duration) -> AzureSecretsStore {
    AzureSecretsStore::builder(&reference(&format!("azure-secret://{HOST}:{port}/x")))
        .unwrap()
        .credential(Arc::new(FakeCredential::new(fake)))
        .add_root_certificate_pem(fake.ca_pem())
        .connect_to("127.0.0.1".parse().unwrap())
        .retries(retries)
        .timeout(timeout)
        .build()
        .unwrap()
}

fn store(fake: &FakeVault) -> AzureSecretsStore {
    store_at(fake, fake.port(), 3, Duration::from_secs(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite_on_the_stand_in() {
    let fake = FakeVault::start(HOST).await;
    let refused = FakeVault::start(HOST).await;
    refused.deny_all();
    let (f, counting) = (fake.clone(), fake.clone());
    store_conformance::run(&StoreFixture {
        store: Arc::new(store(&fake)),
        fresh: Box::new(move || reference(&f.secret_uri(&unique("suite")))),
        // A vault that refuses the caller (the store reads by name from its own endpoint).
        denied: Arc::new(store_at(
            &refused,
            refused.port(),
            3,
            Duration::from_secs(5),
        )),
        server_reads: Box::new(move |r| {
            let name = r.body().rsplit('/').next().unwrap();
            counting.secret_reads(name) as usize
        }),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_page_through_next_links_and_disabled_versions_are_marked() {
    let fake = FakeVault::start(HOST).await;
    let s = store(&fake);
    let r = reference(&fake.secret_uri("jwt"));
    let mut ids = Vec::new();
    for n in 1..=3 {
        ids.push(s.put(&r, format!("v{n}").as_bytes()).await.unwrap().id);
        tokio::time::sleep(Duration::from_millis(1100)).await; // distinct creation seconds
    }
    fake.set_secret_version_enabled("jwt", 3, false);
    let versions = s.versions(&r).await.unwrap();
    assert_eq!(versions.len(), 3, "three versions over two pages");
    assert_eq!(versions[0].id, ids[2]);
    assert!(versions[0].disabled);
    assert_eq!(versions[1].stages, ["current"]);
    // A disabled version cannot be read; an older one can, by id.
    let e = s
        .get(&reference(&format!(
            "{}/{}",
            fake.secret_uri("jwt"),
            ids[2]
        )))
        .await
        .unwrap_err();
    assert!(
        e.store_kind().is_some() && e.to_string().contains("disabled"),
        "{e}"
    );
    let old = s
        .get(&reference(&format!(
            "{}?version={}",
            fake.secret_uri("jwt"),
            ids[0]
        )))
        .await
        .unwrap();
    assert_eq!(old.value.expose_secret(), b"v1");
    assert!(old.version.created.is_some());
    // Another vault is another store.
    assert!(!s.serves(&reference("azure-secret://other.vault.azure.net/jwt")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_outages_are_retried_and_persistent_ones_typed() {
    let fake = FakeVault::start(HOST).await;
    let s = store_at(&fake, fake.port(), 2, Duration::from_secs(5));
    let r = reference(&fake.secret_uri("retry"));
    s.put(&r, b"value").await.unwrap();
    for status in [429, 503] {
        fake.set_fault(Fault::Status(status), 2);
        assert_eq!(s.get(&r).await.unwrap().value.expose_secret(), b"value");
    }
    fake.set_fault(Fault::Status(429), 100);
    let e = s.get(&r).await.unwrap_err();
    assert_eq!(e.store_kind(), Some(StoreErrorKind::Throttled), "{e}");
    fake.set_fault(Fault::None, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_injected_by_a_proxy_are_retried_bounded_and_never_give_a_wrong_value() {
    use kmseal_test_support::fault_proxy::{FaultProxy, run_store_scenarios};
    let fake = FakeVault::start(HOST).await;
    let proxy = FaultProxy::start(format!("127.0.0.1:{}", fake.port()).parse().unwrap()).await;
    let port = proxy.addr().port();
    // TLS passes through the proxy untouched: delays, drops and hangs.
    run_store_scenarios(
        &proxy,
        |timeout, retries| {
            let fake = fake.clone();
            async move { Arc::new(store_at(&fake, port, retries, timeout)) as Arc<dyn SecretStore> }
        },
        &reference(&format!("azure-secret://{HOST}:{port}/faults")),
        false,
    )
    .await;
}
