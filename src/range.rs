//! Random access: the plaintext bytes of a range, reading and verifying only the frames that
//! hold them (and the final frame, which authenticates the length).

use std::io::{Read, Seek, SeekFrom};
use std::ops::{Bound, RangeBounds};

use crate::envelope::Decryptor;
use crate::error::Error;
use crate::frame::{open_run, plaintext_len};
use crate::secret::SecretBytes;
use crate::suite::TAG_LEN;

impl Decryptor {
    /// The plaintext bytes `range` (`a..b`, `a..=b`, `a..`, `..b`) of the message that starts
    /// at `source`'s current position
    /// and ends at its end, reading only the header, the frames that hold the range, and the
    /// final frame. Every frame read is verified before a byte of it is returned.
    ///
    /// * The plaintext length comes from the object's size and is authenticated by the final
    ///   frame, which is always read and verified: a truncated or extended object, and a range
    ///   past the end, are errors ([`Error::Truncated`], [`Error::Decrypt`],
    ///   [`Error::InvalidArgument`]), never short or wrong output.
    /// * Frames outside the range (but the final one) are not read, so tampering there goes
    ///   unnoticed by this call; a full [`decrypt`](Self::decrypt) checks every frame.
    /// * Signed messages are refused: their signature covers every frame, so checking it means
    ///   reading all of them.
    ///
    /// ```
    /// # kmseal::blocking::block_on(async {
    /// use std::sync::Arc;
    /// use kmseal::{Decryptor, Encryptor, FrameSize, LocalKek};
    ///
    /// let kek = Arc::new(LocalKek::generate()?);
    /// let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    /// let sealed = Encryptor::new(kek.clone())
    ///     .frame_size(FrameSize::new(4096)?)
    ///     .encrypt(&data)
    ///     .await?;
    /// let mut object = std::io::Cursor::new(sealed);
    /// let part = Decryptor::new(kek).open_range(&mut object, 50_000..50_010).await?;
    /// assert_eq!(part.expose_secret(), &data[50_000..50_010]);
    /// # Ok::<(), kmseal::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn open_range<R: Read + Seek>(
        &self,
        source: &mut R,
        range: impl RangeBounds<u64>,
    ) -> Result<SecretBytes, Error> {
        let header = self.read_header(source)?;
        if header.is_signed() {
            return Err(Error::InvalidArgument(
                "a signed message's signature covers all its frames: decrypt it whole",
            ));
        }
        let body_start = source.stream_position()?;
        let end = source.seek(SeekFrom::End(0))?;
        let body_len = end
            .checked_sub(body_start)
            .ok_or(Error::Internal("the source ends before its own position"))?;
        let frame_size = header.frame_size();
        let pt_len = plaintext_len(body_len, frame_size).ok_or(Error::Truncated(
            "the object's size is not that of a whole message (truncated or extended)",
        ))?;
        let opened = self.open_header(&header).await?;
        let (keys, max_threads, lock_policy) = opened.frame_parts();
        let fs = u64::from(frame_size);
        let full = fs + TAG_LEN as u64;
        let final_index = pt_len / fs;

        // Reads frames `first..=last` and opens them into locked memory.
        let mut read_frames = |first: u64, last: u64| -> Result<SecretBytes, Error> {
            let offset = first * full;
            let len = ((last + 1) * full).min(body_len) - offset;
            let len =
                usize::try_from(len).map_err(|_| Error::InvalidArgument("range too large"))?;
            let mut body = vec![0u8; len];
            source.seek(SeekFrom::Start(body_start + offset))?;
            source.read_exact(&mut body).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    Error::Truncated("the object shrank while being read")
                }
                _ => Error::Io(e),
            })?;
            let frames = body.len().div_ceil(frame_size as usize + TAG_LEN);
            let plain_len = body.len() - frames * TAG_LEN;
            let mut plain = SecretBytes::with_capacity_and_policy(plain_len, lock_policy)?;
            plain.resize(plain_len)?;
            open_run(
                keys,
                header.message_id(),
                frame_size,
                first,
                &body,
                plain.expose_secret_mut(),
                max_threads,
            )?;
            Ok(plain)
        };

        // The final frame first: it authenticates the length the range is checked against
        // (read again below when the range ends in it; it is at most one frame).
        read_frames(final_index, final_index)?;
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s
                .checked_add(1)
                .ok_or(Error::InvalidArgument("bad range"))?,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.checked_add(1).ok_or(Error::InvalidArgument(
                "the range ends past the end of the plaintext",
            ))?,
            Bound::Excluded(&e) => e,
            Bound::Unbounded => pt_len,
        };
        if start > end {
            return Err(Error::InvalidArgument("the range ends before it starts"));
        }
        if end > pt_len {
            return Err(Error::InvalidArgument(
                "the range ends past the end of the plaintext",
            ));
        }
        let range = start..end;
        if range.is_empty() {
            return SecretBytes::with_capacity_and_policy(0, lock_policy);
        }
        let (first, last) = (range.start / fs, (range.end - 1) / fs);
        let plain = read_frames(first, last)?;
        let from = usize::try_from(range.start - first * fs)
            .map_err(|_| Error::Internal("an in-frame offset over usize"))?;
        let to = usize::try_from(range.end - first * fs)
            .map_err(|_| Error::Internal("an in-frame offset over usize"))?;
        let mut out = SecretBytes::with_capacity_and_policy(to - from, lock_policy)?;
        out.extend_from_slice(&plain.expose_secret()[from..to])?;
        Ok(out)
    }

    /// Blocking form of [`open_range`](Self::open_range).
    pub fn open_range_blocking<R: Read + Seek>(
        &self,
        source: &mut R,
        range: impl RangeBounds<u64>,
    ) -> Result<SecretBytes, Error> {
        crate::blocking::block_on(self.open_range(source, range))
    }
}
