//! Scalars as SOPS (Go) sees them: how a decrypted `type:int|float|bool` parses
//! (`strconv.Atoi`, `ParseFloat`, `ParseBool`), how `sops.ToBytes` spells a value for the MAC
//! (`Itoa`, `FormatFloat(f, 'f', -1, 64)`, `True`/`False`), and how go-yaml v3 resolves a
//! plain YAML scalar.

use zeroize::Zeroizing;

use crate::cipher::Ty;

/// The canonical text of a decrypted value of type `ty`, `None` where Go's parse fails
/// (SOPS would fail there too).
pub(crate) fn canonical(ty: Ty, plain: &str) -> Option<Zeroizing<String>> {
    let text = match ty {
        Ty::Str | Ty::Comment => plain.to_owned(),
        Ty::Int => plain.parse::<i64>().ok()?.to_string(),
        Ty::Float => go_float(go_parse_float(plain)?),
        Ty::Bool => match plain {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => "true".to_owned(),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => "false".to_owned(),
            _ => return None,
        },
    };
    Some(Zeroizing::new(text))
}

/// `sops.ToBytes` of a value: what the MAC hashes.
pub(crate) fn mac_bytes(ty: Ty, text: &str) -> Option<Zeroizing<String>> {
    let s = match ty {
        Ty::Str | Ty::Comment => text.to_owned(),
        Ty::Int => yaml_int(text)?.to_string(),
        Ty::Float => go_float(go_parse_float(text).or_else(|| yaml_float(text))?),
        Ty::Bool => match text {
            "true" | "True" | "TRUE" => "True".to_owned(),
            "false" | "False" | "FALSE" => "False".to_owned(),
            _ => return None,
        },
    };
    Some(Zeroizing::new(s))
}

/// Go's `strconv.ParseFloat(s, 64)` for the spellings SOPS writes (`FormatFloat 'f'`) and
/// JSON numbers.
fn go_parse_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ if s
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
        {
            s.parse().ok()
        }
        _ => None,
    }
}

/// `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest decimal that reads back as `f`,
/// never in exponent form. Rust's `Display` for `f64` has the same contract.
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{f}")
    }
}

/// What go-yaml v3 makes of a plain (unquoted, untagged) scalar.
pub(crate) fn resolve_plain(v: &str) -> Option<Ty> {
    match v {
        "" | "~" | "null" | "Null" | "NULL" => None,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => Some(Ty::Bool),
        _ if yaml_int(v).is_some() => Some(Ty::Int),
        _ if yaml_float(v).is_some() => Some(Ty::Float),
        _ => Some(Ty::Str),
    }
}

/// go-yaml v3's integers: `strconv.ParseInt(s, 0, 64)` (sign, `0x`/`0o`/`0b`/leading-`0`
/// bases, `_` separators).
pub(crate) fn yaml_int(v: &str) -> Option<i64> {
    let (neg, body) = match v.as_bytes().first()? {
        b'-' => (true, &v[1..]),
        b'+' => (false, &v[1..]),
        _ => (false, v),
    };
    let (radix, digits) = if let Some(d) = body.strip_prefix("0x").or(body.strip_prefix("0X")) {
        (16, d)
    } else if let Some(d) = body.strip_prefix("0o").or(body.strip_prefix("0O")) {
        (8, d)
    } else if let Some(d) = body.strip_prefix("0b").or(body.strip_prefix("0B")) {
        (2, d)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else {
        (10, body)
    };
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if clean.is_empty() || !clean.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let n = i128::from_str_radix(&clean, radix).ok()?;
    i64::try_from(if neg { -n } else { n }).ok()
}

/// go-yaml v3's floats: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$` and the
/// `.inf`/`.nan` spellings.
pub(crate) fn yaml_float(v: &str) -> Option<f64> {
    match v {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    let b = v.strip_prefix(['-', '+']).unwrap_or(v);
    let (mant, exp) = match b.find(['e', 'E']) {
        Some(i) => (&b[..i], Some(&b[i + 1..])),
        None => (b, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    let mant_ok = match mant.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mant),
    };
    let exp_ok = exp.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    if mant_ok && exp_ok {
        v.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn go_spellings() {
        assert_eq!(go_float(0.75), "0.75");
        assert_eq!(go_float(8080.0), "8080");
        assert_eq!(go_float(1e21), "1000000000000000000000");
        assert_eq!(go_float(1e-7), "0.0000001");
        assert_eq!(go_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(canonical(Ty::Bool, "True").unwrap().as_str(), "true");
        assert_eq!(mac_bytes(Ty::Bool, "true").unwrap().as_str(), "True");
        assert!(canonical(Ty::Int, "12x").is_none());
    }

    #[test]
    fn yaml_resolution() {
        assert_eq!(resolve_plain("5432"), Some(Ty::Int));
        assert_eq!(yaml_int("0x1F"), Some(31));
        assert_eq!(yaml_int("1_000"), Some(1000));
        assert_eq!(yaml_int("0755"), Some(493));
        assert_eq!(resolve_plain("0.5"), Some(Ty::Float));
        assert_eq!(resolve_plain("1e3"), Some(Ty::Float));
        assert_eq!(resolve_plain(".inf"), Some(Ty::Float));
        assert_eq!(resolve_plain("yes"), Some(Ty::Str));
        assert_eq!(resolve_plain("1.2.3"), Some(Ty::Str));
        assert_eq!(resolve_plain("~"), None);
    }
}
