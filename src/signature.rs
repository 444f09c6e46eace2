//! Signed suites: sender authenticity for messages with several recipients.
//!
//! Without a signature, whoever can *decrypt* a message with one of its KEKs learns its data
//! key and can make new messages, under the same wrapped keys, that the holders of the other
//! KEKs accept. A signed suite closes that (as the AWS Encryption SDK's signed suites do):
//!
//! * each message gets a fresh Ed25519 key pair; the public key goes into the encryption
//!   context under [`SIGNING_KEY_CONTEXT`], which every KEK binds to its wrapped key (AWS
//!   EncryptionContext, GCP AAD, Vault associated data, the local KEK's AEAD data), so a
//!   forger who cannot wrap under the other KEKs cannot change it;
//! * after the final frame comes a trailer `u16 64 || Ed25519(signing key, SHA-256("kmseal/v1
//!   signature" || authenticated header || header tag || frames))`, computed while streaming;
//!   the wrapped-key section is not covered, so rewrap still works without the signing key;
//! * the signing key is dropped (zeroized) after the trailer is written.
//!
//! Why Ed25519: measured against ECDSA P-256 and P-384 (BENCHMARKS.md, "Signed suites").
//! Decryptors check the trailer before a one-shot decrypt returns anything and before a
//! stream reports its end; [`Decryptor::require_signed`](crate::Decryptor::require_signed)
//! refuses unsigned messages before any KMS call. An unsigned message whose context names a
//! signing key (a signed message downgraded by a co-recipient) is always refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::format::Header;
use crate::secret::{fill_random, scrub_stack};

/// The encryption-context key under which a signed message records its public key
/// (base64url, no padding, of the 32-byte Ed25519 key). Reserved: an [`Encryptor`] refuses
/// it in a caller's context.
///
/// [`Encryptor`]: crate::Encryptor
pub const SIGNING_KEY_CONTEXT: &str = "kmseal:signing-key";

const SIGNATURE_LEN: usize = SIGNATURE_LEN_U16 as usize;
/// The signature length as the trailer's u16 prefix writes it.
const SIGNATURE_LEN_U16: u16 = 64;

/// Bytes after the final frame of a signed message: `u16` length, then the signature.
pub(crate) const TRAILER_LEN: usize = 2 + SIGNATURE_LEN;

const DOMAIN: &[u8] = b"kmseal/v1 signature";

/// Signs one message as it is written. Its key is zeroized on drop (ed25519-dalek's
/// `zeroize` feature).
pub(crate) struct MessageSigner {
    key: SigningKey,
    hash: Sha256,
}

impl MessageSigner {
    /// A fresh key pair from the OS CSPRNG.
    pub(crate) fn generate() -> Result<MessageSigner, Error> {
        let mut seed = Zeroizing::new([0u8; 32]);
        fill_random(&mut seed[..])?;
        Ok(MessageSigner::from_seed(&seed))
    }

    /// A signer with a fixed key (frozen test vectors).
    pub(crate) fn from_seed(seed: &[u8; 32]) -> MessageSigner {
        MessageSigner {
            key: SigningKey::from_bytes(seed),
            hash: Sha256::new_with_prefix(DOMAIN),
        }
    }

    /// The public key as it goes into the context.
    pub(crate) fn public_key_text(&self) -> String {
        B64URL.encode(self.key.verifying_key().as_bytes())
    }

    /// Feeds signed bytes: the header's authenticated part and tag, then every frame.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.hash.update(bytes);
    }

    /// The trailer, signing everything fed so far.
    pub(crate) fn finish(self) -> [u8; TRAILER_LEN] {
        let digest = self.hash.finalize();
        let signature = self.key.sign(&digest);
        // Signing expands the key on the stack; wipe what the callee frames left there.
        scrub_stack();
        let mut out = [0u8; TRAILER_LEN];
        out[..2].copy_from_slice(&SIGNATURE_LEN_U16.to_be_bytes());
        out[2..].copy_from_slice(&signature.to_bytes());
        out
    }
}

/// Checks one message's signature as it is read.
#[derive(Clone)]
pub(crate) struct MessageVerifier {
    key: VerifyingKey,
    hash: Sha256,
}

impl MessageVerifier {
    /// For a signed header: the verifier for its context's public key, already fed with the
    /// header's signed bytes. `None` for an unsigned header.
    pub(crate) fn for_header(header: &Header) -> Result<Option<MessageVerifier>, Error> {
        if !header.is_signed() {
            return Ok(None);
        }
        let key = signing_key_of(header)?
            .ok_or(Error::Malformed("a signed message names no signing key"))?;
        let mut v = MessageVerifier {
            key,
            hash: Sha256::new_with_prefix(DOMAIN),
        };
        header.signed_prefix(|bytes| v.update(bytes));
        Ok(Some(v))
    }

    /// Feeds the next frame bytes, in order.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.hash.update(bytes);
    }

    /// Checks `trailer` (exactly the bytes after the final frame). A bad signature is the
    /// opaque [`Error::Decrypt`].
    pub(crate) fn verify(self, trailer: &[u8]) -> Result<(), Error> {
        if trailer.len() < TRAILER_LEN {
            return Err(Error::Truncated("the signature trailer is incomplete"));
        }
        if trailer.len() > TRAILER_LEN || trailer[..2] != SIGNATURE_LEN_U16.to_be_bytes() {
            return Err(Error::Malformed("the signature trailer is malformed"));
        }
        let digest = self.hash.finalize();
        verify(&self.key, &digest, &trailer[2..])
    }
}

/// Ed25519 verification as every signed message uses it (RFC 8032, with ed25519-dalek's
/// strict checks: canonical `S`, no small-order public key or `R`). Any failure is the opaque
/// [`Error::Decrypt`].
pub(crate) fn verify(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> Result<(), Error> {
    let sig: [u8; SIGNATURE_LEN] = signature.try_into().map_err(|_| Error::Decrypt)?;
    key.verify_strict(message, &Signature::from_bytes(&sig))
        .map_err(|_| Error::Decrypt)
}

/// A public key from its 32 bytes, as [`signing_key_of`] takes it from a context.
pub(crate) fn public_key(bytes: &[u8]) -> Result<VerifyingKey, Error> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| Error::Malformed("the signing key in the context is malformed"))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| Error::Malformed("the signing key in the context is not a valid point"))
}

/// The public key a header's context names, if any (malformed keys are an error).
pub(crate) fn signing_key_of(header: &Header) -> Result<Option<VerifyingKey>, Error> {
    let Some(text) = header.context().get(SIGNING_KEY_CONTEXT) else {
        return Ok(None);
    };
    let bytes = B64URL
        .decode(text)
        .map_err(|_| Error::Malformed("the signing key in the context is malformed"))?;
    public_key(&bytes).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_verifies_and_any_change_fails() {
        let mut s = MessageSigner::from_seed(&[7u8; 32]);
        s.update(b"header");
        s.update(b"frames");
        let pk = VerifyingKey::from_bytes(
            &B64URL
                .decode(s.public_key_text())
                .unwrap()
                .try_into()
                .unwrap(),
        )
        .unwrap();
        let trailer = s.finish();
        let verifier = |data: &[&[u8]]| {
            let mut v = MessageVerifier {
                key: pk,
                hash: Sha256::new_with_prefix(DOMAIN),
            };
            for d in data {
                v.update(d);
            }
            v
        };
        assert!(verifier(&[b"header", b"frames"]).verify(&trailer).is_ok());
        // Split differently: the same bytes, the same signature.
        assert!(verifier(&[b"head", b"erframes"]).verify(&trailer).is_ok());
        assert!(matches!(
            verifier(&[b"header", b"frameZ"]).verify(&trailer),
            Err(Error::Decrypt)
        ));
        for i in 0..TRAILER_LEN {
            let mut bad = trailer;
            bad[i] ^= 1;
            assert!(
                verifier(&[b"header", b"frames"]).verify(&bad).is_err(),
                "{i}"
            );
        }
        assert!(matches!(
            verifier(&[b"header", b"frames"]).verify(&trailer[..TRAILER_LEN - 1]),
            Err(Error::Truncated(_))
        ));
        let mut long = trailer.to_vec();
        long.push(0);
        assert!(matches!(
            verifier(&[b"header", b"frames"]).verify(&long),
            Err(Error::Malformed(_))
        ));
    }
}
