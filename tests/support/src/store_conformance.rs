//! The secret-store conformance suite: one set of checks every [`SecretStore`] must pass,
//! run by each store's integration tests against a real server or a faithful stand-in (the
//! store half of [`conformance`](crate::conformance)).
//!
//! The checks panic with a description on failure, like `assert!`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use kmseal::StoreErrorKind;
use kmseal::store::{MAX_SECRET_LEN, Resolver, ResolverSettings, SecretRef, SecretStore};

/// What the suite needs to know about the store under test.
pub struct StoreFixture {
    /// The store under test, allowed to read and write under the references `fresh` makes.
    pub store: Arc<dyn SecretStore>,
    /// A reference (no selectors) to a secret that does not exist yet, new on every call.
    pub fresh: Box<dyn Fn() -> SecretRef + Send + Sync>,
    /// A store of the same kind and endpoint whose credentials the server refuses.
    pub denied: Arc<dyn SecretStore>,
    /// How many reads of the secret `reference` names the server itself recorded (its audit
    /// log or request recording, never our counters).
    pub server_reads: Box<dyn Fn(&SecretRef) -> usize + Send + Sync>,
}

/// Runs every check.
pub async fn run(f: &StoreFixture) {
    fields_round_trip(f).await;
    versions_newest_first_and_older_ones_readable(f).await;
    the_previous_version_is_the_one_before_the_current(f).await;
    a_missing_secret_is_not_found(f).await;
    refused_credentials_are_access_denied(f).await;
    a_value_over_the_limit_is_refused(f).await;
    concurrent_resolutions_cost_one_read_per_secret(f, 10, 1000).await;
}

fn with(reference: &SecretRef, selectors: &str) -> SecretRef {
    format!("{reference}{selectors}").parse().unwrap()
}

/// A JSON object secret comes back field by field, escapes and non-ASCII intact; a missing
/// field is not found, and its error names the field, never a value.
pub async fn fields_round_trip(f: &StoreFixture) {
    let r = (f.fresh)();
    f.store
        .put(&r, br#"{"user": "app", "password": "p\"w \u00e9\n"}"#)
        .await
        .unwrap_or_else(|e| panic!("put {r}: {e}"));
    let secret = f
        .store
        .get(&r)
        .await
        .unwrap_or_else(|e| panic!("get {r}: {e}"));
    let pw = with(&r, "#password").select(&secret).unwrap();
    assert_eq!(pw.expose_secret(), "p\"w é\n".as_bytes());
    assert_eq!(
        with(&r, "#user").select(&secret).unwrap().expose_secret(),
        b"app"
    );
    let e = with(&r, "#token").select(&secret).unwrap_err();
    assert_eq!(e.store_kind(), Some(StoreErrorKind::NotFound), "{e}");
    assert!(
        e.to_string().contains("`token`") && !e.to_string().contains("p\\\"w"),
        "{e}"
    );
}

/// Two puts make two versions: listed newest first, the current one served by default, the
/// older one by `?version=ID`.
pub async fn versions_newest_first_and_older_ones_readable(f: &StoreFixture) {
    let r = (f.fresh)();
    let one = f.store.put(&r, br#"{"k": "one"}"#).await.unwrap();
    let two = f.store.put(&r, br#"{"k": "two"}"#).await.unwrap();
    assert_ne!(one.id, two.id, "each put is a new version");
    let versions = f
        .store
        .versions(&r)
        .await
        .unwrap_or_else(|e| panic!("versions {r}: {e}"));
    assert_eq!(
        versions.first().map(|v| &v.id),
        Some(&two.id),
        "{versions:?}"
    );
    assert!(versions.iter().any(|v| v.id == one.id), "{versions:?}");
    let current = f.store.get(&r).await.unwrap();
    assert_eq!(current.version.id, two.id);
    assert_eq!(
        with(&r, "#k").select(&current).unwrap().expose_secret(),
        b"two"
    );
    let old_ref = with(&r, &format!("?version={}#k", one.id));
    let old = f
        .store
        .get(&old_ref)
        .await
        .unwrap_or_else(|e| panic!("get {old_ref}: {e}"));
    assert_eq!(old.version.id, one.id);
    assert_eq!(old_ref.select(&old).unwrap().expose_secret(), b"one");
}

/// Graceful rotation: after three puts, [`Resolver::previous_version`] of the current
/// version is the second (`AWSPREVIOUS` on Secrets Manager, the prior version elsewhere), its
/// field applied, and the listing gives the current version's creation time (what a rotation
/// interval on a reference is judged by).
pub async fn the_previous_version_is_the_one_before_the_current(f: &StoreFixture) {
    let r = (f.fresh)();
    for v in ["one", "two", "three"] {
        f.store
            .put(&r, format!(r#"{{"k": "{v}"}}"#).as_bytes())
            .await
            .unwrap_or_else(|e| panic!("put {r}: {e}"));
    }
    let resolver = Resolver::with_stores(vec![f.store.clone()], ResolverSettings::default());
    let field = with(&r, "#k");
    let current = resolver.resolve(&field).await.unwrap();
    assert_eq!(current.value().expose_secret(), b"three");
    let (listed, before) = resolver
        .previous_version(&field, current.version())
        .await
        .unwrap_or_else(|e| panic!("previous of {field}: {e}"));
    let listed = listed.unwrap_or_else(|| panic!("{field}: the current version is not listed"));
    assert_eq!(listed.id, current.version().id);
    assert!(
        listed.created.is_some(),
        "{field}: no creation time listed: {listed:?}"
    );
    let before = before.unwrap_or_else(|| panic!("{field}: no previous version"));
    assert_eq!(before.value().expose_secret(), b"two");
    assert_ne!(before.version().id, current.version().id);
}

/// A secret that does not exist is [`StoreErrorKind::NotFound`], naming the reference.
pub async fn a_missing_secret_is_not_found(f: &StoreFixture) {
    let r = (f.fresh)();
    let e = f.store.get(&r).await.unwrap_err().for_reference(&r);
    assert_eq!(e.store_kind(), Some(StoreErrorKind::NotFound), "{e}");
    assert!(e.to_string().contains(&r.to_string()), "{e}");
}

/// Credentials the server refuses are [`StoreErrorKind::AccessDenied`] (not retried).
pub async fn refused_credentials_are_access_denied(f: &StoreFixture) {
    let r = (f.fresh)();
    f.store.put(&r, br#"{"k": "v"}"#).await.unwrap();
    let e = f.denied.get(&r).await.unwrap_err().for_reference(&r);
    assert_eq!(e.store_kind(), Some(StoreErrorKind::AccessDenied), "{e}");
}

/// A value over [`MAX_SECRET_LEN`] is refused with a clear limit, never stored cut.
pub async fn a_value_over_the_limit_is_refused(f: &StoreFixture) {
    let r = (f.fresh)();
    let mut big = b"{\"k\": \"".to_vec();
    big.resize(MAX_SECRET_LEN, b'x');
    big.extend_from_slice(b"\"}");
    let e = f.store.put(&r, &big).await.unwrap_err();
    assert_eq!(e.store_kind(), Some(StoreErrorKind::TooLarge), "{e}");
    assert!(e.to_string().contains(&MAX_SECRET_LEN.to_string()), "{e}");
}

/// `n` concurrent resolutions spread over `secrets` secrets make exactly one read of each
/// on the server (single flight and TTL), and every caller gets its own secret's value.
pub async fn concurrent_resolutions_cost_one_read_per_secret(
    f: &StoreFixture,
    secrets: usize,
    n: usize,
) {
    let refs: Vec<SecretRef> = (0..secrets).map(|_| (f.fresh)()).collect();
    for (i, r) in refs.iter().enumerate() {
        let value = format!(r#"{{"password": "pw-{i}"}}"#);
        f.store.put(r, value.as_bytes()).await.unwrap();
    }
    let resolver = Resolver::with_stores(
        vec![f.store.clone()],
        ResolverSettings::default().ttl(Duration::from_secs(3600)),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (resolver, r) = (resolver.clone(), with(&refs[i % secrets], "#password"));
        tasks.spawn(async move {
            let got = resolver
                .resolve(&r)
                .await
                .unwrap_or_else(|e| panic!("{r}: {e}"));
            assert_eq!(
                got.value().expose_secret(),
                format!("pw-{}", i % secrets).as_bytes()
            );
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    for r in &refs {
        assert_eq!((f.server_reads)(r), 1, "server reads of {r}");
    }
    assert_eq!(resolver.stats().fetches, secrets as u64);
}
