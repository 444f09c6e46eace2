//! Randomness and stack hygiene for the crypto above: the OS CSPRNG, and a scrub of the stack
//! that crypto calls leave behind. No `unsafe` here; it sits in `secret/` so that the layer
//! holding secrets depends on nothing above it.

use rand_core::TryRng;

use crate::error::Error;

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
