//! YAML through saphyr's event parser, which gives each scalar's position: values are replaced
//! in place, so comments, key order and layout survive. One document per file, whose root is
//! a block mapping (where the metadata block goes, as the last top-level key).

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::Error;
use crate::crypto::Kind;
use crate::doc::{Leaf, META_KEY, MetaFields, Repr, SpanEdits};
use crate::path::{Path, Seg};

pub(crate) struct Yaml {
    text: String,
    leaves: Vec<Leaf>,
    /// Structure the MAC covers from version 3 (empty containers, tags, alias targets, key
    /// spellings, the style of YAML 1.1-typed values).
    shape: Vec<(Path, String)>,
    meta: Option<MetaFields>,
    /// Byte range of the metadata block (whole lines), if present.
    meta_range: Option<std::ops::Range<usize>>,
    /// Indentation of the root mapping's keys (the metadata block must match it).
    root_indent: String,
    edits: SpanEdits,
}

enum Frame {
    Map {
        key: Option<String>,
        path: Path,
        children: usize,
        /// Keys seen so far: a key twice is refused at every level (parsers disagree on
        /// which one wins, and two values would share one path).
        seen: std::collections::HashSet<String>,
    },
    Seq {
        next: usize,
        path: Path,
    },
}

fn tag_text(tag: &saphyr_parser::Tag) -> String {
    format!("!{}{}", tag.handle, tag.suffix)
}

/// Refuses `%YAML` and `%TAG` directives: they change how the whole document is read (a
/// `%YAML 1.1` line turns `no` into false) and no MAC covers them.
///
/// Also refuses NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR (U+0085, U+2028, U+2029): YAML 1.1
/// readers (PyYAML) end a line, and so a comment, there, while YAML 1.2 (our parser) does not,
/// so `# note<U+2028>password: x` would be a comment to us and a new value to them. Inside a
/// double-quoted value they can be written as `\N`, `\L`, `\P`.
fn check_no_directives(text: &str) -> Result<(), Error> {
    if let Some(at) = text.find(['\u{85}', '\u{2028}', '\u{2029}']) {
        let line = text[..at].matches('\n').count() + 1;
        return Err(err(
            line,
            "a NEL, LINE SEPARATOR or PARAGRAPH SEPARATOR character: YAML 1.1 and 1.2 readers \
             split lines differently there; write it as \\N, \\L or \\P in double quotes",
        ));
    }
    // Every YAML line break (LF, CR LF, a lone CR); a `%` starting any line is a directive
    // (or not YAML at all).
    for (n, line) in text.split(['\n', '\r']).enumerate() {
        if line.trim_start_matches('\u{feff}').starts_with('%') {
            return Err(err(
                n + 1,
                "YAML directives (%YAML, %TAG) are not supported: they change how the document \
                 is read and are not authenticated",
            ));
        }
    }
    Ok(())
}

/// Whether YAML 1.1 gives the plain scalar `v` a type of its own where YAML 1.2 reads a string
/// (its booleans including `y`/`n`, numbers, timestamps, `<<` and `=`): such a value means
/// something else quoted than plain, so its style is authenticated (version 3).
fn yaml11_typed(v: &str) -> bool {
    let timestamp =
        v.len() >= 8 && v.as_bytes()[..4].iter().all(u8::is_ascii_digit) && v.as_bytes()[4] == b'-';
    yaml11_non_string(v) || matches!(v, "y" | "Y" | "n" | "N" | "<<" | "=") || timestamp
}

fn err(line: usize, what: impl Into<String>) -> Error {
    Error::Parse {
        format: "YAML",
        line,
        message: what.into(),
    }
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn plain_kind(v: &str) -> Kind {
    let is_int = |s: &str| {
        let s = s.strip_prefix(['-', '+']).unwrap_or(s);
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            || s.strip_prefix("0x")
                .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
            || s.strip_prefix("0o")
                .is_some_and(|o| !o.is_empty() && o.bytes().all(|b| (b'0'..=b'7').contains(&b)))
    };
    match v {
        "" | "~" | "null" | "Null" | "NULL" => Kind::Other,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => Kind::Bool,
        ".inf" | "-.inf" | "+.inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN" => Kind::Float,
        _ if is_int(v) => Kind::Int,
        _ if v.parse::<f64>().is_ok()
            && v.bytes()
                .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
        {
            Kind::Float
        }
        _ => Kind::Str,
    }
}

/// Whether YAML 1.1 resolves the plain scalar `v` (a string under YAML 1.2's core schema) to a
/// boolean or a number: its yes/no/on/off booleans, numbers with `_`, sexagesimal and binary
/// integers. The one-letter booleans `y` and `n` of the 1.1 type repository are left out, as
/// PyYAML and ruamel.yaml leave them out.
fn yaml11_non_string(v: &str) -> bool {
    const BOOLS: [&str; 18] = [
        "yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF", "true",
        "True", "TRUE", "false", "False", "FALSE",
    ];
    if BOOLS.contains(&v) {
        return true;
    }
    let s = v.strip_prefix(['-', '+']).unwrap_or(v);
    let digitish = |t: &str| {
        !t.is_empty()
            && t.bytes().any(|b| b.is_ascii_digit())
            && t.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    };
    if let Some(b) = s.strip_prefix("0b") {
        return !b.is_empty() && b.bytes().all(|c| matches!(c, b'0' | b'1' | b'_'));
    }
    // Integers and floats with underscores: 1_000, 1_000.5
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    if s.contains('_') && digitish(int) && frac.is_none_or(|f| f.is_empty() || digitish(f)) {
        return true;
    }
    // Sexagesimal: 190:20:30 (an integer), 1:20.5 (a float).
    let mut parts = int.split(':');
    let first = parts.next().unwrap_or("");
    let rest: Vec<&str> = parts.collect();
    !rest.is_empty()
        && digitish(first)
        && !first.starts_with('0')
        && rest
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()))
        && frac.is_none_or(|f| f.bytes().all(|b| b.is_ascii_digit() || b == b'_'))
}

/// A double-quoted YAML scalar.
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
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            // C0, DEL and C1 controls are not printable in YAML; a BOM would be read as one.
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            '\u{feff}' => out.push_str("\\uFEFF"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Finds the source text of a scalar's value (without anchor or tag, without the comment
/// saphyr may include after a quoted scalar, with the indicator of a block scalar), as a
/// character range.
fn value_range(
    chars: &[char],
    start: usize,
    end: usize,
    style: ScalarStyle,
) -> Option<(usize, usize)> {
    // YAML's white space is space, tab and line breaks only (not Unicode's: a vertical tab
    // is content; found by the config fuzz target).
    let ws = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
    let mut s = start;
    // Skip `&anchor` and `!tag` properties.
    while s < end && (chars[s] == '&' || chars[s] == '!') {
        while s < end && !ws(chars[s]) {
            s += 1;
        }
        while s < end && ws(chars[s]) {
            s += 1;
        }
    }
    match style {
        ScalarStyle::Plain => {
            let mut e = end.min(chars.len());
            while e > s && ws(chars[e - 1]) {
                e -= 1;
            }
            Some((s, e))
        }
        ScalarStyle::SingleQuoted => {
            if chars.get(s) != Some(&'\'') {
                return None;
            }
            let mut i = s + 1;
            loop {
                match chars.get(i)? {
                    '\'' if chars.get(i + 1) == Some(&'\'') => i += 2,
                    '\'' => return Some((s, i + 1)),
                    _ => i += 1,
                }
            }
        }
        ScalarStyle::DoubleQuoted => {
            if chars.get(s) != Some(&'"') {
                return None;
            }
            let mut i = s + 1;
            loop {
                match chars.get(i)? {
                    '\\' => i += 2,
                    '"' => return Some((s, i + 1)),
                    _ => i += 1,
                }
            }
        }
        ScalarStyle::Literal | ScalarStyle::Folded => {
            // The span starts at the content; the indicator ends the line before it.
            let mut line_start = start.min(chars.len());
            while line_start > 0 && chars[line_start - 1] != '\n' {
                line_start -= 1;
            }
            let mut i = line_start.checked_sub(1)?; // the newline ending the header line
            let header_end = i;
            while i > 0 && chars[i - 1] != '\n' {
                i -= 1;
            }
            let header: String = chars[i..header_end].iter().collect();
            let code = match header.find(" #") {
                Some(c) => &header[..c],
                None => &header[..],
            };
            let code = code.trim_end();
            let ind = code.rfind(['|', '>'])?;
            let mut e = end.min(chars.len());
            while e > start && ws(chars[e - 1]) {
                e -= 1;
            }
            Some((
                i + header[..ind].chars().count(),
                e.max(i + header[..ind].chars().count() + 1),
            ))
        }
    }
}

impl Yaml {
    pub(crate) fn parse(text: &str) -> Result<Yaml, Error> {
        let chars: Vec<char> = text.chars().collect();
        let mut byte_at = Vec::with_capacity(chars.len() + 1);
        let mut b = 0;
        for c in &chars {
            byte_at.push(b);
            b += c.len_utf8();
        }
        byte_at.push(b);
        let byte = |ci: usize| byte_at[ci.min(chars.len())];

        check_no_directives(text)?;
        let mut stack: Vec<Frame> = Vec::new();
        let mut leaves = Vec::new();
        let mut shape: Vec<(Path, String)> = Vec::new();
        let mut anchors: std::collections::HashMap<usize, Path> = std::collections::HashMap::new();
        let mut documents = 0;
        let mut top_keys: Vec<(String, usize)> = Vec::new(); // key, char index of its line start
        let mut root_is_block_map = false;
        let mut root_indent = String::new();
        for ev in Parser::new_from_str(text) {
            let (ev, span) =
                ev.map_err(|e| err(e.marker().line(), crate::without_quoted_text(e.info())))?;
            let line = span.start.line();
            // The path of a value starting here, if we are in a value position.
            let value_path = |stack: &mut Vec<Frame>| -> Result<Option<Path>, Error> {
                match stack.last_mut() {
                    None => Ok(Some(Path::root())),
                    Some(Frame::Seq { next, path }) => {
                        let p = path.index(*next);
                        *next += 1;
                        Ok(Some(p))
                    }
                    Some(Frame::Map { key, path, .. }) => match key.take() {
                        Some(k) => Ok(Some(path.key(k))),
                        None => Ok(None),
                    },
                }
            };
            match ev {
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        return Err(err(line, "one YAML document per file"));
                    }
                }
                Event::MappingStart(anchor, ref tag) | Event::SequenceStart(anchor, ref tag) => {
                    let is_map = matches!(ev, Event::MappingStart(..));
                    let tag = tag.as_ref().map(|t| tag_text(t));
                    let path = match value_path(&mut stack)? {
                        Some(p) => p,
                        None => return Err(err(line, "only scalar mapping keys are supported")),
                    };
                    if stack.is_empty() {
                        if !is_map {
                            return Err(err(line, "the document root must be a mapping"));
                        }
                        root_is_block_map = chars.get(span.start.index()) != Some(&'{');
                    }
                    if anchor > 0 {
                        anchors.insert(anchor, path.clone());
                    }
                    if let Some(t) = tag {
                        shape.push((path.clone(), t));
                    }
                    stack.push(if is_map {
                        Frame::Map {
                            key: None,
                            path,
                            children: 0,
                            seen: std::collections::HashSet::new(),
                        }
                    } else {
                        Frame::Seq { next: 0, path }
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => match stack.pop() {
                    Some(Frame::Map {
                        path, children: 0, ..
                    }) => shape.push((path, "{}".into())),
                    Some(Frame::Seq { path, next: 0 }) => shape.push((path, "[]".into())),
                    _ => {}
                },
                Event::Scalar(value, style, anchor, tag) => {
                    if let Some(Frame::Map { key, .. }) = stack.last_mut()
                        && key.is_none()
                    {
                        // A key.
                        if stack.len() == 1 {
                            let mut ls = span.start.index().min(chars.len());
                            // YAML line breaks are LF, CR LF and a lone CR.
                            while ls > 0 && !matches!(chars[ls - 1], '\n' | '\r') {
                                ls -= 1;
                            }
                            if top_keys.iter().any(|(k, _)| *k == *value) {
                                return Err(err(
                                    line,
                                    "duplicate key (not shown: it may be a secret)".to_owned(),
                                ));
                            }
                            if top_keys.is_empty() {
                                root_indent = chars[ls..span.start.index().min(chars.len())]
                                    .iter()
                                    .collect();
                            }
                            top_keys.push((value.to_string(), ls));
                        }
                        if let Some(Frame::Map {
                            key,
                            children,
                            seen,
                            path,
                        }) = stack.last_mut()
                        {
                            // How a key is written can change what it means (`<<` merges,
                            // `"<<"` does not; a tag retypes it): quoted or tagged keys are
                            // structure (version 3).
                            if style != ScalarStyle::Plain || tag.is_some() || anchor > 0 {
                                let how = format!(
                                    "key {style:?} {}",
                                    tag.as_ref().map(|t| tag_text(t)).unwrap_or_default()
                                );
                                shape.push((path.key(value.to_string()), how));
                            }
                            if !seen.insert(value.to_string()) {
                                return Err(err(
                                    line,
                                    "duplicate key (not shown: it may be a secret)".to_owned(),
                                ));
                            }
                            *key = Some(value.to_string());
                            *children += 1;
                        }
                        continue;
                    }
                    let path =
                        value_path(&mut stack)?.ok_or_else(|| err(line, "unexpected scalar"))?;
                    if stack.is_empty() {
                        return Err(err(line, "the document root must be a mapping"));
                    }
                    let (s, e) = value_range(&chars, span.start.index(), span.end.index(), style)
                        .ok_or_else(|| err(line, "cannot locate a scalar's text"))?;
                    let kind = if value.is_empty()
                        && matches!(style, ScalarStyle::Literal | ScalarStyle::Folded)
                    {
                        // An empty block scalar has no text of its own to replace.
                        Kind::Other
                    } else if tag.is_some() && style == ScalarStyle::Plain {
                        Kind::Str
                    } else if style == ScalarStyle::Plain {
                        plain_kind(&value)
                    } else {
                        Kind::Str
                    };
                    if anchor > 0 {
                        anchors.insert(anchor, path.clone());
                    }
                    if let Some(t) = &tag {
                        shape.push((path.clone(), tag_text(t)));
                    }
                    if style == ScalarStyle::Plain && kind == Kind::Str && yaml11_typed(&value) {
                        // Quoting it would change what YAML 1.1 reads (`no` vs "no").
                        shape.push((path.clone(), "plain".into()));
                    }
                    let mut leaf = Leaf::new(path, kind, value.to_string(), byte(s)..byte(e));
                    leaf.yaml11_ambiguous = style == ScalarStyle::Plain
                        && tag.is_none()
                        && kind == Kind::Str
                        && yaml11_non_string(&value);
                    leaves.push(leaf);
                }
                Event::Alias(id) => {
                    let path = value_path(&mut stack)?
                        .ok_or_else(|| err(line, "aliases as mapping keys are not supported"))?;
                    // What the alias points at, by path: moving an anchor onto another node
                    // (a secret) changes this.
                    let target: String = anchors
                        .get(&id)
                        .map(|p| p.encode().iter().map(|b| format!("{b:02x}")).collect())
                        .unwrap_or_default();
                    shape.push((path.clone(), format!("*{target}")));
                    let (s, e) = (span.start.index(), span.end.index());
                    leaves.push(Leaf::new(
                        path,
                        Kind::Other,
                        chars[s.min(chars.len())..e.min(chars.len())]
                            .iter()
                            .collect(),
                        byte(s)..byte(e),
                    ));
                }
                _ => {}
            }
        }
        let meta_first = Seg::Key(META_KEY.to_owned());
        let (meta_leaves, leaves): (Vec<Leaf>, Vec<Leaf>) = leaves
            .into_iter()
            .partition(|l| l.path.0.first() == Some(&meta_first));
        if shape.iter().any(|(p, _)| p.0.first() == Some(&meta_first)) {
            return Err(Error::Metadata(
                "the kmseal block holds something other than its string fields".into(),
            ));
        }
        let meta_pos = top_keys.iter().position(|(k, _)| k == META_KEY);
        let (meta, meta_range) = match meta_pos {
            Some(i) => {
                let start = top_keys[i].1;
                let end = top_keys.get(i + 1).map_or(chars.len(), |(_, s)| *s);
                (
                    Some(MetaFields::from_leaves(&meta_leaves)?),
                    Some(byte(start)..byte(end)),
                )
            }
            None => (None, None),
        };
        if documents == 0 || (!root_is_block_map && !leaves.is_empty()) {
            return Err(err(1, "the document root must be a block mapping"));
        }
        Ok(Yaml {
            text: text.to_owned(),
            leaves,
            shape,
            meta,
            meta_range,
            root_indent: if root_indent.chars().all(|c| c == ' ') {
                root_indent
            } else if root_indent.chars().all(|c| c == ' ' || c == '\t') {
                // YAML forbids tabs for indentation (saphyr lets the first line through).
                return Err(err(1, "tabs are not allowed for indentation"));
            } else {
                String::new()
            },
            edits: SpanEdits::default(),
        })
    }

    pub(crate) fn into_parts(self) -> (Vec<Leaf>, String) {
        (self.leaves, self.text)
    }

    pub(crate) fn leaves(&self) -> &[Leaf] {
        &self.leaves
    }

    pub(crate) fn shape(&self) -> &[(Path, String)] {
        &self.shape
    }

    pub(crate) fn meta(&self) -> Option<&MetaFields> {
        self.meta.as_ref()
    }

    pub(crate) fn set(&mut self, i: usize, repr: &Repr) {
        let mut text = match repr {
            Repr::Encrypted(s) | Repr::Plain(Kind::Str, s) => quote(s),
            Repr::Plain(_, s) => s.clone(),
        };
        // An empty value right after a tag (`!tag` with nothing after it) must be separated
        // from it (found by the config fuzz target).
        let before = self.text[..self.leaves[i].span.start].chars().next_back();
        if before.is_some_and(|c| !matches!(c, ' ' | '\t' | '\n' | '\r' | '[' | '{' | ',')) {
            text.insert(0, ' ');
        }
        self.edits.replace(self.leaves[i].span.clone(), text);
    }

    pub(crate) fn render(mut self, meta: Option<&MetaFields>) -> String {
        if let Some(r) = self.meta_range.take() {
            self.edits.replace(r, String::new());
        }
        let mut out = self.edits.apply(&self.text);
        if let Some(m) = meta {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            let ind = &self.root_indent;
            out.push_str(&format!("{ind}{META_KEY}:\n"));
            for (k, v) in m.pairs() {
                out.push_str(&format!("{ind}  {k}: {}\n", quote(v)));
            }
        }
        out
    }
}
