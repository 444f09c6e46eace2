//! A document as it arrives in a file: which format it is in, and which of the three kinds
//! it is (a whole-file kmseal message, a sealed text document, or an unsealed one). The CLI
//! and the Python package open files through here, so they agree on both.

use std::path::Path;

use kmseal::Decryptor;

use crate::{Error, Format, Secrets};

/// What a file's name and content say about its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatClues {
    /// The format whose parse finds a kmseal metadata block ([`Format::of_sealed`]); `None`
    /// for an unsealed document, a whole-file message or non-text content.
    pub by_content: Option<Format>,
    /// The format the name says, ignoring a trailing `.kmseal` (`app.env.kmseal` is `.env`).
    pub by_name: Option<Format>,
}

impl FormatClues {
    /// Reads the clues of a file named `name` whose content is `text` (`None` when it is not
    /// UTF-8, or not read).
    pub fn of(name: &Path, text: Option<&str>) -> FormatClues {
        let by_name = name
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| n.trim_end_matches(".kmseal"))
            .and_then(|n| Format::from_path(Path::new(n)));
        FormatClues {
            by_content: text.and_then(Format::of_sealed),
            by_name,
        }
    }

    /// The format to use: a sealed document's own (its metadata decides, whatever the name
    /// says), else the name's.
    pub fn format(&self) -> Option<Format> {
        self.by_content.or(self.by_name)
    }

    /// Whether a sealed document's content and its name disagree (a JSON document named
    /// `app.yaml`): not an error, the MACs decide what is accepted, but worth a note.
    pub fn disagree(&self) -> bool {
        matches!((self.by_content, self.by_name), (Some(c), Some(n)) if c != n)
    }
}

/// A document's bytes, by kind.
#[derive(Debug, Clone, Copy)]
pub enum Document<'a> {
    /// A whole-file kmseal message whose plaintext is a document ([`open_blob`](crate::open_blob)).
    Blob(&'a [u8]),
    /// A text document with a kmseal metadata block ([`open`](crate::open)).
    Sealed(&'a str),
    /// A text document without one: plain values and references only
    /// ([`read_unsealed`](crate::read_unsealed)), as trustworthy as the file itself.
    Unsealed(&'a str),
}

impl<'a> Document<'a> {
    /// Tells the kind of `bytes` in `format`. Content that is neither a kmseal message nor
    /// UTF-8 text is [`Error::Unsupported`]; text that does not parse in `format` is
    /// [`Error::Parse`].
    pub fn classify(bytes: &'a [u8], format: Format) -> Result<Document<'a>, Error> {
        if bytes.starts_with(&kmseal::format::MAGIC) {
            return Ok(Document::Blob(bytes));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| {
            Error::Unsupported("the document is neither text nor a kmseal message".into())
        })?;
        if crate::is_sealed(text, format)? {
            Ok(Document::Sealed(text))
        } else {
            Ok(Document::Unsealed(text))
        }
    }

    /// Whether opening needs a key (every kind but [`Document::Unsealed`]).
    pub fn needs_key(&self) -> bool {
        !matches!(self, Document::Unsealed(_))
    }

    /// Opens the document: verified before anything is decrypted. `dec` is required for the
    /// kinds that [`need a key`](Self::needs_key) (an [`Error::Unsupported`] without one).
    pub async fn open(self, format: Format, dec: Option<&Decryptor>) -> Result<Secrets, Error> {
        match (self, dec) {
            (Document::Unsealed(text), _) => crate::read_unsealed(text, format),
            (Document::Blob(bytes), Some(dec)) => crate::open_blob(bytes, format, dec).await,
            (Document::Sealed(text), Some(dec)) => crate::open(text, format, dec).await,
            (_, None) => Err(Error::Unsupported(
                "a sealed document needs a key to open".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clues_from_name_and_content() {
        let c = FormatClues::of(Path::new("dir/app.env.kmseal"), None);
        assert_eq!((c.by_name, c.by_content), (Some(Format::Dotenv), None));
        assert_eq!(c.format(), Some(Format::Dotenv));
        let c = FormatClues::of(Path::new("secrets.sealed"), Some("a: 1\n"));
        assert_eq!(c.format(), None);
        assert!(!c.disagree());
    }

    #[test]
    fn classify_tells_the_three_kinds_apart() {
        let mut blob = kmseal::format::MAGIC.to_vec();
        blob.extend_from_slice(b"\x01rest");
        assert!(matches!(
            Document::classify(&blob, Format::Yaml),
            Ok(Document::Blob(_))
        ));
        assert!(matches!(
            Document::classify(b"a: 1\n", Format::Yaml),
            Ok(Document::Unsealed(_))
        ));
        assert!(
            !Document::classify(b"a: 1\n", Format::Yaml)
                .unwrap()
                .needs_key()
        );
        assert!(matches!(
            Document::classify(b"\xff\xfe", Format::Yaml),
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            Document::classify(b"a: [", Format::Yaml),
            Err(Error::Parse { .. })
        ));
    }
}
