//! Format version 4 (issue 20): requirements, set times and previous values that travel with
//! the document under its metadata MAC.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use kmseal::{Decryptor, Encryptor, LocalKek};
use kmseal_config::{Error, Format, Problem, Require, Sealer, Secrets};

fn block<F: std::future::Future>(f: F) -> F::Output {
    kmseal::blocking::block_on(f)
}

fn kek() -> Arc<LocalKek> {
    Arc::new(LocalKek::generate().unwrap())
}

fn sealer(k: &Arc<LocalKek>) -> Sealer {
    Sealer::new(Encryptor::new(k.clone()), Decryptor::new(k.clone()))
}

fn open(text: &str, k: &Arc<LocalKek>) -> Result<Secrets, Error> {
    block(kmseal_config::open(
        text,
        Format::Yaml,
        &Decryptor::new(k.clone()),
    ))
}

const DAY: u64 = 86_400;

/// A whole number of days before now.
fn days_ago(n: u64) -> SystemTime {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(now - n * DAY)
}

const DOC: &str = "db:\n  host: db.internal\n  password: correct-horse-battery-staple\njwt_secret: 0123456789abcdef0123456789abcdef\n";

/// The field `name` of the YAML metadata block (its quoted value).
fn field(sealed: &str, name: &str) -> String {
    let start = sealed.find(&format!("  {name}: \"")).unwrap() + name.len() + 5;
    let end = start + sealed[start..].find('"').unwrap();
    sealed[start..end].to_owned()
}

fn set_at(s: &Secrets, path: &str) -> SystemTime {
    s.set_at(path).unwrap_or_else(|| panic!("{path}: no time"))
}

#[test]
fn every_value_records_when_it_was_set_and_an_unchanged_reseal_keeps_it() {
    let k = kek();
    let (t0, t1, t2) = (days_ago(30), days_ago(10), days_ago(1));
    let sealed = block(sealer(&k).clock(t0).seal(DOC, Format::Yaml)).unwrap();
    assert!(sealed.contains("  version: \"4\""), "{sealed}");
    let s = open(&sealed, &k).unwrap();
    for p in ["db.host", "db.password", "jwt_secret"] {
        assert_eq!(set_at(&s, p), t0, "{p}");
    }
    // A re-seal that changes nothing keeps every time: the same bytes.
    let plain = block(kmseal_config::decrypt(
        &sealed,
        Format::Yaml,
        &Decryptor::new(k.clone()),
        true,
    ))
    .unwrap();
    let again = block(sealer(&k).clock(t1).seal(&plain, Format::Yaml)).unwrap();
    assert_eq!(again, sealed);
    // An edit (accepted) gets the new time; the others keep theirs.
    let edited = plain.replace("db.internal", "db2.internal");
    let resealed = block(
        sealer(&k)
            .clock(t1)
            .accept_changes(true)
            .seal(&edited, Format::Yaml),
    )
    .unwrap();
    let s = open(&resealed, &k).unwrap();
    assert_eq!(set_at(&s, "db.host"), t1);
    assert_eq!(set_at(&s, "db.password"), t0);
    assert_eq!(set_at(&s, "jwt_secret"), t0);
    // `set` too, and setting the same value again changes nothing.
    let set = block(sealer(&k).clock(t2).set(
        &resealed,
        Format::Yaml,
        "jwt_secret",
        "fedcba9876543210fedcba9876543210",
    ))
    .unwrap();
    let s = open(&set, &k).unwrap();
    assert_eq!(set_at(&s, "jwt_secret"), t2);
    assert_eq!(set_at(&s, "db.host"), t1);
    let same = block(sealer(&k).set(
        &set,
        Format::Yaml,
        "jwt_secret",
        "fedcba9876543210fedcba9876543210",
    ))
    .unwrap();
    assert_eq!(same, set);
    // A new policy that encrypts a plain value does not change when it was set.
    let policy = kmseal_config::Policy::only(["host", "password", "jwt_secret"]).unwrap();
    let encrypted = block(
        sealer(&k)
            .policy(policy)
            .clock(days_ago(0))
            .seal(&set, Format::Yaml),
    )
    .unwrap();
    assert!(!encrypted.contains("db2.internal"));
    let s = open(&encrypted, &k).unwrap();
    assert!(s.secret("db.host").is_some());
    assert_eq!(set_at(&s, "db.host"), t1);
}

#[test]
fn times_rules_and_previous_values_are_under_the_metadata_mac() {
    let k = kek();
    let rules: Vec<Require> = vec![
        "db.password:min_len=16,max_age=90d".parse().unwrap(),
        "jwt_secret:min_len=32,generate=hex:16,alias=JWT_KEY"
            .parse()
            .unwrap(),
    ];
    let sealed = block(
        sealer(&k)
            .rules(rules.clone())
            .clock(days_ago(5))
            .seal(DOC, Format::Yaml),
    )
    .unwrap();
    let rotated = block(sealer(&k).keep_previous(Duration::from_secs(3 * DAY)).set(
        &sealed,
        Format::Yaml,
        "jwt_secret",
        "fedcba9876543210fedcba9876543210",
    ))
    .unwrap();
    assert_eq!(open(&rotated, &k).unwrap().requirements(), &rules[..]);
    let mut edits: Vec<(String, String)> = Vec::new();
    // Weaken a rule, drop the rules, add one.
    let stored = field(&rotated, "rules");
    edits.push((stored.clone(), stored.replace("min_len=16", "min_len=1")));
    edits.push((format!("  rules: \"{stored}\"\n"), String::new()));
    edits.push((stored.clone(), format!("{stored};other:min_len=99")));
    // Make a value look younger: another time in the table.
    let times = field(&rotated, "times");
    let mut raw = B64URL.decode(&times).unwrap();
    raw[11] ^= 1;
    edits.push((times.clone(), B64URL.encode(&raw)));
    edits.push((format!("  times: \"{times}\"\n"), String::new()));
    // Extend the grace period, or drop the previous value.
    let previous = field(&rotated, "previous");
    let mut raw = B64URL.decode(&previous).unwrap();
    let expires_at = 4 + 4 + 1 + 4 + "jwt_secret".len();
    raw[expires_at + 6] ^= 1;
    edits.push((previous.clone(), B64URL.encode(&raw)));
    edits.push((format!("  previous: \"{previous}\"\n"), String::new()));
    for (from, to) in edits {
        let edited = rotated.replacen(&from, &to, 1);
        assert_ne!(edited, rotated, "{from}");
        let r = open(&edited, &k);
        assert!(
            matches!(r, Err(Error::Tampered(_) | Error::Metadata(_))),
            "{to}: {:?}",
            r.map(|_| ())
        );
        let r = block(sealer(&k).seal(&edited, Format::Yaml));
        assert!(
            matches!(r, Err(Error::Tampered(_) | Error::Metadata(_))),
            "{to}: re-seal {:?}",
            r.map(|_| ())
        );
        let r = block(sealer(&k).accept_changes(true).seal(&edited, Format::Yaml));
        assert!(
            matches!(r, Err(Error::Tampered(_) | Error::Metadata(_))),
            "{to}: --accept-changes {:?}",
            r.map(|_| ())
        );
    }
}

#[test]
fn garbage_in_the_version_4_fields_is_a_typed_error() {
    let k = kek();
    let sealed = block(
        sealer(&k)
            .rules(["a:min_len=3".parse().unwrap()])
            .seal("a: abcdef\n", Format::Yaml),
    )
    .unwrap();
    let rotated = block(sealer(&k).keep_previous(Duration::from_secs(DAY)).set(
        &sealed,
        Format::Yaml,
        "a",
        "ghijkl",
    ))
    .unwrap();
    for name in ["times", "previous"] {
        let stored = field(&rotated, name);
        let raw = B64URL.decode(&stored).unwrap();
        let mut variants: Vec<Vec<u8>> = (0..raw.len()).map(|cut| raw[..cut].to_vec()).collect();
        for i in 0..raw.len() {
            for bit in [0x01, 0x80] {
                let mut v = raw.clone();
                v[i] ^= bit;
                variants.push(v);
            }
        }
        variants.push([raw.clone(), vec![0]].concat());
        for v in variants {
            let edited = rotated.replacen(&stored, &B64URL.encode(&v), 1);
            match open(&edited, &k) {
                Err(Error::Tampered(_) | Error::Metadata(_)) => {}
                other => panic!("{name} {v:?}: {:?}", other.map(|_| ())),
            }
        }
    }
}

#[test]
fn requirements_from_the_document_fail_fast_with_ages() {
    let k = kek();
    let doc = "db:\n  password: changeme\n  replica_password: Xk9mP2vL5nQ8wR4tY7uI\njwt_secret: 0123456789abcdef0123456789abcdef\n";
    let rules: Vec<Require> = vec![
        "*password:min_len=16,max_age=90d".parse().unwrap(),
        "jwt_secret:max_age=30d".parse().unwrap(),
        "api.*:present".parse().unwrap(),
    ];
    let sealed = block(
        sealer(&k)
            .rules(rules)
            .clock(days_ago(100))
            .seal(doc, Format::Yaml),
    )
    .unwrap();
    let sealed = block(sealer(&k).clock(days_ago(20)).set(
        &sealed,
        Format::Yaml,
        "jwt_secret",
        "fedcba9876543210fedcba9876543210",
    ))
    .unwrap();
    let s = open(&sealed, &k).unwrap();
    let found: Vec<(String, &str)> = s
        .findings_at(
            s.requirements(),
            SystemTime::now(),
            Duration::from_secs(14 * DAY),
        )
        .iter()
        .map(|f| (f.path.clone(), f.problem.name()))
        .collect();
    assert_eq!(
        found,
        [
            ("db.password".to_owned(), "too_short"),
            ("db.password".to_owned(), "placeholder"),
            ("db.password".to_owned(), "too_old"),
            ("db.replica_password".to_owned(), "too_old"),
            ("jwt_secret".to_owned(), "due_soon"),
            ("api.*".to_owned(), "missing"),
        ]
    );
    let err = s.check_requirements().unwrap_err().to_string();
    assert!(
        err.contains("rotation interval of 90 days") && !err.contains("due for rotation"),
        "{err}"
    );
    assert!(
        !err.contains("changeme") && !err.contains("Xk9mP2"),
        "{err}"
    );
    // A due-soon warning alone fails nothing.
    let warn_only = s.findings_at(
        &["jwt_secret:max_age=30d".parse().unwrap()],
        SystemTime::now(),
        Duration::from_secs(14 * DAY),
    );
    assert!(warn_only.iter().all(|f| f.problem.is_warning()) && !warn_only.is_empty());
    assert!(
        s.check(&["jwt_secret:max_age=30d".parse().unwrap()])
            .is_ok()
    );
}

#[test]
fn ages_not_recorded_fail_a_rotation_interval() {
    let k = kek();
    // A document opened without times (here: not sealed, read as it is) has no ages.
    let s =
        kmseal_config::read_unsealed("token: abcdefghijklmnopqrstuvwx\n", Format::Yaml).unwrap();
    let f = s.findings(&["token:present,max_age=90d".parse().unwrap()]);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].problem, Problem::AgeUnknown);
    let _ = k;
}

#[test]
fn a_previous_value_is_kept_through_its_grace_period_only() {
    let k = kek();
    let sealed = block(
        sealer(&k)
            .rules(["jwt_secret:alias=JWT_KEY".parse().unwrap()])
            .seal(DOC, Format::Yaml),
    )
    .unwrap();
    let old = "0123456789abcdef0123456789abcdef";
    let new = "fedcba9876543210fedcba9876543210";
    let rotated = block(sealer(&k).keep_previous(Duration::from_secs(DAY)).set(
        &sealed,
        Format::Yaml,
        "jwt_secret",
        new,
    ))
    .unwrap();
    assert!(!rotated.contains(old) && !rotated.contains(new));
    let s = open(&rotated, &k).unwrap();
    assert_eq!(s.secret("jwt_secret").unwrap().expose_secret(), new);
    assert_eq!(s.previous("jwt_secret").unwrap().expose_secret(), old);
    assert!(s.previous("db.password").is_none());
    let env: Vec<(String, String)> = s
        .env_vars()
        .into_iter()
        .map(|(n, v)| (n, v.to_owned()))
        .collect();
    for (name, value) in [
        ("JWT_SECRET", new),
        ("JWT_KEY", new),
        ("JWT_SECRET_PREVIOUS", old),
        ("JWT_KEY_PREVIOUS", old),
    ] {
        assert!(
            env.contains(&(name.to_owned(), value.to_owned())),
            "{name}: {env:?}"
        );
    }
    // The previous value is a secret the redactor knows.
    let mut r = kmseal::redact::Redactor::new();
    s.add_to_redactor(&mut r).unwrap();
    let out = Arc::new(r).redact(format!("old={old}").as_bytes()).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(!out.contains(old), "{out}");
    // Unchanged re-seals keep it; a second rotation without a grace period drops it.
    let plain = block(kmseal_config::decrypt(
        &rotated,
        Format::Yaml,
        &Decryptor::new(k.clone()),
        true,
    ))
    .unwrap();
    assert_eq!(
        block(sealer(&k).seal(&plain, Format::Yaml)).unwrap(),
        rotated
    );
    let again = block(sealer(&k).set(
        &rotated,
        Format::Yaml,
        "jwt_secret",
        "a-third-value-a-third-value-abcd",
    ))
    .unwrap();
    assert!(open(&again, &k).unwrap().previous("jwt_secret").is_none());
    assert!(!again.contains("  previous: "), "{again}");
    // A previous value is never accepted as the current one (its own associated data).
    let stolen = {
        let s = kmseal_config::inspect(&rotated, Format::Yaml).unwrap();
        assert_eq!(s.previous.len(), 1);
        let raw = B64URL.decode(field(&rotated, "previous")).unwrap();
        let at = raw.windows(10).position(|w| w == b"kmseal:v1:").unwrap();
        String::from_utf8(raw[at..].to_vec()).unwrap()
    };
    let current = {
        let start = rotated.find("jwt_secret: \"").unwrap() + 13;
        rotated[start..start + rotated[start..].find('"').unwrap()].to_owned()
    };
    let swapped = rotated.replacen(&current, &stolen, 1);
    assert!(open(&swapped, &k).is_err());
}

#[test]
fn an_expired_previous_value_is_not_given_out_and_the_next_seal_drops_it() {
    let k = kek();
    let sealed = block(sealer(&k).seal(DOC, Format::Yaml)).unwrap();
    let rotated = block(
        sealer(&k)
            .clock(days_ago(2))
            .keep_previous(Duration::from_secs(DAY))
            .set(
                &sealed,
                Format::Yaml,
                "jwt_secret",
                "fedcba9876543210fedcba9876543210",
            ),
    )
    .unwrap();
    assert!(rotated.contains("  previous: "));
    let s = open(&rotated, &k).unwrap();
    assert!(s.previous("jwt_secret").is_none());
    assert!(!s.env_vars().iter().any(|(n, _)| n.ends_with("_PREVIOUS")));
    let plain = block(kmseal_config::decrypt(
        &rotated,
        Format::Yaml,
        &Decryptor::new(k.clone()),
        true,
    ))
    .unwrap();
    let resealed = block(sealer(&k).seal(&plain, Format::Yaml)).unwrap();
    assert!(!resealed.contains("  previous: "), "{resealed}");
    assert!(
        kmseal_config::inspect(&resealed, Format::Yaml)
            .unwrap()
            .previous
            .is_empty()
    );
}

#[test]
fn stored_rules_are_validated() {
    let k = kek();
    for bad in [
        Require::secret("a").alias("1BAD"),
        Require::secret("a").alias("has-dash"),
        Require::secret("a")
            .min_len(64)
            .generate("hex:16".parse().unwrap()),
        Require::secret("a")
            .min_entropy(256)
            .generate("hex:16".parse().unwrap()),
        Require::secret("a").max_age(Duration::ZERO),
        Require::secret("a;b"),
        Require::secret("a\nb"),
    ] {
        let r = block(sealer(&k).rules([bad.clone()]).seal("a: x\n", Format::Yaml));
        assert!(
            matches!(r, Err(Error::Unsupported(_))),
            "{bad:?}: {:?}",
            r.map(|_| ())
        );
    }
}

#[test]
fn every_format_carries_version_4_fields() {
    let k = kek();
    for (text, f) in [
        ("db_password=abcdefghijklmnop\nhost=x\n", Format::Dotenv),
        (
            "{\"db_password\": \"abcdefghijklmnop\", \"host\": \"x\"}\n",
            Format::Json,
        ),
        (
            "db_password = \"abcdefghijklmnop\"\nhost = \"x\"\n",
            Format::Toml,
        ),
        ("db_password: abcdefghijklmnop\nhost: x\n", Format::Yaml),
    ] {
        let rules = vec![
            "*password:min_len=16,max_age=90d,generate=base64url:24,alias=DB_PASS"
                .parse::<Require>()
                .unwrap(),
        ];
        let sealed = block(sealer(&k).rules(rules.clone()).seal(text, f)).unwrap();
        let rotated = block(sealer(&k).keep_previous(Duration::from_secs(DAY)).set(
            &sealed,
            f,
            "db_password",
            "qrstuvwxyzabcdefgh",
        ))
        .unwrap();
        let s = block(kmseal_config::open(&rotated, f, &Decryptor::new(k.clone()))).unwrap();
        assert_eq!(s.requirements(), &rules[..], "{f:?}");
        assert_eq!(
            s.previous("db_password").unwrap().expose_secret(),
            "abcdefghijklmnop",
            "{f:?}"
        );
        assert!(s.set_at("host").is_some(), "{f:?}");
        s.check_requirements().unwrap();
    }
}
