//! `kmseal scan` through the binary (issue 23, the hard-coded-secret half): a tree with
//! planted secrets and with what kmseal knows is not a secret (ciphertexts, references, a
//! sealed document, placeholders, allow comments and the allow file); `--json`; `--staged`
//! scanning the index of a real git repository, not the work tree.

use std::path::Path;
use std::process::Output;

use super::{Env, git, s, stderr};

fn scan(env: &Env, dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["scan"];
    all.extend_from_slice(args);
    env.command(&all).current_dir(dir).output().unwrap()
}

const AWS_ID: &str = "AKIAQ3EGRTZ7K2NVX4PL";
const DB_PASSWORD: &str = "Xk9-q2Lm7pW4zR8tVb";

#[test]
fn scan_finds_planted_secrets_and_nothing_kmseal_knows_is_safe() {
    let env = Env::new("scan-tree");
    let tree = env.path("tree");
    std::fs::create_dir_all(tree.join("src")).unwrap();
    std::fs::create_dir_all(tree.join("deploy")).unwrap();
    std::fs::create_dir_all(tree.join("tests/fixtures")).unwrap();
    let (_, k) = env.key_at("k.key");
    std::fs::write(
        tree.join("src/app.py"),
        format!(
            "import os\n\nAWS_KEY_ID = \"{AWS_ID}\"\nDATABASE_URL = \"postgres://app:{DB_PASSWORD}@db.internal/app\"\nTOKEN = os.environ[\"TOKEN\"]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        tree.join("deploy/values.yaml"),
        "db:\n  password: ref+aws-sm://prod/db#password\n  user: app\napi_key: \"{{ .Values.apiKey }}\"\nsecret: changeme\n",
    )
    .unwrap();
    std::fs::write(
        tree.join("deploy/app.env"),
        format!("DB_PASSWORD={DB_PASSWORD}\nLOG_LEVEL=info\n"),
    )
    .unwrap();
    // Sealed with kmseal: the secret is a ciphertext now; never a finding.
    let o = env.run(
        &[
            "config",
            "encrypt",
            "-q",
            "-k",
            &k,
            s(&tree.join("deploy/app.env")),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(
        tree.join("tests/fixtures/server.pem"),
        "-----BEGIN PRIVATE KEY-----\nMIIEvQ...\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    std::fs::write(
        tree.join("src/test_client.py"),
        format!("PASSWORD = \"{DB_PASSWORD}\"  # kmseal:allow a fixture for the tests\n"),
    )
    .unwrap();
    std::fs::write(
        tree.join(".kmseal-scan-allow"),
        "tests/fixtures/* private-key  # throwaway keys for the TLS tests\n",
    )
    .unwrap();
    std::fs::write(
        tree.join("notes.md"),
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n",
    )
    .unwrap();

    let o = scan(&env, &tree, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    let out = String::from_utf8(o.stdout).unwrap();
    let mut found: Vec<&str> = out
        .lines()
        .map(|l| {
            l.splitn(4, ':')
                .take(3)
                .collect::<Vec<_>>()
                .join(":")
                .leak() as &str
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            "notes.md:1: private-key",
            "src/app.py:3: aws-access-key-id",
            "src/app.py:4: url-password",
        ],
        "{out}"
    );
    for text in [out.as_str(), err.as_str()] {
        assert!(
            !text.contains(AWS_ID) && !text.contains(DB_PASSWORD),
            "{text}"
        );
    }
    assert!(err.contains("3 findings (hard-coded secrets"), "{err}");

    let o = scan(&env, &tree, &["--json", "src"]);
    assert_eq!(o.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["findings"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["findings"][0]["rule"], "aws-access-key-id");

    // A clean subtree exits 0.
    let o = scan(&env, &tree, &["deploy"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = scan(&env, &tree, &["--json", "deploy"]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report, serde_json::json!({"ok": true, "findings": []}));
}

#[test]
fn scan_staged_reads_the_index_and_skips_ignored_files() {
    let env = Env::new("scan-git");
    let repo = env.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join(".gitignore"), "local.env\n").unwrap();
    std::fs::write(
        repo.join("local.env"),
        format!("DB_PASSWORD={DB_PASSWORD}\n"),
    )
    .unwrap();
    std::fs::write(repo.join("config.py"), format!("KEY = \"{AWS_ID}\"\n")).unwrap();
    git(&repo, &["add", "config.py", ".gitignore"]);
    // The work tree no longer has it; the index (what `git commit` takes) still does.
    std::fs::write(repo.join("config.py"), "KEY = os.environ[\"KEY\"]\n").unwrap();

    let o = scan(&env, &repo, &["--staged"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .split(": ")
            .take(2)
            .collect::<Vec<_>>(),
        vec!["config.py:1", "aws-access-key-id"]
    );
    // The work tree: config.py is clean, and the ignored local.env is not scanned.
    let o = scan(&env, &repo, &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    git(&repo, &["add", "config.py"]);
    let o = scan(&env, &repo, &["--staged"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // Outside a git work tree --staged is a usage error.
    let plain = env.path("not-a-repo");
    std::fs::create_dir_all(&plain).unwrap();
    let o = scan(&env, &plain, &["--staged"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
