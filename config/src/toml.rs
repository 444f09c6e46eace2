//! TOML through toml_edit, which keeps comments, order and layout: values are replaced in the
//! edit tree with their decoration (surrounding whitespace and comments) kept. The metadata
//! block is a `[kmseal]` table.

use toml_edit::{DocumentMut, Item, Value};

use crate::Error;
use crate::crypto::Kind;
use crate::doc::{Leaf, META_KEY, MetaFields, Repr};
use crate::path::{Path, Seg};

pub(crate) struct Toml {
    doc: DocumentMut,
    leaves: Vec<Leaf>,
    /// Empty tables and arrays, by path (structure the MAC covers from version 3).
    shape: Vec<(Path, String)>,
    meta: Option<MetaFields>,
}

fn kind_and_text(v: &Value) -> (Kind, String) {
    match v {
        Value::String(s) => (Kind::Str, s.value().clone()),
        Value::Integer(i) => (Kind::Int, i.display_repr().into_owned()),
        Value::Float(f) => (Kind::Float, f.display_repr().into_owned()),
        Value::Boolean(b) => (Kind::Bool, b.value().to_string()),
        Value::Datetime(d) => (Kind::Datetime, d.value().to_string()),
        Value::Array(_) | Value::InlineTable(_) => (Kind::Other, String::new()),
    }
}

/// What a walk collects: the values, and the empty tables and arrays.
struct Walk {
    leaves: Vec<Leaf>,
    shape: Vec<(Path, String)>,
}

fn walk_value(v: &Value, path: &Path, out: &mut Walk) {
    match v {
        Value::Array(a) => {
            if a.is_empty() {
                out.shape.push((path.clone(), "[]".into()));
            }
            for (i, x) in a.iter().enumerate() {
                walk_value(x, &path.index(i), out);
            }
        }
        Value::InlineTable(t) => {
            if t.is_empty() {
                out.shape.push((path.clone(), "{}".into()));
            }
            for (k, x) in t.iter() {
                walk_value(x, &path.key(k), out);
            }
        }
        scalar => {
            let (kind, text) = kind_and_text(scalar);
            out.leaves.push(Leaf::new(path.clone(), kind, text, 0..0));
        }
    }
}

fn walk_item(item: &Item, path: &Path, out: &mut Walk) {
    match item {
        Item::None => {}
        Item::Value(v) => walk_value(v, path, out),
        Item::Table(t) => {
            if t.is_empty() {
                out.shape.push((path.clone(), "{}".into()));
            }
            for (k, x) in t.iter() {
                walk_item(x, &path.key(k), out);
            }
        }
        Item::ArrayOfTables(a) => {
            if a.is_empty() {
                out.shape.push((path.clone(), "[]".into()));
            }
            for (i, t) in a.iter().enumerate() {
                if t.is_empty() {
                    out.shape.push((path.index(i), "{}".into()));
                }
                for (k, x) in t.iter() {
                    walk_item(x, &path.index(i).key(k), out);
                }
            }
        }
    }
}

/// The value at `path`, for replacement.
fn value_mut<'a>(doc: &'a mut DocumentMut, path: &Path) -> Option<&'a mut Value> {
    enum At<'a> {
        Item(&'a mut Item),
        Table(&'a mut toml_edit::Table),
        Value(&'a mut Value),
    }
    let mut at = At::Item(doc.as_item_mut());
    for seg in &path.0 {
        at = match (at, seg) {
            (At::Item(Item::Table(t)), Seg::Key(k)) | (At::Table(t), Seg::Key(k)) => {
                At::Item(t.get_mut(k)?)
            }
            (At::Item(Item::ArrayOfTables(a)), Seg::Index(i)) => At::Table(a.get_mut(*i)?),
            (At::Item(Item::Value(v)) | At::Value(v), s) => match (v, s) {
                (Value::InlineTable(t), Seg::Key(k)) => At::Value(t.get_mut(k)?),
                (Value::Array(a), Seg::Index(i)) => At::Value(a.get_mut(*i)?),
                _ => return None,
            },
            _ => return None,
        };
    }
    match at {
        At::Item(Item::Value(v)) | At::Value(v) => Some(v),
        _ => None,
    }
}

impl Toml {
    pub(crate) fn parse(text: &str) -> Result<Toml, Error> {
        let doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
            let line = e
                .span()
                .map(|s| {
                    text.as_bytes()[..s.start.min(text.len())]
                        .iter()
                        .filter(|b| **b == b'\n')
                        .count()
                        + 1
                })
                .unwrap_or(0);
            Error::Parse {
                format: "TOML",
                line,
                // toml_edit quotes the document in backticks (a duplicate key, a bad value):
                // the quoted text is left out, as it may be a secret.
                message: crate::without_quoted_text(e.message()),
            }
        })?;
        let mut walk = Walk {
            leaves: Vec::new(),
            shape: Vec::new(),
        };
        walk_item(doc.as_item(), &Path::root(), &mut walk);
        let meta_first = Seg::Key(META_KEY.to_owned());
        let (meta_leaves, leaves): (Vec<Leaf>, Vec<Leaf>) = walk
            .leaves
            .into_iter()
            .partition(|l| l.path.0.first() == Some(&meta_first));
        let shape = walk.shape;
        if shape.iter().any(|(p, _)| p.0.first() == Some(&meta_first)) {
            return Err(Error::Metadata(
                "the kmseal block holds something other than its string fields".into(),
            ));
        }
        let meta = if doc.contains_key(META_KEY) {
            Some(MetaFields::from_leaves(&meta_leaves)?)
        } else {
            None
        };
        Ok(Toml {
            doc,
            leaves,
            shape,
            meta,
        })
    }

    pub(crate) fn into_parts(self) -> (Vec<Leaf>, String) {
        (self.leaves, String::new())
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

    pub(crate) fn set(&mut self, i: usize, repr: &Repr) -> Result<(), Error> {
        let path = self.leaves[i].path.clone();
        let new: Value = match repr {
            Repr::Encrypted(s) | Repr::Plain(Kind::Str, s) => Value::from(s.as_str()),
            Repr::Plain(kind, s) => {
                let parsed = match kind {
                    Kind::Int => s.parse::<Value>().ok().filter(Value::is_integer),
                    Kind::Float => s.parse::<Value>().ok(),
                    Kind::Bool => s.parse::<bool>().ok().map(Value::from),
                    Kind::Datetime => s.parse::<toml_edit::Datetime>().ok().map(Value::from),
                    _ => None,
                };
                parsed.ok_or_else(|| {
                    Error::Tampered(format!("the value at `{path}` is not a valid {kind:?}"))
                })?
            }
        };
        let slot = value_mut(&mut self.doc, &path)
            .ok_or_else(|| Error::Unsupported(format!("cannot edit the value at `{path}`")))?;
        let decor = slot.decor().clone();
        *slot = new;
        *slot.decor_mut() = decor;
        Ok(())
    }

    pub(crate) fn render(mut self, meta: Option<&MetaFields>) -> String {
        self.doc.remove(META_KEY);
        if let Some(m) = meta {
            let mut t = toml_edit::Table::new();
            for (k, v) in m.pairs() {
                t.insert(k, toml_edit::value(v));
            }
            self.doc.insert(META_KEY, Item::Table(t));
        }
        self.doc.to_string()
    }
}
