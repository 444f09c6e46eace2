//! Values that are references (`ref+URI`): resolved from secret stores into locked memory.
//!
//! A value written `ref+aws-sm://prod/db#password` stays a reference in the document, covered
//! by the document MAC like any value (so nobody without the key can point it elsewhere) or,
//! in an unsealed document ([`read_unsealed`]), as trustworthy as the file itself.
//! [`Secrets::resolve_references`] replaces every reference by the value it names.

use std::collections::HashMap;

use kmseal::SecretString;
use kmseal::store::{Resolver, SecretRef, VersionInfo};

use crate::crypto::Kind;
use crate::path::Path;
use crate::secrets::{Entry, Secrets};
use crate::{Codec, Error, Format};

/// What marks a value as a reference.
pub const REF_PREFIX: &str = "ref+";

/// Where a resolved value came from.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The reference, as written after `ref+`.
    pub reference: SecretRef,
    /// The store's version of the value (its id, creation time, stages).
    pub version: VersionInfo,
}

impl Secrets {
    /// Every value that is a reference (`ref+URI`), by path, in document order. A value that
    /// starts with `ref+` but is not a valid reference is an error naming the path.
    pub fn references(&self) -> Result<Vec<(Path, SecretRef)>, Error> {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for (path, entry) in self.iter() {
            let text = match entry {
                Entry::Secret { value, .. } => value.expose_secret(),
                Entry::Plain { value, .. } => value.as_str(),
            };
            let Some(reference) = text.strip_prefix(REF_PREFIX) else {
                continue;
            };
            match reference.parse::<SecretRef>() {
                Ok(r) => out.push((path.clone(), r)),
                Err(e) => bad.push(format!("`{path}`: {e}")),
            }
        }
        if bad.is_empty() {
            Ok(out)
        } else {
            Err(Error::References(bad))
        }
    }

    /// Resolves every reference through `resolver` (all at once), replacing each by the value
    /// it names as a secret in locked memory; returns how many there were. When any fails,
    /// nothing is replaced and the error lists every failure by path and reference (never a
    /// value), so a service fails fast with the whole list.
    pub async fn resolve_references(&mut self, resolver: &Resolver) -> Result<usize, Error> {
        let refs = self.references()?;
        // A previous value kept through a grace period may be a reference too: it names the
        // value the service accepted before, and is resolved the same way.
        let mut previous_refs = Vec::new();
        for (k, (path, value, _)) in self.previous.iter().enumerate() {
            if let Some(text) = value.expose_secret().strip_prefix(REF_PREFIX) {
                match text.parse::<SecretRef>() {
                    Ok(r) => previous_refs.push((k, path.clone(), r)),
                    Err(e) => {
                        return Err(Error::References(vec![format!("`{path}` (previous): {e}")]));
                    }
                }
            }
        }
        let lookups = refs.iter().map(|(_, r)| resolver.resolve(r));
        let previous_lookups = previous_refs.iter().map(|(_, _, r)| resolver.resolve(r));
        let (results, previous_results) = futures_util::future::join(
            futures_util::future::join_all(lookups),
            futures_util::future::join_all(previous_lookups),
        )
        .await;
        let mut problems = Vec::new();
        let mut previous_values = Vec::new();
        for ((k, path, reference), result) in previous_refs.into_iter().zip(previous_results) {
            let value = result.and_then(|got| {
                SecretString::try_from_bytes(got.into_value()).map_err(|_| {
                    reference.error(kmseal::StoreErrorKind::Other, "the value is not UTF-8 text")
                })
            });
            match value {
                Ok(v) => previous_values.push((k, v)),
                Err(e) => problems.push(format!("`{path}` (previous): {e}")),
            }
        }
        let mut resolved = Vec::with_capacity(refs.len());
        for ((path, reference), result) in refs.into_iter().zip(results) {
            let value = result.and_then(|got| {
                let version = got.version().clone();
                let text = SecretString::try_from_bytes(got.into_value()).map_err(|_| {
                    reference.error(kmseal::StoreErrorKind::Other, "the value is not UTF-8 text")
                })?;
                Ok((text, version))
            });
            match value {
                Ok((text, version)) => resolved.push((path, reference, text, version)),
                Err(e) => problems.push(format!("`{path}`: {e}")),
            }
        }
        if !problems.is_empty() {
            return Err(Error::References(problems));
        }
        for (k, value) in previous_values {
            self.previous[k].1 = value;
        }
        let n = resolved.len();
        for (path, reference, value, version) in resolved {
            self.replace(
                &path,
                Entry::Secret {
                    kind: Kind::Str,
                    value,
                },
            );
            self.resolutions
                .insert(path, Resolution { reference, version });
        }
        Ok(n)
    }

    /// Reads, for every resolved reference, the store's previous version
    /// ([`Resolver::previous_version`]: `AWSPREVIOUS` on Secrets Manager, the prior version
    /// elsewhere), so that [`previous`](Self::previous) and `NAME_PREVIOUS` in `kmseal exec`
    /// give it during a graceful rotation; and the current version's creation time where its
    /// read gave none. Two store calls per reference; a store that keeps no versions gives
    /// none. Returns how many previous values were found. Fails, naming every reference
    /// (never a value), when a store fails.
    pub async fn resolve_previous_versions(&mut self, resolver: &Resolver) -> Result<usize, Error> {
        let refs: Vec<(Path, Resolution)> = self
            .resolutions
            .iter()
            .map(|(p, r)| (p.clone(), r.clone()))
            .collect();
        let lookups = refs
            .iter()
            .map(|(_, r)| resolver.previous_version(&r.reference, &r.version));
        let results = futures_util::future::join_all(lookups).await;
        let mut problems = Vec::new();
        let mut found = Vec::new();
        for ((path, r), result) in refs.into_iter().zip(results) {
            match result {
                Ok((listed, before)) => {
                    if let Some(created) = listed.and_then(|l| l.created)
                        && let Some(res) = self.resolutions.get_mut(&path)
                    {
                        res.version.created.get_or_insert(created);
                    }
                    if let Some(before) = before {
                        match SecretString::try_from_bytes(before.into_value()) {
                            Ok(v) => found.push((path, v)),
                            Err(_) => problems.push(format!(
                                "`{path}`: {}: the previous value is not UTF-8 text",
                                r.reference
                            )),
                        }
                    }
                }
                Err(e) => problems.push(format!("`{path}`: previous version: {e}")),
            }
        }
        if !problems.is_empty() {
            return Err(Error::References(problems));
        }
        let n = found.len();
        for (path, value) in found {
            self.previous.retain(|(p, _, _)| *p != path);
            self.previous.push((path, value, None));
        }
        Ok(n)
    }

    /// Fills in the creation time of every resolved reference whose read gave none (Google
    /// Secret Manager's read does not), from the store's version listing: one call each,
    /// only where needed. A rotation interval (`max_age`) on a reference is judged by it.
    pub async fn resolve_version_times(&mut self, resolver: &Resolver) -> Result<usize, Error> {
        let missing: Vec<(Path, Resolution)> = self
            .resolutions
            .iter()
            .filter(|(_, r)| r.version.created.is_none() && !r.version.id.is_empty())
            .map(|(p, r)| (p.clone(), r.clone()))
            .collect();
        let lookups = missing.iter().map(|(_, r)| resolver.versions(&r.reference));
        let results = futures_util::future::join_all(lookups).await;
        let (mut n, mut problems) = (0, Vec::new());
        for ((path, r), result) in missing.into_iter().zip(results) {
            match result {
                Ok(listed) => {
                    let created = listed
                        .into_iter()
                        .find(|v| v.id == r.version.id)
                        .and_then(|v| v.created);
                    if let (Some(t), Some(res)) = (created, self.resolutions.get_mut(&path)) {
                        res.version.created = Some(t);
                        n += 1;
                    }
                }
                Err(e) if e.store_kind() == Some(kmseal::StoreErrorKind::Unsupported) => {}
                Err(e) => problems.push(format!("`{path}`: version times: {e}")),
            }
        }
        if problems.is_empty() {
            Ok(n)
        } else {
            Err(Error::References(problems))
        }
    }

    /// Where the value at `path` came from, if it was a resolved reference.
    pub fn resolution(&self, path: &str) -> Option<&Resolution> {
        let p = Path::parse(path).ok()?;
        self.resolutions.get(&p)
    }
}

/// Reads a document that is not sealed (a ConfigMap, a `.env` of references) into
/// [`Secrets`]: every value plain, references not yet resolved. A sealed document is refused:
/// open it with its key ([`open`](crate::open)), which verifies it.
///
/// ```
/// # kmseal::blocking::block_on(async {
/// use kmseal::store::{LocalStores, Resolver};
/// use kmseal_config::{Format, read_unsealed};
///
/// let mut secrets = read_unsealed("home: ref+env://HOME\nport: 8080\n", Format::Yaml)?;
/// secrets.resolve_references(&Resolver::new(LocalStores)).await?;
/// assert_eq!(secrets.secret("home").unwrap().expose_secret(), std::env::var("HOME").unwrap());
/// assert_eq!(secrets.plain("port"), Some("8080"));
/// # Ok::<(), kmseal_config::Error>(())
/// # }).unwrap();
/// ```
pub fn read_unsealed(text: &str, format: Format) -> Result<Secrets, Error> {
    let codec = Codec::parse(text, format)?;
    if codec.meta().is_some() {
        return Err(Error::Unsupported(
            "the document is sealed: open it with its key, which verifies it".into(),
        ));
    }
    let mut secrets = Secrets::default();
    secrets.keep_names = format == Format::Dotenv;
    for leaf in codec.leaves() {
        secrets.push(
            leaf.path.clone(),
            Entry::Plain {
                kind: leaf.kind,
                value: leaf.value.clone(),
            },
        );
    }
    Ok(secrets)
}

/// Whether `text` is a sealed document (has a kmseal metadata block). Parses it; says
/// nothing of whether the seal verifies ([`open`](crate::open) checks that).
pub fn is_sealed(text: &str, format: Format) -> Result<bool, Error> {
    Ok(Codec::parse(text, format)?.meta().is_some())
}

/// Resolutions by path (a field of [`Secrets`]).
pub(crate) type Resolutions = HashMap<Path, Resolution>;
