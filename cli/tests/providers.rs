//! End to end through the CLI with real KMS servers started by `scripts/test`: a 10 MiB file
//! encrypted under a provider key (plus a local break-glass key), decrypted with each, compared.
//! These tests fail, never skip, when the server is not there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmseal"));
    cmd.args(args).env_remove("KMSEAL_KEY");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kmseal-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn ten_mib_file_through_the_cli_with_vault_and_a_local_key() {
    let addr = std::env::var("KMSEAL_TEST_VAULT_ADDR")
        .expect("KMSEAL_TEST_VAULT_ADDR is not set: run scripts/test, which starts OpenBao");
    let token = std::env::var("KMSEAL_TEST_VAULT_TOKEN").unwrap_or_else(|_| "root".into());
    let d = dir("vault");
    let input = d.join("big.bin");
    let data: Vec<u8> = (0..10u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&input, &data).unwrap();
    let local_key = d.join("break-glass.key");
    assert!(
        run(&["keygen", "-o", local_key.to_str().unwrap()], &[])
            .status
            .success()
    );
    let vault = format!("vault+http://{addr}/transit/keys/kmseal-e2e");
    let local = format!("local://{}", local_key.display());
    let env = [("VAULT_TOKEN", token.as_str())];
    let sealed = d.join("big.kmseal");
    let o = run(
        &[
            "encrypt",
            "-k",
            &vault,
            "-k",
            &local,
            "-c",
            "app=e2e",
            input.to_str().unwrap(),
            "-o",
            sealed.to_str().unwrap(),
        ],
        &env,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for key in [&vault, &local] {
        let out = d.join("out.bin");
        let _ = std::fs::remove_file(&out);
        let o = run(
            &[
                "decrypt",
                "-k",
                key,
                "-c",
                "app=e2e",
                sealed.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ],
            &env,
        );
        assert!(
            o.status.success(),
            "{key}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            std::fs::read(&out).unwrap() == data,
            "{key}: round trip differs"
        );
    }
    // A wrong Vault token: a key error (exit 4), and the local key is not consulted.
    let o = run(
        &["decrypt", "-k", &vault, sealed.to_str().unwrap()],
        &[("VAULT_TOKEN", "wrong")],
    );
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("access denied"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn ten_mib_file_through_the_cli_with_aws_kms_on_moto() {
    let endpoint = std::env::var("KMSEAL_TEST_AWS_ENDPOINT")
        .expect("KMSEAL_TEST_AWS_ENDPOINT is not set: run scripts/test, which starts moto");
    let arn = std::env::var("KMSEAL_TEST_AWS_KEY_ARN").expect("scripts/test creates the key");
    let d = dir("aws");
    let input = d.join("big.bin");
    let data: Vec<u8> = (0..10u32 << 20)
        .map(|i| (i.wrapping_mul(40_503) >> 8) as u8)
        .collect();
    std::fs::write(&input, &data).unwrap();
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let uri = format!("aws-kms://{arn}");
    let sealed = d.join("big.kmseal");
    let o = run(
        &[
            "encrypt",
            "-k",
            &uri,
            "-c",
            "app=e2e",
            input.to_str().unwrap(),
            "-o",
            sealed.to_str().unwrap(),
        ],
        &env,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = d.join("out.bin");
    let o = run(
        &[
            "decrypt",
            "-k",
            &uri,
            "-c",
            "app=e2e",
            sealed.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        &env,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read(&out).unwrap() == data, "round trip differs");
    // A decryptor expecting another context refuses before calling the KMS (exit 3).
    let o = run(
        &[
            "decrypt",
            "-k",
            &uri,
            "-c",
            "app=other",
            sealed.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(3));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn ten_mib_file_through_the_cli_with_gcp_kms_on_the_stand_in() {
    // The protocol-faithful Cloud KMS stand-in (no emulator exists), on a runtime of its own.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(kmseal_gcp::testing::FakeKms::start());
    let name = "projects/p/locations/global/keyRings/r/cryptoKeys/e2e";
    fake.create_key(name);
    let d = dir("gcp");
    let input = d.join("big.bin");
    let data: Vec<u8> = (0..10u32 << 20)
        .map(|i| (i.wrapping_mul(97) >> 3) as u8)
        .collect();
    std::fs::write(&input, &data).unwrap();
    let endpoint = fake.endpoint();
    let env = [
        ("KMSEAL_GCP_ENDPOINT", endpoint.as_str()),
        ("KMSEAL_GCP_DANGEROUS_ANONYMOUS", "1"),
    ];
    let uri = format!("gcp-kms://{name}");
    let sealed = d.join("big.kmseal");
    let o = run(
        &[
            "encrypt",
            "-k",
            &uri,
            "-c",
            "app=e2e",
            input.to_str().unwrap(),
            "-o",
            sealed.to_str().unwrap(),
        ],
        &env,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = d.join("out.bin");
    let o = run(
        &[
            "decrypt",
            "-k",
            &uri,
            "-c",
            "app=e2e",
            sealed.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        &env,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read(&out).unwrap() == data, "round trip differs");
    // A CryptoKey the message was not wrapped for: strict unwrap asks nobody (exit 4).
    let other = "gcp-kms://projects/p/locations/global/keyRings/r/cryptoKeys/missing";
    let o = run(&["decrypt", "-k", other, sealed.to_str().unwrap()], &env);
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::remove_dir_all(&d).unwrap();
    drop(rt);
}
