//! Values that are not secrets: a configuration template's placeholders, and an estimate of
//! how guessable a value is. Both read the value in place and keep no copy of it.

/// Words that are placeholders when they are the whole value (case-insensitive).
const PLACEHOLDER_WORDS: &[&str] = &[
    "changeme",
    "change-me",
    "change_me",
    "changeit",
    "password",
    "passw0rd",
    "secret",
    "example",
    "test",
    "testing",
    "todo",
    "tbd",
    "fixme",
    "placeholder",
    "default",
    "admin",
    "root",
    "null",
    "none",
    "nil",
    "undefined",
    "dummy",
    "sample",
    "foo",
    "bar",
    "foobar",
    "xxx",
    "...",
    "…",
    "-",
    "?",
];

/// Text that marks a placeholder anywhere in the value (case-insensitive): long enough that a
/// random secret never contains it by chance (7 or more letters of a fixed word).
const PLACEHOLDER_PARTS: &[&str] = &[
    "changeme",
    "change-me",
    "change_me",
    "example",
    "placeholder",
    "replace-me",
    "replace_me",
    "replaceme",
    "your-",
    "your_",
    "generate-",
    "generate_",
    "insert-",
    "insert_",
    "-here",
    "_here",
    "dummy-",
    "not-a-real",
    "not_a_real",
];

/// Whether `value` looks like a configuration template's placeholder rather than a secret:
/// wrapped in `<…>`, `{{…}}` or `${…}`; one of the usual words (`changeme`, `secret`,
/// `example`, `todo`…); containing one of the usual phrases (`your-…`, `…-here`,
/// `replace-me`, `generate-…`); or one character repeated (`xxxxxxxx`, `********`).
pub fn is_placeholder(value: &str) -> bool {
    // Compared in place, ASCII case ignored: a lower-cased copy would be a copy of the secret
    // in memory nobody wipes.
    let text = value.trim();
    let v = text.as_bytes();
    if v.is_empty() {
        return false;
    }
    let wrapped = |open: &[u8], close: &[u8]| v.starts_with(open) && v.ends_with(close);
    if (v.len() > 2 && wrapped(b"<", b">")) || wrapped(b"{{", b"}}") || wrapped(b"${", b"}") {
        return true;
    }
    if PLACEHOLDER_WORDS
        .iter()
        .any(|w| v.eq_ignore_ascii_case(w.as_bytes()))
    {
        return true;
    }
    if PLACEHOLDER_PARTS.iter().any(|p| {
        v.windows(p.len())
            .any(|w| w.eq_ignore_ascii_case(p.as_bytes()))
    }) {
        return true;
    }
    let mut chars = text.chars();
    let first = chars.next().unwrap_or_default();
    text.chars().nth(2).is_some() && chars.all(|c| c.eq_ignore_ascii_case(&first))
}

/// An estimate of the entropy of `value` in bits, for refusing guessable secrets: length ×
/// log2 of the character classes it uses (lower case 26, upper case 26, digits 10, ASCII
/// symbols 33, anything else 100), scaled down when it uses fewer distinct characters than a
/// random string of that length and pool would (0.6 of the expected number counts as
/// random): `aaaaaaaa` and `abababab` score near zero, a generated `base64url:16` about 130,
/// `hex:16` 128 (an unlucky draw, about 1 in 10,000, scores a little less).
/// Words and keyboard patterns still score high (`Password123!` about 78 bits), so use it
/// as a floor for generated secrets, not as a strength meter.
pub fn estimate_entropy_bits(value: &str) -> f64 {
    // One pass, no copy of the value: which ASCII characters occur (wiped after), the
    // character classes, and the length.
    let mut seen = [0u8; 128];
    let (mut n, mut other) = (0u32, 0u32);
    let (mut lower, mut upper, mut digit, mut punct, mut wide) =
        (false, false, false, false, false);
    let (mut hex_lower, mut hex_upper) = (true, true);
    for c in value.chars() {
        n += 1;
        lower |= c.is_ascii_lowercase();
        upper |= c.is_ascii_uppercase();
        digit |= c.is_ascii_digit();
        punct |= c.is_ascii_punctuation();
        wide |= !c.is_ascii() || c.is_ascii_whitespace();
        hex_lower &= c.is_ascii_digit() || ('a'..='f').contains(&c);
        hex_upper &= c.is_ascii_digit() || ('A'..='F').contains(&c);
        match u8::try_from(c) {
            Ok(b) if b < 128 => seen[usize::from(b)] = 1,
            // Non-ASCII characters each count as distinct (an upper bound).
            _ => other += 1,
        }
    }
    let distinct = f64::from(seen.iter().map(|&b| u32::from(b)).sum::<u32>() + other);
    zeroize::Zeroize::zeroize(&mut seen);
    if n == 0 {
        return 0.0;
    }
    let mut pool = 0u32;
    for (present, size) in [
        (lower, 26),
        (upper, 26),
        (digit, 10),
        (punct, 33),
        (wide, 100),
    ] {
        if present {
            pool += size;
        }
    }
    // Both letter cases: a generated alphabet (alnum, base64), whose digits a short value
    // may lack by chance (one base64url:16 in 40 has none).
    if lower && upper && !digit {
        pool += 10;
    }
    // Hex in one case: 16 symbols, not the 36 of lower case and digits.
    if hex_lower || hex_upper {
        pool = pool.min(16);
    }
    let (n, pool) = (f64::from(n), f64::from(pool.max(1)));
    // The distinct characters n draws from `pool` give on average.
    let expected = pool * (1.0 - (1.0 - 1.0 / pool).powf(n));
    let scale = if distinct <= 1.0 {
        0.0
    } else {
        (distinct / (0.6 * expected)).min(1.0)
    };
    n * pool.log2() * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guides_placeholders_are_refused_and_generated_secrets_are_not() {
        for p in [
            "<generate-strong-password>",
            "<your-api-key>",
            "changeme",
            "CHANGEME",
            "change-me-in-production",
            "your-secret-key-here",
            "your_jwt_secret",
            "example",
            "sk_test_example_key",
            "xxxxxxxxxxxxxxxx",
            "********",
            "${DB_PASSWORD}",
            "{{ .Values.password }}",
            "secret",
            "password",
            "TODO",
            "replace-me",
            "insert-token-here",
            "not-a-real-key",
        ] {
            assert!(is_placeholder(p), "{p}");
        }
        for real in [
            "Xk9#mP2$vL5@nQ8!",
            "db-pw-123",
            "jwt-secret-456",
            "correct horse battery staple",
            "3q2+7w==",
            "a<b>c",
        ] {
            assert!(!is_placeholder(real), "{real}");
        }
        // 10,000 generated secrets of each alphabet: none is mistaken for a placeholder.
        for spec in ["base64:32", "base64url:16", "hex:16", "alnum:20"] {
            let spec: kmseal::secret::GenerateSpec = spec.parse().unwrap_or_default();
            for _ in 0..10_000 {
                let v = spec.generate().ok();
                let v = v.as_ref().map_or("", |v| v.expose_secret());
                assert!(!is_placeholder(v), "{spec}");
            }
        }
    }

    #[test]
    fn entropy_estimates_order_values_as_expected() {
        assert_eq!(estimate_entropy_bits(""), 0.0);
        assert_eq!(estimate_entropy_bits("aaaaaaaaaaaaaaaa"), 0.0);
        let weak = estimate_entropy_bits("password1234");
        let generated = kmseal::secret::GenerateSpec::default()
            .generate()
            .map(|v| estimate_entropy_bits(v.expose_secret()))
            .unwrap_or(0.0);
        assert!(weak < 80.0, "{weak}");
        assert!(generated > 180.0 && generated <= 44.0 * 6.6, "{generated}");
        assert!(estimate_entropy_bits("abababababababab") < 40.0);
        // A 128-bit generated secret meets min_entropy(128) (an adversarial review found the
        // first estimator refusing all of them: a Shannon bound cannot exceed n·log2(n)).
        for spec in ["hex:16", "base64:16", "base64url:16", "alnum:22"] {
            let spec: kmseal::secret::GenerateSpec = spec.parse().unwrap_or_default();
            let passed = (0..1000)
                .filter(|_| {
                    let v = spec.generate().ok();
                    v.as_ref()
                        .map_or(0.0, |v| estimate_entropy_bits(v.expose_secret()))
                        >= 128.0
                })
                .count();
            assert!(passed >= 995, "{spec}: {passed} of 1000");
        }
        assert!(estimate_entropy_bits("deadbeefdeadbeefdeadbeefdeadbeef") < 128.0);
    }
}
