//! `kmseal rewrap|rotate s3://bucket/prefix/ …`: rotation of the kmseal messages in an object
//! store (kmseal-objects), one shard of the listing per worker.

use std::io::{self, Write};

use kmseal::rotate::Rotator;
use kmseal_objects::{ObjectRotator, Report, Shard};

use crate::rotate::{RotateArgs, json_outcomes, json_string, report_line};
use crate::{Failure, exit, usage};

pub(crate) fn run(args: &RotateArgs, rotator: Rotator) -> Result<(), Failure> {
    let shard = args.shard.unwrap_or_else(Shard::all);
    let objects = ObjectRotator::new(rotator)
        .shard(shard)
        .jobs(args.jobs)
        .max_single_put(args.max_single_put);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let quiet = args.quiet || args.json || crate::progress::quiet();
    let mut total = Report::default();
    let mut listing_errors = Vec::new();
    for url in &args.paths {
        let url = url
            .to_str()
            .ok_or_else(|| usage("an object-store URL must be UTF-8"))?;
        let location = kmseal_objects::open_url(url).map_err(|e| usage(e.to_string()))?;
        let bar = crate::progress::files(if args.dry_run { "checking" } else { "rotating" });
        let report = runtime.block_on(objects.rotate_prefix(&location, |key, r| {
            bar.inc(1);
            if !quiet {
                report_line(&bar, key, r);
            }
        }));
        let report = match report {
            Ok(report) => report,
            // The listing stopped part way: keep what was done, report it, fail at the end.
            Err(kmseal_objects::Error::Listing { report, source }) => {
                listing_errors.push(format!("listing {url} stopped: {source}"));
                *report
            }
            Err(e) => {
                return Err(Failure {
                    code: exit::OTHER,
                    message: format!("{url}: {e}"),
                });
            }
        };
        bar.finish_and_clear();
        total.listed += report.listed;
        total.rotated.extend(report.rotated);
        total.already_current.extend(report.already_current);
        total.skipped.extend(report.skipped);
        total.failed.extend(report.failed);
        total.bytes_read += report.bytes_read;
        total.bytes_written += report.bytes_written;
    }
    if args.json {
        let mut out = io::stdout().lock();
        out.write_all(json_report(&total, shard, args.dry_run, listing_errors.first()).as_bytes())?;
        out.write_all(b"\n")?;
    }
    if !crate::progress::quiet() {
        let verb = if args.dry_run {
            "would rotate"
        } else {
            "rotated"
        };
        let _ = writeln!(
            io::stderr(),
            "kmseal: shard {shard}: {} objects; {verb} {}, already current {}, skipped {}, \
             failed {}",
            total.listed,
            total.rotated.len(),
            total.already_current.len(),
            total.skipped.len(),
            total.failed.len()
        );
    }
    if let Some(first) = listing_errors.first() {
        return Err(Failure {
            code: exit::OTHER,
            message: format!(
                "{first}; the objects after it were not reached (a key the store client cannot \
                 represent, such as one with `//`, stops the listing: rename or remove it)"
            ),
        });
    }
    if total.failed.is_empty() {
        return Ok(());
    }
    let all_changed = total.failed.iter().all(|(_, e)| e.is_changed());
    Err(Failure {
        code: if all_changed {
            exit::CHANGED
        } else {
            exit::OTHER
        },
        message: format!(
            "{} object(s) could not be rotated and were left as they were; rerun to retry",
            total.failed.len()
        ),
    })
}

fn json_report(r: &Report, shard: Shard, dry_run: bool, listing_error: Option<&String>) -> String {
    let skipped: Vec<_> = r.skipped.iter().map(|(k, s)| (k.clone(), s)).collect();
    let failed: Vec<_> = r
        .failed
        .iter()
        .map(|(k, e)| (k.clone(), e.to_string(), e.is_changed()))
        .collect();
    format!(
        r#"{{"shard":"{shard}","dry_run":{dry_run},"listed":{},"listing_error":{},{},"bytes_read":{},"bytes_written":{}}}"#,
        r.listed,
        listing_error.map_or_else(|| "null".to_owned(), |e| json_string(e)),
        json_outcomes("key", &r.rotated, &r.already_current, &skipped, &failed),
        r.bytes_read,
        r.bytes_written
    )
}
