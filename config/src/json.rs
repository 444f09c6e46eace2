//! JSON, with a small span-tracking parser: values are replaced in place, so everything else
//! (whitespace, member order) stays byte for byte.

use crate::Error;
use crate::crypto::Kind;
use crate::doc::{Leaf, MetaFields, Repr, SpanEdits};
use crate::path::Path;

const MAX_DEPTH: usize = 128;

pub(crate) struct Json {
    text: String,
    leaves: Vec<Leaf>,
    shape: Vec<(Path, String)>,
    /// Root members: (key, key start, value start, value end).
    members: Vec<(String, usize, usize, usize)>,
    root_open: usize,
    meta: Option<MetaFields>,
    edits: SpanEdits,
}

struct P<'a> {
    s: &'a [u8],
    i: usize,
    /// Empty objects and arrays, by path (structure the MAC covers from version 3).
    shape: Vec<(Path, String)>,
}

fn err(at: usize, text: &str, what: &str) -> Error {
    // Count bytes, not chars: `at` may fall inside a multi-byte character of bad input.
    let line = text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1;
    Error::Parse {
        format: "JSON",
        line,
        message: what.to_owned(),
    }
}

impl<'a> P<'a> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn string(&mut self, text: &str) -> Result<String, Error> {
        // At the opening quote.
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = *self
                .s
                .get(self.i)
                .ok_or_else(|| err(self.i, text, "unterminated string"))?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = *self
                        .s
                        .get(self.i)
                        .ok_or_else(|| err(self.i, text, "unterminated string"))?;
                    self.i += 1;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let mut cp = self.hex4(text)?;
                            if (0xD800..0xDC00).contains(&cp) {
                                if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return Err(err(self.i, text, "unpaired surrogate"));
                                }
                                self.i += 2;
                                let lo = self.hex4(text)?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(err(self.i, text, "unpaired surrogate"));
                                }
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                            }
                            let ch = char::from_u32(cp)
                                .ok_or_else(|| err(self.i, text, "invalid \\u escape"))?;
                            let mut b = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                        }
                        _ => return Err(err(self.i, text, "invalid escape")),
                    }
                }
                c if c < 0x20 => return Err(err(self.i, text, "control character in string")),
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| err(self.i, text, "invalid UTF-8"))
    }

    fn hex4(&mut self, text: &str) -> Result<u32, Error> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            // Exactly four hex digits (RFC 8259): from_str_radix alone also takes `+041`.
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| err(self.i, text, "invalid \\u escape"))?;
        self.i += 4;
        Ok(h)
    }

    fn number(&mut self, text: &str) -> Result<(Kind, String), Error> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let digits = |p: &mut Self| {
            let s = p.i;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.i += 1;
            }
            p.i > s
        };
        let int_start = self.i;
        if !digits(self) {
            return Err(err(start, text, "invalid number"));
        }
        // RFC 8259: `int = zero / ( digit1-9 *DIGIT )`; other parsers read `012` differently.
        if self.i - int_start > 1 && self.s[int_start] == b'0' {
            return Err(err(start, text, "a number cannot start with 0 (RFC 8259)"));
        }
        let mut kind = Kind::Int;
        if self.peek() == Some(b'.') {
            self.i += 1;
            kind = Kind::Float;
            if !digits(self) {
                return Err(err(start, text, "invalid number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            kind = Kind::Float;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digits(self) {
                return Err(err(start, text, "invalid number"));
            }
        }
        Ok((kind, text[start..self.i].to_owned()))
    }

    fn value(
        &mut self,
        text: &str,
        path: &Path,
        depth: usize,
        leaves: &mut Vec<Leaf>,
        members: Option<&mut Vec<(String, usize, usize, usize)>>,
    ) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(err(self.i, text, "nested too deeply"));
        }
        self.ws();
        let start = self.i;
        match self.peek() {
            Some(b'{') => {
                self.i += 1;
                let mut seen = std::collections::HashSet::new();
                let mut members = members;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    self.shape.push((path.clone(), "{}".into()));
                    return Ok(());
                }
                loop {
                    self.ws();
                    if self.peek() != Some(b'"') {
                        return Err(err(self.i, text, "expected a member name"));
                    }
                    let key_start = self.i;
                    let key = self.string(text)?;
                    if !seen.insert(key.clone()) {
                        // The key is not repeated: in a document it may be a secret.
                        return Err(err(key_start, text, "duplicate key"));
                    }
                    self.ws();
                    if self.peek() != Some(b':') {
                        return Err(err(self.i, text, "expected `:`"));
                    }
                    self.i += 1;
                    self.ws();
                    let value_start = self.i;
                    self.value(text, &path.key(key.clone()), depth + 1, leaves, None)?;
                    if let Some(m) = members.as_deref_mut() {
                        m.push((key, key_start, value_start, self.i));
                    }
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(err(self.i, text, "expected `,` or `}`")),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    self.shape.push((path.clone(), "[]".into()));
                    return Ok(());
                }
                let mut n = 0;
                loop {
                    self.value(text, &path.index(n), depth + 1, leaves, None)?;
                    n += 1;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(err(self.i, text, "expected `,` or `]`")),
                    }
                }
            }
            Some(b'"') => {
                let v = self.string(text)?;
                leaves.push(Leaf::new(path.clone(), Kind::Str, v, start..self.i));
                Ok(())
            }
            Some(b't') | Some(b'f') | Some(b'n') => {
                for (word, kind) in [
                    ("true", Kind::Bool),
                    ("false", Kind::Bool),
                    ("null", Kind::Other),
                ] {
                    if self.s[self.i..].starts_with(word.as_bytes()) {
                        self.i += word.len();
                        leaves.push(Leaf::new(path.clone(), kind, word.into(), start..self.i));
                        return Ok(());
                    }
                }
                Err(err(self.i, text, "unexpected word"))
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let (kind, v) = self.number(text)?;
                leaves.push(Leaf::new(path.clone(), kind, v, start..self.i));
                Ok(())
            }
            _ => Err(err(self.i, text, "expected a value")),
        }
    }
}

/// A JSON string literal.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Json {
    pub(crate) fn parse(text: &str) -> Result<Json, Error> {
        let mut p = P {
            s: text.as_bytes(),
            i: 0,
            shape: Vec::new(),
        };
        p.ws();
        if p.peek() != Some(b'{') {
            return Err(err(p.i, text, "the document must be a JSON object"));
        }
        let root_open = p.i;
        let mut leaves = Vec::new();
        let mut members = Vec::new();
        p.value(text, &Path::root(), 0, &mut leaves, Some(&mut members))?;
        p.ws();
        if p.i != text.len() {
            return Err(err(p.i, text, "trailing characters after the document"));
        }
        let meta_path = Path::root().key(crate::doc::META_KEY);
        let mut meta_leaves = Vec::new();
        leaves.retain(|l: &Leaf| {
            if l.path.0.first() == meta_path.0.first() {
                meta_leaves.push(l.clone());
                false
            } else {
                true
            }
        });
        let shape = std::mem::take(&mut p.shape);
        if shape
            .iter()
            .any(|(path, _)| path.0.first() == meta_path.0.first())
        {
            return Err(Error::Metadata(
                "the kmseal block holds something other than its string fields".into(),
            ));
        }
        let meta = if members.iter().any(|m| m.0 == crate::doc::META_KEY) {
            Some(MetaFields::from_leaves(&meta_leaves)?)
        } else {
            None
        };
        Ok(Json {
            text: text.to_owned(),
            leaves,
            shape,
            members,
            root_open,
            meta,
            edits: SpanEdits::default(),
        })
    }

    pub(crate) fn into_parts(self) -> (Vec<Leaf>, String) {
        (self.leaves, self.text)
    }

    pub(crate) fn shape(&self) -> &[(Path, String)] {
        &self.shape
    }

    pub(crate) fn leaves(&self) -> &[Leaf] {
        &self.leaves
    }

    pub(crate) fn meta(&self) -> Option<&MetaFields> {
        self.meta.as_ref()
    }

    pub(crate) fn set(&mut self, i: usize, repr: &Repr) {
        let text = match repr {
            Repr::Encrypted(s) => quote(s),
            Repr::Plain(Kind::Str, s) => quote(s),
            Repr::Plain(_, s) => s.clone(),
        };
        self.edits.replace(self.leaves[i].span.clone(), text);
    }

    pub(crate) fn render(mut self, meta: Option<&MetaFields>) -> String {
        let idx = self
            .members
            .iter()
            .position(|m| m.0 == crate::doc::META_KEY);
        let block = meta.map(|m| {
            let fields: Vec<String> = m
                .pairs()
                .iter()
                .map(|(k, v)| format!("{}: {}", quote(k), quote(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        });
        match (idx, block) {
            (Some(j), Some(b)) => {
                let (_, _, vs, ve) = self.members[j];
                self.edits.replace(vs..ve, b);
            }
            (Some(j), None) => {
                let m = &self.members;
                let range = if j > 0 {
                    m[j - 1].3..m[j].3
                } else if m.len() > 1 {
                    m[0].1..m[1].1
                } else {
                    m[0].1..m[0].3
                };
                self.edits.replace(range, String::new());
            }
            (None, Some(b)) => match self.members.last() {
                Some(&(_, _, _, ve)) => self
                    .edits
                    .replace(ve..ve, format!(",\n  {}: {b}", quote(crate::doc::META_KEY))),
                None => {
                    let at = self.root_open + 1;
                    self.edits.replace(
                        at..at,
                        format!("\n  {}: {b}\n", quote(crate::doc::META_KEY)),
                    );
                }
            },
            (None, None) => {}
        }
        self.edits.apply(&self.text)
    }
}
