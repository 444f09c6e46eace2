//! Against moto's AWS KMS started by `scripts/test` (`KMSEAL_TEST_AWS_ENDPOINT`). Without it
//! these tests fail: they never skip.
//!
//! moto does not refuse disabled keys, so disabled-key behaviour is covered by the error-code
//! mapping unit test only. Wrong credentials are tested against a second moto that checks them
//! (`INITIAL_NO_AUTH_ACTION_COUNT=0`, `KMSEAL_TEST_AWS_AUTH_ENDPOINT`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use kmseal::{DataKey, Decryptor, EncryptionContext, Encryptor, Error, Kek, KeyUri, KmsErrorKind};
use kmseal_aws::AwsKek;

#[path = "moto/secrets.rs"]
mod secrets;

fn endpoint() -> String {
    std::env::var("KMSEAL_TEST_AWS_ENDPOINT")
        .expect("KMSEAL_TEST_AWS_ENDPOINT is not set: run scripts/test, which starts moto")
}

fn admin() -> aws_sdk_kms::Client {
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

async fn new_key() -> String {
    let out = admin()
        .create_key()
        .description("kmseal test")
        .send()
        .await
        .expect("moto must be reachable");
    out.key_metadata().unwrap().arn().unwrap().to_owned()
}

async fn kek(arn: &str) -> AwsKek {
    let uri: KeyUri = format!("aws-kms://{arn}").parse().unwrap();
    AwsKek::builder(&uri)
        .unwrap()
        .endpoint_url(endpoint())
        .static_credentials("testing", "testing")
        .timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_moto() {
    let a = kek(&new_key().await).await;
    let b = kek(&new_key().await).await;
    kmseal_test_support::conformance::run(Arc::new(a), Arc::new(b)).await;
}

#[tokio::test]
async fn an_alias_resolves_to_its_key_arn() {
    let arn = new_key().await;
    let alias = format!("alias/kmseal-{}", std::process::id());
    admin()
        .create_alias()
        .alias_name(&alias)
        .target_key_id(&arn)
        .send()
        .await
        .unwrap();
    let region_account = arn.split(":key/").next().unwrap();
    let by_alias = kek(&format!("{region_account}:{alias}")).await;
    assert_eq!(by_alias.key_arn(), arn);
    let ctx = EncryptionContext::new().with("app", "alias").unwrap();
    let msg = Encryptor::new(Arc::new(by_alias))
        .with_context(ctx)
        .encrypt(b"aliased")
        .await
        .unwrap();
    // The message records the key ARN, so a KEK configured with the key ARN opens it.
    let pt = Decryptor::new(Arc::new(kek(&arn).await))
        .decrypt(&msg)
        .await
        .unwrap();
    assert_eq!(pt.expose_secret(), b"aliased");
}

#[tokio::test]
async fn a_missing_key_is_not_found() {
    let arn = new_key().await;
    let missing = arn
        .rsplit_once('/')
        .map(|(p, _)| format!("{p}/00000000-0000-0000-0000-000000000000"))
        .unwrap();
    let err = kek(&missing)
        .await
        .wrap(&DataKey::generate().unwrap(), &EncryptionContext::new())
        .await
        .unwrap_err();
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::NotFound), "{err}");
}

#[tokio::test]
async fn an_unreachable_or_hanging_endpoint_fails_within_the_timeout() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_port = hang.local_addr().unwrap().port();
    for (port, expected) in [
        (port, KmsErrorKind::Unavailable),
        (hang_port, KmsErrorKind::Timeout),
    ] {
        let uri: KeyUri = "aws-kms://arn:aws:kms:us-east-1:123456789012:key/k"
            .parse()
            .unwrap();
        let k = AwsKek::builder(&uri)
            .unwrap()
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .static_credentials("testing", "testing")
            .timeout(Duration::from_millis(500))
            .retries(1)
            .build()
            .await
            .unwrap();
        let start = Instant::now();
        let err = k
            .wrap(&DataKey::generate().unwrap(), &EncryptionContext::new())
            .await
            .unwrap_err();
        assert_eq!(err.kms_kind(), Some(expected), "port {port}: {err}");
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "took {:?}",
            start.elapsed()
        );
    }
    drop(hang);
}

#[test]
fn the_blocking_facade_works_without_a_runtime() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let arn = rt.block_on(new_key());
    drop(rt);
    let uri: KeyUri = format!("aws-kms://{arn}").parse().unwrap();
    let k: Arc<dyn Kek> = Arc::new(
        kmseal::blocking::block_on(
            AwsKek::builder(&uri)
                .unwrap()
                .endpoint_url(endpoint())
                .static_credentials("testing", "testing")
                .build(),
        )
        .unwrap(),
    );
    kmseal_test_support::conformance::blocking_round_trip(k, || {}, || {});
}

#[tokio::test]
async fn wrong_credentials_are_access_denied() {
    let auth_endpoint = std::env::var("KMSEAL_TEST_AWS_AUTH_ENDPOINT")
        .expect("KMSEAL_TEST_AWS_AUTH_ENDPOINT is not set: run scripts/test");
    let uri: KeyUri =
        "aws-kms://arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
            .parse()
            .unwrap();
    let k = AwsKek::builder(&uri)
        .unwrap()
        .endpoint_url(auth_endpoint)
        .static_credentials("AKIAWRONGWRONGWRONG1", "wrong-secret")
        .build()
        .await
        .unwrap();
    let err = k
        .wrap(&DataKey::generate().unwrap(), &EncryptionContext::new())
        .await
        .unwrap_err();
    assert_eq!(err.kms_kind(), Some(KmsErrorKind::AccessDenied), "{err}");
    assert!(!err.to_string().contains("wrong-secret"));
}

#[tokio::test]
async fn generate_data_key_is_an_opt_in_data_key_source() {
    let arn = new_key().await;
    let aws: Arc<dyn Kek> = Arc::new(kek(&arn).await);
    let local: Arc<dyn Kek> = Arc::new(kmseal::LocalKek::generate().unwrap());
    let ctx = EncryptionContext::new().with("app", "gdk").unwrap();
    // The KMS generates the key and its wrapped form; the local KEK wraps the same key.
    let msg = Encryptor::new(aws.clone())
        .add_kek(local.clone())
        .with_context(ctx.clone())
        .data_key_from_kms(true)
        .encrypt(b"kms-made key")
        .await
        .unwrap();
    for k in [aws.clone(), local.clone()] {
        let pt = Decryptor::new(k)
            .with_expected_context(ctx.clone())
            .decrypt(&msg)
            .await
            .unwrap();
        assert_eq!(pt.expose_secret(), b"kms-made key");
    }
    // The KMS-made data key is what the AWS entry unwraps to, and both entries agree.
    let (header, _) = kmseal::Header::parse(&msg, &kmseal::Limits::default()).unwrap();
    let from_aws = aws.unwrap(&header.wrapped_keys()[0], &ctx).await.unwrap();
    let from_local = local.unwrap(&header.wrapped_keys()[1], &ctx).await.unwrap();
    assert!(from_aws == from_local);
    // A KEK that cannot generate keys is a clear error, not a silent local fallback.
    let err = Encryptor::new(local)
        .data_key_from_kms(true)
        .encrypt(b"x")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_injected_by_a_proxy_are_retried_bounded_and_never_give_a_wrong_key() {
    use kmseal_test_support::fault_proxy::{FaultProxy, run_scenarios};
    let arn = new_key().await;
    let upstream = endpoint().trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start(upstream).await;
    let via = format!("http://{}", proxy.addr());
    run_scenarios(
        &proxy,
        |timeout, retries| {
            let (arn, via) = (arn.clone(), via.clone());
            async move {
                let uri: KeyUri = format!("aws-kms://{arn}").parse().unwrap();
                Arc::new(
                    AwsKek::builder(&uri)
                        .unwrap()
                        .endpoint_url(via)
                        .static_credentials("testing", "testing")
                        .timeout(timeout)
                        .retries(retries)
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

/// Decrypt calls moto recorded for `arn` (its own request log, not our counters).
fn recorded_decrypts(arn: &str) -> usize {
    recorded("TrentService.Decrypt", "KeyId", arn)
}

/// Requests moto recorded with `X-Amz-Target: target` whose JSON body has `field == value`.
fn recorded(target: &str, field: &str, value: &str) -> usize {
    use base64::Engine;
    let log = std::env::var("KMSEAL_TEST_AWS_RECORDING")
        .expect("KMSEAL_TEST_AWS_RECORDING is not set: run scripts/test");
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            let t = v["headers"]["X-Amz-Target"]
                .as_str()
                .or(v["headers"]["x-amz-target"].as_str());
            t == Some(target)
        })
        .filter(|v| {
            let body = v["body"].as_str().unwrap_or("");
            let body = if v["body_encoded"] == true {
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(body)
                        .unwrap(),
                )
                .unwrap()
            } else {
                body.to_owned()
            };
            serde_json::from_str::<serde_json::Value>(&body).is_ok_and(|b| b[field] == value)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_decrypts_through_the_cache_cost_one_unwrap_per_data_key() {
    let arn = new_key().await;
    let k: Arc<dyn Kek> = Arc::new(kek(&arn).await);
    kmseal_test_support::conformance::cached_concurrent_decrypts(k, || recorded_decrypts(&arn))
        .await;
}
