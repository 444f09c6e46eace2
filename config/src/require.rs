//! Start-up requirements on values: present, encrypted, long enough, not a template's
//! placeholder, not guessable, not older than its rotation interval. Checked by
//! [`Secrets::check`](crate::Secrets::check) and reported path by path ([`Finding`]), never
//! with the value. Stored in a sealed document (format version 4) they travel with it, under
//! its metadata MAC: see [`Sealer::rules`](crate::Sealer::rules).

use std::fmt;
use std::time::Duration;

use kmseal::secret::GenerateSpec;

use crate::Error;
use crate::duration::{format_duration, human, parse_duration};
use crate::weak::{estimate_entropy_bits, is_placeholder};

/// A requirement on the value at a path, or on every value whose path matches a glob (`*`
/// matches any run of characters, dots included: `*password`, `db.*`).
///
/// A secret requirement refuses the placeholders of configuration templates and guides
/// (`<generate-a-password>`, `changeme`, `your-api-key`, `xxxx`, `${DB_PASSWORD}`…) unless
/// [`allow_placeholders`](Self::allow_placeholders) says otherwise. Besides the checks, a
/// requirement can carry how to rotate the value: a [`max_age`](Self::max_age), a
/// [`generate`](Self::generate) spec (what `kmseal config set --generate` draws) and
/// [`alias`](Self::alias)es (more environment names for `kmseal exec`).
///
/// ```
/// use std::time::Duration;
/// use kmseal_config::Require;
///
/// let rules = [
///     Require::secret("database.password").min_len(16).max_age(Duration::from_secs(90 * 86_400)),
///     Require::secret("jwt.secret").min_len(32).min_entropy(128).generate("base64:32".parse()?),
///     Require::present("database.host"),
/// ];
/// assert_eq!(rules[0].to_string(), "database.password:min_len=16,max_age=90d");
/// let parsed: Require = "jwt.secret:min_len=32,min_entropy=128,generate=base64:32".parse()?;
/// assert_eq!(parsed.to_string(), rules[1].to_string());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Require {
    pub(crate) path: String,
    pub(crate) min_len: usize,
    pub(crate) secret: bool,
    pub(crate) placeholders_allowed: bool,
    pub(crate) min_entropy_bits: Option<u32>,
    pub(crate) max_age: Option<Duration>,
    pub(crate) generate: Option<GenerateSpec>,
    pub(crate) aliases: Vec<String>,
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
            max_age: None,
            generate: None,
            aliases: Vec::new(),
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

    /// ... and set no longer than `interval` ago (its rotation interval: 90, 180 or 365 days
    /// in the guides). The age is the time the value was last set in the document (recorded
    /// from format version 4) or, for a `ref+` reference, the creation time of the store's
    /// version. A value whose age is not known fails this check: rotate it to start the clock.
    pub fn max_age(mut self, interval: Duration) -> Require {
        self.max_age = Some(interval);
        self
    }

    /// How to generate a new value (`kmseal config set FILE PATH --generate` with no spec).
    pub fn generate(mut self, spec: GenerateSpec) -> Require {
        self.generate = Some(spec);
        self
    }

    /// Another environment variable name `kmseal exec` gives the value under (for services
    /// that read `DATABASE_PASSWORD` where the document says `db.password`). A name is
    /// letters, digits and `_`, not starting with a digit ([`validate`](Self::validate)).
    pub fn alias(mut self, name: impl Into<String>) -> Require {
        self.aliases.push(name.into());
        self
    }

    /// The path (or glob) this requirement is about.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether [`path`](Self::path) is a glob (contains `*`).
    pub fn is_glob(&self) -> bool {
        self.path.contains('*')
    }

    /// Whether this requirement applies to the value at `path` (display form).
    pub fn matches(&self, path: &str) -> bool {
        if self.is_glob() {
            crate::glob(&self.path, path)
        } else {
            self.path == path
        }
    }

    /// The rotation interval, if any.
    pub fn rotation_interval(&self) -> Option<Duration> {
        self.max_age
    }

    /// The generator spec, if any.
    pub fn generator(&self) -> Option<GenerateSpec> {
        self.generate
    }

    /// The extra environment names.
    pub fn aliases(&self) -> &[String] {
        &self.aliases
    }

    /// Checks what the builder methods cannot: the path can be written in the text form
    /// (no `:`, `;` or control characters), alias names are variable names, a rotation
    /// interval is not zero, and a generator meets the requirement's own length and entropy
    /// (a rule whose generated values it would refuse is a mistake).
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: String| Err(Error::Unsupported(format!("requirement `{self}`: {what}")));
        if self.path.is_empty() {
            return bad("no path".into());
        }
        // `a:b:min_len=3` would read two ways; `;` separates stored rules.
        if self.path.contains([':', ';']) || self.path.chars().any(char::is_control) {
            return bad("a path with `:`, `;` or control characters cannot be named here".into());
        }
        if let Some(a) = self.aliases.iter().find(|a| !is_env_name(a)) {
            return bad(format!(
                "alias `{}` is not a variable name (letters, digits, `_`)",
                kmseal::escape_untrusted(a)
            ));
        }
        // What the text form can hold, so that a stored rule always reads back (a review
        // found `min_len=5000000000` and `max_age` of 500 ms sealing into documents that no
        // longer opened).
        if u32::try_from(self.min_len).is_err() {
            return bad(format!("min_len must be at most {}", u32::MAX));
        }
        if let Some(age) = self.max_age
            && (age.as_secs() == 0 || age.subsec_nanos() != 0)
        {
            return bad("max_age must be a whole number of seconds, at least 1s".into());
        }
        if let Some(spec) = self.generate {
            if spec.output_len() < self.min_len {
                return bad(format!(
                    "generate={spec} gives {} characters, fewer than min_len={}",
                    spec.output_len(),
                    self.min_len
                ));
            }
            if let Some(min) = self.min_entropy_bits
                && spec.entropy_bits() < f64::from(min)
            {
                return bad(format!(
                    "generate={spec} gives {:.0} bits, fewer than min_entropy={min}",
                    spec.entropy_bits()
                ));
            }
        }
        Ok(())
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

    /// What is wrong with a value of age `age` (`None`: not known) against the rotation
    /// interval: too old, its age unknown, or (a warning) due within `warn_within`.
    pub(crate) fn age_problems(
        &self,
        age: Option<Duration>,
        warn_within: Duration,
    ) -> Vec<Problem> {
        let Some(max) = self.max_age else {
            return Vec::new();
        };
        match age {
            None => vec![Problem::AgeUnknown],
            Some(age) if age > max => vec![Problem::TooOld { age, max }],
            Some(age) if max - age <= warn_within => vec![Problem::DueSoon { due_in: max - age }],
            Some(_) => Vec::new(),
        }
    }

    /// Rules as stored in a document's `rules` field: their text forms joined by `;`.
    pub(crate) fn list_to_text(rules: &[Require]) -> String {
        rules
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(";")
    }

    /// The rules of a document's `rules` field (empty: none).
    pub(crate) fn list_from_text(text: &str) -> Result<Vec<Require>, Error> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        text.split(';').map(str::parse).collect()
    }
}

/// Whether `name` can be an environment variable name: letters, digits and `_`, not
/// starting with a digit (what aliases and `kmseal exec`'s names must be).
pub fn is_env_name(name: &str) -> bool {
    name.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl fmt::Display for Require {
    /// The requirement's text form, `PATH[:RULE,...]` (what [`FromStr`](std::str::FromStr)
    /// reads): `present` (plain values allowed), `min_len=N`, `min_entropy=N`,
    /// `max_age=DURATION`, `generate=SPEC`, `alias=NAME` (repeatable), `allow_placeholders`,
    /// `deny_placeholders`; defaults are left out.
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
        if let Some(age) = self.max_age {
            rules.push(format!("max_age={}", format_duration(age)));
        }
        if let Some(spec) = self.generate {
            rules.push(format!("generate={spec}"));
        }
        for a in &self.aliases {
            rules.push(format!("alias={a}"));
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

    /// `PATH[:RULE,...]`, for example `database.password:min_len=16,max_age=90d` or
    /// `jwt.secret:min_len=32,min_entropy=128,generate=base64:32`; a bare `PATH` is
    /// [`Require::secret`]. `PATH` may be a glob (`*password`).
    fn from_str(s: &str) -> Result<Require, crate::Error> {
        let bad = |what: &str| {
            crate::Error::Unsupported(format!(
                "a requirement is PATH[:RULE,...] with rules present, min_len=N, min_entropy=N, \
                 max_age=DURATION (90d), generate=SPEC (base64:32), alias=NAME, \
                 allow_placeholders, deny_placeholders ({what})"
            ))
        };
        // Paths never contain `:` (validate), so the first one ends the path; a generator
        // spec after it has its own.
        let (path, rules) = match s.split_once(':') {
            Some((path, rules)) => (path, Some(rules)),
            None => (s, None),
        };
        if path.is_empty() {
            return Err(bad("no path"));
        }
        let mut r = Require::secret(path);
        let mut seen: Vec<&str> = Vec::new();
        // Placeholder rules are applied after `present`, whatever their order.
        let mut placeholders = None;
        for rule in rules.into_iter().flat_map(|r| r.split(',')) {
            let name = rule.split_once('=').map_or(rule, |(n, _)| n);
            // One of each (aliases aside), so the text form has one spelling.
            if name != "alias" && seen.contains(&name) {
                return Err(bad("a rule given twice"));
            }
            seen.push(name);
            let number = |v: &str| {
                v.parse::<u32>()
                    .map_err(|_| bad("a rule's value is a number"))
            };
            match rule.split_once('=') {
                None if rule == "present" => {
                    r.secret = false;
                    r.placeholders_allowed = true;
                }
                None if rule == "allow_placeholders" => placeholders = Some(true),
                None if rule == "deny_placeholders" => placeholders = Some(false),
                Some(("min_len", v)) => r = r.min_len(number(v)? as usize),
                Some(("min_entropy", v)) => r = r.min_entropy(number(v)?),
                Some(("max_age", v)) => r = r.max_age(parse_duration(v)?),
                Some(("generate", v)) => r = r.generate(v.parse()?),
                Some(("alias", v)) => r = r.alias(v),
                _ => return Err(bad("an unknown rule")),
            }
        }
        if seen.contains(&"allow_placeholders") && seen.contains(&"deny_placeholders") {
            return Err(bad("contradicting placeholder rules"));
        }
        if let Some(allowed) = placeholders {
            r.placeholders_allowed = allowed;
        }
        r.validate()?;
        Ok(r)
    }
}

/// As its text form (`"jwt.secret:min_len=32,max_age=90d"`), so a list of requirements is
/// plain data in any serde format (a service's own config, a JSON policy file).
impl serde::Serialize for Require {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// From the text form, checked as [`FromStr`](std::str::FromStr) checks it.
impl<'de> serde::Deserialize<'de> for Require {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Require, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What a requirement found wrong with a value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// No value at the path (or, for a glob, no value matches it).
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
    /// Set longer ago than its rotation interval.
    TooOld {
        /// How long ago it was set.
        age: Duration,
        /// The rotation interval.
        max: Duration,
    },
    /// A rotation interval applies but the value's age is not known (sealed before format
    /// version 4 recorded times, or a store that gives no creation time).
    AgeUnknown,
    /// A warning, not a failure: the rotation interval ends within the warning window.
    DueSoon {
        /// How long until it is due.
        due_in: Duration,
    },
    /// An environment name (an alias, or `NAME_PREVIOUS`) that would replace a variable the
    /// document defines, or an alias whose glob matches more than one value: `kmseal exec`
    /// gives it to none of them.
    NameConflict {
        /// The name.
        name: String,
    },
}

/// A problem at a path (printed without the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The value's path (for a glob that matched nothing, the glob).
    pub path: String,
    /// What is wrong.
    pub problem: Problem,
}

impl Problem {
    /// A short stable name (`missing`, `not_encrypted`, `empty`, `too_short`, `placeholder`,
    /// `low_entropy`, `too_old`, `age_unknown`, `due_soon`, `name_conflict`), for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Problem::Missing => "missing",
            Problem::NotEncrypted => "not_encrypted",
            Problem::Empty => "empty",
            Problem::TooShort { .. } => "too_short",
            Problem::Placeholder => "placeholder",
            Problem::LowEntropy { .. } => "low_entropy",
            Problem::TooOld { .. } => "too_old",
            Problem::AgeUnknown => "age_unknown",
            Problem::DueSoon { .. } => "due_soon",
            Problem::NameConflict { .. } => "name_conflict",
        }
    }

    /// Whether this is only a warning (due soon), which fails no check.
    pub fn is_warning(&self) -> bool {
        matches!(self, Problem::DueSoon { .. })
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
            Problem::TooOld { age, max } => write!(
                f,
                "`{p}` was set {} ago, longer than its rotation interval of {}; rotate it",
                human(*age),
                human(*max)
            ),
            Problem::AgeUnknown => write!(
                f,
                "`{p}` has a rotation interval but no recorded age (set before kmseal recorded \
                 times, or its store gives none); rotate it to start the clock"
            ),
            Problem::DueSoon { due_in } => {
                write!(f, "`{p}` is due for rotation in {}", human(*due_in))
            }
            Problem::NameConflict { name } => write!(
                f,
                "`{p}`: the environment name {name} would replace a variable the document \
                 defines, or name more than one value; it is not set (rename the alias or the key)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_read_and_print_their_text_form() {
        for text in [
            "database.password",
            "database.password:min_len=16",
            "jwt.secret:min_len=32,min_entropy=128",
            "db.host:present",
            "db.host:present,deny_placeholders",
            "api.key:allow_placeholders",
            "*password:min_len=16,max_age=90d",
            "jwt.secret:min_len=32,max_age=2w,generate=base64:32,alias=JWT_KEY,alias=SECRET",
            "db.*:present,max_age=12h,alias=DB_VALUE",
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
            "a:min_len=3,min_len=4",
            "a:max_age=90",
            "a:max_age=0d",
            "a:generate=hex:4",
            "a:min_len=64,generate=hex:16",
            "a:alias=1X",
            "a:alias=",
            "a:allow_placeholders,deny_placeholders",
            "a:min_len=4294967296",
            "a;b:min_len=3",
        ] {
            assert!(bad.parse::<Require>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rotation_intervals_fail_when_overdue_or_unknown_and_warn_when_due() {
        let day = Duration::from_secs(86_400);
        let r = Require::secret("k").max_age(day * 90);
        let warn = day * 14;
        assert_eq!(r.age_problems(Some(day * 10), warn), []);
        assert_eq!(
            r.age_problems(Some(day * 80), warn),
            [Problem::DueSoon { due_in: day * 10 }]
        );
        assert_eq!(
            r.age_problems(Some(day * 91), warn),
            [Problem::TooOld {
                age: day * 91,
                max: day * 90
            }]
        );
        assert_eq!(r.age_problems(None, warn), [Problem::AgeUnknown]);
        assert_eq!(Require::secret("k").age_problems(None, warn), []);
        assert!(Problem::DueSoon { due_in: day }.is_warning());
        assert!(!Problem::AgeUnknown.is_warning());
    }

    #[test]
    fn requirements_are_serde_data_as_their_text_form() {
        let rules: Vec<Require> =
            serde_json::from_str(r#"["db.password:min_len=16,max_age=90d", "api.*:present"]"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            rules[0],
            Require::secret("db.password")
                .min_len(16)
                .max_age(Duration::from_secs(90 * 86_400))
        );
        assert_eq!(
            serde_json::to_string(&rules).unwrap_or_default(),
            r#"["db.password:min_len=16,max_age=90d","api.*:present"]"#
        );
        let bad = serde_json::from_str::<Vec<Require>>(r#"["a:bogus"]"#);
        assert!(bad.is_err());
    }

    #[test]
    fn rules_that_cannot_be_written_back_are_refused() {
        assert!(
            Require::secret("a")
                .min_len(5_000_000_000)
                .validate()
                .is_err()
        );
        assert!(
            Require::secret("a")
                .max_age(Duration::from_millis(500))
                .validate()
                .is_err()
        );
        assert!(
            Require::secret("a")
                .max_age(Duration::from_millis(1500))
                .validate()
                .is_err()
        );
        assert!(
            Require::secret("a")
                .max_age(Duration::from_secs(1))
                .validate()
                .is_ok()
        );
        // Order does not matter: `deny_placeholders` before `present` still denies.
        let a: Require = "h:deny_placeholders,present"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let b: Require = "h:present,deny_placeholders"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a, b);
        assert!(!a.placeholders_allowed);
    }

    #[test]
    fn globs_match_whole_display_paths() {
        let r = Require::secret("*password");
        assert!(r.is_glob());
        for p in ["password", "db.password", "db.replica_password"] {
            assert!(r.matches(p), "{p}");
        }
        assert!(!r.matches("db.password_hint"));
        let exact = Require::secret("db.password");
        assert!(exact.matches("db.password") && !exact.matches("x.db.password"));
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
