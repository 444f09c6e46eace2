//! Secret references: `SCHEME://BODY[?version=V|?stage=S][#FIELD]`.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// Which kind of store a [`SecretRef`] names (its scheme).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreKind {
    /// `env://NAME`: an environment variable of this process.
    Env,
    /// `file://PATH`: a file that passes the owner and mode checks of local key files.
    File,
    /// `aws-sm://NAME` or `aws-sm://arn:aws:secretsmanager:…`: AWS Secrets Manager.
    AwsSm,
    /// `gcp-sm://projects/P/secrets/S[/versions/V]`: Google Cloud Secret Manager.
    GcpSm,
    /// `azure-secret://VAULT.vault.azure.net/NAME[/VERSION]`: Azure Key Vault secrets.
    AzureSecret,
    /// `vault-kv://HOST[:PORT]/MOUNT/PATH` (https) or `vault-kv+http://…` (plain http, only
    /// when asked for explicitly): Vault / OpenBao KV, version 1 or 2.
    VaultKv,
}

impl StoreKind {
    /// The URI scheme (`vault-kv` for both `vault-kv://` and `vault-kv+http://`).
    pub fn scheme(self) -> &'static str {
        match self {
            StoreKind::Env => "env",
            StoreKind::File => "file",
            StoreKind::AwsSm => "aws-sm",
            StoreKind::GcpSm => "gcp-sm",
            StoreKind::AzureSecret => "azure-secret",
            StoreKind::VaultKv => "vault-kv",
        }
    }

    /// Whether the store keeps versions a reference can select with `?version=`.
    fn has_versions(self) -> bool {
        !matches!(self, StoreKind::Env | StoreKind::File)
    }
}

/// The longest reference accepted, in bytes.
const MAX_REFERENCE_LEN: usize = 4096;
/// The longest `version`, `stage` or `#field`, in bytes.
const MAX_SELECTOR_LEN: usize = 256;

/// A reference to a stored secret, parsed: the store kind, the store's own body (what follows
/// `SCHEME://`, whose form the store checks), and the selectors every store shares:
///
/// * `?version=V` picks one version (`?stage=S` one stage, such as Secrets Manager's
///   `AWSPREVIOUS`), where the store keeps versions; at most one of the two;
///   values are 1 to 256 characters of `[A-Za-z0-9._-]`;
/// * `#FIELD` picks one top-level field of a JSON object secret ([`json_field`]); everything
///   after the first `#` is the field name, taken literally.
///
/// A reference names a secret; it is not one, and it appears in errors and logs. Input that
/// is not reference-shaped (no `SCHEME://`) is never repeated in an error, in case a value
/// was pasted where a reference belongs.
///
/// ```
/// use kmseal::store::{SecretRef, StoreKind};
/// let r: SecretRef = "aws-sm://prod/db?stage=AWSPREVIOUS#password".parse()?;
/// assert_eq!(r.kind(), StoreKind::AwsSm);
/// assert_eq!(r.body(), "prod/db");
/// assert_eq!(r.stage(), Some("AWSPREVIOUS"));
/// assert_eq!(r.field(), Some("password"));
/// assert!("env://DB_PASSWORD?version=2".parse::<SecretRef>().is_err()); // env has no versions
/// # Ok::<(), kmseal::Error>(())
/// ```
///
/// [`json_field`]: crate::store::json_field
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretRef {
    kind: StoreKind,
    plain_http: bool,
    body: String,
    version: Option<String>,
    stage: Option<String>,
    field: Option<String>,
}

impl SecretRef {
    /// The store kind.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// What follows `SCHEME://`, without selectors: the store parses it.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// For `vault-kv+http://`: plain HTTP was asked for explicitly.
    pub fn plain_http(&self) -> bool {
        self.plain_http
    }

    /// `?version=V`.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// `?stage=S`.
    pub fn stage(&self) -> Option<&str> {
        self.stage.as_deref()
    }

    /// `#FIELD`.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The same reference without its `#field`: what a store fetches (the resolver caches one
    /// fetch for every field of a secret).
    pub fn without_field(&self) -> SecretRef {
        SecretRef {
            field: None,
            ..self.clone()
        }
    }

    /// The same secret and `#field` at version `id` (any `?version=` or `?stage=` replaced):
    /// how a version listed by [`SecretStore::versions`](crate::store::SecretStore::versions)
    /// is read. An id a reference cannot carry is an [`Error::InvalidReference`].
    pub fn at_version(&self, id: &str) -> Result<SecretRef, Error> {
        let ok = self.kind.has_versions()
            && !id.is_empty()
            && id.len() <= MAX_SELECTOR_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !ok {
            return Err(self.invalid(format!(
                "version `{}` cannot be selected here",
                crate::escape_untrusted(id)
            )));
        }
        Ok(SecretRef {
            version: Some(id.to_owned()),
            stage: None,
            ..self.clone()
        })
    }

    /// An [`Error::InvalidReference`] for this reference.
    pub fn invalid(&self, reason: impl Into<String>) -> Error {
        Error::InvalidReference {
            reference: self.to_string(),
            reason: reason.into(),
        }
    }

    fn scheme(&self) -> &'static str {
        if self.plain_http {
            "vault-kv+http"
        } else {
            self.kind.scheme()
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme(), self.body)?;
        if let Some(v) = &self.version {
            write!(f, "?version={v}")?;
        }
        if let Some(s) = &self.stage {
            write!(f, "?stage={s}")?;
        }
        if let Some(field) = &self.field {
            write!(f, "#{field}")?;
        }
        Ok(())
    }
}

impl FromStr for SecretRef {
    type Err = Error;

    fn from_str(text: &str) -> Result<SecretRef, Error> {
        let hidden = |what: String| Error::InvalidReference {
            reference: format!("({what}; {} characters, not shown)", text.chars().count()),
            reason: "expected SCHEME://..., where SCHEME is env, file, aws-sm, gcp-sm, \
                     azure-secret, vault-kv or vault-kv+http"
                .into(),
        };
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(hidden("no SCHEME://".into()));
        };
        let (kind, plain_http) = match scheme {
            "env" => (StoreKind::Env, false),
            "file" => (StoreKind::File, false),
            "aws-sm" => (StoreKind::AwsSm, false),
            "gcp-sm" => (StoreKind::GcpSm, false),
            "azure-secret" => (StoreKind::AzureSecret, false),
            "vault-kv" => (StoreKind::VaultKv, false),
            "vault-kv+http" => (StoreKind::VaultKv, true),
            other => {
                let scheme_like = !other.is_empty()
                    && other.len() <= 32
                    && other.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"+.-".contains(&b)
                    });
                return Err(if scheme_like {
                    hidden(format!("unknown scheme `{other}`"))
                } else {
                    hidden("not a scheme before ://".into())
                });
            }
        };
        // Reference-shaped text is shown, with control characters escaped (it may come from
        // a document someone else wrote: no terminal escapes or forged log lines).
        let bad = |reason: &str| Error::InvalidReference {
            reference: crate::escape_untrusted(text).into_owned(),
            reason: reason.to_owned(),
        };
        if text.len() > MAX_REFERENCE_LEN {
            return Err(hidden(format!("longer than {MAX_REFERENCE_LEN} bytes")));
        }
        if text.chars().any(char::is_control) {
            return Err(bad("contains control characters"));
        }
        let (rest, field) = match rest.split_once('#') {
            Some((rest, field)) => (rest, Some(field)),
            None => (rest, None),
        };
        let (body, query) = match rest.split_once('?') {
            Some((body, query)) => (body, Some(query)),
            None => (rest, None),
        };
        if body.is_empty() {
            return Err(bad("nothing after ://"));
        }
        if body.chars().any(char::is_whitespace) {
            return Err(bad("contains whitespace before the selectors"));
        }
        let field = match field {
            None => None,
            Some("") => return Err(bad("`#` is not followed by a field name")),
            Some(f) if f.len() > MAX_SELECTOR_LEN => {
                return Err(bad("the #field name is longer than 256 bytes"));
            }
            Some(f) => Some(f.to_owned()),
        };
        let (mut version, mut stage) = (None, None);
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(bad(
                    "a selector is not KEY=VALUE (use ?version=V or ?stage=S)",
                ));
            };
            let slot = match key {
                "version" => &mut version,
                "stage" => &mut stage,
                _ => return Err(bad("unknown selector (use ?version=V or ?stage=S)")),
            };
            let value_ok = !value.is_empty()
                && value.len() <= MAX_SELECTOR_LEN
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !value_ok {
                return Err(bad(
                    "a version or stage is 1 to 256 characters of letters, digits, `.`, `_` \
                     and `-`",
                ));
            }
            if slot.replace(value.to_owned()).is_some() {
                return Err(bad("a selector is given twice"));
            }
        }
        if version.is_some() && stage.is_some() {
            return Err(bad("give ?version= or ?stage=, not both"));
        }
        if (version.is_some() || stage.is_some()) && !kind.has_versions() {
            return Err(bad(
                "this store keeps no versions (no ?version= or ?stage=)",
            ));
        }
        match kind {
            StoreKind::Env => {
                let name_ok = body
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                    && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !name_ok {
                    return Err(bad(
                        "env://NAME takes a variable name of letters, digits and `_`",
                    ));
                }
            }
            StoreKind::File if body.ends_with('/') => {
                return Err(bad("file://PATH names a file, not a directory"));
            }
            _ => {}
        }
        Ok(SecretRef {
            kind,
            plain_http,
            body: body.to_owned(),
            version,
            stage,
            field,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<SecretRef, String> {
        s.parse::<SecretRef>().map_err(|e| e.to_string())
    }

    #[test]
    fn references_parse_and_print_back() {
        for text in [
            "env://DB_PASSWORD",
            "file:///run/secrets/db",
            "file://relative/db.txt",
            "aws-sm://prod/db#password",
            "aws-sm://arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db-AbCdEf?stage=AWSPREVIOUS",
            "gcp-sm://projects/p/secrets/s/versions/3",
            "azure-secret://myvault.vault.azure.net/db-password?version=0123abcd",
            "vault-kv://vault.internal:8200/secret/app/db?version=3#password",
            "vault-kv+http://127.0.0.1:8200/kv1/app#user name with spaces?and#hash",
        ] {
            let r = parse(text).unwrap();
            assert_eq!(r.to_string(), text);
            assert_eq!(r.without_field().field(), None);
        }
        let r = parse("vault-kv+http://127.0.0.1:8200/kv/app?version=7#a#b").unwrap();
        assert_eq!(
            (r.kind(), r.plain_http(), r.body()),
            (StoreKind::VaultKv, true, "127.0.0.1:8200/kv/app")
        );
        assert_eq!(
            (r.version(), r.stage(), r.field()),
            (Some("7"), None, Some("a#b"))
        );
    }

    #[test]
    fn malformed_references_are_refused_with_a_reason() {
        let e = parse("env://X\u{1b}]0;pwned\u{7}\nINFO forged").unwrap_err();
        assert!(!e.chars().any(char::is_control), "{e:?}");
        for (text, why) in [
            ("env://", "nothing after"),
            ("env://1ABC", "variable name"),
            ("env://A-B", "variable name"),
            ("env://A?version=1", "no versions"),
            ("file://dir/", "not a directory"),
            ("aws-sm://db#", "field name"),
            ("aws-sm://db?version", "KEY=VALUE"),
            ("aws-sm://db?version=", "1 to 256"),
            ("aws-sm://db?version=a/b", "1 to 256"),
            ("aws-sm://db?label=x", "unknown selector"),
            ("aws-sm://db?version=1&version=2", "twice"),
            ("aws-sm://db?version=1&stage=AWSCURRENT", "not both"),
            ("aws-sm://d b", "whitespace"),
            ("aws-sm://db\n", "control"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
        let long = format!("aws-sm://db#{}", "f".repeat(257));
        assert!(parse(&long).unwrap_err().contains("256"));
    }

    #[test]
    fn input_that_is_not_a_reference_is_never_repeated() {
        let secret = "hunter2-Sup3rS3cret";
        for text in [
            secret.to_owned(),
            format!("{secret}://x"),
            format!("Bearer {secret}://x"),
            format!("aws-sm://{}", "x".repeat(5000) + secret),
        ] {
            let e = parse(&text).unwrap_err();
            assert!(!e.contains(secret), "{e}");
            assert!(e.contains("not shown"), "{e}");
        }
    }

    #[test]
    fn garbage_and_every_truncation_is_an_error_or_a_reference_never_a_panic() {
        let text = "vault-kv+http://127.0.0.1:8200/secret/app?version=3#password";
        for end in 0..=text.len() {
            if let Ok(r) = parse(&text[..end]) {
                assert_eq!(r.to_string(), &text[..end]);
            }
        }
        let bytes = text.as_bytes();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.to_vec();
                b[i] ^= 1 << bit;
                if let Ok(s) = std::str::from_utf8(&b) {
                    let _ = parse(s);
                }
            }
        }
    }
}
