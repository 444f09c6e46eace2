//! `kmseal import sops` (issue 23) on files the real `sops` 3.11.0 made with the sops
//! project's public age test key (sops/tests/fixtures): every value arrives, sealed; a
//! tampered file or a missing identity is refused with nothing written.

use std::path::{Path, PathBuf};

use super::{Env, s, stderr};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sops/tests/fixtures")
        .join(name)
}

fn import(env: &Env, args: &[&str], age_key: Option<&Path>) -> std::process::Output {
    let mut cmd = env.command(args);
    cmd.env_remove("SOPS_AGE_KEY")
        .env("XDG_CONFIG_HOME", env.path("xdg"))
        .env("HOME", env.path("home"));
    match age_key {
        Some(k) => cmd.env("SOPS_AGE_KEY_FILE", k),
        None => cmd.env_remove("SOPS_AGE_KEY_FILE"),
    };
    cmd.output().unwrap()
}

#[test]
fn sops_files_of_every_format_import_to_sealed_documents() {
    let env = Env::new("import-sops");
    let (_, k) = env.key_at("k.key");
    let keys = fixture("keys.txt");
    for (input, expected, out) in [
        ("app.sops.yaml", "app.expected.yaml", "app.yaml"),
        ("app.sops.json", "app.expected.json", "app.json"),
        ("app.sops.env", "app.expected.env", "app.env"),
    ] {
        let out = env.path(out);
        let o = import(
            &env,
            &[
                "import",
                "sops",
                s(&fixture(input)),
                "-k",
                &k,
                "-o",
                s(&out),
            ],
            Some(&keys),
        );
        assert!(o.status.success(), "{input}: {}", stderr(&o));
        let sealed = std::fs::read_to_string(&out).unwrap();
        assert!(
            !sealed.contains("correct-horse") && !sealed.contains("ENC["),
            "{sealed}"
        );
        assert!(sealed.contains("kmseal:v1:"), "{sealed}");
        // The sealed document opens to the values `sops decrypt` gave.
        let o = env.run(&["config", "decrypt", "-k", &k, s(&out)], None);
        assert!(o.status.success(), "{input}: {}", stderr(&o));
        let ours = String::from_utf8(o.stdout).unwrap();
        let theirs = std::fs::read_to_string(fixture(expected)).unwrap();
        same_document(input, &ours, &theirs);
    }
}

/// `ours` (kmseal's decryption of the import) holds what `theirs` (`sops decrypt`) holds;
/// quoting and indentation may differ.
fn same_document(input: &str, ours: &str, theirs: &str) {
    if input.ends_with(".json") {
        let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
        assert_eq!(parse(ours), parse(theirs), "{input}");
    } else if input.ends_with(".env") {
        for line in theirs.lines().filter(|l| l.contains('=')) {
            let (k, v) = line.split_once('=').unwrap();
            assert!(
                ours.contains(line) || ours.contains(&format!("{k}=\"{v}\"")),
                "{input}: {line}\n{ours}"
            );
        }
        assert!(ours.contains("# database credentials"), "{ours}");
    } else {
        for v in [
            "\"db.internal\"",
            "port: 5432",
            "# the real one",
            "\"correct-horse-battery-staple\"",
            "ratio: 0.75",
            "\"s3cr3t: with colon\"",
            "\"line one\\nline two\"",
            "\"héllo wörld ✓\"",
            "quoted: \"yes\"",
            "\"0123\"",
        ] {
            assert!(ours.contains(v), "{input}: {v}\n{ours}");
        }
    }
}

#[test]
fn tampered_files_and_missing_identities_are_refused_and_nothing_is_written() {
    let env = Env::new("import-bad");
    let (_, k) = env.key_at("k.key");
    let keys = fixture("keys.txt");
    let text = std::fs::read_to_string(fixture("app.sops.yaml")).unwrap();
    // Two encrypted values swapped: SOPS's MAC (or the value's AAD) refuses it.
    let lines: Vec<&str> = text.lines().collect();
    let (i, j) = (
        lines
            .iter()
            .position(|l| l.trim_start().starts_with("host:"))
            .unwrap(),
        lines
            .iter()
            .position(|l| l.trim_start().starts_with("password:"))
            .unwrap(),
    );
    let value = |l: &str| l.split_once(": ").unwrap().1.to_owned();
    let mut swapped: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    swapped[i] = format!("    host: {}", value(lines[j]));
    swapped[j] = format!("    password: {}", value(lines[i]));
    let bad = env.path("bad.sops.yaml");
    std::fs::write(&bad, swapped.join("\n") + "\n").unwrap();
    let out = env.path("out.yaml");
    let o = import(
        &env,
        &["import", "sops", s(&bad), "-k", &k, "-o", s(&out)],
        Some(&keys),
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(!out.exists());
    assert!(!stderr(&o).contains("correct-horse"), "{}", stderr(&o));

    // No age identity anywhere: the data key cannot be had (exit 4), nothing written.
    let o = import(
        &env,
        &[
            "import",
            "sops",
            s(&fixture("app.sops.yaml")),
            "-k",
            &k,
            "-o",
            s(&out),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(!out.exists());
    // Garbage is a usage error, not a panic.
    let junk = env.path("junk.yaml");
    std::fs::write(&junk, "sops: [1, 2\n").unwrap();
    let o = import(
        &env,
        &["import", "sops", s(&junk), "-k", &k, "-o", s(&out)],
        Some(&keys),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!out.exists());
}
