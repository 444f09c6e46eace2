//! Git integration: what `git diff` shows of a sealed document ([`redacted`], for a textconv
//! driver) and a three-way merge of two sealed edits of the same document ([`merge`], for a
//! merge driver), so that concurrent edits of different values never conflict.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::doc::Repr;
use crate::{
    Codec, Error, Format, Kind, Policy, Require, Sealer, crypto, decrypt, inspect, is_sealed,
};

/// `text` as `git diff` should show it: each encrypted value replaced by `<encrypted
/// XXXXXXXX>`, the first 32 bits of the SHA-256 of its ciphertext, and the metadata block by
/// `# kmseal` lines that show what matters in review and stays put between seals: the
/// format version, the policy, the encryption context, the wrapped keys, the requirements
/// and the previous values' paths (the MACs, manifest and times, which change on every seal,
/// are left out). A value that changed shows a new tag, one that did not keeps its tag
/// (re-sealing keeps unchanged ciphertexts), and nothing about the plaintext is shown. A
/// document without a metadata block is returned as it is.
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
    let mut out = codec.render(None);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&summary(&inspect(text, format)?));
    Ok(out)
}

/// The review-relevant metadata, one `# kmseal` line per field.
fn summary(i: &crate::Inspection) -> String {
    use kmseal::escape_untrusted as esc;
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "(none)".to_owned()
        } else {
            v.join(", ")
        }
    };
    let mut lines = vec![format!(
        "# kmseal version {}",
        i.version.map_or_else(|| "?".into(), |v| v.to_string())
    )];
    lines.push(format!(
        "# kmseal encrypt: {}",
        list(i.encrypt.iter().map(|p| esc(p).into_owned()).collect())
    ));
    lines.push(format!(
        "# kmseal plain: {}",
        list(i.plain.iter().map(|p| esc(p).into_owned()).collect())
    ));
    if let Some(h) = &i.header {
        lines.push(format!(
            "# kmseal context: {}",
            list(
                h.context()
                    .iter()
                    // Quoted: a value holding `, k=v` must not read as another pair.
                    .map(|(k, v)| {
                        let (k, v) = (crate::json::quote(k), crate::json::quote(v));
                        format!("{}={}", esc(&k), esc(&v))
                    })
                    .collect()
            )
        ));
        lines.push(format!(
            "# kmseal keys: {}",
            list(
                h.wrapped_keys()
                    .iter()
                    .map(|w| format!("{}:{}", esc(&w.provider), esc(&w.key_id)))
                    .collect()
            )
        ));
    }
    lines.push(format!(
        "# kmseal requirements: {}",
        list(
            i.rules
                .iter()
                .map(|r| esc(&r.to_string()).into_owned())
                .collect()
        )
    ));
    if !i.previous.is_empty() {
        lines.push(format!(
            "# kmseal previous values: {}",
            list(
                i.previous
                    .iter()
                    .map(|(p, _)| esc(&p.to_string()).into_owned())
                    .collect()
            )
        ));
    }
    lines.join("\n") + "\n"
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
    /// The merge needs a person, and why. When edits overlap, `text` is the sealed texts
    /// merged line by line with git's conflict markers (`<<<<<<<`, `=======`, `>>>>>>>`)
    /// around the lines that conflict, which hold ciphertexts and plain values only, never a
    /// decrypted value: resolve the markers, then seal again with `kmseal config encrypt
    /// --accept-changes`. For every other reason (requirements, keys, a rollback, a value
    /// that would be declassified), `text` is `ours` unchanged.
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
/// it keeps the data key of `ours`). `base` is empty when both sides added the file.
///
/// Nothing from another document is ever taken in, and nothing is ever weakened:
/// * every side must verify (both MACs) and be the same document as `ours` (the same data
///   key and encryption context), else an error: an authentic document from elsewhere, or
///   an old version of this one, must not become part of this one;
/// * the policy is the union of both sides' (`encrypt` patterns of either, `plain` patterns
///   of both), and every value encrypted on any side stays encrypted, else a conflict;
/// * requirements merge by path: ones that `theirs` adds are added; one that `theirs`
///   removes or changes (and `ours` does not change the same way) is a conflict;
/// * previous values are those of `ours`.
///
/// When edits overlap, the sealed texts are merged line by line instead
/// ([`Merged::Conflicts`]), with `ours`'s metadata block on every side so that only value
/// lines can conflict.
pub async fn merge(
    base: &str,
    ours: &str,
    theirs: &str,
    format: Format,
    sealer: Sealer,
) -> Result<Merged, Error> {
    // The three sides share one data key (checked below): one unwrap serves every opening
    // and the seal, not one KMS call each.
    let dec = sealer.decryptor().clone().cache(kmseal::DecryptCache::new(
        std::time::Duration::from_secs(60),
        4,
    ));
    let sealer = sealer.with_decryptor(dec.clone());
    let has_base = !base.trim().is_empty();
    // Verify every side first (decrypt checks both MACs), and that each is this document.
    let plain_ours = Zeroizing::new(decrypt(ours, format, &dec, false).await?);
    let plain_theirs = Zeroizing::new(decrypt(theirs, format, &dec, false).await?);
    let plain_base = if has_base {
        Zeroizing::new(decrypt(base, format, &dec, false).await?)
    } else {
        Zeroizing::new(String::new())
    };
    let i_ours = inspect(ours, format)?;
    let i_theirs = same_document(&i_ours, theirs, format, "their")?;
    let i_base = if has_base {
        Some(same_document(
            &i_ours,
            base,
            format,
            "the common ancestor's",
        )?)
    } else {
        None
    };

    let s_ours = crate::open(ours, format, &dec).await?;
    let s_theirs = crate::open(theirs, format, &dec).await?;
    let s_base = match has_base {
        true => Some(crate::open(base, format, &dec).await?),
        false => None,
    };

    // Anything but overlapping lines keeps ours whole: a line merge would carry their
    // rolled-back, rewrapped or declassified lines in, for someone to seal over.
    let conflict = |reason: String| -> Result<Merged, Error> {
        Ok(Merged::Conflicts {
            text: ours.to_owned(),
            reason,
        })
    };
    // Their side rewrapped the document (added or revoked a key): ours' header would undo it.
    let keys = |i: &crate::Inspection| -> Vec<(String, String)> {
        i.header
            .as_ref()
            .map(|h| {
                h.wrapped_keys()
                    .iter()
                    .map(|w| (w.provider.clone(), w.key_id.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let theirs_keys = keys(&i_theirs);
    if theirs_keys != keys(&i_ours) && i_base.as_ref().is_none_or(|b| keys(b) != theirs_keys) {
        return conflict(
            "their side wraps the document under other keys (a rotation or a revoked key); \
             merge by hand and rotate again (kmseal config rotate)"
                .into(),
        );
    }
    // A value their side changed to one set earlier than the ancestor's: a rollback to an
    // old version (made without the key: git checkout of an old blob), not an edit.
    if let Some(b) = &s_base {
        for (path, entry) in s_theirs.iter() {
            let p = path.to_string();
            let changed = b.get(&p).is_some_and(|old| !same_value(old, entry));
            if changed
                && let (Some(then), Some(now)) = (b.set_at(&p), s_theirs.set_at(&p))
                && now < then
            {
                return conflict(format!(
                    "their `{path}` is older than the common ancestor's (a rollback to an old \
                     version)"
                ));
            }
        }
    }
    let rules = match merge_rules(
        i_base.as_ref().map_or(&[][..], |b| &b.rules[..]),
        &i_ours.rules,
        &i_theirs.rules,
    ) {
        Ok(rules) => rules,
        Err(reason) => return conflict(reason),
    };
    let policy = union_policy(&i_ours, &i_theirs)?;
    let text = match merge_options().merge(&plain_base, &plain_ours, &plain_theirs) {
        Ok(text) => Zeroizing::new(text),
        Err(text) => {
            drop(Zeroizing::new(text));
            return Ok(Merged::Conflicts {
                text: merge_lines(base, ours, theirs, format)?,
                reason: "both sides changed the same lines".into(),
            });
        }
    };
    let edited = Zeroizing::new(crate::attach_metadata(&text, format, ours)?);
    let sealed = sealer
        .accept_changes(true)
        .policy(policy)
        .rules(rules)
        .seal(&edited, format)
        .await?;
    // A value encrypted on any side is never written in the clear: by path, and by value
    // (a list item can change parents when lines are added around it).
    let merged = crate::open(&sealed, format, &dec).await?;
    let secrets: Vec<&kmseal::SecretString> = [Some(&s_ours), Some(&s_theirs), s_base.as_ref()]
        .into_iter()
        .flatten()
        .flat_map(|s| s.iter())
        .filter_map(|(_, e)| match e {
            crate::Entry::Secret { value, .. } if !value.expose_secret().is_empty() => Some(value),
            _ => None,
        })
        .collect();
    for (path, entry) in merged.iter() {
        if let crate::Entry::Plain { value, .. } = entry
            && secrets.iter().any(|s| {
                bool::from(crypto::subtle_eq(
                    s.expose_secret().as_bytes(),
                    value.as_bytes(),
                ))
            })
        {
            return conflict(format!(
                "the value at `{path}` is encrypted on one side and would be written in the clear \
                 (it moved under a key the policy leaves plain)"
            ));
        }
    }
    let now = inspect(&sealed, format)?;
    let encrypted_somewhere: Vec<&crate::Path> = [Some(&i_ours), Some(&i_theirs), i_base.as_ref()]
        .into_iter()
        .flatten()
        .flat_map(|i| i.values.iter().filter(|(_, e)| *e).map(|(p, _)| p))
        .collect();
    if let Some((path, _)) = now
        .values
        .iter()
        .find(|(p, e)| !*e && encrypted_somewhere.contains(&p))
    {
        return conflict(format!(
            "`{path}` is encrypted on one side but the merged policy would write it in the clear"
        ));
    }
    Ok(Merged::Clean(sealed))
}

/// Whether two entries hold the same value (secrets compared in constant time).
fn same_value(a: &crate::Entry, b: &crate::Entry) -> bool {
    let text = |e: &crate::Entry| -> zeroize::Zeroizing<Vec<u8>> {
        zeroize::Zeroizing::new(match e {
            crate::Entry::Secret { value, .. } => value.expose_secret().as_bytes().to_vec(),
            crate::Entry::Plain { value, .. } => value.as_bytes().to_vec(),
        })
    };
    let (x, y) = (text(a), text(b));
    bool::from(crypto::subtle_eq(&x, &y))
}

/// `text`'s inspection, if it is the document `ours` describes: the same data key (message
/// id) and encryption context.
fn same_document(
    ours: &crate::Inspection,
    text: &str,
    format: Format,
    which: &str,
) -> Result<crate::Inspection, Error> {
    let other = inspect(text, format)?;
    let same = match (&ours.header, &other.header) {
        (Some(a), Some(b)) => a.message_id() == b.message_id() && a.context() == b.context(),
        _ => false,
    };
    if !same {
        return Err(Error::Unsupported(format!(
            "{which} version is not this document (another data key or encryption context): \
             a sealed document from elsewhere is never merged in"
        )));
    }
    Ok(other)
}

/// Requirements merged by path: `ours`, plus what `theirs` added; `theirs` removing or
/// changing one is a conflict unless `ours` made the same change.
fn merge_rules(
    base: &[Require],
    ours: &[Require],
    theirs: &[Require],
) -> Result<Vec<Require>, String> {
    let find = |v: &[Require], path: &str| v.iter().find(|r| r.path() == path).cloned();
    let mut out = ours.to_vec();
    let paths: Vec<&str> = base.iter().chain(theirs).map(Require::path).collect();
    for path in paths {
        let (b, o, t) = (find(base, path), find(ours, path), find(theirs, path));
        if t == b || t == o {
            continue;
        }
        match (b, o, t) {
            (None, None, Some(added)) => {
                if !out.iter().any(|r| r.path() == path) {
                    out.push(added);
                }
            }
            _ => {
                return Err(format!(
                    "their side removes or changes the requirement on `{path}` (merge it by \
                     hand: kmseal config require)"
                ));
            }
        }
    }
    Ok(out)
}

/// The policy that encrypts whatever either side's encrypts: `encrypt` patterns of either
/// side, `plain` patterns only where both sides have them.
fn union_policy(ours: &crate::Inspection, theirs: &crate::Inspection) -> Result<Policy, Error> {
    let mut encrypt = ours.encrypt.clone();
    encrypt.extend(
        theirs
            .encrypt
            .iter()
            .filter(|p| !ours.encrypt.contains(p))
            .cloned(),
    );
    let plain: Vec<String> = ours
        .plain
        .iter()
        .filter(|p| theirs.plain.contains(p))
        .cloned()
        .collect();
    Policy::only(encrypt)?.except(plain)
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
