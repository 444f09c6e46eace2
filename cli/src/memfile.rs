//! Files that never touch a disk: a secret (or a whole rendered config file) handed to a
//! child process as an anonymous memory file (`memfd_create`), sealed against any change, at
//! `/proc/self/fd/N` (`kmseal exec --file`, `--template`).

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};

use rustix::fs::{MemfdFlags, SealFlags};

use crate::{Failure, usage};

/// A sealed memory file a child inherits (the descriptor is not close-on-exec).
pub(crate) struct MemFile {
    fd: OwnedFd,
}

impl MemFile {
    /// An anonymous file named `kmseal:NAME` holding `content`, sealed so that nobody
    /// (the child included) can write, grow or shrink it, or lift the seals.
    pub(crate) fn new(name: &str, content: &[u8]) -> Result<MemFile, Failure> {
        let fail = |what: &str, e: rustix::io::Errno| Failure {
            code: crate::exit::OTHER,
            message: format!("cannot {what} the memory file for {name}: {e}"),
        };
        // No MFD_CLOEXEC: the command inherits it across exec.
        let fd = rustix::fs::memfd_create(format!("kmseal:{name}"), MemfdFlags::ALLOW_SEALING)
            .map_err(|e| fail("create", e))?;
        let mut file = std::fs::File::from(fd);
        file.write_all(content).map_err(|e| Failure {
            code: crate::exit::OTHER,
            message: format!("cannot fill the memory file for {name}: {e}"),
        })?;
        let fd = OwnedFd::from(file);
        rustix::fs::fcntl_add_seals(
            &fd,
            SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
        )
        .map_err(|e| fail("seal", e))?;
        // Read from the start by whoever opens /proc/self/fd/N (a new open file description),
        // and by a program that reads the inherited descriptor itself.
        rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(0)).map_err(|e| fail("rewind", e))?;
        Ok(MemFile { fd })
    }

    /// Where the command finds it.
    pub(crate) fn path(&self) -> String {
        format!("/proc/self/fd/{}", self.fd.as_raw_fd())
    }
}

/// `NAME=SOURCE` from `--file`: an environment name and a document path or a reference
/// (anything with `://`). Errors never repeat the argument (it may be a value pasted in the
/// wrong place).
pub(crate) fn parse_file_arg(arg: &str, which: usize) -> Result<(String, String), Failure> {
    let (name, source) = arg.split_once('=').ok_or_else(|| {
        usage(format!(
            "--file argument {which} is not NAME=PATH or NAME=REFERENCE (not shown, in case it is a value)"
        ))
    })?;
    if !kmseal_config::is_env_name(name) || source.is_empty() {
        return Err(usage(format!(
            "--file argument {which}: NAME is letters, digits and `_`, then `=` and a document path or reference"
        )));
    }
    Ok((name.to_owned(), source.to_owned()))
}
