//! Plaintext and ciphertext arguments: `bytes` is read in place, a `SecretBytes` is shared
//! (never copied out of locked memory), and any other bytes-like object (`bytearray`,
//! `memoryview`, `array`) is copied once into locked memory.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyString};

use crate::errors::to_py;
use crate::secret::{PySecretBytes, Share};

/// Up to this many bytes, a call that cannot wait on a KMS (local keys, or a sealing step)
/// keeps the GIL: it takes a few microseconds, about what releasing and re-taking the GIL
/// costs (BENCHMARKS.md, "Python").
pub(crate) const SMALL: usize = 16 << 10;

/// Bytes to hand to the core, in a form that can cross into a call without the GIL.
pub(crate) enum Data<'py> {
    Bytes(Bound<'py, PyBytes>),
    Shared(Share),
    Locked(kmseal::SecretBytes),
}

impl Data<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Data::Bytes(b) => b.as_bytes().len(),
            Data::Shared(s) => s.secret().len(),
            Data::Locked(s) => s.len(),
        }
    }

    /// Runs `f` on the bytes with the GIL released, unless the call is small enough that
    /// releasing and taking back the GIL would cost more than it lets other threads do
    /// ([`SMALL`]; the caller says whether `f` can wait on a KMS).
    pub(crate) fn run<R: Send>(
        &self,
        py: Python<'_>,
        may_block: bool,
        f: impl FnOnce(&[u8]) -> R + Send,
    ) -> R {
        if !may_block && self.len() <= SMALL {
            return match self {
                Data::Bytes(b) => f(b.as_bytes()),
                Data::Shared(s) => f(s.secret().expose_secret()),
                Data::Locked(s) => f(s.expose_secret()),
            };
        }
        match self {
            Data::Bytes(b) => {
                // `bytes` is immutable and `b` keeps it alive for the call.
                let slice = b.as_bytes();
                py.detach(|| f(slice))
            }
            Data::Shared(s) => {
                let slice = s.secret().expose_secret();
                py.detach(|| f(slice))
            }
            Data::Locked(s) => py.detach(|| f(s.expose_secret())),
        }
    }
}

/// Reads a bytes-like argument. `str` is refused: say which encoding by passing bytes.
pub(crate) fn data<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Data<'py>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Data::Bytes(b.clone()));
    }
    if let Ok(s) = obj.cast::<PySecretBytes>() {
        return Ok(Data::Shared(PySecretBytes::share(s)?));
    }
    Ok(Data::Locked(locked_copy(obj)?))
}

/// A copy of a bytes-like argument in locked memory (`SecretBytes` arguments are copied from
/// their own locked memory).
pub(crate) fn locked_copy(obj: &Bound<'_, PyAny>) -> PyResult<kmseal::SecretBytes> {
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "expected bytes-like data, got str; encode it (text.encode()) or use SecretString",
        ));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return kmseal::SecretBytes::from_slice(b.as_bytes()).map_err(to_py);
    }
    if let Ok(s) = obj.cast::<PySecretBytes>() {
        return kmseal::SecretBytes::from_slice(PySecretBytes::share(s)?.secret().expose_secret())
            .map_err(to_py);
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        // Copied while the GIL is held, so no other thread resizes it meanwhile.
        return kmseal::SecretBytes::from_vec_zeroizing(b.to_vec()).map_err(to_py);
    }
    copy_buffer(obj)
}

#[cfg(any(not(Py_LIMITED_API), Py_3_11))]
fn copy_buffer(obj: &Bound<'_, PyAny>) -> PyResult<kmseal::SecretBytes> {
    let buffer = pyo3::buffer::PyBuffer::<u8>::get(obj).map_err(|_| {
        PyTypeError::new_err(format!(
            "expected bytes-like data, got {}",
            obj.get_type()
                .name()
                .map_or_else(|_| "?".into(), |n| n.to_string())
        ))
    })?;
    let mut out = kmseal::SecretBytes::zeroed(buffer.item_count()).map_err(to_py)?;
    buffer.copy_to_slice(obj.py(), out.expose_secret_mut())?;
    Ok(out)
}

#[cfg(not(any(not(Py_LIMITED_API), Py_3_11)))]
fn copy_buffer(obj: &Bound<'_, PyAny>) -> PyResult<kmseal::SecretBytes> {
    // No buffer API in the stable ABI before 3.11: go through `bytes(obj)` (a transient copy
    // in Python's heap).
    let bytes = obj
        .py()
        .get_type::<PyBytes>()
        .call1((obj,))?
        .cast_into::<PyBytes>()?;
    kmseal::SecretBytes::from_slice(bytes.as_bytes()).map_err(to_py)
}
