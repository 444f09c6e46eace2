//! A fault-injecting TCP proxy for tests: put it between a client and a
//! KMS (moto, OpenBao, the stand-ins) and make the next requests fail in chosen ways.
//!
//! A "request" is the first bytes a client sends after the proxy last relayed a response on
//! that connection, so faults apply per request even on kept-alive connections. Status faults
//! write a plain HTTP response and need a plain-HTTP upstream; the others work for TLS too.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Relay as is.
    None,
    /// Wait this long, then relay.
    Delay(Duration),
    /// Relay the request, then send only part of the response and close the connection.
    DropMidResponse,
    /// Answer with this HTTP status (no body worth reading) and close; the KMS never sees it.
    Status(u16),
    /// Swallow the request and never answer (the connection stays open).
    Hang,
}

#[derive(Clone)]
pub struct FaultProxy {
    addr: SocketAddr,
    fault: Arc<Mutex<(Fault, u32)>>,
    /// Requests that met a fault.
    pub faulted: Arc<AtomicU32>,
    /// Requests relayed to the upstream.
    pub relayed: Arc<AtomicU32>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 forwarding to `upstream` (inside a tokio runtime).
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = FaultProxy {
            addr: listener.local_addr().unwrap(),
            fault: Arc::new(Mutex::new((Fault::None, 0))),
            faulted: Arc::default(),
            relayed: Arc::default(),
        };
        let p = proxy.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let p = p.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        p.relay(client, server).await;
                    }
                });
            }
        });
        proxy
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Applies `fault` to the next `times` requests (then relays normally).
    pub fn set(&self, fault: Fault, times: u32) {
        *self.fault.lock().unwrap() = (fault, times);
    }

    fn take(&self) -> Fault {
        let mut f = self.fault.lock().unwrap();
        if f.1 == 0 {
            return Fault::None;
        }
        f.1 -= 1;
        f.0
    }

    async fn relay(&self, client: TcpStream, server: TcpStream) {
        let (mut cr, cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let new_request = Arc::new(AtomicBool::new(true));
        let current = Arc::new(Mutex::new(Fault::None));
        let cw = Arc::new(tokio::sync::Mutex::new(cw));
        let up = {
            let (new_request, current, cw, this) = (
                new_request.clone(),
                current.clone(),
                cw.clone(),
                self.clone(),
            );
            async move {
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if new_request.swap(false, Ordering::SeqCst) {
                        let fault = this.take();
                        *current.lock().unwrap() = fault;
                        if fault != Fault::None {
                            this.faulted.fetch_add(1, Ordering::SeqCst);
                        }
                        match fault {
                            Fault::Delay(d) => tokio::time::sleep(d).await,
                            Fault::Status(code) => {
                                let body = format!("{{\"errors\":[\"injected {code}\"]}}");
                                let resp = format!(
                                    "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                    body.len()
                                );
                                let mut w = cw.lock().await;
                                let _ = w.write_all(resp.as_bytes()).await;
                                let _ = w.shutdown().await;
                                return;
                            }
                            Fault::Hang => {
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                                return;
                            }
                            Fault::DropMidResponse | Fault::None => {}
                        }
                        this.relayed.fetch_add(1, Ordering::SeqCst);
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = sw.shutdown().await;
            }
        };
        let down = async move {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = match sr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let fault = *current.lock().unwrap();
                let mut w = cw.lock().await;
                if fault == Fault::DropMidResponse {
                    let _ = w.write_all(&buf[..n / 2]).await;
                    let _ = w.shutdown().await;
                    return;
                }
                if w.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                new_request.store(true, Ordering::SeqCst);
            }
            let _ = cw.lock().await.shutdown().await;
        };
        tokio::select! {
            _ = up => {}
            _ = down => {}
        }
    }
}

/// Runs the fault scenarios through `proxy` against KEKs made by `make(timeout, retries)`
/// (pointed at the proxy). `statuses`: inject HTTP statuses (plain-HTTP upstreams only).
///
/// Checked: transient 500/503/429 and a dropped response are retried and succeed; a hang
/// fails within the configured bound; persistent failures give the right error kind; no
/// operation ever returns a key other than the one wrapped.
pub async fn run_scenarios<F, Fut>(proxy: &FaultProxy, make: F, statuses: bool)
where
    F: Fn(Duration, u32) -> Fut,
    Fut: std::future::Future<Output = std::sync::Arc<dyn kmseal::Kek>>,
{
    use kmseal::{DataKey, EncryptionContext, KmsErrorKind};
    let ctx = EncryptionContext::new().with("app", "faults").unwrap();
    let dek = DataKey::generate().unwrap();
    let kek = make(Duration::from_secs(5), 3).await;
    proxy.set(Fault::None, 0);
    let wrapped = kek.wrap(&dek, &ctx).await.expect("baseline wrap");
    assert!(kek.unwrap(&wrapped, &ctx).await.unwrap() == dek);

    let transient: Vec<Fault> = if statuses {
        vec![
            Fault::Status(500),
            Fault::Status(503),
            Fault::Status(429),
            Fault::DropMidResponse,
        ]
    } else {
        vec![Fault::DropMidResponse]
    };
    for fault in transient {
        for op in ["wrap", "unwrap"] {
            proxy.set(fault, 2);
            let before = proxy.faulted.load(Ordering::SeqCst);
            let ok = if op == "wrap" {
                let w = kek
                    .wrap(&dek, &ctx)
                    .await
                    .unwrap_or_else(|e| panic!("{fault:?} {op}: {e}"));
                kek.unwrap(&w, &ctx).await.unwrap() == dek
            } else {
                kek.unwrap(&wrapped, &ctx)
                    .await
                    .unwrap_or_else(|e| panic!("{fault:?} {op}: {e}"))
                    == dek
            };
            assert!(ok, "{fault:?} {op}: a different key came back");
            assert_eq!(
                proxy.faulted.load(Ordering::SeqCst) - before,
                2,
                "{fault:?} {op}: two faulted attempts, then success"
            );
        }
    }

    proxy.set(Fault::Delay(Duration::from_millis(300)), 1);
    assert!(
        kek.unwrap(&wrapped, &ctx).await.unwrap() == dek,
        "a slow answer"
    );

    // A hang fails within the bound: 2 attempts of 1 s, one backoff of at most 150 ms.
    let quick = make(Duration::from_secs(1), 1).await;
    proxy.set(Fault::Hang, 100);
    let start = std::time::Instant::now();
    let err = quick
        .unwrap(&wrapped, &ctx)
        .await
        .expect_err("a hanging KMS");
    let took = start.elapsed();
    assert!(
        matches!(
            err.kms_kind(),
            Some(KmsErrorKind::Timeout | KmsErrorKind::Unavailable)
        ),
        "hang: {err}"
    );
    assert!(
        took < Duration::from_secs(4),
        "hang: gave up after {took:?}"
    );

    // Persistent failures: the right kind, never a key.
    let persistent: Vec<(Fault, KmsErrorKind)> = if statuses {
        vec![
            (Fault::Status(503), KmsErrorKind::Unavailable),
            (Fault::Status(429), KmsErrorKind::Throttled),
            (Fault::DropMidResponse, KmsErrorKind::Unavailable),
        ]
    } else {
        vec![(Fault::DropMidResponse, KmsErrorKind::Unavailable)]
    };
    let few = make(Duration::from_secs(5), 1).await;
    for (fault, kind) in persistent {
        proxy.set(fault, 100);
        let err = few
            .unwrap(&wrapped, &ctx)
            .await
            .expect_err("persistent failure");
        assert_eq!(err.kms_kind(), Some(kind), "{fault:?}: {err}");
    }
    proxy.set(Fault::None, 0);
    assert!(
        kek.unwrap(&wrapped, &ctx).await.unwrap() == dek,
        "recovered"
    );
}

/// Runs the fault scenarios through `proxy` against secret stores made by
/// `make(timeout, retries)` (pointed at the proxy), reading `reference` (no selectors; the
/// secret is written first through a clean proxy). `statuses`: inject HTTP statuses
/// (plain-HTTP upstreams only).
///
/// Checked: transient 500/503/429 and a dropped response are retried and give the stored
/// value; a hang fails within the configured bound; persistent failures give the right error
/// kind; a failure never gives a value other than the one stored.
pub async fn run_store_scenarios<F, Fut>(
    proxy: &FaultProxy,
    make: F,
    reference: &kmseal::store::SecretRef,
    statuses: bool,
) where
    F: Fn(Duration, u32) -> Fut,
    Fut: std::future::Future<Output = std::sync::Arc<dyn kmseal::store::SecretStore>>,
{
    use kmseal::StoreErrorKind;
    let value = br#"{"password": "fault-scenario-value"}"#;
    let store = make(Duration::from_secs(5), 3).await;
    proxy.set(Fault::None, 0);
    store.put(reference, value).await.expect("baseline put");
    // Stores may re-serialize a JSON secret (Vault does): compare the field.
    let field: kmseal::store::SecretRef = format!("{reference}#password").parse().unwrap();
    let value = b"fault-scenario-value".as_slice();
    let read = |s: std::sync::Arc<dyn kmseal::store::SecretStore>| {
        let field = field.clone();
        async move {
            let got = s.get(reference).await?;
            Ok::<_, kmseal::Error>(field.select(&got)?.expose_secret().to_vec())
        }
    };
    assert_eq!(read(store.clone()).await.expect("baseline get"), value);

    let transient: Vec<Fault> = if statuses {
        vec![
            Fault::Status(500),
            Fault::Status(503),
            Fault::Status(429),
            Fault::DropMidResponse,
        ]
    } else {
        vec![Fault::DropMidResponse]
    };
    for fault in transient {
        proxy.set(fault, 2);
        let before = proxy.faulted.load(Ordering::SeqCst);
        let got = read(store.clone())
            .await
            .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!(got, value, "{fault:?}: another value came back");
        assert_eq!(
            proxy.faulted.load(Ordering::SeqCst) - before,
            2,
            "{fault:?}: two faulted attempts, then success"
        );
    }
    proxy.set(Fault::Delay(Duration::from_millis(300)), 1);
    assert_eq!(read(store.clone()).await.expect("a slow answer"), value);

    // A hang fails within the bound: 2 attempts of 1 s, one backoff.
    let quick = make(Duration::from_secs(1), 1).await;
    proxy.set(Fault::Hang, 100);
    let start = std::time::Instant::now();
    let err = read(quick).await.expect_err("a hanging store");
    let took = start.elapsed();
    assert!(
        matches!(
            err.store_kind(),
            Some(StoreErrorKind::Timeout | StoreErrorKind::Unavailable)
        ),
        "hang: {err}"
    );
    assert!(
        took < Duration::from_secs(4),
        "hang: gave up after {took:?}"
    );

    let persistent: Vec<(Fault, StoreErrorKind)> = if statuses {
        vec![
            (Fault::Status(503), StoreErrorKind::Unavailable),
            (Fault::Status(429), StoreErrorKind::Throttled),
            (Fault::DropMidResponse, StoreErrorKind::Unavailable),
        ]
    } else {
        vec![(Fault::DropMidResponse, StoreErrorKind::Unavailable)]
    };
    let few = make(Duration::from_secs(5), 1).await;
    // The store learns what it needs (a Vault mount's version) before faults start.
    proxy.set(Fault::None, 0);
    read(few.clone()).await.expect("warm-up");
    for (fault, kind) in persistent {
        proxy.set(fault, 100);
        let err = read(few.clone()).await.expect_err("persistent failure");
        assert_eq!(err.store_kind(), Some(kind), "{fault:?}: {err}");
    }
    proxy.set(Fault::None, 0);
    assert_eq!(read(store).await.expect("recovered"), value);
}
