//! `encrypt`/`decrypt` and the `Encryptor`/`Decryptor` classes: the core's envelope API with
//! keys given as URIs, exactly as the CLI takes them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyModule, PySequence, PyString};

use kmseal::{
    Backend, CacheLimits, DecryptCache, Decryptor, EncryptCache, EncryptionContext, Encryptor,
    FrameSize, Kek, Suite,
};

use crate::Origin;
use crate::errors::{invalid_argument, to_py};
use crate::input::{SMALL, data};
use crate::secret::PySecretBytes;
use crate::streams::{self, Sink, Source};

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encrypt, m)?)?;
    m.add_function(wrap_pyfunction!(decrypt, m)?)?;
    m.add_class::<PyEncryptor>()?;
    m.add_class::<PyDecryptor>()?;
    m.add_function(wrap_pyfunction!(streams::_remove_in_flight, m)?)?;
    Ok(())
}

/// Key URIs: one string (a comma-separated list, as `KMSEAL_KEY` holds them) or a sequence of
/// strings. The first wraps; any may open.
pub(crate) fn key_uris(keys: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    let uris: Vec<String> = if let Ok(s) = keys.cast::<PyString>() {
        s.to_cow()?
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect()
    } else if let Ok(seq) = keys.cast::<PySequence>() {
        seq.extract()?
    } else {
        return Err(invalid_argument(
            "keys must be a key URI, a comma-separated list of them, or a list of them".into(),
        ));
    };
    if uris.is_empty() {
        return Err(invalid_argument(
            "no key URI given (local://PATH, aws-kms://ARN, gcp-kms://…, azure-kv://…, vault://…)"
                .into(),
        ));
    }
    Ok(uris)
}

/// Builds the KEKs the URIs name (KMS clients are made here; only AWS aliases make a call).
pub(crate) fn keks(py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Vec<Arc<dyn Kek>>> {
    let uris = key_uris(keys)?;
    py.detach(|| kmseal::blocking::block_on(kmseal_keys::from_uris(&uris)))
        .map_err(to_py)
}

/// Whether every KEK is a local key (no call to it can wait on a network).
fn all_local(keks: &[Arc<dyn Kek>]) -> bool {
    keks.iter()
        .all(|k| k.provider() == kmseal::Provider::Local.scheme())
}

/// An encryption context from a `dict[str, str]` (or `None`).
fn context(ctx: Option<&Bound<'_, PyDict>>) -> PyResult<EncryptionContext> {
    let mut out = EncryptionContext::new();
    if let Some(ctx) = ctx {
        let pairs: BTreeMap<String, String> = ctx
            .extract()
            .map_err(|_| invalid_argument("context must be a dict of str to str".into()))?;
        for (k, v) in pairs {
            out.insert(k, v).map_err(to_py)?;
        }
    }
    Ok(out)
}

fn suite(name: Option<&str>) -> PyResult<Suite> {
    match name {
        None => Ok(Suite::default()),
        Some(n) => Suite::from_name(n).ok_or_else(|| {
            invalid_argument(format!(
                "unknown suite {n:?}; choose one of {}",
                Suite::ALL.map(Suite::name).join(", ")
            ))
        }),
    }
}

/// The AEAD implementation: `"aws-lc"` (the package's default: AWS-LC's assembly) or
/// `"rustcrypto"` (pure Rust). Messages are byte-identical either way.
fn backend(name: Option<&str>) -> PyResult<Backend> {
    match name.unwrap_or("aws-lc") {
        "aws-lc" => Ok(Backend::AwsLc),
        "rustcrypto" => Ok(Backend::RustCrypto),
        other => Err(invalid_argument(format!(
            "unknown backend {other:?}; choose aws-lc or rustcrypto"
        ))),
    }
}

fn cache_stats<'py>(py: Python<'py>, s: kmseal::CacheStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("hits", s.hits)?;
    d.set_item("misses", s.misses)?;
    d.set_item("kms_calls", s.kms_calls)?;
    d.set_item("evictions", s.evictions)?;
    d.set_item("entries", s.entries)?;
    Ok(d)
}

/// Encrypts `data` under the keys (URIs) into one kmseal message.
///
/// `context` is a dict of str authenticated with the message (not secret; decrypt can require
/// it); `suite` is `"aes-256-gcm"` (default) or `"chacha20-poly1305"`; `signed=True` adds an
/// Ed25519 signature so that a holder of one of several keys cannot forge messages for the
/// others. For repeated calls, an `Encryptor` keeps the keys (and optionally a data-key cache).
#[pyfunction]
#[pyo3(signature = (data, keys, context = None, *, suite = None, signed = false))]
fn encrypt<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    keys: &Bound<'py, PyAny>,
    context: Option<&Bound<'py, PyDict>>,
    suite: Option<&str>,
    signed: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let enc = PyEncryptor::build(py, keys, context, suite, signed, None, None, None)?;
    enc.encrypt(py, data)
}

/// Decrypts a kmseal message with any of the keys (URIs), into locked memory.
///
/// Every pair of `context` must be in the message's context. `require_signed=True` refuses
/// unsigned messages before any KMS call. Raises `DecryptError` for a message that does not
/// authenticate (tampered, truncated, wrong key, wrong context), never returning a part of it.
#[pyfunction]
#[pyo3(signature = (data, keys, context = None, *, require_signed = false))]
fn decrypt<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    keys: &Bound<'py, PyAny>,
    context: Option<&Bound<'py, PyDict>>,
    require_signed: bool,
) -> PyResult<PySecretBytes> {
    let dec = PyDecryptor::build(py, keys, context, require_signed, false, None, None)?;
    dec.decrypt(py, data)
}

/// Encrypts with fixed keys, context and options; keep one for repeated calls. `backend` is
/// `"aws-lc"` (default) or `"rustcrypto"` (pure Rust); messages are the same bytes. With
/// `cache=True` data keys are reused within limits (`cache_max_age` seconds,
/// `cache_max_messages` messages), saving a KMS call per message.
#[pyclass(module = "kmseal", name = "Encryptor", frozen)]
pub(crate) struct PyEncryptor {
    inner: Encryptor,
    /// Every key is local: no call can wait on a network.
    local_only: bool,
    origin: Origin,
}

impl PyEncryptor {
    #[allow(clippy::too_many_arguments)] // the Python keyword arguments, one to one
    fn build(
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        ctx: Option<&Bound<'_, PyDict>>,
        suite_name: Option<&str>,
        signed: bool,
        cache: Option<CacheLimits>,
        frame_size: Option<FrameSize>,
        backend_name: Option<&str>,
    ) -> PyResult<PyEncryptor> {
        let ctx = context(ctx)?;
        let suite = suite(suite_name)?;
        let keks = keks(py, keys)?;
        let local_only = all_local(&keks);
        let mut inner = Encryptor::with_keks(keks)
            .map_err(to_py)?
            .backend(backend(backend_name)?)
            .map_err(to_py)?
            .with_context(ctx)
            .suite(suite)
            .signed(signed);
        if let Some(limits) = cache {
            inner = inner.cache(EncryptCache::new(limits));
        }
        if let Some(f) = frame_size {
            inner = inner.frame_size(f);
        }
        Ok(PyEncryptor {
            inner,
            local_only,
            origin: Origin::here(),
        })
    }

    fn encrypt<'py>(
        &self,
        py: Python<'py>,
        plaintext: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.origin.check("Encryptor")?;
        let plaintext = data(plaintext)?;
        let len = plaintext.len();
        // The data key (a KMS call, or the cache) first; then the frames are sealed straight
        // into the `bytes` object Python gets, with no copy of the message in between.
        let prepared = if self.local_only && len <= SMALL {
            self.inner.prepare_blocking(len)
        } else {
            py.detach(|| self.inner.prepare_blocking(len))
        }
        .map_err(to_py)?;
        let mut prepared = Some(prepared);
        PyBytes::new_with(py, prepared.as_ref().map_or(0, |p| p.sealed_len()), |out| {
            let prepared = prepared
                .take()
                .ok_or_else(|| to_py(kmseal::Error::Internal("prepared message used twice")))?;
            plaintext
                .run(py, false, |p| prepared.seal_into(p, out))
                .map_err(to_py)
        })
    }
}

#[pymethods]
impl PyEncryptor {
    #[new]
    #[pyo3(signature = (keys, context = None, *, suite = None, signed = false, cache = false,
                        cache_max_age = 300.0, cache_max_messages = 10_000, frame_size = None,
                        backend = None))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn py_new(
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        context: Option<&Bound<'_, PyDict>>,
        suite: Option<&str>,
        signed: bool,
        cache: bool,
        cache_max_age: f64,
        cache_max_messages: u64,
        frame_size: Option<u32>,
        backend: Option<&str>,
    ) -> PyResult<PyEncryptor> {
        let max_age = Duration::try_from_secs_f64(cache_max_age)
            .map_err(|_| invalid_argument("cache_max_age must be a non-negative number".into()))?;
        let limits = CacheLimits {
            max_age,
            max_messages: cache_max_messages,
            ..CacheLimits::default()
        };
        let frame_size = frame_size.map(FrameSize::new).transpose().map_err(to_py)?;
        let cache = cache.then_some(limits);
        PyEncryptor::build(py, keys, context, suite, signed, cache, frame_size, backend)
    }

    /// Encrypts `data` (bytes-like or `SecretBytes`) into one message.
    #[pyo3(name = "encrypt")]
    fn py_encrypt<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.encrypt(py, data)
    }

    /// Encrypts `src` into `dst` in constant memory. Each is a path (`str` or `os.PathLike`)
    /// or a binary file object (`read` / `write`). A path `dst` appears only when complete
    /// (written under a temporary name and renamed). Returns the plaintext length.
    fn encrypt_stream(
        &self,
        py: Python<'_>,
        src: &Bound<'_, PyAny>,
        dst: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        self.origin.check("Encryptor")?;
        let src = Source::from_py(src)?;
        let dst = Sink::from_py(dst, 0o644)?;
        streams::encrypt(py, &self.inner, src, dst)
    }

    /// Hits, misses and KMS calls of the data-key cache (`None` without `cache=True`).
    #[getter]
    fn cache_stats<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.inner
            .cache_stats()
            .map(|s| cache_stats(py, s))
            .transpose()
    }

    fn __repr__(&self) -> String {
        "Encryptor(<keys>)".to_owned()
    }
}

/// Decrypts with fixed keys, required context and options; keep one for repeated calls.
/// With `cache=True` unwrapped data keys are kept for `cache_ttl` seconds (at most
/// `cache_capacity`), saving a KMS call per message that shares a data key.
#[pyclass(module = "kmseal", name = "Decryptor", frozen)]
pub(crate) struct PyDecryptor {
    inner: Decryptor,
    /// Every key is local: no call can wait on a network.
    local_only: bool,
    origin: Origin,
}

impl PyDecryptor {
    fn build(
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        ctx: Option<&Bound<'_, PyDict>>,
        require_signed: bool,
        cache: bool,
        cache_settings: Option<(Duration, usize)>,
        backend_name: Option<&str>,
    ) -> PyResult<PyDecryptor> {
        let ctx = context(ctx)?;
        let keks = keks(py, keys)?;
        let local_only = all_local(&keks);
        let mut inner = Decryptor::with_keks(keks)
            .map_err(to_py)?
            .backend(backend(backend_name)?)
            .map_err(to_py)?
            .with_expected_context(ctx)
            .require_signed(require_signed);
        if cache {
            let (ttl, capacity) = cache_settings.unwrap_or((Duration::from_secs(300), 1_000));
            inner = inner.cache(DecryptCache::new(ttl, capacity));
        }
        Ok(PyDecryptor {
            inner,
            local_only,
            origin: Origin::here(),
        })
    }

    pub(crate) fn decryptor(&self) -> PyResult<&Decryptor> {
        self.origin.check("Decryptor")?;
        Ok(&self.inner)
    }

    fn decrypt(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<PySecretBytes> {
        let dec = self.decryptor()?;
        let message = data(message)?;
        let plain = message
            .run(py, !self.local_only, |m| dec.decrypt_blocking(m))
            .map_err(to_py)?;
        Ok(PySecretBytes::new(plain))
    }
}

#[pymethods]
impl PyDecryptor {
    #[new]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    #[pyo3(signature = (keys, context = None, *, require_signed = false, cache = false,
                        cache_ttl = 300.0, cache_capacity = 1_000, backend = None))]
    fn py_new(
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        context: Option<&Bound<'_, PyDict>>,
        require_signed: bool,
        cache: bool,
        cache_ttl: f64,
        cache_capacity: usize,
        backend: Option<&str>,
    ) -> PyResult<PyDecryptor> {
        let ttl = Duration::try_from_secs_f64(cache_ttl)
            .map_err(|_| invalid_argument("cache_ttl must be a non-negative number".into()))?;
        PyDecryptor::build(
            py,
            keys,
            context,
            require_signed,
            cache,
            Some((ttl, cache_capacity)),
            backend,
        )
    }

    /// Decrypts one message into locked memory (`SecretBytes`).
    #[pyo3(name = "decrypt")]
    fn py_decrypt(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<PySecretBytes> {
        self.decrypt(py, data)
    }

    /// Decrypts `src` into `dst` in constant memory; only verified frames are written. A path
    /// `dst` (mode 0600) appears only once the whole message verified, and the plaintext goes
    /// from locked memory straight to the file: on any error nothing is left behind. A file
    /// object `dst` receives each verified chunk as `bytes` (a copy in Python's heap), and
    /// may have received verified frames before a later frame fails: discard what it got
    /// when this raises, or use a path. Returns the plaintext length.
    fn decrypt_stream(
        &self,
        py: Python<'_>,
        src: &Bound<'_, PyAny>,
        dst: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let dec = self.decryptor()?;
        let src = Source::from_py(src)?;
        let dst = Sink::from_py(dst, 0o600)?;
        streams::decrypt(py, dec, src, dst)
    }

    /// Hits, misses and KMS calls of the data-key cache (`None` without `cache=True`).
    #[getter]
    fn cache_stats<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.inner
            .cache_stats()
            .map(|s| cache_stats(py, s))
            .transpose()
    }

    fn __repr__(&self) -> String {
        "Decryptor(<keys>)".to_owned()
    }
}

/// A path argument (`str` or `os.PathLike`), or `None` when `obj` is something else.
pub(crate) fn path_of(obj: &Bound<'_, PyAny>) -> Option<PathBuf> {
    if obj.is_instance_of::<PyString>() || obj.hasattr("__fspath__").unwrap_or(false) {
        obj.extract::<PathBuf>().ok()
    } else {
        None
    }
}
