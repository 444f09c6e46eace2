//! `aws-kms://` key URIs, parsed once into their parts.

use std::fmt;
use std::str::FromStr;

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
}
