//! The per-message key schedule: HKDF-SHA-256 from the data key and the message id to the
//! payload key, the key commitment and the header key.
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

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::aead::{Backend, PayloadCipher};
use crate::error::Error;
use crate::kek::DataKey;
use crate::secret::{SecretBytes, fork_generation, scrub_stack};
use crate::suite::{KEY_LEN, Suite};

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
            .map_err(|_| Error::Internal("HKDF output too long"))
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

/// The length prefix of an application-key label. A label over 65535 bytes would be encoded
/// ambiguously: refused (callers check it before any KMS call).
pub(crate) fn application_label_len(label: &str) -> Result<u16, Error> {
    u16::try_from(label.len())
        .map_err(|_| Error::InvalidArgument("an application-key label is at most 65535 bytes"))
}

impl MessageKeys {
    /// Runs the key schedule for an unsigned `suite` and `message_id` (tests; callers use
    /// [`derive_with_id`](Self::derive_with_id) with the header's wire id).
    #[cfg(test)]
    pub(crate) fn derive(dek: &DataKey, message_id: &[u8; KEY_LEN], suite: Suite) -> MessageKeys {
        MessageKeys::derive_with_id(
            dek,
            message_id,
            suite,
            suite.id(),
            Backend::process_default(),
        )
    }

    /// The key schedule under the wire suite id `wire_id` (the suite's id, or for a signed
    /// suite that id with the signed flag): signed and unsigned messages get different keys.
    /// `backend` runs the payload AEAD.
    pub(crate) fn derive_with_id(
        dek: &DataKey,
        message_id: &[u8; KEY_LEN],
        suite: Suite,
        wire_id: u16,
        backend: Backend,
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
            cipher: PayloadCipher::with_backend(backend, suite, &payload_key),
            commitment,
            header_key,
            generation: fork_generation(),
        };
        scrub_stack();
        keys
    }

    /// `Err(`[`Error::ForkedSecret`]`)` in the child of a `fork()` that happened after these
    /// keys were derived: sealing there would reuse the parent's nonces.
    pub(crate) fn check_process(&self) -> Result<(), Error> {
        if self.generation == fork_generation() {
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
        let len = application_label_len(label)?.to_be_bytes();
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
        backend: Backend,
    ) -> Result<MessageKeys, Error> {
        let keys = MessageKeys::derive_with_id(dek, message_id, suite, wire_id, backend);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dek(byte: u8) -> DataKey {
        DataKey::from_bytes(&[byte; 32]).unwrap()
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
            MessageKeys::derive_committed(
                &dek(1),
                &id,
                Suite::Aes256Gcm,
                1,
                &right.commitment,
                Backend::RustCrypto
            )
            .is_ok()
        );
        assert!(matches!(
            MessageKeys::derive_committed(
                &dek(2),
                &id,
                Suite::Aes256Gcm,
                1,
                &right.commitment,
                Backend::RustCrypto
            ),
            Err(Error::Decrypt)
        ));
    }
}
