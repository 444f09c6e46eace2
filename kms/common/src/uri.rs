//! Pieces the providers' typed key URIs share: name and host rules, and the error a URI that
//! does not parse gets. Each provider owns its URI type (`AwsKeyArn`, `GcpKeyName`,
//! `AzureKeyId`, `VaultKeyPath`); the core's [`KeyUri`] only names the provider.

use kmseal::store::SecretRef;
use kmseal::{Error, KeyUri, Provider};

/// An [`Error::InvalidKeyUri`] for `uri` saying `reason`.
pub fn invalid(uri: impl ToString, reason: impl Into<String>) -> Error {
    Error::InvalidKeyUri {
        uri: uri.to_string(),
        reason: reason.into(),
    }
}

/// The body of `uri` when it names `provider`, else the error a provider gives for
/// another provider's URI.
pub fn body_for(uri: &KeyUri, provider: Provider) -> Result<&str, Error> {
    if uri.provider() != provider {
        return Err(invalid(uri, format!("not a {}:// URI", provider.scheme())));
    }
    Ok(uri.body())
}

/// A resource name: ASCII letters, digits, `-`, `_` and `.`, not empty, and not `.` or `..`
/// (path segments an HTTP client would resolve, so that a name could leave its place in a URL).
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// `NAME[:PORT]`: a DNS name or IPv4 address (letters, digits, `-`, `.`, not starting with
/// either), and a port from 1 to 65535.
pub fn is_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p != 0));
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        && !name.starts_with(['-', '.']);
    port_ok && name_ok
}

/// The version a secret reference selects: in its path (`…/versions/V`, `…/NAME/V`) or with
/// `?version=`, not both.
pub fn selected_version(
    reference: &SecretRef,
    in_path: Option<&str>,
) -> Result<Option<String>, Error> {
    match (in_path, reference.version()) {
        (Some(_), Some(_)) => {
            Err(reference.invalid("give the version in the path or with ?version=, not both"))
        }
        (Some(v), None) | (None, Some(v)) => Ok(Some(v.to_owned())),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_hosts() {
        assert!(is_name("a-b_c.d"));
        assert!(!is_name("") && !is_name("a/b") && !is_name("a b"));
        assert!(is_host("vault.internal:8200") && is_host("10.0.0.1") && is_host("h"));
        for bad in ["", ":1", "h:0", "h:65536", "h:x", "-h", ".h", "h/x", "h_x"] {
            assert!(!is_host(bad), "{bad}");
        }
    }
}
