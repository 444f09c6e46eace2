//! AWS Secrets Manager on the same moto server: values, stages, versions, errors, and the
//! resolver's single flight counted by moto's request recording.

use std::sync::Arc;
use std::time::Duration;

use kmseal::store::{SecretRef, SecretStore};
use kmseal::{Error, StoreErrorKind};
use kmseal_aws::AwsSecretsStore;
use kmseal_test_support::store_conformance::{self, StoreFixture};

use super::{endpoint, recorded};

fn reference(text: &str) -> SecretRef {
    text.parse().unwrap()
}

fn unique(name: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("kmseal/{name}-{}-{n}", std::process::id())
}

/// A store for names in us-east-1 at `url`.
async fn store_at(url: String) -> AwsSecretsStore {
    AwsSecretsStore::builder(&reference("aws-sm://any-name"))
        .unwrap()
        .region("us-east-1")
        .endpoint_url(url)
        .static_credentials("testing", "testing")
        .timeout(Duration::from_secs(5))
        .retries(1)
        .build()
        .await
        .unwrap()
}

async fn store() -> AwsSecretsStore {
    store_at(endpoint()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_creates_a_secret_then_stages_and_versions_select_values() {
    let s = store().await;
    let name = unique("db");
    let whole = reference(&format!("aws-sm://{name}"));
    let v1 = s.put(&whole, br#"{"password": "one"}"#).await.unwrap();
    assert_eq!(v1.stages, ["AWSCURRENT"]);
    let v2 = s.put(&whole, br#"{"password": "two"}"#).await.unwrap();
    assert_ne!(v1.id, v2.id);

    let current = s.get(&whole).await.unwrap();
    assert_eq!(current.version.id, v2.id);
    assert!(current.version.stages.contains(&"AWSCURRENT".to_owned()));
    assert!(current.version.created.is_some());
    let previous = reference(&format!("aws-sm://{name}?stage=AWSPREVIOUS#password"));
    let got = s.get(&previous).await.unwrap();
    assert_eq!(previous.select(&got).unwrap().expose_secret(), b"one");
    let by_id = reference(&format!("aws-sm://{name}?version={}#password", v1.id));
    let got = s.get(&by_id).await.unwrap();
    assert_eq!(by_id.select(&got).unwrap().expose_secret(), b"one");

    let versions = s.versions(&whole).await.unwrap();
    assert_eq!(versions.len(), 2);
    let stages_of = |id: &str| {
        versions
            .iter()
            .find(|v| v.id == id)
            .map(|v| v.stages.clone())
            .unwrap()
    };
    assert!(stages_of(&v2.id).contains(&"AWSCURRENT".to_owned()));
    assert!(stages_of(&v1.id).contains(&"AWSPREVIOUS".to_owned()));

    // Binary values round trip as binary.
    let bin = reference(&format!("aws-sm://{}", unique("bin")));
    s.put(&bin, &[0xff, 0x00, 0xfe]).await.unwrap();
    assert_eq!(
        s.get(&bin).await.unwrap().value.expose_secret(),
        [0xff, 0x00, 0xfe]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_serves_names_and_arns_of_its_region_only() {
    let s = store().await;
    assert!(s.serves(&reference("aws-sm://prod/db")));
    assert!(s.serves(&reference(
        "aws-sm://arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"
    )));
    assert!(!s.serves(&reference(
        "aws-sm://arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf"
    )));
    assert!(!s.serves(&reference("vault-kv://h/secret/db")));
    let arn_store = AwsSecretsStore::builder(&reference(
        "aws-sm://arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf",
    ))
    .unwrap()
    .endpoint_url(endpoint())
    .static_credentials("testing", "testing")
    .build()
    .await
    .unwrap();
    assert_eq!(arn_store.region(), "eu-west-1");
    assert!(!arn_store.serves(&reference("aws-sm://prod/db")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_stage_is_not_found_and_put_refuses_selectors() {
    let s = store().await;
    let e = s
        .get(&reference("aws-sm://kmseal/does-not-exist"))
        .await
        .unwrap_err();
    assert_eq!(e.store_kind(), Some(StoreErrorKind::NotFound), "{e}");
    assert!(
        e.to_string().contains("aws-sm://kmseal/does-not-exist"),
        "{e}"
    );

    let name = unique("stage");
    let whole = reference(&format!("aws-sm://{name}"));
    s.put(&whole, b"only-one-version").await.unwrap();
    let e = s
        .get(&reference(&format!("aws-sm://{name}?stage=AWSPREVIOUS")))
        .await
        .unwrap_err();
    assert_eq!(e.store_kind(), Some(StoreErrorKind::NotFound), "{e}");
    assert!(!e.to_string().contains("only-one-version"), "{e}");

    let e = s
        .put(&reference(&format!("aws-sm://{name}#f")), b"x")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidReference { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite_on_moto() {
    let auth = std::env::var("KMSEAL_TEST_AWS_AUTH_ENDPOINT")
        .expect("KMSEAL_TEST_AWS_AUTH_ENDPOINT is not set: run scripts/test");
    store_conformance::run(&StoreFixture {
        store: Arc::new(store().await),
        fresh: Box::new(|| reference(&format!("aws-sm://{}", unique("suite")))),
        denied: Arc::new(store_at(auth).await),
        server_reads: Box::new(|r| recorded("secretsmanager.GetSecretValue", "SecretId", r.body())),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_injected_by_a_proxy_are_retried_bounded_and_never_give_a_wrong_value() {
    use kmseal_test_support::fault_proxy::{FaultProxy, run_store_scenarios};
    let upstream = endpoint().trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start(upstream).await;
    let via = format!("http://{}", proxy.addr());
    let secret = reference(&format!("aws-sm://{}", unique("faults")));
    run_store_scenarios(
        &proxy,
        |timeout, retries| {
            let via = via.clone();
            async move {
                Arc::new(
                    AwsSecretsStore::builder(&reference("aws-sm://any-name"))
                        .unwrap()
                        .region("us-east-1")
                        .endpoint_url(via)
                        .static_credentials("testing", "testing")
                        .timeout(timeout)
                        .retries(retries)
                        .build()
                        .await
                        .unwrap(),
                ) as Arc<dyn SecretStore>
            }
        },
        &secret,
        true,
    )
    .await;
}
