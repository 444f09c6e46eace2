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
/// how many buffer-protocol views are open on it.
///
/// Lock discipline: the lock is held only for plain Rust work. Never across a call without
/// the GIL (the buffer is shared as an `Arc` with such calls instead), and never while
/// Python code can run (building an exception, an object, a collection): a thread that runs
/// Python code may hand the GIL to one that then waits for this lock while holding it.
pub(crate) struct Held {
    pub(crate) secret: Option<Arc<kmseal::SecretBytes>>,
    pub(crate) exports: usize,
    pub(crate) wiped: bool,
}

/// Why a secret cannot be read (turned into an exception once the lock is released).
pub(crate) enum Refusal {
    Wiped,
    Forked,
}

impl Refusal {
    pub(crate) fn into_py(self, origin: Origin) -> PyErr {
        match self {
            Refusal::Wiped => wiped_error("secret"),
            Refusal::Forked => origin
                .check("secret")
                .err()
                .unwrap_or_else(|| to_py(kmseal::Error::ForkedSecret)),
        }
    }
}

impl Held {
    /// The buffer, if it may be read here (not wiped, not inherited across a fork).
    pub(crate) fn readable(&self, origin: Origin) -> Result<&Arc<kmseal::SecretBytes>, Refusal> {
        if !origin.is_current() {
            return Err(Refusal::Forked);
        }
        match &self.secret {
            Some(s) if !self.wiped => {
                if s.check_process().is_err() {
                    return Err(Refusal::Forked);
                }
                Ok(s)
            }
            _ => Err(Refusal::Wiped),
        }
    }

    /// After `wipe()`: zeroize the buffer if nobody else holds it now, and free it if no view
    /// is open. Never touches memory inherited across a fork (it reads as zeros there, and
    /// exposing it would abort).
    pub(crate) fn settle(&mut self) {
        if !self.wiped {
            return;
        }
        if let Some(s) = self.secret.as_mut().and_then(Arc::get_mut)
            && s.check_process().is_ok()
        {
            zeroize::Zeroize::zeroize(s.expose_secret_mut());
        }
        if self.exports == 0 {
            self.secret = None;
        }
    }
}

/// Bytes in locked memory, zeroized on `wipe()`, on leaving a `with` block, and when
/// collected. Read through `memoryview(secret)` (no copy) or `expose_secret()` (a copy in
/// Python's heap, which you then own).
#[pyclass(module = "kmseal", name = "SecretBytes", frozen, subclass)]
pub(crate) struct PySecretBytes {
    pub(crate) held: Mutex<Held>,
    pub(crate) origin: Origin,
}

/// A share of a secret's buffer for one call (possibly without the GIL). When the last share
/// of a secret wiped meanwhile is dropped, the buffer is zeroized: `wipe()` could not while
/// the call read it.
pub(crate) struct Share {
    secret: Option<Arc<kmseal::SecretBytes>>,
    owner: Py<PySecretBytes>,
}

impl Share {
    pub(crate) fn secret(&self) -> &kmseal::SecretBytes {
        // Set from construction until drop.
        self.secret.as_deref().unwrap_or(&EMPTY)
    }
}

static EMPTY: std::sync::LazyLock<kmseal::SecretBytes> =
    std::sync::LazyLock::new(kmseal::SecretBytes::new);

impl Drop for Share {
    fn drop(&mut self) {
        drop(self.secret.take());
        self.owner.get().lock().settle();
    }
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

    /// A share of the buffer for one call; the exception (wiped, forked) is built after the
    /// lock is released.
    pub(crate) fn share(slf: &Bound<'_, PySecretBytes>) -> PyResult<Share> {
        let this = slf.get();
        let got = this.lock().readable(this.origin).map(Arc::clone);
        match got {
            Ok(secret) => Ok(Share {
                secret: Some(secret),
                owner: slf.clone().unbind(),
            }),
            Err(r) => Err(r.into_py(this.origin)),
        }
    }

    fn wipe_now(&self) {
        let mut held = self.lock();
        held.wiped = true;
        held.settle();
    }

    /// The length, or `None` when the value cannot be read here.
    fn len_now(&self) -> Option<usize> {
        let held = self.lock();
        held.readable(self.origin).ok().map(|s| s.len())
    }

    fn describe(&self, class: &str) -> String {
        let held = self.lock();
        match held.readable(self.origin) {
            Ok(s) => format!("{class}(<redacted>, {} bytes)", s.len()),
            Err(Refusal::Forked) => format!("{class}(<made before fork(); unusable here>)"),
            Err(Refusal::Wiped) => format!("{class}(<wiped>)"),
        }
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
    fn locked(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Ok(PySecretBytes::share(slf)?.secret().is_locked())
    }

    /// A copy of the value as `bytes`, in Python's garbage-collected heap: it is not locked
    /// and never wiped. Prefer `memoryview(secret)`.
    fn expose_secret<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyBytes>> {
        let share = PySecretBytes::share(slf)?;
        Ok(PyBytes::new(slf.py(), share.secret().expose_secret()))
    }

    /// The value as a `SecretString` (a new locked copy), or `ValueError` when it is not
    /// UTF-8 (the error never shows the bytes).
    fn decode(slf: &Bound<'_, Self>) -> PyResult<PySecretStringInit> {
        let copy = PySecretBytes::share(slf)?
            .secret()
            .try_clone()
            .map_err(to_py)?;
        let text = kmseal::SecretString::try_from_bytes(copy)
            .map_err(|_| pyo3::exceptions::PyValueError::new_err("the secret is not UTF-8 text"))?;
        Ok(PySecretStringInit(text.into_bytes()))
    }

    fn __len__(&self) -> usize {
        self.len_now().unwrap_or(0)
    }

    fn __bool__(&self) -> bool {
        self.len_now().unwrap_or(0) > 0
    }

    fn __repr__(&self) -> String {
        self.describe("SecretBytes")
    }

    fn __str__(&self) -> String {
        self.describe("SecretBytes")
    }

    /// Constant-time equality with another secret or a bytes-like object (the lengths are
    /// compared first).
    fn __eq__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let mine = PySecretBytes::share(slf)?;
        if let Ok(other) = other.cast::<PySecretBytes>() {
            let theirs = PySecretBytes::share(other)?;
            return Ok(ct_eq(
                mine.secret().expose_secret(),
                theirs.secret().expose_secret(),
            ));
        }
        if other.is_instance_of::<PyString>() {
            return Ok(false);
        }
        match crate::input::locked_copy(other) {
            Ok(theirs) => Ok(ct_eq(mine.secret().expose_secret(), theirs.expose_secret())),
            // Not bytes-like (None, a number): simply not equal.
            Err(e) if e.is_instance_of::<PyTypeError>(other.py()) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn __ne__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(!PySecretBytes::__eq__(slf, other)?)
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
        let text = text.to_cow()?;
        let secret = kmseal::SecretBytes::from_slice(text.as_bytes()).map_err(to_py);
        // Before CPython 3.10's stable ABI the UTF-8 comes back as an owned copy: wipe it.
        if let std::borrow::Cow::Owned(mut copy) = text {
            zeroize::Zeroize::zeroize(&mut copy);
        }
        let secret = secret?;
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
    fn expose_secret<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyString>> {
        let share = PySecretBytes::share(slf.as_super())?;
        let text = std::str::from_utf8(share.secret().expose_secret())
            .map_err(|_| crate::errors::invalid_argument("not UTF-8".into()))?;
        Ok(PyString::new(slf.py(), text))
    }

    fn __len__(slf: &Bound<'_, Self>) -> usize {
        match PySecretBytes::share(slf.as_super()) {
            Ok(share) => {
                std::str::from_utf8(share.secret().expose_secret()).map_or(0, |t| t.chars().count())
            }
            Err(_) => 0,
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
