//! [`Secrets`]: a decrypted config document in process memory, secret strings locked.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use kmseal::SecretString;

use crate::Error;
use crate::crypto::Kind;
use crate::path::{Path, Seg};
use crate::require::{Finding, Problem, Require};

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
    /// When each value was set, where the document records it (format version 4).
    pub(crate) set_at: HashMap<Path, SystemTime>,
    /// The document's requirements and any added with
    /// [`add_requirements`](Secrets::add_requirements).
    pub(crate) rules: Vec<Require>,
    /// Previous values kept through a grace period, with the end of it (`None`: a store's
    /// previous version, kept as long as the store keeps it).
    pub(crate) previous: Vec<(Path, SecretString, Option<SystemTime>)>,
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

    pub(crate) fn get_path(&self, p: &Path) -> Option<&Entry> {
        self.index.get(p).map(|&i| &self.entries[i].1)
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

    /// When the value at `path` was last set: the time the document recorded (format version
    /// 4; a re-seal that leaves a value unchanged keeps its time) or, for a resolved `ref+`
    /// reference, the creation time of the store's version. `None` when not known.
    pub fn set_at(&self, path: &str) -> Option<SystemTime> {
        let p = Path::parse(path).ok()?;
        self.set_at_path(&p)
    }

    fn set_at_path(&self, p: &Path) -> Option<SystemTime> {
        match self.resolutions.get(p) {
            Some(r) => r.version.created,
            None => self.set_at.get(p).copied(),
        }
    }

    /// The previous value at `path`, kept through the grace period of a rotation
    /// ([`Sealer::keep_previous`](crate::Sealer::keep_previous)); `None` once it is over.
    /// For a `ref+` reference, the store's previous version once
    /// [`resolve_previous_versions`](Self::resolve_previous_versions) has read it. A service
    /// that verifies tokens or keys accepts this one too meanwhile.
    pub fn previous(&self, path: &str) -> Option<&SecretString> {
        let p = Path::parse(path).ok()?;
        let now = SystemTime::now();
        self.previous
            .iter()
            .find(|(q, _, until)| *q == p && until.is_none_or(|t| now < t))
            .map(|(_, v, _)| v)
    }

    /// The requirements the document carries (format version 4, under its metadata MAC),
    /// and any added with [`add_requirements`](Self::add_requirements).
    pub fn requirements(&self) -> &[Require] {
        &self.rules
    }

    /// Adds requirements to those the document carries (for this process only: command-line
    /// rules, a service's own floor). Aliases among them name environment variables too.
    pub fn add_requirements(&mut self, rules: impl IntoIterator<Item = Require>) {
        self.rules.extend(rules);
    }

    /// [`check`](Self::check) against [`requirements`](Self::requirements): what a service
    /// calls at start-up to fail fast on anything its document declares.
    pub fn check_requirements(&self) -> Result<(), Error> {
        self.check(&self.rules)
    }

    /// Checks every rule and reports everything missing, weak or overdue for rotation in
    /// one error, so a service fails fast at start-up instead of running with blank
    /// defaults. Values are never quoted. Warnings (due soon) fail nothing.
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
        let failures: Vec<String> = self
            .findings(rules)
            .iter()
            .filter(|f| !f.problem.is_warning())
            .map(ToString::to_string)
            .collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Error::Requirements(failures))
        }
    }

    /// Every problem `rules` find now, path by path (for a report: `kmseal config check`,
    /// a CI job); empty when all are met. Never carries a value.
    pub fn findings(&self, rules: &[Require]) -> Vec<Finding> {
        self.findings_at(rules, SystemTime::now(), Duration::ZERO)
    }

    /// [`findings`](Self::findings) as of `now`, with a warning
    /// ([`Problem::DueSoon`]) for each value whose rotation interval ends within
    /// `warn_within`.
    pub fn findings_at(
        &self,
        rules: &[Require],
        now: SystemTime,
        warn_within: Duration,
    ) -> Vec<Finding> {
        let mut findings = Vec::new();
        for r in rules {
            let mut report = |path: String, problems: Vec<Problem>| {
                findings.extend(problems.into_iter().map(|problem| Finding {
                    path: path.clone(),
                    problem,
                }));
            };
            let matched: Vec<&(Path, Entry)> = if r.is_glob() {
                self.entries
                    .iter()
                    .filter(|(p, _)| r.matches(&p.to_string()))
                    .collect()
            } else {
                Path::parse(r.path())
                    .ok()
                    .and_then(|p| self.index.get(&p))
                    .map(|&i| &self.entries[i])
                    .into_iter()
                    .collect()
            };
            if matched.is_empty() {
                report(r.path().to_owned(), vec![Problem::Missing]);
            }
            for (path, entry) in matched {
                let value = match entry {
                    Entry::Plain { value, .. } => (value.as_str(), false),
                    Entry::Secret { value, .. } => (value.expose_secret(), true),
                };
                let age = self
                    .set_at_path(path)
                    .map(|t| now.duration_since(t).unwrap_or_default());
                let mut problems = r.problems(Some(value));
                problems.extend(r.age_problems(age, warn_within));
                report(path.to_string(), problems);
            }
        }
        for (path, name) in self.names(rules).conflicts {
            findings.push(Finding {
                path,
                problem: Problem::NameConflict { name },
            });
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
    /// (`db.password` → `DB_PASSWORD`). For a `.env` document the names are its own. A
    /// value is also given under every alias of the requirements that match its path, and a
    /// [`previous`](Self::previous) value under each of its names with `_PREVIOUS` appended
    /// (`JWT_SECRET_PREVIOUS`). A name the document defines is never replaced, and an alias
    /// that would name two values is given to none: [`findings`](Self::findings) reports
    /// both as [`Problem::NameConflict`].
    pub fn env_vars(&self) -> Vec<(String, &str)> {
        let names = self.names(&self.rules);
        let mut out: Vec<(String, &str)> = Vec::with_capacity(names.assigned.len());
        for (name, at) in &names.assigned {
            let value = match at {
                Source::Entry(i) => entry_text(&self.entries[*i].1),
                Source::Previous(i) => self.previous[*i].1.expose_secret(),
            };
            out.push((name.clone(), value));
        }
        out
    }

    /// Every environment name and what it gives (document names first), and the names that
    /// conflict, by the path they were meant for.
    fn names(&self, rules: &[Require]) -> Names {
        let mut names = Names::default();
        let mut taken: HashMap<String, Source> = HashMap::new();
        for (i, (p, _)) in self.entries.iter().enumerate() {
            let name = self.name_of(p);
            // Two paths with one name (`a.b` and `a_b`): the first keeps it, as before.
            if !taken.contains_key(&name) {
                taken.insert(name.clone(), Source::Entry(i));
                names.assigned.push((name, Source::Entry(i)));
            }
        }
        // Aliases: each names exactly one value, or none.
        let mut alias_of: Vec<(usize, String)> = Vec::new();
        for r in rules.iter().filter(|r| !r.aliases().is_empty()) {
            let matched: Vec<usize> = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, (p, _))| r.matches(&p.to_string()))
                .map(|(i, _)| i)
                .collect();
            for alias in r.aliases() {
                let conflict = |names: &mut Names, path: String| {
                    names.conflicts.push((path, alias.clone()));
                };
                match (&matched[..], taken.get(alias)) {
                    ([], _) => {}
                    ([i], None) => {
                        taken.insert(alias.clone(), Source::Entry(*i));
                        names.assigned.push((alias.clone(), Source::Entry(*i)));
                        alias_of.push((*i, alias.clone()));
                    }
                    ([i], Some(Source::Entry(j))) if i == j => {}
                    ([i], Some(_)) => conflict(&mut names, self.entries[*i].0.to_string()),
                    (_, _) => conflict(&mut names, r.path().to_owned()),
                }
            }
        }
        let now = SystemTime::now();
        for (k, (path, _, until)) in self.previous.iter().enumerate() {
            if until.is_some_and(|t| now >= t) {
                continue;
            }
            let own = self.index.get(path).copied();
            let bases = std::iter::once(self.name_of(path)).chain(
                alias_of
                    .iter()
                    .filter(|(i, _)| Some(*i) == own)
                    .map(|(_, a)| a.clone()),
            );
            for base in bases {
                let name = format!("{base}_PREVIOUS");
                if taken.contains_key(&name) {
                    names.conflicts.push((path.to_string(), name));
                } else {
                    taken.insert(name.clone(), Source::Previous(k));
                    names.assigned.push((name, Source::Previous(k)));
                }
            }
        }
        names
    }

    /// The environment name of the value at `p`.
    fn name_of(&self, p: &Path) -> String {
        match (&p.0[..], self.keep_names) {
            ([Seg::Key(k)], true) => k.clone(),
            _ => env_name(p),
        }
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
        for (path, value, _) in &self.previous {
            redactor.add(
                &format!("{path} (previous)"),
                value.expose_secret().as_bytes(),
            )?;
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

/// What an environment name gives: a value (by entry) or a previous value (by position).
#[derive(Clone, Copy)]
enum Source {
    Entry(usize),
    Previous(usize),
}

/// The environment names of a document and its requirements.
#[derive(Default)]
struct Names {
    assigned: Vec<(String, Source)>,
    /// (path, name): a name that would replace another or name two values.
    conflicts: Vec<(String, String)>,
}

fn entry_text(e: &Entry) -> &str {
    match e {
        Entry::Secret { value, .. } => value.expose_secret(),
        Entry::Plain { value, .. } => value.as_str(),
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
