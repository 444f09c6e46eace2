//! Issue 22 through the binary: sealed documents recognised by content.

use super::{Env, s, stderr};

/// A sealed document is recognised by its metadata block whatever its name says
/// (`secrets.kmseal`, `app.yaml.enc`, a `.yaml` name on a JSON document, stdin), by
/// `config decrypt`, `exec` and `inspect`; an unsealed document with an unhelpful name still
/// asks for --format.
#[test]
fn sealed_documents_are_recognised_by_content_with_misleading_names() {
    let env = Env::new("by-content");
    let key = env.path("k.key");
    assert!(env.run(&["keygen", "-o", s(&key)], None).status.success());
    let k = format!("local://{}", s(&key));
    let json = env.path("app.json");
    std::fs::write(
        &json,
        "{\"db_password\": \"hunter2-hunter2\", \"port\": 5432}\n",
    )
    .unwrap();
    let o = env.run(
        &[
            "config",
            "encrypt",
            "-k",
            &k,
            "--encrypt",
            "*password",
            s(&json),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let sealed = std::fs::read(&json).unwrap();
    for name in ["secrets.kmseal", "app.yaml.enc", "app.yaml", "noname"] {
        let f = env.path(name);
        std::fs::write(&f, &sealed).unwrap();
        let o = env.run(&["config", "decrypt", "-k", &k, s(&f)], None);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(
            text.contains("\"db_password\": \"hunter2-hunter2\""),
            "{name}: {text}"
        );
        let o = env.run(
            &[
                "exec",
                "-k",
                &k,
                s(&f),
                "--",
                "sh",
                "-c",
                "printf %s \"$DB_PASSWORD\"",
            ],
            None,
        );
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert_eq!(o.stdout, b"hunter2-hunter2", "{name}");
        let o = env.run(&["inspect", "--json", s(&f)], None);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            (info["type"].as_str(), info["version"].as_u64()),
            (Some("config"), Some(4)),
            "{name}"
        );
    }
    // From stdin.
    let o = env.run(&["config", "decrypt", "-k", &k, "-"], Some(&sealed));
    assert!(o.status.success(), "stdin: {}", stderr(&o));
    assert!(
        String::from_utf8(o.stdout)
            .unwrap()
            .contains("hunter2-hunter2")
    );
    let o = env.run(&["inspect", "-"], Some(&sealed));
    assert!(o.status.success(), "stdin: {}", stderr(&o));
    // Not sealed, and the name does not say: a usage error that says what to do.
    let plain = env.path("settings.conf");
    std::fs::write(&plain, "a: 1\n").unwrap();
    let o = env.run(&["config", "encrypt", "-k", &k, s(&plain)], None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--format"), "{}", stderr(&o));
    let o = env.run(
        &["config", "encrypt", "-k", &k, "--format", "yaml", s(&plain)],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Every file under `dir`, recursively, with its size.
fn tree(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            out.extend(tree(&entry.path()));
        } else {
            out.push((entry.path(), meta.len()));
        }
    }
    out.sort();
    out
}

/// `exec --file` and `--template` hand the command secrets as sealed memory files at
/// /proc/self/fd/N: the contents are right, the command cannot write them, and nothing new
/// appears anywhere under the temporary root (its TMPDIR, HOME and working directory).
#[test]
fn exec_hands_files_that_never_touch_a_disk() {
    let env = Env::new("memfd");
    let root = env.path("root");
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    let key = env.path("root/k.key");
    assert!(env.run(&["keygen", "-o", s(&key)], None).status.success());
    let k = format!("local://{}", s(&key));
    let cfg = env.path("root/app.yaml");
    let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
    let api = env.path("root/api.secret");
    std::fs::write(&api, "api-token-from-a-store").unwrap();
    std::fs::set_permissions(&api, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "tls:\n  key: |\n{}db:\n  host: db.internal\n  password: hunter2-hunter2\n  token: ref+file://{}\n",
            pem.lines().map(|l| format!("    {l}\n")).collect::<String>(),
            s(&api)
        ),
    )
    .unwrap();
    let o = env.run(
        &[
            "config",
            "encrypt",
            "-k",
            &k,
            "--encrypt",
            "key",
            "--encrypt",
            "password",
            s(&cfg),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let before = tree(&root);
    let script = r#"cat "$TLS_KEY"; echo @@; cat "$API"; echo; echo @@; cat "$CONFIG"; echo @@
        if printf x >> "$TLS_KEY" 2>/dev/null; then echo WRITABLE; else echo SEALED; fi
        case "$TLS_KEY" in /proc/self/fd/*) echo PROCFD;; esac"#;
    let o = env
        .command(&[
            "exec",
            "-k",
            &k,
            s(&cfg),
            "--file",
            "TLS_KEY=tls.key",
            "--file",
            &format!("API=file://{}", s(&api)),
            "--template",
            "CONFIG",
            "--",
            "sh",
            "-c",
            script,
        ])
        .current_dir(&root)
        .env("TMPDIR", root.join("tmp"))
        .env("HOME", &root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let parts: Vec<&str> = out.split("@@\n").collect();
    assert_eq!(parts[0], pem, "{out}");
    assert_eq!(parts[1], "api-token-from-a-store\n", "{out}");
    // The template: the document in YAML, decrypted, its reference resolved, no metadata.
    let config = parts[2];
    assert!(
        config.contains("  password: \"hunter2-hunter2\""),
        "{config}"
    );
    assert!(
        config.contains("  token: \"api-token-from-a-store\""),
        "{config}"
    );
    assert!(
        config.contains("  key: \"-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
        "{config}"
    );
    assert!(
        !config.contains("kmseal:") && !config.contains("ref+"),
        "{config}"
    );
    assert_eq!(parts[3], "SEALED\nPROCFD\n", "{out}");
    assert_eq!(
        tree(&root),
        before,
        "a file appeared or changed under the temporary root"
    );
    // A path that is not in the document, and a malformed --file, are usage errors that
    // never repeat the argument.
    let o = env.run(
        &[
            "exec",
            "-k",
            &k,
            s(&cfg),
            "--file",
            "X=no.such.path",
            "--",
            "true",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = env.run(
        &[
            "exec",
            "-k",
            &k,
            s(&cfg),
            "--file",
            "hunter2-secret",
            "--",
            "true",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!stderr(&o).contains("hunter2-secret"), "{}", stderr(&o));
}
