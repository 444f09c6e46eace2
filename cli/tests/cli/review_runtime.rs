//! Regression tests from the adversarial review of the runtime work (issue 22): each failed
//! on the code before its fix (stop requests lost during a restart, signals held up by a slow
//! refresh, a restart leaving the old process group running, `--file` references not
//! redacted, memory files inherited across restarts, parse errors quoting edited text,
//! `config edit` leaving the decrypted file on other fatal signals, ...).

use std::time::{Duration, Instant};

use super::running::Running;
use super::runtime::store_and_document;
use super::{Env, s, stderr};

/// Waits up to `within` for kmseal to exit; its exit code if it did.
fn exited_within(run: &mut Running, within: Duration) -> Option<Option<i32>> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = run.child.try_wait().unwrap() {
            return Some(status.code());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Every stdout line that arrives within `within`.
fn lines_for(run: &Running, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match run.lines.recv_timeout(left) {
            Ok(l) => out.push(l),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    out
}

/// Waits up to 30 s for kmseal to exit, then kills `pids` (processes it left behind, which
/// hold its output pipes), then reads its stderr.
fn finish_killing(mut run: Running, pids: &[&str]) -> (Option<i32>, String) {
    let code = exited_within(&mut run, Duration::from_secs(30));
    for p in pids {
        if alive(p) {
            kill_pid(p);
        }
    }
    if code.is_none() {
        let _ = run.child.kill();
        let _ = run.child.wait();
    }
    let mut err = String::new();
    use std::io::Read;
    let _ = run.child.stderr.take().unwrap().read_to_string(&mut err);
    (code.flatten(), err)
}

fn alive(pid: &str) -> bool {
    std::process::Command::new("kill")
        .args(["-0", pid])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn kill_pid(pid: &str) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", pid])
        .stderr(std::process::Stdio::null())
        .status();
}

/// Finding 1: `docker stop` (SIGTERM to kmseal) while a `--refresh` restart is stopping the
/// old command is forwarded to the old command only; when it exits, kmseal starts the new
/// one anyway and keeps running: the stop request is lost (the orchestrator SIGKILLs later).
#[test]
fn review_term_during_restart_grace_is_not_lost() {
    let env = Env::new("rv-term-grace");
    let (secret, doc) = store_and_document(&env, "one");
    let script = r#"trap 'echo stopping; sleep 1; exit 0' TERM; echo "started token=$TOKEN"; while :; do sleep 0.05; done"#;
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
        script,
    ]));
    assert_eq!(run.line(), "started token=one");
    std::fs::write(&secret, "two").unwrap();
    run.signal("HUP");
    assert_eq!(run.line(), "stopping");
    // The container is being stopped while the restart is under way.
    run.signal("TERM");
    let code = exited_within(&mut run, Duration::from_secs(5));
    let later = lines_for(&run, Duration::from_millis(200));
    if code.is_none() {
        // Clean up: the new command is running; stop it through kmseal.
        run.signal("TERM");
        let _ = run.finish();
    }
    assert!(
        !later.iter().any(|l| l.starts_with("started")),
        "kmseal started the command again after it was told to stop: {later:?}"
    );
    assert!(
        code.is_some(),
        "kmseal kept running after SIGTERM during a restart"
    );
}

/// Finding 1b: the same, with the SIGTERM arriving while kmseal drains the old command's
/// output (--redact; a background process of the old command holds its pipes): `drain`
/// consumes the signal event and drops it.
#[test]
fn review_term_during_restart_drain_is_not_lost() {
    let env = Env::new("rv-term-drain");
    let (secret, doc) = store_and_document(&env, "first-value-0123456789");
    // The background process holds the pipes from a session of its own (setsid), so that
    // stopping the command's process group does not close them: kmseal drains for 2 s.
    let script = r#"setsid sh -c 'echo detached; exec sleep 4' & trap 'exit 0' TERM; echo started; while :; do sleep 0.05; done"#;
    let mut run = Running::start(env.command(&[
        "exec",
        "--unsealed",
        s(&doc),
        "--redact",
        "--refresh",
        "1h",
        "--grace",
        "5s",
        "--",
        "sh",
        "-c",
        script,
    ]));
    // Both lines, in either order: the background process has left the group.
    let mut first = [run.line(), run.line()];
    first.sort();
    assert_eq!(first, ["detached", "started"]);
    std::fs::write(&secret, "second-value-0123456789").unwrap();
    run.signal("HUP");
    // The old command exits at once on TERM; kmseal then waits up to 2 s for its pipes.
    std::thread::sleep(Duration::from_millis(700));
    run.signal("TERM");
    let code = exited_within(&mut run, Duration::from_secs(6));
    let later = lines_for(&run, Duration::from_millis(200));
    if code.is_none() {
        run.signal("TERM");
        let _ = run.finish();
    }
    assert!(
        !later.iter().any(|l| l == "started"),
        "kmseal started the command again after it was told to stop: {later:?}"
    );
    assert!(
        code.is_some(),
        "kmseal kept running after SIGTERM during a restart"
    );
}

/// Finding 2: a refresh runs in the loop that forwards signals, so while a store hangs (here
/// a Vault address that accepts connections and never answers) SIGTERM is not forwarded for
/// the whole store timeout and its retries (about 40 s), beyond Docker's 10 s and
/// Kubernetes' 30 s default grace: the command is SIGKILLed instead of stopping cleanly.
#[test]
fn review_a_hanging_refresh_does_not_delay_signals() {
    let env = Env::new("rv-hang");
    let (_secret, doc) = store_and_document(&env, "one");
    // Accepts (the kernel completes the handshake into the backlog), never answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = hole.local_addr().unwrap();
    let script = r#"trap 'echo got-TERM; exit 0' TERM; echo "token=$TOKEN pid=$$"; while :; do sleep 0.05; done"#;
    let mut cmd = env.command(&[
        "exec",
        "--unsealed",
        s(&doc),
        "--refresh",
        "1h",
        "--",
        "sh",
        "-c",
        script,
    ]);
    cmd.env("VAULT_ADDR", format!("http://{addr}"))
        .env("VAULT_TOKEN", "review-token");
    for p in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(p);
    }
    let mut run = Running::start(cmd);
    let first = run.line();
    assert!(first.starts_with("token=one pid="), "{first}");
    let pid = first.rsplit('=').next().unwrap().to_owned();
    // The document now also names a secret on the unresponsive store; refresh now.
    std::fs::write(
        &doc,
        format!(
            "token: ref+file://{}\nother: ref+vault-kv+http://{addr}/secret/x#f\n",
            s(&env.path("token.secret"))
        ),
    )
    .unwrap();
    run.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    run.signal("TERM");
    let got = run.lines.recv_timeout(Duration::from_secs(60));
    let took = sent.elapsed();
    let (code, err) = finish_killing(run, &[&pid]);
    drop(hole);
    assert_eq!(got.as_deref(), Ok("got-TERM"), "{err}");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM reached the command only after {took:?} (kmseal was busy refreshing): {err}"
    );
}

/// Finding 3: stopping (for a restart, for --on-change exit, for max-stale) and forwarded
/// signals go to the command's pid only, not its process group (which kmseal created):
/// with an entrypoint script that does not `exec` its server, the restart leaves the old
/// server running with the old secret beside the new one, and both outlive kmseal.
#[test]
fn review_restart_stops_the_whole_old_command() {
    let env = Env::new("rv-group");
    let (secret, doc) = store_and_document(&env, "one");
    let entry = env.path("entry.sh");
    std::fs::write(
        &entry,
        "#!/bin/sh\n# an entrypoint that starts the server without exec\n\
         sh -c 'trap \"exit 0\" TERM; echo \"server token=$TOKEN pid=$$\"; while :; do sleep 0.05; done'\n",
    )
    .unwrap();
    let mut run = Running::start(env.command(&[
        "exec",
        "--unsealed",
        s(&doc),
        "--refresh",
        "1h",
        "--grace",
        "2s",
        "--",
        "sh",
        s(&entry),
    ]));
    let first = run.line();
    assert!(first.starts_with("server token=one pid="), "{first}");
    let old_pid = first.rsplit('=').next().unwrap().to_owned();
    std::fs::write(&secret, "two").unwrap();
    run.signal("HUP");
    let second = run.line();
    assert!(second.starts_with("server token=two pid="), "{second}");
    let new_pid = second.rsplit('=').next().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(300));
    let old_alive_after_restart = alive(&old_pid);
    run.signal("TERM");
    let exited = exited_within(&mut run, Duration::from_secs(10)).flatten();
    std::thread::sleep(Duration::from_millis(300));
    let left: Vec<String> = [&old_pid, &new_pid]
        .into_iter()
        .filter(|p| alive(p))
        .cloned()
        .collect();
    let (_, err) = finish_killing(run, &[&old_pid, &new_pid]);
    let code = exited;
    assert!(
        !old_alive_after_restart && left.is_empty(),
        "old server (pid {old_pid}, token=one) alive after the restart: {old_alive_after_restart}; \
         kmseal exited ({code:?}) leaving {left:?} running with the secrets; kmseal said: {err}"
    );
}

/// Finding 4: --redact does not redact the value of `--file NAME=REFERENCE` (only document
/// values and --env values reach the redactor), although the command was given it.
#[test]
fn review_redact_covers_file_references() {
    let env = Env::new("rv-redact-file");
    let api = env.path("api.secret");
    std::fs::write(&api, "api-token-0123456789abcdef").unwrap();
    std::fs::set_permissions(&api, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let by_env = env.run(
        &[
            "exec",
            "--redact",
            "--env",
            &format!("API=file://{}", s(&api)),
            "--",
            "sh",
            "-c",
            "echo \"$API\"",
        ],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&by_env.stdout),
        "[REDACTED:API]\n",
        "{}",
        stderr(&by_env)
    );
    let by_file = env.run(
        &[
            "exec",
            "--redact",
            "--file",
            &format!("API=file://{}", s(&api)),
            "--",
            "sh",
            "-c",
            "cat \"$API\"; echo",
        ],
        None,
    );
    assert!(by_file.status.success(), "{}", stderr(&by_file));
    let out = String::from_utf8_lossy(&by_file.stdout);
    assert!(
        !out.contains("api-token-0123456789abcdef"),
        "--redact printed the --file secret: {out}"
    );
}

/// Finding 5: the restarted command inherits the previous command's memory files (kmseal's
/// memfds are not close-on-exec, and the old ones are still open when the new command is
/// spawned): the new process holds the old secret at /proc/self/fd/N.
#[test]
fn review_restarted_command_gets_only_its_own_memory_files() {
    let env = Env::new("rv-memfd-leak");
    let (secret, doc) = store_and_document(&env, "one");
    let script = r#"trap 'exit 0' TERM; n=0; old=no
        for f in /proc/$$/fd/*; do case $(readlink $f) in *kmseal:TF*) n=$((n+1)); [ "$(cat $f)" = one ] && old=yes;; esac; done
        echo "token=$(cat $TF) memfds=$n old=$old"; while :; do sleep 0.05; done"#;
    let mut run = Running::start(env.command(&[
        "exec",
        "--unsealed",
        s(&doc),
        "--file",
        "TF=token",
        "--refresh",
        "1h",
        "--grace",
        "2s",
        "--",
        "sh",
        "-c",
        script,
    ]));
    assert_eq!(run.line(), "token=one memfds=1 old=yes");
    std::fs::write(&secret, "two").unwrap();
    run.signal("HUP");
    let second = run.line();
    run.signal("TERM");
    let _ = run.finish();
    assert_eq!(
        second, "token=two memfds=1 old=no",
        "the new command got the old memory file"
    );
}

/// Finding 6: `--on-change signal:NAME` with --file/--template (sealed memory files) or
/// --redact cannot hand the command new values: kmseal refuses the combination before
/// anything is read, instead of signalling a command that then re-reads old values.
#[test]
fn review_signal_on_change_refuses_what_it_cannot_update() {
    let env = Env::new("rv-signal-template");
    let (_secret, doc) = store_and_document(&env, "one");
    for extra in [
        &["--template", "CONFIG"][..],
        &["--file", "T=token"][..],
        &["--redact"][..],
    ] {
        let mut args = vec!["exec", "--unsealed", s(&doc), "--refresh", "1h"];
        args.extend(["--on-change", "signal:USR1"]);
        args.extend(extra);
        args.extend(["--", "sh", "-c", "echo started"]);
        let o = env.run(&args, None);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("--on-change restart or exit"),
            "{}",
            stderr(&o)
        );
        assert!(o.stdout.is_empty(), "{extra:?}: the command started");
    }
}

/// A private directory under /dev/shm for `config edit` (as runtime.rs does).
struct Shm(std::path::PathBuf);

impl Shm {
    fn new(tag: &str) -> Shm {
        let p = std::path::PathBuf::from(format!(
            "/dev/shm/kmseal-review-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Shm(p)
    }

    /// Every file left under it, with its content.
    fn left(&self) -> Vec<(std::path::PathBuf, String)> {
        let mut out = Vec::new();
        let mut dirs = vec![self.0.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                if e.file_type().unwrap().is_dir() {
                    dirs.push(e.path());
                } else {
                    out.push((
                        e.path(),
                        std::fs::read_to_string(e.path()).unwrap_or_default(),
                    ));
                }
            }
        }
        out
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A sealed `file` (name in `env`) holding `text`, and its key URI.
fn sealed(env: &Env, file: &str, text: &str) -> (std::path::PathBuf, String) {
    let key = env.path("k.key");
    if !key.exists() {
        assert!(env.run(&["keygen", "-o", s(&key)], None).status.success());
    }
    let k = format!("local://{}", s(&key));
    let cfg = env.path(file);
    std::fs::write(&cfg, text).unwrap();
    let o = env.run(&["config", "encrypt", "-k", &k, s(&cfg)], None);
    assert!(o.status.success(), "{}", stderr(&o));
    (cfg, k)
}

fn edit_with(
    env: &Env,
    shm: &Shm,
    k: &str,
    cfg: &std::path::Path,
    body: &str,
) -> std::process::Output {
    let script = env.path(&format!("editor-{}.sh", body.len()));
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
    env.command(&["config", "edit", "-k", k, s(cfg)])
        .env_remove("VISUAL")
        .env("EDITOR", format!("sh {}", s(&script)))
        .env("XDG_RUNTIME_DIR", &shm.0)
        .output()
        .unwrap()
}

/// Finding 7: `config edit` leaves the decrypted document on tmpfs when kmseal is ended by
/// any fatal signal other than INT, TERM, HUP and QUIT (USR1, USR2, ALRM, ...: the default
/// action kills it before the wipe). (A second way: a TERM between writing the file and
/// registering the handlers; /tmp/rv/race.sh widens that window with strace.)
#[test]
fn review_edit_leaves_nothing_on_other_fatal_signals() {
    let env = Env::new("rv-edit-usr1");
    let shm = Shm::new("usr1");
    let (cfg, k) = sealed(&env, "app.yaml", "db:\n  password: hunter2-hunter2\n");
    let before = std::fs::read(&cfg).unwrap();
    let mut left = Vec::new();
    for sig in ["USR1", "ALRM"] {
        let o = edit_with(
            &env,
            &shm,
            &k,
            &cfg,
            &format!("kill -{sig} $(ps -o ppid= -p $PPID); sleep 1"),
        );
        assert_ne!(o.status.code(), Some(0));
        assert_eq!(std::fs::read(&cfg).unwrap(), before);
        left.extend(shm.left().into_iter().map(|(p, t)| (sig, p, t)));
        // Start the next signal from an empty directory.
        for e in std::fs::read_dir(&shm.0).unwrap().flatten() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    assert!(left.is_empty(), "decrypted files left on tmpfs: {left:?}");
}

/// Finding 8: an edit that does not parse is reported with the parser's words, which repeat
/// text of the decrypted document: a secret pasted on a line of its own (a URL with a query
/// token in .env, a key pasted twice in YAML) lands on stderr (and in CI logs).
#[test]
fn review_edit_errors_never_repeat_edited_text() {
    let env = Env::new("rv-edit-echo");
    let shm = Shm::new("echo");
    let (envfile, k) = sealed(&env, "app.env", "DB_PASSWORD=hunter2-hunter2\n");
    let o = edit_with(
        &env,
        &shm,
        &k,
        &envfile,
        "printf 'https://hooks.example.com/services/T0/B0/Xq8Zr7Tk9wXpL2mV?token=abc\\n' >> \"$1\"",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let (yaml, k) = sealed(&env, "app.yaml", "db:\n  password: hunter2-hunter2\n");
    let o2 = edit_with(
        &env,
        &shm,
        &k,
        &yaml,
        "printf 'ghp_Q8Zr7Tk9wXpL2mVb7Yc: 1\\nghp_Q8Zr7Tk9wXpL2mVb7Yc: 2\\n' >> \"$1\"",
    );
    assert_eq!(o2.status.code(), Some(2), "{}", stderr(&o2));
    assert!(shm.left().is_empty());
    assert!(
        !stderr(&o).contains("Xq8Zr7Tk9wXpL2mV")
            && !stderr(&o2).contains("ghp_Q8Zr7Tk9wXpL2mVb7Yc"),
        "edited text repeated on stderr:\n{}{}",
        stderr(&o),
        stderr(&o2)
    );
}

/// Finding 8b: `exec --file NAME=SOURCE` repeats SOURCE when it is not a path in the
/// document, although --file errors promise never to repeat the argument "in case it is a
/// value pasted in the wrong place" (as when the value is given instead of its path).
#[test]
fn review_exec_file_never_repeats_a_misplaced_value() {
    let env = Env::new("rv-file-echo");
    let (cfg, k) = sealed(&env, "app.yaml", "db:\n  password: hunter2-hunter2\n");
    let o = env.run(
        &[
            "exec",
            "-k",
            &k,
            s(&cfg),
            "--file",
            "DB_PASSWORD=Pasted-S3cret-Value",
            "--",
            "true",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("Pasted-S3cret-Value"),
        "{}",
        stderr(&o)
    );
}

/// Finding 9 (functional): `exec --unsealed FILE --template NAME` needs a key although
/// nothing is sealed: `render_document` builds a decryptor before it knows.
#[test]
fn review_unsealed_template_needs_no_key() {
    let env = Env::new("rv-unsealed-template");
    let (_secret, doc) = store_and_document(&env, "one");
    let o = env.run(
        &[
            "exec",
            "--unsealed",
            s(&doc),
            "--template",
            "CONFIG",
            "--",
            "sh",
            "-c",
            "cat \"$CONFIG\"",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "token: \"one\"\n");
}
