//! Writing strings: YAML plain where unambiguous, else double-quoted; JSON strings; `.env`
//! values as `kmseal_config` reads them.

use zeroize::Zeroizing;

/// A string escaped into double quotes, valid in JSON and in YAML: `"`, `\`, control
/// characters and the line and paragraph separators YAML 1.1 breaks lines at are escaped.
pub(crate) fn quoted(s: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(s.len() + 2));
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A YAML scalar that reads back as the string `s` under YAML 1.1 and 1.2: plain when it is
/// a word-like string no resolver turns into another type, else double-quoted.
pub(crate) fn yaml_str(s: &str) -> Zeroizing<String> {
    let first_ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '/');
    let rest_ok = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_./@+-".contains(c));
    let special = matches!(
        s.to_ascii_lowercase().as_str(),
        "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null" | "nan" | "inf"
    );
    if first_ok && rest_ok && !special {
        Zeroizing::new(s.to_owned())
    } else {
        quoted(s)
    }
}

/// A `.env` value: bare when it is unambiguous, else double-quoted with `kmseal_config`'s
/// escapes (`\n \r \t \" \\ \$ \``).
pub(crate) fn dotenv_value(s: &str) -> Zeroizing<String> {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:@+,=".contains(c))
    {
        return Zeroizing::new(s.to_owned());
    }
    let mut out = Zeroizing::new(String::from("\""));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        assert_eq!(yaml_str("db.internal").as_str(), "db.internal");
        assert_eq!(yaml_str("yes").as_str(), "\"yes\"");
        assert_eq!(yaml_str("0123").as_str(), "\"0123\"");
        assert_eq!(yaml_str("a: b").as_str(), "\"a: b\"");
        assert_eq!(yaml_str("").as_str(), "\"\"");
        assert_eq!(quoted("a\"\\\n\u{1}").as_str(), "\"a\\\"\\\\\\n\\u0001\"");
        assert_eq!(dotenv_value("x y$").as_str(), "\"x y\\$\"");
        assert_eq!(dotenv_value("abc").as_str(), "abc");
    }
}
