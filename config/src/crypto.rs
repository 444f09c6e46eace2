//! The value-level construction: deterministic authenticated encryption of each value bound
//! to its path and type (SIV style), and a keyed MAC over the whole document. See FORMAT.md,
//! "Config documents".

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use kmseal::SecretBytes;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::Error;
use crate::path::Path;

/// The label under which the document key is derived from the data key.
pub(crate) const LABEL: &str = "kmseal-config/v1";
/// Every encrypted value starts with this.
pub(crate) const PREFIX: &str = "kmseal:v1:";
const SIV_LEN: usize = 16;
const TAG_LEN: usize = 16;

/// A value's type, recorded with its ciphertext so decryption restores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A string.
    Str,
    /// An integer (kept as written).
    Int,
    /// A floating-point number (kept as written).
    Float,
    /// A boolean.
    Bool,
    /// A TOML date/time (kept as written).
    Datetime,
    /// Null, aliases and other values that are never encrypted.
    Other,
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Kind::Str => 's',
            Kind::Int => 'i',
            Kind::Float => 'f',
            Kind::Bool => 'b',
            Kind::Datetime => 'd',
            Kind::Other => 'o',
        }
    }

    pub(crate) fn from_letter(c: char) -> Option<Kind> {
        Some(match c {
            's' => Kind::Str,
            'i' => Kind::Int,
            'f' => Kind::Float,
            'b' => Kind::Bool,
            'd' => Kind::Datetime,
            _ => return None,
        })
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8; 32]) -> HmacSha256 {
    // HMAC takes keys of any length; the fallback is unreachable.
    <HmacSha256 as hmac::KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <HmacSha256 as hmac::KeyInit>::new(&Default::default()))
}

/// The three keys of a document, derived from its application key. Wiped on drop.
pub(crate) struct DocKeys {
    siv: Zeroizing<[u8; 32]>,
    enc: Zeroizing<[u8; 32]>,
    mac: Zeroizing<[u8; 32]>,
}

/// Is `s` shaped like an encrypted value? (Its content is checked on decryption.)
pub(crate) fn is_encrypted(s: &str) -> bool {
    s.strip_prefix(PREFIX)
        .and_then(|r| r.split_once(':'))
        .is_some_and(|(k, b)| k.len() == 1 && !b.is_empty())
}

/// Is `s` a well-formed encrypted value: a known kind letter and base64url of at least a
/// synthetic IV and a tag? (Whether it opens is for the key to say.)
pub(crate) fn is_well_formed(s: &str) -> bool {
    let Some((k, b64)) = s.strip_prefix(PREFIX).and_then(|r| r.split_once(':')) else {
        return false;
    };
    let mut kc = k.chars();
    let known = matches!((kc.next(), kc.next()), (Some(c), None) if Kind::from_letter(c).is_some());
    known
        && B64URL
            .decode(b64)
            .is_ok_and(|raw| raw.len() >= SIV_LEN + TAG_LEN)
}

impl DocKeys {
    pub(crate) fn derive(app_key: &SecretBytes) -> DocKeys {
        let hk = Hkdf::<Sha256>::new(None, app_key.expose_secret());
        let mut keys = DocKeys {
            siv: Zeroizing::new([0; 32]),
            enc: Zeroizing::new([0; 32]),
            mac: Zeroizing::new([0; 32]),
        };
        // 32-byte expansions of SHA-256 cannot fail.
        let _ = hk.expand(b"kmseal-config/v1 siv", &mut keys.siv[..]);
        let _ = hk.expand(b"kmseal-config/v1 value", &mut keys.enc[..]);
        let _ = hk.expand(b"kmseal-config/v1 mac", &mut keys.mac[..]);
        keys
    }

    fn aad(path: &Path, kind: Kind) -> Vec<u8> {
        let mut aad = b"kmseal-config/v1 value".to_vec();
        aad.extend_from_slice(&path.encode());
        aad.push(kind.letter() as u8);
        aad
    }

    fn siv(&self, aad: &[u8], plaintext: &[u8]) -> [u8; SIV_LEN] {
        let mut m = hmac(&self.siv);
        m.update(aad);
        m.update(plaintext);
        let full: [u8; 32] = m.finalize().into_bytes().into();
        let mut siv = [0u8; SIV_LEN];
        siv.copy_from_slice(&full[..SIV_LEN]);
        siv
    }

    fn value_cipher(&self, siv: &[u8; SIV_LEN]) -> Aes256Gcm {
        let mut m = hmac(&self.enc);
        m.update(siv);
        let key = Zeroizing::new(<[u8; 32]>::from(m.finalize().into_bytes()));
        Aes256Gcm::new(&(*key).into())
    }

    /// The associated data of a previous value (format version 4): its own label, so a
    /// previous value can never be read as a current one, and its expiry.
    fn previous_aad(path: &Path, kind: Kind, expires: u64) -> Vec<u8> {
        let mut aad = b"kmseal-config/v4 previous".to_vec();
        aad.extend_from_slice(&path.encode());
        aad.push(kind.letter() as u8);
        aad.extend_from_slice(&expires.to_be_bytes());
        aad
    }

    /// `kmseal:v1:K:base64url(siv || ciphertext || tag)`. Deterministic: the same path, kind
    /// and plaintext under the same document key give the same string.
    pub(crate) fn encrypt(
        &self,
        path: &Path,
        kind: Kind,
        plaintext: &[u8],
    ) -> Result<String, Error> {
        self.seal_value(&Self::aad(path, kind), kind, plaintext)
    }

    /// A previous value kept until `expires` (Unix seconds), in the same string form.
    pub(crate) fn encrypt_previous(
        &self,
        path: &Path,
        kind: Kind,
        expires: u64,
        plaintext: &[u8],
    ) -> Result<String, Error> {
        self.seal_value(&Self::previous_aad(path, kind, expires), kind, plaintext)
    }

    /// Decrypts a previous value written by [`encrypt_previous`](Self::encrypt_previous).
    pub(crate) fn decrypt_previous(
        &self,
        path: &Path,
        expires: u64,
        value: &str,
    ) -> Result<(Kind, SecretBytes), Error> {
        self.open_value(path, value, |kind| Self::previous_aad(path, kind, expires))
    }

    fn seal_value(&self, aad: &[u8], kind: Kind, plaintext: &[u8]) -> Result<String, Error> {
        let siv = self.siv(aad, plaintext);
        let mut buf = SecretBytes::from_slice(plaintext)?;
        let tag = self
            .value_cipher(&siv)
            .encrypt_inout_detached(&Nonce::default(), aad, buf.expose_secret_mut().into())
            .map_err(|_| Error::Crypto("value encryption failed"))?;
        let mut raw = Vec::with_capacity(SIV_LEN + plaintext.len() + TAG_LEN);
        raw.extend_from_slice(&siv);
        raw.extend_from_slice(buf.expose_secret());
        raw.extend_from_slice(&tag);
        Ok(format!("{PREFIX}{}:{}", kind.letter(), B64URL.encode(raw)))
    }

    /// Decrypts a value written by [`encrypt`](Self::encrypt) at `path`, into locked memory.
    pub(crate) fn decrypt(&self, path: &Path, value: &str) -> Result<(Kind, SecretBytes), Error> {
        self.open_value(path, value, |kind| Self::aad(path, kind))
    }

    fn open_value(
        &self,
        path: &Path,
        value: &str,
        aad_for: impl Fn(Kind) -> Vec<u8>,
    ) -> Result<(Kind, SecretBytes), Error> {
        let bad = || Error::Tampered(format!("the encrypted value at `{path}` is malformed"));
        let rest = value.strip_prefix(PREFIX).ok_or_else(bad)?;
        let (k, b64) = rest.split_once(':').ok_or_else(bad)?;
        let mut kc = k.chars();
        let kind = match (kc.next(), kc.next()) {
            (Some(c), None) => Kind::from_letter(c).ok_or_else(bad)?,
            _ => return Err(bad()),
        };
        let raw = B64URL.decode(b64).map_err(|_| bad())?;
        if raw.len() < SIV_LEN + TAG_LEN {
            return Err(bad());
        }
        let (siv, rest) = raw.split_at(SIV_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        let siv: [u8; SIV_LEN] = siv.try_into().map_err(|_| bad())?;
        let aad = aad_for(kind);
        let mut buf = SecretBytes::from_slice(ct)?;
        let opened = self.value_cipher(&siv).decrypt_inout_detached(
            &Nonce::default(),
            &aad,
            buf.expose_secret_mut().into(),
            &Tag::try_from(tag).map_err(|_| bad())?,
        );
        let tampered = || {
            Error::Tampered(format!(
                "the value at `{path}` does not belong there (or was edited)"
            ))
        };
        opened.map_err(|_| tampered())?;
        // The synthetic IV must be the one this plaintext, path and kind give.
        let expect = self.siv(&aad, buf.expose_secret());
        if !bool::from(subtle_eq(&expect, &siv)) {
            return Err(tampered());
        }
        Ok((kind, buf))
    }

    /// The document MAC: over the metadata and every value, plain or encrypted, with its path
    /// and kind, in document order.
    pub(crate) fn mac<'a>(
        &self,
        metadata: &[u8],
        leaves: impl Iterator<Item = (&'a Path, Kind, &'a str)>,
    ) -> [u8; 32] {
        let mut m = hmac(&self.mac);
        m.update(b"kmseal-config/v1 document");
        m.update(&(metadata.len() as u64).to_be_bytes());
        m.update(metadata);
        let mut n = 0u64;
        for (path, kind, text) in leaves {
            let p = path.encode();
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(&p);
            m.update(&[kind.letter() as u8]);
            m.update(&(text.len() as u64).to_be_bytes());
            m.update(text.as_bytes());
            n += 1;
        }
        m.update(&n.to_be_bytes());
        m.finalize().into_bytes().into()
    }
}

impl DocKeys {
    /// The metadata MAC (version 2): over the metadata alone (version, policy, message id,
    /// context, manifest), so it stays valid while values are edited in plaintext and seal
    /// can trust the policy and the manifest it builds on.
    pub(crate) fn meta_mac(&self, metadata: &[u8]) -> [u8; 32] {
        let mut m = hmac(&self.mac);
        m.update(b"kmseal-config/v2 metadata");
        m.update(&(metadata.len() as u64).to_be_bytes());
        m.update(metadata);
        m.finalize().into_bytes().into()
    }

    /// A manifest entry (version 2): 8 bytes identifying the path, 8 bytes identifying the
    /// value as sealed (path, kind and text: the ciphertext of an encrypted value). Keyed, so
    /// they say nothing about the values to anyone without the document key.
    pub(crate) fn manifest_entry(&self, path: &Path, kind: Kind, text: &str) -> [u8; 16] {
        let p = path.encode();
        let mut pm = hmac(&self.mac);
        pm.update(b"kmseal-config/v2 manifest path");
        pm.update(&(p.len() as u64).to_be_bytes());
        pm.update(&p);
        let mut vm = hmac(&self.mac);
        vm.update(b"kmseal-config/v2 manifest value");
        vm.update(&(p.len() as u64).to_be_bytes());
        vm.update(&p);
        vm.update(&[kind.letter() as u8]);
        vm.update(&(text.len() as u64).to_be_bytes());
        vm.update(text.as_bytes());
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&pm.finalize().into_bytes()[..8]);
        out[8..].copy_from_slice(&vm.finalize().into_bytes()[..8]);
        out
    }
}

pub(crate) fn subtle_eq(a: &[u8], b: &[u8]) -> subtle::Choice {
    use subtle::ConstantTimeEq;
    a.ct_eq(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> DocKeys {
        DocKeys::derive(&SecretBytes::random(32).unwrap())
    }

    #[test]
    fn deterministic_per_path_kind_and_plaintext() {
        let k = keys();
        let p = Path::root().key("db").key("password");
        let a = k.encrypt(&p, Kind::Str, b"hunter2").unwrap();
        assert_eq!(a, k.encrypt(&p, Kind::Str, b"hunter2").unwrap());
        assert_ne!(a, k.encrypt(&p, Kind::Str, b"hunter3").unwrap());
        assert_ne!(
            a,
            k.encrypt(&Path::root().key("db.password"), Kind::Str, b"hunter2")
                .unwrap()
        );
        assert_ne!(a, k.encrypt(&p, Kind::Int, b"hunter2").unwrap());
        assert_ne!(a, keys().encrypt(&p, Kind::Str, b"hunter2").unwrap());
        let (kind, pt) = k.decrypt(&p, &a).unwrap();
        assert_eq!((kind, pt.expose_secret()), (Kind::Str, &b"hunter2"[..]));
    }

    #[test]
    fn moved_edited_or_foreign_values_are_refused() {
        let k = keys();
        let p = Path::root().key("a");
        let v = k.encrypt(&p, Kind::Str, b"secret").unwrap();
        assert!(k.decrypt(&Path::root().key("b"), &v).is_err(), "moved");
        assert!(keys().decrypt(&p, &v).is_err(), "another document");
        let retyped = v.replacen(":s:", ":i:", 1);
        assert!(k.decrypt(&p, &retyped).is_err(), "kind changed");
        let mut raw = B64URL.decode(v.rsplit(':').next().unwrap()).unwrap();
        for i in [0, 16, raw.len() - 1] {
            raw[i] ^= 1;
            let edited = format!("{PREFIX}s:{}", B64URL.encode(&raw));
            assert!(k.decrypt(&p, &edited).is_err(), "byte {i}");
            raw[i] ^= 1;
        }
        for garbage in [
            "",
            "kmseal:v1:",
            "kmseal:v1:s:",
            "kmseal:v1:s:!!",
            "kmseal:v1:x:AAAA",
            "kmseal:v1:ss:AAAA",
            "kmseal:v1:s:AAAA",
        ] {
            assert!(k.decrypt(&p, garbage).is_err(), "{garbage}");
        }
    }
}
