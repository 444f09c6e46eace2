//! A scanner of this process's memory for a needle, for the memory-scan tests (the core's
//! and, through `#[path]`, the providers').
#![allow(dead_code, unreachable_pub, clippy::cast_possible_truncation)]

/// The mask [`scan`] removes.
pub const MASK: u8 = 0xA5;

/// Counts occurrences of the unmasked needle (`masked` XOR [`MASK`]) in every readable and
/// writable mapping of this process. Keep secrets only masked in tests, so the scanner never
/// finds its own copy.
pub fn scan(masked: &[u8]) -> usize {
    use std::fs::File;
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::FileExt;
    let needle = masked.len();
    let maps = BufReader::new(File::open("/proc/self/maps").unwrap());
    let mem = File::open("/proc/self/mem").unwrap();
    let first = masked[0] ^ MASK;
    let mut buf = vec![0u8; 1 << 20];
    let mut hits = 0;
    for line in maps.lines() {
        let line = line.unwrap();
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !perms.starts_with("rw") {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let (start, end) = (
            u64::from_str_radix(start, 16).unwrap(),
            u64::from_str_radix(end, 16).unwrap(),
        );
        let mut addr = start;
        while addr < end {
            let want = ((end - addr) as usize).min(buf.len());
            let Ok(n) = mem.read_at(&mut buf[..want], addr) else {
                break;
            };
            if n == 0 {
                break;
            }
            let chunk = &buf[..n];
            for i in 0..n.saturating_sub(needle - 1) {
                if chunk[i] == first
                    && chunk[i..i + needle]
                        .iter()
                        .zip(masked)
                        .all(|(c, m)| c ^ MASK == *m)
                {
                    hits += 1;
                    if std::env::var_os("KMSEAL_SCAN_DEBUG").is_some() {
                        let _ = std::io::Write::write_all(
                            &mut std::io::stderr(),
                            format!("hit at {:#x} in {line}\n", addr + i as u64).as_bytes(),
                        );
                    }
                }
            }
            // Overlap chunks by needle-1 bytes so no occurrence straddles a boundary unseen.
            addr += if n > needle {
                (n - (needle - 1)) as u64
            } else {
                n as u64
            };
        }
    }
    // Zero the scan buffer so its last chunk does not hold a copy into the next scan.
    buf.iter_mut().for_each(|b| *b = 0);
    hits
}
