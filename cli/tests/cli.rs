//! Real invocations of the `kmseal` binary: the README's flow, exit codes, and the promise
//! that no partial output file is ever left behind.

#![allow(clippy::cast_possible_truncation)] // test patterns and helpers
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Env {
    dir: PathBuf,
}

impl Env {
    fn new(name: &str) -> Env {
        let dir = std::env::temp_dir().join(format!("kmseal-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Env { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A new local key file at `name` in this environment: its path and its key URI.
    fn key_at(&self, name: &str) -> (PathBuf, String) {
        let key = self.path(name);
        let o = self.run(&["keygen", "-o", s(&key)], None);
        assert!(o.status.success(), "keygen: {}", stderr(&o));
        let uri = format!("local://{}", s(&key));
        (key, uri)
    }

    /// The binary with `args`, this environment's home and no key from the environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmseal"));
        cmd.args(args)
            .env("KMSEAL_HOME", self.path("home"))
            .env_remove("KMSEAL_KEY");
        cmd
    }

    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = self.command(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            use std::io::Write;
            // A command that fails before reading its input closes the pipe early: that is
            // its answer to check, not a test failure.
            match child.stdin.take().unwrap().write_all(input) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.unwrap(),
            }
        }
        child.wait_with_output().unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[path = "cli/git_drivers.rs"]
mod git_drivers;
#[path = "cli/import.rs"]
mod import;
#[path = "cli/lifecycle.rs"]
mod lifecycle;
#[path = "cli/repo_rules.rs"]
mod repo_rules;
#[path = "cli/review_runtime.rs"]
mod review_runtime;
#[path = "common/running.rs"]
mod running;
#[path = "cli/runtime.rs"]
mod runtime;
#[path = "cli/scan.rs"]
mod scan;

/// `git ARGS` in `dir`, with no system or user configuration; must succeed.
fn git(dir: &Path, args: &[&str]) {
    let o = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn encrypt_creates_the_dev_key_and_decrypt_round_trips() {
    let env = Env::new("roundtrip");
    let input = env.path("config.yaml");
    std::fs::write(&input, b"db_password: hunter2hunter2\n").unwrap();
    let sealed = env.path("config.yaml.kmseal");

    let o = env.run(
        &["encrypt", "-c", "app=demo", s(&input), "-o", s(&sealed)],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("created a development key"),
        "{}",
        stderr(&o)
    );
    let key = env.path("home/dev.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let ct = std::fs::read(&sealed).unwrap();
    assert!(ct.starts_with(b"KMSEAL"));
    assert!(!ct.windows(7).any(|w| w == b"hunter2"));

    let o = env.run(&["decrypt", "-c", "app=demo", s(&sealed)], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, b"db_password: hunter2hunter2\n");

    // stdin to stdout, and a second decrypt to a file with mode 0600.
    let o = env.run(
        &[
            "encrypt",
            "--suite",
            "chacha20-poly1305",
            "--frame-size",
            "7",
            "--force",
        ],
        Some(b"piped data"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = env.path("plain.txt");
    std::fs::write(env.path("piped.kmseal"), &o.stdout).unwrap();
    let o = env.run(
        &["decrypt", s(&env.path("piped.kmseal")), "-o", s(&out)],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), b"piped data");
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// Runs the binary with `input` fed to stdin from another thread in `piece`-byte writes (so
/// the CLI sees short reads, and a large output cannot deadlock against a full stdin pipe).
fn run_piped(env: &Env, args: &[&str], input: Vec<u8>, piece: usize) -> Output {
    let mut child = env
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        for chunk in input.chunks(piece.max(1)) {
            if stdin.write_all(chunk).is_err() {
                break;
            }
        }
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

/// The CLI moves data in 1 MiB chunks: inputs on either side of chunk and frame boundaries,
/// from files and from pipes delivering short pieces, with frames smaller and larger than a
/// chunk, must come back byte for byte, and every message must have exactly the frames its
/// length calls for.
#[test]
fn sizes_around_the_io_chunk_round_trip_from_files_and_pipes() {
    const MIB: usize = 1 << 20;
    let env = Env::new("chunks");
    let key = env.path("k.key");
    let o = env.run(&["keygen", "-o", s(&key)], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let key_arg = format!("local://{}", s(&key));
    for (frame, sizes) in [
        (
            64usize << 10,
            &[0, 1, MIB - 1, MIB, MIB + 1, 3 * MIB + 12345][..],
        ),
        (3 * MIB / 2, &[MIB + 1, 3 * MIB / 2, 4 * MIB + 7][..]),
    ] {
        for &len in sizes {
            let data: Vec<u8> = (0..len).map(|i| (i * 131 + len) as u8).collect();
            let plain = env.path("plain.bin");
            std::fs::write(&plain, &data).unwrap();
            let frame_arg = frame.to_string();
            let enc = [
                "encrypt",
                "-k",
                &key_arg,
                "--frame-size",
                &frame_arg,
                "--force",
            ];
            // From a file and from a pipe (pieces of 4093 bytes): the same plaintext.
            let mut args = enc.to_vec();
            args.push(s(&plain));
            let from_file = env.run(&args, None);
            assert!(from_file.status.success(), "{}", stderr(&from_file));
            let from_pipe = run_piped(&env, &enc, data.clone(), 4093);
            assert!(from_pipe.status.success(), "{}", stderr(&from_pipe));
            for sealed in [&from_file.stdout, &from_pipe.stdout] {
                // Frames: one per whole frame of plaintext plus the final one, 16-byte tags.
                let body = len + (len / frame + 1) * 16;
                assert!(sealed.len() > body, "{len}: no room for a header");
                let header = sealed.len() - body;
                assert!(
                    header < 400,
                    "{len}: {} bytes is not a header plus {body}",
                    header
                );
                let path = env.path("sealed.kmseal");
                std::fs::write(&path, sealed).unwrap();
                let o = env.run(&["decrypt", "-k", &key_arg, s(&path)], None);
                assert!(o.status.success(), "{len}: {}", stderr(&o));
                assert!(
                    o.stdout == data,
                    "{len} bytes, frame {frame}: plaintext differs"
                );
                let dec = ["decrypt", "-k", &key_arg];
                let o = run_piped(&env, &dec, sealed.clone(), 65521);
                assert!(o.status.success(), "{len}: {}", stderr(&o));
                assert!(o.stdout == data, "{len} bytes piped: plaintext differs");
            }
        }
    }
}

#[test]
fn failures_have_distinct_exit_codes_and_leave_no_output() {
    let env = Env::new("failures");
    let input = env.path("in.txt");
    std::fs::write(&input, vec![b'x'; 200_000]).unwrap();
    let sealed = env.path("in.kmseal");
    let o = env.run(
        &[
            "encrypt",
            "-c",
            "app=a",
            "--frame-size",
            "4096",
            s(&input),
            "-o",
            s(&sealed),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = env.path("out.txt");

    // Wrong context: decryption failure (3).
    let o = env.run(&["decrypt", "-c", "app=b", s(&sealed), "-o", s(&out)], None);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("context"));

    // Truncated in the middle: many frames verify, then the stream fails. No file appears,
    // and no temporary file is left in the directory.
    let ct = std::fs::read(&sealed).unwrap();
    let cut = env.path("cut.kmseal");
    std::fs::write(&cut, &ct[..ct.len() / 2]).unwrap();
    let o = env.run(&["decrypt", "-c", "app=a", s(&cut), "-o", s(&out)], None);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(!out.exists(), "partial output left behind");
    let leftovers: Vec<_> = std::fs::read_dir(&env.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("kmseal-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A key the message was not encrypted for: key error (4).
    let other = env.path("other.key");
    let o = env.run(&["keygen", "-o", s(&other)], None);
    assert!(o.status.success());
    let uri = format!("local://{}", s(&other));
    let o = env.run(&["decrypt", "-k", &uri, s(&sealed)], None);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("no trusted KEK"), "{}", stderr(&o));

    // A group-readable key file is refused with the fix in the message.
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = env.run(&["decrypt", "-k", &uri, s(&sealed)], None);
    assert_eq!(o.status.code(), Some(4));
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));

    // Not a kmseal message (3); an existing output is not overwritten without --force (2).
    let o = env.run(&["decrypt", s(&input)], None);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let o = env.run(&["encrypt", s(&input), "-o", s(&sealed)], None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--force"));
    // Bad key URI (4) and bad context syntax (2).
    let o = env.run(
        &[
            "encrypt",
            "-k",
            "s3://nope",
            s(&input),
            "-o",
            s(&env.path("x")),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let o = env.run(&["encrypt", "-c", "novalue", s(&input)], None);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn env_key_form_round_trips() {
    let env = Env::new("envkey");
    let o = env.run(&["keygen", "--print-env"], None);
    assert!(o.status.success());
    let key = String::from_utf8(o.stdout).unwrap();
    assert_eq!(key.trim().len(), 44);
    let sealed = env.path("m.kmseal");
    let run = |args: &[&str], stdin: Option<&[u8]>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmseal"));
        cmd.args(args)
            .env("TEST_KEK", key.trim())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        {
            use std::io::Write;
            let mut sin = child.stdin.take().unwrap();
            if let Some(i) = stdin {
                sin.write_all(i).unwrap();
            }
        }
        child.wait_with_output().unwrap()
    };
    let o = run(
        &["encrypt", "-k", "local://env:TEST_KEK", "-o", s(&sealed)],
        Some(b"from env"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["decrypt", "-k", "local://env:TEST_KEK", s(&sealed)], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, b"from env");
}

#[test]
fn rewrap_and_rotate_a_tree_in_place() {
    let env = Env::new("rotate");
    let (a, b) = (env.path("a.key"), env.path("b.key"));
    for k in [&a, &b] {
        assert!(env.run(&["keygen", "-o", s(k)], None).status.success());
    }
    let (ka, kb) = (format!("local://{}", s(&a)), format!("local://{}", s(&b)));
    let data = env.path("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    let files = [data.join("one.kmseal"), data.join("sub").join("two.kmseal")];
    for (i, f) in files.iter().enumerate() {
        let o = env.run(
            &["encrypt", "-k", &ka, "-o", s(f)],
            Some(format!("secret {i}").as_bytes()),
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let opens = |f: &Path, k: &str| {
        let o = env.run(&["decrypt", "-k", k, s(f)], None);
        o.status
            .success()
            .then(|| String::from_utf8(o.stdout).unwrap())
    };

    // Dry run: lists, changes nothing.
    let o = env.run(
        &[
            "rewrap",
            "--from",
            &ka,
            "--to",
            &kb,
            "--dry-run",
            "--json",
            s(&data),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let json = String::from_utf8(o.stdout).unwrap();
    assert!(json.starts_with(r#"{"dry_run":true,"rotated":["#), "{json}");
    assert!(json.contains("two.kmseal"), "{json}");
    assert_eq!(opens(&files[0], &ka).as_deref(), Some("secret 0"));

    // Rewrap: B opens, A no longer does; a second run finds everything current.
    let o = env.run(&["rewrap", "--from", &ka, "--to", &kb, s(&data)], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("rotated 2, already current 0"),
        "{}",
        stderr(&o)
    );
    for (i, f) in files.iter().enumerate() {
        assert_eq!(opens(f, &kb), Some(format!("secret {i}")));
        assert_eq!(opens(f, &ka), None);
    }
    let o = env.run(&["rewrap", "--from", &kb, "--to", &kb, s(&data)], None);
    assert!(
        stderr(&o).contains("rotated 0, already current 2"),
        "{}",
        stderr(&o)
    );

    // Re-encrypt back to A, selecting by key, with a new suite; a non-message is skipped.
    std::fs::write(data.join("notes.txt"), "plain").unwrap();
    let o = env.run(
        &[
            "rotate",
            "--from",
            &kb,
            "--to",
            &ka,
            "--only-key",
            &kb,
            "--suite",
            "chacha20-poly1305",
            "--json",
            s(&data),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let json = String::from_utf8(o.stdout).unwrap();
    assert!(
        json.contains(r#""reason":"not a kmseal message""#),
        "{json}"
    );
    for (i, f) in files.iter().enumerate() {
        assert_eq!(opens(f, &ka), Some(format!("secret {i}")));
    }

    // A file the --from key cannot open: reported, left alone, exit 1.
    let stranger = env.path("c.key");
    assert!(
        env.run(&["keygen", "-o", s(&stranger)], None)
            .status
            .success()
    );
    let o = env.run(
        &[
            "rewrap",
            "--from",
            &format!("local://{}", s(&stranger)),
            "--to",
            &kb,
            s(&files[0]),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("FAILED"), "{}", stderr(&o));
    assert_eq!(opens(&files[0], &ka), Some("secret 0".into()));

    // Usage errors.
    let o = env.run(&["rewrap", "--from", &ka, s(&data)], None);
    assert_eq!(o.status.code(), Some(2));
    let o = env.run(
        &[
            "rewrap",
            "--from",
            &ka,
            "--to",
            &kb,
            "--older-than",
            "3y",
            s(&data),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn config_encrypt_set_decrypt_rotate_and_exec() {
    let env = Env::new("config");
    let (a, b) = (env.path("a.key"), env.path("b.key"));
    for k in [&a, &b] {
        assert!(env.run(&["keygen", "-o", s(k)], None).status.success());
    }
    let (ka, kb) = (format!("local://{}", s(&a)), format!("local://{}", s(&b)));
    let cfg = env.path("app.yaml");
    std::fs::write(
        &cfg,
        "# app config\ndatabase:\n  host: db.internal\n  password: correct-horse-battery-staple\njwt_secret: 0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    let o = env.run(
        &[
            "config",
            "encrypt",
            "-k",
            &ka,
            "--encrypt",
            "password",
            "--encrypt",
            "*secret",
            s(&cfg),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let sealed = std::fs::read_to_string(&cfg).unwrap();
    assert!(sealed.starts_with("# app config\n") && sealed.contains("host: db.internal"));
    assert!(!sealed.contains("correct-horse") && !sealed.contains("0123456789abcdef"));

    // Sealing again changes nothing (stable diffs).
    assert!(
        env.run(&["config", "encrypt", "-k", &ka, s(&cfg)], None)
            .status
            .success()
    );
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), sealed);

    // Audit finding 1: a key-less edit of the policy is never laundered by a routine seal.
    let tampered = sealed.replace("  plain: \"\"", "  plain: \"*\"");
    assert_ne!(tampered, sealed);
    std::fs::write(&cfg, &tampered).unwrap();
    let o = env.run(&["config", "encrypt", "-k", &ka, s(&cfg)], None);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("metadata"), "{}", stderr(&o));
    let after = std::fs::read_to_string(&cfg).unwrap();
    assert_eq!(after, tampered, "the file was rewritten");
    // A plain value edited without the key: refused with its path (exit 6) until accepted.
    let edited = sealed.replace("host: db.internal", "host: db.evil");
    std::fs::write(&cfg, &edited).unwrap();
    let o = env.run(&["config", "encrypt", "-k", &ka, s(&cfg)], None);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("changed `database.host`"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("--accept-changes"), "{}", stderr(&o));
    let o = env.run(
        &["config", "encrypt", "-k", &ka, "--accept-changes", s(&cfg)],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(&cfg, &sealed).unwrap();

    // set, from stdin; decrypt to stdout.
    let o = env.run(
        &[
            "config",
            "set",
            "-k",
            &ka,
            s(&cfg),
            "database.password",
            "-",
        ],
        Some(b"a-new-password-value\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    // A value on argv works but is warned about (audit finding 16).
    let argv = "argv-password-value";
    let o = env.run(
        &[
            "config",
            "set",
            "-k",
            &ka,
            s(&cfg),
            "database.password",
            argv,
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("visible to other users") && !stderr(&o).contains(argv),
        "{}",
        stderr(&o)
    );
    // --generate: drawn from the CSPRNG, sealed, never printed.
    let o = env.run(
        &[
            "config",
            "set",
            "-k",
            &ka,
            s(&cfg),
            "database.password",
            "--generate",
            "alnum:40",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "a generated value is never printed");
    let o = env.run(&["config", "decrypt", "-k", &ka, s(&cfg)], None);
    let plain = String::from_utf8(o.stdout).unwrap();
    let generated = plain
        .lines()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    assert_eq!(generated.len(), 40, "{plain}");
    assert!(
        generated.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{generated}"
    );
    assert!(!String::from_utf8_lossy(&std::fs::read(&cfg).unwrap()).contains(&generated));
    for bad in ["rot13", "base64:4", "hex:9999"] {
        let o = env.run(
            &[
                "config",
                "set",
                "-k",
                &ka,
                s(&cfg),
                "database.password",
                "--generate",
                bad,
            ],
            None,
        );
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
    }
    let o = env.run(
        &[
            "config",
            "set",
            "-k",
            &ka,
            s(&cfg),
            "database.password",
            "-",
        ],
        Some(b"a-new-password-value\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.run(&["config", "decrypt", "-k", &ka, s(&cfg)], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let plain = String::from_utf8(o.stdout).unwrap();
    assert!(
        plain.contains("password: \"a-new-password-value\""),
        "{plain}"
    );
    assert!(!plain.contains("kmseal:"), "metadata dropped by default");

    // exec: values in the child's environment, nothing on disk.
    let o = env.run(
        &[
            "exec",
            "-k",
            &ka,
            s(&cfg),
            "--",
            "sh",
            "-c",
            "echo \"$DATABASE_PASSWORD|$DATABASE_HOST|$JWT_SECRET\"",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        "a-new-password-value|db.internal|0123456789abcdef0123456789abcdef\n"
    );

    // exec --redact: the child's stdout and stderr never show a secret it was given (nor its
    // base64), plain values pass, and its exit status is ours.
    let o = env.run(
        &[
            "exec",
            "--redact",
            "-k",
            &ka,
            s(&cfg),
            "--",
            "sh",
            "-c",
            "echo \"pw=$DATABASE_PASSWORD host=$DATABASE_HOST\"; \
             printf %s \"$JWT_SECRET\" | base64; \
             echo \"oops $DATABASE_PASSWORD\" >&2; exit 3",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    assert_eq!(
        out, "pw=[REDACTED:database.password] host=db.internal\n[REDACTED:jwt_secret]\n",
        "{out}"
    );
    assert_eq!(stderr(&o), "oops [REDACTED:database.password]\n");

    // rotate: B opens, A does not; values unchanged.
    let o = env.run(
        &["config", "rotate", "--from", &ka, "--to", &kb, s(&cfg)],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        env.run(&["config", "decrypt", "-k", &ka, s(&cfg)], None)
            .status
            .code(),
        Some(4)
    );
    let o = env.run(&["config", "decrypt", "-k", &kb, s(&cfg)], None);
    assert_eq!(String::from_utf8(o.stdout).unwrap(), plain);

    // Tampering is exit 3 and names no value; exec of a whole-file message works too.
    let tampered = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("db.internal", "evil.example");
    let bad = env.path("bad.yaml");
    std::fs::write(&bad, tampered).unwrap();
    let o = env.run(&["config", "decrypt", "-k", &kb, s(&bad)], None);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("modified after it was sealed"),
        "{}",
        stderr(&o)
    );
    let dotenv = env.path("app.env.kmseal");
    let o = env.run(
        &["encrypt", "-k", &kb, "-o", s(&dotenv)],
        Some(b"API_TOKEN=tok-123\n"),
    );
    assert!(o.status.success());
    let o = env.run(
        &[
            "exec",
            "-k",
            &kb,
            s(&dotenv),
            "--",
            "sh",
            "-c",
            "echo $API_TOKEN",
        ],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "tok-123\n",
        "{}",
        stderr(&o)
    );
    let o = env.run(
        &["exec", "-k", &kb, s(&dotenv), "--", "/nonexistent/cmd"],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
}

fn v_header_len(msg: &[u8]) -> usize {
    kmseal::Header::parse(msg, &kmseal::Limits::default())
        .unwrap()
        .1
}

fn key_id_of(env: &Env, key: &Path) -> String {
    let o = env.run(&["keygen", "-o", s(key)], None);
    assert!(o.status.success(), "{}", stderr(&o));
    // "kmseal: wrote local key ID to PATH ..."
    stderr(&o).split_whitespace().nth(4).unwrap().to_owned()
}

#[test]
fn inspect_shows_headers_and_config_metadata_without_a_key() {
    let env = Env::new("inspect");
    let key = env.path("k.key");
    let id = key_id_of(&env, &key);
    let k = format!("local://{}", s(&key));
    let msg = env.path("m.kmseal");
    let data = vec![7u8; 100_000];
    let o = env.run(
        &[
            "encrypt",
            "-k",
            &k,
            "-c",
            "app=billing",
            "--frame-size",
            "4096",
            "--suite",
            "chacha20-poly1305",
            "-o",
            s(&msg),
        ],
        Some(&data),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.run(&["inspect", "--json", s(&msg)], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let total = std::fs::metadata(&msg).unwrap().len();
    assert_eq!(v["type"], "message");
    assert_eq!(v["suite"], "chacha20-poly1305");
    assert_eq!(v["frame_size"], 4096);
    assert_eq!(v["context"], serde_json::json!({"app": "billing"}));
    assert_eq!(
        v["wrapped_keys"],
        serde_json::json!([{"provider": "local", "key_id": id, "length": 60}])
    );
    assert_eq!(v["plaintext_bytes"], 100_000);
    assert_eq!(v["frames"], 100_000 / 4096 + 1);
    assert_eq!(v["total_bytes"], total);
    assert_eq!(
        v["header_bytes"].as_u64().unwrap() + v["payload_bytes"].as_u64().unwrap(),
        total
    );
    // Text form, and from stdin.
    let o = env.run(&["inspect"], Some(&std::fs::read(&msg).unwrap()));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("suite:        chacha20-poly1305"), "{text}");
    assert!(text.contains(&format!("  local {id} (60 bytes)")), "{text}");
    assert!(text.contains("plaintext 100000 bytes"), "{text}");
    // Audit finding 12: header strings are shown escaped, never raw to the terminal.
    let evil = env.path("evil.kmseal");
    let o = env.run(
        &[
            "encrypt",
            "-k",
            &k,
            "-c",
            "app=\u{1b}[2J\rFAKE",
            "-o",
            s(&evil),
        ],
        Some(b"x"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.run(&["inspect", s(&evil)], None);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(!text.contains(['\u{1b}', '\r']), "{text:?}");
    assert!(text.contains("app=\\u{1b}[2J\\u{d}FAKE"), "{text}");

    // A sealed config document.
    let cfg = env.path("c.json");
    std::fs::write(&cfg, r#"{"db": {"host": "h", "password": "p4ssw0rd"}}"#).unwrap();
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
    let o = env.run(&["inspect", "--json", s(&cfg)], None);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["type"], "config");
    assert_eq!(v["sealed"], true);
    let values: Vec<(String, bool)> = v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            assert!(v["set_at"].as_str().unwrap().ends_with('Z'), "{v}");
            (
                v["path"].as_str().unwrap().to_owned(),
                v["encrypted"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        values,
        [
            ("db.host".to_owned(), false),
            ("db.password".to_owned(), true)
        ]
    );
    assert_eq!(v["encrypt"], serde_json::json!(["password"]));
    // Not a message and no format: a usage error.
    let junk = env.path("junk.bin");
    std::fs::write(&junk, b"\x00\x01garbage").unwrap();
    assert_eq!(env.run(&["inspect", s(&junk)], None).status.code(), Some(2));
    // A message cut at a frame boundary still shows its header, and says the payload is not
    // a whole number of frames.
    let bytes = std::fs::read(&msg).unwrap();
    let cut = v_header_len(&bytes) + 2 * (4096 + 16);
    let o = env.run(&["inspect"], Some(&bytes[..cut]));
    assert!(String::from_utf8(o.stdout).unwrap().contains("truncated?"));
}

#[test]
fn completions_help_settings_and_quiet() {
    let env = Env::new("manners");
    for shell in ["bash", "zsh", "fish"] {
        let o = env.run(&["completions", shell], None);
        assert!(o.status.success(), "{shell}");
        let out = String::from_utf8(o.stdout).unwrap();
        assert!(
            out.contains("kmseal") && out.contains("rewrap") && out.contains("inspect"),
            "{shell}"
        );
    }
    assert_eq!(
        env.run(&["completions", "tcsh"], None).status.code(),
        Some(2)
    );
    let o = env.run(&["--help"], None);
    let help = String::from_utf8(o.stdout).unwrap();
    for part in [
        "Examples:",
        "Exit codes: 0 ok, 1 other error, 2 usage",
        "config.toml",
    ] {
        assert!(help.contains(part), "{help}");
    }
    for cmd in [
        "keygen",
        "encrypt",
        "decrypt",
        "inspect",
        "rewrap",
        "rotate",
        "config",
        "exec",
        "completions",
    ] {
        let o = env.run(&[cmd, "--help"], None);
        assert!(o.status.success(), "{cmd} --help");
    }

    // Settings file: below --key and KMSEAL_KEY, above the development key.
    let (a, b) = (env.path("a.key"), env.path("b.key"));
    key_id_of(&env, &a);
    key_id_of(&env, &b);
    let home = env.path("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("config.toml"),
        format!(
            "keys = [\"local://{}\"]\nsuite = \"chacha20-poly1305\"\n",
            s(&a)
        ),
    )
    .unwrap();
    let msg = env.path("m.kmseal");
    let o = env.run(&["encrypt", "-o", s(&msg)], Some(b"hello"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !home.join("dev.key").exists(),
        "the settings' key was used, no dev key made"
    );
    let o = env.run(&["inspect", "--json", s(&msg)], None);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["suite"], "chacha20-poly1305");
    let opens_with = |k: &Path| {
        env.run(
            &["decrypt", "-k", &format!("local://{}", s(k)), s(&msg)],
            None,
        )
        .status
        .success()
    };
    assert!(opens_with(&a) && !opens_with(&b));
    // KMSEAL_KEY beats the settings file.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmseal"));
    let o = cmd
        .args(["encrypt", "-o", s(&env.path("m2.kmseal"))])
        .env("KMSEAL_HOME", &home)
        .env("KMSEAL_KEY", format!("local://{}", s(&b)))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success());
    let o = env.run(
        &[
            "decrypt",
            "-k",
            &format!("local://{}", s(&b)),
            s(&env.path("m2.kmseal")),
        ],
        None,
    );
    assert!(o.status.success());
    // A broken settings file is a usage error that names it.
    std::fs::write(home.join("config.toml"), "suite = \"rot13\"\n").unwrap();
    let o = env.run(&["encrypt", "-o", s(&env.path("m3"))], Some(b"x"));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("config.toml"), "{}", stderr(&o));
    std::fs::remove_file(home.join("config.toml")).unwrap();

    // --quiet: no note about the development key it creates.
    let o = env.run(
        &["--quiet", "encrypt", "-o", s(&env.path("q.kmseal"))],
        Some(b"x"),
    );
    assert!(o.status.success());
    assert_eq!(stderr(&o), "");
    assert!(home.join("dev.key").exists());
}

/// Runs `args` under a pseudo-terminal (util-linux `script`); returns (exit code, output).
fn in_pty(env: &Env, args: &[&str]) -> (Option<i32>, String) {
    let mut line = String::from(env!("CARGO_BIN_EXE_kmseal"));
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let o = Command::new("script")
        .args(["-qefc", &line, "/dev/null"])
        .env("KMSEAL_HOME", env.path("home"))
        .env("TERM", "xterm")
        .env("COLUMNS", "120")
        .stdin(Stdio::null())
        .output()
        .expect("`script` (util-linux) is installed by scripts/test");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn terminal_manners_under_a_pseudo_terminal() {
    let env = Env::new("pty");
    let key = env.path("k.key");
    key_id_of(&env, &key);
    let k = format!("local://{}", s(&key));
    let big = env.path("big.bin");
    std::fs::write(&big, vec![1u8; 16 << 20]).unwrap();
    let msg = env.path("big.kmseal");

    // A progress bar on a terminal...
    let (code, out) = in_pty(&env, &["encrypt", "-k", &k, s(&big), "-o", s(&msg)]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("encrypting"),
        "no progress bar on a terminal: {out:?}"
    );
    // ... none when stderr is not a terminal, or with --quiet.
    let o = env.run(
        &["decrypt", "-k", &k, s(&msg), "-o", s(&env.path("out.bin"))],
        None,
    );
    assert!(o.status.success());
    assert!(!stderr(&o).contains("decrypting"), "{}", stderr(&o));
    let (_, out) = in_pty(
        &env,
        &[
            "--quiet",
            "decrypt",
            "-k",
            &k,
            s(&msg),
            "-o",
            s(&env.path("out2.bin")),
        ],
    );
    assert!(!out.contains("decrypting"), "{out:?}");

    // Plaintext is not written to a terminal without --force; ciphertext neither.
    let small = env.path("small.kmseal");
    let o = env.run(
        &["encrypt", "-k", &k, "-o", s(&small)],
        Some(b"top secret text"),
    );
    assert!(o.status.success());
    let (code, out) = in_pty(&env, &["decrypt", "-k", &k, s(&small)]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("refusing to write decrypted plaintext to a terminal"),
        "{out}"
    );
    assert!(!out.contains("top secret text"));
    let (code, out) = in_pty(&env, &["decrypt", "--force", "-k", &k, s(&small)]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("top secret text"));
    let (code, out) = in_pty(&env, &["encrypt", "-k", &k, s(&big)]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("refusing to write binary ciphertext to a terminal"));
}

/// Audit finding 16: an interrupted decrypt (SIGINT, SIGTERM) leaves no partial plaintext file
/// behind: the temporary file is removed before the process ends.
#[test]
fn an_interrupted_decrypt_leaves_no_temporary_file() {
    use std::io::Write;
    let env = Env::new("sigint");
    let key = env.path("k.key");
    assert!(env.run(&["keygen", "-o", s(&key)], None).status.success());
    let k = format!("local://{}", s(&key));
    let (plain_in, sealed) = (env.path("in.bin"), env.path("in.kmseal"));
    std::fs::write(&plain_in, vec![5u8; 8 << 20]).unwrap();
    let o = env.run(&["encrypt", "-k", &k, s(&plain_in), "-o", s(&sealed)], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let msg = std::fs::read(&sealed).unwrap();
    for signal in ["-INT", "-TERM"] {
        let out = env.path("plain.bin");
        let mut child = env
            .command(&["decrypt", "-k", &k, "-o", s(&out)])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // Half the message: frames are written to the temporary file, then the input stalls.
        stdin.write_all(&msg[..msg.len() / 2]).unwrap();
        stdin.flush().unwrap();
        let temp_exists = || {
            std::fs::read_dir(&env.dir).unwrap().any(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".kmseal-tmp-")
            })
        };
        let start = std::time::Instant::now();
        while !temp_exists() && start.elapsed() < std::time::Duration::from_secs(20) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(temp_exists(), "no temporary file appeared");
        std::thread::sleep(std::time::Duration::from_millis(200));
        let killed = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        drop(stdin);
        assert!(!status.success(), "{signal}");
        assert!(
            !temp_exists(),
            "{signal}: a partial plaintext file was left behind"
        );
        assert!(!out.exists(), "{signal}");
    }
}

/// Audit finding 4: `--signed` messages, `--require-signed` decryption, and inspect showing it.
#[test]
fn signed_messages_from_the_command_line() {
    let env = Env::new("signed");
    let key = env.path("k.key");
    assert!(env.run(&["keygen", "-o", s(&key)], None).status.success());
    let k = format!("local://{}", s(&key));
    let (plain, signed, unsigned) = (env.path("p"), env.path("s.kmseal"), env.path("u.kmseal"));
    std::fs::write(&plain, b"signed payload").unwrap();
    for (out, extra) in [(&signed, Some("--signed")), (&unsigned, None)] {
        let mut args = vec!["encrypt", "-k", &k, s(&plain), "-o", s(out)];
        args.extend(extra);
        let o = env.run(&args, None);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = env.run(&["inspect", s(&signed)], None);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("aes-256-gcm + ed25519 signature"), "{text}");
    assert!(text.contains("kmseal:signing-key="), "{text}");
    assert!(text.contains("plaintext 14 bytes"), "{text}");
    let o = env.run(&["inspect", "--json", s(&signed)], None);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["signed"], true);
    let o = env.run(&["decrypt", "-k", &k, "--require-signed", s(&signed)], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, b"signed payload");
    let o = env.run(
        &["decrypt", "-k", &k, "--require-signed", s(&unsigned)],
        None,
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("not signed"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    // A flipped signature byte: refused, nothing written.
    let mut bad = std::fs::read(&signed).unwrap();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    std::fs::write(&signed, &bad).unwrap();
    let out = env.path("out");
    let o = env.run(&["decrypt", "-k", &k, s(&signed), "-o", s(&out)], None);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn secret_get_reads_env_and_file_references_and_refuses_a_terminal() {
    let env = Env::new("secret-get");
    let o = env
        .command(&["secret", "get", "env://KMSEAL_CLI_TEST_SECRET#password"])
        .env("KMSEAL_CLI_TEST_SECRET", r#"{"password": "from-env"}"#)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, b"from-env");

    let file = env.path("db-password");
    std::fs::write(&file, b"from-file").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&env.dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let reference = format!("file://{}", s(&file));
    let o = env.run(&["secret", "get", &reference], None);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = env.run(&["secret", "get", &reference], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, b"from-file");

    let o = env.run(&["secret", "get", "env://KMSEAL_CLI_TEST_UNSET"], None);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("KMSEAL_CLI_TEST_UNSET is not set"),
        "{}",
        stderr(&o)
    );
    // Something pasted where a reference belongs is not repeated.
    let o = env.run(&["secret", "get", "hunter2-Sup3rS3cret"], None);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(!stderr(&o).contains("hunter2"), "{}", stderr(&o));

    let (code, out) = in_pty(&env, &["secret", "get", &reference]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("refusing to write a secret to a terminal"),
        "{out}"
    );
    assert!(!out.contains("from-file"), "{out}");
}

#[test]
fn exec_resolves_references_from_the_document_and_flags_before_starting_anything() {
    let env = Env::new("exec-refs");
    std::fs::set_permissions(&env.dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let secret_file = env.path("db.json");
    std::fs::write(&secret_file, br#"{"password": "db-pw"}"#).unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let doc = env.path("refs.yaml");
    std::fs::write(
        &doc,
        format!(
            "db:\n  password: ref+file://{}#password\nport: 8080\n",
            s(&secret_file)
        ),
    )
    .unwrap();
    let show = "printf '%s|%s|%s' \"$DB_PASSWORD\" \"$PORT\" \"$API_KEY\"";
    let o = env
        .command(&[
            "exec",
            "--unsealed",
            s(&doc),
            "--env",
            "API_KEY=env://KMSEAL_EXEC_TEST_SRC",
            "--",
            "sh",
            "-c",
            show,
        ])
        .env("KMSEAL_EXEC_TEST_SRC", "api-key-1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, b"db-pw|8080|api-key-1");

    // Without --unsealed an unsealed document is refused, with the way out.
    let o = env.run(&["exec", s(&doc), "--", "true"], None);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("--unsealed"), "{}", stderr(&o));

    // Only flags, no document.
    let o = env
        .command(&[
            "exec",
            "--env",
            "X=env://KMSEAL_EXEC_TEST_SRC",
            "--",
            "sh",
            "-c",
            "printf %s \"$X\"",
        ])
        .env("KMSEAL_EXEC_TEST_SRC", "only-flags")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, b"only-flags");

    // Any failure: exit 4, every failing reference named, and the command never runs.
    let marker = env.path("started");
    let o = env.run(
        &[
            "exec",
            "--unsealed",
            s(&doc),
            "--env",
            "A=env://KMSEAL_EXEC_TEST_UNSET",
            "--env",
            &format!("B=file://{}#missing_field", s(&secret_file)),
            "--",
            "touch",
            s(&marker),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("--env A") && err.contains("--env B"), "{err}");
    assert!(!err.contains("db-pw"), "{err}");
    assert!(
        !marker.exists(),
        "the command ran despite a failed reference"
    );
    let o = env.run(&["exec", "--env", "1BAD=env://X", "--", "true"], None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // A value where NAME=REFERENCE belongs is never repeated (clap would).
    for pasted in [
        "hunter2-Sup3rS3cret",
        "hunter2-Sup3rS3cret=env://X",
        "X=hunter2-Sup3rS3cret",
    ] {
        let o = env.run(&["exec", "--env", pasted, "--", "true"], None);
        assert_ne!(o.status.code(), Some(0));
        assert!(!stderr(&o).contains("Sup3rS3cret"), "{}", stderr(&o));
    }
}

#[test]
fn decrypt_range_gives_exactly_the_inclusive_bytes_from_a_file() {
    let env = Env::new("range");
    let key = env.path("k.key");
    key_id_of(&env, &key);
    let k = format!("local://{}", s(&key));
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let plain = env.path("data.bin");
    std::fs::write(&plain, &data).unwrap();
    let sealed = env.path("data.kmseal");
    let o = env.run(
        &[
            "encrypt",
            "-k",
            &k,
            "--frame-size",
            "4096",
            s(&plain),
            "-o",
            s(&sealed),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for (arg, want) in [
        ("0-0", &data[0..1]),
        ("4095-4096", &data[4095..4097]),
        ("123456-123465", &data[123_456..123_466]),
        ("199990-", &data[199_990..]),
    ] {
        let o = env.run(&["decrypt", "-k", &k, "--range", arg, s(&sealed)], None);
        assert!(o.status.success(), "{arg}: {}", stderr(&o));
        assert_eq!(o.stdout, want, "{arg}");
    }
    let o = env.run(
        &["decrypt", "-k", &k, "--range", "199990-200000", s(&sealed)],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "past the end: {}", stderr(&o));
    let o = env.run(&["decrypt", "-k", &k, "--range", "9-1", s(&sealed)], None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // --require-signed cannot be honoured by a range read (ranges refuse signed messages):
    // a usage error, never a silent downgrade.
    let o = env.run(
        &[
            "decrypt",
            "-k",
            &k,
            "--require-signed",
            "--range",
            "0-9",
            s(&sealed),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    let o = env.run(&["decrypt", "-k", &k, "--range", "0-9"], Some(b"x"));
    assert_eq!(o.status.code(), Some(2), "stdin: {}", stderr(&o));
    // Tampering in the range: exit 3, nothing written.
    let mut bad = std::fs::read(&sealed).unwrap();
    let at = bad.len() / 2;
    bad[at] ^= 1;
    std::fs::write(&sealed, &bad).unwrap();
    let out = env.path("part.bin");
    let mid = format!("{}-{}", 100_000 - 5, 100_000 + 5);
    let o = env.run(
        &[
            "decrypt",
            "-k",
            &k,
            "--range",
            &mid,
            s(&sealed),
            "-o",
            s(&out),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn exec_redact_forwards_signals_and_exits_like_the_command() {
    use std::io::Read;
    let env = Env::new("exec-redact");
    // Says it is ready, then waits for SIGTERM and answers with the secret it was given.
    let script = "trap 'echo \"got TERM with $TOKEN\"; exit 7' TERM; echo ready; \
                  while :; do sleep 0.05; done";
    let mut child = env
        .command(&[
            "exec",
            "--redact",
            "--env",
            "TOKEN=env://KMSEAL_REDACT_SRC",
            "--",
            "sh",
            "-c",
            script,
        ])
        .env("KMSEAL_REDACT_SRC", "tok-0123456789")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"ready\n") {
        assert_eq!(stdout.read(&mut byte).unwrap(), 1, "{got:?}");
        got.push(byte[0]);
    }
    // SIGTERM to kmseal reaches the command.
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(7), "the command's status");
    assert_eq!(rest, "got TERM with [REDACTED:TOKEN]\n");
    // A command killed by signal N: 128+N.
    let o = env.run(
        &["exec", "--redact", "--", "sh", "-c", "kill -KILL $$"],
        None,
    );
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
}

fn wait_timeout(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    None
}

/// From an adversarial review: a command that leaves a background process holding its pipes
/// had kept `exec --redact` waiting (and a SIGTERM was forwarded to the reaped pid); and a
/// signal to the whole process group reached the command twice.
#[test]
fn exec_redact_exits_with_the_command_and_delivers_group_signals_once() {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let env = Env::new("exec-redact-review");
    let mut child = env
        .command(&[
            "exec",
            "--redact",
            "--",
            "sh",
            "-c",
            "sleep 20 & echo \"bg $!\"; exit 5",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        assert_eq!(out.read(&mut byte).unwrap(), 1);
        line.push(byte[0]);
    }
    let bg = String::from_utf8(line)
        .unwrap()
        .trim()
        .trim_start_matches("bg ")
        .to_owned();
    let status = wait_timeout(&mut child, std::time::Duration::from_secs(5));
    let _ = Command::new("kill").args(["-KILL", &bg]).status();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(5),
        "kmseal waited for the background process"
    );

    // SIGINT to kmseal's process group (what a terminal does on Ctrl-C, here without one):
    // the command gets it once.
    let script = "n=0; trap 'n=$((n+1))' INT; echo ready; i=0; \
                  while [ $i -lt 30 ]; do sleep 0.05; i=$((i+1)); done; echo \"sigints $n\"";
    let mut child = env
        .command(&["exec", "--redact", "--", "sh", "-c", script])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"ready\n") {
        assert_eq!(out.read(&mut byte).unwrap(), 1, "{got:?}");
        got.push(byte[0]);
    }
    let group = format!("-{}", child.id());
    assert!(
        Command::new("kill")
            .args(["-INT", "--", &group])
            .status()
            .unwrap()
            .success()
    );
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    child.wait().unwrap();
    assert_eq!(rest, "sigints 1\n");
}

#[test]
fn config_check_and_exec_require_fail_fast_without_showing_values() {
    let env = Env::new("check");
    let key = env.path("k.key");
    assert!(env.run(&["keygen", "-o", s(&key)], None).status.success());
    let k = format!("local://{}", s(&key));
    let cfg = env.path("app.yaml");
    std::fs::write(
        &cfg,
        "database:\n  password: <generate-strong-password>\n  host: db.internal\n\
         jwt:\n  secret: short-jwt\n",
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
            "--encrypt",
            "*secret",
            s(&cfg),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let rules = [
        "--require",
        "database.password:min_len=16",
        "--require",
        "jwt.secret:min_len=32,min_entropy=128",
        "--require",
        "database.host:present",
        "--require",
        "api.key",
    ];
    let mut args = vec!["config", "check", "--json", "-k", &k, s(&cfg)];
    args.extend(rules);
    let o = env.run(&args, None);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let problems: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["problem"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("database.password", "placeholder"),
        ("jwt.secret", "too_short"),
        ("jwt.secret", "low_entropy"),
        ("api.key", "missing"),
    ] {
        assert!(
            problems.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} in {problems:?}"
        );
    }
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(
        !all.contains("generate-strong") && !all.contains("short-jwt"),
        "{all}"
    );

    // exec --require: the command never starts (it would create a file) and kmseal exits 5.
    let marker = env.path("started");
    let mut args = vec!["exec", "-k", &k, s(&cfg)];
    args.extend(rules);
    let touch = format!("touch {}", s(&marker));
    args.extend(["--", "sh", "-c", &touch]);
    let o = env.run(&args, None);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(!marker.exists(), "the command must not start");
    assert!(!stderr(&o).contains("short-jwt"), "{}", stderr(&o));

    // Fixed with generated values, the check passes and the command runs.
    for path in ["database.password", "jwt.secret"] {
        let o = env.run(
            &["config", "set", "-k", &k, s(&cfg), path, "--generate"],
            None,
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let mut args = vec!["exec", "-k", &k, s(&cfg)];
    args.extend(&rules[..6]);
    args.extend(["--", "sh", "-c", &touch]);
    let o = env.run(&args, None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(marker.exists());
    // A malformed rule is a usage error, before anything is read.
    let o = env.run(
        &["config", "check", "-k", &k, s(&cfg), "--require", "x:bogus"],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// Audit finding 13: `decrypt --help` must not recommend piping plaintext into a service
/// without saying that a pipe receives verified frames before a later truncation is found;
/// it points to `-o` and `kmseal exec` instead.
#[test]
fn audit_13_decrypt_help_states_the_pipe_trade_off_and_recommends_o_or_exec() {
    let env = Env::new("audit13");
    let o = env.run(&["decrypt", "--help"], None);
    assert!(o.status.success());
    let help = String::from_utf8(o.stdout).unwrap();
    for part in [
        "With -o the output appears only once the whole message verified",
        "the reader has already consumed the verified part",
        "Use -o or\n`kmseal exec` when a service must never act on a partial input",
    ] {
        assert!(help.contains(part), "missing {part:?} in:\n{help}");
    }
    assert!(!help.contains("| service"), "{help}");
}

/// `-o` naming a device or a named pipe writes to it, never renames over it: as root, a
/// rename over `-o /dev/null` replaced the device node with a regular file (found when the
/// machine's /dev/null turned into a file during a run). Tested with a FIFO, whose reader
/// gets the plaintext and which is still a FIFO afterwards.
#[test]
fn output_to_a_named_pipe_is_written_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let env = Env::new("fifo-out");
    let (_, k) = env.key_at("k.key");
    let plain = env.path("plain.txt");
    std::fs::write(&plain, b"through the pipe").unwrap();
    let sealed = env.path("msg.kmseal");
    let o = env.run(&["encrypt", "-k", &k, s(&plain), "-o", s(&sealed)], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let fifo = env.path("out.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // The reader reports through a channel: if the FIFO were replaced, it would block for
    // ever on the old one, and the test must fail, not hang.
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(std::fs::read(fifo).unwrap());
        });
    }
    let o = env.run(
        &["decrypt", "-k", &k, "--force", s(&sealed), "-o", s(&fifo)],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the FIFO's reader got nothing: the output was not written to the pipe");
    assert_eq!(got, b"through the pipe");
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}
