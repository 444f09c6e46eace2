//! SOPS's value cipher (`aes/cipher.go`): a value is
//! `ENC[AES256_GCM,data:B64,iv:B64,tag:B64,type:T]`, AES-256-GCM under the document's data
//! key with a 32-byte IV and the value's path as associated data. The empty string is stored
//! as itself, not encrypted.

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce, Tag};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// AES-256-GCM with SOPS's 256-bit IV (GHASH-derived counter block, NIST SP 800-38D §7.1).
type SopsGcm = AesGcm<Aes256, U32>;

const IV_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// Refuse absurd values before decoding (a SOPS value is a config value).
const MAX_VALUE: usize = 16 * 1024 * 1024;

/// The type a SOPS value records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Str,
    Int,
    Float,
    Bool,
    Comment,
}

/// The parts of `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`, parsed as strictly as SOPS's
/// regular expression `^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]`.
struct Parts {
    data: Vec<u8>,
    iv: Vec<u8>,
    tag: Vec<u8>,
    ty: Ty,
}

fn parse(value: &str) -> Option<Parts> {
    let body = value.strip_prefix("ENC[AES256_GCM,data:")?;
    let body = body.strip_suffix(']')?;
    let (data, rest) = body.split_once(",iv:")?;
    let (iv, rest) = rest.split_once(",tag:")?;
    let (tag, ty) = rest.split_once(",type:")?;
    if data.len() > MAX_VALUE {
        return None;
    }
    let ty = match ty {
        "str" | "bytes" => Ty::Str,
        "int" | "int64" => Ty::Int,
        "float" => Ty::Float,
        "bool" => Ty::Bool,
        "comment" => Ty::Comment,
        _ => return None,
    };
    Some(Parts {
        data: STANDARD.decode(data).ok()?,
        iv: STANDARD.decode(iv).ok()?,
        tag: STANDARD.decode(tag).ok()?,
        ty,
    })
}

/// Why a value did not open.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fail {
    /// Not of the `ENC[…]` form (or an unknown type).
    Malformed,
    /// The tag did not verify (wrong key, wrong path, altered).
    Auth,
}

/// Decrypts `value` with `key` and associated data `aad`: its type and its plaintext, which
/// must be UTF-8 (SOPS values are Go strings; `bytes` values are read as text).
pub(crate) fn decrypt(value: &str, key: &[u8], aad: &str) -> Result<(Ty, Zeroizing<String>), Fail> {
    let p = parse(value).ok_or(Fail::Malformed)?;
    if p.iv.len() != IV_LEN || p.tag.len() != TAG_LEN {
        return Err(Fail::Malformed);
    }
    let cipher = SopsGcm::new_from_slice(key).map_err(|_| Fail::Auth)?;
    let nonce = Nonce::<U32>::try_from(p.iv.as_slice()).map_err(|_| Fail::Malformed)?;
    let tag = Tag::<aes_gcm::aead::consts::U16>::try_from(p.tag.as_slice())
        .map_err(|_| Fail::Malformed)?;
    let mut buf = Zeroizing::new(p.data);
    cipher
        .decrypt_inout_detached(&nonce, aad.as_bytes(), buf.as_mut_slice().into(), &tag)
        .map_err(|_| Fail::Auth)?;
    let text = String::from_utf8(std::mem::take(&mut *buf)).map_err(|e| {
        let mut bytes = e.into_bytes();
        zeroize::Zeroize::zeroize(&mut bytes);
        Fail::Malformed
    })?;
    Ok((p.ty, Zeroizing::new(text)))
}

#[cfg(test)]
pub(crate) fn encrypt_for_tests(plain: &str, ty: &str, key: &[u8], aad: &str) -> String {
    #![allow(clippy::unwrap_used)]
    use aes_gcm::aead::AeadInOut;
    let cipher = SopsGcm::new_from_slice(key).unwrap();
    let iv = [7u8; IV_LEN];
    let nonce = Nonce::<U32>::try_from(&iv[..]).unwrap();
    let mut buf = plain.as_bytes().to_vec();
    let tag = cipher
        .encrypt_inout_detached(&nonce, aad.as_bytes(), buf.as_mut_slice().into())
        .unwrap();
    format!(
        "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{ty}]",
        STANDARD.encode(&buf),
        STANDARD.encode(iv),
        STANDARD.encode(tag)
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let key = [9u8; 32];
        let v = encrypt_for_tests("hunter2", "str", &key, "a:b:");
        let (ty, pt) = decrypt(&v, &key, "a:b:").unwrap();
        assert_eq!((ty, pt.as_str()), (Ty::Str, "hunter2"));
        assert_eq!(decrypt(&v, &key, "a:c:").unwrap_err(), Fail::Auth);
        assert_eq!(decrypt(&v, &[1u8; 32], "a:b:").unwrap_err(), Fail::Auth);
        for bad in [
            "",
            "ENC[",
            "ENC[AES256_GCM,data:,iv:,tag:,type:str]",
            "ENC[AES256_GCM,data:!!,iv:AA==,tag:AA==,type:str]",
            &v.replace("type:str", "type:nope"),
            &v[..v.len() - 1],
        ] {
            assert!(decrypt(bad, &key, "a:b:").is_err(), "{bad}");
        }
    }
}
