//! `kmseal config textconv` and `kmseal config merge-driver`: git's diff and merge drivers
//! for sealed documents ([`kmseal_config::git`]).

use std::path::Path;

use kmseal::{Decryptor, Encryptor};
use kmseal_config::git::Merged;
use kmseal_config::{Format, FormatClues, Sealer};

use crate::config::{block, format_of};
use crate::{Failure, exit, keks, output, usage};

/// Prints `file` as `git diff` should show it. A file that is not a sealed document (or not
/// a document at all) is printed as it is: a diff driver must never hide a change.
pub(crate) fn textconv(
    file: &Path,
    format: &Option<String>,
    show_values: bool,
    keys: &[String],
) -> Result<(), Failure> {
    let bytes = std::fs::read(file).map_err(|e| usage(format!("{}: {e}", file.display())))?;
    let shown = match std::str::from_utf8(&bytes) {
        Ok(text) => match known_format(file, format, text)? {
            Some(f) if show_values && kmseal_config::is_sealed(text, f).unwrap_or(false) => {
                let dec = Decryptor::with_keks(keks(keys, false)?)?;
                zeroize::Zeroizing::new(block(kmseal_config::decrypt(text, f, &dec, false))?)
            }
            Some(f) => zeroize::Zeroizing::new(
                kmseal_config::git::redacted(text, f).unwrap_or_else(|_| text.to_owned()),
            ),
            None => zeroize::Zeroizing::new(text.to_owned()),
        },
        Err(_) => {
            return output::write_atomically(None, true, 0o600, |out| {
                out.write_all(&bytes)?;
                Ok(())
            });
        }
    };
    output::write_atomically(None, true, 0o600, |out| {
        out.write_all(shown.as_bytes())?;
        Ok(())
    })
}

/// The format, or `None` when neither the flag, the content nor the name tells it.
fn known_format(
    file: &Path,
    format: &Option<String>,
    text: &str,
) -> Result<Option<Format>, Failure> {
    if format.is_some() {
        return format_of(file, format, Some(text)).map(Some);
    }
    Ok(FormatClues::of(file, Some(text)).format())
}

/// Merges `theirs` into `ours` (written in place), as git's `%O %A %B %P`. Exit 0 when the
/// edits merged cleanly; 1 with conflict markers (around encrypted lines only) otherwise,
/// or when the documents cannot be decrypted and are merged as sealed text.
pub(crate) fn merge_driver(
    base: &Path,
    ours: &Path,
    theirs: &Path,
    path: Option<&Path>,
    format: &Option<String>,
    keys: &[String],
) -> Result<(), Failure> {
    let read =
        |p: &Path| std::fs::read_to_string(p).map_err(|e| usage(format!("{}: {e}", p.display())));
    let (base_text, ours_text, theirs_text) = (read(base)?, read(ours)?, read(theirs)?);
    let shown = path.unwrap_or(ours);
    let format = format_of(shown, format, Some(&ours_text))?;
    let merged = sealer_for(shown, keys).and_then(|sealer| {
        block(kmseal_config::git::merge(
            &base_text,
            &ours_text,
            &theirs_text,
            format,
            sealer,
        ))
        .map_err(Failure::from)
    });
    let (text, why) = match merged {
        Ok(Merged::Clean(text)) => return write_over(ours, &text),
        Ok(Merged::Conflicts { text, reason }) => (text, reason),
        Ok(_) => return Err(usage("unexpected merge outcome")),
        Err(e) => {
            // No key, a side that does not verify, or a side from another document: nothing
            // is merged (a line merge would take unverified lines in); ours stays as it is.
            return Err(Failure {
                code: exit::OTHER,
                message: format!(
                    "{}: not merged: {}; our version is left as it is. Merge it by hand where \
                     the key is (`git show :3:{p} | kmseal config decrypt -` shows theirs), and \
                     never seal over a version that does not verify",
                    shown.display(),
                    e.message,
                    p = shown.display()
                ),
            });
        }
    };
    write_over(ours, &text)?;
    let p = shown.display();
    let message = if text.contains("<<<<<<<") {
        format!(
            "{p}: conflict ({why}); resolve the conflict markers (they surround encrypted \
             lines: `git show :2:{p} | kmseal config decrypt -` and `:3:` show each side), then \
             run `kmseal config encrypt --accept-changes {p}`"
        )
    } else {
        format!(
            "{p}: not merged ({why}); our version is left as it is. Make their changes by hand \
             where the key is (`git show :3:{p} | kmseal config decrypt -` shows theirs; `kmseal \
             config edit {p}`)"
        )
    };
    Err(Failure {
        code: exit::OTHER,
        message,
    })
}

/// Writes `text` over `file` atomically, keeping its mode.
fn write_over(file: &Path, text: &str) -> Result<(), Failure> {
    let mode = crate::config::mode_of(file);
    output::write_atomically(Some(file), true, mode, |w| {
        w.write_all(text.as_bytes())?;
        Ok(())
    })
}

/// A sealer with the keys for the document at `path`: --key or $KMSEAL_KEY, else its rule's
/// in .kmseal.toml, else the settings.
fn sealer_for(path: &Path, keys: &[String]) -> Result<Sealer, Failure> {
    let keys = if keys.is_empty() {
        crate::rules::rule_keys(path)
    } else {
        keys.to_vec()
    };
    let keks = keks(&keys, false)?;
    let first = keks.first().cloned().ok_or_else(|| usage("no key given"))?;
    Ok(Sealer::new(
        Encryptor::new(first),
        Decryptor::with_keks(keks)?,
    ))
}
