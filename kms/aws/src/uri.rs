//! `aws-kms://` key URIs and `aws-sm://` secret references, parsed once into their parts.

use std::fmt;
use std::str::FromStr;

use kmseal::store::{SecretRef, StoreKind};
use kmseal::{Error, KeyUri, Provider};
use kmseal_kms_common::uri::{body_for, invalid, is_name};

const FORM: &str =
    "expected aws-kms://arn:PARTITION:kms:REGION:ACCOUNT:key/KEY_ID or .../alias/NAME";

/// A parsed `aws-kms://arn:PARTITION:kms:REGION:ACCOUNT:key/KEY_ID` (or `.../alias/NAME`).
///
/// ```
/// use kmseal_aws::AwsKeyArn;
/// let arn: AwsKeyArn = "aws-kms://arn:aws:kms:eu-west-1:111122223333:alias/billing".parse()?;
/// assert_eq!(arn.region(), "eu-west-1");
/// assert!(arn.is_alias());
/// assert!("aws-kms://arn:aws:kms::1:key/x".parse::<AwsKeyArn>().is_err());
/// # Ok::<(), kmseal::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AwsKeyArn {
    arn: String,
    region: String,
    account: String,
    alias: bool,
}

impl AwsKeyArn {
    /// The whole ARN (`arn:aws:kms:…`).
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// The region, from the ARN.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The 12-digit account id.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// Whether the ARN names an alias (resolved to its key when a KEK is built).
    pub fn is_alias(&self) -> bool {
        self.alias
    }

    fn parse_body(uri: &str, body: &str) -> Result<AwsKeyArn, Error> {
        let parts: Vec<&str> = body.splitn(6, ':').collect();
        let [arn, partition, service, region, account, resource] = parts[..] else {
            return Err(invalid(uri, FORM));
        };
        if arn != "arn" || !partition.starts_with("aws") || service != "kms" {
            return Err(invalid(uri, FORM));
        }
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid(
                uri,
                format!("{FORM} (the region is missing or malformed)"),
            ));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(
                uri,
                format!("{FORM} (the account must be 12 digits)"),
            ));
        }
        let alias = match resource.split_once('/') {
            Some(("key", id)) if is_name(id) => false,
            Some(("alias", name))
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_/".contains(&b)) =>
            {
                true
            }
            _ => return Err(invalid(uri, FORM)),
        };
        Ok(AwsKeyArn {
            arn: body.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            alias,
        })
    }
}

impl TryFrom<&KeyUri> for AwsKeyArn {
    type Error = Error;

    fn try_from(uri: &KeyUri) -> Result<AwsKeyArn, Error> {
        AwsKeyArn::parse_body(&uri.to_string(), body_for(uri, Provider::AwsKms)?)
    }
}

impl FromStr for AwsKeyArn {
    type Err = Error;

    /// Parses `aws-kms://ARN`.
    fn from_str(s: &str) -> Result<AwsKeyArn, Error> {
        AwsKeyArn::try_from(&s.parse::<KeyUri>()?)
    }
}

impl fmt::Display for AwsKeyArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "aws-kms://{}", self.arn)
    }
}

const SM_FORM: &str = "expected aws-sm://NAME (1 to 512 characters of letters, digits and \
                       /_+=.@-) or aws-sm://arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME";

/// A parsed `aws-sm://NAME` or `aws-sm://arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:…`
/// reference: the secret id Secrets Manager takes, and the region when an ARN names one (a
/// name is looked up in the default region: `AWS_REGION`, the profile).
///
/// ```
/// use kmseal_aws::AwsSecretId;
/// let r = "aws-sm://arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db-AbCdEf#password".parse()?;
/// let id = AwsSecretId::try_from(&r)?;
/// assert_eq!(id.region(), Some("eu-west-1"));
/// let r = "aws-sm://prod/db".parse()?;
/// assert_eq!(AwsSecretId::try_from(&r)?.id(), "prod/db");
/// # Ok::<(), kmseal::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AwsSecretId {
    id: String,
    region: Option<String>,
}

impl AwsSecretId {
    /// The secret id: a name or an ARN.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The region an ARN names; `None` for a name.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// Whether the id is a name (not an ARN): only names can be created by `put`.
    pub fn is_name(&self) -> bool {
        self.region.is_none()
    }
}

impl TryFrom<&SecretRef> for AwsSecretId {
    type Error = Error;

    fn try_from(reference: &SecretRef) -> Result<AwsSecretId, Error> {
        if reference.kind() != StoreKind::AwsSm {
            return Err(reference.invalid("not an aws-sm:// reference"));
        }
        let body = reference.body();
        let name_ok = |name: &str| {
            !name.is_empty()
                && name.len() <= 512
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
        };
        if !body.starts_with("arn:") {
            if !name_ok(body) {
                return Err(reference.invalid(SM_FORM));
            }
            return Ok(AwsSecretId {
                id: body.to_owned(),
                region: None,
            });
        }
        let parts: Vec<&str> = body.splitn(7, ':').collect();
        let [_, partition, service, region, account, kind, name] = parts[..] else {
            return Err(reference.invalid(SM_FORM));
        };
        let region_ok = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        if !partition.starts_with("aws")
            || service != "secretsmanager"
            || kind != "secret"
            || !region_ok
            || !account_ok
            || !name_ok(name)
        {
            return Err(reference.invalid(SM_FORM));
        }
        Ok(AwsSecretId {
            id: body.to_owned(),
            region: Some(region.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_arns_parse_into_their_parts() {
        for (s, region, alias) in [
            (
                "aws-kms://arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "us-east-1",
                false,
            ),
            (
                "aws-kms://arn:aws:kms:eu-west-1:111122223333:alias/app/prod",
                "eu-west-1",
                true,
            ),
            (
                "aws-kms://arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-abc",
                "us-gov-west-1",
                false,
            ),
        ] {
            let arn: AwsKeyArn = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(arn.region(), region);
            assert_eq!(arn.account(), "111122223333");
            assert_eq!(arn.is_alias(), alias);
            assert_eq!(arn.to_string(), s);
        }
    }

    #[test]
    fn bad_arns_say_why() {
        for s in [
            "aws-kms://arn:aws:kms:us-east-1:1111:key/x",
            "aws-kms://arn:aws:kms::111122223333:key/x",
            "aws-kms://arn:aws:kms:US-EAST-1:111122223333:key/x",
            "aws-kms://arn:aws:s3:us-east-1:111122223333:key/x",
            "aws-kms://arn:gcp:kms:us-east-1:111122223333:key/x",
            "aws-kms://arn:aws:kms:us-east-1:111122223333:secret/x",
            "aws-kms://arn:aws:kms:us-east-1:111122223333:key/",
            "aws-kms://arn:aws:kms:us-east-1:111122223333:alias/",
            "aws-kms://arn:aws:kms:us-east-1:111122223333",
            "vault://h:1/transit/keys/k",
        ] {
            match s.parse::<AwsKeyArn>() {
                Err(Error::InvalidKeyUri { reason, .. }) => assert!(!reason.is_empty(), "{s}"),
                other => panic!("{s}: {other:?}"),
            }
        }
    }

    #[test]
    fn secret_ids_parse_and_bad_ones_say_why() {
        let parse = |s: &str| AwsSecretId::try_from(&s.parse::<SecretRef>().unwrap());
        let id = parse("aws-sm://prod/db_pass+1=2.3@x-y?stage=AWSPREVIOUS#f").unwrap();
        assert_eq!(
            (id.id(), id.region(), id.is_name()),
            ("prod/db_pass+1=2.3@x-y", None, true)
        );
        let arn = "arn:aws-us-gov:secretsmanager:us-gov-west-1:111122223333:secret:a/b-XyZ123";
        let id = parse(&format!("aws-sm://{arn}")).unwrap();
        assert_eq!((id.id(), id.region()), (arn, Some("us-gov-west-1")));
        for bad in [
            "aws-sm://a:b",
            "aws-sm://arn:aws:kms:eu-west-1:111122223333:secret:x",
            "aws-sm://arn:aws:secretsmanager:eu-west-1:1111:secret:x",
            "aws-sm://arn:aws:secretsmanager::111122223333:secret:x",
            "aws-sm://arn:aws:secretsmanager:eu-west-1:111122223333:key:x",
            "aws-sm://arn:aws:secretsmanager:eu-west-1:111122223333:secret:",
            "vault-kv://h/secret/x",
        ] {
            assert!(
                matches!(parse(bad), Err(Error::InvalidReference { .. })),
                "{bad}"
            );
        }
        let long = format!("aws-sm://{}", "a".repeat(513));
        assert!(parse(&long).is_err());
    }
}
