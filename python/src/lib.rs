//! `kmseal._native`: the Python bindings of kmseal (the `kmseal` package re-exports it).
//!
//! The same core as the Rust crate and the CLI: key URIs resolve through `kmseal-keys`,
//! messages and sealed documents are the same bytes, and decrypted values stay in kmseal's
//! locked, zeroize-on-drop memory (`SecretBytes`, `secret.rs`) until the caller copies them
//! out. Every call that does cryptography or talks to a KMS releases the GIL.
//!
//! Fork safety (SECURITY.md, "Fork"): every object records the process that made it, and
//! every method refuses to run in another process (`kmseal.ForkError`) instead of using
//! keys that read as zeros there or clients whose threads stayed in the parent.
#![deny(unsafe_code)]

mod buffer;
mod config;
mod envelope;
mod errors;
mod input;
mod secret;
mod streams;

use pyo3::prelude::*;

/// The process (fork generation) an object was made in; its methods refuse to run in any
/// other. A generation, not a pid: a pid can come back in a grandchild, a generation cannot.
#[derive(Clone, Copy)]
pub(crate) struct Origin(u64);

impl Origin {
    pub(crate) fn here() -> Origin {
        Origin(kmseal::secret::fork_generation())
    }

    /// Whether this is the process that made the object.
    pub(crate) fn is_current(self) -> bool {
        self.0 == kmseal::secret::fork_generation()
    }

    /// `ForkError` when called in a process other than the one that made the object.
    pub(crate) fn check(self, what: &str) -> PyResult<()> {
        if self.is_current() {
            Ok(())
        } else {
            Err(errors::fork_error(format!(
                "this {what} was created before fork() and cannot be used in the child process \
                 (its keys read as zeros there); create it after forking (gunicorn: post_fork; \
                 multiprocessing: in the worker, or use the spawn start method)"
            )))
        }
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    secret::register(m)?;
    envelope::register(m)?;
    config::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("BUFFER_PROTOCOL", buffer::AVAILABLE)?;
    Ok(())
}
