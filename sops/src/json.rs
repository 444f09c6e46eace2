//! JSON: a small parser that keeps key order (as SOPS's token-by-token `stores/json` does;
//! every number is a float64 to SOPS) and a pretty printer (two-space indent).

use zeroize::Zeroizing;

use crate::cipher::Ty;
use crate::error::parse_err;
use crate::tree::{Key, Node, Scalar};
use crate::{Error, emit};

const F: &str = "JSON";
const MAX_DEPTH: usize = 128;

struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn line(&self) -> usize {
        self.s[..self.i.min(self.s.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn err(&self, what: &str) -> Error {
        parse_err(F, self.line(), what)
    }

    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|b| b" \t\r\n".contains(b)) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, Error> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut items = Vec::new();
                if self.eat(b'}') {
                    return Ok(Node::Map(items));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    if !self.eat(b':') {
                        return Err(self.err("expected `:`"));
                    }
                    let v = self.value(depth + 1)?;
                    items.push((Key::Name(k.to_string()), v));
                    if self.eat(b'}') {
                        return Ok(Node::Map(items));
                    }
                    if !self.eat(b',') {
                        return Err(self.err("expected `,` or `}`"));
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                if self.eat(b']') {
                    return Ok(Node::List(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    if self.eat(b']') {
                        return Ok(Node::List(items));
                    }
                    if !self.eat(b',') {
                        return Err(self.err("expected `,` or `]`"));
                    }
                }
            }
            Some(b'"') => {
                let s = self.string()?;
                Ok(Node::Scalar(Scalar {
                    ty: Ty::Str,
                    text: s,
                }))
            }
            Some(b't') => self.word("true", Node::Scalar(Scalar::new(Ty::Bool, "true"))),
            Some(b'f') => self.word("false", Node::Scalar(Scalar::new(Ty::Bool, "false"))),
            Some(b'n') => self.word("null", Node::Null),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|b| b.is_ascii_digit() || b"+-.eE".contains(b))
                {
                    self.i += 1;
                }
                let t = std::str::from_utf8(&self.s[start..self.i])
                    .map_err(|_| self.err("bad number"))?;
                if t.parse::<f64>().is_err() || t.starts_with('+') {
                    return Err(self.err("bad number"));
                }
                Ok(Node::Scalar(Scalar::new(Ty::Float, t)))
            }
            _ => Err(self.err("expected a value")),
        }
    }

    fn word(&mut self, w: &str, node: Node) -> Result<Node, Error> {
        if self.s[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Ok(node)
        } else {
            Err(self.err("expected a value"))
        }
    }

    fn string(&mut self) -> Result<Zeroizing<String>, Error> {
        if self.s.get(self.i) != Some(&b'"') {
            return Err(self.err("expected a string"));
        }
        self.i += 1;
        let mut out = Zeroizing::new(Vec::new());
        loop {
            let Some(&b) = self.s.get(self.i) else {
                return Err(self.err("unterminated string"));
            };
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return Err(self.err("unterminated string"));
                    };
                    self.i += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            if (0xD800..0xDC00).contains(&hi) {
                                if !self.s[self.i..].starts_with(b"\\u") {
                                    return Err(self.err("a lone surrogate"));
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("a lone surrogate"));
                                }
                                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                                    .ok_or_else(|| self.err("a bad escape"))?
                            } else {
                                char::from_u32(hi).ok_or_else(|| self.err("a lone surrogate"))?
                            }
                        }
                        _ => return Err(self.err("a bad escape")),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                b if b < 0x20 => return Err(self.err("a control character in a string")),
                b => out.push(b),
            }
        }
        let v = std::mem::take(&mut *out);
        String::from_utf8(v).map(Zeroizing::new).map_err(|e| {
            let mut b = e.into_bytes();
            zeroize::Zeroize::zeroize(&mut b);
            self.err("a string is not UTF-8")
        })
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| self.err("a bad \\u escape"))?;
        self.i += 4;
        Ok(h)
    }
}

/// Parses a JSON document whose root is an object.
pub(crate) fn parse(text: &str) -> Result<Node, Error> {
    let mut p = P {
        s: text.as_bytes(),
        i: 0,
    };
    p.ws();
    if p.s.get(p.i) != Some(&b'{') {
        return Err(p.err("the root is not an object"));
    }
    let root = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("text after the document"));
    }
    Ok(root)
}

/// Writes the tree as indented JSON (comments dropped: JSON has none).
pub(crate) fn emit(root: &Node) -> Result<Zeroizing<String>, Error> {
    let mut out = Zeroizing::new(String::new());
    value(&mut out, root, 0)?;
    out.push('\n');
    Ok(out)
}

fn value(out: &mut String, n: &Node, indent: usize) -> Result<(), Error> {
    let pad = |out: &mut String, i: usize| out.extend(std::iter::repeat_n(' ', i));
    match n {
        Node::Null | Node::Comment(_) => out.push_str("null"),
        Node::Scalar(s) => match s.ty {
            Ty::Str | Ty::Comment => out.push_str(&emit::json_str(&s.text)),
            Ty::Int | Ty::Bool => out.push_str(&s.text),
            Ty::Float => {
                if s.text.parse::<f64>().is_ok_and(f64::is_finite) {
                    out.push_str(&s.text);
                } else {
                    return Err(Error::Unsupported(
                        "a NaN or infinite number cannot be written as JSON".into(),
                    ));
                }
            }
        },
        Node::Map(items) => {
            let named: Vec<_> = items
                .iter()
                .filter_map(|(k, v)| match k {
                    Key::Name(k) => Some((k, v)),
                    Key::Comment(_) => None,
                })
                .collect();
            if named.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push_str("{\n");
            for (i, (k, v)) in named.iter().enumerate() {
                pad(out, indent + 2);
                out.push_str(&emit::json_str(k));
                out.push_str(": ");
                value(out, v, indent + 2)?;
                out.push_str(if i + 1 < named.len() { ",\n" } else { "\n" });
            }
            pad(out, indent);
            out.push('}');
        }
        Node::List(items) => {
            let items: Vec<_> = items
                .iter()
                .filter(|n| !matches!(n, Node::Comment(_)))
                .collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push_str("[\n");
            for (i, v) in items.iter().enumerate() {
                pad(out, indent + 2);
                value(out, v, indent + 2)?;
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            pad(out, indent);
            out.push(']');
        }
    }
    Ok(())
}
