//! `kmseal exec --redact`: the command runs as a child whose stdout and stderr pass through a
//! [`Redactor`] on their way to ours; signals are forwarded; its status is ours.

use std::io::{self, Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;

use kmseal::redact::Redactor;

use crate::{Failure, exit};

/// Signals forwarded to the child (as a container runtime or a terminal sends them to us).
const FORWARDED: [i32; 6] = [
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGHUP,
    signal_hook::consts::SIGQUIT,
    signal_hook::consts::SIGUSR1,
    signal_hook::consts::SIGUSR2,
];

pub(crate) fn run(mut cmd: Command, redactor: Redactor) -> Result<(), Failure> {
    let redactor = Arc::new(redactor);
    // Registered before the child starts, so no signal in between takes the default action
    // (which would kill kmseal and orphan the child).
    let mut signals = signal_hook::iterator::Signals::new(FORWARDED)
        .map_err(|e| Failure::from(kmseal::Error::Io(e)))?;
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
            if let Some(signal) = rustix::process::Signal::from_named_raw(sig) {
                let _ = rustix::process::kill_process(pid, signal);
            }
        }
    });
    let pumps: Vec<_> = [
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
    .map(|(from, to_stdout)| {
        let redactor = redactor.clone();
        std::thread::spawn(move || pump(from, &redactor, to_stdout))
    })
    .collect();
    let status = child
        .wait()
        .map_err(|e| Failure::from(kmseal::Error::Io(e)))?;
    for p in pumps {
        // A broken pipe on our side (a closed terminal) must not hide the child's status.
        let _ = p.join();
    }
    handle.close();
    let _ = forwarder.join();
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
    // Ordinary memory: what the child prints is output, not a secret we hold; the redactor
    // keeps the bytes that may begin a secret in locked memory.
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..n])?;
        out.flush()?;
    }
    zeroize::Zeroize::zeroize(&mut buf[..]);
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
