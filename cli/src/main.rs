//! `kmseal`: envelope encryption from the command line.
#![forbid(unsafe_code)]

mod config;
mod edit;
mod exec;
mod git;
mod import;
mod inspect;
mod memfile;
mod output;
mod progress;
mod rotate;
mod rotate_objects;
mod rules;
mod scan;
mod secret;
mod settings;
mod supervise;

use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use kmseal::{Decryptor, EncryptionContext, Encryptor, Error, Kek, LocalKek, Suite};

/// Exit codes (documented in README.md).
mod exit {
    pub(crate) const OTHER: u8 = 1;
    pub(crate) const USAGE: u8 = 2;
    pub(crate) const DECRYPT: u8 = 3;
    pub(crate) const KMS: u8 = 4;
    /// Requirements on values not met (`config check`, `exec --require`).
    pub(crate) const REQUIREMENTS: u8 = 5;
    /// A seal that would bless unreviewed changes or declassify values (needs a flag).
    pub(crate) const REFUSED: u8 = 6;
    /// A file changed while it was being rotated and was left alone: rerun.
    pub(crate) const CHANGED: u8 = 7;
    /// `exec --refresh --on-change exit`: a value changed; the command was stopped so that
    /// the orchestrator restarts the container with the new values.
    pub(crate) const RESTART: u8 = 8;
}

#[derive(Parser)]
#[command(
    name = "kmseal",
    version,
    about = "Envelope encryption with KMS key wrapping, key commitment and locked memory",
    after_help = "Examples:\n  kmseal keygen                                  # dev key in ~/.config/kmseal/dev.key\n  kmseal encrypt -c app=billing config.yaml -o config.yaml.kmseal\n  kmseal decrypt -c app=billing config.yaml.kmseal -o config.yaml\n  kmseal inspect config.yaml.kmseal\n  kmseal config encrypt --encrypt '*password' config.yaml\n  kmseal exec config.yaml -- ./my-service\n\nKeys: --key flags, else $KMSEAL_KEY (comma-separated), else `keys` in\n$KMSEAL_HOME/config.toml (or ~/.config/kmseal/config.toml), else the development key.\n\nExit codes: 0 ok, 1 other error, 2 usage, 3 decryption failed, 4 KMS, key or secret store error, 5 requirements not met (config check, exec --require), 6 refused without an explicit flag (--accept-changes, --declassify), 7 a file changed while it was rotated (left alone; rerun)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// No notes or progress on stderr (errors only).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Create a local key file (mode 0600). Without -o, the default development key.
    #[command(
        after_help = "Examples:\n  kmseal keygen                       # the development key\n  kmseal keygen -o /etc/kmseal/break-glass.key\n  export KMSEAL_LOCAL_KEY=$(kmseal keygen --print-env)   # for local://env:KMSEAL_LOCAL_KEY"
    )]
    Keygen {
        /// Where to write the key (default: $KMSEAL_HOME/dev.key or ~/.config/kmseal/dev.key).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Print a base64 key for `local://env:VAR` instead of writing a file.
        #[arg(long, conflicts_with = "output")]
        print_env: bool,
    },
    /// Encrypt a file or stdin.
    #[command(
        after_help = "Examples:\n  kmseal encrypt -c app=billing config.yaml -o config.yaml.kmseal\n  kmseal encrypt -k aws-kms://arn:aws:kms:eu-west-1:111122223333:key/ID -k local://dr.key backup.tar -o backup.tar.kmseal\n  tar c data/ | kmseal encrypt -k vault://vault.internal:8200/transit/keys/app > data.tar.kmseal"
    )]
    Encrypt {
        #[command(flatten)]
        common: Common,
        /// Payload suite: aes-256-gcm (default) or chacha20-poly1305.
        #[arg(long, value_parser = parse_suite)]
        suite: Option<Suite>,
        /// Plaintext bytes per frame (default 65536).
        #[arg(long)]
        frame_size: Option<u32>,
        /// Sign the message (a fresh Ed25519 key per message, bound to every key's wrap):
        /// with several keys, a holder of one cannot forge messages to the others.
        #[arg(long)]
        signed: bool,
    },
    /// Show a message's header (suite, frame size, context, wrapped keys, sizes) or a config
    /// document's metadata and values, without any key.
    Inspect {
        #[command(flatten)]
        args: inspect::InspectArgs,
    },
    /// Print a shell completion script: bash, zsh or fish.
    #[command(
        after_help = "Examples:\n  kmseal completions bash > ~/.local/share/bash-completion/completions/kmseal\n  kmseal completions zsh > \"${fpath[1]}/_kmseal\"\n  kmseal completions fish > ~/.config/fish/completions/kmseal.fish"
    )]
    Completions {
        /// bash, zsh or fish.
        shell: clap_complete::Shell,
    },
    /// Decrypt a file or stdin. Plaintext goes to -o FILE or to stdout.
    #[command(
        after_help = "Examples:\n  kmseal decrypt -k local://dr.key backup.tar.kmseal -o backup.tar   # mode 0600, atomic\n  kmseal exec app.env.kmseal -- my-service                           # values into its environment\n\nWith -o the output appears only once the whole message verified. To stdout (a pipe), each\nframe is written as soon as it verifies: if the message is truncated or tampered further on,\nthe reader has already consumed the verified part when kmseal exits with status 3. Use -o or\n`kmseal exec` when a service must never act on a partial input.\n\nOnly the given keys are asked, in order; -c pairs must be in the message's context."
    )]
    Decrypt {
        #[command(flatten)]
        common: Common,
        /// Refuse messages that are not signed (encrypted without --signed), before any key
        /// is used. Signed messages are always verified.
        #[arg(long)]
        require_signed: bool,
        /// Only plaintext bytes START-END (inclusive, as in HTTP ranges; `START-` to the
        /// end): reads and verifies only the frames that hold them and the final frame. Needs
        /// an input file; refused for signed messages.
        #[arg(
            long,
            value_name = "START-END",
            value_parser = parse_range,
            conflicts_with = "require_signed"
        )]
        range: Option<(u64, Option<u64>)>,
    },
    /// Value-level config documents (YAML, JSON, TOML, .env): encrypt, decrypt, set, rotate.
    #[command(
        subcommand,
        after_help = "Examples:\n  kmseal config encrypt --encrypt '*password' --encrypt '*secret' config.yaml\n  kmseal config set config.yaml database.password -   # value from stdin\n  kmseal config set config.yaml jwt.secret --generate  # base64:32 from the OS CSPRNG, never printed\n  kmseal config decrypt --keep-metadata config.yaml -o /tmp/edit.yaml\n  kmseal config rotate --from local://old.key --to local://new.key config.yaml"
    )]
    Config(config::ConfigCommand),
    /// Run a command with a config's values in its environment; nothing is written to disk.
    #[command(
        after_help = "Examples:\n  kmseal exec config.yaml -- ./my-service --port 8080\n  kmseal exec app.env.kmseal -- env"
    )]
    Exec {
        #[command(flatten)]
        args: exec::ExecArgs,
    },
    /// Secrets in stores (env://, file://, vault-kv://, aws-sm://): get, put, list versions.
    #[command(
        subcommand,
        after_help = "Examples:\n  kmseal secret get vault-kv://vault.internal/secret/app/db#password -o /run/app/db-password\n  kmseal secret put vault-kv://vault.internal/secret/app/jwt --field secret --generate 32\n  kmseal secret versions vault-kv://vault.internal/secret/app/jwt"
    )]
    Secret(secret::SecretCommand),
    /// Rewrap files in place under new KEKs without touching their payload (crash-safe).
    #[command(
        after_help = "Examples:\n  kmseal rewrap --from local://old.key --to aws-kms://arn:aws:kms:eu-west-1:111122223333:key/ID secrets/\n  kmseal rewrap --from K1 --to K1 --to K2 --dry-run secrets/   # add a second KEK\n  kmseal rewrap --from K1 --to K2 --shard 0/8 --json s3://bucket/exports/  # worker 0 of 8\n\nEach file is written to a temporary file beside it, fsynced, verified by decrypting it\nwith the first --to key, then renamed over the original. Interrupted, every file is the\nold or the new message; run the same command again to finish.\n\nObject-store prefixes (s3://, gs://, az://, file://) go object by object: the header is read\nwith a ranged GET, the new message verified under the first --to key, and written back with\na conditional PUT (If-Match), so a concurrent writer's update is kept (exit 7: rerun).\nCredentials and endpoints come from the environment (AWS_*, GOOGLE_*, AZURE_*)."
    )]
    Rewrap {
        #[command(flatten)]
        args: rotate::RotateArgs,
    },
    /// Re-encrypt files in place under a fresh data key (crash-safe, streaming).
    #[command(
        after_help = "Examples:\n  kmseal rotate --from local://old.key --to local://new.key --only-key local://old.key secrets/\n\nWith --only-key naming the old key, a rerun after an interruption skips what is done."
    )]
    Rotate {
        #[command(flatten)]
        args: rotate::RotateArgs,
        #[command(flatten)]
        reencrypt: rotate::ReencryptArgs,
    },
    /// Bring secrets from other tools into sealed kmseal documents (SOPS files).
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Find hard-coded secrets in files (private keys, cloud and SaaS tokens, JWTs, URL
    /// passwords, secret-looking assignments) without ever printing them; kmseal ciphertexts,
    /// references and sealed documents are never findings. Exit 1 on findings.
    #[command(
        after_help = "Examples:\n  kmseal scan                 # the current directory (git-tracked and addable files)\n  kmseal scan --staged        # what `git commit` would commit (a pre-commit hook)\n  kmseal scan --json src/ config/\n\nEach finding is `path:line: rule: what to do`. A false positive: put `kmseal:allow` on the\nline, or `GLOB RULE  # reason` in .kmseal-scan-allow at the top of the tree."
    )]
    Scan {
        #[command(flatten)]
        args: scan::ScanArgs,
    },
}

#[derive(Args)]
struct Common {
    /// Input file; `-` or nothing reads stdin.
    input: Option<PathBuf>,
    /// Output file (written to a temporary file and renamed on success); default stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Key URI (repeatable): local://PATH, local://env:VAR, vault://HOST:PORT/MOUNT/keys/NAME
    /// (token from VAULT_TOKEN / BAO_TOKEN / ~/.vault-token), aws-kms://ARN (default AWS
    /// credential chain), gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K (Application
    /// Default Credentials; KMSEAL_GCP_ENDPOINT overrides the endpoint),
    /// azure-kv://VAULT.vault.azure.net/keys/NAME[/VERSION] (workload identity, managed
    /// identity or `az login`; AZURE_TOKEN_CREDENTIALS selects one). Default: $KMSEAL_KEY, else
    /// the development key.
    #[arg(short, long = "key", env = "KMSEAL_KEY", value_delimiter = ',')]
    keys: Vec<String>,
    /// Encryption context pair KEY=VALUE (repeatable). On decrypt, pairs the message must have.
    #[arg(short, long = "context", value_parser = parse_pair)]
    context: Vec<(String, String)>,
    /// Overwrite an existing output file; allow output to a terminal.
    #[arg(short, long)]
    force: bool,
}

fn parse_suite(s: &str) -> Result<Suite, String> {
    Suite::from_name(s).ok_or_else(|| "expected aes-256-gcm or chacha20-poly1305".to_owned())
}

/// `START-END` (inclusive) or `START-` (to the end).
fn parse_range(s: &str) -> Result<(u64, Option<u64>), String> {
    let bad = || "expected START-END (inclusive byte offsets) or START-".to_owned();
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let start: u64 = a.parse().map_err(|_| bad())?;
    if b.is_empty() {
        return Ok((start, None));
    }
    let end: u64 = b.parse().map_err(|_| bad())?;
    if end < start {
        return Err("the range ends before it starts".into());
    }
    Ok((start, Some(end)))
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))
}

/// A CLI failure: what went wrong, what to do next, and the exit code.
struct Failure {
    code: u8,
    message: String,
}

/// The exit code for a library error.
fn exit_code(e: &Error) -> u8 {
    match e {
        Error::Decrypt
        | Error::Truncated(_)
        | Error::Malformed(_)
        | Error::NotKmseal
        | Error::UnsupportedVersion(_)
        | Error::UnknownSuite(_)
        | Error::LimitExceeded { .. }
        | Error::ContextMismatch { .. }
        | Error::Unsigned => exit::DECRYPT,
        Error::Kms { .. }
        | Error::NoMatchingKek { .. }
        | Error::UnwrapFailed { .. }
        | Error::LocalKey { .. }
        | Error::InvalidKeyUri { .. }
        | Error::Store { .. }
        | Error::InvalidReference { .. }
        | Error::SecretShape(_) => exit::KMS,
        Error::InvalidArgument(_) | Error::InvalidContext(_) => exit::USAGE,
        Error::FileChanged { .. } => exit::CHANGED,
        _ => exit::OTHER,
    }
}

impl Failure {
    fn from_kmseal(e: &Error) -> Failure {
        Failure {
            code: exit_code(e),
            message: e.to_string(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::from_kmseal(&e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        // A decrypting reader reports failures as InvalidData wrapping a kmseal Error.
        match e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
            Some(inner) => Failure {
                code: exit_code(inner),
                message: inner.to_string(),
            },
            None => Failure {
                code: exit::OTHER,
                message: format!("I/O error: {e}"),
            },
        }
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: exit::USAGE,
        message: message.into(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    progress::set_quiet(cli.quiet);
    let level = match cli.verbose {
        _ if cli.quiet => "error",
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KMSEAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .without_time()
        .init();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            // An empty message: the status is a child's (`exec --redact`), already explained.
            if !f.message.is_empty() {
                let _ = writeln!(io::stderr(), "kmseal: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Keygen { output, print_env } => keygen(output, print_env),
        Command::Encrypt {
            common,
            suite,
            frame_size,
            signed,
        } => encrypt(common, suite, frame_size, signed),
        Command::Decrypt {
            common,
            require_signed,
            range,
        } => match range {
            Some(range) => decrypt_range(common, range),
            None => decrypt(common, require_signed),
        },
        Command::Config(cmd) => config::run(cmd),
        Command::Inspect { args } => inspect::run(args),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "kmseal", &mut io::stdout());
            Ok(())
        }
        Command::Exec { args } => exec::exec(args),
        Command::Secret(cmd) => secret::run(cmd),
        Command::Rewrap { args } => rotate::run(args, None),
        Command::Rotate { args, reencrypt } => rotate::run(args, Some(reencrypt)),
        Command::Scan { args } => scan::run(args),
        Command::Import(cmd) => import::run(cmd),
    }
}

fn default_key_path() -> Result<PathBuf, Failure> {
    kmseal::local::default_key_path().ok_or_else(|| {
        usage("cannot find a home directory for the default key; pass --key local://PATH")
    })
}

fn keygen(output: Option<PathBuf>, print_env: bool) -> Result<(), Failure> {
    if print_env {
        let value = LocalKek::generate_env_value()?;
        let mut out = io::stdout().lock();
        out.write_all(value.expose_secret())?;
        out.write_all(b"\n")?;
        return Ok(());
    }
    let path = match output {
        Some(p) => p,
        None => default_key_path()?,
    };
    let kek = LocalKek::create_file(&path)?;
    let _ = writeln!(
        io::stderr(),
        "kmseal: wrote local key {} to {} (mode 0600); use it with --key local://{}",
        kek.key_id(),
        path.display(),
        path.display()
    );
    Ok(())
}

/// Resolves the KEKs: the given URIs, else the development key (created for encryption when
/// missing, with a note on stderr saying where).
fn keks(uris: &[String], create_default: bool) -> Result<Vec<Arc<dyn Kek>>, Failure> {
    let from_file;
    let uris = if uris.is_empty() {
        from_file = settings::get()?.keys.clone();
        &from_file[..]
    } else {
        uris
    };
    if uris.is_empty() {
        let path = default_key_path()?;
        if !path.exists() && create_default {
            let kek = LocalKek::create_file(&path)?;
            if !progress::quiet() {
                let _ = writeln!(
                    io::stderr(),
                    "kmseal: no --key given; created a development key {} at {} (keep it \
                     outside your repository; pass --key to use another)",
                    kek.key_id(),
                    path.display()
                );
            }
        }
        if !path.exists() {
            return Err(usage(format!(
                "no --key given and no development key at {}; run `kmseal keygen` or pass --key",
                path.display()
            )));
        }
        return Ok(vec![Arc::new(LocalKek::from_file(&path)?)]);
    }
    Ok(kmseal::blocking::block_on(kmseal_keys::from_uris(uris))?)
}

fn context(pairs: Vec<(String, String)>) -> Result<EncryptionContext, Failure> {
    Ok(EncryptionContext::try_from(pairs)?)
}

/// The input (stdin for none or `-`), with a progress bar on a terminal. Unbuffered: callers
/// read in 1 MiB chunks into locked memory ([`kmseal::stream::copy_locked`]), and a buffer
/// here (or `Stdin`'s own, so stdin is read through its descriptor) would keep a copy of the
/// plaintext being encrypted in unlocked memory.
fn open_input(input: &Option<PathBuf>, label: &str) -> Result<Box<dyn Read>, Failure> {
    match input.as_deref().filter(|p| *p != Path::new("-")) {
        None => {
            use std::os::fd::AsFd;
            let stdin = std::fs::File::from(io::stdin().as_fd().try_clone_to_owned()?);
            Ok(progress::wrap(stdin, progress::bytes(None, label)))
        }
        Some(p) => {
            let file = std::fs::File::open(p)
                .map_err(|e| usage(format!("cannot open {}: {e}", p.display())))?;
            let len = file.metadata().ok().map(|m| m.len());
            Ok(progress::wrap(file, progress::bytes(len, label)))
        }
    }
}

fn encrypt(
    common: Common,
    suite: Option<Suite>,
    frame_size: Option<u32>,
    signed: bool,
) -> Result<(), Failure> {
    let settings = settings::get()?;
    let suite = suite.or(settings.suite).unwrap_or_default();
    let frame_size = match frame_size {
        Some(f) => kmseal::FrameSize::new(f)?,
        None => settings.frame_size.unwrap_or_default(),
    };
    let enc = Encryptor::with_keks(keks(&common.keys, true)?)?
        .with_context(context(common.context)?)
        .suite(suite)
        .signed(signed)
        .frame_size(frame_size);
    if common.output.is_none() && io::stdout().is_terminal() && !common.force {
        return Err(usage(
            "refusing to write binary ciphertext to a terminal; use -o FILE or --force",
        ));
    }
    let mut input = open_input(&common.input, "encrypting")?;
    output::write_atomically(common.output.as_deref(), common.force, 0o644, |out| {
        // Ciphertext may be buffered (small frames make small writes); plaintext is not.
        let mut w = enc.writer_blocking(io::BufWriter::with_capacity(256 << 10, out))?;
        kmseal::stream::copy_locked(&mut input, &mut w)?;
        w.finish()?.flush()?;
        Ok(())
    })
}

/// `decrypt --range`: only the frames that hold the range (and the final frame) are read.
fn decrypt_range(common: Common, (start, end): (u64, Option<u64>)) -> Result<(), Failure> {
    let dec = Decryptor::with_keks(keks(&common.keys, false)?)?
        .with_expected_context(context(common.context)?);
    if common.output.is_none() && io::stdout().is_terminal() && !common.force {
        return Err(usage(
            "refusing to write decrypted plaintext to a terminal (scrollback, screen recordings); \
             pipe it, use -o FILE, or pass --force",
        ));
    }
    let path = common
        .input
        .as_deref()
        .filter(|p| *p != Path::new("-"))
        .ok_or_else(|| usage("--range needs an input file (it reads only parts of it)"))?;
    let mut file = std::fs::File::open(path)
        .map_err(|e| usage(format!("cannot open {}: {e}", path.display())))?;
    let plain = match end {
        Some(end) => dec.open_range_blocking(&mut file, start..=end)?,
        None => dec.open_range_blocking(&mut file, start..)?,
    };
    output::write_atomically(common.output.as_deref(), common.force, 0o600, |out| {
        out.write_all(plain.expose_secret())?;
        Ok(())
    })
}

fn decrypt(common: Common, require_signed: bool) -> Result<(), Failure> {
    let dec = Decryptor::with_keks(keks(&common.keys, false)?)?
        .with_expected_context(context(common.context)?)
        .require_signed(require_signed);
    if common.output.is_none() && io::stdout().is_terminal() && !common.force {
        return Err(usage(
            "refusing to write decrypted plaintext to a terminal (scrollback, screen recordings); \
             pipe it, use -o FILE, or pass --force",
        ));
    }
    let input = open_input(&common.input, "decrypting")?;
    let mut reader = dec.reader_blocking(input)?;
    // Plaintext to a file is written under a temporary name with mode 0600 and renamed only
    // after the final frame verified; nothing partial is left behind.
    output::write_atomically(common.output.as_deref(), common.force, 0o600, |out| {
        kmseal::stream::copy_locked(&mut reader, out)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_exit_codes_by_what_the_caller_does_next() {
        assert_eq!(exit_code(&Error::InvalidArgument("x")), exit::USAGE);
        assert_eq!(
            exit_code(&Error::FileChanged {
                path: "f".into(),
                what: "changed"
            }),
            exit::CHANGED
        );
        assert_eq!(exit_code(&Error::Internal("x")), exit::OTHER);
        assert_eq!(exit_code(&Error::Finished("x")), exit::OTHER);
        assert_eq!(exit_code(&Error::Decrypt), exit::DECRYPT);
        assert_eq!(exit_code(&Error::Unsigned), exit::DECRYPT);
    }
}
