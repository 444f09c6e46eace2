//! The default Azure credential: a chain of `azure_identity` credentials tried in order, the
//! first that works remembered (azure_identity 1.0 ships the credentials but no chain).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::http::ClientOptions;
use azure_identity::{
    AzureCliCredential, AzureDeveloperCliCredential, ClientAssertionCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

/// One credential the chain can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Kubernetes workload identity (AKS): `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`,
    /// `AZURE_TENANT_ID`, as the AKS webhook injects them.
    WorkloadIdentity,
    /// A VM's, App Service's or Container App's managed identity (user-assigned when
    /// `AZURE_CLIENT_ID` is set).
    ManagedIdentity,
    /// `az login`.
    AzureCli,
    /// `azd auth login`.
    AzureDeveloperCli,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::WorkloadIdentity => "WorkloadIdentityCredential",
            Source::ManagedIdentity => "ManagedIdentityCredential",
            Source::AzureCli => "AzureCliCredential",
            Source::AzureDeveloperCli => "AzureDeveloperCliCredential",
        }
    }
}

/// Which sources to try, in order, given the environment (`var` looks a variable up).
///
/// `AZURE_TOKEN_CREDENTIALS` selects as in Microsoft's other SDKs: `prod` (workload identity,
/// then managed identity), `dev` (Azure CLI, then azd) or one credential's name. Unset: workload
/// identity when its variables are present, then managed identity, then the developer tools.
pub fn plan(var: impl Fn(&str) -> Option<String>) -> Result<Vec<Source>, String> {
    use Source::*;
    let workload = var("AZURE_FEDERATED_TOKEN_FILE").is_some();
    let selected = var("AZURE_TOKEN_CREDENTIALS")
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty());
    match selected {
        None => Ok(if workload {
            vec![
                WorkloadIdentity,
                ManagedIdentity,
                AzureCli,
                AzureDeveloperCli,
            ]
        } else {
            vec![ManagedIdentity, AzureCli, AzureDeveloperCli]
        }),
        Some(v) => match v.as_str() {
            "prod" => Ok(vec![WorkloadIdentity, ManagedIdentity]),
            "dev" => Ok(vec![AzureCli, AzureDeveloperCli]),
            "workloadidentitycredential" => Ok(vec![WorkloadIdentity]),
            "managedidentitycredential" => Ok(vec![ManagedIdentity]),
            "azureclicredential" => Ok(vec![AzureCli]),
            "azuredeveloperclicredential" => Ok(vec![AzureDeveloperCli]),
            other => Err(format!(
                "AZURE_TOKEN_CREDENTIALS={other} is not one of prod, dev, \
                 WorkloadIdentityCredential, ManagedIdentityCredential, AzureCliCredential, \
                 AzureDeveloperCliCredential"
            )),
        },
    }
}

/// A named credential, or why it could not be set up.
pub type NamedSource = (&'static str, Result<Arc<dyn TokenCredential>, String>);

/// Tries each credential in order; the first that returns a token is used from then on.
/// When all fail, the error names each one and why.
pub struct ChainCredential {
    sources: Vec<NamedSource>,
    chosen: OnceLock<usize>,
    /// Time limit for a source that is not the last (a managed-identity probe off Azure must
    /// not stall a developer's `az login` behind it).
    probe_timeout: Duration,
}

impl std::fmt::Debug for ChainCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.sources.iter().map(|(n, _)| *n).collect();
        f.debug_struct("ChainCredential")
            .field("sources", &names)
            .field("chosen", &self.chosen.get().map(|&i| names[i]))
            .finish()
    }
}

impl ChainCredential {
    /// The default chain for this process's environment; `client_options` (transport, extra
    /// roots) are used by the credentials that make HTTP requests.
    pub fn from_env(client_options: &ClientOptions) -> Result<ChainCredential, String> {
        let plan = plan(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))?;
        let sources = plan
            .into_iter()
            .map(|s| (s.name(), build(s, client_options)))
            .collect();
        Ok(ChainCredential::new(sources))
    }

    /// A chain over given credentials (named for error messages).
    pub fn new(sources: Vec<NamedSource>) -> ChainCredential {
        ChainCredential {
            sources,
            chosen: OnceLock::new(),
            probe_timeout: Duration::from_secs(3),
        }
    }
}

fn build(s: Source, client_options: &ClientOptions) -> Result<Arc<dyn TokenCredential>, String> {
    let r: azure_core::Result<Arc<dyn TokenCredential>> = match s {
        Source::WorkloadIdentity => {
            WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions {
                    client_options: client_options.clone(),
                },
                ..Default::default()
            }))
            .map(|c| c as Arc<dyn TokenCredential>)
        }
        Source::ManagedIdentity => {
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: std::env::var("AZURE_CLIENT_ID")
                    .ok()
                    .filter(|v| !v.is_empty())
                    .map(UserAssignedId::ClientId),
                client_options: client_options.clone(),
            }))
            .map(|c| c as Arc<dyn TokenCredential>)
        }
        Source::AzureCli => AzureCliCredential::new(None).map(|c| c as Arc<dyn TokenCredential>),
        Source::AzureDeveloperCli => {
            AzureDeveloperCliCredential::new(None).map(|c| c as Arc<dyn TokenCredential>)
        }
    };
    r.map_err(|e| e.to_string())
}

#[async_trait]
impl TokenCredential for ChainCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        if let Some(&i) = self.chosen.get()
            && let (_, Ok(c)) = &self.sources[i]
        {
            return c.get_token(scopes, options).await;
        }
        let mut failures = Vec::new();
        for (i, (name, source)) in self.sources.iter().enumerate() {
            let c = match source {
                Ok(c) => c,
                Err(e) => {
                    failures.push(format!("{name}: {e}"));
                    continue;
                }
            };
            let attempt = c.get_token(scopes, options.clone());
            let result = if i + 1 < self.sources.len() {
                match tokio::time::timeout(self.probe_timeout, attempt).await {
                    Ok(r) => r,
                    Err(_) => {
                        failures.push(format!("{name}: no answer in {:?}", self.probe_timeout));
                        continue;
                    }
                }
            } else {
                attempt.await
            };
            match result {
                Ok(token) => {
                    tracing::debug!(credential = name, "Azure credential selected");
                    let _ = self.chosen.set(i);
                    return Ok(token);
                }
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        Err(azure_core::Error::with_message(
            ErrorKind::Credential,
            format!("no Azure credential worked ({})", failures.join("; ")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::credentials::Secret;
    use azure_core::time::OffsetDateTime;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn plan_follows_the_environment() {
        use Source::*;
        assert_eq!(
            plan(env(&[])).unwrap(),
            vec![ManagedIdentity, AzureCli, AzureDeveloperCli]
        );
        assert_eq!(
            plan(env(&[("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token")])).unwrap()[0],
            WorkloadIdentity
        );
        assert_eq!(
            plan(env(&[("AZURE_TOKEN_CREDENTIALS", "prod")])).unwrap(),
            vec![WorkloadIdentity, ManagedIdentity]
        );
        assert_eq!(
            plan(env(&[("AZURE_TOKEN_CREDENTIALS", "AzureCliCredential")])).unwrap(),
            vec![AzureCli]
        );
        let err = plan(env(&[("AZURE_TOKEN_CREDENTIALS", "magic")])).unwrap_err();
        assert!(err.contains("magic") && err.contains("prod"), "{err}");
    }

    #[derive(Debug)]
    struct Fixed {
        ok: bool,
        calls: AtomicU32,
    }

    #[async_trait]
    impl TokenCredential for Fixed {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.ok {
                Ok(AccessToken::new(
                    Secret::new("tok"),
                    OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
                ))
            } else {
                Err(azure_core::Error::with_message(
                    ErrorKind::Credential,
                    "not here",
                ))
            }
        }
    }

    #[tokio::test]
    async fn chain_remembers_the_first_source_that_works_and_reports_every_failure() {
        let bad = Arc::new(Fixed {
            ok: false,
            calls: AtomicU32::new(0),
        });
        let good = Arc::new(Fixed {
            ok: true,
            calls: AtomicU32::new(0),
        });
        let chain = ChainCredential::new(vec![
            ("Broken", Err("missing AZURE_TENANT_ID".into())),
            ("Bad", Ok(bad.clone() as Arc<dyn TokenCredential>)),
            ("Good", Ok(good.clone() as Arc<dyn TokenCredential>)),
        ]);
        for _ in 0..3 {
            chain.get_token(&["s"], None).await.unwrap();
        }
        assert_eq!(
            bad.calls.load(Ordering::SeqCst),
            1,
            "tried once, then skipped"
        );
        assert_eq!(good.calls.load(Ordering::SeqCst), 3);
        assert!(format!("{chain:?}").contains("Some(\"Good\")"));

        let none = ChainCredential::new(vec![
            ("Broken", Err("missing AZURE_TENANT_ID".into())),
            ("Bad", Ok(bad as Arc<dyn TokenCredential>)),
        ]);
        let err = none.get_token(&["s"], None).await.unwrap_err().to_string();
        assert!(
            err.contains("Broken: missing AZURE_TENANT_ID") && err.contains("Bad: not here"),
            "{err}"
        );
    }
}
