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

#[test]
fn mac_only_files_need_the_flag_and_unauthenticated_entries_are_named() {
    let env = Env::new("import-maconly");
    let (_, k) = env.key_at("k.key");
    let keys = fixture("keys.txt");
    let out = env.path("out.yaml");
    let input = fixture("maconly.sops.yaml");
    let args = ["import", "sops", s(&input), "-k", &k, "-o", s(&out)];
    let o = import(&env, &args, Some(&keys));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("mac_only_encrypted"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--accept-unauthenticated-plain"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());

    let mut args = args.to_vec();
    args.push("--accept-unauthenticated-plain");
    let o = import(&env, &args, Some(&keys));
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("warning: SOPS's MAC does not authenticate 3 entries"),
        "{err}"
    );
    for path in ["service.name", "service.api_secret", "service.replicas"] {
        assert!(err.contains(&format!("`{path}`")), "{path}: {err}");
    }
    for value in ["billing", "sec-regex-2", "pw-regex-1"] {
        assert!(!err.contains(value), "{value}: {err}");
    }
    assert!(out.exists());
}

#[test]
fn plain_comments_are_left_out_and_entries_outside_the_mac_are_warned_about() {
    let env = Env::new("import-gaps");
    let (_, k) = env.key_at("k.key");
    let keys = fixture("keys.txt");
    let text = std::fs::read_to_string(fixture("app.sops.yaml")).unwrap();
    let text = text.replacen("servers:\n", "# attacker comment\nservers:\n", 1);
    let text = text.replacen(
        "database:\n",
        "admin_password: \"\"\n\"\\e[31mred\": null\ndatabase:\n",
        1,
    );
    let input = env.path("edited.sops.yaml");
    std::fs::write(&input, text).unwrap();
    let out = env.path("out.yaml");
    let o = import(
        &env,
        &["import", "sops", s(&input), "-k", &k, "-o", s(&out)],
        Some(&keys),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    for path in ["`admin_password`", "`\\u{1b}[31mred`", "`database.empty`"] {
        assert!(err.contains(path), "{path}: {err}");
    }
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(err.contains("left out 1 comment"), "{err}");
    let o = env.run(&["config", "decrypt", "-k", &k, s(&out)], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let plain = String::from_utf8(o.stdout).unwrap();
    assert!(!plain.contains("attacker"), "{plain}");
    assert!(plain.contains("# the real one"), "{plain}");

    // --quiet: no warnings.
    let o = import(
        &env,
        &[
            "-q",
            "import",
            "sops",
            s(&input),
            "-k",
            &k,
            "-o",
            s(&out),
            "-f",
        ],
        Some(&keys),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
}
