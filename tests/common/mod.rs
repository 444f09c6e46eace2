#![allow(unreachable_pub, clippy::cast_possible_truncation)] // test patterns and helpers
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use kmseal::{
    DataKey, Decryptor, EncryptionContext, Encryptor, Error, Kek, KmsErrorKind, LocalKek,
    SecretBytes, Suite, WrappedKey,
};

pub fn kek() -> Arc<LocalKek> {
    Arc::new(LocalKek::generate().unwrap())
}

pub fn encrypt(kek: &Arc<LocalKek>, suite: Suite, frame_size: u32, pt: &[u8]) -> Vec<u8> {
    Encryptor::new(kek.clone() as Arc<dyn Kek>)
        .context("app", "test")
        .unwrap()
        .suite(suite)
        .frame_size(kmseal::FrameSize::new(frame_size).unwrap())
        .encrypt_blocking(pt)
        .unwrap()
}

pub fn decryptor(kek: &Arc<LocalKek>) -> Decryptor {
    Decryptor::new(kek.clone() as Arc<dyn Kek>)
        .expect_context("app", "test")
        .unwrap()
}

/// One-shot decryption.
pub fn open(kek: &Arc<LocalKek>, msg: &[u8]) -> Result<SecretBytes, Error> {
    decryptor(kek).decrypt_blocking(msg)
}

/// Streaming decryption with reads of `chunk` bytes; returns the plaintext or the first error
/// (as a kmseal error when it is one).
pub fn open_stream(kek: &Arc<LocalKek>, msg: &[u8], chunk: usize) -> Result<Vec<u8>, String> {
    let mut r = decryptor(kek)
        .reader_blocking(msg)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk.max(1)];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
}

mod scan;
#[allow(unused_imports)] // not every test binary scans
pub use scan::{MASK, scan};

/// A local KEK that counts its calls and can be told to fail the next N of them.
#[derive(Debug)]
pub struct Counting {
    pub inner: LocalKek,
    pub wraps: AtomicU32,
    pub unwraps: AtomicU32,
    pub rewraps: AtomicU32,
    pub fail_next: AtomicU32,
}

impl Counting {
    pub fn new() -> Arc<Counting> {
        Arc::new(Counting {
            inner: LocalKek::generate().unwrap(),
            wraps: AtomicU32::new(0),
            unwraps: AtomicU32::new(0),
            rewraps: AtomicU32::new(0),
            fail_next: AtomicU32::new(0),
        })
    }

    fn maybe_fail(&self) -> Result<(), Error> {
        let failing = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(Error::Kms {
                provider: "local",
                kind: KmsErrorKind::Unavailable,
                message: "injected failure".into(),
                source: None,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Kek for Counting {
    fn provider(&self) -> &str {
        self.inner.provider()
    }
    fn key_id(&self) -> &str {
        self.inner.key_id()
    }
    async fn wrap(&self, key: &DataKey, context: &EncryptionContext) -> Result<WrappedKey, Error> {
        self.wraps.fetch_add(1, Ordering::SeqCst);
        self.maybe_fail()?;
        self.inner.wrap(key, context).await
    }
    async fn unwrap(&self, w: &WrappedKey, context: &EncryptionContext) -> Result<DataKey, Error> {
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        self.maybe_fail()?;
        self.inner.unwrap(w, context).await
    }
    /// Counted apart from wraps and unwraps (the default behind it calls neither of ours).
    async fn rewrap(
        &self,
        w: &WrappedKey,
        key: &DataKey,
        context: &EncryptionContext,
    ) -> Result<WrappedKey, Error> {
        self.rewraps.fetch_add(1, Ordering::SeqCst);
        self.maybe_fail()?;
        self.inner.rewrap(w, key, context).await
    }
}
