//! The encryption context: a map of non-secret UTF-8 strings authenticated with every message.
//!
//! It says what a ciphertext is *for* (`tenant=acme`, `purpose=billing-db`). It is bound to the
//! payload through the header tag and, where the KMS supports it, to the wrapped data key
//! (AWS EncryptionContext, GCP additional authenticated data, Vault associated data / context,
//! the local KEK's AAD). A decryptor states which pairs it expects, so a ciphertext cannot be
//! replayed into another purpose. It is stored in clear: never put secrets in it.

use std::collections::BTreeMap;

use crate::error::Error;

/// Largest key or value (the wire format uses 16-bit lengths).
pub(crate) const MAX_CONTEXT_STRING: usize = u16::MAX as usize;

/// Sorted, unique, non-empty UTF-8 keys mapped to UTF-8 values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct EncryptionContext {
    map: BTreeMap<String, String>,
}

impl EncryptionContext {
    /// An empty context.
    pub fn new() -> EncryptionContext {
        EncryptionContext::default()
    }

    /// Adds or replaces a pair. Keys must be non-empty; keys and values at most 65535 bytes.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), Error> {
        let (key, value) = (key.into(), value.into());
        if key.is_empty() {
            return Err(Error::InvalidContext(
                "context keys must not be empty".into(),
            ));
        }
        if key.len() > MAX_CONTEXT_STRING || value.len() > MAX_CONTEXT_STRING {
            return Err(Error::InvalidContext(format!(
                "context key or value for `{}` is longer than {MAX_CONTEXT_STRING} bytes",
                truncate_for_display(&key)
            )));
        }
        if self.map.len() >= u16::MAX as usize && !self.map.contains_key(&key) {
            return Err(Error::InvalidContext(
                "more than 65535 context entries".into(),
            ));
        }
        self.map.insert(key, value);
        Ok(())
    }

    /// Builder form of [`insert`](Self::insert).
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Result<Self, Error> {
        self.insert(key, value)?;
        Ok(self)
    }

    /// A copy without `key` (rotation drops a signed message's public key before signing
    /// anew).
    pub(crate) fn without(&self, key: &str) -> EncryptionContext {
        let mut c = self.clone();
        c.map.remove(key);
        c
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// Pairs in canonical (byte-wise sorted) order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Checks that every pair of `expected` is present with the same value.
    pub fn require(&self, expected: &EncryptionContext) -> Result<(), Error> {
        for (k, v) in expected.iter() {
            if self.get(k) != Some(v) {
                return Err(Error::ContextMismatch { key: k.to_owned() });
            }
        }
        Ok(())
    }

    /// The canonical encoding, as in the header and as passed to KMSs that take bytes:
    /// `u16 count`, then per pair in sorted order `u16 key_len, key, u16 value_len, value`
    /// (big-endian). One context has exactly one encoding.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Length of [`canonical_bytes`](Self::canonical_bytes).
    pub fn encoded_len(&self) -> usize {
        2 + self
            .map
            .iter()
            .map(|(k, v)| 4 + k.len() + v.len())
            .sum::<usize>()
    }

    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        // Lengths fit in u16: `insert` is the only way in and it checks them (a length that
        // did not would saturate: an encoding that fails to parse, never a different one).
        let len16 = |n: usize| u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes();
        out.extend_from_slice(&len16(self.map.len()));
        for (k, v) in &self.map {
            out.extend_from_slice(&len16(k.len()));
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&len16(v.len()));
            out.extend_from_slice(v.as_bytes());
        }
    }

    /// Used by the parser (which has checked UTF-8 and lengths): appends a pair whose key
    /// sorts strictly after every key present; returns false, changing nothing, otherwise.
    pub(crate) fn push_sorted(&mut self, key: String, value: String) -> bool {
        if self
            .map
            .last_key_value()
            .is_some_and(|(last, _)| last.as_bytes() >= key.as_bytes())
        {
            return false;
        }
        self.map.insert(key, value);
        true
    }
}

impl<K: Into<String>, V: Into<String>> TryFrom<Vec<(K, V)>> for EncryptionContext {
    type Error = Error;
    fn try_from(pairs: Vec<(K, V)>) -> Result<Self, Error> {
        let mut c = EncryptionContext::new();
        for (k, v) in pairs {
            let k = k.into();
            if c.map.contains_key(&k) {
                return Err(Error::InvalidContext(format!(
                    "duplicate context key `{}`",
                    truncate_for_display(&k)
                )));
            }
            c.insert(k, v)?;
        }
        Ok(c)
    }
}

/// The first 64 characters, control characters escaped (keys may come from a header).
fn truncate_for_display(s: &str) -> std::borrow::Cow<'_, str> {
    let cut = match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    };
    crate::escape_untrusted(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_is_sorted_and_unique() {
        let a = EncryptionContext::try_from(vec![("b", "2"), ("a", "1")]).unwrap();
        let b = EncryptionContext::try_from(vec![("a", "1"), ("b", "2")]).unwrap();
        assert_eq!(a.canonical_bytes(), b.canonical_bytes());
        assert_eq!(
            a.canonical_bytes(),
            [0, 2, 0, 1, b'a', 0, 1, b'1', 0, 1, b'b', 0, 1, b'2']
        );
        assert_eq!(a.encoded_len(), a.canonical_bytes().len());
        assert!(EncryptionContext::try_from(vec![("a", "1"), ("a", "2")]).is_err());
    }

    #[test]
    fn rejects_bad_keys() {
        let mut c = EncryptionContext::new();
        assert!(c.insert("", "x").is_err());
        assert!(c.insert("k", "v".repeat(70_000)).is_err());
        assert!(c.insert("k", "v").is_ok());
    }

    #[test]
    fn require_checks_subset() {
        let have = EncryptionContext::try_from(vec![("app", "billing"), ("env", "prod")]).unwrap();
        let want = EncryptionContext::new().with("app", "billing").unwrap();
        assert!(have.require(&want).is_ok());
        let wrong = EncryptionContext::new().with("app", "payroll").unwrap();
        assert!(
            matches!(have.require(&wrong), Err(Error::ContextMismatch { key }) if key == "app")
        );
        let missing = EncryptionContext::new().with("tenant", "x").unwrap();
        assert!(have.require(&missing).is_err());
    }
}
