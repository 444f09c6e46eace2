//! Algorithm suites and the per-message key schedule.
//!
//! ```text
//! PRK          = HKDF-Extract(salt = message_id, IKM = data_key)                 (SHA-256)
//! payload_key  = HKDF-Expand(PRK, "kmseal/v1 payload key" || suite_id, 32)
//! commitment   = HKDF-Expand(PRK, "kmseal/v1 commitment"  || suite_id, 32)
//! header_key   = HKDF-Expand(PRK, "kmseal/v1 header key"  || suite_id, 32)
//! ```
//!
//! The commitment is stored in the header and compared in constant time with the value derived
//! from the unwrapped data key *before* any frame is opened. Finding two data keys with the same
//! commitment for one message id means finding an HMAC-SHA-256 collision, so a ciphertext opens
//! under at most one data key (key commitment; the property whose absence made CVE-2020-8897
//! exploitable). Because every message has its own random 256-bit id, every message has its own
//! payload key, and frame nonces can be plain counters (no random-nonce birthday bound).

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_core::TryRng;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::kek::DataKey;
use crate::secret::SecretBytes;

/// AEAD tag length of both suites.
pub const TAG_LEN: usize = 16;
/// Length of data keys, payload keys, message ids, commitments and header tags.
pub const KEY_LEN: usize = 32;

/// The AEAD used for the payload frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Suite {
    /// AES-256-GCM (NIST SP 800-38D). The default: hardware AES and carry-less multiply make
    /// it the fastest choice on current x86-64 and ARMv8 CPUs.
    #[default]
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RFC 8439). Constant-time without AES hardware.
    ChaCha20Poly1305,
}

impl Suite {
    /// Every suite this build supports.
    pub const ALL: [Suite; 2] = [Suite::Aes256Gcm, Suite::ChaCha20Poly1305];

    /// The suite id on the wire.
    pub fn id(self) -> u16 {
        match self {
            Suite::Aes256Gcm => 0x0001,
            Suite::ChaCha20Poly1305 => 0x0002,
        }
    }

    /// The suite with wire id `id`.
    pub fn from_id(id: u16) -> Result<Suite, Error> {
        match id {
            0x0001 => Ok(Suite::Aes256Gcm),
            0x0002 => Ok(Suite::ChaCha20Poly1305),
            other => Err(Error::UnknownSuite(other)),
        }
    }

    /// A short name (`aes-256-gcm`, `chacha20-poly1305`), as the CLI accepts it.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Aes256Gcm => "aes-256-gcm",
            Suite::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }

    /// Parses [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl std::fmt::Display for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Bytes of stack wiped by [`scrub_stack`].
const SCRUB_WORDS: usize = 2048; // 16 KiB

/// Overwrites the stack below the caller's frame with zeroes.
///
/// The AEAD and hash implementations copy blocks of plaintext and key material into stack
/// temporaries (batches of AES blocks, HMAC pads) that nobody clears when they return. Called
/// right after a crypto call returns, this function's frame lies where the callee frames were,
/// so wiping a large local array (volatile writes, via zeroize) removes those leftovers. The
/// memory-scan test (`tests/memory_scan.rs`) fails without it. Cost: about half a microsecond,
/// paid once per message or frame.
#[inline(never)]
pub(crate) fn scrub_stack() {
    let mut words = [0u64; SCRUB_WORDS];
    zeroize::Zeroize::zeroize(&mut words[..]);
    std::hint::black_box(&words);
}

/// Fills `buf` from the operating system's CSPRNG (getrandom, through `rand_core`).
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::SysRng
        .try_fill_bytes(buf)
        .map_err(|e| Error::Rng(e.to_string()))
}

/// HKDF-SHA-256 (RFC 5869): one extract, then any number of expands. Every key kmseal
/// derives goes through it (tested against RFC 5869 and Wycheproof).
pub(crate) struct Kdf(Hkdf<Sha256>);

impl Kdf {
    pub(crate) fn new(salt: &[u8], ikm: &[u8]) -> Kdf {
        Kdf(Hkdf::<Sha256>::new(Some(salt), ikm))
    }

    /// `info` is the concatenation of its parts (passed in parts: no allocation).
    pub(crate) fn expand(&self, info: &[&[u8]], out: &mut [u8]) -> Result<(), Error> {
        self.0
            .expand_multi_info(info, out)
            .map_err(|_| Error::InvalidArgument("HKDF output too long"))
    }
}

/// The keys of one message, derived from the data key. Dropping it wipes them.
pub(crate) struct MessageKeys {
    pub(crate) cipher: PayloadCipher,
    pub(crate) commitment: [u8; KEY_LEN],
    header_key: Zeroizing<[u8; KEY_LEN]>,
    /// The fork generation the keys were derived in: a writer that crosses a `fork()` holds
    /// them in ordinary memory (the AEAD key schedule), where parent and child would both
    /// seal frame 0, 1, ... under one key: nonce reuse. Sealing checks it.
    generation: u64,
}

impl MessageKeys {
    /// Runs the key schedule for an unsigned `suite` and `message_id` (tests; callers use
    /// [`derive_with_id`](Self::derive_with_id) with the header's wire id).
    #[cfg(test)]
    pub(crate) fn derive(dek: &DataKey, message_id: &[u8; KEY_LEN], suite: Suite) -> MessageKeys {
        MessageKeys::derive_with_id(dek, message_id, suite, suite.id())
    }

    /// The key schedule under the wire suite id `wire_id` (the suite's id, or for a signed
    /// suite that id with the signed flag): signed and unsigned messages get different keys.
    pub(crate) fn derive_with_id(
        dek: &DataKey,
        message_id: &[u8; KEY_LEN],
        suite: Suite,
        wire_id: u16,
    ) -> MessageKeys {
        let hk = Kdf::new(message_id, dek.expose_secret());
        let mut payload_key = Zeroizing::new([0u8; KEY_LEN]);
        let mut commitment = [0u8; KEY_LEN];
        let mut header_key = Zeroizing::new([0u8; KEY_LEN]);
        // Expanding 32 bytes from SHA-256 (limit 255 * 32) cannot fail; ignoring the Ok(())
        // keeps the function infallible without an unwrap.
        // info = label || suite id, passed in parts: no allocation per message.
        let id = wire_id.to_be_bytes();
        let _ = hk.expand(&[b"kmseal/v1 payload key", &id], &mut payload_key[..]);
        let _ = hk.expand(&[b"kmseal/v1 commitment", &id], &mut commitment);
        let _ = hk.expand(&[b"kmseal/v1 header key", &id], &mut header_key[..]);
        let keys = MessageKeys {
            cipher: PayloadCipher::new(suite, &payload_key),
            commitment,
            header_key,
            generation: crate::secret::fork_generation(),
        };
        scrub_stack();
        keys
    }

    /// `Err(`[`Error::ForkedSecret`]`)` in the child of a `fork()` that happened after these
    /// keys were derived: sealing there would reuse the parent's nonces.
    pub(crate) fn check_process(&self) -> Result<(), Error> {
        if self.generation == crate::secret::fork_generation() {
            Ok(())
        } else {
            Err(Error::ForkedSecret)
        }
    }

    /// A 32-byte key for an application format built on this message's data key (kmseal's
    /// value-level config documents), separated from the payload keys by its label.
    pub(crate) fn application_key(
        dek: &DataKey,
        message_id: &[u8; KEY_LEN],
        label: &str,
    ) -> Result<SecretBytes, Error> {
        let hk = Kdf::new(message_id, dek.expose_secret());
        let mut key = SecretBytes::zeroed(KEY_LEN)?;
        let len = (label.len() as u16).to_be_bytes();
        hk.expand(
            &[b"kmseal/v1 application key", &len, label.as_bytes()],
            key.expose_secret_mut(),
        )?;
        scrub_stack();
        Ok(key)
    }

    /// Derives the keys and checks `expected_commitment` in constant time. On mismatch the
    /// data key is not the one this message was encrypted under: [`Error::Decrypt`].
    pub(crate) fn derive_committed(
        dek: &DataKey,
        message_id: &[u8; KEY_LEN],
        suite: Suite,
        wire_id: u16,
        expected_commitment: &[u8; KEY_LEN],
    ) -> Result<MessageKeys, Error> {
        let keys = MessageKeys::derive_with_id(dek, message_id, suite, wire_id);
        if bool::from(keys.commitment.ct_eq(expected_commitment)) {
            Ok(keys)
        } else {
            Err(Error::Decrypt)
        }
    }

    /// HMAC-SHA-256 of the authenticated header bytes.
    pub(crate) fn header_tag(&self, header_bytes: &[u8]) -> [u8; KEY_LEN] {
        let mut mac = header_mac(&self.header_key);
        mac.update(header_bytes);
        mac.finalize().into_bytes().into()
    }

    /// Verifies a header tag in constant time.
    pub(crate) fn verify_header_tag(
        &self,
        header_bytes: &[u8],
        tag: &[u8; KEY_LEN],
    ) -> Result<(), Error> {
        let mut mac = header_mac(&self.header_key);
        mac.update(header_bytes);
        mac.verify_slice(tag).map_err(|_| Error::Decrypt)
    }
}

fn header_mac(key: &[u8; KEY_LEN]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail; the fallback is unreachable.
    <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <Hmac<Sha256> as hmac::KeyInit>::new(&Default::default()))
}

/// Which implementation runs the payload AEADs. Both produce byte-identical messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// RustCrypto `aes-gcm` and `chacha20poly1305` (pure Rust; the default).
    RustCrypto,
    /// aws-lc-rs (AWS-LC's assembly; feature `aws-lc`, the default when enabled).
    AwsLc,
}

static BACKEND: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(u8::MAX);

impl Backend {
    /// The backend new messages use: [`set`](Self::set)'s choice, else aws-lc when the
    /// `aws-lc` feature is compiled in, else RustCrypto.
    pub fn current() -> Backend {
        match BACKEND.load(std::sync::atomic::Ordering::Relaxed) {
            0 => Backend::RustCrypto,
            1 => Backend::AwsLc,
            _ if cfg!(feature = "aws-lc") => Backend::AwsLc,
            _ => Backend::RustCrypto,
        }
    }

    /// Selects the backend for the whole process (for comparisons and measurements).
    /// [`Backend::AwsLc`] needs the `aws-lc` feature.
    pub fn set(backend: Backend) -> Result<(), Error> {
        if backend == Backend::AwsLc && !cfg!(feature = "aws-lc") {
            return Err(Error::InvalidArgument(
                "the aws-lc backend is not compiled in (feature `aws-lc`)",
            ));
        }
        let v = match backend {
            Backend::RustCrypto => 0,
            Backend::AwsLc => 1,
        };
        BACKEND.store(v, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// A keyed payload AEAD. Key schedules are computed once per message and wiped on drop
/// (the `zeroize` features of aes-gcm and chacha20poly1305; aws-lc clears its key contexts
/// when they are freed).
pub(crate) enum PayloadCipher {
    Aes(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
    #[cfg(feature = "aws-lc")]
    AwsLc(Box<aws_lc_rs::aead::LessSafeKey>),
}

#[cfg(feature = "aws-lc")]
fn aws_lc_key(suite: Suite, key: &[u8; KEY_LEN]) -> Option<aws_lc_rs::aead::LessSafeKey> {
    let alg = match suite {
        Suite::Aes256Gcm => &aws_lc_rs::aead::AES_256_GCM,
        Suite::ChaCha20Poly1305 => &aws_lc_rs::aead::CHACHA20_POLY1305,
    };
    aws_lc_rs::aead::UnboundKey::new(alg, key)
        .ok()
        .map(aws_lc_rs::aead::LessSafeKey::new)
}

/// Frame nonce: 3 zero bytes, the frame index (big-endian u64), the final-frame flag.
pub(crate) fn frame_nonce(index: u64, is_final: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(is_final);
    n
}

/// Length of the frame associated data: four 16-byte blocks.
pub(crate) const FRAME_AAD_LEN: usize = 64;

/// Frame associated data: message id, frame index (big-endian u64), final-frame flag, then
/// zero padding to 64 bytes.
///
/// The padding is for speed: Poly1305's AVX2 backend only takes its four-blocks-at-a-time path
/// when the data before the ciphertext fills whole groups of four blocks. Measured on 1 MiB in
/// 64 KiB frames (examples/chacha_probe.rs): 842 µs with a 41-byte AAD, 687 µs with 64 bytes,
/// 711 µs with none. AES-GCM is indifferent (one more GHASH block per frame).
pub(crate) fn frame_aad(
    message_id: &[u8; KEY_LEN],
    index: u64,
    is_final: bool,
) -> [u8; FRAME_AAD_LEN] {
    let mut a = [0u8; FRAME_AAD_LEN];
    a[..32].copy_from_slice(message_id);
    a[32..40].copy_from_slice(&index.to_be_bytes());
    a[40] = u8::from(is_final);
    a
}

impl PayloadCipher {
    pub(crate) fn new(suite: Suite, key: &[u8; KEY_LEN]) -> PayloadCipher {
        PayloadCipher::with_backend(Backend::current(), suite, key)
    }

    pub(crate) fn with_backend(
        backend: Backend,
        suite: Suite,
        key: &[u8; KEY_LEN],
    ) -> PayloadCipher {
        #[cfg(feature = "aws-lc")]
        if backend == Backend::AwsLc
            && let Some(k) = aws_lc_key(suite, key)
        {
            return PayloadCipher::AwsLc(Box::new(k));
        }
        let _ = backend;
        match suite {
            Suite::Aes256Gcm => PayloadCipher::Aes(Box::new(Aes256Gcm::new(key.into()))),
            Suite::ChaCha20Poly1305 => {
                PayloadCipher::ChaCha(Box::new(ChaCha20Poly1305::new(key.into())))
            }
        }
    }

    /// Encrypts `buf` in place and returns the tag: [`seal_into`](Self::seal_into), the
    /// path every message takes, through a copy (so the test vectors exercise that path).
    #[cfg(test)]
    pub(crate) fn seal(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Error> {
        let input = buf.to_vec();
        self.seal_into(nonce, aad, &input, buf)
    }

    /// Encrypts `plaintext` into `out` (same length) and returns the tag.
    pub(crate) fn seal_into(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Error> {
        #[cfg(feature = "aws-lc")]
        if let PayloadCipher::AwsLc(k) = self {
            if plaintext.len() != out.len() {
                return Err(Error::InvalidArgument(
                    "output length differs from input length",
                ));
            }
            // One pass: encrypt from the input straight into the output.
            let mut tag = [0u8; TAG_LEN];
            k.seal_out_of_place_scatter(
                aws_lc_rs::aead::Nonce::assume_unique_for_key(*nonce),
                aws_lc_rs::aead::Aad::from(aad),
                plaintext,
                out,
                &[],
                &mut tag,
            )
            .map_err(|_| Error::InvalidArgument("frame too long for the AEAD"))?;
            return Ok(tag);
        }
        let buf = aes_gcm::aead::inout::InOutBuf::new(plaintext, out)
            .map_err(|_| Error::InvalidArgument("output length differs from input length"))?;
        let tag = match self {
            PayloadCipher::Aes(c) => c.encrypt_inout_detached(nonce.into(), aad, buf),
            PayloadCipher::ChaCha(c) => c.encrypt_inout_detached(nonce.into(), aad, buf),
            #[cfg(feature = "aws-lc")]
            PayloadCipher::AwsLc(_) => return Err(Error::InvalidArgument("unreachable")),
        }
        .map_err(|_| Error::InvalidArgument("frame too long for the AEAD"))?;
        Ok(tag.into())
    }

    /// Verifies the tag of `ciphertext` and only then decrypts it into `out` (same length).
    /// On failure `out` is not written.
    pub(crate) fn open_into(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), Error> {
        #[cfg(feature = "aws-lc")]
        if let PayloadCipher::AwsLc(k) = self {
            let r = k.open_separate_gather(
                aws_lc_rs::aead::Nonce::assume_unique_for_key(*nonce),
                aws_lc_rs::aead::Aad::from(aad),
                ciphertext,
                tag,
                out,
            );
            if r.is_err() {
                // aws-lc may have written unverified plaintext: never leave it behind.
                zeroize::Zeroize::zeroize(out);
                return Err(Error::Decrypt);
            }
            return Ok(());
        }
        let buf =
            aes_gcm::aead::inout::InOutBuf::new(ciphertext, out).map_err(|_| Error::Decrypt)?;
        match self {
            PayloadCipher::Aes(c) => c.decrypt_inout_detached(nonce.into(), aad, buf, tag.into()),
            PayloadCipher::ChaCha(c) => {
                c.decrypt_inout_detached(nonce.into(), aad, buf, tag.into())
            }
            #[cfg(feature = "aws-lc")]
            PayloadCipher::AwsLc(_) => return Err(Error::Decrypt),
        }
        .map_err(|_| Error::Decrypt)
    }

    /// Verifies the tag and decrypts `buf` in place, through
    /// [`open_into`](Self::open_into) (the path every message takes) and a copy. On failure
    /// `buf` is zeroized, and the error is opaque.
    #[cfg(test)]
    pub(crate) fn open(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), Error> {
        let input = buf.to_vec();
        let r = self.open_into(nonce, aad, &input, buf, tag);
        if r.is_err() {
            zeroize::Zeroize::zeroize(buf);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dek(byte: u8) -> DataKey {
        DataKey::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn suite_ids_round_trip() {
        for s in Suite::ALL {
            assert_eq!(Suite::from_id(s.id()).unwrap(), s);
            assert_eq!(Suite::from_name(s.name()), Some(s));
        }
        assert!(matches!(
            Suite::from_id(0x7777),
            Err(Error::UnknownSuite(0x7777))
        ));
    }

    #[test]
    fn key_schedule_separates_inputs() {
        let id = [9u8; 32];
        let a = MessageKeys::derive(&dek(1), &id, Suite::Aes256Gcm);
        let b = MessageKeys::derive(&dek(2), &id, Suite::Aes256Gcm);
        let c = MessageKeys::derive(&dek(1), &[8u8; 32], Suite::Aes256Gcm);
        let d = MessageKeys::derive(&dek(1), &id, Suite::ChaCha20Poly1305);
        let all = [a.commitment, b.commitment, c.commitment, d.commitment];
        for i in 0..all.len() {
            for j in i + 1..all.len() {
                assert_ne!(all[i], all[j]);
            }
        }
        assert_ne!(a.commitment, *a.header_key);
    }

    #[test]
    fn commitment_rejects_another_key_before_any_frame() {
        let id = [5u8; 32];
        let right = MessageKeys::derive(&dek(1), &id, Suite::Aes256Gcm);
        assert!(
            MessageKeys::derive_committed(&dek(1), &id, Suite::Aes256Gcm, 1, &right.commitment)
                .is_ok()
        );
        assert!(matches!(
            MessageKeys::derive_committed(&dek(2), &id, Suite::Aes256Gcm, 1, &right.commitment),
            Err(Error::Decrypt)
        ));
    }

    #[test]
    fn nonce_and_aad_layout() {
        let n = frame_nonce(0x0102030405060708, true);
        assert_eq!(n, [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1]);
        assert_ne!(frame_nonce(1, false), frame_nonce(1, true));
        let a = frame_aad(&[7; 32], 2, false);
        assert_eq!(&a[32..41], &[0, 0, 0, 0, 0, 0, 0, 2, 0]);
        assert!(a[41..].iter().all(|&b| b == 0));
        assert_eq!(frame_aad(&[7; 32], 2, true)[40], 1);
    }

    #[test]
    fn seal_open_both_suites_and_tamper() {
        for suite in Suite::ALL {
            let keys = MessageKeys::derive(&dek(3), &[1; 32], suite);
            let mut buf = *b"attack at dawn!!";
            let nonce = frame_nonce(0, true);
            let tag = keys.cipher.seal(&nonce, b"aad", &mut buf).unwrap();
            assert_ne!(&buf, b"attack at dawn!!");
            let mut good = buf;
            keys.cipher.open(&nonce, b"aad", &mut good, &tag).unwrap();
            assert_eq!(&good, b"attack at dawn!!");
            let mut bad = buf;
            assert!(
                keys.cipher
                    .open(&frame_nonce(0, false), b"aad", &mut bad, &tag)
                    .is_err()
            );
            assert!(keys.cipher.open(&nonce, b"aae", &mut bad, &tag).is_err());
        }
    }
}
