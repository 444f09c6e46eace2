//! The payload AEADs and their implementations: RustCrypto (`aes-gcm`, `chacha20poly1305`)
//! and, with the `aws-lc` feature, aws-lc-rs. Both produce byte-identical frames.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;

use crate::error::Error;
use crate::suite::{KEY_LEN, Suite, TAG_LEN};

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
