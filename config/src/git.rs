//! Git integration: what `git diff` shows of a sealed document ([`redacted`], for a textconv
//! driver) and a three-way merge of two sealed edits of the same document ([`merge`], for a
//! merge driver), so that concurrent edits of different values never conflict.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::doc::Repr;
use crate::{Codec, Error, Format, Kind, Require, Sealer, crypto, decrypt, inspect, is_sealed};

/// `text` as `git diff` should show it: the metadata block left out (it changes on every
/// seal), and each encrypted value replaced by `<encrypted XXXXXXXX>`, the first 32 bits of
/// the SHA-256 of its ciphertext. A value that changed shows a new tag, one that did not
/// keeps its tag (re-sealing keeps unchanged ciphertexts), and nothing about the plaintext
/// is shown. A document without a metadata block is returned as it is.
///
/// ```
/// # kmseal::blocking::block_on(async {
/// use std::sync::Arc;
/// use kmseal::{Decryptor, Encryptor, LocalKek};
/// use kmseal_config::{Format, Policy, Sealer};
///
/// let kek = Arc::new(LocalKek::generate()?);
/// let sealer = Sealer::new(Encryptor::new(kek.clone()), Decryptor::new(kek))
///     .policy(Policy::only(["password"])?);
/// let sealed = sealer.seal("host: db\npassword: hunter2-hunter2\n", Format::Yaml).await?;
/// let shown = kmseal_config::git::redacted(&sealed, Format::Yaml)?;
/// assert!(shown.starts_with("host: db\npassword: \"<encrypted "), "{shown}");
/// assert!(!shown.contains("kmseal:") && !shown.contains("hunter2"));
/// # Ok::<(), kmseal_config::Error>(())
/// # }).unwrap();
/// ```
pub fn redacted(text: &str, format: Format) -> Result<String, Error> {
    let mut codec = Codec::parse(text, format)?;
    if codec.meta().is_none() {
        codec.wipe();
        return Ok(text.to_owned());
    }
    let tags: Vec<(usize, String)> = codec
        .leaves()
        .iter()
        .enumerate()
        .filter(|(_, l)| l.kind == Kind::Str && crypto::is_encrypted(&l.value))
        .map(|(i, l)| (i, tag(&l.value)))
        .collect();
    for (i, t) in tags {
        codec.set(i, &Repr::Plain(Kind::Str, t))?;
    }
    Ok(codec.render(None))
}

fn tag(ciphertext: &str) -> String {
    let digest = Sha256::digest(ciphertext.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("<encrypted {hex}>")
}

/// What [`merge`] made of two sealed edits.
#[non_exhaustive]
pub enum Merged {
    /// The edits did not overlap: the merged document, sealed again with the data key of
    /// `ours` (unchanged values keep their ciphertexts).
    Clean(String),
    /// Some edits overlap: the sealed texts merged line by line with git's conflict markers
    /// (`<<<<<<<`, `=======`, `>>>>>>>`) around the lines that conflict, which hold
    /// ciphertexts and plain values only, never a decrypted value; and why. Resolve the
    /// markers, then seal again with `kmseal config encrypt --accept-changes`.
    Conflicts {
        /// The document with conflict markers.
        text: String,
        /// What conflicted (paths are not named: lines are).
        reason: String,
    },
}

impl std::fmt::Debug for Merged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Merged::Clean(_) => f.write_str("Merged::Clean(..)"),
            Merged::Conflicts { reason, .. } => write!(f, "Merged::Conflicts({reason})"),
        }
    }
}

/// Merges `ours` and `theirs`, two sealed edits of `base`, three-way on their decrypted
/// values in memory, and seals the result with `sealer` (build it with the document's keys;
/// it keeps the data key of `ours`, and the edits are accepted as the changes). `base` is
/// empty when both sides added the file. The requirements merge the same way (a side that
/// changed them wins; both changing them differently is a conflict); the policy and the
/// previous values are those of `ours`.
///
/// Every document is verified before anything is merged. When edits overlap, the sealed
/// texts are merged line by line instead ([`Merged::Conflicts`]), with `ours`'s metadata
/// block on every side so that only value lines can conflict.
pub async fn merge(
    base: &str,
    ours: &str,
    theirs: &str,
    format: Format,
    sealer: Sealer,
) -> Result<Merged, Error> {
    let dec = sealer.decryptor().clone();
    let plain_base = if base.trim().is_empty() {
        Zeroizing::new(String::new())
    } else {
        Zeroizing::new(decrypt(base, format, &dec, false).await?)
    };
    let plain_ours = Zeroizing::new(decrypt(ours, format, &dec, false).await?);
    let plain_theirs = Zeroizing::new(decrypt(theirs, format, &dec, false).await?);
    let rules = |t: &str| -> Result<Vec<Require>, Error> {
        Ok(if t.trim().is_empty() {
            Vec::new()
        } else {
            inspect(t, format)?.rules
        })
    };
    let (r_base, r_ours, r_theirs) = (rules(base)?, rules(ours)?, rules(theirs)?);
    let merged_rules = if r_theirs == r_base || r_theirs == r_ours {
        Some(r_ours)
    } else if r_ours == r_base {
        Some(r_theirs)
    } else {
        None
    };
    let merged = merge_options().merge(&plain_base, &plain_ours, &plain_theirs);
    match (merged, merged_rules) {
        (Ok(text), Some(rules)) => {
            let text = Zeroizing::new(text);
            let edited = crate::attach_metadata(&text, format, ours)?;
            let edited = Zeroizing::new(edited);
            let sealed = sealer
                .accept_changes(true)
                .rules(rules)
                .seal(&edited, format)
                .await?;
            Ok(Merged::Clean(sealed))
        }
        (result, rules) => {
            if let Err(mut text) = result {
                use zeroize::Zeroize;
                text.zeroize();
            }
            let reason = if rules.is_none() {
                "both sides changed the requirements differently"
            } else {
                "both sides changed the same lines"
            };
            Ok(Merged::Conflicts {
                text: merge_lines(base, ours, theirs, format)?,
                reason: reason.into(),
            })
        }
    }
}

/// Merges three sealed texts line by line, without any key: `base` and `theirs` first get
/// the metadata block of `ours`, so that only value lines (ciphertexts and plain values,
/// never a decrypted value) can conflict; conflicts are marked as git marks them. What
/// [`merge`] falls back to when edits overlap, and what a merge driver without the key can
/// still offer. The result does not verify until it is sealed again (`kmseal config encrypt
/// --accept-changes`), which checks every encrypted value against the document's key.
pub fn merge_lines(base: &str, ours: &str, theirs: &str, format: Format) -> Result<String, Error> {
    let base = if base.trim().is_empty() || !is_sealed(base, format)? {
        base.to_owned()
    } else {
        with_metadata_of(base, format, ours)?
    };
    let theirs = with_metadata_of(theirs, format, ours)?;
    Ok(match merge_options().merge(&base, ours, &theirs) {
        Ok(text) | Err(text) => text,
    })
}

/// Two-sided conflict markers, as `git merge` writes by default.
fn merge_options() -> diffy::MergeOptions {
    let mut o = diffy::MergeOptions::new();
    o.set_conflict_style(diffy::ConflictStyle::Merge);
    o
}

/// Sealed `text` with the metadata block of `sealed` in place of its own.
fn with_metadata_of(text: &str, format: Format, sealed: &str) -> Result<String, Error> {
    let meta = Codec::parse(sealed, format)?
        .meta()
        .cloned()
        .ok_or_else(|| Error::Metadata("the document is not sealed".into()))?;
    Ok(Codec::parse(text, format)?.render(Some(&meta)))
}
