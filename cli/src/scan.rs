//! `kmseal scan`: hard-coded secrets in files, before they are committed.
//!
//! Each line is matched against rules for credentials with a known shape (private key blocks,
//! cloud and SaaS tokens, JWTs, URLs with a password) and for secret-looking assignments
//! (`password = "…"`) whose value is long and varied enough to be real. What kmseal knows is
//! not a secret is never a finding: its ciphertexts (`kmseal:v1:…`), references (`ref+…`),
//! sealed documents and messages, template placeholders, and interpolations (`${VAR}`).
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
            r#"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@'"]+:([^\s@/'"]+)@[^\s/'"]+"#,
            1,
            true,
            "a password in a URL; take it out of the URL and give it separately from a secret store (ref+URI)",
        ),
        rule(
            "password-assignment",
            r#"(?i)\b[a-z0-9_.-]*(?:password|passwd|pwd|secret|token|api_?key|access_?key|private_?key|credentials?)[a-z0-9_.-]*["']?\s*(?:=|:|:=|=>)\s*["']([^"'\s]{8,})["']"#,
            1,
            true,
            STORE,
        ),
        rule(
            "password-assignment",
            r##"(?i)^\s*(?:export\s+)?[a-z0-9_]*(?:password|passwd|secret|token|api_?key|access_?key)[a-z0-9_]*\s*[=:]\s*([^\s'"#]{8,})\s*(?:#.*)?$"##,
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

/// Whether `path` names a configuration file (values written without quotes).
fn is_config_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let name = name
        .trim_end_matches(".example")
        .trim_end_matches(".sample");
    name.starts_with(".env")
        || [
            ".env",
            ".yaml",
            ".yml",
            ".toml",
            ".ini",
            ".cfg",
            ".conf",
            ".properties",
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
        || kmseal_config::is_placeholder(v)
}

/// Whether `value` looks drawn at random rather than written by hand: letters and digits
/// mixed with enough estimated entropy (a word, a hyphenated name, an identifier or a number
/// is not), or a long run with a lot of it.
fn looks_random(value: &str) -> bool {
    let letters = value.bytes().any(|b| b.is_ascii_alphabetic());
    let digits = value.bytes().any(|b| b.is_ascii_digit());
    let bits = kmseal_config::estimate_entropy_bits(value);
    (letters && digits && bits >= 48.0) || (value.len() >= 24 && bits >= 96.0)
}

/// The findings in one file's text.
pub(crate) fn scan_text(path: &str, text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    if kmseal_config::Format::of_sealed(text).is_some() {
        // A sealed document: its values are kmseal's to check (`config check`).
        return out;
    }
    let config = is_config_file(path);
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
    let files: Vec<(String, Option<String>)> = if args.staged {
        let root = root
            .as_ref()
            .ok_or_else(|| usage("--staged needs a git work tree"))?;
        let names = git(
            &[
                "diff",
                "--cached",
                "--name-only",
                "-z",
                "--diff-filter=ACMR",
            ],
            Some(root),
        )
        .map_err(|e| usage(format!("git diff --cached: {e}")))?;
        let mut files = Vec::new();
        for name in names.split('\0').filter(|n| !n.is_empty()) {
            // The staged content, not the work tree's.
            let content = git(&["show", &format!(":{name}")], Some(root)).ok();
            files.push((name.to_owned(), content));
        }
        files
    } else {
        let paths = if args.paths.is_empty() {
            vec![PathBuf::from(".")]
        } else {
            args.paths.clone()
        };
        let mut files = Vec::new();
        for p in &paths {
            collect(p, root.as_deref(), &mut files)?;
        }
        files.into_iter().map(|f| (f, None)).collect()
    };
    let allow_at = root.clone().unwrap_or_else(|| PathBuf::from("."));
    let allow = std::fs::read_to_string(allow_at.join(ALLOW_FILE))
        .map(|t| AllowList::parse(&t))
        .unwrap_or(AllowList(Vec::new()));
    let mut rules = match (&root, args.staged) {
        (Some(root), true) => crate::rules::Finder::index(root),
        _ => crate::rules::Finder::work_tree(),
    };
    let mut findings = Vec::new();
    for (name, staged) in files {
        let text = match staged {
            Some(t) => t,
            None => match read_text(Path::new(&name)) {
                Some(t) => t,
                None => continue,
            },
        };
        if text.len() as u64 > MAX_FILE || text.as_bytes().contains(&0) {
            continue;
        }
        let shown = display_path(&name, root.as_deref());
        // Files a repository rule covers (.kmseal.toml) must be sealed as it says.
        if let Some((set, i)) = rules.rule_for(Path::new(&name))? {
            findings.extend(
                crate::rules::check(&shown, &text, &set.rules()[i])
                    .into_iter()
                    .map(|(line, rule, message)| Finding {
                        path: shown.clone(),
                        line,
                        rule,
                        message: message.into(),
                    })
                    .filter(|f| !allow.allows(f)),
            );
        }
        findings.extend(
            scan_text(&shown, &text)
                .into_iter()
                .filter(|f| !allow.allows(f)),
        );
    }
    report(&findings, args.json)
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

fn read_text(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    if bytes.starts_with(&kmseal::format::MAGIC) {
        return None; // a kmseal message
    }
    String::from_utf8(bytes).ok()
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
        if let Ok(list) = output(cmd) {
            for name in list.split('\0').filter(|n| !n.is_empty()) {
                if Path::new(name).is_file() {
                    out.push(name.to_owned());
                }
            }
            return Ok(());
        }
    }
    walk(path, out);
    Ok(())
}

fn walk(dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
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
            Ok(t) if t.is_dir() => walk(&p, out),
            Ok(t) if t.is_file() => out.push(p.display().to_string()),
            _ => {}
        }
    }
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
            writeln!(stdout, "{}:{}: {}: {}", f.path, f.line, f.rule, f.message).map_err(write)?;
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
    fn sealed_documents_are_skipped_whole() {
        let k = std::sync::Arc::new(kmseal::LocalKek::generate().unwrap());
        let sealer = kmseal_config::Sealer::new(
            kmseal::Encryptor::new(k.clone()),
            kmseal::Decryptor::new(k),
        );
        let sealed = kmseal::blocking::block_on(sealer.seal(
            "DB_PASSWORD=Xk9-q2Lm7pW4zR8tVb\n",
            kmseal_config::Format::Dotenv,
        ))
        .unwrap();
        assert!(scan_text("app.env", &sealed).is_empty());
        assert_eq!(
            scan_text("app.env", "DB_PASSWORD=Xk9-q2Lm7pW4zR8tVb\n").len(),
            1
        );
    }
}
