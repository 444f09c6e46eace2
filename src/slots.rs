//! Single-flight slots keyed by a 32-byte digest: the shared machinery of the data-key
//! caches ([`crate::cache`]) and the secret resolver ([`crate::store::Resolver`]).
//!
//! A slot's async lock is held while its value is computed, so concurrent callers for one key
//! wait for one computation (one KMS or store call) instead of repeating it. A forked child
//! starts with an empty map of its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::secret::ForkLocal;

/// Whole milliseconds of `d`, saturating (585 million years fit).
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the map lock leaves the map consistent (every mutation is a single
    // insert or remove), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Length-prefixed SHA-256 over the parts (no ambiguity between part boundaries).
pub(crate) fn digest(domain: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// A map of single-flight slots: the slot's async lock is held while its value is computed,
/// so concurrent callers for one key wait for one computation instead of repeating it.
pub(crate) struct Slots<V> {
    epoch: Instant,
    max: usize,
    /// One map per fork generation: in a forked child every entry holds a wiped key, and the
    /// parent's lock may be held by a thread that does not exist there, so the child starts
    /// with an empty map of its own.
    map: ForkLocal<Mutex<SlotMap<V>>>,
    last_sweep: AtomicU64,
}

/// Slots by their 32-byte key.
type SlotMap<V> = HashMap<[u8; 32], Arc<Slot<V>>>;

pub(crate) struct Slot<V> {
    pub(crate) value: async_lock::Mutex<Option<V>>,
    last_used: AtomicU64,
}

impl<V> Slots<V> {
    pub(crate) fn new(max: usize) -> Slots<V> {
        Slots {
            epoch: Instant::now(),
            max: max.max(1),
            map: ForkLocal::new(),
            last_sweep: AtomicU64::new(0),
        }
    }

    /// The slot for `key`, created (empty) if absent. Nothing is evicted here: a slot only
    /// pushes others out once it holds a value ([`Slots::filled`]), so a failed computation
    /// (a junk wrapped key in an attacker's message) never evicts good entries.
    pub(crate) fn get(&self, key: [u8; 32]) -> Arc<Slot<V>> {
        let now = millis(self.epoch.elapsed());
        let mut map = self.map();
        if let Some(slot) = map.get(&key) {
            slot.last_used.store(now, Ordering::Relaxed);
            return slot.clone();
        }
        let slot = Arc::new(Slot {
            value: async_lock::Mutex::new(None),
            last_used: AtomicU64::new(now),
        });
        map.insert(key, slot.clone());
        slot
    }

    /// Called once `key`'s slot holds a value: while the map is over its size, removes the
    /// least recently used other slots. Returns how many were removed.
    pub(crate) fn filled(&self, key: [u8; 32]) -> u64 {
        let mut map = self.map();
        let mut evicted = 0;
        while map.len() > self.max {
            let Some(oldest) = map
                .iter()
                .filter(|(k, _)| **k != key)
                .min_by_key(|(_, s)| s.last_used.load(Ordering::Relaxed))
                .map(|(k, _)| *k)
            else {
                break;
            };
            map.remove(&oldest);
            evicted += 1;
        }
        evicted
    }

    /// Called when filling `slot` failed: removes it from the map if it is still the slot
    /// for `key`, so failures take no room.
    pub(crate) fn failed(&self, key: [u8; 32], slot: &Arc<Slot<V>>) {
        let mut map = self.map();
        if map.get(&key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            map.remove(&key);
        }
    }

    /// At most once per `every`, drops values for which `expired` holds (slots busy with a
    /// computation are skipped), so expired keys are wiped even if nobody asks for them again.
    /// Returns how many were dropped.
    pub(crate) fn sweep(&self, every: Duration, expired: impl Fn(&V) -> bool) -> u64 {
        let now = millis(self.epoch.elapsed());
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now.saturating_sub(last) < millis(every)
            || self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return 0;
        }
        let mut map = self.map();
        let mut dropped = 0;
        map.retain(|_, slot| match slot.value.try_lock() {
            Some(mut v) if v.as_ref().is_some_and(&expired) => {
                *v = None;
                dropped += 1;
                false
            }
            _ => true,
        });
        dropped
    }

    /// This process's map (a forked child's starts empty).
    fn map(&self) -> MutexGuard<'_, SlotMap<V>> {
        lock(self.map.get(|| Mutex::new(HashMap::new())))
    }

    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }

    pub(crate) fn clear(&self) -> usize {
        let mut map = self.map();
        let n = map.len();
        map.clear();
        n
    }
}
