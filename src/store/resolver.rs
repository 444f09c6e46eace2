//! [`Resolver`]: references to values, through a single-flight cache in locked memory.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{MAX_SECRET_LEN, SecretRef, SecretStore, StoredSecret, VersionInfo, too_large};
use crate::error::{Error, StoreErrorKind};
use crate::secret::SecretBytes;
use crate::slots::{Slots, digest};

/// Opens the store a reference needs, the first time the resolver meets a reference no store
/// it holds [`serves`](SecretStore::serves). [`LocalStores`](super::LocalStores) opens
/// `env://` and `file://`; `kmseal_keys::Stores` every kind, with the environment's
/// credentials.
#[async_trait]
pub trait StoreSource: Send + Sync {
    /// A store for `reference`.
    async fn open(&self, reference: &SecretRef) -> Result<Arc<dyn SecretStore>, Error>;
}

/// How long a [`Resolver`] keeps values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResolverSettings {
    /// How long a fetched value is served without asking the store again (default 5 minutes).
    pub ttl: Duration,
    /// How long past its TTL the last good value may still be served while the store fails
    /// transiently (throttled, unavailable, timed out; default 15 minutes; zero never serves a
    /// stale value). Access denied, not found and integrity failures are never bridged. Each
    /// stale answer is logged (the reference and the error, never the value) and counted in
    /// [`ResolverStats::stale`].
    pub max_stale: Duration,
    /// After a failed refresh, how long stale answers are given without asking the store
    /// again (default 10 s), so an outage does not make every caller wait for retries.
    pub retry_after: Duration,
    /// Most secrets kept; the least recently used is dropped (and wiped) first (default
    /// 1,000).
    pub max_entries: usize,
}

impl Default for ResolverSettings {
    fn default() -> Self {
        ResolverSettings {
            ttl: Duration::from_secs(300),
            max_stale: Duration::from_secs(900),
            retry_after: Duration::from_secs(10),
            max_entries: 1_000,
        }
    }
}

impl ResolverSettings {
    /// With this TTL.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// With this staleness bound.
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = max_stale;
        self
    }

    /// With this pause between refresh attempts while serving stale values.
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// With room for this many secrets.
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries;
        self
    }
}

/// What a resolver has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResolverStats {
    /// Resolutions answered from the cache within the TTL.
    pub hits: u64,
    /// Store calls made (one per secret per TTL, however many callers asked at once).
    pub fetches: u64,
    /// Store calls that failed.
    pub errors: u64,
    /// Resolutions answered with a value past its TTL because the store failed.
    pub stale: u64,
    /// Secrets cached now.
    pub entries: usize,
}

/// A resolved reference: the value (its `#field` applied) in locked memory, and where it came
/// from.
pub struct Resolved {
    value: SecretBytes,
    version: VersionInfo,
    stale: bool,
}

impl Resolved {
    /// The value.
    pub fn value(&self) -> &SecretBytes {
        &self.value
    }

    /// The value, owned.
    pub fn into_value(self) -> SecretBytes {
        self.value
    }

    /// The version it came from.
    pub fn version(&self) -> &VersionInfo {
        &self.version
    }

    /// Whether the value is past its TTL, served because the store failed.
    pub fn is_stale(&self) -> bool {
        self.stale
    }
}

impl fmt::Debug for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolved")
            .field("value", &self.value)
            .field("version", &self.version)
            .field("stale", &self.stale)
            .finish()
    }
}

/// Resolves [`SecretRef`]s through the stores a [`StoreSource`] opens, caching each fetched
/// secret (whole, so every `#field` of it costs one fetch) in locked memory. See the
/// [module docs](super) for an example.
///
/// * **Single flight**: concurrent resolutions of one secret wait for one store call.
/// * **TTL and bounded staleness** ([`ResolverSettings`]): a store failure is answered with
///   the last good value for at most `max_stale` past its TTL, never longer.
/// * **One trust domain per entry**: entries are keyed by store *instance* and reference, so
///   a value fetched through one store (one endpoint, one set of credentials) is never served
///   for a reference that resolves through another.
/// * **Fork**: a forked child starts with an empty cache (its copies of the values read as
///   zeros, see SECURITY.md).
///
/// Cloning a resolver is cheap and shares the cache.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

struct Inner {
    source: Box<dyn StoreSource>,
    stores: async_lock::Mutex<Vec<Arc<dyn SecretStore>>>,
    slots: Slots<Entry>,
    settings: ResolverSettings,
    hits: AtomicU64,
    fetches: AtomicU64,
    errors: AtomicU64,
    stale: AtomicU64,
}

struct Entry {
    secret: StoredSecret,
    fetched: Instant,
    /// After a failed refresh: no new attempt before this.
    retry_at: Option<Instant>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("settings", &self.inner.settings)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// The source of a resolver built with fixed stores: opens nothing.
struct NoSource;

#[async_trait]
impl StoreSource for NoSource {
    async fn open(&self, reference: &SecretRef) -> Result<Arc<dyn SecretStore>, Error> {
        Err(reference.invalid("none of the resolver's stores serves this reference"))
    }
}

impl Resolver {
    /// A resolver that opens stores through `source`, with default settings.
    pub fn new(source: impl StoreSource + 'static) -> Resolver {
        Resolver::with_settings(source, ResolverSettings::default())
    }

    /// A resolver that opens stores through `source`.
    pub fn with_settings(
        source: impl StoreSource + 'static,
        settings: ResolverSettings,
    ) -> Resolver {
        Resolver::build(Box::new(source), Vec::new(), settings)
    }

    /// A resolver over these stores only (a reference none of them serves is an
    /// [`Error::InvalidReference`]).
    pub fn with_stores(stores: Vec<Arc<dyn SecretStore>>, settings: ResolverSettings) -> Resolver {
        Resolver::build(Box::new(NoSource), stores, settings)
    }

    fn build(
        source: Box<dyn StoreSource>,
        stores: Vec<Arc<dyn SecretStore>>,
        settings: ResolverSettings,
    ) -> Resolver {
        Resolver {
            inner: Arc::new(Inner {
                source,
                stores: async_lock::Mutex::new(stores),
                ..Inner::empty(settings)
            }),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> ResolverSettings {
        self.inner.settings
    }

    /// Resolves a reference given as text ([`SecretRef`]'s syntax).
    pub async fn resolve_str(&self, reference: &str) -> Result<Resolved, Error> {
        self.resolve(&reference.parse()?).await
    }

    /// Resolves `reference`: from the cache within the TTL, else from its store (one call for
    /// all concurrent callers), else, when the store fails, the last good value within the
    /// staleness bound.
    pub async fn resolve(&self, reference: &SecretRef) -> Result<Resolved, Error> {
        let inner = &*self.inner;
        let settings = inner.settings;
        inner
            .slots
            .sweep(settings.ttl.min(Duration::from_secs(60)), |e| {
                e.fetched.elapsed() > settings.ttl.saturating_add(settings.max_stale)
            });
        let store = self.store_for(reference).await?;
        let whole = reference.without_field();
        let key = entry_key(&store, &whole);
        let slot = inner.slots.get(key);
        let mut guard = slot.value.lock().await;
        let now = Instant::now();
        if let Some(entry) = guard.as_ref() {
            let age = now.saturating_duration_since(entry.fetched);
            if age < settings.ttl {
                inner.hits.fetch_add(1, Ordering::Relaxed);
                return answer(reference, entry, false);
            }
            let waiting = entry.retry_at.is_some_and(|t| now < t);
            if waiting && age < settings.ttl.saturating_add(settings.max_stale) {
                inner.stale.fetch_add(1, Ordering::Relaxed);
                return answer(reference, entry, true);
            }
        }
        inner.fetches.fetch_add(1, Ordering::Relaxed);
        let fetched = store.get(&whole).await.and_then(|secret| {
            if secret.value.len() > MAX_SECRET_LEN {
                return Err(too_large(&whole, secret.value.len()));
            }
            Ok(secret)
        });
        match fetched {
            Ok(secret) => {
                let entry = guard.insert(Entry {
                    secret,
                    fetched: Instant::now(),
                    retry_at: None,
                });
                let out = answer(reference, entry, false);
                drop(guard);
                inner.slots.filled(key);
                out
            }
            Err(e) => {
                inner.errors.fetch_add(1, Ordering::Relaxed);
                let e = e.for_reference(&whole);
                let bound = settings.ttl.saturating_add(settings.max_stale);
                // Ages are taken after the failed call, which may have taken long (retries,
                // timeouts): the bound holds at the moment the value is handed out.
                let now = Instant::now();
                // Only a transient failure (throttled, unavailable, timed out) is bridged with
                // the last good value: access revoked, a secret deleted, a failed integrity
                // check are answers, not outages.
                let transient = e.store_kind().is_some_and(|k| k.is_retryable());
                match guard.as_mut() {
                    Some(entry)
                        if transient && now.saturating_duration_since(entry.fetched) < bound =>
                    {
                        entry.retry_at = Some(now + settings.retry_after);
                        inner.stale.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            reference = %whole,
                            error = %e,
                            age_s = now.saturating_duration_since(entry.fetched).as_secs(),
                            "secret store failed; serving the last good value"
                        );
                        answer(reference, entry, true)
                    }
                    _ => {
                        // Nothing good enough to serve: wipe what is there and take no room.
                        *guard = None;
                        drop(guard);
                        inner.slots.failed(key, &slot);
                        Err(e)
                    }
                }
            }
        }
    }

    /// Writes `value` as the new current version of the secret `reference` names (no
    /// selectors), and drops the cached current value so the next resolution fetches it.
    pub async fn put(&self, reference: &SecretRef, value: &[u8]) -> Result<VersionInfo, Error> {
        reference.check_no_selectors()?;
        if value.len() > MAX_SECRET_LEN {
            return Err(too_large(reference, value.len()));
        }
        let store = self.store_for(reference).await?;
        let written = store
            .put(reference, value)
            .await
            .map_err(|e| e.for_reference(reference));
        let key = entry_key(&store, reference);
        *self.inner.slots.get(key).value.lock().await = None;
        written
    }

    /// The version before `current` (what `reference` resolved to) and its value, for a
    /// graceful rotation: on Secrets Manager, when `current` is the `AWSCURRENT` one, the
    /// version staged `AWSPREVIOUS`; elsewhere the newest enabled version listed after
    /// `current` (the prior Vault KV version, the previous Secret Manager or Key Vault
    /// version). `Ok(None)` when there is none, or the store keeps no versions (`env://`,
    /// `file://`, KV version 1). Also returns `current` as listed (with its creation time,
    /// which some reads do not return). Two store calls: a listing and a read.
    pub async fn previous_version(
        &self,
        reference: &SecretRef,
        current: &VersionInfo,
    ) -> Result<(Option<VersionInfo>, Option<Resolved>), Error> {
        let listed = match self.versions(reference).await {
            Ok(v) => v,
            Err(e) if e.store_kind() == Some(StoreErrorKind::Unsupported) => {
                return Ok((None, None));
            }
            Err(e) => return Err(e),
        };
        let at = listed.iter().position(|v| v.id == current.id);
        let this = at.map(|i| listed[i].clone());
        let aws_current = current.stages.iter().any(|s| s == "AWSCURRENT");
        let before = if aws_current {
            listed
                .iter()
                .find(|v| v.stages.iter().any(|s| s == "AWSPREVIOUS"))
        } else {
            at.and_then(|i| listed[i + 1..].iter().find(|v| !v.disabled))
        };
        let Some(before) = before else {
            return Ok((this, None));
        };
        let pinned = reference.at_version(&before.id)?;
        let value = self.resolve(&pinned).await?;
        Ok((this, Some(value)))
    }

    /// The versions of the secret `reference` names, newest first (never cached).
    pub async fn versions(&self, reference: &SecretRef) -> Result<Vec<VersionInfo>, Error> {
        let store = self.store_for(reference).await?;
        store
            .versions(&reference.without_field())
            .await
            .map_err(|e| e.for_reference(reference))
    }

    /// The store that serves `reference`, opened through the source on first use.
    pub async fn store_for(&self, reference: &SecretRef) -> Result<Arc<dyn SecretStore>, Error> {
        let mut stores = self.inner.stores.lock().await;
        if let Some(store) = stores.iter().find(|s| s.serves(reference)) {
            return Ok(store.clone());
        }
        let store = self.inner.source.open(reference).await?;
        if !store.serves(reference) {
            return Err(Error::Internal(
                "a store source opened a store that does not serve the reference",
            ));
        }
        tracing::debug!(store = %store.describe(), "secret store opened");
        stores.push(store.clone());
        Ok(store)
    }

    /// What the resolver has done so far.
    pub fn stats(&self) -> ResolverStats {
        let inner = &*self.inner;
        ResolverStats {
            hits: inner.hits.load(Ordering::Relaxed),
            fetches: inner.fetches.load(Ordering::Relaxed),
            errors: inner.errors.load(Ordering::Relaxed),
            stale: inner.stale.load(Ordering::Relaxed),
            entries: inner.slots.len(),
        }
    }

    /// Drops (and wipes) every cached value.
    pub fn clear(&self) {
        self.inner.slots.clear();
    }
}

impl Inner {
    fn empty(settings: ResolverSettings) -> Inner {
        Inner {
            source: Box::new(NoSource),
            stores: async_lock::Mutex::new(Vec::new()),
            slots: Slots::new(settings.max_entries),
            settings,
            hits: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            stale: AtomicU64::new(0),
        }
    }
}

/// The cache key: the store instance (the address of its allocation, which the resolver
/// keeps alive for its whole life, so no other store can reuse it) and the reference
/// without its field.
fn entry_key(store: &Arc<dyn SecretStore>, whole: &SecretRef) -> [u8; 32] {
    let instance = Arc::as_ptr(store).cast::<()>() as usize as u64;
    digest(
        "kmseal secret resolver v1",
        &[&instance.to_be_bytes(), whole.to_string().as_bytes()],
    )
}

fn answer(reference: &SecretRef, entry: &Entry, stale: bool) -> Result<Resolved, Error> {
    Ok(Resolved {
        value: reference.select(&entry.secret)?,
        version: entry.secret.version.clone(),
        stale,
    })
}
