//! `kmseal secret get|put|versions`: secrets in stores, named by references.

use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;

use clap::Subcommand;
use kmseal::SecretBytes;
use kmseal::secret::{Alphabet, GenerateSpec};
use kmseal::store::{MAX_SECRET_LEN, SecretRef, VersionInfo};

use crate::{Failure, output, usage};

#[derive(Subcommand)]
pub(crate) enum SecretCommand {
    /// Print a secret (or one #field of it) to stdout or -o FILE (mode 0600).
    #[command(
        after_help = "Examples:\n  kmseal secret get vault-kv://vault.internal/secret/app/db#password -o /run/app/db-password\n  kmseal secret get env://DATABASE_URL | my-migration-tool\n\nThe value is written exactly, with no newline added. A terminal is refused without --force."
    )]
    Get {
        /// env://NAME, file://PATH, vault-kv://HOST[:PORT]/MOUNT/PATH, vault-kv+http://…,
        /// aws-sm://NAME or aws-sm://ARN;
        /// ?version=V or ?stage=S selects a version, #FIELD one field of a JSON object secret.
        reference: String,
        /// Output file (mode 0600, written atomically); default stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Overwrite an existing output file; allow output to a terminal.
        #[arg(short, long)]
        force: bool,
    },
    /// Store a new version of a secret: the value from stdin (`-`) or a generated one.
    #[command(
        after_help = "Examples:\n  printf %s \"$PASSWORD\" | kmseal secret put vault-kv://vault.internal/secret/app/db --field password -\n  kmseal secret put vault-kv://vault.internal/secret/app/jwt --field secret --generate\n  kmseal secret put aws-sm://arn:aws:secretsmanager:eu-west-1:111122223333:secret:api --generate alnum:40\n\nOne trailing newline of stdin is dropped. --generate draws from the OS CSPRNG into locked\nmemory: base64:32 by default (like `openssl rand -base64 32`), or base64url:N, hex:N\n(N random bytes), alnum:N (N characters); the value is never printed. --field NAME\nstores {\"NAME\": VALUE}, the shape Vault KV and most JSON secrets have."
    )]
    Put {
        /// The secret, without selectors.
        reference: String,
        /// `-`: read the value from stdin.
        #[arg(conflicts_with = "generate", required_unless_present = "generate")]
        value: Option<String>,
        /// Generate the value: ALPHABET[:LENGTH] (base64, base64url, hex: random bytes;
        /// alnum: characters); alone, base64:32; a bare number N is base64:N.
        #[arg(long, value_name = "SPEC", num_args = 0..=1, default_missing_value = "base64:32")]
        generate: Option<String>,
        /// Store the value as the field NAME of a JSON object.
        #[arg(long, value_name = "NAME")]
        field: Option<String>,
    },
    /// List a secret's versions, newest first.
    Versions {
        /// The secret.
        reference: String,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(command: SecretCommand) -> Result<(), Failure> {
    match command {
        SecretCommand::Get {
            reference,
            output,
            force,
        } => {
            if output.is_none() && io::stdout().is_terminal() && !force {
                return Err(usage(
                    "refusing to write a secret to a terminal (scrollback, screen recordings); \
                     use -o FILE, a pipe, or --force",
                ));
            }
            let value = kmseal_keys::get_secret_blocking(&reference)?;
            output::write_atomically(output.as_deref(), force, 0o600, |out| {
                out.write_all(value.expose_secret())?;
                Ok(())
            })
        }
        SecretCommand::Put {
            reference,
            value,
            generate,
            field,
        } => {
            let reference: SecretRef = reference.parse()?;
            let value = match (value.as_deref(), generate) {
                (_, Some(spec)) => generated(&spec)?,
                (Some("-"), None) => from_stdin()?,
                _ => {
                    return Err(usage(
                        "give the value on stdin with `-` (never on the command line, where \
                         other users and the shell history see it) or use --generate [SPEC]",
                    ));
                }
            };
            let value = match field {
                Some(name) => as_field(&name, &value)?,
                None => value,
            };
            let resolver = kmseal_keys::resolver();
            let version =
                kmseal::blocking::block_on(resolver.put(&reference, value.expose_secret()))?;
            if !crate::progress::quiet() {
                let v = if version.id.is_empty() {
                    String::new()
                } else {
                    format!(" as version {}", version.id)
                };
                let _ = writeln!(io::stderr(), "kmseal: stored {reference}{v}");
            }
            Ok(())
        }
        SecretCommand::Versions { reference, json } => {
            let reference: SecretRef = reference.parse()?;
            let resolver = kmseal_keys::resolver();
            let versions = kmseal::blocking::block_on(resolver.versions(&reference))?;
            let mut out = io::stdout().lock();
            if json {
                for v in &versions {
                    writeln!(out, "{}", version_json(v))?;
                }
            } else {
                writeln!(out, "{:<36}  {:<20}  STAGES", "VERSION", "CREATED")?;
                for v in &versions {
                    // Ids and stages come from the store: shown with control characters escaped.
                    let mut stages = kmseal::escape_untrusted(&v.stages.join(",")).into_owned();
                    if v.disabled {
                        stages.push_str(if stages.is_empty() { "" } else { "," });
                        stages.push_str("(deleted)");
                    }
                    writeln!(
                        out,
                        "{:<36}  {:<20}  {stages}",
                        kmseal::escape_untrusted(&v.id),
                        v.created_rfc3339().unwrap_or_else(|| "-".into())
                    )?;
                }
            }
            Ok(())
        }
    }
}

/// A generated value (`--generate SPEC`; a bare number N is `base64:N`, as before).
pub(crate) fn generated(spec: &str) -> Result<SecretBytes, Failure> {
    let spec: GenerateSpec = match spec.parse::<usize>() {
        Ok(n) => GenerateSpec::new(Alphabet::Base64, n),
        Err(_) => spec.parse(),
    }
    .map_err(|e| usage(e.to_string()))?;
    Ok(spec.generate()?.into_bytes())
}

/// Stdin into locked memory (at most the store limit), without one trailing newline. A value
/// over the limit is refused whole, never cut.
fn from_stdin() -> Result<SecretBytes, Failure> {
    read_value(io::stdin().lock())
}

pub(crate) fn read_value(input: impl Read) -> Result<SecretBytes, Failure> {
    let mut value = SecretBytes::with_capacity(4096)?;
    // The limit, room for a CRLF, and one byte more to tell a longer input.
    let mut input = input.take(MAX_SECRET_LEN as u64 + 3);
    // Through a locked buffer: io::copy would leave the value in an unwiped stack buffer.
    kmseal::stream::copy_locked(&mut input, &mut value)?;
    let too_long = || {
        usage(format!(
            "the value on stdin is over the limit of {MAX_SECRET_LEN} bytes"
        ))
    };
    if value.len() > MAX_SECRET_LEN + 2 {
        return Err(too_long());
    }
    let mut len = value.len();
    if value.expose_secret().ends_with(b"\n") {
        len -= 1;
        if value.expose_secret()[..len].ends_with(b"\r") {
            len -= 1;
        }
    }
    value.truncate(len);
    if value.len() > MAX_SECRET_LEN {
        return Err(too_long());
    }
    Ok(value)
}

/// `{"NAME": VALUE}` with VALUE as a JSON string, built in locked memory.
fn as_field(name: &str, value: &SecretBytes) -> Result<SecretBytes, Failure> {
    let text = std::str::from_utf8(value.expose_secret())
        .map_err(|_| usage("--field needs a UTF-8 value (JSON strings are text)"))?;
    let mut out = SecretBytes::with_capacity(value.len() + name.len() + 16)?;
    out.extend_from_slice(b"{")?;
    push_json_string(&mut out, name)?;
    out.extend_from_slice(b": ")?;
    push_json_string(&mut out, text)?;
    out.extend_from_slice(b"}")?;
    Ok(out)
}

fn push_json_string(out: &mut SecretBytes, s: &str) -> Result<(), kmseal::Error> {
    out.extend_from_slice(b"\"")?;
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\"")?,
            '\\' => out.extend_from_slice(b"\\\\")?,
            c if u32::from(c) < 0x20 => {
                let escaped = format!("\\u{:04x}", u32::from(c));
                out.extend_from_slice(escaped.as_bytes())?;
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes())?;
            }
        }
    }
    out.extend_from_slice(b"\"")
}

fn version_json(v: &VersionInfo) -> String {
    let quote = |s: &str| {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    };
    let stages: Vec<String> = v.stages.iter().map(|s| quote(s)).collect();
    format!(
        "{{\"id\": {}, \"created\": {}, \"stages\": [{}], \"disabled\": {}}}",
        quote(&v.id),
        v.created_rfc3339()
            .map_or_else(|| "null".into(), |t| quote(&t)),
        stages.join(", "),
        v.disabled
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_is_a_json_object_with_the_value_escaped() {
        let v = SecretBytes::from_slice("a\"b\\c\nd é".as_bytes()).unwrap();
        let out = as_field("pass\"word", &v).ok().unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(out.expose_secret()).unwrap();
        assert_eq!(parsed["pass\"word"], "a\"b\\c\nd é");
    }

    #[test]
    fn generated_values_are_base64_of_n_random_bytes() {
        let a = generated("32").ok().unwrap();
        let b = generated("base64:32").ok().unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.expose_secret())
            .unwrap();
        assert_eq!(raw.len(), 32);
        assert!(generated("8").is_err());
        assert_eq!(generated("hex:16").ok().unwrap().len(), 32);
        assert!(generated("rot13").is_err());
    }

    #[test]
    fn a_value_over_the_limit_on_stdin_is_refused_whole_never_cut() {
        let read = |bytes: Vec<u8>| read_value(&bytes[..]).ok().map(|v| v.len());
        let max = MAX_SECRET_LEN;
        assert_eq!(read(b"pw\n".to_vec()), Some(2));
        assert_eq!(read(b"pw\r\n".to_vec()), Some(2));
        assert_eq!(read(vec![b'x'; max]), Some(max));
        let mut exact_crlf = vec![b'x'; max];
        exact_crlf.extend_from_slice(b"\r\n");
        assert_eq!(read(exact_crlf.clone()), Some(max));
        exact_crlf.extend_from_slice(b"more");
        assert_eq!(
            read(exact_crlf),
            None,
            "data after the newline is not dropped"
        );
        assert_eq!(read(vec![b'x'; max + 1]), None);
        let mut one_over_lf = vec![b'x'; max + 1];
        one_over_lf.push(b'\n');
        assert_eq!(read(one_over_lf), None);
    }

    #[test]
    fn version_lines_are_json() {
        let v = VersionInfo::new("3")
            .stages(vec!["current".into()])
            .created(std::time::UNIX_EPOCH);
        let parsed: serde_json::Value = serde_json::from_str(&version_json(&v)).unwrap();
        assert_eq!(parsed["id"], "3");
        assert_eq!(parsed["created"], "1970-01-01T00:00:00Z");
        assert_eq!(parsed["stages"][0], "current");
        assert_eq!(parsed["disabled"], false);
    }
}
