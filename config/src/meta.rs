//! The metadata block of a sealed document: its versions, what its MACs cover, and the
//! manifest that lets [`Sealer::seal`](crate::Sealer::seal) name what changed since the last
//! seal. FORMAT.md, "Config documents".
//!
//! * Version 1: one document MAC over the metadata (version, policy, message id, context) and
//!   every value as sealed. Read forever; never written any more.
//! * Version 3: as version 2, and the items the MACs and manifest cover include the
//!   document's structure: empty maps and lists, YAML tags and what each YAML alias points
//!   at (so moving an `&anchor` onto a secret, retyping `{}` as `[]` or adding `!!int` is
//!   detected).
//! * Version 4: as version 3, and the metadata carries each value's lifecycle under the
//!   metadata MAC: the requirements (`rules`), when each value was set (`times`) and the
//!   previous values kept through a grace period (`previous`).
//! * Version 2: the same document MAC (its metadata bytes now include the manifest), plus a
//!   **metadata MAC** over the metadata alone and a **manifest** (per value: 8 bytes naming
//!   the path, 8 naming the value as sealed). Seal always checks the metadata MAC, so a
//!   key-less edit of the policy (`plain: "*"`) or of the context is refused, and compares the
//!   values with the manifest, so it can name each path that differs from the last verified
//!   state.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use kmseal::{Header, Limits};
use subtle::ConstantTimeEq;

use crate::crypto::{DocKeys, Kind};
use crate::doc::MetaFields;
use crate::lifecycle::{self, Previous};
use crate::path::Path;
use crate::{Error, Policy, Require};

/// The version every seal writes.
pub(crate) const CURRENT: u8 = 4;

/// A value as sealed: its path, its kind ([`Kind::Str`] for an encrypted value) and its text
/// (the ciphertext string of an encrypted value).
pub(crate) type Item = (Path, Kind, String);

/// A parsed metadata block; nothing verified yet.
pub(crate) struct Meta {
    pub(crate) version: u8,
    pub(crate) policy: Policy,
    pub(crate) header: Header,
    manifest: Option<Vec<[u8; 16]>>,
    /// Version 4: the requirements, and their text as stored (what the MACs cover).
    pub(crate) rules: Vec<Require>,
    rules_text: String,
    /// Version 4: when each MAC item was set (Unix seconds, 0 unknown), and the field's bytes.
    pub(crate) times: Option<Vec<u64>>,
    times_raw: Vec<u8>,
    /// Version 4: previous values, and the field's bytes.
    pub(crate) previous: Vec<Previous>,
    previous_raw: Vec<u8>,
    meta_mac: Option<Vec<u8>>,
    mac: Vec<u8>,
}

/// What version 4 adds to the bytes the MACs cover.
pub(crate) struct Lifecycle<'a> {
    pub(crate) rules_text: &'a str,
    pub(crate) times_raw: &'a [u8],
    pub(crate) previous_raw: &'a [u8],
}

/// How the values of a document differ from its last verified state.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Changes {
    /// Exactly as last sealed.
    None,
    /// These differences, by path (`changed `a.b``, `added `c``, `2 removed`, ...).
    Named(Vec<String>),
    /// Something differs; a version-1 document cannot say what.
    Unknown,
}

impl Meta {
    pub(crate) fn parse(m: &MetaFields) -> Result<Meta, Error> {
        let version = match m.version.as_str() {
            "1" => 1,
            "2" => 2,
            "3" => 3,
            "4" => 4,
            v => {
                return Err(Error::Metadata(format!(
                    "version `{}` is not supported (this build reads versions 1 to 4)",
                    kmseal::escape_untrusted(v)
                )));
            }
        };
        let header = parse_header(&m.header)?;
        let policy = Policy::from_meta(m)?;
        let mac = b64("mac", &m.mac)?;
        let (manifest, meta_mac) = match (version, &m.manifest, &m.meta_mac) {
            (1, None, None) => (None, None),
            (2..=4, Some(manifest), Some(meta_mac)) => {
                let raw = b64("manifest", manifest)?;
                if raw.len() % 16 != 0 {
                    return Err(Error::Metadata(
                        "`manifest` is not a whole number of 16-byte entries".into(),
                    ));
                }
                let entries = raw
                    .chunks_exact(16)
                    .map(|c| {
                        let mut e = [0u8; 16];
                        e.copy_from_slice(c);
                        e
                    })
                    .collect();
                (Some(entries), Some(b64("meta_mac", meta_mac)?))
            }
            (1, _, _) => {
                return Err(Error::Metadata(
                    "a version-1 block has no `manifest` or `meta_mac`".into(),
                ));
            }
            _ => {
                return Err(Error::Metadata(
                    "a version-2, -3 or -4 block needs `manifest` and `meta_mac`".into(),
                ));
            }
        };
        let mut meta = Meta {
            version,
            policy,
            header,
            manifest,
            rules: Vec::new(),
            rules_text: String::new(),
            times: None,
            times_raw: Vec::new(),
            previous: Vec::new(),
            previous_raw: Vec::new(),
            meta_mac,
            mac,
        };
        if version < 4 {
            if m.rules.is_some() || m.times.is_some() || m.previous.is_some() {
                return Err(Error::Metadata(format!(
                    "a version-{version} block has no `rules`, `times` or `previous`"
                )));
            }
            return Ok(meta);
        }
        // Written only when there are any: an empty field is not the canonical form.
        if let Some(rules) = &m.rules {
            if rules.is_empty() {
                return Err(Error::Metadata("`rules` is empty".into()));
            }
            meta.rules = Require::list_from_text(rules)
                .map_err(|e| Error::Metadata(format!("`rules`: {e}")))?;
            meta.rules_text = rules.clone();
        }
        let times = m
            .times
            .as_deref()
            .ok_or_else(|| Error::Metadata("a version-4 block needs `times`".into()))?;
        meta.times_raw = b64("times", times)?;
        let items = meta.manifest.as_ref().map_or(0, Vec::len);
        meta.times = Some(lifecycle::decode_times(&meta.times_raw, items)?);
        if let Some(previous) = &m.previous {
            meta.previous_raw = b64("previous", previous)?;
            meta.previous = lifecycle::decode_previous(&meta.previous_raw)?;
            if meta.previous.is_empty() {
                return Err(Error::Metadata("`previous` is empty".into()));
            }
        }
        Ok(meta)
    }

    /// Whether the block has a manifest (version 2 on).
    pub(crate) fn has_manifest(&self) -> bool {
        self.manifest.is_some()
    }

    /// Whether `entry` is in the manifest.
    pub(crate) fn in_manifest(&self, entry: &[u8; 16]) -> bool {
        self.manifest.as_ref().is_some_and(|m| m.contains(entry))
    }

    /// What version 4 adds to the MAC input (`None` before).
    fn lifecycle(&self) -> Option<Lifecycle<'_>> {
        (self.version >= 4).then_some(Lifecycle {
            rules_text: &self.rules_text,
            times_raw: &self.times_raw,
            previous_raw: &self.previous_raw,
        })
    }

    /// When each MAC item was last set, by its manifest entry (version 4; empty before).
    pub(crate) fn times_by_entry(&self) -> std::collections::HashMap<[u8; 16], u64> {
        match (&self.manifest, &self.times) {
            (Some(m), Some(t)) => m.iter().copied().zip(t.iter().copied()).collect(),
            _ => Default::default(),
        }
    }

    /// Whether the MACs cover the document's structure (empty maps and lists, YAML tags and
    /// alias targets) as well as its values: from version 3.
    pub(crate) fn covers_shape(&self) -> bool {
        self.version >= 3
    }

    fn bytes(&self) -> Vec<u8> {
        meta_bytes(
            self.version,
            &self.policy,
            &self.header,
            self.manifest.as_deref(),
            self.lifecycle(),
        )
    }

    /// Version 2: the metadata MAC must match (policy, context and manifest are as last
    /// sealed by a key holder). Version 1 has no such MAC: `Ok(false)`, nothing vouched for.
    pub(crate) fn verify_metadata(&self, keys: &DocKeys) -> Result<bool, Error> {
        let Some(stored) = &self.meta_mac else {
            return Ok(false);
        };
        if bool::from(keys.meta_mac(&self.bytes()).ct_eq(stored)) {
            Ok(true)
        } else {
            Err(Error::Tampered(
                "the kmseal metadata block (policy, context or manifest) was changed without \
                 the key; restore it from version control"
                    .into(),
            ))
        }
    }

    /// Whether the document MAC matches these values, in this order.
    pub(crate) fn document_mac_matches<'a>(
        &self,
        keys: &DocKeys,
        items: impl Iterator<Item = (&'a Path, Kind, &'a str)>,
    ) -> bool {
        keys.mac(&self.bytes(), items).ct_eq(&self.mac).into()
    }

    /// How `items` (the values as sealed under the stored policy) differ from the last
    /// verified state. Call [`verify_metadata`](Self::verify_metadata) first: the manifest
    /// is only as good as its MAC.
    pub(crate) fn changes(&self, keys: &DocKeys, items: &[Item]) -> Changes {
        let Some(manifest) = &self.manifest else {
            let same =
                self.document_mac_matches(keys, items.iter().map(|(p, k, v)| (p, *k, v.as_str())));
            return if same {
                Changes::None
            } else {
                Changes::Unknown
            };
        };
        let entries: Vec<[u8; 16]> = items
            .iter()
            .map(|(p, k, v)| keys.manifest_entry(p, *k, v))
            .collect();
        if entries == *manifest {
            return Changes::None;
        }
        let mut out = Vec::new();
        for ((path, _, _), entry) in items.iter().zip(&entries) {
            if manifest.contains(entry) {
                continue;
            }
            if manifest.iter().any(|m| m[..8] == entry[..8]) {
                out.push(format!("changed `{path}`"));
            } else {
                out.push(format!("added `{path}`"));
            }
        }
        let removed = manifest
            .iter()
            .filter(|m| !entries.iter().any(|e| e[..8] == m[..8]))
            .count();
        if removed > 0 {
            out.push(format!("{removed} value(s) removed"));
        }
        if out.is_empty() {
            out.push("values reordered or duplicated".into());
        }
        Changes::Named(out)
    }
}

/// What a seal writes beside the policy and header (version 4).
pub(crate) struct Sealing<'a> {
    pub(crate) rules: &'a [Require],
    /// When each of the items was set (Unix seconds; 0 unknown), one per item.
    pub(crate) times: &'a [u64],
    pub(crate) previous: &'a [Previous],
}

/// The metadata block sealing `items` under `policy` and `header`, in the current version.
pub(crate) fn sealed_fields(
    policy: &Policy,
    header: &Header,
    keys: &DocKeys,
    items: &[Item],
    sealing: &Sealing<'_>,
) -> MetaFields {
    let manifest: Vec<[u8; 16]> = items
        .iter()
        .map(|(p, k, v)| keys.manifest_entry(p, *k, v))
        .collect();
    let rules_text = Require::list_to_text(sealing.rules);
    let times_raw = lifecycle::encode_times(sealing.times);
    let previous_raw = if sealing.previous.is_empty() {
        Vec::new()
    } else {
        lifecycle::encode_previous(sealing.previous)
    };
    let bytes = meta_bytes(
        CURRENT,
        policy,
        header,
        Some(&manifest),
        Some(Lifecycle {
            rules_text: &rules_text,
            times_raw: &times_raw,
            previous_raw: &previous_raw,
        }),
    );
    let meta_mac = keys.meta_mac(&bytes);
    let mac = keys.mac(&bytes, items.iter().map(|(p, k, v)| (p, *k, v.as_str())));
    MetaFields {
        version: CURRENT.to_string(),
        encrypt: policy.encrypt.join(","),
        plain: policy.plain.join(","),
        rules: (!rules_text.is_empty()).then_some(rules_text),
        header: B64URL.encode(header.to_bytes()),
        manifest: Some(B64URL.encode(manifest.concat())),
        times: Some(B64URL.encode(&times_raw)),
        previous: (!previous_raw.is_empty()).then(|| B64URL.encode(&previous_raw)),
        meta_mac: Some(B64URL.encode(meta_mac)),
        mac: B64URL.encode(mac),
    }
}

/// The bytes the MACs cover: version, policy, the header's message id and context (not its
/// wrapped keys, so a rewrap leaves both MACs valid), from version 2 the manifest, and from
/// version 4 the rules, times and previous values.
fn meta_bytes(
    version: u8,
    policy: &Policy,
    header: &Header,
    manifest: Option<&[[u8; 16]]>,
    lifecycle: Option<Lifecycle<'_>>,
) -> Vec<u8> {
    let mut out = format!("version={version}\n").into_bytes();
    for (name, list) in [("encrypt", &policy.encrypt), ("plain", &policy.plain)] {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&len32(list.len()));
        for p in list {
            out.extend_from_slice(&len32(p.len()));
            out.extend_from_slice(p.as_bytes());
        }
    }
    if let Some(l) = &lifecycle {
        out.extend_from_slice(b"rules");
        out.extend_from_slice(&len32(l.rules_text.len()));
        out.extend_from_slice(l.rules_text.as_bytes());
    }
    out.extend_from_slice(header.message_id());
    out.extend_from_slice(&header.context().canonical_bytes());
    if let Some(m) = manifest {
        out.extend_from_slice(b"manifest");
        out.extend_from_slice(&len32(m.len()));
        for e in m {
            out.extend_from_slice(e);
        }
    }
    if let Some(l) = &lifecycle {
        for (name, raw) in [("times", l.times_raw), ("previous", l.previous_raw)] {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&len32(raw.len()));
            out.extend_from_slice(raw);
        }
    }
    out
}

fn b64(name: &str, s: &str) -> Result<Vec<u8>, Error> {
    B64URL
        .decode(s.trim())
        .map_err(|_| Error::Metadata(format!("`{name}` is not base64url")))
}

/// The envelope header stored in the block.
pub(crate) fn parse_header(text: &str) -> Result<Header, Error> {
    let raw = b64("header", text)?;
    let (header, used) = Header::parse(&raw, &Limits::default())?;
    if used != raw.len() {
        return Err(Error::Metadata("`header` has trailing bytes".into()));
    }
    Ok(header)
}
/// A length as the MAC input's u32 prefix. Documents are far below 4 GiB; a length that did
/// not fit would saturate (an input that cannot match a real document's), never wrap.
pub(crate) fn len32(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes()
}
