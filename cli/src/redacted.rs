//! `kmseal exec --redact`: the command runs as a child whose stdout and stderr pass through a
//! [`Redactor`] on their way to ours; signals are forwarded; its status is ours.

use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;

use kmseal::redact::Redactor;

use crate::{Failure, exit};

/// Signals forwarded to the child (as a container runtime or `kill` sends them to us).
const FORWARDED: [i32; 6] = [
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGHUP,
    signal_hook::consts::SIGQUIT,
    signal_hook::consts::SIGUSR1,
    signal_hook::consts::SIGUSR2,
];

/// Signals a terminal sends to its whole foreground process group: with a terminal the child
/// shares our group and gets them itself, so forwarding them would deliver each twice (a
/// second Ctrl-C is "force quit" to many servers). They are caught (kmseal stays) but not
/// forwarded.
const FROM_TERMINAL: [i32; 3] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGHUP,
    signal_hook::consts::SIGQUIT,
];

/// How long output may keep arriving after the command exited (from processes it left
/// running, which hold its pipes): then kmseal exits with the command's status.
const DRAIN_AFTER_EXIT: std::time::Duration = std::time::Duration::from_secs(2);

pub(crate) fn run(mut cmd: Command, redactor: Redactor) -> Result<(), Failure> {
    let redactor = Arc::new(redactor);
    // Registered before the child starts, so no signal in between takes the default action
    // (which would kill kmseal and orphan the child).
    let mut signals = signal_hook::iterator::Signals::new(FORWARDED)
        .map_err(|e| Failure::from(kmseal::Error::Io(e)))?;
    // Without a terminal (a container, a CI job) the command gets a process group of its
    // own, so a signal to ours reaches it once, through us. With one it stays in ours, the
    // terminal's foreground group, so that it can read the terminal.
    let terminal = io::stdin().is_terminal();
    if !terminal {
        cmd.process_group(0);
    }
    let mut child = cmd
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure {
            code: exit::OTHER,
            message: format!("cannot run the command: {e}"),
        })?;
    // The environment the child got held the secrets: nothing of ours keeps a copy now.
    drop(cmd);
    let pid = rustix::process::Pid::from_child(&child);
    let handle = signals.handle();
    let forwarder = std::thread::spawn(move || {
        for sig in signals.forever() {
            if terminal && FROM_TERMINAL.contains(&sig) {
                continue;
            }
            if let Some(signal) = rustix::process::Signal::from_named_raw(sig) {
                let _ = rustix::process::kill_process(pid, signal);
            }
        }
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let mut pumps = 0;
    for (from, to_stdout) in [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .zip([true, false])
    .filter_map(|(from, to_stdout)| from.map(|f| (f, to_stdout)))
    {
        let (redactor, done) = (redactor.clone(), done_tx.clone());
        pumps += 1;
        std::thread::spawn(move || {
            // A broken pipe on our side (a closed terminal) must not hide the child's status.
            let _ = pump(from, &redactor, to_stdout);
            let _ = done.send(());
        });
    }
    // Wait for the exit without reaping it: until it is reaped the pid cannot be reused, so
    // a signal forwarded meanwhile never reaches another process. Then stop forwarding, then
    // reap.
    let exited = rustix::process::waitid(
        rustix::process::WaitId::Pid(pid),
        rustix::process::WaitIdOptions::EXITED | rustix::process::WaitIdOptions::NOWAIT,
    );
    handle.close();
    let _ = forwarder.join();
    if let Err(e) = exited {
        tracing::debug!(error = %e, "waitid");
    }
    let status = child
        .wait()
        .map_err(|e| Failure::from(kmseal::Error::Io(e)))?;
    // Output still in the pipes goes out; processes the command left behind do not keep us.
    let deadline = std::time::Instant::now() + DRAIN_AFTER_EXIT;
    for _ in 0..pumps {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            break;
        }
    }
    exit_like(status)
}

/// Copies `from` to our stdout or stderr through the redactor, a read at a time (output is
/// not held back beyond bytes that may begin a secret).
fn pump(
    mut from: Box<dyn Read + Send>,
    redactor: &Arc<Redactor>,
    to_stdout: bool,
) -> io::Result<()> {
    let sink: Box<dyn Write> = if to_stdout {
        Box::new(io::stdout())
    } else {
        Box::new(io::stderr())
    };
    let mut out = redactor.writer(sink);
    // What the child prints may hold a secret until it is redacted: read into locked memory
    // (wiped on every way out, errors included).
    let mut buf = kmseal::SecretBytes::zeroed(64 << 10).map_err(io::Error::other)?;
    let buf = buf.expose_secret_mut();
    loop {
        let n = match from.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..n])?;
        out.flush()?;
    }
    out.finish().map(drop)
}

/// Our exit as the child's: its code, or 128+N when signal N ended it.
fn exit_like(status: ExitStatus) -> Result<(), Failure> {
    use std::os::unix::process::ExitStatusExt;
    let code = match (status.code(), status.signal()) {
        (Some(0), _) => return Ok(()),
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    };
    Err(Failure {
        code: u8::try_from(code).unwrap_or(1),
        message: String::new(),
    })
}
