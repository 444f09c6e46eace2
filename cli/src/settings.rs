//! Settings from a small config file, below flags and the environment in precedence:
//! `$KMSEAL_HOME/config.toml`, else `$XDG_CONFIG_HOME/kmseal/config.toml` (or
//! `~/.config/kmseal/config.toml`).
//!
//! ```toml
//! keys = ["aws-kms://arn:aws:kms:eu-west-1:111122223333:key/ID", "local:///etc/kmseal/break-glass.key"]
//! suite = "chacha20-poly1305"
//! frame_size = 65536
//! ```

use std::path::PathBuf;
use std::sync::OnceLock;

use kmseal::Suite;

use crate::{Failure, usage};

#[derive(Debug, Default)]
pub(crate) struct Settings {
    pub keys: Vec<String>,
    pub suite: Option<Suite>,
    pub frame_size: Option<kmseal::FrameSize>,
}

pub(crate) fn path() -> Option<PathBuf> {
    kmseal::local::default_key_path().map(|p| p.with_file_name("config.toml"))
}

fn load() -> Result<Settings, Failure> {
    let Some(path) = path() else {
        return Ok(Settings::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
        Err(e) => return Err(usage(format!("cannot read {}: {e}", path.display()))),
    };
    let bad = |what: &str| usage(format!("{}: {what}", path.display()));
    let doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| bad(e.message()))?;
    let mut s = Settings::default();
    for (k, v) in doc.iter() {
        match k {
            "keys" => {
                let arr = v
                    .as_array()
                    .ok_or_else(|| bad("`keys` must be a list of key URIs"))?;
                for u in arr.iter() {
                    s.keys.push(
                        u.as_str()
                            .ok_or_else(|| bad("`keys` must be a list of key URIs"))?
                            .to_owned(),
                    );
                }
            }
            "suite" => {
                let name = v.as_str().ok_or_else(|| bad("`suite` must be a string"))?;
                s.suite = Some(
                    Suite::from_name(name)
                        .ok_or_else(|| bad("`suite` is aes-256-gcm or chacha20-poly1305"))?,
                );
            }
            "frame_size" => {
                let n = v
                    .as_integer()
                    .and_then(|n| u32::try_from(n).ok())
                    .and_then(|n| kmseal::FrameSize::new(n).ok())
                    .ok_or_else(|| bad("`frame_size` is 1 to 67108864"))?;
                s.frame_size = Some(n);
            }
            other => return Err(bad(&format!("unknown setting `{other}`"))),
        }
    }
    Ok(s)
}

/// The settings, read once.
pub(crate) fn get() -> Result<&'static Settings, Failure> {
    static S: OnceLock<Result<Settings, String>> = OnceLock::new();
    S.get_or_init(|| load().map_err(|f| f.message))
        .as_ref()
        .map_err(|m| usage(m.clone()))
}
