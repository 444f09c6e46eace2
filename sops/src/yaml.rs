//! YAML: saphyr's event parser builds the tree (as go-yaml v3 + `stores/yaml` would: aliases
//! expanded, within a budget; own-line comments as comment items of the enclosing mapping or
//! list), and the emitter writes block-style YAML (two-space indent) that `kmseal_config`
//! reads back.
//! Comments after a value on the same line are dropped (SOPS writes none).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};
use zeroize::Zeroizing;

use crate::cipher::Ty;
use crate::error::parse_err;
use crate::scalar::resolve_plain;
use crate::tree::{Key, Node, Scalar};
use crate::{Error, emit};

const F: &str = "YAML";
/// Deepest nesting of mappings and lists, aliases expanded (as `json::MAX_DEPTH`): the tree
/// is walked, written and dropped recursively.
const MAX_DEPTH: usize = 128;
/// Aliases may copy at most this many nodes, or [`ALIAS_RATIO`] times the nodes the document
/// writes out, whichever is more: without a bound, a few hundred bytes of nested aliases
/// ("billion laughs") expand to gigabytes. go-yaml, which SOPS uses, allows about the same
/// ratio for documents of this size.
const MIN_ALIAS_NODES: usize = 10_000;
const ALIAS_RATIO: usize = 100;

enum Frame {
    Map {
        items: Vec<(Key, Node)>,
        key: Option<String>,
        anchor: usize,
        indent: Option<usize>,
        size: Size,
    },
    Seq {
        items: Vec<Node>,
        anchor: usize,
        indent: usize,
        size: Size,
    },
}

/// The size of a (sub)tree: its nodes and its height in nested collections.
#[derive(Clone, Copy, Default)]
struct Size {
    nodes: usize,
    height: usize,
}

impl Size {
    const LEAF: Size = Size {
        nodes: 1,
        height: 0,
    };

    fn add_child(&mut self, child: Size) {
        self.nodes = self.nodes.saturating_add(child.nodes);
        self.height = self.height.max(child.height);
    }

    /// A collection with these children.
    fn closed(self) -> Size {
        Size {
            nodes: self.nodes.saturating_add(1),
            height: self.height + 1,
        }
    }
}

/// Own-line comments (`#` first on the line, outside any scalar), by line (1-based) and
/// column, text after the `#`.
fn comment_lines(text: &str, scalars: &[(usize, usize)]) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let l = n + 1;
        let trimmed = line.trim_start();
        if let Some(c) = trimmed.strip_prefix('#') {
            if scalars.iter().any(|&(a, b)| a < l && l < b) {
                continue;
            }
            out.push((l, line.len() - trimmed.len(), c.to_owned()));
        }
    }
    out
}

/// Parses a SOPS YAML document into its data tree (the `sops` key included).
pub(crate) fn parse(text: &str) -> Result<Node, Error> {
    // First pass: where multi-line scalars are, so that `#` lines inside them stay content.
    // It also counts the nodes written out, which bound how many aliases may copy.
    let mut scalars = Vec::new();
    let mut written: usize = 0;
    for ev in Parser::new_from_str(text) {
        let (ev, span) = ev.map_err(|e| parse_err(F, e.marker().line(), "invalid YAML"))?;
        if matches!(
            ev,
            Event::Scalar(..) | Event::MappingStart(..) | Event::SequenceStart(..)
        ) {
            written += 1;
        }
        if let Event::Scalar(..) = ev
            && span.end.line() > span.start.line()
        {
            scalars.push((
                span.start.line(),
                span.end.line() + usize::from(span.end.col() > 0),
            ));
        }
    }
    let mut copy_budget = written.saturating_mul(ALIAS_RATIO).max(MIN_ALIAS_NODES);
    let mut comments = comment_lines(text, &scalars).into_iter().peekable();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, (Node, Size)> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut documents = 0;
    for ev in Parser::new_from_str(text) {
        let (ev, span) = ev.map_err(|e| parse_err(F, e.marker().line(), "invalid YAML"))?;
        let line = span.start.line();
        // Comments before an item go into the collection that holds the item.
        let at_item = match stack.last() {
            Some(Frame::Map { key, .. }) => key.is_none(),
            Some(Frame::Seq { .. }) => true,
            None => false,
        } && !matches!(ev, Event::MappingEnd | Event::SequenceEnd);
        if at_item {
            while let Some((_, _, c)) = comments.next_if(|(l, _, _)| *l < line) {
                push_comment(&mut stack, c);
            }
        }
        if matches!(ev, Event::MappingStart(..) | Event::SequenceStart(..))
            && stack.len() >= MAX_DEPTH
        {
            return Err(parse_err(F, line, "nested too deeply"));
        }
        let done: Option<(Node, usize, Size)> = match ev {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => None,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(Error::Unsupported("multi-document YAML".into()));
                }
                None
            }
            Event::MappingStart(anchor, tag) => {
                check_tag(
                    tag.as_deref()
                        .map(|t| (t.handle.as_str(), t.suffix.as_str())),
                    line,
                    &["map"],
                )?;
                stack.push(Frame::Map {
                    items: Vec::new(),
                    key: None,
                    anchor,
                    indent: None,
                    size: Size::default(),
                });
                None
            }
            Event::SequenceStart(anchor, tag) => {
                check_tag(
                    tag.as_deref()
                        .map(|t| (t.handle.as_str(), t.suffix.as_str())),
                    line,
                    &["seq"],
                )?;
                stack.push(Frame::Seq {
                    items: Vec::new(),
                    anchor,
                    indent: span.start.col(),
                    size: Size::default(),
                });
                None
            }
            Event::MappingEnd | Event::SequenceEnd => {
                // Foot comments: lines before the end, indented at least as the items.
                let indent = match stack.last() {
                    Some(Frame::Map { indent, .. }) => indent.unwrap_or(0),
                    Some(Frame::Seq { indent, .. }) => *indent,
                    None => 0,
                };
                while let Some((_, _, c)) =
                    comments.next_if(|(l, col, _)| *l < line && *col >= indent)
                {
                    push_comment(&mut stack, c);
                }
                match stack.pop() {
                    Some(Frame::Map {
                        items,
                        key,
                        anchor,
                        size,
                        ..
                    }) => {
                        if key.is_some() {
                            return Err(parse_err(F, line, "a key without a value"));
                        }
                        Some((Node::Map(items), anchor, size.closed()))
                    }
                    Some(Frame::Seq {
                        items,
                        anchor,
                        size,
                        ..
                    }) => Some((Node::List(items), anchor, size.closed())),
                    None => return Err(parse_err(F, line, "unbalanced collection")),
                }
            }
            Event::Alias(id) => {
                let (node, size) = anchors
                    .get(&id)
                    .ok_or_else(|| parse_err(F, line, "an alias to an unknown anchor"))?;
                if stack.len() + size.height > MAX_DEPTH {
                    return Err(parse_err(F, line, "nested too deeply (through an alias)"));
                }
                spend(&mut copy_budget, *size, line)?;
                Some((node.clone(), 0, *size))
            }
            Event::Scalar(value, style, anchor, tag) => {
                let is_key = matches!(stack.last(), Some(Frame::Map { key: None, .. }));
                if is_key {
                    if let Some(Frame::Map { key, indent, .. }) = stack.last_mut() {
                        *key = Some(value.into_owned());
                        indent.get_or_insert(span.start.col());
                    }
                    None
                } else {
                    let tag = tag.as_deref().map(|t| (t.handle.clone(), t.suffix.clone()));
                    let node = scalar(value.into_owned(), style, tag, line)?;
                    Some((node, anchor, Size::LEAF))
                }
            }
        };
        if let Some((node, anchor, size)) = done {
            if anchor > 0 {
                // Keeping the anchored copy costs as much as an alias to it.
                spend(&mut copy_budget, size, line)?;
                anchors.insert(anchor, (node.clone(), size));
            }
            match stack.last_mut() {
                Some(Frame::Map {
                    items,
                    key,
                    size: parent,
                    ..
                }) => match key.take() {
                    Some(k) => {
                        items.push((Key::Name(k), node));
                        parent.add_child(size);
                    }
                    None => return Err(parse_err(F, line, "a collection used as a mapping key")),
                },
                Some(Frame::Seq {
                    items,
                    size: parent,
                    ..
                }) => {
                    items.push(node);
                    parent.add_child(size);
                }
                None => root = Some(node),
            }
        }
    }
    let mut root = match root {
        Some(n @ Node::Map(_)) => n,
        None | Some(Node::Null) => Node::Map(Vec::new()),
        Some(_) => return Err(parse_err(F, 1, "the document root is not a mapping")),
    };
    if let Node::Map(items) = &mut root {
        for (_, _, c) in comments {
            items.push((Key::Comment(Zeroizing::new(c)), Node::Null));
        }
    }
    Ok(root)
}

/// Takes the nodes an alias (or an anchor) copies out of the budget, or refuses the document.
fn spend(budget: &mut usize, size: Size, line: usize) -> Result<(), Error> {
    *budget = budget.checked_sub(size.nodes).ok_or_else(|| {
        parse_err(
            F,
            line,
            "aliases expand to too many nodes (more than 100 times the document's)",
        )
    })?;
    Ok(())
}

fn push_comment(stack: &mut [Frame], c: String) {
    let c = Zeroizing::new(c);
    match stack.last_mut() {
        Some(Frame::Map { items, .. }) => items.push((Key::Comment(c), Node::Null)),
        Some(Frame::Seq { items, .. }) => items.push(Node::Comment(c)),
        None => {}
    }
}

fn check_tag(tag: Option<(&str, &str)>, line: usize, ok: &[&str]) -> Result<(), Error> {
    match tag {
        None => Ok(()),
        Some(("tag:yaml.org,2002:", s)) | Some(("!!", s)) if ok.contains(&s) => Ok(()),
        Some(_) => Err(Error::Unsupported(format!("a YAML tag at line {line}"))),
    }
}

fn scalar(
    value: String,
    style: ScalarStyle,
    tag: Option<(String, String)>,
    line: usize,
) -> Result<Node, Error> {
    let ty = match tag.as_ref().map(|(h, s)| (h.as_str(), s.as_str())) {
        Some(("tag:yaml.org,2002:" | "!!", "str")) => Some(Ty::Str),
        Some(("tag:yaml.org,2002:" | "!!", "null")) => None,
        Some(_) => return Err(Error::Unsupported(format!("a YAML tag at line {line}"))),
        None if style == ScalarStyle::Plain => resolve_plain(&value),
        None => Some(Ty::Str),
    };
    Ok(match ty {
        None => Node::Null,
        Some(ty) => Node::Scalar(Scalar::new(ty, value)),
    })
}

/// Writes the tree as block YAML.
pub(crate) fn emit(root: &Node) -> Result<Zeroizing<String>, Error> {
    let mut out = Zeroizing::new(String::new());
    if let Node::Map(items) = root {
        map(&mut out, items, 0)?;
    }
    Ok(out)
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn comment(out: &mut String, indent: usize, c: &str) {
    pad(out, indent);
    out.push('#');
    out.extend(
        c.chars()
            .map(|ch| if ch == '\n' || ch == '\r' { ' ' } else { ch }),
    );
    out.push('\n');
}

fn scalar_text(s: &Scalar) -> Result<Zeroizing<String>, Error> {
    Ok(Zeroizing::new(match s.ty {
        Ty::Str | Ty::Comment => return Ok(emit::yaml_str(&s.text)),
        Ty::Float => match s.text.as_str() {
            "NaN" => ".nan".to_owned(),
            "+Inf" => ".inf".to_owned(),
            "-Inf" => "-.inf".to_owned(),
            t => t.to_owned(),
        },
        Ty::Int | Ty::Bool => s.text.as_str().to_owned(),
    }))
}

/// The value after `key:` (or `- `): inline for scalars and empty collections, else a
/// newline and the block at `indent`.
fn value(out: &mut String, v: &Node, indent: usize) -> Result<(), Error> {
    match v {
        Node::Scalar(s) => {
            out.push(' ');
            out.push_str(&scalar_text(s)?);
            out.push('\n');
        }
        Node::Null | Node::Comment(_) => out.push_str(" null\n"),
        Node::Map(items) if items.iter().all(|(k, _)| matches!(k, Key::Comment(_))) => {
            out.push_str(" {}\n");
            for (k, _) in items {
                if let Key::Comment(c) = k {
                    comment(out, indent, c);
                }
            }
        }
        Node::List(items) if items.iter().all(|n| matches!(n, Node::Comment(_))) => {
            out.push_str(" []\n");
            for n in items {
                if let Node::Comment(c) = n {
                    comment(out, indent, c);
                }
            }
        }
        Node::Map(items) => {
            out.push('\n');
            map(out, items, indent)?;
        }
        Node::List(items) => {
            out.push('\n');
            list(out, items, indent)?;
        }
    }
    Ok(())
}

fn map(out: &mut String, items: &[(Key, Node)], indent: usize) -> Result<(), Error> {
    for (k, v) in items {
        match k {
            Key::Comment(c) => comment(out, indent, c),
            Key::Name(name) => {
                pad(out, indent);
                out.push_str(&emit::yaml_str(name));
                out.push(':');
                value(out, v, indent + 2)?;
            }
        }
    }
    Ok(())
}

fn list(out: &mut String, items: &[Node], indent: usize) -> Result<(), Error> {
    for item in items {
        match item {
            Node::Comment(c) => comment(out, indent, c),
            Node::Map(entries) if entries.iter().any(|(k, _)| matches!(k, Key::Name(_))) => {
                // Leading comments go above the dash, then the first key shares its line.
                let first = entries
                    .iter()
                    .position(|(k, _)| matches!(k, Key::Name(_)))
                    .unwrap_or(0);
                map(out, &entries[..first], indent)?;
                pad(out, indent);
                out.push_str("- ");
                let mut first_line = Zeroizing::new(String::new());
                map(&mut first_line, &entries[first..=first], indent + 2)?;
                out.push_str(first_line.trim_start_matches(' '));
                map(out, &entries[first + 1..], indent + 2)?;
            }
            Node::List(inner) if inner.iter().any(|n| !matches!(n, Node::Comment(_))) => {
                pad(out, indent);
                out.push('-');
                out.push('\n');
                list(out, inner, indent + 2)?;
            }
            other => {
                pad(out, indent);
                out.push('-');
                value(out, other, indent + 2)?;
            }
        }
    }
    Ok(())
}
