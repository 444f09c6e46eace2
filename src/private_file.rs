//! Reading a file that holds a secret (a local key file, a `file://` secret reference) with the
//! checks ssh's `StrictModes` makes of a private key, into locked memory.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::secret::SecretBytes;

/// Why a private file was not read.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The path does not exist.
    Missing(String),
    /// The file exists but fails a check (link, type, owner, mode, directory), or cannot be
    /// read.
    Unsafe(String),
    /// The file is larger than the caller's limit.
    TooLarge(String),
}

impl Refusal {
    pub(crate) fn reason(self) -> String {
        match self {
            Refusal::Missing(r) | Refusal::Unsafe(r) | Refusal::TooLarge(r) => r,
        }
    }
}

/// Reads `path` into locked memory after checking that:
///
/// * the path itself is not a symbolic link (opened with `O_NOFOLLOW`) and is a regular
///   file (opened with `O_NONBLOCK` and checked on the open descriptor, so a FIFO planted
///   at the path is refused instead of hanging the process);
/// * it is owned by the effective user (or root), not accessible by group or others;
/// * its directory is owned by the effective user or root and not writable by group or
///   others (where someone else could replace the file);
/// * it holds at most `limit` bytes.
///
/// Every refusal says how to fix it (`missing_hint` is appended when the file is absent).
pub(crate) fn read_private(
    path: &Path,
    limit: u64,
    missing_hint: &str,
) -> Result<SecretBytes, Refusal> {
    let unsafe_ = |r: String| Refusal::Unsafe(r);
    let mut file = open_no_follow(path).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => unsafe_(
            "is a symbolic link; point at the file itself (a link could be redirected by \
             whoever controls its target)"
                .into(),
        ),
        Some(libc::ENOENT) => Refusal::Missing(format!("does not exist; {missing_hint}")),
        _ => unsafe_(format!("cannot open: {e}")),
    })?;
    let meta = file
        .metadata()
        .map_err(|e| unsafe_(format!("cannot stat: {e}")))?;
    if !meta.is_file() {
        return Err(unsafe_("is not a regular file".into()));
    }
    let me = crate::secret::effective_uid();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(unsafe_(format!(
            "is owned by uid {}, not by this user (uid {me}) or root; run `chown {me} {}` if \
             this file is really yours",
            meta.uid(),
            path.display()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(unsafe_(format!(
            "is accessible by group or others (mode {:03o}); run `chmod 600 {}`",
            meta.mode() & 0o777,
            path.display()
        )));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dmeta = std::fs::metadata(dir)
        .map_err(|e| unsafe_(format!("cannot stat its directory {}: {e}", dir.display())))?;
    if dmeta.uid() != me && dmeta.uid() != 0 {
        return Err(unsafe_(format!(
            "is in {}, which is owned by uid {}, not by this user or root: whoever owns it can \
             replace the file; move it to a directory of your own",
            dir.display(),
            dmeta.uid()
        )));
    }
    if dmeta.mode() & 0o022 != 0 {
        return Err(unsafe_(format!(
            "is in {}, which group or others can write (mode {:03o}): they could replace the \
             file; run `chmod go-w {}` or move the file",
            dir.display(),
            dmeta.mode() & 0o777,
            dir.display()
        )));
    }
    if meta.len() > limit {
        return Err(Refusal::TooLarge(format!(
            "is {} bytes, over the limit of {limit}",
            meta.len()
        )));
    }
    // Read straight into locked memory: `io::copy` would pass every byte through an 8 KiB
    // buffer on the stack that nobody wipes. One byte of room beyond the size tells a file
    // that grew after the size check.
    let len = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    let limit_len = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut out = SecretBytes::zeroed(len.min(limit_len).saturating_add(1))
        .map_err(|e| unsafe_(format!("cannot allocate secret memory: {e}")))?;
    let mut filled = 0;
    loop {
        let buf = &mut out.expose_secret_mut()[filled..];
        if buf.is_empty() {
            return Err(Refusal::TooLarge(format!(
                "grew while being read (past the {len} bytes it had)"
            )));
        }
        match file.read(buf) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(unsafe_(format!("cannot read: {e}"))),
        }
    }
    out.truncate(filled);
    Ok(out)
}

/// Opens `path` for reading without following a symbolic link at it (`ELOOP` if it is one)
/// and without blocking on a FIFO: what the caller checks next is the open descriptor's
/// metadata, so nothing can be swapped in between. Used for private files and rotation.
pub(crate) fn open_no_follow(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}
