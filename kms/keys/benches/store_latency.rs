//! Secret resolution latency against the local servers `scripts/bench-stores` starts (moto's
//! Secrets Manager, OpenBao KV v2): kmseal's resolver (cache hit; cache miss, TTL 0) next to
//! the same read made directly (the AWS SDK's `GetSecretValue`; a reqwest GET with a JSON
//! parse for Vault), interleaved round by round; medians over rounds, ratios within a round.
//! Prints a Markdown table (quoted in BENCHMARKS.md). Not a test: nothing is asserted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use kmseal::SecretString;
use kmseal::store::{Resolver, ResolverSettings, SecretRef, SecretStore};
use kmseal_aws::AwsSecretsStore;
use kmseal_vault::{TokenSource, VaultKvStore};

const ROUNDS: usize = 21;
const CALLS: usize = 40;
const HITS: usize = 20_000;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/bench-stores"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn time_async<F, Fut>(n: usize, mut f: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let t = Instant::now();
    for _ in 0..n {
        f().await;
    }
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let aws_endpoint = env("KMSEAL_TEST_AWS_ENDPOINT");
    let vault_addr = env("KMSEAL_TEST_VAULT_ADDR");
    let token = env("KMSEAL_TEST_VAULT_TOKEN");

    // The secrets: a JSON object of two fields in each store.
    let value = br#"{"user": "app", "password": "bench-password-0123456789abcdef"}"#;
    let sm_ref: SecretRef = format!("aws-sm://kmseal/bench-{}", std::process::id())
        .parse()
        .unwrap();
    let sm_store = AwsSecretsStore::builder(&sm_ref)
        .unwrap()
        .region("us-east-1")
        .endpoint_url(&aws_endpoint)
        .static_credentials("testing", "testing")
        .build()
        .await
        .unwrap();
    sm_store.put(&sm_ref, value).await.unwrap();
    let kv_ref: SecretRef = format!(
        "vault-kv+http://{vault_addr}/secret/bench/{}",
        std::process::id()
    )
    .parse()
    .unwrap();
    let kv_store = VaultKvStore::builder(&kv_ref)
        .unwrap()
        .token(TokenSource::Token(
            SecretString::copy_from_str(&token).unwrap(),
        ))
        .build()
        .unwrap();
    kv_store.put(&kv_ref, value).await.unwrap();
    let sm_store: Arc<dyn SecretStore> = Arc::new(sm_store);
    let kv_store: Arc<dyn SecretStore> = Arc::new(kv_store);
    let field = |r: &SecretRef| -> SecretRef { format!("{r}#password").parse().unwrap() };
    let (sm_field, kv_field) = (field(&sm_ref), field(&kv_ref));

    // The same reads made directly.
    let sdk_conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&aws_endpoint)
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "testing", "testing", None, None, "bench",
        ))
        .load()
        .await;
    let sdk = aws_sdk_secretsmanager::Client::new(&sdk_conf);
    let sm_name = sm_ref.body().to_owned();
    let http = reqwest::Client::new();
    let kv_url = format!(
        "http://{vault_addr}/v1/secret/data/{}",
        kv_ref.body().split_once("/secret/").unwrap().1
    );

    let uncached = ResolverSettings::default().ttl(Duration::ZERO);
    let sm_cold = Resolver::with_stores(vec![sm_store.clone()], uncached);
    let kv_cold = Resolver::with_stores(vec![kv_store.clone()], uncached);
    let cached = Resolver::with_stores(vec![kv_store.clone()], ResolverSettings::default());
    cached.resolve(&kv_field).await.unwrap();

    let mut rows: [Vec<f64>; 7] = Default::default();
    for _ in 0..ROUNDS {
        let raw_sm = time_async(CALLS, || async {
            let out = sdk
                .get_secret_value()
                .secret_id(&sm_name)
                .send()
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(out.secret_string().unwrap()).unwrap();
            std::hint::black_box(v["password"].as_str().unwrap().len());
        })
        .await;
        let ours_sm = time_async(CALLS, || async {
            let got = sm_cold.resolve(&sm_field).await.unwrap();
            std::hint::black_box(got.value().len());
        })
        .await;
        let raw_kv = time_async(CALLS, || async {
            let body = http
                .get(&kv_url)
                .header("X-Vault-Token", &token)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            std::hint::black_box(v["data"]["data"]["password"].as_str().unwrap().len());
        })
        .await;
        let ours_kv = time_async(CALLS, || async {
            let got = kv_cold.resolve(&kv_field).await.unwrap();
            std::hint::black_box(got.value().len());
        })
        .await;
        let hit = time_async(HITS, || async {
            let got = cached.resolve(&kv_field).await.unwrap();
            std::hint::black_box(got.value().len());
        })
        .await;
        rows[0].push(raw_sm);
        rows[1].push(ours_sm);
        rows[2].push(ours_sm / raw_sm);
        rows[3].push(raw_kv);
        rows[4].push(ours_kv);
        rows[5].push(ours_kv / raw_kv);
        rows[6].push(hit);
    }
    let m: Vec<f64> = rows.into_iter().map(median).collect();
    println!("| read (one secret, one JSON field) | direct | kmseal | kmseal / direct |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| Secrets Manager on moto, cache miss | {:.0} µs (AWS SDK) | {:.0} µs | {:.2} |",
        m[0], m[1], m[2]
    );
    println!(
        "| Vault KV v2 on OpenBao, cache miss | {:.0} µs (reqwest + serde_json) | {:.0} µs | {:.2} |",
        m[3], m[4], m[5]
    );
    println!("| cache hit (resolver, TTL 5 min) | | {:.2} µs | |", m[6]);
    println!();
    println!("{ROUNDS} rounds of {CALLS} calls each (cache hits: {HITS}); medians.");
}
