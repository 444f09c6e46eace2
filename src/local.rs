//! The embedded local KEK: a 256-bit key in a file or an environment variable, for
//! development, tests, CI and air-gapped use. No cloud account needed.
//!
//! Key file (text, mode 0600, refused when group- or world-accessible):
//!
//! ```text
//! kmseal-local-key v1
//! id: 3f9c0a4e5b6d7e8f9a0b1c2d3e4f5a6b
//! created: 2026-11-22T18:00:00Z
//! key: <base64 of 32 random bytes>
//! ```
//!
//! The id is a fingerprint of the key (HKDF, not reversible), so the same key has the same id
//! wherever it is loaded from. Wrapping uses AES-256-GCM under a key derived from the KEK,
//! with a random 96-bit nonce and the canonical encryption context as associated data:
//! `wrapped = nonce (12) || ciphertext (32) || tag (16)`.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::context::EncryptionContext;
use crate::error::Error;
use crate::kek::{DataKey, Kek, KeyUri, Provider, WrappedKey};
use crate::secret::SecretBytes;
use crate::secret::{fill_random, scrub_stack};
use crate::suite::{KEY_LEN, TAG_LEN};

const FILE_MAGIC: &str = "kmseal-local-key v1";
const WRAP_AAD_LABEL: &[u8] = b"kmseal/v1 local wrap";
const NONCE_LEN: usize = 12;
/// Length of a locally wrapped data key.
pub const LOCAL_WRAPPED_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;
/// How to make a key for the environment-variable form.
const HOW_TO_GENERATE: &str =
    "generate one with `kmseal keygen --print-env` or `head -c 32 /dev/urandom | base64`";

/// A local key-encryption key. See the [module docs](self).
///
/// ```
/// use kmseal::{KeyUri, LocalKek};
///
/// let dir = std::env::temp_dir().join(format!("kmseal-doc-{}", std::process::id()));
/// let path = dir.join("dev.key");
/// let created = LocalKek::create_file(&path)?;          // mode 0600, never overwrites
/// let uri: KeyUri = format!("local://{}", path.display()).parse()?;
/// let loaded = LocalKek::from_uri(&uri)?;
/// assert_eq!(created.key_id(), loaded.key_id());        // the id is a fingerprint of the key
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LocalKek {
    wrap_key: SecretBytes,
    key_id: String,
    uri: Option<KeyUri>,
}

impl std::fmt::Debug for LocalKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKek")
            .field("key_id", &self.key_id)
            .field("uri", &self.uri.as_ref().map(ToString::to_string))
            .finish_non_exhaustive()
    }
}

impl LocalKek {
    /// A new random key (not saved anywhere; see [`create_file`](Self::create_file)).
    pub fn generate() -> Result<LocalKek, Error> {
        let master = SecretBytes::random(KEY_LEN)?;
        LocalKek::from_master(&master, None)
    }

    /// Builds a KEK from the 32 master key bytes.
    pub fn from_key_bytes(master: &SecretBytes) -> Result<LocalKek, Error> {
        if master.len() != KEY_LEN {
            return Err(Error::InvalidArgument("a local key is exactly 32 bytes"));
        }
        LocalKek::from_master(master, None)
    }

    fn from_master(master: &SecretBytes, uri: Option<KeyUri>) -> Result<LocalKek, Error> {
        let hk = Hkdf::<Sha256>::new(Some(b"kmseal/v1 local key"), master.expose_secret());
        let mut wrap_key = SecretBytes::zeroed(KEY_LEN)?;
        let mut id = [0u8; 16];
        // 32 and 16 bytes are far below HKDF-SHA-256's 8160-byte limit; these cannot fail.
        let _ = hk.expand(b"wrap key", wrap_key.expose_secret_mut());
        let _ = hk.expand(b"key id", &mut id);
        scrub_stack();
        Ok(LocalKek {
            wrap_key,
            key_id: id.iter().map(|b| format!("{b:02x}")).collect(),
            uri,
        })
    }

    /// Loads the KEK a `local://` URI names: `local://PATH` (a key file) or
    /// `local://env:VAR` (base64 in an environment variable).
    pub fn from_uri(uri: &KeyUri) -> Result<LocalKek, Error> {
        if uri.provider() != Provider::Local {
            return Err(Error::InvalidKeyUri {
                uri: uri.to_string(),
                reason: "not a local:// URI".into(),
            });
        }
        let mut kek = match uri.body().strip_prefix("env:") {
            Some(var) => LocalKek::from_env(var)?,
            None => LocalKek::from_file(uri.body())?,
        };
        kek.uri = Some(uri.clone());
        Ok(kek)
    }

    /// Reads the base64 key from environment variable `var`.
    pub fn from_env(var: &str) -> Result<LocalKek, Error> {
        let value = Zeroizing::new(std::env::var(var).map_err(|_| Error::LocalKey {
            source_name: format!("environment variable {var}"),
            reason: format!("is not set (or not UTF-8); {HOW_TO_GENERATE}"),
        })?);
        let master = decode_key(value.trim()).map_err(|reason| Error::LocalKey {
            source_name: format!("environment variable {var}"),
            reason: format!("{reason}; {HOW_TO_GENERATE}"),
        })?;
        LocalKek::from_master(&master, None)
    }

    /// Loads a key file, with the checks ssh's `StrictModes` makes of a private key:
    ///
    /// * the path itself is not a symbolic link (opened with `O_NOFOLLOW`) and is a regular
    ///   file (opened with `O_NONBLOCK` and checked on the open descriptor, so a FIFO planted
    ///   at the path is refused instead of hanging the process);
    /// * owned by the effective user (or root), not accessible by group or others;
    /// * in a directory that is owned by the effective user or root and not writable by group
    ///   or others (where someone else could replace the file).
    ///
    /// Every refusal says how to fix it.
    pub fn from_file(path: impl AsRef<Path>) -> Result<LocalKek, Error> {
        let path = path.as_ref();
        let hint = format!("create one with `kmseal keygen -o {}`", path.display());
        let text =
            crate::private_file::read_private(path, 4096, &hint).map_err(|r| Error::LocalKey {
                source_name: path.display().to_string(),
                reason: r.reason(),
            })?;
        LocalKek::from_key_file_contents(text.expose_secret(), &path.display().to_string())
    }

    /// Parses the key-file format from memory (a key fetched from a secret store); `name`
    /// says where it came from in errors. The permission check of
    /// [`from_file`](Self::from_file) does not apply.
    pub fn from_key_file_contents(text: &[u8], name: &str) -> Result<LocalKek, Error> {
        let err = |reason: String| Error::LocalKey {
            source_name: name.to_owned(),
            reason,
        };
        if text.len() > 4096 {
            return Err(err("is too large to be a kmseal key file".into()));
        }
        let (master, id) = parse_key_file(text).map_err(|r| err(r.into()))?;
        let kek = LocalKek::from_master(&master, None)?;
        if let Some(id) = id
            && id != kek.key_id
        {
            return Err(err(
                "the id line does not match the key (file corrupted?)".into()
            ));
        }
        Ok(kek)
    }

    /// Generates a key and writes it to a new file at `path` with mode 0600, never
    /// overwriting an existing file. Parent directories are created with mode 0700.
    pub fn create_file(path: impl AsRef<Path>) -> Result<LocalKek, Error> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let master = SecretBytes::random(KEY_LEN)?;
        let kek = LocalKek::from_master(&master, None)?;
        let mut text = SecretBytes::with_capacity(256)?;
        let mut b64 = SecretBytes::zeroed(44)?;
        let n = STANDARD
            .encode_slice(master.expose_secret(), b64.expose_secret_mut())
            .map_err(|_| Error::Internal("base64 buffer too small"))?;
        b64.truncate(n);
        write!(
            text,
            "{FILE_MAGIC}\nid: {}\ncreated: {}\nkey: ",
            kek.key_id,
            rfc3339_now()
        )?;
        text.extend_from_slice(b64.expose_secret())?;
        text.extend_from_slice(b"\n")?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::LocalKey {
                source_name: path.display().to_string(),
                reason: format!("cannot create: {e}"),
            })?;
        file.write_all(text.expose_secret())?;
        file.sync_all()?;
        Ok(kek)
    }

    /// The base64 form for `local://env:VAR`, in locked memory.
    pub fn generate_env_value() -> Result<SecretBytes, Error> {
        let master = SecretBytes::random(KEY_LEN)?;
        let mut b64 = SecretBytes::zeroed(44)?;
        STANDARD
            .encode_slice(master.expose_secret(), b64.expose_secret_mut())
            .map_err(|_| Error::Internal("base64 buffer too small"))?;
        Ok(b64)
    }

    /// The fingerprint recorded in wrapped keys (32 hex digits).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Wraps with an explicit nonce (for frozen test vectors only).
    pub(crate) fn wrap_with_nonce(
        &self,
        key: &DataKey,
        context: &EncryptionContext,
        nonce: [u8; NONCE_LEN],
    ) -> Result<WrappedKey, Error> {
        let cipher = self.cipher()?;
        key.check_process()?;
        let mut out = Vec::with_capacity(LOCAL_WRAPPED_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(key.expose_secret());
        let tag = cipher
            .encrypt_inout_detached(
                &nonce.into(),
                &wrap_aad(context),
                (&mut out[NONCE_LEN..]).into(),
            )
            .map_err(|_| Error::Internal("wrap failed"))?;
        out.extend_from_slice(&tag);
        Ok(WrappedKey {
            provider: Provider::Local.scheme().to_owned(),
            key_id: self.key_id.clone(),
            ciphertext: out,
        })
    }

    fn cipher(&self) -> Result<Aes256Gcm, Error> {
        // In a forked child the wrap key reads as zeros: refuse instead of wrapping under an
        // all-zero AES key.
        self.wrap_key.check_process()?;
        Aes256Gcm::new_from_slice(self.wrap_key.expose_secret())
            .map_err(|_| Error::Internal("bad local wrap key length"))
    }
}

fn wrap_aad(context: &EncryptionContext) -> Vec<u8> {
    let mut aad = WRAP_AAD_LABEL.to_vec();
    context.encode_into(&mut aad);
    aad
}

#[async_trait]
impl Kek for LocalKek {
    fn provider(&self) -> &str {
        Provider::Local.scheme()
    }

    fn key_id(&self) -> &str {
        &self.key_id
    }

    fn describe(&self) -> String {
        match &self.uri {
            Some(uri) => format!("{uri} (id {})", self.key_id),
            None => format!("local:{}", self.key_id),
        }
    }

    async fn wrap(&self, key: &DataKey, context: &EncryptionContext) -> Result<WrappedKey, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let wrapped = self.wrap_with_nonce(key, context, nonce);
        scrub_stack();
        wrapped
    }

    async fn unwrap(
        &self,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
    ) -> Result<DataKey, Error> {
        if wrapped.ciphertext.len() != LOCAL_WRAPPED_LEN {
            return Err(Error::Decrypt);
        }
        let (nonce, rest) = wrapped.ciphertext.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(KEY_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| Error::Decrypt)?;
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| Error::Decrypt)?;
        let mut key = SecretBytes::from_slice(ct)?;
        let opened = self.cipher()?.decrypt_inout_detached(
            &nonce.into(),
            &wrap_aad(context),
            key.expose_secret_mut().into(),
            &tag.into(),
        );
        scrub_stack();
        opened.map_err(|_| Error::Decrypt)?;
        DataKey::from_secret(key)
    }
}

/// Decodes base64 of exactly 32 bytes straight into locked memory.
fn decode_key(b64: &str) -> Result<SecretBytes, &'static str> {
    if b64.is_empty() {
        return Err("is empty");
    }
    let mut out = SecretBytes::zeroed(48).map_err(|_| "cannot allocate secret memory")?;
    let n = STANDARD
        .decode_slice(b64.as_bytes(), out.expose_secret_mut())
        .map_err(|_| "is not valid base64 of a 32-byte key")?;
    if n != KEY_LEN {
        return Err("must be base64 of exactly 32 bytes");
    }
    out.truncate(KEY_LEN);
    Ok(out)
}

/// Parses a key file; returns the key and the recorded id.
fn parse_key_file(text: &[u8]) -> Result<(SecretBytes, Option<String>), &'static str> {
    let text = std::str::from_utf8(text).map_err(|_| "is not a kmseal key file (not UTF-8)")?;
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(FILE_MAGIC) {
        return Err("is not a kmseal key file (first line must be `kmseal-local-key v1`)");
    }
    let (mut key, mut id) = (None, None);
    for line in lines {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (field, value) = line
            .split_once(':')
            .ok_or("has a line that is not `field: value`")?;
        match field.trim() {
            "key" if key.is_none() => key = Some(decode_key(value.trim())?),
            "id" if id.is_none() => id = Some(value.trim().to_owned()),
            "created" => {}
            "key" | "id" => return Err("has a duplicate field"),
            _ => return Err("has an unknown field"),
        }
    }
    Ok((key.ok_or("has no `key:` line")?, id))
}

/// Current UTC time as RFC 3339 (civil-from-days, Howard Hinnant's algorithm).
fn rfc3339_now() -> String {
    crate::time::rfc3339(std::time::SystemTime::now())
}

/// Where `kmseal` keeps its development key when none is given:
/// `$KMSEAL_HOME/dev.key`, else `$XDG_CONFIG_HOME/kmseal/dev.key`, else
/// `~/.config/kmseal/dev.key`. Always outside any repository checkout.
pub fn default_key_path() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("KMSEAL_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(home).join("dev.key"));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("kmseal").join("dev.key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        crate::blocking::block_on(f)
    }

    #[test]
    fn wrap_unwrap_binds_context() {
        let kek = LocalKek::generate().unwrap();
        let dek = DataKey::generate().unwrap();
        let ctx = EncryptionContext::new().with("app", "a").unwrap();
        let w = block_on(kek.wrap(&dek, &ctx)).unwrap();
        assert_eq!(w.ciphertext.len(), LOCAL_WRAPPED_LEN);
        assert_eq!(block_on(kek.unwrap(&w, &ctx)).unwrap(), dek);
        let other = EncryptionContext::new().with("app", "b").unwrap();
        assert!(matches!(
            block_on(kek.unwrap(&w, &other)),
            Err(Error::Decrypt)
        ));
        let kek2 = LocalKek::generate().unwrap();
        assert!(matches!(
            block_on(kek2.unwrap(&w, &ctx)),
            Err(Error::Decrypt)
        ));
    }

    #[test]
    fn env_key_validation() {
        // SAFETY-free: tests in this module use unique variable names.
        let good = LocalKek::generate_env_value().unwrap();
        let good = std::str::from_utf8(good.expose_secret())
            .unwrap()
            .to_owned();
        assert!(decode_key(&good).is_ok());
        for bad in [
            "",
            "abc",
            "!!!!",
            &STANDARD.encode([1u8; 31]),
            &STANDARD.encode([1u8; 33]),
        ] {
            assert!(decode_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_file_round_trip_and_permissions() {
        let dir = std::env::temp_dir().join(format!("kmseal-local-{}", std::process::id()));
        let path = dir.join("sub").join("k.key");
        let _ = std::fs::remove_dir_all(&dir);
        let kek = LocalKek::create_file(&path).unwrap();
        assert!(LocalKek::create_file(&path).is_err(), "must not overwrite");
        let loaded = LocalKek::from_file(&path).unwrap();
        assert_eq!(loaded.key_id(), kek.key_id());
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = LocalKek::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        // Tamper with the id line.
        let text = std::fs::read_to_string(&path).unwrap();
        let id_line = format!("id: {}", kek.key_id());
        std::fs::write(
            &path,
            text.replace(&id_line, "id: 00000000000000000000000000000000"),
        )
        .unwrap();
        assert!(
            LocalKek::from_file(&path)
                .unwrap_err()
                .to_string()
                .contains("does not match")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn key_file_parser_rejects_garbage() {
        for bad in [
            &b""[..],
            b"hello",
            b"kmseal-local-key v1\n",
            b"kmseal-local-key v1\nkey: AAAA\n",
            b"kmseal-local-key v1\nfoo: bar\n",
            b"kmseal-local-key v2\nkey: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
            b"\xff\xfe",
        ] {
            assert!(
                parse_key_file(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let ok = b"kmseal-local-key v1\nkey: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        assert!(parse_key_file(ok).is_ok());
    }

    #[test]
    fn timestamp_shape() {
        let t = rfc3339_now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}
