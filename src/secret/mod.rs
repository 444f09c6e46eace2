//! Secret memory: [`SecretBytes`] and [`SecretString`].
//!
//! Every decrypted data key and every plaintext this crate returns lives in one of these types.
//! Their memory is:
//!
//! * **locked** in RAM with `mlock` (through `memsec`) so it is never written to swap, when the
//!   OS allows it; what happens when it does not is the [`LockPolicy`];
//! * **excluded from core dumps** (`MADV_DONTDUMP`) and zero-filled in forked children
//!   (`MADV_WIPEONFORK`); a secret made before a `fork()` is never used in the child:
//!   [`SecretBytes::check_process`] returns [`Error::ForkedSecret`] and
//!   [`SecretBytes::expose_secret`] aborts, rather than hand out zeros as a key;
//! * **guarded**: buffers larger than 2 KiB get their own mapping with an inaccessible page on
//!   each side; smaller secrets (keys) share locked pages, so ten thousand cached 32-byte keys
//!   need about 80 locked pages rather than ten thousand;
//! * **zeroized** when dropped, and when a buffer grows: the contents move to a new locked
//!   buffer and the old one is wiped, so no stray copy is left behind.
//!
//! The types have no `Clone` (use [`SecretBytes::try_clone`] when a copy is really meant), no
//! `Display`, no `Serialize`, a redacted `Debug`, and constant-time equality. The only way to
//! read the bytes is [`SecretBytes::expose_secret`], so `git grep expose_secret` finds every
//! place that does.
//!
//! ```
//! use kmseal::SecretBytes;
//!
//! let mut key = SecretBytes::random(32)?;
//! assert_eq!(key.len(), 32);
//! assert_eq!(format!("{key:?}"), "SecretBytes([REDACTED])");
//! key.extend_from_slice(b"more")?; // moves to a larger locked buffer, wipes the old one
//! assert_eq!(&key.expose_secret()[32..], b"more");
//! # Ok::<(), kmseal::Error>(())
//! ```

mod generate;
mod random;
mod sys;

pub use generate::{Alphabet, GenerateSpec};

pub(crate) use random::{fill_random, scrub_stack};
/// A counter that changes in the child of every `fork()` (a `pthread_atfork` handler; the
/// first call registers it). Everything kmseal makes records it and refuses to run under
/// another; bindings that wrap kmseal objects can do the same (the Python package's objects
/// do). Unlike a process id it cannot come back: a grandchild that happens to get its
/// grandparent's pid still has another generation.
pub use sys::fork_generation;
pub(crate) use sys::{ForkLocal, advise_huge_pages, effective_uid};

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::error::Error;

/// What to do when secret memory cannot be locked in RAM (`mlock` fails because
/// `RLIMIT_MEMLOCK` is exhausted and the process lacks `CAP_IPC_LOCK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LockPolicy {
    /// Fail the allocation with [`Error::MemoryLock`]. For hosts where swapping a key to disk
    /// is unacceptable.
    Strict,
    /// Use unlocked memory, still excluded from core dumps and zeroized on drop, and emit one
    /// `tracing` warning per process. The default, so a small memlock limit degrades rather
    /// than breaks a service.
    #[default]
    BestEffort,
}

static DEFAULT_POLICY: std::sync::OnceLock<LockPolicy> = std::sync::OnceLock::new();

impl LockPolicy {
    /// The process-wide policy used by constructors that do not take one.
    /// [`BestEffort`](LockPolicy::BestEffort) unless
    /// [`set_process_default`](Self::set_process_default) chose otherwise first. The first
    /// secret allocated reads it, and from then on it is fixed.
    pub fn process_default() -> LockPolicy {
        *DEFAULT_POLICY.get_or_init(|| LockPolicy::BestEffort)
    }

    /// Sets the process-wide policy once, before the first secret (for example `Strict` at
    /// the start of `main`). Fails with [`Error::InvalidArgument`] if the policy is already
    /// fixed to another one (set before, or read by an allocation): buffers made under one
    /// policy and then another would make the guarantee depend on timing. A buffer can
    /// always choose its own ([`SecretBytes::with_capacity_and_policy`]; a buffer keeps its
    /// policy when it grows or is reused by `decrypt_into`).
    pub fn set_process_default(policy: LockPolicy) -> Result<(), Error> {
        if *DEFAULT_POLICY.get_or_init(|| policy) == policy {
            Ok(())
        } else {
            Err(Error::InvalidArgument(
                "the process lock policy is already fixed (set it once, before any secret)",
            ))
        }
    }
}

fn alloc(capacity: usize, policy: LockPolicy) -> Result<sys::Buf, Error> {
    sys::Buf::alloc(capacity, policy).map_err(|e| match e {
        sys::AllocError::Map(source) => Error::OutOfMemory {
            bytes: capacity,
            source,
        },
        sys::AllocError::Lock(source) => Error::MemoryLock {
            bytes: capacity,
            source,
        },
    })
}

/// A byte buffer for secrets: locked, guarded, zeroized on drop. See the [module docs](self).
pub struct SecretBytes {
    buf: sys::Buf,
    len: usize,
    policy: LockPolicy,
}

impl SecretBytes {
    /// An empty buffer; allocates nothing.
    pub fn new() -> SecretBytes {
        SecretBytes {
            buf: sys::Buf::Empty,
            len: 0,
            policy: LockPolicy::process_default(),
        }
    }

    /// The lock policy this buffer was allocated under (kept when it grows).
    #[cfg(feature = "tokio")]
    pub(crate) fn policy(&self) -> LockPolicy {
        self.policy
    }

    /// An empty buffer with room for `capacity` bytes, under the global [`LockPolicy`].
    pub fn with_capacity(capacity: usize) -> Result<SecretBytes, Error> {
        SecretBytes::with_capacity_and_policy(capacity, LockPolicy::process_default())
    }

    /// An empty buffer with room for `capacity` bytes, under an explicit [`LockPolicy`].
    pub fn with_capacity_and_policy(
        capacity: usize,
        policy: LockPolicy,
    ) -> Result<SecretBytes, Error> {
        Ok(SecretBytes {
            buf: alloc(capacity, policy)?,
            len: 0,
            policy,
        })
    }

    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> Result<SecretBytes, Error> {
        let mut s = SecretBytes::with_capacity(len)?;
        s.len = len;
        Ok(s)
    }

    /// `len` bytes from the operating system's CSPRNG, generated straight into locked memory.
    pub fn random(len: usize) -> Result<SecretBytes, Error> {
        let mut s = SecretBytes::zeroed(len)?;
        fill_random(s.expose_secret_mut())?;
        Ok(s)
    }

    /// Copies `bytes` into a new secret buffer. The caller remains responsible for wiping
    /// its own copy.
    pub fn from_slice(bytes: &[u8]) -> Result<SecretBytes, Error> {
        let mut s = SecretBytes::with_capacity(bytes.len())?;
        s.extend_from_slice(bytes)?;
        Ok(s)
    }

    /// Moves the contents of `vec` into locked memory and zeroizes the vector (its full
    /// capacity). Prefer building secrets in place; this is for data that arrived in a `Vec`.
    pub fn from_vec_zeroizing(mut vec: Vec<u8>) -> Result<SecretBytes, Error> {
        let s = SecretBytes::from_slice(&vec);
        vec.zeroize();
        s
    }

    /// Reads the secret. Every read of secret bytes in this crate goes through here.
    ///
    /// # Aborts
    /// In the child of a `fork()` (without exec), for a secret made in the parent: the
    /// kernel replaced its bytes with zeros, and handing those out as a key would encrypt
    /// under an all-zero key. There is no error to return here, so the process aborts with a
    /// message; call [`check_process`](Self::check_process) first where an error can be
    /// returned, and create secrets after forking (SECURITY.md, "Fork").
    pub fn expose_secret(&self) -> &[u8] {
        self.abort_if_inherited();
        &self.buf.as_slice()[..self.len]
    }

    /// Writes the secret in place. Aborts like [`expose_secret`](Self::expose_secret).
    pub fn expose_secret_mut(&mut self) -> &mut [u8] {
        self.abort_if_inherited();
        let len = self.len;
        &mut self.buf.as_mut_slice()[..len]
    }

    /// `Err(`[`Error::ForkedSecret`]`)` when this secret was made in a parent process before
    /// a `fork()` (its memory reads as zeros here); `Ok(())` otherwise.
    pub fn check_process(&self) -> Result<(), Error> {
        if self.buf.is_current() {
            Ok(())
        } else {
            Err(Error::ForkedSecret)
        }
    }

    fn abort_if_inherited(&self) {
        if !self.buf.is_current() {
            sys::abort_inherited_secret();
        }
    }

    /// Number of bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes that fit without reallocating.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Whether the memory is locked in RAM. `false` when locking failed under
    /// [`LockPolicy::BestEffort`] (and for an empty buffer, which owns no memory).
    pub fn is_locked(&self) -> bool {
        self.buf.is_locked()
    }

    /// Makes room for `additional` more bytes. Growing allocates a new locked buffer, copies,
    /// and zeroizes the old one before freeing it.
    pub fn reserve(&mut self, additional: usize) -> Result<(), Error> {
        let needed = self
            .len
            .checked_add(additional)
            .ok_or_else(|| Error::InvalidArgument("secret buffer length overflows usize"))?;
        if needed <= self.capacity() {
            return Ok(());
        }
        let new_cap = needed.max(self.capacity().saturating_mul(2));
        let mut new = alloc(new_cap, self.policy)?;
        new.as_mut_slice()[..self.len].copy_from_slice(self.expose_secret());
        // The old buffer is zeroized by its Drop (slot or region) right here.
        self.buf = new;
        Ok(())
    }

    /// Appends bytes, growing as described in [`reserve`](Self::reserve).
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.reserve(bytes.len())?;
        let start = self.len;
        self.buf.as_mut_slice()[start..start + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        Ok(())
    }

    /// Resizes to `new_len`, zero-filling new bytes or zeroizing dropped ones.
    pub fn resize(&mut self, new_len: usize) -> Result<(), Error> {
        if new_len <= self.len {
            self.truncate(new_len);
            return Ok(());
        }
        self.reserve(new_len - self.len)?;
        // Capacity beyond `len` is always zero (see truncate), so only the length moves.
        self.len = new_len;
        Ok(())
    }

    /// Sets the length to `len` for a caller about to overwrite every byte: keeps the
    /// allocation when it is large enough (no zero-fill: capacity beyond the length is already
    /// zero, and dropped bytes are zeroized), else replaces it with a fresh one of the same
    /// lock policy without copying the old contents (which are zeroized as it drops).
    pub(crate) fn set_len_for_overwrite(&mut self, len: usize) -> Result<(), Error> {
        if len <= self.capacity() {
            return self.resize(len);
        }
        *self = SecretBytes::with_capacity_and_policy(len, self.policy)?;
        self.len = len;
        Ok(())
    }

    /// Shortens the buffer, zeroizing the removed bytes.
    pub fn truncate(&mut self, new_len: usize) {
        if new_len < self.len {
            let len = self.len;
            self.buf.as_mut_slice()[new_len..len].zeroize();
            self.len = new_len;
        }
    }

    /// Zeroizes the contents and sets the length to 0, keeping the allocation.
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// An explicit copy into a new locked buffer. (There is deliberately no `Clone`.)
    pub fn try_clone(&self) -> Result<SecretBytes, Error> {
        self.check_process()?;
        let mut s = SecretBytes::with_capacity_and_policy(self.len, self.policy)?;
        s.extend_from_slice(self.expose_secret())?;
        Ok(s)
    }
}

impl Default for SecretBytes {
    fn default() -> Self {
        SecretBytes::new()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes([REDACTED])")
    }
}

impl ConstantTimeEq for SecretBytes {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.expose_secret().ct_eq(other.expose_secret())
    }
}

impl PartialEq for SecretBytes {
    /// Constant time in the contents (lengths are compared first, as `subtle` does).
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for SecretBytes {}

impl std::io::Write for SecretBytes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.extend_from_slice(buf)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::OutOfMemory, e))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A UTF-8 secret (a password, a token) with the guarantees of [`SecretBytes`].
#[derive(PartialEq, Eq, Default)]
pub struct SecretString {
    bytes: SecretBytes,
}

impl SecretString {
    /// Copies `s` into locked memory.
    pub fn copy_from_str(s: &str) -> Result<SecretString, Error> {
        Ok(SecretString {
            bytes: SecretBytes::from_slice(s.as_bytes())?,
        })
    }

    /// Takes ownership of secret bytes that must be UTF-8. On failure the bytes are zeroized
    /// and the error says only that the value was not UTF-8.
    pub fn try_from_bytes(bytes: SecretBytes) -> Result<SecretString, Error> {
        if std::str::from_utf8(bytes.expose_secret()).is_err() {
            return Err(Error::InvalidArgument("secret is not valid UTF-8"));
        }
        Ok(SecretString { bytes })
    }

    /// Reads the secret.
    pub fn expose_secret(&self) -> &str {
        // The constructor checked UTF-8 and nothing mutates the bytes afterwards, so this
        // conversion cannot fail; the fallback only avoids a panic path.
        std::str::from_utf8(self.bytes.expose_secret()).unwrap_or_default()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// See [`SecretBytes::check_process`].
    pub fn check_process(&self) -> Result<(), Error> {
        self.bytes.check_process()
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The underlying secret bytes.
    pub fn into_bytes(self) -> SecretBytes {
        self.bytes
    }

    /// An explicit copy into new locked memory.
    pub fn try_clone(&self) -> Result<SecretString, Error> {
        Ok(SecretString {
            bytes: self.bytes.try_clone()?,
        })
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([REDACTED])")
    }
}

impl ConstantTimeEq for SecretString {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.bytes.ct_eq(&other.bytes)
    }
}

/// Pages currently held by the shared small-secret pool. Exposed for tests and diagnostics.
#[doc(hidden)]
pub fn pool_pages() -> usize {
    sys::pool_pages()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = SecretBytes::from_slice(b"hunter2-hunter2").unwrap();
        let d = format!(
            "{s:?} {:?}",
            SecretString::copy_from_str("hunter2").unwrap()
        );
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("REDACTED"));
    }

    #[test]
    fn growth_moves_and_keeps_contents() {
        let mut s = SecretBytes::from_slice(&[7u8; 30]).unwrap();
        assert!(s.capacity() < 5000);
        let big = vec![9u8; 5000];
        s.extend_from_slice(&big).unwrap();
        assert_eq!(s.len(), 5030);
        assert!(s.capacity() >= 5030);
        assert_eq!(&s.expose_secret()[..30], &[7u8; 30]);
        assert_eq!(&s.expose_secret()[30..], &big[..]);
    }

    #[test]
    fn truncate_zeroizes_tail_and_resize_zero_fills() {
        let mut s = SecretBytes::from_slice(&[0xFF; 64]).unwrap();
        s.truncate(10);
        s.resize(64).unwrap();
        assert_eq!(&s.expose_secret()[..10], &[0xFF; 10]);
        assert!(s.expose_secret()[10..].iter().all(|&b| b == 0));
    }

    #[test]
    fn equality_is_by_content() {
        let a = SecretBytes::from_slice(b"abc").unwrap();
        let b = SecretBytes::from_slice(b"abc").unwrap();
        let c = SecretBytes::from_slice(b"abd").unwrap();
        let d = SecretBytes::from_slice(b"ab").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(a.try_clone().unwrap(), a);
    }

    #[test]
    fn random_is_random() {
        let a = SecretBytes::random(32).unwrap();
        let b = SecretBytes::random(32).unwrap();
        assert_ne!(a, b);
        assert!(a.expose_secret().iter().any(|&x| x != 0));
    }

    #[test]
    fn secret_string_rejects_invalid_utf8() {
        let bad = SecretBytes::from_slice(&[0xC3, 0x28]).unwrap();
        assert!(matches!(
            SecretString::try_from_bytes(bad),
            Err(Error::InvalidArgument(_))
        ));
        let ok = SecretString::copy_from_str("pässword").unwrap();
        assert_eq!(ok.expose_secret(), "pässword");
    }

    #[test]
    fn small_secrets_share_pages() {
        let keys: Vec<_> = (0..1000)
            .map(|_| SecretBytes::random(32).unwrap())
            .collect();
        // 1000 keys of 32 bytes fit in 8 pages of 4 KiB; allow for other tests' allocations.
        assert!(pool_pages() < 100, "pool uses {} pages", pool_pages());
        drop(keys);
    }
}
