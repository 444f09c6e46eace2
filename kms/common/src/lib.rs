//! Plumbing shared by kmseal's KMS provider crates: error construction, a tokio bridge for
//! callers without a runtime, retry backoff, and request bodies held in locked memory.
#![forbid(unsafe_code)]

use std::future::Future;
use std::sync::OnceLock;
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

/// Runs `fut` on the caller's tokio runtime, or, when there is none (kmseal's blocking
/// facade, the CLI), on one private single-thread I/O runtime shared by all providers: the
/// cloud SDKs and reqwest need a tokio reactor.
pub async fn on_runtime<T: Send + 'static>(
    provider: &'static str,
    fut: impl Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Error> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return fut.await;
    }
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    let rt = RT
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("kmseal-kms-io")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| {
            kms_error(
                provider,
                KmsErrorKind::Other,
                format!("cannot start an I/O runtime: {e}"),
            )
        })?;
    rt.spawn(fut).await.map_err(|e| {
        kms_error(
            provider,
            KmsErrorKind::Other,
            format!("I/O task failed: {e}"),
        )
    })?
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
    fn runs_without_a_runtime() {
        let v = kmseal::blocking::block_on(on_runtime("test", async { Ok(7) })).unwrap();
        assert_eq!(v, 7);
    }
}
