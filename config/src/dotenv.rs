//! `.env` files: `KEY=value` lines (optionally `export KEY=...`), `#` comments, values bare,
//! `'single-quoted'` (literal) or `"double-quoted"` (with `\n`, `\t`, `\"`, `\\` escapes).
//! The metadata block is a run of `#kmseal.FIELD=VALUE` comment lines at the end, so that
//! tools that load .env files see no extra variables.

use crate::Error;
use crate::crypto::Kind;
use crate::doc::{Leaf, META_KEY, MetaFields, Repr, SpanEdits};
use crate::path::Path;

pub(crate) struct Dotenv {
    text: String,
    leaves: Vec<Leaf>,
    meta: Option<MetaFields>,
    meta_lines: Vec<std::ops::Range<usize>>,
    edits: SpanEdits,
}

fn err(line: usize, what: &str) -> Error {
    Error::Parse {
        format: ".env",
        line,
        message: what.to_owned(),
    }
}

fn valid_name(k: &str) -> bool {
    let mut c = k.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '.' || ch == '-')
}

/// A value as written: bare when that is unambiguous, else double-quoted.
pub(crate) fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:@+,=".contains(c))
    {
        return s.to_owned();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' => out.push_str("\\$"),
            '`' => out.push_str("\\`"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Dotenv {
    pub(crate) fn parse(text: &str) -> Result<Dotenv, Error> {
        let mut leaves = Vec::new();
        let mut meta_pairs: Vec<Leaf> = Vec::new();
        let mut meta_lines = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut offset = 0;
        for (n, raw) in text.split_inclusive('\n').enumerate() {
            let line_no = n + 1;
            let start = offset;
            offset += raw.len();
            let line = raw.trim_end_matches(['\n', '\r']);
            let trimmed = line.trim_start();
            if let Some(rest) = trimmed.strip_prefix(&format!("#{META_KEY}.")) {
                let (k, v) = rest
                    .split_once('=')
                    .ok_or_else(|| err(line_no, "a metadata line is `#kmseal.FIELD=VALUE`"))?;
                meta_pairs.push(Leaf::new(
                    Path::root().key(META_KEY).key(k),
                    Kind::Str,
                    v.to_owned(),
                    0..0,
                ));
                meta_lines.push(start..offset);
                continue;
            }
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let body = trimmed.strip_prefix("export ").unwrap_or(trimmed);
            let (key, value) = body
                .split_once('=')
                .ok_or_else(|| err(line_no, "expected KEY=VALUE"))?;
            let key = key.trim();
            if !valid_name(key) {
                // The text is not repeated: it may be a value (a pasted URL or token).
                return Err(err(
                    line_no,
                    "expected KEY=VALUE with a variable name (letters, digits, `_`) as KEY",
                ));
            }
            if !seen.insert(key.to_owned()) {
                return Err(err(line_no, &format!("`{key}` is set twice")));
            }
            let value_start = start + (line.len() - body.len()) + (body.len() - value.len());
            let lead = value.len() - value.trim_start().len();
            let v = value.trim_start();
            let vstart = value_start + lead;
            let (decoded, vlen) = match v.chars().next() {
                Some('"') => {
                    let mut out = String::new();
                    let mut chars = v.char_indices().skip(1);
                    let mut end = None;
                    while let Some((i, c)) = chars.next() {
                        match c {
                            '"' => {
                                end = Some(i + 1);
                                break;
                            }
                            '\\' => match chars.next() {
                                Some((_, 'n')) => out.push('\n'),
                                Some((_, 'r')) => out.push('\r'),
                                Some((_, 't')) => out.push('\t'),
                                Some((_, c @ ('"' | '\\' | '$' | '`'))) => out.push(c),
                                Some(_) => {
                                    return Err(err(
                                        line_no,
                                        "unknown escape in a double-quoted value (use \\n \\r \\t \\\" \\\\ \\$ \\`)",
                                    ));
                                }
                                None => return Err(err(line_no, "unterminated quote")),
                            },
                            // A shell expands these inside double quotes; what it would run
                            // is not the value kmseal authenticates. Escape them.
                            '$' | '`' => {
                                return Err(err(
                                    line_no,
                                    "`$` and backquotes must be escaped (\\$, \\`) in a double-quoted value, \
                                     or the value single-quoted",
                                ));
                            }
                            c => out.push(c),
                        }
                    }
                    (out, end.ok_or_else(|| err(line_no, "unterminated quote"))?)
                }
                Some('\'') => {
                    let close = v[1..]
                        .find('\'')
                        .ok_or_else(|| err(line_no, "unterminated quote"))?;
                    (v[1..1 + close].to_owned(), close + 2)
                }
                _ => {
                    let end = v.find(" #").unwrap_or(v.len());
                    let bare = v[..end].trim_end();
                    // In an assignment a shell splits at white space, expands `$`, backquotes
                    // and `~`, removes quotes and backslashes, and ends the command at `;&|<>()`
                    // (it does not glob). Refuse those rather than authenticate one reading and
                    // hand a shell another.
                    // The message does not name the character: it is part of a value.
                    if bare
                        .chars()
                        .any(|c| c.is_whitespace() || "$`\"'\\;&|<>()~".contains(c))
                    {
                        return Err(err(
                            line_no,
                            "a bare value cannot contain white space, quotes, backslashes, `$`, \
                             backquotes, `~` or `;&|<>()` (a shell would read it differently); \
                             quote the value",
                        ));
                    }
                    (bare.to_owned(), bare.len())
                }
            };
            // After a closing quote only white space, or white space and a `#` comment: in
            // `KEY='v'#$(cmd)` a shell runs `cmd`.
            let rest = &v[vlen..];
            let after = rest.trim();
            let spaced = rest.starts_with(|c: char| c.is_whitespace());
            let clean = after.is_empty() || (spaced && after.starts_with('#'));
            if !clean {
                return Err(err(
                    line_no,
                    "unexpected text after the value (a comment needs a space before `#`)",
                ));
            }
            leaves.push(Leaf::new(
                Path::root().key(key),
                Kind::Str,
                decoded,
                vstart..vstart + vlen,
            ));
        }
        let meta = if meta_pairs.is_empty() {
            None
        } else {
            Some(MetaFields::from_leaves(&meta_pairs)?)
        };
        Ok(Dotenv {
            text: text.to_owned(),
            leaves,
            meta,
            meta_lines,
            edits: SpanEdits::default(),
        })
    }

    pub(crate) fn into_parts(self) -> (Vec<Leaf>, String) {
        (self.leaves, self.text)
    }

    pub(crate) fn leaves(&self) -> &[Leaf] {
        &self.leaves
    }

    pub(crate) fn meta(&self) -> Option<&MetaFields> {
        self.meta.as_ref()
    }

    pub(crate) fn set(&mut self, i: usize, repr: &Repr) {
        let mut text = match repr {
            Repr::Encrypted(s) => s.clone(),
            Repr::Plain(_, s) => quote(s),
        };
        // A quoted value may be followed by a comment with no space (`'v'# c`); a bare value
        // would swallow it, so keep them apart (found by the config fuzz target).
        if self.text[self.leaves[i].span.end..].starts_with('#') {
            text.push(' ');
        }
        self.edits.replace(self.leaves[i].span.clone(), text);
    }

    pub(crate) fn render(mut self, meta: Option<&MetaFields>) -> String {
        for r in std::mem::take(&mut self.meta_lines) {
            self.edits.replace(r, String::new());
        }
        let mut out = self.edits.apply(&self.text);
        if let Some(m) = meta {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            for (k, v) in m.pairs() {
                out.push_str(&format!("#{META_KEY}.{k}={v}\n"));
            }
        }
        out
    }
}
