//! `kmseal import sops`: a SOPS-encrypted YAML, JSON or .env file becomes a sealed kmseal
//! document, decrypted in memory only after SOPS's MAC verifies ([`kmseal_sops`]).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use kmseal::{Decryptor, Encryptor};
use kmseal_config::Sealer;
use kmseal_sops::{DecryptOptions, Decrypted, Identities, Keys};

use crate::config::{block, format_of, read_text};
use crate::{Failure, context, exit, keks, output, parse_pair};

#[derive(Subcommand)]
pub(crate) enum ImportCommand {
    /// A SOPS file (YAML, JSON or .env) to a sealed kmseal document under --key (or the
    /// output's rule in .kmseal.toml). SOPS's MAC is verified before anything is written;
    /// values are decrypted in memory only. The data key comes from an age identity
    /// ($SOPS_AGE_KEY_FILE, $SOPS_AGE_KEY, ~/.config/sops/age/keys.txt) or from a KMS key
    /// given with --sops-key (AWS KMS, Azure Key Vault).
    #[command(after_help = "Examples:
  SOPS_AGE_KEY_FILE=~/.config/sops/age/keys.txt \\
    kmseal import sops secrets.enc.yaml -k aws-kms://arn:aws:kms:eu-west-1:111122223333:alias/app -o secrets.yaml
  kmseal import sops --sops-key aws-kms://arn:aws:kms:eu-west-1:111122223333:key/OLD \\
    -k aws-kms://arn:aws:kms:eu-west-1:111122223333:alias/app app.env.enc -o app.env

Every value is encrypted unless --encrypt/--plain or the output's .kmseal.toml rule says
otherwise (which values SOPS left in the clear is not carried over). Comments after a value
on the same line are not kept; comments on their own lines are when SOPS encrypted them (a
plain one is not authenticated, so it is left out, with a warning).

What SOPS's MAC vouches for: the text of the values, in order, run together; an encrypted
value is also bound to its keys by its encryption. Not covered: the key of an unencrypted
value (it could have been renamed, or its text split into a new entry), nulls, empty strings
and empty lists or maps (they could have been added), and a value's type (the number 5432
and the string \"5432\" hash alike). Anyone who can write the file can change those without
any key: the import warns, naming each such entry (never its value). A file with
`mac_only_encrypted: true` leaves its unencrypted values out of the MAC altogether and is
refused unless --accept-unauthenticated-plain.")]
    Sops(SopsArgs),
}

#[derive(Args)]
pub(crate) struct SopsArgs {
    /// The SOPS-encrypted file.
    file: PathBuf,
    /// Where to write the sealed document (mode of a new file 0644; `-`: stdout, the
    /// default). Its .kmseal.toml rule, if any, gives the keys, policy and requirements.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Overwrite the output.
    #[arg(short, long)]
    force: bool,
    /// yaml, json or env (default: from the file name).
    #[arg(long)]
    format: Option<String>,
    /// Key URI to seal the new document under (repeatable; default $KMSEAL_KEY, else the
    /// output's rule, else the settings).
    #[arg(short, long = "key", env = "KMSEAL_KEY", value_delimiter = ',')]
    keys: Vec<String>,
    /// A KMS key the SOPS file's data key is wrapped under (repeatable): only keys named here
    /// are asked, never one the file names by itself.
    #[arg(long = "sops-key", value_name = "URI", value_delimiter = ',')]
    sops_keys: Vec<String>,
    /// Also ask the KMS keys the file names (as `sops decrypt` does), not only --sops-key.
    #[arg(long)]
    trust_file_keys: bool,
    /// Import a file with `mac_only_encrypted: true`, whose unencrypted values SOPS's MAC does
    /// not cover: anyone who can write the file could have added or changed them (keys and
    /// values), and they would be sealed here as if authentic. Each is named in a warning.
    #[arg(long)]
    accept_unauthenticated_plain: bool,
    /// Encrypt only values whose key matches (repeatable glob).
    #[arg(long = "encrypt")]
    encrypt: Vec<String>,
    /// Never encrypt values whose key matches (repeatable glob).
    #[arg(long = "plain")]
    plain: Vec<String>,
    /// Encryption context pair (repeatable).
    #[arg(short, long = "context", value_parser = parse_pair)]
    context: Vec<(String, String)>,
}

impl From<kmseal_sops::Error> for Failure {
    fn from(e: kmseal_sops::Error) -> Self {
        use kmseal_sops::Error as E;
        let code = match &e {
            E::NoDataKey(_) => exit::KMS,
            E::MacMismatch | E::Decrypt(_) => exit::DECRYPT,
            E::Parse { .. }
            | E::Metadata(_)
            | E::Unsupported(_)
            | E::Identity(_)
            | E::UnauthenticatedPlain => exit::USAGE,
            _ => exit::OTHER,
        };
        let hint = match &e {
            E::UnauthenticatedPlain => {
                "; encrypt every value with SOPS, or pass --accept-unauthenticated-plain if you \
                 have checked the unencrypted values yourself"
            }
            _ => "",
        };
        Failure {
            code,
            message: format!("SOPS file: {e}{hint}"),
        }
    }
}

pub(crate) fn run(cmd: ImportCommand) -> Result<(), Failure> {
    match cmd {
        ImportCommand::Sops(args) => sops(args),
    }
}

fn sops(args: SopsArgs) -> Result<(), Failure> {
    let text = read_text(&args.file)?;
    let format = format_of(&args.file, &args.format, None)?;
    let mut keys = Keys::new(Identities::from_env()?).dangerous_kms_from_file(args.trust_file_keys);
    if !args.sops_keys.is_empty() {
        for kek in keks(&args.sops_keys, false)? {
            keys = keys.kek(kek);
        }
    }
    let options = DecryptOptions::new()
        .dangerous_accept_unauthenticated_plain(args.accept_unauthenticated_plain);
    let decrypted = block(kmseal_sops::decrypt_with(&text, format, &keys, &options))?;
    warn_unauthenticated(&decrypted);
    let plain = decrypted.into_plaintext();

    // Seal like `config encrypt` of the output: flags, else its rule.
    let target = args.output.clone().unwrap_or_else(|| PathBuf::from("-"));
    let plan = crate::rules::plan(
        &target,
        "",
        format,
        crate::rules::Flags {
            keys: args.keys,
            encrypt: args.encrypt,
            plain: args.plain,
            context: args.context,
        },
    )?;
    let keks = keks(&plan.keys, false)?;
    let enc = Encryptor::with_keks(keks.iter().cloned())?.with_context(context(plan.context)?);
    let mut sealer = Sealer::new(enc, Decryptor::with_keks(keks)?);
    if let Some(policy) = plan.policy {
        sealer = sealer.policy(policy);
    }
    if let Some(rules) = plan.requirements {
        sealer = sealer.rules(rules);
    }
    let sealed = block(sealer.seal(&plain, format))?;
    output::write_atomically(Some(&target), args.force, 0o644, |out| {
        out.write_all(sealed.as_bytes())?;
        Ok(())
    })
}

/// How many unauthenticated entries a warning names before it counts the rest.
const NAMED: usize = 20;

/// Says on stderr (unless --quiet) what SOPS's MAC did not vouch for: the entries by path
/// (escaped: they are text from the file), never their values.
fn warn_unauthenticated(d: &Decrypted) {
    use std::io::Write;
    if crate::progress::quiet() {
        return;
    }
    let mut err = std::io::stderr().lock();
    let list = d.unauthenticated();
    if !list.is_empty() {
        let _ = writeln!(
            err,
            "kmseal: warning: SOPS's MAC does not authenticate {} entr{} of this file (anyone \
             who can write it could have added, renamed or changed them); check them before \
             trusting the sealed document:",
            list.len(),
            if list.len() == 1 { "y" } else { "ies" }
        );
        for u in list.iter().take(NAMED) {
            let _ = writeln!(err, "  {u}");
        }
        if list.len() > NAMED {
            let _ = writeln!(err, "  and {} more", list.len() - NAMED);
        }
    }
    if d.dropped_comments() > 0 {
        let _ = writeln!(
            err,
            "kmseal: warning: left out {} comment{} SOPS had not encrypted (not authenticated)",
            d.dropped_comments(),
            if d.dropped_comments() == 1 { "" } else { "s" }
        );
    }
}
