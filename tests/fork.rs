//! Secrets across a real `fork()` (without exec): the child's copy of every secret page is
//! zero-filled by the kernel (`MADV_WIPEONFORK`), so kmseal must never use a secret made
//! before the fork. A pre-fork server or a Python host (gunicorn, multiprocessing) is exactly
//! this case.
//!
//! Each scenario forks; the child reports through its exit status (and a file), the parent
//! checks. One test function, so the harness runs no other test thread while forking (the
//! last scenario adds one of its own on purpose).

#![allow(clippy::unwrap_used, clippy::expect_used)]
// fork(), waitpid() and _exit() are FFI calls; this test file is the only place outside
// src/secret/sys.rs that makes them, to exercise the library the way a pre-fork host does.
#![allow(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use std::io::Write;

use kmseal::blocking::block_on;
use kmseal::{
    CacheLimits, DataKey, DecryptCache, Decryptor, EncryptCache, EncryptionContext, Encryptor,
    Error, Kek, LocalKek, SecretBytes, WrappedKey,
};

/// A KEK whose key lives in ordinary heap memory (as a cloud KMS client's credentials do), so
/// it keeps working in the child: what matters there is only the data keys kmseal holds.
#[derive(Debug)]
struct HeapKek {
    pad: [u8; 32],
    wraps: AtomicU32,
    unwraps: AtomicU32,
}

#[async_trait]
impl Kek for HeapKek {
    fn provider(&self) -> &str {
        "test-heap"
    }
    fn key_id(&self) -> &str {
        "heap"
    }
    async fn wrap(&self, key: &DataKey, _: &EncryptionContext) -> Result<WrappedKey, Error> {
        self.wraps.fetch_add(1, Ordering::SeqCst);
        let ciphertext = key
            .expose_secret()
            .iter()
            .zip(self.pad)
            .map(|(a, b)| a ^ b)
            .collect();
        Ok(WrappedKey {
            provider: "test-heap".into(),
            key_id: "heap".into(),
            ciphertext,
        })
    }
    async fn unwrap(&self, w: &WrappedKey, _: &EncryptionContext) -> Result<DataKey, Error> {
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        let plain: Vec<u8> = w
            .ciphertext
            .iter()
            .zip(self.pad)
            .map(|(a, b)| a ^ b)
            .collect();
        DataKey::from_secret(SecretBytes::from_vec_zeroizing(plain)?)
    }
}

/// Runs `child` in a forked child; returns how it ended (exit code, or the signal).
fn in_child(child: impl FnOnce() -> i32) -> Result<i32, i32> {
    // SAFETY: fork() has no memory-safety preconditions; the child only runs `child` (which
    // allocates, as glibc allows after fork) and then _exit()s without running the parent's
    // destructors or the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(99);
        // SAFETY: _exit ends the child immediately; nothing runs after it.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child created above, writing its status into a local.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    if libc::WIFEXITED(status) {
        Ok(libc::WEXITSTATUS(status))
    } else {
        Err(libc::WTERMSIG(status))
    }
}

#[test]
fn secrets_made_before_fork_are_never_used_in_the_child() {
    let dir = std::env::temp_dir().join(format!("kmseal-fork-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // 1. A local KEK loaded before the fork refuses to wrap or unwrap in the child (its key
    //    reads as zeros there; before the fix it wrapped under the all-zero AES key).
    let local = Arc::new(LocalKek::generate().unwrap());
    let sealed = Encryptor::new(local.clone())
        .encrypt_blocking(b"before fork")
        .unwrap();
    let code = in_child(|| {
        let wrap = block_on(Encryptor::new(local.clone()).encrypt(b"x"));
        let open = Decryptor::new(local.clone()).decrypt_blocking(&sealed);
        match (wrap, open) {
            (Err(Error::ForkedSecret), Err(Error::ForkedSecret)) => 0,
            (Ok(_), _) => 1,
            (_, Ok(_)) => 2,
            _ => 3,
        }
    });
    assert_eq!(
        code,
        Ok(0),
        "local KEK in the child: 1 = wrapped, 2 = opened"
    );
    // The parent is unaffected.
    assert_eq!(
        Decryptor::new(local.clone())
            .decrypt_blocking(&sealed)
            .unwrap()
            .expose_secret(),
        b"before fork"
    );

    // 2. A primed encrypt cache is empty in the child: the child wraps a fresh key, and what
    //    it writes opens in the parent (before the fix: the cached key read as zeros, and the
    //    message did not open under the real key).
    let heap = Arc::new(HeapKek {
        pad: [0x5a; 32],
        wraps: AtomicU32::new(0),
        unwraps: AtomicU32::new(0),
    });
    let enc = Encryptor::new(heap.clone()).cache(EncryptCache::new(CacheLimits::default()));
    enc.encrypt_blocking(b"prime").unwrap();
    enc.encrypt_blocking(b"hit").unwrap();
    assert_eq!(heap.wraps.load(Ordering::SeqCst), 1, "the cache was primed");
    let out = dir.join("from-child");
    let code = in_child(|| {
        let Ok(msg) = enc.encrypt_blocking(b"sealed in the child") else {
            return 1;
        };
        if heap.wraps.load(Ordering::SeqCst) != 2 {
            return 2; // served from the pre-fork cache
        }
        std::fs::write(&out, msg).map_or(3, |()| 0)
    });
    assert_eq!(code, Ok(0), "encrypt cache in the child: 2 = cache hit");
    let msg = std::fs::read(&out).unwrap();
    assert_eq!(
        Decryptor::new(heap.clone())
            .decrypt_blocking(&msg)
            .expect("the child's message opens under the real key")
            .expose_secret(),
        b"sealed in the child"
    );

    // 3. A primed decrypt cache is empty in the child: it unwraps again and opens correctly
    //    (before the fix the cached key read as zeros and the commitment check failed).
    let dec = Decryptor::new(heap.clone()).cache(DecryptCache::new(Duration::from_secs(60), 8));
    dec.decrypt_blocking(&msg).unwrap();
    let unwraps = heap.unwraps.load(Ordering::SeqCst);
    let code = in_child(|| match dec.decrypt_blocking(&msg) {
        Ok(pt) if pt.expose_secret() == b"sealed in the child" => {
            if heap.unwraps.load(Ordering::SeqCst) == unwraps + 1 {
                0
            } else {
                2
            }
        }
        Ok(_) => 3,
        Err(_) => 1,
    });
    assert_eq!(
        code,
        Ok(0),
        "decrypt cache in the child: 1 = failed, 2 = no new unwrap"
    );

    // 4. Reading a pre-fork secret in the child, where no error can be returned, aborts
    //    instead of handing out zeros; asking first gives the typed error.
    let secret = SecretBytes::from_slice(b"made before the fork").unwrap();
    let code = in_child(|| match secret.check_process() {
        Err(Error::ForkedSecret) => 0,
        _ => 1,
    });
    assert_eq!(code, Ok(0));
    let code = in_child(|| i32::from(secret.expose_secret().first() == Some(&0)));
    assert_eq!(
        code,
        Err(libc::SIGABRT),
        "expose_secret in the child must abort"
    );
    assert!(secret.try_clone().is_ok(), "the parent keeps its secret");

    // 5. Secrets made in the child after the fork work normally there.
    let code = in_child(|| {
        let kek = Arc::new(LocalKek::generate().unwrap());
        let m = Encryptor::new(kek.clone())
            .encrypt_blocking(b"child")
            .unwrap();
        let pt = Decryptor::new(kek).decrypt_blocking(&m).unwrap();
        i32::from(pt.expose_secret() != b"child")
    });
    assert_eq!(code, Ok(0));

    // 6. A stream writer made before the fork refuses to seal in the child (found by review:
    //    its AEAD key schedule is in ordinary memory, and parent and child would both seal
    //    frame 0 under one key: GCM nonce reuse).
    let mut w = Encryptor::new(heap.clone())
        .frame_size(kmseal::FrameSize::new(4096).unwrap())
        .writer_blocking(Vec::new())
        .unwrap();
    let code = in_child(|| {
        let whole_frame = w.write(&[b'A'; 4096]);
        let buffered = w.write(&[b'A'; 10]);
        i32::from(whole_frame.is_ok()) + 2 * i32::from(buffered.is_ok())
    });
    assert_eq!(
        code,
        Ok(0),
        "a pre-fork writer sealed in the child (1: whole frame)"
    );
    w.write_all(&[b'B'; 4096]).unwrap();
    let sealed = w.finish().unwrap();
    assert_eq!(
        Decryptor::new(heap.clone())
            .decrypt_blocking(&sealed)
            .unwrap()
            .len(),
        4096
    );

    // 6b. A header opened before the fork (the header-first seam holds its data key and AEAD
    //     keys across calls) refuses every use in the child, with the typed error (found by
    //     review: decrypt worked from the parent's key schedule, application_key aborted);
    //     and a reader made before the fork refuses to open frames there.
    let msg = Encryptor::new(heap.clone())
        .encrypt_blocking(&[b'C'; 5000])
        .unwrap();
    let dec = Decryptor::new(heap.clone());
    let (header, body) = dec.parse_header(&msg).unwrap();
    let opened = block_on(dec.open_header(&header)).unwrap();
    let mut reader = dec.reader_blocking(&msg[..]).unwrap();
    let other: Arc<dyn Kek> = Arc::new(HeapKek {
        pad: [0x33; 32],
        wraps: AtomicU32::new(0),
        unwraps: AtomicU32::new(0),
    });
    let code = in_child(|| {
        use std::io::Read;
        let forked = |r: Result<(), Error>| matches!(r, Err(Error::ForkedSecret));
        let mut bits = 0;
        bits |= i32::from(!forked(opened.decrypt(body).map(drop)));
        bits |= 2 * i32::from(!forked(opened.application_key("l").map(drop)));
        bits |= 4 * i32::from(!forked(
            block_on(opened.rewrap(std::slice::from_ref(&other))).map(drop),
        ));
        let mut buf = [0u8; 100];
        let read = reader.read(&mut buf).map_err(kmseal_error);
        bits |= 8 * i32::from(!forked(read.map(drop)));
        bits
    });
    assert_eq!(
        code,
        Ok(0),
        "in the child: 1 = decrypt, 2 = application_key, 4 = rewrap, 8 = reader did not refuse"
    );
    assert_eq!(
        opened.decrypt(body).unwrap().len(),
        5000,
        "the parent is unaffected"
    );

    // 7. Rayon's workers (started by a large message before the fork) do not exist in the
    //    child: large messages there run on the calling thread instead of waiting forever.
    let big = vec![7u8; 8 << 20];
    Encryptor::new(heap.clone()).encrypt_blocking(&big).unwrap();
    let code = in_child(|| {
        // SAFETY: alarm only schedules SIGALRM for this (child) process: a hang ends it.
        unsafe { libc::alarm(20) };
        let kek = Arc::new(LocalKek::generate().unwrap());
        let m = Encryptor::new(kek.clone()).encrypt_blocking(&big).unwrap();
        let pt = Decryptor::new(kek).decrypt_blocking(&m).unwrap();
        i32::from(pt.len() != big.len())
    });
    assert_eq!(
        code,
        Ok(0),
        "the child hung on rayon (SIGALRM = 14) or failed"
    );

    // 8. Forks while another thread holds kmseal's locks (the secret pool, a cache map): the
    //    child never blocks on a lock its parent's thread held (found by review: it did).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = {
        let (stop, enc) = (stop.clone(), enc.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                drop(SecretBytes::from_slice(b"small secret in the pool").unwrap());
                enc.encrypt_blocking(b"through the cache").unwrap();
            }
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    for round in 0..100 {
        let code = in_child(|| {
            // SAFETY: as above.
            unsafe { libc::alarm(10) };
            let s = SecretBytes::from_slice(b"child secret").unwrap();
            let m = enc.encrypt_blocking(b"child");
            i32::from(s.len() != 12) + 2 * i32::from(m.is_err())
        });
        assert_eq!(
            code,
            Ok(0),
            "fork {round}: the child hung (SIGALRM = 14) or failed"
        );
    }
    stop.store(true, Ordering::Relaxed);
    busy.join().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

/// The kmseal error a stream reported inside an `io::Error`.
fn kmseal_error(e: std::io::Error) -> Error {
    match e.into_inner().map(|inner| inner.downcast::<Error>()) {
        Some(Ok(err)) => *err,
        _ => Error::Decrypt,
    }
}
