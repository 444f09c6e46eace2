//! Sealed config documents (`open_config` → `Secrets`) and secret stores (`get_secret`).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyModule};

use kmseal::{Decryptor, SecretBytes, SecretString};
use kmseal_config::{Document, Entry, Format, FormatClues, Require, Secrets};

use crate::Origin;
use crate::envelope::keks;
use crate::errors::{
    config_to_py, finding_list, findings_error, invalid_argument, to_py, wiped_error,
};
use crate::secret::{PySecretBytes, PySecretStringInit};

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(open_config, m)?)?;
    m.add_function(wrap_pyfunction!(get_secret, m)?)?;
    m.add_class::<PySecrets>()?;
    Ok(())
}

/// Opens a sealed config document (YAML, JSON, TOML or .env; or a whole-file kmseal message
/// of one) into memory: verified before anything is decrypted, secrets in locked memory.
///
/// `keys` are key URIs (default: `$KMSEAL_KEY`). `format` is `"yaml"`, `"json"`, `"toml"` or
/// `"env"` (default: from the content of a sealed document, else the file name). With
/// `resolve=True` (default) `ref+URI` values are read from their secret stores. With
/// `check=True` (default) the document's own requirements are checked and a failure raises
/// `RequirementError` (fail fast at start-up). `unsealed=True` accepts a document without
/// kmseal metadata (plain values and references only), as trustworthy as the file itself.
#[pyfunction]
#[pyo3(signature = (path, keys = None, *, format = None, resolve = true, check = true,
                    unsealed = false))]
fn open_config(
    py: Python<'_>,
    path: PathBuf,
    keys: Option<&Bound<'_, PyAny>>,
    format: Option<&str>,
    resolve: bool,
    check: bool,
    unsealed: bool,
) -> PyResult<PySecrets> {
    let explicit = format
        .map(|f| {
            Format::from_name(f).ok_or_else(|| {
                invalid_argument(format!(
                    "unknown format {f:?}; expected yaml, json, toml or env"
                ))
            })
        })
        .transpose()?;
    let bytes = zeroize::Zeroizing::new(std::fs::read(&path).map_err(|e| {
        pyo3::exceptions::PyOSError::new_err(format!("cannot read {}: {e}", path.display()))
    })?);
    let text = std::str::from_utf8(&bytes).ok();
    let format = explicit
        .or_else(|| FormatClues::of(&path, text).format())
        .ok_or_else(|| {
            config_to_py(kmseal_config::Error::Unsupported(format!(
                "cannot tell the format of {}: it is not a sealed document and its name does \
                 not say; pass format=\"yaml\"|\"json\"|\"toml\"|\"env\"",
                path.display()
            )))
        })?;
    let doc = Document::classify(&bytes, format).map_err(config_to_py)?;
    if !doc.needs_key() && !unsealed {
        return Err(config_to_py(kmseal_config::Error::Unsupported(format!(
            "{} is not sealed (no kmseal metadata); if it holds only plain values and \
             references (ref+URI), pass unsealed=True",
            path.display()
        ))));
    }
    let dec = if doc.needs_key() {
        let keks = match keys {
            Some(k) => keks(py, k)?,
            None => py
                .detach(|| kmseal::blocking::block_on(kmseal_keys::from_env(kmseal_keys::KEY_ENV)))
                .map_err(to_py)?,
        };
        Some(Decryptor::with_keks(keks).map_err(to_py)?)
    } else {
        None
    };
    let secrets = py.detach(|| -> Result<Secrets, kmseal_config::Error> {
        let mut secrets = kmseal::blocking::block_on(doc.open(format, dec.as_ref()))?;
        if resolve {
            let resolver = kmseal_keys::resolver();
            kmseal::blocking::block_on(secrets.resolve_references(&resolver))?;
            if check
                && secrets
                    .requirements()
                    .iter()
                    .any(|r| r.rotation_interval().is_some())
            {
                kmseal::blocking::block_on(secrets.resolve_version_times(&resolver))?;
            }
        }
        Ok(secrets)
    });
    let secrets = secrets.map_err(config_to_py)?;
    if check {
        let failures: Vec<_> = secrets
            .findings(secrets.requirements())
            .into_iter()
            .filter(|f| !f.problem.is_warning())
            .collect();
        if !failures.is_empty() {
            return Err(findings_error(&failures));
        }
    }
    Ok(PySecrets {
        inner: Mutex::new(Some(secrets)),
        origin: Origin::here(),
    })
}

/// Reads one secret from a secret store by reference (`aws-sm://…`, `gcp-sm://…`,
/// `azure-kv-secret://…`, `vault-kv://…#field`, `env://NAME`, `file:///path`), into locked
/// memory. Raises `StoreError` with `.kind` (`not_found`, `access_denied`, …).
#[pyfunction]
fn get_secret(py: Python<'_>, reference: String) -> PyResult<PySecretBytes> {
    let value: SecretBytes = py
        .detach(|| kmseal_keys::get_secret_blocking(&reference))
        .map_err(to_py)?;
    Ok(PySecretBytes::new(value))
}

/// A decrypted config document: values by path (`db.password`, `servers[0].token`; .env
/// names as written), secrets in locked memory. `wipe()` (or leaving a `with` block) drops
/// every value at once.
#[pyclass(module = "kmseal", name = "Secrets", frozen)]
pub(crate) struct PySecrets {
    inner: Mutex<Option<Secrets>>,
    origin: Origin,
}

impl PySecrets {
    /// Runs `f` on the document under its lock. `f` does plain Rust work only: exceptions and
    /// Python objects are made from what it returns, after the lock is released (a thread
    /// that runs Python code may hand the GIL to one that then waits for this lock).
    fn with<R>(&self, f: impl FnOnce(&Secrets) -> R) -> PyResult<R> {
        self.origin.check("Secrets")?;
        let held = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let out = held.as_ref().map(f);
        drop(held);
        out.ok_or_else(|| wiped_error("Secrets"))
    }

    /// What the document's requirements and `rules` find now, due-soon within `warn_within`
    /// seconds included.
    fn found(
        &self,
        rules: Option<Vec<String>>,
        warn_within: f64,
    ) -> PyResult<Vec<kmseal_config::Finding>> {
        // Parsed before the lock: a bad rule raises without it.
        let mut extra = Vec::new();
        for text in rules.unwrap_or_default() {
            extra.push(text.parse::<Require>().map_err(config_to_py)?);
        }
        let window = Duration::try_from_secs_f64(warn_within)
            .map_err(|_| invalid_argument("warn_within must be a non-negative number".into()))?;
        self.with(|secrets| {
            let mut all = secrets.requirements().to_vec();
            all.extend(extra);
            secrets.findings_at(&all, SystemTime::now(), window)
        })
    }
}

/// A value looked up by path, before it becomes a Python object or exception.
enum Lookup {
    Secret(Result<SecretString, kmseal::Error>),
    Plain(String),
    Missing,
}

fn lookup(secrets: &Secrets, path: &str) -> Lookup {
    match secrets.get(path) {
        Some(Entry::Secret { value, .. }) => Lookup::Secret(value.try_clone()),
        Some(Entry::Plain { value, .. }) => Lookup::Plain(value.clone()),
        _ => Lookup::Missing,
    }
}

#[pymethods]
impl PySecrets {
    /// The encrypted value at `path` as a `SecretString` (a locked copy). `KeyError` when there
    /// is no value there; `ConfigError` when the value is stored in plaintext (use `plain`).
    fn secret(&self, path: &str) -> PyResult<PySecretStringInit> {
        match self.with(|s| lookup(s, path))? {
            Lookup::Secret(value) => Ok(PySecretStringInit(value.map_err(to_py)?.into_bytes())),
            Lookup::Plain(_) => Err(config_to_py(kmseal_config::Error::Unsupported(format!(
                "`{path}` is stored in plaintext, not encrypted; read it with plain()"
            )))),
            Lookup::Missing => Err(PyKeyError::new_err(path.to_owned())),
        }
    }

    /// The plaintext value at `path` (numbers and booleans as written). `KeyError` when there
    /// is no value there; `ConfigError` when the value is encrypted (use `secret`).
    fn plain(&self, path: &str) -> PyResult<String> {
        match self.with(|s| lookup(s, path))? {
            Lookup::Plain(value) => Ok(value),
            Lookup::Secret(_) => Err(config_to_py(kmseal_config::Error::Unsupported(format!(
                "`{path}` is encrypted; read it with secret()"
            )))),
            Lookup::Missing => Err(PyKeyError::new_err(path.to_owned())),
        }
    }

    /// The previous value at `path` during a rotation's grace period (`SecretString`), else
    /// `None`.
    fn previous(&self, path: &str) -> PyResult<Option<PySecretStringInit>> {
        self.with(|s| s.previous(path).map(SecretString::try_clone))?
            .map(|v| Ok(PySecretStringInit(v.map_err(to_py)?.into_bytes())))
            .transpose()
    }

    /// When the value at `path` was set (seconds since the epoch, UTC), if the document
    /// records it (format version 4) or its store does; else `None`.
    fn set_at(&self, path: &str) -> PyResult<Option<f64>> {
        Ok(self
            .with(|s| s.set_at(path))?
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64()))
    }

    /// Every value's path, in document order.
    fn paths(&self) -> PyResult<Vec<String>> {
        self.with(|s| s.iter().map(|(p, _)| p.to_string()).collect())
    }

    /// Whether the value at `path` is encrypted (`KeyError` when there is none).
    fn is_secret(&self, path: &str) -> PyResult<bool> {
        match self.with(|s| s.get(path).map(|e| matches!(e, Entry::Secret { .. })))? {
            Some(secret) => Ok(secret),
            None => Err(PyKeyError::new_err(path.to_owned())),
        }
    }

    /// The document's requirements (text form, `PATH:min_len=16,max_age=90d`).
    fn requirements(&self) -> PyResult<Vec<String>> {
        self.with(|s| s.requirements().iter().map(ToString::to_string).collect())
    }

    /// Every problem the document's requirements and `rules` (text form, as
    /// `kmseal config check --require` takes them) find, failures and warnings, as
    /// `Finding`s; never a value. `warn_within` (seconds) reports values due for rotation
    /// within that window as warnings.
    #[pyo3(signature = (rules = None, *, warn_within = 0.0))]
    fn findings<'py>(
        &self,
        py: Python<'py>,
        rules: Option<Vec<String>>,
        warn_within: f64,
    ) -> PyResult<Bound<'py, PyList>> {
        let found = self.found(rules, warn_within)?;
        finding_list(py, &found)
    }

    /// Raises `RequirementError` (with `.findings`) when the document's requirements or
    /// `rules` fail; returns the warnings (due within `warn_within` seconds) otherwise.
    #[pyo3(signature = (rules = None, *, warn_within = 0.0))]
    fn check<'py>(
        &self,
        py: Python<'py>,
        rules: Option<Vec<String>>,
        warn_within: f64,
    ) -> PyResult<Bound<'py, PyList>> {
        let found = self.found(rules, warn_within)?;
        let (warnings, failures): (Vec<_>, Vec<_>) =
            found.into_iter().partition(|f| f.problem.is_warning());
        if !failures.is_empty() {
            return Err(findings_error(&failures));
        }
        finding_list(py, &warnings)
    }

    /// The environment `kmseal exec` would give a command: `NAME` → `SecretString` for every
    /// value (`db.password` → `DB_PASSWORD`; .env names as written), aliases and
    /// `NAME_PREVIOUS` included.
    fn env<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let vars = self.with(|s| {
            s.env_vars()
                .into_iter()
                .map(|(name, value)| {
                    kmseal::SecretBytes::from_slice(value.as_bytes()).map(|v| (name, v))
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        let out = PyDict::new(py);
        for (name, value) in vars.map_err(to_py)? {
            out.set_item(name, PySecretStringInit(value))?;
        }
        Ok(out)
    }

    /// Drops every value now (secrets are zeroized). Idempotent.
    fn wipe(&self) {
        let mut held = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *held = None;
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> bool {
        self.wipe();
        false
    }

    fn __contains__(&self, path: &str) -> PyResult<bool> {
        self.with(|s| s.get(path).is_some())
    }

    fn __len__(&self) -> PyResult<usize> {
        self.with(|s| s.iter().count())
    }

    fn __repr__(&self) -> String {
        let held = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match held.as_ref() {
            Some(s) => {
                let total = s.iter().count();
                let secret = s
                    .iter()
                    .filter(|(_, e)| matches!(e, Entry::Secret { .. }))
                    .count();
                format!("Secrets(<{total} values, {secret} encrypted>)")
            }
            None => "Secrets(<wiped>)".to_owned(),
        }
    }

    fn __reduce__(&self) -> PyResult<()> {
        Err(pyo3::exceptions::PyTypeError::new_err(
            "Secrets cannot be pickled (that would copy them out of locked memory)",
        ))
    }
}
