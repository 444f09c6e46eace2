//! Key rotation that never loses data: rewrap headers without touching payloads, or
//! re-encrypt under a new data key, for one message, a list of blobs, or a directory tree.
//!
//! * **Rewrap** opens a message's data key with a KEK the caller trusts (checking the key
//!   commitment and header tag), wraps it under every target KEK, and writes
//!   `new header || the original frames, byte for byte`. Use it to move to a new KEK or KEK
//!   version, add a disaster-recovery region, or drop a retired key.
//! * **Re-encrypt** decrypts and encrypts again under a fresh data key (optionally a new suite
//!   or frame size), streaming in constant memory.
//!
//! Files are rotated crash-safely: the new message is written to a temporary file in the same
//! directory, fsynced, verified by decrypting it with a target KEK, then renamed over the
//! original and the directory fsynced. Killed at any point, every file is either the old
//! message or the new one, and a rerun finishes the job (rewrap skips files already wrapped
//! exactly under the target KEKs).
//!
//! ```
//! use std::sync::Arc;
//! use kmseal::{Decryptor, Encryptor, LocalKek};
//! use kmseal::rotate::{Outcome, Rotator};
//!
//! let (old, new) = (Arc::new(LocalKek::generate()?), Arc::new(LocalKek::generate()?));
//! let sealed = Encryptor::new(old.clone()).encrypt_blocking(b"secret")?;
//!
//! let rotator = Rotator::rewrap(Decryptor::new(old), vec![new.clone()]);
//! let Outcome::Rotated(rotated) = rotator.rotate_message_blocking(&sealed)? else { panic!() };
//! assert_eq!(Decryptor::new(new).decrypt_blocking(&rotated)?.expose_secret(), b"secret");
//! # Ok::<(), kmseal::Error>(())
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::envelope::{Decryptor, Encryptor};
use crate::error::Error;
use crate::format::{FrameSize, Header};
use crate::kek::Kek;
use crate::stream::copy_locked_with;

use crate::suite::Suite;

/// What rotation does to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// New wrapped keys, same data key and frames.
    Rewrap,
    /// New data key, new frames.
    Reencrypt,
}

/// Why a message was left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Rewrap: already wrapped exactly under the target KEKs.
    AlreadyCurrent,
    /// Not wrapped under the KEK given to [`Rotator::only_wrapped_by`].
    NotWrappedBySelected,
    /// Modified more recently than [`Rotator::older_than`] allows.
    TooRecent,
    /// Not a kmseal message (files only; bad messages among kmseal ones are failures).
    NotKmseal,
}

/// The result of rotating one message.
#[derive(Debug)]
pub enum Outcome<T = Vec<u8>> {
    /// Rotated; for blobs, the new message.
    Rotated(T),
    /// Would be rotated (dry run).
    WouldRotate,
    /// Left alone.
    Skipped(Skip),
}

/// A step of a file rotation, reported to [`Rotator::on_step`] as it completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The temporary file exists (empty).
    TempCreated,
    /// The new message is fully written to the temporary file.
    Written,
    /// The temporary file is fsynced.
    Synced,
    /// The temporary file decrypted completely with a target KEK.
    Verified,
    /// The temporary file replaced the original.
    Renamed,
    /// The directory is fsynced: the rename is durable.
    DirSynced,
}

/// What a tree rotation did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Files rotated (or that would be, in a dry run).
    pub rotated: Vec<PathBuf>,
    /// Files already wrapped exactly under the target KEKs.
    pub already_current: Vec<PathBuf>,
    /// Files left alone by the selection, or not kmseal messages, with the reason.
    pub skipped: Vec<(PathBuf, Skip)>,
    /// Files that could not be rotated, with the error (the original is untouched).
    pub failed: Vec<(PathBuf, Error)>,
}

type StepHook = Arc<dyn Fn(&Path, Step) + Send + Sync>;

/// Rotates messages from the KEKs a [`Decryptor`] trusts to a set of target KEKs.
#[derive(Clone)]
pub struct Rotator {
    open_with: Decryptor,
    target: Vec<Arc<dyn Kek>>,
    mode: Mode,
    suite: Option<Suite>,
    frame_size: Option<FrameSize>,
    only_wrapped_by: Option<Arc<dyn Kek>>,
    older_than: Option<Duration>,
    dry_run: bool,
    on_step: Option<StepHook>,
}

impl std::fmt::Debug for Rotator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotator")
            .field("mode", &self.mode)
            .field(
                "target",
                &self.target.iter().map(|k| k.describe()).collect::<Vec<_>>(),
            )
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

const TEMP_SUFFIX: &str = ".kmseal-rotate";

impl Rotator {
    fn new(open_with: Decryptor, target: Vec<Arc<dyn Kek>>, mode: Mode) -> Rotator {
        Rotator {
            open_with,
            target,
            mode,
            suite: None,
            frame_size: None,
            only_wrapped_by: None,
            older_than: None,
            dry_run: false,
            on_step: None,
        }
    }

    /// Rewraps messages that `open_with` can open so that they carry exactly one wrapped key
    /// per `target` KEK (each wrapped fresh, so a KEK version change takes effect).
    pub fn rewrap(open_with: Decryptor, target: Vec<Arc<dyn Kek>>) -> Rotator {
        Rotator::new(open_with, target, Mode::Rewrap)
    }

    /// Re-encrypts messages that `open_with` can open under a fresh data key wrapped by the
    /// `target` KEKs, keeping each message's context, suite and frame size unless told.
    pub fn reencrypt(open_with: Decryptor, target: Vec<Arc<dyn Kek>>) -> Rotator {
        Rotator::new(open_with, target, Mode::Reencrypt)
    }

    /// Re-encrypt with this suite.
    pub fn suite(mut self, suite: Suite) -> Rotator {
        self.suite = Some(suite);
        self
    }

    /// Re-encrypt with this frame size.
    pub fn frame_size(mut self, frame_size: FrameSize) -> Rotator {
        self.frame_size = Some(frame_size);
        self
    }

    /// Only rotate messages that carry a key wrapped by `kek` (the one being retired). With
    /// it, a re-encryption rerun skips what it already did.
    pub fn only_wrapped_by(mut self, kek: Arc<dyn Kek>) -> Rotator {
        self.only_wrapped_by = Some(kek);
        self
    }

    /// Only rotate files last modified at least `age` ago (the header records no time).
    pub fn older_than(mut self, age: Duration) -> Rotator {
        self.older_than = Some(age);
        self
    }

    /// Report what would be rotated, change nothing, call no KMS.
    pub fn dry_run(mut self, dry_run: bool) -> Rotator {
        self.dry_run = dry_run;
        self
    }

    /// Calls `hook` after each step of each file rotation (progress reporting, tests).
    pub fn on_step(mut self, hook: impl Fn(&Path, Step) + Send + Sync + 'static) -> Rotator {
        self.on_step = Some(Arc::new(hook));
        self
    }

    fn step(&self, path: &Path, step: Step) {
        if let Some(hook) = &self.on_step {
            hook(path, step);
        }
    }

    fn is_current(&self, header: &Header) -> bool {
        let wrapped = header.wrapped_keys();
        self.mode == Mode::Rewrap
            && wrapped.len() == self.target.len()
            && self
                .target
                .iter()
                .all(|k| wrapped.iter().any(|w| k.matches(w)))
            && wrapped
                .iter()
                .all(|w| self.target.iter().any(|k| k.matches(w)))
    }

    /// What this rotator does.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether this is a dry run.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// The modification age set by [`older_than`](Self::older_than).
    pub fn min_age(&self) -> Option<Duration> {
        self.older_than
    }

    /// The decryptor that opens the messages (and whose limits headers are parsed under).
    pub fn decryptor(&self) -> &Decryptor {
        &self.open_with
    }

    /// Opens `header` with the first target KEK (commitment and header tag checked): a
    /// rotated header that its new KEK cannot open must never replace the old one.
    pub async fn verify_header(&self, header: &Header) -> Result<(), Error> {
        self.verifier()?.open_header(header).await.map(drop)
    }

    /// Decrypts `message` completely with the first target KEK, as a file rotation does
    /// before its rename.
    pub async fn verify_message(&self, message: &[u8]) -> Result<(), Error> {
        self.verifier()?.decrypt(message).await.map(drop)
    }

    fn verifier(&self) -> Result<Decryptor, Error> {
        let first = self
            .target
            .first()
            .ok_or_else(|| Error::InvalidArgument("rotation needs at least one target KEK"))?;
        Ok(Decryptor::new(first.clone()).limits(*self.open_with.configured_limits()))
    }

    fn need_targets(&self) -> Result<(), Error> {
        if self.target.is_empty() {
            return Err(Error::InvalidArgument(
                "rotation needs at least one target KEK",
            ));
        }
        Ok(())
    }

    /// What every rotation decides from the header alone: skipped by the selection (already
    /// current, not wrapped by [`only_wrapped_by`](Self::only_wrapped_by)), or only reported
    /// (dry run). `None`: rotate it. For callers that read headers on their own, such as
    /// object-store rotation.
    pub fn decide<T>(&self, header: &Header) -> Option<Outcome<T>> {
        if let Some(skip) = self.select(header) {
            return Some(Outcome::Skipped(skip));
        }
        self.dry_run.then_some(Outcome::WouldRotate)
    }

    /// Whether a message with this header is to be rotated.
    fn select(&self, header: &Header) -> Option<Skip> {
        if let Some(k) = &self.only_wrapped_by
            && !header.wrapped_keys().iter().any(|w| k.matches(w))
        {
            return Some(Skip::NotWrappedBySelected);
        }
        if self.is_current(header) {
            return Some(Skip::AlreadyCurrent);
        }
        None
    }

    fn encryptor_for(&self, header: &Header) -> Result<Encryptor, Error> {
        // A signed message is re-encrypted signed, under a new key pair: its old public key
        // leaves the context.
        let enc = Encryptor::with_keks(self.target.iter().cloned())
            .map_err(|_| Error::InvalidArgument("rotation needs at least one target KEK"))?
            .with_context(header.context().without(crate::SIGNING_KEY_CONTEXT))
            .signed(header.is_signed())
            .suite(self.suite.unwrap_or(header.suite()))
            .frame_size(match self.frame_size {
                Some(f) => f,
                None => FrameSize::new(header.frame_size())?,
            });
        Ok(enc)
    }

    /// Rotates the message read from `input` into `output`, streaming. Returns what happened;
    /// nothing is written unless the message is rotated.
    pub async fn rotate_stream<R: Read, W: Write>(
        &self,
        mut input: R,
        output: W,
    ) -> Result<Outcome<W>, Error> {
        self.need_targets()?;
        let header = self.open_with.read_header(&mut input)?;
        if let Some(outcome) = self.decide(&header) {
            return Ok(outcome);
        }
        let opened = self.open_with.open_header(&header).await?;
        let mut output = output;
        match self.mode {
            Mode::Rewrap => {
                let new_header = opened.rewrap(&self.target).await?;
                drop(opened);
                output.write_all(&new_header.to_bytes())?;
                io::copy(&mut input, &mut output)?;
                output.flush()?;
                Ok(Outcome::Rotated(output))
            }
            Mode::Reencrypt => {
                let mut reader = opened.reader(input)?;
                let mut writer = self.encryptor_for(&header)?.writer(output).await?;
                copy_locked_with(&mut reader, &mut writer, ROTATE_CHUNK)?;
                Ok(Outcome::Rotated(writer.finish()?))
            }
        }
    }

    /// [`rotate_stream`](Self::rotate_stream) over tokio streams (feature `tokio`): reads the
    /// message from `input`, writes the rotated one to `output` (shut down at the end) and
    /// returns it. A rewrap copies the frames byte for byte; a re-encryption goes through an
    /// [`AsyncDecryptReader`](crate::AsyncDecryptReader) and an
    /// [`AsyncEncryptWriter`](crate::AsyncEncryptWriter) in locked memory.
    #[cfg(feature = "tokio")]
    pub async fn rotate_async<R, W>(&self, mut input: R, output: W) -> Result<Outcome<W>, Error>
    where
        R: tokio::io::AsyncRead + Unpin,
        W: tokio::io::AsyncWrite + Unpin,
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.need_targets()?;
        let (header, feed) = self.open_with.read_header_async(&mut input).await?;
        if let Some(outcome) = self.decide(&header) {
            return Ok(outcome);
        }
        let opened = self.open_with.open_header(&header).await?;
        let mut output = output;
        match self.mode {
            Mode::Rewrap => {
                let new_header = opened.rewrap(&self.target).await?;
                drop(opened);
                output.write_all(&new_header.to_bytes()).await?;
                output.write_all(feed.remaining()).await?;
                tokio::io::copy(&mut input, &mut output).await?;
                output.shutdown().await?;
                Ok(Outcome::Rotated(output))
            }
            Mode::Reencrypt => {
                let mut reader = opened.async_reader(input, feed)?;
                let mut writer = self.encryptor_for(&header)?.async_writer(output).await?;
                let mut buf = crate::secret::SecretBytes::zeroed(ROTATE_CHUNK)?;
                loop {
                    let n = reader
                        .read(buf.expose_secret_mut())
                        .await
                        .map_err(crate::stream::from_io)?;
                    if n == 0 {
                        break;
                    }
                    writer
                        .write_all(&buf.expose_secret()[..n])
                        .await
                        .map_err(crate::stream::from_io)?;
                }
                writer.shutdown().await.map_err(crate::stream::from_io)?;
                Ok(Outcome::Rotated(writer.into_inner()))
            }
        }
    }

    /// Rewraps a bare header (one with no body, such as the header of a value-level config
    /// document, or a message's header read on its own): the same selection, dry run and
    /// targets as [`rotate_stream`](Self::rotate_stream), in [`Mode::Rewrap`] only (a header
    /// alone cannot be re-encrypted).
    pub async fn rotate_header(&self, header: &Header) -> Result<Outcome<Header>, Error> {
        if self.mode != Mode::Rewrap {
            return Err(Error::InvalidArgument(
                "only a rewrap rotates a header on its own; re-encryption needs the message",
            ));
        }
        self.need_targets()?;
        // Under the decryptor's own limits, as a header read from a message would be.
        self.open_with.parse_header(&header.to_bytes())?;
        if let Some(outcome) = self.decide(header) {
            return Ok(outcome);
        }
        let opened = self.open_with.open_header(header).await?;
        Ok(Outcome::Rotated(opened.rewrap(&self.target).await?))
    }

    /// Rotates one message held in memory.
    pub async fn rotate_message(&self, message: &[u8]) -> Result<Outcome, Error> {
        Ok(match self.rotate_stream(message, Vec::new()).await? {
            Outcome::Rotated(v) => Outcome::Rotated(v),
            Outcome::WouldRotate => Outcome::WouldRotate,
            Outcome::Skipped(s) => Outcome::Skipped(s),
        })
    }

    /// Blocking form of [`rotate_message`](Self::rotate_message).
    pub fn rotate_message_blocking(&self, message: &[u8]) -> Result<Outcome, Error> {
        crate::blocking::block_on(self.rotate_message(message))
    }

    /// Rotates a list of blobs on at most `concurrency` threads; results in input order.
    pub fn rotate_messages_blocking(
        &self,
        messages: &[&[u8]],
        concurrency: usize,
    ) -> Vec<Result<Outcome, Error>> {
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<Outcome, Error>>>> =
            Mutex::new((0..messages.len()).map(|_| None).collect());
        std::thread::scope(|s| {
            for _ in 0..concurrency.clamp(1, messages.len().max(1)) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(m) = messages.get(i) else { break };
                        let r = self.rotate_message_blocking(m);
                        lock(&results)[i] = Some(r);
                    }
                });
            }
        });
        results
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .map(|r| r.unwrap_or(Err(Error::Internal("a rotation worker stopped"))))
            .collect()
    }

    /// Rotates one file in place, crash-safely (see the [module docs](self)).
    ///
    /// The file is opened once, without following a symbolic link at `path` (refused), and
    /// everything is read from that descriptor and its metadata: the new file gets the same
    /// owner and group (`fchown`; when this user cannot give it them, rotation refuses instead
    /// of changing who owns the file), the same permission bits without setuid, setgid or
    /// sticky, and replaces the original only if `path` still names the file that was read.
    /// A dry run changes nothing on disk (not even a stale temporary file).
    pub async fn rotate_file(&self, path: &Path) -> Result<Outcome<()>, Error> {
        let temp = temp_path(path)?;
        let mut original = open_no_follow(path)?;
        let meta = original.metadata()?;
        if !meta.is_file() {
            return Err(Error::InvalidArgument("only regular files can be rotated"));
        }
        if let Some(age) = self.older_than {
            let modified = meta.modified()?;
            if SystemTime::now()
                .duration_since(modified)
                .is_ok_and(|d| d < age)
            {
                return Ok(Outcome::Skipped(Skip::TooRecent));
            }
        }
        // Classify without consuming: peek the header, then rotate from the start.
        let header = {
            let mut input = BufReader::with_capacity(64 << 10, &original);
            match self.open_with.read_header(&mut input) {
                Ok(h) => h,
                Err(Error::NotKmseal) => return Ok(Outcome::Skipped(Skip::NotKmseal)),
                Err(e) => return Err(e),
            }
        };
        if let Some(outcome) = self.decide(&header) {
            return Ok(outcome);
        }
        // A temporary file left by an interrupted run is never the real message: remove it
        // (unlink removes a link planted there, never its target).
        match fs::remove_file(&temp) {
            Ok(()) => tracing::info!(path = %temp.display(), "removed a stale rotation file"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        io::Seek::seek(&mut original, io::SeekFrom::Start(0))?;
        let result = self
            .write_verify_replace(path, &temp, original, &meta)
            .await;
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result.map(|()| Outcome::Rotated(()))
    }

    async fn write_verify_replace(
        &self,
        path: &Path,
        temp: &Path,
        original: File,
        meta: &fs::Metadata,
    ) -> Result<(), Error> {
        let file = create_temp(temp, meta)?;
        self.step(path, Step::TempCreated);
        let input = BufReader::with_capacity(256 << 10, original);
        let out = BufWriter::with_capacity(256 << 10, file);
        let file = match self.rotate_stream(input, out).await? {
            Outcome::Rotated(w) => w.into_inner().map_err(|e| e.into_error())?,
            _ => {
                return Err(Error::FileChanged {
                    path: path.to_path_buf(),
                    what: "changed during rotation",
                });
            }
        };
        self.step(path, Step::Written);
        file.sync_all()?;
        drop(file);
        self.step(path, Step::Synced);
        self.verify(temp).await?;
        self.step(path, Step::Verified);
        // Replace only the file that was read: not one swapped in at `path` meanwhile.
        let now = fs::symlink_metadata(path)?;
        if (now.dev(), now.ino()) != (meta.dev(), meta.ino()) {
            return Err(Error::FileChanged {
                path: path.to_path_buf(),
                what: "was replaced during rotation",
            });
        }
        fs::rename(temp, path)?;
        self.step(path, Step::Renamed);
        if let Some(dir) = path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            File::open(dir)?.sync_all()?;
        }
        self.step(path, Step::DirSynced);
        Ok(())
    }

    /// Decrypts `temp` completely with the first target KEK.
    async fn verify(&self, temp: &Path) -> Result<(), Error> {
        let mut reader = self
            .verifier()?
            .reader(BufReader::with_capacity(256 << 10, File::open(temp)?))
            .await?;
        copy_locked_with(&mut reader, &mut io::sink(), ROTATE_CHUNK)?;
        Ok(())
    }

    /// Blocking form of [`rotate_file`](Self::rotate_file).
    pub fn rotate_file_blocking(&self, path: &Path) -> Result<Outcome<()>, Error> {
        crate::blocking::block_on(self.rotate_file(path))
    }

    /// Rotates every regular file under `root` (symbolic links are not followed) on at most
    /// `concurrency` threads, so the KMS sees at most that many calls at once. `progress` is
    /// called once per file with its result.
    pub fn rotate_tree_blocking(
        &self,
        root: &Path,
        concurrency: usize,
        progress: impl Fn(&Path, &Result<Outcome<()>, Error>) + Sync,
    ) -> Result<Summary, Error> {
        let mut files = Vec::new();
        walk(root, &mut files)?;
        files.sort();
        let next = AtomicUsize::new(0);
        let summary = Mutex::new(Summary::default());
        std::thread::scope(|s| {
            for _ in 0..concurrency.clamp(1, files.len().max(1)) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = files.get(i) else { break };
                        let result = self.rotate_file_blocking(path);
                        progress(path, &result);
                        let mut sum = lock(&summary);
                        match result {
                            Ok(Outcome::Rotated(()) | Outcome::WouldRotate) => {
                                sum.rotated.push(path.clone())
                            }
                            Ok(Outcome::Skipped(Skip::AlreadyCurrent)) => {
                                sum.already_current.push(path.clone())
                            }
                            Ok(Outcome::Skipped(skip)) => sum.skipped.push((path.clone(), skip)),
                            Err(e) => sum.failed.push((path.clone(), e)),
                        }
                    }
                });
            }
        });
        let mut summary = summary.into_inner().unwrap_or_else(|p| p.into_inner());
        summary.rotated.sort();
        summary.already_current.sort();
        summary.skipped.sort_by(|a, b| a.0.cmp(&b.0));
        summary.failed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(summary)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Rotation copies plaintext through a locked buffer of this size per file in flight (small:
/// several files rotate at once, and `LockPolicy::Strict` counts every locked byte).
const ROTATE_CHUNK: usize = 64 << 10;

fn is_temp(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') && n.ends_with(TEMP_SUFFIX))
}

/// `DIR/.NAME.kmseal-rotate`: same directory, so the rename is atomic.
fn temp_path(path: &Path) -> Result<PathBuf, Error> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::InvalidArgument("a file to rotate needs a UTF-8 name"))?;
    Ok(path.with_file_name(format!(".{name}{TEMP_SUFFIX}")))
}

/// Opens `path` for reading without following a symbolic link there, and without blocking
/// on a FIFO.
fn open_no_follow(path: &Path) -> Result<File, Error> {
    crate::private_file::open_no_follow(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            Error::InvalidArgument("a symbolic link is not rotated; rotate the file it names")
        } else {
            e.into()
        }
    })
}

/// The temporary file: created exclusively (never through a link), owned like the original
/// and with its permission bits, minus setuid, setgid and sticky.
fn create_temp(temp: &Path, meta: &fs::Metadata) -> Result<File, Error> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mode = meta.permissions().mode() & 0o777;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o600)
        .open(temp)?;
    if let Err(e) = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid())) {
        drop(file);
        let _ = fs::remove_file(temp);
        tracing::warn!(error = %e, uid = meta.uid(), gid = meta.gid(), "cannot keep the owner");
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "cannot give the rotated file the original's owner and group (rotate as that user, \
             or as root); left alone",
        )));
    }
    // Same permissions as the original (set explicitly: the umask applied at creation).
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    Ok(file)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let meta = fs::symlink_metadata(dir)?;
    if meta.is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&path, out)?;
        } else if kind.is_file() && !is_temp(&path) {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_stay_in_the_directory_and_are_recognised() {
        let t = temp_path(Path::new("/data/app/secret.kmseal")).unwrap();
        assert_eq!(t, Path::new("/data/app/.secret.kmseal.kmseal-rotate"));
        assert!(is_temp(&t));
        assert!(!is_temp(Path::new("/data/app/secret.kmseal")));
    }
}
