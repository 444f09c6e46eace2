//! HTTP to Vault / OpenBao: one request with timeouts, retries with backoff, and error mapping.
//! Request and response bodies that carry key material live in locked memory on our side.

use kmseal::{Error, KmsErrorKind, SecretBytes};

const PROVIDER: &str = "vault";

pub(crate) fn kms_error(kind: KmsErrorKind, message: impl Into<String>) -> Error {
    kmseal_kms_common::kms_error(PROVIDER, kind, message)
}

pub(crate) fn bad_response(what: &str) -> Error {
    kms_error(
        KmsErrorKind::Other,
        format!("unexpected response from Vault: {what}"),
    )
}

#[derive(Clone)]
pub(crate) struct Http {
    pub(crate) client: reqwest::Client,
    pub(crate) addr: String,
    pub(crate) namespace: Option<String>,
    pub(crate) retries: u32,
}

/// Vault's error body: `{"errors": ["..."]}`.
#[derive(serde::Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<String>,
}

impl Http {
    /// Sends `method path` with an optional JSON body (kept in locked memory) and returns the
    /// response body in locked memory. Retries throttling, 5xx and transport failures.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &[u8],
        body: Option<&SecretBytes>,
    ) -> Result<SecretBytes, Error> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return self.call_here(method, path, token, body).await;
        }
        let (this, path) = (self.clone(), path.to_owned());
        let token = SecretBytes::from_slice(token)?;
        let body = body.map(SecretBytes::try_clone).transpose()?;
        kmseal_kms_common::on_runtime(PROVIDER, async move {
            this.call_here(method, &path, token.expose_secret(), body.as_ref())
                .await
        })
        .await
    }

    async fn call_here(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &[u8],
        body: Option<&SecretBytes>,
    ) -> Result<SecretBytes, Error> {
        let url = format!("{}/v1/{}", self.addr, path);
        kmseal_kms_common::retry(PROVIDER, self.retries, false, || {
            self.once(method.clone(), &url, token, body)
        })
        .await
    }

    async fn once(
        &self,
        method: reqwest::Method,
        url: &str,
        token: &[u8],
        body: Option<&SecretBytes>,
    ) -> Result<SecretBytes, Error> {
        let token = reqwest::header::HeaderValue::from_bytes(token).map_err(|_| {
            kms_error(
                KmsErrorKind::AccessDenied,
                "the Vault token is not a valid header value",
            )
        })?;
        let mut token = token;
        token.set_sensitive(true);
        let mut req = self
            .client
            .request(method, url)
            .header("X-Vault-Token", token);
        if let Some(ns) = &self.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(kmseal_kms_common::locked_bytes(body.try_clone()?));
        }
        let mut resp = req.send().await.map_err(transport_error)?;
        let status = resp.status();
        let mut out = SecretBytes::with_capacity(1024)?;
        while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
            if out.len() + chunk.len() > 1 << 20 {
                return Err(kms_error(
                    KmsErrorKind::Other,
                    "Vault response larger than 1 MiB",
                ));
            }
            out.extend_from_slice(&chunk)?;
        }
        if status.is_success() {
            return Ok(out);
        }
        let messages = serde_json::from_slice::<ErrorBody>(out.expose_secret())
            .map(|b| b.errors.join("; "))
            .unwrap_or_default();
        Err(status_error(status.as_u16(), &messages))
    }
}

fn transport_error(e: reqwest::Error) -> Error {
    let kind = if e.is_timeout() {
        KmsErrorKind::Timeout
    } else {
        KmsErrorKind::Unavailable
    };
    Error::Kms {
        provider: PROVIDER,
        kind,
        message: format!("request to Vault failed: {}", e.without_url()),
        source: None,
    }
}

/// Maps a Vault HTTP status and its error strings to an error kind.
pub(crate) fn status_error(status: u16, messages: &str) -> Error {
    let m = messages.to_ascii_lowercase();
    let kind = match status {
        400 if m.contains("encryption key not found") => KmsErrorKind::NotFound,
        400 if m.contains("disallowed by policy") || m.contains("too old") => {
            KmsErrorKind::Disabled
        }
        400 if m.contains("authentication failed")
            || m.contains("invalid ciphertext")
            || m.contains("unable to decrypt")
            || m.contains("invalid input")
            || m.contains("illegal base64") =>
        {
            KmsErrorKind::InvalidCiphertext
        }
        status => kmseal_kms_common::status_kind(status),
    };
    let detail: String = messages.chars().take(300).collect();
    kms_error(kind, format!("HTTP {status}: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(e: Error) -> KmsErrorKind {
        match e {
            Error::Kms { kind, .. } => kind,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn status_mapping() {
        assert_eq!(
            kind(status_error(403, "permission denied")),
            KmsErrorKind::AccessDenied
        );
        assert_eq!(kind(status_error(404, "")), KmsErrorKind::NotFound);
        assert_eq!(kind(status_error(429, "")), KmsErrorKind::Throttled);
        assert_eq!(
            kind(status_error(503, "Vault is sealed")),
            KmsErrorKind::Unavailable
        );
        assert_eq!(
            kind(status_error(400, "cipher: message authentication failed")),
            KmsErrorKind::InvalidCiphertext
        );
        assert_eq!(
            kind(status_error(400, "encryption key not found")),
            KmsErrorKind::NotFound
        );
        assert_eq!(
            kind(status_error(
                400,
                "ciphertext or signature version is disallowed by policy (too old)"
            )),
            KmsErrorKind::Disabled
        );
    }
}
