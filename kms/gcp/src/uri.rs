//! `gcp-kms://` key URIs and `gcp-sm://` secret references, parsed once into their parts.

use std::fmt;
use std::str::FromStr;

use kmseal::store::{SecretRef, StoreKind};
use kmseal::{Error, KeyUri, Provider};
use kmseal_kms_common::uri::{body_for, invalid, is_name, selected_version};

/// A parsed `gcp-kms://projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY`.
///
/// ```
/// use kmseal_gcp::GcpKeyName;
/// let key: GcpKeyName =
///     "gcp-kms://projects/p/locations/europe-west1/keyRings/r/cryptoKeys/k".parse()?;
/// assert_eq!(key.location(), "europe-west1");
/// assert_eq!(key.name(), "projects/p/locations/europe-west1/keyRings/r/cryptoKeys/k");
/// # Ok::<(), kmseal::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GcpKeyName {
    name: String,
    project: String,
    location: String,
    ring: String,
    key: String,
}

impl GcpKeyName {
    /// The CryptoKey's resource name (`projects/…/cryptoKeys/KEY`), as the API takes it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The project id.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The location (`global`, `europe-west1`, …).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The key ring.
    pub fn key_ring(&self) -> &str {
        &self.ring
    }

    /// The CryptoKey.
    pub fn crypto_key(&self) -> &str {
        &self.key
    }
}

impl TryFrom<&KeyUri> for GcpKeyName {
    type Error = Error;

    fn try_from(uri: &KeyUri) -> Result<GcpKeyName, Error> {
        let body = body_for(uri, Provider::GcpKms)?;
        let parts: Vec<&str> = body.split('/').collect();
        match parts[..] {
            [
                "projects",
                p,
                "locations",
                l,
                "keyRings",
                r,
                "cryptoKeys",
                k,
            ] if is_name(p) && is_name(l) && is_name(r) && is_name(k) => Ok(GcpKeyName {
                name: body.to_owned(),
                project: p.to_owned(),
                location: l.to_owned(),
                ring: r.to_owned(),
                key: k.to_owned(),
            }),
            _ => Err(invalid(
                uri,
                "expected gcp-kms://projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY",
            )),
        }
    }
}

impl FromStr for GcpKeyName {
    type Err = Error;

    /// Parses `gcp-kms://projects/…/cryptoKeys/KEY`.
    fn from_str(s: &str) -> Result<GcpKeyName, Error> {
        GcpKeyName::try_from(&s.parse::<KeyUri>()?)
    }
}

impl fmt::Display for GcpKeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gcp-kms://{}", self.name)
    }
}

const SM_FORM: &str = "expected gcp-sm://projects/PROJECT/secrets/SECRET[/versions/VERSION]";

/// A parsed `gcp-sm://projects/PROJECT/secrets/SECRET[/versions/VERSION]` reference. The
/// version may also come from `?version=` (not both); without one, `latest`.
///
/// ```
/// use kmseal_gcp::GcpSecretName;
/// let r = "gcp-sm://projects/p/secrets/db?version=3#password".parse()?;
/// let name = GcpSecretName::try_from(&r)?;
/// assert_eq!(name.secret(), "projects/p/secrets/db");
/// assert_eq!(name.version(), "projects/p/secrets/db/versions/3");
/// # Ok::<(), kmseal::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GcpSecretName {
    project: String,
    secret: String,
    version: Option<String>,
}

impl GcpSecretName {
    /// The project id or number.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The secret's resource name, `projects/P/secrets/S`.
    pub fn secret(&self) -> String {
        format!("projects/{}/secrets/{}", self.project, self.secret)
    }

    /// The version's resource name, `projects/P/secrets/S/versions/V` (`latest` when none
    /// was selected).
    pub fn version(&self) -> String {
        format!(
            "{}/versions/{}",
            self.secret(),
            self.version.as_deref().unwrap_or("latest")
        )
    }

    /// Whether a version was selected (in the path or with `?version=`).
    pub fn has_version(&self) -> bool {
        self.version.is_some()
    }
}

impl TryFrom<&SecretRef> for GcpSecretName {
    type Error = Error;

    fn try_from(reference: &SecretRef) -> Result<GcpSecretName, Error> {
        if reference.kind() != StoreKind::GcpSm {
            return Err(reference.invalid("not a gcp-sm:// reference"));
        }
        if reference.stage().is_some() {
            return Err(reference
                .invalid("Secret Manager has versions, not stages: select one with ?version=N"));
        }
        let secret_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 255
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        };
        let parts: Vec<&str> = reference.body().split('/').collect();
        let (project, secret, in_path) = match parts[..] {
            ["projects", p, "secrets", s] => (p, s, None),
            ["projects", p, "secrets", s, "versions", v] => (p, s, Some(v)),
            _ => return Err(reference.invalid(SM_FORM)),
        };
        if !is_name(project) || !secret_ok(secret) || in_path.is_some_and(|v| !is_name(v)) {
            return Err(reference.invalid(SM_FORM));
        }
        let version = selected_version(reference, in_path)?;
        Ok(GcpSecretName {
            project: project.to_owned(),
            secret: secret.to_owned(),
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_into_their_parts_and_bad_ones_say_why() {
        let s = "gcp-kms://projects/p-1/locations/europe-west1/keyRings/r/cryptoKeys/k";
        let k: GcpKeyName = s.parse().unwrap();
        assert_eq!(
            (k.project(), k.location(), k.key_ring(), k.crypto_key()),
            ("p-1", "europe-west1", "r", "k")
        );
        assert_eq!(k.to_string(), s);
        for bad in [
            "gcp-kms://projects/p/locations/l/keyRings/r",
            "gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
            "gcp-kms://projects//locations/l/keyRings/r/cryptoKeys/k",
            "gcp-kms://project/p/locations/l/keyRings/r/cryptoKeys/k",
            "vault://h:1/transit/keys/k",
        ] {
            assert!(
                matches!(bad.parse::<GcpKeyName>(), Err(Error::InvalidKeyUri { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn secret_names_parse_and_bad_ones_say_why() {
        let parse = |s: &str| GcpSecretName::try_from(&s.parse::<SecretRef>().unwrap());
        let n = parse("gcp-sm://projects/p-1/secrets/db_pw-2#f").unwrap();
        assert_eq!(n.version(), "projects/p-1/secrets/db_pw-2/versions/latest");
        assert!(!n.has_version());
        let n = parse("gcp-sm://projects/123/secrets/s/versions/7").unwrap();
        assert_eq!(n.version(), "projects/123/secrets/s/versions/7");
        for bad in [
            "gcp-sm://projects/p/secrets",
            "gcp-sm://projects/p/secrets/s/versions",
            "gcp-sm://projects/p/secrets/s.t",
            "gcp-sm://projects/p/locations/l/secrets/s",
            "gcp-sm://projects/p/secrets/s/versions/1?version=2",
            "gcp-sm://projects/p/secrets/s?stage=AWSPREVIOUS",
            "aws-sm://prod/db",
        ] {
            assert!(
                matches!(parse(bad), Err(Error::InvalidReference { .. })),
                "{bad}"
            );
        }
    }
}
