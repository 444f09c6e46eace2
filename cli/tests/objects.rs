//! `kmseal rewrap` on object-store URLs, as a user runs it: against moto's S3
//! (`KMSEAL_TEST_S3_ENDPOINT`, started by `scripts/test`; without it these tests fail), killed
//! with SIGKILL at points spread over a run (every object still opens, under the old KEK or
//! the new one, and a rerun finishes), in shards whose JSON reports together cover the bucket
//! once, and on `file://`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

#[path = "../../objects/tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use kmseal::LocalKek;
use object_store::path::Path;

struct Keys {
    dir: PathBuf,
    old: Arc<LocalKek>,
    new: Arc<LocalKek>,
}

impl Keys {
    fn new(tag: &str) -> Keys {
        let dir =
            std::env::temp_dir().join(format!("kmseal-objects-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["old.key", "new.key"] {
            let o = Command::new(env!("CARGO_BIN_EXE_kmseal"))
                .args(["keygen", "-o"])
                .arg(dir.join(name))
                .env("KMSEAL_HOME", dir.join("home"))
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let old = Arc::new(LocalKek::from_file(dir.join("old.key")).unwrap());
        let new = Arc::new(LocalKek::from_file(dir.join("new.key")).unwrap());
        Keys { dir, old, new }
    }

    fn uri(&self, name: &str) -> String {
        format!("local://{}", self.dir.join(name).display())
    }

    /// `kmseal ARGS` with moto's S3 in the environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmseal"));
        cmd.args(args)
            .env("KMSEAL_HOME", self.dir.join("home"))
            .env_remove("KMSEAL_KEY")
            .env("AWS_ENDPOINT_URL", s3_endpoint())
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Many objects of every size class under `data/` of a fresh bucket.
fn seeded_bucket(
    rt: &tokio::runtime::Runtime,
    tag: &str,
    keys: &Keys,
) -> (String, kmseal_objects::Location, Vec<(Path, Vec<u8>)>) {
    let name = bucket_name(tag);
    let bucket = moto_bucket(&name);
    let mut objects = Vec::new();
    for batch in 0..4 {
        let prefix = bucket.prefix.clone().join(format!("batch{batch}"));
        objects.extend(rt.block_on(seed(
            bucket.store.as_ref(),
            &prefix,
            &keys.old,
            batch % 2 == 0,
        )));
    }
    objects.push(rt.block_on(seed_large(bucket.store.as_ref(), &bucket.prefix, &keys.old)));
    (format!("s3://{name}/data/"), bucket, objects)
}

#[test]
fn killed_at_any_point_every_object_opens_and_a_rerun_finishes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let keys = Keys::new("kill");
    let (url, bucket, objects) = seeded_bucket(&rt, "kill", &keys);
    let (old, new) = (keys.uri("old.key"), keys.uri("new.key"));
    let args = [
        "rewrap",
        "--from",
        &old,
        "--to",
        &new,
        "-q",
        "--max-single-put",
        "8388608",
        &url,
    ];

    // How long a full run takes here, on a copy of the bucket's shape: time one dry run and
    // scale (a real run makes about three times the requests).
    let t = Instant::now();
    let o = keys.run(&[
        "rewrap",
        "--from",
        &old,
        "--to",
        &new,
        "-q",
        "--dry-run",
        &url,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let span = t.elapsed().as_millis() as u64 * 3 + 50;

    let mut states = BTreeSet::new();
    // Kill points spread over the run (a fixed sequence: the same points every time).
    for i in 0..8u64 {
        let delay = (span * (2 * i + 1)) / 16;
        let mut child = keys.command(&args).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let mut under = (0, 0);
        for (key, pt) in &objects {
            match rt.block_on(opened_by(
                bucket.store.as_ref(),
                key,
                &keys.old,
                &keys.new,
                pt,
            )) {
                "old" => under.0 += 1,
                _ => under.1 += 1,
            }
        }
        states.insert(under);
    }
    // The kills landed mid-run: some left the bucket part-rotated (each run picks up where
    // the last was killed, so the states move from old to new).
    assert!(
        states.iter().any(|&(o, n)| o > 0 && n > 0),
        "(old, new) after kills: {states:?}"
    );
    let o = keys.run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    rt.block_on(all_open(bucket.store.as_ref(), &objects, &keys.new));
    // Done: a rerun rotates nothing.
    let o = keys.run(&["rewrap", "--from", &old, "--to", &new, "--json", &url]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["rotated"].as_array().unwrap().len(), 0, "{report}");
    assert_eq!(
        report["already_current"].as_array().unwrap().len(),
        objects.len()
    );
}

#[test]
fn shards_report_json_and_together_cover_the_bucket_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let keys = Keys::new("shards");
    let (url, bucket, objects) = seeded_bucket(&rt, "cli-shards", &keys);
    let (old, new) = (keys.uri("old.key"), keys.uri("new.key"));
    let children: Vec<_> = (0..4)
        .map(|i| {
            let shard = format!("{i}/4");
            keys.command(&[
                "rewrap", "--from", &old, "--to", &new, "--shard", &shard, "--json", &url,
            ])
            .spawn()
            .unwrap()
        })
        .collect();
    let mut rotated = BTreeSet::new();
    let mut listed = 0;
    for (i, child) in children.into_iter().enumerate() {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(report["shard"], format!("{i}/4"));
        listed += report["listed"].as_u64().unwrap();
        for k in report["rotated"].as_array().unwrap() {
            assert!(
                rotated.insert(k.as_str().unwrap().to_owned()),
                "{k} in two shards"
            );
        }
        assert!(
            report["bytes_written"].as_u64().unwrap() > 0
                || report["rotated"].as_array().unwrap().is_empty()
        );
    }
    assert_eq!(rotated.len(), objects.len());
    assert_eq!(
        listed as usize,
        objects.len() + 4,
        "the plain README of each batch too"
    );
    rt.block_on(all_open(bucket.store.as_ref(), &objects, &keys.new));
}

#[test]
fn file_urls_and_usage_errors() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let keys = Keys::new("file");
    let data = keys.dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let loc = kmseal_objects::open_url(&format!("file://{}/", data.display())).unwrap();
    let objects = rt.block_on(seed(loc.store.as_ref(), &loc.prefix, &keys.old, true));
    let (old, new) = (keys.uri("old.key"), keys.uri("new.key"));
    let url = format!("file://{}/", data.display());
    let o = keys.run(&[
        "rotate",
        "--from",
        &old,
        "--to",
        &new,
        "--suite",
        "chacha20-poly1305",
        "--json",
        &url,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    rt.block_on(all_open(loc.store.as_ref(), &objects, &keys.new));

    let bad = |args: &[&str], what: &str| {
        let o = keys.run(args);
        assert_eq!(o.status.code(), Some(2), "{what}: {}", stderr(&o));
    };
    let dir = data.to_str().unwrap();
    bad(
        &["rewrap", "--from", &old, "--to", &new, &url, dir],
        "a URL and a path",
    );
    bad(
        &[
            "rewrap", "--from", &old, "--to", &new, "--shard", "0/2", dir,
        ],
        "--shard on files",
    );
    bad(
        &[
            "rewrap", "--from", &old, "--to", &new, "--shard", "2/2", &url,
        ],
        "shard out of range",
    );
    bad(
        &["rewrap", "--from", &old, "--to", &new, "ftp://host/x/"],
        "an unknown scheme",
    );
}
