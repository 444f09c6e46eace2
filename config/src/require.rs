//! Start-up requirements on values: present, encrypted, long enough, not a template's
//! placeholder, not guessable. Checked by [`Secrets::check`](crate::Secrets::check) and
//! reported path by path ([`Finding`]), never with the value.

use std::fmt;

/// A requirement checked by [`Secrets::check`](crate::Secrets::check). A secret requirement
/// refuses the placeholders of configuration templates and guides (`<generate-a-password>`,
/// `changeme`, `your-api-key`, `xxxx`, `${DB_PASSWORD}`…) unless
/// [`allow_placeholders`](Self::allow_placeholders) says otherwise.
///
/// ```
/// use kmseal_config::Require;
///
/// let rules = [
///     Require::secret("database.password").min_len(16),
///     Require::secret("jwt.secret").min_len(32).min_entropy(128),
///     Require::present("database.host"),
/// ];
/// # let _ = rules;
/// ```
#[derive(Debug, Clone)]
pub struct Require {
    pub(crate) path: String,
    pub(crate) min_len: usize,
    pub(crate) secret: bool,
    pub(crate) placeholders_allowed: bool,
    pub(crate) min_entropy_bits: Option<u32>,
}

impl Require {
    /// `path` must be present, encrypted and non-empty.
    pub fn secret(path: impl Into<String>) -> Require {
        Require {
            path: path.into(),
            min_len: 1,
            secret: true,
            placeholders_allowed: false,
            min_entropy_bits: None,
        }
    }

    /// `path` must be present and non-empty (encrypted or not). Placeholders are not checked
    /// (a host named `example.internal`, a user `admin`) unless
    /// [`deny_placeholders`](Self::deny_placeholders) says so.
    pub fn present(path: impl Into<String>) -> Require {
        Require {
            secret: false,
            placeholders_allowed: true,
            ..Require::secret(path)
        }
    }

    /// Refuse placeholders here too (the default for [`secret`](Self::secret)).
    pub fn deny_placeholders(mut self) -> Require {
        self.placeholders_allowed = false;
        self
    }

    /// ... and at least `n` characters long.
    pub fn min_len(mut self, n: usize) -> Require {
        self.min_len = n.max(1);
        self
    }

    /// ... and of at least `bits` of estimated entropy ([`estimate_entropy_bits`]): guides
    /// ask for 128 bits for signing keys (`openssl rand -base64 32` gives 256).
    pub fn min_entropy(mut self, bits: u32) -> Require {
        self.min_entropy_bits = Some(bits);
        self
    }

    /// Accept values that look like a template's placeholder (a value that really is
    /// `example`).
    pub fn allow_placeholders(mut self) -> Require {
        self.placeholders_allowed = true;
        self
    }

    /// The path this requirement is about.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong with `value` (`None`: missing; `Some((value, encrypted))`), never
    /// quoting it.
    pub(crate) fn problems(&self, value: Option<(&str, bool)>) -> Vec<Problem> {
        let Some((value, encrypted)) = value else {
            return vec![Problem::Missing];
        };
        let mut found = Vec::new();
        if self.secret && !encrypted {
            found.push(Problem::NotEncrypted);
        }
        let len = value.chars().count();
        if len == 0 {
            found.push(Problem::Empty);
            return found;
        }
        if len < self.min_len {
            found.push(Problem::TooShort {
                len,
                min: self.min_len,
            });
        }
        if !self.placeholders_allowed && is_placeholder(value) {
            found.push(Problem::Placeholder);
        }
        if let Some(min) = self.min_entropy_bits {
            let estimated = estimate_entropy_bits(value);
            if estimated < f64::from(min) {
                // The estimate is below `min` (a u32), so the conversion is exact.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let estimated_bits = estimated.floor() as u32;
                found.push(Problem::LowEntropy {
                    estimated_bits,
                    min_bits: min,
                });
            }
        }
        found
    }
}

impl fmt::Display for Require {
    /// The requirement's text form, `PATH[:RULE,...]` (what [`FromStr`](std::str::FromStr)
    /// reads): `present` (plain values allowed), `min_len=N`, `min_entropy=N`,
    /// `allow_placeholders`, `deny_placeholders`; defaults are left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rules = Vec::new();
        if !self.secret {
            rules.push("present".to_owned());
        }
        if self.min_len > 1 {
            rules.push(format!("min_len={}", self.min_len));
        }
        if let Some(bits) = self.min_entropy_bits {
            rules.push(format!("min_entropy={bits}"));
        }
        match (self.secret, self.placeholders_allowed) {
            (true, true) => rules.push("allow_placeholders".into()),
            (false, false) => rules.push("deny_placeholders".into()),
            _ => {}
        }
        if rules.is_empty() {
            write!(f, "{}", self.path)
        } else {
            write!(f, "{}:{}", self.path, rules.join(","))
        }
    }
}

impl std::str::FromStr for Require {
    type Err = crate::Error;

    /// `PATH[:RULE,...]`, for example `database.password:min_len=16` or
    /// `jwt.secret:min_len=32,min_entropy=128`; a bare `PATH` is [`Require::secret`].
    fn from_str(s: &str) -> Result<Require, crate::Error> {
        let bad = |what: &str| {
            crate::Error::Unsupported(format!(
                "a requirement is PATH[:RULE,...] with rules present, min_len=N, min_entropy=N, \
                 allow_placeholders, deny_placeholders ({what})"
            ))
        };
        let (path, rules) = match s.rsplit_once(':') {
            Some((path, rules)) => (path, Some(rules)),
            None => (s, None),
        };
        if path.is_empty() {
            return Err(bad("no path"));
        }
        // `a:b:min_len=3` would read two ways (and print back to the other one).
        if path.contains(':') {
            return Err(bad("a path with `:` cannot be named here"));
        }
        let mut r = Require::secret(path);
        for rule in rules.into_iter().flat_map(|r| r.split(',')) {
            let number = |v: &str| {
                v.parse::<u32>()
                    .map_err(|_| bad("a rule's value is a number"))
            };
            match rule.split_once('=') {
                None if rule == "present" => {
                    r.secret = false;
                    r.placeholders_allowed = true;
                }
                None if rule == "allow_placeholders" => r.placeholders_allowed = true,
                None if rule == "deny_placeholders" => r.placeholders_allowed = false,
                Some(("min_len", v)) => r = r.min_len(number(v)? as usize),
                Some(("min_entropy", v)) => r = r.min_entropy(number(v)?),
                _ => return Err(bad("an unknown rule")),
            }
        }
        Ok(r)
    }
}

/// What a requirement found wrong with a value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// No value at the path.
    Missing,
    /// The value is stored in plaintext where a secret was required.
    NotEncrypted,
    /// The value is empty.
    Empty,
    /// Fewer characters than required.
    TooShort {
        /// Its length in characters.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// A template's placeholder (`changeme`, `<your-password>`, `xxxx`…), not a secret.
    Placeholder,
    /// Less estimated entropy than required.
    LowEntropy {
        /// The estimate, rounded down.
        estimated_bits: u32,
        /// The minimum.
        min_bits: u32,
    },
}

/// A problem at a path (printed without the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The path, as the requirement named it.
    pub path: String,
    /// What is wrong.
    pub problem: Problem,
}

impl Problem {
    /// A short stable name (`missing`, `not_encrypted`, `empty`, `too_short`, `placeholder`,
    /// `low_entropy`), for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Problem::Missing => "missing",
            Problem::NotEncrypted => "not_encrypted",
            Problem::Empty => "empty",
            Problem::TooShort { .. } => "too_short",
            Problem::Placeholder => "placeholder",
            Problem::LowEntropy { .. } => "low_entropy",
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.path;
        match &self.problem {
            Problem::Missing => write!(f, "`{p}` is missing"),
            Problem::NotEncrypted => write!(f, "`{p}` is not encrypted"),
            Problem::Empty => write!(f, "`{p}` is empty"),
            Problem::TooShort { len, min } => {
                write!(f, "`{p}` is shorter than {min} characters ({len})")
            }
            Problem::Placeholder => write!(
                f,
                "`{p}` is a template placeholder, not a secret (generate one: kmseal config \
                 set FILE {p} --generate)"
            ),
            Problem::LowEntropy {
                estimated_bits,
                min_bits,
            } => write!(
                f,
                "`{p}` is too guessable (about {estimated_bits} bits; at least {min_bits} \
                 required)"
            ),
        }
    }
}

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

    #[test]
    fn requirements_read_and_print_their_text_form() {
        for text in [
            "database.password",
            "database.password:min_len=16",
            "jwt.secret:min_len=32,min_entropy=128",
            "db.host:present",
            "db.host:present,deny_placeholders",
            "api.key:allow_placeholders",
        ] {
            let r: Require = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(r.to_string(), text);
        }
        let r: Require = "a.b:min_len=8".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.problems(Some(("short", true))),
            [Problem::TooShort { len: 5, min: 8 }]
        );
        for bad in [
            "",
            ":min_len=3",
            "a:min_len=x",
            "a:bogus",
            "a:min_len",
            "a:min_len=-1",
        ] {
            assert!(bad.parse::<Require>().is_err(), "{bad}");
        }
    }

    #[test]
    fn findings_never_quote_the_value() {
        let r = Require::secret("db.password").min_len(32).min_entropy(128);
        let value = "changeme-hunter2";
        let problems = r.problems(Some((value, true)));
        assert_eq!(problems.len(), 3, "{problems:?}");
        for problem in problems {
            let text = Finding {
                path: "db.password".into(),
                problem,
            }
            .to_string();
            assert!(
                !text.contains("hunter2") && !text.contains("changeme-"),
                "{text}"
            );
        }
        assert_eq!(r.problems(None), [Problem::Missing]);
        assert_eq!(
            r.problems(Some(("", false))),
            [Problem::NotEncrypted, Problem::Empty]
        );
        assert!(
            Require::secret("x")
                .allow_placeholders()
                .problems(Some(("example", true)))
                .is_empty()
        );
        assert!(
            Require::present("db.host")
                .problems(Some(("db.example.internal", false)))
                .is_empty()
        );
        assert_eq!(
            Require::present("db.host")
                .deny_placeholders()
                .problems(Some(("<host>", false))),
            [Problem::Placeholder]
        );
    }
}
