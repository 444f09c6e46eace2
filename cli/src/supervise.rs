//! `kmseal exec` as the command's parent: what a container's PID 1 does (signals forwarded,
//! orphans reaped, the command's status as ours), the command's output redacted (`--redact`),
//! and values refreshed while it runs (`--refresh`), restarting or signalling it when one
//! changed.

use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use kmseal::redact::Redactor;
use rustix::process::{Pid, Signal, WaitOptions, WaitStatus};

use crate::exec::Prepared;
use crate::{Failure, exit};

/// Signals forwarded to the command (as a container runtime or `kill` sends them to us).
const FORWARDED: [i32; 6] = [
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGHUP,
    signal_hook::consts::SIGQUIT,
    signal_hook::consts::SIGUSR1,
    signal_hook::consts::SIGUSR2,
];

/// Signals a terminal sends to its whole foreground process group: with a terminal the
/// command shares our group and gets them itself, so forwarding them would deliver each twice
/// (a second Ctrl-C is "force quit" to many servers). They are caught (kmseal stays) but not
/// forwarded.
const FROM_TERMINAL: [i32; 3] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGHUP,
    signal_hook::consts::SIGQUIT,
];

/// How long output may keep arriving after the command exited (from processes it left
/// running, which hold its pipes): then kmseal exits with the command's status.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// What a changed value does to the running command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnChange {
    /// Stop it (SIGTERM, the grace period, SIGKILL) and start it again with the new values.
    Restart,
    /// Send it this signal (it keeps its environment; for programs that re-read their own
    /// configuration).
    Signal(i32),
    /// Stop it and exit [`exit::RESTART`], so that the orchestrator restarts the container.
    Exit,
}

impl std::str::FromStr for OnChange {
    type Err = String;

    fn from_str(s: &str) -> Result<OnChange, String> {
        let bad = || format!("expected restart, exit or signal:NAME (HUP, USR1, ...), got `{s}`");
        match s {
            "restart" => Ok(OnChange::Restart),
            "exit" => Ok(OnChange::Exit),
            _ => {
                let name = s.strip_prefix("signal:").ok_or_else(bad)?;
                let name = name.strip_prefix("SIG").unwrap_or(name);
                let sig = match name {
                    "HUP" => signal_hook::consts::SIGHUP,
                    "INT" => signal_hook::consts::SIGINT,
                    "QUIT" => signal_hook::consts::SIGQUIT,
                    "TERM" => signal_hook::consts::SIGTERM,
                    "USR1" => signal_hook::consts::SIGUSR1,
                    "USR2" => signal_hook::consts::SIGUSR2,
                    _ => return Err(bad()),
                };
                Ok(OnChange::Signal(sig))
            }
        }
    }
}

/// How the supervisor behaves.
pub(crate) struct Options {
    /// Refresh interval (none: never refresh).
    pub(crate) refresh: Option<Duration>,
    pub(crate) on_change: OnChange,
    /// Between SIGTERM and SIGKILL when stopping the command.
    pub(crate) grace: Duration,
    /// How long refreshes may fail before the command is stopped and kmseal exits 4.
    pub(crate) max_stale: Duration,
}

/// Something the main loop reacts to.
pub(crate) enum Event {
    Signal(i32),
    /// A pump of the command started `generation`-th finished copying one of its outputs.
    PumpDone(u64),
    /// A refresh finished (it runs on its own thread, so that signals are never held up by
    /// a slow store).
    Reloaded(Box<Result<Prepared, Failure>>),
}

/// Signals caught from the moment kmseal knows it will supervise, before anything is read:
/// a SIGTERM that arrives while the document and references are read (slow stores) is
/// queued, not lost (as PID 1 an unhandled one would be dropped by the kernel).
pub(crate) struct Listener {
    tx: Sender<Event>,
    rx: Receiver<Event>,
    handle: signal_hook::iterator::Handle,
    thread: std::thread::JoinHandle<()>,
}

impl Listener {
    pub(crate) fn start() -> Result<Listener, Failure> {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut wanted = FORWARDED.to_vec();
        wanted.push(signal_hook::consts::SIGCHLD);
        let mut signals = signal_hook::iterator::Signals::new(&wanted)
            .map_err(|e| Failure::from(kmseal::Error::Io(e)))?;
        let handle = signals.handle();
        let signal_tx = tx.clone();
        let thread = std::thread::spawn(move || {
            for sig in signals.forever() {
                if signal_tx.send(Event::Signal(sig)).is_err() {
                    break;
                }
            }
        });
        Ok(Listener {
            tx,
            rx,
            handle,
            thread,
        })
    }
}

/// The running command and what belongs to it.
struct Running {
    pid: Pid,
    /// Whether it leads a process group of its own (no terminal): stopping it stops the
    /// group, so an entrypoint script's server goes too.
    own_group: bool,
    /// Kept for its pipes only: the process is reaped with `wait`, never `Child::wait`.
    _child: Child,
    /// Its memory files, open while it runs (closed before another command starts, which
    /// would inherit them).
    memfiles: Vec<crate::memfile::MemFile>,
    generation: u64,
    pumps: usize,
    pumps_done: usize,
    fingerprint: [u8; 32],
}

/// Why the command is being stopped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stopping {
    /// To start it again with new values.
    ForRestart,
    /// Then exit with this code.
    ForExit(u8),
    /// Told to stop (a terminating signal during a restart): then exit with its status.
    AsTold,
}

/// Signals that stop the command for good when forwarded (SIGHUP too, unless it means
/// "refresh").
fn terminating(sig: i32, refresh: bool) -> bool {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    sig == SIGTERM || sig == SIGINT || sig == SIGQUIT || (sig == SIGHUP && !refresh)
}

/// Runs `first`, then supervises it until it exits (its status is ours) or a refresh says to
/// stop. `reload` reads every value again, on a thread of its own.
pub(crate) fn run(
    listener: Listener,
    first: Prepared,
    options: &Options,
    reload: std::sync::Arc<dyn Fn() -> Result<Prepared, Failure> + Send + Sync>,
) -> Result<(), Failure> {
    // Orphans of the command's process tree are re-parented to us (as to PID 1), and reaped.
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        tracing::debug!(error = %e, "PR_SET_CHILD_SUBREAPER");
    }
    let terminal = io::stdin().is_terminal();
    let Listener {
        tx,
        rx,
        handle,
        thread,
    } = listener;
    let result = supervise(first, options, &reload, &tx, &rx, terminal);
    handle.close();
    drop(tx);
    let _ = thread.join();
    result
}

fn supervise(
    first: Prepared,
    options: &Options,
    reload: &std::sync::Arc<dyn Fn() -> Result<Prepared, Failure> + Send + Sync>,
    tx: &Sender<Event>,
    rx: &Receiver<Event>,
    terminal: bool,
) -> Result<(), Failure> {
    let refresh = options.refresh.is_some();
    // A terminating signal that came while everything was read: nothing starts.
    while let Ok(event) = rx.try_recv() {
        if let Event::Signal(sig) = event
            && terminating(sig, refresh)
        {
            return Err(signalled(sig));
        }
    }
    let mut generation = 0;
    let mut running = start(first, terminal, tx, generation)?;
    let mut pending: Option<Prepared> = None;
    let mut stopping: Option<(Stopping, Instant)> = None;
    let mut next_refresh = options.refresh.map(|every| Instant::now() + every);
    let mut reloading = false;
    let mut last_good = Instant::now();
    loop {
        // The earliest of: the next refresh, the end of a stopping command's grace period,
        // and (while a refresh runs) a check of the staleness bound.
        let deadline = [
            next_refresh.filter(|_| !reloading),
            stopping.map(|(_, until)| until),
            reloading.then(|| Instant::now() + Duration::from_secs(1)),
        ]
        .into_iter()
        .flatten()
        .min();
        let event = match deadline {
            Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(e) => Some(e),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return Err(internal("signal listener")),
            },
            None => Some(rx.recv().map_err(|_| internal("signal listener"))?),
        };
        let mut refresh_now = false;
        let now = Instant::now();
        match event {
            Some(Event::PumpDone(g)) if g == running.generation => running.pumps_done += 1,
            Some(Event::PumpDone(_)) => {}
            Some(Event::Signal(sig)) if sig == signal_hook::consts::SIGCHLD => {}
            Some(Event::Signal(sig)) if sig == signal_hook::consts::SIGHUP && refresh => {
                // With --refresh, SIGHUP to kmseal means "refresh now".
                refresh_now = true;
            }
            Some(Event::Signal(sig)) => {
                if terminating(sig, refresh) && stopping.is_some() {
                    // Told to stop while stopping for a restart (or an exit): no new
                    // command starts; kmseal ends with this one's status.
                    pending = None;
                    stopping = Some((Stopping::AsTold, now + options.grace));
                    stop(&running, sig);
                } else if !(terminal && FROM_TERMINAL.contains(&sig)) {
                    send(running.pid, sig);
                }
            }
            Some(Event::Reloaded(result)) => {
                reloading = false;
                if stopping.is_none() {
                    match *result {
                        Ok(next) => {
                            last_good = Instant::now();
                            if next.fingerprint != running.fingerprint {
                                on_change(options, &mut running, next, &mut pending, &mut stopping);
                            }
                        }
                        Err(e) => {
                            // Never a value: errors name paths, references and stores.
                            tell(&format!(
                                "refresh failed; the command keeps the last good values: {}",
                                e.message
                            ));
                        }
                    }
                }
            }
            None => {}
        }
        // Reap whatever exited: orphans re-parented to us, and the command itself.
        if let Some(status) = reap(running.pid) {
            // Whatever is left of its process group goes with it (and is reaped, so that no
            // zombie is left to an init that may not reap).
            if running.own_group {
                end_group(running.pid);
            }
            let left = running.pumps.saturating_sub(running.pumps_done);
            match (stopping, pending.take()) {
                (Some((Stopping::ForRestart, _)), Some(next)) => {
                    stopping = None;
                    if let Some(sig) = drain(rx, left, refresh) {
                        return Err(signalled(sig));
                    }
                    // The old memory files close first: the new command must not inherit them.
                    running.memfiles.clear();
                    generation += 1;
                    running = start(next, terminal, tx, generation)?;
                    tell("restarted the command with the new values");
                    continue;
                }
                (Some((Stopping::ForExit(code), _)), _) => {
                    let _ = drain(rx, left, refresh);
                    return Err(Failure {
                        code,
                        message: match code {
                            exit::RESTART => {
                                "values changed; exiting so that the command is restarted".into()
                            }
                            _ => "values could not be refreshed for longer than --max-stale; \
                                  stopped the command"
                                .into(),
                        },
                    });
                }
                _ => {
                    let _ = drain(rx, left, refresh);
                    return exit_like(status);
                }
            }
        }
        let now = Instant::now();
        if let Some((why, until)) = stopping
            && now >= until
        {
            // The grace period is over.
            kill(&running);
            stopping = Some((why, now + Duration::from_secs(3600)));
        }
        if reloading && stopping.is_none() && last_good.elapsed() > options.max_stale {
            // A refresh that hangs counts as failing.
            stale(&running, options, &mut stopping);
        }
        let due = next_refresh.is_some_and(|at| now >= at);
        if (due || refresh_now) && stopping.is_none() && !reloading {
            if let Some(every) = options.refresh {
                next_refresh = Some(now + every);
            }
            reloading = true;
            let (reload, tx) = (reload.clone(), tx.clone());
            // Not joined: a store that never answers must not keep kmseal from exiting.
            std::thread::spawn(move || {
                let _ = tx.send(Event::Reloaded(Box::new(reload())));
            });
        }
        if !reloading && stopping.is_none() && last_good.elapsed() > options.max_stale {
            stale(&running, options, &mut stopping);
        }
    }
}

/// What a changed value does.
fn on_change(
    options: &Options,
    running: &mut Running,
    next: Prepared,
    pending: &mut Option<Prepared>,
    stopping: &mut Option<(Stopping, Instant)>,
) {
    let now = Instant::now();
    match options.on_change {
        OnChange::Restart => {
            tell("a value changed; restarting the command");
            *pending = Some(next);
            *stopping = Some((Stopping::ForRestart, now + options.grace));
            stop(running, signal_hook::consts::SIGTERM);
        }
        OnChange::Signal(sig) => {
            tell("a value changed; signalling the command");
            running.fingerprint = next.fingerprint;
            send(running.pid, sig);
        }
        OnChange::Exit => {
            tell("a value changed; stopping the command");
            *stopping = Some((Stopping::ForExit(exit::RESTART), now + options.grace));
            stop(running, signal_hook::consts::SIGTERM);
        }
    }
}

/// Values are older than --max-stale: stop the command, then exit 4.
fn stale(running: &Running, options: &Options, stopping: &mut Option<(Stopping, Instant)>) {
    tell("values are older than --max-stale; stopping the command");
    *stopping = Some((Stopping::ForExit(exit::KMS), Instant::now() + options.grace));
    stop(running, signal_hook::consts::SIGTERM);
}

/// Asks the command to stop: its whole process group when it has one of its own.
fn stop(running: &Running, sig: i32) {
    match (running.own_group, Signal::from_named_raw(sig)) {
        (true, Some(signal)) => {
            let _ = rustix::process::kill_process_group(running.pid, signal);
        }
        _ => send(running.pid, sig),
    }
}

/// The end of the grace period: SIGKILL to the command (and its group).
fn kill(running: &Running) {
    if running.own_group {
        let _ = rustix::process::kill_process_group(running.pid, Signal::KILL);
    } else {
        send(running.pid, signal_hook::consts::SIGKILL);
    }
}

/// Kills what is left of the process group `pgid` and reaps it (waiting up to a second for
/// the kernel to finish them).
fn end_group(pgid: Pid) {
    let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
    let deadline = Instant::now() + Duration::from_secs(1);
    while rustix::process::test_kill_process_group(pgid).is_ok() && Instant::now() < deadline {
        let _ = reap(pgid);
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = reap(pgid);
}

/// kmseal ends as if signal `sig` had ended the command: 128+N.
fn signalled(sig: i32) -> Failure {
    Failure {
        code: u8::try_from(128 + sig).unwrap_or(1),
        message: String::new(),
    }
}

/// Starts the command: its own process group without a terminal (so that a signal to ours
/// reaches it once, through us), its output through the redactor when there is one.
fn start(
    prepared: Prepared,
    terminal: bool,
    tx: &Sender<Event>,
    generation: u64,
) -> Result<Running, Failure> {
    let mut cmd = prepared.command();
    let Prepared {
        memfiles,
        redactor,
        fingerprint,
        ..
    } = prepared;
    if !terminal {
        cmd.process_group(0);
    }
    cmd.stdin(Stdio::inherit());
    if redactor.is_some() {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child = cmd.spawn().map_err(|e| Failure {
        code: exit::OTHER,
        message: format!("cannot run the command: {e}"),
    })?;
    // The `Command`'s copy of the environment goes now (unwiped: std gives no way to wipe
    // it); the locked originals went with `prepared`.
    drop(cmd);
    let pid = Pid::from_child(&child);
    let mut pumps = 0;
    if let Some(redactor) = redactor {
        let redactor = Arc::new(redactor);
        let outputs = [
            child
                .stdout
                .take()
                .map(|o| (Box::new(o) as Box<dyn Read + Send>, true)),
            child
                .stderr
                .take()
                .map(|e| (Box::new(e) as Box<dyn Read + Send>, false)),
        ];
        for (from, to_stdout) in outputs.into_iter().flatten() {
            let (redactor, done) = (redactor.clone(), tx.clone());
            pumps += 1;
            std::thread::spawn(move || {
                // A broken pipe on our side (a closed terminal) must not hide the status.
                let _ = pump(from, &redactor, to_stdout);
                let _ = done.send(Event::PumpDone(generation));
            });
        }
    }
    Ok(Running {
        pid,
        own_group: !terminal,
        _child: child,
        memfiles,
        generation,
        pumps,
        pumps_done: 0,
        fingerprint,
    })
}

/// Reaps every exited child without blocking; returns the command's status if it was one
/// of them. The command is reaped here, in the loop that forwards signals, so no signal is
/// sent to its pid after that (when it could name another process).
fn reap(command: Pid) -> Option<WaitStatus> {
    let mut ours = None;
    loop {
        // `wait`, not `waitpid(None)`: the latter only sees our own process group, and the
        // command has a group of its own.
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some((pid, status))) => {
                if pid == command {
                    ours = Some(status);
                } else {
                    tracing::debug!(pid = pid.as_raw_nonzero().get(), "reaped an orphan");
                }
            }
            // None: children remain but none exited; an error: no children at all.
            Ok(None) | Err(_) => return ours,
        }
    }
}

/// Waits (a bounded time) for `left` pumps to finish copying what is still in the pipes;
/// processes the command left behind do not keep us. Returns a terminating signal that
/// arrived meanwhile (it is not lost).
fn drain(rx: &Receiver<Event>, left: usize, refresh: bool) -> Option<i32> {
    let deadline = Instant::now() + DRAIN_AFTER_EXIT;
    let mut waited = 0;
    let mut told = None;
    while waited < left {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Event::PumpDone(_)) => waited += 1,
            Ok(Event::Signal(sig)) if terminating(sig, refresh) => told = Some(sig),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    // And any that is already queued.
    while let Ok(event) = rx.try_recv() {
        if let Event::Signal(sig) = event
            && terminating(sig, refresh)
        {
            told = Some(sig);
        }
    }
    told
}

fn send(pid: Pid, sig: i32) {
    if let Some(signal) = Signal::from_named_raw(sig) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// A line on stderr about what the supervisor did (never a value).
fn tell(what: &str) {
    if !crate::progress::quiet() {
        let _ = writeln!(io::stderr(), "kmseal: {what}");
    }
}

fn internal(what: &str) -> Failure {
    Failure {
        code: exit::OTHER,
        message: format!("internal: {what} stopped"),
    }
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
    // What the command prints may hold a secret until it is redacted: read into locked
    // memory (wiped on every way out, errors included).
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

/// Our exit as the command's: its code, or 128+N when signal N ended it.
fn exit_like(status: WaitStatus) -> Result<(), Failure> {
    let code = match (status.exit_status(), status.terminating_signal()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_change_actions_parse() {
        assert_eq!("restart".parse(), Ok(OnChange::Restart));
        assert_eq!("exit".parse(), Ok(OnChange::Exit));
        assert_eq!(
            "signal:HUP".parse(),
            Ok(OnChange::Signal(signal_hook::consts::SIGHUP))
        );
        assert_eq!(
            "signal:SIGUSR1".parse(),
            Ok(OnChange::Signal(signal_hook::consts::SIGUSR1))
        );
        for bad in ["", "signal:", "signal:KILL", "reload", "signal:9"] {
            assert!(bad.parse::<OnChange>().is_err(), "{bad}");
        }
    }
}
