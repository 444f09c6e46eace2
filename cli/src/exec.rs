//! `kmseal exec`: read a document and references into memory, check the requirements,
//! and run a command with the values in its environment (and in memory files).

use std::path::PathBuf;

use clap::Args;

use kmseal_config::is_env_name;

use crate::config::{block, parse_requirements, report_findings};
use crate::{Failure, exit, usage};

#[derive(Args)]
pub(crate) struct ExecArgs {
    /// A sealed config document, or a whole-file kmseal message of one (`app.env.kmseal`).
    /// Values written `ref+URI` are resolved from their secret stores.
    file: Option<PathBuf>,
    /// yaml, json, toml or env (default: from the file name, without `.kmseal`).
    #[arg(long)]
    format: Option<String>,
    /// Key URI (repeatable; default $KMSEAL_KEY, else the development key).
    #[arg(short, long = "key", env = "KMSEAL_KEY", value_delimiter = ',')]
    keys: Vec<String>,
    /// NAME=REFERENCE (repeatable): set NAME in the command's environment to the secret the
    /// reference names (aws-sm://…, vault-kv://…#field, env://…, file://…).
    /// (Parsed in `exec`, never by clap: a malformed value may be a secret pasted in the wrong
    /// place, and clap's errors repeat values.)
    #[arg(long = "env", value_name = "NAME=REFERENCE")]
    env: Vec<String>,
    /// FILE is not sealed (a ConfigMap of references): its values and references are taken
    /// as they are, as trustworthy as the file itself. Without this, an unsealed file is
    /// refused, so a sealed one cannot be swapped for one that is not.
    #[arg(long)]
    unsealed: bool,
    /// Pass the command's stdout and stderr through kmseal, replacing every secret it was
    /// given (and its base64, URL- and JSON-encoded forms) with `[REDACTED:NAME]`. kmseal
    /// stays the parent: it forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2,
    /// and exits with the command's status (128+N for signal N).
    #[arg(long)]
    redact: bool,
    /// PATH[:RULE,...] (repeatable; see `kmseal config check`), checked with the document's
    /// own requirements after every value and reference is read; the command is not started
    /// when one fails (exit 5).
    #[arg(long = "require", value_name = "PATH[:RULES]")]
    require: Vec<String>,
    /// Also give each reference's previous version from its store as NAME_PREVIOUS
    /// (Secrets Manager's AWSPREVIOUS, the prior Vault KV, Secret Manager or Key Vault
    /// version), for services that accept both during a rotation. Two more store calls per
    /// reference.
    #[arg(long)]
    store_previous: bool,
    /// NAME=PATH or NAME=REFERENCE (repeatable): hand the command the value at the
    /// document's PATH (or the secret REFERENCE names) as a file that never touches a disk:
    /// an anonymous memory file, sealed against writes, at the path $NAME holds
    /// (/proc/self/fd/N). For programs that read a key or certificate from a file.
    #[arg(long = "file", value_name = "NAME=PATH|REFERENCE")]
    files: Vec<String>,
    /// NAME: hand the command the whole document, decrypted and with its references
    /// resolved, in its own format, as a memory file at $NAME (as --file).
    #[arg(long, value_name = "NAME")]
    template: Option<String>,
    /// Re-read the document and re-resolve every reference this often (5m, 1h), and on
    /// SIGHUP to kmseal; when a value changed, act as --on-change says. A failed refresh keeps
    /// the command running on the last good values (and says so on stderr) for up to
    /// --max-stale.
    #[arg(long, value_name = "DURATION", value_parser = crate::rotate::parse_age)]
    refresh: Option<std::time::Duration>,
    /// What a changed value does: `restart` the command (SIGTERM, up to --grace, then
    /// SIGKILL; then start it with the new values), `signal:NAME` (send it HUP, USR1, ...;
    /// it keeps its environment), or `exit` (stop it the same way and exit 8, so the
    /// orchestrator restarts the container).
    #[arg(long, value_name = "ACTION", default_value = "restart", value_parser = parse_on_change)]
    on_change: crate::supervise::OnChange,
    /// How long a stopping command gets between SIGTERM and SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::rotate::parse_age)]
    grace: std::time::Duration,
    /// How long refreshes may fail before kmseal stops the command and exits 4.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = crate::rotate::parse_age)]
    max_stale: std::time::Duration,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn parse_on_change(s: &str) -> Result<crate::supervise::OnChange, String> {
    s.parse()
}

/// Decrypts in memory, resolves references, and replaces this process with the command, its
/// environment extended with every value (`db.password` → `DB_PASSWORD`; .env names as they
/// are) and every --env. Nothing starts unless every value and reference was read.
/// Runs the command with the document's values and references in its environment (and in
/// memory files). Without --redact or --refresh, and unless kmseal is PID 1, kmseal replaces
/// itself with the command; otherwise it stays as the command's parent (`supervise`).
pub(crate) fn exec(args: ExecArgs) -> Result<(), Failure> {
    use std::os::unix::process::CommandExt;
    // Everything a typo can break is refused before anything is read.
    let plan = Plan::parse(&args)?;
    let pid1 = rustix::process::getpid().is_init();
    let supervised = args.redact || args.refresh.is_some() || pid1;
    // Signals are caught from here on when kmseal will stay the parent: one that arrives
    // while the stores are read is queued, not lost.
    let listener = supervised
        .then(crate::supervise::Listener::start)
        .transpose()?;
    let resolver = kmseal_keys::resolver();
    let prepared = prepare(&args, &plan, &resolver)?;
    if let Some(listener) = listener {
        let options = crate::supervise::Options {
            refresh: args.refresh,
            on_change: args.on_change,
            grace: args.grace,
            max_stale: args.max_stale,
        };
        let context = std::sync::Arc::new((args, plan, resolver));
        let reload = std::sync::Arc::new(move || {
            let (args, plan, resolver) = &*context;
            // A refresh reads everything again, from the stores, not from the cache.
            resolver.clear();
            prepare(args, plan, resolver)
        });
        return crate::supervise::run(listener, prepared, &options, reload);
    }
    let err = prepared.command().exec();
    Err(Failure {
        code: exit::OTHER,
        message: format!("cannot run `{}`: {err}", args.command[0]),
    })
}

/// What the flags ask for, checked before anything is read.
struct Plan {
    rules: Vec<kmseal_config::Require>,
    extra: Vec<(String, kmseal::store::SecretRef)>,
    files: Vec<(String, FileSource)>,
}

impl Plan {
    fn parse(args: &ExecArgs) -> Result<Plan, Failure> {
        let rules = parse_requirements(&args.require)?;
        let mut extra = Vec::with_capacity(args.env.len());
        for (i, pair) in args.env.iter().enumerate() {
            // Errors here never repeat the argument: it may be a secret given where a
            // reference belongs.
            let which = i + 1;
            let (name, reference) = pair.split_once('=').ok_or_else(|| {
                usage(format!(
                    "--env argument {which} is not NAME=REFERENCE (not shown, in case it is a value)"
                ))
            })?;
            if !is_env_name(name) {
                return Err(usage(format!(
                    "--env argument {which}: a variable name is letters, digits and `_`"
                )));
            }
            let reference: kmseal::store::SecretRef = reference.parse()?;
            extra.push((name.to_owned(), reference));
        }
        let mut files = Vec::with_capacity(args.files.len());
        for (i, arg) in args.files.iter().enumerate() {
            let (name, source) = crate::memfile::parse_file_arg(arg, i + 1)?;
            let source = if source.contains("://") {
                FileSource::Reference(source.parse()?)
            } else {
                FileSource::Path(source)
            };
            files.push((name, source));
        }
        if let Some(name) = &args.template {
            if !is_env_name(name) {
                return Err(usage(
                    "--template NAME: a variable name is letters, digits and `_`",
                ));
            }
            if args.file.is_none() {
                return Err(usage("--template needs a document (FILE)"));
            }
        }
        if args.command.is_empty() {
            return Err(usage("no command given after --"));
        }
        if matches!(args.on_change, crate::supervise::OnChange::Signal(_))
            && (!args.files.is_empty() || args.template.is_some() || args.redact)
        {
            // The command would be told to re-read while its memory files and kmseal's
            // redactor still hold the old values.
            return Err(usage(
                "--on-change signal:NAME cannot hand new values to --file or --template (sealed \
                 memory files) or to --redact; use --on-change restart or exit",
            ));
        }
        Ok(Plan {
            rules,
            extra,
            files,
        })
    }
}

/// A command ready to start: its environment and memory files, the redactor for its output
/// (with --redact), and a fingerprint of everything it is given (to tell whether a refresh
/// changed anything, without keeping the values).
pub(crate) struct Prepared {
    program: String,
    args: Vec<String>,
    /// The command's environment, in locked memory until the moment it starts: a refresh
    /// that changed nothing leaves no copy behind (a `Command` keeps its environment in
    /// ordinary strings, freed unwiped, so one is built only to start).
    vars: Vec<(String, kmseal::SecretString)>,
    /// Open until the command replaces this process, or exits.
    pub(crate) memfiles: Vec<crate::memfile::MemFile>,
    pub(crate) redactor: Option<kmseal::redact::Redactor>,
    pub(crate) fingerprint: [u8; 32],
}

impl Prepared {
    /// The command to start, its environment set (the copies `Command` makes of it are
    /// ordinary memory: build it only to start it).
    pub(crate) fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(&self.args);
        for (name, value) in &self.vars {
            cmd.env(name, value.expose_secret());
        }
        cmd
    }
}

/// Reads the document and every reference, checks the requirements, and builds the command.
fn prepare(
    args: &ExecArgs,
    plan: &Plan,
    resolver: &kmseal::store::Resolver,
) -> Result<Prepared, Failure> {
    let (extra, files) = (&plan.extra, &plan.files);
    // Read once: the environment, the files and the template come from one version of it.
    let document = match &args.file {
        Some(file) => Some(zeroize::Zeroizing::new(
            std::fs::read(file)
                .map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?,
        )),
        None => None,
    };
    let mut secrets = match (&args.file, &document) {
        (Some(file), Some(bytes)) => {
            crate::config::open_document(file, bytes, &args.format, &args.keys, args.unsealed)?
        }
        _ => kmseal_config::Secrets::default(),
    };
    // Flags, files and document references are resolved together: one round of store
    // calls.
    let from_flags = async {
        let lookups = extra.iter().map(|(_, r)| resolver.resolve(r));
        let file_lookups = files.iter().filter_map(|(_, s)| match s {
            FileSource::Reference(r) => Some(resolver.resolve(r)),
            FileSource::Path(_) => None,
        });
        futures_util::future::join(
            futures_util::future::join_all(lookups),
            futures_util::future::join_all(file_lookups),
        )
        .await
    };
    let (from_doc, (from_flags, from_files)) = block(async {
        let doc = secrets.resolve_references(resolver);
        let flags = from_flags;
        futures_util::future::join(doc, flags).await
    });
    from_doc?;
    let mut env = Vec::with_capacity(extra.len());
    let mut versions = Vec::with_capacity(extra.len());
    let mut problems = Vec::new();
    for ((name, reference), got) in extra.iter().zip(from_flags) {
        match got {
            Ok(v) => {
                let version = v.version().clone();
                match kmseal::SecretString::try_from_bytes(v.into_value()) {
                    Ok(text) => {
                        env.push((name.clone(), text));
                        versions.push((name, reference, version));
                    }
                    Err(_) => problems.push(format!(
                        "--env {name}={reference}: the value is not UTF-8 text"
                    )),
                }
            }
            Err(e) => problems.push(format!("--env {name}: {e}")),
        }
    }
    if args.store_previous && problems.is_empty() {
        let from_flags = versions
            .iter()
            .map(|(_, reference, version)| resolver.previous_version(reference, version));
        let (from_doc, from_flags) = block(futures_util::future::join(
            secrets.resolve_previous_versions(resolver),
            futures_util::future::join_all(from_flags),
        ));
        from_doc?;
        for ((name, _, _), got) in versions.iter().zip(from_flags) {
            match got {
                Ok((_, Some(before))) => {
                    match kmseal::SecretString::try_from_bytes(before.into_value()) {
                        Ok(text) => env.push((format!("{name}_PREVIOUS"), text)),
                        Err(_) => problems.push(format!(
                            "--env {name}: the previous value is not UTF-8 text"
                        )),
                    }
                }
                Ok((_, None)) => {}
                Err(e) => problems.push(format!("--env {name}: previous version: {e}")),
            }
        }
    }
    if !problems.is_empty() {
        return Err(Failure {
            code: exit::KMS,
            message: format!(
                "secret references could not be resolved: {}",
                problems.join("; ")
            ),
        });
    }
    // The document's requirements and those given here; values given with --env count too,
    // under their variable names.
    secrets.add_requirements(plan.rules.iter().cloned());
    if secrets
        .requirements()
        .iter()
        .any(|r| r.rotation_interval().is_some())
    {
        block(secrets.resolve_version_times(resolver))?;
    }
    if !secrets.requirements().is_empty() {
        for (name, value) in &env {
            secrets.insert_secret(name, value.try_clone()?);
        }
        let findings = secrets.findings(secrets.requirements());
        if findings.iter().any(|f| !f.problem.is_warning()) {
            // Failures among them: this is an error (exit 5), and the command never starts.
            report_findings(&findings, secrets.requirements().len(), false)?;
        }
    }
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| usage("no command given after --"))?;
    let mut vars = Vec::new();
    let mut print = Fingerprint::new()?;
    for (name, value) in secrets.env_vars() {
        print.add(&name, value.as_bytes());
        vars.push((name, kmseal::SecretString::copy_from_str(value)?));
    }
    for (name, value) in &env {
        print.add(name, value.expose_secret().as_bytes());
        vars.push((name.clone(), value.try_clone()?));
    }
    // Memory files: open until the command replaces this process (or, with a supervisor,
    // until it exits); never on a disk.
    let mut memfiles = Vec::with_capacity(files.len() + 1);
    let mut file_secrets = Vec::new();
    let mut from_files = from_files.into_iter();
    for (name, source) in files {
        let content = match source {
            FileSource::Path(path) => match secrets.get(path) {
                Some(kmseal_config::Entry::Secret { value, .. }) => value.try_clone()?.into_bytes(),
                Some(kmseal_config::Entry::Plain { value, .. }) => {
                    kmseal::SecretBytes::from_slice(value.as_bytes())?
                }
                None => {
                    // Not repeated: it may be a value pasted where a path belongs.
                    return Err(usage(format!(
                        "--file {name}: that path is not in the document (not shown, in case it \
                         is a value)"
                    )));
                }
            },
            FileSource::Reference(reference) => match from_files.next() {
                Some(Ok(v)) => {
                    let value = v.into_value();
                    // Redacted like every other secret the command is given.
                    file_secrets.push((name.clone(), value.try_clone()?));
                    value
                }
                Some(Err(e)) => {
                    return Err(Failure {
                        code: exit::KMS,
                        message: format!("--file {name}={reference}: {e}"),
                    });
                }
                None => return Err(usage("internal: a --file reference was not resolved")),
            },
        };
        print.add(&format!("--file {name}"), content.expose_secret());
        let file = crate::memfile::MemFile::new(name, content.expose_secret())?;
        vars.push((
            name.clone(),
            kmseal::SecretString::copy_from_str(&file.path())?,
        ));
        memfiles.push(file);
    }
    if let (Some(name), Some(path), Some(bytes)) = (&args.template, &args.file, &document) {
        let rendered = render_document(path, bytes, &args.format, &args.keys, &secrets)?;
        print.add(&format!("--template {name}"), rendered.as_bytes());
        let file = crate::memfile::MemFile::new(name, rendered.as_bytes())?;
        vars.push((
            name.clone(),
            kmseal::SecretString::copy_from_str(&file.path())?,
        ));
        memfiles.push(file);
    }
    let redactor = if args.redact {
        let mut redactor = kmseal::redact::Redactor::new();
        secrets.add_to_redactor(&mut redactor)?;
        for (name, value) in &env {
            redactor.add(name, value.expose_secret().as_bytes())?;
        }
        for (name, value) in &file_secrets {
            redactor.add(name, value.expose_secret())?;
        }
        Some(redactor)
    } else {
        None
    };
    Ok(Prepared {
        program: program.clone(),
        args: rest.to_vec(),
        vars,
        memfiles,
        redactor,
        fingerprint: print.finish(),
    })
}

/// A keyed hash of what a command is given (names and values, in order), under a key drawn
/// for this process: equal fingerprints mean nothing changed, and the fingerprint says
/// nothing about the values.
struct Fingerprint {
    mac: hmac::Hmac<sha2::Sha256>,
}

impl Fingerprint {
    fn new() -> Result<Fingerprint, Failure> {
        use hmac::KeyInit;
        static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
        let key = KEY.get_or_init(|| {
            let mut k = [0u8; 32];
            if let Ok(random) = kmseal::SecretBytes::random(32) {
                k.copy_from_slice(random.expose_secret());
            }
            k
        });
        let mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key)
            .map_err(|_| usage("internal: fingerprint key"))?;
        Ok(Fingerprint { mac })
    }

    fn add(&mut self, name: &str, value: &[u8]) {
        use hmac::Mac;
        for part in [name.as_bytes(), value] {
            self.mac.update(&(part.len() as u64).to_be_bytes());
            self.mac.update(part);
        }
    }

    fn finish(self) -> [u8; 32] {
        use hmac::Mac;
        self.mac.finalize().into_bytes().into()
    }
}

/// Where a `--file` comes from.
enum FileSource {
    /// A path in the document.
    Path(String),
    /// A secret reference.
    Reference(kmseal::store::SecretRef),
}

/// The document (`bytes`, read from `path`) rendered for `--template`: decrypted (a
/// whole-file message, or a sealed document verified again), its references replaced by what
/// `secrets` resolved. An unsealed document needs no key.
fn render_document(
    path: &std::path::Path,
    bytes: &[u8],
    format: &Option<String>,
    keys: &[String],
    secrets: &kmseal_config::Secrets,
) -> Result<zeroize::Zeroizing<String>, Failure> {
    if bytes.starts_with(&kmseal::format::MAGIC) {
        let format = crate::config::format_of(path, format, None)?;
        let plain = block(crate::config::decryptor(keys)?.decrypt(bytes))?;
        let text = std::str::from_utf8(plain.expose_secret())
            .map_err(|_| usage(format!("{} does not decrypt to text", path.display())))?;
        return Ok(block(kmseal_config::render(text, format, None, secrets))?);
    }
    let text =
        std::str::from_utf8(bytes).map_err(|_| usage(format!("{} is not text", path.display())))?;
    let format = crate::config::format_of(path, format, Some(text))?;
    // (open_document already refused an unsealed document without --unsealed.)
    if kmseal_config::is_sealed(text, format)? {
        let dec = crate::config::decryptor(keys)?;
        Ok(block(kmseal_config::render(
            text,
            format,
            Some(&dec),
            secrets,
        ))?)
    } else {
        Ok(block(kmseal_config::render(text, format, None, secrets))?)
    }
}
