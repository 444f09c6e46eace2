//! What the kernel says about our secret memory: `/proc/self/smaps` shows the mapping locked
//! (`lo`), excluded from core dumps (`dd`) and wiped on fork (`wf`), with an inaccessible
//! (`---p`) guard page on each side, for large buffers and for the shared small-key pages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kmseal::{LockPolicy, SecretBytes};

struct Mapping {
    start: usize,
    end: usize,
    perms: String,
    flags: String,
}

fn mappings() -> Vec<Mapping> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut out: Vec<Mapping> = Vec::new();
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            let perms = line.split_whitespace().nth(1).unwrap().to_owned();
            out.push(Mapping {
                start,
                end,
                perms,
                flags: String::new(),
            });
        } else if let Some(flags) = line.strip_prefix("VmFlags:") {
            out.last_mut().unwrap().flags = flags.to_owned();
        }
    }
    out
}

fn check(secret: &SecretBytes, what: &str) {
    let addr = secret.expose_secret().as_ptr() as usize;
    let maps = mappings();
    let i = maps
        .iter()
        .position(|m| m.start <= addr && addr < m.end)
        .unwrap();
    let m = &maps[i];
    assert!(m.perms.starts_with("rw"), "{what}: {}", m.perms);
    for flag in ["lo", "dd", "wf"] {
        assert!(
            m.flags.split_whitespace().any(|f| f == flag),
            "{what}: VmFlags `{}` lack {flag}",
            m.flags
        );
    }
    let before = maps
        .iter()
        .find(|p| p.end == m.start)
        .expect("a guard page before");
    let after = maps
        .iter()
        .find(|p| p.start == m.end)
        .expect("a guard page after");
    assert_eq!(before.perms, "---p", "{what}: page before");
    assert_eq!(after.perms, "---p", "{what}: page after");
    // At least one page; the kernel merges the guard pages of adjacent regions into one mapping.
    assert!(before.end - before.start >= 4096);
    assert!(after.end - after.start >= 4096);
}

#[test]
fn large_and_small_secrets_are_locked_undumpable_and_guarded() {
    // Running as root or with a generous memlock limit, Strict must succeed.
    let big = SecretBytes::with_capacity_and_policy(64 << 10, LockPolicy::Strict).unwrap();
    let mut big = big;
    big.resize(64 << 10).unwrap();
    check(&big, "64 KiB buffer");
    let key = SecretBytes::random(32).unwrap();
    check(&key, "32-byte key slot");
    let mut grown = SecretBytes::from_slice(&[1; 100]).unwrap();
    grown.extend_from_slice(&[2; 10_000]).unwrap();
    check(&grown, "grown buffer");
}
