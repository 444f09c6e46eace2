//! The AWS SDK configuration both clients of this crate (KMS, Secrets Manager) load: the
//! default credential chain, a region, timeouts and retries.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_kms::config::{Credentials, Region};
use aws_smithy_runtime::client::retries::classifiers::HttpStatusCodeClassifier;

/// What a builder of this crate collects before loading the SDK configuration.
#[derive(Debug)]
pub(crate) struct Settings {
    /// The region (from an ARN); `None` takes the chain's (`AWS_REGION`, profile).
    pub(crate) region: Option<String>,
    pub(crate) endpoint_url: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) credentials: Option<Credentials>,
}

impl Settings {
    /// Defaults (10 s per attempt, 3 retries, the default chain) in `region`.
    pub(crate) fn new(region: Option<String>) -> Settings {
        Settings {
            region,
            endpoint_url: None,
            timeout: Duration::from_secs(10),
            retries: 3,
            credentials: None,
        }
    }

    /// Loads the configuration: credential chain (environment, profile, IRSA web identity,
    /// ECS/EKS container credentials, EC2 instance metadata), `AWS_ENDPOINT_URL(_SERVICE)`.
    pub(crate) async fn load(self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(self.retries + 1))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(self.timeout.min(Duration::from_secs(5)))
                    .operation_attempt_timeout(self.timeout)
                    .build(),
            );
        if let Some(region) = self.region {
            loader = loader.region(Region::new(region));
        }
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(creds) = self.credentials {
            loader = loader.credentials_provider(creds);
        }
        loader.load().await
    }
}

/// 429 is not a transient status for the SDK unless the body names a throttling error; a
/// proxy or load balancer answering 429 must be retried too (found by the fault-injection
/// proxy test).
pub(crate) fn retry_429_and_5xx() -> HttpStatusCodeClassifier {
    HttpStatusCodeClassifier::new_from_codes(vec![429, 500, 502, 503, 504])
}

/// Static credentials (tests, special setups).
pub(crate) fn static_credentials(access_key_id: &str, secret_access_key: &str) -> Credentials {
    Credentials::new(
        access_key_id,
        secret_access_key,
        None,
        None,
        "kmseal-static",
    )
}

/// The setters of [`Settings`] for a builder with an `sdk: Settings` field, so the KMS and the
/// Secrets Manager builders offer the same ones with the same docs.
macro_rules! sdk_setters {
    () => {
        /// An explicit endpoint (a VPC endpoint, FIPS endpoint, or a local test server). The
        /// default is the regional endpoint, or `AWS_ENDPOINT_URL(_SERVICE)` if set.
        pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
            self.sdk.endpoint_url = Some(url.into());
            self
        }

        /// Time limit for one attempt (default 10 s). The whole call, retries included, is
        /// bounded by `(retries + 1) × timeout` plus backoff.
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.sdk.timeout = timeout;
            self
        }

        /// Retries after throttling, 5xx and transport errors, with the SDK's standard
        /// exponential backoff and jitter (default 3).
        pub fn retries(mut self, retries: u32) -> Self {
            self.sdk.retries = retries;
            self
        }

        /// Static credentials instead of the default chain (tests, special setups).
        pub fn static_credentials(mut self, access_key_id: &str, secret_access_key: &str) -> Self {
            self.sdk.credentials = Some($crate::sdk::static_credentials(
                access_key_id,
                secret_access_key,
            ));
            self
        }
    };
}
pub(crate) use sdk_setters;
