//! `kmseal config edit FILE`: the decrypted document in `$VISUAL`/`$EDITOR`, from a private
//! directory on a memory-backed filesystem, re-sealed on save; the plaintext file is wiped
//! and removed whatever happens.

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use kmseal::Encryptor;
use kmseal_config::Sealer;
use zeroize::Zeroizing;

use crate::config::{block, decryptor, format_of, read_text};
use crate::{Failure, exit, keks, output, usage};

/// tmpfs and ramfs (`statfs` f_type): memory, not a disk.
const MEMORY_FILESYSTEMS: [u64; 2] = [0x0102_1994, 0x8584_58f6];

pub(crate) struct EditArgs<'a> {
    pub(crate) file: &'a Path,
    pub(crate) format: &'a Option<String>,
    pub(crate) keys: &'a [String],
    pub(crate) temp_dir: Option<&'a Path>,
    pub(crate) allow_disk_temp: bool,
}

pub(crate) fn edit(args: &EditArgs<'_>) -> Result<(), Failure> {
    let text = read_text(args.file)?;
    let format = format_of(args.file, args.format, Some(&text))?;
    if !kmseal_config::is_sealed(&text, format)? {
        return Err(usage(format!(
            "{} is not sealed; seal it first (kmseal config encrypt), then edit it",
            args.file.display()
        )));
    }
    let dec = decryptor(args.keys)?;
    // Verified (both MACs) before anything is shown; shown without the metadata block.
    let plain = Zeroizing::new(block(kmseal_config::decrypt(&text, format, &dec, false))?);
    // Caught from before the file exists until after it is gone (and through the seal):
    // a signal never ends kmseal with the decrypted file left behind.
    let guard = Guard::start()?;
    let dir = PrivateDir::new(args.temp_dir, args.allow_disk_temp)?;
    let ext = args
        .file
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| ["yaml", "yml", "json", "toml", "env"].contains(e))
        .unwrap_or(match format {
            kmseal_config::Format::Yaml => "yaml",
            kmseal_config::Format::Json => "json",
            kmseal_config::Format::Toml => "toml",
            kmseal_config::Format::Dotenv => "env",
        });
    let path = dir.path.join(format!("edit.{ext}"));
    dir.write(&path, plain.as_bytes())?;
    let outcome = run_editor(&path, &guard);
    // Whatever happened: the plaintext is read back (if the editor finished), then wiped
    // and removed with its directory when `dir` goes.
    let edited = match &outcome {
        Ok(()) => Some(Zeroizing::new(std::fs::read_to_string(&path).map_err(
            |e| usage(format!("cannot read the edited file back: {e}")),
        )?)),
        Err(_) => None,
    };
    drop(dir);
    guard.check()?;
    outcome?;
    let Some(edited) = edited else {
        return Err(internal());
    };
    if *edited == *plain {
        say(&format!(
            "no changes; {} left as it was",
            args.file.display()
        ));
        return Ok(());
    }
    let with_meta =
        kmseal_config::attach_metadata(&edited, format, &text).map_err(|e| Failure {
            code: exit::USAGE,
            message: format!(
                "the edited document was not saved ({e}); {} is unchanged",
                args.file.display()
            ),
        })?;
    let with_meta = Zeroizing::new(with_meta);
    let first = keks(args.keys, false)?
        .into_iter()
        .next()
        .ok_or_else(|| usage("no key given"))?;
    // The edits are the user's own, made on the verified document: they are the changes.
    let sealer = Sealer::new(Encryptor::new(first), dec).accept_changes(true);
    let sealed = block(sealer.seal(&with_meta, format)).map_err(|e| {
        let mut f = Failure::from(e);
        f.message = format!("{}; {} is unchanged", f.message, args.file.display());
        f
    })?;
    // Told to stop while the seal ran (a KMS call may take a while): nothing is written.
    guard.check()?;
    let mode = std::fs::metadata(args.file)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap_or(0o600);
    output::write_atomically(Some(args.file), true, mode, |w| {
        w.write_all(sealed.as_bytes())?;
        Ok(())
    })?;
    say(&format!("sealed the changes into {}", args.file.display()));
    Ok(())
}

/// Every catchable signal whose default action ends the process: while a decrypted file
/// exists, kmseal catches them, cleans up, then exits 128+N.
const CAUGHT: [i32; 12] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
    signal_hook::consts::SIGQUIT,
    signal_hook::consts::SIGUSR1,
    signal_hook::consts::SIGUSR2,
    signal_hook::consts::SIGALRM,
    signal_hook::consts::SIGVTALRM,
    signal_hook::consts::SIGPROF,
    signal_hook::consts::SIGXCPU,
    signal_hook::consts::SIGXFSZ,
    signal_hook::consts::SIGIO,
];

/// Signals caught for the whole edit. The editor, while it runs, is asked to stop on any of
/// them but INT and QUIT (a terminal sends those to it directly).
struct Guard {
    caught: Arc<AtomicI32>,
    /// The running editor; `None` once it has exited (then it is never signalled again,
    /// as its pid may be reused once reaped).
    editor: Arc<Mutex<Option<rustix::process::Pid>>>,
    handle: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Guard {
    fn start() -> Result<Guard, Failure> {
        let mut signals = signal_hook::iterator::Signals::new(CAUGHT)
            .map_err(|e| Failure::from(kmseal::Error::Io(e)))?;
        let caught = Arc::new(AtomicI32::new(0));
        let editor: Arc<Mutex<Option<rustix::process::Pid>>> = Arc::new(Mutex::new(None));
        let handle = signals.handle();
        let (seen, running) = (caught.clone(), editor.clone());
        let thread = std::thread::spawn(move || {
            use signal_hook::consts::{SIGINT, SIGQUIT};
            for sig in signals.forever() {
                seen.store(sig, Ordering::SeqCst);
                if sig == SIGINT || sig == SIGQUIT {
                    continue;
                }
                // Signalled under the lock: the main thread clears it before reaping.
                if let Ok(pid) = running.lock()
                    && let Some(pid) = *pid
                {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                }
            }
        });
        Ok(Guard {
            caught,
            editor,
            handle,
            thread: Some(thread),
        })
    }

    /// `Err(128+N)` once signal N was caught.
    fn check(&self) -> Result<(), Failure> {
        match self.caught.load(Ordering::SeqCst) {
            0 => Ok(()),
            sig => Err(Failure {
                code: u8::try_from(128 + sig).unwrap_or(1),
                message: "interrupted; nothing was saved and the decrypted file is gone".into(),
            }),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `$VISUAL`, else `$EDITOR`, else `vi` on `path` (through `sh`, so `code --wait`
/// works).
fn run_editor(path: &Path, guard: &Guard) -> Result<(), Failure> {
    let editor = std::env::var("VISUAL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| {
            std::env::var("EDITOR")
                .ok()
                .filter(|v| !v.trim().is_empty())
        })
        .unwrap_or_else(|| "vi".into());
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("kmseal-edit")
        .arg(path)
        .spawn()
        .map_err(|e| Failure {
            code: exit::OTHER,
            message: format!("cannot start the editor: {e}"),
        })?;
    let pid = rustix::process::Pid::from_child(&child);
    if let Ok(mut slot) = guard.editor.lock() {
        *slot = Some(pid);
    }
    // A signal caught before the editor was known: stop it now.
    if guard.caught.load(Ordering::SeqCst) != 0 {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    // Wait for the exit without reaping, forget the pid, then reap: no signal can reach
    // the pid after it is free for reuse.
    let exited = rustix::process::waitid(
        rustix::process::WaitId::Pid(pid),
        rustix::process::WaitIdOptions::EXITED | rustix::process::WaitIdOptions::NOWAIT,
    );
    if let Ok(mut slot) = guard.editor.lock() {
        *slot = None;
    }
    if let Err(e) = exited {
        tracing::debug!(error = %e, "waitid");
    }
    let status = child
        .wait()
        .map_err(|e| Failure::from(kmseal::Error::Io(e)))?;
    guard.check()?;
    if !status.success() {
        return Err(Failure {
            code: exit::OTHER,
            message: format!(
                "the editor failed ({status}); nothing was saved and the decrypted file is gone"
            ),
        });
    }
    Ok(())
}

/// A private (0700) directory for the decrypted file, on a memory-backed filesystem unless
/// the caller allows a disk. Dropping it wipes every file in it and removes it.
struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    fn new(explicit: Option<&Path>, allow_disk: bool) -> Result<PrivateDir, Failure> {
        let candidates: Vec<PathBuf> = match explicit {
            Some(p) => vec![p.to_path_buf()],
            None => std::env::var_os("XDG_RUNTIME_DIR")
                .map(PathBuf::from)
                .into_iter()
                .chain([PathBuf::from("/dev/shm")])
                .collect(),
        };
        let base = candidates
            .iter()
            .find(|p| on_memory(p))
            .cloned()
            .or_else(|| {
                allow_disk.then(|| {
                    explicit
                        .map(Path::to_path_buf)
                        .unwrap_or_else(std::env::temp_dir)
                })
            })
            .ok_or_else(|| {
                usage(format!(
                    "no memory-backed directory for the decrypted file ({} {}); the plaintext \
                     would be written to a disk. Point --temp-dir (or $XDG_RUNTIME_DIR) at a \
                     tmpfs, or pass --allow-disk-temp to accept that",
                    candidates
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if candidates.len() == 1 {
                        "is not"
                    } else {
                        "are not"
                    }
                ))
            })?;
        let random = kmseal::SecretBytes::random(8)?;
        let name: String = random
            .expose_secret()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let path = base.join(format!("kmseal-edit-{name}"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| usage(format!("cannot create {}: {e}", path.display())))?;
        Ok(PrivateDir { path })
    }

    /// Creates `path` (mode 0600, never an existing file) holding `content`.
    fn write(&self, path: &Path, content: &[u8]) -> Result<(), Failure> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| usage(format!("cannot create {}: {e}", path.display())))?;
        f.write_all(content)
            .map_err(|e| usage(format!("cannot write {}: {e}", path.display())))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        // Editors write new files beside (swap, backup, the saved copy renamed over ours):
        // wipe every file in the directory, then remove it.
        if let Ok(entries) = std::fs::read_dir(&self.path) {
            for entry in entries.flatten() {
                let p = entry.path();
                wipe_file(&p);
                if p.is_dir() {
                    let _ = std::fs::remove_dir_all(&p);
                } else {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Overwrites a regular file with zeros (what a memory filesystem holds is then gone, not
/// merely unlinked).
fn wipe_file(p: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return;
    };
    if !meta.is_file() {
        return;
    }
    if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(p) {
        let zeros = vec![0u8; 64 << 10];
        let mut left = meta.len();
        while left > 0 {
            let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
            if f.write_all(&zeros[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
        let _ = f.sync_all();
    }
}

/// Whether `dir` exists on tmpfs or ramfs.
fn on_memory(dir: &Path) -> bool {
    rustix::fs::statfs(dir)
        .map(|s| MEMORY_FILESYSTEMS.contains(&(s.f_type as u64)))
        .unwrap_or(false)
}

fn say(what: &str) {
    if !crate::progress::quiet() {
        let _ = writeln!(io::stderr(), "kmseal: {what}");
    }
}

fn internal() -> Failure {
    Failure {
        code: exit::OTHER,
        message: "internal: the edited text was not read".into(),
    }
}
