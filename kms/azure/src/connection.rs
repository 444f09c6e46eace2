//! How every Key Vault client of this crate connects: the credential (the default chain unless
//! one is given), extra root certificates, a fixed address, per-attempt timeouts and retries.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use kmseal::{Error, KmsErrorKind};
use kmseal_kms_common::{on_runtime, retry};

use crate::{ChainCredential, PROVIDER, kms_error};

/// Connection settings shared by [`AzureBuilder`](crate::AzureBuilder) and
/// [`AzureSecretsBuilder`](crate::AzureSecretsBuilder).
pub(crate) struct Connection {
    pub(crate) credential: Option<Arc<dyn TokenCredential>>,
    pub(crate) extra_roots: Vec<Vec<u8>>,
    pub(crate) connect_to: Option<IpAddr>,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
}

impl Default for Connection {
    fn default() -> Connection {
        Connection {
            credential: None,
            extra_roots: Vec::new(),
            connect_to: None,
            timeout: Duration::from_secs(10),
            retries: 3,
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("connect_to", &self.connect_to)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

/// The setters of [`Connection`] for a builder with a `conn: Connection` field.
macro_rules! connection_setters {
    () => {
        /// Use this credential instead of the default chain ([`ChainCredential::from_env`]).
        ///
        /// [`ChainCredential::from_env`]: crate::ChainCredential::from_env
        pub fn credential(
            mut self,
            credential: std::sync::Arc<dyn azure_core::credentials::TokenCredential>,
        ) -> Self {
            self.conn.credential = Some(credential);
            self
        }

        /// Also trust this PEM root certificate (a TLS-inspecting proxy, a test server), for
        /// Key Vault and for the credentials' token requests.
        pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
            self.conn.extra_roots.push(pem.into());
            self
        }

        /// Connect to this address instead of resolving the vault's host name (a private
        /// endpoint without DNS, a test server). TLS still checks the vault's host name.
        pub fn connect_to(mut self, ip: std::net::IpAddr) -> Self {
            self.conn.connect_to = Some(ip);
            self
        }

        /// Time limit for one attempt, authentication challenge and token included (default
        /// 10 s).
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.conn.timeout = timeout;
            self
        }

        /// Retries after throttling (429), unavailability (5xx, connection failures) and
        /// timeouts, with exponential backoff from 100 ms (default 3).
        pub fn retries(mut self, retries: u32) -> Self {
            self.conn.retries = retries;
            self
        }
    };
}
pub(crate) use connection_setters;

pub(crate) fn setup_error(what: &str, e: &dyn std::fmt::Display) -> Error {
    kms_error(
        KmsErrorKind::Other,
        format!("cannot set up the Key Vault client ({what}): {e}"),
    )
}

impl Connection {
    /// The client options (our HTTP client, no SDK retries) and the credential for the vault
    /// at `host_name`.
    pub(crate) fn client_options(
        &self,
        host_name: &str,
    ) -> Result<(ClientOptions, Arc<dyn TokenCredential>), Error> {
        // No whole-request timeout here: each attempt (challenge and token included) runs
        // under one tokio timeout, so a hang is reported as a timeout.
        let mut http = reqwest::Client::builder().connect_timeout(self.timeout);
        for pem in &self.extra_roots {
            let cert = reqwest::Certificate::from_pem(pem).map_err(|e| setup_error("root", &e))?;
            http = http.tls_certs_merge([cert]);
        }
        if let Some(ip) = self.connect_to {
            http = http.resolve(host_name, std::net::SocketAddr::new(ip, 443));
        }
        let http = http.build().map_err(|e| setup_error("HTTP client", &e))?;
        let client_options = ClientOptions {
            retry: RetryOptions::none(),
            transport: Some(Transport::new(Arc::new(http))),
            ..Default::default()
        };
        let credential = match &self.credential {
            Some(c) => c.clone(),
            None => Arc::new(
                ChainCredential::from_env(&client_options)
                    .map_err(|e| kms_error(KmsErrorKind::AccessDenied, e))?,
            ),
        };
        Ok((client_options, credential))
    }
}

/// Runs `op` with retries on retryable kinds, each attempt within `timeout`. The whole loop
/// runs on a tokio runtime (the caller's or the shared one).
pub(crate) async fn with_retries<T, F, Fut>(
    retries: u32,
    timeout: Duration,
    op: F,
) -> Result<T, Error>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    on_runtime(PROVIDER, async move {
        retry(PROVIDER, retries, false, || {
            let attempt = op();
            async move {
                tokio::time::timeout(timeout, attempt)
                    .await
                    .unwrap_or_else(|_| {
                        Err(kms_error(
                            KmsErrorKind::Timeout,
                            format!("no answer from Key Vault in {timeout:?}"),
                        ))
                    })
            }
        })
        .await
    })
    .await
}
