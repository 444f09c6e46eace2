//! Object rotation against object_store's in-memory store (compare-and-swap like S3's
//! `If-Match`) and the local filesystem (no compare-and-swap: ETag checked before an atomic
//! rename): every size class through both the single-PUT and the multipart path, reruns,
//! shards, a concurrent writer, dry runs and selection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::*;
use kmseal::rotate::{Outcome, Rotator, Skip};
use kmseal::{Decryptor, Kek, Suite};
use kmseal_objects::{Error, Location, ObjectRotator, Shard};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

/// Single PUT up to 64 KiB, parts of 16 KiB beyond: both paths run on small data.
fn small_limits(rot: Rotator) -> ObjectRotator {
    ObjectRotator::new(rot)
        .max_single_put(64 << 10)
        .part_size(16 << 10)
        .jobs(3)
}

fn memory() -> (Arc<Hooked>, Path) {
    (
        Hooked::new(Arc::new(InMemory::new())),
        Path::from("tenant/exports"),
    )
}

async fn body_after_header(store: &dyn ObjectStore, key: &Path, dec: &Decryptor) -> Vec<u8> {
    let bytes = store.get(key).await.unwrap().bytes().await.unwrap();
    let (_, body) = dec.parse_header(&bytes).unwrap();
    body.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrap_rotates_every_size_class_and_keeps_the_frames() {
    let (old, new) = (local(), local());
    let (store, prefix) = memory();
    let objects = seed(store.as_ref(), &prefix, &old, true).await;
    let any = Decryptor::new(old.clone() as Arc<dyn Kek>);
    let mut bodies = Vec::new();
    for (k, _) in &objects {
        bodies.push(body_after_header(store.as_ref(), k, &any).await);
    }
    let rot = small_limits(Rotator::rewrap(
        Decryptor::new(old.clone() as Arc<dyn Kek>),
        vec![new.clone() as Arc<dyn Kek>],
    ));
    let report = rot
        .rotate_prefix(&store.location(&prefix), |_, _| {})
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.rotated.len(), objects.len());
    assert_eq!(report.skipped.len(), 1, "README.txt: {:?}", report.skipped);
    assert!(matches!(report.skipped[0].1, Skip::NotKmseal));
    assert_eq!(report.listed, objects.len() as u64 + 1);
    assert!(
        store.multiparts.load(Ordering::Relaxed) > 0,
        "the multipart path ran"
    );
    all_open(store.as_ref(), &objects, &new).await;
    let newdec = Decryptor::new(new.clone() as Arc<dyn Kek>);
    for ((k, _), before) in objects.iter().zip(&bodies) {
        assert!(
            any.decrypt(&store.get(k).await.unwrap().bytes().await.unwrap())
                .await
                .is_err()
        );
        assert!(
            body_after_header(store.as_ref(), k, &newdec).await == *before,
            "{k}: frames kept"
        );
    }
    // A rerun finds everything current and writes nothing.
    let puts = store.puts.load(Ordering::Relaxed) + store.multiparts.load(Ordering::Relaxed);
    let again = small_limits(Rotator::rewrap(
        newdec.clone(),
        vec![new.clone() as Arc<dyn Kek>],
    ))
    .rotate_prefix(&store.location(&prefix), |_, _| {})
    .await
    .unwrap();
    assert_eq!(again.already_current.len(), objects.len());
    assert!(again.rotated.is_empty() && again.failed.is_empty());
    assert_eq!(
        store.puts.load(Ordering::Relaxed) + store.multiparts.load(Ordering::Relaxed),
        puts,
        "a rerun writes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reencrypt_rotates_every_size_class_under_new_data_keys() {
    let (old, new) = (local(), local());
    let (store, prefix) = memory();
    let objects = seed(store.as_ref(), &prefix, &old, true).await;
    let olddec = Decryptor::new(old.clone() as Arc<dyn Kek>);
    let rot = small_limits(
        Rotator::reencrypt(olddec.clone(), vec![new.clone() as Arc<dyn Kek>])
            .suite(Suite::ChaCha20Poly1305)
            .only_wrapped_by(old.clone()),
    );
    let report = rot
        .rotate_prefix(&store.location(&prefix), |_, _| {})
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.rotated.len(), objects.len());
    all_open(store.as_ref(), &objects, &new).await;
    let newdec = Decryptor::new(new.clone() as Arc<dyn Kek>);
    for (k, _) in &objects {
        let bytes = store.get(k).await.unwrap().bytes().await.unwrap();
        let (h, _) = newdec.parse_header(&bytes).unwrap();
        assert_eq!(h.suite(), Suite::ChaCha20Poly1305, "{k}");
    }
    // Rerun with --only-key old: nothing left to do.
    let again = rot
        .rotate_prefix(&store.location(&prefix), |_, _| {})
        .await
        .unwrap();
    assert!(again.rotated.is_empty());
    assert_eq!(
        again
            .skipped
            .iter()
            .filter(|(_, s)| *s == Skip::NotWrappedBySelected)
            .count(),
        objects.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_cover_every_object_exactly_once() {
    let (old, new) = (local(), local());
    let (store, prefix) = memory();
    let objects = seed(store.as_ref(), &prefix, &old, true).await;
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for i in 0..4 {
        let rot = small_limits(Rotator::rewrap(
            Decryptor::new(old.clone() as Arc<dyn Kek>),
            vec![new.clone() as Arc<dyn Kek>],
        ))
        .shard(Shard::new(i, 4).unwrap());
        let report = rot
            .rotate_prefix(&store.location(&prefix), |_, _| {})
            .await
            .unwrap();
        assert!(report.failed.is_empty());
        total += report.rotated.len();
        for k in report.rotated {
            assert!(seen.insert(k), "an object in two shards");
        }
    }
    assert_eq!(total, objects.len());
    all_open(store.as_ref(), &objects, &new).await;
    // I/N parsing.
    assert_eq!("3/4".parse::<Shard>().unwrap(), Shard::new(3, 4).unwrap());
    for bad in ["4/4", "1/0", "x/2", "2", "-1/3", ""] {
        assert!(bad.parse::<Shard>().is_err(), "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_writers_update_survives() {
    let (old, new) = (local(), local());
    for (victim_index, path) in [(3usize, "single PUT"), (14, "multipart")] {
        let (store, prefix) = memory();
        let objects = seed(store.as_ref(), &prefix, &old, true).await;
        let (victim, _) = &objects[victim_index];
        let theirs = b"the other writer's new version".to_vec();
        *store.victim.lock().unwrap() = Some((victim.clone(), theirs.clone()));
        let rot = small_limits(Rotator::rewrap(
            Decryptor::new(old.clone() as Arc<dyn Kek>),
            vec![new.clone() as Arc<dyn Kek>],
        ));
        let report = rot
            .rotate_prefix(&store.location(&prefix), |_, _| {})
            .await
            .unwrap();
        assert_eq!(report.failed.len(), 1, "{path}: {:?}", report.failed);
        let (key, err) = &report.failed[0];
        assert_eq!(key, victim.as_ref());
        assert!(matches!(err, Error::Changed { .. }), "{path}: {err}");
        assert!(err.is_changed());
        let now = store.get(victim).await.unwrap().bytes().await.unwrap();
        assert_eq!(
            &now[..],
            &theirs[..],
            "{path}: the other writer's version is kept"
        );
        let rest: Vec<_> = objects
            .iter()
            .filter(|(k, _)| k != victim)
            .cloned()
            .collect();
        all_open(store.as_ref(), &rest, &new).await;
    }
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_selection_holds() {
    let (old, new, other) = (local(), local(), local());
    let (store, prefix) = memory();
    let objects = seed(store.as_ref(), &prefix, &old, false).await;
    let before: Vec<_> = {
        let mut v = Vec::new();
        for (k, _) in &objects {
            v.push(store.get(k).await.unwrap().bytes().await.unwrap());
        }
        v
    };
    let rot = small_limits(
        Rotator::rewrap(
            Decryptor::new(old.clone() as Arc<dyn Kek>),
            vec![new.clone() as Arc<dyn Kek>],
        )
        .dry_run(true),
    );
    store.gets.store(0, Ordering::Relaxed);
    let report = rot
        .rotate_prefix(&store.location(&prefix), |_, _| {})
        .await
        .unwrap();
    assert_eq!(report.rotated.len(), objects.len());
    assert_eq!(
        store.puts.load(Ordering::Relaxed),
        objects.len() + 1,
        "only the seeding PUTs"
    );
    // A dry run reads headers only: one small ranged GET per object.
    assert_eq!(store.gets.load(Ordering::Relaxed), objects.len() + 1);
    for ((k, _), b) in objects.iter().zip(&before) {
        assert_eq!(store.get(k).await.unwrap().bytes().await.unwrap(), *b);
    }
    // Not wrapped by the selected KEK: skipped. Too recent: skipped.
    let sel = small_limits(
        Rotator::rewrap(
            Decryptor::new(old.clone() as Arc<dyn Kek>),
            vec![new.clone() as Arc<dyn Kek>],
        )
        .only_wrapped_by(other.clone()),
    );
    let r = sel
        .rotate_prefix(&store.location(&prefix), |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        r.skipped
            .iter()
            .filter(|(_, s)| *s == Skip::NotWrappedBySelected)
            .count(),
        objects.len()
    );
    let young = small_limits(
        Rotator::rewrap(
            Decryptor::new(old.clone() as Arc<dyn Kek>),
            vec![new.clone() as Arc<dyn Kek>],
        )
        .older_than(std::time::Duration::from_secs(3600)),
    );
    let r = young
        .rotate_prefix(&store.location(&prefix), |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        r.skipped
            .iter()
            .filter(|(_, s)| *s == Skip::TooRecent)
            .count(),
        objects.len() + 1
    );
}

#[tokio::test]
async fn bad_objects_fail_alone_and_stay_untouched() {
    let (old, new, stranger) = (local(), local(), local());
    let (store, prefix) = memory();
    let objects = seed(store.as_ref(), &prefix, &old, false).await;
    // A message under a KEK we do not hold, a tampered one, a truncated header.
    let foreign = kmseal::Encryptor::new(stranger.clone() as Arc<dyn Kek>)
        .encrypt(b"someone else's")
        .await
        .unwrap();
    let mut tampered = kmseal::Encryptor::new(old.clone() as Arc<dyn Kek>)
        .frame_size(kmseal::FrameSize::new(FS).unwrap())
        .encrypt(&pattern(30_000, 9))
        .await
        .unwrap();
    let n = tampered.len();
    tampered[n - 5000] ^= 1;
    let cut = foreign[..20].to_vec();
    let bad = [("foreign", foreign), ("tampered", tampered), ("cut", cut)];
    // An empty object (a console's "directory" marker) is not a message: skipped, not failed.
    store
        .inner
        .put(
            &prefix.clone().join("folder/"),
            object_store::PutPayload::default(),
        )
        .await
        .unwrap();
    for (name, bytes) in &bad {
        store
            .inner
            .put(
                &prefix.clone().join(*name),
                object_store::PutPayload::from(bytes.clone()),
            )
            .await
            .unwrap();
    }
    let rot = small_limits(Rotator::rewrap(
        Decryptor::new(old.clone() as Arc<dyn Kek>),
        vec![new.clone() as Arc<dyn Kek>],
    ));
    let report = rot
        .rotate_prefix(&store.location(&prefix), |_, _| {})
        .await
        .unwrap();
    let failed: BTreeSet<_> = report
        .failed
        .iter()
        .map(|(k, _)| k.rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        failed,
        ["cut", "foreign", "tampered"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    for (name, bytes) in &bad {
        let now = store
            .get(&prefix.clone().join(*name))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&now[..], &bytes[..], "{name} untouched");
    }
    all_open(store.as_ref(), &objects, &new).await;
    // Errors name the object and the reason, never a plaintext byte.
    for (_, e) in &report.failed {
        let text = e.to_string();
        assert!(!text.is_empty());
        assert!(!text.contains("someone else"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_filesystem_rotates_through_the_same_path() {
    let (old, new) = (local(), local());
    let dir = std::env::temp_dir().join(format!("kmseal-objects-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("file://{}/", dir.display());
    let loc = kmseal_objects::open_url(&url).unwrap();
    let objects = seed(loc.store.as_ref(), &loc.prefix, &old, true).await;
    let rot = small_limits(Rotator::rewrap(
        Decryptor::new(old.clone() as Arc<dyn Kek>),
        vec![new.clone() as Arc<dyn Kek>],
    ));
    let report = rot.rotate_prefix(&loc, |_, _| {}).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.rotated.len(), objects.len());
    all_open(loc.store.as_ref(), &objects, &new).await;
    // A concurrent writer between the listing and the write: caught by the ETag check.
    let hooked = Hooked::new(loc.store.clone());
    let (victim, _) = &objects[2];
    *hooked.victim.lock().unwrap() = Some((victim.clone(), b"theirs".to_vec()));
    let back = small_limits(Rotator::rewrap(
        Decryptor::new(new.clone() as Arc<dyn Kek>),
        vec![old.clone() as Arc<dyn Kek>],
    ));
    let mut through_hook = hooked.location(&loc.prefix);
    through_hook.check_then_write = loc.check_then_write; // the local filesystem's
    assert!(through_hook.check_then_write);
    let report = back.rotate_prefix(&through_hook, |_, _| {}).await.unwrap();
    assert_eq!(report.failed.len(), 1);
    assert!(report.failed[0].1.is_changed(), "{}", report.failed[0].1);
    assert_eq!(
        &std::fs::read(dir.join(victim.filename().unwrap())).unwrap()[..],
        b"theirs"
    );
    // No staging files left behind.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), objects.len() + 1, "{names:?}");
    std::fs::remove_dir_all(&dir).unwrap();
    let _ = Location::clone(&loc);
    let _ = Outcome::<()>::WouldRotate;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_type_and_user_metadata_survive_rotation() {
    let (old, new) = (local(), local());
    let (store, prefix) = memory();
    let rot = small_limits(Rotator::rewrap(
        Decryptor::new(old.clone() as Arc<dyn Kek>),
        vec![new.clone() as Arc<dyn Kek>],
    ));
    attributes_survive(
        store.as_ref(),
        &prefix,
        &rot,
        &store.location(&prefix),
        &old,
        &new,
        [1000, 300_000],
    )
    .await;
}
