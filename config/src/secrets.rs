//! [`Secrets`]: a decrypted config document in process memory, secret strings locked.

use std::collections::HashMap;

use kmseal::SecretString;

use crate::Error;
use crate::crypto::Kind;
use crate::path::{Path, Seg};
use crate::require::{Finding, Require};

/// One value of an opened document.
#[derive(Debug)]
pub enum Entry {
    /// A value that was encrypted: in locked memory, wiped on drop.
    Secret {
        /// Its type as written.
        kind: Kind,
        /// Its text (numbers and booleans as written).
        value: SecretString,
    },
    /// A value that was not encrypted (still covered by the document MAC).
    Plain {
        /// Its type.
        kind: Kind,
        /// Its text (strings decoded; numbers, booleans and dates as written).
        value: String,
    },
}

/// A decrypted document: every value by path, secrets in locked memory. Made by
/// [`open`](crate::open); verified (document MAC, every value's path) before anything is
/// decrypted.
#[derive(Debug, Default)]
pub struct Secrets {
    entries: Vec<(Path, Entry)>,
    index: HashMap<Path, usize>,
    /// .env documents: variable names are used as they are.
    pub(crate) keep_names: bool,
    /// Values that were references, and what they resolved to.
    pub(crate) resolutions: crate::references::Resolutions,
}

impl Secrets {
    pub(crate) fn push(&mut self, path: Path, entry: Entry) {
        self.index.insert(path.clone(), self.entries.len());
        self.entries.push((path, entry));
    }

    /// Replaces the entry at `path` (which exists).
    pub(crate) fn replace(&mut self, path: &Path, entry: Entry) {
        if let Some(&i) = self.index.get(path) {
            self.entries[i].1 = entry;
        }
    }

    /// The entry at `path` (display form: `db.password`, `servers[0].token`, `a\.b` for a key
    /// containing a dot).
    pub fn get(&self, path: &str) -> Option<&Entry> {
        let p = Path::parse(path).ok()?;
        self.index.get(&p).map(|&i| &self.entries[i].1)
    }

    /// The secret at `path`; `None` if absent or not encrypted.
    pub fn secret(&self, path: &str) -> Option<&SecretString> {
        match self.get(path)? {
            Entry::Secret { value, .. } => Some(value),
            Entry::Plain { .. } => None,
        }
    }

    /// The plain (not encrypted) value at `path`.
    pub fn plain(&self, path: &str) -> Option<&str> {
        match self.get(path)? {
            Entry::Plain { value, .. } => Some(value),
            Entry::Secret { .. } => None,
        }
    }

    /// Every value, in document order.
    pub fn iter(&self) -> impl Iterator<Item = (&Path, &Entry)> {
        self.entries.iter().map(|(p, e)| (p, e))
    }

    /// Checks every rule and reports everything missing or weak in one error, so a service
    /// fails fast at start-up instead of running with blank defaults. Values are never quoted.
    ///
    /// ```
    /// # use kmseal_config::{Require, Secrets};
    /// # fn check(secrets: &Secrets) -> Result<(), kmseal_config::Error> {
    /// secrets.check(&[
    ///     Require::secret("database.password").min_len(16),
    ///     Require::secret("jwt.secret").min_len(32),
    ///     Require::present("database.host"),
    /// ])?;
    /// # Ok(()) }
    /// ```
    pub fn check(&self, rules: &[Require]) -> Result<(), Error> {
        let findings = self.findings(rules);
        if findings.is_empty() {
            Ok(())
        } else {
            Err(Error::Requirements(
                findings.iter().map(ToString::to_string).collect(),
            ))
        }
    }

    /// Every problem `rules` find, path by path (for a report: `kmseal config check`,
    /// a CI job); empty when all are met. Never carries a value.
    pub fn findings(&self, rules: &[Require]) -> Vec<Finding> {
        let mut findings = Vec::new();
        for r in rules {
            let value = match self.get(r.path()) {
                None => None,
                Some(Entry::Plain { value, .. }) => Some((value.as_str(), false)),
                Some(Entry::Secret { value, .. }) => Some((value.expose_secret(), true)),
            };
            findings.extend(r.problems(value).into_iter().map(|problem| Finding {
                path: r.path().to_owned(),
                problem,
            }));
        }
        findings
    }

    /// The non-secret values as a JSON tree (typed), for ordinary config structs through
    /// serde. Secrets are left out.
    pub fn plain_json(&self) -> serde_json::Value {
        let mut root = serde_json::Value::Object(Default::default());
        for (path, e) in &self.entries {
            let Entry::Plain { kind, value } = e else {
                continue;
            };
            let v = match kind {
                Kind::Int => value
                    .parse::<i64>()
                    .map(serde_json::Value::from)
                    .unwrap_or_else(|_| value.clone().into()),
                Kind::Float => value
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(serde_json::Value::Number)
                    .unwrap_or_else(|| value.clone().into()),
                Kind::Bool => serde_json::Value::Bool(value.eq_ignore_ascii_case("true")),
                Kind::Other => serde_json::Value::Null,
                Kind::Str | Kind::Datetime => value.clone().into(),
            };
            insert(&mut root, &path.0, v);
        }
        root
    }

    /// Deserializes the non-secret values into `T`.
    pub fn deserialize_plain<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_value(self.plain_json()).map_err(|e| Error::Unsupported(e.to_string()))
    }

    /// Environment variable names and values for every value: the path's keys upper-cased
    /// and joined with `_` (list positions as numbers), other characters replaced by `_`
    /// (`db.password` → `DB_PASSWORD`). For a `.env` document the names are its own.
    pub fn env_vars(&self) -> Vec<(String, &str)> {
        self.entries
            .iter()
            .map(|(p, e)| {
                let name = match (&p.0[..], self.keep_names) {
                    ([Seg::Key(k)], true) => k.clone(),
                    _ => env_name(p),
                };
                let value = match e {
                    Entry::Secret { value, .. } => value.expose_secret(),
                    Entry::Plain { value, .. } => value.as_str(),
                };
                (name, value)
            })
            .collect()
    }

    /// Adds (or replaces) a secret at the top-level key `name`: a value that came from
    /// elsewhere (`kmseal exec --env NAME=REF`), so that requirements and redaction see it.
    pub fn insert_secret(&mut self, name: &str, value: SecretString) {
        let path = Path::root().key(name);
        let entry = Entry::Secret {
            kind: Kind::Str,
            value,
        };
        if self.index.contains_key(&path) {
            self.replace(&path, entry);
        } else {
            self.push(path, entry);
        }
    }

    /// Adds every secret value (encrypted ones, and references resolved into secrets) to
    /// `redactor`, labelled by its path, so logs and output that repeat one show
    /// `[REDACTED:path]` instead. Plain values are not secrets and are not added.
    pub fn add_to_redactor(&self, redactor: &mut kmseal::redact::Redactor) -> Result<(), Error> {
        for (path, entry) in &self.entries {
            if let Entry::Secret { value, .. } = entry {
                redactor.add(&path.to_string(), value.expose_secret().as_bytes())?;
            }
        }
        Ok(())
    }

    /// Sets every value of [`env_vars`](Self::env_vars) in `cmd`'s environment (nothing is
    /// written to disk; the operating system copies the environment into the child).
    pub fn apply_env(&self, cmd: &mut std::process::Command) {
        for (k, v) in self.env_vars() {
            cmd.env(k, v);
        }
    }
}

pub(crate) fn env_name(p: &Path) -> String {
    let parts: Vec<String> =
        p.0.iter()
            .map(|s| match s {
                Seg::Key(k) => k
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() {
                            c.to_ascii_uppercase()
                        } else {
                            '_'
                        }
                    })
                    .collect(),
                Seg::Index(i) => i.to_string(),
            })
            .collect();
    parts.join("_")
}

fn insert(node: &mut serde_json::Value, path: &[Seg], v: serde_json::Value) {
    let Some((first, rest)) = path.split_first() else {
        *node = v;
        return;
    };
    match first {
        Seg::Key(k) => {
            if !node.is_object() {
                *node = serde_json::Value::Object(Default::default());
            }
            if let Some(map) = node.as_object_mut() {
                let child = map.entry(k.clone()).or_insert(serde_json::Value::Null);
                insert(child, rest, v);
            }
        }
        Seg::Index(i) => {
            if !node.is_array() {
                *node = serde_json::Value::Array(Vec::new());
            }
            if let Some(arr) = node.as_array_mut() {
                while arr.len() <= *i {
                    arr.push(serde_json::Value::Null);
                }
                insert(&mut arr[*i], rest, v);
            }
        }
    }
}
