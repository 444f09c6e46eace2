//! The git drivers' library half (issue 23): `git::merge` on every format, how requirements
//! merge, what a tampered side does, and `git::redacted`; `repo::Rule::check` on documents
//! sealed in several ways.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use kmseal::{Decryptor, Encryptor, LocalKek};
use kmseal_config::git::{Merged, merge, merge_lines, redacted};
use kmseal_config::repo::{RepoRules, RuleProblem};
use kmseal_config::{Format, Policy, Require, Sealer};

fn block<F: std::future::Future>(f: F) -> F::Output {
    kmseal::blocking::block_on(f)
}

fn sealer(k: &Arc<LocalKek>) -> Sealer {
    Sealer::new(Encryptor::new(k.clone()), Decryptor::new(k.clone()))
}

fn set(doc: &str, format: Format, k: &Arc<LocalKek>, path: &str, value: &str) -> String {
    block(sealer(k).set(doc, format, path, value)).unwrap()
}

fn decrypted(doc: &str, format: Format, k: &Arc<LocalKek>) -> String {
    block(kmseal_config::decrypt(
        doc,
        format,
        &Decryptor::new(k.clone()),
        false,
    ))
    .unwrap()
}

const DOCS: [(Format, &str); 4] = [
    (
        Format::Yaml,
        "a: \"1-alpha\"\nb: \"2-bravo\"\nc: \"3-charlie\"\n",
    ),
    (
        Format::Json,
        "{\n  \"a\": \"1-alpha\",\n  \"b\": \"2-bravo\",\n  \"c\": \"3-charlie\"\n}\n",
    ),
    (
        Format::Toml,
        "a = \"1-alpha\"\nb = \"2-bravo\"\nc = \"3-charlie\"\n",
    ),
    (Format::Dotenv, "a=1-alpha\nb=2-bravo\nc=3-charlie\n"),
];

#[test]
fn edits_to_different_values_merge_cleanly_in_every_format() {
    for (format, text) in DOCS {
        let k = Arc::new(LocalKek::generate().unwrap());
        let base = block(sealer(&k).seal(text, format)).unwrap();
        let ours = set(&base, format, &k, "a", "ours-a");
        let theirs = set(&base, format, &k, "c", "theirs-c");
        let Merged::Clean(out) = block(merge(&base, &ours, &theirs, format, sealer(&k))).unwrap()
        else {
            panic!("{format:?}: conflict");
        };
        let plain = decrypted(&out, format, &k);
        assert!(
            plain.contains("ours-a") && plain.contains("theirs-c"),
            "{format:?}: {plain}"
        );
        assert!(plain.contains("2-bravo"), "{format:?}: {plain}");
        assert!(
            !out.contains("ours-a") && !out.contains("theirs-c"),
            "{out}"
        );

        // The same value changed on both sides: conflict markers around ciphertexts.
        let theirs = set(&base, format, &k, "a", "theirs-a");
        match block(merge(&base, &ours, &theirs, format, sealer(&k))).unwrap() {
            Merged::Conflicts { text, .. } => {
                assert!(
                    text.contains("<<<<<<<") && text.contains(">>>>>>>"),
                    "{text}"
                );
                assert!(
                    !text.contains("ours-a") && !text.contains("theirs-a"),
                    "{text}"
                );
            }
            Merged::Clean(_) => panic!("{format:?}: the same value merged"),
            _ => unreachable!(),
        }
    }
}

#[test]
fn requirements_merge_like_values_and_conflict_when_both_change_them() {
    let k = Arc::new(LocalKek::generate().unwrap());
    let (format, text) = DOCS[0];
    let base = block(sealer(&k).seal(text, format)).unwrap();
    let with_rule = |doc: &str, rule: &str| {
        block(
            sealer(&k)
                .rules([rule.parse::<Require>().unwrap()])
                .seal(doc, format),
        )
        .unwrap()
    };
    let ours = set(&base, format, &k, "a", "ours-a");
    let theirs = with_rule(&base, "b:min_len=4");
    let Merged::Clean(out) = block(merge(&base, &ours, &theirs, format, sealer(&k))).unwrap()
    else {
        panic!("conflict");
    };
    let rules: Vec<String> = kmseal_config::inspect(&out, format)
        .unwrap()
        .rules
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(rules, ["b:min_len=4"]);

    let ours = with_rule(&base, "b:min_len=6");
    match block(merge(&base, &ours, &theirs, format, sealer(&k))).unwrap() {
        Merged::Conflicts { reason, .. } => assert!(reason.contains("requirement"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn review_nothing_encrypted_on_a_side_is_merged_into_the_clear() {
    // Ours encrypts only passwords; theirs added a key and sealed it with a wider policy.
    let k = Arc::new(LocalKek::generate().unwrap());
    let format = Format::Yaml;
    let narrow = || sealer(&k).policy(Policy::only(["*password*"]).unwrap());
    let base = block(narrow().seal("db_password: \"p-1\"\nlog: info\n", format)).unwrap();
    let wide = sealer(&k)
        .policy(Policy::only(["*password*", "stripe_key"]).unwrap())
        .accept_changes(true);
    let theirs = block(wide.seal(
        &base.replace("log: info\n", "log: info\nstripe_key: \"sk_live_secret\"\n"),
        format,
    ))
    .unwrap();
    assert!(!theirs.contains("sk_live_secret"));
    let ours = set(&base, format, &k, "db_password", "p-2");
    let Merged::Clean(out) = block(merge(&base, &ours, &theirs, format, sealer(&k))).unwrap()
    else {
        panic!("conflict");
    };
    assert!(!out.contains("sk_live_secret"), "{out}");
    let plain = decrypted(&out, format, &k);
    assert!(
        plain.contains("p-2") && plain.contains("sk_live_secret"),
        "{plain}"
    );
}

#[test]
fn review_authentic_documents_from_elsewhere_and_weakened_rules_are_not_merged() {
    let k = Arc::new(LocalKek::generate().unwrap());
    let (format, text) = DOCS[0];
    let prod = block(sealer(&k).seal(text, format)).unwrap();
    // Another document under the same key (another data key): refused outright.
    let staging =
        block(sealer(&k).seal(&text.replace("2-bravo", "known-to-attacker"), format)).unwrap();
    let ours = set(&prod, format, &k, "a", "ours-a");
    let err = block(merge(&prod, &ours, &staging, format, sealer(&k))).unwrap_err();
    assert!(err.to_string().contains("not this document"), "{err}");
    let err = block(merge(&staging, &ours, &prod, format, sealer(&k))).unwrap_err();
    assert!(err.to_string().contains("not this document"), "{err}");
    // Theirs is an older version without the requirement ours has: a conflict, not a drop.
    let strict = block(
        sealer(&k)
            .rules(["b:min_len=20".parse::<Require>().unwrap()])
            .seal(&prod, format),
    )
    .unwrap();
    let ours = set(&strict, format, &k, "a", "ours-a");
    match block(merge(&strict, &ours, &prod, format, sealer(&k))).unwrap() {
        Merged::Conflicts { reason, .. } => assert!(reason.contains("`b`"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_side_that_does_not_verify_is_refused_not_merged() {
    let k = Arc::new(LocalKek::generate().unwrap());
    let (format, text) = DOCS[0];
    let base = block(sealer(&k).seal(text, format)).unwrap();
    let ours = set(&base, format, &k, "a", "ours-a");
    // Someone without the key swaps two ciphertexts on their side.
    let line = |t: &str, p: &str| t.lines().find(|l| l.starts_with(p)).unwrap().to_owned();
    let (la, lb) = (line(&base, "a: "), line(&base, "b: "));
    let swapped = base
        .replace(&la, "@A@")
        .replace(&lb, &la.replacen("a: ", "b: ", 1))
        .replace("@A@", &lb.replacen("b: ", "a: ", 1));
    let err = block(merge(&base, &ours, &swapped, format, sealer(&k))).unwrap_err();
    assert!(
        err.to_string().contains("does not belong") || err.to_string().contains("modified"),
        "{err}"
    );
    // Another key cannot merge at all.
    let other = Arc::new(LocalKek::generate().unwrap());
    assert!(block(merge(&base, &ours, &base, format, sealer(&other))).is_err());
    // merge_lines needs no key, and marks nothing when the sides do not overlap.
    let lines = merge_lines(&base, &ours, &base, format).unwrap();
    assert_eq!(lines, ours);
}

#[test]
fn redacted_tags_follow_the_ciphertext_and_plain_documents_pass_through() {
    let k = Arc::new(LocalKek::generate().unwrap());
    let (format, text) = DOCS[0];
    let base = block(sealer(&k).seal(text, format)).unwrap();
    let ours = set(&base, format, &k, "a", "ours-a");
    let (r1, r2) = (
        redacted(&base, format).unwrap(),
        redacted(&ours, format).unwrap(),
    );
    let tag = |t: &str, p: &str| t.lines().find(|l| l.starts_with(p)).unwrap().to_owned();
    assert_ne!(tag(&r1, "a: "), tag(&r2, "a: "));
    assert_eq!(tag(&r1, "b: "), tag(&r2, "b: "));
    assert!(!r1.contains("kmseal:") && !r1.contains("alpha"), "{r1}");
    assert!(
        !r1.contains("mac") && r1.contains("# kmseal version 4"),
        "{r1}"
    );
    // What matters in review shows: a requirement dropped is a line in the diff.
    let strict = block(
        sealer(&k)
            .rules(["b:min_len=20".parse::<Require>().unwrap()])
            .seal(&base, format),
    )
    .unwrap();
    let r3 = redacted(&strict, format).unwrap();
    assert!(r3.contains("# kmseal requirements: b:min_len=20"), "{r3}");
    assert!(r1.contains("# kmseal requirements: (none)"), "{r1}");
    assert_eq!(tag(&r1, "b: "), tag(&r3, "b: "));
    assert_eq!(redacted(text, format).unwrap(), text);
}

#[test]
fn rule_check_sees_without_a_key_what_a_rule_asks_for() {
    let k = Arc::new(LocalKek::generate().unwrap());
    let rules = RepoRules::parse(
        "[[rules]]\npath = \"*\"\nencrypt = [\"*password\"]\nrequire = [\"db_password:min_len=8\"]\n",
        "/r",
    )
    .unwrap();
    let rule = rules.rule_for_relative("x.yaml").unwrap();
    let text = "host: db\ndb_password: \"s3cret-pass\"\nport: 5432\n";
    assert_eq!(rule.check(text, Format::Yaml), [RuleProblem::NotSealed]);
    // Sealed as the rule says: clean.
    let good = block(
        sealer(&k)
            .policy(Policy::only(["*password"]).unwrap())
            .rules(rule.require.clone())
            .seal(text, Format::Yaml),
    )
    .unwrap();
    assert_eq!(rule.check(&good, Format::Yaml), []);
    // Sealed with too narrow a policy and without the requirement.
    let narrow = block(
        sealer(&k)
            .policy(Policy::only(["host"]).unwrap())
            .seal(text, Format::Yaml),
    )
    .unwrap();
    assert_eq!(
        rule.check(&narrow, Format::Yaml),
        [
            RuleProblem::NotEncrypted {
                path: "db_password".into(),
                line: Some(2)
            },
            RuleProblem::MissingRequirement("db_password:min_len=8".into())
        ]
    );
    // A metadata block that does not parse.
    let bad = good.replace("version: \"4\"", "version: \"9\"");
    assert!(matches!(
        rule.check(&bad, Format::Yaml)[..],
        [RuleProblem::Malformed(_)]
    ));
}

/// `doc` decrypted with its metadata, changed by `f`, and sealed again over the change.
fn edit(doc: &str, format: Format, k: &Arc<LocalKek>, f: impl Fn(&str) -> String) -> String {
    let plain = block(kmseal_config::decrypt(
        doc,
        format,
        &Decryptor::new(k.clone()),
        true,
    ))
    .unwrap();
    block(sealer(k).accept_changes(true).seal(&f(&plain), format)).unwrap()
}

#[test]
fn review2_a_list_item_that_changes_parents_is_not_merged_into_the_clear() {
    let k = Arc::new(LocalKek::generate().unwrap());
    let format = Format::Yaml;
    let base = block(
        sealer(&k)
            .policy(Policy::only(["*token*", "*password*"]).unwrap())
            .seal(
                "host: db\napi_tokens:\n  - \"tok-1\"\n  - \"tok-2\"\n\ndb_password: \"p\"\n",
                format,
            ),
    )
    .unwrap();
    let line = |t: &str| {
        t.lines()
            .find(|l| l.contains("\"kmseal:v1:"))
            .unwrap()
            .to_owned()
    };
    // Theirs adds a plain key after the list; ours adds an item after the blank line.
    let theirs = edit(&base, format, &k, |t| {
        t.replacen(
            "\n\ndb_password",
            "\nreplica_hosts:\n  - r1.internal\n\ndb_password",
            1,
        )
    });
    let ours = edit(&base, format, &k, |t| {
        t.replacen(
            "\n\ndb_password",
            "\n\n  - \"tok-NEW-secret\"\ndb_password",
            1,
        )
    });
    assert!(!ours.contains("tok-NEW-secret"), "{}", line(&ours));
    match block(merge(&base, &ours, &theirs, format, sealer(&k))).unwrap() {
        Merged::Conflicts { text, reason } => {
            assert!(reason.contains("in the clear"), "{reason}");
            assert!(!text.contains("tok-NEW-secret"), "{text}");
        }
        Merged::Clean(out) => panic!("merged clean:\n{out}"),
        _ => unreachable!(),
    }
}

#[test]
fn review2_a_rotation_and_a_rollback_on_their_side_are_conflicts() {
    use std::time::{Duration, SystemTime};
    let (k1, k2) = (
        Arc::new(LocalKek::generate().unwrap()),
        Arc::new(LocalKek::generate().unwrap()),
    );
    let format = Format::Yaml;
    let both = || {
        Sealer::new(
            Encryptor::with_keks([k1.clone() as Arc<dyn kmseal::Kek>, k2.clone()]).unwrap(),
            Decryptor::new(k1.clone()),
        )
    };
    let base = block(both().seal("a: \"1\"\nb: \"2\"\n", format)).unwrap();
    // Theirs revokes k2 (a rewrap under k1 alone); ours edits a value.
    let rot = kmseal::rotate::Rotator::rewrap(
        Decryptor::new(k1.clone()),
        vec![k1.clone() as Arc<dyn kmseal::Kek>],
    );
    let theirs = block(kmseal_config::rewrap(&base, format, &rot)).unwrap();
    assert_ne!(theirs, base);
    let ours = set(&base, format, &k1, "a", "ours-a");
    match block(merge(&base, &ours, &theirs, format, sealer(&k1))).unwrap() {
        Merged::Conflicts { reason, .. } => assert!(reason.contains("other keys"), "{reason}"),
        other => panic!("{other:?}"),
    }

    // A rollback: theirs is an old version (git checkout of an old blob, no key needed).
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let v1 = block(
        sealer(&k1)
            .clock(t0)
            .seal("jwt: \"LEAKED-old\"\nb: \"2\"\n", format),
    )
    .unwrap();
    let base = block(sealer(&k1).clock(t0 + Duration::from_secs(86_400)).set(
        &v1,
        format,
        "jwt",
        "rotated-new",
    ))
    .unwrap();
    let ours = block(
        sealer(&k1)
            .clock(t0 + Duration::from_secs(2 * 86_400))
            .set(&base, format, "b", "ours-b"),
    )
    .unwrap();
    match block(merge(&base, &ours, &v1, format, sealer(&k1))).unwrap() {
        Merged::Conflicts { reason, .. } => assert!(reason.contains("rollback"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

/// The three sides share one data key: a merge asks the KMS once, not once per opening.
#[test]
fn a_merge_unwraps_the_data_key_once() {
    let inner = Arc::new(LocalKek::generate().unwrap());
    let counted = Arc::new(kmseal_test_support::conformance::Counted::new(
        inner.clone(),
    ));
    let (format, text) = DOCS[0];
    let base = block(sealer(&inner).seal(text, format)).unwrap();
    let ours = set(&base, format, &inner, "a", "ours-a");
    let theirs = set(&base, format, &inner, "c", "theirs-c");
    let s = Sealer::new(
        Encryptor::new(counted.clone()),
        Decryptor::new(counted.clone()),
    );
    let Merged::Clean(_) = block(merge(&base, &ours, &theirs, format, s)).unwrap() else {
        panic!("conflict");
    };
    assert_eq!(counted.unwraps(), 1);
}
