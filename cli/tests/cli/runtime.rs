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
