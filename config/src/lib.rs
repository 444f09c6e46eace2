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
mod json;
mod path;
mod secrets;
mod toml;
mod yaml;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use kmseal::rotate::{Outcome, Rotator};
use kmseal::{Decryptor, Encryptor, Header, Limits, SecretString};

pub use crypto::Kind;
pub use path::{Path, Seg};
pub use secrets::{Entry, Require, Secrets};

use crypto::{DocKeys, LABEL};
use doc::{Leaf, MetaFields, Repr};

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
    /// Start-up requirements not met (every problem, one per entry).
    #[error("configuration requirements not met: {}", .0.join("; "))]
    Requirements(Vec<String>),
    /// Something this crate does not handle.
    #[error("{0}")]
    Unsupported(String),
    /// An internal cryptographic failure.
    #[error("{0}")]
    Crypto(&'static str),
}

impl From<std::str::Utf8Error> for Error {
    fn from(_: std::str::Utf8Error) -> Self {
        Error::Unsupported("a decrypted value is not UTF-8".into())
    }
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
    encrypt: Vec<String>,
    plain: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            encrypt: vec!["*".into()],
            plain: Vec::new(),
        }
    }
}

fn glob(pattern: &str, s: &str) -> bool {
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

    fn selects(&self, path: &Path) -> bool {
        let key = path.last_key().unwrap_or("");
        self.encrypt.iter().any(|p| glob(p, key)) && !self.plain.iter().any(|p| glob(p, key))
    }

    fn from_meta(m: &MetaFields) -> Result<Policy, Error> {
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
    fn parse(text: &str, format: Format) -> Result<Codec, Error> {
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

/// The bytes of the metadata the MAC covers: version, policy, and the header's message id and
/// context (not its wrapped keys, so a rewrap leaves the MAC valid).
fn meta_bytes(policy: &Policy, header: &Header) -> Vec<u8> {
    let mut out = b"version=1\n".to_vec();
    for (name, list) in [("encrypt", &policy.encrypt), ("plain", &policy.plain)] {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(list.len() as u32).to_be_bytes());
        for p in list {
            out.extend_from_slice(&(p.len() as u32).to_be_bytes());
            out.extend_from_slice(p.as_bytes());
        }
    }
    out.extend_from_slice(header.message_id());
    out.extend_from_slice(&header.context().canonical_bytes());
    out
}

fn parse_header(m: &MetaFields) -> Result<Header, Error> {
    if m.version != "1" {
        return Err(Error::Metadata(format!(
            "version `{}` is not supported (this build reads version 1)",
            m.version
        )));
    }
    let raw = B64URL
        .decode(m.header.trim())
        .map_err(|_| Error::Metadata("`header` is not base64url".into()))?;
    let (header, used) = Header::parse(&raw, &Limits::default())?;
    if used != raw.len() {
        return Err(Error::Metadata("`header` has trailing bytes".into()));
    }
    Ok(header)
}

fn meta_fields(policy: &Policy, header: &Header, mac: &[u8; 32]) -> MetaFields {
    MetaFields {
        version: "1".into(),
        encrypt: policy.encrypt.join(","),
        plain: policy.plain.join(","),
        header: B64URL.encode(header.to_bytes()),
        mac: B64URL.encode(mac),
    }
}

/// A verified, opened document: its keys, policy and header.
struct Opened {
    codec: Codec,
    keys: DocKeys,
    policy: Policy,
    header: Header,
}

async fn open_doc(
    text: &str,
    format: Format,
    dec: &Decryptor,
    verify: bool,
) -> Result<Opened, Error> {
    let codec = Codec::parse(text, format)?;
    let meta = codec
        .meta()
        .ok_or_else(|| {
            Error::Metadata("the document has no kmseal metadata block (not sealed?)".into())
        })?
        .clone();
    let header = parse_header(&meta)?;
    let policy = Policy::from_meta(&meta)?;
    let app_key = dec.open_application_key(&header, LABEL).await?;
    let keys = DocKeys::derive(&app_key);
    if verify {
        let stored = B64URL
            .decode(meta.mac.trim())
            .map_err(|_| Error::Metadata("`mac` is not base64url".into()))?;
        let mac = keys.mac(
            &meta_bytes(&policy, &header),
            codec
                .leaves()
                .iter()
                .map(|l| (&l.path, l.kind, l.value.as_str())),
        );
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&mac[..], &stored[..])) {
            return Err(Error::Tampered(
                "the document MAC does not match (a value, path or the metadata was changed, \
                 added or removed; or values were edited without `kmseal config encrypt`)"
                    .into(),
            ));
        }
    }
    Ok(Opened {
        codec,
        keys,
        policy,
        header,
    })
}

/// Seals documents: encrypts the selected values and writes the metadata block.
#[derive(Debug, Clone)]
pub struct Sealer {
    encryptor: Encryptor,
    decryptor: Decryptor,
    policy: Option<Policy>,
}

impl Sealer {
    /// New documents get a data key from `encryptor` (its KEKs and context); documents that
    /// already have metadata (edits, re-encryption) keep theirs, opened with `decryptor`.
    pub fn new(encryptor: Encryptor, decryptor: Decryptor) -> Sealer {
        Sealer {
            encryptor,
            decryptor,
            policy: None,
        }
    }

    /// Which values to encrypt (default: the document's stored policy, else everything).
    pub fn policy(mut self, policy: Policy) -> Sealer {
        self.policy = Some(policy);
        self
    }

    /// Encrypts every selected plaintext value of `text`, checks that values already
    /// encrypted belong to this document at their paths, and writes the metadata with a new
    /// MAC. Unchanged values keep their ciphertexts.
    pub async fn seal(&self, text: &str, format: Format) -> Result<String, Error> {
        let mut codec = Codec::parse(text, format)?;
        let (header, keys, policy) = match codec.meta().cloned() {
            Some(meta) => {
                let header = parse_header(&meta)?;
                let app_key = self.decryptor.open_application_key(&header, LABEL).await?;
                let policy = match &self.policy {
                    Some(p) => p.clone(),
                    None => Policy::from_meta(&meta)?,
                };
                (header, DocKeys::derive(&app_key), policy)
            }
            None => {
                let (header, app_key) = self.encryptor.application_key(LABEL).await?;
                let policy = self.policy.clone().unwrap_or_default();
                (header, DocKeys::derive(&app_key), policy)
            }
        };
        let leaves: Vec<Leaf> = codec.leaves().to_vec();
        let mut mac_items: Vec<(Path, Kind, String)> = Vec::with_capacity(leaves.len());
        for (i, leaf) in leaves.iter().enumerate() {
            if leaf.kind == Kind::Str && crypto::is_encrypted(&leaf.value) {
                let (kind, pt) = keys.decrypt(&leaf.path, &leaf.value)?;
                if policy.selects(&leaf.path) {
                    mac_items.push((leaf.path.clone(), Kind::Str, leaf.value.clone()));
                } else {
                    let text = std::str::from_utf8(pt.expose_secret())?.to_owned();
                    codec.set(i, &Repr::Plain(kind, text.clone()))?;
                    mac_items.push((leaf.path.clone(), kind, text));
                }
            } else if leaf.kind != Kind::Other && policy.selects(&leaf.path) {
                let enc = keys.encrypt(&leaf.path, leaf.kind, leaf.value.as_bytes())?;
                codec.set(i, &Repr::Encrypted(enc.clone()))?;
                mac_items.push((leaf.path.clone(), Kind::Str, enc));
            } else {
                mac_items.push((leaf.path.clone(), leaf.kind, leaf.value.clone()));
            }
        }
        let mac = keys.mac(
            &meta_bytes(&policy, &header),
            mac_items.iter().map(|(p, k, v)| (p, *k, v.as_str())),
        );
        let sealed = codec.render(Some(&meta_fields(&policy, &header, &mac)));
        // Verify what we write: the sealed text must parse back to exactly the values we
        // meant, in order (unusual layouts are refused, never written broken).
        let check = Codec::parse(&sealed, format).map_err(|e| {
            Error::Unsupported(format!(
                "this document's layout cannot be rewritten safely ({e}); simplify it around the reported line"
            ))
        })?;
        let same = check.leaves().len() == mac_items.len()
            && check
                .leaves()
                .iter()
                .zip(&mac_items)
                .all(|(l, (p, k, v))| l.path == *p && l.kind == *k && l.value == *v);
        if !same {
            return Err(Error::Unsupported(
                "this document's layout cannot be rewritten safely (a value did not read back \
                 as written); simplify it"
                    .into(),
            ));
        }
        Ok(sealed)
    }

    /// Sets the value at `path` (which must exist) to the string `value` in a sealed
    /// document, after verifying it; the value is encrypted if the policy selects it.
    pub async fn set(
        &self,
        text: &str,
        format: Format,
        path: &str,
        value: &str,
    ) -> Result<String, Error> {
        let target = Path::parse(path).map_err(Error::Unsupported)?;
        let mut opened = open_doc(text, format, &self.decryptor, true).await?;
        let i = opened
            .codec
            .leaves()
            .iter()
            .position(|l| l.path == target)
            .ok_or_else(|| Error::Unsupported(format!("`{path}` is not in the document")))?;
        opened
            .codec
            .set(i, &Repr::Plain(Kind::Str, value.to_owned()))?;
        let meta = opened.codec.meta().cloned();
        let edited = opened.codec.render(meta.as_ref());
        self.seal(&edited, format).await
    }
}

/// Verifies a sealed document (document MAC, then each value at its path) and decrypts it
/// into [`Secrets`]: secret strings in locked memory, nothing on disk.
pub async fn open(text: &str, format: Format, dec: &Decryptor) -> Result<Secrets, Error> {
    let opened = open_doc(text, format, dec, true).await?;
    let mut secrets = Secrets::default();
    secrets.keep_names = format == Format::Dotenv;
    for leaf in opened.codec.leaves() {
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
    let _ = (&opened.policy, &opened.header);
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
    let mut opened = open_doc(text, format, dec, true).await?;
    let leaves: Vec<Leaf> = opened.codec.leaves().to_vec();
    for (i, leaf) in leaves.iter().enumerate() {
        if leaf.kind == Kind::Str && crypto::is_encrypted(&leaf.value) {
            let (kind, pt) = opened.keys.decrypt(&leaf.path, &leaf.value)?;
            let text = std::str::from_utf8(pt.expose_secret())?.to_owned();
            opened.codec.set(i, &Repr::Plain(kind, text))?;
        }
    }
    let meta = if keep_metadata {
        opened.codec.meta().cloned()
    } else {
        None
    };
    Ok(opened.codec.render(meta.as_ref()))
}

/// Rewraps the document's data key (new KEKs, a KEK version change, adding or dropping a
/// KEK) by rewrapping the header in its metadata; values and MAC are unchanged.
pub async fn rewrap(text: &str, format: Format, rotator: &Rotator) -> Result<String, Error> {
    let codec = Codec::parse(text, format)?;
    let mut meta = codec
        .meta()
        .cloned()
        .ok_or_else(|| Error::Metadata("the document has no kmseal metadata block".into()))?;
    let header = parse_header(&meta)?;
    match rotator.rotate_message(&header.to_bytes()).await? {
        Outcome::Rotated(bytes) => meta.header = B64URL.encode(bytes),
        Outcome::WouldRotate | Outcome::Skipped(_) => return Ok(text.to_owned()),
    }
    Ok(codec.render(Some(&meta)))
}

/// What a document holds, without any key: see [`inspect`].
#[derive(Debug)]
pub struct Inspection {
    /// The envelope header from the metadata (context, wrapped keys), if sealed.
    pub header: Option<Header>,
    /// The stored selection policy: patterns encrypted, patterns kept plain.
    pub encrypt: Vec<String>,
    /// Patterns never encrypted.
    pub plain: Vec<String>,
    /// Every value's path and whether it is encrypted, in document order.
    pub values: Vec<(Path, bool)>,
}

/// Describes a document without decrypting or verifying anything (for `kmseal inspect`).
pub fn inspect(text: &str, format: Format) -> Result<Inspection, Error> {
    let codec = Codec::parse(text, format)?;
    let (header, policy) = match codec.meta() {
        Some(m) => (Some(parse_header(m)?), Policy::from_meta(m)?),
        None => (None, Policy::default()),
    };
    Ok(Inspection {
        header,
        encrypt: policy.encrypt,
        plain: policy.plain,
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
