//! Proves the secret-store claim for the stores whose every buffer we own: a secret read
//! through `file://` (with a `#field` selection and the resolver's cache) leaves no copy in
//! process memory once dropped, and one read through `env://` adds no copy to the one the
//! process environment already holds.
//!
//! One test per process (scans must not see other tests' leftovers); the `env://` half runs
//! in a child process started with the secret in its environment (this workspace forbids
//! `unsafe`, which `std::env::set_var` needs). Needles are random at run time and kept only
//! XOR-masked, so the scanner never finds its own copy.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{MASK, scan};
use kmseal::SecretBytes;
use kmseal::store::{LocalStores, Resolver};

const CHILD_ENV: &str = "KMSEAL_SCAN_CHILD_MASKED";
const SECRET_ENV: &str = "KMSEAL_SCAN_ENV_SECRET";

/// 48 random bytes as 96 lowercase hex characters (text a JSON string can hold), masked.
fn random_masked_hex() -> Vec<u8> {
    let raw = SecretBytes::random(48).unwrap();
    let mut out = Vec::with_capacity(96);
    for b in raw.expose_secret() {
        for nibble in [b >> 4, b & 15] {
            let c = if nibble < 10 {
                b'0' + nibble
            } else {
                b'a' + nibble - 10
            };
            out.push(c ^ MASK);
        }
    }
    out
}

fn unmasked_into(secret: &mut SecretBytes, masked: &[u8]) {
    for m in masked {
        secret.extend_from_slice(&[m ^ MASK]).unwrap();
    }
}

/// Occurrences of the needle's last 64 bytes: free() overwrites the first 16 bytes of a small
/// chunk with its list pointers, so a whole-needle search would miss a dropped copy.
fn scan_tail(masked: &[u8]) -> usize {
    scan(&masked[masked.len() - 64..])
}

fn hex(masked: &[u8]) -> String {
    masked.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    kmseal::blocking::block_on(f)
}

#[test]
fn resolved_secrets_leave_no_copy_behind() {
    if let Ok(masked) = std::env::var(CHILD_ENV) {
        return env_child(&from_hex(&masked));
    }

    // Control: the scanner sees a dropped Vec's leftovers.
    let control = random_masked_hex();
    {
        let v: Vec<u8> = control.iter().map(|b| b ^ MASK).collect();
        std::hint::black_box(&v);
        assert!(scan_tail(&control) >= 1);
    }
    assert!(
        scan_tail(&control) > 0,
        "control: a dropped Vec leaves its bytes"
    );

    // file://, written from locked memory, read whole and by field, through the cache.
    let masked = random_masked_hex();
    let dir = std::env::temp_dir().join(format!("kmseal-store-scan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let path = dir.join("db.json");
    {
        let mut content = SecretBytes::with_capacity(256).unwrap();
        content
            .extend_from_slice(br#"{"user": "app", "password": ""#)
            .unwrap();
        unmasked_into(&mut content, &masked);
        content.extend_from_slice(br#""}"#).unwrap();
        std::fs::write(&path, content.expose_secret()).unwrap();
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    {
        // The whole value first: no field selection (which scrubs the stack) runs after the
        // read.
        let resolver = Resolver::new(LocalStores);
        let whole = block(resolver.resolve_str(&format!("file://{}", path.display()))).unwrap();
        assert!(whole.value().len() > masked.len());
    }
    let left = scan_tail(&masked);
    assert_eq!(
        left, 0,
        "a file:// secret read whole left {left} copies after drop"
    );
    {
        let resolver = Resolver::new(LocalStores);
        for _ in 0..3 {
            let got = block(resolver.resolve_str(&format!("file://{}#password", path.display())))
                .unwrap();
            assert_eq!(got.value().len(), masked.len());
            assert_eq!(
                scan_tail(&masked),
                2,
                "live: the cached whole value and this field"
            );
        }
        let whole = block(resolver.resolve_str(&format!("file://{}", path.display()))).unwrap();
        assert!(whole.value().len() > masked.len());
    }
    let left = scan_tail(&masked);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(left, 0, "a file:// secret left {left} copies after drop");

    // env://, in a child that has the secret in its environment.
    let masked = random_masked_hex();
    let mut value = SecretBytes::with_capacity(96).unwrap();
    unmasked_into(&mut value, &masked);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "resolved_secrets_leave_no_copy_behind",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_ENV, hex(&masked))
        .env(
            SECRET_ENV,
            std::str::from_utf8(value.expose_secret()).unwrap(),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "env child: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// In the child: the environment holds the secret once (or more: the kernel's copy at the
/// top of the stack, libc's environ); resolving it must add none that survive the drop.
fn env_child(masked: &[u8]) {
    let before = scan_tail(masked);
    assert!(before >= 1, "the environment holds the secret");
    {
        let resolver = Resolver::new(LocalStores);
        for _ in 0..3 {
            let got = block(resolver.resolve_str(&format!("env://{SECRET_ENV}"))).unwrap();
            assert_eq!(got.value().len(), masked.len());
        }
    }
    let after = scan_tail(masked);
    assert_eq!(
        after,
        before,
        "env:// resolution left {} extra copies",
        after - before
    );
}
