//! Audit finding 15: the Vault client never follows redirects. Before the fix, a 307 from
//! the server (or anything on the path to it) sent the request, `X-Vault-Token` and body
//! included, to whatever host the `Location` named. No OpenBao needed: two tiny local servers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kmseal::{DataKey, EncryptionContext, Kek, KeyUri, SecretString};
use kmseal_vault::{TokenSource, VaultKek};

/// A server answering every request with `status` and `Location: location`; counts requests
/// and how many carried an `X-Vault-Token` header.
fn server(status: &'static str, location: String) -> (u16, Arc<AtomicU32>, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (requests, tokens) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let (r, t) = (requests.clone(), tokens.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            r.fetch_add(1, Ordering::SeqCst);
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if h.to_ascii_lowercase().starts_with("x-vault-token:") {
                    t.fetch_add(1, Ordering::SeqCst);
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (port, requests, tokens)
}

#[tokio::test]
async fn redirects_are_never_followed_and_the_token_never_leaves() {
    let (evil, evil_requests, evil_tokens) = server("200 OK", String::new());
    for status in [
        "307 Temporary Redirect",
        "308 Permanent Redirect",
        "302 Found",
    ] {
        let (port, requests, _) = server(
            status,
            format!("http://127.0.0.1:{evil}/v1/transit/encrypt/k"),
        );
        let uri: KeyUri = format!("vault+http://127.0.0.1:{port}/transit/keys/k")
            .parse()
            .unwrap();
        let kek = VaultKek::builder(&uri)
            .unwrap()
            .token(TokenSource::Token(
                SecretString::copy_from_str("s.very-secret-token").unwrap(),
            ))
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let err = kek
            .wrap(&DataKey::generate().unwrap(), &EncryptionContext::new())
            .await
            .unwrap_err();
        assert!(requests.load(Ordering::SeqCst) >= 1, "{status}");
        assert!(!err.to_string().contains("very-secret"), "{err}");
        assert_eq!(
            evil_requests.load(Ordering::SeqCst),
            0,
            "{status}: redirect followed"
        );
        assert_eq!(
            evil_tokens.load(Ordering::SeqCst),
            0,
            "{status}: token re-sent"
        );
    }
}
