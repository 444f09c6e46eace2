//! The frame layer: frame nonces and associated data, the arithmetic of frame lengths, and
//! the sealing and opening of runs of frames, one-shot or as a stream's state.
//!
//! Every non-final frame holds exactly `frame_size` plaintext bytes; the final frame holds
//! strictly fewer (possibly zero), so the end of the message is explicit. Each frame is
//! `ciphertext || 16-byte tag`, sealed with
//!
//! ```text
//! nonce = 00 00 00 || frame_index (u64 BE) || final (00 or 01)
//! aad   = message_id || frame_index (u64 BE) || final (00 or 01) || zero padding to 64 bytes
//! ```
//!
//! A reader therefore detects truncation (the last frame read was full: its final frame is
//! missing, or a short frame fails its tag as final), reordering and duplication (index in the
//! nonce), and trailing data (it would make the final frame longer, failing its tag). Only
//! frames whose tag verified are released.

use crate::error::Error;
use crate::key_schedule::MessageKeys;
use crate::parallel::{in_parallel, threads_for};
use crate::secret::{SecretBytes, scrub_stack};
use crate::suite::{KEY_LEN, TAG_LEN};

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
/// 64 KiB frames (benches/probes/chacha_probe.rs): 842 µs with a 41-byte AAD, 687 µs with 64 bytes,
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

/// Size of the payload for `plaintext_len` bytes in frames of `frame_size`: every non-final
/// frame holds exactly `frame_size` bytes, the final frame strictly fewer (possibly none).
pub fn body_len(plaintext_len: u64, frame_size: u32) -> Option<u64> {
    let frames = plaintext_len / u64::from(frame_size) + 1;
    plaintext_len.checked_add(frames.checked_mul(TAG_LEN as u64)?)
}

/// Inverse of [`body_len`]: the plaintext length of a body, or `None` if no plaintext length
/// produces a body of this size (the body was truncated or extended).
pub(crate) fn plaintext_len(body_len: u64, frame_size: u32) -> Option<u64> {
    let full = u64::from(frame_size) + TAG_LEN as u64;
    let frames_before_final = body_len / full;
    let final_len = body_len % full;
    if final_len < TAG_LEN as u64 {
        return None;
    }
    Some(frames_before_final * u64::from(frame_size) + final_len - TAG_LEN as u64)
}

/// Encrypts `plaintext` frame by frame into `body`, which must be exactly
/// [`body_len`](crate::format::body_len) bytes (its old contents are all overwritten, so it
/// need not be zeroed). Large messages use up to `max_threads` threads (`None`: the default),
/// with output identical to the sequential path.
pub(crate) fn seal_all(
    keys: &MessageKeys,
    message_id: &[u8; KEY_LEN],
    frame_size: u32,
    plaintext: &[u8],
    body: &mut [u8],
    max_threads: Option<usize>,
) -> Result<(), Error> {
    let frames = plaintext.len() / frame_size as usize + 1;
    seal_all_with(
        keys,
        message_id,
        frame_size,
        plaintext,
        body,
        threads_for(plaintext.len(), frames, max_threads),
    )
}

/// [`seal_all`] on exactly `threads` threads.
pub(crate) fn seal_all_with(
    keys: &MessageKeys,
    message_id: &[u8; KEY_LEN],
    frame_size: u32,
    plaintext: &[u8],
    body: &mut [u8],
    threads: usize,
) -> Result<(), Error> {
    let frames = Frames::new(keys, message_id, frame_size as usize);
    frames.seal(0, plaintext, true, body, threads)
}

/// The frame layer of one message: seals and opens runs of consecutive frames, out of place,
/// on one or several threads. Shared by the one-shot and streaming paths, so both produce
/// and accept exactly the same bytes.
struct Frames<'a> {
    keys: &'a MessageKeys,
    message_id: &'a [u8; KEY_LEN],
    frame_size: usize,
}

impl<'a> Frames<'a> {
    fn new(keys: &'a MessageKeys, message_id: &'a [u8; KEY_LEN], frame_size: usize) -> Self {
        Frames {
            keys,
            message_id,
            frame_size,
        }
    }

    /// Bytes that frames holding `plain` plaintext bytes take (with a final frame: `plain`
    /// may be anything; without: a whole number of frames).
    fn sealed_len(&self, plain: usize, with_final: bool) -> usize {
        let full = plain / self.frame_size;
        let rest = plain % self.frame_size;
        full * (self.frame_size + TAG_LEN) + if with_final { rest + TAG_LEN } else { 0 }
    }

    /// Seals `plaintext` as frames `first`, `first + 1`, ... into `out`, which must be exactly
    /// [`sealed_len`](Self::sealed_len) bytes. Without `with_final` the plaintext must fill
    /// whole frames (full frames are never final); with it, the frames end with the final
    /// (short, possibly empty) frame.
    fn seal(
        &self,
        first: u64,
        plaintext: &[u8],
        with_final: bool,
        out: &mut [u8],
        threads: usize,
    ) -> Result<(), Error> {
        // A writer carried across fork(): parent and child would seal the same frame
        // indices (nonces) under the same key. Refuse in the child.
        self.keys.check_process()?;
        let fs = self.frame_size;
        if (!with_final && !plaintext.len().is_multiple_of(fs))
            || out.len() != self.sealed_len(plaintext.len(), with_final)
        {
            return Err(Error::Internal(
                "output buffer does not match the message size",
            ));
        }
        let pts = plaintext.chunks_exact(fs);
        let last = with_final.then_some(pts.remainder());
        let mut rest = out;
        // Each job: frame index, plaintext, and the exact slice its ciphertext and tag go to.
        let jobs = (first..).zip(pts.chain(last)).map(move |(index, pt)| {
            let (dst, tail) = std::mem::take(&mut rest).split_at_mut(pt.len() + TAG_LEN);
            rest = tail;
            (index, pt, dst)
        });
        let seal = |(index, pt, dst): (u64, &[u8], &mut [u8])| -> Result<(), Error> {
            let is_final = pt.len() < fs;
            let (ct, tag_out) = dst.split_at_mut(pt.len());
            let tag = self.keys.cipher.seal_into(
                &frame_nonce(index, is_final),
                &frame_aad(self.message_id, index, is_final),
                pt,
                ct,
            )?;
            tag_out.copy_from_slice(&tag);
            Ok(())
        };
        if threads > 1 {
            return in_parallel(jobs.collect(), threads, seal);
        }
        let result = { jobs }.try_for_each(seal);
        scrub_stack();
        result
    }

    /// Opens the frames in `body` (frames `first`, `first + 1`, ...; a frame shorter than a
    /// full one is taken as final) into `plain`, frame `k` at `k * frame_size`. Returns how
    /// many frames verified before the first that did not (all of them when all did), and
    /// zeroizes `plain` from that frame on: nothing after a bad frame is released, as a
    /// frame-by-frame reader would never have reached it. `plain` must hold the plaintext.
    fn open(&self, first: u64, body: &[u8], plain: &mut [u8], threads: usize) -> usize {
        let fs = self.frame_size;
        let full = fs + TAG_LEN;
        let frames = body.len().div_ceil(full);
        let first_bad = std::sync::atomic::AtomicUsize::new(frames);
        let mut rest = &mut plain[..];
        let mut jobs = Vec::with_capacity(if threads > 1 { frames } else { 0 });
        let open = |(k, frame, dst): (usize, &[u8], &mut [u8])| -> Result<(), Error> {
            let index = first + k as u64;
            let is_final = frame.len() < full;
            let opened = frame
                .len()
                .checked_sub(TAG_LEN)
                .map(|n| frame.split_at(n))
                .filter(|(ct, _)| ct.len() == dst.len())
                .and_then(|(ct, tag)| Some((ct, <&[u8; TAG_LEN]>::try_from(tag).ok()?)))
                .map_or(Err(Error::Decrypt), |(ct, tag)| {
                    self.keys.cipher.open_into(
                        &frame_nonce(index, is_final),
                        &frame_aad(self.message_id, index, is_final),
                        ct,
                        dst,
                        tag,
                    )
                });
            if opened.is_err() {
                first_bad.fetch_min(k, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        };
        for (k, frame) in body.chunks(full).enumerate() {
            let n = frame.len().saturating_sub(TAG_LEN).min(rest.len());
            let (dst, tail) = std::mem::take(&mut rest).split_at_mut(n);
            rest = tail;
            if threads > 1 {
                jobs.push((k, frame, dst));
            } else if first_bad.load(std::sync::atomic::Ordering::Relaxed) == frames {
                let _ = open((k, frame, dst));
            }
        }
        if threads > 1 {
            let _ = in_parallel(jobs, threads, open);
        } else {
            scrub_stack();
        }
        let good = first_bad.into_inner();
        if good < frames {
            let from = (good * fs).min(plain.len());
            zeroize::Zeroize::zeroize(&mut plain[from..]);
        }
        good
    }
}

/// Opens a run of frames that starts at frame `first` (random access: the frames before it
/// are not read) into `plain`, which must be exactly their plaintext length. Every frame must
/// verify; on failure `plain` is zeroized. A frame shorter than a full one is taken as final.
pub(crate) fn open_run(
    keys: &MessageKeys,
    message_id: &[u8; KEY_LEN],
    frame_size: u32,
    first: u64,
    body: &[u8],
    plain: &mut [u8],
    max_threads: Option<usize>,
) -> Result<(), Error> {
    keys.check_process()?;
    let fs = frame_size as usize;
    let count = body.len().div_ceil(fs + TAG_LEN);
    let threads = threads_for(plain.len(), count, max_threads);
    let good = Frames::new(keys, message_id, fs).open(first, body, plain, threads);
    if good < count {
        zeroize::Zeroize::zeroize(plain);
        return Err(Error::Decrypt);
    }
    Ok(())
}

/// Decrypts a complete body into `out` (locked memory), reusing its allocation when it is
/// large enough (its old contents are overwritten, never zero-filled first). Nothing is
/// returned unless every frame verified: on failure `out` is left empty, its partial
/// plaintext zeroized. Large messages use up to `max_threads` threads (`None`: the default).
pub(crate) fn open_all(
    keys: &MessageKeys,
    message_id: &[u8; KEY_LEN],
    frame_size: u32,
    body: &[u8],
    out: &mut SecretBytes,
    max_threads: Option<usize>,
) -> Result<(), Error> {
    let fs = frame_size;
    let result = plaintext_len(body.len() as u64, fs)
        .ok_or_else(|| Error::Truncated("the body does not end with a final frame"))
        .and_then(|len| {
            usize::try_from(len)
                .map_err(|_| Error::Malformed("message too large for this platform"))
        })
        .and_then(|len| {
            out.set_len_for_overwrite(len)?;
            let frames = body.len().div_ceil(fs as usize + TAG_LEN);
            open_all_into(
                keys,
                message_id,
                fs,
                body,
                out.expose_secret_mut(),
                threads_for(len, frames, max_threads),
            )
        });
    if result.is_err() {
        out.clear();
    }
    result
}

/// Opens every frame of `body` (laid out as `plaintext_len` checked) into `plain`, on
/// `threads` threads; any bad frame fails the whole message.
pub(crate) fn open_all_into(
    keys: &MessageKeys,
    message_id: &[u8; KEY_LEN],
    frame_size: u32,
    body: &[u8],
    plain: &mut [u8],
    threads: usize,
) -> Result<(), Error> {
    let frames = Frames::new(keys, message_id, frame_size as usize);
    let total = body.len().div_ceil(frame_size as usize + TAG_LEN);
    if frames.open(0, body, plain, threads) == total {
        Ok(())
    } else {
        Err(Error::Decrypt)
    }
}

/// The frame state of a message being sealed as a stream: its keys, the index of the next
/// frame, and the buffer sealed frames pass through on their way out (ciphertext: ordinary
/// memory). Every frame index is used once: the index advances with every sealed run.
pub(crate) struct FrameSealer {
    keys: MessageKeys,
    message_id: [u8; KEY_LEN],
    frame_size: usize,
    max_threads: Option<usize>,
    next: u64,
    sealed: Vec<u8>,
}

impl FrameSealer {
    pub(crate) fn new(
        keys: MessageKeys,
        message_id: [u8; KEY_LEN],
        frame_size: u32,
        max_threads: Option<usize>,
    ) -> Self {
        FrameSealer {
            keys,
            message_id,
            frame_size: frame_size as usize,
            max_threads,
            next: 0,
            sealed: Vec::new(),
        }
    }

    /// Plaintext bytes per frame.
    pub(crate) fn frame_size(&self) -> usize {
        self.frame_size
    }

    /// The index of the next frame to seal (frames sealed so far).
    pub(crate) fn next_index(&self) -> u64 {
        self.next
    }

    /// Seals `plaintext` as the next frames (whole frames only, unless `with_final`: then
    /// they end with the final frame) and returns them, ready to write.
    pub(crate) fn seal_next(&mut self, plaintext: &[u8], with_final: bool) -> Result<&[u8], Error> {
        let frames = Frames::new(&self.keys, &self.message_id, self.frame_size);
        let len = frames.sealed_len(plaintext.len(), with_final);
        if self.sealed.len() < len {
            self.sealed.resize(len, 0);
        }
        let count = plaintext.len() / self.frame_size + usize::from(with_final);
        let threads = threads_for(plaintext.len(), count, self.max_threads);
        frames.seal(
            self.next,
            plaintext,
            with_final,
            &mut self.sealed[..len],
            threads,
        )?;
        self.next = self
            .next
            .checked_add(count as u64)
            .ok_or(Error::Internal("frame index overflow"))?;
        Ok(&self.sealed[..len])
    }
}

/// The frame state of a message being opened as a stream: its keys and the index of the next
/// frame.
pub(crate) struct FrameOpener {
    keys: MessageKeys,
    message_id: [u8; KEY_LEN],
    frame_size: usize,
    max_threads: Option<usize>,
    next: u64,
}

impl FrameOpener {
    pub(crate) fn new(
        keys: MessageKeys,
        message_id: [u8; KEY_LEN],
        frame_size: u32,
        max_threads: Option<usize>,
    ) -> Self {
        FrameOpener {
            keys,
            message_id,
            frame_size: frame_size as usize,
            max_threads,
            next: 0,
        }
    }

    /// Plaintext bytes per frame.
    pub(crate) fn frame_size(&self) -> usize {
        self.frame_size
    }

    /// The index of the next frame to open (frames verified so far).
    pub(crate) fn next_index(&self) -> u64 {
        self.next
    }

    /// Opens the next frames, `body` (a frame shorter than a full one is taken as final),
    /// into `plain`, which must hold their plaintext. Returns how many verified before the
    /// first that did not, with `plain` zeroized from that frame on (see [`Frames::open`]),
    /// and moves past the verified ones.
    pub(crate) fn open_next(&mut self, body: &[u8], plain: &mut [u8]) -> Result<usize, Error> {
        // A reader carried across fork(): its AEAD key schedule is the parent's copy in
        // ordinary memory. Refuse in the child, as sealing does.
        self.keys.check_process()?;
        let frames = Frames::new(&self.keys, &self.message_id, self.frame_size);
        let count = body.len().div_ceil(self.frame_size + TAG_LEN);
        let threads = threads_for(plain.len(), count, self.max_threads);
        let good = frames.open(self.next, body, plain, threads);
        self.next = self.next.checked_add(good as u64).ok_or(Error::Decrypt)?;
        Ok(good)
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test patterns
mod tests {
    use super::*;
    use crate::kek::DataKey;
    use crate::suite::Suite;

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
    fn body_len_inverts() {
        for fs in [1u32, 2, 7, 64, 4096] {
            for len in 0..300u64 {
                let b = body_len(len, fs).unwrap();
                assert_eq!(plaintext_len(b, fs), Some(len), "fs={fs} len={len}");
            }
        }
        assert_eq!(plaintext_len(0, 64), None);
        assert_eq!(plaintext_len(15, 64), None);
        // A body ending exactly after a full frame has lost its final frame.
        assert_eq!(plaintext_len(80, 64), None);
    }

    #[test]
    fn parallel_frames_match_the_sequential_path_and_fail_alike() {
        let dek = DataKey::from_bytes(&[9u8; 32]).unwrap();
        let id = [7u8; KEY_LEN];
        for suite in Suite::ALL {
            for (fs, len) in [
                (16u32, 0usize),
                (16, 1000),
                (1000, 7000),
                (1000, 10_000),
                (4096, 100_003),
            ] {
                let keys = MessageKeys::derive(&dek, &id, suite);
                let pt: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
                let body = crate::format::body_len(len as u64, fs).unwrap() as usize;
                let mut seq = vec![0u8; body];
                seal_all_with(&keys, &id, fs, &pt, &mut seq, 1).unwrap();
                assert!(seal_all_with(&keys, &id, fs, &pt, &mut seq[1..], 1).is_err());
                for threads in [2, 3, 7] {
                    // Garbage in the output buffer must not matter: every byte is overwritten.
                    let mut par = vec![0xa5u8; body];
                    seal_all_with(&keys, &id, fs, &pt, &mut par, threads).unwrap();
                    assert_eq!(par, seq, "{suite} fs={fs} len={len} threads={threads}");
                    let mut out = vec![0u8; len];
                    open_all_into(&keys, &id, fs, &par, &mut out, threads).unwrap();
                    assert_eq!(out, pt);
                    if !par.is_empty() {
                        let mut bad = par.clone();
                        let at = bad.len() / 2;
                        bad[at] ^= 1;
                        let mut out = vec![0u8; len];
                        assert!(open_all_into(&keys, &id, fs, &bad, &mut out, threads).is_err());
                    }
                }
            }
        }
    }
}
