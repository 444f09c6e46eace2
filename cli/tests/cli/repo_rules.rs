//! Repository rules (`.kmseal.toml`, issue 23): `config encrypt FILE` with no flags applies
//! the matching rule, found by walking up; flags win over it; a file with neither is refused
//! with the rule to add; `kmseal scan` checks, with no key, that every file a rule covers is
//! sealed, well formed and encrypted as the rule says, from the work tree or the index.

use std::path::Path;
use std::process::{Command, Output};

use super::{Env, git, s, stderr};

fn in_dir(env: &Env, dir: &Path, args: &[&str]) -> Output {
    env.command(args).current_dir(dir).output().unwrap()
}

/// `path:line: rule` of each finding line.
fn findings(o: &Output) -> Vec<String> {
    let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            // `path:line: rule: message`; a path may hold `:`.
            let (at, rest) = l.split_once(": ").unwrap();
            format!("{at}: {}", rest.split_once(": ").unwrap().0)
        })
        .collect();
    v.sort();
    v
}

const PASSWORD: &str = "Tq7-vLm2pX9zR4wNb8sK";
const TOKEN: &str = "tok-5Jd8qW2mZx7Rk4Lp";

fn rules_text(k1: &str, k2: &str) -> String {
    format!(
        r#"# repository rules
[[rules]]
path = "deploy/prod/*.yaml"
keys = ["{k1}"]
encrypt = ["*password*", "*token"]
context = {{ env = "prod" }}
require = ["db.password:min_len=16"]

[[rules]]
path = "*.env"
keys = ["{k2}"]
"#
    )
}

fn app_yaml() -> String {
    format!(
        "db:\n  host: db.internal\n  password: \"{PASSWORD}\"\napi_token: \"{TOKEN}\"\nport: 5432\n"
    )
}

#[test]
fn config_encrypt_applies_the_rule_that_matches_and_refuses_files_without_one() {
    let env = Env::new("rules-encrypt");
    let repo = env.path("repo");
    std::fs::create_dir_all(repo.join("deploy/prod")).unwrap();
    git(&repo, &["init", "-q"]);
    let (_, k1) = env.key_at("k1.key");
    let (_, k2) = env.key_at("k2.key");
    std::fs::write(repo.join(".kmseal.toml"), rules_text(&k1, &k2)).unwrap();
    let app = repo.join("deploy/prod/app.yaml");
    std::fs::write(&app, app_yaml()).unwrap();

    // From a subdirectory, no flags: the rules file above applies.
    let o = in_dir(
        &env,
        &repo.join("deploy"),
        &["config", "encrypt", "prod/app.yaml"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let sealed = std::fs::read_to_string(&app).unwrap();
    assert!(sealed.contains("host: db.internal"), "{sealed}");
    assert!(sealed.contains("port: 5432"), "{sealed}");
    assert!(
        !sealed.contains(PASSWORD) && !sealed.contains(TOKEN),
        "{sealed}"
    );
    // Under the rule's key only, with its context and its requirement.
    let o = env.run(&["config", "decrypt", "-k", &k1, s(&app)], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), app_yaml());
    let o = env.run(&["config", "decrypt", "-k", &k2, s(&app)], None);
    assert!(!o.status.success());
    let o = env.run(&["inspect", s(&app)], None);
    let shown = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(shown.contains("env") && shown.contains("prod"), "{shown}");
    assert!(shown.contains("db.password:min_len=16"), "{shown}");

    // The second rule: a .env file anywhere below, under the other key.
    std::fs::create_dir_all(repo.join("svc")).unwrap();
    let dotenv = repo.join("svc/app.env");
    std::fs::write(&dotenv, format!("DB_PASSWORD={PASSWORD}\n")).unwrap();
    let o = in_dir(&env, &repo, &["config", "encrypt", "svc/app.env"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.run(&["config", "decrypt", "-k", &k2, s(&dotenv)], None);
    assert!(o.status.success(), "{}", stderr(&o));

    // No rule, no flags: refused, with the rule to add; the file is untouched.
    let other = repo.join("deploy/other.yaml");
    std::fs::write(&other, "password: x\n").unwrap();
    let o = in_dir(&env, &repo, &["config", "encrypt", "deploy/other.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("no rule in") && err.contains(".kmseal.toml"),
        "{err}"
    );
    assert!(
        err.contains("[[rules]]\npath = \"deploy/other.yaml\""),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&other).unwrap(), "password: x\n");
    // Flags still work without a rule.
    let o = in_dir(
        &env,
        &repo,
        &["config", "encrypt", "-k", &k2, "deploy/other.yaml"],
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // Flags win over the rule, and a key that differs from the rule's is noted.
    let b = repo.join("deploy/prod/b.yaml");
    std::fs::write(&b, app_yaml()).unwrap();
    // A new ruled document under other keys: refused (the repository chose its keys).
    let o = in_dir(
        &env,
        &repo,
        &["config", "encrypt", "-k", &k2, "deploy/prod/b.yaml"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&b).unwrap(), app_yaml());
    // The policy flags win over the rule's.
    let o = in_dir(
        &env,
        &repo,
        &[
            "config",
            "encrypt",
            "--encrypt",
            "host",
            "deploy/prod/b.yaml",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let sealed = std::fs::read_to_string(&b).unwrap();
    assert!(
        sealed.contains(PASSWORD) && !sealed.contains("db.internal"),
        "{sealed}"
    );
    // Opening a sealed ruled document with another key given is noted.
    let o = in_dir(
        &env,
        &repo,
        &[
            "config",
            "encrypt",
            "-k",
            &k1,
            "-k",
            &k2,
            "--encrypt",
            "host",
            "deploy/prod/b.yaml",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("note:"), "{}", stderr(&o));

    // Outside any repository with rules: the error says there is none.
    let lone = env.path("lone.yaml");
    std::fs::write(&lone, "password: x\n").unwrap();
    let o = env.run(&["config", "encrypt", s(&lone)], None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("has no .kmseal.toml at its top"),
        "{}",
        stderr(&o)
    );

    // A mistake in the rules file is an error, never "no rule".
    std::fs::write(
        repo.join(".kmseal.toml"),
        "[[rules]]\npath = \"*.yaml\"\nencrpyt = [\"*\"]\n",
    )
    .unwrap();
    let o = in_dir(&env, &repo, &["config", "encrypt", "deploy/other.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unknown key `encrpyt`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn scan_checks_files_a_rule_covers_without_a_key() {
    let env = Env::new("rules-scan");
    let repo = env.path("repo");
    std::fs::create_dir_all(repo.join("deploy/prod")).unwrap();
    git(&repo, &["init", "-q"]);
    let (_, k1) = env.key_at("k1.key");
    let (_, k2) = env.key_at("k2.key");
    std::fs::write(repo.join(".kmseal.toml"), rules_text(&k1, &k2)).unwrap();
    let prod = repo.join("deploy/prod");
    for name in ["good", "narrow", "broken", "plain"] {
        std::fs::write(prod.join(format!("{name}.yaml")), app_yaml()).unwrap();
    }
    for name in ["good", "broken"] {
        let o = in_dir(
            &env,
            &repo,
            &["config", "encrypt", &format!("deploy/prod/{name}.yaml")],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    // Sealed, but with flags that leave the token in the clear (line 4).
    let o = in_dir(
        &env,
        &repo,
        &[
            "config",
            "encrypt",
            "-k",
            &k1,
            "--encrypt",
            "*password",
            "deploy/prod/narrow.yaml",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // An encrypted value cut short: malformed, told without the key.
    let text = std::fs::read_to_string(prod.join("broken.yaml")).unwrap();
    let at = text.find("kmseal:v1:s:").unwrap() + "kmseal:v1:s:".len();
    let end = at + text[at..].find('"').unwrap();
    let broken = format!("{}AAAA{}", &text[..at], &text[end..]);
    std::fs::write(prod.join("broken.yaml"), broken).unwrap();

    let o = in_dir(&env, &repo, &["scan", "deploy"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let got = findings(&o);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    for want in [
        "deploy/prod/broken.yaml:1: malformed-sealed-file",
        "deploy/prod/narrow.yaml:4: unencrypted-value",
        "deploy/prod/plain.yaml:1: unsealed-file",
    ] {
        assert!(got.iter().any(|g| g == want), "{want} not in {got:?}");
    }
    assert!(
        !got.iter().any(|g| g.starts_with("deploy/prod/good.yaml")),
        "{got:?}"
    );
    assert!(
        out.contains("kmseal config encrypt deploy/prod/plain.yaml"),
        "{out}"
    );
    assert!(!out.contains(PASSWORD) && !out.contains(TOKEN), "{out}");

    // A requirement added to the rule later: the sealed file does not carry it yet.
    std::fs::remove_file(prod.join("broken.yaml")).unwrap();
    std::fs::remove_file(prod.join("narrow.yaml")).unwrap();
    std::fs::remove_file(prod.join("plain.yaml")).unwrap();
    let stricter = rules_text(&k1, &k2).replace(
        "require = [\"db.password:min_len=16\"]",
        "require = [\"db.password:min_len=16\", \"api_token:min_len=12\"]",
    );
    std::fs::write(repo.join(".kmseal.toml"), &stricter).unwrap();
    let o = in_dir(&env, &repo, &["scan", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        report["findings"][0]["rule"], "missing-requirement",
        "{report}"
    );
    assert_eq!(report["findings"].as_array().unwrap().len(), 1, "{report}");
    // Re-sealing with no flags applies the rule again: clean.
    let o = in_dir(&env, &repo, &["config", "encrypt", "deploy/prod/good.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = in_dir(&env, &repo, &["scan"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // --staged judges the index by the rules in the index: a plaintext file staged under a
    // staged rule is a finding even after the work tree's rules file drops the rule.
    std::fs::write(prod.join("new.yaml"), app_yaml()).unwrap();
    git(&repo, &["add", ".kmseal.toml", "deploy/prod/new.yaml"]);
    std::fs::write(repo.join(".kmseal.toml"), "").unwrap();
    let o = in_dir(&env, &repo, &["scan", "--staged"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        findings(&o).contains(&"deploy/prod/new.yaml:1: unsealed-file".to_owned()),
        "{:?}",
        findings(&o)
    );
    // A rules file that does not parse is an error (exit 2), never "nothing to check".
    std::fs::write(repo.join(".kmseal.toml"), "[[rules]\n").unwrap();
    let o = in_dir(&env, &repo, &["scan", "deploy"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn review_only_the_rules_file_at_the_top_of_the_repository_counts() {
    let env = Env::new("rules-top");
    let outer = env.path("outer");
    let repo = outer.join("repo");
    std::fs::create_dir_all(repo.join("deploy/prod")).unwrap();
    git(&repo, &["init", "-q"]);
    let (_, k1) = env.key_at("k1.key");
    let (_, attacker) = env.key_at("attacker.key");
    let hostile =
        format!("[[rules]]\npath = \"*\"\nkeys = [\"{attacker}\"]\nencrypt = [\"nothing\"]\n");
    // Above the repository: never read.
    std::fs::write(outer.join(".kmseal.toml"), &hostile).unwrap();
    let app = repo.join("app.yaml");
    std::fs::write(&app, app_yaml()).unwrap();
    let o = in_dir(&env, &repo, &["config", "encrypt", "app.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&app).unwrap(), app_yaml());

    // In a subdirectory: never read; the top's rule applies, with its key and policy.
    std::fs::write(repo.join(".kmseal.toml"), rules_text(&k1, &k1)).unwrap();
    std::fs::write(repo.join("deploy/prod/.kmseal.toml"), &hostile).unwrap();
    let prod = repo.join("deploy/prod/app.yaml");
    std::fs::write(&prod, app_yaml()).unwrap();
    let o = in_dir(
        &env,
        &repo.join("deploy/prod"),
        &["config", "encrypt", "app.yaml"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let sealed = std::fs::read_to_string(&prod).unwrap();
    assert!(!sealed.contains(PASSWORD), "{sealed}");
    let o = env.run(&["config", "decrypt", "-k", &attacker, s(&prod)], None);
    assert!(!o.status.success(), "wrapped under the attacker's key");
    // And the scan is not silenced by it either.
    std::fs::write(&prod, app_yaml()).unwrap();
    let o = in_dir(&env, &repo, &["scan", "deploy"]);
    assert!(
        findings(&o).contains(&"deploy/prod/app.yaml:1: unsealed-file".to_owned()),
        "{:?}",
        findings(&o)
    );
}

#[test]
fn review_ruled_files_cannot_slip_past_the_scan() {
    let env = Env::new("rules-slip");
    let repo = env.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    let (_, k) = env.key_at("k.key");
    std::fs::write(
        repo.join(".kmseal.toml"),
        format!("[[rules]]\npath = \"*.env\"\nkeys = [\"{k}\"]\n"),
    )
    .unwrap();
    // A sealed prod.env; a plaintext file named `0:prod.env` (git reads `:0:prod.env`
    // ambiguously), a NUL byte, Latin-1 and UTF-16 content: all plaintext to some reader.
    std::fs::write(repo.join("prod.env"), format!("DB_PASSWORD={PASSWORD}\n")).unwrap();
    let o = in_dir(&env, &repo, &["config", "encrypt", "prod.env"]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(repo.join("0:prod.env"), format!("DB_PASSWORD={PASSWORD}\n")).unwrap();
    std::fs::write(repo.join("nul.env"), "DB_PASSWORD=x\n# \0\n").unwrap();
    std::fs::write(repo.join("latin.env"), b"DB_PASSWORD=caf\xe9\n").unwrap();
    let utf16: Vec<u8> = "DB_PASSWORD=hunter2\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    std::fs::write(repo.join("wide.env"), [&[0xff, 0xfe][..], &utf16].concat()).unwrap();
    // An allow list that tries to silence the rule findings.
    std::fs::write(repo.join(".kmseal-scan-allow"), "* *\n").unwrap();
    git(&repo, &["add", "."]);
    for args in [&["scan", "--staged"][..], &["scan"][..]] {
        let o = in_dir(&env, &repo, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let got = findings(&o);
        for want in [
            "0:prod.env:1: unsealed-file",
            "latin.env:1: unsealed-file",
            "nul.env:1: unsealed-file",
            "wide.env:1: unsealed-file",
        ] {
            assert!(
                got.iter().any(|g| g == want),
                "{args:?}: {want} not in {got:?}"
            );
        }
        assert!(!got.iter().any(|g| g.starts_with("prod.env")), "{got:?}");
    }
    // --staged reads the allow list from the index: an unstaged one silences nothing.
    std::fs::write(repo.join(".kmseal-scan-allow"), "").unwrap();
    git(&repo, &["add", ".kmseal-scan-allow"]);
    std::fs::write(repo.join("config.py"), "KEY = \"AKIAQ3EGRTZ7K2NVX4PL\"\n").unwrap();
    git(&repo, &["add", "config.py"]);
    std::fs::write(repo.join(".kmseal-scan-allow"), "config.py *\n").unwrap();
    let o = in_dir(&env, &repo, &["scan", "--staged"]);
    assert!(
        findings(&o).contains(&"config.py:1: aws-access-key-id".to_owned()),
        "{:?}",
        findings(&o)
    );
}

#[test]
fn review2_keys_context_and_odd_entries_do_not_slip_past() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new("rules-review2");
    let repo = env.path("repo");
    std::fs::create_dir_all(repo.join("deploy/prod")).unwrap();
    git(&repo, &["init", "-q"]);
    let (_, k) = env.key_at("k.key");
    let (_, mallory) = env.key_at("mallory.key");
    std::fs::write(
        repo.join(".kmseal.toml"),
        format!(
            "[[rules]]\npath = \"deploy/prod/*\"\nkeys = [\"{k}\"]\ncontext = {{ env = \"prod\" }}\n"
        ),
    )
    .unwrap();
    // A new ruled document under other keys or another context: refused, nothing written.
    let new = repo.join("deploy/prod/new.yaml");
    std::fs::write(&new, app_yaml()).unwrap();
    for flags in [&["-k", &k, "-k", &mallory][..], &["-c", "env=dev"][..]] {
        let mut args = vec!["config", "encrypt"];
        args.extend_from_slice(flags);
        args.push("deploy/prod/new.yaml");
        let o = in_dir(&env, &repo, &args);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {}", stderr(&o));
        assert_eq!(std::fs::read_to_string(&new).unwrap(), app_yaml());
    }
    // Sealed elsewhere under an extra key and another context, then moved in: the scan
    // sees both without any key.
    let outside = repo.join("elsewhere.yaml");
    std::fs::write(&outside, app_yaml()).unwrap();
    let o = in_dir(
        &env,
        &repo,
        &[
            "config",
            "encrypt",
            "-k",
            &k,
            "-k",
            &mallory,
            "-c",
            "env=dev",
            "elsewhere.yaml",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::rename(&outside, &new).unwrap();
    let o = in_dir(&env, &repo, &["scan", "deploy"]);
    let got = findings(&o);
    for want in [
        "deploy/prod/new.yaml:1: wrong-keys",
        "deploy/prod/new.yaml:1: wrong-context",
    ] {
        assert!(got.iter().any(|g| g == want), "{want} not in {got:?}");
    }

    // A ruled symlink replaced by a plaintext file (a type change) is scanned when staged.
    std::fs::remove_file(&new).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", repo.join("deploy/prod/link.yaml")).unwrap();
    git(&repo, &["add", "."]);
    git(
        &repo,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "commit",
            "-qm",
            "link",
        ],
    );
    std::fs::remove_file(repo.join("deploy/prod/link.yaml")).unwrap();
    std::fs::write(repo.join("deploy/prod/link.yaml"), app_yaml()).unwrap();
    git(&repo, &["add", "deploy/prod/link.yaml"]);
    let o = in_dir(&env, &repo, &["scan", "--staged"]);
    assert!(
        findings(&o).contains(&"deploy/prod/link.yaml:1: unsealed-file".to_owned()),
        "{:?}",
        findings(&o)
    );
    git(
        &repo,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "commit",
            "-qm",
            "plain",
        ],
    );

    // A submodule (a gitlink) staged: no content to scan, and no error.
    let head = String::from_utf8(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&repo)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    git(
        &repo,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{},vendor/sub", head.trim()),
        ],
    );
    let o = in_dir(&env, &repo, &["scan", "--staged"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        stderr(&o),
        String::from_utf8_lossy(&o.stdout)
    );
    git(&repo, &["rm", "-q", "--cached", "vendor/sub"]);

    // A file name that is not UTF-8 is refused (exit 2), never skipped; names are escaped.
    let odd = repo.join(std::ffi::OsStr::from_bytes(b"odd\xff.env"));
    std::fs::write(&odd, "DB_PASSWORD=Xk9-q2Lm7pW4zR8tVb\n").unwrap();
    let o = in_dir(&env, &repo, &["scan"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not UTF-8"), "{}", stderr(&o));
    std::fs::remove_file(&odd).unwrap();
    std::fs::write(
        repo.join("evil\u{1b}[2J.py"),
        "KEY = \"AKIAQ3EGRTZ7K2NVX4PL\"\n",
    )
    .unwrap();
    let o = in_dir(&env, &repo, &["scan"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        !o.stdout.contains(&0x1b),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    std::fs::remove_file(repo.join("evil\u{1b}[2J.py")).unwrap();

    // A rules file that is a link to an endless device: refused at once.
    std::fs::remove_file(repo.join(".kmseal.toml")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", repo.join(".kmseal.toml")).unwrap();
    std::fs::write(repo.join("deploy/prod/x.yaml"), app_yaml()).unwrap();
    let o = in_dir(&env, &repo, &["config", "encrypt", "deploy/prod/x.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
}
