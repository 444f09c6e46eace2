//! Paths of values in a document, with an unambiguous binary encoding (what the cryptography
//! binds) and a display form for humans and lookups.

use std::fmt;

/// One step from a container to a value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seg {
    /// A mapping key (any string, dots included).
    Key(String),
    /// A list position.
    Index(usize),
}

/// Where a value sits in a document: the keys and list positions from the root.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Path(pub Vec<Seg>);

impl Path {
    /// The root.
    pub fn root() -> Path {
        Path(Vec::new())
    }

    /// This path, then mapping key `k`.
    pub fn key(&self, k: impl Into<String>) -> Path {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.into()));
        Path(v)
    }

    /// This path, then list position `i`.
    pub fn index(&self, i: usize) -> Path {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        Path(v)
    }

    /// The last mapping key on the path (what selection patterns match).
    pub fn last_key(&self) -> Option<&str> {
        self.0.iter().rev().find_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
    }

    /// The encoding bound by encryption and the MAC: a segment count, then per segment a tag
    /// (1 key, 2 index) and its length-prefixed bytes. `a.b` and a key named "a.b" differ.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&crate::meta::len32(self.0.len()));
        for s in &self.0 {
            match s {
                Seg::Key(k) => {
                    out.push(1);
                    out.extend_from_slice(&crate::meta::len32(k.len()));
                    out.extend_from_slice(k.as_bytes());
                }
                Seg::Index(i) => {
                    out.push(2);
                    out.extend_from_slice(&(*i as u64).to_be_bytes());
                }
            }
        }
        out
    }

    /// The inverse of [`encode`](Self::encode): the path at the start of `raw` and how many
    /// bytes it took, or `None` if `raw` does not start with a path encoding.
    pub(crate) fn decode(raw: &[u8]) -> Option<(Path, usize)> {
        let mut r = crate::lifecycle::Reader::new(raw);
        let count = r.u32()?;
        let mut segs = Vec::new();
        for _ in 0..count {
            match r.u8()? {
                1 => {
                    let len = usize::try_from(r.u32()?).ok()?;
                    let key = std::str::from_utf8(r.take(len)?).ok()?;
                    segs.push(Seg::Key(key.to_owned()));
                }
                2 => segs.push(Seg::Index(usize::try_from(r.u64()?).ok()?)),
                _ => return None,
            }
        }
        Some((Path(segs), r.used()))
    }

    /// Parses the display form: keys separated by `.`, list positions as `[N]`, and `\`
    /// escaping `.`, `[`, `]` and `\` inside keys (`a\.b` is one key named "a.b").
    pub fn parse(s: &str) -> Result<Path, String> {
        let mut segs = Vec::new();
        let mut key = String::new();
        let mut in_key = false;
        let mut chars = s.chars().peekable();
        let bad =
            || format!("`{s}` is not a path (keys separated by `.`, list positions as `[N]`)");
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    key.push(chars.next().ok_or_else(bad)?);
                    in_key = true;
                }
                '.' => {
                    if in_key {
                        segs.push(Seg::Key(std::mem::take(&mut key)));
                        in_key = false;
                    } else if !matches!(segs.last(), Some(Seg::Index(_))) {
                        return Err(bad());
                    }
                }
                '[' => {
                    if in_key {
                        segs.push(Seg::Key(std::mem::take(&mut key)));
                        in_key = false;
                    }
                    let mut n = String::new();
                    loop {
                        match chars.next() {
                            Some(']') => break,
                            Some(d) if d.is_ascii_digit() => n.push(d),
                            _ => return Err(bad()),
                        }
                    }
                    segs.push(Seg::Index(n.parse().map_err(|_| bad())?));
                }
                ']' => return Err(bad()),
                c => {
                    key.push(c);
                    in_key = true;
                }
            }
        }
        if in_key {
            segs.push(Seg::Key(key));
        } else if s.ends_with('.') || s.is_empty() {
            return Err(bad());
        }
        Ok(Path(segs))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    for c in k.chars() {
                        if matches!(c, '.' | '[' | ']' | '\\') {
                            f.write_str("\\")?;
                        }
                        write!(f, "{c}")?;
                    }
                }
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_keys_and_nested_keys_are_different_paths() {
        let nested = Path::root().key("a").key("b");
        let dotted = Path::root().key("a.b");
        assert_ne!(nested.encode(), dotted.encode());
        assert_eq!(nested.to_string(), "a.b");
        assert_eq!(dotted.to_string(), "a\\.b");
        assert_eq!(Path::parse("a.b").unwrap(), nested);
        assert_eq!(Path::parse("a\\.b").unwrap(), dotted);
        // An index and a key named "0" differ too.
        assert_ne!(
            Path::root().index(0).encode(),
            Path::root().key("0").encode()
        );
    }

    #[test]
    fn display_and_parse_round_trip() {
        let p = Path::root()
            .key("servers")
            .index(2)
            .key("tls[x]")
            .key("back\\slash");
        assert_eq!(Path::parse(&p.to_string()).unwrap(), p);
        assert_eq!(Path::parse("a[0].b[1][2]").unwrap().0.len(), 5);
        for bad in ["", ".", "a.", ".a", "a..b", "a[", "a[x]", "a]", "a\\"] {
            assert!(Path::parse(bad).is_err(), "{bad}");
        }
    }
}
