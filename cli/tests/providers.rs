//! End to end through the CLI with real KMS servers started by `scripts/test` (and the Cloud
//! KMS stand-in): a 10 MiB file encrypted under a provider key (plus, for Vault, a local
//! break-glass key), decrypted with each, compared. These tests fail, never skip, when the
//! server is not there.

#![allow(clippy::cast_possible_truncation)] // test patterns and helpers
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "common/running.rs"]
mod running;

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

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Encrypts a 10 MiB file under all of `keys` (context app=e2e), decrypts it with each key
/// alone into a file, and compares. Returns the sealed file for further checks.
fn ten_mib_round_trip(d: &Path, seed: u32, keys: &[&str], env: &[(&str, &str)]) -> PathBuf {
    let input = d.join("big.bin");
    let data: Vec<u8> = (0..10u32 << 20)
        .map(|i| (i.wrapping_mul(seed) >> 8) as u8)
        .collect();
    std::fs::write(&input, &data).unwrap();
    let sealed = d.join("big.kmseal");
    let mut args = vec!["encrypt"];
    for k in keys {
        args.extend(["-k", k]);
    }
    args.extend(["-c", "app=e2e", s(&input), "-o", s(&sealed)]);
    let o = run(&args, env);
    assert!(o.status.success(), "encrypt: {}", stderr(&o));
    for key in keys {
        let out = d.join("out.bin");
        let _ = std::fs::remove_file(&out);
        let o = run(
            &[
                "decrypt",
                "-k",
                key,
                "-c",
                "app=e2e",
                s(&sealed),
                "-o",
                s(&out),
            ],
            env,
        );
        assert!(o.status.success(), "{key}: {}", stderr(&o));
        assert!(
            std::fs::read(&out).unwrap() == data,
            "{key}: round trip differs"
        );
    }
    sealed
}

#[test]
fn ten_mib_file_through_the_cli_with_vault_and_a_local_key() {
    let addr = std::env::var("KMSEAL_TEST_VAULT_ADDR")
        .expect("KMSEAL_TEST_VAULT_ADDR is not set: run scripts/test, which starts OpenBao");
    let token = std::env::var("KMSEAL_TEST_VAULT_TOKEN").unwrap_or_else(|_| "root".into());
    let d = dir("vault");
    let local_key = d.join("break-glass.key");
    assert!(run(&["keygen", "-o", s(&local_key)], &[]).status.success());
    let vault = format!("vault+http://{addr}/transit/keys/kmseal-e2e");
    let local = format!("local://{}", local_key.display());
    let sealed = ten_mib_round_trip(
        &d,
        2_654_435_761,
        &[&vault, &local],
        &[("VAULT_TOKEN", &token)],
    );
    // A wrong Vault token: a key error (exit 4), and the local key is not consulted.
    let o = run(
        &["decrypt", "-k", &vault, s(&sealed)],
        &[("VAULT_TOKEN", "wrong")],
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("access denied"), "{}", stderr(&o));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn ten_mib_file_through_the_cli_with_aws_kms_on_moto() {
    let endpoint = std::env::var("KMSEAL_TEST_AWS_ENDPOINT")
        .expect("KMSEAL_TEST_AWS_ENDPOINT is not set: run scripts/test, which starts moto");
    let arn = std::env::var("KMSEAL_TEST_AWS_KEY_ARN").expect("scripts/test creates the key");
    let d = dir("aws");
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let uri = format!("aws-kms://{arn}");
    let sealed = ten_mib_round_trip(&d, 40_503, &[&uri], &env);
    // A decryptor expecting another context refuses before calling the KMS (exit 3).
    let o = run(
        &["decrypt", "-k", &uri, "-c", "app=other", s(&sealed)],
        &env,
    );
    assert_eq!(o.status.code(), Some(3));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn ten_mib_file_through_the_cli_with_gcp_kms_on_the_stand_in() {
    // The protocol-faithful Cloud KMS stand-in (no emulator exists), on a runtime of its own.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(kmseal_test_support::fake_gcp::FakeKms::start());
    let name = "projects/p/locations/global/keyRings/r/cryptoKeys/e2e";
    fake.create_key(name);
    let d = dir("gcp");
    let endpoint = fake.endpoint();
    let env = [
        ("KMSEAL_GCP_ENDPOINT", endpoint.as_str()),
        ("KMSEAL_GCP_DANGEROUS_ANONYMOUS", "1"),
    ];
    let sealed = ten_mib_round_trip(&d, 97, &[&format!("gcp-kms://{name}")], &env);
    // A CryptoKey the message was not wrapped for: strict unwrap asks nobody (exit 4).
    let other = "gcp-kms://projects/p/locations/global/keyRings/r/cryptoKeys/missing";
    let o = run(&["decrypt", "-k", other, s(&sealed)], &env);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    // Secret Manager on the same stand-in: put, get a field, list versions.
    let secret = "gcp-sm://projects/p/secrets/cli-db";
    let o = run_with_stdin(
        &["secret", "put", secret, "--field", "password", "-"],
        &env,
        b"gcp-pw\n",
    );
    assert!(o.status.success(), "put: {}", stderr(&o));
    let o = run(&["secret", "get", &format!("{secret}#password")], &env);
    assert!(o.status.success(), "get: {}", stderr(&o));
    assert_eq!(o.stdout, b"gcp-pw");
    let o = run(&["secret", "versions", secret, "--json"], &env);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("\"latest\""),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&d).unwrap();
    drop(rt);
}

#[test]
fn ten_mib_file_through_the_cli_with_azure_key_vault_and_workload_identity_on_the_stand_in() {
    // The HTTPS Key Vault stand-in (no emulator exists), which also plays Entra ID's token
    // endpoint: the CLI's default credential chain runs the real workload identity flow.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(kmseal_test_support::fake_azure::FakeVault::start(
        "kmseal-e2e.vault.azure.net",
    ));
    fake.create_rsa_key("e2e");
    fake.accept_assertion("projected-service-account-jwt");
    let d = dir("azure");
    let ca = d.join("ca.pem");
    std::fs::write(&ca, fake.ca_pem()).unwrap();
    let token = d.join("token");
    std::fs::write(&token, "projected-service-account-jwt").unwrap();
    let authority = fake.authority_host();
    let env = [
        ("AZURE_TOKEN_CREDENTIALS", "WorkloadIdentityCredential"),
        ("AZURE_FEDERATED_TOKEN_FILE", s(&token)),
        ("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555"),
        ("AZURE_TENANT_ID", kmseal_test_support::fake_azure::TENANT),
        ("AZURE_AUTHORITY_HOST", authority.as_str()),
        ("KMSEAL_AZURE_CA_FILE", s(&ca)),
        ("KMSEAL_AZURE_CONNECT_TO", "127.0.0.1"),
    ];
    let sealed = ten_mib_round_trip(&d, 89, &[&fake.uri("e2e")], &env);
    assert!(
        fake.tokens_issued.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "encrypt and decrypt each authenticated through the token endpoint"
    );
    // Key Vault secrets through the same credential chain: put, get, versions.
    let secret = fake.secret_uri("cli-db");
    let o = run_with_stdin(&["secret", "put", &secret, "-"], &env, b"azure-pw\n");
    assert!(o.status.success(), "put: {}", stderr(&o));
    let o = run(&["secret", "get", &secret], &env);
    assert!(o.status.success(), "get: {}", stderr(&o));
    assert_eq!(o.stdout, b"azure-pw");
    let o = run(&["secret", "versions", &secret], &env);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("current"),
        "{}",
        stderr(&o)
    );
    // A token the directory refuses: a KMS error (exit 4), no output file.
    fake.accept_assertion("another-token");
    let out = d.join("refused.bin");
    let o = run(
        &["decrypt", "-k", &fake.uri("e2e"), s(&sealed), "-o", s(&out)],
        &env,
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("AADSTS700024"), "{}", stderr(&o));
    assert!(!out.exists());
    std::fs::remove_dir_all(&d).unwrap();
    drop(rt);
}

#[test]
fn a_kms_failing_mid_response_leaves_no_output_file() {
    use kmseal_test_support::fault_proxy::{Fault, FaultProxy};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(kmseal_test_support::fake_gcp::FakeKms::start());
    let name = "projects/p/locations/global/keyRings/r/cryptoKeys/faults";
    fake.create_key(name);
    let upstream = fake
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = rt.block_on(FaultProxy::start(upstream));
    let d = dir("faults");
    let endpoint = format!("http://{}", proxy.addr());
    let env = [
        ("KMSEAL_GCP_ENDPOINT", endpoint.as_str()),
        ("KMSEAL_GCP_DANGEROUS_ANONYMOUS", "1"),
    ];
    let key = format!("gcp-kms://{name}");
    let input = d.join("in.bin");
    std::fs::write(&input, vec![5u8; 1 << 20]).unwrap();
    let sealed = d.join("in.kmseal");
    let o = run(&["encrypt", "-k", &key, s(&input), "-o", s(&sealed)], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    for fault in [Fault::DropMidResponse, Fault::Status(503)] {
        proxy.set(fault, 1000);
        let out = d.join("out.bin");
        let o = run(&["decrypt", "-k", &key, s(&sealed), "-o", s(&out)], &env);
        assert_eq!(o.status.code(), Some(4), "{fault:?}: {}", stderr(&o));
        assert!(!out.exists(), "{fault:?}: an output file was left");
        let leftovers: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(
            leftovers.is_empty(),
            "{fault:?}: temporary files left: {leftovers:?}"
        );
        let enc_out = d.join("again.kmseal");
        let o = run(&["encrypt", "-k", &key, s(&input), "-o", s(&enc_out)], &env);
        assert_eq!(o.status.code(), Some(4), "{fault:?}: {}", stderr(&o));
        assert!(!enc_out.exists());
    }
    proxy.set(Fault::None, 0);
    let o = run(
        &[
            "decrypt",
            "-k",
            &key,
            s(&sealed),
            "-o",
            s(&d.join("ok.bin")),
        ],
        &env,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_dir_all(&d).unwrap();
    drop(rt);
}

/// `run` with stdin.
fn run_with_stdin(args: &[&str], envs: &[(&str, &str)], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmseal"));
    cmd.args(args)
        .env_remove("KMSEAL_KEY")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn secrets_in_openbao_kv_through_the_cli_put_get_versions_and_errors() {
    let addr = std::env::var("KMSEAL_TEST_VAULT_ADDR")
        .expect("KMSEAL_TEST_VAULT_ADDR is not set: run scripts/test, which starts OpenBao");
    let token = std::env::var("KMSEAL_TEST_VAULT_TOKEN").unwrap_or_else(|_| "root".into());
    let vault_addr = format!("http://{addr}");
    let env = [
        ("VAULT_TOKEN", token.as_str()),
        ("VAULT_ADDR", vault_addr.as_str()),
    ];
    let secret = format!(
        "vault-kv+http://{addr}/secret/cli/db-{}",
        std::process::id()
    );

    let o = run_with_stdin(
        &["secret", "put", &secret, "--field", "password", "-"],
        &env,
        b"s3cret \"pw\"\n",
    );
    assert!(o.status.success(), "put: {}", stderr(&o));
    assert!(stderr(&o).contains("version 1"), "{}", stderr(&o));
    let o = run(
        &[
            "secret",
            "put",
            &secret,
            "--field",
            "password",
            "--generate",
            "32",
        ],
        &env,
    );
    assert!(o.status.success(), "generate: {}", stderr(&o));
    assert!(o.stdout.is_empty(), "a generated value is never printed");
    // A generator spec (hex of 16 random bytes), on a secret of its own.
    let other = format!("{secret}-generated");
    let o = run(
        &[
            "secret",
            "put",
            &other,
            "--field",
            "token",
            "--generate",
            "hex:16",
        ],
        &env,
    );
    assert!(o.status.success(), "generate hex: {}", stderr(&o));
    assert!(o.stdout.is_empty(), "a generated value is never printed");
    let o = run(&["secret", "get", &format!("{other}#token")], &env);
    assert!(o.status.success(), "get: {}", stderr(&o));
    assert_eq!(o.stdout.len(), 32);
    assert!(o.stdout.iter().all(u8::is_ascii_hexdigit));

    // The old version by number, the field exactly as given (newline dropped, no newline added).
    let o = run(
        &["secret", "get", &format!("{secret}?version=1#password")],
        &env,
    );
    assert!(o.status.success(), "get: {}", stderr(&o));
    assert_eq!(o.stdout, b"s3cret \"pw\"");
    let o = run(&["secret", "get", &format!("{secret}#password")], &env);
    assert!(o.status.success(), "get: {}", stderr(&o));
    assert_eq!(o.stdout.len(), 44, "base64 of 32 bytes");

    let d = dir("secret-get");
    let out = d.join("pw");
    let o = run(
        &[
            "secret",
            "get",
            &format!("{secret}#password"),
            "-o",
            s(&out),
        ],
        &env,
    );
    assert!(o.status.success(), "get -o: {}", stderr(&o));
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), 44);

    let o = run(&["secret", "versions", &secret, "--json"], &env);
    assert!(o.status.success(), "versions: {}", stderr(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (lines[0]["id"].as_str(), lines[1]["id"].as_str()),
        (Some("2"), Some("1"))
    );
    assert_eq!(lines[0]["stages"][0], "current");
    assert!(lines[0]["created"].as_str().unwrap().ends_with('Z'));

    // Failures: exit 4 with the reference and the reason, never a value.
    let missing = format!("vault-kv+http://{addr}/secret/cli/missing");
    let o = run(&["secret", "get", &missing], &env);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains(&missing), "{}", stderr(&o));
    let o = run(&["secret", "get", &format!("{secret}#token")], &env);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("`token`"), "{}", stderr(&o));
    let o = run(
        &["secret", "get", &format!("{secret}#password")],
        &[
            ("VAULT_TOKEN", "wrong"),
            ("VAULT_ADDR", vault_addr.as_str()),
        ],
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("access denied"), "{}", stderr(&o));
    // The environment's token goes only to VAULT_ADDR: a reference to another server (as an
    // unsealed ConfigMap could hold) is refused before any request.
    let elsewhere = "vault-kv+http://127.0.0.1:9/secret/cli/db";
    let o = run(&["secret", "get", elsewhere], &env);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("not VAULT_ADDR"), "{}", stderr(&o));
    let o = run(
        &["secret", "get", &secret],
        &[("VAULT_TOKEN", token.as_str())],
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("set VAULT_ADDR"), "{}", stderr(&o));
    // A value is refused on the command line.
    let o = run(&["secret", "put", &secret, "hunter2"], &env);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!stderr(&o).contains("hunter2"), "{}", stderr(&o));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn secrets_in_aws_secrets_manager_on_moto_through_the_cli() {
    let endpoint = std::env::var("KMSEAL_TEST_AWS_ENDPOINT")
        .expect("KMSEAL_TEST_AWS_ENDPOINT is not set: run scripts/test, which starts moto");
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ];
    let secret = format!("aws-sm://kmseal/cli/api-{}", std::process::id());
    let o = run_with_stdin(
        &["secret", "put", &secret, "--field", "API_KEY", "-"],
        &env,
        b"k-1\n",
    );
    assert!(o.status.success(), "put: {}", stderr(&o));
    let o = run(
        &[
            "secret",
            "put",
            &secret,
            "--field",
            "API_KEY",
            "--generate",
            "24",
        ],
        &env,
    );
    assert!(o.status.success(), "put: {}", stderr(&o));
    let o = run(
        &[
            "secret",
            "get",
            &format!("{secret}?stage=AWSPREVIOUS#API_KEY"),
        ],
        &env,
    );
    assert!(o.status.success(), "get: {}", stderr(&o));
    assert_eq!(o.stdout, b"k-1");
    let o = run(&["secret", "get", &format!("{secret}#API_KEY")], &env);
    assert!(o.status.success(), "get: {}", stderr(&o));
    assert_eq!(o.stdout.len(), 32, "base64 of 24 bytes");
    let o = run(&["secret", "versions", &secret], &env);
    assert!(o.status.success(), "versions: {}", stderr(&o));
    let table = String::from_utf8(o.stdout).unwrap();
    assert!(
        table.contains("AWSCURRENT") && table.contains("AWSPREVIOUS"),
        "{table}"
    );
    let o = run(&["secret", "get", "aws-sm://kmseal/cli/missing"], &env);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
}

/// Graceful rotation with stores (issue 20): `exec --store-previous` gives each reference's
/// previous version as NAME_PREVIOUS (the prior OpenBao KV version; Secrets Manager's
/// AWSPREVIOUS on moto, for an `--env` reference), and a rotation interval on a reference is
/// judged by the store's version time.
#[test]
fn exec_gives_the_stores_previous_versions_and_checks_their_age() {
    let addr = std::env::var("KMSEAL_TEST_VAULT_ADDR")
        .expect("KMSEAL_TEST_VAULT_ADDR is not set: run scripts/test, which starts OpenBao");
    let endpoint = std::env::var("KMSEAL_TEST_AWS_ENDPOINT")
        .expect("KMSEAL_TEST_AWS_ENDPOINT is not set: run scripts/test, which starts moto");
    let token = std::env::var("KMSEAL_TEST_VAULT_TOKEN").unwrap_or_else(|_| "root".into());
    let vault_addr = format!("http://{addr}");
    let env = [
        ("VAULT_TOKEN", token.as_str()),
        ("VAULT_ADDR", vault_addr.as_str()),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ];
    let id = std::process::id();
    let kv = format!("vault-kv+http://{addr}/secret/cli/rotating-{id}");
    let sm = format!("aws-sm://kmseal/cli/rotating-{id}");
    for (secret, field, value) in [
        (&kv, "password", "old-db-password"),
        (&kv, "password", "new-db-password"),
        (&sm, "API_KEY", "old-api-key"),
        (&sm, "API_KEY", "new-api-key"),
    ] {
        let o = run_with_stdin(
            &["secret", "put", secret, "--field", field, "-"],
            &env,
            value.as_bytes(),
        );
        assert!(o.status.success(), "put: {}", stderr(&o));
    }
    let d = dir("store-previous");
    let cfg = d.join("app.yaml");
    std::fs::write(&cfg, format!("db_password: ref+{kv}#password\n")).unwrap();
    let api = format!("API_KEY={sm}#API_KEY");
    let vars = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["exec", "--unsealed", s(&cfg), "--env", &api];
        args.extend(extra);
        args.extend(["--", "env"]);
        let o = run(&args, &env);
        assert!(o.status.success(), "exec: {}", stderr(&o));
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let with = vars(&["--store-previous"]);
    for expected in [
        "DB_PASSWORD=new-db-password",
        "DB_PASSWORD_PREVIOUS=old-db-password",
        "API_KEY=new-api-key",
        "API_KEY_PREVIOUS=old-api-key",
    ] {
        assert!(with.iter().any(|l| l == expected), "{expected} in {with:?}");
    }
    let without = vars(&[]);
    assert!(
        !without.iter().any(|l| l.contains("_PREVIOUS=")),
        "{without:?}"
    );
    // The store's version time is the reference's age: just written, so within a day.
    let o = run(
        &[
            "config",
            "check",
            "--unsealed",
            s(&cfg),
            "--require",
            "db_password:max_age=1d",
        ],
        &env,
    );
    assert!(o.status.success(), "check: {}", stderr(&o));
    let o = run(
        &[
            "exec",
            "--unsealed",
            s(&cfg),
            "--require",
            "db_password:max_age=1d",
            "--",
            "true",
        ],
        &env,
    );
    assert!(o.status.success(), "exec: {}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}

/// Issue 22: `exec --refresh` restarts the command with the new value when a secret changes
/// in OpenBao KV, and again when one changes in Secrets Manager on moto (SIGHUP makes kmseal
/// refresh at once; the interval is an hour).
#[test]
fn exec_refresh_restarts_the_command_when_openbao_kv_or_secrets_manager_changes() {
    let addr = std::env::var("KMSEAL_TEST_VAULT_ADDR")
        .expect("KMSEAL_TEST_VAULT_ADDR is not set: run scripts/test, which starts OpenBao");
    let endpoint = std::env::var("KMSEAL_TEST_AWS_ENDPOINT")
        .expect("KMSEAL_TEST_AWS_ENDPOINT is not set: run scripts/test, which starts moto");
    let token = std::env::var("KMSEAL_TEST_VAULT_TOKEN").unwrap_or_else(|_| "root".into());
    let vault_addr = format!("http://{addr}");
    let env = [
        ("VAULT_TOKEN", token.as_str()),
        ("VAULT_ADDR", vault_addr.as_str()),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ];
    let id = std::process::id();
    let kv = format!("vault-kv+http://{addr}/secret/cli/refresh-{id}");
    let sm = format!("aws-sm://kmseal/cli/refresh-{id}");
    let put = |secret: &str, field: &str, value: &str| {
        let o = run_with_stdin(
            &["secret", "put", secret, "--field", field, "-"],
            &env,
            value.as_bytes(),
        );
        assert!(o.status.success(), "put: {}", stderr(&o));
    };
    put(&kv, "password", "db-one");
    put(&sm, "API_KEY", "api-one");
    let d = dir("refresh");
    let cfg = d.join("app.yaml");
    std::fs::write(
        &cfg,
        format!("db_password: ref+{kv}#password\napi_key: ref+{sm}#API_KEY\n"),
    )
    .unwrap();
    let script =
        r#"trap 'exit 0' TERM; echo "db=$DB_PASSWORD api=$API_KEY"; while :; do sleep 0.05; done"#;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmseal"));
    cmd.args([
        "exec",
        "--unsealed",
        s(&cfg),
        "--refresh",
        "1h",
        "--grace",
        "5s",
        "--",
        "sh",
        "-c",
        script,
    ])
    .env_remove("KMSEAL_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut run = running::Running::start(cmd);
    assert_eq!(run.line(), "db=db-one api=api-one");
    put(&kv, "password", "db-two");
    run.signal("HUP");
    assert_eq!(run.line(), "db=db-two api=api-one");
    put(&sm, "API_KEY", "api-two");
    run.signal("HUP");
    assert_eq!(run.line(), "db=db-two api=api-two");
    run.signal("TERM");
    let (code, err) = run.finish();
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("db-two") && !err.contains("api-two"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

/// `kmseal import sops` of a file the real `sops` encrypted under a moto KMS key (with an
/// encryption context): only a KMS key named with --sops-key is asked, unless
/// --trust-file-keys lets the file name it.
#[test]
fn import_of_a_sops_file_made_by_real_sops_against_moto() {
    let endpoint = std::env::var("KMSEAL_TEST_AWS_ENDPOINT")
        .expect("KMSEAL_TEST_AWS_ENDPOINT is not set: run scripts/test, which starts moto");
    let arn = std::env::var("KMSEAL_TEST_AWS_KEY_ARN").expect("scripts/test creates the key");
    let sops = std::env::var("KMSEAL_TEST_SOPS")
        .expect("KMSEAL_TEST_SOPS is not set: run scripts/test, which installs sops");
    let d = dir("sops");
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ];
    let plain = d.join("app.yaml");
    std::fs::write(&plain, "db:\n  password: from-sops-7Gq2\n  port: 5432\n").unwrap();
    let o = Command::new(&sops)
        .current_dir(&d)
        .envs(env.iter().copied())
        .args([
            "encrypt",
            "--kms",
            &arn,
            "--encryption-context",
            "app:billing",
            "--output",
        ])
        .arg(d.join("app.sops.yaml"))
        .arg(&plain)
        .output()
        .unwrap();
    assert!(o.status.success(), "sops: {}", stderr(&o));
    let keyfile = d.join("new.key");
    let o = run(&["keygen", "-o", s(&keyfile)], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let new_key = format!("local://{}", s(&keyfile));
    let out = d.join("imported.yaml");
    let encrypted = d.join("app.sops.yaml");
    let base = [
        "import",
        "sops",
        s(&encrypted),
        "-k",
        &new_key,
        "-o",
        s(&out),
    ];
    let env = &env[..];

    // The file names the KMS key, but kmseal does not ask it unless told to: exit 4.
    let o = run(&base, env);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(!out.exists());
    let uri = format!("aws-kms://{arn}");
    let mut args = base.to_vec();
    args.extend(["--sops-key", &uri]);
    let o = run(&args, env);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["config", "decrypt", "-k", &new_key, s(&out)], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains("\"from-sops-7Gq2\"") && text.contains("port: 5432"),
        "{text}"
    );

    // --trust-file-keys: the file's ARN is asked, as `sops decrypt` would.
    std::fs::remove_file(&out).unwrap();
    let mut args = base.to_vec();
    args.push("--trust-file-keys");
    let o = run(&args, env);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_dir_all(&d).unwrap();
}

/// `kmseal import sops --sops-key vault+http://…` of a file the real sops encrypted with
/// `--hc-vault-transit` against OpenBao: the CLI path of `Kek::unwrap_foreign`.
#[test]
fn import_of_a_sops_file_made_by_real_sops_against_openbao_transit() {
    let addr = std::env::var("KMSEAL_TEST_VAULT_ADDR")
        .expect("KMSEAL_TEST_VAULT_ADDR is not set: run scripts/test, which starts OpenBao");
    let token = std::env::var("KMSEAL_TEST_VAULT_TOKEN").unwrap_or_else(|_| "root".into());
    let sops = std::env::var("KMSEAL_TEST_SOPS")
        .expect("KMSEAL_TEST_SOPS is not set: run scripts/test, which installs sops");
    let d = dir("sops-vault");
    std::fs::write(
        d.join("app.env"),
        "DB_PASSWORD=from-vault-3Hk8\nMODE=prod\n",
    )
    .unwrap();
    let o = Command::new(&sops)
        .current_dir(&d)
        .env("VAULT_TOKEN", &token)
        .env_remove("VAULT_ADDR")
        .args([
            "encrypt",
            "--hc-vault-transit",
            &format!("http://{addr}/v1/transit/keys/kmseal-e2e"),
            "--output",
            "app.sops.env",
            "app.env",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "sops: {}", stderr(&o));
    let keyfile = d.join("new.key");
    assert!(run(&["keygen", "-o", s(&keyfile)], &[]).status.success());
    let new_key = format!("local://{}", s(&keyfile));
    let out = d.join("app.sealed.env");
    let vault = format!("vault+http://{addr}/transit/keys/kmseal-e2e");
    let encrypted = d.join("app.sops.env");
    let args = [
        "import",
        "sops",
        "--sops-key",
        &vault,
        "-k",
        &new_key,
        "-o",
        s(&out),
        s(&encrypted),
    ];
    let o = run(&args, &[("VAULT_TOKEN", &token)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["config", "decrypt", "-k", &new_key, s(&out)], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("DB_PASSWORD=from-vault-3Hk8"), "{text}");
    // A wrong token: the key cannot be had (exit 4), nothing written.
    std::fs::remove_file(&out).unwrap();
    let o = run(&args, &[("VAULT_TOKEN", "wrong")]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(!out.exists());
    std::fs::remove_dir_all(&d).unwrap();
}
