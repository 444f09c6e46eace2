//! `gcp-kms://` key URIs, parsed once into their parts.

use std::fmt;
use std::str::FromStr;

use kmseal::{Error, KeyUri, Provider};
use kmseal_kms_common::uri::{body_for, invalid, is_name};

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
}
