//! Issue 22 through the binary: sealed documents recognised by content.

use super::running::Running;
use super::{Env, s, stderr};

/// A sealed document is recognised by its metadata block whatever its name says
/// (`secrets.kmseal`, `app.yaml.enc`, a `.yaml` name on a JSON document, stdin), by
/// `config decrypt`, `exec` and `inspect`; an unsealed document with an unhelpful name still
/// asks for --format.
#[test]
fn sealed_documents_are_recognised_by_content_with_misleading_names() {
    let env = Env::new("by-content");
    let (_, k) = env.key_at("k.key");
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
        // A name that promises another format is pointed out, never trusted.
        assert_eq!(
            stderr(&o).contains("holds a sealed JSON document"),
            name == "app.yaml",
            "{name}: {}",
            stderr(&o)
        );
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
    let (_, k) = env.key_at("root/k.key");
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

/// A secret in a `file://` store (mode 0600) and an unsealed document referring to it.
pub(super) fn store_and_document(
    env: &Env,
    value: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let secret = env.path("token.secret");
    std::fs::write(&secret, value).unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let doc = env.path("app.yaml");
    std::fs::write(&doc, format!("token: ref+file://{}\n", s(&secret))).unwrap();
    (secret, doc)
}

/// The command, looping until SIGTERM, prints its token once at start.
const PRINTS_TOKEN: &str =
    r#"trap 'exit 0' TERM; echo "token=$TOKEN"; while :; do sleep 0.05; done"#;

/// `--refresh` restarts the command when a value changes in its store (SIGTERM, then the
/// new values), SIGHUP to kmseal refreshes at once, and a SIGTERM to kmseal still ends the
/// command and kmseal with the command's status.
#[test]
fn refresh_restarts_the_command_when_a_value_changes() {
    let env = Env::new("refresh");
    let (secret, doc) = store_and_document(&env, "one");
    let mut run = Running::start(env.command(&[
        "exec",
        "--unsealed",
        s(&doc),
        "--refresh",
        "1h",
        "--grace",
        "5s",
        "--",
        "sh",
        "-c",
        PRINTS_TOKEN,
    ]));
    assert_eq!(run.line(), "token=one");
    std::fs::write(&secret, "two").unwrap();
    // The interval is an hour: SIGHUP makes kmseal refresh now.
    run.signal("HUP");
    assert_eq!(run.line(), "token=two");
    // Nothing changed: no restart.
    run.signal("HUP");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(run.lines.try_recv().is_err(), "restarted without a change");
    run.signal("TERM");
    let (code, err) = run.finish();
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("restarted the command with the new values"),
        "{err}"
    );
    assert!(!err.contains("one") && !err.contains("two"), "{err}");
}

/// `--on-change signal:USR1` signals the command instead (it keeps running), and
/// `--on-change exit` stops it and exits 8.
#[test]
fn refresh_signals_or_exits_as_asked() {
    let env = Env::new("refresh-signal");
    let (secret, doc) = store_and_document(&env, "one");
    let script = r#"trap 'echo got-USR1' USR1; trap 'exit 0' TERM; echo "token=$TOKEN"; while :; do sleep 0.05; done"#;
    let mut run = Running::start(env.command(&[
        "exec",
        "--unsealed",
        s(&doc),
        "--refresh",
        "1s",
        "--on-change",
        "signal:USR1",
        "--",
        "sh",
        "-c",
        script,
    ]));
    assert_eq!(run.line(), "token=one");
    std::fs::write(&secret, "two").unwrap();
    assert_eq!(run.line(), "got-USR1");
    run.signal("TERM");
    assert_eq!(run.finish().0, Some(0));

    std::fs::write(&secret, "one").unwrap();
    let mut run = Running::start(env.command(&[
        "exec",
        "--unsealed",
        s(&doc),
        "--refresh",
        "1h",
        "--on-change",
        "exit",
        "--",
        "sh",
        "-c",
        PRINTS_TOKEN,
    ]));
    assert_eq!(run.line(), "token=one");
    std::fs::write(&secret, "two").unwrap();
    run.signal("HUP");
    let (code, err) = run.finish();
    assert_eq!(code, Some(8), "{err}");
}

/// A refresh that fails keeps the command running on the last good values; once failures
/// last longer than --max-stale, kmseal stops the command and exits 4.
#[test]
fn a_failing_refresh_keeps_the_last_values_until_max_stale() {
    let env = Env::new("refresh-stale");
    let (secret, doc) = store_and_document(&env, "one");
    let mut run = Running::start(env.command(&[
        "exec",
        "--unsealed",
        s(&doc),
        "--refresh",
        "1s",
        "--max-stale",
        "2s",
        "--grace",
        "1s",
        "--",
        "sh",
        "-c",
        PRINTS_TOKEN,
    ]));
    assert_eq!(run.line(), "token=one");
    let started = std::time::Instant::now();
    std::fs::remove_file(&secret).unwrap();
    let (code, err) = run.finish();
    assert_eq!(code, Some(4), "{err}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "stopped before --max-stale"
    );
    assert!(
        err.contains("refresh failed; the command keeps the last good values"),
        "{err}"
    );
    assert!(err.contains("older than --max-stale"), "{err}");
}

/// Supervising, kmseal is the subreaper of the command's tree: a process the command
/// orphans is re-parented to kmseal, which reaps it when it exits (no zombie left).
#[test]
fn orphans_are_reaped() {
    let env = Env::new("reap");
    let gpid = env.path("gpid");
    let script = format!(
        r#"sh -c 'sleep 0.3 & echo $! > {g}'; sleep 0.1; gp=$(cat {g});
        echo "adopted=$(awk '{{print $4}}' /proc/$gp/stat) kmseal=$PPID"; sleep 1;
        if [ -e /proc/$gp ]; then echo "left=$(awk '{{print $3}}' /proc/$gp/stat)"; else echo reaped; fi"#,
        g = s(&gpid)
    );
    let o = env.run(
        &["exec", "--refresh", "1h", "--", "sh", "-c", &script],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let mut lines = out.lines();
    let adopted = lines.next().unwrap();
    let (a, k) = adopted.split_once(' ').unwrap();
    assert_eq!(
        a.trim_start_matches("adopted="),
        k.trim_start_matches("kmseal="),
        "{out}"
    );
    assert_eq!(lines.next(), Some("reaped"), "{out}");
}

/// `config edit` with scripted editors: a change is sealed (the untouched secret keeps its
/// ciphertext), no change leaves the file as it was, an unparsable result, a failing editor
/// and a killed kmseal leave the document untouched; the decrypted file lives in a private
/// 0700 directory on tmpfs (mode 0600) and is gone afterwards in every case; a disk-backed
/// directory is refused unless --allow-disk-temp.
#[test]
fn config_edit_with_scripted_editors() {
    let env = Env::new("edit");
    let (_, k) = env.key_at("k.key");
    let cfg = env.path("app.yaml");
    std::fs::write(
        &cfg,
        "db:\n  host: db.internal\n  password: hunter2-hunter2\n",
    )
    .unwrap();
    let o = env.run(
        &[
            "config",
            "encrypt",
            "-k",
            &k,
            "--encrypt",
            "password",
            s(&cfg),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let shm = std::path::PathBuf::from(format!("/dev/shm/kmseal-edit-test-{}", std::process::id()));
    std::fs::create_dir_all(&shm).unwrap();
    let log = env.path("editor.log");
    let editor = |name: &str, body: &str| -> String {
        let p = env.path(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        format!("sh {}", s(&p))
    };
    let edit = |editor: &str, extra: &[&str]| {
        let mut args = vec!["config", "edit", "-k", k.as_str(), s(&cfg)];
        args.extend(extra);
        env.command(&args)
            .env_remove("VISUAL")
            .env("EDITOR", editor)
            .env("XDG_RUNTIME_DIR", &shm)
            .output()
            .unwrap()
    };
    let password_ct = |text: &str| -> String {
        let start = text.find("password: \"").unwrap() + 11;
        text[start..start + text[start..].find('"').unwrap()].to_owned()
    };
    let before = std::fs::read_to_string(&cfg).unwrap();

    // A change: what the editor saw, where, and the result.
    let changes = editor(
        "change.sh",
        &format!(
            "stat -c '%a %n' \"$(dirname \"$1\")\" \"$1\" > {log}; stat -f -c %T \"$1\" >> {log}; \
             cat \"$1\" >> {log}; sed -i 's/db.internal/db2.internal/' \"$1\"",
            log = s(&log)
        ),
    );
    let o = edit(&changes, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let seen = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    assert!(
        lines[0].starts_with("700 ") && lines[1].starts_with("600 "),
        "{seen}"
    );
    assert!(lines[1].contains(&*shm.to_string_lossy()), "{seen}");
    assert_eq!(lines[2], "tmpfs", "{seen}");
    assert!(
        seen.contains("password: \"hunter2-hunter2\"") && !seen.contains("kmseal:"),
        "{seen}"
    );
    let after = std::fs::read_to_string(&cfg).unwrap();
    assert!(after.contains("host: db2.internal"), "{after}");
    assert_eq!(
        password_ct(&after),
        password_ct(&before),
        "the unchanged secret was re-encrypted"
    );
    let o = env.run(&["config", "decrypt", "-k", &k, s(&cfg)], None);
    assert!(
        String::from_utf8(o.stdout)
            .unwrap()
            .contains("hunter2-hunter2")
    );
    assert_eq!(
        std::fs::read_dir(&shm).unwrap().count(),
        0,
        "the decrypted file was left behind"
    );

    // No change, an unparsable result, a failing editor, kmseal told to stop: untouched.
    let sealed = std::fs::read(&cfg).unwrap();
    let kill_kmseal = editor(
        "term.sh",
        "kill -TERM $(ps -o ppid= -p $PPID); i=0; while [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done",
    );
    for (what, ed, code) in [
        ("no change", editor("none.sh", "true"), Some(0)),
        (
            "unparsable",
            editor("bad.sh", "printf 'db: [unclosed\\n' > \"$1\""),
            Some(2),
        ),
        ("editor killed", editor("dies.sh", "kill -9 $$"), Some(1)),
        ("kmseal terminated", kill_kmseal, Some(143)),
    ] {
        let o = edit(&ed, &[]);
        assert_eq!(o.status.code(), code, "{what}: {}", stderr(&o));
        assert_eq!(
            std::fs::read(&cfg).unwrap(),
            sealed,
            "{what}: the document changed"
        );
        assert_eq!(
            std::fs::read_dir(&shm).unwrap().count(),
            0,
            "{what}: left behind"
        );
        assert!(!stderr(&o).contains("hunter2"), "{what}: {}", stderr(&o));
    }

    // A disk-backed directory is refused, unless allowed.
    let disk = env.path("disk-temp");
    std::fs::create_dir_all(&disk).unwrap();
    let o = edit(&editor("none2.sh", "true"), &["--temp-dir", s(&disk)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--allow-disk-temp"), "{}", stderr(&o));
    let o = edit(&changes, &["--temp-dir", s(&disk), "--allow-disk-temp"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(&disk).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&shm);
}

/// The `kmseal` command line of every Kubernetes example parses as written: every flag,
/// requirement and `--file` reference is accepted, and the run gets as far as reading the
/// mounted document (which is not there in a test). The ConfigMaps' documents hold only
/// references, and every one parses. (scripts/check-examples validates the manifests
/// against the Kubernetes API schema.)
#[test]
fn the_kubernetes_examples_command_lines_parse_as_written() {
    let env = Env::new("k8s-examples");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kubernetes");
    let mut checked = 0;
    for name in ["eks.yaml", "gke.yaml", "aks.yaml"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // The `command:` list of the container.
        let at = lines.iter().position(|l| l.trim() == "command:").unwrap();
        let args: Vec<String> = lines[at + 1..]
            .iter()
            .take_while(|l| l.trim_start().starts_with("- "))
            .map(|l| {
                let item = l.trim_start().trim_start_matches("- ");
                item.split("  #").next().unwrap().trim().to_owned()
            })
            .collect();
        assert_eq!(args[0], "/usr/local/bin/kmseal", "{name}");
        let rest: Vec<&str> = args[1..].iter().map(String::as_str).collect();
        let o = env.run(&rest, None);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("cannot read /etc/billing/app.yaml"),
            "{name}: {}",
            stderr(&o)
        );
        // The ConfigMap's document: references only, all valid.
        let at = lines
            .iter()
            .position(|l| l.trim() == "app.yaml: |")
            .unwrap();
        let doc: String = lines[at + 1..]
            .iter()
            .take_while(|l| l.starts_with("    ") || l.is_empty())
            .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
            .collect();
        let secrets = kmseal_config::read_unsealed(&doc, kmseal_config::Format::Yaml).unwrap();
        let refs = secrets
            .references()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(refs.len(), 2, "{name}");
        checked += 1;
    }
    assert_eq!(checked, 3);
}
