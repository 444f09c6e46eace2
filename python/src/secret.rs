//! `SecretBytes` and `SecretString`: Python handles on kmseal's locked, zeroize-on-drop memory.
//!
//! The value never enters Python's heap unless the caller asks (`expose_secret()`, or copying
//! a `memoryview`): reading is through the buffer protocol (`memoryview(s)`, read-only, no
//! copy; `buffer.rs`), comparison is constant-time, and `repr`/`str` never show it. `wipe()`
//! (or leaving a `with` block) zeroizes it at once; a `memoryview` still open then reads
//! zeros, and the memory is unmapped when the last view is released.

use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyModule, PyString};
use subtle::ConstantTimeEq;

use crate::Origin;
use crate::errors::{to_py, wiped_error};

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySecretBytes>()?;
    m.add_class::<PySecretString>()?;
    Ok(())
}

/// What a `SecretBytes` holds: the locked buffer (gone once wiped and no view is open) and
/// how many buffer-protocol views are open on it. The buffer is shared (`Arc`) with calls
/// running without the GIL, so the lock is never held across one (a thread waiting for it
/// would hold the GIL the call needs back).
pub(crate) struct Held {
    pub(crate) secret: Option<Arc<kmseal::SecretBytes>>,
    pub(crate) exports: usize,
    pub(crate) wiped: bool,
}

/// Bytes in locked memory, zeroized on `wipe()`, on leaving a `with` block, and when
/// collected. Read through `memoryview(secret)` (no copy) or `expose_secret()` (a copy in
/// Python's heap, which you then own).
#[pyclass(module = "kmseal", name = "SecretBytes", frozen, subclass)]
pub(crate) struct PySecretBytes {
    pub(crate) held: Mutex<Held>,
    pub(crate) origin: Origin,
}

impl PySecretBytes {
    pub(crate) fn new(secret: kmseal::SecretBytes) -> PySecretBytes {
        PySecretBytes {
            held: Mutex::new(Held {
                secret: Some(Arc::new(secret)),
                exports: 0,
                wiped: false,
            }),
            origin: Origin::here(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Held> {
        // A panic while holding the lock leaves nothing half-written that matters here.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The held buffer, for reading: refuses in a forked child and after `wipe()`.
    pub(crate) fn readable<'g>(
        &self,
        held: &'g MutexGuard<'_, Held>,
        what: &str,
    ) -> PyResult<&'g Arc<kmseal::SecretBytes>> {
        self.origin.check(what)?;
        match &held.secret {
            Some(s) if !held.wiped => {
                s.check_process().map_err(to_py)?;
                Ok(s)
            }
            _ => Err(wiped_error(what)),
        }
    }

    /// Runs `f` on the secret bytes (for callers that pass them to the core).
    pub(crate) fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
        let held = self.lock();
        let s = self.readable(&held, "secret")?;
        Ok(f(s.expose_secret()))
    }

    /// The buffer, shared, for a call that runs without the GIL.
    pub(crate) fn share(&self) -> PyResult<Arc<kmseal::SecretBytes>> {
        let held = self.lock();
        Ok(Arc::clone(self.readable(&held, "secret")?))
    }

    fn wipe_now(&self) {
        let mut held = self.lock();
        if held.origin_mismatch(self.origin) {
            // In a forked child the pages already read as zeros; dropping is all there is.
            held.secret = None;
            held.wiped = true;
            return;
        }
        // Zeroize in place now, unless a call running without the GIL still reads it (it
        // is zeroized when that call drops its share).
        if let Some(s) = held.secret.as_mut().and_then(Arc::get_mut) {
            zeroize::Zeroize::zeroize(s.expose_secret_mut());
        }
        if held.exports == 0 {
            // No view is open: free it now (views unmap it when the last one is released).
            held.secret = None;
        }
        held.wiped = true;
    }

    fn len_now(&self) -> usize {
        let held = self.lock();
        match &held.secret {
            Some(s) if !held.wiped => s.len(),
            _ => 0,
        }
    }

    fn describe(&self, class: &str) -> String {
        let held = self.lock();
        if held.origin_mismatch(self.origin) {
            return format!("{class}(<made before fork(); unusable here>)");
        }
        match &held.secret {
            Some(s) if !held.wiped => format!("{class}(<redacted>, {} bytes)", s.len()),
            _ => format!("{class}(<wiped>)"),
        }
    }
}

impl Held {
    fn origin_mismatch(&self, origin: Origin) -> bool {
        origin.check("secret").is_err()
    }
}

#[pymethods]
impl PySecretBytes {
    /// Copies `data` (bytes-like) into locked memory. Your own copy stays yours to wipe; prefer
    /// values that arrive as `SecretBytes` (from `decrypt`, `get_secret`, `generate`).
    #[new]
    fn py_new(data: &Bound<'_, PyAny>) -> PyResult<PySecretBytes> {
        let secret = crate::input::locked_copy(data)?;
        Ok(PySecretBytes::new(secret))
    }

    /// `n` bytes from the operating system's CSPRNG, generated straight into locked memory.
    #[staticmethod]
    fn random(n: usize) -> PyResult<PySecretBytes> {
        Ok(PySecretBytes::new(
            kmseal::SecretBytes::random(n).map_err(to_py)?,
        ))
    }

    /// Zeroizes the value now. Later reads raise `WipedError`; a `memoryview` still open
    /// reads zeros. Idempotent.
    fn wipe(&self) {
        self.wipe_now();
    }

    /// Whether `wipe()` ran.
    #[getter]
    fn wiped(&self) -> bool {
        self.lock().wiped
    }

    /// Whether the memory is locked in RAM (`mlock`); `False` when the memlock limit was
    /// exhausted and the process policy is best effort.
    #[getter]
    fn locked(&self) -> PyResult<bool> {
        let held = self.lock();
        Ok(self.readable(&held, "secret")?.is_locked())
    }

    /// A copy of the value as `bytes`, in Python's garbage-collected heap: it is not locked
    /// and never wiped. Prefer `memoryview(secret)`.
    fn expose_secret<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let held = self.lock();
        let s = self.readable(&held, "secret")?;
        Ok(PyBytes::new(py, s.expose_secret()))
    }

    /// The value as a `SecretString` (a new locked copy), or `ValueError` when it is not
    /// UTF-8 (the error never shows the bytes).
    fn decode(&self) -> PyResult<PySecretStringInit> {
        let copy = {
            let held = self.lock();
            self.readable(&held, "secret")?.try_clone().map_err(to_py)?
        };
        let text = kmseal::SecretString::try_from_bytes(copy)
            .map_err(|_| pyo3::exceptions::PyValueError::new_err("the secret is not UTF-8 text"))?;
        Ok(PySecretStringInit(text.into_bytes()))
    }

    fn __len__(&self) -> usize {
        self.len_now()
    }

    fn __bool__(&self) -> bool {
        self.len_now() > 0
    }

    fn __repr__(&self) -> String {
        self.describe("SecretBytes")
    }

    fn __str__(&self) -> String {
        self.describe("SecretBytes")
    }

    /// Constant-time equality with another secret or a bytes-like object (the lengths are
    /// compared first).
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        if let Ok(other) = other.cast::<PySecretBytes>() {
            let other = other.get();
            if std::ptr::eq(self, other) {
                return Ok(true);
            }
            let theirs = other.with_bytes(kmseal::SecretBytes::from_slice)?;
            let theirs = theirs.map_err(to_py)?;
            return self.with_bytes(|mine| ct_eq(mine, theirs.expose_secret()));
        }
        if other.is_instance_of::<PyString>() {
            return Ok(false);
        }
        let theirs = crate::input::locked_copy(other)?;
        self.with_bytes(|mine| ct_eq(mine, theirs.expose_secret()))
    }

    fn __ne__(&self, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(!self.__eq__(other)?)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Wipes on leaving the `with` block, whatever happened in it.
    fn __exit__(
        &self,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> bool {
        self.wipe_now();
        false
    }

    fn __reduce__(&self) -> PyResult<()> {
        Err(PyTypeError::new_err(
            "secrets cannot be pickled (that would copy them out of locked memory); \
             send the sealed message instead",
        ))
    }

    fn __reduce_ex__(&self, _protocol: &Bound<'_, PyAny>) -> PyResult<()> {
        self.__reduce__()
    }

    fn __copy__(&self) -> PyResult<()> {
        self.__reduce__()
    }

    fn __deepcopy__(&self, _memo: &Bound<'_, PyAny>) -> PyResult<()> {
        self.__reduce__()
    }
}

/// Builds a `SecretString` object (its base holds the bytes).
pub(crate) struct PySecretStringInit(pub(crate) kmseal::SecretBytes);

impl<'py> IntoPyObject<'py> for PySecretStringInit {
    type Target = PySecretString;
    type Output = Bound<'py, PySecretString>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        Bound::new(
            py,
            PyClassInitializer::from(PySecretBytes::new(self.0)).add_subclass(PySecretString),
        )
    }
}

/// UTF-8 text in locked memory: a `SecretBytes` whose `expose_secret()` returns `str`.
/// `len()` counts characters, as for `str`; `memoryview` gives the UTF-8 bytes.
#[pyclass(module = "kmseal", name = "SecretString", frozen, extends = PySecretBytes)]
pub(crate) struct PySecretString;

#[pymethods]
impl PySecretString {
    /// Copies `text` into locked memory (your `str` stays in Python's heap; prefer values that
    /// arrive as `SecretString`).
    #[new]
    fn py_new(text: &Bound<'_, PyString>) -> PyResult<PyClassInitializer<PySecretString>> {
        let secret = kmseal::SecretBytes::from_slice(text.to_cow()?.as_bytes()).map_err(to_py)?;
        Ok(PyClassInitializer::from(PySecretBytes::new(secret)).add_subclass(PySecretString))
    }

    /// A new random secret from the OS CSPRNG, in locked memory: `ALPHABET[:LENGTH]` with
    /// alphabet `base64`, `base64url`, `hex` (LENGTH random bytes) or `alnum` (LENGTH
    /// characters); default `base64:32`.
    #[staticmethod]
    #[pyo3(signature = (spec = "base64:32"))]
    fn generate(spec: &str) -> PyResult<PySecretStringInit> {
        let spec: kmseal::secret::GenerateSpec = spec.parse().map_err(to_py)?;
        let value = spec.generate().map_err(to_py)?;
        Ok(PySecretStringInit(value.into_bytes()))
    }

    /// A copy of the value as `str`, in Python's heap: not locked, never wiped.
    fn expose_secret<'py>(slf: PyRef<'_, Self>, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        let base = slf.as_super();
        let held = base.lock();
        let s = base.readable(&held, "secret")?;
        let text = std::str::from_utf8(s.expose_secret())
            .map_err(|_| crate::errors::invalid_argument("not UTF-8".into()))?;
        Ok(PyString::new(py, text))
    }

    fn __len__(slf: PyRef<'_, Self>) -> usize {
        let base = slf.as_super();
        let held = base.lock();
        match &held.secret {
            Some(s) if !held.wiped && base.origin.check("secret").is_ok() => {
                std::str::from_utf8(s.expose_secret()).map_or(0, |t| t.chars().count())
            }
            _ => 0,
        }
    }

    fn __repr__(slf: PyRef<'_, Self>) -> String {
        slf.as_super().describe("SecretString")
    }

    fn __str__(slf: PyRef<'_, Self>) -> String {
        slf.as_super().describe("SecretString")
    }
}

/// Constant time in the contents (`subtle`; unequal lengths return at once).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}
