//! Values written `ref+URI`: resolved from secret stores at open time, covered by the
//! document MAC in sealed documents, every failure reported at once, never a value.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use kmseal::store::{LocalStores, Resolver};
use kmseal::{Decryptor, Encryptor, LocalKek};
use kmseal_config::{Error, Format, Policy, Require, Sealer, read_unsealed};

fn block<F: std::future::Future>(f: F) -> F::Output {
    kmseal::blocking::block_on(f)
}

/// A private directory with secret files (mode 0600 in a 0700 directory, as file:// needs).
struct Files(PathBuf);

impl Files {
    fn new(name: &str) -> Files {
        let d = std::env::temp_dir().join(format!("kmseal-refs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        Files(d)
    }

    /// Writes `value` to a file and returns its `file://` reference.
    fn secret(&self, name: &str, value: &[u8]) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, value).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        format!("file://{}", p.display())
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn resolver() -> Resolver {
    Resolver::new(LocalStores)
}

#[test]
fn an_unsealed_document_of_references_resolves_into_secrets() {
    let files = Files::new("unsealed");
    let db = files.secret("db.json", br#"{"user": "app", "password": "db-pw-123"}"#);
    let jwt = files.secret("jwt", b"jwt-secret-456");
    let doc = format!(
        "database:\n  host: db.internal\n  password: ref+{db}#password\njwt:\n  secret: ref+{jwt}\n"
    );
    let mut secrets = read_unsealed(&doc, Format::Yaml).unwrap();
    assert_eq!(secrets.references().unwrap().len(), 2);
    assert_eq!(block(secrets.resolve_references(&resolver())).unwrap(), 2);
    assert_eq!(
        secrets.secret("database.password").unwrap().expose_secret(),
        "db-pw-123"
    );
    assert_eq!(
        secrets.secret("jwt.secret").unwrap().expose_secret(),
        "jwt-secret-456"
    );
    assert_eq!(secrets.plain("database.host"), Some("db.internal"));
    let from = secrets.resolution("database.password").unwrap();
    assert_eq!(from.reference.to_string(), format!("{db}#password"));
    assert!(secrets.resolution("database.host").is_none());
    // Requirements apply to resolved values.
    secrets
        .check(&[Require::secret("jwt.secret").min_len(14)])
        .unwrap();
    let e = secrets
        .check(&[Require::secret("jwt.secret").min_len(32)])
        .unwrap_err();
    assert!(e.to_string().contains("jwt.secret"), "{e}");
    // A .env of references keeps its names.
    let env_doc = format!("DB_PASSWORD=ref+{db}#password\n");
    let mut env = read_unsealed(&env_doc, Format::Dotenv).unwrap();
    block(env.resolve_references(&resolver())).unwrap();
    assert_eq!(env.env_vars(), [("DB_PASSWORD".to_owned(), "db-pw-123")]);
}

#[test]
fn every_failing_reference_is_reported_at_once_and_nothing_is_replaced() {
    let files = Files::new("failing");
    let good = files.secret("good", b"fine");
    let not_json = files.secret("raw", b"hunter2-not-json");
    let binary = files.secret("bin", &[0xff, 0xfe]);
    let missing = format!("file://{}/missing", files.0.display());
    let doc = format!(
        "a: ref+{good}\nb: ref+{missing}\nc: ref+{not_json}#field\nd: ref+env://KMSEAL_UNSET_VAR_X\ne: ref+{binary}\n"
    );
    let mut secrets = read_unsealed(&doc, Format::Yaml).unwrap();
    let e = block(secrets.resolve_references(&resolver())).unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, Error::References(ref v) if v.len() == 4),
        "{text}"
    );
    for path in ["`b`", "`c`", "`d`", "`e`"] {
        assert!(text.contains(path), "{path} missing from: {text}");
    }
    assert!(!text.contains("hunter2"), "{text}");
    // Nothing was replaced: `a` is still the reference.
    assert!(secrets.plain("a").unwrap().starts_with("ref+"));

    let bad = read_unsealed("x: ref+nonsense\ny: ref+env://A?version=1\n", Format::Yaml).unwrap();
    let e = bad.references().unwrap_err();
    assert!(
        e.to_string().contains("`x`") && e.to_string().contains("`y`"),
        "{e}"
    );
}

#[test]
fn a_sealed_document_authenticates_its_references_plain_or_encrypted() {
    let files = Files::new("sealed");
    let real = files.secret("real", b"the-real-value");
    let evil = files.secret("evil", b"attacker-value");
    let kek = Arc::new(LocalKek::generate().unwrap());
    let sealer = Sealer::new(Encryptor::new(kek.clone()), Decryptor::new(kek.clone()))
        .policy(Policy::only(["*secret"]).unwrap());
    let doc = format!("api_secret: ref+{real}\ntoken: ref+{real}\n");
    let sealed = block(sealer.seal(&doc, Format::Yaml)).unwrap();
    assert!(
        !sealed.contains(&format!("api_secret: ref+{real}")),
        "encrypted by policy"
    );
    assert!(sealed.contains(&format!("token: ref+{real}")), "kept plain");

    let dec = Decryptor::new(kek);
    let mut secrets = block(kmseal_config::open(&sealed, Format::Yaml, &dec)).unwrap();
    block(secrets.resolve_references(&resolver())).unwrap();
    assert_eq!(
        secrets.secret("api_secret").unwrap().expose_secret(),
        "the-real-value"
    );
    assert_eq!(
        secrets.secret("token").unwrap().expose_secret(),
        "the-real-value"
    );

    // Pointing a plain reference elsewhere without the key breaks the document MAC.
    let tampered = sealed.replace(&format!("token: ref+{real}"), &format!("token: ref+{evil}"));
    let e = block(kmseal_config::open(&tampered, Format::Yaml, &dec)).unwrap_err();
    assert!(matches!(e, Error::Tampered(_)), "{e}");
    // And a sealed document is not read as an unsealed one.
    assert!(matches!(
        read_unsealed(&sealed, Format::Yaml),
        Err(Error::Unsupported(_))
    ));
}
