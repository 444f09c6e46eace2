//! Every frozen fixture made by the real `sops` 3.11.0 (tests/fixtures/make.sh) decrypts to
//! the values `sops decrypt` gives, and survives the round trip into a kmseal-sealed document.
//! Tampered copies are refused without plaintext.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use kmseal::{Decryptor, Encryptor, LocalKek};
use kmseal_config::{Entry, Format, Sealer};
use kmseal_sops::{DecryptOptions, Error, Identities, Keys};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{DIR}/{name}")).unwrap()
}

fn keys() -> Keys {
    Keys::new(Identities::from_file(format!("{DIR}/keys.txt")).unwrap())
}

async fn decrypt(text: &str, format: Format) -> Result<String, Error> {
    kmseal_sops::decrypt(text, format, &keys())
        .await
        .map(|z| z.to_string())
}

/// [`decrypt`] accepting `mac_only_encrypted` files (refused by default).
async fn decrypt_mac_only(text: &str, format: Format) -> Result<String, Error> {
    let options = DecryptOptions::new().dangerous_accept_unauthenticated_plain(true);
    kmseal_sops::decrypt_with(text, format, &keys(), &options)
        .await
        .map(|d| d.plaintext().to_owned())
}

/// Seals `plain` with a fresh local KEK, opens it again, and lists (path, value) in order.
async fn sealed_values(plain: &str, format: Format) -> Vec<(String, String)> {
    let kek = Arc::new(LocalKek::generate().unwrap());
    let sealer = Sealer::new(Encryptor::new(kek.clone()), Decryptor::new(kek.clone()));
    let sealed = sealer.seal(plain, format).await.unwrap();
    let secrets = kmseal_config::open(&sealed, format, &Decryptor::new(kek))
        .await
        .unwrap();
    secrets
        .iter()
        .map(|(p, e)| {
            let v = match e {
                Entry::Secret { value, .. } => value.expose_secret().to_owned(),
                Entry::Plain { value, .. } => value.clone(),
            };
            (p.to_string(), v)
        })
        .collect()
}

/// (path, value) of a plaintext document, through kmseal_config's own parser.
async fn values(plain: &str, format: Format) -> Vec<(String, String)> {
    sealed_values(plain, format).await
}

#[tokio::test]
async fn yaml_and_json_fixtures_match_what_sops_decrypts() {
    for (sops, expected, format) in [
        ("app.sops.yaml", "app.expected.yaml", Format::Yaml),
        ("regex.sops.yaml", "regex.expected.yaml", Format::Yaml),
        ("suffix.sops.yaml", "suffix.expected.yaml", Format::Yaml),
        ("maconly.sops.yaml", "maconly.expected.yaml", Format::Yaml),
        ("app.sops.json", "app.expected.json", Format::Json),
    ] {
        let ours = decrypt_mac_only(&read(sops), format).await.unwrap();
        assert!(!ours.contains("sops"), "{sops}: metadata left in:\n{ours}");
        assert!(
            !ours.contains("ENC["),
            "{sops}: ciphertext left in:\n{ours}"
        );
        let got = sealed_values(&ours, format).await;
        let want = values(&read(expected), format).await;
        assert_eq!(got, want, "{sops}:\n{ours}");
    }
}

#[tokio::test]
async fn yaml_keeps_order_types_and_comments() {
    let ours = decrypt(&read("app.sops.yaml"), Format::Yaml).await.unwrap();
    let want = "\
# Application settings
database:
  host: db.internal
  port: 5432
  # the real one
  password: correct-horse-battery-staple
  ratio: 0.75
  enabled: true
  disabled: false
  empty: \"\"
servers:
  - alpha.example.com
  - 10
  - name: beta
    token: \"s3cr3t: with colon\"
nested:
  deeper:
    # a comment before a key
    key: \"line one\\nline two\"
    unicode: \"héllo wörld ✓\"
    quoted: \"yes\"
    numeric_string: \"0123\"
";
    assert_eq!(ours, want);
}

#[tokio::test]
async fn json_keeps_order_and_types() {
    let ours = decrypt(&read("app.sops.json"), Format::Json).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&ours).unwrap();
    let want: serde_json::Value = serde_json::from_str(&read("app.expected.json")).unwrap();
    assert_eq!(v, want);
    let keys: Vec<&str> = [
        "api_key", "port", "ratio", "debug", "nothing", "list", "nested",
    ]
    .into();
    let mut at = 0;
    for k in keys {
        let i = ours.find(&format!("\"{k}\"")).unwrap();
        assert!(i > at, "{k} out of order");
        at = i;
    }
}

#[tokio::test]
async fn dotenv_fixture() {
    let ours = decrypt(&read("app.sops.env"), Format::Dotenv)
        .await
        .unwrap();
    assert_eq!(
        ours,
        "# database credentials\nDB_USER=admin\nDB_PASSWORD=\"hunter2 with spaces\"\nAPI_TOKEN=abc123\nEMPTY=\"\"\n"
    );
    let got = sealed_values(&ours, Format::Dotenv).await;
    assert_eq!(
        got,
        [
            ("DB_USER", "admin"),
            ("DB_PASSWORD", "hunter2 with spaces"),
            ("API_TOKEN", "abc123"),
            ("EMPTY", ""),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
}

#[tokio::test]
async fn unencrypted_parts_stay_and_count_in_the_mac() {
    let ours = decrypt(&read("suffix.sops.yaml"), Format::Yaml)
        .await
        .unwrap();
    assert!(ours.contains("host_unencrypted: db.internal"));
    assert!(ours.contains("password: pw-suffix-1"));
    assert!(ours.contains("inner: still-plain"));
    // Changing a plaintext value breaks the MAC (it covers the text of every value).
    let edited =
        read("suffix.sops.yaml").replace("port_unencrypted: 5432", "port_unencrypted: 5433");
    assert!(matches!(
        decrypt(&edited, Format::Yaml).await,
        Err(Error::MacMismatch)
    ));
    // With mac_only_encrypted, plaintext values are outside the MAC, as in SOPS: refused
    // unless accepted.
    let edited = read("maconly.sops.yaml").replace("replicas: 3", "replicas: 4");
    assert!(matches!(
        decrypt(&edited, Format::Yaml).await,
        Err(Error::UnauthenticatedPlain)
    ));
    assert!(
        decrypt_mac_only(&edited, Format::Yaml)
            .await
            .unwrap()
            .contains("replicas: 4")
    );
}

/// Every way of tampering gives a typed error whose text holds no plaintext.
#[tokio::test]
async fn tampering_is_refused_without_plaintext() {
    let orig = read("app.sops.yaml");
    let lines: Vec<&str> = orig.lines().collect();
    let value_of = |key: &str| {
        lines
            .iter()
            .find(|l| l.trim_start().starts_with(&format!("{key}: ENC[")))
            .unwrap()
            .split_once(": ")
            .unwrap()
            .1
            .to_owned()
    };
    let (host, user) = (value_of("host"), value_of("token"));
    let swapped = orig
        .replace(&host, "@@")
        .replace(&user, &host)
        .replace("@@", &user);
    let mac_line = lines.iter().find(|l| l.contains("mac: ENC[")).unwrap();
    let other_mac = mac_line.replacen("data:", "data:AAAA", 1);
    let cases = [
        ("values swapped", swapped),
        ("MAC altered", orig.replace(mac_line, &other_mac)),
        (
            "lastmodified changed",
            orig.replace(
                "lastmodified: \"2026-12-02T07:20:55Z\"",
                "lastmodified: \"2026-12-02T07:20:56Z\"",
            ),
        ),
        (
            "value removed",
            orig.replace(&format!("    host: {host}\n"), ""),
        ),
        (
            "plain value added",
            orig.replace("servers:\n", "extra: 1\nservers:\n"),
        ),
    ];
    for (what, text) in cases {
        assert_ne!(text, orig, "{what}: the edit did not apply");
        let err = decrypt(&text, Format::Yaml).await.expect_err(what);
        let msg = format!("{err} {err:?}");
        for secret in [
            "correct-horse",
            "db.internal",
            "beta",
            "s3cr3t",
            "alpha.example",
        ] {
            assert!(!msg.contains(secret), "{what}: {msg}");
        }
    }
}

#[tokio::test]
async fn wrong_or_missing_identity_lists_what_was_tried() {
    let err = kmseal_sops::decrypt(
        &read("app.sops.yaml"),
        Format::Yaml,
        &Keys::new(Identities::new()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NoDataKey(_)), "{err}");
    assert!(
        err.to_string()
            .contains("age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw")
    );
    // The JSON file is also encrypted to the second key: it alone opens it.
    let second: String = read("keys.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .nth(1)
        .unwrap()
        .to_owned();
    let keys = Keys::new(Identities::parse(&second).unwrap());
    assert!(
        kmseal_sops::decrypt(&read("app.sops.json"), Format::Json, &keys)
            .await
            .is_ok()
    );
    assert!(
        kmseal_sops::decrypt(&read("app.sops.yaml"), Format::Yaml, &keys)
            .await
            .is_err()
    );
}

/// Garbage, truncations and bit flips give typed errors, never a panic, never plaintext.
#[tokio::test]
async fn garbage_truncation_and_bit_flips() {
    for (name, format) in [
        ("app.sops.yaml", Format::Yaml),
        ("app.sops.json", Format::Json),
        ("app.sops.env", Format::Dotenv),
    ] {
        let orig = read(name);
        let step = (orig.len() / 97).max(1);
        for cut in (0..orig.len()).step_by(step) {
            if !orig.is_char_boundary(cut) {
                continue;
            }
            let _ = decrypt(&orig[..cut], format).await;
        }
        let bytes = orig.as_bytes();
        for i in (0..bytes.len()).step_by(step) {
            let mut b = bytes.to_vec();
            b[i] ^= 0x04;
            let Ok(t) = String::from_utf8(b) else {
                continue;
            };
            if let Ok(out) = decrypt(&t, format).await {
                // Only a flip that SOPS ignores too (in a comment's ciphertext, or metadata
                // that is not authenticated) may still decrypt.
                let leaked = out
                    .lines()
                    .any(|l| !l.trim_start().starts_with('#') && l.contains("ENC["));
                assert!(!leaked, "{name} byte {i}");
            }
        }
    }
    for garbage in [
        "",
        "{",
        "sops: 1",
        "a: [",
        "\u{0}",
        "sops:\n  lastmodified: x\n",
    ] {
        assert!(decrypt(garbage, Format::Yaml).await.is_err());
        assert!(decrypt(garbage, Format::Json).await.is_err());
    }
    assert!(decrypt("A=1\nsops_mac=x\n", Format::Dotenv).await.is_err());
    assert!(matches!(
        decrypt("a = 1", Format::Toml).await,
        Err(Error::Unsupported(_))
    ));
}
