//! Writing strings: YAML plain where unambiguous, else double-quoted; JSON strings; `.env`
//! values; the quoting is `kmseal_config`'s own ([`kmseal_config::quote`]), so what is
//! written reads back as the same string.

use zeroize::Zeroizing;

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
        Zeroizing::new(kmseal_config::quote::yaml(s))
    }
}

/// A JSON string literal, as `kmseal_config` writes them.
pub(crate) fn json_str(s: &str) -> Zeroizing<String> {
    Zeroizing::new(kmseal_config::quote::json(s))
}

/// A `.env` value, as `kmseal_config` writes and reads them.
pub(crate) fn dotenv_value(s: &str) -> Zeroizing<String> {
    Zeroizing::new(kmseal_config::quote::dotenv(s))
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
        assert_eq!(json_str("a\"\\\n\u{1}").as_str(), "\"a\\\"\\\\\\n\\u0001\"");
        assert_eq!(dotenv_value("x y$").as_str(), "\"x y\\$\"");
        assert_eq!(dotenv_value("abc").as_str(), "abc");
    }
}
