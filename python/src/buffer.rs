//! The buffer protocol for `SecretBytes`: `memoryview(secret)` reads the locked memory in
//! place, read-only, without a copy.
//!
//! This is the binding's only `unsafe`: PyO3 declares `__getbuffer__`/`__releasebuffer__`
//! `unsafe fn`, because CPython hands them a raw `Py_buffer` to fill. The buffer protocol is
//! in the stable ABI only from CPython 3.11, so a wheel built for an older minimum has no
//! buffer protocol ([`AVAILABLE`] is false and `memoryview(secret)` raises `TypeError`).
//!
//! Invariants that make the pointer handed out valid for the life of every view:
//! * the view holds a strong reference to the `SecretBytes` (`view.obj`), so the object (and
//!   the `kmseal::SecretBytes` it owns) lives until the view is released;
//! * while `exports > 0`, nothing moves, resizes or frees the buffer: `wipe()` only zeroizes
//!   it in place (`Held::settle` in `secret.rs` frees it only at `exports == 0`, in a forked
//!   child too), and `Held::secret` is never replaced;
//! * the pages are kmseal's own mapping (`src/secret/sys.rs`), which stays mapped until the
//!   `kmseal::SecretBytes` drops.
#![allow(unsafe_code)]

/// Whether this build has the buffer protocol (CPython >= 3.11 stable ABI, or a
/// version-specific build).
pub(crate) const AVAILABLE: bool = cfg!(any(not(Py_LIMITED_API), Py_3_11));

#[cfg(any(not(Py_LIMITED_API), Py_3_11))]
mod protocol {
    use std::ffi::{c_int, c_void};

    use pyo3::exceptions::PyBufferError;
    use pyo3::ffi;
    use pyo3::prelude::*;

    use crate::secret::PySecretBytes;

    /// The `struct` format of one unsigned byte, for consumers that ask (`PyBUF_FORMAT`).
    static FORMAT_B: &std::ffi::CStr = c"B";

    #[pymethods]
    impl PySecretBytes {
        /// # Safety
        /// CPython calls this with `view` pointing to a `Py_buffer` it owns, to be filled.
        unsafe fn __getbuffer__(
            slf: Bound<'_, Self>,
            view: *mut ffi::Py_buffer,
            flags: c_int,
        ) -> PyResult<()> {
            if view.is_null() {
                return Err(PyBufferError::new_err("no Py_buffer to fill"));
            }
            if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
                return Err(PyBufferError::new_err(
                    "a secret is read-only; copy it into a SecretBytes of your own to change it",
                ));
            }
            let this = slf.get();
            // The exception, if any, is built after the lock is released (secret.rs, `Held`).
            let exported = {
                let mut held = this.lock();
                let found = held.readable(this.origin).map(|secret| {
                    let bytes = secret.expose_secret();
                    (bytes.as_ptr(), bytes.len())
                });
                match found {
                    Ok((ptr, len)) => match isize::try_from(len) {
                        Ok(len) => {
                            held.exports += 1;
                            Ok((ptr, len))
                        }
                        Err(_) => Err(None),
                    },
                    Err(refusal) => Err(Some(refusal)),
                }
            };
            let (ptr, len) = exported.map_err(|refusal| match refusal {
                Some(r) => r.into_py(this.origin),
                None => PyBufferError::new_err("secret too large for a buffer"),
            })?;
            // SAFETY: `view` is non-null and points to the Py_buffer CPython passed for us to
            // fill (the protocol's contract). `ptr..ptr+len` is the locked buffer of `this`,
            // which stays allocated, unmoved and unfreed while `exports > 0` (module docs);
            // `obj` takes a new strong reference (`into_ptr`), released by CPython with the
            // view, so `this` outlives it. `shape` and `strides` point into the view itself,
            // as CPython's own `PyBuffer_FillInfo` does; `format` is a static C string that
            // is never written or freed.
            unsafe {
                (*view).obj = slf.into_any().into_ptr();
                (*view).buf = ptr.cast_mut().cast::<c_void>();
                (*view).len = len;
                (*view).readonly = 1;
                (*view).itemsize = 1;
                (*view).format = if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT {
                    FORMAT_B.as_ptr().cast_mut()
                } else {
                    std::ptr::null_mut()
                };
                (*view).ndim = 1;
                (*view).shape = if flags & ffi::PyBUF_ND == ffi::PyBUF_ND {
                    &raw mut (*view).len
                } else {
                    std::ptr::null_mut()
                };
                (*view).strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
                    &raw mut (*view).itemsize
                } else {
                    std::ptr::null_mut()
                };
                (*view).suboffsets = std::ptr::null_mut();
                (*view).internal = std::ptr::null_mut();
            }
            Ok(())
        }

        /// # Safety
        /// CPython calls this once per successful `__getbuffer__`, with the same view.
        unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
            let mut held = self.lock();
            held.exports = held.exports.saturating_sub(1);
            // The last view of a wiped secret: now the buffer may go.
            held.settle();
        }
    }
}
