//! `kmseal config edit FILE`: the decrypted document in `$VISUAL`/`$EDITOR`, from a private
//! directory on a memory-backed filesystem, re-sealed on save; the plaintext file is wiped
//! and removed whatever happens.

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

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
    let outcome = run_editor(&path);
    // Whatever happened: the plaintext is read back (if the editor finished), then wiped
    // and removed with its directory when `dir` goes.
    let edited = match &outcome {
        Ok(()) => Some(Zeroizing::new(std::fs::read_to_string(&path).map_err(
            |e| usage(format!("cannot read the edited file back: {e}")),
        )?)),
        Err(_) => None,
    };
    drop(dir);
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

/// Runs `$VISUAL`, else `$EDITOR`, else `vi` on `path` (through `sh`, so `code --wait`
/// works). kmseal stays through SIGINT, SIGTERM, SIGHUP and SIGQUIT while the editor runs
/// (TERM and HUP are passed on to it) so that it can clean up, then ends as the signal asked.
fn run_editor(path: &Path) -> Result<(), Failure> {
    let editor = std::env::var("VISUAL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| {
            std::env::var("EDITOR")
                .ok()
                .filter(|v| !v.trim().is_empty())
        })
        .unwrap_or_else(|| "vi".into());
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])
        .map_err(|e| Failure::from(kmseal::Error::Io(e)))?;
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
    let caught = Arc::new(AtomicI32::new(0));
    let handle = signals.handle();
    let seen = caught.clone();
    let watcher = std::thread::spawn(move || {
        for sig in signals.forever() {
            seen.store(sig, Ordering::SeqCst);
            // A terminal sends INT and QUIT to the editor itself; TERM and HUP sent to
            // kmseal alone must reach it too.
            if (sig == SIGTERM || sig == SIGHUP)
                && let Some(s) = rustix::process::Signal::from_named_raw(sig)
            {
                let _ = rustix::process::kill_process(pid, s);
            }
        }
    });
    let status = child.wait();
    handle.close();
    let _ = watcher.join();
    let status = status.map_err(|e| Failure::from(kmseal::Error::Io(e)))?;
    let sig = caught.load(Ordering::SeqCst);
    if sig != 0 {
        return Err(Failure {
            code: u8::try_from(128 + sig).unwrap_or(1),
            message: "interrupted; nothing was saved and the decrypted file is gone".into(),
        });
    }
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
