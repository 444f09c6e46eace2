//! The git drivers (issue 23) with real `git`: `git merge` of two branches that edited
//! different values of one sealed document merges cleanly through `kmseal config
//! merge-driver` (keys from the repository's rule); edits of the same value conflict with
//! markers around encrypted lines only, resolved by `config encrypt --accept-changes`; and
//! `git diff` through `kmseal config textconv` shows which values changed, never a value.

use std::path::PathBuf;
use std::process::{Command, Output};

use super::{Env, s, stderr};

struct Repo<'a> {
    env: &'a Env,
    dir: PathBuf,
}

impl Repo<'_> {
    fn git(&self, args: &[&str]) -> Output {
        Command::new("git")
            .args(args)
            .current_dir(&self.dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", &self.dir)
            .env("KMSEAL_HOME", self.env.path("home"))
            .env_remove("KMSEAL_KEY")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.git(args);
        assert!(
            o.status.success(),
            "git {args:?}: {}{}",
            stderr(&o),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn kmseal(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        self.env
            .command(args)
            .current_dir(&self.dir)
            .output_with(stdin)
    }

    /// Sets `path` in app.yaml to `value` (from stdin) and commits.
    fn set(&self, path: &str, value: &str, message: &str) {
        let o = self.kmseal(
            &["config", "set", "-q", "app.yaml", path, "-"],
            Some(value.as_bytes()),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        self.ok(&["commit", "-qam", message]);
    }

    fn decrypted(&self, key: &str) -> String {
        let o = self.kmseal(&["config", "decrypt", "-k", key, "app.yaml"], None);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    }
}

trait OutputWith {
    fn output_with(&mut self, stdin: Option<&[u8]>) -> Output;
}

impl OutputWith for Command {
    fn output_with(&mut self, stdin: Option<&[u8]>) -> Output {
        use std::io::Write;
        use std::process::Stdio;
        self.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.spawn().unwrap();
        let mut pipe = child.stdin.take().unwrap();
        if let Some(input) = stdin {
            pipe.write_all(input).unwrap();
        }
        drop(pipe);
        child.wait_with_output().unwrap()
    }
}

const A1: &str = "alpha-Q7w2Lr9Xk4";
const B1: &str = "bravo-M3z8Pn5Vt1";
const C1: &str = "charlie-J6y1Hd2Sw8";

fn setup(env: &Env) -> (Repo<'_>, String) {
    let repo = Repo {
        env,
        dir: env.path("repo"),
    };
    std::fs::create_dir_all(&repo.dir).unwrap();
    let (_, key) = env.key_at("k.key");
    repo.ok(&["init", "-q", "-b", "main"]);
    std::fs::write(
        repo.dir.join(".kmseal.toml"),
        format!("[[rules]]\npath = \"*.yaml\"\nkeys = [\"{key}\"]\n"),
    )
    .unwrap();
    std::fs::write(
        repo.dir.join(".gitattributes"),
        "*.yaml diff=kmseal merge=kmseal\n",
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_kmseal");
    repo.ok(&[
        "config",
        "diff.kmseal.textconv",
        &format!("{bin} config textconv"),
    ]);
    repo.ok(&[
        "config",
        "merge.kmseal.driver",
        &format!("{bin} config merge-driver %O %A %B -- %P"),
    ]);
    std::fs::write(
        repo.dir.join("app.yaml"),
        format!("a: \"{A1}\"\nb: \"{B1}\"\nc: \"{C1}\"\nhost: db.internal\n"),
    )
    .unwrap();
    let o = repo.kmseal(&["config", "encrypt", "-q", "app.yaml"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    repo.ok(&["add", "."]);
    repo.ok(&["commit", "-qm", "sealed"]);
    (repo, key)
}

#[test]
fn git_merge_of_edits_to_different_values_is_clean_and_sealed() {
    let env = Env::new("git-merge");
    let (repo, key) = setup(&env);
    repo.ok(&["checkout", "-qb", "feature"]);
    repo.set("a", "alpha-two-9Kd3", "a changed");
    repo.ok(&["checkout", "-q", "main"]);
    repo.set("c", "charlie-two-4Rf8", "c changed");
    let o = repo.git(&["merge", "-q", "--no-edit", "feature"]);
    assert!(
        o.status.success(),
        "merge: {}{}",
        stderr(&o),
        String::from_utf8_lossy(&o.stdout)
    );
    // Both edits, verified under the document's key (decrypt checks every MAC).
    let doc = repo.decrypted(&key);
    assert_eq!(
        doc,
        format!(
            "a: \"alpha-two-9Kd3\"\nb: \"{B1}\"\nc: \"charlie-two-4Rf8\"\nhost: \"db.internal\"\n"
        )
    );
    let sealed = std::fs::read_to_string(repo.dir.join("app.yaml")).unwrap();
    assert!(
        !sealed.contains("alpha-two") && !sealed.contains("<<<<<<<"),
        "{sealed}"
    );
    // Sealed with the same data key: the untouched value kept its ciphertext.
    let before = repo.ok(&["show", "HEAD~2:app.yaml"]);
    let b_line = |t: &str| t.lines().find(|l| l.starts_with("b: ")).unwrap().to_owned();
    assert_eq!(b_line(&sealed), b_line(&before));

    // git diff through textconv: which values changed, no values, no metadata.
    let diff = repo.ok(&["diff", "HEAD~2", "HEAD", "--", "app.yaml"]);
    assert!(
        diff.contains("-a: \"<encrypted ") && diff.contains("+a: \"<encrypted "),
        "{diff}"
    );
    assert!(diff.contains("-c: \"<encrypted "), "{diff}");
    assert!(!diff.contains("-b: ") && !diff.contains("mac:"), "{diff}");
    for v in [A1, B1, C1, "alpha-two", "charlie-two"] {
        assert!(!diff.contains(v), "{diff}");
    }
}

#[test]
fn git_merge_of_edits_to_the_same_value_conflicts_on_ciphertexts_only() {
    let env = Env::new("git-conflict");
    let (repo, key) = setup(&env);
    repo.ok(&["checkout", "-qb", "feature"]);
    repo.set("b", "theirs-Vq5Lm2Zx8", "b theirs");
    repo.ok(&["checkout", "-q", "main"]);
    repo.set("b", "ours-Tp4Kw9Ns3", "b ours");
    let o = repo.git(&["merge", "-q", "--no-edit", "feature"]);
    assert!(!o.status.success(), "the merge should conflict");
    let text = std::fs::read_to_string(repo.dir.join("app.yaml")).unwrap();
    assert!(
        text.contains("<<<<<<<") && text.contains(">>>>>>>"),
        "{text}"
    );
    for v in ["theirs-Vq5", "ours-Tp4", A1, B1, C1] {
        assert!(!text.contains(v), "{text}");
    }
    // Inside the markers: ciphertext lines only.
    let inside: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("<<<<<<<"))
        .take_while(|l| !l.starts_with(">>>>>>>"))
        .filter(|l| !l.starts_with("<<<<<<<") && !l.starts_with("======="))
        .collect();
    assert!(!inside.is_empty());
    assert!(
        inside.iter().all(|l| l.starts_with("b: \"kmseal:v1:")),
        "{inside:?}"
    );

    // Resolve by taking theirs, then seal again: the value is theirs, verified.
    let mut resolved = String::new();
    let mut side = 0;
    for l in text.lines() {
        if l.starts_with("<<<<<<<") {
            side = 1;
        } else if l.starts_with("=======") {
            side = 2;
        } else if l.starts_with(">>>>>>>") {
            side = 0;
        } else if side != 1 {
            resolved.push_str(l);
            resolved.push('\n');
        }
    }
    std::fs::write(repo.dir.join("app.yaml"), resolved).unwrap();
    let o = repo.kmseal(&["config", "decrypt", "-k", &key, "app.yaml"], None);
    assert!(
        !o.status.success(),
        "an unsealed resolution must not verify"
    );
    let o = repo.kmseal(
        &["config", "encrypt", "-q", "--accept-changes", "app.yaml"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(repo.decrypted(&key).contains("b: \"theirs-Vq5Lm2Zx8\""));
}

#[test]
fn merge_driver_without_the_key_leaves_ours_and_fails() {
    let env = Env::new("git-nokey");
    let (repo, _key) = setup(&env);
    let dir = &repo.dir;
    let base = std::fs::read_to_string(dir.join("app.yaml")).unwrap();
    repo.set("a", "alpha-three-2Wq7", "a");
    let ours = std::fs::read_to_string(dir.join("app.yaml")).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    // Theirs changed another value without the key: the line would merge cleanly as text.
    let theirs = base.replace("host: ", "host_x: ");
    let (o_path, a_path, b_path) = (write("O", &base), write("A", &ours), write("B", &theirs));
    // The rules file names a key that is gone: nothing can be decrypted or verified.
    std::fs::write(
        dir.join(".kmseal.toml"),
        "[[rules]]\npath = \"*.yaml\"\nkeys = [\"local:///nonexistent/k.key\"]\n",
    )
    .unwrap();
    let o = repo.kmseal(
        &[
            "config",
            "merge-driver",
            s(&o_path),
            s(&a_path),
            s(&b_path),
            "--",
            "app.yaml",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("not merged"), "{}", stderr(&o));
    // Ours is left exactly as it was: nothing unverified was taken in.
    assert_eq!(std::fs::read_to_string(&a_path).unwrap(), ours);
}
