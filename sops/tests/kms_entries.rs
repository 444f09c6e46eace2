//! SOPS files whose data key is encrypted by Vault transit, Google Cloud KMS and Azure Key
//! Vault, imported through kmseal's providers ([`kmseal::Kek::unwrap_foreign`]).
//!
//! The Vault file is made by the real `sops` binary (`KMSEAL_TEST_SOPS`) against OpenBao
//! (`KMSEAL_TEST_VAULT_ADDR`, `KMSEAL_TEST_VAULT_TOKEN`), all set up by `scripts/test`; without
//! them these tests fail: they never skip. `sops` cannot reach the in-test Cloud KMS and Key
//! Vault stand-ins, so the GCP and Azure files are that real file with one more entry: the
//! same data key (recovered through OpenBao) encrypted by the stand-in exactly as SOPS calls
//! it (Cloud KMS `encrypt` without AAD; Key Vault `encrypt` with RSA-OAEP-256), in SOPS's
//! layout. Entries are metadata: SOPS's MAC does not cover them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use kmseal::{DataKey, EncryptionContext, Kek, KeyUri, SecretString, WrappedKey};
use kmseal_config::Format;
use kmseal_sops::{Error, Identities, Keys};
use kmseal_vault::{TokenSource, VaultKek};

const PLAIN: &str = "db:\n  password: kms-secret-1\n  port: 5432\n";
const SECRET: &str = "kms-secret-1";

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: run scripts/test"))
}

fn vault() -> (String, String) {
    let token = std::env::var("KMSEAL_TEST_VAULT_TOKEN").unwrap_or_else(|_| "root".into());
    (env("KMSEAL_TEST_VAULT_ADDR"), token)
}

/// A new transit key (aes256-gcm96) on OpenBao; its name.
async fn new_transit_key() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("sops-{}-{n}", std::process::id());
    let (addr, token) = vault();
    let status = reqwest::Client::new()
        .post(format!("http://{addr}/v1/transit/keys/{name}"))
        .header("X-Vault-Token", token)
        .send()
        .await
        .expect("OpenBao must be reachable (scripts/test starts it)")
        .status();
    assert!(status.is_success(), "creating {name}: {status}");
    name
}

/// Transit `encrypt` of `key` under `name`, as SOPS calls it (no context, no associated data).
async fn transit_encrypt(name: &str, key: &[u8]) -> String {
    let (addr, token) = vault();
    let body: serde_json::Value = reqwest::Client::new()
        .post(format!("http://{addr}/v1/transit/encrypt/{name}"))
        .header("X-Vault-Token", token)
        .json(&serde_json::json!({"plaintext": STANDARD.encode(key)}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["data"]["ciphertext"].as_str().unwrap().to_owned()
}

fn vault_kek(name: &str) -> VaultKek {
    let (addr, token) = vault();
    let uri: KeyUri = format!("vault+http://{addr}/transit/keys/{name}")
        .parse()
        .unwrap();
    VaultKek::builder(&uri)
        .unwrap()
        .token(TokenSource::Token(
            SecretString::copy_from_str(&token).unwrap(),
        ))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// `PLAIN` encrypted by the real sops to the transit key `name` on OpenBao (YAML).
fn sops_encrypt_to_vault(name: &str) -> String {
    let (addr, token) = vault();
    let dir = std::env::temp_dir().join(format!("kmseal-sops-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let plain = dir.join("plain.yaml");
    std::fs::write(&plain, PLAIN).unwrap();
    // Run where no .sops.yaml applies; the token comes from VAULT_TOKEN, as for sops users.
    let out = std::process::Command::new(env("KMSEAL_TEST_SOPS"))
        .current_dir(&dir)
        .env("VAULT_TOKEN", &token)
        .env_remove("VAULT_ADDR")
        .args([
            "encrypt",
            "--hc-vault-transit",
            &format!("http://{addr}/v1/transit/keys/{name}"),
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
    assert!(file.contains("hc_vault:") && file.contains("enc: vault:v1:"));
    file
}

/// The `enc:` value of the file's (one) hc_vault entry.
fn vault_enc(file: &str) -> &str {
    file.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("enc: ")
                .filter(|v| v.starts_with("vault:v1:"))
        })
        .unwrap()
}

/// A real sops file (to a fresh transit key) and its data key, recovered through kmseal's
/// Vault provider.
async fn sops_file_and_data_key() -> (String, DataKey) {
    let name = new_transit_key().await;
    let file = sops_encrypt_to_vault(&name);
    let wrapped = WrappedKey {
        provider: "vault".into(),
        key_id: format!("transit/keys/{name}"),
        ciphertext: vault_enc(&file).as_bytes().to_vec(),
    };
    let dek = vault_kek(&name).unwrap_foreign(&wrapped).await.unwrap();
    (file, dek)
}

/// `file` with `block` (an entry list, in sops's YAML layout) added to its `sops` metadata.
fn with_entry(file: &str, block: &str) -> String {
    let at = file.find("\n    lastmodified:").unwrap() + 1;
    format!("{}{block}{}", &file[..at], &file[at..])
}

/// Decrypts, expecting the data key to be refused: `NoDataKey` whose reasons contain `why`
/// and never the plaintext.
async fn refused(file: &str, keys: &Keys, why: &str) {
    let err = kmseal_sops::decrypt(file, Format::Yaml, keys)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoDataKey(_)), "{err}");
    let text = format!("{err} {err:?}");
    assert!(text.contains(why), "expected `{why}` in: {text}");
    assert!(!text.contains(SECRET), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_sops_file_under_vault_transit_imports() {
    let name = new_transit_key().await;
    let file = sops_encrypt_to_vault(&name);
    let keys = Keys::new(Identities::new()).kek(Arc::new(vault_kek(&name)));
    let plain = kmseal_sops::decrypt(&file, Format::Yaml, &keys)
        .await
        .unwrap();
    assert_eq!(plain.as_str(), PLAIN);

    // Without a KEK that claims it, nothing is asked; another transit key does not claim it.
    refused(&file, &Keys::new(Identities::new()), "no trusted KEK").await;
    let other = new_transit_key().await;
    let other_keys = Keys::new(Identities::new()).kek(Arc::new(vault_kek(&other)));
    refused(&file, &other_keys, "no trusted KEK").await;
    // The file may not send the Vault token to its own address (unless it is VAULT_ADDR).
    let (addr, _) = vault();
    if std::env::var("VAULT_ADDR").ok().as_deref() != Some(&format!("http://{addr}")) {
        let from_file = Keys::new(Identities::new()).dangerous_kms_from_file(true);
        refused(&file, &from_file, "VAULT_ADDR").await;
    }

    // A tampered ciphertext, and the data key encrypted by another transit key under this
    // key's name: refused by the server, a typed error (invalid ciphertext).
    let enc = vault_enc(&file).to_owned();
    let mut bytes = enc.clone().into_bytes();
    let mid = bytes.len() / 2;
    bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
    let tampered = file.replace(&enc, std::str::from_utf8(&bytes).unwrap());
    refused(&tampered, &keys, "invalid ciphertext").await;
    let dek = vault_kek(&name)
        .unwrap_foreign(&WrappedKey {
            provider: "vault".into(),
            key_id: format!("transit/keys/{name}"),
            ciphertext: enc.as_bytes().to_vec(),
        })
        .await
        .unwrap();
    let wrong = file.replace(&enc, &transit_encrypt(&other, dek.expose_secret()).await);
    refused(&wrong, &keys, "invalid ciphertext").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sops_file_with_a_gcp_kms_entry_imports_through_the_stand_in() {
    use kmseal_gcp::GcpKek;
    use kmseal_test_support::fake_gcp::FakeKms;
    const KEY: &str = "projects/p/locations/global/keyRings/sops/cryptoKeys/k";
    const OTHER: &str = "projects/p/locations/global/keyRings/sops/cryptoKeys/other";
    let (file, dek) = sops_file_and_data_key().await;
    let fake = FakeKms::start().await;
    fake.create_key(KEY);
    fake.create_key(OTHER);
    let entry = |ciphertext: &[u8]| {
        format!(
            "    gcp_kms:\n        - resource_id: {KEY}\n          created_at: \"2026-12-02T07:20:55Z\"\n          enc: {}\n",
            STANDARD.encode(ciphertext)
        )
    };
    let gcp = with_entry(&file, &entry(&fake.encrypt(KEY, dek.expose_secret(), None)));
    let uri: KeyUri = format!("gcp-kms://{KEY}").parse().unwrap();
    let kek = GcpKek::builder(&uri)
        .unwrap()
        .endpoint(fake.endpoint())
        .dangerous_anonymous_credentials()
        .retries(0)
        .build()
        .await
        .unwrap();
    let keys = Keys::new(Identities::new()).kek(Arc::new(kek.clone()));
    let plain = kmseal_sops::decrypt(&gcp, Format::Yaml, &keys)
        .await
        .unwrap();
    assert_eq!(plain.as_str(), PLAIN);

    // Another CryptoKey's ciphertext under this name, a tampered one, and kmseal's own wrap
    // of the same key (which carries AAD): refused by Cloud KMS, a typed error.
    let wrong = with_entry(
        &file,
        &entry(&fake.encrypt(OTHER, dek.expose_secret(), None)),
    );
    refused(&wrong, &keys, "invalid ciphertext").await;
    let mut ct = fake.encrypt(KEY, dek.expose_secret(), None);
    ct[20] ^= 1;
    refused(&with_entry(&file, &entry(&ct)), &keys, "invalid ciphertext").await;
    let ours = kek.wrap(&dek, &EncryptionContext::new()).await.unwrap();
    refused(
        &with_entry(&file, &entry(&ours.ciphertext)),
        &keys,
        "invalid ciphertext",
    )
    .await;
    // A KEK for another CryptoKey is never asked.
    let uri: KeyUri = format!("gcp-kms://{OTHER}").parse().unwrap();
    let other = GcpKek::builder(&uri)
        .unwrap()
        .endpoint(fake.endpoint())
        .dangerous_anonymous_credentials()
        .build()
        .await
        .unwrap();
    let before = fake.requests.load(std::sync::atomic::Ordering::SeqCst);
    refused(
        &gcp,
        &Keys::new(Identities::new()).kek(Arc::new(other)),
        "no trusted KEK",
    )
    .await;
    assert_eq!(
        fake.requests.load(std::sync::atomic::Ordering::SeqCst),
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sops_file_with_an_azure_key_vault_entry_imports_through_the_stand_in() {
    use kmseal_azure::AzureKek;
    use kmseal_test_support::fake_azure::{FakeCredential, FakeVault};
    const HOST: &str = "kmseal-sops.vault.azure.net";
    let (file, dek) = sops_file_and_data_key().await;
    let fake = FakeVault::start(HOST).await;
    let v1 = fake.create_rsa_key("sops");
    let other = fake.create_rsa_key("other");
    let port = fake.port();
    let entry = |version: &str, ciphertext: &[u8]| {
        format!(
            "    azure_kv:\n        - vault_url: https://{HOST}:{port}\n          name: sops\n          version: {version}\n          created_at: \"2026-12-02T07:20:55Z\"\n          enc: {}\n",
            URL_SAFE_NO_PAD.encode(ciphertext)
        )
    };
    let enc = fake.encrypt("sops", &v1, "RSA-OAEP-256", dek.expose_secret());
    let azure = with_entry(&file, &entry(&v1, &enc));
    let kek = |uri: String| {
        let fake = fake.clone();
        async move {
            let uri: KeyUri = uri.parse().unwrap();
            AzureKek::builder(&uri)
                .unwrap()
                .credential(Arc::new(FakeCredential::new(&fake)))
                .add_root_certificate_pem(fake.ca_pem())
                .connect_to("127.0.0.1".parse().unwrap())
                .retries(0)
                .build()
                .await
                .unwrap()
        }
    };
    // A KEK without a version claims every version of the key; the entry's is asked, also
    // after a rotation.
    let keys = Keys::new(Identities::new()).kek(Arc::new(kek(fake.uri("sops")).await));
    fake.create_rsa_key("sops");
    let plain = kmseal_sops::decrypt(&azure, Format::Yaml, &keys)
        .await
        .unwrap();
    assert_eq!(plain.as_str(), PLAIN);

    // Another key's ciphertext under this key's name, and a tampered one: refused by Key
    // Vault, a typed error.
    let wrong = fake.encrypt("other", &other, "RSA-OAEP-256", dek.expose_secret());
    refused(
        &with_entry(&file, &entry(&v1, &wrong)),
        &keys,
        "invalid ciphertext",
    )
    .await;
    let mut tampered = enc.clone();
    tampered[7] ^= 1;
    refused(
        &with_entry(&file, &entry(&v1, &tampered)),
        &keys,
        "invalid ciphertext",
    )
    .await;
    // A KEK pinned to another version does not claim it; an entry without a version is
    // refused before any call.
    let pinned = Keys::new(Identities::new()).kek(Arc::new(
        kek(format!("{}/{}", fake.uri("sops"), "0123abcd")).await,
    ));
    refused(&azure, &pinned, "no trusted KEK").await;
    refused(
        &with_entry(&file, &entry("", &enc)),
        &keys,
        "no key version",
    )
    .await;
}
