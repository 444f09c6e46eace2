//! Data-key caches, so a service does not call its KMS for every record.
//!
//! * [`EncryptCache`] lets an [`Encryptor`](crate::Encryptor) reuse one data key (and its
//!   wrapped forms) for many messages, within [`CacheLimits`]: maximum age, messages and bytes.
//!   Every message still gets its own 256-bit message id, so its own derived payload key,
//!   header key and commitment. When a limit is reached, the next message wraps a new data
//!   key; concurrent callers wait for that one wrap (single flight) and never exceed a limit.
//! * [`DecryptCache`] remembers data keys a [`Decryptor`](crate::Decryptor) unwrapped, keyed
//!   by (KEK, wrapped key, encryption context), for a TTL, so messages sharing a wrapped key
//!   cost one KMS call. Only keys that passed the commitment check are cached.
//!
//! Cached keys are [`DataKey`]s in locked memory, zeroized when the last message using them
//! finishes after eviction.
//!
//! **A cache never spans trust domains.** Entries are keyed by KEK *instance* (the `Arc`
//! a KEK was handed in), not by provider, key id or description: two KEK objects naming the
//! same key with different credentials, endpoints or Vault namespaces (two tenants) never see
//! each other's keys, even through one shared cache. Only keys that unwrapped and passed the
//! commitment check take a slot, so junk wrapped keys never evict good entries. In the child
//! of a `fork()` both caches start empty (the parent's keys are wiped there). Both caches are cheap to clone (clones share one cache) and safe
//! to share across threads and tasks; [`stats`](EncryptCache::stats) shows their effect.
//!
//! ```
//! # kmseal::blocking::block_on(async {
//! use std::sync::Arc;
//! use kmseal::{CacheLimits, DecryptCache, Decryptor, EncryptCache, Encryptor, LocalKek};
//!
//! let kek = Arc::new(LocalKek::generate()?);
//! let enc = Encryptor::new(kek.clone()).cache(EncryptCache::new(CacheLimits::default()));
//! let dec = Decryptor::new(kek).cache(DecryptCache::new(std::time::Duration::from_secs(300), 1000));
//! for record in [&b"one"[..], b"two", b"three"] {
//!     let sealed = enc.encrypt(record).await?;
//!     assert_eq!(dec.decrypt(&sealed).await?.expose_secret(), record);
//! }
//! assert_eq!(enc.cache_stats().unwrap().kms_calls, 1); // one wrap for three messages
//! assert_eq!(dec.cache_stats().unwrap().kms_calls, 1); // one unwrap
//! # Ok::<(), kmseal::Error>(())
//! # }).unwrap();
//! ```

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::context::EncryptionContext;
use crate::error::Error;
use crate::kek::{DataKey, Kek, WrappedKey};
use crate::slots::{Slots, digest, millis};

/// How long and how much one data key may be reused by an [`EncryptCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Oldest a cached data key may be when a message starts (default 5 minutes).
    pub max_age: Duration,
    /// Most messages one data key may protect (default 10,000).
    pub max_messages: u64,
    /// Most plaintext bytes one data key may protect, summed over its messages (default
    /// 1 GiB). A single message larger than this gets a data key of its own.
    pub max_bytes: u64,
    /// Most distinct (KEK set, context) slots kept; the least recently used is evicted
    /// (default 1,000).
    pub max_slots: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            max_age: Duration::from_secs(300),
            max_messages: 10_000,
            max_bytes: 1 << 30,
            max_slots: 1_000,
        }
    }
}

/// What a cache has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Messages served from a cached key.
    pub hits: u64,
    /// Messages that needed a KMS call.
    pub misses: u64,
    /// KMS calls made: new data keys wrapped (encrypt side) or unwrapped (decrypt side).
    pub kms_calls: u64,
    /// Keys dropped before their limits or TTL were reached (slot eviction, `clear`).
    pub evictions: u64,
    /// Keys currently cached.
    pub entries: usize,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    kms_calls: AtomicU64,
    evictions: AtomicU64,
}

impl Counters {
    fn snapshot(&self, entries: usize) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            kms_calls: self.kms_calls.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            entries,
        }
    }
}

/// The identity of one KEK instance: the address of its `Arc` allocation. Every cache entry
/// keyed by it holds a [`Weak`] to the same allocation, which keeps the address from being
/// reused by another KEK while the entry lives.
fn instance_id(kek: &Arc<dyn Kek>) -> u64 {
    Arc::as_ptr(kek).cast::<()>() as usize as u64
}

/// A data key lent to one message by the encrypt cache, with the wrapped forms to put in its
/// header.
pub(crate) struct Lease {
    pub(crate) key: Arc<DataKey>,
    pub(crate) wrapped: Vec<WrappedKey>,
}

struct Entry {
    key: Arc<DataKey>,
    wrapped: Vec<WrappedKey>,
    /// Pins the KEK allocations whose addresses key this entry (see [`instance_id`]).
    _keks: Vec<Weak<dyn Kek>>,
    created: Instant,
    messages: u64,
    bytes: u64,
}

impl Entry {
    fn retire(&self, why: &'static str) {
        tracing::debug!(
            why,
            messages = self.messages,
            bytes = self.bytes,
            age_ms = millis(self.created.elapsed()),
            "cached data key retired"
        );
    }
}

/// Reuses data keys across messages within [`CacheLimits`]. See the [module docs](self).
#[derive(Clone)]
pub struct EncryptCache {
    inner: Arc<EncryptInner>,
}

struct EncryptInner {
    limits: CacheLimits,
    slots: Slots<Entry>,
    counters: Counters,
}

impl std::fmt::Debug for EncryptCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptCache")
            .field("limits", &self.inner.limits)
            .field("stats", &self.stats())
            .finish()
    }
}

impl EncryptCache {
    /// A cache with these limits.
    pub fn new(limits: CacheLimits) -> EncryptCache {
        EncryptCache {
            inner: Arc::new(EncryptInner {
                limits,
                slots: Slots::new(limits.max_slots),
                counters: Counters::default(),
            }),
        }
    }

    /// The limits this cache enforces.
    pub fn limits(&self) -> CacheLimits {
        self.inner.limits
    }

    /// Hits, misses, KMS calls (wraps), evictions and slots in use.
    pub fn stats(&self) -> CacheStats {
        self.inner.counters.snapshot(self.inner.slots.len())
    }

    /// Drops every cached key (each is zeroized once the messages using it finish).
    pub fn clear(&self) {
        let n = self.inner.slots.clear();
        self.inner
            .counters
            .evictions
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Slots are keyed by KEK *instance* (see [`instance_id`]), never by names: two KEKs
    /// with the same provider, key id and description but different credentials, endpoints
    /// or namespaces (two tenants) never share a cached key.
    fn slot_key(keks: &[Arc<dyn Kek>], context: &EncryptionContext, kms_key: bool) -> [u8; 32] {
        let canonical = context.canonical_bytes();
        let mut parts: Vec<Vec<u8>> = vec![canonical, vec![u8::from(kms_key)]];
        for k in keks {
            parts.push(instance_id(k).to_be_bytes().to_vec());
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        digest("kmseal encrypt cache v2", &refs)
    }

    /// A data key for one message of `len` plaintext bytes: the cached one if its limits
    /// allow one more such message, else a new one from `fresh` (called at most once per
    /// slot at a time).
    pub(crate) async fn lease<F, Fut>(
        &self,
        keks: &[Arc<dyn Kek>],
        context: &EncryptionContext,
        kms_key: bool,
        len: u64,
        fresh: F,
    ) -> Result<Lease, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(DataKey, Vec<WrappedKey>), Error>>,
    {
        let limits = self.inner.limits;
        let counters = &self.inner.counters;
        if len > limits.max_bytes || limits.max_messages == 0 {
            // Too large to share a key with anything: a key of its own, not cached.
            counters.misses.fetch_add(1, Ordering::Relaxed);
            counters.kms_calls.fetch_add(1, Ordering::Relaxed);
            let (key, wrapped) = fresh().await?;
            return Ok(Lease {
                key: Arc::new(key),
                wrapped,
            });
        }
        let max_age = limits.max_age;
        self.inner
            .slots
            .sweep(Duration::from_secs(1).min(max_age), |e| {
                e.created.elapsed() >= max_age
            });
        let id = Self::slot_key(keks, context, kms_key);
        let slot = self.inner.slots.get(id);
        let mut current = slot.value.lock().await;
        if let Some(e) = current.as_mut() {
            let why = if e.created.elapsed() >= limits.max_age {
                Some("max_age")
            } else if e.messages >= limits.max_messages {
                Some("max_messages")
            } else if e.bytes.saturating_add(len) > limits.max_bytes {
                Some("max_bytes")
            } else {
                None
            };
            match why {
                None => {
                    e.messages += 1;
                    e.bytes += len;
                    counters.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(Lease {
                        key: e.key.clone(),
                        wrapped: e.wrapped.clone(),
                    });
                }
                Some(why) => {
                    e.retire(why);
                    *current = None;
                }
            }
        }
        counters.misses.fetch_add(1, Ordering::Relaxed);
        counters.kms_calls.fetch_add(1, Ordering::Relaxed);
        // A failure removes the empty slot: the next caller tries again (no poisoning), and
        // nothing was evicted for it.
        let (key, wrapped) = match fresh().await {
            Ok(fresh) => fresh,
            Err(e) => {
                drop(current);
                self.inner.slots.failed(id, &slot);
                return Err(e);
            }
        };
        let key = Arc::new(key);
        *current = Some(Entry {
            key: key.clone(),
            wrapped: wrapped.clone(),
            _keks: keks.iter().map(Arc::downgrade).collect(),
            created: Instant::now(),
            messages: 1,
            bytes: len,
        });
        drop(current);
        let evicted = self.inner.slots.filled(id);
        counters.evictions.fetch_add(evicted, Ordering::Relaxed);
        Ok(Lease { key, wrapped })
    }
}

/// Remembers unwrapped data keys for a TTL. See the [module docs](self).
#[derive(Clone)]
pub struct DecryptCache {
    inner: Arc<DecryptInner>,
}

struct DecryptInner {
    ttl: Duration,
    /// The key, when it was unwrapped, and the KEK instance it came from (pinned, see
    /// [`instance_id`]).
    slots: Slots<(Arc<DataKey>, Instant, Weak<dyn Kek>)>,
    counters: Counters,
}

impl std::fmt::Debug for DecryptCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptCache")
            .field("ttl", &self.inner.ttl)
            .field("stats", &self.stats())
            .finish()
    }
}

impl DecryptCache {
    /// Keeps each unwrapped key for `ttl`, at most `capacity` keys (least recently used out).
    pub fn new(ttl: Duration, capacity: usize) -> DecryptCache {
        DecryptCache {
            inner: Arc::new(DecryptInner {
                ttl,
                slots: Slots::new(capacity),
                counters: Counters::default(),
            }),
        }
    }

    /// Hits, misses, KMS calls (unwraps), evictions and keys cached.
    pub fn stats(&self) -> CacheStats {
        self.inner.counters.snapshot(self.inner.slots.len())
    }

    /// Drops every cached key (each is zeroized once the messages using it finish).
    pub fn clear(&self) {
        let n = self.inner.slots.clear();
        self.inner
            .counters
            .evictions
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The cached key for (`kek`, `wrapped`, `context`), or the result of `unwrap`, which
    /// must return only keys that passed the message's commitment check. Errors are not cached.
    pub(crate) async fn get_or_unwrap<F, Fut>(
        &self,
        kek: &Arc<dyn Kek>,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
        unwrap: F,
    ) -> Result<Arc<DataKey>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<DataKey, Error>>,
    {
        let id = digest(
            "kmseal decrypt cache v2",
            &[
                &instance_id(kek).to_be_bytes(),
                wrapped.provider.as_bytes(),
                wrapped.key_id.as_bytes(),
                &wrapped.ciphertext,
                &context.canonical_bytes(),
            ],
        );
        let counters = &self.inner.counters;
        let ttl = self.inner.ttl;
        self.inner
            .slots
            .sweep(Duration::from_secs(1).min(ttl), |(_, at, _)| {
                at.elapsed() >= ttl
            });
        let slot = self.inner.slots.get(id);
        let mut value = slot.value.lock().await;
        if let Some((key, at, _)) = value.as_ref() {
            if at.elapsed() < self.inner.ttl {
                counters.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(key.clone());
            }
            *value = None;
        }
        counters.misses.fetch_add(1, Ordering::Relaxed);
        counters.kms_calls.fetch_add(1, Ordering::Relaxed);
        // Only a key that unwrapped and passed the commitment check takes a slot; a failure
        // (junk in an attacker's message) removes the empty slot and evicts nothing.
        let key = match unwrap().await {
            Ok(key) => Arc::new(key),
            Err(e) => {
                drop(value);
                self.inner.slots.failed(id, &slot);
                return Err(e);
            }
        };
        *value = Some((key.clone(), Instant::now(), Arc::downgrade(kek)));
        drop(value);
        let evicted = self.inner.slots.filled(id);
        counters.evictions.fetch_add(evicted, Ordering::Relaxed);
        Ok(key)
    }
}
