//! What a Vault KV read leaves in process memory once dropped. Every buffer of ours (the
//! response body, the value, the cached secret, the selected field) is locked memory that is
//! wiped; the HTTP stack below (hyper's read buffer) is not ours, and SECURITY.md counts it.
//! This test proves the first and measures the second. One test per process; needs the
//! OpenBao server `scripts/test` starts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

#[path = "../../../tests/common/scan.rs"]
mod scan;

use std::time::Duration;

use kmseal::SecretBytes;
use kmseal::store::{Resolver, ResolverSettings, SecretRef};
use kmseal_vault::{TokenSource, VaultKvStore};
use scan::{MASK, scan};

fn masked_hex() -> Vec<u8> {
    let raw = SecretBytes::random(48).unwrap();
    raw.expose_secret()
        .iter()
        .flat_map(|b| [b >> 4, b & 15])
        .map(|n| if n < 10 { b'0' + n } else { b'a' + n - 10 } ^ MASK)
        .collect()
}

fn tail(masked: &[u8]) -> usize {
    scan(&masked[masked.len() - 64..])
}

#[test]
fn a_vault_kv_read_leaves_only_the_http_layers_copies() {
    let addr = std::env::var("KMSEAL_TEST_VAULT_ADDR")
        .expect("KMSEAL_TEST_VAULT_ADDR is not set: run scripts/test, which starts OpenBao");
    let token = std::env::var("KMSEAL_TEST_VAULT_TOKEN").unwrap_or_else(|_| "root".into());
    let masked = masked_hex();
    let name = format!("scan/{}", std::process::id());
    // Written by another process (python), so no copy of the value is ever made here.
    let hexmask: String = masked.iter().map(|b| format!("{b:02x}")).collect();
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            "import json,os,sys,urllib.request\n\
             v=bytes(b^0xA5 for b in bytes.fromhex(os.environ['M'])).decode()\n\
             r=urllib.request.Request(os.environ['U'],data=json.dumps({'data':{'password':v}}).encode(),headers={'X-Vault-Token':os.environ['T']},method='POST')\n\
             urllib.request.urlopen(r).read()",
        ])
        .env("M", &hexmask)
        .env("U", format!("http://{addr}/v1/secret/data/{name}"))
        .env("T", &token)
        .status()
        .unwrap();
    assert!(status.success(), "writing the secret with python3");

    let reference: SecretRef = format!("vault-kv+http://{addr}/secret/{name}#password")
        .parse()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (live, after) = rt.block_on(async {
        let live;
        {
            let store = VaultKvStore::builder(&reference)
                .unwrap()
                .token(TokenSource::Token(
                    kmseal::SecretString::copy_from_str(&token).unwrap(),
                ))
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let resolver = Resolver::with_stores(
                vec![std::sync::Arc::new(store)],
                ResolverSettings::default(),
            );
            let got = resolver.resolve(&reference).await.unwrap();
            assert_eq!(got.value().len(), masked.len());
            live = tail(&masked);
        }
        (live, tail(&masked))
    });
    eprintln!("copies of the value: {live} while held, {after} after drop");
    // Ours while held: the cached field map and the selected field (the response body was
    // wiped when the call returned). Whatever else was found belongs to the HTTP stack and
    // stays after the drop; ours must all be gone.
    assert!(live >= 2, "the scanner must see the live values ({live})");
    assert_eq!(after, live - 2, "our copies must be wiped on drop");
}
