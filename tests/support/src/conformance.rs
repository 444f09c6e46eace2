//! The provider conformance suite: one set of checks every [`Kek`] implementation must pass.
//! Provider crates call [`run`] from their integration tests against a real server or a
//! faithful stand-in, the way object_store runs one integration suite against every store.
//!
//! The checks panic with a description on failure, like `assert!`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use kmseal::{
    DataKey, Decryptor, EncryptionContext, Encryptor, Error, Kek, KmsErrorKind, LocalKek,
    WrappedKey,
};

/// Runs every check. `kek` and `other` must be two different keys of the same provider
/// (`other` is used to show that one key cannot unwrap another's data key).
pub async fn run(kek: Arc<dyn Kek>, other: Arc<dyn Kek>) {
    round_trip(kek.as_ref()).await;
    wrong_context_is_refused(kek.as_ref()).await;
    context_is_bound_by_the_header(kek.clone()).await;
    another_key_cannot_unwrap(kek.as_ref(), other.as_ref()).await;
    tampered_wrapped_key_is_refused(kek.as_ref()).await;
    large_context_round_trips(kek.as_ref()).await;
    concurrent_use(kek.clone(), 32).await;
    envelope_with_a_local_break_glass_key(kek.clone()).await;
    caches_and_rotation(kek).await;
}

/// The checks for [`Kek::unwrap_foreign`], for providers that implement it. `foreign` is
/// `dek` encrypted by another tool under `kek`'s key, without associated data, in the layout
/// the provider documents (e.g. what SOPS stores); `other` is another key of the provider.
///
/// The foreign key opens; a tampered copy, another key and another KEK's claim are refused
/// with a typed error that holds no key bytes; the default of the trait refuses; and, where
/// the KMS binds associated data, kmseal's own wrapped keys and foreign ones never open as
/// each other.
pub async fn foreign_unwrap(kek: &dyn Kek, other: &dyn Kek, foreign: &WrappedKey, dek: &DataKey) {
    let back = kek
        .unwrap_foreign(foreign)
        .await
        .unwrap_or_else(|e| panic!("unwrap_foreign: {e}"));
    assert!(back == *dek, "unwrap_foreign returned a different key");
    let no_key_bytes = |e: &Error, what: &str| {
        let text = format!("{e} {e:?}");
        let hex: String = dek
            .expose_secret()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let b64 = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            dek.expose_secret(),
        );
        assert!(
            !text.contains(&hex) && !text.contains(&b64[..16]),
            "{what}: the error shows the key"
        );
    };

    let mut tampered = foreign.clone();
    tamper(&mut tampered.ciphertext);
    let err = kek.unwrap_foreign(&tampered).await.err();
    no_key_bytes(err.as_ref().unwrap_or(&Error::Decrypt), "tampered");
    assert_refused(err.map_or(Ok(back), Err), "tampered foreign ciphertext");

    // Another KEK does not claim it: refused before any KMS call.
    assert!(!other.matches(foreign), "another key claims a foreign key");
    let err = other.unwrap_foreign(foreign).await.err();
    no_key_bytes(err.as_ref().unwrap_or(&Error::Decrypt), "other KEK");
    assert_refused(
        err.map_or(Ok(DataKey::generate().unwrap()), Err),
        "other KEK",
    );
    // A KEK that does not opt in refuses with a usage error.
    let local = LocalKek::generate().unwrap();
    assert!(matches!(
        local.unwrap_foreign(foreign).await,
        Err(Error::InvalidArgument(_))
    ));

    if kek.binds_context() {
        assert_refused(
            kek.unwrap(foreign, &EncryptionContext::new()).await,
            "a foreign key through unwrap (empty context)",
        );
        let ours = kek.wrap(dek, &EncryptionContext::new()).await.unwrap();
        assert_refused(
            kek.unwrap_foreign(&ours).await,
            "kmseal's own wrapped key through unwrap_foreign",
        );
    }
}

/// Changes one byte of a ciphertext in the middle, keeping a transit ciphertext
/// (`vault:vN:BASE64`) valid base64.
fn tamper(ct: &mut [u8]) {
    let mid = ct.len() / 2;
    if ct.starts_with(b"vault:") {
        ct[mid] = if ct[mid] == b'A' { b'B' } else { b'A' };
    } else {
        ct[mid] ^= 0x01;
    }
}

fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    EncryptionContext::try_from(pairs.to_vec()).unwrap()
}

/// Wrap then unwrap returns the same key; the wrapped key names this KEK.
pub async fn round_trip(kek: &dyn Kek) {
    let dek = DataKey::generate().unwrap();
    let c = ctx(&[("app", "conformance"), ("tenant", "t1")]);
    let wrapped = kek
        .wrap(&dek, &c)
        .await
        .unwrap_or_else(|e| panic!("wrap: {e}"));
    assert_eq!(wrapped.provider, kek.provider());
    assert!(
        kek.matches(&wrapped),
        "a KEK must claim what it wrapped: {wrapped:?}"
    );
    assert!(
        !wrapped
            .ciphertext
            .windows(16)
            .any(|w| w == &dek.expose_secret()[..16]),
        "the wrapped key contains the data key in clear"
    );
    let back = kek
        .unwrap(&wrapped, &c)
        .await
        .unwrap_or_else(|e| panic!("unwrap: {e}"));
    assert!(back == dek, "unwrap returned a different key");
    let empty = EncryptionContext::new();
    let wrapped = kek.wrap(&dek, &empty).await.unwrap();
    assert!(
        kek.unwrap(&wrapped, &empty).await.unwrap() == dek,
        "empty context"
    );
}

fn assert_refused(result: Result<DataKey, Error>, what: &str) {
    match result {
        Ok(_) => panic!("{what}: unwrap succeeded but must fail"),
        Err(Error::Decrypt) => {}
        Err(Error::Kms { kind, .. }) => assert!(
            matches!(
                kind,
                KmsErrorKind::InvalidCiphertext
                    | KmsErrorKind::AccessDenied
                    | KmsErrorKind::NotFound
            ),
            "{what}: unexpected error kind {kind}"
        ),
        Err(other) => panic!("{what}: unexpected error {other}"),
    }
}

/// A wrapped key is bound to its encryption context by the KMS, when the KEK says it
/// [binds context](Kek::binds_context) (the header binds it in every case:
/// [`context_is_bound_by_the_header`]).
pub async fn wrong_context_is_refused(kek: &dyn Kek) {
    if !kek.binds_context() {
        return;
    }
    let dek = DataKey::generate().unwrap();
    let wrapped = kek.wrap(&dek, &ctx(&[("app", "a")])).await.unwrap();
    assert_refused(
        kek.unwrap(&wrapped, &ctx(&[("app", "b")])).await,
        "other context value",
    );
    assert_refused(
        kek.unwrap(&wrapped, &EncryptionContext::new()).await,
        "context dropped",
    );
    assert_refused(
        kek.unwrap(&wrapped, &ctx(&[("app", "a"), ("x", "y")]))
            .await,
        "context extended",
    );
}

/// A message whose header context is altered, or that a caller expects under another
/// context, does not open (whatever the KMS does with the context).
pub async fn context_is_bound_by_the_header(kek: Arc<dyn Kek>) {
    let msg = Encryptor::new(kek.clone())
        .context("tenant", "conformance-tenant-a")
        .unwrap()
        .encrypt(b"payload")
        .await
        .unwrap();
    let at = msg
        .windows(20)
        .position(|w| w == b"conformance-tenant-a")
        .expect("the context is in the header");
    let mut altered = msg.clone();
    altered[at + 19] = b'b';
    assert!(
        Decryptor::new(kek.clone()).decrypt(&altered).await.is_err(),
        "a message with an altered context opened"
    );
    assert!(
        Decryptor::new(kek.clone())
            .expect_context("tenant", "conformance-tenant-b")
            .unwrap()
            .decrypt(&msg)
            .await
            .is_err(),
        "a message opened under an unexpected context"
    );
    let pt = Decryptor::new(kek)
        .expect_context("tenant", "conformance-tenant-a")
        .unwrap()
        .decrypt(&msg)
        .await
        .unwrap();
    assert_eq!(pt.expose_secret(), b"payload");
}

/// Another key of the same provider cannot unwrap (asked directly, bypassing `matches`).
pub async fn another_key_cannot_unwrap(kek: &dyn Kek, other: &dyn Kek) {
    assert_ne!(
        kek.key_id(),
        other.key_id(),
        "the suite needs two different keys"
    );
    let dek = DataKey::generate().unwrap();
    let c = ctx(&[("app", "a")]);
    let wrapped = kek.wrap(&dek, &c).await.unwrap();
    assert!(
        !other.matches(&wrapped),
        "another key must not claim this wrapped key"
    );
    let relabelled = WrappedKey {
        key_id: other.key_id().to_owned(),
        ..wrapped
    };
    assert_refused(
        other.unwrap(&relabelled, &c).await,
        "unwrap under another key",
    );
}

/// Every single-byte change of the wrapped key is refused (sampled positions).
pub async fn tampered_wrapped_key_is_refused(kek: &dyn Kek) {
    let dek = DataKey::generate().unwrap();
    let c = ctx(&[("app", "a")]);
    let wrapped = kek.wrap(&dek, &c).await.unwrap();
    let n = wrapped.ciphertext.len();
    for pos in [0, n / 4, n / 2, 3 * n / 4, n - 1] {
        let mut t = wrapped.clone();
        // Stay within printable ASCII so text-encoded ciphertexts stay text.
        t.ciphertext[pos] = if t.ciphertext[pos] == b'A' {
            b'B'
        } else {
            b'A'
        };
        if let Ok(k) = kek.unwrap(&t, &c).await {
            assert!(k != dek, "tampered at {pos}: same key returned");
            panic!("tampered wrapped key (byte {pos}) was accepted");
        }
    }
    let mut short = wrapped.clone();
    short.ciphertext.truncate(n / 2);
    assert_refused(kek.unwrap(&short, &c).await, "truncated wrapped key");
}

/// A context of about 4 KiB (32 pairs) round-trips.
pub async fn large_context_round_trips(kek: &dyn Kek) {
    let mut c = EncryptionContext::new();
    for i in 0..32 {
        c.insert(format!("key-{i:02}"), "v".repeat(120)).unwrap();
    }
    let dek = DataKey::generate().unwrap();
    let wrapped = kek.wrap(&dek, &c).await.unwrap();
    assert!(kek.unwrap(&wrapped, &c).await.unwrap() == dek);
}

/// `n` wraps and unwraps in flight at once all succeed and return the right keys.
pub async fn concurrent_use(kek: Arc<dyn Kek>, n: usize) {
    let tasks: Vec<Pin<Box<dyn Future<Output = bool> + Send>>> = (0..n)
        .map(|i| {
            let kek = kek.clone();
            Box::pin(async move {
                let dek = DataKey::generate().unwrap();
                let c = ctx(&[("task", &i.to_string())]);
                let w = kek
                    .wrap(&dek, &c)
                    .await
                    .unwrap_or_else(|e| panic!("task {i} wrap: {e}"));
                let k = kek
                    .unwrap(&w, &c)
                    .await
                    .unwrap_or_else(|e| panic!("task {i} unwrap: {e}"));
                k == dek
            }) as Pin<Box<dyn Future<Output = bool> + Send>>
        })
        .collect();
    let results = JoinAll {
        futures: tasks.into_iter().map(Some).collect(),
        done: vec![None; n],
    }
    .await;
    assert!(
        results.into_iter().all(|ok| ok),
        "a concurrent unwrap returned the wrong key"
    );
}

/// A message wrapped for the provider and a local break-glass key opens with either.
pub async fn envelope_with_a_local_break_glass_key(kek: Arc<dyn Kek>) {
    let local: Arc<dyn Kek> = Arc::new(LocalKek::generate().unwrap());
    let msg = Encryptor::new(kek.clone())
        .add_kek(local.clone())
        .context("app", "conformance")
        .unwrap()
        .encrypt(b"payload")
        .await
        .unwrap();
    for k in [kek, local] {
        let pt = Decryptor::new(k)
            .expect_context("app", "conformance")
            .unwrap()
            .decrypt(&msg)
            .await
            .unwrap();
        assert_eq!(pt.expose_secret(), b"payload");
    }
}

/// Counts the calls that reach the wrapped KEK (what a cache saves).
#[derive(Debug)]
pub struct Counted {
    inner: Arc<dyn Kek>,
    wraps: std::sync::atomic::AtomicU32,
    unwraps: std::sync::atomic::AtomicU32,
}

impl Counted {
    /// Counts the calls that reach `inner`.
    pub fn new(inner: Arc<dyn Kek>) -> Counted {
        Counted {
            inner,
            wraps: Default::default(),
            unwraps: Default::default(),
        }
    }

    /// How many unwraps reached the KEK.
    pub fn unwraps(&self) -> u32 {
        self.unwraps.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Kek for Counted {
    fn provider(&self) -> &str {
        self.inner.provider()
    }
    fn key_id(&self) -> &str {
        self.inner.key_id()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn matches(&self, wrapped: &WrappedKey) -> bool {
        self.inner.matches(wrapped)
    }
    fn binds_context(&self) -> bool {
        self.inner.binds_context()
    }
    async fn wrap(&self, key: &DataKey, context: &EncryptionContext) -> Result<WrappedKey, Error> {
        self.wraps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.wrap(key, context).await
    }
    async fn unwrap(
        &self,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
    ) -> Result<DataKey, Error> {
        self.unwraps
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.unwrap(wrapped, context).await
    }
}

/// Through the caches, five messages cost one wrap and one unwrap; a message rewrapped from
/// this KEK to a local key and back opens with each, frames unchanged.
pub async fn caches_and_rotation(kek: Arc<dyn Kek>) {
    use std::sync::atomic::Ordering::SeqCst;
    let counted = Arc::new(Counted::new(kek));
    let enc = Encryptor::new(counted.clone())
        .context("app", "cache")
        .unwrap()
        .cache(kmseal::EncryptCache::new(kmseal::CacheLimits::default()));
    let mut msgs = Vec::new();
    for i in 0..5u8 {
        msgs.push(enc.encrypt(&[i; 100]).await.unwrap());
    }
    assert_eq!(counted.wraps.load(SeqCst), 1, "five messages, one wrap");
    let dec = Decryptor::new(counted.clone()).cache(kmseal::DecryptCache::new(
        std::time::Duration::from_secs(60),
        16,
    ));
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(
            dec.decrypt(m).await.unwrap().expose_secret(),
            &[i as u8; 100]
        );
    }
    assert_eq!(counted.unwraps.load(SeqCst), 1, "five messages, one unwrap");

    let local: Arc<dyn Kek> = Arc::new(LocalKek::generate().unwrap());
    let out = kmseal::rotate::Rotator::rewrap(
        Decryptor::new(counted.clone()),
        vec![local.clone(), counted.clone()],
    )
    .rotate_message(&msgs[0])
    .await
    .unwrap();
    let kmseal::rotate::Outcome::Rotated(both) = out else {
        panic!("rewrap did not rotate: {out:?}");
    };
    let frames = |m: &[u8]| {
        let (_, used) = kmseal::Header::parse(m, &kmseal::Limits::default()).unwrap();
        m[used..].to_vec()
    };
    assert_eq!(frames(&both), frames(&msgs[0]), "rewrap kept the frames");
    for k in [local, counted as Arc<dyn Kek>] {
        let pt = Decryptor::new(k).decrypt(&both).await.unwrap();
        assert_eq!(pt.expose_secret(), &[0u8; 100]);
    }
}

/// Encrypts and decrypts through kmseal's blocking facade, on a thread with no tokio runtime
/// (a CLI, a synchronous service): the provider must bring its own I/O runtime. Call it from
/// a plain `#[test]`. `before_encrypt` and `before_decrypt` run just before each call (a
/// stand-in's fault injection, to show retries work there too).
pub fn blocking_round_trip(
    kek: Arc<dyn Kek>,
    before_encrypt: impl FnOnce(),
    before_decrypt: impl FnOnce(),
) {
    assert!(
        tokio::runtime::Handle::try_current().is_err(),
        "call blocking_round_trip from a thread without a tokio runtime"
    );
    before_encrypt();
    let msg = Encryptor::new(kek.clone())
        .encrypt_blocking(b"no runtime here")
        .unwrap();
    before_decrypt();
    let pt = Decryptor::new(kek).decrypt_blocking(&msg).unwrap();
    assert_eq!(pt.expose_secret(), b"no runtime here");
}

/// Ten messages under ten data keys, each decrypted 100 times, all at once, through one
/// [`DecryptCache`](kmseal::DecryptCache): the server must see exactly ten unwraps.
/// `server_calls` counts the unwraps the server itself recorded (its request or audit log,
/// not our counters); call it on a multi-threaded runtime.
pub async fn cached_concurrent_decrypts(kek: Arc<dyn Kek>, server_calls: impl Fn() -> usize) {
    let mut msgs = Vec::new();
    for i in 0..10u8 {
        msgs.push(
            Encryptor::new(kek.clone())
                .encrypt(&[i; 256])
                .await
                .unwrap(),
        );
    }
    let dec = Decryptor::new(kek.clone()).cache(kmseal::DecryptCache::new(
        std::time::Duration::from_secs(60),
        64,
    ));
    let before = server_calls();
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let (dec, msg) = (dec.clone(), msgs[i % 10].clone());
            tokio::spawn(async move { (i % 10, dec.decrypt(&msg).await) })
        })
        .collect();
    for t in tasks {
        let (i, r) = t.await.unwrap();
        assert_eq!(r.unwrap().expose_secret(), &[i as u8; 256]);
    }
    // A log written by another process may trail the answers by a moment.
    let mut calls = server_calls() - before;
    for _ in 0..10 {
        if calls >= 10 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        calls = server_calls() - before;
    }
    assert_eq!(calls, 10, "the server saw {calls} unwraps for 10 data keys");
    assert_eq!(dec.cache_stats().unwrap().kms_calls, 10);
}

/// Polls every future until all are done (no runtime needed beyond the caller's).
struct JoinAll<T> {
    futures: Vec<Option<Pin<Box<dyn Future<Output = T> + Send>>>>,
    done: Vec<Option<T>>,
}

impl<T: Clone + Unpin> Future for JoinAll<T> {
    type Output = Vec<T>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<T>> {
        let this = &mut *self;
        for (slot, out) in this.futures.iter_mut().zip(this.done.iter_mut()) {
            if let Some(f) = slot
                && let Poll::Ready(v) = f.as_mut().poll(cx)
            {
                *out = Some(v);
                *slot = None;
            }
        }
        if this.futures.iter().all(Option::is_none) {
            Poll::Ready(this.done.iter_mut().map(|d| d.take().unwrap()).collect())
        } else {
            Poll::Pending
        }
    }
}
