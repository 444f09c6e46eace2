//! Issue 20 through the binary: requirements stored in the document (`config require`),
//! `config check` and `exec` applying them with ages, `config set --generate` drawing from a
//! stored generator, `--keep-previous` and `NAME_PREVIOUS`, aliases.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kmseal::{Decryptor, Encryptor, LocalKek};
use kmseal_config::{Format, Sealer};

use super::{Env, s, stderr};

const DAY: u64 = 86_400;

fn days_ago(n: u64) -> SystemTime {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(now - n * DAY)
}

/// The environment `exec` gives a command (its `env` output).
fn exec_env(env: &Env, k: &str, cfg: &str) -> HashMap<String, String> {
    let o = env.run(&["exec", "-k", k, cfg, "--", "env"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// Seals `path` of the document at `file` to `value` as if it had been set `days` ago (the
/// library's clock; the binary always uses the real one).
fn set_days_ago(key: &std::path::Path, file: &std::path::Path, path: &str, value: &str, days: u64) {
    let kek = Arc::new(LocalKek::from_file(key).unwrap());
    let sealer =
        Sealer::new(Encryptor::new(kek.clone()), Decryptor::new(kek)).clock(days_ago(days));
    let text = std::fs::read_to_string(file).unwrap();
    let out = block(sealer.set(&text, Format::Yaml, path, value)).unwrap();
    std::fs::write(file, out).unwrap();
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    kmseal::blocking::block_on(f)
}

fn check_json(
    env: &Env,
    k: &str,
    cfg: &str,
    extra: &[&str],
) -> (Option<i32>, serde_json::Value, String) {
    let mut args = vec!["config", "check", "--json", "-k", k, cfg];
    args.extend(extra);
    let o = env.run(&args, None);
    let report =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    (o.status.code(), report, stderr(&o))
}

fn problems(report: &serde_json::Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["problem"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn requirements_travel_with_the_document_and_rotation_keeps_the_previous_value() {
    let env = Env::new("lifecycle");
    let (key, k) = env.key_at("k.key");
    let cfg = env.path("app.yaml");
    std::fs::write(
        &cfg,
        "db:\n  host: db.internal\n  password: short-pw\njwt_secret: 0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    let cfg_s = s(&cfg);
    let o = env.run(
        &[
            "config",
            "encrypt",
            "-k",
            &k,
            "--encrypt",
            "password",
            "--encrypt",
            "jwt_secret",
            cfg_s,
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // No requirements yet: check says how to add some.
    let o = env.run(&["config", "check", "-k", &k, cfg_s], None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("config require"), "{}", stderr(&o));

    for args in [
        vec!["db.password", "--min-len", "16", "--max-age", "90d"],
        vec![
            "jwt_secret",
            "--min-len",
            "32",
            "--max-age",
            "180d",
            "--generate",
            "hex:32",
            "--alias",
            "JWT_KEY",
        ],
        vec!["db.host", "--present"],
        vec!["old.key"],
    ] {
        let mut all = vec!["config", "require", "-k", &k, cfg_s];
        all.extend(args);
        let o = env.run(&all, None);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = env.run(
        &["config", "require", "-k", &k, cfg_s, "old.key", "--remove"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.run(
        &["config", "require", "-k", &k, cfg_s, "old.key", "--remove"],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // A generator that cannot meet the rule is refused.
    let o = env.run(
        &[
            "config",
            "require",
            "-k",
            &k,
            cfg_s,
            "x",
            "--min-len",
            "40",
            "--generate",
            "hex:16",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = env.run(&["config", "require", "-k", &k, cfg_s], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        "db.password:min_len=16,max_age=90d\njwt_secret:min_len=32,max_age=180d,generate=hex:32,alias=JWT_KEY\ndb.host:present\n"
    );

    // The document's own rules: the password is too short (never shown).
    let (code, report, err) = check_json(&env, &k, cfg_s, &[]);
    assert_eq!(code, Some(5), "{err}");
    assert_eq!(
        problems(&report),
        [("db.password".to_owned(), "too_short".to_owned())]
    );
    assert!(!report.to_string().contains("short-pw") && !err.contains("short-pw"));
    // exec applies them too, and starts nothing.
    let marker = env.path("started");
    let touch = format!("touch {}", s(&marker));
    let o = env.run(&["exec", "-k", &k, cfg_s, "--", "sh", "-c", &touch], None);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(!marker.exists());

    // Generate: no spec and no stored generator gives base64:32; the stored one is used.
    let o = env.run(
        &[
            "config",
            "set",
            "-k",
            &k,
            cfg_s,
            "db.password",
            "--generate",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.run(
        &[
            "config",
            "set",
            "-k",
            &k,
            cfg_s,
            "jwt_secret",
            "--generate",
            "--keep-previous",
            "1h",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let vars = exec_env(&env, &k, cfg_s);
    assert_eq!(vars["DB_PASSWORD"].len(), 44, "base64 of 32 bytes");
    let jwt = &vars["JWT_SECRET"];
    assert!(
        jwt.len() == 64 && jwt.bytes().all(|b| b.is_ascii_hexdigit()),
        "hex:32"
    );
    assert_eq!(&vars["JWT_KEY"], jwt);
    assert_eq!(
        vars["JWT_SECRET_PREVIOUS"],
        "0123456789abcdef0123456789abcdef"
    );
    assert_eq!(vars["JWT_KEY_PREVIOUS"], "0123456789abcdef0123456789abcdef");
    let (code, report, err) = check_json(&env, &k, cfg_s, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["ok"], true);

    // inspect shows the rules, times and the previous value (no key).
    let o = env.run(&["inspect", "--json", cfg_s], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["version"], 4);
    assert_eq!(info["rules"].as_array().unwrap().len(), 3);
    assert_eq!(info["previous"][0]["path"], "jwt_secret");
    assert!(info["values"][0]["set_at"].as_str().unwrap().ends_with('Z'));

    // Ages: 80 days is a warning (exit 0), 100 days fails.
    set_days_ago(
        &key,
        &cfg,
        "db.password",
        "an-old-but-long-password-value",
        80,
    );
    let (code, report, err) = check_json(&env, &k, cfg_s, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        problems(&report),
        [("db.password".to_owned(), "due_soon".to_owned())]
    );
    assert_eq!(report["findings"][0]["warning"], true);
    let o = env.run(&["config", "check", "-k", &k, cfg_s], None);
    assert!(
        o.status.success()
            && stderr(&o).contains("warning: `db.password` is due for rotation in 10 days"),
        "{}",
        stderr(&o)
    );
    let (code, _, _) = check_json(&env, &k, cfg_s, &["--warn-within", "0s"]);
    assert_eq!(code, Some(0));
    set_days_ago(
        &key,
        &cfg,
        "db.password",
        "an-older-but-long-password-value",
        100,
    );
    let (code, report, err) = check_json(&env, &k, cfg_s, &[]);
    assert_eq!(code, Some(5), "{err}");
    assert_eq!(
        problems(&report),
        [("db.password".to_owned(), "too_old".to_owned())]
    );
    let o = env.run(&["exec", "-k", &k, cfg_s, "--", "sh", "-c", &touch], None);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).contains("rotation interval"), "{}", stderr(&o));
    assert!(!marker.exists());

    // Weakening a stored rule without the key is refused everywhere.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let weakened = text.replace("min_len=16,max_age=90d", "min_len=1,max_age=9000d");
    assert_ne!(weakened, text);
    std::fs::write(&cfg, &weakened).unwrap();
    let o = env.run(&["config", "check", "-k", &k, cfg_s], None);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let o = env.run(&["exec", "-k", &k, cfg_s, "--", "sh", "-c", &touch], None);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let o = env.run(&["config", "encrypt", "-k", &k, cfg_s], None);
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!marker.exists());
}
