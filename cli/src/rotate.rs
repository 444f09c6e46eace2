//! `kmseal rewrap` and `kmseal rotate`: crash-safe rotation of files and directory trees.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use kmseal::rotate::{Outcome, Rotator, Skip, Summary};
use kmseal::{Decryptor, Error, FrameSize, Suite};

use crate::{Failure, exit, keks, parse_suite, usage};

#[derive(Args)]
pub(crate) struct RotateArgs {
    /// Files or directories, rotated in place (directories recursively; symlinks not
    /// followed); or object-store prefixes: s3://bucket/prefix/, gs://…, az://…, file:///dir/.
    #[arg(required = true)]
    pub(crate) paths: Vec<PathBuf>,
    /// Key URI that opens the messages now (repeatable; tried in order).
    #[arg(long = "from", required = true, value_delimiter = ',')]
    pub(crate) from: Vec<String>,
    /// Key URI to wrap under afterwards (repeatable: each gets a wrapped key; keys not listed
    /// are dropped).
    #[arg(long = "to", required = true, value_delimiter = ',')]
    pub(crate) to: Vec<String>,
    /// Only messages that carry a key wrapped by this URI (the one being retired).
    #[arg(long)]
    pub(crate) only_key: Option<String>,
    /// Only files last modified at least this long ago: 90d, 12h, 30m or 45s.
    #[arg(long, value_parser = parse_age)]
    pub(crate) older_than: Option<Duration>,
    /// List what would be rotated; change nothing, call no KMS.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Files rotated at once (bounds the KMS calls in flight).
    #[arg(short, long, default_value_t = 4)]
    pub(crate) jobs: usize,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Quiet: no per-file lines on stderr.
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Object stores only: this worker's share, I/N (objects split by a hash of their key,
    /// so N workers together cover each object exactly once).
    #[arg(long)]
    pub(crate) shard: Option<kmseal_objects::Shard>,
    /// Object stores only: objects up to this many bytes are rotated in memory with one
    /// conditional PUT; larger ones stream through a multipart upload.
    #[arg(long, default_value_t = 16 << 20, hide = true)]
    pub(crate) max_single_put: u64,
}

fn is_url(p: &Path) -> bool {
    p.to_str().is_some_and(|s| s.contains("://"))
}

/// The rotator the flags describe.
fn rotator(args: &RotateArgs, reencrypt: Option<ReencryptArgs>) -> Result<Rotator, Failure> {
    let open_with = Decryptor::with_keks(keks(&args.from, false)?)?;
    let to = keks(&args.to, false)?;
    let mut rotator = match reencrypt {
        None => Rotator::rewrap(open_with, to),
        Some(r) => {
            let mut rot = Rotator::reencrypt(open_with, to);
            if let Some(s) = r.suite {
                rot = rot.suite(s);
            }
            if let Some(f) = r.frame_size {
                let f = FrameSize::new(f)
                    .map_err(|_| usage("--frame-size must be between 1 byte and 64 MiB"))?;
                rot = rot.frame_size(f);
            }
            rot
        }
    };
    if let Some(uri) = &args.only_key {
        let k = keks(std::slice::from_ref(uri), false)?;
        if let Some(k) = k.into_iter().next() {
            rotator = rotator.only_wrapped_by(k);
        }
    }
    if let Some(age) = args.older_than {
        rotator = rotator.older_than(age);
    }
    Ok(rotator.dry_run(args.dry_run))
}

pub(crate) fn parse_age(s: &str) -> Result<Duration, String> {
    kmseal_config::parse_duration(s).map_err(|e| e.to_string())
}

/// Re-encryption options.
#[derive(Args)]
pub(crate) struct ReencryptArgs {
    /// Payload suite for the new messages (default: each message's own).
    #[arg(long, value_parser = parse_suite)]
    suite: Option<Suite>,
    /// Frame size for the new messages (default: each message's own).
    #[arg(long)]
    frame_size: Option<u32>,
}

pub(crate) fn run(args: RotateArgs, reencrypt: Option<ReencryptArgs>) -> Result<(), Failure> {
    let urls = args.paths.iter().filter(|p| is_url(p)).count();
    if urls > 0 && urls < args.paths.len() {
        return Err(usage(
            "give either files and directories or object-store URLs, not both",
        ));
    }
    if urls == 0 && args.shard.is_some() {
        return Err(usage("--shard applies to object-store URLs only"));
    }
    let rotator = rotator(&args, reencrypt)?;
    if urls > 0 {
        return crate::rotate_objects::run(&args, rotator);
    }

    let quiet = args.quiet || args.json || crate::progress::quiet();
    let mut total = Summary::default();
    for path in &args.paths {
        if !path.exists() {
            return Err(usage(format!("{} does not exist", path.display())));
        }
        let bar = crate::progress::files(if args.dry_run { "checking" } else { "rotating" });
        let sum = rotator
            .rotate_tree_blocking(path, args.jobs, |p, r| {
                bar.inc(1);
                if !quiet {
                    report_line(&bar, &p.display().to_string(), r);
                }
            })
            .map_err(Failure::from)?;
        bar.finish_and_clear();
        total.rotated.extend(sum.rotated);
        total.already_current.extend(sum.already_current);
        total.skipped.extend(sum.skipped);
        total.failed.extend(sum.failed);
    }
    if args.json {
        let mut out = io::stdout().lock();
        out.write_all(json_summary(&total, args.dry_run).as_bytes())?;
        out.write_all(b"\n")?;
    }
    let verb = if args.dry_run {
        "would rotate"
    } else {
        "rotated"
    };
    if !crate::progress::quiet() {
        let _ = writeln!(
            io::stderr(),
            "kmseal: {verb} {}, already current {}, skipped {}, failed {}",
            total.rotated.len(),
            total.already_current.len(),
            total.skipped.len(),
            total.failed.len()
        );
    }
    if total.failed.is_empty() {
        Ok(())
    } else {
        // Only files that changed under us: a rerun is all it takes.
        let all_changed = total
            .failed
            .iter()
            .all(|(_, e)| matches!(e, Error::FileChanged { .. }));
        Err(Failure {
            code: if all_changed {
                exit::CHANGED
            } else {
                exit::OTHER
            },
            message: format!(
                "{} file(s) could not be rotated and were left as they were; rerun to retry",
                total.failed.len()
            ),
        })
    }
}

/// One line per item rotated (or not), above the progress bar or on stderr.
pub(crate) fn report_line<E: std::fmt::Display>(
    bar: &indicatif::ProgressBar,
    name: &str,
    r: &Result<Outcome<()>, E>,
) {
    let line = match r {
        Ok(Outcome::Rotated(())) => "rotated".to_owned(),
        Ok(Outcome::WouldRotate) => "would rotate".to_owned(),
        Ok(Outcome::Skipped(s)) => format!("skipped ({})", skip_reason(s)),
        Err(e) => format!("FAILED: {e}"),
    };
    if bar.is_hidden() {
        let _ = writeln!(io::stderr(), "{name}: {line}");
    } else {
        bar.println(format!("{name}: {line}"));
    }
}

pub(crate) fn skip_reason(s: &Skip) -> &'static str {
    match s {
        Skip::AlreadyCurrent => "already current",
        Skip::NotWrappedBySelected => "not wrapped by --only-key",
        Skip::TooRecent => "newer than --older-than",
        Skip::NotKmseal => "not a kmseal message",
    }
}

pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The outcome lists of a rotation summary as JSON members (`"rotated":[…],…`), for files
/// (`name` "path") and objects ("key"): each item's name, a skip's reason, a failure's error
/// and whether a rerun is all it takes.
pub(crate) fn json_outcomes(
    name: &str,
    rotated: &[String],
    already_current: &[String],
    skipped: &[(String, &Skip)],
    failed: &[(String, String, bool)],
) -> String {
    let list = |v: &[String]| {
        v.iter()
            .map(|k| json_string(k))
            .collect::<Vec<_>>()
            .join(",")
    };
    let skipped = skipped
        .iter()
        .map(|(k, s)| {
            format!(
                r#"{{"{name}":{},"reason":{}}}"#,
                json_string(k),
                json_string(skip_reason(s))
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    let failed = failed
        .iter()
        .map(|(k, e, changed)| {
            format!(
                r#"{{"{name}":{},"changed":{changed},"error":{}}}"#,
                json_string(k),
                json_string(e)
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    format!(
        r#""rotated":[{}],"already_current":[{}],"skipped":[{skipped}],"failed":[{failed}]"#,
        list(rotated),
        list(already_current)
    )
}

fn json_summary(s: &Summary, dry_run: bool) -> String {
    let names = |v: &[PathBuf]| {
        v.iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
    };
    let skipped: Vec<_> = s
        .skipped
        .iter()
        .map(|(p, r)| (p.to_string_lossy().into_owned(), r))
        .collect();
    let failed: Vec<_> = s
        .failed
        .iter()
        .map(|(p, e)| {
            let changed = matches!(e, Error::FileChanged { .. });
            (p.to_string_lossy().into_owned(), e.to_string(), changed)
        })
        .collect();
    format!(
        r#"{{"dry_run":{dry_run},{}}}"#,
        json_outcomes(
            "path",
            &names(&s.rotated),
            &names(&s.already_current),
            &skipped,
            &failed
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_age("90d").unwrap(), Duration::from_secs(90 * 86_400));
        assert_eq!(parse_age("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse_age("45s").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_age("2w").unwrap(), Duration::from_secs(14 * 86_400));
        for bad in ["", "d", "12", "12y", "-1d", "99999999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_escapes_paths() {
        assert_eq!(json_string("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
    }
}
