//! A running `kmseal` whose output is read line by line while the test signals it (shared
//! by the CLI test binaries through `#[path]`).
#![allow(dead_code, unreachable_pub)]

/// A running `kmseal exec` whose stdout lines arrive on a channel.
pub struct Running {
    pub child: std::process::Child,
    pub lines: std::sync::mpsc::Receiver<String>,
}

impl Running {
    pub fn start(mut cmd: std::process::Command) -> Running {
        let mut child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// The next line, within 20 s (a failure shows what kmseal said).
    pub fn line(&mut self) -> String {
        match self.lines.recv_timeout(std::time::Duration::from_secs(20)) {
            Ok(line) => line,
            Err(e) => {
                let _ = self.child.kill();
                let mut err = String::new();
                use std::io::Read;
                let _ = self.child.stderr.take().unwrap().read_to_string(&mut err);
                panic!("no line within 20 s ({e}); kmseal said: {err}");
            }
        }
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-s", sig, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Exit code and stderr, within 30 s.
    pub fn finish(mut self) -> (Option<i32>, String) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                self.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                return (status.code(), err);
            }
            assert!(std::time::Instant::now() < deadline, "kmseal did not exit");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}
