//! What a caller may choose ([`DecryptOptions`]) and what [`decrypt_with`](crate::decrypt_with)
//! reports beside the plaintext ([`Decrypted`]): the entries SOPS's MAC does not vouch for.

use zeroize::Zeroizing;

/// Choices for [`decrypt_with`](crate::decrypt_with). The default is the safe one.
///
/// ```
/// use kmseal_sops::DecryptOptions;
/// let strict = DecryptOptions::new();
/// let lax = DecryptOptions::new().dangerous_accept_unauthenticated_plain(true);
/// assert!(format!("{strict:?}").contains("false") && format!("{lax:?}").contains("true"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct DecryptOptions {
    pub(crate) accept_unauthenticated_plain: bool,
}

impl DecryptOptions {
    /// The defaults: files with `mac_only_encrypted: true` are refused
    /// ([`Error::UnauthenticatedPlain`](crate::Error::UnauthenticatedPlain)).
    pub fn new() -> DecryptOptions {
        DecryptOptions::default()
    }

    /// Accepts files with `mac_only_encrypted: true`. SOPS's MAC then covers only the
    /// encrypted values: every unencrypted value (key and text) may have been added or changed
    /// by anyone who can write the file, without any key. They are returned as they stand and
    /// listed in [`Decrypted::unauthenticated`] as [`Gap::OutsideMac`].
    pub fn dangerous_accept_unauthenticated_plain(mut self, accept: bool) -> DecryptOptions {
        self.accept_unauthenticated_plain = accept;
        self
    }
}

/// The plaintext document, and what in it SOPS's MAC does not vouch for.
///
/// `Debug` shows the report, never the plaintext.
pub struct Decrypted {
    pub(crate) plaintext: Zeroizing<String>,
    pub(crate) unauthenticated: Vec<Unauthenticated>,
    pub(crate) dropped_comments: usize,
}

impl std::fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decrypted")
            .field("plaintext", &"[REDACTED]")
            .field("unauthenticated", &self.unauthenticated)
            .field("dropped_comments", &self.dropped_comments)
            .finish()
    }
}

impl Decrypted {
    /// The document without the `sops` metadata, in the input's format.
    pub fn plaintext(&self) -> &str {
        &self.plaintext
    }

    /// The document, consuming the report.
    pub fn into_plaintext(self) -> Zeroizing<String> {
        self.plaintext
    }

    /// The entries of the document that SOPS's MAC does not authenticate, in document order.
    /// Empty when every entry is an encrypted, non-empty value.
    pub fn unauthenticated(&self) -> &[Unauthenticated] {
        &self.unauthenticated
    }

    /// How many comments were left out because they were not SOPS-encrypted (SOPS encrypts
    /// comments; a plain one may have been added by anyone).
    pub fn dropped_comments(&self) -> usize {
        self.dropped_comments
    }
}

/// An entry of the output that SOPS's MAC does not (fully) vouch for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unauthenticated {
    /// Where it is: mapping keys joined by `.`, list items as `[i]` (`servers[2].name`). The
    /// keys are text from the file: [`Display`](std::fmt::Display) escapes them, print this
    /// field only through [`kmseal::escape_untrusted`].
    pub path: String,
    /// What of it is not covered.
    pub gap: Gap,
}

impl std::fmt::Display for Unauthenticated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.gap {
            Gap::Empty => "empty or null: not in the MAC",
            Gap::Plain => "unencrypted: its key is not in the MAC",
            Gap::OutsideMac => "unencrypted and not in the MAC (mac_only_encrypted)",
        };
        write!(f, "`{}` ({what})", kmseal::escape_untrusted(&self.path))
    }
}

/// Why an entry is not authenticated (see the crate docs for what SOPS's MAC covers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Gap {
    /// A null, an empty string, or an empty mapping or list. It adds no byte to the MAC and
    /// no ciphertext binds its key: anyone could have added, renamed or moved it.
    Empty,
    /// An unencrypted value. Its text is in the MAC, but run together with the other values'
    /// without keys or separators: its key could have been renamed, and its text split with
    /// or merged into an adjacent unencrypted value (`a: xy` into `a: x` and a new `b: y`).
    Plain,
    /// An unencrypted value of a `mac_only_encrypted` file (accepted only with
    /// [`DecryptOptions::dangerous_accept_unauthenticated_plain`]): neither its key nor its
    /// value is in the MAC; anyone could have added or changed it.
    OutsideMac,
}
