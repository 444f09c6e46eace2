//! `kmseal config …` (value-level config documents) and `kmseal exec`.

use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use kmseal::rotate::Rotator;
use kmseal::{Decryptor, Encryptor};
use kmseal_config::{Finding, Format, Require, Sealer};

use crate::{Failure, context, exit, keks, output, parse_pair, usage};

impl From<kmseal_config::Error> for Failure {
    fn from(e: kmseal_config::Error) -> Self {
        use kmseal_config::Error as E;
        let code = match &e {
            E::Kmseal(inner) => return Failure::from_kmseal(inner),
            E::Parse { .. } | E::Metadata(_) | E::Tampered(_) => exit::DECRYPT,
            E::Changed(_) | E::Declassify(_) => exit::REFUSED,
            E::Unsupported(_) | E::Rules(_) => exit::USAGE,
            E::References(_) => exit::KMS,
            _ => exit::OTHER,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

#[derive(Args)]
pub(crate) struct DocArgs {
    /// The config document (format from its name, or --format).
    file: PathBuf,
    /// yaml, json, toml or env (default: from the file name).
    #[arg(long)]
    format: Option<String>,
    /// Key URI (repeatable; default $KMSEAL_KEY, else the development key). New documents are
    /// wrapped under every key; sealed documents open with the first that can.
    #[arg(short, long = "key", env = "KMSEAL_KEY", value_delimiter = ',')]
    keys: Vec<String>,
}

impl DocArgs {
    /// The keys to open the document with: --key or $KMSEAL_KEY, else the keys of the rule
    /// for it in the repository's .kmseal.toml (else, later, the settings).
    fn keys(&self) -> Vec<String> {
        if !self.keys.is_empty() {
            return self.keys.clone();
        }
        crate::rules::rule_keys(&self.file)
    }
}

#[derive(Subcommand)]
pub(crate) enum ConfigCommand {
    /// Encrypt a document's values in place (or to -o); keys and comments stay readable.
    /// Already sealed documents keep their data key, so unchanged values keep their
    /// ciphertexts and diffs show only what changed.
    Encrypt {
        #[command(flatten)]
        doc: DocArgs,
        /// Write here instead of in place (`-` for stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Encrypt only values whose key matches (repeatable glob: `*_password`, `*secret*`).
        /// Default: every value, or the document's stored policy.
        #[arg(long = "encrypt")]
        encrypt: Vec<String>,
        /// Never encrypt values whose key matches (repeatable glob).
        #[arg(long = "plain")]
        plain: Vec<String>,
        /// Encryption context pair for new documents (repeatable).
        #[arg(short, long = "context", value_parser = parse_pair)]
        context: Vec<(String, String)>,
        /// Seal over values that differ from the document's last seal. Without it, a sealed
        /// document whose values were edited (in plaintext after `config decrypt
        /// --keep-metadata`, or by someone without the key) is refused, and the paths that
        /// differ are listed: review them (git diff) first.
        #[arg(long)]
        accept_changes: bool,
        /// Allow values that are encrypted now to be written back in plaintext (when
        /// --encrypt/--plain no longer select them). Without it such a seal is refused.
        #[arg(long)]
        declassify: bool,
    },
    /// Decrypt a document to -o FILE or stdout (verifying it first). FILE `-` is stdin; a
    /// sealed document's format is told by its content when its name does not say.
    Decrypt {
        #[command(flatten)]
        doc: DocArgs,
        /// Output file (mode 0600, written atomically); default stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Keep the metadata block, so that `config encrypt` after editing reuses the
        /// document's key (stable diffs).
        #[arg(long)]
        keep_metadata: bool,
        /// Overwrite the output; allow a terminal.
        #[arg(short, long)]
        force: bool,
    },
    /// Set one value of a sealed document in place. Prefer `-` (the value from stdin): a value
    /// on the command line shows in `ps` and in shell history.
    Set {
        #[command(flatten)]
        doc: DocArgs,
        /// Path: keys separated by `.`, list positions as `[N]`.
        path: String,
        /// The new value (a string), or `-` for stdin.
        #[arg(conflicts_with = "generate", required_unless_present = "generate")]
        value: Option<String>,
        /// Generate the value instead: ALPHABET[:LENGTH] (base64, base64url, hex: random
        /// bytes; alnum: characters); alone, the generator of the document's requirement for
        /// PATH, else base64:32. Never printed.
        #[arg(long, value_name = "SPEC", num_args = 0..=1, default_missing_value = "")]
        generate: Option<String>,
        /// Keep the old value as PATH's previous value for this long (24h, 7d): services
        /// that verify tokens or keys accept both meanwhile (`Secrets::previous`,
        /// NAME_PREVIOUS in `kmseal exec`). The first seal after it ends drops it.
        #[arg(long, value_name = "DURATION", value_parser = crate::rotate::parse_age)]
        keep_previous: Option<std::time::Duration>,
    },
    /// Add, replace or remove a requirement the document carries (under its metadata MAC, so
    /// nobody without the key can weaken it); with only FILE, list them. `config check`,
    /// `exec` and `Secrets::check_requirements` apply them.
    #[command(after_help = "Examples:
  kmseal config require config.yaml database.password --min-len 16 --max-age 90d
  kmseal config require config.yaml jwt.secret --min-len 32 --max-age 180d --generate base64:32 --alias JWT_KEY
  kmseal config require config.yaml '*_token' --min-entropy 128
  kmseal config require config.yaml old.key --remove
  kmseal config require config.yaml                     # list

PATH may be a glob (`*` matches any characters, dots included). A requirement on a
secret refuses template placeholders (changeme, <your-...>) unless --allow-placeholders.")]
    Require {
        #[command(flatten)]
        doc: DocArgs,
        /// The value's path, or a glob.
        path: Option<String>,
        /// Plain (not encrypted) values are allowed; placeholders are not checked.
        #[arg(long)]
        present: bool,
        /// At least N characters.
        #[arg(long, value_name = "N")]
        min_len: Option<usize>,
        /// At least N bits of estimated entropy.
        #[arg(long, value_name = "N")]
        min_entropy: Option<u32>,
        /// Rotation interval (90d, 2w, 24h): `config check` fails once a value is older.
        #[arg(long, value_name = "DURATION", value_parser = crate::rotate::parse_age)]
        max_age: Option<std::time::Duration>,
        /// What `config set --generate` draws for this path (base64:32, hex:32, alnum:24).
        #[arg(long, value_name = "SPEC")]
        generate: Option<String>,
        /// Another environment name `exec` gives the value under (repeatable).
        #[arg(long = "alias", value_name = "NAME")]
        aliases: Vec<String>,
        /// Accept values that look like a template's placeholder.
        #[arg(long)]
        allow_placeholders: bool,
        /// Remove the requirement on PATH instead.
        #[arg(long, conflicts_with_all = ["present", "min_len", "min_entropy", "max_age", "generate", "aliases", "allow_placeholders"])]
        remove: bool,
    },
    /// Check a document's values against its requirements (`config require`) and any given
    /// here, never printing a value: missing, empty, too short, a template's placeholder, too
    /// guessable, older than its rotation interval. Exit 5 when any fails; values due for
    /// rotation within --warn-within are warnings (exit 0).
    #[command(
        after_help = "Examples:\n  kmseal config check config.yaml                           # the document's own requirements\n  kmseal config check config.yaml --require database.password:min_len=16,max_age=90d \\\n      --require jwt.secret:min_len=32,min_entropy=128 --require database.host:present\n  kmseal config check --json --warn-within 30d config.yaml   # for CI or a cron job\n\nRULES: present (plain values allowed), min_len=N, min_entropy=N (estimated bits),\nmax_age=DURATION, generate=SPEC, alias=NAME, allow_placeholders, deny_placeholders. A bare\nPATH must be present, encrypted, non-empty and not a placeholder; PATH may be a glob.\nReferences (ref+URI) are resolved first; their age is their store version's."
    )]
    Check {
        #[command(flatten)]
        doc: DocArgs,
        /// PATH[:RULE,...] (repeatable), in addition to the document's own.
        #[arg(long = "require", value_name = "PATH[:RULES]")]
        require: Vec<String>,
        /// Warn about values due for rotation within this long (default 14d; 0s: never).
        #[arg(long, value_name = "DURATION", value_parser = crate::rotate::parse_age, default_value = "14d")]
        warn_within: std::time::Duration,
        /// FILE is not sealed (a ConfigMap of references).
        #[arg(long)]
        unsealed: bool,
        /// A JSON report on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Edit a sealed document in $VISUAL/$EDITOR: decrypted (verified first, shown without
    /// its metadata) into a private 0700 directory on a memory-backed filesystem
    /// ($XDG_RUNTIME_DIR or /dev/shm), re-sealed on save (unchanged values keep their
    /// ciphertexts); the decrypted file is wiped and removed whatever happens, and the
    /// document is left untouched when the editor fails or the result does not parse.
    Edit {
        #[command(flatten)]
        doc: DocArgs,
        /// Put the decrypted file here instead (it must be memory-backed too, unless
        /// --allow-disk-temp).
        #[arg(long, value_name = "DIR")]
        temp_dir: Option<PathBuf>,
        /// Accept a disk-backed directory for the decrypted file when no memory-backed one
        /// is available (the plaintext then reaches a disk, wiped but perhaps not erased).
        #[arg(long)]
        allow_disk_temp: bool,
    },
    /// For `git diff` (a textconv driver): FILE with its metadata block left out and each
    /// encrypted value shown as `<encrypted TAG>`, TAG a hash of its ciphertext (a changed
    /// value shows a new tag; nothing about the plaintext is shown). Needs no key.
    #[command(after_help = GIT_SETUP)]
    Textconv {
        /// The document (git passes a temporary copy).
        file: PathBuf,
        /// yaml, json, toml or env (default: from the content, else the name).
        #[arg(long)]
        format: Option<String>,
        /// Show the decrypted values instead (needs the key: --key, $KMSEAL_KEY or the
        /// settings). They then appear in git's output: only on a trusted terminal.
        #[arg(long)]
        show_values: bool,
        /// Key URI for --show-values (repeatable).
        #[arg(short, long = "key", env = "KMSEAL_KEY", value_delimiter = ',')]
        keys: Vec<String>,
    },
    /// A git merge driver: merges two sealed edits of a document three-way on the decrypted
    /// values, in memory, and seals the result with the document's key, so concurrent edits
    /// of different values never conflict. Overlapping edits are written with conflict
    /// markers around encrypted lines only (exit 1): resolve them, then `kmseal config
    /// encrypt --accept-changes FILE`. Keys: --key, $KMSEAL_KEY, the rule for the path in
    /// .kmseal.toml, else the settings.
    #[command(after_help = GIT_SETUP)]
    MergeDriver {
        /// %O: the common ancestor's version (empty when both sides added the file).
        base: PathBuf,
        /// %A: our version; the result is written here.
        ours: PathBuf,
        /// %B: their version.
        theirs: PathBuf,
        /// %P: the path in the repository (for the format and the rules); give it after
        /// `--`, so that a file named like an option stays a path.
        path: Option<PathBuf>,
        /// yaml, json, toml or env (default: from the content, else the path).
        #[arg(long)]
        format: Option<String>,
        /// Key URI (repeatable).
        #[arg(short, long = "key", env = "KMSEAL_KEY", value_delimiter = ',')]
        keys: Vec<String>,
    },
    /// Rewrap a sealed document's data key under new keys (values untouched).
    Rotate {
        /// The config document.
        file: PathBuf,
        /// yaml, json, toml or env (default: from the file name).
        #[arg(long)]
        format: Option<String>,
        /// Key URI that opens the document now (repeatable).
        #[arg(long = "from", required = true, value_delimiter = ',')]
        from: Vec<String>,
        /// Key URI to wrap under afterwards (repeatable).
        #[arg(long = "to", required = true, value_delimiter = ',')]
        to: Vec<String>,
    },
}

/// How to set up the git drivers (after the help of `textconv` and `merge-driver`).
const GIT_SETUP: &str = "Set up once per clone (the .gitattributes lines are committed):
  # .gitattributes
  *.enc.yaml diff=kmseal merge=kmseal
  # git config
  git config diff.kmseal.textconv 'kmseal config textconv'
  git config merge.kmseal.driver 'kmseal config merge-driver %O %A %B -- %P'";

/// The format of `file` (whose content is `text`): `--format` if given; else, for a sealed
/// document, the format its metadata block parses in (so `app.yaml.enc`, `secrets.kmseal` or
/// stdin need no flag); else its name (`app.yaml.kmseal`, a whole-file message, goes by the
/// name inside).
pub(crate) fn format_of(
    file: &Path,
    explicit: &Option<String>,
    text: Option<&str>,
) -> Result<Format, Failure> {
    if let Some(f) = explicit {
        return Format::from_name(f).ok_or_else(|| {
            usage(format!(
                "unknown format `{f}`; expected yaml, json, toml or env"
            ))
        });
    }
    let clues = kmseal_config::FormatClues::of(file, text);
    if clues.disagree() && !crate::progress::quiet() {
        // Not an error (the MACs decide what is accepted), but worth knowing: a sealed
        // document of another format stands where the name promised this one.
        use std::io::Write;
        if let Some(f) = clues.by_content {
            let _ = writeln!(
                io::stderr(),
                "kmseal: note: {} holds a sealed {} document, not what its name says",
                file.display(),
                format_name(f)
            );
        }
    }
    clues.format().ok_or_else(|| {
        usage(format!(
            "cannot tell the format of {}: it is not a sealed document and its name does not \
             say; pass --format yaml|json|toml|env",
            file.display()
        ))
    })
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Yaml => "YAML",
        Format::Json => "JSON",
        Format::Toml => "TOML",
        Format::Dotenv => ".env",
    }
}

/// The text of `file`; `-` reads standard input (for commands that write elsewhere).
fn read_input(file: &Path) -> Result<String, Failure> {
    if file == Path::new("-") {
        let mut text = String::new();
        io::Read::read_to_string(&mut io::stdin().lock(), &mut text)
            .map_err(|e| usage(format!("cannot read standard input: {e}")))?;
        return Ok(text);
    }
    read_text(file)
}

pub(crate) fn read_text(file: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(file).map_err(|e| usage(format!("cannot read {}: {e}", file.display())))
}

pub(crate) fn decryptor(uris: &[String]) -> Result<Decryptor, Failure> {
    Ok(Decryptor::with_keks(keks(uris, false)?)?)
}

/// The permission bits of `file` (0o644 when it cannot be read): what a rewrite keeps.
pub(crate) fn mode_of(file: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(file)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o644)
}

pub(crate) fn block<F: std::future::Future>(f: F) -> F::Output {
    kmseal::blocking::block_on(f)
}

pub(crate) fn run(cmd: ConfigCommand) -> Result<(), Failure> {
    match cmd {
        ConfigCommand::Encrypt {
            doc,
            output,
            encrypt,
            plain,
            context: pairs,
            accept_changes,
            declassify,
        } => {
            let text = read_text(&doc.file)?;
            let format = format_of(&doc.file, &doc.format, Some(&text))?;
            // Flags first, then the repository's rule for the file (.kmseal.toml).
            let plan = crate::rules::plan(
                &doc.file,
                &text,
                format,
                crate::rules::Flags {
                    keys: doc.keys,
                    encrypt,
                    plain,
                    context: pairs,
                },
            )?;
            let keks = keks(&plan.keys, true)?;
            let enc =
                Encryptor::with_keks(keks.iter().cloned())?.with_context(context(plan.context)?);
            let dec = Decryptor::with_keks(keks)?;
            let mut sealer = Sealer::new(enc, dec)
                .accept_changes(accept_changes)
                .declassify(declassify);
            if let Some(policy) = plan.policy {
                sealer = sealer.policy(policy);
            }
            if let Some(rules) = plan.requirements {
                sealer = sealer.rules(rules);
            }
            let sealed = block(sealer.seal(&text, format))?;
            let target = output.unwrap_or_else(|| doc.file.clone());
            let in_place = target == doc.file;
            output::write_atomically(Some(&target), in_place, mode_of(&doc.file), |out| {
                out.write_all(sealed.as_bytes())?;
                Ok(())
            })
        }
        ConfigCommand::Decrypt {
            doc,
            output,
            keep_metadata,
            force,
        } => {
            let text = zeroize::Zeroizing::new(read_input(&doc.file)?);
            let format = format_of(&doc.file, &doc.format, Some(&text))?;
            if output.is_none() && io::stdout().is_terminal() && !force {
                return Err(usage(
                    "refusing to write decrypted values to a terminal; pipe it, use -o FILE, or pass --force",
                ));
            }
            let dec = decryptor(&doc.keys())?;
            // The decrypted document is wiped once written.
            let plain = zeroize::Zeroizing::new(block(kmseal_config::decrypt(
                &text,
                format,
                &dec,
                keep_metadata,
            ))?);
            output::write_atomically(output.as_deref(), force, 0o600, |out| {
                out.write_all(plain.as_bytes())?;
                Ok(())
            })
        }
        ConfigCommand::Set {
            doc,
            path,
            value,
            generate,
            keep_previous,
        } => {
            let text = read_text(&doc.file)?;
            let format = format_of(&doc.file, &doc.format, Some(&text))?;
            let value = match (value, generate) {
                // Drawn straight into locked memory; never printed.
                (_, Some(spec)) => {
                    let spec = if spec.is_empty() {
                        stored_generator(&text, format, &path)?
                    } else {
                        spec
                    };
                    kmseal::SecretString::try_from_bytes(crate::secret::generated(&spec)?)?
                }
                // Into locked memory through a locked buffer (a growing String would leave
                // copies of the value behind), one trailing newline dropped.
                (Some(v), None) if v == "-" => kmseal::SecretString::try_from_bytes(
                    crate::secret::read_value(io::stdin().lock())?,
                )?,
                (Some(v), None) => {
                    if !crate::progress::quiet() {
                        use std::io::Write;
                        let _ = writeln!(
                            io::stderr(),
                            "kmseal: warning: a value on the command line is visible to other \
                             users (ps, /proc/PID/cmdline) and lands in shell history; pass `-` \
                             and give it on stdin, or use --generate"
                        );
                    }
                    kmseal::SecretString::copy_from_str(&v)?
                }
                (None, None) => return Err(usage("give a value, `-` for stdin, or --generate")),
            };
            let dec = decryptor(&doc.keys())?;
            // Sealed documents keep their key: the encryptor is never used.
            let keks = keks(&doc.keys(), false)?;
            let first = keks
                .into_iter()
                .next()
                .ok_or_else(|| usage("no key given"))?;
            let mut sealer = Sealer::new(Encryptor::new(first), dec);
            if let Some(grace) = keep_previous {
                sealer = sealer.keep_previous(grace);
            }
            let out = block(sealer.set(&text, format, &path, value.expose_secret()))?;
            output::write_atomically(Some(&doc.file), true, mode_of(&doc.file), |w| {
                w.write_all(out.as_bytes())?;
                Ok(())
            })
        }
        ConfigCommand::Require {
            doc,
            path,
            present,
            min_len,
            min_entropy,
            max_age,
            generate,
            aliases,
            allow_placeholders,
            remove,
        } => {
            let text = read_text(&doc.file)?;
            let format = format_of(&doc.file, &doc.format, Some(&text))?;
            if !kmseal_config::is_sealed(&text, format)? {
                return Err(usage(format!(
                    "{} is not sealed; seal it first (kmseal config encrypt), then add requirements",
                    doc.file.display()
                )));
            }
            let dec = decryptor(&doc.keys())?;
            let Some(path) = path else {
                // Listing: from the verified document only.
                let secrets = block(kmseal_config::open(&text, format, &dec))?;
                use std::io::Write;
                let mut out = io::stdout().lock();
                for r in secrets.requirements() {
                    writeln!(out, "{r}")?;
                }
                if secrets.requirements().is_empty() && !crate::progress::quiet() {
                    let _ = writeln!(
                        io::stderr(),
                        "kmseal: {} carries no requirements",
                        doc.file.display()
                    );
                }
                return Ok(());
            };
            let mut rule = if present {
                Require::present(path.as_str())
            } else {
                Require::secret(path.as_str())
            };
            if let Some(n) = min_len {
                rule = rule.min_len(n);
            }
            if let Some(bits) = min_entropy {
                rule = rule.min_entropy(bits);
            }
            if let Some(age) = max_age {
                rule = rule.max_age(age);
            }
            if let Some(spec) = generate {
                rule = rule.generate(
                    spec.parse()
                        .map_err(|e: kmseal::Error| usage(e.to_string()))?,
                );
            }
            for a in aliases {
                rule = rule.alias(a);
            }
            if allow_placeholders {
                rule = rule.allow_placeholders();
            }
            rule.validate()?;
            // The stored rules as written; the seal below verifies them (metadata MAC) before
            // anything is written.
            let current = kmseal_config::inspect(&text, format)?.rules;
            let before = current.len();
            let mut rules: Vec<Require> =
                current.into_iter().filter(|r| r.path() != path).collect();
            if remove {
                if rules.len() == before {
                    return Err(usage(format!(
                        "{} has no requirement on `{}`",
                        doc.file.display(),
                        kmseal::escape_untrusted(&path)
                    )));
                }
            } else {
                rules.push(rule);
            }
            let first = keks(&doc.keys(), false)?
                .into_iter()
                .next()
                .ok_or_else(|| usage("no key given"))?;
            let sealer = Sealer::new(Encryptor::new(first), dec).rules(rules);
            let out = block(sealer.seal(&text, format))?;
            output::write_atomically(Some(&doc.file), true, mode_of(&doc.file), |w| {
                w.write_all(out.as_bytes())?;
                Ok(())
            })
        }
        ConfigCommand::Check {
            doc,
            require,
            warn_within,
            unsealed,
            json,
        } => {
            let flags = parse_requirements(&require)?;
            let mut secrets = read_document(&doc.file, &doc.format, &doc.keys(), unsealed)?;
            secrets.add_requirements(flags);
            if secrets.requirements().is_empty() {
                return Err(usage(format!(
                    "{} carries no requirements and none were given; add some with `kmseal \
                     config require` or --require",
                    doc.file.display()
                )));
            }
            let resolver = kmseal_keys::resolver();
            block(secrets.resolve_references(&resolver))?;
            if secrets
                .requirements()
                .iter()
                .any(|r| r.rotation_interval().is_some())
            {
                block(secrets.resolve_version_times(&resolver))?;
            }
            let rules = secrets.requirements();
            let findings = secrets.findings_at(rules, std::time::SystemTime::now(), warn_within);
            report_findings(&findings, rules.len(), json)
        }
        ConfigCommand::Edit {
            doc,
            temp_dir,
            allow_disk_temp,
        } => crate::edit::edit(&crate::edit::EditArgs {
            file: &doc.file,
            format: &doc.format,
            keys: &doc.keys(),
            temp_dir: temp_dir.as_deref(),
            allow_disk_temp,
        }),
        ConfigCommand::Textconv {
            file,
            format,
            show_values,
            keys,
        } => crate::git::textconv(&file, &format, show_values, &keys),
        ConfigCommand::MergeDriver {
            base,
            ours,
            theirs,
            path,
            format,
            keys,
        } => crate::git::merge_driver(&base, &ours, &theirs, path.as_deref(), &format, &keys),
        ConfigCommand::Rotate {
            file,
            format,
            from,
            to,
        } => {
            let text = read_text(&file)?;
            let format = format_of(&file, &format, Some(&text))?;
            let rot = Rotator::rewrap(decryptor(&from)?, keks(&to, false)?);
            let out = block(kmseal_config::rewrap(&text, format, &rot))?;
            output::write_atomically(Some(&file), true, mode_of(&file), |w| {
                w.write_all(out.as_bytes())?;
                Ok(())
            })
        }
    }
}

/// Opens a document for `exec`: a whole-file message, a sealed document, or (with
/// `unsealed`) a document that is not sealed.
/// `--require PATH[:RULES]` flags.
pub(crate) fn parse_requirements(flags: &[String]) -> Result<Vec<Require>, Failure> {
    flags
        .iter()
        .map(|r| r.parse::<Require>().map_err(|e| usage(e.to_string())))
        .collect()
}

/// Prints the findings (text on stderr, or a JSON report on stdout), never a value; exit 5
/// when any is more than a warning.
pub(crate) fn report_findings(
    findings: &[Finding],
    rules: usize,
    json: bool,
) -> Result<(), Failure> {
    use std::io::Write;
    let (warnings, failures): (Vec<&Finding>, Vec<&Finding>) =
        findings.iter().partition(|f| f.problem.is_warning());
    if json {
        let items: Vec<String> = findings
            .iter()
            .map(|f| {
                format!(
                    r#"{{"path":{},"problem":"{}","warning":{},"message":{}}}"#,
                    crate::rotate::json_string(&f.path),
                    f.problem.name(),
                    f.problem.is_warning(),
                    crate::rotate::json_string(&f.to_string())
                )
            })
            .collect();
        let mut out = io::stdout().lock();
        writeln!(
            out,
            r#"{{"ok":{},"requirements":{rules},"findings":[{}]}}"#,
            failures.is_empty(),
            items.join(",")
        )?;
    } else if !crate::progress::quiet() {
        for w in &warnings {
            let _ = writeln!(io::stderr(), "kmseal: warning: {w}");
        }
    }
    if failures.is_empty() {
        if !json && !crate::progress::quiet() {
            let _ = writeln!(io::stderr(), "kmseal: all {rules} requirements met");
        }
        return Ok(());
    }
    Err(Failure {
        code: exit::REQUIREMENTS,
        message: format!(
            "requirements not met: {}",
            failures
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    })
}

/// The generator the document's requirements give `path` (the first that matches and has
/// one), else the default `base64:32`. Read without the key: the seal that follows verifies
/// the rules (metadata MAC) before anything is written.
fn stored_generator(text: &str, format: Format, path: &str) -> Result<String, Failure> {
    let rules = kmseal_config::inspect(text, format)?.rules;
    Ok(rules
        .iter()
        .filter(|r| r.matches(path))
        .find_map(Require::generator)
        .unwrap_or_default()
        .to_string())
}

pub(crate) fn read_document(
    file: &Path,
    format: &Option<String>,
    keys: &[String],
    unsealed: bool,
) -> Result<kmseal_config::Secrets, Failure> {
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(file).map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?,
    );
    open_document(file, &bytes, format, keys, unsealed)
}

/// [`read_document`] on bytes already read from `file` (so that everything taken from one
/// document comes from one version of it).
pub(crate) fn open_document(
    file: &Path,
    bytes: &[u8],
    format: &Option<String>,
    keys: &[String],
    unsealed: bool,
) -> Result<kmseal_config::Secrets, Failure> {
    let text = std::str::from_utf8(bytes).ok();
    let format = format_of(file, format, text)?;
    let doc = match kmseal_config::Document::classify(bytes, format) {
        Err(kmseal_config::Error::Unsupported(_)) => {
            return Err(usage(format!("{} is not text", file.display())));
        }
        other => other?,
    };
    if let kmseal_config::Document::Unsealed(_) = doc
        && !unsealed
    {
        return Err(Failure {
            code: exit::DECRYPT,
            message: format!(
                "{} is not sealed (no kmseal metadata); if it holds only plain values and \
                 references (ref+URI), pass --unsealed",
                file.display()
            ),
        });
    }
    let dec = if doc.needs_key() {
        Some(decryptor(keys)?)
    } else {
        None
    };
    Ok(block(doc.open(format, dec.as_ref()))?)
}
