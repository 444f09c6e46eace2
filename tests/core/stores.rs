//! Secret references, the `env://` and `file://` stores, and the resolver: single flight,
//! TTL, bounded staleness, one trust domain per store instance, field selection, limits, and
//! errors that never show a value.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kmseal::store::{
    EnvStore, FileStore, LocalStores, MAX_SECRET_LEN, Resolver, ResolverSettings, SecretRef,
    SecretStore, StoreKind, StoredSecret, VersionInfo,
};
use kmseal::{Error, SecretBytes, StoreErrorKind};

/// A store in memory for one host of `vault-kv+http://HOST/...`, counting its calls, with
/// failures on demand and a few yields inside `get` so concurrent callers overlap.
#[derive(Debug)]
struct MemoryStore {
    host: &'static str,
    values: Mutex<HashMap<String, (Vec<u8>, u32)>>,
    gets: AtomicU32,
    failing: AtomicBool,
    /// Failures say access denied instead of unavailable.
    denied: AtomicBool,
    /// Each get takes this long (milliseconds).
    slow_ms: AtomicU64,
}

impl MemoryStore {
    fn new(host: &'static str, values: &[(&str, &[u8])]) -> Arc<MemoryStore> {
        Arc::new(MemoryStore {
            host,
            values: Mutex::new(
                values
                    .iter()
                    .map(|(k, v)| (format!("{host}/{k}"), (v.to_vec(), 1)))
                    .collect(),
            ),
            gets: AtomicU32::new(0),
            failing: AtomicBool::new(false),
            denied: AtomicBool::new(false),
            slow_ms: AtomicU64::new(0),
        })
    }
}

#[async_trait]
impl SecretStore for MemoryStore {
    fn kind(&self) -> StoreKind {
        StoreKind::VaultKv
    }
    fn describe(&self) -> String {
        format!("memory {}", self.host)
    }
    fn serves(&self, r: &SecretRef) -> bool {
        r.kind() == StoreKind::VaultKv && r.body().starts_with(&format!("{}/", self.host))
    }
    async fn get(&self, r: &SecretRef) -> Result<StoredSecret, Error> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        std::thread::sleep(Duration::from_millis(self.slow_ms.load(Ordering::SeqCst)));
        if self.failing.load(Ordering::SeqCst) {
            if self.denied.load(Ordering::SeqCst) {
                return Err(r.error(StoreErrorKind::AccessDenied, "injected denial"));
            }
            return Err(r.error(StoreErrorKind::Unavailable, "injected outage"));
        }
        let values = self.values.lock().unwrap();
        let (value, version) = values
            .get(r.body())
            .ok_or_else(|| r.error(StoreErrorKind::NotFound, "no such secret"))?;
        Ok(StoredSecret {
            value: SecretBytes::from_slice(value)?,
            version: VersionInfo::new(version.to_string()),
        })
    }
    async fn put(&self, r: &SecretRef, value: &[u8]) -> Result<VersionInfo, Error> {
        let mut values = self.values.lock().unwrap();
        let slot = values.entry(r.body().to_owned()).or_insert((Vec::new(), 0));
        *slot = (value.to_vec(), slot.1 + 1);
        Ok(VersionInfo::new(slot.1.to_string()))
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn r(text: &str) -> SecretRef {
    text.parse().unwrap()
}

fn forever() -> ResolverSettings {
    ResolverSettings::default().ttl(Duration::from_secs(3600))
}

#[test]
fn a_thousand_concurrent_resolutions_of_ten_secrets_make_ten_store_calls() {
    let names: Vec<String> = (0..10).map(|i| format!("app/s{i}")).collect();
    let values: Vec<(String, Vec<u8>)> = names
        .iter()
        .map(|n| {
            (
                n.clone(),
                format!(r#"{{"password": "pw-{n}"}}"#).into_bytes(),
            )
        })
        .collect();
    let pairs: Vec<(&str, &[u8])> = values.iter().map(|(n, v)| (n.as_str(), &v[..])).collect();
    let store = MemoryStore::new("h1", &pairs);
    let resolver = Resolver::with_stores(vec![store.clone()], forever());
    rt().block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..1000 {
            let resolver = resolver.clone();
            let name = names[i % 10].clone();
            tasks.spawn(async move {
                let got = resolver
                    .resolve(&r(&format!("vault-kv+http://h1/{name}#password")))
                    .await
                    .unwrap();
                assert_eq!(got.value().expose_secret(), format!("pw-{name}").as_bytes());
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    });
    assert_eq!(store.gets.load(Ordering::SeqCst), 10);
    let stats = resolver.stats();
    assert_eq!((stats.fetches, stats.hits, stats.entries), (10, 990, 10));
}

#[test]
fn every_field_of_a_secret_costs_one_fetch_and_a_missing_field_is_not_found() {
    let store = MemoryStore::new("h1", &[("db", br#"{"user": "app", "password": "pw"}"#)]);
    let resolver = Resolver::with_stores(vec![store.clone()], forever());
    rt().block_on(async {
        let user = resolver
            .resolve_str("vault-kv+http://h1/db#user")
            .await
            .unwrap();
        let pw = resolver
            .resolve_str("vault-kv+http://h1/db#password")
            .await
            .unwrap();
        let whole = resolver.resolve_str("vault-kv+http://h1/db").await.unwrap();
        assert_eq!(user.value().expose_secret(), b"app");
        assert_eq!(pw.value().expose_secret(), b"pw");
        assert!(whole.value().expose_secret().starts_with(b"{"));
        let e = resolver
            .resolve_str("vault-kv+http://h1/db#token")
            .await
            .unwrap_err();
        assert_eq!(e.store_kind(), Some(StoreErrorKind::NotFound), "{e}");
        assert!(e.to_string().contains("`token`"), "{e}");
    });
    assert_eq!(store.gets.load(Ordering::SeqCst), 1);
}

#[test]
fn a_field_of_a_value_that_is_not_a_json_object_is_an_error_that_never_shows_the_value() {
    let secret = "hunter2-not-json";
    let store = MemoryStore::new("h1", &[("raw", secret.as_bytes())]);
    let resolver = Resolver::with_stores(vec![store], forever());
    let e = rt()
        .block_on(resolver.resolve_str("vault-kv+http://h1/raw#password"))
        .unwrap_err();
    assert!(matches!(e, Error::Store { .. }), "{e:?}");
    assert!(!format!("{e} {e:?}").contains("hunter2"), "{e:?}");
}

#[test]
fn a_value_is_served_within_its_ttl_and_fetched_again_after_it() {
    let store = MemoryStore::new("h1", &[("a", b"one")]);
    let cached = Resolver::with_stores(vec![store.clone()], forever());
    let uncached = Resolver::with_stores(
        vec![store.clone()],
        ResolverSettings::default().ttl(Duration::ZERO),
    );
    rt().block_on(async {
        for _ in 0..3 {
            cached.resolve_str("vault-kv+http://h1/a").await.unwrap();
        }
        assert_eq!(store.gets.load(Ordering::SeqCst), 1);
        for _ in 0..3 {
            uncached.resolve_str("vault-kv+http://h1/a").await.unwrap();
        }
        assert_eq!(store.gets.load(Ordering::SeqCst), 4);
        // A new value reaches the uncached resolver at once, the cached one after its TTL.
        store.put(&r("vault-kv+http://h1/a"), b"two").await.unwrap();
        let fresh = uncached.resolve_str("vault-kv+http://h1/a").await.unwrap();
        assert_eq!(fresh.value().expose_secret(), b"two");
        assert_eq!(fresh.version().id, "2");
        let old = cached.resolve_str("vault-kv+http://h1/a").await.unwrap();
        assert_eq!(old.value().expose_secret(), b"one");
    });
}

#[test]
fn a_store_failure_is_answered_with_the_last_good_value_only_within_the_staleness_bound() {
    let store = MemoryStore::new("h1", &[("a", b"good")]);
    let settings = ResolverSettings::default()
        .ttl(Duration::ZERO)
        .max_stale(Duration::from_secs(3600))
        .retry_after(Duration::from_secs(3600));
    let tolerant = Resolver::with_stores(vec![store.clone()], settings);
    let strict = Resolver::with_stores(vec![store.clone()], settings.max_stale(Duration::ZERO));
    rt().block_on(async {
        tolerant.resolve_str("vault-kv+http://h1/a").await.unwrap();
        strict.resolve_str("vault-kv+http://h1/a").await.unwrap();
        store.failing.store(true, Ordering::SeqCst);
        let stale = tolerant.resolve_str("vault-kv+http://h1/a").await.unwrap();
        assert!(stale.is_stale());
        assert_eq!(stale.value().expose_secret(), b"good");
        // Within retry_after the store is not asked again.
        let calls = store.gets.load(Ordering::SeqCst);
        tolerant.resolve_str("vault-kv+http://h1/a").await.unwrap();
        assert_eq!(store.gets.load(Ordering::SeqCst), calls);
        let s = tolerant.stats();
        assert_eq!((s.errors, s.stale), (1, 2));
        // No staleness allowed: the error, and the old value is gone.
        let e = strict
            .resolve_str("vault-kv+http://h1/a")
            .await
            .unwrap_err();
        assert_eq!(e.store_kind(), Some(StoreErrorKind::Unavailable), "{e}");
        assert_eq!(strict.stats().entries, 0);
        // A secret never fetched has nothing to fall back on.
        let e = tolerant
            .resolve_str("vault-kv+http://h1/b")
            .await
            .unwrap_err();
        assert!(e.store_kind().is_some(), "{e}");
        store.failing.store(false, Ordering::SeqCst);
        let again = strict.resolve_str("vault-kv+http://h1/a").await.unwrap();
        assert!(!again.is_stale());
    });
}

#[test]
fn each_reference_is_served_by_its_own_store_instance() {
    let a = MemoryStore::new("h1", &[("db", b"from-h1")]);
    let b = MemoryStore::new("h2", &[("db", b"from-h2")]);
    let resolver = Resolver::with_stores(vec![a.clone(), b.clone()], forever());
    rt().block_on(async {
        let one = resolver.resolve_str("vault-kv+http://h1/db").await.unwrap();
        let two = resolver.resolve_str("vault-kv+http://h2/db").await.unwrap();
        assert_eq!(one.value().expose_secret(), b"from-h1");
        assert_eq!(two.value().expose_secret(), b"from-h2");
        let e = resolver
            .resolve_str("vault-kv+http://h3/db")
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidReference { .. }), "{e}");
    });
    assert_eq!(a.gets.load(Ordering::SeqCst), 1);
    assert_eq!(b.gets.load(Ordering::SeqCst), 1);
}

#[test]
fn a_put_through_the_resolver_replaces_the_cached_value_and_refuses_selectors() {
    let store = MemoryStore::new("h1", &[("a", b"old")]);
    let resolver = Resolver::with_stores(vec![store], forever());
    rt().block_on(async {
        resolver.resolve_str("vault-kv+http://h1/a").await.unwrap();
        let v = resolver
            .put(&r("vault-kv+http://h1/a"), b"new")
            .await
            .unwrap();
        assert_eq!(v.id, "2");
        let got = resolver.resolve_str("vault-kv+http://h1/a").await.unwrap();
        assert_eq!(got.value().expose_secret(), b"new");
        for bad in ["vault-kv+http://h1/a#f", "vault-kv+http://h1/a?version=1"] {
            let e = resolver.put(&r(bad), b"x").await.unwrap_err();
            assert!(matches!(e, Error::InvalidReference { .. }), "{e}");
        }
        let huge = vec![b'x'; MAX_SECRET_LEN + 1];
        let e = resolver
            .put(&r("vault-kv+http://h1/a"), &huge)
            .await
            .unwrap_err();
        assert_eq!(e.store_kind(), Some(StoreErrorKind::TooLarge), "{e}");
    });
}

#[test]
fn a_value_over_the_limit_is_refused_whole() {
    let huge = vec![b'x'; MAX_SECRET_LEN + 1];
    let store = MemoryStore::new("h1", &[("big", &huge)]);
    let resolver = Resolver::with_stores(vec![store], forever());
    let e = rt()
        .block_on(resolver.resolve_str("vault-kv+http://h1/big"))
        .unwrap_err();
    assert_eq!(e.store_kind(), Some(StoreErrorKind::TooLarge), "{e}");
    assert!(e.to_string().contains("65536"), "{e}");
}

#[test]
fn env_references_read_this_process_environment() {
    // The workspace forbids `unsafe`, so no test sets a variable: PATH is always there.
    let path = std::env::var("PATH").unwrap();
    let resolver = Resolver::new(LocalStores);
    rt().block_on(async {
        let got = resolver.resolve_str("env://PATH").await.unwrap();
        assert_eq!(got.value().expose_secret(), path.as_bytes());
        let e = resolver.resolve_str("env://PATH#field").await.unwrap_err();
        assert!(!e.to_string().contains(&path), "{e}");
        let e = resolver
            .resolve_str("env://KMSEAL_TEST_STORE_UNSET")
            .await
            .unwrap_err();
        assert_eq!(e.store_kind(), Some(StoreErrorKind::NotFound), "{e}");
        assert!(e.to_string().contains("KMSEAL_TEST_STORE_UNSET"), "{e}");
        let e = EnvStore.put(&r("env://X"), b"v").await.unwrap_err();
        assert_eq!(e.store_kind(), Some(StoreErrorKind::Unsupported), "{e}");
        let e = resolver.resolve_str("aws-sm://prod/db").await.unwrap_err();
        assert!(e.to_string().contains("kmseal-keys"), "{e}");
    });
}

#[test]
fn file_references_pass_the_key_file_checks() {
    let dir = std::env::temp_dir().join(format!("kmseal-store-file-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let file = dir.join("db.json");
    std::fs::write(&file, br#"{"password": "file-pw"}"#).unwrap();
    let reference = |p: &std::path::Path, field: &str| r(&format!("file://{}{field}", p.display()));
    let rt = rt();
    let get = |reference: SecretRef| rt.block_on(FileStore.get(&reference));

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = get(reference(&file, "")).unwrap_err();
    assert_eq!(e.store_kind(), Some(StoreErrorKind::AccessDenied), "{e}");
    assert!(e.to_string().contains("chmod 600"), "{e}");

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let secret = get(reference(&file, "")).unwrap();
    assert_eq!(
        reference(&file, "#password")
            .select(&secret)
            .unwrap()
            .expose_secret(),
        b"file-pw"
    );

    let link = dir.join("link");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let e = get(reference(&link, "")).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");

    let e = get(reference(&dir.join("missing"), "")).unwrap_err();
    assert_eq!(e.store_kind(), Some(StoreErrorKind::NotFound), "{e}");

    let big = dir.join("big");
    std::fs::write(&big, vec![b'x'; MAX_SECRET_LEN + 1]).unwrap();
    std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = get(reference(&big, "")).unwrap_err();
    assert_eq!(e.store_kind(), Some(StoreErrorKind::TooLarge), "{e}");

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = get(reference(&file, "")).unwrap_err();
    assert!(e.to_string().contains("chmod go-w"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_staleness_bound_holds_when_the_failing_call_is_slow_and_retry_after_counts_from_its_end() {
    let store = MemoryStore::new("h1", &[("a", b"good")]);
    let bounded = Resolver::with_stores(
        vec![store.clone()],
        ResolverSettings::default()
            .ttl(Duration::ZERO)
            .max_stale(Duration::from_millis(200))
            .retry_after(Duration::from_secs(3600)),
    );
    let patient = Resolver::with_stores(
        vec![store.clone()],
        ResolverSettings::default()
            .ttl(Duration::ZERO)
            .max_stale(Duration::from_secs(3600))
            .retry_after(Duration::from_millis(200)),
    );
    rt().block_on(async {
        bounded.resolve_str("vault-kv+http://h1/a").await.unwrap();
        patient.resolve_str("vault-kv+http://h1/a").await.unwrap();
        store.failing.store(true, Ordering::SeqCst);
        store.slow_ms.store(300, Ordering::SeqCst);
        // The failing call takes 300 ms: the value is then older than TTL + 200 ms.
        let e = bounded
            .resolve_str("vault-kv+http://h1/a")
            .await
            .unwrap_err();
        assert_eq!(e.store_kind(), Some(StoreErrorKind::Unavailable), "{e}");
        // retry_after (200 ms) counts from the end of the failed call, not its start.
        assert!(
            patient
                .resolve_str("vault-kv+http://h1/a")
                .await
                .unwrap()
                .is_stale()
        );
        let calls = store.gets.load(Ordering::SeqCst);
        assert!(
            patient
                .resolve_str("vault-kv+http://h1/a")
                .await
                .unwrap()
                .is_stale()
        );
        assert_eq!(
            store.gets.load(Ordering::SeqCst),
            calls,
            "no call within retry_after"
        );
    });
}

#[test]
fn access_denied_is_never_bridged_with_a_stale_value() {
    let store = MemoryStore::new("h1", &[("a", b"good")]);
    let resolver = Resolver::with_stores(
        vec![store.clone()],
        ResolverSettings::default()
            .ttl(Duration::ZERO)
            .max_stale(Duration::from_secs(3600)),
    );
    rt().block_on(async {
        resolver.resolve_str("vault-kv+http://h1/a").await.unwrap();
        store.failing.store(true, Ordering::SeqCst);
        store.denied.store(true, Ordering::SeqCst);
        let e = resolver
            .resolve_str("vault-kv+http://h1/a")
            .await
            .unwrap_err();
        assert_eq!(e.store_kind(), Some(StoreErrorKind::AccessDenied), "{e}");
        assert_eq!(resolver.stats().entries, 0, "the revoked value is wiped");
    });
}
