//! Key rotation of kmseal messages stored as objects (S3, Google Cloud Storage, Azure Blob,
//! local files; one code path through the [`object_store`] crate), in place, without losing
//! an object or a concurrent writer's update.
//!
//! For each object under a prefix (and in this worker's [`Shard`]):
//!
//! 1. **Header only.** A ranged `GET` of the first 4 KiB (grown if the header is larger)
//!    decides: not a kmseal message, already wrapped under the targets, not wrapped by the
//!    KEK being retired, too recent, or to rotate. Objects left alone cost one small read.
//! 2. **Rotate.** A rewrap unwraps the data key once and writes `new header || the same
//!    frames`; a re-encryption decrypts and encrypts again in locked memory. Every read after
//!    the listing carries `If-Match` with the listed ETag, so the object rotated is the
//!    object that was listed.
//! 3. **Verify.** The new message's header must open under the first target KEK (and an
//!    object small enough to hold in memory must decrypt completely): a KEK that can wrap but
//!    not unwrap never replaces a readable object. (A streamed rewrap copies the frames
//!    unopened: a frame tampered before stays tampered, and fails as before.)
//! 4. **Write conditionally.** Objects up to [`ObjectRotator::max_single_put`] (16 MiB by
//!    default) go back in one `PUT` with `If-Match` (S3, GCS and Azure compare-and-swap):
//!    a writer that replaced the object meanwhile keeps its version, and this object is
//!    reported as [`Error::Changed`] (rerun to rotate it). Larger objects stream through a
//!    multipart upload in bounded memory ([`ObjectRotator::part_size`] per part); the
//!    object's ETag is checked again just before the upload completes (`object_store` sends
//!    no `If-Match` with a multipart completion, so a write landing between that check and
//!    the completion is overwritten: keep writers off a prefix while its large objects
//!    rotate, or rotate them with `max_single_put` raised). The local filesystem has no
//!    compare-and-swap either: its ETag (inode, size, mtime) is checked just before an
//!    atomic rename.
//!
//! A `PUT` replaces an object atomically, so a process killed at any point leaves every
//! object as the old message or the new one; rerunning finishes the job (a rewrap skips
//! objects already under the targets; a re-encryption does with
//! [`Rotator::only_wrapped_by`](kmseal::rotate::Rotator::only_wrapped_by)). A killed
//! multipart upload leaves invisible parts: an `AbortIncompleteMultipartUpload` lifecycle
//! rule on the bucket removes them.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use kmseal::{Decryptor, Encryptor, Kek, LocalKek};
//! use kmseal::rotate::Rotator;
//! use kmseal_objects::{ObjectRotator, open_url};
//! use object_store::{ObjectStoreExt, PutPayload};
//!
//! let (old, new) = (Arc::new(LocalKek::generate()?), Arc::new(LocalKek::generate()?));
//! let bucket = open_url("memory:///exports/")?; // s3://bucket/exports/ in production
//! let sealed = Encryptor::new(old.clone()).encrypt(b"row").await?;
//! let key = bucket.prefix.clone().join("2026-12-01.kmseal");
//! bucket.store.put(&key, PutPayload::from(sealed)).await?;
//!
//! let rotator = ObjectRotator::new(Rotator::rewrap(Decryptor::new(old), vec![new.clone()]));
//! let report = rotator.rotate_prefix(&bucket, |_, _| {}).await?;
//! assert_eq!(report.rotated.len(), 1);
//!
//! let now = bucket.store.get(&key).await?.bytes().await?;
//! assert_eq!(Decryptor::new(new).decrypt(&now).await?.expose_secret(), b"row");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod parts;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use kmseal::rotate::{Outcome, Rotator, Skip};
use object_store::path::Path;
use object_store::{
    Attributes, GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, UpdateVersion,
};
use sha2::{Digest, Sha256};

use crate::parts::PartWriter;

pub use object_store;

/// What can go wrong rotating an object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// kmseal refused the message or a KEK failed (the object is untouched).
    #[error(transparent)]
    Kmseal(#[from] kmseal::Error),
    /// The store failed a request (the object is untouched).
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// The object changed after it was listed; a concurrent writer's version is kept.
    #[error(
        "{key} changed while it was being rotated and was left as the other writer made it; \
         rerun to rotate it"
    )]
    Changed {
        /// The object's key.
        key: String,
    },
    /// The store gave no ETag for the object, so neither its reads nor its write could be
    /// made conditional: left as it is.
    #[error("{key}: the store gives no ETag, so a write could not be conditional; left as it is")]
    NoETag {
        /// The object's key.
        key: String,
    },
    /// The object's body ended early, or ran past its listed size, while it was streamed:
    /// left as it is.
    #[error("{key}: the body was {got} bytes where {expected} were listed; left as it is")]
    ShortBody {
        /// The object's key.
        key: String,
        /// Bytes the listing gave.
        expected: u64,
        /// Bytes the body had when it ended (or ran past).
        got: u64,
    },
    /// The listing failed part way (for example a key this store's client cannot represent):
    /// the objects listed before it were rotated as `report` says; the rest were not reached.
    #[error("listing failed after {} objects: {source}; the rest were not reached", report.listed)]
    Listing {
        /// What was done before the listing failed.
        report: Box<Report>,
        /// Why the listing failed.
        source: object_store::Error,
    },
    /// The URL names no store this crate can open.
    #[error("{0}")]
    Url(String),
}

impl Error {
    /// Whether a rerun is all it takes (the object changed under us).
    pub fn is_changed(&self) -> bool {
        matches!(self, Error::Changed { .. })
    }
}

/// A store and the prefix under it, opened from a URL.
#[derive(Debug, Clone)]
pub struct Location {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The prefix (empty: the whole bucket).
    pub prefix: Path,
    /// Where the store has no conditional write (the local filesystem), write after checking
    /// the ETag instead (a check-then-act window). Off unless said: a store that refuses
    /// `If-Match` is otherwise an error, never a silent overwrite.
    pub check_then_write: bool,
}

impl Location {
    /// `prefix` of `store`, conditional writes only.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path) -> Location {
        Location {
            store,
            prefix,
            check_then_write: false,
        }
    }
}

/// Opens `s3://bucket/prefix/`, `gs://bucket/prefix/`, `az://container/prefix/`,
/// `file:///dir/` or `memory:///` (tests). Credentials and endpoints come from the
/// environment as each store's SDKs read them (`AWS_*`, including `AWS_ENDPOINT_URL` and
/// `AWS_ALLOW_HTTP` for an S3-compatible server; `GOOGLE_*`; `AZURE_*`). S3 writes use
/// `If-Match` conditional `PUT`s.
pub fn open_url(url: &str) -> Result<Location, Error> {
    use object_store::ObjectStoreScheme as S;
    let parsed = url::Url::parse(url).map_err(|e| Error::Url(format!("{url}: {e}")))?;
    let (scheme, prefix) = S::parse(&parsed).map_err(|e| Error::Url(format!("{url}: {e}")))?;
    let store: Arc<dyn ObjectStore> = match scheme {
        S::AmazonS3 => Arc::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_url(url)
                .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
                .build()?,
        ),
        S::GoogleCloudStorage => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .build()?,
        ),
        S::MicrosoftAzure => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .build()?,
        ),
        S::Local => Arc::new(object_store::local::LocalFileSystem::new()),
        S::Memory => Arc::new(object_store::memory::InMemory::new()),
        other => {
            return Err(Error::Url(format!(
                "{url}: {other:?} is not supported (use s3://, gs://, az://, file://)"
            )));
        }
    };
    Ok(Location {
        store,
        prefix,
        // The local filesystem has no compare-and-swap: the ETag check just before an atomic
        // rename is the best it offers.
        check_then_write: matches!(scheme, S::Local),
    })
}

/// One worker's share of a listing: object `key` belongs to shard `I` of `N` when the first
/// eight bytes of SHA-256(`key`), big-endian, are `I` modulo `N`. Deterministic and
/// independent of listing order, so `N` workers (a Kubernetes Indexed Job, a Ray or Spark
/// fan-out) cover every object exactly once without talking to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// Shard `index` of `count` (`index < count`).
    pub fn new(index: u32, count: u32) -> Result<Shard, Error> {
        if count == 0 || index >= count {
            return Err(Error::Url(format!(
                "shard {index}/{count}: the index must be below the count (0/4 to 3/4)"
            )));
        }
        Ok(Shard { index, count })
    }

    /// Every object (shard 0 of 1).
    pub fn all() -> Shard {
        Shard { index: 0, count: 1 }
    }

    /// Whether `key` is in this shard.
    pub fn contains(&self, key: &str) -> bool {
        if self.count == 1 {
            return true;
        }
        let digest = Sha256::digest(key.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first) % u64::from(self.count) == u64::from(self.index)
    }
}

impl FromStr for Shard {
    type Err = Error;

    /// `I/N`, for example `0/4`.
    fn from_str(s: &str) -> Result<Shard, Error> {
        let bad = || Error::Url(format!("`{s}` is not a shard: expected I/N, such as 0/4"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        Shard::new(i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// What a prefix rotation did.
#[derive(Debug, Default)]
pub struct Report {
    /// Objects in this shard (every object listed, for shard 0/1).
    pub listed: u64,
    /// Objects rotated (or that would be, in a dry run).
    pub rotated: Vec<String>,
    /// Objects already wrapped exactly under the target KEKs.
    pub already_current: Vec<String>,
    /// Objects left alone by the selection, or not kmseal messages, with the reason.
    pub skipped: Vec<(String, Skip)>,
    /// Objects that could not be rotated, with the error (each is untouched, or, for
    /// [`Error::Changed`], as its other writer made it).
    pub failed: Vec<(String, Error)>,
    /// Bytes read from the store (headers, and the objects rotated).
    pub bytes_read: u64,
    /// Bytes written to the store.
    pub bytes_written: u64,
}

/// Bytes one object's rotation moved.
#[derive(Debug, Default, Clone, Copy)]
pub struct Moved {
    /// Bytes read.
    pub read: u64,
    /// Bytes written.
    pub written: u64,
}

/// Rotates the kmseal messages of a store with a [`Rotator`] (rewrap or re-encrypt, its
/// targets, `only_wrapped_by`, `older_than` against the object's last-modified time, dry
/// run). See the [crate docs](crate).
#[derive(Debug, Clone)]
pub struct ObjectRotator {
    rotator: Rotator,
    shard: Shard,
    jobs: usize,
    max_single_put: u64,
    part_size: usize,
}

/// Most bytes of a header kept from a streamed upload for verification.
const HEAD_KEEP: usize = 1 << 20;

impl ObjectRotator {
    /// Rotates with `rotator`: every object, 4 at a time, one `PUT` up to 16 MiB, parts of
    /// 8 MiB beyond.
    pub fn new(rotator: Rotator) -> ObjectRotator {
        ObjectRotator {
            rotator,
            shard: Shard::all(),
            jobs: 4,
            max_single_put: 16 << 20,
            part_size: 8 << 20,
        }
    }

    /// Only the objects of this shard.
    pub fn shard(mut self, shard: Shard) -> ObjectRotator {
        self.shard = shard;
        self
    }

    /// Objects rotated at once (bounds memory and the KMS calls in flight).
    pub fn jobs(mut self, jobs: usize) -> ObjectRotator {
        self.jobs = jobs.max(1);
        self
    }

    /// Objects up to this size are read whole, verified by a complete decryption, and written
    /// back with one conditional `PUT`; larger ones stream through a multipart upload.
    /// Memory per job is about this much for small objects, two parts for large ones.
    pub fn max_single_put(mut self, bytes: u64) -> ObjectRotator {
        self.max_single_put = bytes;
        self
    }

    /// The part size of multipart uploads (S3 requires at least 5 MiB for every part but the
    /// last).
    pub fn part_size(mut self, bytes: usize) -> ObjectRotator {
        self.part_size = bytes.max(1);
        self
    }

    /// Rotates every object under `location.prefix` in this rotator's shard, `jobs` at a
    /// time, calling `on_result` as each finishes. A failed object never stops the others. A
    /// listing that fails part way (a network error, or a key the store's client cannot
    /// represent, such as one with `//`) stops the listing: the objects in flight finish, and
    /// [`Error::Listing`] carries the report of what was done.
    pub async fn rotate_prefix(
        &self,
        location: &Location,
        mut on_result: impl FnMut(&str, &Result<Outcome<()>, Error>),
    ) -> Result<Report, Error> {
        let prefix = (!location.prefix.as_ref().is_empty()).then_some(&location.prefix);
        let mut report = Report::default();
        // The listing stops at its first error; objects already handed out finish (a
        // cancelled rotation would leave a multipart upload behind), and the error comes back
        // with the report of what was done.
        let listing = location
            .store
            .list(prefix)
            .scan(false, |failed, item| {
                let next = (!*failed).then_some(item);
                *failed |= matches!(next, Some(Err(_)));
                std::future::ready(next)
            })
            .filter(|item| {
                std::future::ready(match item {
                    Ok(meta) => self.shard.contains(meta.location.as_ref()),
                    Err(_) => true,
                })
            });
        let mut results = listing
            .map(|item| async move {
                match item {
                    Ok(meta) => {
                        let result = self.rotate_object(location, &meta).await;
                        Ok((meta.location.to_string(), result))
                    }
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(self.jobs);
        let mut listing_error = None;
        while let Some(item) = results.next().await {
            let (key, result) = match item {
                Ok(done) => done,
                Err(e) => {
                    listing_error = Some(e);
                    continue;
                }
            };
            report.listed += 1;
            let result = result.map(|(outcome, moved)| {
                report.bytes_read += moved.read;
                report.bytes_written += moved.written;
                outcome
            });
            on_result(&key, &result);
            match result {
                Ok(Outcome::Rotated(()) | Outcome::WouldRotate) => report.rotated.push(key),
                Ok(Outcome::Skipped(Skip::AlreadyCurrent)) => report.already_current.push(key),
                Ok(Outcome::Skipped(skip)) => report.skipped.push((key, skip)),
                Err(e) => report.failed.push((key, e)),
            }
        }
        match listing_error {
            None => Ok(report),
            Some(source) => Err(Error::Listing {
                report: Box::new(report),
                source,
            }),
        }
    }

    /// Rotates one listed object of `location`'s store (see the [crate docs](crate) for the
    /// steps).
    pub async fn rotate_object(
        &self,
        location: &Location,
        meta: &ObjectMeta,
    ) -> Result<(Outcome<()>, Moved), Error> {
        let store = location.store.as_ref();
        let key = &meta.location;
        let mut moved = Moved::default();
        if let Some(age) = self.rotator.min_age()
            && too_recent(meta, age)
        {
            return Ok((Outcome::Skipped(Skip::TooRecent), moved));
        }
        if meta.size == 0 {
            // Not a message (the shortest has a header): an empty object, such as the
            // zero-byte "directory" markers consoles create.
            return Ok((Outcome::Skipped(Skip::NotKmseal), moved));
        }
        let dec = self.rotator.decryptor();
        let seen = SeenAttributes::default();
        let fetch = |offset: u64, len: usize| ranged(store, meta, offset, len, &seen);
        let (header, _, prefix) = match dec.fetch_header(meta.size, fetch).await {
            Ok(found) => found,
            Err(kmseal::Error::NotKmseal) => {
                return Ok((Outcome::Skipped(Skip::NotKmseal), moved));
            }
            Err(e) => return Err(from_kmseal(key, e)),
        };
        moved.read += prefix.len() as u64;
        if let Some(outcome) = self.rotator.decide(&header) {
            return Ok((outcome, moved));
        }
        if meta.e_tag.is_none() {
            // Without an ETag no read or write below could say "the object I listed".
            return Err(Error::NoETag {
                key: key.to_string(),
            });
        }
        if meta.size <= self.max_single_put {
            self.rotate_whole(location, meta, prefix, &seen, &mut moved)
                .await?;
        } else {
            self.rotate_streamed(store, meta, &mut moved).await?;
        }
        tracing::info!(key = %key, mode = ?self.rotator.mode(), "rotated");
        Ok((Outcome::Rotated(()), moved))
    }

    /// In memory: read the rest after the header read, rotate, decrypt completely with the
    /// target, conditional `PUT`.
    async fn rotate_whole(
        &self,
        location: &Location,
        meta: &ObjectMeta,
        prefix: Vec<u8>,
        seen: &SeenAttributes,
        moved: &mut Moved,
    ) -> Result<(), Error> {
        let (store, key) = (location.store.as_ref(), &meta.location);
        // The rest of the object after the header read (none when it covered it all).
        let mut whole = prefix;
        let rest = meta.size.saturating_sub(whole.len() as u64);
        if rest > 0 {
            let len = usize::try_from(rest)
                .map_err(|_| Error::Url("an object larger than memory".into()))?;
            let tail = ranged(store, meta, whole.len() as u64, len, seen)
                .await
                .map_err(|e| from_kmseal(key, e.into()))?;
            moved.read += tail.len() as u64;
            whole.extend_from_slice(&tail);
        }
        let rotated = match self.rotator.rotate_message(&whole).await {
            Ok(Outcome::Rotated(m)) => m,
            // Selected from the same bytes a moment ago: the object changed in between.
            Ok(_) => return Err(changed(key)),
            Err(e) => return Err(from_kmseal(key, e)),
        };
        self.rotator
            .verify_message(&rotated)
            .await
            .map_err(|e| from_kmseal(key, e))?;
        moved.written += rotated.len() as u64;
        let attributes = seen
            .lock()
            .ok()
            .and_then(|mut a| a.take())
            .unwrap_or_default();
        put_if_unchanged(location, meta, PutPayload::from(rotated), attributes).await
    }

    /// Streaming: the object's bytes (read with `If-Match`) through
    /// [`Rotator::rotate_async`] into a multipart upload; the new header verified, the ETag
    /// checked again, then the upload completed.
    async fn rotate_streamed(
        &self,
        store: &dyn ObjectStore,
        meta: &ObjectMeta,
        moved: &mut Moved,
    ) -> Result<(), Error> {
        let key = &meta.location;
        let got = store
            .get_opts(key, get_options(meta, None))
            .await
            .map_err(|e| store_error(key, e))?;
        let options = PutMultipartOptions {
            attributes: got.attributes.clone(),
            ..PutMultipartOptions::default()
        };
        let body = ExactBody::new(got.into_stream(), meta.size);
        let reader = tokio_util::io::StreamReader::new(body);
        let upload = store.put_multipart_opts(key, options).await?;
        let mut writer = PartWriter::new(upload, self.part_size, HEAD_KEEP);
        let result = self.rotator.rotate_async(reader, &mut writer).await;
        let checked = match result {
            // A body that ended early or ran on: the copy is not the object.
            Err(kmseal::Error::Io(e)) if e.get_ref().is_some_and(|i| i.is::<ShortBody>()) => {
                let got = e
                    .into_inner()
                    .and_then(|i| i.downcast::<ShortBody>().ok())
                    .map_or(0, |b| b.0);
                Err(Error::ShortBody {
                    key: key.to_string(),
                    expected: meta.size,
                    got,
                })
            }
            Ok(Outcome::Rotated(_)) => {
                let head = writer.head().to_vec();
                self.check_streamed(store, meta, &head).await
            }
            Ok(_) => Err(changed(key)),
            Err(e) => Err(from_kmseal(key, e)),
        };
        moved.read += meta.size;
        if let Err(e) = checked {
            writer.abort().await;
            return Err(e);
        }
        moved.written += writer.written();
        writer.complete().await.map_err(|e| store_error(key, e))
    }

    /// Before a streamed upload completes: its header opens under the target, and the object
    /// is still the one listed.
    async fn check_streamed(
        &self,
        store: &dyn ObjectStore,
        meta: &ObjectMeta,
        head: &[u8],
    ) -> Result<(), Error> {
        let key = &meta.location;
        let (header, _) = self
            .rotator
            .decryptor()
            .parse_header(head)
            .map_err(|e| from_kmseal(key, e))?;
        self.rotator
            .verify_header(&header)
            .await
            .map_err(|e| from_kmseal(key, e))?;
        ensure_unchanged(store, meta).await
    }
}

/// A body stream that must be exactly the listed size: it fails (rather than ends) when the
/// body ends early, and when it runs past the size, and after a run of empty chunks (a
/// source that stopped making progress: object_store's local files, truncated in place,
/// yield empty chunks forever).
struct ExactBody<S> {
    inner: S,
    expected: u64,
    got: u64,
    empty_run: u32,
}

/// The error an [`ExactBody`] ends with: the bytes it had.
#[derive(Debug)]
struct ShortBody(u64);

impl std::fmt::Display for ShortBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the object's body had {} bytes, not its listed size",
            self.0
        )
    }
}

impl std::error::Error for ShortBody {}

/// Empty chunks in a row after which a body counts as stalled.
const MAX_EMPTY_RUN: u32 = 64;

impl<S> ExactBody<S> {
    fn new(inner: S, expected: u64) -> ExactBody<S> {
        ExactBody {
            inner,
            expected,
            got: 0,
            empty_run: 0,
        }
    }
}

impl<S> futures_util::Stream for ExactBody<S>
where
    S: futures_util::Stream<Item = object_store::Result<bytes::Bytes>> + Unpin,
{
    type Item = std::io::Result<bytes::Bytes>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = self.get_mut();
        let short = |got| Some(Err(std::io::Error::other(ShortBody(got))));
        match std::pin::Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) if this.got == this.expected => Poll::Ready(None),
            Poll::Ready(None) => Poll::Ready(short(this.got)),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(std::io::Error::other(e)))),
            Poll::Ready(Some(Ok(chunk))) => {
                this.got = this.got.saturating_add(chunk.len() as u64);
                this.empty_run = if chunk.is_empty() {
                    this.empty_run + 1
                } else {
                    0
                };
                if this.got > this.expected || this.empty_run > MAX_EMPTY_RUN {
                    return Poll::Ready(short(this.got));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
        }
    }
}

fn too_recent(meta: &ObjectMeta, age: Duration) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let modified = u64::try_from(meta.last_modified.timestamp()).unwrap_or(0);
    now.saturating_sub(modified) < age.as_secs()
}

fn get_options(meta: &ObjectMeta, range: Option<GetRange>) -> GetOptions {
    GetOptions {
        if_match: meta.e_tag.clone(),
        range,
        ..GetOptions::default()
    }
}

/// Exactly `len` bytes at `offset` of the listed version of the object.
/// The object's attributes (content type, cache control, user metadata) as a read returned
/// them: the rotated object is written with the same.
type SeenAttributes = Arc<std::sync::Mutex<Option<Attributes>>>;

async fn ranged(
    store: &dyn ObjectStore,
    meta: &ObjectMeta,
    offset: u64,
    len: usize,
    seen: &SeenAttributes,
) -> std::io::Result<Vec<u8>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let range = GetRange::Bounded(offset..offset.saturating_add(len as u64));
    let got = store
        .get_opts(&meta.location, get_options(meta, Some(range)))
        .await
        .map_err(std::io::Error::other)?;
    if let Ok(mut slot) = seen.lock() {
        slot.get_or_insert_with(|| got.attributes.clone());
    }
    let bytes = got.bytes().await.map_err(std::io::Error::other)?;
    Ok(bytes.to_vec())
}

fn changed(key: &Path) -> Error {
    Error::Changed {
        key: key.to_string(),
    }
}

fn store_error(key: &Path, e: object_store::Error) -> Error {
    match e {
        object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. } => {
            changed(key)
        }
        other => Error::Store(other),
    }
}

/// A kmseal error, with a store error that travelled inside an I/O error taken out again.
fn from_kmseal(key: &Path, e: kmseal::Error) -> Error {
    match e {
        kmseal::Error::Io(io) if io.get_ref().is_some_and(|i| i.is::<object_store::Error>()) => {
            match io.into_inner().map(|i| i.downcast::<object_store::Error>()) {
                Some(Ok(store)) => store_error(key, *store),
                _ => Error::Url("a store error was lost".into()),
            }
        }
        other => Error::Kmseal(other),
    }
}

async fn ensure_unchanged(store: &dyn ObjectStore, meta: &ObjectMeta) -> Result<(), Error> {
    let key = &meta.location;
    let now = store.head(key).await.map_err(|e| store_error(key, e))?;
    if now.e_tag != meta.e_tag || now.size != meta.size {
        return Err(changed(key));
    }
    Ok(())
}

/// `PUT` with `If-Match` the listed ETag; where the store has no compare-and-swap and the
/// location allows it ([`Location::check_then_write`]: the local filesystem), the ETag is
/// checked just before an atomic overwrite.
async fn put_if_unchanged(
    location: &Location,
    meta: &ObjectMeta,
    payload: PutPayload,
    attributes: Attributes,
) -> Result<(), Error> {
    let (store, key) = (location.store.as_ref(), &meta.location);
    let options = |mode| PutOptions {
        mode,
        attributes: attributes.clone(),
        ..PutOptions::default()
    };
    let update = PutMode::Update(UpdateVersion {
        e_tag: meta.e_tag.clone(),
        version: meta.version.clone(),
    });
    match store.put_opts(key, payload.clone(), options(update)).await {
        Ok(_) => Ok(()),
        Err(object_store::Error::NotImplemented { .. }) if location.check_then_write => {
            ensure_unchanged(store, meta).await?;
            store
                .put_opts(key, payload, options(PutMode::Overwrite))
                .await
                .map(drop)
                .map_err(|e| store_error(key, e))
        }
        Err(e) => Err(store_error(key, e)),
    }
}
