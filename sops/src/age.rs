//! age X25519 identities and the decryption of SOPS's `sops.age[].enc`: an ASCII-armored age
//! file whose payload is the 32-byte data key (age-encryption.org/v1, C2SP age spec).
//!
//! Only what SOPS needs: armor, the header's `X25519` stanzas (others are ignored), the header
//! MAC, and the STREAM payload; parsed as strictly as the spec and age's own parser (a file
//! age would refuse is refused).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use curve25519_dalek::montgomery::MontgomeryPoint;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::Error;

const SECRET_HRP: &str = "age-secret-key-";
const BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";
const END: &str = "-----END AGE ENCRYPTED FILE-----";
const INTRO: &[u8] = b"age-encryption.org/v1\n";
const X25519_INFO: &[u8] = b"age-encryption.org/v1/X25519";
const CHUNK: usize = 64 * 1024;
/// Columns of a full base64 line, in stanza bodies and in the armor.
const COLUMNS: usize = 64;
/// A SOPS data key is 32 bytes; refuse anything much larger before decoding it.
const MAX_ARMORED: usize = 64 * 1024;

/// age X25519 identities (`AGE-SECRET-KEY-1…`), as SOPS reads them from `SOPS_AGE_KEY`,
/// `SOPS_AGE_KEY_FILE` or `$XDG_CONFIG_HOME/sops/age/keys.txt`.
///
/// `Debug` shows how many identities there are, never key material.
///
/// ```
/// use kmseal_sops::Identities;
/// let ids = Identities::parse(
///     "# public key: age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw\n\
///      AGE-SECRET-KEY-1NJT5YCS2LWU4V4QAJQ6R4JNU7LXPDX602DZ9NUFANVU5GDTGUWCQ5T59M6\n",
/// )?;
/// assert_eq!(ids.len(), 1);
/// assert_eq!(format!("{ids:?}"), "Identities { count: 1 }");
/// # Ok::<(), kmseal_sops::Error>(())
/// ```
#[derive(Default, Clone)]
pub struct Identities {
    keys: Vec<Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("count", &self.keys.len())
            .finish()
    }
}

impl Identities {
    /// No identities (only KMS sources will be tried).
    pub fn new() -> Identities {
        Identities::default()
    }

    /// Parses an age identity file: one `AGE-SECRET-KEY-1…` per line; empty lines and lines
    /// starting with `#` are ignored. Anything else (plugin or SSH identities) is refused,
    /// naming the line, not its content.
    pub fn parse(text: &str) -> Result<Identities, Error> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = parse_secret(line).ok_or_else(|| {
                Error::Identity(format!(
                    "line {} is not an age X25519 identity (AGE-SECRET-KEY-1…)",
                    n + 1
                ))
            })?;
            keys.push(key);
        }
        Ok(Identities { keys })
    }

    /// Reads an identity file.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Identities, Error> {
        let path = path.as_ref();
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: kmseal::escape_untrusted(&path.display().to_string()).into_owned(),
            source,
        })?);
        Identities::parse(&text)
    }

    /// The identities SOPS would load: `SOPS_AGE_KEY` (identities in the variable),
    /// `SOPS_AGE_KEY_FILE` (a file), and the default file `sops/age/keys.txt` under
    /// `$XDG_CONFIG_HOME` (or `$HOME/.config`; on macOS `$HOME/Library/Application Support`
    /// when `XDG_CONFIG_HOME` is unset), all that exist, merged. None found is not an error
    /// (KMS sources may still work). `SOPS_AGE_KEY_CMD` and SSH keys are not supported.
    pub fn from_env() -> Result<Identities, Error> {
        let mut all = Identities::new();
        if let Ok(v) = std::env::var("SOPS_AGE_KEY") {
            let v = Zeroizing::new(v);
            all.extend(Identities::parse(&v)?);
        }
        if let Some(p) = std::env::var_os("SOPS_AGE_KEY_FILE") {
            all.extend(Identities::from_file(p)?);
        }
        if let Some(dir) = user_config_dir() {
            let p = dir.join("sops").join("age").join("keys.txt");
            if p.is_file() {
                all.extend(Identities::from_file(p)?);
            }
        }
        Ok(all)
    }

    /// Adds `other`'s identities.
    pub fn extend(&mut self, other: Identities) {
        self.keys.extend(other.keys);
    }

    /// How many identities.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The 32-byte payload of the armored age file `armored` (the SOPS data key), if one of
    /// these identities opens it. `None` for any failure: no identity fits, or the file is
    /// malformed or altered.
    pub(crate) fn unwrap_file(&self, armored: &str) -> Option<Zeroizing<Vec<u8>>> {
        let bin = dearmor(armored)?;
        let (file_key, payload) = self.open_header(&bin)?;
        decrypt_payload(&file_key, payload)
    }

    /// The file key and the payload, from the first X25519 stanza one of these identities
    /// opens, once the header MAC verifies. Per C2SP age: an `X25519` stanza with other than
    /// two arguments, a share that is not the canonical base64 of 32 bytes, or a body of other
    /// than 32 bytes makes the whole file invalid (not merely skipped); so do an all-zero
    /// shared secret, a wrong header MAC, and an `scrypt` stanza (which must stand alone, and
    /// which no identity here opens). Other stanzas are ignored.
    fn open_header<'a>(&self, bin: &'a [u8]) -> Option<(Zeroizing<[u8; 16]>, &'a [u8])> {
        let header = Header::parse(bin)?;
        let mut x25519 = Vec::new();
        for stanza in &header.stanzas {
            match stanza.args.first().copied() {
                Some("X25519") => {
                    let [_, share] = stanza.args.as_slice() else {
                        return None;
                    };
                    let share: [u8; 32] = STANDARD_NO_PAD.decode(share).ok()?.try_into().ok()?;
                    let body: &[u8; 32] = stanza.body.as_slice().try_into().ok()?;
                    x25519.push((share, body));
                }
                Some("scrypt") => return None,
                _ => {}
            }
        }
        for (share, body) in x25519 {
            for secret in &self.keys {
                if let Some(fk) = unwrap_x25519(secret, &share, body)? {
                    return header_mac_ok(&fk, header.authenticated, &header.mac)
                        .then_some((fk, header.payload));
                }
            }
        }
        None
    }
}

/// A recipient stanza: its arguments and its decoded body.
struct Stanza<'a> {
    args: Vec<&'a str>,
    body: Vec<u8>,
}

/// The binary header of an age file, parsed as C2SP age's ABNF says:
///
/// ```text
/// header = v1-line 1*stanza end
/// v1-line = %s"age-encryption.org/v1" LF
/// end = "--- " 43base64char LF
/// stanza = arg-line *full-line final-line
/// arg-line = "-> " argument *(SP argument) LF
/// argument = 1*VCHAR
/// full-line = 64base64char LF
/// final-line = *63base64char LF
/// ```
///
/// with canonical unpadded base64 throughout.
struct Header<'a> {
    stanzas: Vec<Stanza<'a>>,
    /// What the MAC covers: "the whole header up to and including the `---` mark".
    authenticated: &'a [u8],
    mac: [u8; 32],
    payload: &'a [u8],
}

impl<'a> Header<'a> {
    fn parse(bin: &'a [u8]) -> Option<Header<'a>> {
        let mut rest = bin.strip_prefix(INTRO)?;
        let mut stanzas = Vec::new();
        loop {
            let (line, next) = split_line(rest)?;
            if let Some(mac) = line.strip_prefix(b"--- ") {
                if stanzas.is_empty() || mac.len() != 43 {
                    return None;
                }
                let upto = bin.len() - rest.len() + 3;
                return Some(Header {
                    stanzas,
                    authenticated: &bin[..upto],
                    mac: STANDARD_NO_PAD.decode(mac).ok()?.try_into().ok()?,
                    payload: next,
                });
            }
            let args = line
                .strip_prefix(b"-> ")?
                .split(|&b| b == b' ')
                .map(|arg| {
                    let vchar = !arg.is_empty() && arg.iter().all(|b| (0x21..=0x7e).contains(b));
                    vchar.then(|| std::str::from_utf8(arg).ok()).flatten()
                })
                .collect::<Option<Vec<&str>>>()?;
            rest = next;
            let mut body = Vec::new();
            loop {
                let (line, next) = split_line(rest)?;
                rest = next;
                if line.len() > COLUMNS {
                    return None;
                }
                body.extend_from_slice(&STANDARD_NO_PAD.decode(line).ok()?);
                if line.len() < COLUMNS {
                    break;
                }
            }
            stanzas.push(Stanza { args, body });
        }
    }
}

/// The line before the next `\n`, and what follows it.
fn split_line(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = buf.iter().position(|&b| b == b'\n')?;
    Some((&buf[..i], &buf[i + 1..]))
}

fn user_config_dir() -> Option<std::path::PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return Some(x.into());
    }
    let home = std::path::PathBuf::from(std::env::var_os("HOME")?);
    Some(if cfg!(target_os = "macos") {
        home.join("Library").join("Application Support")
    } else {
        home.join(".config")
    })
}

/// The binary age file inside `armored`, parsed as strictly as age's own `armor` package:
/// PEM with the label `AGE ENCRYPTED FILE` (RFC 7468's strict encoding, as C2SP age asks), no
/// headers, every line but the last exactly 64 columns of canonical padded base64, lines
/// ending in LF or CRLF, and nothing around it but whitespace (C2SP age: implementations
/// "SHOULD reject non-canonical ASCII armor encodings except for whitespace before and after
/// the PEM block").
fn dearmor(armored: &str) -> Option<Zeroizing<Vec<u8>>> {
    if armored.len() > MAX_ARMORED {
        return None;
    }
    let blank = |l: &str| l.bytes().all(|b| b.is_ascii_whitespace());
    let mut lines = armored
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l));
    if lines.by_ref().find(|l| !blank(l))? != BEGIN {
        return None;
    }
    let mut out = Zeroizing::new(Vec::new());
    loop {
        let line = lines.next()?;
        if line == END {
            break;
        }
        if line.is_empty() || line.len() > COLUMNS {
            return None;
        }
        out.extend_from_slice(&Zeroizing::new(STANDARD.decode(line).ok()?));
        if line.len() < COLUMNS || line.ends_with('=') {
            if lines.next()? != END {
                return None;
            }
            break;
        }
    }
    lines.all(blank).then_some(out)
}

fn hkdf32(salt: &[u8], ikm: &[u8], info: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let mut out = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, out.as_mut_slice())
        .ok()?;
    Some(out)
}

/// The file key in an X25519 stanza's body: `Some(None)` when this identity does not open
/// it, `None` when the file must be refused (C2SP age: "If the shared secret is all 0x00
/// bytes, the identity implementation MUST abort").
fn unwrap_x25519(
    secret: &[u8; 32],
    share: &[u8; 32],
    body: &[u8; 32],
) -> Option<Option<Zeroizing<[u8; 16]>>> {
    let shared = Zeroizing::new(MontgomeryPoint(*share).mul_clamped(*secret).to_bytes());
    if shared.iter().all(|&b| b == 0) {
        return None;
    }
    Some(open_x25519_body(secret, share, body, &shared))
}

fn open_x25519_body(
    secret: &[u8; 32],
    share: &[u8; 32],
    body: &[u8; 32],
    shared: &[u8; 32],
) -> Option<Zeroizing<[u8; 16]>> {
    let ours = MontgomeryPoint::mul_base_clamped(*secret).to_bytes();
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(share);
    salt[32..].copy_from_slice(&ours);
    let wrap = hkdf32(&salt, shared, X25519_INFO)?;
    let (ct, tag) = body.split_at(16);
    let mut fk = Zeroizing::new([0u8; 16]);
    fk.copy_from_slice(ct);
    ChaCha20Poly1305::new_from_slice(wrap.as_slice())
        .ok()?
        .decrypt_inout_detached(
            &Nonce::default(),
            &[],
            fk.as_mut_slice().into(),
            &Tag::try_from(tag).ok()?,
        )
        .ok()?;
    Some(fk)
}

fn header_mac_ok(file_key: &[u8; 16], header: &[u8], mac: &[u8]) -> bool {
    let Some(k) = hkdf32(&[], file_key, b"header") else {
        return false;
    };
    let Ok(mut m) = <Hmac<Sha256> as KeyInit>::new_from_slice(k.as_slice()) else {
        return false;
    };
    m.update(header);
    m.verify_slice(mac).is_ok()
}

fn decrypt_payload(file_key: &[u8; 16], payload: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let (nonce, mut rest) = (payload.get(..16)?, payload.get(16..)?);
    let key = hkdf32(nonce, file_key, b"payload")?;
    let aead = ChaCha20Poly1305::new_from_slice(key.as_slice()).ok()?;
    let mut out = Zeroizing::new(Vec::new());
    let mut counter: u128 = 0;
    loop {
        let n = rest.len().min(CHUNK + 16);
        let (chunk, tail) = rest.split_at(n);
        let last = tail.is_empty();
        if chunk.len() < 16 || (chunk.len() == 16 && counter > 0) {
            return None;
        }
        let mut nonce = [0u8; 12];
        nonce[..11].copy_from_slice(&counter.to_be_bytes()[5..]);
        nonce[11] = u8::from(last);
        let (ct, tag) = chunk.split_at(chunk.len() - 16);
        let mut buf = Zeroizing::new(ct.to_vec());
        aead.decrypt_inout_detached(
            &Nonce::from(nonce),
            &[],
            buf.as_mut_slice().into(),
            &Tag::try_from(tag).ok()?,
        )
        .ok()?;
        out.extend_from_slice(&buf);
        if last {
            return Some(out);
        }
        counter += 1;
        rest = tail;
    }
}

/// Decodes `AGE-SECRET-KEY-1…` (Bech32, BIP 173) into the 32-byte X25519 scalar.
fn parse_secret(s: &str) -> Option<Zeroizing<[u8; 32]>> {
    const CHARSET: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    let lower = Zeroizing::new(s.to_ascii_lowercase());
    if s != s.to_ascii_uppercase() && s != lower.as_str() {
        return None;
    }
    let (hrp, data) = lower.rsplit_once('1')?;
    if hrp != SECRET_HRP || data.len() < 6 {
        return None;
    }
    let values: Zeroizing<Vec<u8>> = Zeroizing::new(
        data.bytes()
            .map(|c| {
                CHARSET
                    .iter()
                    .position(|&x| x == c)
                    .and_then(|p| u8::try_from(p).ok())
            })
            .collect::<Option<Vec<u8>>>()?,
    );
    let mut chk: u32 = 1;
    let hrp_exp = hrp
        .bytes()
        .map(|b| b >> 5)
        .chain(std::iter::once(0))
        .chain(hrp.bytes().map(|b| b & 31));
    for v in hrp_exp.chain(values.iter().copied()) {
        let top = chk >> 25;
        chk = ((chk & 0x1ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in [
            0x3b6a_57b2,
            0x2650_8e6d,
            0x1ea1_19fa,
            0x3d42_33dd,
            0x2a14_62b3,
        ]
        .into_iter()
        .enumerate()
        {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    if chk != 1 {
        return None;
    }
    let payload = &values[..values.len() - 6];
    let mut out = Zeroizing::new([0u8; 32]);
    let (mut acc, mut bits, mut n) = (0u32, 0u32, 0usize);
    for &v in payload {
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(n)? = ((acc >> bits) & 0xff) as u8;
            n += 1;
        }
    }
    let pad_ok = bits < 5 && acc & ((1u32 << bits) - 1) == 0;
    zeroize::Zeroize::zeroize(&mut acc);
    (n == 32 && pad_ok).then_some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // From getsops/sops age/keysource_test.go (mockIdentity, mockEncryptedKey): the payload
    // is the four bytes "data".
    const SOPS_MOCK_IDENTITY: &str =
        "AGE-SECRET-KEY-1G0Q5K9TV4REQ3ZSQRMTMG8NSWQGYT0T7TZ33RAZEE0GZYVZN0APSU24RK7";
    const SOPS_MOCK_OTHER: &str =
        "AGE-SECRET-KEY-1432K5YRNSC44GC4986NXMX6GVZ52WTMT9C79CLUVWYY4DKDHD5JSNDP4MC";
    const SOPS_MOCK_ENCRYPTED: &str = "-----BEGIN AGE ENCRYPTED FILE-----
YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBvY2t2NkdLUGRvY3l2OGNy
MVJWcUhCOEZrUG8yeCtnRnhxL0I5NFk4YjJFCmE4SVQ3MEdyZkFqRWpSa2F0NVhF
VDUybzBxdS9nSGpHSVRVMUI0UEVqZkkKLS0tIGJjeGhNQ0Y5L2VZRVVYSm90djFF
bzdnQ3UwTGljMmtrbWNMV1MxYkFzUFUK4xjOZOTGdcbzuwUY/zeBXhcF+Md3e5PQ
EylloI7MNGbadPGb
-----END AGE ENCRYPTED FILE-----";

    #[test]
    fn opens_the_sops_repository_vector() {
        let ids = Identities::parse(&format!("{SOPS_MOCK_OTHER}\n{SOPS_MOCK_IDENTITY}")).unwrap();
        assert_eq!(
            ids.unwrap_file(SOPS_MOCK_ENCRYPTED).unwrap().as_slice(),
            b"data"
        );
        let other = Identities::parse(SOPS_MOCK_OTHER).unwrap();
        assert!(other.unwrap_file(SOPS_MOCK_ENCRYPTED).is_none());
    }

    /// `bin` armored as age writes it: 64-column lines.
    fn armor(bin: &[u8], columns: usize) -> String {
        let b64 = STANDARD.encode(bin);
        let mut out = format!("{BEGIN}\n");
        for line in b64.as_bytes().chunks(columns) {
            out.push_str(std::str::from_utf8(line).unwrap());
            out.push('\n');
        }
        out.push_str(END);
        out.push('\n');
        out
    }

    #[test]
    fn every_bit_flip_and_truncation_is_refused() {
        let ids = Identities::parse(SOPS_MOCK_IDENTITY).unwrap();
        let bin = dearmor(SOPS_MOCK_ENCRYPTED).unwrap();
        assert!(ids.unwrap_file(&armor(&bin, 64)).is_some());
        for i in 0..bin.len() {
            for bit in [0x01u8, 0x80] {
                let mut b = bin.to_vec();
                b[i] ^= bit;
                assert!(ids.unwrap_file(&armor(&b, 64)).is_none(), "byte {i}");
            }
            let armored = armor(&bin[..i], 64);
            assert!(ids.unwrap_file(&armored).is_none(), "truncated at {i}");
        }
    }

    /// The mock file with `extra` stanza lines put before its own stanza, and the header MAC
    /// recomputed with its file key: what a writer who knows the recipient can make.
    fn with_stanza(extra: &str) -> String {
        let bin = dearmor(SOPS_MOCK_ENCRYPTED).unwrap();
        let header = Header::parse(&bin).unwrap();
        let secret = parse_secret(SOPS_MOCK_IDENTITY).unwrap();
        let own = &header.stanzas[0];
        let share: [u8; 32] = STANDARD_NO_PAD
            .decode(own.args[1])
            .unwrap()
            .try_into()
            .unwrap();
        let body: &[u8; 32] = own.body.as_slice().try_into().unwrap();
        let fk = unwrap_x25519(&secret, &share, body).unwrap().unwrap();
        let mut text = String::from("age-encryption.org/v1\n");
        text.push_str(extra);
        text.push_str(&format!(
            "-> X25519 {}\n{}\n---",
            own.args[1],
            STANDARD_NO_PAD.encode(body)
        ));
        let k = hkdf32(&[], fk.as_slice(), b"header").unwrap();
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(k.as_slice()).unwrap();
        m.update(text.as_bytes());
        let mac = STANDARD_NO_PAD.encode(m.finalize().into_bytes());
        let mut out = format!("{text} {mac}\n").into_bytes();
        out.extend_from_slice(header.payload);
        armor(&out, 64)
    }

    #[test]
    fn header_is_parsed_as_strictly_as_the_spec() {
        let ids = Identities::parse(SOPS_MOCK_IDENTITY).unwrap();
        let share = "XEl0dJ6y3C7KZkgmgWUicg63EyXJiwBJW8PdYJ/cYBE";
        let body32 = STANDARD_NO_PAD.encode([7u8; 32]);
        // Unknown stanzas are ignored: the re-made file still opens.
        for fine in ["", "-> example.com/enigma arg\n\n", "-> x y z\nAAAA\n"] {
            let f = with_stanza(fine);
            assert_eq!(ids.unwrap_file(&f).unwrap().as_slice(), b"data", "{fine:?}");
        }
        for bad in [
            // X25519 with three arguments, or one.
            format!("-> X25519 {share} extra\n{body32}\n"),
            format!("-> X25519\n{body32}\n"),
            // A 20-byte (or 33-byte) body.
            format!("-> X25519 {share}\n{}\n", STANDARD_NO_PAD.encode([7u8; 20])),
            format!("-> X25519 {share}\n{}\n", STANDARD_NO_PAD.encode([7u8; 33])),
            // A share that is not 32 bytes of canonical base64.
            format!("-> X25519 {}\n{body32}\n", &share[..42]),
            format!("-> X25519 {}F\n{body32}\n", &share[..42]),
            // Empty arguments: `-> `, `->  `, and a double space.
            "-> \n\n".to_owned(),
            "->  \n\n".to_owned(),
            "-> a  b\n\n".to_owned(),
            // An argument that is not VCHAR.
            "-> a\tb\n\n".to_owned(),
            "-> caf\u{e9}\n\n".to_owned(),
            // A body line that is not base64, padded, or a full line without a final one.
            "-> x\nAA A\n".to_owned(),
            "-> x\nAA==\n".to_owned(),
            format!("-> x\n{}\n", "A".repeat(64)),
            // scrypt must stand alone.
            format!("-> scrypt c2FsdHNhbHRzYWx0c2FsdA 18\n{body32}\n"),
        ] {
            assert!(ids.unwrap_file(&with_stanza(&bad)).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn armor_is_parsed_as_strictly_as_age_does() {
        let ids = Identities::parse(SOPS_MOCK_IDENTITY).unwrap();
        let bin = dearmor(SOPS_MOCK_ENCRYPTED).unwrap();
        let good = armor(&bin, 64);
        for fine in [
            good.clone(),
            good.replace('\n', "\r\n"),
            format!("\n  \n{good}\n\t\n"),
            good.trim_end().to_owned(),
        ] {
            assert!(ids.unwrap_file(&fine).is_some(), "{fine:?}");
        }
        let second = good.lines().nth(2).unwrap();
        let spaced = format!("{} {}", &second[..10], &second[10..]);
        for bad in [
            // Whitespace inside a line, or an empty line.
            good.replacen(second, &spaced, 1),
            good.replacen(second, &format!("{second}\n"), 1),
            // Lines longer or shorter than 64 columns (but the last).
            armor(&bin, 76),
            armor(&bin, 60),
            armor(&bin, 4),
            // Anything but whitespace around the block.
            format!("x\n{good}"),
            format!("{good}x\n"),
            format!(" {good}"),
            good.replace(END, &format!("{END} ")),
            // Headers, a lower-case label.
            good.replacen('\n', "\nComment: hi\n\n", 1),
            good.to_lowercase(),
            // No END line.
            good.replace(END, ""),
        ] {
            assert!(ids.unwrap_file(&bad).is_none(), "{bad:?}");
        }
        // Padding, and non-canonical bits before it, in the final group.
        for n in [1, 2] {
            let ok = armor(&[0xa5; 50][..48 + n], 64);
            assert_eq!(dearmor(&ok).unwrap().len(), 48 + n);
            let last = ok.lines().nth(2).unwrap();
            let eq = last.find('=').unwrap();
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let i = ALPHABET.iter().position(|&c| c == last.as_bytes()[eq - 1]);
            let flipped = ALPHABET[i.unwrap() ^ 1] as char;
            let tweaked = format!("{}{flipped}{}", &last[..eq - 1], &last[eq..]);
            assert!(
                dearmor(&ok.replacen(last, &tweaked, 1)).is_none(),
                "{tweaked}"
            );
            assert!(dearmor(&ok.replacen(last, last.trim_end_matches('='), 1)).is_none());
        }
    }

    #[test]
    fn identities_refuse_garbage_and_bad_checksums() {
        assert!(Identities::parse("not a key").is_err());
        let mut bad = SOPS_MOCK_IDENTITY.to_owned();
        bad.pop();
        bad.push('8');
        assert!(Identities::parse(&bad).is_err());
        let err = Identities::parse(&bad).unwrap_err().to_string();
        assert!(!err.contains(&bad[16..]), "{err}");
        assert!(Identities::parse("# only comments\n\n").unwrap().is_empty());
    }
}
