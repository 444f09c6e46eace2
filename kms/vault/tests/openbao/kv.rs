//! Vault KV (v2 at `secret/`, v1 at `kv1/`, both set up by `scripts/test`) as a secret store,
//! against the same OpenBao server.

use std::sync::Arc;
use std::time::Duration;

use kmseal::store::{MAX_SECRET_LEN, Resolver, ResolverSettings, SecretRef, SecretStore};
use kmseal::{Error, SecretString, StoreErrorKind};
use kmseal_test_support::store_conformance::{self, StoreFixture};
use kmseal_vault::{TokenSource, VaultKvStore};
use serde_json::json;

use super::{admin, audited, server, unique};

fn reference(path: &str) -> SecretRef {
    format!("vault-kv+http://{}/{path}", server().0)
        .parse()
        .unwrap()
}

fn store_with_token(token: &str) -> Arc<dyn SecretStore> {
    Arc::new(
        VaultKvStore::builder(&reference("secret/x"))
            .unwrap()
            .token(TokenSource::Token(
                SecretString::copy_from_str(token).unwrap(),
            ))
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
    )
}

fn store() -> Arc<dyn SecretStore> {
    store_with_token(&server().1)
}

fn resolver(store: Arc<dyn SecretStore>) -> Resolver {
    Resolver::with_stores(
        vec![store],
        ResolverSettings::default().ttl(Duration::from_secs(3600)),
    )
}

async fn write_v2(path: &str, data: serde_json::Value) {
    let (status, body) = admin(
        reqwest::Method::POST,
        &format!("secret/data/{path}"),
        json!({ "data": data }),
    )
    .await;
    assert!(status < 300, "writing secret/{path}: {status} {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kv2_secret_resolves_whole_and_by_field() {
    let name = unique("app/db");
    write_v2(
        &name,
        json!({"user": "app", "password": "p@ss \"quoted\" é"}),
    )
    .await;
    let r = resolver(store());
    let pw = r
        .resolve(&reference(&format!("secret/{name}#password")))
        .await
        .unwrap();
    assert_eq!(pw.value().expose_secret(), "p@ss \"quoted\" é".as_bytes());
    assert_eq!(pw.version().id, "1");
    assert_eq!(pw.version().stages, ["current"]);
    assert!(pw.version().created.is_some());
    let whole = r
        .resolve(&reference(&format!("secret/{name}")))
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(whole.value().expose_secret()).unwrap();
    assert_eq!(v["user"], "app");
    let e = r
        .resolve(&reference(&format!("secret/{name}#token")))
        .await
        .unwrap_err();
    assert_eq!(e.store_kind(), Some(StoreErrorKind::NotFound), "{e}");
    assert_eq!(r.stats().fetches, 1, "one read for every field");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv2_versions_put_list_select_and_deleted_versions() {
    let name = unique("app/jwt");
    let s = store();
    let whole = reference(&format!("secret/{name}"));
    for n in 1..=3 {
        let v = s
            .put(&whole, format!(r#"{{"secret": "v{n}"}}"#).as_bytes())
            .await
            .unwrap();
        assert_eq!(v.id, n.to_string());
    }
    let versions = s.versions(&whole).await.unwrap();
    let ids: Vec<&str> = versions.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["3", "2", "1"]);
    assert_eq!(versions[0].stages, ["current"]);
    assert!(versions[1].stages.is_empty());
    let old = s
        .get(&reference(&format!("secret/{name}?version=1#secret")))
        .await
        .unwrap();
    assert_eq!(old.version.id, "1");
    let r: SecretRef = reference(&format!("secret/{name}?version=1#secret"));
    assert_eq!(r.select(&old).unwrap().expose_secret(), b"v1");

    let (status, _) = admin(
        reqwest::Method::POST,
        &format!("secret/delete/{name}"),
        json!({"versions": [2]}),
    )
    .await;
    assert!(status < 300);
    let versions = s.versions(&whole).await.unwrap();
    assert!(versions[1].disabled && !versions[0].disabled && !versions[2].disabled);
    let e = s
        .get(&reference(&format!("secret/{name}?version=2")))
        .await
        .unwrap_err();
    assert_eq!(e.store_kind(), Some(StoreErrorKind::NotFound), "{e}");
    let e = s
        .get(&reference(&format!("secret/{name}?stage=AWSPREVIOUS")))
        .await
        .unwrap_err();
    assert_eq!(e.store_kind(), Some(StoreErrorKind::Unsupported), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kv1_mount_reads_and_writes_one_value_and_keeps_no_versions() {
    let name = unique("svc");
    let s = store();
    let whole = reference(&format!("kv1/{name}"));
    let v = s.put(&whole, br#"{"api_key": "k1"}"#).await.unwrap();
    assert_eq!(v.id, "");
    let got = s
        .get(&reference(&format!("kv1/{name}#api_key")))
        .await
        .unwrap();
    assert_eq!(
        reference(&format!("kv1/{name}#api_key"))
            .select(&got)
            .unwrap()
            .expose_secret(),
        b"k1"
    );
    for e in [
        s.versions(&whole).await.unwrap_err(),
        s.get(&reference(&format!("kv1/{name}?version=1")))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(e.store_kind(), Some(StoreErrorKind::Unsupported), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_secrets_wrong_mounts_and_values_that_are_not_field_maps_are_clear_errors() {
    let s = store();
    let e = s
        .get(&reference("secret/does/not/exist"))
        .await
        .unwrap_err();
    assert_eq!(e.store_kind(), Some(StoreErrorKind::NotFound), "{e}");
    assert!(e.to_string().contains("secret/does/not/exist"), "{e}");
    let e = s.get(&reference("transit/keys/x")).await.unwrap_err();
    assert!(matches!(e, Error::InvalidReference { .. }), "{e}");
    let e = s.get(&reference("nomount/x")).await.unwrap_err();
    assert!(e.store_kind().is_some(), "{e}");
    let e = s
        .put(&reference("secret/x"), b"hunter2-not-json")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::SecretShape(_)), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    // A value written by someone else over the limit is refused when read, not cut.
    let name = unique("big");
    write_v2(&name, json!({"blob": "x".repeat(MAX_SECRET_LEN)})).await;
    let e = s
        .get(&reference(&format!("secret/{name}")))
        .await
        .unwrap_err();
    assert_eq!(e.store_kind(), Some(StoreErrorKind::TooLarge), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_scoped_to_one_path_reads_it_and_is_denied_elsewhere() {
    let allowed = unique("team-a/db");
    let other = unique("team-b/db");
    write_v2(&allowed, json!({"password": "a"})).await;
    write_v2(&other, json!({"password": "b"})).await;
    let policy = unique("kv-reader");
    let (status, body) = admin(
        reqwest::Method::PUT,
        &format!("sys/policies/acl/{policy}"),
        json!({"policy": format!("path \"secret/data/{allowed}\" {{ capabilities = [\"read\"] }}")}),
    )
    .await;
    assert!(status < 300, "{status} {body}");
    let (status, body) = admin(
        reqwest::Method::POST,
        "auth/token/create",
        json!({"policies": [policy], "ttl": "10m"}),
    )
    .await;
    assert!(status < 300, "{status} {body}");
    let token = body["auth"]["client_token"].as_str().unwrap().to_owned();
    let s = store_with_token(&token);
    let got = s
        .get(&reference(&format!("secret/{allowed}")))
        .await
        .unwrap();
    assert!(got.value.expose_secret().starts_with(b"{"));
    let e = s
        .get(&reference(&format!("secret/{other}")))
        .await
        .unwrap_err();
    assert_eq!(e.store_kind(), Some(StoreErrorKind::AccessDenied), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite_on_openbao_kv2() {
    store_conformance::run(&StoreFixture {
        store: store(),
        fresh: Box::new(|| reference(&format!("secret/{}", unique("suite")))),
        denied: store_with_token("not-a-token"),
        // OpenBao's audit log counts the reads, not us.
        server_reads: Box::new(|r| {
            let path = r.body().split_once("/secret/").unwrap().1;
            audited(&format!("secret/data/{path}"), Some("read"))
        }),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_injected_by_a_proxy_are_retried_bounded_and_never_give_a_wrong_value() {
    use kmseal_test_support::fault_proxy::{FaultProxy, run_store_scenarios};
    let (addr, token) = server();
    let proxy = FaultProxy::start(addr.parse().unwrap()).await;
    let via: SecretRef = format!(
        "vault-kv+http://{}/secret/{}",
        proxy.addr(),
        unique("faults")
    )
    .parse()
    .unwrap();
    run_store_scenarios(
        &proxy,
        |timeout, retries| {
            let (via, token) = (via.clone(), token.clone());
            async move {
                Arc::new(
                    VaultKvStore::builder(&via)
                        .unwrap()
                        .token(TokenSource::Token(
                            SecretString::copy_from_str(&token).unwrap(),
                        ))
                        .timeout(timeout)
                        .retries(retries)
                        .build()
                        .unwrap(),
                ) as Arc<dyn SecretStore>
            }
        },
        &via,
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_auth_reads_the_one_secret_its_role_allows() {
    let allowed = unique("k8s/app");
    let other = unique("k8s/other");
    write_v2(&allowed, json!({"password": "from-k8s-auth"})).await;
    write_v2(&other, json!({"password": "not-yours"})).await;
    let policy = format!("path \"secret/data/{allowed}\" {{ capabilities = [\"read\"] }}\n");
    let (mount, dir, reviews) = super::kubernetes_auth(&policy).await;
    let store = Arc::new(
        VaultKvStore::builder(&reference("secret/x"))
            .unwrap()
            .token(TokenSource::Kubernetes {
                role: "app".into(),
                mount,
                jwt_path: dir.join("token"),
            })
            .build()
            .unwrap(),
    );
    let r = resolver(store);
    let got = r
        .resolve(&reference(&format!("secret/{allowed}#password")))
        .await
        .unwrap();
    assert_eq!(got.value().expose_secret(), b"from-k8s-auth");
    let e = r
        .resolve(&reference(&format!("secret/{other}#password")))
        .await
        .unwrap_err();
    assert_eq!(e.store_kind(), Some(StoreErrorKind::AccessDenied), "{e}");
    // One login for the allowed read; the denied one logs in once more (a refused token is
    // renewed once before giving up).
    assert_eq!(reviews.load(std::sync::atomic::Ordering::SeqCst), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}
