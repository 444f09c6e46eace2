//! A SOPS file made by the real `sops` binary against moto's AWS KMS, imported through
//! kmseal's AWS provider. Needs moto (`KMSEAL_TEST_AWS_ENDPOINT`) and the sops binary
//! (`KMSEAL_TEST_SOPS`), both set up by `scripts/test`; without them this test fails: it
//! never skips.

#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use kmseal::KeyUri;
use kmseal_aws::AwsKek;
use kmseal_config::Format;
use kmseal_sops::{Error, Identities, Keys};

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: run scripts/test"))
}

async fn new_key(endpoint: &str) -> String {
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .build();
    let out = aws_sdk_kms::Client::from_conf(conf)
        .create_key()
        .send()
        .await
        .expect("moto must be reachable");
    out.key_metadata().unwrap().arn().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_sops_file_under_aws_kms_imports() {
    let endpoint = env("KMSEAL_TEST_AWS_ENDPOINT");
    let sops = env("KMSEAL_TEST_SOPS");
    let arn = new_key(&endpoint).await;
    let dir = std::env::temp_dir().join(format!("kmseal-sops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plain = dir.join("plain.yaml");
    std::fs::write(&plain, "db:\n  password: kms-secret-1\n  port: 5432\n").unwrap();
    // Run where no .sops.yaml applies; sops reaches moto through AWS_ENDPOINT_URL.
    let out = std::process::Command::new(sops)
        .current_dir(&dir)
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .args([
            "encrypt",
            "--kms",
            &arn,
            "--encryption-context",
            "app:billing",
        ])
        .arg(&plain)
        .output()
        .expect("the sops binary must run");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = String::from_utf8(out.stdout).unwrap();
    assert!(file.contains("app: billing"));

    let uri: KeyUri = format!("aws-kms://{arn}").parse().unwrap();
    let kek = AwsKek::builder(&uri)
        .unwrap()
        .endpoint_url(&endpoint)
        .static_credentials("testing", "testing")
        .timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    let keys = Keys::new(Identities::new()).kek(Arc::new(kek));
    let plain = kmseal_sops::decrypt(&file, Format::Yaml, &keys)
        .await
        .unwrap();
    assert_eq!(
        plain.as_str(),
        "db:\n  password: kms-secret-1\n  port: 5432\n"
    );

    // The encryption context is passed to KMS: another one is refused there.
    let other = file.replace("app: billing", "app: payroll");
    let err = kmseal_sops::decrypt(&other, Format::Yaml, &keys)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoDataKey(_)), "{err}");
    // Without a trusted KEK, the file's ARN is not called.
    let err = kmseal_sops::decrypt(&file, Format::Yaml, &Keys::new(Identities::new()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no trusted KEK"), "{err}");
}
