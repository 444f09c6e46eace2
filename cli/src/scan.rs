//! `kmseal scan`: hard-coded secrets in files, before they are committed.
//!
//! Each line is matched against rules for credentials with a known shape (private key blocks,
//! cloud and SaaS tokens, JWTs, URLs with a password) and for secret-looking assignments
//! (`password = "…"`) whose value is long and varied enough to be real. What kmseal knows is
//! not a secret is never a finding: its ciphertexts (`kmseal:v1:…`), references (`ref+…`),
//! whole-file messages, template placeholders, and interpolations (`${VAR}`); a sealed
//! document's values left in the clear by its policy are scanned like any configuration.
//! A finding names the file, the line and the rule, and says what to do; it never shows the
//! value. False positives are silenced by `kmseal:allow` on the line, or by a line
//! `GLOB RULE  # reason` in `.kmseal-scan-allow` at the top of the tree.

use std::borrow::Cow;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;

use clap::Args;
use regex::Regex;

use crate::rotate::json_string;
use crate::{Failure, exit, usage};

#[derive(Args)]
pub(crate) struct ScanArgs {
    /// Files or directories (default: the current directory). In a git work tree, a directory
    /// means the files git tracks or would add (ignored files are skipped).
    paths: Vec<PathBuf>,
    /// Scan what `git commit` would commit: the staged content of staged files (the index,
    /// not the work tree). For a pre-commit hook.
    #[arg(long)]
    staged: bool,
    /// Print one JSON object: {"ok", "findings": [{"path", "line", "rule", "message"}]}.
    #[arg(long)]
    json: bool,
}

/// The allow-list file, at the top of the scanned tree (or of the git work tree).
pub(crate) const ALLOW_FILE: &str = ".kmseal-scan-allow";

/// Files larger than this are not read (generated data, archives).
const MAX_FILE: u64 = 4 << 20;

/// One hard-coded secret found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) path: String,
    pub(crate) line: usize,
    pub(crate) rule: &'static str,
    pub(crate) message: Cow<'static, str>,
}

struct Rule {
    id: &'static str,
    /// Only in configuration files (`.env`, YAML, TOML, INI, properties), where values are
    /// written without quotes; in code the same shape is a declaration.
    config_only: bool,
    /// `None` only if the constant pattern failed to compile (`every_pattern_compiles`).
    re: Option<Regex>,
    /// The capture group that holds the secret (0: the whole match), checked against what is
    /// never a secret.
    group: usize,
    /// Also require the value to look random (assignments, URL passwords).
    random: bool,
    message: &'static str,
}

const STORE: &str = "remove it, rotate it, and keep it in a secret store (ref+URI) or a sealed \
                     config (kmseal config encrypt)";

fn rule(id: &'static str, re: &str, group: usize, random: bool, message: &'static str) -> Rule {
    Rule {
        id,
        config_only: false,
        re: Regex::new(re).ok(),
        group,
        random,
        message,
    }
}

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    vec![
        rule(
            "private-key",
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
            0,
            false,
            "a private key block; remove it, replace the key, and load it from a secret store or a sealed file",
        ),
        rule(
            "aws-access-key-id",
            r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
            0,
            false,
            "an AWS access key id; deactivate the key in IAM, and use roles (IRSA, instance profiles) or a secret store",
        ),
        rule(
            "aws-secret-access-key",
            r#"(?i)aws_?secret_?access_?key["']?\s*[:=]\s*["']?([A-Za-z0-9/+=]{40})\b"#,
            1,
            false,
            "an AWS secret access key; deactivate the key in IAM, and use roles or a secret store",
        ),
        rule(
            "gcp-service-account",
            r#""type"\s*:\s*"service_account""#,
            0,
            false,
            "a Google service-account key file; delete the key in IAM, and use Workload Identity or a secret store",
        ),
        rule(
            "azure-connection-string",
            r"(?i)\b(?:AccountKey|SharedAccessKey)=([A-Za-z0-9+/]{20,}={0,2})",
            1,
            false,
            "an Azure storage or Service Bus key; regenerate it, and use managed identity or Key Vault",
        ),
        rule(
            "github-token",
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,})\b",
            0,
            false,
            "a GitHub token; revoke it, and give CI its token from the CI's secret store",
        ),
        rule(
            "slack-token",
            r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b",
            0,
            false,
            "a Slack token; revoke it, then keep the new one in a secret store",
        ),
        rule(
            "stripe-key",
            r"\b(?:sk|rk)_live_[A-Za-z0-9]{20,}\b",
            0,
            false,
            "a live Stripe key; roll it in the Stripe dashboard, then keep it in a secret store",
        ),
        rule(
            "jwt",
            r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
            0,
            false,
            "a JSON Web Token; treat it as a credential: revoke it if it is live, and do not commit tokens",
        ),
        rule(
            "url-password",
            // The user may be empty (`redis://:PASSWORD@host`).
            r#"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@'"]*:([^\s@/'"]+)@[^\s/'"]+"#,
            1,
            true,
            "a password in a URL; take it out of the URL and give it separately from a secret store (ref+URI)",
        ),
        rule(
            "url-password",
            // In a URL's query (JDBC: `?user=app&password=…`) or a connection string
            // (ADO.NET, ODBC: `User ID=app;Password=…;`).
            r#"(?i)[?&;]\s*(?:password|passwd|pwd)\s*=\s*([^&;'"\s]+)"#,
            1,
            true,
            "a password in a URL or connection string; take it out and give it separately from a secret store (ref+URI)",
        ),
        rule(
            "password-assignment",
            // A type may sit between name and value (`API_TOKEN: &str = "…"`,
            // `apiKey: string = '…'`), and the string may be bytes (`b"…"`, `[]byte("…")`).
            r#"(?i)\b[a-z0-9_.-]*(?:password|passwd|pwd|passphrase|secret|token|api_?key|access_?key|private_?key|(?:encryption|signing|hmac|master)_?key|credentials?)[a-z0-9_.-]*["']?(?:\s*:\s*&?(?:'[a-z]+\s+)?\[?[a-z_][a-z0-9_:<>]*\]?)?\s*(?:=|:|:=|=>)\s*(?:\[\]byte\(\s*)?b?["']([^"'\s]{8,})["']"#,
            1,
            true,
            STORE,
        ),
        rule(
            "password-assignment",
            // A setter or builder given the value (`ds.setPassword("…")`, `.withApiKey("…")`).
            r#"(?i)\b(?:set|with)_?[a-z0-9_]*(?:password|passwd|passphrase|secret|token|api_?key|access_?key|credentials?)\s*\(\s*["']([^"'\s]{8,})["']"#,
            1,
            true,
            STORE,
        ),
        rule(
            "password-assignment",
            // Also as a YAML list item (compose `- DB_PASSWORD=…`), a Dockerfile's `ENV`/`ARG`,
            // and under dotted or hyphenated keys (`spring.datasource.password`, `client-secret`).
            r##"(?i)^\s*(?:-\s+)?(?:(?:export|env|arg)\s+)?[a-z0-9_.-]*(?:password|passwd|passphrase|secret|token|api_?key|access_?key|(?:encryption|signing|hmac|master)_?key)[a-z0-9_.-]*\s*[=:]\s*([^\s'"#]{8,})\s*(?:#.*)?$"##,
            1,
            true,
            STORE,
        )
        .config_only(),
    ]
});

impl Rule {
    fn config_only(mut self) -> Rule {
        self.config_only = true;
        self
    }
}

/// Whether `path` names a configuration file (values written without quotes): also shell
/// scripts and Dockerfiles, whose `NAME=value` is a literal too.
fn is_config_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let name = name
        .trim_end_matches(".example")
        .trim_end_matches(".sample");
    name.starts_with(".env")
        || name.starts_with("dockerfile")
        || name.starts_with("containerfile")
        || [
            ".env",
            ".yaml",
            ".yml",
            ".toml",
            ".ini",
            ".cfg",
            ".conf",
            ".properties",
            ".sh",
            ".bash",
            ".zsh",
            ".dockerfile",
        ]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// Whether `value` is something kmseal knows is not a secret.
fn known_not_secret(value: &str) -> bool {
    let v = value.trim_matches(|c| c == '"' || c == '\'');
    v.starts_with("kmseal:v1:")
        || v.starts_with(kmseal_config::REF_PREFIX)
        || v.contains("${")
        || v.contains("{{")
        || v.starts_with('$')
        || v.starts_with('%')
        || v.starts_with('<')
        || v.contains("://") // a URI: a reference or an address, not a credential
        || v.starts_with("arn:") // an AWS resource's name
        || v.starts_with("ENC[") // a SOPS ciphertext
        || v.starts_with("vault:v") // a Vault transit ciphertext
        || kmseal_config::is_placeholder(v)
        || has_run(v, 8) // a token's shape filled in (`sk_live_xxxxxxxx…`, `ghp_0000…`)
}

/// Whether one character occurs `n` times in a row (never by chance in a drawn value).
fn has_run(value: &str, n: usize) -> bool {
    let (mut last, mut count) = (None, 0);
    for c in value.chars() {
        count = if last == Some(c) { count + 1 } else { 1 };
        last = Some(c);
        if count >= n {
            return true;
        }
    }
    false
}

/// Whether `value` looks drawn at random rather than written by hand: not a name (words,
/// identifiers, paths, numbers: [`looks_like_name`]), and letters mixed with digits or with
/// both cases with enough estimated entropy, or a long run with a lot of it.
fn looks_random(value: &str) -> bool {
    if looks_like_name(value) {
        return false;
    }
    let letters = value.bytes().any(|b| b.is_ascii_alphabetic());
    let digits = value.bytes().any(|b| b.is_ascii_digit());
    let cases = value.bytes().any(|b| b.is_ascii_lowercase())
        && value.bytes().any(|b| b.is_ascii_uppercase());
    let bits = kmseal_config::estimate_entropy_bits(value);
    (letters && (digits || cases) && bits >= 48.0) || (value.len() >= 24 && bits >= 96.0)
}

/// Whether `value` reads as a name rather than a draw: words and numbers joined by
/// separators (`bert-base-cased`, `/run/secrets/db_password`, `AwsCognitoTokenProvider`,
/// `vault-kv-v2`, `password123`). A random string breaks into pieces that are no word
/// (`Xk9`, `q2Lm7pW4`, `k42`, `BoyD872`): digits inside, the case changing anywhere. About
/// 1 random value with digits in 300 still reads as a name.
fn looks_like_name(value: &str) -> bool {
    // A number; a letter, maybe with a digit (`X`, `v2`); or a lower-case word, then
    // capitalised words (each may follow an acronym: `XMLHttp`), an acronym, then digits.
    static WORD: LazyLock<Option<Regex>> = LazyLock::new(|| {
        Regex::new(
            r"^(?:[0-9]+|[A-Za-z][0-9]?|(?:[a-z]{2,20})?(?:(?:[A-Z]{2,8})?[A-Z][a-z]{2,20})*(?:[A-Z]{2,8})?[0-9]*)$",
        )
        .ok()
    });
    let Some(word) = WORD.as_ref() else {
        return false;
    };
    value
        .split(|c: char| "-_./:,=+@~".contains(c))
        .all(|part| word.is_match(part))
}

/// The findings in one file's text.
pub(crate) fn scan_text(path: &str, text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    // A sealed document is scanned too: its ciphertexts are never findings, but a value its
    // policy left in the clear (`--encrypt '*password'` and a plaintext `github_token`) is.
    // Sealed documents are configuration, whatever their name.
    let config = is_config_file(path) || kmseal_config::Format::of_sealed(text).is_some();
    for (i, line) in text.lines().enumerate() {
        if line.contains("kmseal:allow") {
            continue;
        }
        let mut hit: Option<&Rule> = None;
        for r in RULES.iter() {
            if r.config_only && !config {
                continue;
            }
            let Some(re) = &r.re else { continue };
            let found = re.captures_iter(line).any(|c| {
                let value = c.get(r.group).map_or("", |m| m.as_str());
                !known_not_secret(value) && (!r.random || looks_random(value))
            });
            if found {
                hit = Some(r);
                break;
            }
        }
        if let Some(r) = hit {
            out.push(Finding {
                path: path.to_owned(),
                line: i + 1,
                rule: r.id,
                message: r.message.into(),
            });
        }
    }
    out
}

/// `GLOB RULE` lines (`*` matches anything, `/` included; `#` starts a comment; rule `*` is
/// every rule).
pub(crate) struct AllowList(Vec<(String, String)>);

impl AllowList {
    pub(crate) fn parse(text: &str) -> AllowList {
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let mut parts = line.split_whitespace();
            if let (Some(glob), Some(rule)) = (parts.next(), parts.next()) {
                entries.push((glob.to_owned(), rule.to_owned()));
            }
        }
        AllowList(entries)
    }

    pub(crate) fn allows(&self, f: &Finding) -> bool {
        self.0.iter().any(|(glob, rule)| {
            (rule == "*" || rule == f.rule) && kmseal_config::glob(glob, &f.path)
        })
    }
}

pub(crate) fn run(args: ScanArgs) -> Result<(), Failure> {
    let root = git(&["rev-parse", "--show-toplevel"], None)
        .ok()
        .map(|s| PathBuf::from(s.trim()))
        .filter(|p| !p.as_os_str().is_empty());
    // --staged: names relative to the work tree's top, content from the index.
    let index = if args.staged {
        Some(
            root.clone()
                .ok_or_else(|| usage("--staged needs a git work tree"))?,
        )
    } else {
        None
    };
    let names: Vec<String> = match &index {
        Some(root) => git(
            &[
                "diff",
                "--cached",
                "--name-only",
                "-z",
                "--diff-filter=ACMRT",
            ],
            Some(root),
        )
        .map_err(|e| usage(format!("git diff --cached: {e}")))?
        .split('\0')
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect(),
        None => {
            let paths = if args.paths.is_empty() {
                vec![PathBuf::from(".")]
            } else {
                args.paths.clone()
            };
            let mut files = Vec::new();
            for p in &paths {
                collect(p, root.as_deref(), &mut files)?;
            }
            files
        }
    };
    // The allow list and the repository rules, from where the content comes from: a commit
    // is judged by the allow list and rules it commits.
    let allow = match &index {
        Some(root) => index_blob(root, ALLOW_FILE)?
            .map(|b| AllowList::parse(&String::from_utf8_lossy(&b)))
            .unwrap_or(AllowList(Vec::new())),
        None => std::fs::read_to_string(
            root.clone()
                .unwrap_or_else(|| PathBuf::from("."))
                .join(ALLOW_FILE),
        )
        .map(|t| AllowList::parse(&t))
        .unwrap_or(AllowList(Vec::new())),
    };
    let rules = crate::rules::Finder::load(root.as_deref(), index.is_some())?;
    let mut findings = Vec::new();
    for name in names {
        let (bytes, shown, abs) = match &index {
            Some(root) => match index_blob(root, &name)? {
                Some(b) => (b, name.clone(), root.join(&name)),
                None => continue,
            },
            None => match read_bytes(Path::new(&name)) {
                Some(b) => (
                    b,
                    display_path(&name, root.as_deref()),
                    // As git names the top (symlinks resolved), so the rule's paths match.
                    std::fs::canonicalize(&name).unwrap_or_else(|_| PathBuf::from(&name)),
                ),
                None => continue,
            },
        };
        if bytes.starts_with(&kmseal::format::MAGIC) {
            continue; // a whole-file kmseal message
        }
        let rule = rules.rule_for(&abs);
        let text = match std::str::from_utf8(&bytes) {
            Ok(t) if bytes.len() as u64 <= MAX_FILE && !bytes.contains(&0) => t,
            _ => {
                // Binary, not UTF-8 or too large: not scanned; but a file a rule covers must
                // be a sealed document, and this is not one.
                if let Some(rule) = rule {
                    findings.push(Finding {
                        path: shown,
                        line: 1,
                        rule: "unsealed-file",
                        message: format!(
                            "the rule `{}` in {} says this file is sealed, and it is not a sealed \
                             document (binary, not UTF-8, or over 4 MiB)",
                            rule.path,
                            kmseal_config::repo::RULES_FILE
                        )
                        .into(),
                    });
                }
                continue;
            }
        };
        // Files a repository rule covers must be sealed as it says. These findings are not
        // allow-listed: the rules file is where coverage is narrowed, in review.
        if let Some(rule) = rule {
            findings.extend(crate::rules::check(&shown, text, rule).into_iter().map(
                |(line, rule, message)| Finding {
                    path: shown.clone(),
                    line,
                    rule,
                    message: message.into(),
                },
            ));
        }
        findings.extend(
            scan_text(&shown, text)
                .into_iter()
                .filter(|f| !allow.allows(f)),
        );
    }
    report(&findings, args.json)
}

/// The staged content of `name` (relative to the work tree's top), `None` when the index has
/// no such file. Stage 0 is named explicitly, so `0:prod.env` is a path, never a stage.
pub(crate) fn index_blob(root: &Path, name: &str) -> Result<Option<Vec<u8>>, Failure> {
    let listed = git(
        &[
            "--literal-pathspecs",
            "ls-files",
            "-s",
            "-z",
            "--cached",
            "--",
            name,
        ],
        Some(root),
    )
    .map_err(|e| usage(format!("git ls-files: {e}")))?;
    // `MODE OBJECT STAGE<TAB>NAME`: a submodule (160000) has no content here.
    let Some(mode) = listed
        .split('\0')
        .filter_map(|e| e.split_once('\t'))
        .find(|(_, n)| *n == name)
        .map(|(meta, _)| meta.split(' ').next().unwrap_or(""))
    else {
        return Ok(None);
    };
    if mode == "160000" {
        return Ok(None);
    }
    let out = Command::new("git")
        .args(["cat-file", "blob", &format!(":0:{name}")])
        .current_dir(root)
        .output()
        .map_err(|e| usage(format!("git cat-file: {e}")))?;
    if !out.status.success() {
        return Err(usage(format!(
            "git cat-file :0:{name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(Some(out.stdout))
}

/// The path as findings show it: relative to the git work tree when there is one.
fn display_path(name: &str, root: Option<&Path>) -> String {
    let p = Path::new(name);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    match root.and_then(|r| abs.strip_prefix(r).ok()) {
        Some(rel) => rel.display().to_string(),
        None => name.trim_start_matches("./").to_owned(),
    }
}

/// A regular file's bytes (at most one byte past the size limit, so a large file is seen as
/// large without being read whole).
fn read_bytes(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
}

/// Files under `path`: in a git work tree, those git tracks or would add; elsewhere, every
/// file but `.git` and `target` directories.
fn collect(path: &Path, root: Option<&Path>, out: &mut Vec<String>) -> Result<(), Failure> {
    if path.is_file() {
        out.push(path.display().to_string());
        return Ok(());
    }
    if !path.is_dir() {
        return Err(usage(format!(
            "{}: no such file or directory",
            path.display()
        )));
    }
    if root.is_some() {
        // Paths relative to the current directory, as given.
        let mut cmd = Command::new("git");
        cmd.args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
        ])
        .arg(path);
        if let Ok(o) = cmd.output()
            && o.status.success()
        {
            let list = String::from_utf8(o.stdout).map_err(|_| not_utf8(path))?;
            for name in list.split('\0').filter(|n| !n.is_empty()) {
                if Path::new(name).is_file() {
                    out.push(name.to_owned());
                }
            }
            return Ok(());
        }
    }
    walk(path, out)
}

/// A file name the scan cannot print or reopen: refused, never skipped.
fn not_utf8(under: &Path) -> Failure {
    usage(format!(
        "a file name under {} is not UTF-8; kmseal scan cannot name it: rename it",
        under.display()
    ))
}

fn walk(dir: &Path, out: &mut Vec<String>) -> Result<(), Failure> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let name = e.file_name();
        if name == ".git" || name == "target" || name == "node_modules" {
            continue;
        }
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&p, out)?,
            Ok(t) if t.is_file() => out.push(p.to_str().ok_or_else(|| not_utf8(dir))?.to_owned()),
            _ => {}
        }
    }
    Ok(())
}

fn git(args: &[&str], dir: Option<&Path>) -> Result<String, String> {
    let mut cmd = Command::new("git");
    cmd.args(args);
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    output(cmd)
}

fn output(mut cmd: Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    String::from_utf8(out.stdout).map_err(|_| "not UTF-8".to_owned())
}

fn report(findings: &[Finding], json: bool) -> Result<(), Failure> {
    let mut stdout = io::stdout().lock();
    let write = |e: io::Error| Failure {
        code: exit::OTHER,
        message: format!("cannot write the report: {e}"),
    };
    if json {
        let items: Vec<String> = findings
            .iter()
            .map(|f| {
                format!(
                    "{{\"path\":{},\"line\":{},\"rule\":{},\"message\":{}}}",
                    json_string(&f.path),
                    f.line,
                    json_string(f.rule),
                    json_string(&f.message)
                )
            })
            .collect();
        writeln!(
            stdout,
            "{{\"ok\":{},\"findings\":[{}]}}",
            findings.is_empty(),
            items.join(",")
        )
        .map_err(write)?;
    } else {
        for f in findings {
            // File names are the tree's: escaped, so none can forge a line or a terminal.
            writeln!(
                stdout,
                "{}:{}: {}: {}",
                kmseal::escape_untrusted(&f.path),
                f.line,
                f.rule,
                kmseal::escape_untrusted(&f.message)
            )
            .map_err(write)?;
        }
    }
    if findings.is_empty() {
        return Ok(());
    }
    Err(Failure {
        code: exit::OTHER,
        message: format!(
            "{} finding{} (hard-coded secrets, or files not sealed as {} says); silence a \
             false positive with `kmseal:allow` on the line or `GLOB RULE  # reason` in \
             {ALLOW_FILE}",
            findings.len(),
            if findings.len() == 1 { "" } else { "s" },
            kmseal_config::repo::RULES_FILE
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_of(text: &str) -> Vec<&'static str> {
        scan_text("app.env", text)
            .into_iter()
            .map(|f| f.rule)
            .collect()
    }

    #[test]
    fn every_pattern_compiles() {
        for r in RULES.iter() {
            assert!(r.re.is_some(), "{}", r.id);
        }
    }

    #[test]
    fn known_shapes_are_found() {
        let cases = [
            ("-----BEGIN RSA PRIVATE KEY-----", "private-key"),
            ("-----BEGIN OPENSSH PRIVATE KEY-----", "private-key"),
            ("key_id = AKIAIOSFODNN7EXAMPLF", "aws-access-key-id"),
            (
                "aws_secret_access_key = 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",
                "aws-secret-access-key",
            ),
            (r#"  "type": "service_account","#, "gcp-service-account"),
            (
                "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=dGhpcyBpcyBub3QgYSByZWFsIGtleQ==;",
                "azure-connection-string",
            ),
            (
                "token: ghp_0123456789abcdefghijABCDEFGHIJ012345",
                "github-token",
            ),
            ("SLACK=xoxb-1234567890-abcdefghij", "slack-token"),
            ("stripe = sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe-key"),
            (
                "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlMTIz",
                "jwt",
            ),
            (
                "DATABASE_URL=postgres://app:Xk9-q2Lm7pW4zR8t@db.internal:5432/app",
                "url-password",
            ),
            (r#"password = "Xk9-q2Lm7pW4zR8t""#, "password-assignment"),
            ("DB_PASSWORD=Xk9-q2Lm7pW4zR8tVb", "password-assignment"),
            (
                r#"  api_key: "9fQ2mL7xK4pW1zR8tVb3""#,
                "password-assignment",
            ),
        ];
        for (line, rule) in cases {
            assert_eq!(rules_of(line), vec![rule], "{line}");
        }
    }

    #[test]
    fn what_kmseal_knows_is_not_a_secret_is_never_a_finding() {
        for line in [
            r#"password: "kmseal:v1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8""#,
            "DB_PASSWORD=ref+aws-sm://prod/db#password",
            r#"password = "${DB_PASSWORD}""#,
            r#"password = "{{ .Values.password }}""#,
            r#"password = "changeme""#,
            r#"password = "<generate-strong-password>""#,
            "DATABASE_URL=postgres://app:${DB_PASSWORD}@db.internal/app",
            "DATABASE_URL=postgres://app:changeme@db.internal/app",
            "password_min_length = 16",
            r#"token_header = "Authorization""#,
            r#"secret_name = "prod/db""#,
            "# set PASSWORD=... in your shell",
            r#"password_hint = "Forgotten""#,               // a word
            r#"StoreKind::AzureSecret => "azure-secret","#, // a name
            r#"token_path = "API_TOKEN" if env else "api.token""#, // identifiers
            "https://example.com/path",
            r#"api_key = "Xk9-q2Lm7pW4zR8t"  # kmseal:allow test fixture"#,
        ] {
            assert!(rules_of(line).is_empty(), "{line}: {:?}", rules_of(line));
        }
    }

    #[test]
    fn unquoted_assignments_count_only_in_configuration_files() {
        let line = "secrets: &kmseal_config::Secrets,";
        assert!(scan_text("src/exec.rs", line).is_empty());
        assert_eq!(
            scan_text("app.yaml", "db_password: Xk9-q2Lm7pW4zR8tVb").len(),
            1
        );
        assert!(scan_text("main.rs", "db_password: Xk9-q2Lm7pW4zR8tVb").is_empty());
        assert!(is_config_file(".env.production") && is_config_file("settings.ini"));
        assert!(is_config_file("app.env.example") && !is_config_file("app.rs"));
    }

    #[test]
    fn a_finding_never_contains_the_value() {
        let f = &scan_text("app.py", r#"password = "Xk9-q2Lm7pW4zR8t""#)[0];
        let shown = format!("{}:{}: {}: {}", f.path, f.line, f.rule, f.message);
        assert!(!shown.contains("Xk9"), "{shown}");
        assert_eq!((f.path.as_str(), f.line), ("app.py", 1));
    }

    #[test]
    fn allow_list_globs_and_rules() {
        let allow = AllowList::parse(
            "tests/fixtures/* private-key  # test keys\n\n# comment\ndocs/*.md *\n",
        );
        let f = |path: &str, rule: &'static str| Finding {
            path: path.into(),
            line: 1,
            rule,
            message: "".into(),
        };
        assert!(allow.allows(&f("tests/fixtures/a/key.pem", "private-key")));
        assert!(!allow.allows(&f("tests/fixtures/a/key.pem", "jwt")));
        assert!(allow.allows(&f("docs/guide.md", "jwt")));
        assert!(!allow.allows(&f("docs/guide.txt", "jwt")));
        assert!(!allow.allows(&f("src/main.rs", "private-key")));
    }

    #[test]
    fn sealed_documents_are_scanned_for_what_their_policy_left_plain() {
        use kmseal_config::{Format, Policy, Sealer};
        let k = std::sync::Arc::new(kmseal::LocalKek::generate().unwrap());
        let seal = |text: &str, format: Format, policy: Policy| {
            let sealer = Sealer::new(
                kmseal::Encryptor::new(k.clone()),
                kmseal::Decryptor::new(k.clone()),
            )
            .policy(policy);
            kmseal::blocking::block_on(sealer.seal(text, format)).unwrap()
        };
        let token = "ghp_Z8k2Lq7Xv3Nw9Rt4Bm6Yc1Pd5Hs0Jf2Ga8Ue";
        for (format, text, name) in [
            (
                Format::Dotenv,
                format!("DB_PASSWORD=Xk9-q2Lm7pW4zR8tVb\nGITHUB_TOKEN={token}\n"),
                "app.sealed",
            ),
            (
                Format::Yaml,
                format!("db_password: Xk9-q2Lm7pW4zR8tVb\ngithub_token: {token}\n"),
                "app.sealed",
            ),
        ] {
            // Everything encrypted: ciphertexts and metadata are never findings.
            let all = seal(&text, format, Policy::default());
            assert!(scan_text(name, &all).is_empty(), "{all}");
            // A policy that left the token in the clear: found, though the name is no
            // config file's (a sealed document is configuration).
            let partial = seal(
                &text,
                format,
                Policy::only(["*PASSWORD", "*password"]).unwrap(),
            );
            let found: Vec<&str> = scan_text(name, &partial).iter().map(|f| f.rule).collect();
            assert_eq!(found, ["github-token"], "{partial}");
        }
    }

    fn rules_in(path: &str, line: &str) -> Vec<&'static str> {
        scan_text(path, line).into_iter().map(|f| f.rule).collect()
    }

    #[test]
    fn secrets_in_the_syntaxes_real_files_use_are_found() {
        let cases = [
            // a URL with a password and no user name (Redis)
            (
                "app.env",
                "REDIS_URL=redis://:Qm4-tR8wLx2zPk7v@cache:6379/0",
                "url-password",
            ),
            // a password in a URL's query or in a connection string
            (
                "Db.java",
                r#"String url = "jdbc:mysql://db:3306/app?user=app&password=Qm4-tR8wLx2zPk7v";"#,
                "url-password",
            ),
            (
                "appsettings.json",
                r#""Sql": "Server=tcp:db,1433;User ID=app;Password=Qm4-tR8wLx2zPk7v;Encrypt=True;""#,
                "url-password",
            ),
            // a random password that happens to have no digit
            (
                "db.go",
                r#"const dsn = "postgres://app:QmvtRwLxzPkvHsNb@db/app""#,
                "url-password",
            ),
            // typed constants, byte strings, setters
            (
                "auth.rs",
                r#"const API_TOKEN: &str = "7fK2pQ9xL4mW8zR1tVb6";"#,
                "password-assignment",
            ),
            (
                "hook.rs",
                r#"static WEBHOOK_SECRET: &[u8] = b"7fK2pQ9xL4mW8zR1tVb6";"#,
                "password-assignment",
            ),
            (
                "api.ts",
                "const apiKey: string = '7fK2pQ9xL4mW8zR1tVb6';",
                "password-assignment",
            ),
            (
                "jwt.go",
                r#"var jwtSecret = []byte("7fK2pQ9xL4mW8zR1tVb6")"#,
                "password-assignment",
            ),
            (
                "Db.java",
                r#"ds.setPassword("Qm4-tR8wLx2zPk7v");"#,
                "password-assignment",
            ),
            // names that always hold key material
            (
                "app.yaml",
                "encryption_key: 'c2VjcmV0LWtleS1tYXRlcmlhbC0zMi1ieXRlcyE='",
                "password-assignment",
            ),
            (
                "app.py",
                r#"GPG_PASSPHRASE = "Qm4-tR8wLx2zPk7v""#,
                "password-assignment",
            ),
            // unquoted: YAML lists (docker compose), dotted and hyphenated keys (properties),
            // Dockerfile ENV, shell exports
            (
                "docker-compose.yml",
                "      - POSTGRES_PASSWORD=Qm4-tR8wLx2zPk7v",
                "password-assignment",
            ),
            (
                "application.properties",
                "spring.datasource.password=Qm4-tR8wLx2zPk7v",
                "password-assignment",
            ),
            (
                "application.properties",
                "okta.client-secret = Qm4-tR8wLx2zPk7vHs9b",
                "password-assignment",
            ),
            (
                "Dockerfile",
                "ENV DB_PASSWORD=Qm4-tR8wLx2zPk7v",
                "password-assignment",
            ),
            (
                "deploy.sh",
                "export DEPLOY_TOKEN=2b7e151628aed2a6abf7158809cf4f3c",
                "password-assignment",
            ),
        ];
        let missed: Vec<_> = cases
            .iter()
            .filter(|(path, line, rule)| rules_in(path, line) != vec![*rule])
            .collect();
        assert!(missed.is_empty(), "{missed:#?}");
    }

    #[test]
    fn names_paths_arns_and_other_ciphertexts_are_not_secrets() {
        let found = [
            ("app.env", "DB_PASSWORD_FILE=/run/secrets/db_password"),
            ("app.yaml", "tokenizer: bert-base-multilingual-cased"),
            ("app.yaml", "token_provider: AwsCognitoIdentityTokenProvider"),
            ("app.yaml", "secret_store: vault-kv-v2"),
            ("cm.yaml", "  PASSWORD_POLICY: min=12,upper,lower,digit"),
            ("app.yaml", "access_key_parameter: /prod/orders/aws/access-key-id"),
            ("app.py", r#"PASSWORD_RESET_TEMPLATE = "emails/password_reset.html""#),
            ("app.py", r#"secret_ref = "projects/acme/secrets/django/versions/latest""#),
            ("test_auth.py", r#"    password = "password123""#),
            ("Auth.java", r#"static final String TOKEN_HEADER = "X-Auth-Token";"#),
            (
                "app.yaml",
                "secret_arn: arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-Ab1cDe",
            ),
            (
                "secrets.enc.yaml",
                "  password: ENC[AES256_GCM,data:q8Zx1w==,iv:Yk3mP0aB9sT2uV5wX8zA1cD4eF7gH0jK3mN6pQ9sT2u=,tag:Zm9vYmFyYmF6cXV4MTIzNA==,type:str]",
            ),
            ("app.py", r#"token = "vault:v1:8SDd3WHDOjf7mq69CyCqYjBXAiQQAVZRkFM13ok481zoCmHnSeDX9vyf7w==""#),
            ("app.env", "STRIPE_SECRET_KEY=sk_live_xxxxxxxxxxxxxxxxxxxxxxxx"),
            ("app.env", "GITHUB_TOKEN=ghp_000000000000000000000000000000000000"),
            ("Db.java", r#"String url = "jdbc:mysql://db/app?user=app&password=${DB_PASSWORD}";"#),
            ("Db.java", r#"ds.setPassword(System.getenv("DB_PASSWORD"));"#),
        ]
        .iter()
        .filter(|(path, line)| !rules_in(path, line).is_empty())
        .collect::<Vec<_>>();
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn words_joined_by_separators_read_as_names() {
        for name in [
            "bert-base-cased",
            "AwsCognitoTokenProvider",
            "vault-kv-v2",
            "password123",
            "/run/secrets/db_password",
            "XMLHttpRequest",
            "ops@acme.internal",
            "v1.2.3",
            "s3-bucket-name",
            "DefaultAWSCredentialsProviderChain",
            "X-Auth-Token",
        ] {
            assert!(looks_like_name(name), "{name}");
        }
        for drawn in [
            "Xk9-q2Lm7pW4zR8t",
            "QmvtRwLxzPkvHsNb",
            "2b7e151628aed2a6abf7158809cf4f3c",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ8d3LmKX1",
            "qzkvmxbwptrhnflsqzkvmxbwp",
            "k42-Q_HRtwpXLN",
            "uowd@MaxR519.e",
        ] {
            assert!(!looks_like_name(drawn), "{drawn}");
        }
    }
}
