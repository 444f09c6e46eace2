//! Repository rules: a `.kmseal.toml` at the top of a git repository says, per path glob,
//! which keys a new document is wrapped under, which values are encrypted or kept plain, the
//! encryption context, and the requirements the document carries. Only the rules file at the
//! top of the git work tree counts, never one in a subdirectory or above the repository.
//! `kmseal config encrypt FILE` with no flags applies the first matching rule; `kmseal scan`
//! checks, without any key, that every file a rule matches is sealed, well formed, and has
//! every value the rule selects encrypted ([`Rule::check`]).
//!
//! ```toml
//! # .kmseal.toml
//! [[rules]]
//! path = "deploy/prod/*.yaml"      # relative to this file; `*` matches any run, `/` included
//! keys = ["aws-kms://arn:aws:kms:eu-west-1:111122223333:alias/prod-config"]
//! encrypt = ["*password*", "*secret*", "*token*"]   # default: every value
//! plain = ["*_host"]
//! context = { env = "prod" }
//! require = ["database.password:min_len=16,max_age=90d"]
//!
//! [[rules]]
//! path = "*.env"
//! keys = ["local:///etc/kmseal/dev.key"]
//! ```
//!
//! The rules are project configuration, reviewed like code: what they say is applied, never
//! trusted as a secret. They do not weaken anything a sealed document already carries under
//! its MACs: a narrower `encrypt` list still needs `--declassify` to decrypt a value into the
//! clear, and a document's own requirements stay unless the rule names the same path.

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};

use crate::{Codec, Error, Format, Policy, Require, crypto, glob, meta::Meta};

/// The rules file's name.
pub const RULES_FILE: &str = ".kmseal.toml";

/// The rules of one `.kmseal.toml`, in the order written (the first match applies).
#[derive(Debug, Clone)]
pub struct RepoRules {
    dir: PathBuf,
    rules: Vec<Rule>,
}

/// One `[[rules]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rule {
    /// The path glob, relative to the directory of the rules file.
    pub path: String,
    /// Key URIs a new document is wrapped under (every one of them).
    pub keys: Vec<String>,
    /// Which values are encrypted (`encrypt`, `plain`); `None`: every value.
    pub policy: Option<Policy>,
    /// Encryption context pairs for new documents.
    pub context: Vec<(String, String)>,
    /// Requirements the document carries (merged over its own, by path).
    pub require: Vec<Require>,
}

/// What [`Rule::check`] found wrong with a document, by kind; never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuleProblem {
    /// The file does not parse in its format, or has no kmseal metadata block.
    NotSealed,
    /// Sealed, but its metadata or an encrypted value is malformed (what is wrong, no value).
    Malformed(String),
    /// A value the rule says to encrypt is in the clear.
    NotEncrypted {
        /// The value's path.
        path: String,
        /// Its 1-based line, where the format keeps positions (not TOML).
        line: Option<usize>,
    },
    /// The document does not carry one of the rule's requirements (its text form).
    MissingRequirement(String),
    /// The document's encryption context is not the rule's.
    WrongContext,
    /// The document's data key is wrapped under a different number of keys than the rule
    /// names (a key added with `-k`, say). Which keys they are needs each provider's key id,
    /// and is not checked here.
    WrongKeyCount {
        /// How many keys the rule names.
        expected: usize,
        /// How many wrapped keys the document has.
        found: usize,
    },
}

impl std::fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleProblem::NotSealed => write!(f, "not a sealed kmseal document"),
            RuleProblem::Malformed(why) => write!(f, "malformed: {why}"),
            RuleProblem::NotEncrypted { path, .. } => write!(f, "`{path}` is not encrypted"),
            RuleProblem::MissingRequirement(r) => {
                write!(f, "does not carry the requirement `{r}`")
            }
            RuleProblem::WrongContext => write!(f, "its encryption context is not the rule's"),
            RuleProblem::WrongKeyCount { expected, found } => write!(
                f,
                "wrapped under {found} keys where the rule names {expected}"
            ),
        }
    }
}

impl RepoRules {
    /// Parses the text of a rules file that lives in `dir`. Unknown keys are refused (a typo
    /// must not silently leave files unprotected), and every requirement is validated.
    pub fn parse(text: &str, dir: impl Into<PathBuf>) -> Result<RepoRules, Error> {
        let bad = |what: String| Error::Rules(format!("{RULES_FILE}: {what}"));
        let doc: toml_edit::DocumentMut = text
            .parse()
            .map_err(|e: toml_edit::TomlError| bad(crate::without_quoted_text(e.message())))?;
        let mut rules = Vec::new();
        for (key, item) in doc.iter() {
            if key != "rules" {
                return Err(bad(format!(
                    "unknown key `{}` (expected [[rules]] tables)",
                    kmseal::escape_untrusted(key)
                )));
            }
            let tables = item
                .as_array_of_tables()
                .ok_or_else(|| bad("`rules` must be written as [[rules]] tables".into()))?;
            for (n, table) in tables.iter().enumerate() {
                rules.push(parse_rule(table).map_err(|w| bad(format!("rule {}: {w}", n + 1)))?);
            }
        }
        Ok(RepoRules {
            dir: dir.into(),
            rules,
        })
    }

    /// Reads the rules of the repository `file` is in: the `.kmseal.toml` at the top of its
    /// git work tree (the nearest directory above it with a `.git`), and only there. Rules
    /// files in subdirectories or above the repository are never read: a file dropped into
    /// `deploy/prod/` (or `/tmp`) must not redirect keys or narrow what is encrypted.
    /// `Ok(None)`: not in a git work tree, or no rules file at its top.
    pub fn find(file: &FsPath) -> Result<Option<RepoRules>, Error> {
        let Some(root) = repository_root(file) else {
            return Ok(None);
        };
        let candidate = root.join(RULES_FILE);
        match read_rules_file(&candidate) {
            Ok(text) => Self::parse(&text, &root)
                .map(Some)
                .map_err(|e| Error::Rules(format!("{}: {e}", root.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Rules(format!(
                "cannot read {}: {e}",
                candidate.display()
            ))),
        }
    }

    /// The directory the rules file is in (rule paths are relative to it).
    pub fn dir(&self) -> &FsPath {
        &self.dir
    }

    /// Every rule, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The first rule whose glob matches `file` (relative to [`dir`](Self::dir); a relative
    /// `file` is taken from the current directory). `None` for files outside the directory.
    pub fn rule_for(&self, file: &FsPath) -> Option<&Rule> {
        let abs = absolute(file);
        let rel = abs.strip_prefix(absolute(&self.dir)).ok()?;
        let rel = rel.to_str()?;
        self.rule_for_relative(rel)
    }

    /// The first rule whose glob matches `relative`, a `/`-separated path relative to
    /// [`dir`](Self::dir).
    pub fn rule_for_relative(&self, relative: &str) -> Option<&Rule> {
        let rel = relative.trim_start_matches("./");
        self.rules.iter().find(|r| glob(&r.path, rel))
    }
}

/// The most a rules file may hold.
pub const MAX_RULES_FILE: u64 = 1 << 20;

/// A rules file's text: a regular file (not a link to `/dev/zero`) of at most
/// [`MAX_RULES_FILE`] bytes.
pub fn read_rules_file(path: &FsPath) -> std::io::Result<String> {
    use std::io::Read;
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_RULES_FILE + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_RULES_FILE {
        return Err(std::io::Error::other("larger than 1 MiB"));
    }
    Ok(text)
}

/// The top of the git work tree `file` is in: the nearest directory above it (or its own
/// directory) holding a `.git` directory or file (a worktree or submodule).
pub fn repository_root(file: &FsPath) -> Option<PathBuf> {
    let abs = absolute(file);
    let mut dir = abs.parent();
    while let Some(d) = dir {
        if d.join(".git").exists() {
            return Some(d.to_path_buf());
        }
        dir = d.parent();
    }
    None
}

/// `path` made absolute against the current directory, with `.` and `..` resolved in the
/// text (no symlinks followed: a rule is about where a file is named, like git's paths).
fn absolute(path: &FsPath) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn strings(item: &toml_edit::Item, key: &str) -> Result<Vec<String>, String> {
    let arr = item
        .as_array()
        .ok_or_else(|| format!("`{key}` must be a list of strings"))?;
    arr.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("`{key}` must be a list of strings"))
        })
        .collect()
}

fn parse_rule(table: &toml_edit::Table) -> Result<Rule, String> {
    let mut rule = Rule {
        path: String::new(),
        keys: Vec::new(),
        policy: None,
        context: Vec::new(),
        require: Vec::new(),
    };
    let (mut encrypt, mut plain) = (None, None);
    for (key, item) in table.iter() {
        match key {
            "path" => {
                rule.path = item
                    .as_str()
                    .ok_or("`path` must be a string (a glob)")?
                    .to_owned();
            }
            "keys" => rule.keys = strings(item, key)?,
            "encrypt" => encrypt = Some(strings(item, key)?),
            "plain" => plain = Some(strings(item, key)?),
            "context" => {
                let t = item
                    .as_table_like()
                    .ok_or("`context` must be a table of strings")?;
                for (k, v) in t.iter() {
                    let v = v.as_str().ok_or("`context` values must be strings")?;
                    rule.context.push((k.to_owned(), v.to_owned()));
                }
            }
            "require" => {
                for text in strings(item, key)? {
                    let r: Require = text.parse().map_err(|e: Error| format!("`require`: {e}"))?;
                    r.validate().map_err(|e| e.to_string())?;
                    rule.require.push(r);
                }
            }
            other => {
                return Err(format!(
                    "unknown key `{}` (path, keys, encrypt, plain, context, require)",
                    kmseal::escape_untrusted(other)
                ));
            }
        }
    }
    if rule.path.is_empty() {
        return Err("no `path`".into());
    }
    if encrypt.is_some() || plain.is_some() {
        let base = match encrypt {
            Some(e) if e.is_empty() => {
                return Err("`encrypt` is empty (omit it for every value)".into());
            }
            Some(e) => Policy::only(e),
            None => Ok(Policy::default()),
        }
        .map_err(|e| e.to_string())?;
        rule.policy = Some(
            base.except(plain.unwrap_or_default())
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(rule)
}

impl Rule {
    /// The document's requirements with this rule's merged over them: a rule replaces the
    /// document's requirement on the same path and adds the others.
    pub fn merge_requirements(&self, existing: &[Require]) -> Vec<Require> {
        let mut out: Vec<Require> = existing
            .iter()
            .filter(|r| !self.require.iter().any(|mine| mine.path() == r.path()))
            .cloned()
            .collect();
        out.extend(self.require.iter().cloned());
        out
    }

    /// Checks `text` against this rule without any key: it must be a sealed document in
    /// `format` whose metadata and encrypted values are well formed, with every value the
    /// rule selects encrypted, carrying every requirement of the rule. The MACs are not
    /// verified (that needs the key: `kmseal config check`); this is what a pre-commit hook
    /// can see. Empty: nothing wrong.
    pub fn check(&self, text: &str, format: Format) -> Vec<RuleProblem> {
        let Ok(codec) = Codec::parse(text, format) else {
            return vec![RuleProblem::NotSealed];
        };
        let Some(fields) = codec.meta() else {
            return vec![RuleProblem::NotSealed];
        };
        let meta = match Meta::parse(fields) {
            Ok(m) => m,
            Err(e) => return vec![RuleProblem::Malformed(e.to_string())],
        };
        let mut found = Vec::new();
        let policy = self.policy.clone().unwrap_or_default();
        for leaf in codec.leaves() {
            let encrypted = leaf.kind == crate::Kind::Str && crypto::is_encrypted(&leaf.value);
            if encrypted {
                if !crypto::is_well_formed(&leaf.value) {
                    found.push(RuleProblem::Malformed(format!(
                        "the encrypted value at `{}` is malformed",
                        leaf.path
                    )));
                }
            } else if leaf.kind != crate::Kind::Other && policy.selects(&leaf.path) {
                let line = (leaf.span.end > 0)
                    .then(|| text.get(..leaf.span.start))
                    .flatten()
                    .map(|before| before.matches('\n').count() + 1);
                found.push(RuleProblem::NotEncrypted {
                    path: leaf.path.to_string(),
                    line,
                });
            }
        }
        if !self.context.is_empty() {
            let mut want: Vec<(&str, &str)> = self
                .context
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            want.sort_unstable();
            let mut have: Vec<(&str, &str)> = meta.header.context().iter().collect();
            have.sort_unstable();
            if want != have {
                found.push(RuleProblem::WrongContext);
            }
        }
        let wrapped = meta.header.wrapped_keys().len();
        if !self.keys.is_empty() && wrapped != self.keys.len() {
            found.push(RuleProblem::WrongKeyCount {
                expected: self.keys.len(),
                found: wrapped,
            });
        }
        let carried: HashMap<String, String> = meta
            .rules
            .iter()
            .map(|r| (r.path().to_owned(), r.to_string()))
            .collect();
        for r in &self.require {
            if carried.get(r.path()) != Some(&r.to_string()) {
                found.push(RuleProblem::MissingRequirement(r.to_string()));
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
[[rules]]
path = "deploy/prod/*.yaml"
keys = ["aws-kms://arn:aws:kms:eu-west-1:111122223333:alias/prod"]
encrypt = ["*password*", "*token"]
plain = ["admin_password_hint"]
context = { env = "prod", app = "billing" }
require = ["database.password:min_len=16,max_age=90d"]

[[rules]]
path = "*.env"
keys = ["local:///tmp/dev.key"]
"#;

    #[test]
    fn rules_parse_and_the_first_match_applies() -> Result<(), Error> {
        let rules = RepoRules::parse(RULES, "/repo")?;
        assert_eq!(rules.rules().len(), 2);
        let prod = rules
            .rule_for(FsPath::new("/repo/deploy/prod/app.yaml"))
            .ok_or(Error::Crypto("no rule"))?;
        assert_eq!(prod.path, "deploy/prod/*.yaml");
        assert_eq!(prod.context.len(), 2);
        assert_eq!(
            prod.require[0].to_string(),
            "database.password:min_len=16,max_age=90d"
        );
        let policy = prod.policy.clone().ok_or(Error::Crypto("no policy"))?;
        assert!(policy.selects(&crate::Path::root().key("db").key("password")));
        assert!(!policy.selects(&crate::Path::root().key("admin_password_hint")));
        assert!(!policy.selects(&crate::Path::root().key("host")));
        // `*` crosses directories; paths outside the rules' directory match nothing.
        assert_eq!(
            rules
                .rule_for_relative("services/a/.env")
                .map(|r| r.keys[0].as_str()),
            Some("local:///tmp/dev.key")
        );
        assert!(rules.rule_for(FsPath::new("/elsewhere/x.env")).is_none());
        assert!(
            rules
                .rule_for(FsPath::new("/repo/deploy/prod/app.json"))
                .is_none()
        );
        assert!(
            rules
                .rule_for(FsPath::new("/repo/deploy/staging/../prod/app.yaml"))
                .is_some()
        );
        Ok(())
    }

    #[test]
    fn mistakes_in_the_rules_file_are_refused_with_what_is_wrong() {
        for (text, expect) in [
            ("[[rule]]\npath = \"x\"\n", "unknown key `rule`"),
            (
                "[[rules]]\npath = \"x\"\nencrpyt = [\"*\"]\n",
                "unknown key `encrpyt`",
            ),
            ("[[rules]]\nkeys = [\"local:///k\"]\n", "no `path`"),
            (
                "[[rules]]\npath = \"x\"\nkeys = \"local:///k\"\n",
                "`keys` must be a list",
            ),
            (
                "[[rules]]\npath = \"x\"\nencrypt = []\n",
                "`encrypt` is empty",
            ),
            (
                "[[rules]]\npath = \"x\"\nrequire = [\"a:min_len=x\"]\n",
                "rule 1: `require`",
            ),
            (
                "[[rules]]\npath = \"x\"\nrequire = [\"a:generate=hex:16,min_len=64\"]\n",
                "fewer than min_len",
            ),
            (
                "[[rules]]\npath = \"x\"\ncontext = { a = 1 }\n",
                "`context` values must be strings",
            ),
            ("rules = 3\n", "[[rules]] tables"),
            ("[[rules]\n", ".kmseal.toml:"),
        ] {
            let err = RepoRules::parse(text, "/r")
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expect), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_readme_example_parses() -> Result<(), Error> {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("```toml\n# .kmseal.toml")
            .ok_or(Error::Crypto("no example"))?;
        let block = &readme[start + 8..];
        let block = &block[..block.find("```").ok_or(Error::Crypto("unterminated"))?];
        let rules = RepoRules::parse(block, "/repo")?;
        assert_eq!(rules.rules().len(), 2);
        assert_eq!(rules.rules()[0].keys.len(), 2);
        assert!(rules.rule_for_relative("svc/.env").is_some());
        Ok(())
    }

    #[test]
    fn requirements_merge_by_path() -> Result<(), Error> {
        let rules = RepoRules::parse(RULES, "/repo")?;
        let rule = &rules.rules()[0];
        let own: Vec<Require> = vec![
            "database.password:min_len=8".parse()?,
            "jwt.secret:min_len=32".parse()?,
        ];
        let merged: Vec<String> = rule
            .merge_requirements(&own)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            merged,
            [
                "jwt.secret:min_len=32",
                "database.password:min_len=16,max_age=90d"
            ]
        );
        Ok(())
    }
}
