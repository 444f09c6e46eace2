//! Plumbing shared by kmseal's KMS provider crates: error construction, a tokio bridge for
//! callers without a runtime, retry backoff, and request bodies held in locked memory.
#![forbid(unsafe_code)]

pub mod time;
pub mod uri;

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use kmseal::{Error, KmsErrorKind, SecretBytes};

/// An [`Error::Kms`] without a source.
pub fn kms_error(provider: &'static str, kind: KmsErrorKind, message: impl Into<String>) -> Error {
    Error::Kms {
        provider,
        kind,
        message: message.into(),
        source: None,
    }
}

/// The error kind an HTTP status says, for an error response the provider could not classify
/// by its body (a proxy or load balancer answered, or the body was unreadable): the one
/// mapping every provider uses.
pub fn status_kind(status: u16) -> KmsErrorKind {
    match status {
        401 | 403 => KmsErrorKind::AccessDenied,
        404 => KmsErrorKind::NotFound,
        408 => KmsErrorKind::Timeout,
        429 => KmsErrorKind::Throttled,
        500..=599 => KmsErrorKind::Unavailable,
        _ => KmsErrorKind::Other,
    }
}

/// Runs `fut` on the caller's tokio runtime, or, when there is none (kmseal's blocking
/// facade, the CLI, the Python bindings), on one private single-thread I/O runtime per
/// process, shared by all providers: the cloud SDKs and reqwest need a tokio reactor.
///
/// Per process, not per program: in the child of a `fork()` (gunicorn workers, Python's
/// `multiprocessing`) the parent's runtime has no worker thread, and a task spawned on it
/// would never run. The child builds its own on first use (the parent's is leaked there: it
/// cannot be shut down without the threads it would join).
pub async fn on_runtime<T: Send + 'static>(
    provider: &'static str,
    fut: impl Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Error> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return fut.await;
    }
    let handle = io_runtime().map_err(|e| {
        kms_error(
            provider,
            KmsErrorKind::Other,
            format!("cannot start an I/O runtime: {e}"),
        )
    })?;
    handle.spawn(fut).await.map_err(|e| {
        kms_error(
            provider,
            KmsErrorKind::Other,
            format!("I/O task failed: {e}"),
        )
    })?
}

/// This process's I/O runtime (see [`on_runtime`]), built on first use.
fn io_runtime() -> Result<tokio::runtime::Handle, String> {
    // The lock is held only to compare a pid and clone a handle (and once per process to
    // build the runtime), so a fork from another thread finds it free all but never.
    static RT: Mutex<Option<(u32, &'static tokio::runtime::Runtime)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut slot = RT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((owner, rt)) = *slot
        && owner == pid
    {
        return Ok(rt.handle().clone());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("kmseal-kms-io")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // Leaked on purpose: it lives as long as the process, and a runtime inherited by a
    // forked child must never be dropped there.
    let rt: &'static tokio::runtime::Runtime = Box::leak(Box::new(rt));
    *slot = Some((pid, rt));
    Ok(rt.handle().clone())
}

/// Exponential backoff from 100 ms (doubling, capped at 6.4 s) plus up to 50% jitter.
pub fn backoff(attempt: u32) -> Duration {
    let base = 100u64 << attempt.min(6);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()) % (base / 2 + 1))
        .unwrap_or(0);
    Duration::from_millis(base + jitter)
}

/// Runs `op` until it succeeds, fails with a kind that is not retryable, or `retries` retries
/// are spent, sleeping [`backoff`] between attempts. Retryable: throttled, unavailable,
/// timeout, and integrity failures when `retry_integrity` is set (Cloud KMS asks callers to
/// retry a checksum mismatch a limited number of times).
///
/// Sleeps with tokio's timer, so call it *inside* [`on_runtime`], never around it.
pub async fn retry<T, F, Fut>(
    provider: &'static str,
    retries: u32,
    retry_integrity: bool,
    mut op: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let retryable = |e: &Error| match e {
        Error::Kms { kind, .. } => {
            kind.is_retryable() || (retry_integrity && *kind == KmsErrorKind::Integrity)
        }
        _ => false,
    };
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if attempt < retries && retryable(&e) => {
                let delay = backoff(attempt);
                tracing::debug!(provider, attempt, ?delay, error = %e, "retrying KMS call");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Owns secret request bytes in locked memory for an HTTP client.
struct LockedBytes(SecretBytes);

impl AsRef<[u8]> for LockedBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

/// `Bytes` over locked memory, wiped when the HTTP stack drops its last reference.
pub fn locked_bytes(secret: SecretBytes) -> Bytes {
    Bytes::from_owner(LockedBytes(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_the_caller_does_next() {
        assert_eq!(status_kind(401), KmsErrorKind::AccessDenied);
        assert_eq!(status_kind(403), KmsErrorKind::AccessDenied);
        assert_eq!(status_kind(404), KmsErrorKind::NotFound);
        assert_eq!(status_kind(408), KmsErrorKind::Timeout);
        assert_eq!(status_kind(429), KmsErrorKind::Throttled);
        assert_eq!(status_kind(503), KmsErrorKind::Unavailable);
        assert_eq!(status_kind(400), KmsErrorKind::Other);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(
            backoff(0) >= Duration::from_millis(100) && backoff(0) <= Duration::from_millis(150)
        );
        assert!(backoff(3) >= Duration::from_millis(800));
        assert!(backoff(30) <= Duration::from_millis(9600));
    }

    #[test]
    fn locked_bytes_expose_the_secret_to_the_client() {
        let b = locked_bytes(SecretBytes::from_slice(b"body").unwrap());
        assert_eq!(&b[..], b"body");
    }

    #[test]
    fn retry_spends_exactly_the_allowed_retries_and_stops_on_hard_errors() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let calls = AtomicU32::new(0);
        let result: Result<(), Error> = kmseal::blocking::block_on(on_runtime("test", async {
            Err(kms_error("test", KmsErrorKind::Other, "not from here"))
        }));
        assert!(result.is_err());
        let unavailable = kmseal::blocking::block_on(on_runtime("test", {
            let calls = std::sync::Arc::new(AtomicU32::new(0));
            let c = calls.clone();
            async move {
                let r: Result<(), Error> = retry("test", 2, false, || {
                    c.fetch_add(1, Ordering::SeqCst);
                    async { Err(kms_error("test", KmsErrorKind::Unavailable, "down")) }
                })
                .await;
                assert!(r.is_err());
                Ok(calls.load(Ordering::SeqCst))
            }
        }))
        .unwrap();
        assert_eq!(unavailable, 3, "one try and two retries");
        let denied = kmseal::blocking::block_on(on_runtime("test", async move {
            let r: Result<(), Error> = retry("test", 5, true, || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(kms_error("test", KmsErrorKind::AccessDenied, "no")) }
            })
            .await;
            assert!(r.is_err());
            Ok(calls.load(Ordering::SeqCst))
        }))
        .unwrap();
        assert_eq!(denied, 1, "access denied is not retried");
    }

    #[test]
    fn runs_without_a_runtime() {
        let v = kmseal::blocking::block_on(on_runtime("test", async { Ok(7) })).unwrap();
        assert_eq!(v, 7);
    }
}
