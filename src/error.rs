//! The one public error type of the core crate.
//!
//! Errors carry key ids, URIs, lengths and limits, never key or plaintext bytes. Every failure
//! that involves a key (wrong key, bad tag, failed commitment, tampered header) is the single
//! opaque [`Error::Decrypt`], so an attacker learns nothing about which check failed. Problems
//! found while parsing, before any key is used, say what was malformed.

use std::fmt;

/// Everything that can go wrong in `kmseal`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The message did not authenticate: wrong data key, failed key commitment, tampered
    /// header or frame, reordered or duplicated frames. Deliberately says nothing more.
    #[error(
        "decryption failed: the message was tampered with or corrupted, or was not encrypted \
         under the key that unwrapped it"
    )]
    Decrypt,

    /// The message ended before its final frame (or its header was cut short).
    #[error("message is truncated: {0}")]
    Truncated(&'static str),

    /// The message is not well-formed (found before any key was used).
    #[error("malformed message: {0}")]
    Malformed(&'static str),

    /// The input is not a kmseal message at all (wrong magic bytes).
    #[error("not a kmseal message (bad magic bytes)")]
    NotKmseal,

    /// The message uses a format version this build does not understand.
    #[error("unsupported kmseal format version {0} (this build reads version 1)")]
    UnsupportedVersion(u8),

    /// The message names an algorithm suite this build does not know.
    #[error("unknown algorithm suite id 0x{0:04x}")]
    UnknownSuite(u16),

    /// Untrusted input exceeded a configured limit (see [`Limits`](crate::Limits)).
    #[error(
        "{what} is {actual}, over the limit of {limit}; raise the limit only for trusted input"
    )]
    LimitExceeded {
        /// Which quantity.
        what: &'static str,
        /// The configured limit.
        limit: u64,
        /// What the input asked for.
        actual: u64,
    },

    /// The message's encryption context lacks a pair the caller required, or has another value.
    #[error(
        "encryption context mismatch: expected key `{key}` is missing or has a different value"
    )]
    ContextMismatch {
        /// The context key that did not match (context keys are not secret).
        key: String,
    },

    /// An encryption context was rejected (empty or too long key, duplicate, too many entries).
    #[error("invalid encryption context: {0}")]
    InvalidContext(String),

    /// None of the KEKs the caller trusts wrapped this message's data key.
    #[error(
        "no trusted KEK can open this message: trusted [{}], message wrapped for [{}]",
        .trusted.join(", "),
        .present.join(", ")
    )]
    NoMatchingKek {
        /// The KEKs the caller offered.
        trusted: Vec<String>,
        /// The KEKs named in the message header.
        present: Vec<String>,
    },

    /// Every trusted KEK that matched a wrapped key failed to unwrap it.
    #[error("could not unwrap the data key with any trusted KEK: {}", DisplayFailures(.failures))]
    UnwrapFailed {
        /// One entry per attempt, in the order tried.
        failures: Vec<KekFailure>,
    },

    /// A key management service call failed.
    #[error("{provider} error ({kind}): {message}")]
    Kms {
        /// Provider scheme, e.g. `aws-kms`.
        provider: &'static str,
        /// What kind of failure, so callers can decide whether to retry.
        kind: KmsErrorKind,
        /// A description without key material.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// A key URI could not be parsed.
    #[error("invalid key URI `{uri}`: {reason}")]
    InvalidKeyUri {
        /// The URI as given (URIs name keys; they hold no secrets).
        uri: String,
        /// What is wrong and what the expected form is.
        reason: String,
    },

    /// A local key (file or environment variable) is unusable.
    #[error("local key {source_name}: {reason}")]
    LocalKey {
        /// The file path or environment variable name.
        source_name: String,
        /// What is wrong and what to do about it.
        reason: String,
    },

    /// Secret memory could not be locked and the policy is [`LockPolicy::Strict`](crate::LockPolicy::Strict).
    #[error(
        "could not lock {bytes} bytes of secret memory in RAM ({source}); raise RLIMIT_MEMLOCK \
         (ulimit -l), grant CAP_IPC_LOCK, or use LockPolicy::BestEffort"
    )]
    MemoryLock {
        /// Size of the failed allocation.
        bytes: usize,
        /// The `mlock` error.
        source: std::io::Error,
    },

    /// Mapping memory for a secret buffer failed.
    #[error("could not allocate {bytes} bytes of secret memory: {source}")]
    OutOfMemory {
        /// Size of the failed allocation.
        bytes: usize,
        /// The `mmap` error.
        source: std::io::Error,
    },

    /// The operating system's random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Rng(String),

    /// An I/O error while reading or writing a stream or file.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// The caller asked for something this API does not do (a frame size of 0, a data key of
    /// the wrong length, a rotation with no target KEK, a symbolic link to rotate). Fix the
    /// call; retrying it unchanged fails the same way.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),

    /// A stream can no longer be used: it was finished, or an earlier error left its output
    /// incomplete (a poisoned [`EncryptWriter`](crate::EncryptWriter)). Start a new message.
    #[error("{0}")]
    Finished(&'static str),

    /// A file changed (or was replaced) while it was being rotated; it was left alone. Rerun
    /// to rotate it as it is now.
    #[error("{path} {what}; left alone (rerun to rotate it as it is now)")]
    FileChanged {
        /// The file.
        path: std::path::PathBuf,
        /// What changed.
        what: &'static str,
    },

    /// A stored secret's value does not have the shape its reference asks for (a `#field`
    /// selector on a value that is not a JSON object, a missing or doubled field, malformed
    /// JSON). Says what is wrong and names the field, never a value.
    #[error("secret value: {0}")]
    SecretShape(String),

    /// A secret reference could not be parsed, or names something its store cannot serve.
    #[error("invalid secret reference `{reference}`: {reason}")]
    InvalidReference {
        /// The reference as given (references name secrets; they hold none). Input that is
        /// not reference-shaped is described, not repeated.
        reference: String,
        /// What is wrong and what the expected form is.
        reason: String,
    },
    /// A secret store could not deliver (or store) a secret.
    #[error("secret store error ({kind}) for {reference}: {message}")]
    Store {
        /// The reference (or store) the call was for.
        reference: String,
        /// What kind of failure, so callers can decide whether to retry.
        kind: StoreErrorKind,
        /// A description without secret material.
        message: String,
    },
    /// An internal invariant failed: a bug in kmseal, never the caller's input. Please report
    /// it with the message.
    #[error("internal error (a bug in kmseal; please report it): {0}")]
    Internal(&'static str),

    /// The decryptor requires signed messages ([`Decryptor::require_signed`]) and this one is
    /// not signed. Checked before any KMS call.
    ///
    /// [`Decryptor::require_signed`]: crate::Decryptor::require_signed
    #[error(
        "the message is not signed, and signed messages are required (require_signed / \
         --require-signed)"
    )]
    Unsigned,

    /// A key or secret created before `fork()` was used in the child process, where its
    /// memory reads as zeros (`MADV_WIPEONFORK`). Create keys, KEKs and caches after forking.
    #[error(
        "a key created before fork() was used in the child process (its memory is wiped there); \
         create keys, KEKs and caches after forking"
    )]
    ForkedSecret,
}

impl Error {
    /// The KMS failure kind, for [`Error::Kms`]; `None` for every other error.
    ///
    /// ```
    /// # fn handle(e: kmseal::Error) {
    /// if e.kms_kind().is_some_and(|k| k.is_retryable()) {
    ///     // back off and try again
    /// }
    /// # }
    /// ```
    pub fn kms_kind(&self) -> Option<KmsErrorKind> {
        match self {
            Error::Kms { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// The store failure kind, for [`Error::Store`]; `None` for every other error.
    pub fn store_kind(&self) -> Option<StoreErrorKind> {
        match self {
            Error::Store { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// This error as seen by a caller of a secret store for `reference`: a provider's
    /// [`Error::Kms`] (from an HTTP layer shared with its KEK) becomes an [`Error::Store`] of
    /// the same kind, naming the reference; other errors are returned unchanged.
    pub fn for_reference(self, reference: &dyn fmt::Display) -> Error {
        match self {
            Error::Kms { kind, message, .. } => Error::Store {
                reference: reference.to_string(),
                kind: kind.into(),
                message,
            },
            other => other,
        }
    }
}

/// Kinds of secret store failure, distinct so a caller can decide what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// Credentials missing or not allowed to read (or write) the secret, or a `file://`
    /// secret that fails the owner and mode checks. Do not retry.
    AccessDenied,
    /// The secret, version, stage or field does not exist. Do not retry.
    NotFound,
    /// The value is larger than the store limit ([`MAX_SECRET_LEN`](crate::store::MAX_SECRET_LEN)).
    TooLarge,
    /// The store cannot do this (a `put` to `env://`, versions of a KV v1 mount).
    Unsupported,
    /// Rate limited; retry later with backoff.
    Throttled,
    /// The service is unreachable or failing (5xx, connection error); retry later.
    Unavailable,
    /// The call did not complete within the configured time.
    Timeout,
    /// A response failed an integrity check (a payload checksum mismatch).
    Integrity,
    /// Anything else (an unexpected response).
    Other,
}

impl StoreErrorKind {
    /// Whether a retry may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            StoreErrorKind::Throttled | StoreErrorKind::Unavailable | StoreErrorKind::Timeout
        )
    }
}

impl From<KmsErrorKind> for StoreErrorKind {
    /// The same failure seen by a store client that shares a KMS provider's HTTP layer.
    fn from(kind: KmsErrorKind) -> StoreErrorKind {
        match kind {
            KmsErrorKind::AccessDenied => StoreErrorKind::AccessDenied,
            KmsErrorKind::NotFound | KmsErrorKind::Disabled => StoreErrorKind::NotFound,
            KmsErrorKind::Throttled => StoreErrorKind::Throttled,
            KmsErrorKind::Unavailable => StoreErrorKind::Unavailable,
            KmsErrorKind::Timeout => StoreErrorKind::Timeout,
            KmsErrorKind::Integrity => StoreErrorKind::Integrity,
            KmsErrorKind::InvalidCiphertext | KmsErrorKind::Other => StoreErrorKind::Other,
        }
    }
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreErrorKind::AccessDenied => "access denied",
            StoreErrorKind::NotFound => "not found",
            StoreErrorKind::TooLarge => "too large",
            StoreErrorKind::Unsupported => "unsupported",
            StoreErrorKind::Throttled => "throttled",
            StoreErrorKind::Unavailable => "unavailable",
            StoreErrorKind::Timeout => "timed out",
            StoreErrorKind::Integrity => "integrity check failed",
            StoreErrorKind::Other => "other",
        })
    }
}

/// Kinds of KMS failure, distinct so a caller can decide what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KmsErrorKind {
    /// Credentials missing or not allowed to use the key. Do not retry.
    AccessDenied,
    /// The key does not exist (or is not visible). Do not retry.
    NotFound,
    /// The key exists but is disabled or pending deletion.
    Disabled,
    /// The KMS rejected the wrapped key or its context (tampered, wrong key, wrong context).
    InvalidCiphertext,
    /// Rate limited; retry later with backoff.
    Throttled,
    /// The service is unreachable or failing (5xx, connection error); retry later.
    Unavailable,
    /// The call did not complete within the configured time.
    Timeout,
    /// A response failed an integrity check (checksum mismatch).
    Integrity,
    /// Anything else.
    Other,
}

impl KmsErrorKind {
    /// Whether a retry may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            KmsErrorKind::Throttled | KmsErrorKind::Unavailable | KmsErrorKind::Timeout
        )
    }
}

impl fmt::Display for KmsErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KmsErrorKind::AccessDenied => "access denied",
            KmsErrorKind::NotFound => "key not found",
            KmsErrorKind::Disabled => "key disabled",
            KmsErrorKind::InvalidCiphertext => "invalid ciphertext",
            KmsErrorKind::Throttled => "throttled",
            KmsErrorKind::Unavailable => "unavailable",
            KmsErrorKind::Timeout => "timed out",
            KmsErrorKind::Integrity => "integrity check failed",
            KmsErrorKind::Other => "other",
        })
    }
}

/// One failed unwrap attempt: which KEK, and why.
#[derive(Debug)]
pub struct KekFailure {
    /// The KEK's URI.
    pub kek: String,
    /// What went wrong.
    pub error: Error,
}

struct DisplayFailures<'a>(&'a [KekFailure]);

impl fmt::Display for DisplayFailures<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, failure) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", failure.kek, failure.error)?;
        }
        Ok(())
    }
}

/// `s` made safe to show on a terminal or in a log line: control characters (ANSI escape
/// sequences, carriage returns, NUL ...), Unicode bidirectional overrides and backslashes are
/// written as escapes (`\u{1b}`, `\\`). Key ids, provider names and context strings read from
/// an untrusted header go through this wherever they are shown: a crafted message must not be
/// able to rewrite the user's terminal or forge log lines.
///
/// ```
/// assert_eq!(kmseal::escape_untrusted("key\u{1b}[2Jid"), "key\\u{1b}[2Jid");
/// assert_eq!(kmseal::escape_untrusted("plain-key"), "plain-key");
/// ```
pub fn escape_untrusted(s: &str) -> std::borrow::Cow<'_, str> {
    let bidi = |c: char| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !s.chars().any(|c| c.is_control() || bidi(c) || c == '\\') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if c.is_control() || bidi(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}
