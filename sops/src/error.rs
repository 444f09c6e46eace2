//! The one public error type. No variant holds a value, a comment, plaintext or key material:
//! messages name formats, lines, paths (mapping keys) and key ids.

/// What can go wrong while importing a SOPS file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The document does not parse as the given format.
    #[error("{format} syntax error at line {line}: {message}")]
    Parse {
        /// YAML, JSON or .env.
        format: &'static str,
        /// 1-based line (0 when unknown).
        line: usize,
        /// What was wrong (never text from the document).
        message: String,
    },
    /// The `sops` metadata is missing or malformed.
    #[error("sops metadata: {0}")]
    Metadata(String),
    /// A SOPS feature or document shape this crate does not handle (PGP-only files, Shamir
    /// key groups, TOML, multi-document YAML, …).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An age identity (key file, `SOPS_AGE_KEY`) could not be read or parsed.
    #[error("age identities: {0}")]
    Identity(String),
    /// No data-key source in the file could be used: one entry per source tried, with why
    /// (no key bytes, ever).
    #[error(
        "could not recover the SOPS data key; tried: {}",
        if .0.is_empty() { "nothing (the file lists no usable key)".to_owned() } else { .0.join("; ") }
    )]
    NoDataKey(Vec<String>),
    /// A value (or the MAC) did not decrypt under the data key: wrong key, or the file was
    /// changed. Names the path of the value, never its content.
    #[error("a value could not be decrypted at `{0}` (wrong data key, or the file was modified)")]
    Decrypt(String),
    /// The values do not match the file's MAC: a value the MAC covers was changed, added,
    /// removed or reordered, or `lastmodified` was altered. Nothing is returned. (Changes the
    /// MAC cannot see, such as an added empty value, do not cause this: see the crate docs.)
    #[error("the SOPS MAC does not match: the file was modified after it was encrypted")]
    MacMismatch,
    /// The file sets `mac_only_encrypted: true`, so SOPS's MAC leaves its unencrypted values
    /// out: anyone who can write the file could have added or changed them. Refused unless
    /// [`DecryptOptions::dangerous_accept_unauthenticated_plain`](crate::DecryptOptions::dangerous_accept_unauthenticated_plain).
    #[error(
        "the file sets `mac_only_encrypted: true`: SOPS's MAC does not cover its unencrypted \
         values, which anyone who can write the file could have added or changed"
    )]
    UnauthenticatedPlain,
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

pub(crate) fn parse_err(format: &'static str, line: usize, message: impl Into<String>) -> Error {
    Error::Parse {
        format,
        line,
        message: message.into(),
    }
}
