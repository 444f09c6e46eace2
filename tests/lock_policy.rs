//! The lock policies, tested for real: the test binary re-runs itself under
//! `prlimit --memlock=65536` and, as root, `setpriv` with CAP_IPC_LOCK dropped from the
//! inheritable and bounding sets (root ignores the memlock limit otherwise). The child checks
//! that it really is constrained, then that `Strict` fails with a typed error, `BestEffort`
//! succeeds with exactly one warning, and that small keys share pages.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::io::Write;
use std::process::Command;
use std::sync::{Arc, Mutex};

use kmseal::{Decryptor, Encryptor, Error, Kek, LocalKek, LockPolicy, SecretBytes};

const CHILD_ENV: &str = "KMSEAL_LOCK_POLICY_CHILD";
const LIMIT: u64 = 65536;

#[test]
fn lock_policies_under_a_64k_memlock_limit_without_cap_ipc_lock() {
    let exe = std::env::current_exe().unwrap();
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .expect("`id` must be available");
    let is_root = String::from_utf8_lossy(&uid.stdout).trim() == "0";
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--memlock={LIMIT}:{LIMIT}")).arg("--");
    if is_root {
        cmd.args([
            "setpriv",
            "--inh-caps=-ipc_lock",
            "--bounding-set=-ipc_lock",
            "--",
        ]);
    }
    cmd.arg(&exe)
        .args([
            "child_under_constrained_memlock",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1");
    let out = cmd
        .output()
        .expect("prlimit and setpriv (util-linux) are required; scripts/test installs them");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("LOCK-POLICY-CHILD-OK"),
        "child did not run its checks:\n{stdout}\n{stderr}"
    );
}

/// A tracing writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn proc_field(file: &str, prefix: &str) -> String {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("{prefix} not in {file}"))
        .to_owned()
}

/// Runs only as the re-executed child; a no-op in a normal run.
#[test]
fn child_under_constrained_memlock() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    // 1. We really are constrained: no CAP_IPC_LOCK (bit 14), memlock limit 64 KiB.
    let cap_eff = proc_field("/proc/self/status", "CapEff:");
    let caps = u64::from_str_radix(cap_eff.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(
        caps & (1 << 14),
        0,
        "CAP_IPC_LOCK still effective: {cap_eff}"
    );
    let limit = proc_field("/proc/self/limits", "Max locked memory");
    assert!(limit.contains(&LIMIT.to_string()), "{limit}");

    let captured = Captured::default();
    let sink = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .init();

    // 2. Small secrets share locked pages: 1000 keys of 32 bytes (32 KB) fit under 64 KiB
    //    with Strict; one page per key would need 4 MB.
    let keys: Vec<SecretBytes> = (0..1000)
        .map(|_| {
            let mut k = SecretBytes::with_capacity_and_policy(32, LockPolicy::Strict).unwrap();
            k.resize(32).unwrap();
            k
        })
        .collect();
    assert!(keys.iter().all(SecretBytes::is_locked));
    assert!(
        kmseal::secret::pool_pages() <= 10,
        "{} pages",
        kmseal::secret::pool_pages()
    );

    // 3. Strict: a buffer beyond the limit is a typed error that says what to do.
    let err = SecretBytes::with_capacity_and_policy(1 << 20, LockPolicy::Strict).unwrap_err();
    assert!(
        matches!(err, Error::MemoryLock { bytes, .. } if bytes == 1 << 20),
        "{err:?}"
    );
    assert!(err.to_string().contains("RLIMIT_MEMLOCK"), "{err}");
    assert!(
        captured.0.lock().unwrap().is_empty(),
        "Strict must not warn"
    );

    // 4. BestEffort: the same request succeeds, unlocked, zeroed, with one warning.
    let mut big = SecretBytes::with_capacity_and_policy(1 << 20, LockPolicy::BestEffort).unwrap();
    big.resize(1 << 20).unwrap();
    assert!(!big.is_locked());
    assert!(big.expose_secret().iter().all(|&b| b == 0));
    let again = SecretBytes::with_capacity_and_policy(1 << 20, LockPolicy::BestEffort).unwrap();
    assert!(!again.is_locked());
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        log.matches("could not lock secret memory").count(),
        1,
        "{log}"
    );
    assert!(log.contains("WARN"), "{log}");

    // 5. The envelope honours the process policy, set once before any secret: a 1 MiB
    //    decrypt under Strict fails cleanly; the policy cannot change afterwards; and a
    //    buffer that chose BestEffort for itself keeps it through decrypt_into.
    drop(keys);
    LockPolicy::set_process_default(LockPolicy::Strict).unwrap();
    let kek: Arc<dyn Kek> = Arc::new(LocalKek::generate().unwrap());
    let msg = Encryptor::new(kek.clone())
        .encrypt_blocking(&vec![7u8; 1 << 20])
        .unwrap();
    let strict = Decryptor::new(kek.clone()).decrypt_blocking(&msg);
    assert!(
        matches!(strict, Err(Error::MemoryLock { .. })),
        "{strict:?}"
    );
    assert!(LockPolicy::set_process_default(LockPolicy::BestEffort).is_err());
    assert_eq!(LockPolicy::process_default(), LockPolicy::Strict);
    let mut pt = SecretBytes::with_capacity_and_policy(0, LockPolicy::BestEffort).unwrap();
    kmseal::blocking::block_on(Decryptor::new(kek.clone()).decrypt_into(&msg, &mut pt)).unwrap();
    assert_eq!(pt.len(), 1 << 20);

    // 6. Per encryptor and decryptor: the plaintext buffers follow their own policy.
    let best = Decryptor::new(kek.clone())
        .lock_policy(LockPolicy::BestEffort)
        .decrypt_blocking(&msg)
        .unwrap();
    assert_eq!(best.len(), 1 << 20);
    assert!(!best.is_locked());
    let frame = kmseal::FrameSize::new(1 << 20).unwrap();
    let strict = Encryptor::new(kek.clone())
        .frame_size(frame)
        .writer_blocking(Vec::new());
    assert!(
        matches!(strict, Err(Error::MemoryLock { .. })),
        "{strict:?}"
    );
    let mut w = Encryptor::new(kek.clone())
        .frame_size(frame)
        .lock_policy(LockPolicy::BestEffort)
        .writer_blocking(Vec::new())
        .unwrap();
    std::io::Write::write_all(&mut w, &[1u8; 3 << 20]).unwrap();
    let sealed = w.finish().unwrap();
    let limits = kmseal::Limits {
        max_frame_size: 1 << 20,
        ..Default::default()
    };
    let back = Decryptor::new(kek)
        .limits(limits)
        .lock_policy(LockPolicy::BestEffort)
        .decrypt_blocking(&sealed)
        .unwrap();
    assert_eq!(back.len(), 3 << 20);

    println!("LOCK-POLICY-CHILD-OK");
}
