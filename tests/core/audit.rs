//! Regression tests for the outside audit's findings in the core (issue 17), each at the level
//! where a user meets it. Each would fail on the code before the fix.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use kmseal::{
    CacheLimits, DataKey, DecryptCache, Decryptor, EncryptCache, EncryptionContext, Encryptor,
    Error, Kek, LocalKek, WrappedKey,
};

/// A local KEK that reports a chosen key id (two tenants' KEKs naming the same key, or an
/// attacker's junk entries naming ours) and counts unwraps.
#[derive(Debug)]
struct Named {
    inner: LocalKek,
    id: &'static str,
    unwraps: AtomicU32,
}

impl Named {
    fn new(id: &'static str) -> Arc<Named> {
        Arc::new(Named {
            inner: LocalKek::generate().unwrap(),
            id,
            unwraps: AtomicU32::new(0),
        })
    }
}

#[async_trait]
impl Kek for Named {
    fn provider(&self) -> &str {
        "local"
    }
    fn key_id(&self) -> &str {
        self.id
    }
    fn describe(&self) -> String {
        format!("local:{}", self.id)
    }
    async fn wrap(&self, key: &DataKey, context: &EncryptionContext) -> Result<WrappedKey, Error> {
        let mut w = self.inner.wrap(key, context).await?;
        w.key_id = self.id.into();
        Ok(w)
    }
    async fn unwrap(&self, w: &WrappedKey, context: &EncryptionContext) -> Result<DataKey, Error> {
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        let mut w = w.clone();
        w.key_id = self.inner.key_id().into();
        self.inner.unwrap(&w, context).await
    }
}

/// Finding 5: two KEK instances with the same provider, key id and description but different
/// keys (two tenants) must never share cache entries, even through one shared cache.
#[test]
fn audit_5_caches_never_span_kek_instances() {
    let (tenant_a, tenant_b) = (Named::new("shared-name"), Named::new("shared-name"));
    assert_eq!(tenant_a.describe(), tenant_b.describe());

    // Decrypt cache: B must not open A's message through A's cached key.
    let cache = DecryptCache::new(Duration::from_secs(60), 16);
    let msg_a = Encryptor::new(tenant_a.clone())
        .encrypt_blocking(b"tenant A's record")
        .unwrap();
    Decryptor::new(tenant_a.clone())
        .cache(cache.clone())
        .decrypt_blocking(&msg_a)
        .unwrap();
    let as_b = Decryptor::new(tenant_b.clone())
        .cache(cache.clone())
        .decrypt_blocking(&msg_a);
    assert!(
        as_b.is_err(),
        "tenant B opened tenant A's message from the cache"
    );
    assert_eq!(
        tenant_b.unwraps.load(Ordering::SeqCst),
        1,
        "B asked its own KMS"
    );

    // Encrypt cache: B's messages must be wrapped under B's key, not A's cached one.
    let shared = EncryptCache::new(CacheLimits::default());
    Encryptor::new(tenant_a.clone())
        .cache(shared.clone())
        .encrypt_blocking(b"a")
        .unwrap();
    let msg_b = Encryptor::new(tenant_b.clone())
        .cache(shared.clone())
        .encrypt_blocking(b"tenant B's record")
        .unwrap();
    assert_eq!(
        Decryptor::new(tenant_b.clone())
            .decrypt_blocking(&msg_b)
            .expect("B opens its own message")
            .expose_secret(),
        b"tenant B's record"
    );
    assert!(Decryptor::new(tenant_a).decrypt_blocking(&msg_b).is_err());
    // The same instance still shares: that is what the cache is for.
    let enc_b = Encryptor::new(tenant_b.clone()).cache(shared.clone());
    enc_b.encrypt_blocking(b"again").unwrap();
    assert!(shared.stats().hits >= 1);
}

/// Finding 9: a failed unwrap takes no cache slot and evicts nothing; junk wrapped keys naming
/// a trusted KEK cost at most two KMS calls per message.
#[test]
fn audit_9_failed_unwraps_neither_evict_nor_multiply_kms_calls() {
    let ours = Named::new("ours");
    let cache = DecryptCache::new(Duration::from_secs(60), 1);
    let dec = Decryptor::new(ours.clone()).cache(cache.clone());
    let good = Encryptor::new(ours.clone())
        .encrypt_blocking(b"good")
        .unwrap();
    dec.decrypt_blocking(&good).unwrap();
    assert_eq!(ours.unwraps.load(Ordering::SeqCst), 1);

    // An attacker's message: eight wrapped keys that all name our key id, none ours.
    let mut enc = Encryptor::new(Named::new("ours"));
    for _ in 0..7 {
        enc = enc.add_kek(Named::new("ours"));
    }
    let junk = enc.encrypt_blocking(b"junk").unwrap();
    let before = ours.unwraps.load(Ordering::SeqCst);
    assert!(dec.decrypt_blocking(&junk).is_err());
    let calls = ours.unwraps.load(Ordering::SeqCst) - before;
    assert_eq!(calls, 2, "junk entries cost {calls} KMS calls");

    // The good key is still cached (capacity 1): no new unwrap.
    let before = ours.unwraps.load(Ordering::SeqCst);
    dec.decrypt_blocking(&good).unwrap();
    assert_eq!(
        ours.unwraps.load(Ordering::SeqCst),
        before,
        "the junk evicted the good key"
    );
    assert_eq!(cache.stats().entries, 1);
}

/// A writer that fails its `n`th write, once.
struct FailOnce {
    out: Vec<u8>,
    writes: u32,
    fail_at: u32,
}

impl Write for FailOnce {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writes += 1;
        if self.writes == self.fail_at {
            return Err(std::io::Error::other("disk full"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Finding 10: after an inner write error the writer refuses every later write and finish
/// (before the fix, retrying sealed the same frame index again: GCM nonce reuse).
#[test]
fn audit_10_encrypt_writer_is_poisoned_by_an_inner_error() {
    let kek = Arc::new(LocalKek::generate().unwrap());
    let enc = Encryptor::new(kek)
        .frame_size(kmseal::FrameSize::new(1024).unwrap())
        .threads(1);
    let sink = FailOnce {
        out: Vec::new(),
        writes: 0,
        fail_at: 3, // header, first frame, then the second frame fails
    };
    let mut w = enc.writer_blocking(sink).unwrap();
    w.write_all(&[1u8; 1024]).unwrap();
    let err = w.write_all(&[2u8; 1024]).unwrap_err();
    assert_eq!(err.to_string(), "disk full");
    // The caller retries: refused, whatever it writes.
    assert!(w.write(&[3u8; 1024]).is_err(), "a retry was accepted");
    assert!(w.write(&[4u8; 10]).is_err());
    assert!(w.flush().is_ok(), "flush of the inner writer is harmless");
    assert!(matches!(w.finish(), Err(Error::Finished(_))));
}

/// Finding 12: key ids and context strings from an untrusted header reach error messages
/// escaped (before the fix `NoMatchingKek` printed an attacker's ANSI sequences raw).
#[test]
fn audit_12_header_strings_are_escaped_in_errors() {
    let evil = Named::new("id\u{1b}[2J\u{1b}]0;owned\u{7}\r\nFAKE LOG LINE\u{202e}");
    let msg = Encryptor::new(evil)
        .context("app\u{1b}[31m", "x")
        .unwrap()
        .encrypt_blocking(b"x")
        .unwrap();
    let err = Decryptor::new(Arc::new(LocalKek::generate().unwrap()))
        .decrypt_blocking(&msg)
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::NoMatchingKek { .. }), "{text}");
    assert!(
        !text.contains(|c: char| c.is_control() || c == '\u{202e}'),
        "{text:?}"
    );
    assert!(text.contains("\\u{1b}[2J"), "{text}");
    assert_eq!(kmseal::escape_untrusted("a\\b"), "a\\\\b");
}

/// Finding 14: local key files get ssh-StrictModes checks on the open descriptor. Before the
/// fix a FIFO at the key path hung the process, a symlink was followed, a key in a
/// world-writable directory (which anyone could replace) and a key owned by another user were
/// accepted.
#[test]
fn audit_14_local_key_files_are_checked_like_ssh_keys() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let dir = std::env::temp_dir().join(format!("kmseal-audit14-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let key = dir.join("k.key");
    LocalKek::create_file(&key).unwrap();
    LocalKek::from_file(&key).unwrap();

    let link = dir.join("link.key");
    symlink(&key, &link).unwrap();
    let e = LocalKek::from_file(&link).unwrap_err().to_string();
    assert!(e.contains("symbolic link"), "{e}");

    // A FIFO: refused at once (the test would hang here before the fix).
    let fifo = dir.join("fifo.key");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let f = fifo.clone();
    std::thread::spawn(move || tx.send(LocalKek::from_file(&f).map(|_| ())).unwrap());
    let r = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("opening a FIFO key path hung");
    let e = r.unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");

    // A directory others can write: they could swap the key.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = LocalKek::from_file(&key).unwrap_err().to_string();
    assert!(
        e.contains("group or others can write") && e.contains("chmod go-w"),
        "{e}"
    );
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();

    // A key owned by another user (only root can make one here): refused, even for root.
    let is_root = std::fs::metadata("/proc/self").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    if is_root.unwrap_or(false) {
        let status = std::process::Command::new("chown")
            .args(["65534", key.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success());
        let e = LocalKek::from_file(&key).unwrap_err().to_string();
        assert!(e.contains("is owned by uid 65534"), "{e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Finding 11: file rotation keeps owner and group, never copies setuid/setgid, refuses a
/// symbolic link instead of replacing it with a file, replaces only the file it read, and a
/// dry run changes nothing on disk.
#[test]
fn audit_11_rotation_keeps_owner_drops_setid_and_follows_no_links() {
    use kmseal::rotate::{Outcome, Rotator, Step};
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
    let dir = std::env::temp_dir().join(format!("kmseal-audit11-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (old, new) = (
        Arc::new(LocalKek::generate().unwrap()),
        Arc::new(LocalKek::generate().unwrap()),
    );
    let rotator = || Rotator::rewrap(Decryptor::new(old.clone()), vec![new.clone()]);
    let write = |name: &str| {
        let p = dir.join(name);
        let m = Encryptor::new(old.clone())
            .encrypt_blocking(b"data")
            .unwrap();
        std::fs::write(&p, m).unwrap();
        p
    };

    // setuid/setgid bits are not carried over; the owner is (when we can set one: as root).
    let file = write("setid.kmseal");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o6750)).unwrap();
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    if root {
        std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();
    }
    assert!(matches!(
        rotator().rotate_file_blocking(&file).unwrap(),
        Outcome::Rotated(())
    ));
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o750, "setuid/setgid copied");
    if root {
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "owner not kept");
    }
    Decryptor::new(new.clone())
        .decrypt_blocking(&std::fs::read(&file).unwrap())
        .unwrap();

    // A symbolic link is refused; link and target stay as they were.
    let target = write("target.kmseal");
    let before = std::fs::read(&target).unwrap();
    let link = dir.join("link.kmseal");
    symlink(&target, &link).unwrap();
    assert!(rotator().rotate_file_blocking(&link).is_err());
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&target).unwrap(), before);

    // A dry run leaves even a stale temporary file alone.
    let file = write("dry.kmseal");
    let stale = dir.join(".dry.kmseal.kmseal-rotate");
    std::fs::write(&stale, b"stale").unwrap();
    assert!(matches!(
        rotator().dry_run(true).rotate_file_blocking(&file).unwrap(),
        Outcome::WouldRotate
    ));
    assert!(stale.exists(), "a dry run deleted a file");

    // A file swapped in at the path during rotation is not replaced.
    let file = write("swap.kmseal");
    let other = dir.join("other");
    std::fs::write(&other, b"someone else's file").unwrap();
    let (f, o) = (file.clone(), other.clone());
    let swapping = rotator().on_step(move |_, step| {
        if step == Step::Verified {
            std::fs::rename(&o, &f).unwrap();
        }
    });
    assert!(matches!(
        swapping.rotate_file_blocking(&file),
        Err(Error::FileChanged { ref path, .. }) if *path == file
    ));
    assert_eq!(std::fs::read(&file).unwrap(), b"someone else's file");
    std::fs::remove_dir_all(&dir).unwrap();
}
