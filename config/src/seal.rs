//! Sealing: encrypting the selected values of a document and writing its metadata, without
//! ever blessing a change nobody asked for.
//!
//! Seal verifies what it builds on. For a document that is already sealed it opens the data
//! key, checks the metadata MAC (so the stored policy and context are the owner's), and
//! compares every value, as it would be sealed under the stored policy, with the last
//! verified state (the manifest; for a version-1 document, the document MAC). A difference is
//! refused with the paths that differ unless the caller accepts changes explicitly
//! ([`Sealer::accept_changes`], CLI `--accept-changes`). An encrypted value never becomes
//! plaintext unless the caller asks for it ([`Sealer::declassify`], CLI `--declassify`).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use kmseal::{Decryptor, Encryptor, Header, SecretBytes};

use crate::crypto::{self, DocKeys, Kind, LABEL};
use crate::doc::{Leaf, Repr};
use crate::lifecycle::{self, Previous};
use crate::meta::{self, Changes, Item, Meta};
use crate::path::Path;
use crate::{Codec, Error, Format, Policy, Require};

/// Seals documents: encrypts the selected values and writes the metadata block.
#[derive(Debug, Clone)]
pub struct Sealer {
    encryptor: Encryptor,
    decryptor: Decryptor,
    policy: Option<Policy>,
    rules: Option<Vec<Require>>,
    clock: Option<SystemTime>,
    keep_previous: Option<Duration>,
    accept_changes: bool,
    declassify: bool,
}

/// A value [`Sealer::set`] replaced: its path, kind and old plaintext.
struct Replaced {
    path: Path,
    kind: Kind,
    old: SecretBytes,
}

impl Sealer {
    /// New documents get a data key from `encryptor` (its KEKs and context); documents that
    /// already have metadata (edits, re-encryption) keep theirs, opened with `decryptor`.
    pub fn new(encryptor: Encryptor, decryptor: Decryptor) -> Sealer {
        Sealer {
            encryptor,
            decryptor,
            policy: None,
            rules: None,
            clock: None,
            keep_previous: None,
            accept_changes: false,
            declassify: false,
        }
    }

    /// The requirements the document carries (replacing those it has; default: keep them).
    /// They are covered by the metadata MAC, so nobody without the key can weaken them, and
    /// [`Secrets::check_requirements`](crate::Secrets::check_requirements), `kmseal config
    /// check` and `kmseal exec` apply them. Each is [`validate`](Require::validate)d when the
    /// document is sealed.
    ///
    /// ```
    /// # kmseal::blocking::block_on(async {
    /// use std::sync::Arc;
    /// use kmseal::{Decryptor, Encryptor, LocalKek};
    /// use kmseal_config::{Format, Require, Sealer};
    ///
    /// let kek = Arc::new(LocalKek::generate()?);
    /// let dec = Decryptor::new(kek.clone());
    /// let sealer = Sealer::new(Encryptor::new(kek), dec.clone())
    ///     .rules(["jwt_secret:min_len=32,max_age=90d,generate=base64:32".parse::<Require>()?]);
    /// let sealed = sealer.seal("jwt_secret: changeme\n", Format::Yaml).await?;
    /// let secrets = kmseal_config::open(&sealed, Format::Yaml, &dec).await?;
    /// let err = secrets.check_requirements().unwrap_err().to_string();
    /// assert!(err.contains("shorter than 32") && err.contains("placeholder"), "{err}");
    /// # Ok::<(), kmseal_config::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn rules(mut self, rules: impl IntoIterator<Item = Require>) -> Sealer {
        self.rules = Some(rules.into_iter().collect());
        self
    }

    /// Seal as of `time` instead of now: the time recorded for values that changed, and the
    /// start of a [`keep_previous`](Self::keep_previous) grace period (tests, reproducible
    /// builds).
    pub fn clock(mut self, time: SystemTime) -> Sealer {
        self.clock = Some(time);
        self
    }

    /// When [`set`](Self::set) replaces a value, keep the old one as the path's authenticated
    /// *previous* value for `grace` (graceful rotation: services that verify JWT signatures
    /// or API keys accept both meanwhile; [`Secrets::previous`](crate::Secrets::previous),
    /// `NAME_PREVIOUS` in `kmseal exec`). The first seal after `grace` drops it.
    pub fn keep_previous(mut self, grace: Duration) -> Sealer {
        self.keep_previous = Some(grace);
        self
    }

    /// The decryptor that opens sealed documents.
    pub(crate) fn decryptor(&self) -> &Decryptor {
        &self.decryptor
    }

    /// The same sealer, opening documents with `decryptor` instead.
    pub(crate) fn with_decryptor(mut self, decryptor: Decryptor) -> Sealer {
        self.decryptor = decryptor;
        self
    }

    /// Which values to encrypt (default: the document's stored policy, else everything).
    pub fn policy(mut self, policy: Policy) -> Sealer {
        self.policy = Some(policy);
        self
    }

    /// Seal over values that differ from the document's last verified state (edits made in
    /// plaintext, or by someone without the key). Off by default: [`seal`](Self::seal) then
    /// refuses with [`Error::Changed`], naming the paths, so that a key-less edit is never
    /// blessed by a routine re-seal. Review the changes (`git diff`) before accepting them.
    pub fn accept_changes(mut self, accept: bool) -> Sealer {
        self.accept_changes = accept;
        self
    }

    /// Allow values that are encrypted now to be written back in plaintext (because a new
    /// [`policy`](Self::policy) no longer selects them). Off by default: such a seal fails
    /// with [`Error::Declassify`], naming the paths.
    pub fn declassify(mut self, allow: bool) -> Sealer {
        self.declassify = allow;
        self
    }

    /// Encrypts every selected plaintext value of `text`, checks that values already
    /// encrypted belong to this document at their paths, and writes the metadata with new
    /// MACs. Unchanged values keep their ciphertexts. For a sealed document, fails with
    /// [`Error::Tampered`] when its metadata was changed without the key, and with
    /// [`Error::Changed`] when values differ from the last seal (see
    /// [`accept_changes`](Self::accept_changes)).
    ///
    /// ```
    /// # kmseal::blocking::block_on(async {
    /// use std::sync::Arc;
    /// use kmseal::{Decryptor, Encryptor, LocalKek};
    /// use kmseal_config::{Error, Format, Policy, Sealer};
    ///
    /// let kek = Arc::new(LocalKek::generate()?);
    /// let sealer = Sealer::new(Encryptor::new(kek.clone()), Decryptor::new(kek))
    ///     .policy(Policy::only(["password"])?);
    /// let sealed = sealer.seal("user: app\npassword: hunter2-hunter2\n", Format::Yaml).await?;
    /// // Someone without the key edits a value (or the policy): a routine re-seal refuses.
    /// let edited = sealed.replace("user: app", "user: admin");
    /// let err = sealer.seal(&edited, Format::Yaml).await.unwrap_err();
    /// assert!(matches!(&err, Error::Changed(paths) if paths == &["changed `user`"]));
    /// // After review, the owner accepts the change explicitly.
    /// sealer.clone().accept_changes(true).seal(&edited, Format::Yaml).await?;
    /// # Ok::<(), kmseal_config::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn seal(&self, text: &str, format: Format) -> Result<String, Error> {
        self.seal_with(text, format, self.accept_changes, None)
            .await
    }

    /// [`seal`](Self::seal), with `accept_changes` saying whether values may differ from the
    /// last verified state, and the value [`set`](Self::set) replaced, if any.
    async fn seal_with(
        &self,
        text: &str,
        format: Format,
        accept_changes: bool,
        replaced: Option<Replaced>,
    ) -> Result<String, Error> {
        let now = lifecycle::unix(self.clock.unwrap_or_else(SystemTime::now));
        if now > lifecycle::MAX_TIME {
            return Err(Error::Unsupported(
                "the sealing time is after the year 9999".into(),
            ));
        }
        let mut codec = Codec::parse(text, format)?;
        let leaves: Vec<Leaf> = codec.leaves().to_vec();
        // Values sealed encrypted last time, by the stored policy (empty for a new document).
        let mut was_encrypted: Vec<Path> = Vec::new();
        // The plan under the stored policy, reused when the caller gives no other.
        let mut stored_plan = None;
        // When each unchanged value (and structure item) was set, from the last seal.
        let mut known = KnownTimes::default();
        let mut previous: Vec<Previous> = Vec::new();
        let mut rules = Vec::new();
        let (header, keys, policy) = match codec.meta().cloned() {
            Some(fields) => {
                let mut meta = Meta::parse(&fields)?;
                let app_key = self
                    .decryptor
                    .open_application_key(&meta.header, LABEL)
                    .await?;
                let keys = DocKeys::derive(&app_key);
                meta.verify_metadata(&keys)?;
                let as_stored = plan(&keys, &meta.policy, &leaves)?;
                let mut items = as_stored.items.clone();
                if meta.covers_shape() {
                    items.extend(sealed_shape(&codec, &as_stored.items));
                }
                known = KnownTimes::from_last_seal(&meta, &keys, &items);
                if let Some(r) = &replaced {
                    // The value `set` replaced is new, whatever the last seal recorded.
                    known.values.remove(&r.path);
                }
                let changes = meta.changes(&keys, &items);
                wipe(&mut items);
                if !accept_changes {
                    refuse_changes(changes)?;
                } else if changes == Changes::Unknown && replaced.is_none() {
                    // A version-1 block has no metadata MAC: once its document MAC fails,
                    // nothing in it is vouched for, and a newer document stripped down to
                    // version 1 (its rules, times and previous values gone) looks the same.
                    return Err(Error::Tampered(
                        "this version-1 document does not match its MAC, and version 1 cannot \
                         say what changed, so it is not re-sealed even with --accept-changes \
                         (a newer document stripped down to version 1 looks the same); restore \
                         the last sealed version (git), re-seal it unchanged (which upgrades it), \
                         then make the edits again"
                            .into(),
                    ));
                }
                // Previous values outlive neither their grace period nor their path.
                previous = std::mem::take(&mut meta.previous);
                previous.retain(|p| p.expires > now && leaves.iter().any(|l| l.path == p.path));
                rules = std::mem::take(&mut meta.rules);
                was_encrypted = as_stored
                    .items
                    .iter()
                    .filter(|(_, k, v)| *k == Kind::Str && crypto::is_encrypted(v))
                    .map(|(p, _, _)| p.clone())
                    .collect();
                if self.policy.is_none() {
                    stored_plan = Some(as_stored);
                }
                let policy = self.policy.clone().unwrap_or(meta.policy);
                (meta.header, keys, policy)
            }
            None => {
                let (header, app_key) = self.encryptor.application_key(LABEL).await?;
                let policy = self.policy.clone().unwrap_or_default();
                (header, DocKeys::derive(&app_key), policy)
            }
        };
        let mut planned = match stored_plan {
            Some(p) => p,
            None => plan(&keys, &policy, &leaves)?,
        };
        // Declassifying is judged against the last seal, not against how the working copy
        // looks: a value decrypted for editing (`config decrypt --keep-metadata`) that the new
        // policy leaves plain is declassified just the same.
        for (path, kind, text) in &planned.items {
            let now_plain = !(*kind == Kind::Str && crypto::is_encrypted(text));
            let shown = format!("`{path}`");
            if now_plain && was_encrypted.contains(path) && !planned.declassified.contains(&shown) {
                planned.declassified.push(shown);
            }
        }
        if !planned.declassified.is_empty() && !self.declassify {
            return Err(Error::Declassify(std::mem::take(&mut planned.declassified)));
        }
        for (i, repr) in planned.reprs.iter().enumerate() {
            if let Some(repr) = repr {
                codec.set(i, repr)?;
            }
        }
        if let Some(r) = replaced {
            previous.retain(|p| p.path != r.path);
            if let Some(grace) = self.keep_previous {
                let expires = now
                    .checked_add(grace.as_secs())
                    .filter(|&t| t <= lifecycle::MAX_TIME)
                    .ok_or_else(|| {
                        Error::Unsupported(
                            "the grace period for the previous value ends after the year 9999"
                                .into(),
                        )
                    })?;
                let value =
                    keys.encrypt_previous(&r.path, r.kind, expires, r.old.expose_secret())?;
                previous.push(Previous {
                    path: r.path,
                    expires,
                    value,
                });
            }
        }
        let rules = self.rules.clone().unwrap_or(rules);
        for r in &rules {
            r.validate()?;
        }
        let shape = sealed_shape(&codec, &planned.items);
        let times: Vec<u64> = planned
            .items
            .iter()
            .map(|(p, _, _)| known.value(p).unwrap_or(now))
            .chain(
                shape
                    .iter()
                    .map(|(p, _, t)| known.shape(p, t).unwrap_or(now)),
            )
            .collect();
        let sealing = meta::Sealing {
            rules: &rules,
            times: &times,
            previous: &previous,
        };
        write_back(
            codec,
            format,
            &policy,
            &header,
            &keys,
            &planned.items,
            &shape,
            &sealing,
        )
    }

    /// Sets the value at `path` (which must exist) to the string `value` in a sealed
    /// document, after verifying it; the value is encrypted if the policy selects it. Only
    /// that path may change.
    pub async fn set(
        &self,
        text: &str,
        format: Format,
        path: &str,
        value: &str,
    ) -> Result<String, Error> {
        let target = Path::parse(path).map_err(Error::Unsupported)?;
        let mut opened = crate::open_doc(text, format, &self.decryptor).await?;
        let i = opened
            .codec
            .leaves()
            .iter()
            .position(|l| l.path == target)
            .ok_or_else(|| Error::Unsupported(format!("`{path}` is not in the document")))?;
        let leaf = &opened.codec.leaves()[i];
        let (kind, old) = if leaf.kind == Kind::Str && crypto::is_encrypted(&leaf.value) {
            opened.keys.decrypt(&leaf.path, &leaf.value)?
        } else {
            (leaf.kind, SecretBytes::from_slice(leaf.value.as_bytes())?)
        };
        let unchanged = kind == Kind::Str
            && bool::from(subtle::ConstantTimeEq::ct_eq(
                old.expose_secret(),
                value.as_bytes(),
            ));
        if unchanged {
            // Nothing to replace: the value keeps its time and any previous value.
            return self.seal_with(text, format, false, None).await;
        }
        let mut repr = Repr::Plain(Kind::Str, value.to_owned());
        let set = opened.codec.set(i, &repr);
        if let Repr::Plain(_, text) = &mut repr {
            zeroize::Zeroize::zeroize(text);
        }
        set?;
        let meta = opened.codec.meta().cloned();
        // The new value in plaintext, until it is sealed: wiped after.
        let edited = zeroize::Zeroizing::new(opened.codec.render(meta.as_ref()));
        let replaced = Replaced {
            path: target,
            kind,
            old,
        };
        // The document was verified before this one edit, so the edit is the only change.
        self.seal_with(&edited, format, true, Some(replaced)).await
    }
}

/// When the values and structure items of the last seal were set, for those that are
/// unchanged: by path for values, by path and text for structure items.
#[derive(Default)]
struct KnownTimes {
    values: HashMap<Path, u64>,
    shape: HashMap<(Path, String), u64>,
}

impl KnownTimes {
    /// `items`: the document as sealed under its stored policy (values, then structure).
    /// An item equal to its manifest entry keeps its recorded time (0, "not known", for a
    /// document sealed before version 4); one that differs has none (it is new).
    fn from_last_seal(meta: &Meta, keys: &DocKeys, items: &[Item]) -> KnownTimes {
        let by_entry = meta.times_by_entry();
        let mut known = KnownTimes::default();
        for (path, kind, text) in items {
            let time = match meta.has_manifest() {
                true => {
                    let entry = keys.manifest_entry(path, *kind, text);
                    if !meta.in_manifest(&entry) {
                        continue;
                    }
                    by_entry.get(&entry).copied().unwrap_or(0)
                }
                // Version 1 cannot say which values changed: none has a known time.
                false => 0,
            };
            if *kind == Kind::Other && text.starts_with('\u{0}') {
                known.shape.insert((path.clone(), text.clone()), time);
            } else {
                known.values.insert(path.clone(), time);
            }
        }
        known
    }

    fn value(&self, path: &Path) -> Option<u64> {
        self.values.get(path).copied()
    }

    fn shape(&self, path: &Path, text: &str) -> Option<u64> {
        self.shape.get(&(path.clone(), text.to_owned())).copied()
    }
}

/// The document's structure items as they will be once sealed: a plain scalar's style item
/// goes where the value is encrypted (a ciphertext is always quoted).
fn sealed_shape(codec: &Codec, items: &[Item]) -> Vec<Item> {
    let encrypted = |path: &Path| {
        items
            .iter()
            .any(|(p, k, v)| p == path && *k == Kind::Str && crypto::is_encrypted(v))
    };
    codec
        .shape_items()
        .into_iter()
        .filter(|(p, _, v)| !(v == "\u{0}plain" && encrypted(p)))
        .collect()
}

/// `Err(Error::Changed)` naming every difference from the last seal, if there is one.
fn refuse_changes(changes: Changes) -> Result<(), Error> {
    match changes {
        Changes::None => Ok(()),
        Changes::Named(list) => Err(Error::Changed(list)),
        Changes::Unknown => Err(Error::Changed(vec![
            "values differ from the last seal (a version-1 document cannot say which; review \
             `git diff`)"
                .into(),
        ])),
    }
}

/// What sealing under one policy does to each value.
struct Plan {
    /// Every value as sealed, in document order.
    items: Vec<Item>,
    /// The replacement for each leaf, where it changes.
    reprs: Vec<Option<Repr>>,
    /// Paths of values that are encrypted now and would be written in plaintext.
    declassified: Vec<String>,
}

impl Drop for Plan {
    /// A declassified value's plaintext is a `String` here (it is about to be written in the
    /// clear, or refused): wipe every text when the plan goes, refused or not.
    fn drop(&mut self) {
        use zeroize::Zeroize;
        wipe(&mut self.items);
        for r in self.reprs.iter_mut().flatten() {
            if let Repr::Plain(_, text) = r {
                text.zeroize();
            }
        }
    }
}

/// Zeroizes the texts of `items` (ciphertexts, plain values, declassified plaintexts).
fn wipe(items: &mut [Item]) {
    use zeroize::Zeroize;
    for (_, _, text) in items {
        text.zeroize();
    }
}

fn plan(keys: &DocKeys, policy: &Policy, leaves: &[Leaf]) -> Result<Plan, Error> {
    let mut out = Plan {
        items: Vec::with_capacity(leaves.len()),
        reprs: Vec::with_capacity(leaves.len()),
        declassified: Vec::new(),
    };
    for leaf in leaves {
        let path = leaf.path.clone();
        if leaf.kind == Kind::Str && crypto::is_encrypted(&leaf.value) {
            // Decrypting checks that the value belongs at this path of this document.
            let (kind, pt) = keys.decrypt(&leaf.path, &leaf.value)?;
            if policy.selects(&leaf.path) {
                out.items.push((path, Kind::Str, leaf.value.clone()));
                out.reprs.push(None);
            } else {
                let text = std::str::from_utf8(pt.expose_secret())?.to_owned();
                out.declassified.push(format!("`{}`", leaf.path));
                out.items.push((path, kind, text.clone()));
                out.reprs.push(Some(Repr::Plain(kind, text)));
            }
        } else if leaf.kind != Kind::Other && policy.selects(&leaf.path) {
            if leaf.yaml11_ambiguous {
                // Encrypted and decrypted, it would come back quoted: a string to every reader,
                // where YAML 1.1 readers (PyYAML) read a boolean or a number today.
                return Err(Error::Unsupported(format!(
                    "the plain YAML value at `{}` is a string in YAML 1.2 but a boolean or number \
                     in YAML 1.1 (PyYAML); quote it, or write true/false or the plain number, so \
                     that it means the same to every reader after decryption",
                    leaf.path
                )));
            }
            let enc = keys.encrypt(&leaf.path, leaf.kind, leaf.value.as_bytes())?;
            out.items.push((path, Kind::Str, enc.clone()));
            out.reprs.push(Some(Repr::Encrypted(enc)));
        } else {
            out.items.push((path, leaf.kind, leaf.value.clone()));
            out.reprs.push(None);
        }
    }
    Ok(out)
}

/// Renders the sealed document and checks that it parses back to exactly the values meant,
/// in order (unusual layouts are refused, never written broken).
#[allow(clippy::too_many_arguments)]
fn write_back(
    codec: Codec,
    format: Format,
    policy: &Policy,
    header: &Header,
    keys: &DocKeys,
    items: &[Item],
    shape: &[Item],
    sealing: &meta::Sealing<'_>,
) -> Result<String, Error> {
    let mut all: Vec<Item> = items.iter().chain(shape).cloned().collect();
    let fields = meta::sealed_fields(policy, header, keys, &all, sealing);
    wipe(&mut all);
    let sealed = codec.render(Some(&fields));
    let check = Codec::parse(&sealed, format).map_err(|e| {
        Error::Unsupported(format!(
            "this document's layout cannot be rewritten safely ({e}); simplify it around the reported line"
        ))
    })?;
    let same = check.leaves().len() == items.len()
        && check
            .leaves()
            .iter()
            .zip(items)
            .all(|(l, (p, k, v))| l.path == *p && l.kind == *k && l.value == *v)
        && check.shape_items() == shape;
    if !same {
        return Err(Error::Unsupported(
            "this document's layout cannot be rewritten safely (a value did not read back \
             as written); simplify it"
                .into(),
        ));
    }
    Ok(sealed)
}
