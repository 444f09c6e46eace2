//! Generated secrets: passwords, API keys and signing secrets drawn from the OS CSPRNG
//! straight into locked memory, in the shapes the deployment guides ask for
//! (`openssl rand -base64 32`).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;

use super::{SecretBytes, SecretString};
use crate::error::Error;

/// How a generated secret is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alphabet {
    /// Standard base64 with padding, of `length` random bytes (`openssl rand -base64 N`).
    Base64,
    /// URL-safe base64 without padding, of `length` random bytes (tokens in URLs, JWT keys).
    Base64Url,
    /// Lower-case hex, of `length` random bytes (`openssl rand -hex N`).
    Hex,
    /// `length` characters from `A–Z a–z 0–9`, uniformly (no modulo bias): for systems that
    /// refuse symbols.
    Alnum,
}

impl Alphabet {
    fn name(self) -> &'static str {
        match self {
            Alphabet::Base64 => "base64",
            Alphabet::Base64Url => "base64url",
            Alphabet::Hex => "hex",
            Alphabet::Alnum => "alnum",
        }
    }
}

/// A generator: an [`Alphabet`] and a length, written `ALPHABET:LENGTH` (`base64:32`,
/// `hex:32`, `base64url:48`, `alnum:40`). For the byte alphabets the length counts random
/// bytes, as `openssl rand` does; for `alnum` it counts characters. The default, `base64:32`,
/// is the guides' `openssl rand -base64 32`: 256 bits.
///
/// ```
/// use kmseal::secret::GenerateSpec;
///
/// let spec: GenerateSpec = "base64:32".parse()?;
/// let secret = spec.generate()?; // SecretString, locked
/// assert_eq!(secret.len(), 44);
/// assert_eq!(spec.entropy_bits(), 256.0);
/// assert_eq!(spec.to_string(), "base64:32");
/// # Ok::<(), kmseal::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GenerateSpec {
    alphabet: Alphabet,
    length: usize,
}

/// Fewest bits a generator may produce (below this it is not a secret).
const MIN_BITS: f64 = 96.0;
/// Most random bytes (or alnum characters) one generator draws.
const MAX_LENGTH: usize = 4096;

impl Default for GenerateSpec {
    fn default() -> GenerateSpec {
        GenerateSpec {
            alphabet: Alphabet::Base64,
            length: 32,
        }
    }
}

impl GenerateSpec {
    /// `length` random bytes (or characters, for [`Alphabet::Alnum`]) written in `alphabet`.
    /// Refused below 96 bits of entropy or above 4096.
    pub fn new(alphabet: Alphabet, length: usize) -> Result<GenerateSpec, Error> {
        let spec = GenerateSpec { alphabet, length };
        if spec.entropy_bits() < MIN_BITS {
            return Err(Error::InvalidArgument(
                "a generated secret needs at least 96 bits (base64:12, hex:12, alnum:17)",
            ));
        }
        if length > MAX_LENGTH {
            return Err(Error::InvalidArgument(
                "a generated secret is at most 4096 random bytes or characters",
            ));
        }
        Ok(spec)
    }

    /// The alphabet.
    pub fn alphabet(&self) -> Alphabet {
        self.alphabet
    }

    /// The length: random bytes, or characters for [`Alphabet::Alnum`].
    pub fn length(&self) -> usize {
        self.length
    }

    /// Bits of entropy in one generated value.
    pub fn entropy_bits(&self) -> f64 {
        let n = self.length as f64;
        match self.alphabet {
            Alphabet::Alnum => n * 62f64.log2(),
            _ => n * 8.0,
        }
    }

    /// The length of a generated value in characters.
    pub fn output_len(&self) -> usize {
        let n = self.length;
        match self.alphabet {
            Alphabet::Base64 => n.div_ceil(3) * 4,
            Alphabet::Base64Url => (n * 4).div_ceil(3),
            Alphabet::Hex => n * 2,
            Alphabet::Alnum => n,
        }
    }

    /// A fresh value from the OS CSPRNG, in locked memory from the first byte (the random
    /// bytes and the encoded text alike).
    pub fn generate(&self) -> Result<SecretString, Error> {
        let mut out = SecretBytes::zeroed(self.output_len())?;
        match self.alphabet {
            Alphabet::Base64 | Alphabet::Base64Url => {
                let random = SecretBytes::random(self.length)?;
                let written = if self.alphabet == Alphabet::Base64 {
                    base64::engine::general_purpose::STANDARD
                        .encode_slice(random.expose_secret(), out.expose_secret_mut())
                } else {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode_slice(random.expose_secret(), out.expose_secret_mut())
                }
                .map_err(|_| Error::Internal("base64 output buffer too small"))?;
                out.truncate(written);
            }
            Alphabet::Hex => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let random = SecretBytes::random(self.length)?;
                for (pair, b) in out
                    .expose_secret_mut()
                    .chunks_exact_mut(2)
                    .zip(random.expose_secret())
                {
                    pair[0] = HEX[usize::from(b >> 4)];
                    pair[1] = HEX[usize::from(b & 15)];
                }
            }
            Alphabet::Alnum => {
                const ALNUM: &[u8; 62] =
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
                // Rejection sampling: bytes of 248 and above are dropped (248 = 4 * 62), so
                // every character is uniform.
                let mut filled = 0;
                let mut pool = SecretBytes::random(self.length + 16)?;
                while filled < self.length {
                    for &b in pool.expose_secret() {
                        if b < 248 && filled < self.length {
                            out.expose_secret_mut()[filled] = ALNUM[usize::from(b % 62)];
                            filled += 1;
                        }
                    }
                    pool = SecretBytes::random(self.length - filled + 16)?;
                }
            }
        }
        SecretString::try_from_bytes(out)
    }
}

impl fmt::Display for GenerateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.alphabet.name(), self.length)
    }
}

impl FromStr for GenerateSpec {
    type Err = Error;

    /// `ALPHABET:LENGTH`; `ALPHABET` alone takes 32 (`base64` is `base64:32`).
    fn from_str(s: &str) -> Result<GenerateSpec, Error> {
        let bad = || {
            Error::InvalidArgument(
                "a generator is ALPHABET[:LENGTH] with ALPHABET base64, base64url, hex or alnum \
                 (for example base64:32)",
            )
        };
        let (name, length) = match s.split_once(':') {
            Some((name, n)) => (name, n.parse().map_err(|_| bad())?),
            None => (s, 32),
        };
        let alphabet = match name {
            "base64" => Alphabet::Base64,
            "base64url" => Alphabet::Base64Url,
            "hex" => Alphabet::Hex,
            "alnum" => Alphabet::Alnum,
            _ => return Err(bad()),
        };
        GenerateSpec::new(alphabet, length)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_alphabet_gives_its_length_and_characters_and_fresh_values() {
        for (spec, len, ok) in [
            (
                "base64:32",
                44,
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=" as &[u8],
            ),
            (
                "base64url:32",
                43,
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
            ),
            ("hex:32", 64, b"0123456789abcdef"),
            (
                "alnum:40",
                40,
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            ),
        ] {
            let spec: GenerateSpec = spec.parse().unwrap();
            let a = spec.generate().unwrap();
            let b = spec.generate().unwrap();
            assert_eq!(a.len(), len, "{spec}");
            assert!(a.expose_secret().bytes().all(|c| ok.contains(&c)), "{spec}");
            assert_ne!(a.expose_secret(), b.expose_secret(), "{spec}");
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(GenerateSpec::default().generate().unwrap().expose_secret())
            .unwrap();
        assert_eq!(raw.len(), 32);
    }

    #[test]
    fn alnum_is_uniform_enough() {
        // 65,536 draws over 62 symbols: each about 1,057 (sd 32); a modulo bias (8 symbols
        // favoured by 5/4) would put those near 1,280. The bound is 5 sd out.
        let v = GenerateSpec::new(Alphabet::Alnum, 4096).unwrap();
        let mut counts = [0u32; 128];
        for _ in 0..16 {
            for c in v.generate().unwrap().expose_secret().bytes() {
                counts[usize::from(c)] += 1;
            }
        }
        let used: Vec<u32> = counts.iter().copied().filter(|&c| c > 0).collect();
        assert_eq!(used.len(), 62);
        let (min, max) = (used.iter().min().unwrap(), used.iter().max().unwrap());
        assert!(*max < 1230 && *min > 850, "{min}..{max}");
    }

    #[test]
    fn specs_parse_print_and_refuse_weak_or_absurd_ones() {
        assert_eq!(
            "base64".parse::<GenerateSpec>().unwrap(),
            GenerateSpec::default()
        );
        for s in ["base64:32", "base64url:48", "hex:16", "alnum:40"] {
            assert_eq!(s.parse::<GenerateSpec>().unwrap().to_string(), s);
        }
        for bad in [
            "",
            "base64:",
            "base64:8",
            "hex:11",
            "alnum:16",
            "rot13:32",
            "base64:x",
            "base64:4097",
            "base64:-1",
        ] {
            assert!(bad.parse::<GenerateSpec>().is_err(), "{bad}");
        }
        assert!(GenerateSpec::new(Alphabet::Alnum, 17).is_ok());
    }
}
