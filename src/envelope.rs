//! [`Encryptor`] and [`Decryptor`]: the public envelope API.
//!
//! Encryption generates a fresh data key in locked memory, wraps it under every configured
//! KEK (binding the encryption context), derives the per-message keys and writes the header
//! and frames. Decryption asks only the KEKs its caller trusts, in the caller's order, checks
//! the key commitment and header tag, and only then opens frames.

use std::io::{Read, Write};
use std::sync::Arc;

use crate::aead::Backend;
use crate::cache::{CacheStats, DecryptCache, EncryptCache};
use crate::context::EncryptionContext;
use crate::error::{Error, KekFailure};
use crate::format::{FrameSize, Header, Limits, body_len, wire_id};
use crate::frame::{open_all, seal_all};
use crate::kek::{DataKey, Kek, WrappedKey};
use crate::key_schedule::{MessageKeys, application_label_len};
use crate::secret::{LockPolicy, SecretBytes, fill_random};
use crate::signature::{MessageSigner, MessageVerifier, SIGNING_KEY_CONTEXT, TRAILER_LEN};
use crate::stream::{DecryptReader, EncryptWriter};
use crate::suite::{KEY_LEN, Suite};

/// How many wrapped keys naming one trusted KEK a decryptor tries per message. Encryptors
/// write one per KEK; the second attempt tolerates a message that names a KEK twice. Junk
/// entries beyond this cost no KMS call.
const MAX_FAILED_UNWRAPS_PER_KEK: usize = 2;

/// Encrypts messages under one or more KEKs.
///
/// ```
/// # kmseal::blocking::block_on(async {
/// use std::sync::Arc;
/// use kmseal::{Decryptor, Encryptor, LocalKek};
///
/// let kek = Arc::new(LocalKek::generate()?);
/// let sealed = Encryptor::new(kek.clone())
///     .context("app", "billing")?
///     .encrypt(b"card number 4111 1111 1111 1111")
///     .await?;
/// let plain = Decryptor::new(kek)
///     .expect_context("app", "billing")?
///     .decrypt(&sealed)
///     .await?;
/// assert_eq!(plain.expose_secret(), b"card number 4111 1111 1111 1111");
/// # Ok::<(), kmseal::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Encryptor {
    keks: Vec<Arc<dyn Kek>>,
    context: EncryptionContext,
    suite: Suite,
    frame_size: FrameSize,
    kms_data_key: bool,
    cache: Option<EncryptCache>,
    signed: bool,
    backend: Option<Backend>,
    lock_policy: Option<LockPolicy>,
    pub(crate) max_threads: Option<usize>,
}

impl Encryptor {
    /// An encryptor wrapping under `kek`, AES-256-GCM, 64 KiB frames, empty context.
    pub fn new(kek: Arc<dyn Kek>) -> Encryptor {
        Encryptor {
            keks: vec![kek],
            context: EncryptionContext::new(),
            suite: Suite::default(),
            frame_size: FrameSize::DEFAULT,
            kms_data_key: false,
            cache: None,
            signed: false,
            backend: None,
            lock_policy: None,
            max_threads: None,
        }
    }

    /// An encryptor wrapping every message under each of `keks`, in order: a keyring, any one
    /// of which opens the message (two regions and a break-glass key). An empty set is
    /// [`Error::InvalidArgument`]: a message nobody can open is never what the caller meant.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kmseal::{Decryptor, Encryptor, Kek, LocalKek};
    ///
    /// let (a, b) = (Arc::new(LocalKek::generate()?), Arc::new(LocalKek::generate()?));
    /// let ring: Vec<Arc<dyn Kek>> = vec![a, b.clone()];
    /// let sealed = Encryptor::with_keks(ring)?.encrypt_blocking(b"either opens it")?;
    /// assert_eq!(Decryptor::new(b).decrypt_blocking(&sealed)?.expose_secret(), b"either opens it");
    /// assert!(Encryptor::with_keks(Vec::new()).is_err());
    /// # Ok::<(), kmseal::Error>(())
    /// ```
    pub fn with_keks(keks: impl IntoIterator<Item = Arc<dyn Kek>>) -> Result<Encryptor, Error> {
        let mut keks = keks.into_iter();
        let first = keks.next().ok_or(Error::InvalidArgument(
            "an encryptor needs at least one KEK",
        ))?;
        Ok(keks.fold(Encryptor::new(first), Encryptor::add_kek))
    }

    /// Has the first KEK's KMS generate each data key (AWS `GenerateDataKey`) instead of the
    /// local CSPRNG; the other KEKs then wrap it as usual. Off by default: local generation
    /// saves a round trip and keeps the key out of one more response body. Encryption fails
    /// with [`Error::InvalidArgument`] if the first KEK cannot generate keys.
    pub fn data_key_from_kms(mut self, enabled: bool) -> Encryptor {
        self.kms_data_key = enabled;
        self
    }

    /// Also wraps the data key under `kek`, so either KEK can decrypt (a keyring).
    pub fn add_kek(mut self, kek: Arc<dyn Kek>) -> Encryptor {
        self.keks.push(kek);
        self
    }

    /// Adds an encryption-context pair.
    pub fn context(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Encryptor, Error> {
        self.context.insert(key, value)?;
        Ok(self)
    }

    /// Replaces the encryption context.
    pub fn with_context(mut self, context: EncryptionContext) -> Encryptor {
        self.context = context;
        self
    }

    /// Chooses the payload suite.
    pub fn suite(mut self, suite: Suite) -> Encryptor {
        self.suite = suite;
        self
    }

    /// Runs the payload AEAD on `backend` (default: [`Backend::process_default`], RustCrypto
    /// unless the process chose otherwise). Messages are byte-identical either way.
    /// [`Error::InvalidArgument`] if this build lacks `backend`.
    pub fn backend(mut self, backend: Backend) -> Result<Encryptor, Error> {
        self.backend = Some(backend.check_available()?);
        Ok(self)
    }

    /// Locks the plaintext buffers this encryptor's streams allocate under `policy` (default:
    /// [`LockPolicy::process_default`]): `Strict` fails a stream whose buffer cannot be locked
    /// rather than fall back to unlocked memory. Data keys and other small secrets stay in the
    /// shared locked pool under the process default.
    pub fn lock_policy(mut self, policy: LockPolicy) -> Encryptor {
        self.lock_policy = Some(policy);
        self
    }

    /// Signs every message (a signed suite, ids `0x0101`/`0x0102`): a fresh Ed25519 key per
    /// message, its public key in the encryption context (so every KEK binds it to the
    /// wrapped key) and a signature after the final frame. With several KEKs, this is what
    /// stops a recipient who can decrypt with one KEK from forging messages to the others
    /// (SECURITY.md). Costs one key pair and signature per message (BENCHMARKS.md) and a
    /// fresh data key per message: the public key is part of what the KEKs wrap under, so an
    /// [`EncryptCache`] cannot share keys between signed messages.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kmseal::{Decryptor, Encryptor, LocalKek};
    ///
    /// let kek = Arc::new(LocalKek::generate()?);
    /// let sealed = Encryptor::new(kek.clone()).signed(true).encrypt_blocking(b"record")?;
    /// let dec = Decryptor::new(kek).require_signed(true);
    /// let (header, plain) = kmseal::blocking::block_on(dec.decrypt_with_header(&sealed))?;
    /// assert!(header.is_signed());
    /// assert_eq!(plain.expose_secret(), b"record");
    /// # Ok::<(), kmseal::Error>(())
    /// ```
    pub fn signed(mut self, signed: bool) -> Encryptor {
        self.signed = signed;
        self
    }

    /// Plaintext bytes per frame (default 64 KiB). Decryptors refuse frames above their
    /// [`Limits::max_frame_size`] (default 4 MiB).
    pub fn frame_size(mut self, frame_size: FrameSize) -> Encryptor {
        self.frame_size = frame_size;
        self
    }

    /// At most `threads` threads seal one message, one-shot or streamed. Frames are
    /// independent, so messages of 512 KiB and more are split across threads (at least
    /// 256 KiB each; streams batch frames to do so, see [`EncryptWriter`]); smaller ones stay
    /// on the calling thread. Workers come from rayon's global pool. `1` keeps every message
    /// on the calling thread;
    /// `0` is taken as `1`. Default: the machine's available parallelism, at most 16. The
    /// output is byte-identical whatever the thread count.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kmseal::{Encryptor, LocalKek};
    ///
    /// let enc = Encryptor::new(Arc::new(LocalKek::generate()?)).threads(1);
    /// let sealed = enc.encrypt_blocking(&vec![0u8; 4 << 20])?; // sealed on this thread only
    /// # Ok::<(), kmseal::Error>(())
    /// ```
    pub fn threads(mut self, threads: usize) -> Encryptor {
        self.max_threads = Some(threads.max(1));
        self
    }

    /// Reuses data keys through `cache` for [`encrypt`](Self::encrypt) calls, within the
    /// cache's [`CacheLimits`](crate::CacheLimits); each message still has its own message id
    /// and derived keys. Streams from [`writer`](Self::writer) always get a fresh data key
    /// (their length is unknown in advance, so byte limits could not be kept).
    pub fn cache(mut self, cache: EncryptCache) -> Encryptor {
        self.cache = Some(cache);
        self
    }

    /// The cache's statistics, if one is set.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(EncryptCache::stats)
    }

    /// A fresh data key, wrapped under every KEK with this encryptor's context.
    async fn fresh_key(&self) -> Result<(DataKey, Vec<WrappedKey>), Error> {
        self.fresh_key_with(&self.context).await
    }

    /// A fresh data key, wrapped under every KEK with `context`.
    async fn fresh_key_with(
        &self,
        context: &EncryptionContext,
    ) -> Result<(DataKey, Vec<WrappedKey>), Error> {
        let mut wrapped = Vec::with_capacity(self.keks.len());
        let mut keks = self.keks.iter();
        let dek = if self.kms_data_key {
            let first = keks
                .next()
                .ok_or(Error::Internal("an encryptor without a KEK"))?;
            let (dek, w) = first.generate_data_key(context).await?.ok_or_else(|| {
                Error::InvalidArgument("data_key_from_kms: the first KEK cannot generate data keys")
            })?;
            wrapped.push(w);
            dek
        } else {
            DataKey::generate()?
        };
        for kek in keks {
            wrapped.push(kek.wrap(&dek, context).await?);
        }
        Ok((dek, wrapped))
    }

    /// Gets a data key (cached when a cache is set and the length is known), draws a message
    /// id, derives the message keys and builds the header.
    async fn start(
        &self,
        len: Option<u64>,
    ) -> Result<(Header, MessageKeys, Option<MessageSigner>), Error> {
        if self.context.get(SIGNING_KEY_CONTEXT).is_some() {
            return Err(Error::InvalidContext(format!(
                "`{SIGNING_KEY_CONTEXT}` is reserved for signed messages"
            )));
        }
        if self.signed {
            return self.start_signed().await;
        }
        let (dek, wrapped) = match (&self.cache, len) {
            (Some(cache), Some(len)) => {
                let lease = cache
                    .lease(&self.keks, &self.context, self.kms_data_key, len, || {
                        self.fresh_key()
                    })
                    .await?;
                (lease.key, lease.wrapped)
            }
            _ => {
                let (dek, wrapped) = self.fresh_key().await?;
                (Arc::new(dek), wrapped)
            }
        };
        let (header, keys) = self.seal_header(&dek, wrapped, self.context.clone(), false)?;
        Ok((header, keys, None))
    }

    /// Draws a message id, derives the message keys from `dek` under the wire suite id, and
    /// builds the authenticated header.
    fn seal_header(
        &self,
        dek: &DataKey,
        wrapped: Vec<WrappedKey>,
        context: EncryptionContext,
        signed: bool,
    ) -> Result<(Header, MessageKeys), Error> {
        let mut message_id = [0u8; KEY_LEN];
        fill_random(&mut message_id)?;
        let wire = wire_id(self.suite, signed);
        let backend = self.backend.unwrap_or_else(Backend::process_default);
        let keys = MessageKeys::derive_with_id(dek, &message_id, self.suite, wire, backend);
        let header = Header::seal(
            &keys,
            self.suite,
            signed,
            self.frame_size.get(),
            message_id,
            context,
            wrapped,
        )?;
        Ok((header, keys))
    }

    /// A signed message's start: a fresh key pair whose public key joins the context, and a
    /// fresh data key wrapped under that context (never cached).
    async fn start_signed(&self) -> Result<(Header, MessageKeys, Option<MessageSigner>), Error> {
        let mut signer = MessageSigner::generate()?;
        let mut context = self.context.clone();
        context.insert(SIGNING_KEY_CONTEXT, signer.public_key_text())?;
        let (dek, wrapped) = self.fresh_key_with(&context).await?;
        let (header, keys) = self.seal_header(&dek, wrapped, context, true)?;
        header.signed_prefix(|b| signer.update(b));
        Ok((header, keys, Some(signer)))
    }

    /// Makes a header (fresh data key wrapped under every KEK, this encryptor's context)
    /// with no payload, and returns it with a 32-byte application key derived from the data
    /// key under `label`. For formats built on kmseal's key management, such as value-level
    /// config documents (`kmseal-config`), which store the header and encrypt with their own
    /// construction. [`Decryptor::open_application_key`] recovers the key; rewrap works on the
    /// header as on any message.
    ///
    /// ```
    /// # kmseal::blocking::block_on(async {
    /// use std::sync::Arc;
    /// use kmseal::{Decryptor, Encryptor, LocalKek};
    ///
    /// let kek = Arc::new(LocalKek::generate()?);
    /// let (header, key) = Encryptor::new(kek.clone()).application_key("my-format/v1").await?;
    /// let again = Decryptor::new(kek).open_application_key(&header, "my-format/v1").await?;
    /// assert!(key == again);
    /// # Ok::<(), kmseal::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn application_key(&self, label: &str) -> Result<(Header, SecretBytes), Error> {
        application_label_len(label)?;
        let (dek, wrapped) = self.fresh_key().await?;
        let (header, _) = self.seal_header(&dek, wrapped, self.context.clone(), false)?;
        let key = MessageKeys::application_key(&dek, header.message_id(), label)?;
        Ok((header, key))
    }

    /// Encrypts `plaintext` into a complete message.
    pub async fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.encrypt_into(plaintext, &mut out).await?;
        Ok(out)
    }

    /// Like [`encrypt`](Self::encrypt), writing the message into `out` (replacing its
    /// contents) and reusing its allocation when it is large enough: a service sealing many
    /// messages keeps one buffer and allocates nothing per message for the output. On error
    /// `out` is left empty.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kmseal::{blocking::block_on, Decryptor, Encryptor, LocalKek, SecretBytes};
    ///
    /// let kek = Arc::new(LocalKek::generate()?);
    /// let (enc, dec) = (Encryptor::new(kek.clone()), Decryptor::new(kek));
    /// let (mut sealed, mut opened) = (Vec::new(), SecretBytes::new());
    /// for record in [&b"first"[..], b"second", b"third"] {
    ///     block_on(enc.encrypt_into(record, &mut sealed))?;
    ///     block_on(dec.decrypt_into(&sealed, &mut opened))?;
    ///     assert_eq!(opened.expose_secret(), record);
    /// }
    /// # Ok::<(), kmseal::Error>(())
    /// ```
    pub async fn encrypt_into(&self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let result = self.encrypt_into_inner(plaintext, out).await;
        if result.is_err() {
            out.clear();
        }
        result
    }

    async fn encrypt_into_inner(&self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let prepared = self.prepare(plaintext.len()).await?;
        let total = prepared.sealed_len();
        // Every byte of `out[..total]` is overwritten below, so avoid zero-filling what will
        // be overwritten: keep old bytes where they exist, and take a fresh allocation (whose
        // zero pages the OS provides lazily, touched first by the frame workers) rather than
        // growing and copying.
        if out.len() >= total {
            out.truncate(total);
        } else if out.capacity() >= total {
            out.resize(total, 0);
        } else {
            *out = vec![0u8; total];
            crate::secret::advise_huge_pages(out);
        }
        prepared.seal_into(plaintext, out)
    }

    /// The first half of a one-shot [`encrypt`](Self::encrypt): gets the data key (from the
    /// cache or the KEKs), builds the header and fixes the message's exact length, so that the
    /// caller can provide the output buffer, then seal into it with
    /// [`PreparedMessage::seal_into`]. For bindings and allocators that own the output
    /// (a Python `bytes`, a pooled buffer); [`encrypt_into`](Self::encrypt_into) covers
    /// `Vec`s.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kmseal::{blocking::block_on, Decryptor, Encryptor, LocalKek};
    ///
    /// let kek = Arc::new(LocalKek::generate()?);
    /// let plaintext = b"sealed into a buffer the caller allocated";
    /// let prepared = block_on(Encryptor::new(kek.clone()).prepare(plaintext.len()))?;
    /// let mut out = vec![0u8; prepared.sealed_len()];
    /// prepared.seal_into(plaintext, &mut out)?;
    /// assert_eq!(block_on(Decryptor::new(kek).decrypt(&out))?.expose_secret(), plaintext);
    /// # Ok::<(), kmseal::Error>(())
    /// ```
    pub async fn prepare(&self, plaintext_len: usize) -> Result<PreparedMessage, Error> {
        let len = plaintext_len as u64;
        let (header, keys, signer) = self.start(Some(len)).await?;
        let head = header.encoded_len();
        let trailer = if signer.is_some() { TRAILER_LEN } else { 0 };
        let total = body_len(len, self.frame_size.get())
            .and_then(|b| usize::try_from(b).ok())
            .and_then(|b| b.checked_add(head))
            .and_then(|b| b.checked_add(trailer))
            .ok_or_else(|| Error::InvalidArgument("plaintext too large"))?;
        Ok(PreparedMessage {
            header,
            keys,
            signer,
            plaintext_len,
            total,
            frame_size: self.frame_size.get(),
            max_threads: self.max_threads,
        })
    }

    /// Blocking form of [`prepare`](Self::prepare).
    pub fn prepare_blocking(&self, plaintext_len: usize) -> Result<PreparedMessage, Error> {
        crate::blocking::block_on(self.prepare(plaintext_len))
    }

    /// A streaming encryptor writing to `writer`. Call
    /// [`EncryptWriter::finish`] when done. Memory use is bounded whatever the input size: one
    /// frame on one thread, batches of at most 8 MiB with more.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::sync::Arc;
    /// use kmseal::{Decryptor, Encryptor, LocalKek, SecretBytes};
    ///
    /// let kek = Arc::new(LocalKek::generate()?);
    /// let mut w = Encryptor::new(kek.clone()).writer_blocking(Vec::new())?;
    /// for line in ["user=app\n", "password=s3cret\n"] {
    ///     w.write_all(line.as_bytes())?;
    /// }
    /// let sealed = w.finish()?; // writes the final frame; without it the stream is truncated
    ///
    /// // Read the plaintext straight into locked memory.
    /// let mut r = Decryptor::new(kek).reader_blocking(&sealed[..])?;
    /// let mut plain = SecretBytes::new();
    /// std::io::copy(&mut r, &mut plain)?;
    /// assert_eq!(plain.expose_secret(), b"user=app\npassword=s3cret\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn writer<W: Write>(&self, writer: W) -> Result<EncryptWriter<W>, Error> {
        let (header, keys, signer) = self.start(None).await?;
        let policy = self.lock_policy.unwrap_or_else(LockPolicy::process_default);
        EncryptWriter::new(writer, &header, keys, self.max_threads, signer, policy)
    }

    /// Blocking form of [`encrypt`](Self::encrypt), for callers without an async runtime.
    pub fn encrypt_blocking(&self, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        crate::blocking::block_on(self.encrypt(plaintext))
    }

    /// Blocking form of [`writer`](Self::writer).
    pub fn writer_blocking<W: Write>(&self, writer: W) -> Result<EncryptWriter<W>, Error> {
        crate::blocking::block_on(self.writer(writer))
    }
}

/// Decrypts messages with the KEKs the caller trusts, and only those.
#[derive(Debug, Clone)]
pub struct Decryptor {
    keks: Vec<Arc<dyn Kek>>,
    expected: EncryptionContext,
    limits: Limits,
    cache: Option<DecryptCache>,
    require_signed: bool,
    backend: Option<Backend>,
    lock_policy: Option<LockPolicy>,
    pub(crate) max_threads: Option<usize>,
}

impl Decryptor {
    /// A decryptor trusting `kek`.
    pub fn new(kek: Arc<dyn Kek>) -> Decryptor {
        Decryptor {
            keks: vec![kek],
            expected: EncryptionContext::new(),
            limits: Limits::default(),
            cache: None,
            require_signed: false,
            backend: None,
            lock_policy: None,
            max_threads: None,
        }
    }

    /// A decryptor trusting each of `keks`, tried in order. An empty set is
    /// [`Error::InvalidArgument`].
    pub fn with_keks(keks: impl IntoIterator<Item = Arc<dyn Kek>>) -> Result<Decryptor, Error> {
        let mut keks = keks.into_iter();
        let first = keks
            .next()
            .ok_or(Error::InvalidArgument("a decryptor needs at least one KEK"))?;
        Ok(keks.fold(Decryptor::new(first), Decryptor::add_kek))
    }

    /// Also trusts `kek`; KEKs are tried in the order added.
    pub fn add_kek(mut self, kek: Arc<dyn Kek>) -> Decryptor {
        self.keks.push(kek);
        self
    }

    /// Requires the message's context to contain this pair.
    pub fn expect_context(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Decryptor, Error> {
        self.expected.insert(key, value)?;
        Ok(self)
    }

    /// Requires the message's context to contain every pair of `context` (replacing the
    /// pairs required so far): the counterpart of [`Encryptor::with_context`].
    pub fn with_expected_context(mut self, context: EncryptionContext) -> Decryptor {
        self.expected = context;
        self
    }

    /// Accept only signed messages ([`Encryptor::signed`]); unsigned ones fail with
    /// [`Error::Unsigned`] before any KMS call. Use it wherever a message has several KEKs
    /// whose holders must not be able to write messages for each other. (Signed messages are
    /// always verified, required or not.)
    pub fn require_signed(mut self, required: bool) -> Decryptor {
        self.require_signed = required;
        self
    }

    /// Runs the payload AEAD on `backend` (default: [`Backend::process_default`]). Any
    /// backend opens any message. [`Error::InvalidArgument`] if this build lacks `backend`.
    pub fn backend(mut self, backend: Backend) -> Result<Decryptor, Error> {
        self.backend = Some(backend.check_available()?);
        Ok(self)
    }

    /// Locks the plaintext this decryptor returns ([`decrypt`](Self::decrypt), readers, opened
    /// headers) under `policy` (default: [`LockPolicy::process_default`]); a buffer passed to
    /// [`decrypt_into`](Self::decrypt_into) keeps its own. Data keys and other small secrets
    /// stay in the shared locked pool under the process default.
    pub fn lock_policy(mut self, policy: LockPolicy) -> Decryptor {
        self.lock_policy = Some(policy);
        self
    }

    /// Sets the limits applied to untrusted messages.
    pub fn limits(mut self, limits: Limits) -> Decryptor {
        self.limits = limits;
        self
    }

    /// At most `threads` threads open one large message, one-shot or streamed (see
    /// [`Encryptor::threads`] for when a message is split; [`DecryptReader`] for streams); `1` keeps every message on the calling thread, `0` is
    /// taken as `1`. Default: the machine's available parallelism, at most 16.
    pub fn threads(mut self, threads: usize) -> Decryptor {
        self.max_threads = Some(threads.max(1));
        self
    }

    /// The limits this decryptor applies to untrusted messages (set with
    /// [`limits`](Self::limits)).
    pub fn configured_limits(&self) -> &Limits {
        &self.limits
    }

    /// Parses the header at the start of `message` under this decryptor's limits, and returns
    /// it with the rest of the message (the body: frames, and a signed message's trailer).
    /// Nothing is verified yet: decide what to do with it (inspect, apply a policy, choose
    /// KEKs), then [`open_header`](Self::open_header).
    #[inline]
    pub fn parse_header<'m>(&self, message: &'m [u8]) -> Result<(Header, &'m [u8]), Error> {
        let (header, used) = Header::parse(message, &self.limits)?;
        Ok((header, &message[used..]))
    }

    /// Reads the header from `reader` under this decryptor's limits, leaving the reader at
    /// the body. Like [`parse_header`](Self::parse_header), nothing is verified yet.
    pub fn read_header<R: Read>(&self, reader: &mut R) -> Result<Header, Error> {
        Header::read_from(reader, &self.limits)
    }

    fn policy(&self) -> LockPolicy {
        self.lock_policy.unwrap_or_else(LockPolicy::process_default)
    }

    /// Remembers unwrapped data keys in `cache` (shared with its clones), so messages that
    /// share a wrapped key cost one KMS call while the cache's TTL lasts. Only keys that passed
    /// a message's commitment check are cached; a cached key is checked against each message.
    pub fn cache(mut self, cache: DecryptCache) -> Decryptor {
        self.cache = Some(cache);
        self
    }

    /// The cache's statistics, if one is set.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(DecryptCache::stats)
    }

    /// Unwraps `wrapped` with `kek` (or takes it from the cache) and checks it against the
    /// header's commitment and tag.
    async fn try_open(
        &self,
        kek: &Arc<dyn Kek>,
        wrapped: &WrappedKey,
        header: &Header,
    ) -> Result<(Arc<DataKey>, MessageKeys), Error> {
        let backend = self.backend.unwrap_or_else(Backend::process_default);
        let unwrap_and_check = || async {
            let dek = kek.unwrap(wrapped, header.context()).await?;
            header.open(&dek, backend)?;
            Ok(dek)
        };
        let Some(cache) = &self.cache else {
            let dek = kek.unwrap(wrapped, header.context()).await?;
            let keys = header.open(&dek, backend)?;
            return Ok((Arc::new(dek), keys));
        };
        let dek = cache
            .get_or_unwrap(kek, wrapped, header.context(), unwrap_and_check)
            .await?;
        let keys = header.open(&dek, backend)?;
        Ok((dek, keys))
    }

    /// Opens a parsed header: checks the expected context and the signing policy, unwraps
    /// the data key with the first trusted KEK that can (at most two attempts per KEK), and
    /// checks the key commitment and header tag. The result decrypts the body
    /// ([`OpenedHeader::decrypt`], [`OpenedHeader::reader`]), derives an application key, or
    /// rewraps the header ([`OpenedHeader::rewrap`]).
    ///
    /// ```
    /// # kmseal::blocking::block_on(async {
    /// use std::sync::Arc;
    /// use kmseal::{Decryptor, Encryptor, LocalKek};
    ///
    /// let kek = Arc::new(LocalKek::generate()?);
    /// let sealed = Encryptor::new(kek.clone()).context("tenant", "acme")?.encrypt(b"row").await?;
    ///
    /// let dec = Decryptor::new(kek);
    /// let (header, body) = dec.parse_header(&sealed)?;
    /// // Decide before any KMS call: here, only this tenant's messages.
    /// assert_eq!(header.context().get("tenant"), Some("acme"));
    /// let opened = dec.open_header(&header).await?;
    /// assert_eq!(opened.decrypt(body)?.expose_secret(), b"row");
    /// # Ok::<(), kmseal::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn open_header<'h>(&self, header: &'h Header) -> Result<OpenedHeader<'h>, Error> {
        header.context().require(&self.expected)?;
        let mut verifier = self.check_signing(header)?;
        let mut failures = Vec::new();
        for kek in &self.keks {
            // At most two attempts per trusted KEK per message: an attacker's message with many
            // junk wrapped keys naming our KEK costs two KMS calls, not one per entry.
            let candidates = header
                .wrapped_keys()
                .iter()
                .enumerate()
                .filter(|(_, w)| kek.matches(w));
            for (at, wrapped) in candidates.take(MAX_FAILED_UNWRAPS_PER_KEK) {
                match self.try_open(kek, wrapped, header).await {
                    Ok((dek, keys)) => {
                        return Ok(OpenedHeader {
                            header,
                            dek,
                            keys,
                            opened_with: at,
                            opened_by: kek.clone(),
                            max_threads: self.max_threads,
                            lock_policy: self.policy(),
                            verifier: verifier.take(),
                        });
                    }
                    // Not a property of this KEK or this message: this process forked after
                    // the key was loaded. Say so, rather than list it as a failed unwrap.
                    Err(Error::ForkedSecret) => return Err(Error::ForkedSecret),
                    Err(error) => {
                        tracing::debug!(kek = %kek.describe(), %error, "unwrap attempt failed");
                        failures.push(KekFailure {
                            kek: kek.describe(),
                            error,
                        });
                    }
                }
            }
        }
        if failures.is_empty() {
            return Err(Error::NoMatchingKek {
                trusted: self.keks.iter().map(|k| k.describe()).collect(),
                present: header
                    .wrapped_keys()
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            });
        }
        Err(Error::UnwrapFailed { failures })
    }

    /// Opens `header` like a message (expected context, trusted KEKs only, commitment and
    /// header tag checked) and returns the application key that
    /// [`Encryptor::application_key`] derived under `label`.
    pub async fn open_application_key(
        &self,
        header: &Header,
        label: &str,
    ) -> Result<SecretBytes, Error> {
        // Refused before any KMS call (and again by `application_key`).
        refuse_signed_application_header(header)?;
        application_label_len(label)?;
        self.open_header(header).await?.application_key(label)
    }

    /// Decrypts a complete message into locked memory.
    pub async fn decrypt(&self, message: &[u8]) -> Result<SecretBytes, Error> {
        Ok(self.decrypt_with_header(message).await?.1)
    }

    /// Like [`decrypt`](Self::decrypt), also returning the verified header (its context,
    /// suite and wrapped keys).
    pub async fn decrypt_with_header(
        &self,
        message: &[u8],
    ) -> Result<(Header, SecretBytes), Error> {
        let mut plaintext = SecretBytes::with_capacity_and_policy(0, self.policy())?;
        let header = self.decrypt_into_inner(message, &mut plaintext).await?;
        Ok((header, plaintext))
    }

    /// Like [`decrypt`](Self::decrypt), writing the plaintext into `out` (replacing its
    /// contents) and reusing its locked allocation when it is large enough; returns the
    /// verified header. On error `out` is left empty, with any partial plaintext zeroized.
    /// See [`Encryptor::encrypt_into`] for an example.
    pub async fn decrypt_into(
        &self,
        message: &[u8],
        out: &mut SecretBytes,
    ) -> Result<Header, Error> {
        let result = self.decrypt_into_inner(message, out).await;
        if result.is_err() {
            out.clear();
        }
        result
    }

    async fn decrypt_into_inner(
        &self,
        message: &[u8],
        out: &mut SecretBytes,
    ) -> Result<Header, Error> {
        let (header, body) = self.parse_header(message)?;
        let (keys, verifier) = self.open_header(&header).await?.into_message_keys();
        decrypt_body(&header, &keys, verifier, self.max_threads, body, out)?;
        Ok(header)
    }

    /// The signing policy, before any KMS call: unsigned messages refused when signatures
    /// are required, and an unsigned message whose context names a signing key (a signed
    /// message that a co-recipient re-keyed as unsigned) always refused. Returns a signed
    /// message's verifier (its signing key parsed once, here).
    fn check_signing(&self, header: &Header) -> Result<Option<MessageVerifier>, Error> {
        if header.is_signed() {
            // A signed header must name a well-formed signing key.
            return MessageVerifier::for_header(header);
        }
        if self.require_signed {
            return Err(Error::Unsigned);
        }
        if header.context().get(SIGNING_KEY_CONTEXT).is_some() {
            return Err(Error::Malformed(
                "an unsigned message names a signing key (a signed message altered?)",
            ));
        }
        Ok(None)
    }

    /// Reads the header from `reader`, unwraps the data key, and returns a streaming
    /// decryptor over the rest.
    pub async fn reader<R: Read>(&self, mut reader: R) -> Result<DecryptReader<R>, Error> {
        let header = self.read_header(&mut reader)?;
        self.open_header(&header).await?.reader(reader)
    }

    /// Blocking form of [`decrypt`](Self::decrypt).
    pub fn decrypt_blocking(&self, message: &[u8]) -> Result<SecretBytes, Error> {
        crate::blocking::block_on(self.decrypt(message))
    }

    /// Blocking form of [`reader`](Self::reader).
    pub fn reader_blocking<R: Read>(&self, reader: R) -> Result<DecryptReader<R>, Error> {
        crate::blocking::block_on(self.reader(reader))
    }
}

/// A message whose data key, header and length are fixed ([`Encryptor::prepare`]), waiting
/// for its plaintext and an output buffer of exactly [`sealed_len`](Self::sealed_len) bytes.
/// It holds the message keys (derived in locked memory) until sealed or dropped.
pub struct PreparedMessage {
    header: Header,
    keys: MessageKeys,
    signer: Option<MessageSigner>,
    plaintext_len: usize,
    total: usize,
    frame_size: u32,
    max_threads: Option<usize>,
}

impl PreparedMessage {
    /// The exact length of the sealed message.
    pub fn sealed_len(&self) -> usize {
        self.total
    }

    /// Seals `plaintext` (of the length given to [`Encryptor::prepare`]) into `out` (exactly
    /// [`sealed_len`](Self::sealed_len) bytes; its contents are overwritten). Either length
    /// being different is an [`Error::InvalidArgument`], and nothing is written. On any error
    /// `out` holds no complete message; it is not cleared.
    pub fn seal_into(self, plaintext: &[u8], out: &mut [u8]) -> Result<(), Error> {
        if plaintext.len() != self.plaintext_len {
            return Err(Error::InvalidArgument(
                "the plaintext is not the length the message was prepared for",
            ));
        }
        if out.len() != self.total {
            return Err(Error::InvalidArgument(
                "the output buffer is not the prepared message's sealed_len",
            ));
        }
        self.keys.check_process()?;
        let head = self.header.encoded_len();
        let trailer = if self.signer.is_some() {
            TRAILER_LEN
        } else {
            0
        };
        let (head_out, body_out) = out.split_at_mut(head);
        self.header.write_to_slice(head_out)?;
        let (frames_out, trailer_out) = body_out.split_at_mut(body_out.len() - trailer);
        seal_all(
            &self.keys,
            self.header.message_id(),
            self.frame_size,
            plaintext,
            frames_out,
            self.max_threads,
        )?;
        if let Some(mut signer) = self.signer {
            signer.update(frames_out);
            trailer_out.copy_from_slice(&signer.finish());
        }
        Ok(())
    }
}

impl std::fmt::Debug for PreparedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedMessage")
            .field("sealed_len", &self.total)
            .finish_non_exhaustive()
    }
}

/// A header whose data key a trusted KEK unwrapped and whose key commitment and header tag
/// verified ([`Decryptor::open_header`]). It holds the data key (locked memory) until dropped.
pub struct OpenedHeader<'h> {
    header: &'h Header,
    dek: Arc<DataKey>,
    keys: MessageKeys,
    /// Index in `header.wrapped_keys()` of the wrapped key that opened it, and the trusted
    /// KEK instance that unwrapped it.
    opened_with: usize,
    opened_by: Arc<dyn Kek>,
    max_threads: Option<usize>,
    lock_policy: LockPolicy,
    /// A signed message's verifier, its key parsed once by `open_header`.
    verifier: Option<MessageVerifier>,
}

impl std::fmt::Debug for OpenedHeader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedHeader")
            .field("header", self.header)
            .field("opened_with", &self.opened_with())
            .finish_non_exhaustive()
    }
}

impl<'h> OpenedHeader<'h> {
    /// The verified header.
    pub fn header(&self) -> &'h Header {
        self.header
    }

    /// The wrapped key that opened it (one of `header().wrapped_keys()`).
    pub fn opened_with(&self) -> &'h WrappedKey {
        &self.header.wrapped_keys()[self.opened_with]
    }

    /// Decrypts a complete body (everything after the header: the frames and, for a signed
    /// message, its signature) into locked memory. Nothing is returned unless every frame
    /// (and the signature) verified.
    pub fn decrypt(&self, body: &[u8]) -> Result<SecretBytes, Error> {
        let mut out = SecretBytes::with_capacity_and_policy(0, self.lock_policy)?;
        self.decrypt_into(body, &mut out)?;
        Ok(out)
    }

    /// Like [`decrypt`](Self::decrypt), into `out` (replacing its contents, reusing its
    /// allocation). On error `out` is left empty, any partial plaintext zeroized.
    #[inline]
    pub fn decrypt_into(&self, body: &[u8], out: &mut SecretBytes) -> Result<(), Error> {
        let result = self.decrypt_into_inner(body, out);
        if result.is_err() {
            out.clear();
        }
        result
    }

    fn decrypt_into_inner(&self, body: &[u8], out: &mut SecretBytes) -> Result<(), Error> {
        self.check_process()?;
        let verifier = self.verifier.clone();
        decrypt_body(
            self.header,
            &self.keys,
            verifier,
            self.max_threads,
            body,
            out,
        )
    }

    /// `Err(`[`Error::ForkedSecret`]`)` in the child of a `fork()` made after the header was
    /// opened: its data key reads as zeros there, and its AEAD key schedule (ordinary memory)
    /// is the parent's. Every method checks it first.
    pub fn check_process(&self) -> Result<(), Error> {
        self.dek.check_process()?;
        self.keys.check_process()
    }

    /// What opening frames at random needs: the message keys, the thread bound and the lock
    /// policy for plaintext buffers.
    pub(crate) fn frame_parts(&self) -> (&MessageKeys, Option<usize>, LockPolicy) {
        (&self.keys, self.max_threads, self.lock_policy)
    }

    /// The verified message keys, the data key dropped (wiped) now rather than after the
    /// frames are opened: the one-call decrypt path needs nothing else.
    fn into_message_keys(self) -> (MessageKeys, Option<MessageVerifier>) {
        (self.keys, self.verifier)
    }

    /// A streaming decryptor over the body, `reader` positioned just after the header.
    pub fn reader<R: Read>(self, reader: R) -> Result<DecryptReader<R>, Error> {
        self.check_process()?;
        DecryptReader::new(
            reader,
            self.header,
            self.keys,
            self.max_threads,
            self.lock_policy,
            self.verifier,
        )
    }

    /// The application key [`Encryptor::application_key`] derived under `label` from this
    /// header's data key. Refused for a signed message's header.
    pub fn application_key(&self, label: &str) -> Result<SecretBytes, Error> {
        refuse_signed_application_header(self.header)?;
        self.check_process()?;
        MessageKeys::application_key(&self.dek, self.header.message_id(), label)
    }

    /// The same header with its wrapped keys replaced by one per `targets` KEK, each holding
    /// this verified data key under the header's context: the body (frames, signature) stays
    /// valid byte for byte. The target that is the very KEK instance that opened the header
    /// goes through [`Kek::rewrap`] (server-side where the KMS has it, such as Vault transit
    /// for derived keys; by default a fresh wrap); every other target wraps the data key.
    /// No target is asked to unwrap anything.
    ///
    /// ```
    /// # kmseal::blocking::block_on(async {
    /// use std::sync::Arc;
    /// use kmseal::{Decryptor, Encryptor, Kek, LocalKek};
    ///
    /// let (old, new) = (Arc::new(LocalKek::generate()?), Arc::new(LocalKek::generate()?));
    /// let sealed = Encryptor::new(old.clone()).encrypt(b"payload").await?;
    /// let dec = Decryptor::new(old);
    /// let (header, body) = dec.parse_header(&sealed)?;
    /// let targets: [Arc<dyn Kek>; 1] = [new.clone()];
    /// let rewrapped = dec.open_header(&header).await?.rewrap(&targets).await?;
    ///
    /// let mut moved = rewrapped.to_bytes();
    /// moved.extend_from_slice(body);
    /// assert_eq!(Decryptor::new(new).decrypt(&moved).await?.expose_secret(), b"payload");
    /// # Ok::<(), kmseal::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn rewrap(&self, targets: &[Arc<dyn Kek>]) -> Result<Header, Error> {
        if targets.is_empty() {
            return Err(Error::InvalidArgument(
                "rewrap needs at least one target KEK",
            ));
        }
        self.check_process()?;
        let opened_with = self.opened_with();
        let context = self.header.context();
        let mut wrapped = Vec::with_capacity(targets.len());
        for kek in targets {
            // The same instance, not merely the same provider and key id: a KEK of another
            // cluster or account can carry the same id and must not be asked to rewrap a key
            // it never made.
            let same = std::ptr::addr_eq(Arc::as_ptr(kek), Arc::as_ptr(&self.opened_by));
            wrapped.push(if same && kek.matches(opened_with) {
                kek.rewrap(opened_with, &self.dek, context).await?
            } else {
                kek.wrap(&self.dek, context).await?
            });
        }
        self.header.with_wrapped_keys(wrapped)
    }
}

/// Checks a signed message's signature, then opens every frame of `body` into `out`.
fn decrypt_body(
    header: &Header,
    keys: &MessageKeys,
    verifier: Option<MessageVerifier>,
    max_threads: Option<usize>,
    mut body: &[u8],
    out: &mut SecretBytes,
) -> Result<(), Error> {
    if let Some(mut verifier) = verifier {
        // The signature is checked before any frame is opened: nothing is decrypted for a
        // message its sender did not sign.
        let split = body
            .len()
            .checked_sub(TRAILER_LEN)
            .ok_or(Error::Truncated("the message ends before its signature"))?;
        let (frames, trailer) = body.split_at(split);
        verifier.update(frames);
        verifier.verify(trailer)?;
        body = frames;
    }
    open_all(
        keys,
        header.message_id(),
        header.frame_size(),
        body,
        out,
        max_threads,
    )
}

/// An application header is never signed (`application_key` makes none): a signed message's
/// header carries wrapped keys for recipients who were promised signed content, and a
/// co-recipient must not reuse it to build, say, a config document they accept.
fn refuse_signed_application_header(header: &Header) -> Result<(), Error> {
    if header.is_signed() || header.context().get(SIGNING_KEY_CONTEXT).is_some() {
        return Err(Error::Malformed(
            "a signed message's header cannot be used for an application format",
        ));
    }
    Ok(())
}

/// Builds a message from fixed randomness: used by the frozen-vector tests to check that the
/// encoder's output is byte-for-byte stable.
#[cfg(test)]
pub(crate) fn encrypt_deterministic(
    dek: &DataKey,
    message_id: [u8; KEY_LEN],
    suite: Suite,
    frame_size: u32,
    context: EncryptionContext,
    wrapped: Vec<crate::kek::WrappedKey>,
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    let keys = MessageKeys::derive(dek, &message_id, suite);
    let header = Header::seal(
        &keys, suite, false, frame_size, message_id, context, wrapped,
    )?;
    Ok(deterministic_frames(&keys, &header, plaintext)?.0)
}

/// `header || frames` on one thread, and where the frames start.
#[cfg(test)]
fn deterministic_frames(
    keys: &MessageKeys,
    header: &Header,
    plaintext: &[u8],
) -> Result<(Vec<u8>, usize), Error> {
    let mut out = header.to_bytes();
    let head = out.len();
    let body = crate::format::body_len(plaintext.len() as u64, header.frame_size())
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| Error::InvalidArgument("plaintext too large"))?;
    out.resize(head + body, 0);
    seal_all(
        keys,
        header.message_id(),
        header.frame_size(),
        plaintext,
        &mut out[head..],
        Some(1),
    )?;
    Ok((out, head))
}

/// A signed message from fixed randomness, for the frozen vectors: `context` already names a
/// public key (see [`signed_context`]) and `signer_seed`'s key signs (the two differ only in
/// the vectors a co-recipient forged).
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn encrypt_deterministic_signed(
    dek: &DataKey,
    message_id: [u8; KEY_LEN],
    suite: Suite,
    frame_size: u32,
    context: EncryptionContext,
    wrapped: Vec<crate::kek::WrappedKey>,
    plaintext: &[u8],
    signer_seed: &[u8; KEY_LEN],
) -> Result<Vec<u8>, Error> {
    let mut signer = MessageSigner::from_seed(signer_seed);
    let keys = MessageKeys::derive_with_id(
        dek,
        &message_id,
        suite,
        wire_id(suite, true),
        Backend::process_default(),
    );
    let header = Header::seal(&keys, suite, true, frame_size, message_id, context, wrapped)?;
    header.signed_prefix(|b| signer.update(b));
    let (mut out, head) = deterministic_frames(&keys, &header, plaintext)?;
    signer.update(&out[head..]);
    out.extend_from_slice(&signer.finish());
    Ok(out)
}

/// The context of a signed message made with [`encrypt_deterministic_signed`]: `context`
/// plus the public key of the key with `seed`.
#[cfg(test)]
pub(crate) fn signed_context(
    context: &EncryptionContext,
    seed: &[u8; KEY_LEN],
) -> EncryptionContext {
    let mut c = context.clone();
    let pk = MessageSigner::from_seed(seed).public_key_text();
    c.insert(SIGNING_KEY_CONTEXT, pk).ok();
    c
}
