//! Object rotation against moto's S3 (`KMSEAL_TEST_S3_ENDPOINT`, started by `scripts/test`):
//! real ranged GETs with `If-Match`, conditional PUTs that moto refuses with 412 when the ETag
//! moved, and multipart uploads with S3's 5 MiB part minimum. Without the server these tests
//! fail; they never skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::*;
use kmseal::rotate::Rotator;
use kmseal::{Decryptor, Kek};
use kmseal_objects::{ObjectRotator, Shard};
use object_store::ObjectStoreExt;

fn s3_limits(rot: Rotator) -> ObjectRotator {
    ObjectRotator::new(rot)
        .max_single_put(8 << 20)
        .part_size(5 << 20)
        .jobs(4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrap_and_reencrypt_every_size_class_on_s3() {
    let (old, mid, new) = (local(), local(), local());
    let bucket = moto_bucket(&bucket_name("sizes"));
    let store = Hooked::new(bucket.store.clone());
    let mut objects = seed(store.as_ref(), &bucket.prefix, &old, true).await;
    objects.push(seed_large(store.as_ref(), &bucket.prefix, &old).await);
    let loc = store.location(&bucket.prefix);

    let rewrap = s3_limits(Rotator::rewrap(
        Decryptor::new(old.clone() as Arc<dyn Kek>),
        vec![mid.clone() as Arc<dyn Kek>],
    ));
    let (gets, puts) = (
        store.gets.load(Ordering::Relaxed),
        store.puts.load(Ordering::Relaxed),
    );
    let report = rewrap.rotate_prefix(&loc, |_, _| {}).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.rotated.len(), objects.len());
    assert_eq!(
        store.multiparts.load(Ordering::Relaxed),
        1,
        "the 12 MiB object went multipart"
    );
    // Requests per rotated object: a ranged GET of the header, a GET of the rest (none when
    // the header read covered a small object whole), one write.
    let gets = store.gets.load(Ordering::Relaxed) - gets;
    let puts = store.puts.load(Ordering::Relaxed) - puts;
    assert!(gets <= 2 * objects.len() + 1, "{gets} GETs");
    assert_eq!(puts, objects.len() - 1, "one PUT per small object");
    all_open(store.as_ref(), &objects, &mid).await;

    // A rerun: everything current, one ranged GET each, nothing written.
    let puts = store.puts.load(Ordering::Relaxed);
    let again = rewrap.rotate_prefix(&loc, |_, _| {}).await.unwrap();
    assert_eq!(again.already_current.len(), objects.len());
    assert_eq!(store.puts.load(Ordering::Relaxed), puts);

    let reencrypt = s3_limits(
        Rotator::reencrypt(
            Decryptor::new(mid.clone() as Arc<dyn Kek>),
            vec![new.clone() as Arc<dyn Kek>],
        )
        .only_wrapped_by(mid.clone()),
    );
    let report = reencrypt.rotate_prefix(&loc, |_, _| {}).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.rotated.len(), objects.len());
    all_open(store.as_ref(), &objects, &new).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_writer_on_s3_keeps_its_version() {
    let (old, new) = (local(), local());
    for (round, path) in ["single PUT", "multipart"].iter().enumerate() {
        let bucket = moto_bucket(&bucket_name(&format!("race{round}")));
        let store = Hooked::new(bucket.store.clone());
        let mut objects = seed(store.as_ref(), &bucket.prefix, &old, false).await;
        objects.push(seed_large(store.as_ref(), &bucket.prefix, &old).await);
        let victim = if round == 0 {
            objects[2].0.clone()
        } else {
            objects.last().unwrap().0.clone()
        };
        let theirs = b"written by someone else meanwhile".to_vec();
        *store.victim.lock().unwrap() = Some((victim.clone(), theirs.clone()));
        let rot = s3_limits(Rotator::rewrap(
            Decryptor::new(old.clone() as Arc<dyn Kek>),
            vec![new.clone() as Arc<dyn Kek>],
        ));
        let report = rot
            .rotate_prefix(&store.location(&bucket.prefix), |_, _| {})
            .await
            .unwrap();
        assert_eq!(report.failed.len(), 1, "{path}: {:?}", report.failed);
        assert_eq!(report.failed[0].0, victim.to_string());
        assert!(
            report.failed[0].1.is_changed(),
            "{path}: {}",
            report.failed[0].1
        );
        let now = store.get(&victim).await.unwrap().bytes().await.unwrap();
        assert_eq!(
            &now[..],
            &theirs[..],
            "{path}: the other writer's version survives"
        );
        let rest: Vec<_> = objects
            .iter()
            .filter(|(k, _)| *k != victim)
            .cloned()
            .collect();
        all_open(store.as_ref(), &rest, &new).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_workers_on_s3_cover_the_bucket_exactly_once() {
    let (old, new) = (local(), local());
    let bucket = moto_bucket(&bucket_name("shards"));
    let objects = seed(bucket.store.as_ref(), &bucket.prefix, &old, true).await;
    let n = 3;
    let mut seen = BTreeSet::new();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (old, new, bucket) = (old.clone(), new.clone(), bucket.clone());
            tokio::spawn(async move {
                s3_limits(Rotator::rewrap(
                    Decryptor::new(old as Arc<dyn Kek>),
                    vec![new as Arc<dyn Kek>],
                ))
                .shard(Shard::new(i, n).unwrap())
                .rotate_prefix(&bucket, |_, _| {})
                .await
                .unwrap()
            })
        })
        .collect();
    let mut listed = 0;
    for h in handles {
        let r = h.await.unwrap();
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        listed += r.listed;
        for k in r.rotated {
            assert!(seen.insert(k), "rotated by two workers");
        }
    }
    assert_eq!(seen.len(), objects.len());
    assert_eq!(
        listed,
        objects.len() as u64 + 1,
        "every object in exactly one shard"
    );
    all_open(bucket.store.as_ref(), &objects, &new).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_type_and_user_metadata_survive_rotation_on_s3() {
    let (old, new) = (local(), local());
    let bucket = moto_bucket(&bucket_name("attrs"));
    let rot = s3_limits(Rotator::reencrypt(
        Decryptor::new(old.clone() as Arc<dyn Kek>),
        vec![new.clone() as Arc<dyn Kek>],
    ));
    attributes_survive(
        bucket.store.as_ref(),
        &bucket.prefix,
        &rot,
        &bucket,
        &old,
        &new,
        [1000, (9 << 20) + 1],
    )
    .await;
}

/// A key object_store cannot represent (`//`) fails its whole listing page: the run stops with
/// `Error::Listing`, naming the key, and changes nothing it did not finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_client_cannot_represent_stops_the_listing_and_says_so() {
    use std::io::{Read, Write};
    let (old, new) = (local(), local());
    let name = bucket_name("badkey");
    let bucket = moto_bucket(&name);
    let objects = seed(bucket.store.as_ref(), &bucket.prefix, &old, false).await;
    // A raw PUT (moto checks no signature) of a key with an empty segment.
    let endpoint = s3_endpoint();
    let addr = endpoint.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "PUT /{name}/data/0//planted HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
    )
    .unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let err = s3_limits(Rotator::rewrap(
        Decryptor::new(old.clone() as Arc<dyn Kek>),
        vec![new.clone() as Arc<dyn Kek>],
    ))
    .rotate_prefix(&bucket, |_, _| {})
    .await
    .unwrap_err();
    assert!(
        matches!(err, kmseal_objects::Error::Listing { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("data/0//planted"), "{err}");
    for (key, pt) in &objects {
        opened_by(bucket.store.as_ref(), key, &old, &new, pt).await;
    }
}
