//! Regression tests from the adversarial review of config format version 4 (rules, times,
//! previous values; issue 20). Each finding of the review is pinned here by the behaviour it
//! now has, next to the properties the review found sound.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use kmseal::{Decryptor, Encryptor, LocalKek, SecretBytes};
use kmseal_config::{Error, Format, Problem, Require, Sealer, Secrets};

fn block<F: std::future::Future>(f: F) -> F::Output {
    kmseal::blocking::block_on(f)
}

fn kek() -> Arc<LocalKek> {
    Arc::new(LocalKek::generate().unwrap())
}

/// The frozen vectors' KEK A (config/tests/frozen.rs).
fn kek_a() -> Arc<LocalKek> {
    let key: Vec<u8> = (0u8..32).collect();
    Arc::new(LocalKek::from_key_bytes(&SecretBytes::from_slice(&key).unwrap()).unwrap())
}

fn sealer(k: &Arc<LocalKek>) -> Sealer {
    Sealer::new(Encryptor::new(k.clone()), Decryptor::new(k.clone()))
}

fn open_f(text: &str, f: Format, k: &Arc<LocalKek>) -> Result<Secrets, Error> {
    block(kmseal_config::open(text, f, &Decryptor::new(k.clone())))
}

fn open(text: &str, k: &Arc<LocalKek>) -> Result<Secrets, Error> {
    open_f(text, Format::Yaml, k)
}

const DAY: u64 = 86_400;

/// The field `name` of the YAML metadata block (its quoted value).
fn field(sealed: &str, name: &str) -> String {
    let start = sealed.find(&format!("  {name}: \"")).unwrap() + name.len() + 5;
    let end = start + sealed[start..].find('"').unwrap();
    sealed[start..end].to_owned()
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<non-string panic>".into())
}

/// A sealed one-value YAML document `a: ...` rotated with a previous value kept a day.
fn rotated_doc(k: &Arc<LocalKek>) -> String {
    let sealed = block(sealer(k).seal("a: abcdefghijkl\n", Format::Yaml)).unwrap();
    block(sealer(k).keep_previous(Duration::from_secs(DAY)).set(
        &sealed,
        Format::Yaml,
        "a",
        "mnopqrstuvwx",
    ))
    .unwrap()
}

// ---------------------------------------------------------------------------------------
// Finding 1: `inspect` (no key, nothing verified) panicked on a crafted `times` or `previous`
// field whose Unix time does not fit a SystemTime. `kmseal inspect`, `kmseal config require`
// and `kmseal config set --generate` call it on the unverified file. Times after the year
// 9999 are now refused by the decoders.
// ---------------------------------------------------------------------------------------

#[test]
fn review_inspect_refuses_times_after_the_year_9999_without_panicking() {
    let k = kek();
    let doc = rotated_doc(&k);
    // times: a canonical table holding one time, u64::MAX, used by every item.
    let times = field(&doc, "times");
    let raw = B64URL.decode(&times).unwrap();
    let n = u32::from_be_bytes(raw[..4].try_into().unwrap()) as usize;
    let items = (raw.len() - 4 - 8 * n) / 4;
    let mut crafted = 1u32.to_be_bytes().to_vec();
    crafted.extend_from_slice(&u64::MAX.to_be_bytes());
    for _ in 0..items {
        crafted.extend_from_slice(&0u32.to_be_bytes());
    }
    let edited_times = doc.replacen(&times, &B64URL.encode(&crafted), 1);
    // previous: the entry for path `a` with expires = u64::MAX.
    let previous = field(&doc, "previous");
    let mut raw = B64URL.decode(&previous).unwrap();
    let at = 4 + 4 + 1 + 4 + 1; // count, path (1 segment: tag, len, "a")
    raw[at..at + 8].copy_from_slice(&u64::MAX.to_be_bytes());
    let edited_previous = doc.replacen(&previous, &B64URL.encode(&raw), 1);
    for (what, text) in [("times", edited_times), ("previous", edited_previous)] {
        let inspected = catch_unwind(AssertUnwindSafe(|| {
            kmseal_config::inspect(&text, Format::Yaml).map(|_| ())
        }))
        .unwrap_or_else(|p| panic!("{what}: inspect panicked: {}", panic_text(p)));
        assert!(
            matches!(inspected, Err(Error::Metadata(_))),
            "{what}: a time after the year 9999 must be refused as malformed metadata, got \
             {inspected:?}"
        );
        let opened = catch_unwind(AssertUnwindSafe(|| open(&text, &k).map(|_| ())))
            .unwrap_or_else(|p| panic!("{what}: open panicked: {}", panic_text(p)));
        assert!(opened.is_err(), "{what}: open accepted a crafted time");
    }
}

// ---------------------------------------------------------------------------------------
// Finding 2: a key holder's `keep_previous` with a huge grace period (the CLI takes
// `--keep-previous 18446744073709551615s`) sealed fine, and then every `open` panicked. A
// grace period ending after the year 9999 is now refused by `set`.
// ---------------------------------------------------------------------------------------

#[test]
fn review_set_refuses_a_grace_period_ending_after_the_year_9999() {
    let k = kek();
    let sealed = block(sealer(&k).seal("a: abcdefghijkl\n", Format::Yaml)).unwrap();
    let grace = kmseal_config::parse_duration("18446744073709551615s").unwrap();
    assert_eq!(grace, Duration::from_secs(u64::MAX));
    let rotated = catch_unwind(AssertUnwindSafe(|| {
        block(
            sealer(&k)
                .keep_previous(grace)
                .set(&sealed, Format::Yaml, "a", "mnopqrstuvwx"),
        )
    }))
    .unwrap_or_else(|p| panic!("set panicked on a huge grace period: {}", panic_text(p)));
    assert!(
        matches!(rotated, Err(Error::Unsupported(_))),
        "a grace period of u64::MAX seconds must be refused with a typed error, got {:?}",
        rotated.map(|_| ())
    );
    // An ordinary grace period still keeps the previous value.
    let rotated = block(sealer(&k).keep_previous(Duration::from_secs(DAY)).set(
        &sealed,
        Format::Yaml,
        "a",
        "mnopqrstuvwx",
    ))
    .unwrap();
    let s = open(&rotated, &k).unwrap();
    assert_eq!(s.secret("a").unwrap().expose_secret(), "mnopqrstuvwx");
    assert_eq!(s.previous("a").unwrap().expose_secret(), "abcdefghijkl");
}

// ---------------------------------------------------------------------------------------
// Finding 3: rules that passed `validate()` and sealed fine but whose text form did not parse
// back locked the sealed document (it could no longer be opened, checked, exec'd or
// re-sealed). `validate` now refuses them, so sealing with them is refused.
// ---------------------------------------------------------------------------------------

#[test]
fn review_rules_that_cannot_be_read_back_are_refused_before_sealing() {
    let k = kek();
    let cases = [
        // `kmseal config require FILE a --min-len 5000000000` (the flag is a usize; the
        // text form reads a u32).
        (
            "min_len above u32::MAX",
            Require::secret("a").min_len(5_000_000_000),
        ),
        // A sub-second rotation interval prints as `0s`, which validate() refuses on read.
        (
            "max_age of 500ms",
            Require::secret("a").max_age(Duration::from_millis(500)),
        ),
    ];
    for (what, rule) in cases {
        assert!(
            matches!(rule.validate(), Err(Error::Unsupported(_))),
            "{what}: validate must refuse a rule its text form cannot hold"
        );
        let sealed = block(
            sealer(&k)
                .rules([rule.clone()])
                .seal("a: abcdefghijkl\n", Format::Yaml),
        );
        assert!(
            matches!(sealed, Err(Error::Unsupported(_))),
            "{what}: sealing must be refused so that no document is locked, got {:?}",
            sealed.map(|s| field(&s, "rules"))
        );
    }
    // Their text forms are refused as well.
    for text in ["a:min_len=5000000000", "a:max_age=0s"] {
        assert!(text.parse::<Require>().is_err(), "{text}");
    }
}

// ---------------------------------------------------------------------------------------
// Finding 4: `Require::from_str` was order-dependent: `deny_placeholders,present` silently
// dropped the deny (present reset placeholders_allowed), and printed back as `present`.
// ---------------------------------------------------------------------------------------

#[test]
fn review_placeholder_rules_mean_the_same_in_any_order() {
    let a: Require = "db.host:present,deny_placeholders".parse().unwrap();
    let b: Require = "db.host:deny_placeholders,present".parse().unwrap();
    assert_eq!(a, b, "the same rules in another order mean something else");
    assert_eq!(a.to_string(), b.to_string());
    assert_eq!(
        b,
        Require::present("db.host").deny_placeholders(),
        "`deny_placeholders,present` must deny placeholders"
    );
    let k = kek();
    let sealed = block(
        sealer(&k)
            .rules([b.clone()])
            .seal("db:\n  host: changeme\n", Format::Yaml),
    )
    .unwrap();
    let s = open(&sealed, &k).unwrap();
    assert_eq!(
        s.requirements(),
        std::slice::from_ref(&b),
        "the stored rule read back differently"
    );
    let f = s.findings(s.requirements());
    assert!(
        f.iter()
            .any(|f| f.path == "db.host" && f.problem == Problem::Placeholder),
        "`deny_placeholders,present` must report host=changeme as a placeholder: {f:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Finding 5: `Sealer::set` on a version-1 document recorded the new value's time as 0
// ("not known"): the rotated value still failed max_age with age_unknown, whose message
// says "rotate it to start the clock". The value set now gets the sealing time.
// ---------------------------------------------------------------------------------------

/// The text of a frozen test vector (config/tests/data/frozen).
fn frozen(file: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/frozen");
    std::fs::read_to_string(dir.join(file)).unwrap()
}

#[test]
fn review_set_on_a_v1_v2_or_v3_document_starts_the_clock() {
    for (file, f, path) in [
        ("v1_service.yaml", Format::Yaml, "database.password"),
        ("v2_service.yaml", Format::Yaml, "database.password"),
        ("v3_service.yaml", Format::Yaml, "database.password"),
    ] {
        let text = frozen(file);
        let set = block(
            Sealer::new(Encryptor::new(kek_a()), Decryptor::new(kek_a())).set(
                &text,
                f,
                path,
                "a-brand-new-rotated-password-123",
            ),
        )
        .unwrap();
        let s = open_f(&set, f, &kek_a()).unwrap();
        assert!(
            s.set_at(path).is_some(),
            "{file}: the value just set at `{path}` has no time"
        );
        let findings = s.findings(&[Require::secret(path).max_age(Duration::from_secs(90 * DAY))]);
        assert!(
            findings.is_empty(),
            "{file}: a value just set fails its rotation interval: {findings:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Finding 6: env_vars / apply_env: NAME_PREVIOUS replaced a variable the document defines
// (the docs promised this only for aliases), and one alias matching two values was given
// twice, the last silently winning. Now neither replaces a document variable, an ambiguous
// alias is given to none, and `findings` reports both as `Problem::NameConflict`.
// ---------------------------------------------------------------------------------------

fn env_of(s: &Secrets, name: &str) -> String {
    let mut cmd = std::process::Command::new("printenv");
    cmd.arg(name).env_clear();
    s.apply_env(&mut cmd);
    String::from_utf8(cmd.output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn review_name_previous_never_replaces_a_variable_the_document_defines() {
    let k = kek();
    let doc = "API_KEY=old-api-key-0123456789\nAPI_KEY_PREVIOUS=legacy-key-the-app-really-uses\n";
    let sealed = block(sealer(&k).seal(doc, Format::Dotenv)).unwrap();
    let rotated = block(sealer(&k).keep_previous(Duration::from_secs(DAY)).set(
        &sealed,
        Format::Dotenv,
        "API_KEY",
        "new-api-key-9876543210",
    ))
    .unwrap();
    let s = open_f(&rotated, Format::Dotenv, &k).unwrap();
    let doc_value = match s.get("API_KEY_PREVIOUS").unwrap() {
        kmseal_config::Entry::Secret { value, .. } => value.expose_secret().to_owned(),
        kmseal_config::Entry::Plain { value, .. } => value.clone(),
    };
    assert_eq!(doc_value, "legacy-key-the-app-really-uses");
    let given: Vec<&str> = s
        .env_vars()
        .into_iter()
        .filter(|(n, _)| n == "API_KEY_PREVIOUS")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        given,
        [doc_value.as_str()],
        "API_KEY_PREVIOUS must be given once, with the document's own value"
    );
    assert_eq!(
        env_of(&s, "API_KEY_PREVIOUS"),
        doc_value,
        "the child saw a replaced API_KEY_PREVIOUS"
    );
    let f = s.findings(s.requirements());
    assert!(
        f.iter().any(|f| f.problem
            == Problem::NameConflict {
                name: "API_KEY_PREVIOUS".into()
            }),
        "the conflicting previous name is not reported: {f:?}"
    );
}

#[test]
fn review_a_glob_alias_matching_two_values_is_given_to_none_and_reported() {
    let k = kek();
    let sealed = block(
        sealer(&k)
            .rules(["*_token:alias=TOKEN".parse::<Require>().unwrap()])
            .seal(
                "a_token: aaaaaaaaaaaaaaaa\nb_token: bbbbbbbbbbbbbbbb\n",
                Format::Yaml,
            ),
    )
    .unwrap();
    let s = open(&sealed, &k).unwrap();
    let tokens: Vec<&str> = s
        .env_vars()
        .into_iter()
        .filter(|(n, _)| n == "TOKEN")
        .map(|(_, v)| v)
        .collect();
    assert!(
        tokens.is_empty(),
        "an ambiguous alias must not be given at all, got it {} times",
        tokens.len()
    );
    assert_eq!(env_of(&s, "TOKEN"), "", "the child saw the ambiguous alias");
    let f = s.findings(s.requirements());
    assert!(
        f.iter().any(|f| f.problem
            == Problem::NameConflict {
                name: "TOKEN".into()
            }),
        "the ambiguous alias is not reported: {f:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Finding 7: a previous value of a `ref+` value was the old reference *text*: it was never
// resolved, so NAME_PREVIOUS / Secrets::previous gave the literal `ref+file://...`.
// `resolve_references` now resolves previous values too.
// ---------------------------------------------------------------------------------------

#[test]
fn review_resolve_references_resolves_a_previous_reference() {
    use std::os::unix::fs::PermissionsExt;
    let d = std::env::temp_dir().join(format!("kmseal-review-v4-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    let write = |name: &str, v: &str| {
        let p = d.join(name);
        std::fs::write(&p, v).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        format!("ref+file://{}", p.display())
    };
    let old = write("old", "old-db-password-123456");
    let new = write("new", "new-db-password-654321");
    let k = kek();
    let sealed = block(sealer(&k).seal(&format!("db_password: {old}\n"), Format::Yaml)).unwrap();
    let rotated = block(sealer(&k).keep_previous(Duration::from_secs(DAY)).set(
        &sealed,
        Format::Yaml,
        "db_password",
        &new,
    ))
    .unwrap();
    let mut s = open(&rotated, &k).unwrap();
    let prev_text = s
        .previous("db_password")
        .unwrap()
        .expose_secret()
        .to_owned();
    let resolver = kmseal::store::Resolver::new(kmseal::store::LocalStores);
    let resolved = block(s.resolve_references(&resolver));
    let cur = s
        .secret("db_password")
        .map(|v| v.expose_secret().to_owned());
    let prev = s
        .previous("db_password")
        .map(|v| v.expose_secret().to_owned());
    // What `kmseal exec --store-previous` does as well: it must not undo the resolution.
    let after_versions = block(s.resolve_previous_versions(&resolver)).map(|_| ());
    let prev_after = s
        .previous("db_password")
        .map(|v| v.expose_secret().to_owned());
    let _ = std::fs::remove_dir_all(&d);
    assert_eq!(
        prev_text, old,
        "before resolution the previous value is the reference"
    );
    assert!(resolved.is_ok(), "resolve_references: {resolved:?}");
    assert_eq!(cur.as_deref(), Some("new-db-password-654321"));
    assert_eq!(
        prev.as_deref(),
        Some("old-db-password-123456"),
        "the previous value must be resolved, not given as `ref+` text"
    );
    assert!(
        after_versions.is_ok(),
        "resolve_previous_versions: {after_versions:?}"
    );
    assert_eq!(prev_after, prev);
}

// ---------------------------------------------------------------------------------------
// Rule texts with awkward characters in every format: seal, then open must give them back.
// ---------------------------------------------------------------------------------------

#[test]
fn review_awkward_rule_paths_round_trip_in_every_format() {
    let k = kek();
    let paths = [
        "a#b",
        " a",
        "a ",
        "a\"b",
        "a'b",
        "a\\b",
        "a=b",
        "a,b",
        "a\u{2028}b",
        "a\u{2029}b",
        "a\u{feff}b",
        "a\u{200b}b",
        "a\u{fffe}b",
        "é*",
        "#",
        "a # b",
        "\\",
        "a\u{202e}b",
        "a${X}b",
        "a`b`",
        "*",
    ];
    let mut failures = Vec::new();
    for (text, f) in [
        ("k=abcdefghijklmnop\n", Format::Dotenv),
        ("{\"k\": \"abcdefghijklmnop\"}\n", Format::Json),
        ("k = \"abcdefghijklmnop\"\n", Format::Toml),
        ("k: abcdefghijklmnop\n", Format::Yaml),
    ] {
        for p in paths {
            let rule = Require::present(p).alias("X");
            let sealed = match block(sealer(&k).rules([rule.clone()]).seal(text, f)) {
                Ok(s) => s,
                // A path a rule cannot name is refused with a typed error, never stored.
                Err(Error::Unsupported(_)) => continue,
                Err(e) => {
                    failures.push(format!("{f:?} {p:?}: seal failed: {e}"));
                    continue;
                }
            };
            match open_f(&sealed, f, &k) {
                Ok(s) if s.requirements() == [rule.clone()] => {}
                Ok(s) => failures.push(format!(
                    "{f:?} {p:?}: rules came back {:?}",
                    s.requirements()
                )),
                Err(e) => failures.push(format!("{f:?} {p:?}: open failed: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

// ---------------------------------------------------------------------------------------
// Sound: downgrades and field games are refused; whitespace in base64 fields is harmless.
// ---------------------------------------------------------------------------------------

/// A v4 document with a rule, a previous value and times, and `strip(doc, version)`: the same
/// document with its v4 fields removed and the version lowered (v1: manifest and meta_mac too).
fn downgraded(k: &Arc<LocalKek>) -> (String, impl Fn(&str, u8) -> String) {
    let sealed = block(
        sealer(k)
            .rules(["a:min_len=10,max_age=30d".parse::<Require>().unwrap()])
            .seal("a: abcdefghijkl\nb: zyxwvutsrqpo\n", Format::Yaml),
    )
    .unwrap();
    let doc = block(sealer(k).keep_previous(Duration::from_secs(30 * DAY)).set(
        &sealed,
        Format::Yaml,
        "a",
        "mnopqrstuvwx",
    ))
    .unwrap();
    let strip = |t: &str, v: u8| {
        let mut drop = vec!["  rules:", "  times:", "  previous:"];
        if v == 1 {
            drop.extend(["  manifest:", "  meta_mac:"]);
        }
        t.lines()
            .filter(|l| !drop.iter().any(|d| l.starts_with(d)))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .replace("  version: \"4\"", &format!("  version: \"{v}\""))
    };
    (doc, strip)
}

#[test]
fn review_downgrading_a_v4_block_to_v2_or_v3_is_refused_even_with_accept_changes() {
    let k = kek();
    let (doc, strip) = downgraded(&k);
    for v in [3, 2] {
        let t = strip(&doc, v);
        let r = open(&t, &k).map(|_| ());
        assert!(
            matches!(r, Err(Error::Tampered(_) | Error::Metadata(_))),
            "v{v}: {r:?}"
        );
        let r = block(sealer(&k).seal(&t, Format::Yaml)).map(|_| ());
        assert!(
            matches!(r, Err(Error::Tampered(_) | Error::Metadata(_))),
            "v{v} reseal: {r:?}"
        );
        let r = block(sealer(&k).accept_changes(true).seal(&t, Format::Yaml)).map(|_| ());
        assert!(
            matches!(r, Err(Error::Tampered(_) | Error::Metadata(_))),
            "v{v} accept: {r:?}"
        );
    }
    // v1: open and a routine re-seal refuse it too.
    let t = strip(&doc, 1);
    assert!(matches!(open(&t, &k), Err(Error::Tampered(_))));
    assert!(matches!(
        block(sealer(&k).seal(&t, Format::Yaml)),
        Err(Error::Changed(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Finding 8: downgrade to version 1 (no metadata MAC): `seal --accept-changes` blessed a
// key-less removal of the rules, times and previous values, where the same removal in a
// v4 block is refused as tampering even with --accept-changes. The attacker only had to
// make the owner accept "values differ (a version-1 document cannot say which)". A v1
// document whose MAC fails is now refused even with accept_changes.
// ---------------------------------------------------------------------------------------

#[test]
fn review_a_v1_downgrade_is_refused_even_with_accept_changes() {
    let k = kek();
    let (doc, strip) = downgraded(&k);
    // The same removal, left at version 4: refused even with accept_changes.
    let v4: String = doc
        .lines()
        .filter(|l| !l.starts_with("  rules:") && !l.starts_with("  previous:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let r = block(sealer(&k).accept_changes(true).seal(&v4, Format::Yaml)).map(|_| ());
    assert!(
        matches!(r, Err(Error::Tampered(_))),
        "v4 block with rules and previous removed, accept_changes: {r:?}"
    );
    // Stripped down to version 1: refused the same way.
    let v1 = strip(&doc, 1);
    let r = block(sealer(&k).accept_changes(true).seal(&v1, Format::Yaml)).map(|s| {
        let s = open(&s, &k).unwrap();
        format!(
            "sealed; requirements now {:?}, previous(a) kept: {}",
            s.requirements(),
            s.previous("a").is_some()
        )
    });
    assert!(
        matches!(r, Err(Error::Tampered(_))),
        "a key-less downgrade to v1 must be refused even with accept_changes, got {r:?}"
    );
    // A genuine version-1 document is still maintained: `set` works on the frozen vector and
    // records the time of the value it sets.
    let t = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let set = block(
        Sealer::new(Encryptor::new(kek_a()), Decryptor::new(kek_a()))
            .clock(t)
            .set(
                &frozen("v1_service.yaml"),
                Format::Yaml,
                "database.password",
                "a-brand-new-rotated-password-123",
            ),
    )
    .unwrap();
    let s = open(&set, &kek_a()).unwrap();
    assert_eq!(
        s.secret("database.password").unwrap().expose_secret(),
        "a-brand-new-rotated-password-123"
    );
    assert_eq!(s.set_at("database.password"), Some(t));
}

#[test]
fn review_base64_whitespace_is_the_only_slack_and_changes_nothing() {
    let k = kek();
    let doc = rotated_doc(&k);
    for name in ["times", "previous"] {
        let v = field(&doc, name);
        // Padding, non-canonical trailing bits and standard-alphabet characters are refused.
        let mut last = v.clone();
        let c = last.pop().unwrap();
        let bumped = if c == 'A' { 'B' } else { 'A' };
        for bad in [
            format!("{v}="),
            format!("{last}{bumped}"),
            v.replace('-', "+").replace('_', "/"),
        ] {
            if bad == v {
                continue;
            }
            let r = open(&doc.replacen(&v, &bad, 1), &k).map(|_| ());
            assert!(r.is_err(), "{name}: {bad}");
        }
        // Surrounding whitespace is trimmed: same bytes, same MAC, same meaning.
        let spaced = doc.replacen(&v, &format!(" {v} "), 1);
        let s = open(&spaced, &k).unwrap();
        assert_eq!(s.previous("a").unwrap().expose_secret(), "abcdefghijkl");
    }
}

#[test]
fn review_previous_value_cannot_move_between_paths_or_become_current() {
    let k = kek();
    let sealed =
        block(sealer(&k).seal("a: abcdefghijkl\nb: zyxwvutsrqpo\n", Format::Yaml)).unwrap();
    let doc = block(sealer(&k).keep_previous(Duration::from_secs(DAY)).set(
        &sealed,
        Format::Yaml,
        "a",
        "mnopqrstuvwx",
    ))
    .unwrap();
    // Even with the MACs out of the way, the previous value's AAD binds path and expiry:
    // decrypting it as `b`'s previous, or as a current value, fails.
    let prev = field(&doc, "previous");
    let raw = B64URL.decode(&prev).unwrap();
    let at = raw.windows(10).position(|w| w == b"kmseal:v1:").unwrap();
    let ct = String::from_utf8(raw[at..].to_vec()).unwrap();
    let b_ct = {
        let start = doc.find("\nb: \"").unwrap() + 5;
        doc[start..start + doc[start..].find('"').unwrap()].to_owned()
    };
    let swapped = doc.replacen(&b_ct, &ct, 1);
    assert!(open(&swapped, &k).is_err());
    let s = open(&doc, &k).unwrap();
    assert_eq!(s.previous("a").unwrap().expose_secret(), "abcdefghijkl");
    assert!(s.previous("b").is_none());
}

#[test]
fn review_times_kept_across_policy_changes_and_set_keeps_others() {
    let k = kek();
    let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let t1 = UNIX_EPOCH + Duration::from_secs(1_700_100_000);
    let doc = "user: app\npassword: abcdefghijklmnop\ntoken: qrstuvwxyzabcdef\n";
    let sealed = block(
        sealer(&k)
            .policy(kmseal_config::Policy::only(["password", "token"]).unwrap())
            .clock(t0)
            .seal(doc, Format::Yaml),
    )
    .unwrap();
    // Encrypt `user` too; then declassify `token`; then `set` password.
    let more = block(
        sealer(&k)
            .policy(kmseal_config::Policy::only(["user", "password", "token"]).unwrap())
            .clock(t1)
            .seal(&sealed, Format::Yaml),
    )
    .unwrap();
    let less = block(
        sealer(&k)
            .policy(kmseal_config::Policy::only(["user", "password"]).unwrap())
            .declassify(true)
            .clock(t1)
            .seal(&more, Format::Yaml),
    )
    .unwrap();
    let set = block(sealer(&k).clock(t1).set(
        &less,
        Format::Yaml,
        "password",
        "a-new-password-123",
    ))
    .unwrap();
    let s = open(&set, &k).unwrap();
    assert_eq!(s.set_at("user"), Some(t0));
    assert_eq!(s.set_at("token"), Some(t0));
    assert_eq!(s.set_at("password"), Some(t1));
}

#[test]
fn review_age_arithmetic_saturates() {
    let r = Require::secret("k").max_age(Duration::from_secs(u64::MAX));
    let k = kek();
    let sealed = block(
        sealer(&k)
            .rules([r])
            .clock(UNIX_EPOCH + Duration::from_secs(1))
            .seal("k: abcdefghijklmnop\n", Format::Yaml),
    )
    .unwrap();
    let s = open(&sealed, &k).unwrap();
    let f = s.findings_at(
        s.requirements(),
        SystemTime::now(),
        Duration::from_secs(u64::MAX),
    );
    assert!(
        f.iter()
            .all(|f| matches!(f.problem, Problem::DueSoon { .. })),
        "{f:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Finding 9 (cosmetic): the move of require.rs lost the `\` line continuations in four
// messages, which carried 18-space runs (`kmseal config                  set FILE ...`).
// ---------------------------------------------------------------------------------------

#[test]
fn review_messages_carry_no_runs_of_spaces() {
    let mut texts: Vec<String> = [
        Problem::Placeholder,
        Problem::AgeUnknown,
        Problem::LowEntropy {
            estimated_bits: 12,
            min_bits: 64,
        },
        Problem::NameConflict {
            name: "TOKEN".into(),
        },
    ]
    .into_iter()
    .map(|problem| {
        kmseal_config::Finding {
            path: "db.password".into(),
            problem,
        }
        .to_string()
    })
    .collect();
    texts.push("a:bogus".parse::<Require>().unwrap_err().to_string());
    assert!(texts.iter().all(|t| !t.contains("   ")), "{texts:#?}");
}
