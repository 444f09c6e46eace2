//! Output that is never left half-written: a temporary file beside the target, renamed into
//! place only when the whole job succeeded, removed otherwise.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

use crate::{Failure, usage};

/// Runs `job` against the output (stdout when `path` is `None`). The output is unbuffered,
/// so plaintext never lingers in a buffer of ours: every job writes whole documents or
/// 1 MiB chunks.
pub(crate) fn write_atomically(
    path: Option<&Path>,
    force: bool,
    mode: u32,
    job: impl FnOnce(&mut dyn Write) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let Some(path) = path.filter(|p| *p != Path::new("-")) else {
        // Straight to the descriptor: `Stdout`'s own buffer would keep the tail of each write
        // (plaintext, when decrypting) in unlocked memory that is never wiped.
        let mut stdout = io::stdout();
        stdout.flush()?;
        let mut out = File::from(stdout.as_fd().try_clone_to_owned()?);
        job(&mut out)?;
        out.flush()?;
        return Ok(());
    };
    if path.exists() && !force {
        return Err(usage(format!(
            "{} already exists; pass --force to overwrite it",
            path.display()
        )));
    }
    // A device, FIFO or socket (`-o /dev/null`, `-o /dev/stdout`, a named pipe) is written
    // to, never renamed over: a rename would replace the device node with a regular file (as
    // root, /dev/null itself). There is nothing to make atomic there.
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_char_device() || t.is_block_device() || t.is_fifo() || t.is_socket() {
            let mut out = OpenOptions::new().write(true).open(path)?;
            job(&mut out)?;
            out.flush()?;
            return Ok(());
        }
        if t.is_dir() {
            return Err(usage(format!("{} is a directory", path.display())));
        }
    }
    let (tmp_path, file) = create_temp(path, mode)?;
    let guard = TempGuard::new(tmp_path.clone());
    let mut file = file;
    job(&mut file)?;
    file.sync_all()?;
    std::fs::rename(&tmp_path, path)?;
    guard.disarm();
    // The rename is durable only once the directory is on disk too.
    File::open(parent_of(path))?.sync_all()?;
    Ok(())
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Temporary files being written, removed by the signal watcher if SIGINT, SIGTERM or SIGHUP
/// arrives before they are renamed: a half-written plaintext file is never left behind.
static IN_FLIGHT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn in_flight() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts (once) a thread that, on SIGINT, SIGTERM or SIGHUP, removes every temporary file
/// still in flight and then ends the process as the signal's default action would.
fn watch_signals() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            tracing::warn!("cannot watch signals; an interrupted write may leave a temporary file");
            return;
        };
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                for p in in_flight().drain(..) {
                    let _ = std::fs::remove_file(p);
                }
                let _ = signal_hook::low_level::emulate_default_handler(sig);
                std::process::exit(128 + sig);
            }
        });
    });
}

fn create_temp(path: &Path, mode: u32) -> Result<(PathBuf, File), Failure> {
    watch_signals();
    let dir = parent_of(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for attempt in 0..100u32 {
        let tmp = dir.join(format!(
            ".{name}.kmseal-tmp-{}-{attempt}",
            std::process::id()
        ));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(usage(format!(
                    "cannot create a file in {}: {e}",
                    dir.display()
                )));
            }
        }
    }
    Err(usage(format!(
        "cannot create a temporary file in {}",
        dir.display()
    )))
}

/// Removes the temporary file unless disarmed (and, while armed, lets the signal watcher
/// remove it).
struct TempGuard(Option<PathBuf>);

impl TempGuard {
    fn new(path: PathBuf) -> TempGuard {
        in_flight().push(path.clone());
        TempGuard(Some(path))
    }

    fn disarm(mut self) {
        if let Some(p) = self.0.take() {
            in_flight().retain(|q| *q != p);
        }
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(&p);
            in_flight().retain(|q| *q != p);
        }
    }
}
