//! What the format codecs share: leaves, replacements, the metadata block and span edits.

use std::ops::Range;

use crate::Error;
use crate::crypto::Kind;
use crate::path::{Path, Seg};

/// The reserved top-level key holding the metadata block.
pub(crate) const META_KEY: &str = "kmseal";

/// A value in a document.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub(crate) path: Path,
    pub(crate) kind: Kind,
    /// Strings decoded; numbers, booleans and dates as written.
    pub(crate) value: String,
    /// Where the value's source text is (span-edited formats).
    pub(crate) span: Range<usize>,
    /// A plain YAML scalar that YAML 1.2 reads as a string but YAML 1.1 (PyYAML, many older
    /// parsers) as a boolean or number (`no`, `yes`, `on`, `1_000`, `1:20`): encrypting it
    /// would bring it back quoted, a string for both, silently changing what 1.1 readers see.
    pub(crate) yaml11_ambiguous: bool,
}

impl Leaf {
    pub(crate) fn new(path: Path, kind: Kind, value: String, span: Range<usize>) -> Leaf {
        Leaf {
            path,
            kind,
            value,
            span,
            yaml11_ambiguous: false,
        }
    }
}

/// What to write in place of a value.
#[derive(Debug, Clone)]
pub(crate) enum Repr {
    /// An encrypted value (a string in every format).
    Encrypted(String),
    /// A plaintext value of this kind.
    Plain(Kind, String),
}

/// The metadata block's fields, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetaFields {
    pub(crate) version: String,
    pub(crate) encrypt: String,
    pub(crate) plain: String,
    /// Version 4 on, when there are any: the requirements, `;`-separated text forms.
    pub(crate) rules: Option<String>,
    pub(crate) header: String,
    /// Version 2 on: one entry per value (FORMAT.md).
    pub(crate) manifest: Option<String>,
    /// Version 4 on: when each value was set.
    pub(crate) times: Option<String>,
    /// Version 4 on, when there are any: previous values kept through a grace period.
    pub(crate) previous: Option<String>,
    /// Version 2 on: the MAC over the metadata alone.
    pub(crate) meta_mac: Option<String>,
    pub(crate) mac: String,
}

/// Every field a metadata block may hold, in the order they are written.
const FIELDS: [&str; 10] = [
    "version", "encrypt", "plain", "rules", "header", "manifest", "times", "previous", "meta_mac",
    "mac",
];

impl MetaFields {
    /// The fields present, in writing order.
    pub(crate) fn pairs(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![
            ("version", self.version.as_str()),
            ("encrypt", &self.encrypt),
            ("plain", &self.plain),
        ];
        if let Some(r) = &self.rules {
            out.push(("rules", r));
        }
        out.push(("header", &self.header));
        for (name, field) in [
            ("manifest", &self.manifest),
            ("times", &self.times),
            ("previous", &self.previous),
        ] {
            if let Some(v) = field {
                out.push((name, v));
            }
        }
        if let Some(m) = &self.meta_mac {
            out.push(("meta_mac", m));
        }
        out.push(("mac", &self.mac));
        out
    }

    /// From the leaves found under the metadata key (`kmseal.FIELD`).
    pub(crate) fn from_leaves(leaves: &[Leaf]) -> Result<MetaFields, Error> {
        let find = |name: &str| -> Result<Option<String>, Error> {
            let mut found = leaves
                .iter()
                .filter(|l| l.path.0.len() == 2 && l.path.0[1] == Seg::Key(name.to_owned()));
            match (found.next(), found.next()) {
                (Some(l), None) => Ok(Some(l.value.clone())),
                (None, _) => Ok(None),
                (Some(_), Some(_)) => Err(Error::Metadata(format!("`{name}` appears twice"))),
            }
        };
        let get = |name: &str| -> Result<String, Error> {
            find(name)?.ok_or_else(|| Error::Metadata(format!("the `{name}` field is missing")))
        };
        if let Some(l) = leaves.iter().find(|l| {
            l.path.0.len() != 2
                || !matches!(&l.path.0[1], Seg::Key(k) if FIELDS.contains(&k.as_str()))
        }) {
            return Err(Error::Metadata(format!("unexpected field `{}`", l.path)));
        }
        Ok(MetaFields {
            version: get("version")?,
            encrypt: get("encrypt")?,
            plain: get("plain")?,
            rules: find("rules")?,
            header: get("header")?,
            manifest: find("manifest")?,
            times: find("times")?,
            previous: find("previous")?,
            meta_mac: find("meta_mac")?,
            mac: get("mac")?,
        })
    }
}

/// Replacements of byte ranges, applied together.
#[derive(Default)]
pub(crate) struct SpanEdits(Vec<(Range<usize>, String)>);

impl SpanEdits {
    pub(crate) fn replace(&mut self, range: Range<usize>, text: String) {
        self.0.retain(|(r, _)| *r != range);
        self.0.push((range, text));
    }

    pub(crate) fn apply(mut self, text: &str) -> String {
        self.0.sort_by_key(|(r, _)| (r.start, r.end));
        let mut out = String::with_capacity(text.len() + 256);
        let mut at = 0;
        for (r, t) in &self.0 {
            if r.start < at {
                continue; // overlapping edits cannot happen: spans come from one parse
            }
            out.push_str(&text[at..r.start]);
            out.push_str(t);
            at = r.end;
        }
        out.push_str(&text[at..]);
        out
    }
}
