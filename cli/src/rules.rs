//! How `kmseal config encrypt` applies a repository's rules (`.kmseal.toml`, see
//! [`kmseal_config::repo`]): flags win over the matching rule, the rule wins over nothing,
//! and a file with neither is refused with the rule to add.

use std::io::{self, Write};
use std::path::Path;

use kmseal_config::repo::{RULES_FILE, RepoRules, Rule, RuleProblem};
use kmseal_config::{Format, Policy, Require};

use crate::{Failure, usage};

/// What to seal a document with, after the flags and the rule are combined.
pub(crate) struct Plan {
    pub(crate) keys: Vec<String>,
    pub(crate) policy: Option<Policy>,
    pub(crate) context: Vec<(String, String)>,
    /// The requirements to store (the document's own with the rule's merged over them), when
    /// a rule has any.
    pub(crate) requirements: Option<Vec<Require>>,
}

/// What the command line said.
pub(crate) struct Flags {
    pub(crate) keys: Vec<String>,
    pub(crate) encrypt: Vec<String>,
    pub(crate) plain: Vec<String>,
    pub(crate) context: Vec<(String, String)>,
}

/// The plan for sealing `file` (whose current text is `text`).
pub(crate) fn plan(file: &Path, text: &str, format: Format, flags: Flags) -> Result<Plan, Failure> {
    let rules = if file == Path::new("-") {
        None
    } else {
        RepoRules::find(file).map_err(|e| usage(e.to_string()))?
    };
    let rule = rules.as_ref().and_then(|r| r.rule_for(file));
    let selecting = !flags.encrypt.is_empty() || !flags.plain.is_empty();
    let Some(rule) = rule else {
        let configured = !crate::settings::get()?.keys.is_empty();
        if flags.keys.is_empty() && !selecting && !configured {
            return Err(no_rule(file, rules.as_ref()));
        }
        return Ok(Plan {
            keys: flags.keys,
            policy: flag_policy(flags.encrypt, flags.plain)?,
            context: flags.context,
            requirements: None,
        });
    };
    // A new document is wrapped under the rule's keys with the rule's context: other ones
    // on the command line (or in $KMSEAL_KEY) would hand it to keys the repository did not
    // choose, and `kmseal scan` could not tell. A sealed document keeps its data key, so
    // other keys there only open it.
    let sealed = !text.is_empty() && kmseal_config::is_sealed(text, format)?;
    let other_keys = !flags.keys.is_empty() && flags.keys != rule.keys && !rule.keys.is_empty();
    let other_context = !flags.context.is_empty()
        && !rule.context.is_empty()
        && sorted(&flags.context) != sorted(&rule.context);
    if !sealed && (other_keys || other_context) {
        return Err(usage(format!(
            "{} is covered by the rule `{}` in {RULES_FILE}, which names its keys and context; \
             --key/$KMSEAL_KEY or --context differ from them. Seal it under the rule's (drop \
             the flags, unset KMSEAL_KEY), or change the rule in review",
            file.display(),
            rule.path
        )));
    }
    if other_keys {
        note(&format!(
            "{} matches the rule `{}` in {RULES_FILE}; opening it with the keys given by \
             --key/KMSEAL_KEY",
            file.display(),
            rule.path
        ));
    }
    let requirements = if rule.require.is_empty() {
        None
    } else {
        let existing = if kmseal_config::is_sealed(text, format)? {
            kmseal_config::inspect(text, format)?.rules
        } else {
            Vec::new()
        };
        Some(rule.merge_requirements(&existing))
    };
    Ok(Plan {
        keys: if flags.keys.is_empty() {
            rule.keys.clone()
        } else {
            flags.keys
        },
        policy: if selecting {
            flag_policy(flags.encrypt, flags.plain)?
        } else {
            rule.policy.clone()
        },
        context: if flags.context.is_empty() {
            rule.context.clone()
        } else {
            flags.context
        },
        requirements,
    })
}

fn sorted(pairs: &[(String, String)]) -> Vec<(String, String)> {
    let mut v = pairs.to_vec();
    v.sort();
    v
}

fn flag_policy(encrypt: Vec<String>, plain: Vec<String>) -> Result<Option<Policy>, Failure> {
    if encrypt.is_empty() && plain.is_empty() {
        return Ok(None);
    }
    let base = if encrypt.is_empty() {
        Policy::default()
    } else {
        Policy::only(encrypt)?
    };
    Ok(Some(base.except(plain)?))
}

/// The keys of the rule for `file` (none when no rule, or a rules file that does not parse:
/// the caller then falls back to the settings, and `config encrypt` reports the mistake).
pub(crate) fn rule_keys(file: &Path) -> Vec<String> {
    if file == Path::new("-") {
        return Vec::new();
    }
    RepoRules::find(file)
        .ok()
        .flatten()
        .and_then(|r| r.rule_for(file).map(|rule| rule.keys.clone()))
        .unwrap_or_default()
}

/// The refusal for a file no rule covers and no flag describes, with the rule to add.
fn no_rule(file: &Path, rules: Option<&RepoRules>) -> Failure {
    let name = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let (where_, glob) = match rules {
        Some(r) => {
            let rel = std::path::absolute(file)
                .ok()
                .and_then(|a| {
                    a.strip_prefix(std::path::absolute(r.dir()).ok()?)
                        .ok()
                        .map(|p| p.display().to_string())
                })
                .unwrap_or(name);
            (
                format!(
                    "no rule in {} matches it",
                    r.dir().join(RULES_FILE).display()
                ),
                rel,
            )
        }
        None => (
            format!("its git repository has no {RULES_FILE} at its top (or it is in none)"),
            name,
        ),
    };
    usage(format!(
        "{}: {where_}, and no --key, --encrypt or --plain was given. Say how to seal it in \
         {RULES_FILE} at the repository root:\n\n[[rules]]\npath = \"{}\"\nkeys = [\"KEY-URI\"]   \
         # e.g. aws-kms://arn:..., or local:///path/to/dev.key (kmseal keygen)\n\nor pass --key \
         KEY-URI",
        file.display(),
        glob.replace('"', "\\\"")
    ))
}

fn note(message: &str) {
    if !crate::progress::quiet() {
        let _ = writeln!(io::stderr(), "kmseal: note: {message}");
    }
}

/// The repository's rules for a scan: the `.kmseal.toml` at the top of the work tree, or
/// (for `kmseal scan --staged`) its staged copy, so that a commit is judged by the rules it
/// commits. Outside a git work tree there are none.
pub(crate) struct Finder {
    rules: Option<RepoRules>,
}

impl Finder {
    pub(crate) fn load(root: Option<&Path>, from_index: bool) -> Result<Finder, Failure> {
        let Some(root) = root else {
            return Ok(Finder { rules: None });
        };
        let text = if from_index {
            let blob = crate::scan::index_blob(root, RULES_FILE)?;
            if blob
                .as_ref()
                .is_some_and(|b| b.len() as u64 > kmseal_config::repo::MAX_RULES_FILE)
            {
                return Err(usage(format!(
                    "the staged {RULES_FILE} is larger than 1 MiB"
                )));
            }
            blob.map(String::from_utf8)
                .transpose()
                .map_err(|_| usage(format!("the staged {RULES_FILE} is not UTF-8")))?
        } else {
            match kmseal_config::repo::read_rules_file(&root.join(RULES_FILE)) {
                Ok(t) => Some(t),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(usage(format!(
                        "cannot read {}: {e}",
                        root.join(RULES_FILE).display()
                    )));
                }
            }
        };
        let rules = text
            .map(|t| {
                RepoRules::parse(&t, root).map_err(|e| usage(format!("{}: {e}", root.display())))
            })
            .transpose()?;
        Ok(Finder { rules })
    }

    /// The rule for the file at the absolute path `file`.
    pub(crate) fn rule_for(&self, file: &Path) -> Option<&Rule> {
        self.rules.as_ref().and_then(|r| r.rule_for(file))
    }
}

/// What a scan reports about a file that `rule` covers, as (line, rule id, message).
pub(crate) fn check(name: &str, text: &str, rule: &Rule) -> Vec<(usize, &'static str, String)> {
    let Some(format) = kmseal_config::FormatClues::of(Path::new(name), Some(text)).format() else {
        return vec![(
            1,
            "unsealed-file",
            format!(
                "the rule `{}` in {RULES_FILE} covers this file, but it is not a YAML, JSON, TOML \
                 or .env document (encrypt it whole with `kmseal encrypt`, or narrow the rule)",
                rule.path
            ),
        )];
    };
    rule.check(text, format)
        .into_iter()
        .map(|p| match p {
            RuleProblem::NotSealed => (
                1,
                "unsealed-file",
                format!(
                    "the rule `{}` in {RULES_FILE} says this file is sealed, and it is not; run \
                     `kmseal config encrypt {name}`",
                    rule.path
                ),
            ),
            RuleProblem::Malformed(why) => (
                1,
                "malformed-sealed-file",
                format!("{why}; restore it from history (git log -p) or seal it again"),
            ),
            RuleProblem::NotEncrypted { path, line } => (
                line.unwrap_or(1),
                "unencrypted-value",
                format!(
                    "`{path}` is in the clear, and the rule `{}` in {RULES_FILE} says to encrypt \
                     it; run `kmseal config encrypt {name}`",
                    rule.path
                ),
            ),
            RuleProblem::MissingRequirement(r) => (
                1,
                "missing-requirement",
                format!(
                    "the document does not carry the requirement `{r}` that the rule `{}` in \
                     {RULES_FILE} sets; run `kmseal config encrypt {name}`",
                    rule.path
                ),
            ),
            RuleProblem::WrongContext => (
                1,
                "wrong-context",
                format!(
                    "its encryption context is not the one the rule `{}` in {RULES_FILE} sets; \
                     seal it again from the plaintext under the rule",
                    rule.path
                ),
            ),
            RuleProblem::WrongKeyCount { expected, found } => (
                1,
                "wrong-keys",
                format!(
                    "its data key is wrapped under {found} keys, and the rule `{}` in \
                     {RULES_FILE} names {expected}; rotate it to the rule's keys (kmseal config \
                     rotate)",
                    rule.path
                ),
            ),
            other => (1, "malformed-sealed-file", other.to_string()),
        })
        .collect()
}
