//! What the object-store tests share: seeding a prefix with messages of every size class, a
//! store wrapper that counts requests and lets a test play a concurrent writer, and checks.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::TryStreamExt;
use futures_util::stream::BoxStream;
use kmseal::{Decryptor, Encryptor, FrameSize, Kek, LocalKek};
use kmseal_objects::Location;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// Frame size of the seeded messages: small, so small objects have many frames.
pub(crate) const FS: u32 = 4096;

/// Plaintext sizes: empty, one byte, one frame and around it, many frames, and past the
/// single-PUT limit the tests set (64 KiB), so the multipart path runs too.
pub(crate) const SIZES: [usize; 8] = [0, 1, 4095, 4096, 4097, 50_000, 200_000, 700_001];

pub(crate) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2654435761)
                .wrapping_add(u32::from(seed)) as u8
        })
        .collect()
}

pub(crate) fn local() -> Arc<LocalKek> {
    Arc::new(LocalKek::generate().unwrap())
}

/// Writes one message per size (and a plain object that is not kmseal) under `prefix`;
/// returns (key, plaintext) of the messages.
pub(crate) async fn seed(
    store: &dyn ObjectStore,
    prefix: &Path,
    kek: &Arc<LocalKek>,
    signed_too: bool,
) -> Vec<(Path, Vec<u8>)> {
    let mut out = Vec::new();
    let enc = Encryptor::new(kek.clone() as Arc<dyn Kek>).frame_size(FrameSize::new(FS).unwrap());
    for (i, &len) in SIZES.iter().enumerate() {
        for signed in [false, true] {
            if signed && !signed_too {
                continue;
            }
            let pt = pattern(len, i as u8);
            let msg = enc.clone().signed(signed).encrypt(&pt).await.unwrap();
            let key = prefix
                .clone()
                .join(format!("obj-{i}-{}.kmseal", if signed { "s" } else { "u" }));
            store.put(&key, PutPayload::from(msg)).await.unwrap();
            out.push((key, pt));
        }
    }
    store
        .put(
            &prefix.clone().join("README.txt"),
            PutPayload::from_static(b"not a kmseal message"),
        )
        .await
        .unwrap();
    out
}

/// Every seeded object opens under `kek` with its plaintext.
pub(crate) async fn all_open(
    store: &dyn ObjectStore,
    objects: &[(Path, Vec<u8>)],
    kek: &Arc<LocalKek>,
) {
    let dec = Decryptor::new(kek.clone() as Arc<dyn Kek>);
    for (key, pt) in objects {
        let bytes = store.get(key).await.unwrap().bytes().await.unwrap();
        let opened = dec
            .decrypt(&bytes)
            .await
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!(opened.expose_secret() == &pt[..], "{key}");
    }
}

/// Which of two KEKs opens the object (panics if neither).
pub(crate) async fn opened_by(
    store: &dyn ObjectStore,
    key: &Path,
    old: &Arc<LocalKek>,
    new: &Arc<LocalKek>,
    pt: &[u8],
) -> &'static str {
    let bytes = store.get(key).await.unwrap().bytes().await.unwrap();
    for (name, k) in [("old", old), ("new", new)] {
        if let Ok(p) = Decryptor::new(k.clone() as Arc<dyn Kek>)
            .decrypt(&bytes)
            .await
        {
            assert!(
                p.expose_secret() == pt,
                "{key}: wrong plaintext under the {name} KEK"
            );
            return name;
        }
    }
    panic!("{key} opens under neither KEK: lost")
}

pub(crate) async fn keys(store: &dyn ObjectStore, prefix: &Path) -> Vec<String> {
    let mut k: Vec<String> = store
        .list(Some(prefix))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    k.sort();
    k
}

/// Counts requests by kind; can overwrite `victim` (as a concurrent writer would) just
/// before the first write to it.
#[derive(Debug)]
pub(crate) struct Hooked {
    pub(crate) inner: Arc<dyn ObjectStore>,
    pub(crate) victim: Mutex<Option<(Path, Vec<u8>)>>,
    pub(crate) gets: AtomicUsize,
    pub(crate) puts: AtomicUsize,
    pub(crate) multiparts: AtomicUsize,
    pub(crate) heads_and_lists: AtomicUsize,
}

impl Hooked {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>) -> Arc<Hooked> {
        Arc::new(Hooked {
            inner,
            victim: Mutex::new(None),
            gets: AtomicUsize::new(0),
            puts: AtomicUsize::new(0),
            multiparts: AtomicUsize::new(0),
            heads_and_lists: AtomicUsize::new(0),
        })
    }

    pub(crate) fn location(self: &Arc<Self>, prefix: &Path) -> Location {
        Location::new(self.clone() as Arc<dyn ObjectStore>, prefix.clone())
    }

    async fn race(&self, location: &Path) {
        let hit = {
            let mut v = self.victim.lock().unwrap();
            match v.as_ref() {
                Some((k, _)) if k == location => v.take(),
                _ => None,
            }
        };
        if let Some((k, data)) = hit {
            self.inner.put(&k, PutPayload::from(data)).await.unwrap();
        }
    }
}

impl fmt::Display for Hooked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hooked({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Hooked {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.puts.fetch_add(1, Ordering::Relaxed);
        self.race(location).await;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.multiparts.fetch_add(1, Ordering::Relaxed);
        self.race(location).await;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if options.head {
            self.heads_and_lists.fetch_add(1, Ordering::Relaxed);
        } else {
            self.gets.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.heads_and_lists.fetch_add(1, Ordering::Relaxed);
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// moto's S3 started by `scripts/test` (`KMSEAL_TEST_S3_ENDPOINT`). Without it the S3 tests
/// fail: they never skip.
pub(crate) fn s3_endpoint() -> String {
    std::env::var("KMSEAL_TEST_S3_ENDPOINT")
        .expect("KMSEAL_TEST_S3_ENDPOINT is not set: run scripts/test, which starts moto")
}

/// A fresh bucket on moto (created with a plain `PUT /bucket`: moto checks no signature)
/// and a store on it that writes with `If-Match`, under the prefix `data`.
pub(crate) fn moto_bucket(name: &str) -> Location {
    use std::io::{Read, Write};
    let endpoint = s3_endpoint();
    let addr = endpoint.trim_start_matches("http://").to_owned();
    let mut conn = std::net::TcpStream::connect(&addr).expect("moto (S3) must be reachable");
    write!(
        conn,
        "PUT /{name} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 200"),
        "creating bucket {name}: {reply}"
    );
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_bucket_name(name)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
        .build()
        .unwrap();
    Location::new(Arc::new(store), Path::from("data"))
}

/// A bucket name unique to this process and `tag`.
pub(crate) fn bucket_name(tag: &str) -> String {
    format!("kmseal-{tag}-{}", std::process::id())
}

/// One large object (past an 8 MiB single-PUT limit: three 5 MiB parts on S3).
pub(crate) async fn seed_large(
    store: &dyn ObjectStore,
    prefix: &Path,
    kek: &Arc<LocalKek>,
) -> (Path, Vec<u8>) {
    let pt = pattern((12 << 20) + 3, 77);
    let msg = Encryptor::new(kek.clone() as Arc<dyn Kek>)
        .encrypt(&pt)
        .await
        .unwrap();
    let key = prefix.clone().join("large.kmseal");
    store.put(&key, PutPayload::from(msg)).await.unwrap();
    (key, pt)
}

/// Attributes a user set on an object: a content type, cache control and user metadata.
pub(crate) fn user_attributes() -> object_store::Attributes {
    use object_store::Attribute;
    let mut a = object_store::Attributes::new();
    a.insert(
        Attribute::ContentType,
        "application/vnd.example.kmseal".into(),
    );
    a.insert(Attribute::CacheControl, "no-store".into());
    a.insert(Attribute::Metadata("owner".into()), "billing".into());
    a
}

/// Rotates `small` and `large` objects written with [`user_attributes`] and checks that the
/// rotated objects carry them.
pub(crate) async fn attributes_survive(
    store: &dyn ObjectStore,
    prefix: &Path,
    rotator: &kmseal_objects::ObjectRotator,
    location: &Location,
    old: &Arc<LocalKek>,
    new: &Arc<LocalKek>,
    sizes: [usize; 2],
) {
    for (i, size) in sizes.into_iter().enumerate() {
        let pt = pattern(size, 5);
        let msg = Encryptor::new(old.clone() as Arc<dyn Kek>)
            .encrypt(&pt)
            .await
            .unwrap();
        let key = prefix.clone().join(format!("attr{i}.kmseal"));
        let opts = PutOptions {
            attributes: user_attributes(),
            ..PutOptions::default()
        };
        store
            .put_opts(&key, PutPayload::from(msg), opts)
            .await
            .unwrap();
    }
    let report = rotator.rotate_prefix(location, |_, _| {}).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    for i in 0..2 {
        let key = prefix.clone().join(format!("attr{i}.kmseal"));
        let got = store.get(&key).await.unwrap();
        let attrs = got.attributes.clone();
        let bytes = got.bytes().await.unwrap();
        Decryptor::new(new.clone() as Arc<dyn Kek>)
            .decrypt(&bytes)
            .await
            .unwrap();
        for (k, v) in user_attributes().iter() {
            assert_eq!(attrs.get(k), Some(v), "{key}: {k:?} kept");
        }
    }
}
