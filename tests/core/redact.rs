//! The redactor under a real `tracing-subscriber` fmt layer: a secret in a log event (as a
//! field, inside a message, base64-encoded) never reaches the log.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use kmseal::redact::Redactor;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_tracing_subscriber_writes_logs_through_the_redactor() {
    let secret = "ghp_0123456789abcdefGHIJKLMNOPQRSTUVWXYZ";
    let mut r = Redactor::new();
    r.add("github.token", secret.as_bytes()).unwrap();
    let r = Arc::new(r);
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || r.writer(sink.clone()))
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(token = secret, "calling the API");
        tracing::warn!("retrying with {secret} after a 401");
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode(secret);
        tracing::debug!(header = %basic, "sent");
        tracing::error!(user = "app", "no secret in this one");
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(!log.contains("ghp_") && !log.contains("Z2hwX"), "{log}");
    assert_eq!(log.matches("[REDACTED:github.token]").count(), 3, "{log}");
    assert!(log.contains("no secret in this one"), "{log}");
}
