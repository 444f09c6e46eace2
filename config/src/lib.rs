//! Value-level encryption of YAML, JSON, TOML and `.env` config documents, on kmseal's
//! envelope (one data key per document, wrapped by one or more KEKs), decrypted in process
//! memory at start-up.
//!
//! Keys and structure stay readable and diffable; each selected value becomes a string
//! `kmseal:v1:T:…` that records its type and is bound to its path. A metadata block (the
//! top-level `kmseal` key; comment lines in `.env`) holds the wrapped data key and a keyed MAC
//! over every value, every path and the metadata, so removing, adding, reordering or swapping
//! values, within or between documents, is detected. Re-encrypting a document whose values did
//! not change leaves their ciphertexts unchanged (FORMAT.md, "Config documents").
//!
//! ```
//! # kmseal::blocking::block_on(async {
//! use std::sync::Arc;
//! use kmseal::{Decryptor, Encryptor, LocalKek};
//! use kmseal_config::{Format, Policy, Require, Sealer};
//!
//! let kek = Arc::new(LocalKek::generate()?);
//! let sealer = Sealer::new(Encryptor::new(kek.clone()), Decryptor::new(kek.clone()))
//!     .policy(Policy::only(["*password", "*secret"])?);
//! let yaml = "database:\n  host: db.internal # plain\n  password: correct-horse-battery\njwt:\n  secret: 0123456789abcdef0123456789abcdef\n";
//! let sealed = sealer.seal(yaml, Format::Yaml).await?;
//! assert!(sealed.contains("host: db.internal # plain"));
//! assert!(!sealed.contains("correct-horse-battery"));
//!
//! // At start-up: decrypt in memory, fail fast on anything missing or weak.
//! let secrets = kmseal_config::open(&sealed, Format::Yaml, &Decryptor::new(kek)).await?;
//! secrets.check(&[
//!     Require::secret("database.password").min_len(16),
//!     Require::secret("jwt.secret").min_len(32),
//! ])?;
//! assert_eq!(secrets.secret("database.password").unwrap().expose_secret(), "correct-horse-battery");
//! assert_eq!(secrets.plain("database.host"), Some("db.internal"));
//! # Ok::<(), kmseal_config::Error>(())
//! # }).unwrap();
//! ```
#![forbid(unsafe_code)]

mod crypto;
mod doc;
mod dotenv;
mod duration;
mod file;
pub mod git;
mod json;
mod lifecycle;
mod meta;
mod path;
mod references;
pub mod repo;
mod require;
mod seal;
mod secrets;
mod toml;
mod weak;
mod yaml;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use kmseal::rotate::{Outcome, Rotator};
use kmseal::{Decryptor, Header, SecretString};

pub use crypto::Kind;
pub use duration::{format_duration, parse_duration};
pub use file::{Document, FormatClues};
pub use path::{Path, Seg};
pub use references::{REF_PREFIX, Resolution, is_sealed, read_unsealed};
pub use require::{Finding, Problem, Require, is_env_name};
pub use seal::Sealer;
pub use secrets::{Entry, Secrets};
pub use weak::{estimate_entropy_bits, is_placeholder};

use crypto::{DocKeys, LABEL};
use doc::{Leaf, MetaFields, Repr};
use meta::Meta;

/// How each format writes a string value, exactly as sealing and decryption write them: for
/// tools that produce documents kmseal reads back (`kmseal import sops`).
///
/// ```
/// assert_eq!(kmseal_config::quote::json("a\"b\n"), r#""a\"b\n""#);
/// assert_eq!(kmseal_config::quote::yaml("yes"), r#""yes""#);
/// assert_eq!(kmseal_config::quote::dotenv("plain"), "plain");
/// assert_eq!(kmseal_config::quote::dotenv("x y$"), r#""x y\$""#);
/// ```
pub mod quote {
    /// A JSON string literal.
    pub fn json(s: &str) -> String {
        crate::json::quote(s)
    }

    /// A double-quoted YAML scalar (a string to YAML 1.1 and 1.2 readers alike).
    pub fn yaml(s: &str) -> String {
        crate::yaml::quote(s)
    }

    /// A `.env` value: bare when nothing in it needs quoting, else double-quoted with the
    /// escapes the `.env` reader takes (`\n \r \t \" \\ \$ \``).
    pub fn dotenv(s: &str) -> String {
        crate::dotenv::quote(s)
    }
}

/// What can go wrong. Messages name paths and lines, never values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The envelope (KEKs, header, context).
    #[error(transparent)]
    Kmseal(#[from] kmseal::Error),
    /// The document does not parse.
    #[error("{format} syntax error at line {line}: {message}")]
    Parse {
        /// YAML, JSON, TOML or .env.
        format: &'static str,
        /// 1-based line (0 when unknown).
        line: usize,
        /// What the parser said.
        message: String,
    },
    /// The metadata block is missing or malformed.
    #[error("kmseal metadata: {0}")]
    Metadata(String),
    /// A value or the document was changed after it was sealed.
    #[error("the document was modified after it was sealed: {0}")]
    Tampered(String),
    /// [`Sealer::seal`] found values that differ from the document's last verified state
    /// (edited in plaintext, or by someone without the key). One entry per difference, by
    /// path. Review them, then seal with [`Sealer::accept_changes`] (CLI `--accept-changes`).
    #[error(
        "the document differs from its last seal: {}; review the changes (git diff), then \
         seal again with --accept-changes (library: Sealer::accept_changes)",
        .0.join(", ")
    )]
    Changed(Vec<String>),
    /// Sealing would write encrypted values back in plaintext (the policy no longer selects
    /// them). Allowed only with [`Sealer::declassify`] (CLI `--declassify`).
    #[error(
        "sealing would decrypt {} into plaintext; pass --declassify (library: \
         Sealer::declassify) if that is really meant",
        .0.join(", ")
    )]
    Declassify(Vec<String>),
    /// References (`ref+URI` values) that could not be resolved or parsed: every one, by path
    /// and reference, with the store's reason (never a value).
    #[error("secret references could not be resolved: {}", .0.join("; "))]
    References(Vec<String>),
    /// Start-up requirements not met (every problem, one per entry).
    #[error("configuration requirements not met: {}", .0.join("; "))]
    Requirements(Vec<String>),
    /// Something this crate does not handle.
    #[error("{0}")]
    Unsupported(String),
    /// A repository rules file (`.kmseal.toml`) cannot be read or is wrong.
    #[error("{0}")]
    Rules(String),
    /// An internal cryptographic failure.
    #[error("{0}")]
    Crypto(&'static str),
}

impl From<std::str::Utf8Error> for Error {
    fn from(_: std::str::Utf8Error) -> Self {
        Error::Unsupported("a decrypted value is not UTF-8".into())
    }
}

/// A parser's message with every backtick-quoted span (text from the document) replaced by
/// `…`: a syntax error must not carry a value into logs.
pub(crate) fn without_quoted_text(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        match (c, inside) {
            ('`', false) => {
                inside = true;
                out.push_str("`…");
            }
            ('`', true) => {
                inside = false;
                out.push('`');
            }
            (_, false) => out.push(c),
            (_, true) => {}
        }
    }
    if inside {
        out.push('`');
    }
    out
}

/// A document format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML (one document, a block mapping at the root).
    Yaml,
    /// JSON (an object at the root).
    Json,
    /// TOML.
    Toml,
    /// `.env` (`KEY=value` lines).
    Dotenv,
}

impl Format {
    /// The format a file name suggests: `.yaml`/`.yml`, `.json`, `.toml`, `.env` or a name
    /// starting with `.env`.
    pub fn from_path(path: &std::path::Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?;
        let ext = name.rsplit('.').next().unwrap_or("");
        match ext {
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            "toml" => Some(Format::Toml),
            "env" => Some(Format::Dotenv),
            _ if name.starts_with(".env") => Some(Format::Dotenv),
            _ => None,
        }
    }

    /// The format of a **sealed** document, told by its content when its name does not
    /// (`app.yaml.enc`, `secrets.kmseal`, stdin): the one format in which `text` parses
    /// *and* holds a kmseal metadata block. JSON is tried first (every JSON document is also
    /// YAML), then TOML, `.env` and YAML. `None` when no format finds a metadata block.
    ///
    /// ```
    /// # kmseal::blocking::block_on(async {
    /// use std::sync::Arc;
    /// use kmseal::{Decryptor, Encryptor, LocalKek};
    /// use kmseal_config::{Format, Sealer};
    ///
    /// let kek = Arc::new(LocalKek::generate()?);
    /// let sealer = Sealer::new(Encryptor::new(kek.clone()), Decryptor::new(kek));
    /// let sealed = sealer.seal("DB_PASSWORD=hunter2-hunter2\n", Format::Dotenv).await?;
    /// assert_eq!(Format::of_sealed(&sealed), Some(Format::Dotenv));
    /// assert_eq!(Format::of_sealed("DB_PASSWORD=hunter2-hunter2\n"), None); // not sealed
    /// # Ok::<(), kmseal_config::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn of_sealed(text: &str) -> Option<Format> {
        [Format::Json, Format::Toml, Format::Dotenv, Format::Yaml]
            .into_iter()
            .find(|&f| {
                Codec::parse(text, f)
                    .map(|c| {
                        let found = c.meta().is_some();
                        c.wipe();
                        found
                    })
                    .unwrap_or(false)
            })
    }

    /// Parses `yaml`, `json`, `toml` or `env`.
    pub fn from_name(name: &str) -> Option<Format> {
        match name.to_ascii_lowercase().as_str() {
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            "toml" => Some(Format::Toml),
            "env" | "dotenv" | ".env" => Some(Format::Dotenv),
            _ => None,
        }
    }
}

/// Which values are encrypted: those whose key (the last mapping key on their path; list
/// items go by their list's key) matches an `encrypt` pattern and no `plain` pattern.
/// Patterns are case-sensitive globs where `*` matches any run of characters. The default
/// encrypts everything. The policy is stored in the document's metadata (and covered by its
/// MAC), so later edits follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub(crate) encrypt: Vec<String>,
    pub(crate) plain: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            encrypt: vec!["*".into()],
            plain: Vec::new(),
        }
    }
}

/// Whether `s` matches `pattern`, where `*` matches any run of characters (`/` and `.`
/// included) and everything else matches itself: the globs of policies, requirements and
/// `kmseal scan`'s allow list.
///
/// ```
/// assert!(kmseal_config::glob("tests/*", "tests/fixtures/key.pem"));
/// assert!(kmseal_config::glob("*_password", "db_password"));
/// assert!(!kmseal_config::glob("a*b*c", "aXcYb"));
/// ```
pub fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first)
        || !s[first.len()..].ends_with(last)
        || s.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

fn check_patterns(v: &[String]) -> Result<(), Error> {
    match v.iter().find(|p| p.is_empty() || p.contains(',')) {
        Some(p) => Err(Error::Unsupported(format!(
            "`{p}` is not a key pattern (non-empty, no commas)"
        ))),
        None => Ok(()),
    }
}

impl Policy {
    /// Encrypt only values whose key matches one of `patterns` (e.g. `*_password`).
    pub fn only<I, S>(patterns: I) -> Result<Policy, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let encrypt: Vec<String> = patterns.into_iter().map(Into::into).collect();
        check_patterns(&encrypt)?;
        Ok(Policy {
            encrypt,
            plain: Vec::new(),
        })
    }

    /// Never encrypt values whose key matches one of `patterns` (an explicit opt-out).
    pub fn except<I, S>(mut self, patterns: I) -> Result<Policy, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let plain: Vec<String> = patterns.into_iter().map(Into::into).collect();
        check_patterns(&plain)?;
        self.plain.extend(plain);
        Ok(self)
    }

    pub(crate) fn selects(&self, path: &Path) -> bool {
        let key = path.last_key().unwrap_or("");
        self.encrypt.iter().any(|p| glob(p, key)) && !self.plain.iter().any(|p| glob(p, key))
    }

    pub(crate) fn from_meta(m: &MetaFields) -> Result<Policy, Error> {
        let split = |s: &str| -> Vec<String> {
            s.split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let p = Policy {
            encrypt: split(&m.encrypt),
            plain: split(&m.plain),
        };
        check_patterns(&p.encrypt)?;
        check_patterns(&p.plain)?;
        Ok(p)
    }
}

/// A parsed document of any format.
enum Codec {
    Yaml(yaml::Yaml),
    Json(json::Json),
    Toml(toml::Toml),
    Dotenv(dotenv::Dotenv),
}

impl Codec {
    pub(crate) fn parse(text: &str, format: Format) -> Result<Codec, Error> {
        Ok(match format {
            Format::Yaml => Codec::Yaml(yaml::Yaml::parse(text)?),
            Format::Json => Codec::Json(json::Json::parse(text)?),
            Format::Toml => Codec::Toml(toml::Toml::parse(text)?),
            Format::Dotenv => Codec::Dotenv(dotenv::Dotenv::parse(text)?),
        })
    }

    fn leaves(&self) -> &[Leaf] {
        match self {
            Codec::Yaml(c) => c.leaves(),
            Codec::Json(c) => c.leaves(),
            Codec::Toml(c) => c.leaves(),
            Codec::Dotenv(c) => c.leaves(),
        }
    }

    /// Structure beyond the values, which the MAC covers from version 3: empty maps and
    /// lists (`{}`, `[]`), YAML tags (`!tag`) and what each YAML alias points at (`*` and the
    /// target's path), each by path.
    fn shape(&self) -> &[(Path, String)] {
        match self {
            Codec::Yaml(c) => c.shape(),
            Codec::Json(c) => c.shape(),
            Codec::Toml(c) => c.shape(),
            Codec::Dotenv(_) => &[],
        }
    }

    /// The structure as MAC items (kind `Other`, text starting with a NUL byte, which no
    /// value of kind `Other` contains), for documents of version 3 and later.
    fn shape_items(&self) -> Vec<meta::Item> {
        self.shape()
            .iter()
            .map(|(p, s)| (p.clone(), Kind::Other, format!("\u{0}{s}")))
            .collect()
    }

    fn meta(&self) -> Option<&MetaFields> {
        match self {
            Codec::Yaml(c) => c.meta(),
            Codec::Json(c) => c.meta(),
            Codec::Toml(c) => c.meta(),
            Codec::Dotenv(c) => c.meta(),
        }
    }

    fn set(&mut self, i: usize, repr: &Repr) -> Result<(), Error> {
        match self {
            Codec::Yaml(c) => c.set(i, repr),
            Codec::Json(c) => c.set(i, repr),
            Codec::Toml(c) => c.set(i, repr)?,
            Codec::Dotenv(c) => c.set(i, repr),
        }
        Ok(())
    }

    /// Zeroizes this crate's copies of the text and values.
    fn wipe(self) {
        use zeroize::Zeroize;
        let (mut leaves, mut text) = match self {
            Codec::Yaml(c) => c.into_parts(),
            Codec::Json(c) => c.into_parts(),
            Codec::Toml(c) => c.into_parts(),
            Codec::Dotenv(c) => c.into_parts(),
        };
        for l in &mut leaves {
            l.value.zeroize();
        }
        text.zeroize();
    }

    fn render(self, meta: Option<&MetaFields>) -> String {
        match self {
            Codec::Yaml(c) => c.render(meta),
            Codec::Json(c) => c.render(meta),
            Codec::Toml(c) => c.render(meta),
            Codec::Dotenv(c) => c.render(meta),
        }
    }
}

/// A verified, opened document, its keys and its metadata.
struct Opened {
    codec: Codec,
    keys: DocKeys,
    meta: Meta,
}

/// Parses, opens the data key, and checks the metadata MAC (version 2) and the document MAC.
async fn open_doc(text: &str, format: Format, dec: &Decryptor) -> Result<Opened, Error> {
    let codec = Codec::parse(text, format)?;
    let fields = codec.meta().ok_or_else(|| {
        Error::Metadata("the document has no kmseal metadata block (not sealed?)".into())
    })?;
    let meta = Meta::parse(fields)?;
    let app_key = dec.open_application_key(&meta.header, LABEL).await?;
    let keys = DocKeys::derive(&app_key);
    meta.verify_metadata(&keys)?;
    let shape = if meta.covers_shape() {
        codec.shape_items()
    } else {
        Vec::new()
    };
    let items = codec
        .leaves()
        .iter()
        .map(|l| (&l.path, l.kind, l.value.as_str()))
        .chain(shape.iter().map(|(p, k, v)| (p, *k, v.as_str())));
    if !meta.document_mac_matches(&keys, items) {
        return Err(Error::Tampered(
            "the document MAC does not match (a value, path or the metadata was changed, \
             added or removed; or values were edited without `kmseal config encrypt`)"
                .into(),
        ));
    }
    Ok(Opened { codec, keys, meta })
}

/// Verifies a sealed document (document MAC, then each value at its path) and decrypts it
/// into [`Secrets`]: secret strings in locked memory, nothing on disk.
pub async fn open(text: &str, format: Format, dec: &Decryptor) -> Result<Secrets, Error> {
    let opened = open_doc(text, format, dec).await?;
    let mut secrets = Secrets::default();
    secrets.keep_names = format == Format::Dotenv;
    let times = opened.meta.times.as_deref().unwrap_or_default();
    for (i, leaf) in opened.codec.leaves().iter().enumerate() {
        // Values come first among the MAC items, in document order; 0 is "not known".
        if let Some(&t) = times.get(i).filter(|&&t| t != 0) {
            secrets
                .set_at
                .insert(leaf.path.clone(), lifecycle::from_unix(t));
        }
        if leaf.kind == Kind::Str && crypto::is_encrypted(&leaf.value) {
            let (kind, pt) = opened.keys.decrypt(&leaf.path, &leaf.value)?;
            let value = SecretString::try_from_bytes(pt)?;
            secrets.push(leaf.path.clone(), Entry::Secret { kind, value });
        } else {
            secrets.push(
                leaf.path.clone(),
                Entry::Plain {
                    kind: leaf.kind,
                    value: leaf.value.clone(),
                },
            );
        }
    }
    secrets.rules = opened.meta.rules.clone();
    let now = lifecycle::unix(std::time::SystemTime::now());
    for p in opened.meta.previous.iter().filter(|p| p.expires > now) {
        let (_, pt) = opened.keys.decrypt_previous(&p.path, p.expires, &p.value)?;
        let value = SecretString::try_from_bytes(pt)?;
        secrets
            .previous
            .push((p.path.clone(), value, Some(lifecycle::from_unix(p.expires))));
    }
    Ok(secrets)
}

/// Whole-blob mode: decrypts a kmseal message whose plaintext is a YAML, JSON, TOML or .env
/// document straight into [`Secrets`], every value a secret (nulls and aliases aside). The
/// plaintext stays in locked memory; this crate's own copies made while parsing are wiped
/// (the TOML and YAML parsers' internal buffers are freed without wiping: see SECURITY.md).
pub async fn open_blob(message: &[u8], format: Format, dec: &Decryptor) -> Result<Secrets, Error> {
    let pt = dec.decrypt(message).await?;
    let text = std::str::from_utf8(pt.expose_secret())?;
    let codec = Codec::parse(text, format)?;
    let mut secrets = Secrets::default();
    secrets.keep_names = format == Format::Dotenv;
    let mut result = Ok(());
    for leaf in codec.leaves() {
        let entry = if leaf.kind == Kind::Other {
            Entry::Plain {
                kind: leaf.kind,
                value: leaf.value.clone(),
            }
        } else {
            match SecretString::copy_from_str(&leaf.value) {
                Ok(value) => Entry::Secret {
                    kind: leaf.kind,
                    value,
                },
                Err(e) => {
                    result = Err(e.into());
                    break;
                }
            }
        };
        secrets.push(leaf.path.clone(), entry);
    }
    codec.wipe();
    result.map(|()| secrets)
}

/// Verifies and decrypts a sealed document back to plaintext text (to edit it, then
/// [`Sealer::seal`] again). With `keep_metadata`, the metadata block stays, so re-sealing
/// reuses the document's data key and unchanged values get their old ciphertexts back.
pub async fn decrypt(
    text: &str,
    format: Format,
    dec: &Decryptor,
    keep_metadata: bool,
) -> Result<String, Error> {
    let mut opened = open_doc(text, format, dec).await?;
    in_plaintext(&mut opened.codec, Some(&opened.keys), None)?;
    let meta = if keep_metadata {
        opened.codec.meta().cloned()
    } else {
        None
    };
    Ok(opened.codec.render(meta.as_ref()))
}

/// The whole document as its service should read it, in its own format: encrypted values
/// decrypted, and every value that `secrets` resolved from a reference (`ref+URI`) replaced
/// by what it resolved to; no metadata block. A sealed document is verified first (`dec`);
/// an unsealed one (`dec` = `None`, as [`read_unsealed`]) is taken as it is. For handing a
/// program a config *file* that never touches a disk (`kmseal exec --template`). Wipe the
/// result when done.
pub async fn render(
    text: &str,
    format: Format,
    dec: Option<&Decryptor>,
    secrets: &Secrets,
) -> Result<zeroize::Zeroizing<String>, Error> {
    let (mut codec, keys) = match dec {
        Some(dec) => {
            let opened = open_doc(text, format, dec).await?;
            (opened.codec, Some(opened.keys))
        }
        None => {
            if is_sealed(text, format)? {
                return Err(Error::Metadata(
                    "the document is sealed: render it with its key".into(),
                ));
            }
            (Codec::parse(text, format)?, None)
        }
    };
    in_plaintext(&mut codec, keys.as_ref(), Some(secrets))?;
    Ok(zeroize::Zeroizing::new(codec.render(None)))
}

/// `edited` (a document decrypted without its metadata block, then edited) with the
/// metadata block of `sealed` attached again, ready for [`Sealer::seal`] (with
/// [`Sealer::accept_changes`]: the edits are the changes). So an editor never shows, and a
/// user never breaks, the metadata; the seal keeps the document's data key, and values left
/// unchanged keep their ciphertexts. Fails if `edited` does not parse (the caller keeps the
/// original) or has a metadata block of its own.
pub fn attach_metadata(edited: &str, format: Format, sealed: &str) -> Result<String, Error> {
    let original = Codec::parse(sealed, format)?;
    let meta = original
        .meta()
        .cloned()
        .ok_or_else(|| Error::Metadata("the original document is not sealed".into()))?;
    original.wipe();
    let codec = Codec::parse(edited, format)?;
    if codec.meta().is_some() {
        codec.wipe();
        return Err(Error::Unsupported(
            "the edited document has a kmseal metadata block of its own; leave it out".into(),
        ));
    }
    Ok(codec.render(Some(&meta)))
}

/// Replaces, in `codec`, every value that `secrets` resolved from a reference with what it
/// resolved to, and every encrypted value with its plaintext (with `keys`). The texts this
/// makes on the way (the leaves' copy, each replacement) are wiped; the codec's own copy is
/// the caller's to render and wipe.
fn in_plaintext(
    codec: &mut Codec,
    keys: Option<&DocKeys>,
    secrets: Option<&Secrets>,
) -> Result<(), Error> {
    use zeroize::Zeroize;
    let mut leaves: Vec<Leaf> = codec.leaves().to_vec();
    let mut result = Ok(());
    for (i, leaf) in leaves.iter().enumerate() {
        let resolved = secrets
            .filter(|s| s.resolutions.contains_key(&leaf.path))
            .and_then(|s| match s.get_path(&leaf.path) {
                Some(Entry::Secret { value, .. }) => Some(value.expose_secret().to_owned()),
                _ => None,
            });
        let replacement = match (resolved, keys) {
            (Some(text), _) => Some(Repr::Plain(Kind::Str, text)),
            (None, Some(keys)) if leaf.kind == Kind::Str && crypto::is_encrypted(&leaf.value) => {
                match keys
                    .decrypt(&leaf.path, &leaf.value)
                    .and_then(|(kind, pt)| {
                        Ok((kind, std::str::from_utf8(pt.expose_secret())?.to_owned()))
                    }) {
                    Ok((kind, text)) => Some(Repr::Plain(kind, text)),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            _ => None,
        };
        if let Some(mut r) = replacement {
            let set = codec.set(i, &r);
            if let Repr::Plain(_, t) = &mut r {
                t.zeroize();
            }
            if let Err(e) = set {
                result = Err(e);
                break;
            }
        }
    }
    for l in &mut leaves {
        l.value.zeroize();
    }
    result
}

/// Rewraps the document's data key (new KEKs, a KEK version change, adding or dropping a
/// KEK) by rewrapping the header in its metadata; values and MAC are unchanged.
pub async fn rewrap(text: &str, format: Format, rotator: &Rotator) -> Result<String, Error> {
    let codec = Codec::parse(text, format)?;
    let mut meta = codec
        .meta()
        .cloned()
        .ok_or_else(|| Error::Metadata("the document has no kmseal metadata block".into()))?;
    let header = Meta::parse(&meta)?.header;
    match rotator.rotate_header(&header).await? {
        Outcome::Rotated(header) => meta.header = B64URL.encode(header.to_bytes()),
        Outcome::WouldRotate | Outcome::Skipped(_) => return Ok(text.to_owned()),
    }
    Ok(codec.render(Some(&meta)))
}

/// What a document holds, without any key: see [`inspect`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Inspection {
    /// The metadata block's version (1 to 4), if sealed.
    pub version: Option<u8>,
    /// The envelope header from the metadata (context, wrapped keys), if sealed.
    pub header: Option<Header>,
    /// The stored selection policy: patterns encrypted, patterns kept plain.
    pub encrypt: Vec<String>,
    /// Patterns never encrypted.
    pub plain: Vec<String>,
    /// Every value's path and whether it is encrypted, in document order.
    pub values: Vec<(Path, bool)>,
    /// When each of [`values`](Self::values) was set, where recorded (version 4).
    pub set_at: Vec<Option<std::time::SystemTime>>,
    /// The stored requirements (version 4).
    pub rules: Vec<Require>,
    /// The paths that hold a previous value, and when its grace period ends (version 4).
    pub previous: Vec<(Path, std::time::SystemTime)>,
}

/// Describes a document without decrypting or verifying anything (for `kmseal inspect`).
pub fn inspect(text: &str, format: Format) -> Result<Inspection, Error> {
    let codec = Codec::parse(text, format)?;
    let meta = codec.meta().map(Meta::parse).transpose()?;
    let times = meta
        .as_ref()
        .and_then(|m| m.times.clone())
        .unwrap_or_default();
    let set_at = (0..codec.leaves().len())
        .map(|i| {
            times
                .get(i)
                .filter(|&&t| t != 0)
                .map(|&t| lifecycle::from_unix(t))
        })
        .collect();
    let (version, header, policy, rules, previous) = match meta {
        Some(meta) => (
            Some(meta.version),
            Some(meta.header),
            meta.policy,
            meta.rules,
            meta.previous
                .into_iter()
                .map(|p| (p.path, lifecycle::from_unix(p.expires)))
                .collect(),
        ),
        None => (None, None, Policy::default(), Vec::new(), Vec::new()),
    };
    Ok(Inspection {
        version,
        header,
        encrypt: policy.encrypt,
        plain: policy.plain,
        set_at,
        rules,
        previous,
        values: codec
            .leaves()
            .iter()
            .map(|l| {
                (
                    l.path.clone(),
                    l.kind == Kind::Str && crypto::is_encrypted(&l.value),
                )
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_messages_lose_quoted_document_text() {
        assert_eq!(
            without_quoted_text("duplicate key `ghp_secret` in table `x`"),
            "duplicate key `…` in table `…`"
        );
        assert_eq!(without_quoted_text("no quotes"), "no quotes");
        assert_eq!(without_quoted_text("open `tail"), "open `…`");
    }

    #[test]
    fn globs() {
        assert!(glob("*", "anything"));
        assert!(glob("*_password", "db_password"));
        assert!(!glob("*_password", "password"));
        assert!(glob("api*key", "api_key"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxc"));
        assert!(glob("exact", "exact") && !glob("exact", "exactly"));
        assert!(!glob("ab*ba", "aba"));
    }
}
