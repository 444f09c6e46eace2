//! Vault / OpenBao KV secrets (version 1 and 2) as a [`SecretStore`].

use std::collections::HashMap;

use async_trait::async_trait;
use kmseal::store::{
    MAX_SECRET_LEN, SecretRef, SecretStore, StoreKind, StoredSecret, VersionInfo, too_large,
};
use kmseal::{Error, SecretBytes, StoreErrorKind};
use kmseal_kms_common::time::parse_rfc3339;
use reqwest::Method;
use serde_json::value::RawValue;

use crate::client::bad_response;
use crate::session::{Session, Settings, TokenSource, connection_setters};

use crate::uri::VaultKvPath;

/// Settings for a [`VaultKvStore`].
#[derive(Debug)]
pub struct VaultKvBuilder {
    /// The reference the builder was made for (for errors).
    reference: String,
    address: String,
    plain_http: bool,
    conn: Settings,
}

impl VaultKvBuilder {
    connection_setters!();

    /// Builds the store (reads the token and CA file; no network I/O yet).
    ///
    /// With the token from the environment ([`TokenSource::Default`]) the address must be
    /// `VAULT_ADDR` (or `BAO_ADDR`): a reference may name any host, and can come from a
    /// document someone else writes, so the environment's token is sent only to the server
    /// the environment names for it. Any other address is refused here, before any request.
    /// A token given explicitly goes where the caller built the store for.
    pub fn build(self) -> Result<VaultKvStore, Error> {
        if matches!(self.conn.token, TokenSource::Default) {
            crate::session::check_default_token_address(&self.address).map_err(|reason| {
                Error::InvalidReference {
                    reference: self.reference.clone(),
                    reason,
                }
            })?;
        }
        Ok(VaultKvStore {
            session: self.conn.connect(self.address.clone(), self.plain_http)?,
            address: self.address,
            mounts: tokio::sync::Mutex::new(HashMap::new()),
        })
    }
}

/// KV secrets on one Vault / OpenBao server, with one token: `vault-kv://HOST[:PORT]/MOUNT/PATH`
/// (and `vault-kv+http://…`), KV version 1 or 2, told apart by asking the server about the
/// mount once (`sys/internal/ui/mounts/PATH`, which any token allowed on the path may read).
///
/// A secret's value is its field map as JSON (`{"password": "…"}`), in locked memory; a
/// reference's `#field` picks one field. On KV v2, `?version=N` reads an older version, `put`
/// writes a new one, and `versions` lists them (deleted and destroyed ones marked disabled);
/// KV v1 keeps one value and no versions.
///
/// ```no_run
/// # async fn demo() -> Result<(), kmseal::Error> {
/// use std::sync::Arc;
/// use kmseal::store::Resolver;
/// use kmseal_vault::{TokenSource, VaultKvStore};
///
/// let reference = "vault-kv://vault.internal:8200/secret/billing/db#password".parse()?;
/// let store = VaultKvStore::builder(&reference)?
///     .token(TokenSource::kubernetes("billing"))
///     .build()?;
/// let resolver = Resolver::with_stores(vec![Arc::new(store)], Default::default());
/// let password = resolver.resolve(&reference).await?;
/// # Ok(()) }
/// ```
pub struct VaultKvStore {
    session: Session,
    address: String,
    /// Mount path (`secret`, `team/kv`) → KV version, learned from the server.
    mounts: tokio::sync::Mutex<HashMap<String, u8>>,
}

impl std::fmt::Debug for VaultKvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultKvStore")
            .field("address", &self.address)
            .field("namespace", &self.session.http.namespace)
            .finish_non_exhaustive()
    }
}

/// Where a secret lives: its mount, its path under the mount, and the KV version.
struct Located {
    mount: String,
    rest: String,
    version: u8,
}

impl VaultKvStore {
    /// Settings for a store on the server `reference` names (any secret on it may then be
    /// read, with the token's rights).
    pub fn builder(reference: &SecretRef) -> Result<VaultKvBuilder, Error> {
        let kv = VaultKvPath::try_from(reference)?;
        Ok(VaultKvBuilder {
            reference: reference.to_string(),
            address: kv.address(),
            plain_http: kv.plain_http(),
            conn: Settings::default(),
        })
    }

    /// A store with default settings (token from `VAULT_TOKEN`, `BAO_TOKEN` or
    /// `~/.vault-token`, sent only to `VAULT_ADDR`: see [`VaultKvBuilder::build`]).
    pub fn from_reference(reference: &SecretRef) -> Result<VaultKvStore, Error> {
        VaultKvStore::builder(reference)?.build()
    }

    async fn call(
        &self,
        reference: &SecretRef,
        method: Method,
        path: &str,
        body: Option<&SecretBytes>,
    ) -> Result<SecretBytes, Error> {
        self.session
            .call(method, path, body)
            .await
            .map_err(|e| e.for_reference(reference))
    }

    /// The mount, path and KV version of the secret `reference` names.
    async fn locate(&self, reference: &SecretRef) -> Result<Located, Error> {
        let path = VaultKvPath::try_from(reference)?.path().to_owned();
        let mut mounts = self.mounts.lock().await;
        let known = mounts
            .iter()
            .filter(|(m, _)| path.starts_with(&format!("{m}/")))
            .max_by_key(|(m, _)| m.len())
            .map(|(m, v)| (m.clone(), *v));
        let (mount, version) = match known {
            Some(found) => found,
            None => {
                let found = self.ask_mount(reference, &path).await?;
                mounts.insert(found.0.clone(), found.1);
                found
            }
        };
        let rest = path[mount.len()..].trim_start_matches('/').to_owned();
        if rest.is_empty() {
            return Err(reference.invalid(format!(
                "`{mount}` is the KV mount itself; name a secret under it"
            )));
        }
        Ok(Located {
            mount,
            rest,
            version,
        })
    }

    async fn ask_mount(&self, reference: &SecretRef, path: &str) -> Result<(String, u8), Error> {
        #[derive(serde::Deserialize)]
        struct Mount {
            data: MountData,
        }
        #[derive(serde::Deserialize)]
        struct MountData {
            path: String,
            #[serde(rename = "type")]
            kind: String,
            #[serde(default)]
            options: Option<HashMap<String, String>>,
        }
        let body = self
            .call(
                reference,
                Method::GET,
                &format!("sys/internal/ui/mounts/{path}"),
                None,
            )
            .await
            .map_err(|e| match e.store_kind() {
                Some(kind @ (StoreErrorKind::NotFound | StoreErrorKind::AccessDenied)) => reference
                    .error(
                        kind,
                        "the server knows no KV mount for this path that the token may use",
                    ),
                _ => e,
            })?;
        let mount: Mount = serde_json::from_slice(body.expose_secret())
            .map_err(|_| bad_response("mount description").for_reference(reference))?;
        if mount.data.kind != "kv" && mount.data.kind != "generic" {
            return Err(reference.invalid(format!(
                "`{}` is a {} mount, not a KV one",
                mount.data.path.trim_end_matches('/'),
                mount.data.kind
            )));
        }
        let version = match mount
            .data
            .options
            .as_ref()
            .and_then(|o| o.get("version"))
            .map(String::as_str)
        {
            Some("2") => 2,
            None | Some("1" | "") => 1,
            Some(_) => return Err(bad_response("unknown KV version").for_reference(reference)),
        };
        let mount_path = mount.data.path.trim_end_matches('/').to_owned();
        if mount_path.is_empty() || !path.starts_with(&format!("{mount_path}/")) {
            return Err(
                bad_response("a mount that does not contain the path").for_reference(reference)
            );
        }
        tracing::debug!(mount = %mount_path, version, "Vault KV mount");
        Ok((mount_path, version))
    }
}

/// KV v2's answer to a read: `data.data` (the field map, kept as raw JSON borrowed from the
/// locked response) and `data.metadata`.
#[derive(serde::Deserialize)]
struct V2Read<'a> {
    #[serde(borrow)]
    data: V2Data<'a>,
}

#[derive(serde::Deserialize)]
struct V2Data<'a> {
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    metadata: V2Meta,
}

#[derive(serde::Deserialize)]
struct V2Meta {
    #[serde(default)]
    created_time: String,
    #[serde(default)]
    deletion_time: String,
    #[serde(default)]
    destroyed: bool,
    version: u64,
}

impl V2Meta {
    fn info(&self) -> VersionInfo {
        let mut info = VersionInfo::new(self.version.to_string())
            .disabled(self.destroyed || !self.deletion_time.is_empty());
        info.created = parse_rfc3339(&self.created_time);
        info
    }
}

#[derive(serde::Deserialize)]
struct V1Read<'a> {
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

/// The field map, copied from the locked response into its own locked buffer.
fn field_map(reference: &SecretRef, raw: Option<&RawValue>) -> Result<SecretBytes, Error> {
    let Some(raw) = raw.filter(|r| r.get().starts_with('{')) else {
        return Err(reference.error(
            StoreErrorKind::NotFound,
            "the version has no data (deleted or destroyed)",
        ));
    };
    if raw.get().len() > MAX_SECRET_LEN {
        return Err(too_large(reference, raw.get().len()));
    }
    SecretBytes::from_slice(raw.get().as_bytes())
}

#[async_trait]
impl SecretStore for VaultKvStore {
    fn kind(&self) -> StoreKind {
        StoreKind::VaultKv
    }

    fn describe(&self) -> String {
        format!("vault-kv ({})", self.address)
    }

    fn serves(&self, reference: &SecretRef) -> bool {
        VaultKvPath::try_from(reference).is_ok_and(|kv| kv.address() == self.address)
    }

    async fn get(&self, reference: &SecretRef) -> Result<StoredSecret, Error> {
        if reference.stage().is_some() {
            return Err(reference.error(
                StoreErrorKind::Unsupported,
                "Vault KV keeps versions, not stages: select one with ?version=N",
            ));
        }
        let at = self.locate(reference).await?;
        let not_found = |e: Error| match e.store_kind() {
            Some(StoreErrorKind::NotFound) => reference.error(
                StoreErrorKind::NotFound,
                format!(
                    "no secret `{}` in KV mount `{}` (or that version was deleted)",
                    at.rest, at.mount
                ),
            ),
            _ => e,
        };
        if at.version == 1 {
            if reference.version().is_some() {
                return Err(reference.error(
                    StoreErrorKind::Unsupported,
                    format!(
                        "KV mount `{}` is version 1, which keeps no versions",
                        at.mount
                    ),
                ));
            }
            let path = format!("{}/{}", at.mount, at.rest);
            let body = self
                .call(reference, Method::GET, &path, None)
                .await
                .map_err(not_found)?;
            let read: V1Read<'_> = serde_json::from_slice(body.expose_secret())
                .map_err(|_| bad_response("KV v1 read").for_reference(reference))?;
            return Ok(StoredSecret {
                value: field_map(reference, read.data)?,
                version: VersionInfo::default(),
            });
        }
        let mut path = format!("{}/data/{}", at.mount, at.rest);
        if let Some(v) = reference.version() {
            if v.parse::<u64>().is_err() {
                return Err(reference.invalid("a KV v2 version is a number"));
            }
            path.push_str("?version=");
            path.push_str(v);
        }
        let body = self
            .call(reference, Method::GET, &path, None)
            .await
            .map_err(not_found)?;
        let read: V2Read<'_> = serde_json::from_slice(body.expose_secret())
            .map_err(|_| bad_response("KV v2 read").for_reference(reference))?;
        let mut version = read.data.metadata.info();
        if reference.version().is_none() {
            version.stages = vec!["current".into()];
        }
        Ok(StoredSecret {
            value: field_map(reference, read.data.data)?,
            version,
        })
    }

    async fn put(&self, reference: &SecretRef, value: &[u8]) -> Result<VersionInfo, Error> {
        reference.check_no_selectors()?;
        if value.len() > MAX_SECRET_LEN {
            return Err(too_large(reference, value.len()));
        }
        // A KV secret is a map of fields. serde's IgnoredAny checks the JSON without keeping
        // any of it; its errors give a line and column, never the text.
        let is_object = value.trim_ascii_start().starts_with(b"{")
            && serde_json::from_slice::<serde::de::IgnoredAny>(value).is_ok();
        if !is_object {
            return Err(Error::SecretShape(
                "a Vault KV secret is a JSON object of fields, such as {\"password\": \"…\"}"
                    .into(),
            ));
        }
        let at = self.locate(reference).await?;
        let mut body = SecretBytes::with_capacity(value.len() + 16)?;
        if at.version == 1 {
            body.extend_from_slice(value)?;
            let path = format!("{}/{}", at.mount, at.rest);
            self.call(reference, Method::POST, &path, Some(&body))
                .await?;
            return Ok(VersionInfo::default());
        }
        body.extend_from_slice(b"{\"data\":")?;
        body.extend_from_slice(value)?;
        body.extend_from_slice(b"}")?;
        let path = format!("{}/data/{}", at.mount, at.rest);
        let resp = self
            .call(reference, Method::POST, &path, Some(&body))
            .await?;
        #[derive(serde::Deserialize)]
        struct Written {
            data: V2Meta,
        }
        let written: Written = serde_json::from_slice(resp.expose_secret())
            .map_err(|_| bad_response("KV v2 write").for_reference(reference))?;
        Ok(written.data.info().stages(vec!["current".into()]))
    }

    async fn versions(&self, reference: &SecretRef) -> Result<Vec<VersionInfo>, Error> {
        let at = self.locate(reference).await?;
        if at.version == 1 {
            return Err(reference.error(
                StoreErrorKind::Unsupported,
                format!(
                    "KV mount `{}` is version 1, which keeps no versions",
                    at.mount
                ),
            ));
        }
        #[derive(serde::Deserialize)]
        struct Metadata {
            data: MetaData,
        }
        #[derive(serde::Deserialize)]
        struct MetaData {
            current_version: u64,
            versions: HashMap<String, V2Entry>,
        }
        #[derive(serde::Deserialize)]
        struct V2Entry {
            #[serde(default)]
            created_time: String,
            #[serde(default)]
            deletion_time: String,
            #[serde(default)]
            destroyed: bool,
        }
        let path = format!("{}/metadata/{}", at.mount, at.rest);
        let body = self.call(reference, Method::GET, &path, None).await?;
        let meta: Metadata = serde_json::from_slice(body.expose_secret())
            .map_err(|_| bad_response("KV v2 metadata").for_reference(reference))?;
        let mut out = Vec::with_capacity(meta.data.versions.len());
        for (id, entry) in meta.data.versions {
            let number: u64 = id.parse().map_err(|_| {
                bad_response("a version that is not a number").for_reference(reference)
            })?;
            let info = V2Meta {
                created_time: entry.created_time,
                deletion_time: entry.deletion_time,
                destroyed: entry.destroyed,
                version: number,
            }
            .info();
            let stages = if number == meta.data.current_version {
                vec!["current".into()]
            } else {
                Vec::new()
            };
            out.push((number, info.stages(stages)));
        }
        out.sort_by_key(|v| std::cmp::Reverse(v.0));
        Ok(out.into_iter().map(|(_, info)| info).collect())
    }
}
