//! What format version 4 adds to the metadata block for a value's lifecycle (FORMAT.md,
//! "Version 4"): when each value was set (`times`), and the previous values kept through a
//! grace period after a rotation (`previous`). Both are covered by the metadata MAC.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Error;
use crate::meta::len32;
use crate::path::Path;

/// The latest time a document records: 9999-12-31T23:59:59Z. Later times (a crafted field, a
/// grace period of `u64::MAX` seconds) are refused: they overflow `SystemTime` on some
/// platforms and mean nothing anyway.
pub(crate) const MAX_TIME: u64 = 253_402_300_799;

/// Seconds since the Unix epoch (0 before it, which no real clock reads).
pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The time `secs` seconds after the Unix epoch (at most [`MAX_TIME`]; never panics).
pub(crate) fn from_unix(secs: u64) -> SystemTime {
    let secs = secs.min(MAX_TIME);
    UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .unwrap_or(UNIX_EPOCH)
}

/// A bounds-checked reader over a field's bytes.
pub(crate) struct Reader<'a> {
    raw: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(raw: &'a [u8]) -> Reader<'a> {
        Reader { raw, at: 0 }
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.raw.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_be_bytes)
    }

    pub(crate) fn used(&self) -> usize {
        self.at
    }

    fn done(&self) -> bool {
        self.at == self.raw.len()
    }
}

/// The `times` field: when each MAC item (values, then structure items, in document order)
/// was set, in Unix seconds, 0 for "not known" (sealed before version 4). Encoded as a table
/// of the distinct times, ascending (`u32 n || n × u64`), then one `u32` table index per
/// item: a document whose values were set on a few occasions costs 4 bytes per value.
pub(crate) fn encode_times(times: &[u64]) -> Vec<u8> {
    let mut table: Vec<u64> = times.to_vec();
    table.sort_unstable();
    table.dedup();
    let mut out = Vec::with_capacity(4 + 8 * table.len() + 4 * times.len());
    out.extend_from_slice(&len32(table.len()));
    for t in &table {
        out.extend_from_slice(&t.to_be_bytes());
    }
    for t in times {
        let i = table.binary_search(t).unwrap_or(0);
        out.extend_from_slice(&len32(i));
    }
    out
}

/// Reads a `times` field for `items` MAC items. Only the canonical encoding is accepted
/// (ascending distinct table, every entry used, every index in range, nothing after).
pub(crate) fn decode_times(raw: &[u8], items: usize) -> Result<Vec<u64>, Error> {
    let bad = |what: &str| Error::Metadata(format!("`times` is malformed ({what})"));
    let mut r = Reader::new(raw);
    let n = r.u32().ok_or_else(|| bad("truncated"))? as usize;
    // Each table entry takes 8 bytes: a count beyond what the field holds is refused before
    // anything is allocated for it.
    if n > raw.len() / 8 {
        return Err(bad("table longer than the field"));
    }
    let mut table = Vec::with_capacity(n);
    for _ in 0..n {
        let t = r.u64().ok_or_else(|| bad("truncated"))?;
        if t > MAX_TIME {
            return Err(bad("a time after the year 9999"));
        }
        if table.last().is_some_and(|&last| t <= last) {
            return Err(bad("table not ascending"));
        }
        table.push(t);
    }
    let mut used = vec![false; n];
    let mut out = Vec::with_capacity(items.min(raw.len() / 4));
    for _ in 0..items {
        let i = r.u32().ok_or_else(|| bad("fewer times than values"))? as usize;
        let t = *table.get(i).ok_or_else(|| bad("index out of range"))?;
        used[i] = true;
        out.push(t);
    }
    if !r.done() {
        return Err(bad("more times than values"));
    }
    if used.contains(&false) {
        return Err(bad("unused table entry"));
    }
    Ok(out)
}

/// A value kept through a grace period after it was replaced (`kmseal config set
/// --keep-previous`), encrypted under the document key and bound to its path, kind and
/// expiry.
#[derive(Clone)]
pub(crate) struct Previous {
    pub(crate) path: Path,
    /// Unix seconds after which it is dropped (and not given out).
    pub(crate) expires: u64,
    /// `kmseal:v1:T:…`, sealed with [`DocKeys::encrypt_previous`](crate::crypto::DocKeys).
    pub(crate) value: String,
}

/// The `previous` field: `u32 count`, then per entry the path encoding, `u64 expires` and
/// `u32 len || value`, in order of their path encodings (no path twice).
pub(crate) fn encode_previous(list: &[Previous]) -> Vec<u8> {
    let mut sorted: Vec<&Previous> = list.iter().collect();
    sorted.sort_by_key(|p| p.path.encode());
    let mut out = len32(sorted.len()).to_vec();
    for p in sorted {
        out.extend_from_slice(&p.path.encode());
        out.extend_from_slice(&p.expires.to_be_bytes());
        out.extend_from_slice(&len32(p.value.len()));
        out.extend_from_slice(p.value.as_bytes());
    }
    out
}

/// Reads a `previous` field (canonical encoding only: sorted, no path twice).
pub(crate) fn decode_previous(raw: &[u8]) -> Result<Vec<Previous>, Error> {
    let bad = |what: &str| Error::Metadata(format!("`previous` is malformed ({what})"));
    let mut r = Reader::new(raw);
    let n = r.u32().ok_or_else(|| bad("truncated"))? as usize;
    // An entry takes at least 4 + 8 + 4 bytes.
    if n > raw.len() / 16 {
        return Err(bad("more entries than the field holds"));
    }
    let mut out: Vec<Previous> = Vec::with_capacity(n);
    let mut last: Option<Vec<u8>> = None;
    for _ in 0..n {
        let rest = raw.get(r.used()..).unwrap_or_default();
        let (path, used) = Path::decode(rest).ok_or_else(|| bad("path"))?;
        r.take(used).ok_or_else(|| bad("truncated"))?;
        let encoded = path.encode();
        if last.as_ref().is_some_and(|l| *l >= encoded) {
            return Err(bad("entries not in order, or a path twice"));
        }
        last = Some(encoded);
        let expires = r.u64().ok_or_else(|| bad("truncated"))?;
        if expires > MAX_TIME {
            return Err(bad("an expiry after the year 9999"));
        }
        let len = r.u32().ok_or_else(|| bad("truncated"))? as usize;
        let value = std::str::from_utf8(r.take(len).ok_or_else(|| bad("truncated"))?)
            .map_err(|_| bad("value not text"))?
            .to_owned();
        if !crate::crypto::is_encrypted(&value) {
            return Err(bad("value not encrypted"));
        }
        out.push(Previous {
            path,
            expires,
            value,
        });
    }
    if !r.done() {
        return Err(bad("trailing bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_and_only_the_canonical_form_reads() {
        let times = [5, 0, 5, 9, 0, 5];
        let raw = encode_times(&times);
        assert_eq!(raw.len(), 4 + 3 * 8 + 6 * 4);
        assert_eq!(decode_times(&raw, times.len()).unwrap(), times);
        assert!(decode_times(&raw, 5).is_err(), "one more time than values");
        assert!(decode_times(&raw, 7).is_err(), "one fewer");
        assert_eq!(
            decode_times(&encode_times(&[]), 0).unwrap(),
            Vec::<u64>::new()
        );
        for cut in 0..raw.len() {
            assert!(decode_times(&raw[..cut], times.len()).is_err(), "cut {cut}");
        }
        let mut unsorted = raw.clone();
        unsorted[4..12].copy_from_slice(&10u64.to_be_bytes()); // table 10, 5, 9
        assert!(decode_times(&unsorted, times.len()).is_err());
        let mut out_of_range = raw.clone();
        let last = out_of_range.len() - 1;
        out_of_range[last] = 3;
        assert!(decode_times(&out_of_range, times.len()).is_err());
        // A huge count is refused without allocating for it.
        assert!(decode_times(&u32::MAX.to_be_bytes(), 0).is_err());
        // Times past the year 9999 are refused (they overflowed SystemTime: a review found
        // `inspect` panicking on a crafted field).
        assert!(decode_times(&encode_times(&[MAX_TIME + 1]), 1).is_err());
        assert!(decode_times(&encode_times(&[MAX_TIME]), 1).is_ok());
        assert_eq!(from_unix(u64::MAX), from_unix(MAX_TIME));
    }

    #[test]
    fn previous_values_round_trip_and_garbage_is_refused() {
        let list = vec![
            Previous {
                path: Path::root().key("jwt").key("secret"),
                expires: 1_800_000_000,
                value: "kmseal:v1:s:AAAA".into(),
            },
            Previous {
                path: Path::root().key("a").index(3),
                expires: 7,
                value: "kmseal:v1:i:BBBB".into(),
            },
        ];
        let raw = encode_previous(&list);
        let back = decode_previous(&raw).unwrap();
        assert_eq!(back.len(), 2);
        // Sorted by path encoding: `a[3]` first.
        assert_eq!(back[0].path, list[1].path);
        assert_eq!(
            (back[1].expires, back[1].value.as_str()),
            (1_800_000_000, "kmseal:v1:s:AAAA")
        );
        for cut in 0..raw.len() {
            assert!(decode_previous(&raw[..cut]).is_err(), "cut {cut}");
        }
        let mut twice = list.clone();
        twice[1].path = twice[0].path.clone();
        assert!(decode_previous(&encode_previous(&twice)).is_err());
        assert!(decode_previous(&u32::MAX.to_be_bytes()).is_err());
        let mut late = list.clone();
        late[0].expires = MAX_TIME + 1;
        assert!(decode_previous(&encode_previous(&late)).is_err());
        let mut extra = raw.clone();
        extra.push(0);
        assert!(decode_previous(&extra).is_err());
    }
}
