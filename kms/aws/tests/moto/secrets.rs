//! AWS Secrets Manager on the same moto server: values, stages, versions, errors, and the
//! resolver's single flight counted by moto's request recording.

use std::sync::Arc;
use std::time::Duration;

use kmseal::store::{MAX_SECRET_LEN, Resolver, ResolverSettings, SecretRef, SecretStore};
use kmseal::{Error, StoreErrorKind};
use kmseal_aws::AwsSecretsStore;

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
async fn missing_denied_and_oversized_secrets_are_typed_errors_without_values() {
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
        .put(&whole, &vec![b'x'; MAX_SECRET_LEN + 1])
        .await
        .unwrap_err();
    assert_eq!(e.store_kind(), Some(StoreErrorKind::TooLarge), "{e}");
    let e = s
        .put(&reference(&format!("aws-sm://{name}#f")), b"x")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidReference { .. }), "{e}");

    // Wrong credentials, against the moto that checks them.
    let auth = std::env::var("KMSEAL_TEST_AWS_AUTH_ENDPOINT")
        .expect("KMSEAL_TEST_AWS_AUTH_ENDPOINT is not set: run scripts/test");
    let e = store_at(auth).await.get(&whole).await.unwrap_err();
    assert_eq!(e.store_kind(), Some(StoreErrorKind::AccessDenied), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_resolutions_of_ten_secrets_cost_ten_calls_on_the_server() {
    let s: Arc<dyn SecretStore> = Arc::new(store().await);
    let names: Vec<String> = (0..10).map(|i| unique(&format!("load{i}"))).collect();
    for n in &names {
        let value = format!(r#"{{"password": "pw-{n}"}}"#);
        s.put(&reference(&format!("aws-sm://{n}")), value.as_bytes())
            .await
            .unwrap();
    }
    let r = Resolver::with_stores(
        vec![s],
        ResolverSettings::default().ttl(Duration::from_secs(3600)),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let (r, name) = (r.clone(), names[i % 10].clone());
        tasks.spawn(async move {
            let got = r
                .resolve(&reference(&format!("aws-sm://{name}#password")))
                .await
                .unwrap();
            assert_eq!(got.value().expose_secret(), format!("pw-{name}").as_bytes());
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    // moto's own request log counts the calls.
    for name in &names {
        assert_eq!(
            recorded("secretsmanager.GetSecretValue", "SecretId", name),
            1,
            "{name}"
        );
    }
}
