//! SOPS's document tree (`sops.go`: `TreeBranch`, `TreeItem`, `Comment`) and its decrypting
//! walk, which also computes the MAC.
//!
//! From `sops.go`, `Tree.Decrypt`: every leaf is visited in document order with the path of
//! mapping keys above it (a list adds nothing to the path); a leaf that `shouldBeEncrypted`
//! is decrypted with AAD `strings.Join(path, ":") + ":"`; the MAC is SHA-512 over
//! `ToBytes(value)` of every leaf but comments and nulls (of encrypted leaves only when
//! `mac_only_encrypted`, the hash then starting with 32 fixed bytes); comments that do not
//! decrypt are kept as they are.

use regex::Regex;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use crate::Error;
use crate::cipher::{self, Fail, Ty};
use crate::scalar;

/// A node of the tree.
#[derive(Clone)]
pub(crate) enum Node {
    /// A mapping: keys (or comments standing where a key would) in document order.
    Map(Vec<(Key, Node)>),
    /// A sequence; comments are items of their own.
    List(Vec<Node>),
    /// A scalar with the type it resolves to.
    Scalar(Scalar),
    /// A null (not encrypted, not in the MAC).
    Null,
    /// A comment inside a list.
    Comment(Zeroizing<String>),
}

/// A mapping key, or a comment line in a mapping (its value is [`Node::Null`]).
#[derive(Clone)]
pub(crate) enum Key {
    Name(String),
    Comment(Zeroizing<String>),
}

/// A scalar value. `text` is its canonical text once decrypted; for a plaintext value read
/// from the file, the text as written (a YAML/JSON number keeps its spelling).
#[derive(Clone)]
pub(crate) struct Scalar {
    pub(crate) ty: Ty,
    pub(crate) text: Zeroizing<String>,
}

impl Scalar {
    pub(crate) fn new(ty: Ty, text: impl Into<String>) -> Scalar {
        Scalar {
            ty,
            text: Zeroizing::new(text.into()),
        }
    }
}

/// The metadata settings that decide which leaves are ciphertext and what the MAC covers
/// (`shouldBeEncrypted`).
#[derive(Debug, Default)]
pub(crate) struct Rules {
    pub(crate) unencrypted_suffix: String,
    pub(crate) encrypted_suffix: String,
    pub(crate) unencrypted_regex: Option<Regex>,
    pub(crate) encrypted_regex: Option<Regex>,
    pub(crate) unencrypted_comment_regex: Option<Regex>,
    pub(crate) encrypted_comment_regex: Option<Regex>,
    pub(crate) mac_only_encrypted: bool,
}

/// `MACOnlyEncryptedInitialization` in `sops.go` (SHA-256 of "sops").
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

impl Rules {
    fn should_be_encrypted(
        &self,
        path: &[String],
        comments: &[Vec<String>],
        is_comment: bool,
    ) -> bool {
        let mut encrypted = true;
        if !self.unencrypted_suffix.is_empty()
            && path.iter().any(|p| p.ends_with(&self.unencrypted_suffix))
        {
            encrypted = false;
        }
        if !self.encrypted_suffix.is_empty() {
            encrypted = path.iter().any(|p| p.ends_with(&self.encrypted_suffix));
        }
        if let Some(re) = &self.unencrypted_regex
            && path.iter().any(|p| re.is_match(p))
        {
            encrypted = false;
        }
        if let Some(re) = &self.encrypted_regex {
            encrypted = path.iter().any(|p| re.is_match(p));
        }
        if let Some(re) = &self.unencrypted_comment_regex
            && comments.iter().flatten().any(|c| re.is_match(c))
        {
            encrypted = false;
        }
        if let Some(re) = &self.encrypted_comment_regex {
            // The comment line that matches is itself left plain: skip the last comment of
            // the innermost level when the leaf is that comment.
            let last = comments.len().saturating_sub(1);
            let last_len = comments.last().map_or(0, Vec::len);
            encrypted = comments.iter().enumerate().any(|(i, cs)| {
                cs.iter()
                    .enumerate()
                    .any(|(j, c)| !(is_comment && i == last && j + 1 == last_len) && re.is_match(c))
            });
        }
        encrypted
    }
}

/// The decrypting walk: decrypts every encrypted leaf in place and returns the MAC (upper-case
/// hex SHA-512) of the plaintext tree.
pub(crate) fn decrypt(root: &mut Node, key: &[u8], rules: &Rules) -> Result<String, Error> {
    let mut walk = Walk {
        key,
        rules,
        hash: Sha512::new(),
        path: Vec::new(),
        comments: Vec::new(),
    };
    if rules.mac_only_encrypted {
        walk.hash.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    walk.node(root)?;
    let digest = walk.hash.finalize();
    Ok(digest.iter().map(|b| format!("{b:02X}")).collect())
}

struct Walk<'a> {
    key: &'a [u8],
    rules: &'a Rules,
    hash: Sha512,
    path: Vec<String>,
    comments: Vec<Vec<String>>,
}

impl Walk<'_> {
    fn aad(&self) -> String {
        let mut s = self.path.join(":");
        s.push(':');
        s
    }

    fn node(&mut self, node: &mut Node) -> Result<(), Error> {
        match node {
            Node::Map(items) => {
                self.comments.push(Vec::new());
                for (k, v) in items.iter_mut() {
                    match k {
                        Key::Comment(c) => {
                            self.push_comment(c);
                            self.comment(c);
                        }
                        Key::Name(name) => {
                            let value_is_comment = matches!(v, Node::Comment(_));
                            if let Node::Comment(c) = v {
                                self.push_comment(c);
                            }
                            self.path.push(name.clone());
                            let r = self.node(v);
                            self.path.pop();
                            r?;
                            if !value_is_comment {
                                self.clear_comments();
                            }
                        }
                    }
                }
                self.comments.pop();
            }
            Node::List(items) => {
                self.comments.push(Vec::new());
                for v in items.iter_mut() {
                    let is_comment = matches!(v, Node::Comment(_));
                    if let Node::Comment(c) = v {
                        self.push_comment(c);
                    }
                    self.node(v)?;
                    if !is_comment {
                        self.clear_comments();
                    }
                }
                self.comments.pop();
            }
            Node::Comment(c) => self.comment(c),
            Node::Null => {}
            Node::Scalar(s) => self.scalar(s)?,
        }
        Ok(())
    }

    fn push_comment(&mut self, c: &str) {
        if let Some(level) = self.comments.last_mut() {
            level.push(c.to_owned());
        }
    }

    fn clear_comments(&mut self) {
        if let Some(level) = self.comments.last_mut() {
            level.clear();
        }
    }

    /// A comment: decrypted when it should be and can be; otherwise kept as written
    /// (SOPS assumes it was never encrypted). Comments are not in the MAC.
    fn comment(&mut self, c: &mut Zeroizing<String>) {
        if !self
            .rules
            .should_be_encrypted(&self.path, &self.comments, true)
        {
            return;
        }
        if let Ok((Ty::Comment, plain)) = cipher::decrypt(c, self.key, &self.aad()) {
            *c = plain;
        }
    }

    fn scalar(&mut self, s: &mut Scalar) -> Result<(), Error> {
        let encrypted = self
            .rules
            .should_be_encrypted(&self.path, &self.comments, false);
        if encrypted {
            if s.ty != Ty::Str {
                return Err(Error::Metadata(format!(
                    "the value at `{}` should be encrypted but is not a string",
                    self.path.join(".")
                )));
            }
            if !s.text.is_empty() {
                let (ty, plain) = cipher::decrypt(&s.text, self.key, &self.aad()).map_err(|f| {
                    let at = self.path.join(".");
                    match f {
                        Fail::Malformed => Error::Metadata(format!(
                            "the value at `{at}` should be encrypted but is not a SOPS ciphertext"
                        )),
                        Fail::Auth => Error::Decrypt(at),
                    }
                })?;
                if ty == Ty::Comment {
                    return Err(Error::Decrypt(self.path.join(".")));
                }
                let canonical = scalar::canonical(ty, &plain)
                    .ok_or_else(|| Error::Decrypt(self.path.join(".")))?;
                *s = Scalar {
                    ty,
                    text: canonical,
                };
            }
        }
        if !self.rules.mac_only_encrypted || encrypted {
            let bytes = scalar::mac_bytes(s.ty, &s.text).ok_or_else(|| {
                Error::Unsupported(format!(
                    "the value at `{}` has a type SOPS cannot hash",
                    self.path.join(".")
                ))
            })?;
            self.hash.update(bytes.as_bytes());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn map(items: Vec<(&str, Node)>) -> Node {
        Node::Map(
            items
                .into_iter()
                .map(|(k, v)| (Key::Name(k.into()), v))
                .collect(),
        )
    }

    #[test]
    fn paths_skip_list_indices_and_mac_is_over_plaintext() {
        let key = [3u8; 32];
        let mut root = map(vec![
            (
                "a",
                Node::List(vec![Node::Scalar(Scalar::new(
                    Ty::Str,
                    cipher::encrypt_for_tests("x", "str", &key, "a:"),
                ))]),
            ),
            ("b_unencrypted", Node::Scalar(Scalar::new(Ty::Int, "7"))),
        ]);
        let rules = Rules {
            unencrypted_suffix: "_unencrypted".into(),
            ..Rules::default()
        };
        let mac = decrypt(&mut root, &key, &rules).unwrap();
        let want: String = Sha512::digest(b"x7")
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        assert_eq!(mac, want);
    }

    #[test]
    fn encrypted_comment_regex_skips_the_matching_line() {
        let rules = Rules {
            encrypted_comment_regex: Some(Regex::new("sops:enc").unwrap()),
            ..Rules::default()
        };
        let cs = vec![vec!["sops:enc".to_owned()]];
        assert!(!rules.should_be_encrypted(&[], &cs, true));
        assert!(rules.should_be_encrypted(&[], &cs, false));
    }
}
