//! Errors as Python exceptions. The classes are defined in Python (`kmseal/_errors.py`, where
//! multiple inheritance and attributes are plain); this module maps each core and config
//! error to one of them. Messages come from the core's `Display`, which never carries key or
//! plaintext bytes; nothing here adds a value.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyModule, PyType};

use kmseal::Error;

pub(crate) fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}

/// The exception class `name` of `kmseal._errors`.
fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let module = MODULE.get_or_try_init(py, || {
        PyModule::import(py, "kmseal._errors").map(Bound::unbind)
    })?;
    Ok(module.bind(py).getattr(name)?.cast_into::<PyType>()?)
}

/// An instance of exception class `name` with `message` and keyword attributes.
fn raise(name: &str, message: String, attrs: &[(&str, Option<String>)]) -> PyErr {
    Python::attach(|py| {
        let made = (|| -> PyResult<PyErr> {
            let kwargs = PyDict::new(py);
            for (k, v) in attrs {
                kwargs.set_item(k, v)?;
            }
            let value = class(py, name)?.call((message,), Some(&kwargs))?;
            Ok(PyErr::from_value(value))
        })();
        made.unwrap_or_else(|e| e)
    })
}

/// `ForkError`: an object made before `fork()` used in the child.
pub(crate) fn fork_error(message: String) -> PyErr {
    raise("ForkError", message, &[])
}

/// `WipedError`: a secret used after `wipe()`.
pub(crate) fn wiped_error(what: &str) -> PyErr {
    raise(
        "WipedError",
        format!("this {what} was wiped; its value is gone"),
        &[],
    )
}

/// `InvalidKeyError` for a bad argument that names keys or options.
pub(crate) fn invalid_argument(message: String) -> PyErr {
    raise("InvalidArgumentError", message, &[])
}

/// A `snake_case` name of an error kind (`AccessDenied` → `access_denied`).
fn kind_name(debug: String) -> String {
    let mut out = String::with_capacity(debug.len() + 4);
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The Python exception for a core error.
pub(crate) fn to_py(err: Error) -> PyErr {
    let message = err.to_string();
    match &err {
        Error::Decrypt
        | Error::Truncated(_)
        | Error::Malformed(_)
        | Error::NotKmseal
        | Error::UnsupportedVersion(_)
        | Error::UnknownSuite(_)
        | Error::LimitExceeded { .. }
        | Error::ContextMismatch { .. }
        | Error::NoMatchingKek { .. }
        | Error::Unsigned => raise("DecryptError", message, &[]),
        Error::UnwrapFailed { failures } => {
            // A KMS that could not answer (denied, throttled, down) is a KMS error of that
            // kind; a wrapped key that did not open (tampered, or another key's) is a
            // decrypt error, like the rest of a message that does not authenticate.
            let kms = failures.iter().find_map(|f| match &f.error {
                Error::Kms { provider, kind, .. }
                    if *kind != kmseal::KmsErrorKind::InvalidCiphertext =>
                {
                    Some((*provider, *kind))
                }
                _ => None,
            });
            match kms {
                Some((provider, kind)) => raise(
                    "KmsError",
                    message,
                    &[
                        ("kind", Some(kind_name(format!("{kind:?}")))),
                        ("provider", Some(provider.to_owned())),
                    ],
                ),
                None => raise("DecryptError", message, &[]),
            }
        }
        Error::Kms { provider, kind, .. } => raise(
            "KmsError",
            message.clone(),
            &[
                ("kind", Some(kind_name(format!("{kind:?}")))),
                ("provider", Some((*provider).to_owned())),
            ],
        ),
        Error::Store {
            reference, kind, ..
        } => raise(
            "StoreError",
            message.clone(),
            &[
                ("kind", Some(kind_name(format!("{kind:?}")))),
                ("reference", Some(reference.clone())),
            ],
        ),
        Error::InvalidReference { reference, .. } => raise(
            "StoreError",
            message.clone(),
            &[
                ("kind", Some("invalid_reference".to_owned())),
                ("reference", Some(reference.clone())),
            ],
        ),
        Error::SecretShape(_) => {
            raise("StoreError", message, &[("kind", Some("shape".to_owned()))])
        }
        Error::InvalidKeyUri { .. } | Error::LocalKey { .. } => {
            raise("InvalidKeyError", message, &[])
        }
        Error::InvalidArgument(_) | Error::InvalidContext(_) => {
            raise("InvalidArgumentError", message, &[])
        }
        Error::ForkedSecret => raise("ForkError", message, &[]),
        Error::Io(e) => Python::attach(|_| {
            pyo3::exceptions::PyOSError::new_err((e.raw_os_error().unwrap_or(0), message))
        }),
        _ => raise("Error", message, &[]),
    }
}

/// The Python exception for a config error.
pub(crate) fn config_to_py(err: kmseal_config::Error) -> PyErr {
    use kmseal_config::Error as C;
    match err {
        C::Kmseal(e) => to_py(e),
        C::Tampered(_) => raise("TamperedError", err.to_string(), &[]),
        C::References(_) => raise("StoreError", err.to_string(), &[("kind", None)]),
        C::Requirements(_) => raise("RequirementError", err.to_string(), &[]),
        other => raise("ConfigError", other.to_string(), &[]),
    }
}

/// A list of `kmseal.Finding`s (`path`, `problem`, `message`, `warning`); never a value.
pub(crate) fn finding_list<'py>(
    py: Python<'py>,
    findings: &[kmseal_config::Finding],
) -> PyResult<Bound<'py, PyList>> {
    let class = class(py, "Finding")?;
    let list = PyList::empty(py);
    for f in findings {
        list.append(class.call1((
            f.path.to_string(),
            f.problem.name(),
            f.to_string(),
            f.problem.is_warning(),
        ))?)?;
    }
    Ok(list)
}

/// `RequirementError` with one `Finding` per failed rule.
pub(crate) fn findings_error(findings: &[kmseal_config::Finding]) -> PyErr {
    let lines: Vec<String> = findings.iter().map(ToString::to_string).collect();
    Python::attach(|py| {
        let made = (|| -> PyResult<PyErr> {
            let kwargs = PyDict::new(py);
            kwargs.set_item("findings", finding_list(py, findings)?)?;
            let message = format!("configuration requirements not met: {}", lines.join("; "));
            let value = class(py, "RequirementError")?.call((message,), Some(&kwargs))?;
            Ok(PyErr::from_value(value))
        })();
        made.unwrap_or_else(|e| e)
    })
}
