//! Frozen config-document vectors (config/tests/data/frozen, made once by its `make` script
//! under the frozen KEK A): they must open to the fixtures' values forever, re-sealing them
//! must reproduce them byte for byte (the encoder is stable), and the `fail_*` copies must be
//! refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use kmseal::{Decryptor, Encryptor, LocalKek, SecretBytes};
use kmseal_config::{Entry, Format, Sealer};

fn kek_a() -> Arc<LocalKek> {
    let key: Vec<u8> = (0u8..32).collect();
    Arc::new(LocalKek::from_key_bytes(&SecretBytes::from_slice(&key).unwrap()).unwrap())
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    kmseal::blocking::block_on(f)
}

fn dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// (path, value) of every entry, secrets exposed (test only).
fn pairs(s: &kmseal_config::Secrets) -> Vec<(String, String)> {
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

fn values(text: &str, f: Format) -> Vec<(String, String)> {
    pairs(&block(kmseal_config::open(text, f, &Decryptor::new(kek_a()))).unwrap())
}

/// The fixture's values, read in whole-blob mode as the reference.
fn fixture_values(ext: &str, f: Format) -> Vec<(String, String)> {
    let fixture = std::fs::read_to_string(dir().join(format!("service.{ext}"))).unwrap();
    let msg = Encryptor::new(kek_a())
        .encrypt_blocking(fixture.as_bytes())
        .unwrap();
    let reference = block(kmseal_config::open_blob(&msg, f, &Decryptor::new(kek_a()))).unwrap();
    pairs(&reference)
}

const FORMATS: [(&str, Format); 4] = [
    ("yaml", Format::Yaml),
    ("json", Format::Json),
    ("toml", Format::Toml),
    ("env", Format::Dotenv),
];

fn reseal(frozen: &str, f: Format) -> String {
    let plain = block(kmseal_config::decrypt(
        frozen,
        f,
        &Decryptor::new(kek_a()),
        true,
    ))
    .unwrap();
    let sealer = Sealer::new(Encryptor::new(kek_a()), Decryptor::new(kek_a()));
    block(sealer.seal(&plain, f)).unwrap()
}

/// The encrypted values of a document (`kmseal:v1:…` strings), in order.
fn ciphertexts(t: &str) -> Vec<String> {
    t.split("kmseal:v1:")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "_-:".contains(*c))
                .collect()
        })
        .collect()
}

/// An older frozen document re-seals (no flags: its MACs vouch that nothing changed) into
/// the current version 4 with the same values and ciphertexts, every value's age unknown
/// (nothing recorded it), and the result re-seals byte for byte.
fn reseals_into_v4(frozen: &str, f: Format, what: &str) {
    let resealed = reseal(frozen, f);
    assert_eq!(values(&resealed, f), values(frozen, f), "{what}");
    assert_eq!(ciphertexts(&resealed), ciphertexts(frozen), "{what}");
    let version = kmseal_config::inspect(&resealed, f).unwrap();
    assert_eq!(version.version, Some(4), "{what}");
    assert!(
        version.set_at.iter().all(Option::is_none),
        "{what}: ages invented"
    );
    assert_eq!(reseal(&resealed, f), resealed, "{what}: not stable");
}

/// Version 4 (issue 20): the fixtures with a stored requirement, the password rotated with a
/// previous value kept for 100 years, every time recorded. They open to the fixture's values
/// (the password rotated), give the previous value and the requirements back, and re-seal
/// byte for byte.
#[test]
fn frozen_v4_documents_open_with_rules_times_and_previous_values_and_reseal_byte_for_byte() {
    for (ext, f) in FORMATS {
        let frozen =
            std::fs::read_to_string(dir().join(format!("frozen/v4_service.{ext}"))).unwrap();
        let password = if f == Format::Dotenv {
            "DB_PASSWORD"
        } else {
            "database.password"
        };
        let opened = block(kmseal_config::open(&frozen, f, &Decryptor::new(kek_a()))).unwrap();
        let mut expected = fixture_values(ext, f);
        let old = expected
            .iter_mut()
            .find(|(p, _)| p == password)
            .map(|(_, v)| std::mem::replace(v, "n3w-p@ss: rotated value".to_owned()))
            .unwrap();
        assert_eq!(pairs(&opened), expected, "{ext}");
        assert_eq!(
            opened
                .previous(password)
                .map(|v| v.expose_secret().to_owned()),
            Some(old),
            "{ext}"
        );
        let rules: Vec<String> = opened
            .requirements()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            rules,
            [
                format!("{password}:min_len=16,max_age=90d,generate=base64:32,alias=DB_PASS"),
                "*name*:present".to_owned()
            ],
            "{ext}"
        );
        // Every value has a time; the rotated password's is the latest.
        let first = opened
            .iter()
            .map(|(p, _)| opened.set_at(&p.to_string()).unwrap())
            .min()
            .unwrap();
        let rotated = opened.set_at(password).unwrap();
        assert!(rotated > first, "{ext}");
        for (p, _) in opened.iter() {
            let p = p.to_string();
            if p != password {
                assert_eq!(opened.set_at(&p), Some(first), "{ext} {p}");
            }
        }
        let env = opened.env_vars();
        assert!(
            env.iter()
                .any(|(n, v)| n == "DB_PASS" && *v == "n3w-p@ss: rotated value"),
            "{ext}"
        );
        assert!(env.iter().any(|(n, _)| n == "DB_PASS_PREVIOUS"), "{ext}");
        assert_eq!(reseal(&frozen, f), frozen, "{ext}: encoder changed");
    }
}

#[test]
fn frozen_v3_documents_open_and_reseal_as_v4_with_the_same_ciphertexts() {
    for (ext, f) in FORMATS {
        let frozen =
            std::fs::read_to_string(dir().join(format!("frozen/v3_service.{ext}"))).unwrap();
        assert_eq!(values(&frozen, f), fixture_values(ext, f), "{ext}");
        reseals_into_v4(&frozen, f, ext);
    }
}

/// Key styles (quoted, tagged, anchored, a quoted `<<`) and plain YAML 1.1 look-alikes
/// (`yes`, `off`, `1_000`, a date, `y`), under the version-3 structure items: the frozen
/// document opens to the fixture's values and re-seals into version 4.
#[test]
fn frozen_v3_key_styles_open_and_reseal_as_v4() {
    let frozen = std::fs::read_to_string(dir().join("frozen/v3_keys.yaml")).unwrap();
    let fixture = std::fs::read_to_string(dir().join("keys.yaml")).unwrap();
    let msg = Encryptor::new(kek_a())
        .encrypt_blocking(fixture.as_bytes())
        .unwrap();
    let reference = block(kmseal_config::open_blob(
        &msg,
        Format::Yaml,
        &Decryptor::new(kek_a()),
    ))
    .unwrap();
    let got = values(&frozen, Format::Yaml);
    assert_eq!(got, pairs(&reference));
    assert!(got.contains(&("<<".to_owned(), "not-a-merge-key".to_owned())));
    assert!(got.contains(&("flags.enabled".to_owned(), "yes".to_owned())));
    reseals_into_v4(&frozen, Format::Yaml, "v3_keys");
}

/// References (`ref+URI`, issue 19) are a convention on values, not a byte change: the frozen
/// document opens to the fixture's values with every reference as its literal text (opening
/// never resolves), lists its references parsed, and re-seals into version 4; a redirected
/// plain reference is refused (`fail_v3_ref_redirected`, below).
#[test]
fn frozen_v3_references_open_as_written_and_reseal_as_v4() {
    let frozen = std::fs::read_to_string(dir().join("frozen/v3_refs.yaml")).unwrap();
    let fixture = std::fs::read_to_string(dir().join("refs.yaml")).unwrap();
    let msg = Encryptor::new(kek_a())
        .encrypt_blocking(fixture.as_bytes())
        .unwrap();
    let reference = block(kmseal_config::open_blob(
        &msg,
        Format::Yaml,
        &Decryptor::new(kek_a()),
    ))
    .unwrap();
    assert_eq!(values(&frozen, Format::Yaml), pairs(&reference));
    let opened = block(kmseal_config::open(
        &frozen,
        Format::Yaml,
        &Decryptor::new(kek_a()),
    ))
    .unwrap();
    assert!(matches!(
        opened.get("database.password"),
        Some(Entry::Secret { .. })
    ));
    assert!(matches!(
        opened.get("database.host"),
        Some(Entry::Plain { .. })
    ));
    let refs: Vec<(String, String)> = opened
        .references()
        .unwrap()
        .into_iter()
        .map(|(p, r)| (p.to_string(), r.to_string()))
        .collect();
    assert_eq!(
        refs,
        [
            (
                "database.password".to_owned(),
                "vault-kv://vault.internal:8200/secret/billing/db?version=3#password".to_owned()
            ),
            (
                "database.host".to_owned(),
                "aws-sm://arn:aws:secretsmanager:eu-west-1:111122223333:secret:billing-db-host"
                    .to_owned()
            ),
            (
                "jwt.secret".to_owned(),
                "gcp-sm://projects/acme/secrets/jwt/versions/7".to_owned()
            ),
        ]
    );
    reseals_into_v4(&frozen, Format::Yaml, "v3_refs");
}

#[test]
fn frozen_v1_and_v2_documents_open_and_reseal_as_v4_with_the_same_ciphertexts() {
    for (version, ext, f) in FORMATS
        .iter()
        .flat_map(|(e, f)| [("v1", *e, *f), ("v2", *e, *f)])
    {
        let frozen =
            std::fs::read_to_string(dir().join(format!("frozen/{version}_service.{ext}"))).unwrap();
        assert_eq!(values(&frozen, f), fixture_values(ext, f), "{ext}");
        assert!(!ciphertexts(&frozen).is_empty());
        reseals_into_v4(&frozen, f, &format!("{version} {ext}"));
    }
}

#[test]
fn frozen_failure_vectors_are_refused() {
    for name in [
        "fail_plain_edited",
        "fail_swapped",
        "fail_mac_from_other",
        "fail_v2_plain_edited",
        "fail_v2_swapped",
        "fail_v2_policy_plain_star",
        "fail_v2_macs_from_other",
        "fail_v3_anchor_moved",
        "fail_v3_empty_map_added",
        "fail_v3_tag_added",
        "fail_v3_merge_key_unquoted",
        "fail_v3_plain_quoted",
        "fail_v3_key_tag_removed",
        "fail_v3_key_anchor_removed",
        "fail_v3_ref_redirected",
        "fail_v4_rule_weakened",
        "fail_v4_times_changed",
        "fail_v4_previous_dropped",
        "fail_v4_previous_extended",
    ] {
        let text = std::fs::read_to_string(dir().join(format!("frozen/{name}.yaml"))).unwrap();
        let r = block(kmseal_config::open(
            &text,
            Format::Yaml,
            &Decryptor::new(kek_a()),
        ));
        assert!(
            matches!(r, Err(kmseal_config::Error::Tampered(_))),
            "{name}: {:?}",
            r.map(|_| ())
        );
        // A routine re-seal (no flags) never blesses them either.
        let sealer = Sealer::new(Encryptor::new(kek_a()), Decryptor::new(kek_a()));
        let r = block(sealer.seal(&text, Format::Yaml));
        assert!(
            matches!(
                r,
                Err(kmseal_config::Error::Tampered(_) | kmseal_config::Error::Changed(_))
            ),
            "{name}: re-seal {:?}",
            r.map(|_| ())
        );
    }
}

/// Audit finding 1 on a version-1 document (no metadata MAC): a key-less policy edit makes
/// the document MAC fail, so a routine re-seal refuses instead of writing secrets in plaintext.
#[test]
fn tampered_v1_policy_is_not_laundered_by_a_reseal() {
    let frozen = std::fs::read_to_string(dir().join("frozen/v1_service.yaml")).unwrap();
    let tampered = frozen.replace("  plain: \"name,host\"", "  plain: \"*\"");
    assert_ne!(tampered, frozen);
    let sealer = Sealer::new(Encryptor::new(kek_a()), Decryptor::new(kek_a()));
    let r = block(sealer.seal(&tampered, Format::Yaml));
    assert!(
        matches!(r, Err(kmseal_config::Error::Changed(_))),
        "{:?}",
        r.map(|t| t.contains("kmseal:v1:s:"))
    );
}

/// Audit finding 3: a `%YAML 1.1` directive changes how every plain scalar is read and no MAC
/// covers it: refused when opening and when sealing.
#[test]
fn yaml_directives_are_refused() {
    let text = std::fs::read_to_string(dir().join("frozen/fail_v3_directive.yaml")).unwrap();
    let r = block(kmseal_config::open(
        &text,
        Format::Yaml,
        &Decryptor::new(kek_a()),
    ));
    assert!(
        matches!(&r, Err(kmseal_config::Error::Parse { line: 1, message, .. }) if message.contains("directives")),
        "{:?}",
        r.map(|_| ())
    );
    let sealer = Sealer::new(Encryptor::new(kek_a()), Decryptor::new(kek_a()));
    assert!(block(sealer.seal(&text, Format::Yaml)).is_err());
}

/// `v4_controls` (issue 23, `make-v4-controls`): values with C1 controls, a BOM and NEL open
/// to exactly those characters, re-seal byte for byte, and decrypt to a document that reads
/// back to them (the YAML writer escapes what YAML cannot hold raw).
#[test]
fn frozen_v4_controls_open_reseal_and_decrypt_to_a_readable_document() {
    let text = std::fs::read_to_string(dir().join("frozen/v4_controls.yaml")).unwrap();
    let want = vec![
        ("name".to_owned(), "controls".to_owned()),
        (
            "secret".to_owned(),
            "a\u{9f}b\u{feff}c\u{85}d\u{7}e".to_owned(),
        ),
        ("note".to_owned(), "plain\u{85} text".to_owned()),
    ];
    assert_eq!(values(&text, Format::Yaml), want);
    let sealer = Sealer::new(Encryptor::new(kek_a()), Decryptor::new(kek_a()));
    assert_eq!(block(sealer.seal(&text, Format::Yaml)).unwrap(), text);
    let plain = block(kmseal_config::decrypt(
        &text,
        Format::Yaml,
        &Decryptor::new(kek_a()),
        false,
    ))
    .unwrap();
    assert_eq!(
        pairs(&kmseal_config::read_unsealed(&plain, Format::Yaml).unwrap()),
        want
    );
}

/// `fail_v4_value_cut`: an encrypted value cut short is refused on opening, and a repository
/// rule's keyless check (`kmseal scan`) reports it as malformed.
#[test]
fn frozen_v4_value_cut_is_refused_and_seen_without_a_key() {
    use kmseal_config::repo::{RepoRules, RuleProblem};
    let text = std::fs::read_to_string(dir().join("frozen/fail_v4_value_cut.yaml")).unwrap();
    let r = block(kmseal_config::open(
        &text,
        Format::Yaml,
        &Decryptor::new(kek_a()),
    ));
    assert!(
        matches!(r, Err(kmseal_config::Error::Tampered(_))),
        "{:?}",
        r.map(|_| ())
    );
    let rules =
        RepoRules::parse("[[rules]]\npath = \"*\"\nencrypt = [\"secret\"]\n", "/r").unwrap();
    let problems = rules.rules()[0].check(&text, Format::Yaml);
    assert!(
        matches!(&problems[..], [RuleProblem::Malformed(m)] if m.contains("`secret`")),
        "{problems:?}"
    );
    let good = std::fs::read_to_string(dir().join("frozen/v4_controls.yaml")).unwrap();
    assert_eq!(rules.rules()[0].check(&good, Format::Yaml), []);
}
