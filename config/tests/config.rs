//! Value-level config documents in all four formats: round trips of real-world-shaped files,
//! stable diffs, every kind of tampering, policies, start-up requirements, rewrap, and
//! malformed input (never a panic).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use kmseal::rotate::Rotator;
use kmseal::{Decryptor, Encryptor, LocalKek};
use kmseal_config::{Entry, Error, Format, Policy, Problem, Require, Sealer, Secrets};

const YAML: &str = include_str!("data/service.yaml");
const JSON: &str = include_str!("data/service.json");
const TOML: &str = include_str!("data/service.toml");
const ENV: &str = include_str!("data/service.env");

fn block<F: std::future::Future>(f: F) -> F::Output {
    kmseal::blocking::block_on(f)
}

fn kek() -> Arc<LocalKek> {
    Arc::new(LocalKek::generate().unwrap())
}

fn sealer(k: &Arc<LocalKek>) -> Sealer {
    Sealer::new(Encryptor::new(k.clone()), Decryptor::new(k.clone()))
}

/// The decrypted text of a sealed document (keeping its metadata block when `keep`).
fn decrypt_text(sealed: &str, f: Format, k: &Arc<LocalKek>, keep: bool) -> String {
    block(kmseal_config::decrypt(
        sealed,
        f,
        &Decryptor::new(k.clone()),
        keep,
    ))
    .unwrap()
}

fn open(text: &str, f: Format, k: &Arc<LocalKek>) -> Result<Secrets, Error> {
    block(kmseal_config::open(text, f, &Decryptor::new(k.clone())))
}

/// (path, value) of every entry, secrets exposed (test only).
fn values(s: &Secrets) -> Vec<(String, String)> {
    s.iter()
        .map(|(p, e)| {
            let v = match e {
                Entry::Secret { value, .. } => value.expose_secret().to_owned(),
                Entry::Plain { value, .. } => value.clone(),
            };
            (p.to_string(), v)
        })
        .collect()
}

fn cases() -> [(&'static str, Format, &'static str); 4] {
    [
        ("yaml", Format::Yaml, YAML),
        ("json", Format::Json, JSON),
        ("toml", Format::Toml, TOML),
        ("env", Format::Dotenv, ENV),
    ]
}

/// Secrets each fixture holds, and where.
fn expected(name: &str) -> Vec<(&'static str, &'static str)> {
    match name {
        "yaml" => vec![
            ("database.password", "s3cr3t-p@ss: with colon"),
            ("api_keys[1]", "ak_live_quoted's"),
            (
                "tls.key",
                "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n",
            ),
            ("tls.note", "folded text over two lines"),
            ("greeting", "héllo wörld ✓ 日本"),
            ("service.replicas", "3"),
            ("service.debug", "false"),
        ],
        "json" => vec![
            ("database.password", "s3cr3t \"quoted\" \\ back\nslash"),
            ("greeting", "héllo wörld ✓ 😀"),
            ("api_keys[0]", "ak_live_1234567890"),
            ("big", "-1.5e10"),
        ],
        "toml" => vec![
            ("database.password", "s3cr3t-literal\\path"),
            ("database.multi", "line one\nline two"),
            ("servers[1].token", "tok-beta"),
            ("inline.point.secret", "in-inline"),
            ("big", "1_000_000"),
            ("started", "1979-05-27T07:32:00Z"),
        ],
        "env" => vec![
            ("DB_PASSWORD", "s3cr3t \"quoted\" with spaces"),
            ("JWT_SECRET", "literal $NOT_EXPANDED"),
            ("GREETING", "héllo ✓"),
            ("PORT", "5432"),
        ],
        _ => unreachable!(),
    }
}

#[test]
fn every_format_round_trips_with_comments_and_order_kept() {
    let k = kek();
    for (name, f, text) in cases() {
        let sealed = block(sealer(&k).seal(text, f)).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Secrets are gone from the text; comments and keys are still there, in order.
        for (_, secret) in expected(name) {
            if secret.len() > 6 {
                assert!(
                    !sealed.contains(secret),
                    "{name}: `{secret}` in clear:\n{sealed}"
                );
            }
        }
        for line in text.lines().filter(|l| l.trim_start().starts_with('#')) {
            assert!(
                sealed.contains(line),
                "{name}: comment lost: {line}\n{sealed}"
            );
        }
        let keys_in = |t: &str| -> Vec<String> {
            t.lines()
                .filter_map(|l| l.split([':', '=']).next())
                .map(|k| k.trim().trim_matches('"').to_owned())
                .filter(|k| !k.is_empty() && !k.starts_with('#') && !k.starts_with("kmseal"))
                .collect()
        };
        let original_keys = keys_in(text);
        let sealed_keys: Vec<String> = keys_in(&sealed)
            .into_iter()
            .filter(|k| original_keys.contains(k))
            .collect();
        assert!(
            original_keys.starts_with(&sealed_keys[..sealed_keys.len().min(5)]),
            "{name}: key order changed"
        );

        let secrets = open(&sealed, f, &k).unwrap_or_else(|e| panic!("{name}: {e}\n{sealed}"));
        let got = values(&secrets);
        for (path, want) in expected(name) {
            let v = got
                .iter()
                .find(|(p, _)| p == path)
                .unwrap_or_else(|| panic!("{name}: no {path} in {got:?}"));
            assert_eq!(v.1, want, "{name}: {path}");
            assert!(
                secrets.secret(path).is_some(),
                "{name}: {path} not encrypted"
            );
        }

        // Decrypting restores the same values and types.
        let plain = decrypt_text(&sealed, f, &k, false);
        assert!(!plain.contains("kmseal:v1:"), "{name}");
        let again = block(sealer(&k).seal(&plain, f)).unwrap();
        let reopened = values(&open(&again, f, &k).unwrap());
        assert_eq!(reopened, got, "{name}: decrypt + seal changed values");
        if f == Format::Json {
            let a: serde_json::Value = serde_json::from_str(text).unwrap();
            let b: serde_json::Value = serde_json::from_str(&plain).unwrap();
            assert_eq!(a, b, "json: decrypted document differs from the original");
        }
    }
}

#[test]
fn unchanged_values_keep_their_ciphertexts() {
    let k = kek();
    for (name, f, text) in cases() {
        let s = sealer(&k);
        let sealed = block(s.seal(text, f)).unwrap();
        // Sealing a sealed document changes nothing.
        assert_eq!(block(s.seal(&sealed, f)).unwrap(), sealed, "{name}");
        // Decrypt (keeping the metadata), edit one value, seal: one line differs.
        let plain = decrypt_text(&sealed, f, &k, true);
        let (old, new) = match f {
            Format::Dotenv => ("APP_NAME=billing", "APP_NAME=invoicing"),
            Format::Toml => ("port = 5432", "port = 6543"),
            _ => ("5432", "6543"),
        };
        assert!(plain.contains(old), "{name}");
        // Unedited, the decrypted document re-seals to the same bytes without any flag.
        assert_eq!(block(s.seal(&plain, f)).unwrap(), sealed, "{name}");
        let edited = plain.replacen(old, new, 1);
        // An edit is never sealed silently: seal names it, and the owner accepts it.
        let path = if f == Format::Dotenv {
            "APP_NAME"
        } else {
            "database.port"
        };
        match block(s.seal(&edited, f)) {
            Err(kmseal_config::Error::Changed(list)) => {
                assert_eq!(list, [format!("changed `{path}`")], "{name}")
            }
            other => panic!("{name}: {:?}", other.map(|_| ())),
        }
        let resealed = block(s.clone().accept_changes(true).seal(&edited, f)).unwrap();
        let changed: Vec<(&str, &str)> = sealed
            .lines()
            .zip(resealed.lines())
            .filter(|(a, b)| a != b)
            .collect();
        // The edited value's line and the metadata lines (manifest, MACs, and the set times:
        // the edited value gets a new one, a second group once the clock has moved on, which
        // under load it may have) only.
        let meta_line =
            |l: &str| l.contains("mac") || l.contains("manifest") || l.contains("times");
        let values: Vec<_> = changed.iter().filter(|(a, _)| !meta_line(a)).collect();
        assert_eq!(values.len(), 1, "{name}: {changed:#?}");
        assert!(changed.iter().any(|(a, _)| a.contains("mac")), "{name}");
    }
}

fn assert_tampered(r: Result<Secrets, Error>, what: &str) {
    match r {
        Err(Error::Tampered(_)) | Err(Error::Kmseal(_)) | Err(Error::Metadata(_)) => {}
        Err(other) => panic!("{what}: unexpected error {other}"),
        Ok(_) => panic!("{what}: accepted"),
    }
}

/// The encrypted strings of a sealed text, in order.
fn ciphertexts(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("kmseal:v1:") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == ':' || c == '-' || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

#[test]
fn every_kind_of_tampering_is_refused() {
    let k = kek();
    for (name, f, text) in cases() {
        let sealed = block(sealer(&k).seal(text, f)).unwrap();
        let cts = ciphertexts(&sealed);
        assert!(cts.len() >= 4, "{name}");
        assert!(open(&sealed, f, &k).is_ok());

        // Edit a ciphertext.
        let c = &cts[0];
        let flipped = format!(
            "{}{}",
            &c[..c.len() - 1],
            if c.ends_with('A') { 'B' } else { 'A' }
        );
        assert_tampered(
            open(&sealed.replacen(c, &flipped, 1), f, &k),
            &format!("{name}: edit"),
        );
        // Swap two values (each moves to the other's path).
        let swapped = sealed
            .replacen(&cts[0], "@@0@@", 1)
            .replacen(&cts[1], &cts[0], 1)
            .replacen("@@0@@", &cts[1], 1);
        assert_tampered(open(&swapped, f, &k), &format!("{name}: swap"));
        // Copy a value over another (move to another path).
        assert_tampered(
            open(&sealed.replacen(&cts[1], &cts[0], 1), f, &k),
            &format!("{name}: move"),
        );
        // Change a plain value.
        let plain_edit = match f {
            Format::Dotenv => sealed.replacen("APP_NAME=billing", "APP_NAME=evil", 1),
            Format::Json => sealed.replacen("\"name\": \"billing\"", "\"name\": \"evil\"", 1),
            _ => sealed.clone(),
        };
        if plain_edit != sealed {
            assert_tampered(open(&plain_edit, f, &k), &format!("{name}: plain value"));
        }
        // Change the metadata: policy, MAC, header.
        let policy_edit = sealed.replacen("encrypt", "encrypt_x", 1);
        assert!(open(&policy_edit, f, &k).is_err(), "{name}: metadata field");
        let other = block(sealer(&k).seal(text, f)).unwrap();
        let mac_of = |t: &str| t.lines().find(|l| l.contains("mac")).unwrap().to_owned();
        let spliced_mac = sealed.replacen(&mac_of(&sealed), &mac_of(&other), 1);
        assert_tampered(
            open(&spliced_mac, f, &k),
            &format!("{name}: mac from another document"),
        );
        // Splice a value from another document (same KEK, same path).
        let other_cts = ciphertexts(&other);
        assert_ne!(
            other_cts[0], cts[0],
            "{name}: documents have their own keys"
        );
        assert_tampered(
            open(&sealed.replacen(&cts[0], &other_cts[0], 1), f, &k),
            &format!("{name}: splice"),
        );
        // Another KEK cannot open it at all.
        assert!(open(&sealed, f, &kek()).is_err());
    }
}

#[test]
fn deleting_adding_or_reordering_values_is_refused() {
    let k = kek();
    let yaml = "a: one\nb: two\nc: three\n";
    let sealed = block(sealer(&k).seal(yaml, Format::Yaml)).unwrap();
    let lines: Vec<&str> = sealed.lines().collect();
    let without_b: String = lines
        .iter()
        .filter(|l| !l.starts_with("b:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_tampered(open(&without_b, Format::Yaml, &k), "delete");
    assert_tampered(open(&format!("x: 1\n{sealed}"), Format::Yaml, &k), "add");
    let mut reordered = lines.clone();
    reordered.swap(0, 1);
    let reordered: String = reordered.iter().map(|l| format!("{l}\n")).collect();
    assert_tampered(open(&reordered, Format::Yaml, &k), "reorder");

    // A key named "a.b" and the path a → b are different places.
    let json = r#"{"a": {"b": "nested"}, "a.b": "dotted"}"#;
    let sealed = block(sealer(&k).seal(json, Format::Json)).unwrap();
    let s = open(&sealed, Format::Json, &k).unwrap();
    assert_eq!(s.secret("a.b").unwrap().expose_secret(), "nested");
    assert_eq!(s.secret("a\\.b").unwrap().expose_secret(), "dotted");
    let cts = ciphertexts(&sealed);
    let swapped = sealed
        .replacen(&cts[0], "@@", 1)
        .replacen(&cts[1], &cts[0], 1)
        .replacen("@@", &cts[1], 1);
    assert_tampered(open(&swapped, Format::Json, &k), "a.b swap");
}

#[test]
fn policies_select_values_and_are_kept_in_the_document() {
    let k = kek();
    let yaml = "db_password: hunter2hunter2\napi_secret: xyz\nhost: db.internal\nport: 5432\nmy_password_hint: plain please\n";
    let s = sealer(&k).policy(
        Policy::only(["*_password", "*_secret"])
            .unwrap()
            .except(["*_hint"])
            .unwrap(),
    );
    let sealed = block(s.seal(yaml, Format::Yaml)).unwrap();
    assert!(sealed.contains("host: db.internal") && sealed.contains("port: 5432"));
    assert!(!sealed.contains("hunter2"));
    let secrets = open(&sealed, Format::Yaml, &k).unwrap();
    assert!(secrets.secret("db_password").is_some() && secrets.secret("api_secret").is_some());
    assert_eq!(secrets.plain("host"), Some("db.internal"));
    // A new secret added later follows the stored policy (no policy given this time).
    let plain = decrypt_text(&sealed, Format::Yaml, &k, true);
    let edited = plain.replacen("port: 5432", "port: 5432\nnew_secret: fresh-value", 1);
    let resealed = block(sealer(&k).accept_changes(true).seal(&edited, Format::Yaml)).unwrap();
    assert!(!resealed.contains("fresh-value"));
    assert!(Policy::only(["a,b"]).is_err());

    // set: a sealed document gets a new value, encrypted by policy, MAC renewed.
    let set = block(s.set(
        &resealed,
        Format::Yaml,
        "db_password",
        "a-much-longer-password",
    ))
    .unwrap();
    let opened = open(&set, Format::Yaml, &k).unwrap();
    assert_eq!(
        opened.secret("db_password").unwrap().expose_secret(),
        "a-much-longer-password"
    );
    assert!(block(s.set(&resealed, Format::Yaml, "missing", "x")).is_err());
}

#[test]
fn the_guides_template_values_and_guessable_secrets_fail_the_startup_check() {
    let k = kek();
    // The values a template ships with, and one that is merely guessable.
    let yaml = "database:\n  password: <generate-strong-password>\n  host: db.example.internal\n\
                jwt:\n  secret: your-jwt-secret-here-0123456789abcdef\n\
                api:\n  key: changeme\n  token: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n";
    let sealed = block(
        sealer(&k)
            .policy(Policy::only(["password", "secret", "key", "token"]).unwrap())
            .seal(yaml, Format::Yaml),
    )
    .unwrap();
    let s = open(&sealed, Format::Yaml, &k).unwrap();
    let rules = [
        Require::secret("database.password").min_len(16),
        Require::secret("jwt.secret").min_len(32),
        Require::secret("api.key"),
        Require::secret("api.token").min_len(32).min_entropy(128),
        Require::present("database.host"),
    ];
    let findings = s.findings(&rules);
    let by_path = |p: &str| -> Vec<&Problem> {
        findings
            .iter()
            .filter(|f| f.path == p)
            .map(|f| &f.problem)
            .collect()
    };
    assert_eq!(by_path("database.password"), [&Problem::Placeholder]);
    assert_eq!(by_path("jwt.secret"), [&Problem::Placeholder]);
    assert!(by_path("api.key").contains(&&Problem::Placeholder));
    assert!(
        by_path("api.token").iter().any(|p| matches!(
            p,
            Problem::LowEntropy {
                estimated_bits: 0,
                min_bits: 128
            }
        )),
        "{findings:?}"
    );
    assert!(
        by_path("database.host").is_empty(),
        "a plain host is not a placeholder check"
    );
    let msg = s.check(&rules).unwrap_err().to_string();
    for leaked in ["generate-strong", "your-jwt", "changeme", "aaaa"] {
        assert!(!msg.contains(leaked), "{msg}");
    }
    // A generated value passes every rule.
    let generated = kmseal::secret::GenerateSpec::default().generate().unwrap();
    let set = block(sealer(&k).set(
        &sealed,
        Format::Yaml,
        "api.token",
        generated.expose_secret(),
    ))
    .unwrap();
    let s = open(&set, Format::Yaml, &k).unwrap();
    assert!(
        s.findings(&[Require::secret("api.token").min_len(32).min_entropy(128)])
            .is_empty()
    );
}

#[test]
fn startup_requirements_report_everything_at_once_without_values() {
    let k = kek();
    let yaml =
        "database:\n  password: short\n  host: db\njwt:\n  secret: \"\"\nplain_key: visible\n";
    let sealed = block(
        sealer(&k)
            .policy(Policy::only(["password", "secret"]).unwrap())
            .seal(yaml, Format::Yaml),
    )
    .unwrap();
    let s = open(&sealed, Format::Yaml, &k).unwrap();
    let err = s
        .check(&[
            Require::secret("database.password").min_len(16),
            Require::secret("jwt.secret").min_len(32),
            Require::secret("encryption.key").min_len(32),
            Require::secret("plain_key"),
            Require::present("database.host"),
        ])
        .unwrap_err();
    let msg = err.to_string();
    for part in [
        "`database.password` is shorter than 16 characters (5)",
        "`jwt.secret` is empty",
        "`encryption.key` is missing",
        "`plain_key` is not encrypted",
    ] {
        assert!(msg.contains(part), "{msg}");
    }
    assert!(
        !msg.contains("short") || msg.contains("shorter"),
        "no values in errors: {msg}"
    );
    assert!(!msg.contains("visible"));
    assert!(s.check(&[Require::present("database.host")]).is_ok());
}

#[test]
fn plain_values_deserialize_and_env_names_follow_paths() {
    #[derive(serde::Deserialize)]
    struct Service {
        name: String,
        replicas: u32,
        debug: bool,
    }
    #[derive(serde::Deserialize)]
    struct Config {
        service: Service,
    }
    let k = kek();
    let sealed = block(
        sealer(&k)
            .policy(Policy::only(["password", "api_keys"]).unwrap())
            .seal(YAML, Format::Yaml),
    )
    .unwrap();
    let s = open(&sealed, Format::Yaml, &k).unwrap();
    let c: Config = s.deserialize_plain().unwrap();
    assert_eq!(
        (c.service.name.as_str(), c.service.replicas, c.service.debug),
        ("billing", 3, false)
    );
    let env = s.env_vars();
    assert!(env.contains(&("DATABASE_PASSWORD".into(), "s3cr3t-p@ss: with colon")));
    assert!(env.contains(&("API_KEYS_0".into(), "ak_live_1234567890")));
    assert!(
        !s.plain_json().to_string().contains("s3cr3t"),
        "secrets stay out of plain_json"
    );

    let sealed_env = block(sealer(&k).seal("db_url=postgres://x\n", Format::Dotenv)).unwrap();
    let s = open(&sealed_env, Format::Dotenv, &k).unwrap();
    assert_eq!(s.env_vars(), vec![("db_url".to_owned(), "postgres://x")]);
}

#[test]
fn a_document_opens_after_its_kek_is_rotated() {
    let (a, b) = (kek(), kek());
    for (name, f, text) in cases() {
        let sealed = block(sealer(&a).seal(text, f)).unwrap();
        let before = values(&open(&sealed, f, &a).unwrap());
        let rot = Rotator::rewrap(Decryptor::new(a.clone()), vec![b.clone()]);
        let rewrapped = block(kmseal_config::rewrap(&sealed, f, &rot)).unwrap();
        // Only the header line changed.
        let changed = sealed
            .lines()
            .zip(rewrapped.lines())
            .filter(|(x, y)| x != y)
            .count();
        assert_eq!(changed, 1, "{name}");
        assert_eq!(values(&open(&rewrapped, f, &b).unwrap()), before, "{name}");
        assert!(
            open(&rewrapped, f, &a).is_err(),
            "{name}: the old KEK is gone"
        );
    }
}

#[test]
fn malformed_documents_are_errors_never_panics() {
    let k = kek();
    let garbage = [
        "",
        "{",
        "}",
        "[1,2]",
        "\"str\"",
        "a: [1, 2",
        "a:\n  - b\n - c",
        "---\na: 1\n---\nb: 2\n",
        "- just\n- a list\n",
        "{\"a\": 1,}",
        "{\"a\" 1}",
        "{\"a\": \"\\x\"}",
        "{\"a\": tru}",
        "[table\nx=1",
        "x = ",
        "x = \"unterminated",
        "KEY",
        "1KEY=x",
        "K=\"open",
        "K='open",
        "K=a b c d\nK=again",
        "kmseal: 1\n",
        "{\"kmseal\": {}}",
        "[kmseal]\nversion = \"1\"\n",
        "#kmseal.version=1\n",
        "a: b\nkmseal:\n  version: \"9\"\n  encrypt: \"*\"\n  plain: \"\"\n  header: \"AAAA\"\n  mac: \"AAAA\"\n",
    ];
    for f in [Format::Yaml, Format::Json, Format::Toml, Format::Dotenv] {
        for g in garbage {
            let _ = block(sealer(&k).seal(g, f));
            assert!(open(g, f, &k).is_err(), "{f:?}: {g:?} opened");
        }
        let deep = "[".repeat(10_000);
        assert!(block(sealer(&k).seal(&format!("{{\"a\": {deep}"), Format::Json)).is_err());
    }
    // Truncations and character flips of sealed documents: errors, or (when only layout or
    // comments changed) the very same values.
    for (name, f, text) in cases() {
        let sealed = block(sealer(&k).seal(text, f)).unwrap();
        let want = values(&open(&sealed, f, &k).unwrap());
        let chars: Vec<char> = sealed.chars().collect();
        for cut in (0..chars.len()).step_by(7) {
            let t: String = chars[..cut].iter().collect();
            if let Ok(s) = open(&t, f, &k) {
                assert_eq!(values(&s), want, "{name}: truncated at {cut}");
            }
        }
        for at in (0..chars.len()).step_by(5) {
            let mut c = chars.clone();
            c[at] = match c[at] {
                'a' => 'b',
                '\n' => ' ',
                _ => 'a',
            };
            let t: String = c.iter().collect();
            if let Ok(s) = open(&t, f, &k) {
                assert_eq!(values(&s), want, "{name}: flipped at {at}");
            }
        }
    }
}

#[test]
fn whole_blob_mode_opens_an_encrypted_file_into_secrets() {
    let k = kek();
    for (name, f, text) in cases() {
        let msg = Encryptor::new(k.clone())
            .encrypt_blocking(text.as_bytes())
            .unwrap();
        let s = block(kmseal_config::open_blob(
            &msg,
            f,
            &Decryptor::new(k.clone()),
        ))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        for (path, want) in expected(name) {
            assert_eq!(
                s.secret(path).unwrap().expose_secret(),
                want,
                "{name}: {path}"
            );
        }
        let mut bad = msg.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(
            block(kmseal_config::open_blob(
                &bad,
                f,
                &Decryptor::new(k.clone())
            ))
            .is_err()
        );
    }
    let msg = Encryptor::new(k.clone())
        .encrypt_blocking(b"not: [valid")
        .unwrap();
    assert!(matches!(
        block(kmseal_config::open_blob(
            &msg,
            Format::Yaml,
            &Decryptor::new(k)
        )),
        Err(Error::Parse { .. })
    ));
}

/// Found by the `config` fuzz target: a YAML document whose root mapping is indented got a
/// metadata block at column 0, which is not YAML, so the sealed document did not open.
#[test]
fn regression_indented_yaml_root_gets_matching_metadata() {
    let k = kek();
    for text in [
        "#service:\n  name: billing          ",
        "  a: 1\n  b:\n    c: secret\n",
        "\n\n    x: y # comment\n",
    ] {
        let sealed = block(sealer(&k).seal(text, Format::Yaml)).unwrap();
        let s =
            open(&sealed, Format::Yaml, &k).unwrap_or_else(|e| panic!("{text:?}: {e}\n{sealed}"));
        assert!(s.iter().count() >= 1);
    }
}

/// Found by the `config` fuzz target: in .env, a quoted value followed by a comment became a
/// bare value that swallowed the comment, so the sealed document did not verify. (A comment
/// with no space after the quote, `'v'#c`, is refused since audit finding 7.)
#[test]
fn regression_dotenv_comment_right_after_a_quoted_value() {
    let k = kek();
    let text = "JWT_SECRET='literal $NOT_EXPANDED' # the port\nA=\"x\" #c\n";
    let sealed = block(sealer(&k).seal(text, Format::Dotenv)).unwrap();
    let s = open(&sealed, Format::Dotenv, &k).unwrap_or_else(|e| panic!("{e}\n{sealed}"));
    assert_eq!(
        s.secret("JWT_SECRET").unwrap().expose_secret(),
        "literal $NOT_EXPANDED"
    );
    assert_eq!(s.secret("A").unwrap().expose_secret(), "x");
    let plain = decrypt_text(&sealed, Format::Dotenv, &k, false);
    let again = block(sealer(&k).seal(&plain, Format::Dotenv)).unwrap();
    assert!(open(&again, Format::Dotenv, &k).is_ok(), "{plain}");
}

/// Found by the `config` fuzz target: a plain YAML scalar ending in a control character that
/// Unicode calls white space (a vertical tab) was cut short, leaving the character after the
/// encrypted string, which is not YAML.
#[test]
fn regression_yaml_plain_scalar_ending_in_a_vertical_tab() {
    let k = kek();
    let text = "\u{1e}# Billing se\u{1}: conexpo\u{b}";
    let sealed = block(sealer(&k).seal(text, Format::Yaml)).unwrap();
    let s = open(&sealed, Format::Yaml, &k).unwrap_or_else(|e| panic!("{e}\n{sealed:?}"));
    assert_eq!(s.iter().count(), 1);
}

/// Found by the `config` fuzz target: an empty tagged YAML value (`!name:` with nothing after
/// it) got its encrypted string glued to the tag.
#[test]
fn regression_yaml_empty_tagged_value() {
    let k = kek();
    for text in ["# c\nservice:\n !name:", "a: !t\nb: !!str x\n"] {
        let sealed = block(sealer(&k).seal(text, Format::Yaml)).unwrap();
        let s = open(&sealed, Format::Yaml, &k).unwrap_or_else(|e| panic!("{e}\n{sealed:?}"));
        assert!(s.iter().count() >= 1);
    }
}

/// Found by the `config` fuzz target: a lone CR is a YAML line break, and the root key after
/// it was indented with tabs, which YAML forbids (the parser let it through): refused with a
/// clear error now, instead of producing a document that does not open.
#[test]
fn regression_yaml_cr_line_break_and_tab_indented_root() {
    let k = kek();
    let text = "# lBilli\t\t\t\t\u{10}\t\t\r\t\tce:\n  name: bil\t\t\t\t\u{10}\t";
    match block(sealer(&k).seal(text, Format::Yaml)) {
        Err(Error::Parse { message, .. }) => assert!(message.contains("tabs"), "{message}"),
        Err(e) => panic!("{e}"),
        Ok(sealed) => {
            open(&sealed, Format::Yaml, &k).unwrap_or_else(|e| panic!("{e}\n{sealed:?}"));
        }
    }
    // A lone CR before a space-indented root is fine.
    let sealed = block(sealer(&k).seal("# c\r  a: 1\r  b: x\n", Format::Yaml)).unwrap();
    open(&sealed, Format::Yaml, &k).unwrap_or_else(|e| panic!("{e}\n{sealed:?}"));
}

/// Found by the `config` fuzz target: an empty literal block scalar followed by an odd line
/// was rewritten into invalid YAML. Empty block scalars are now left alone, and every sealed
/// document is parsed back and compared before it is returned, so any layout this crate
/// cannot rewrite is refused instead of written broken.
#[test]
fn regression_yaml_empty_block_scalar_and_read_back_check() {
    let k = kek();
    let text = "tls:\n  key: |\n  : \"h\u{e9}llo\"\nempty:\n";
    match block(sealer(&k).seal(text, Format::Yaml)) {
        Ok(sealed) => {
            open(&sealed, Format::Yaml, &k).unwrap_or_else(|e| panic!("{e}\n{sealed:?}"));
        }
        Err(Error::Unsupported(m)) => assert!(m.contains("cannot be rewritten safely"), "{m}"),
        Err(e) => panic!("{e}"),
    }
}

/// Found by the `config` fuzz target: a JSON syntax error inside a multi-byte character made
/// the line count slice the text off a character boundary: a panic. Now an error.
#[test]
fn regression_json_error_inside_a_multibyte_character_is_an_error() {
    let k = kek();
    let text = "{\n  \"password\": \"s3cr3t \\\u{7d0}";
    assert!(matches!(
        block(sealer(&k).seal(text, Format::Json)),
        Err(Error::Parse { .. })
    ));
    assert!(open(text, Format::Json, &k).is_err());
}

/// Audit finding 1: re-sealing must never launder a key-less edit. Before the fix, setting
/// `plain: "*"` (or an `encrypt` glob that matches nothing) made the owner's next routine seal
/// write every secret back in plaintext under a fresh valid MAC.
#[test]
fn audit_1_reseal_never_launders_tampering() {
    let k = kek();
    let yaml = "user: app\ndb_password: correct-horse-battery\napi_secret: s3cr3t-api-key\n";
    let s = sealer(&k).policy(Policy::only(["*_password", "*_secret"]).unwrap());
    let sealed = block(s.seal(yaml, Format::Yaml)).unwrap();
    let routine = sealer(&k); // no policy, no flags: the owner's `kmseal config encrypt FILE`

    // The policy widened without the key: refused by the metadata MAC, flags or not.
    for (from, to) in [
        ("  plain: \"\"", "  plain: \"*\""),
        (
            "  encrypt: \"*_password,*_secret\"",
            "  encrypt: \"nothing-matches\"",
        ),
    ] {
        assert!(sealed.contains(from), "{sealed}");
        let tampered = sealed.replace(from, to);
        for sealer in [routine.clone(), routine.clone().accept_changes(true)] {
            match block(sealer.seal(&tampered, Format::Yaml)) {
                Err(Error::Tampered(m)) => assert!(m.contains("metadata"), "{m}"),
                other => panic!("{to}: {:?}", other.map(|t| t.contains("correct-horse"))),
            }
        }
        assert_tampered(open(&tampered, Format::Yaml, &k), to);
    }

    // A plain value edited without the key: refused, naming the path; accepted explicitly.
    let edited = sealed.replace("user: app", "user: admin");
    match block(routine.seal(&edited, Format::Yaml)) {
        Err(Error::Changed(list)) => assert_eq!(list, ["changed `user`"]),
        other => panic!("{:?}", other.map(|_| ())),
    }
    let added = sealed.replace("user: app\n", "user: app\nextra: 1\n");
    match block(routine.seal(&added, Format::Yaml)) {
        Err(Error::Changed(list)) => assert_eq!(list, ["added `extra`"]),
        other => panic!("{:?}", other.map(|_| ())),
    }
    let removed = sealed.replace("user: app\n", "");
    match block(routine.seal(&removed, Format::Yaml)) {
        Err(Error::Changed(list)) => assert_eq!(list, ["1 value(s) removed"]),
        other => panic!("{:?}", other.map(|_| ())),
    }
    let accepted = block(
        routine
            .clone()
            .accept_changes(true)
            .seal(&edited, Format::Yaml),
    )
    .unwrap();
    assert_eq!(
        open(&accepted, Format::Yaml, &k).unwrap().plain("user"),
        Some("admin")
    );

    // An explicit new policy that no longer selects encrypted values: only with declassify.
    let narrower = sealer(&k).policy(Policy::only(["*_password"]).unwrap());
    match block(narrower.seal(&sealed, Format::Yaml)) {
        Err(Error::Declassify(paths)) => assert_eq!(paths, ["`api_secret`"]),
        other => panic!("{:?}", other.map(|_| ())),
    }
    // The same from a working copy decrypted for editing (found by review: the check looked
    // only at the working copy, where every value is plaintext).
    let working = decrypt_text(&sealed, Format::Yaml, &k, true);
    match block(narrower.seal(&working, Format::Yaml)) {
        Err(Error::Declassify(paths)) => assert_eq!(paths, ["`api_secret`"]),
        other => panic!("{:?}", other.map(|_| ())),
    }
    let declassified = block(narrower.declassify(true).seal(&sealed, Format::Yaml)).unwrap();
    assert!(declassified.contains("s3cr3t-api-key"));
    assert!(!declassified.contains("correct-horse"));
}

/// Audit finding 7: `.env` text a shell reads differently from kmseal is refused, so what is
/// authenticated is what `source` or `set -a; . ./.env` runs. Before the fix `KEY='v'#$(cmd)`
/// passed the MAC and survived `config decrypt`.
#[test]
fn audit_7_dotenv_refuses_what_a_shell_reads_differently() {
    let k = kek();
    for bad in [
        "KEY='v'#$(touch /tmp/pwned)\n",
        "KEY=\"v\"x\n",
        "KEY=a b\n",
        "KEY=$(id)\n",
        "KEY=`id`\n",
        "KEY=a;id\n",
        "KEY=~/x\n",
        "KEY=\"$(id)\"\n",
        "KEY=\"`id`\"\n",
        "KEY=\"\\q\"\n",
    ] {
        match block(sealer(&k).seal(bad, Format::Dotenv)) {
            Err(Error::Parse { line: 1, .. }) => {}
            other => panic!("{bad:?}: {:?}", other.map(|_| ())),
        }
    }
    // Escaped, they are values like any other, and come back escaped.
    let text = "A=\"pa\\$\\`s\" # c\nB='$(x)'\nC=postgres://u@h/db?x=1&y=*\n";
    let text = text.replace("&y=*", "");
    let sealed = block(sealer(&k).seal(&text, Format::Dotenv)).unwrap();
    let s = open(&sealed, Format::Dotenv, &k).unwrap();
    assert_eq!(s.secret("A").unwrap().expose_secret(), "pa$`s");
    assert_eq!(s.secret("B").unwrap().expose_secret(), "$(x)");
    let plain = decrypt_text(&sealed, Format::Dotenv, &k, false);
    assert!(plain.contains("A=\"pa\\$\\`s\""), "{plain}");
}

/// Audit finding 16: the JSON parser is strict where other parsers disagree: `\u+041` and
/// numbers with leading zeros are refused (before the fix both were accepted).
#[test]
fn audit_16_json_is_strict() {
    let k = kek();
    for bad in [
        r#"{"a": "\u+041"}"#,
        r#"{"a": "\u-041"}"#,
        r#"{"a": 012}"#,
        r#"{"a": -00.5}"#,
    ] {
        match block(sealer(&k).seal(bad, Format::Json)) {
            Err(Error::Parse { .. }) => {}
            other => panic!("{bad}: {:?}", other.map(|_| ())),
        }
    }
    let good = r#"{"a": "\u0041", "b": 0, "c": -0.5, "d": 10, "e": 0e1}"#;
    block(sealer(&k).seal(good, Format::Json)).unwrap();
}

/// Audit finding 8: YAML 1.1 scalars (`no`, `yes`, `1_000`, ...) would come back quoted after
/// encryption, turning PyYAML's `False` into the string "no". Sealing them encrypted is refused
/// with the path (never the value); quoted, or kept plain by the policy, they are fine.
#[test]
fn audit_8_yaml11_scalars_are_not_silently_retyped() {
    let k = kek();
    for (yaml, path) in [
        ("allow_anonymous: no\n", "allow_anonymous"),
        ("verify_tls: yes\n", "verify_tls"),
        ("feature: on\n", "feature"),
        ("retries: 1_000\n", "retries"),
        ("timeout: 1:20\n", "timeout"),
        ("mask: 0b1010\n", "mask"),
        ("a:\n  b: Off\n", "a.b"),
    ] {
        match block(sealer(&k).seal(yaml, Format::Yaml)) {
            Err(Error::Unsupported(m)) => {
                assert!(
                    m.contains(&format!("`{path}`")) && m.contains("YAML 1.1"),
                    "{m}"
                );
                let value = yaml.split(": ").last().unwrap().trim();
                assert!(!m.contains(&format!(" {value} ")), "{m}");
            }
            other => panic!("{yaml:?}: {:?}", other.map(|_| ())),
        }
    }
    // Unambiguous values, quoted ones and ones kept plain by the policy seal and round-trip.
    let ok = "a: \"no\"\nb: false\nc: 1000\nd: nope\ne: 10:20:30:x\nf: 2024-01-01\n";
    let sealed = block(sealer(&k).seal(ok, Format::Yaml)).unwrap();
    let plain = decrypt_text(&sealed, Format::Yaml, &k, false);
    assert!(
        plain.contains("b: false") && plain.contains("c: 1000"),
        "{plain}"
    );
    let kept = block(
        sealer(&k)
            .policy(Policy::only(["*password"]).unwrap())
            .seal("enabled: no\ndb_password: x\n", Format::Yaml),
    )
    .unwrap();
    assert!(kept.contains("enabled: no"), "{kept}");
}

/// Audit findings 3 and 6 (format version 3): the structure is authenticated, not only the
/// values. Empty maps and lists cannot be added, removed or retyped; a YAML anchor cannot be
/// moved onto a secret (redirecting an alias); a tag cannot be added. Each is refused by
/// `open` and named by a routine re-seal.
#[test]
fn audit_3_and_6_structure_is_authenticated() {
    let k = kek();
    type Edits = &'static [(&'static str, &'static str)];
    let cases: [(Format, &str, Edits); 4] = [
        (
            Format::Json,
            r#"{"a": {}, "b": [], "c": {"d": "secret"}, "e": "x"}"#,
            &[
                (r#""a": {}"#, r#""a": []"#),
                (r#""b": [], "#, ""),
                (r#""e": "#, r#""z": {}, "e": "#),
            ],
        ),
        (
            Format::Toml,
            "e = \"x\"\na = {}\nb = []\n",
            &[
                ("a = {}", "a = []"),
                ("b = []\n", ""),
                ("e = ", "z = []\ne = "),
            ],
        ),
        (
            Format::Yaml,
            "e: x\na: {}\nb: []\n",
            &[("a: {}", "a: []"), ("b: []\n", ""), ("e: x", "e: !!str x")],
        ),
        (
            Format::Yaml,
            "host: &h db.internal\npassword: hunter2-hunter2\nbackup_host: *h\n",
            &[(
                "host: &h db.internal\npassword: ",
                "host: db.internal\npassword: &h ",
            )],
        ),
    ];
    for (f, text, edits) in cases {
        let s = sealer(&k).policy(Policy::only(["password", "d"]).unwrap());
        let sealed = block(s.seal(text, f)).unwrap();
        open(&sealed, f, &k).unwrap();
        for (from, to) in edits {
            assert!(sealed.contains(from), "{f:?}: {from:?} not in {sealed}");
            let tampered = sealed.replacen(from, to, 1);
            assert_tampered(open(&tampered, f, &k), to);
            match block(sealer(&k).seal(&tampered, f)) {
                Err(Error::Changed(list)) => assert!(!list.is_empty()),
                Err(Error::Tampered(_)) => {}
                other => panic!("{f:?} {to:?}: {:?}", other.map(|_| ())),
            }
        }
    }
}

/// Audit findings 3 and 6, the cases the first test did not spell out: an empty element
/// appended to a list (JSON, TOML, YAML flow and block), and two YAML anchors swapped so that an
/// alias points at the other node. Refused by `open` and by a re-seal.
#[test]
fn audit_3_and_6_appended_empty_elements_and_swapped_anchors_are_refused() {
    let k = kek();
    type Edits = &'static [(&'static str, &'static str)];
    let cases: [(Format, &str, Edits); 4] = [
        (
            Format::Json,
            r#"{"hosts": ["a", "b"], "password": "hunter2-hunter2"}"#,
            &[(r#""b"]"#, r#""b", {}]"#), (r#""b"]"#, r#""b", []]"#)],
        ),
        (
            Format::Toml,
            "hosts = [\"a\", \"b\"]\npassword = \"hunter2-hunter2\"\n",
            &[("\"b\"]", "\"b\", {}]"), ("\"b\"]", "\"b\", []]")],
        ),
        (
            Format::Yaml,
            "hosts:\n- a\n- b\npassword: hunter2-hunter2\n",
            &[("- b\n", "- b\n- {}\n"), ("- b\n", "- b\n- []\n")],
        ),
        (
            Format::Yaml,
            "primary: &p db-1.internal\nreplica: &r db-2.internal\nwrites: *p\nreads: *r\npassword: hunter2-hunter2\n",
            &[(
                "primary: &p db-1.internal\nreplica: &r ",
                "primary: &r db-1.internal\nreplica: &p ",
            )],
        ),
    ];
    for (f, text, edits) in cases {
        let s = sealer(&k).policy(Policy::only(["password"]).unwrap());
        let sealed = block(s.seal(text, f)).unwrap();
        open(&sealed, f, &k).unwrap();
        for (from, to) in edits {
            assert!(sealed.contains(from), "{f:?}: {from:?} not in {sealed}");
            let tampered = sealed.replacen(from, to, 1);
            assert_tampered(open(&tampered, f, &k), to);
            match block(sealer(&k).seal(&tampered, f)) {
                Err(Error::Changed(list)) => assert!(!list.is_empty()),
                Err(Error::Tampered(_)) => {}
                other => panic!("{f:?} {to:?}: {:?}", other.map(|_| ())),
            }
        }
    }
}

/// Found by the `config` fuzz target (long run, issue 17): a key repeated in a nested YAML
/// mapping gave two values one path (parsers disagree on which wins), and a re-seal then saw an
/// encrypted value turning plain. Duplicate keys are refused at every level.
#[test]
fn regression_yaml_duplicate_nested_keys_are_refused() {
    let k = kek();
    let text = "svc:\n  name: a\n  name: b\n";
    match block(sealer(&k).seal(text, Format::Yaml)) {
        Err(Error::Parse {
            line: 3, message, ..
        }) => assert!(message.contains("duplicate key")),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

/// From the second adversarial review (issue 17): YAML edits without the key that still
/// opened and changed what PyYAML reads: a comment ended by U+2028/U+2029/U+0085 (a new value
/// to YAML 1.1, a comment to 1.2), a merge key quoted or tagged (`"<<"` merges nothing), the
/// quoting of a YAML 1.1-typed value, directives hidden after a lone CR or a document end,
/// and extra structure in the kmseal block. Every one is refused now.
#[test]
fn review_yaml_edits_that_change_what_yaml11_reads_are_refused() {
    let k = kek();
    let original = "defaults: &defaults\n  sslmode: require\n  verify: true\ndb:\n  <<: *defaults\n  host: db.internal # primary\n  password: hunter2-hunter2 # rotate\n  enabled: \"no\"\n  tls: off\n";
    let s = sealer(&k).policy(Policy::only(["password"]).unwrap());
    let sealed = block(s.seal(original, Format::Yaml)).unwrap();
    open(&sealed, Format::Yaml, &k).unwrap();
    for (name, from, to) in [
        (
            "LS in a comment",
            "# rotate",
            "# rotate\u{2028}  password: attacker",
        ),
        (
            "PS in a comment",
            "# primary",
            "# primary\u{2029}  host: evil",
        ),
        (
            "NEL in a comment",
            "# primary",
            "# primary\u{85}  host: evil",
        ),
        ("merge key quoted", "  <<: *defaults", "  \"<<\": *defaults"),
        (
            "merge key tagged",
            "  <<: *defaults",
            "  !!str <<: *defaults",
        ),
        ("anchor on a key", "  host: db", "  &k host: db"),
        ("1.1 value unquoted", "enabled: \"no\"", "enabled: no"),
        ("1.1 value quoted", "tls: off", "tls: \"off\""),
        (
            "directive after a document end",
            "defaults: &defaults",
            "...\n%YAML 1.1\n---\ndefaults: &defaults",
        ),
        (
            "directive after a lone CR",
            "defaults: &defaults",
            "# c\r%YAML 1.1\r---\ndefaults: &defaults",
        ),
        (
            "empty map in the kmseal block",
            "kmseal:\n",
            "kmseal:\n  extra: {}\n",
        ),
        ("tag on the kmseal block", "kmseal:\n", "kmseal: !!map\n"),
    ] {
        assert!(sealed.contains(from), "{name}");
        let edited = sealed.replacen(from, to, 1);
        match open(&edited, Format::Yaml, &k) {
            Err(Error::Tampered(_) | Error::Parse { .. } | Error::Metadata(_)) => {}
            other => panic!("{name}: {:?}", other.map(|_| ())),
        }
    }
    // Such characters in a value are written escaped, so the document stays readable.
    let sealed = block(sealer(&k).seal("a: \"x\\Ly\"\n", Format::Yaml)).unwrap();
    let plain = decrypt_text(&sealed, Format::Yaml, &k, false);
    assert!(plain.contains("a: \"x\\Ly\""), "{plain}");
}

/// From the second adversarial review (issue 17): the header of a *signed* message (wrapped
/// for B, with a signing key in its context) was accepted as a config document's header, so a
/// co-recipient holding only A could build a document B's `require_signed` decryptor opened.
#[test]
fn review_a_signed_message_header_is_not_a_config_header() {
    use base64::Engine;
    let (a, b) = (kek(), kek());
    let m = Encryptor::new(a.clone())
        .add_kek(b.clone())
        .signed(true)
        .encrypt_blocking(b"honest")
        .unwrap();
    let (_, used) = kmseal::Header::parse(&m, &kmseal::Limits::default()).unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&m[..used]);
    let doc = format!(
        "db_password: attacker-chosen\nkmseal:\n  version: \"1\"\n  encrypt: \"*\"\n  plain: \"\"\n  header: \"{header}\"\n  mac: \"AAAA\"\n"
    );
    let forger = Sealer::new(Encryptor::new(a.clone()), Decryptor::new(a.clone()));
    match block(forger.accept_changes(true).seal(&doc, Format::Yaml)) {
        Err(Error::Kmseal(kmseal::Error::Malformed(m))) => assert!(m.contains("signed"), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

/// Malformed metadata of versions 2 to 4 is a typed error, never a panic: an unknown
/// version, a manifest that is not base64url or not whole entries, a missing or extra MAC
/// field for the version, version-4 fields that are garbage, empty, or in an older version.
#[test]
fn malformed_v4_metadata_is_a_typed_error() {
    let k = kek();
    let sealed = block(sealer(&k).seal("a: 1\nb: secret\n", Format::Yaml)).unwrap();
    let field = |name: &str| {
        let start = sealed.find(&format!("  {name}: ")).unwrap();
        let end = start + sealed[start..].find('\n').unwrap();
        sealed[start..end].to_owned()
    };
    let manifest = field("manifest");
    let times = field("times");
    let header = field("header");
    for (from, to) in [
        ("  version: \"4\"".to_owned(), "  version: \"5\"".to_owned()),
        ("  version: \"4\"".to_owned(), "  version: \"3\"".to_owned()),
        ("  version: \"4\"".to_owned(), "  version: \"1\"".to_owned()),
        (times.clone(), String::new()),
        (times.clone(), "  times: \"!!!\"".to_owned()),
        (times.clone(), "  times: \"AAAAAQ\"".to_owned()),
        (times.clone(), "  times: \"\"".to_owned()),
        (times.clone(), format!("{times}\n  previous: \"AAAAAA\"")),
        (times.clone(), format!("{times}\n  previous: \"\"")),
        (times.clone(), format!("{times}\n  previous: \"AAAAAQ\"")),
        (header.clone(), format!("  rules: \"\"\n{header}")),
        (header.clone(), format!("  rules: \"a:bogus\"\n{header}")),
        (
            header.clone(),
            format!("  rules: \"a:min_len=3;;b\"\n{header}"),
        ),
        (
            header.clone(),
            format!("  rules: \"a:min_len=3\"\n{header}"),
        ),
        (manifest.clone(), "  manifest: \"!!!\"".to_owned()),
        (manifest.clone(), "  manifest: \"AAAA\"".to_owned()),
        (manifest.clone(), String::new()),
        (field("meta_mac"), String::new()),
        (field("meta_mac"), "  meta_mac: \"***\"".to_owned()),
    ] {
        let edited = sealed.replacen(&format!("{from}\n"), &format!("{to}\n"), 1);
        assert_ne!(edited, sealed);
        for r in [
            open(&edited, Format::Yaml, &k).map(|_| ()),
            block(sealer(&k).seal(&edited, Format::Yaml)).map(|_| ()),
        ] {
            match r {
                Err(Error::Metadata(_) | Error::Tampered(_)) => {}
                other => panic!("{to:?}: {other:?}"),
            }
        }
    }
}

/// Issue 22: a sealed document is recognised by its metadata block whatever its name, in
/// every format (JSON before YAML, which reads JSON too); plain documents are not sealed.
#[test]
fn sealed_documents_are_recognised_by_content() {
    let k = kek();
    for (_, f, text) in cases() {
        let sealed = block(sealer(&k).seal(text, f)).unwrap();
        assert_eq!(Format::of_sealed(&sealed), Some(f), "{f:?}");
        assert_eq!(Format::of_sealed(text), None, "{f:?} plain");
    }
    for garbage in [
        "",
        "kmseal:",
        "{\"kmseal\": 1}",
        "[kmseal]\n",
        "#kmseal.version=4\n",
    ] {
        assert_eq!(Format::of_sealed(garbage), None, "{garbage:?}");
    }
}

/// Decrypted YAML writes C1 controls and a BOM escaped (they are not printable YAML), so the
/// decrypted document parses again to the same string; JSON and .env likewise.
#[test]
fn decrypted_documents_read_back_with_control_characters() {
    let k = kek();
    let value = "a\u{9f}b\u{feff}c\u{85}d\u{7}e";
    for (format, text) in [
        (
            Format::Yaml,
            format!("v: {}\n", kmseal_config::quote::yaml(value)),
        ),
        (
            Format::Json,
            format!("{{\"v\": {}}}\n", kmseal_config::quote::json(value)),
        ),
        (
            Format::Dotenv,
            format!("v={}\n", kmseal_config::quote::dotenv(value)),
        ),
    ] {
        let dec = Decryptor::new(k.clone());
        let sealed =
            block(Sealer::new(Encryptor::new(k.clone()), dec.clone()).seal(&text, format)).unwrap();
        let plain = block(kmseal_config::decrypt(&sealed, format, &dec, false)).unwrap();
        let again = kmseal_config::read_unsealed(&plain, format).unwrap();
        assert_eq!(again.plain("v"), Some(value), "{format:?}: {plain:?}");
    }
}
