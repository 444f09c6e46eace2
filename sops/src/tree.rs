//! SOPS's document tree (`sops.go`: `TreeBranch`, `TreeItem`, `Comment`) and its decrypting
//! walk, which also computes the MAC.
//!
//! From `sops.go`, `Tree.Decrypt`: every leaf is visited in document order with the path of
//! mapping keys above it (a list adds nothing to the path); a leaf that `shouldBeEncrypted`
//! is decrypted with AAD `strings.Join(path, ":") + ":"`; the MAC is SHA-512 over
//! `ToBytes(value)` of every leaf but comments and nulls (of encrypted leaves only when
//! `mac_only_encrypted`, the hash then starting with 32 fixed bytes); comments that do not
//! decrypt are kept as they are by SOPS, and left out here (nothing authenticates them).
//!
//! The hash has no keys and no separators: only values are bound, run together, and an
//! encrypted value's keys through its AAD. The walk therefore also lists what the MAC leaves
//! open ([`Gap`]): empty and null entries, and the keys of unencrypted values.

use regex::Regex;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use kmseal::escape_untrusted;

use crate::cipher::{self, Fail, Ty};
use crate::options::{Gap, Unauthenticated};
use crate::{Error, scalar};

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

/// What the walk gives besides the decrypted tree.
pub(crate) struct Walked {
    /// The MAC (upper-case hex SHA-512) of the plaintext tree.
    pub(crate) mac: String,
    /// The entries the MAC does not cover, in document order.
    pub(crate) unauthenticated: Vec<Unauthenticated>,
    /// Comments left out because they were not SOPS-encrypted.
    pub(crate) dropped_comments: usize,
}

/// The decrypting walk: decrypts every encrypted leaf in place, drops the comments that were
/// not encrypted, and returns the MAC of the plaintext tree with what it does not cover.
pub(crate) fn decrypt(root: &mut Node, key: &[u8], rules: &Rules) -> Result<Walked, Error> {
    let mut walk = Walk {
        key,
        rules,
        hash: Sha512::new(),
        path: Vec::new(),
        shown: Vec::new(),
        comments: Vec::new(),
        unauthenticated: Vec::new(),
        dropped_comments: 0,
    };
    if rules.mac_only_encrypted {
        walk.hash.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    walk.node(root)?;
    let digest = walk.hash.finalize();
    Ok(Walked {
        mac: digest.iter().map(|b| format!("{b:02X}")).collect(),
        unauthenticated: walk.unauthenticated,
        dropped_comments: walk.dropped_comments,
    })
}

struct Walk<'a> {
    key: &'a [u8],
    rules: &'a Rules,
    hash: Sha512,
    /// SOPS's path: the mapping keys above the leaf (the AAD, and what the rules match).
    path: Vec<String>,
    /// The path as shown in reports: `.key` and `[index]` segments.
    shown: Vec<String>,
    comments: Vec<Vec<String>>,
    unauthenticated: Vec<Unauthenticated>,
    dropped_comments: usize,
}

impl Walk<'_> {
    fn aad(&self) -> String {
        let mut s = self.path.join(":");
        s.push(':');
        s
    }

    /// The path for an error message: file text, so escaped.
    fn at(&self) -> String {
        escape_untrusted(&self.path.join(".")).into_owned()
    }

    fn report(&mut self, gap: Gap) {
        self.unauthenticated.push(Unauthenticated {
            path: self.shown.concat(),
            gap,
        });
    }

    /// Walks `node`; `false` when it is a comment to leave out.
    fn node(&mut self, node: &mut Node) -> Result<bool, Error> {
        match node {
            Node::Map(items) => {
                self.comments.push(Vec::new());
                let mut keep = Vec::with_capacity(items.len());
                for (k, v) in items.iter_mut() {
                    match k {
                        Key::Comment(c) => {
                            self.push_comment(c);
                            keep.push(self.comment(c));
                        }
                        Key::Name(name) => {
                            let value_is_comment = matches!(v, Node::Comment(_));
                            if let Node::Comment(c) = v {
                                self.push_comment(c);
                            }
                            let seg = if self.shown.is_empty() {
                                name.clone()
                            } else {
                                format!(".{name}")
                            };
                            self.path.push(name.clone());
                            self.shown.push(seg);
                            let r = self.node(v);
                            self.path.pop();
                            self.shown.pop();
                            if !r? {
                                *v = Node::Null;
                            }
                            if !value_is_comment {
                                self.clear_comments();
                            }
                            keep.push(true);
                        }
                    }
                }
                let mut keep = keep.into_iter();
                items.retain(|_| keep.next().unwrap_or(true));
                self.comments.pop();
                if !self.shown.is_empty() && !items.iter().any(|(k, _)| matches!(k, Key::Name(_))) {
                    self.report(Gap::Empty);
                }
            }
            Node::List(items) => {
                self.comments.push(Vec::new());
                let mut keep = Vec::with_capacity(items.len());
                let mut index = 0;
                for v in items.iter_mut() {
                    let is_comment = matches!(v, Node::Comment(_));
                    if let Node::Comment(c) = v {
                        self.push_comment(c);
                    }
                    self.shown.push(format!("[{index}]"));
                    let r = self.node(v);
                    self.shown.pop();
                    keep.push(r?);
                    if !is_comment {
                        self.clear_comments();
                        index += 1;
                    }
                }
                let mut keep = keep.into_iter();
                items.retain(|_| keep.next().unwrap_or(true));
                self.comments.pop();
                if !items.iter().any(|n| !matches!(n, Node::Comment(_))) {
                    self.report(Gap::Empty);
                }
            }
            Node::Comment(c) => return Ok(self.comment(c)),
            Node::Null => self.report(Gap::Empty),
            Node::Scalar(s) => self.scalar(s)?,
        }
        Ok(true)
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

    /// A comment: decrypted when it should be and can be, and then kept; otherwise left out
    /// (`false`). SOPS keeps such a comment as written, assuming it was never encrypted; but
    /// comments are not in the MAC, so a plain one may have been added by anyone.
    fn comment(&mut self, c: &mut Zeroizing<String>) -> bool {
        let opened = self
            .rules
            .should_be_encrypted(&self.path, &self.comments, true)
            && match cipher::decrypt(c, self.key, &self.aad()) {
                Ok((Ty::Comment, plain)) => {
                    *c = plain;
                    true
                }
                _ => false,
            };
        if !opened {
            self.dropped_comments += 1;
        }
        opened
    }

    fn scalar(&mut self, s: &mut Scalar) -> Result<(), Error> {
        let encrypted = self
            .rules
            .should_be_encrypted(&self.path, &self.comments, false);
        if encrypted {
            if s.ty != Ty::Str {
                return Err(Error::Metadata(format!(
                    "the value at `{}` should be encrypted but is not a string",
                    self.at()
                )));
            }
            if !s.text.is_empty() {
                let (ty, plain) = cipher::decrypt(&s.text, self.key, &self.aad()).map_err(|f| {
                    let at = self.at();
                    match f {
                        Fail::Malformed => Error::Metadata(format!(
                            "the value at `{at}` should be encrypted but is not a SOPS ciphertext"
                        )),
                        Fail::Auth => Error::Decrypt(at),
                    }
                })?;
                if ty == Ty::Comment {
                    return Err(Error::Decrypt(self.at()));
                }
                let canonical =
                    scalar::canonical(ty, &plain).ok_or_else(|| Error::Decrypt(self.at()))?;
                *s = Scalar {
                    ty,
                    text: canonical,
                };
            }
        }
        let in_mac = !self.rules.mac_only_encrypted || encrypted;
        if in_mac {
            let bytes = scalar::mac_bytes(s.ty, &s.text).ok_or_else(|| {
                Error::Unsupported(format!(
                    "the value at `{}` has a type SOPS cannot hash",
                    self.at()
                ))
            })?;
            self.hash.update(bytes.as_bytes());
        }
        if s.text.is_empty() {
            self.report(Gap::Empty);
        } else if !in_mac {
            self.report(Gap::OutsideMac);
        } else if !encrypted {
            self.report(Gap::Plain);
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
        let mac = decrypt(&mut root, &key, &rules).unwrap().mac;
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
