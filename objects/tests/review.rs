//! An adversarial review's cases (issue 24), each failing on the code before its fix: a body
//! that ends early or stalls during a streamed rotation (a truncated copy had replaced the
//! object; a local file truncated in place had hung the run), a store without ETags (the
//! multipart path had overwritten a concurrent writer), a listing that fails part way (the
//! run had stopped with nothing to show), and a store that refuses conditional writes (never
//! an unconditional overwrite unless the location allows it). Also what held: an error in
//! the middle of a body, and a listing that under-reports a size.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use kmseal::rotate::Rotator;
use kmseal::{Decryptor, Encryptor, FrameSize, Kek, LocalKek};
use kmseal_objects::{Error, Location, ObjectRotator, Report};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

#[derive(Debug, Clone, Default)]
struct Lies {
    /// Whole-object GET bodies end cleanly after this many bytes (then empty chunks).
    short_body: Option<usize>,
    /// Whole-object GET bodies fail after this many bytes.
    error_after: Option<usize>,
    /// After the first GET of a range past the start, this file is truncated in place.
    truncate_file: Option<std::path::PathBuf>,
    /// Listings and reads carry no ETag.
    no_etag: bool,
    /// Listings report sizes this much smaller.
    smaller_size: u64,
    /// The listing fails after this many objects.
    list_fails_after: Option<usize>,
    /// Conditional PUTs are "not implemented".
    no_conditional_put: bool,
}

#[derive(Debug)]
struct Hostile {
    inner: Arc<dyn ObjectStore>,
    lies: Lies,
    victim: Mutex<Option<(Path, Vec<u8>)>>,
}

impl fmt::Display for Hostile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hostile({})", self.inner)
    }
}

impl Hostile {
    async fn race(&self, location: &Path) {
        let hit = {
            let mut v = self.victim.lock().unwrap();
            if v.as_ref().is_some_and(|(k, _)| k == location) {
                v.take()
            } else {
                None
            }
        };
        if let Some((k, d)) = hit {
            self.inner.put(&k, PutPayload::from(d)).await.unwrap();
        }
    }
}

#[async_trait]
impl ObjectStore for Hostile {
    async fn put_opts(
        &self,
        l: &Path,
        p: PutPayload,
        o: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.race(l).await;
        if self.lies.no_conditional_put && matches!(o.mode, PutMode::Update(_)) {
            return Err(object_store::Error::NotImplemented {
                operation: "conditional put".into(),
                implementer: "Hostile".into(),
            });
        }
        self.inner.put_opts(l, p, o).await
    }
    async fn put_multipart_opts(
        &self,
        l: &Path,
        o: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.race(l).await;
        self.inner.put_multipart_opts(l, o).await
    }
    async fn get_opts(&self, l: &Path, o: GetOptions) -> object_store::Result<GetResult> {
        let whole = o.range.is_none() && !o.head;
        let past_start =
            matches!(&o.range, Some(object_store::GetRange::Bounded(r)) if r.start > 0);
        let mut got = self.inner.get_opts(l, o).await?;
        if let Some(file) = &self.lies.truncate_file
            && (whole || past_start)
        {
            std::fs::write(file, b"the other writer's short version").unwrap();
        }
        if self.lies.no_etag {
            got.meta.e_tag = None;
        }
        if whole {
            let GetResultPayload::Stream(s) = got.payload else {
                return Ok(got);
            };
            let (short, error_after) = (self.lies.short_body, self.lies.error_after);
            let mut seen = 0usize;
            let lying = s.map(move |chunk| {
                let mut b = chunk?;
                if let Some(after) = error_after
                    && seen + b.len() > after
                {
                    return Err(object_store::Error::Generic {
                        store: "Hostile",
                        source: "connection reset".into(),
                    });
                }
                if let Some(keep) = short {
                    b.truncate(keep.saturating_sub(seen));
                }
                seen += b.len();
                Ok(b)
            });
            got.payload = GetResultPayload::Stream(lying.boxed());
        }
        Ok(got)
    }
    fn delete_stream(
        &self,
        l: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(l)
    }
    fn list(&self, p: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let lies = self.lies.clone();
        let listed = self.inner.list(p).map_ok(move |mut m| {
            if lies.no_etag {
                m.e_tag = None;
            }
            m.size -= lies.smaller_size.min(m.size);
            m
        });
        match self.lies.list_fails_after {
            None => listed.boxed(),
            Some(n) => listed
                .take(n)
                .chain(futures_util::stream::iter([Err(
                    object_store::Error::InvalidPath {
                        source: object_store::path::Path::parse("a//b").unwrap_err(),
                    },
                )]))
                .boxed(),
        }
    }
    async fn list_with_delimiter(&self, p: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(p).await
    }
    async fn copy_opts(&self, f: &Path, t: &Path, o: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(f, t, o).await
    }
}

/// One message of `len` bytes under `old` at p/obj.kmseal; returns (store, key, plaintext).
async fn one_object(
    inner: Arc<dyn ObjectStore>,
    old: &Arc<LocalKek>,
    len: usize,
) -> (Path, Vec<u8>, Vec<u8>) {
    let key = Path::from("p").join("obj.kmseal");
    let pt = pattern(len, 1);
    let msg = Encryptor::new(old.clone() as Arc<dyn Kek>)
        .frame_size(FrameSize::new(FS).unwrap())
        .encrypt(&pt)
        .await
        .unwrap();
    inner
        .put(&key, PutPayload::from(msg.clone()))
        .await
        .unwrap();
    (key, pt, msg)
}

fn rotator(old: &Arc<LocalKek>, new: &Arc<LocalKek>, reencrypt: bool) -> ObjectRotator {
    let dec = Decryptor::new(old.clone() as Arc<dyn Kek>);
    let to = vec![new.clone() as Arc<dyn Kek>];
    let rot = if reencrypt {
        Rotator::reencrypt(dec, to)
    } else {
        Rotator::rewrap(dec, to)
    };
    // 64 KiB single-PUT limit: 300 KB objects take the streamed (multipart) path.
    ObjectRotator::new(rot)
        .max_single_put(64 << 10)
        .part_size(16 << 10)
}

async fn run(
    store: Arc<Hostile>,
    rot: &ObjectRotator,
    check_then_write: bool,
) -> Result<Report, Error> {
    let mut location = Location::new(store, Path::from("p"));
    location.check_then_write = check_then_write;
    tokio::time::timeout(
        Duration::from_secs(30),
        rot.rotate_prefix(&location, |_, _| {}),
    )
    .await
    .expect("the rotation must not hang")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_ends_early_or_fails_leaves_the_object_as_it_was() {
    for lies in [
        Lies {
            short_body: Some(200_000),
            ..Lies::default()
        },
        Lies {
            error_after: Some(150_000),
            ..Lies::default()
        },
    ] {
        for reencrypt in [false, true] {
            let (old, new) = (local(), local());
            let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            let (key, pt, msg) = one_object(inner.clone(), &old, 300_000).await;
            let store = Arc::new(Hostile {
                inner: inner.clone(),
                lies: lies.clone(),
                victim: Mutex::new(None),
            });
            let report = run(store, &rotator(&old, &new, reencrypt), false)
                .await
                .unwrap();
            assert_eq!(
                report.failed.len(),
                1,
                "{lies:?} reencrypt={reencrypt}: {:?}",
                report.rotated
            );
            if lies.short_body.is_some() {
                assert!(
                    matches!(
                        report.failed[0].1,
                        Error::ShortBody { .. } | Error::Kmseal(_)
                    ),
                    "{}",
                    report.failed[0].1
                );
            }
            let now = inner.get(&key).await.unwrap().bytes().await.unwrap();
            assert!(
                now[..] == msg[..],
                "{lies:?} reencrypt={reencrypt}: untouched"
            );
            assert_eq!(
                opened_by(inner.as_ref(), &key, &old, &new, &pt).await,
                "old"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_file_truncated_in_place_never_hangs_the_run_and_the_writer_wins() {
    for len in [300_000, 30_000] {
        for reencrypt in [false, true] {
            let (old, new) = (local(), local());
            let dir = std::env::temp_dir().join(format!(
                "kmseal-review24-{}-{len}-{reencrypt}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let inner: Arc<dyn ObjectStore> =
                Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&dir).unwrap());
            one_object(inner.clone(), &old, len).await;
            let file = dir.join("p").join("obj.kmseal");
            let lies = Lies {
                truncate_file: Some(file.clone()),
                ..Lies::default()
            };
            let store = Arc::new(Hostile {
                inner,
                lies,
                victim: Mutex::new(None),
            });
            let report = run(store, &rotator(&old, &new, reencrypt), true)
                .await
                .unwrap();
            assert_eq!(report.failed.len(), 1, "len={len} reencrypt={reencrypt}");
            let now = std::fs::read(&file).unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            assert_eq!(
                &now[..],
                b"the other writer's short version",
                "len={len} reencrypt={reencrypt}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_etags_nothing_is_written() {
    for len in [30_000, 300_000] {
        let (old, new) = (local(), local());
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let (key, _, msg) = one_object(inner.clone(), &old, len).await;
        // A concurrent writer's version of the same size.
        let theirs = Encryptor::new(old.clone() as Arc<dyn Kek>)
            .frame_size(FrameSize::new(FS).unwrap())
            .encrypt(&pattern(len, 2))
            .await
            .unwrap();
        assert_eq!(theirs.len(), msg.len());
        let lies = Lies {
            no_etag: true,
            ..Lies::default()
        };
        let store = Arc::new(Hostile {
            inner: inner.clone(),
            lies,
            victim: Mutex::new(Some((key.clone(), theirs.clone()))),
        });
        let report = run(store, &rotator(&old, &new, false), false)
            .await
            .unwrap();
        assert_eq!(report.failed.len(), 1, "len={len}");
        assert!(
            matches!(report.failed[0].1, Error::NoETag { .. }),
            "{}",
            report.failed[0].1
        );
        let now = inner.get(&key).await.unwrap().bytes().await.unwrap();
        assert!(now[..] == msg[..], "len={len}: nothing written");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_fails_part_way_returns_what_was_done() {
    let (old, new) = (local(), local());
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let prefix = Path::from("p");
    let objects = seed(inner.as_ref(), &prefix, &old, false).await;
    let lies = Lies {
        list_fails_after: Some(5),
        ..Lies::default()
    };
    let store = Arc::new(Hostile {
        inner: inner.clone(),
        lies,
        victim: Mutex::new(None),
    });
    let err = run(store, &rotator(&old, &new, false), false)
        .await
        .unwrap_err();
    let Error::Listing { report, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        report.listed, 5,
        "the objects listed before the failure were rotated"
    );
    assert!(
        err.to_string().contains("empty path segment") || err.to_string().contains("a//b"),
        "{err}"
    );
    // Whatever was rotated opens under the new KEK, everything else under the old.
    for (key, pt) in &objects {
        let by = opened_by(inner.as_ref(), key, &old, &new, pt).await;
        let rotated = report.rotated.contains(&key.to_string());
        assert_eq!(by, if rotated { "new" } else { "old" }, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_refuses_conditional_writes_is_never_overwritten_blindly() {
    let (old, new) = (local(), local());
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let (key, _, msg) = one_object(inner.clone(), &old, 30_000).await;
    let lies = Lies {
        no_conditional_put: true,
        ..Lies::default()
    };
    let store = Arc::new(Hostile {
        inner: inner.clone(),
        lies: lies.clone(),
        victim: Mutex::new(None),
    });
    let report = run(store, &rotator(&old, &new, false), false)
        .await
        .unwrap();
    assert_eq!(report.failed.len(), 1);
    assert!(
        matches!(
            report.failed[0].1,
            Error::Store(object_store::Error::NotImplemented { .. })
        ),
        "{}",
        report.failed[0].1
    );
    assert!(inner.get(&key).await.unwrap().bytes().await.unwrap()[..] == msg[..]);
    // Allowed (the local filesystem's case): checked, then written.
    let store = Arc::new(Hostile {
        inner: inner.clone(),
        lies,
        victim: Mutex::new(None),
    });
    let report = run(store, &rotator(&old, &new, false), true).await.unwrap();
    assert_eq!(report.rotated.len(), 1, "{:?}", report.failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_under_reports_a_size_changes_nothing() {
    for len in [30_000, 300_000] {
        let (old, new) = (local(), local());
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let (key, _, msg) = one_object(inner.clone(), &old, len).await;
        let lies = Lies {
            smaller_size: 1000,
            ..Lies::default()
        };
        let store = Arc::new(Hostile {
            inner: inner.clone(),
            lies,
            victim: Mutex::new(None),
        });
        let report = run(store, &rotator(&old, &new, false), false)
            .await
            .unwrap();
        assert_eq!(report.failed.len(), 1, "len={len}");
        assert!(inner.get(&key).await.unwrap().bytes().await.unwrap()[..] == msg[..]);
    }
}
