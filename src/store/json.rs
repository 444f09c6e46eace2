//! [`json_field`]: one field of a JSON object secret (Secrets Manager's common
//! `{"DB_PASSWORD": "…"}` shape, a Vault KV field map) straight into locked memory: the value
//! is never held in a `serde_json::Value`, a `String` or any other unwiped buffer of ours.

use crate::error::Error;
use crate::secret::SecretBytes;

/// Deepest nesting of arrays and objects accepted in a JSON secret.
const MAX_DEPTH: usize = 64;

/// The value of the top-level field `field` of the JSON object `json`, in locked memory: a
/// string's unescaped UTF-8, or a number's or `true`/`false`'s text as written.
///
/// Strict RFC 8259: one object, nothing after it, valid UTF-8, no lone surrogates, at most 64
/// levels of nesting. A key that appears twice at the top level is refused (parsers disagree
/// on which one wins, which is how a second value gets smuggled past a reviewer). Errors
/// ([`Error::SecretShape`]) say what is wrong and name the field, never a value.
///
/// ```
/// use kmseal::store::json_field;
/// let stored = br#"{"user": "app", "password": "s3cr\u00e9t\n"}"#;
/// assert_eq!(json_field(stored, "password")?.expose_secret(), "s3cr\u{e9}t\n".as_bytes());
/// assert!(json_field(stored, "token").is_err());
/// assert!(json_field(br#"{"a": 1, "a": 2}"#, "a").is_err());
/// # Ok::<(), kmseal::Error>(())
/// ```
pub fn json_field(json: &[u8], field: &str) -> Result<SecretBytes, Error> {
    json_field_if_present(json, field)?.ok_or_else(|| {
        Error::SecretShape(format!(
            "the JSON object has no such field (selecting field `{field}`)"
        ))
    })
}

/// [`json_field`], with `Ok(None)` for a well-formed object without the field.
pub(crate) fn json_field_if_present(
    json: &[u8],
    field: &str,
) -> Result<Option<SecretBytes>, Error> {
    let result = select_field(json, field);
    // Escapes were decoded through stack temporaries: leave none of them behind.
    crate::secret::scrub_stack();
    result
}

fn select_field(json: &[u8], field: &str) -> Result<Option<SecretBytes>, Error> {
    let shape = |what: &str| Error::SecretShape(format!("{what} (selecting field `{field}`)"));
    std::str::from_utf8(json).map_err(|_| shape("the secret is not valid UTF-8"))?;
    let mut scan = Scan { s: json, i: 0 };
    scan.ws();
    if !scan.eat(b'{') {
        return Err(shape("the secret is not a JSON object"));
    }
    let mut seen = std::collections::HashSet::new();
    let mut found: Option<SecretBytes> = None;
    scan.ws();
    if !scan.eat(b'}') {
        loop {
            scan.ws();
            let key = scan.string_span().map_err(shape)?;
            let key = unescape_to_string(&json[key.0..key.1]).map_err(shape)?;
            scan.ws();
            if !scan.eat(b':') {
                return Err(shape("malformed JSON: expected `:` after a key"));
            }
            scan.ws();
            let start = scan.i;
            // The object itself is the first level of nesting.
            let kind = scan.value(1).map_err(shape)?;
            if !seen.insert(key.clone()) {
                return Err(shape("the JSON object has a key twice"));
            }
            if key == field {
                found = Some(selected(&json[start..scan.i], kind).map_err(shape)?);
            }
            scan.ws();
            if scan.eat(b',') {
                continue;
            }
            if scan.eat(b'}') {
                break;
            }
            return Err(shape("malformed JSON: expected `,` or `}` in the object"));
        }
    }
    scan.ws();
    if scan.i != json.len() {
        return Err(shape("malformed JSON: data after the object"));
    }
    Ok(found)
}

/// What a JSON value is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    /// A number, `true` or `false`: its text is the value.
    Scalar,
    /// `null`, an object or an array: not a secret value.
    Other,
}

/// The selected value's bytes, into locked memory.
fn selected(raw: &[u8], kind: Kind) -> Result<SecretBytes, &'static str> {
    let mut out = SecretBytes::with_capacity(raw.len()).map_err(|_| "cannot allocate")?;
    match kind {
        Kind::String => unescape(&raw[1..raw.len() - 1], |piece| {
            out.extend_from_slice(piece).map_err(|_| "cannot allocate")
        })?,
        Kind::Scalar => out.extend_from_slice(raw).map_err(|_| "cannot allocate")?,
        Kind::Other => return Err("the field is null, an object or an array, not a value"),
    }
    Ok(out)
}

struct Scan<'a> {
    s: &'a [u8],
    i: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// Skips one value, returning what it was.
    fn value(&mut self, depth: usize) -> Result<Kind, &'static str> {
        match self.peek() {
            Some(b'"') => self.string_span().map(|_| Kind::String),
            Some(b'{') | Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return Err("the JSON nests too deeply");
                }
                self.container(depth + 1).map(|()| Kind::Other)
            }
            Some(b't') => self.literal(b"true").map(|()| Kind::Scalar),
            Some(b'f') => self.literal(b"false").map(|()| Kind::Scalar),
            Some(b'n') => self.literal(b"null").map(|()| Kind::Other),
            Some(b'-' | b'0'..=b'9') => self.number().map(|()| Kind::Scalar),
            Some(_) => Err("malformed JSON: not a value"),
            None => Err("malformed JSON: the secret ends early"),
        }
    }

    fn container(&mut self, depth: usize) -> Result<(), &'static str> {
        let close = if self.eat(b'{') { b'}' } else { b']' };
        if close == b']' {
            self.i += 1; // the `[`
        }
        self.ws();
        if self.eat(close) {
            return Ok(());
        }
        loop {
            self.ws();
            if close == b'}' {
                self.string_span()?;
                self.ws();
                if !self.eat(b':') {
                    return Err("malformed JSON: expected `:` after a key");
                }
                self.ws();
            }
            self.value(depth)?;
            self.ws();
            if self.eat(b',') {
                continue;
            }
            if self.eat(close) {
                return Ok(());
            }
            return Err("malformed JSON: unterminated object or array");
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), &'static str> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err("malformed JSON: not a value")
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Result<(), &'static str> {
        const BAD: &str = "malformed JSON: not a number";
        let digits = |scan: &mut Self| {
            let start = scan.i;
            while matches!(scan.peek(), Some(b'0'..=b'9')) {
                scan.i += 1;
            }
            scan.i > start
        };
        self.eat(b'-');
        if self.eat(b'0') {
            if matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(BAD);
            }
        } else if !digits(self) {
            return Err(BAD);
        }
        if self.eat(b'.') && !digits(self) {
            return Err(BAD);
        }
        if self.eat(b'e') || self.eat(b'E') {
            let _ = self.eat(b'+') || self.eat(b'-');
            if !digits(self) {
                return Err(BAD);
            }
        }
        Ok(())
    }

    /// Checks the string starting at the cursor (escapes included) and returns its span,
    /// quotes included.
    fn string_span(&mut self) -> Result<(usize, usize), &'static str> {
        let start = self.i;
        if !self.eat(b'"') {
            return Err("malformed JSON: expected a string");
        }
        loop {
            match self.peek() {
                None => return Err("malformed JSON: unterminated string"),
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            let hex = self.s.get(self.i + 1..self.i + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return Err("malformed JSON: bad \\u escape");
                            }
                            self.i += 5;
                        }
                        _ => return Err("malformed JSON: bad escape"),
                    }
                }
                Some(0..=0x1f) => return Err("malformed JSON: control character in a string"),
                Some(_) => self.i += 1,
            }
        }
        // Surrogates pair up (checked by a dry run of the unescaper).
        unescape(&self.s[start + 1..self.i - 1], |_| Ok(()))?;
        Ok((start, self.i))
    }
}

/// Unescapes the inside of a string that [`Scan::string_span`] checked, handing `out` the
/// UTF-8 pieces in order. A `\u` escape's bytes pass through a small stack buffer that is
/// wiped after use.
fn unescape(
    inner: &[u8],
    mut out: impl FnMut(&[u8]) -> Result<(), &'static str>,
) -> Result<(), &'static str> {
    let hex4 = |b: &[u8]| -> Result<u32, &'static str> {
        let text = std::str::from_utf8(b).map_err(|_| "malformed JSON: bad \\u escape")?;
        u32::from_str_radix(text, 16).map_err(|_| "malformed JSON: bad \\u escape")
    };
    let mut i = 0;
    let mut run = 0;
    while i < inner.len() {
        if inner[i] != b'\\' {
            i += 1;
            continue;
        }
        out(&inner[run..i])?;
        let esc = inner
            .get(i + 1)
            .copied()
            .ok_or("malformed JSON: bad escape")?;
        let mut buf = [0u8; 4];
        let piece: &[u8] = match esc {
            b'"' => b"\"",
            b'\\' => b"\\",
            b'/' => b"/",
            b'b' => b"\x08",
            b'f' => b"\x0c",
            b'n' => b"\n",
            b'r' => b"\r",
            b't' => b"\t",
            b'u' => {
                let hi = hex4(
                    inner
                        .get(i + 2..i + 6)
                        .ok_or("malformed JSON: bad \\u escape")?,
                )?;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    // A high surrogate must be followed by `\uDC00`–`\uDFFF`.
                    let lo = inner
                        .get(i + 6..i + 12)
                        .filter(|l| l.starts_with(b"\\u"))
                        .ok_or("malformed JSON: a lone surrogate")
                        .and_then(|l| hex4(&l[2..]))?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err("malformed JSON: a lone surrogate");
                    }
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                let c = char::from_u32(code).ok_or("malformed JSON: a lone surrogate")?;
                i += 4;
                c.encode_utf8(&mut buf).as_bytes()
            }
            _ => return Err("malformed JSON: bad escape"),
        };
        let r = out(piece);
        zeroize::Zeroize::zeroize(&mut buf);
        r?;
        i += 2;
        run = i;
    }
    out(&inner[run..])
}

/// A key, unescaped (keys name fields; they are not secret).
fn unescape_to_string(span: &[u8]) -> Result<String, &'static str> {
    let mut key = Vec::new();
    unescape(&span[1..span.len() - 1], |piece| {
        key.extend_from_slice(piece);
        Ok(())
    })?;
    String::from_utf8(key).map_err(|_| "malformed JSON: a key is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(json: &str, field: &str) -> Result<Vec<u8>, String> {
        json_field(json.as_bytes(), field)
            .map(|v| v.expose_secret().to_vec())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn fields_come_out_unescaped_and_scalars_as_written() {
        let doc = r#" { "a" : "x\"y\\z\/\b\f\n\r\t" , "n": -12.5e+3, "t": true,
            "f": false, "nested": {"a": [1, {"b": null}], "s": "}"}, "u": "\u00e9\ud83d\ude00",
            "e": "", "k\u0065y": "escaped key" } "#;
        assert_eq!(get(doc, "a").unwrap(), b"x\"y\\z/\x08\x0c\n\r\t");
        assert_eq!(get(doc, "n").unwrap(), b"-12.5e+3");
        assert_eq!(get(doc, "t").unwrap(), b"true");
        assert_eq!(get(doc, "f").unwrap(), b"false");
        assert_eq!(get(doc, "u").unwrap(), "\u{e9}\u{1f600}".as_bytes());
        assert_eq!(get(doc, "e").unwrap(), b"");
        assert_eq!(get(doc, "key").unwrap(), b"escaped key");
        // Only top-level fields are selected.
        assert!(get(doc, "b").unwrap_err().contains("no such field"));
        assert!(get(doc, "nested").unwrap_err().contains("not a value"));
        assert!(
            get(r#"{"z": null}"#, "z")
                .unwrap_err()
                .contains("not a value")
        );
    }

    #[test]
    fn malformed_json_is_refused_with_a_reason_that_never_shows_a_value() {
        for bad in [
            "",
            " ",
            "[]",
            "\"s3cret\"",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":\"s3cret\"",
            "{\"a\":\"s3cret}",
            "{\"a\":\"s3cret\",}",
            "{\"a\":\"s3cret\"} x",
            "{\"a\":\"s3cret\"}}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":1e}",
            "{\"a\":-}",
            "{\"a\":tru}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\u12\"}",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\\udc00\"}",
            "{\"a\":\"\\ud800\\u0041\"}",
            "{\"a\":\"s3\u{1}cret\"}",
            "{\"a\":[1,]}",
            "{\"a\":[1 2]}",
            "{\"a\":{\"b\" 1}}",
            "{'a':'s3cret'}",
            "{\"a\":\"s3cret\",\"a\":\"other\"}",
            "{\"b\":1,\"b\":2,\"a\":\"s3cret\"}",
        ] {
            let e = get(bad, "a").expect_err(bad);
            assert!(!e.contains("s3cret") && !e.contains("other"), "{bad}: {e}");
            assert!(e.contains("`a`"), "{bad}: {e}");
        }
        assert!(json_field(b"{\"a\":\"\xff\"}", "a").is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(64), "]".repeat(64));
        assert!(get(&deep, "x").unwrap_err().contains("deeply"));
        let ok = format!(
            "{{\"a\":{}1{},\"b\":\"v\"}}",
            "[".repeat(63),
            "]".repeat(63)
        );
        assert_eq!(get(&ok, "b").unwrap(), b"v");
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error_or_a_value_never_a_panic() {
        let doc = br#"{"user":"app","password":"p\u00e4ss\"w","n":[1,{"x":false}]}"#;
        for cut in 0..doc.len() {
            assert!(json_field(&doc[..cut], "password").is_err(), "cut {cut}");
        }
        for at in 0..doc.len() {
            for bit in 0..8 {
                let mut d = doc.to_vec();
                d[at] ^= 1 << bit;
                let _ = json_field(&d, "password");
            }
        }
        assert_eq!(
            json_field(doc, "password").unwrap().expose_secret(),
            "p\u{e4}ss\"w".as_bytes()
        );
    }
}
