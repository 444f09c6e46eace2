//! The payload AEADs and their implementations: RustCrypto (`aes-gcm`, `chacha20poly1305`)
//! and, with the `aws-lc` feature, aws-lc-rs. Both produce byte-identical frames.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;

use crate::error::Error;
use crate::suite::{KEY_LEN, Suite, TAG_LEN};

/// Which implementation runs the payload AEADs. Both produce byte-identical messages, so a
/// message sealed by one opens with the other.
///
/// Enabling the `aws-lc` feature only makes [`Backend::AwsLc`] available: nothing changes
/// until a caller chooses it, per [`Encryptor::backend`](crate::Encryptor::backend) /
/// [`Decryptor::backend`](crate::Decryptor::backend), or once for the whole process with
/// [`Backend::set_process_default`] (at the start of `main`, before any message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// RustCrypto `aes-gcm` and `chacha20poly1305` (pure Rust; the default).
    RustCrypto,
    /// aws-lc-rs (AWS-LC's assembly; needs the `aws-lc` feature).
    AwsLc,
}

static PROCESS_DEFAULT: std::sync::OnceLock<Backend> = std::sync::OnceLock::new();

impl Backend {
    /// The backends this build has.
    pub fn available() -> &'static [Backend] {
        if cfg!(feature = "aws-lc") {
            &[Backend::RustCrypto, Backend::AwsLc]
        } else {
            &[Backend::RustCrypto]
        }
    }

    /// `Ok(self)` if this build has it, else [`Error::InvalidArgument`].
    pub fn check_available(self) -> Result<Backend, Error> {
        if Backend::available().contains(&self) {
            Ok(self)
        } else {
            Err(Error::InvalidArgument(
                "the aws-lc backend is not compiled in (feature `aws-lc`)",
            ))
        }
    }

    /// The backend of encryptors and decryptors that chose none: RustCrypto, unless
    /// [`set_process_default`](Self::set_process_default) chose another first. Reading it
    /// fixes it for the life of the process.
    pub fn process_default() -> Backend {
        *PROCESS_DEFAULT.get_or_init(|| Backend::RustCrypto)
    }

    /// Sets the process default, once, before the first message (the start of `main`).
    /// Fails with [`Error::InvalidArgument`] if the default is already fixed to another
    /// backend (set before, or read by a message), or if this build lacks `backend`.
    ///
    /// ```
    /// use kmseal::Backend;
    /// // A build without the `aws-lc` feature has only RustCrypto.
    /// let best = *Backend::available().last().unwrap();
    /// Backend::set_process_default(best)?;
    /// assert_eq!(Backend::process_default(), best);
    /// Backend::set_process_default(best)?; // the same choice again is fine
    /// # Ok::<(), kmseal::Error>(())
    /// ```
    pub fn set_process_default(backend: Backend) -> Result<(), Error> {
        backend.check_available()?;
        if *PROCESS_DEFAULT.get_or_init(|| backend) == backend {
            Ok(())
        } else {
            Err(Error::InvalidArgument(
                "the process default backend is already fixed (set it once, before any message)",
            ))
        }
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

impl PayloadCipher {
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
                return Err(Error::Internal("output length differs from input length"));
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
            .map_err(|_| Error::Internal("frame too long for the AEAD"))?;
            return Ok(tag);
        }
        let buf = aes_gcm::aead::inout::InOutBuf::new(plaintext, out)
            .map_err(|_| Error::Internal("output length differs from input length"))?;
        let tag = match self {
            PayloadCipher::Aes(c) => c.encrypt_inout_detached(nonce.into(), aad, buf),
            PayloadCipher::ChaCha(c) => c.encrypt_inout_detached(nonce.into(), aad, buf),
            #[cfg(feature = "aws-lc")]
            PayloadCipher::AwsLc(_) => {
                return Err(Error::Internal("aws-lc key on the RustCrypto path"));
            }
        }
        .map_err(|_| Error::Internal("frame too long for the AEAD"))?;
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
    use crate::frame::frame_nonce;
    use crate::kek::DataKey;
    use crate::key_schedule::MessageKeys;

    fn dek(byte: u8) -> DataKey {
        DataKey::from_bytes(&[byte; 32]).unwrap()
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
