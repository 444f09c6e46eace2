//! Algorithm suites: which AEAD seals a message's frames, and its id on the wire.
//!
//! The key schedule that turns a data key into a suite's keys is in `key_schedule.rs`, the
//! AEAD implementations in `aead.rs`, the frames in `frame.rs`.

use crate::error::Error;

/// AEAD tag length of both suites.
pub(crate) const TAG_LEN: usize = 16;
/// Length of data keys, payload keys, message ids, commitments and header tags.
pub(crate) const KEY_LEN: usize = 32;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
