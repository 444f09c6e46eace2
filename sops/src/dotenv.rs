//! `.env` as SOPS's `stores/dotenv` reads it: one `KEY=value` per line (the key is everything
//! before the first `=`, the value everything after, `\n` standing for a newline), `#` lines
//! are comments, empty lines skipped; metadata is the `sops_`-prefixed keys, flattened.

use zeroize::Zeroizing;

use crate::cipher::Ty;
use crate::error::parse_err;
use crate::metadata::unflatten;
use crate::tree::{Key, Node, Scalar};
use crate::{Error, emit};

/// The data tree and the (unflattened) metadata node.
pub(crate) fn parse(text: &str) -> Result<(Node, Option<Node>), Error> {
    let mut items = Vec::new();
    let mut meta = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            items.push((Key::Comment(Zeroizing::new(c.to_owned())), Node::Null));
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| parse_err(".env", n + 1, "expected KEY=VALUE"))?;
        let v = Zeroizing::new(v.replace("\\n", "\n"));
        if let Some(m) = k.strip_prefix("sops_") {
            meta.push((m.to_owned(), v.replace("\\n", "\n")));
        } else {
            items.push((
                Key::Name(k.to_owned()),
                Node::Scalar(Scalar {
                    ty: Ty::Str,
                    text: v,
                }),
            ));
        }
    }
    let meta = if meta.is_empty() {
        None
    } else {
        Some(unflatten(&meta)?)
    };
    Ok((Node::Map(items), meta))
}

/// Writes `KEY=value` lines (values quoted as `kmseal_config` reads them) and `#` comments.
pub(crate) fn emit(root: &Node) -> Result<Zeroizing<String>, Error> {
    let mut out = Zeroizing::new(String::new());
    let Node::Map(items) = root else {
        return Ok(out);
    };
    for (k, v) in items {
        match (k, v) {
            (Key::Comment(c), _) => {
                out.push('#');
                out.extend(
                    c.chars()
                        .map(|ch| if ch == '\r' || ch == '\n' { ' ' } else { ch }),
                );
                out.push('\n');
            }
            (Key::Name(name), Node::Scalar(s)) => {
                out.push_str(name.trim());
                out.push('=');
                out.push_str(&emit::dotenv_value(&s.text));
                out.push('\n');
            }
            (Key::Name(name), _) => {
                return Err(Error::Unsupported(format!(
                    "`{}` has no scalar value in a .env file",
                    kmseal::escape_untrusted(name.trim())
                )));
            }
        }
    }
    Ok(out)
}
