//! Streaming between paths and Python file objects in constant memory.
//!
//! Between paths the copy runs without the GIL; with a Python file object on either side it
//! keeps the GIL (the object is called for every chunk). A path destination is written under a temporary name in its directory and
//! renamed only after the stream finished (decrypt: after the final frame verified), so no
//! partial file is ever left where the caller expects a complete one.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use kmseal::{Decryptor, Encryptor};

use crate::envelope::path_of;
use crate::errors::{invalid_argument, to_py};

/// Where bytes come from.
pub(crate) enum Source {
    Path(PathBuf),
    Object(Py<PyAny>),
}

/// Where bytes go; `mode` is the new file's permission bits for a path.
pub(crate) enum Sink {
    Path(PathBuf, u32),
    Object(Py<PyAny>),
}

impl Source {
    pub(crate) fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Source> {
        if let Some(p) = path_of(obj) {
            return Ok(Source::Path(p));
        }
        if obj.hasattr("read")? {
            return Ok(Source::Object(obj.clone().unbind()));
        }
        Err(invalid_argument(
            "src must be a path or a binary file object with read()".into(),
        ))
    }
}

impl Sink {
    pub(crate) fn from_py(obj: &Bound<'_, PyAny>, mode: u32) -> PyResult<Sink> {
        if let Some(p) = path_of(obj) {
            return Ok(Sink::Path(p, mode));
        }
        if obj.hasattr("write")? {
            return Ok(Sink::Object(obj.clone().unbind()));
        }
        Err(invalid_argument(
            "dst must be a path or a binary file object with write()".into(),
        ))
    }
}

/// The first Python exception a file object raised, re-raised as it was.
type Raised = Arc<Mutex<Option<PyErr>>>;

fn keep(raised: &Raised, err: PyErr) -> io::Error {
    let mut slot = raised
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let message = err.to_string();
    slot.get_or_insert(err);
    io::Error::other(format!("the file object raised: {message}"))
}

/// A Python object with `read(n)`.
struct PyReader {
    obj: Py<PyAny>,
    raised: Raised,
}

/// Runs `f` with the GIL, or fails when the interpreter is shutting down (a daemon thread
/// still streaming at exit must not touch a finalizing interpreter).
fn attached<R>(f: impl FnOnce(Python<'_>) -> io::Result<R>) -> io::Result<R> {
    Python::try_attach(f).unwrap_or_else(|| {
        Err(io::Error::other(
            "the Python interpreter is shutting down; the stream was abandoned",
        ))
    })
}

impl Read for PyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        attached(|py| {
            let got = self
                .obj
                .bind(py)
                .call_method1("read", (buf.len(),))
                .map_err(|e| keep(&self.raised, e))?;
            if got.is_none() {
                // A non-blocking raw stream with nothing yet: not supported.
                return Err(keep(
                    &self.raised,
                    pyo3::exceptions::PyBlockingIOError::new_err(
                        "the source returned None (non-blocking); pass a blocking file object",
                    ),
                ));
            }
            let bytes = got.cast::<PyBytes>().map_err(|_| {
                keep(
                    &self.raised,
                    pyo3::exceptions::PyTypeError::new_err(
                        "the source's read() must return bytes (open it in binary mode)",
                    ),
                )
            })?;
            let data = bytes.as_bytes();
            if data.len() > buf.len() {
                return Err(keep(
                    &self.raised,
                    pyo3::exceptions::PyValueError::new_err("read(n) returned more than n bytes"),
                ));
            }
            buf[..data.len()].copy_from_slice(data);
            Ok(data.len())
        })
    }
}

/// A Python object with `write(b)`.
struct PyWriter {
    obj: Py<PyAny>,
    raised: Raised,
}

impl Write for PyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        attached(|py| {
            let written = self
                .obj
                .bind(py)
                .call_method1("write", (PyBytes::new(py, buf),))
                .map_err(|e| keep(&self.raised, e))?;
            // A count (a raw stream may write less; the rest is written again). None means
            // a non-blocking raw stream wrote nothing: refused, as for the source, rather
            // than dropping the bytes.
            if written.is_none() {
                return Err(keep(
                    &self.raised,
                    pyo3::exceptions::PyBlockingIOError::new_err(
                        "the destination wrote nothing (non-blocking); pass a blocking file object",
                    ),
                ));
            }
            let n: usize = written.extract().map_err(|_| {
                keep(
                    &self.raised,
                    pyo3::exceptions::PyTypeError::new_err(
                        "the destination's write() must return the number of bytes written",
                    ),
                )
            })?;
            Ok(n.min(buf.len()))
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        attached(|py| {
            let obj = self.obj.bind(py);
            if obj.hasattr("flush").unwrap_or(false) {
                obj.call_method0("flush")
                    .map_err(|e| keep(&self.raised, e))?;
            }
            Ok(())
        })
    }
}

/// Runs `job` from `src` to `dst` without the GIL; a path `dst` is renamed into place only
/// when `job` succeeded.
fn run(
    py: Python<'_>,
    src: Source,
    dst: Sink,
    job: impl FnOnce(&mut dyn Read, &mut dyn Write) -> Result<u64, kmseal::Error> + Send,
) -> PyResult<u64> {
    let raised: Raised = Arc::default();
    // Paths only: the whole copy runs without the GIL. With a Python file object on either
    // side it keeps the GIL: it calls back into Python for every chunk anyway, and a thread
    // that let go of the GIL mid-stream could come back to a finalizing interpreter (a
    // daemon thread at exit crashed that way).
    let paths_only = matches!((&src, &dst), (Source::Path(_), Sink::Path(..)));
    let copy = || -> Result<u64, Failure> {
        let mut reader: Box<dyn Read> = match src {
            Source::Path(p) => Box::new(File::open(&p).map_err(|e| Failure::Open(p, e))?),
            Source::Object(obj) => Box::new(PyReader {
                obj,
                raised: Arc::clone(&raised),
            }),
        };
        match dst {
            Sink::Object(obj) => {
                let mut writer = PyWriter {
                    obj,
                    raised: Arc::clone(&raised),
                };
                let n = job(&mut reader, &mut writer).map_err(Failure::Kmseal)?;
                writer.flush().map_err(|e| Failure::Kmseal(e.into()))?;
                Ok(n)
            }
            Sink::Path(path, mode) => {
                let mut out = Atomic::create(&path, mode)?;
                let n = job(&mut reader, &mut out.file).map_err(Failure::Kmseal)?;
                out.commit()?;
                Ok(n)
            }
        }
    };
    let outcome = if paths_only { py.detach(copy) } else { copy() };
    let err = match outcome {
        Ok(n) => return Ok(n),
        Err(e) => e,
    };
    // A file object's own exception is the most useful thing to raise.
    let from_python = raised
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(e) = from_python {
        return Err(e);
    }
    Err(match err {
        Failure::Kmseal(e) => to_py(e),
        Failure::Open(p, e) => {
            pyo3::exceptions::PyOSError::new_err(format!("cannot open {}: {e}", p.display()))
        }
        Failure::Write(p, e) => {
            pyo3::exceptions::PyOSError::new_err(format!("cannot write {}: {e}", p.display()))
        }
    })
}

pub(crate) fn encrypt(py: Python<'_>, enc: &Encryptor, src: Source, dst: Sink) -> PyResult<u64> {
    run(py, src, dst, |reader, writer| {
        // Small frames make small writes: buffer the ciphertext (never the plaintext).
        let mut w = enc.writer_blocking(BufWriter::with_capacity(256 << 10, writer))?;
        let n = kmseal::stream::copy_locked(reader, &mut w)?;
        w.finish()?.flush()?;
        Ok(n)
    })
}

pub(crate) fn decrypt(py: Python<'_>, dec: &Decryptor, src: Source, dst: Sink) -> PyResult<u64> {
    run(py, src, dst, |reader, writer| {
        let mut r = dec.reader_blocking(reader)?;
        let n = kmseal::stream::copy_locked(&mut r, writer)?;
        writer.flush()?;
        Ok(n)
    })
}

enum Failure {
    Kmseal(kmseal::Error),
    Open(PathBuf, io::Error),
    Write(PathBuf, io::Error),
}

/// Temporary files being written now, removed by [`remove_in_flight`] at interpreter exit (a
/// daemon thread still streaming then would otherwise leave one behind).
static IN_FLIGHT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn in_flight() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    IN_FLIGHT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Removes the temporary files of streams still running (`atexit`, in `kmseal/__init__.py`):
/// their writers then fail, and nothing partial is left behind.
#[pyfunction]
pub(crate) fn _remove_in_flight() {
    for path in in_flight().drain(..) {
        let _ = std::fs::remove_file(path);
    }
}

/// A file written under a temporary name beside `path`, renamed over it by `commit` and
/// removed if dropped before.
struct Atomic {
    /// Unbuffered: decrypted frames go from locked memory straight to the file (a buffer here
    /// would be an ordinary heap copy of the plaintext); the encrypt side buffers its
    /// ciphertext itself.
    file: File,
    temp: Option<PathBuf>,
    path: PathBuf,
}

impl Atomic {
    fn create(path: &Path, mode: u32) -> Result<Atomic, Failure> {
        // A device, FIFO or socket is written to, never renamed over (as root, a rename over
        // /dev/null replaces the device node with a regular file).
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            let t = meta.file_type();
            if t.is_char_device() || t.is_block_device() || t.is_fifo() || t.is_socket() {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| Failure::Open(path.to_owned(), e))?;
                return Ok(Atomic {
                    file,
                    temp: None,
                    path: path.to_owned(),
                });
            }
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .ok_or_else(|| {
                Failure::Open(
                    path.to_owned(),
                    io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
                )
            })?
            .to_string_lossy();
        for attempt in 0u32..16 {
            let tag = kmseal::SecretBytes::random(6).map_err(Failure::Kmseal)?;
            let tag: String = tag
                .expose_secret()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let temp = dir.join(format!(".{name}.kmseal-{tag}.tmp"));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&temp)
            {
                Ok(file) => {
                    in_flight().push(temp.clone());
                    return Ok(Atomic {
                        file,
                        temp: Some(temp),
                        path: path.to_owned(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 15 => continue,
                Err(e) => return Err(Failure::Open(temp, e)),
            }
        }
        Err(Failure::Open(
            path.to_owned(),
            io::Error::other("no free temporary name"),
        ))
    }

    /// Flushes, syncs, renames into place and syncs the directory.
    fn commit(mut self) -> Result<(), Failure> {
        let fail = |e: io::Error| Failure::Write(self.path.clone(), e);
        let Some(temp) = self.temp.take() else {
            return Ok(()); // a device or pipe: written, nothing to rename or sync
        };
        self.file.sync_all().map_err(fail)?;
        forget_in_flight(&temp);
        if let Err(e) = std::fs::rename(&temp, &self.path) {
            let _ = std::fs::remove_file(&temp);
            return Err(fail(e));
        }
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir).and_then(|d| d.sync_all()).map_err(fail)?;
        Ok(())
    }
}

fn forget_in_flight(temp: &Path) {
    in_flight().retain(|p| p != temp);
}

impl Drop for Atomic {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            forget_in_flight(&temp);
            let _ = std::fs::remove_file(temp);
        }
    }
}
