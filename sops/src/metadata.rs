//! The `sops` metadata block (`stores/stores.go`, `Metadata` and `ToInternal`): key sources,
//! `lastmodified`, the encrypted MAC and the rules that select encrypted values.

use regex::Regex;

use crate::Error;
use crate::tree::{Key, Node, Rules};

/// One data-key source: a master key of the file's (single) key group.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Age {
        recipient: String,
        enc: String,
    },
    Kms {
        arn: String,
        enc: String,
        context: Vec<(String, String)>,
        role: String,
        profile: String,
    },
    Gcp {
        resource_id: String,
        enc: String,
    },
    Vault {
        address: String,
        engine_path: String,
        key_name: String,
        enc: String,
    },
    Azure {
        vault_url: String,
        name: String,
        version: String,
        enc: String,
    },
    Pgp {
        fingerprint: String,
    },
}

/// The parsed metadata.
#[derive(Debug)]
pub(crate) struct Metadata {
    pub(crate) sources: Vec<Source>,
    pub(crate) lastmodified: String,
    pub(crate) mac: String,
    pub(crate) rules: Rules,
}

fn bad(what: impl Into<String>) -> Error {
    Error::Metadata(what.into())
}

fn get<'a>(map: &'a [(Key, Node)], name: &str) -> Option<&'a Node> {
    map.iter().find_map(|(k, v)| match k {
        Key::Name(n) if n == name => Some(v),
        _ => None,
    })
}

fn text(map: &[(Key, Node)], name: &str) -> Result<String, Error> {
    match get(map, name) {
        None | Some(Node::Null) => Ok(String::new()),
        Some(Node::Scalar(s)) => Ok(s.text.as_str().to_owned()),
        Some(_) => Err(bad(format!("`{name}` is not a scalar"))),
    }
}

fn list<'a>(map: &'a [(Key, Node)], name: &str) -> Result<Vec<&'a [(Key, Node)]>, Error> {
    match get(map, name) {
        None | Some(Node::Null) => Ok(Vec::new()),
        Some(Node::List(items)) => items
            .iter()
            .filter(|n| !matches!(n, Node::Comment(_)))
            .map(|n| match n {
                Node::Map(m) => Ok(m.as_slice()),
                _ => Err(bad(format!("an entry of `{name}` is not a mapping"))),
            })
            .collect(),
        Some(_) => Err(bad(format!("`{name}` is not a list"))),
    }
}

fn regex(map: &[(Key, Node)], name: &str) -> Result<Option<Regex>, Error> {
    let s = text(map, name)?;
    if s.is_empty() {
        return Ok(None);
    }
    Regex::new(&s).map(Some).map_err(|_| {
        bad(format!(
            "`{name}` is not a regular expression this crate can run"
        ))
    })
}

fn group(map: &[(Key, Node)]) -> Result<Vec<Source>, Error> {
    let mut out = Vec::new();
    for m in list(map, "kms")? {
        let context = match get(m, "context") {
            Some(Node::Map(c)) => c
                .iter()
                .filter_map(|(k, v)| match (k, v) {
                    (Key::Name(k), Node::Scalar(s)) => {
                        Some((k.clone(), s.text.as_str().to_owned()))
                    }
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        out.push(Source::Kms {
            arn: text(m, "arn")?,
            enc: text(m, "enc")?,
            context,
            role: text(m, "role")?,
            profile: text(m, "aws_profile")?,
        });
    }
    for m in list(map, "gcp_kms")? {
        out.push(Source::Gcp {
            resource_id: text(m, "resource_id")?,
            enc: text(m, "enc")?,
        });
    }
    for m in list(map, "azure_kv")? {
        out.push(Source::Azure {
            vault_url: text(m, "vault_url")?,
            name: text(m, "name")?,
            version: text(m, "version")?,
            enc: text(m, "enc")?,
        });
    }
    for m in list(map, "hc_vault")? {
        out.push(Source::Vault {
            address: text(m, "vault_address")?,
            engine_path: text(m, "engine_path")?,
            key_name: text(m, "key_name")?,
            enc: text(m, "enc")?,
        });
    }
    for m in list(map, "pgp")? {
        out.push(Source::Pgp {
            fingerprint: text(m, "fp")?,
        });
    }
    for m in list(map, "age")? {
        out.push(Source::Age {
            recipient: text(m, "recipient")?,
            enc: text(m, "enc")?,
        });
    }
    Ok(out)
}

impl Metadata {
    /// Reads the metadata from the `sops` node (a mapping).
    pub(crate) fn from_node(node: &Node) -> Result<Metadata, Error> {
        let Node::Map(map) = node else {
            return Err(bad("`sops` is not a mapping"));
        };
        let mut sources = group(map)?;
        if sources.is_empty() {
            let groups = list(map, "key_groups")?;
            match groups.as_slice() {
                [] => {}
                [one] => sources = group(one)?,
                _ => {
                    return Err(Error::Unsupported(
                        "several key groups (Shamir secret sharing of the data key)".into(),
                    ));
                }
            }
        }
        if sources.is_empty() {
            return Err(bad("no keys found in the file"));
        }
        let mut rules = Rules {
            unencrypted_suffix: text(map, "unencrypted_suffix")?,
            encrypted_suffix: text(map, "encrypted_suffix")?,
            unencrypted_regex: regex(map, "unencrypted_regex")?,
            encrypted_regex: regex(map, "encrypted_regex")?,
            unencrypted_comment_regex: regex(map, "unencrypted_comment_regex")?,
            encrypted_comment_regex: regex(map, "encrypted_comment_regex")?,
            mac_only_encrypted: match text(map, "mac_only_encrypted")?.as_str() {
                "" | "false" | "False" => false,
                "true" | "True" => true,
                _ => return Err(bad("`mac_only_encrypted` is not a boolean")),
            },
        };
        let count = [
            !rules.unencrypted_suffix.is_empty(),
            !rules.encrypted_suffix.is_empty(),
            rules.unencrypted_regex.is_some(),
            rules.encrypted_regex.is_some(),
        ]
        .iter()
        .filter(|&&b| b)
        .count();
        if count > 1 {
            return Err(bad(
                "more than one of encrypted_suffix, unencrypted_suffix, encrypted_regex, \
                 unencrypted_regex",
            ));
        }
        if count == 0 {
            rules.unencrypted_suffix = "_unencrypted".into();
        }
        let lastmodified = text(map, "lastmodified")?;
        if lastmodified.is_empty() {
            return Err(bad("`lastmodified` is missing"));
        }
        Ok(Metadata {
            sources,
            lastmodified,
            mac: text(map, "mac")?,
            rules,
        })
    }

    /// The associated data of the MAC: `lastmodified` as Go's `time.RFC3339` formats it
    /// after parsing (fractional seconds dropped, a zero offset written `Z`).
    pub(crate) fn mac_aad(&self) -> Result<String, Error> {
        rfc3339(&self.lastmodified).ok_or_else(|| bad("`lastmodified` is not an RFC 3339 time"))
    }
}

fn rfc3339(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let shape = digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && b.get(10) == Some(&b'T')
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19);
    if !shape {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let zone = match rest {
        "Z" | "+00:00" | "-00:00" => "Z".to_owned(),
        z if z.len() == 6
            && (z.starts_with('+') || z.starts_with('-'))
            && z.as_bytes()[3] == b':'
            && z[1..3]
                .bytes()
                .chain(z[4..].bytes())
                .all(|d| d.is_ascii_digit()) =>
        {
            z.to_owned()
        }
        _ => return None,
    };
    Some(format!("{}{zone}", &s[..19]))
}

/// Unflattens SOPS's `.env` metadata (`stores/flatten.go`): `age__list_0__map_enc` is
/// `age[0].enc`. Values had their `\n` escapes decoded already.
pub(crate) fn unflatten(pairs: &[(String, String)]) -> Result<Node, Error> {
    let mut root = Node::Map(Vec::new());
    for (k, v) in pairs {
        let mut segs = Vec::new();
        let mut parts = k.split("__");
        segs.push(Seg::Key(parts.next().unwrap_or_default().to_owned()));
        for p in parts {
            if let Some(i) = p.strip_prefix("list_") {
                let i: usize = i
                    .parse()
                    .map_err(|_| bad("a malformed .env metadata key"))?;
                if i > 1000 {
                    return Err(bad("a .env metadata list index is too large"));
                }
                segs.push(Seg::Index(i));
            } else if let Some(m) = p.strip_prefix("map_") {
                segs.push(Seg::Key(m.to_owned()));
            } else {
                return Err(bad("a malformed .env metadata key"));
            }
        }
        insert(&mut root, &segs, v)?;
    }
    Ok(root)
}

enum Seg {
    Key(String),
    Index(usize),
}

fn insert(node: &mut Node, segs: &[Seg], value: &str) -> Result<(), Error> {
    let Some((first, rest)) = segs.split_first() else {
        *node = Node::Scalar(crate::tree::Scalar::new(crate::cipher::Ty::Str, value));
        return Ok(());
    };
    let conflict = || bad("conflicting .env metadata keys");
    match first {
        Seg::Key(k) => {
            if matches!(node, Node::Null) {
                *node = Node::Map(Vec::new());
            }
            let Node::Map(items) = node else {
                return Err(conflict());
            };
            let i = match items
                .iter()
                .position(|(key, _)| matches!(key, Key::Name(n) if n == k))
            {
                Some(i) => i,
                None => {
                    items.push((Key::Name(k.clone()), Node::Null));
                    items.len() - 1
                }
            };
            insert(&mut items[i].1, rest, value)
        }
        Seg::Index(i) => {
            if matches!(node, Node::Null) {
                *node = Node::List(Vec::new());
            }
            let Node::List(items) = node else {
                return Err(conflict());
            };
            while items.len() <= *i {
                items.push(Node::Null);
            }
            insert(&mut items[*i], rest, value)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lastmodified_as_go_formats_it() {
        assert_eq!(
            rfc3339("2026-12-02T07:20:55Z").unwrap(),
            "2026-12-02T07:20:55Z"
        );
        assert_eq!(
            rfc3339("2026-12-02T07:20:55.123Z").unwrap(),
            "2026-12-02T07:20:55Z"
        );
        assert_eq!(
            rfc3339("2026-12-02T07:20:55+00:00").unwrap(),
            "2026-12-02T07:20:55Z"
        );
        assert_eq!(
            rfc3339("2026-12-02T07:20:55+01:00").unwrap(),
            "2026-12-02T07:20:55+01:00"
        );
        assert!(rfc3339("yesterday").is_none());
        assert!(rfc3339("2026-12-02T07:20:55").is_none());
    }

    #[test]
    fn env_metadata_unflattens() {
        let pairs = vec![
            ("age__list_0__map_enc".to_owned(), "E".to_owned()),
            ("age__list_0__map_recipient".to_owned(), "R".to_owned()),
            ("lastmodified".to_owned(), "2026-12-02T07:20:55Z".to_owned()),
        ];
        let m = Metadata::from_node(&unflatten(&pairs).unwrap()).unwrap();
        assert!(
            matches!(&m.sources[0], Source::Age { enc, recipient } if enc == "E" && recipient == "R")
        );
        assert!(unflatten(&[("a__list_x".into(), String::new())]).is_err());
    }
}
