//! Random access: the plaintext bytes of a range, reading and verifying only the frames that
//! hold them (and the final frame, which authenticates the length).

use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::ops::{Bound, RangeBounds};

use crate::envelope::Decryptor;
use crate::error::Error;
use crate::format::Header;
use crate::frame::{open_run, plaintext_len};
use crate::secret::SecretBytes;
use crate::suite::TAG_LEN;

/// Where a range read gets its bytes.
trait Ranged {
    /// The header and where the body starts (offset from the message's start).
    async fn header(&mut self, dec: &Decryptor) -> Result<(Header, u64), Error>;
    /// The message's length in bytes.
    fn len(&self) -> u64;
    /// Exactly `len` bytes at `offset` from the message's start.
    async fn read_at(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, Error>;
}

fn shrank() -> Error {
    Error::Truncated("the object shrank while being read")
}

/// A `Read + Seek` source from its current position to its end.
struct Seekable<'a, R> {
    source: &'a mut R,
    base: u64,
    len: u64,
}

impl<R: Read + Seek> Ranged for Seekable<'_, R> {
    async fn header(&mut self, dec: &Decryptor) -> Result<(Header, u64), Error> {
        // Streamed: exactly the header's bytes are read.
        self.source.seek(SeekFrom::Start(self.base))?;
        let header = dec.read_header(self.source)?;
        let at = self.source.stream_position()? - self.base;
        Ok((header, at))
    }

    fn len(&self) -> u64 {
        self.len
    }

    async fn read_at(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
        let mut buf = vec![0u8; len];
        self.source.seek(SeekFrom::Start(self.base + offset))?;
        self.source
            .read_exact(&mut buf)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => shrank(),
                _ => Error::Io(e),
            })?;
        Ok(buf)
    }
}

/// A ranged-get function (an object store's `GET` with `Range`) over an object of known size.
struct Fetched<F> {
    fetch: F,
    len: u64,
}

impl<F, Fut> Ranged for Fetched<F>
where
    F: FnMut(u64, usize) -> Fut,
    Fut: Future<Output = std::io::Result<Vec<u8>>>,
{
    async fn header(&mut self, dec: &Decryptor) -> Result<(Header, u64), Error> {
        let (header, used, _) = dec.fetch_header(self.len, &mut self.fetch).await?;
        Ok((header, used))
    }

    fn len(&self) -> u64 {
        self.len
    }

    async fn read_at(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
        let bytes = (self.fetch)(offset, len).await?;
        if bytes.len() != len {
            return Err(shrank());
        }
        Ok(bytes)
    }
}

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
        let base = source.stream_position()?;
        let end = source.seek(SeekFrom::End(0))?;
        let len = end
            .checked_sub(base)
            .ok_or(Error::Internal("the source ends before its own position"))?;
        self.open_range_in(&mut Seekable { source, base, len }, range)
            .await
    }

    /// [`open_range`](Self::open_range) over a ranged-get function, for objects in a store
    /// (S3, GCS, Azure Blob `GET` with a `Range` header): `fetch(offset, len)` returns exactly
    /// `len` bytes of the object at `offset`; `object_len` is the object's size (from a
    /// `HEAD`). The header comes from a prefix (4 KiB, grown if the header is larger, up to
    /// the decryptor's limit); then the final frame and the frames that hold the range, one
    /// fetch each.
    ///
    /// ```
    /// # kmseal::blocking::block_on(async {
    /// use std::sync::Arc;
    /// use kmseal::{Decryptor, Encryptor, LocalKek};
    ///
    /// let kek = Arc::new(LocalKek::generate()?);
    /// let object = Encryptor::new(kek.clone()).encrypt(&[7u8; 300_000]).await?;
    /// let fetch = |offset: u64, len: usize| {
    ///     let bytes = object[offset as usize..offset as usize + len].to_vec(); // a ranged GET
    ///     async move { Ok::<_, std::io::Error>(bytes) }
    /// };
    /// let part = Decryptor::new(kek)
    ///     .open_range_with(object.len() as u64, fetch, 200_000..200_100)
    ///     .await?;
    /// assert_eq!(part.expose_secret(), &[7u8; 100][..]);
    /// # Ok::<(), kmseal::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn open_range_with<F, Fut>(
        &self,
        object_len: u64,
        fetch: F,
        range: impl RangeBounds<u64>,
    ) -> Result<SecretBytes, Error>
    where
        F: FnMut(u64, usize) -> Fut,
        Fut: Future<Output = std::io::Result<Vec<u8>>>,
    {
        self.open_range_in(
            &mut Fetched {
                fetch,
                len: object_len,
            },
            range,
        )
        .await
    }

    /// Reads the header of an object through a ranged-get function (`fetch(offset, len)`
    /// returns exactly `len` bytes at `offset`; `object_len` is the object's size): a 4 KiB
    /// prefix, grown if the header is larger, up to this decryptor's limit. Returns the header,
    /// where the body starts, and the prefix fetched (which may hold the start of the body, or
    /// all of a small object). Nothing is verified yet: see [`open_header`](Self::open_header).
    pub async fn fetch_header<F, Fut>(
        &self,
        object_len: u64,
        mut fetch: F,
    ) -> Result<(Header, u64, Vec<u8>), Error>
    where
        F: FnMut(u64, usize) -> Fut,
        Fut: Future<Output = std::io::Result<Vec<u8>>>,
    {
        // The limit may be set as high as usize::MAX ("no limit"): saturate, and stop once
        // the prefix cannot grow, so the loop always ends.
        let limit = u64::try_from(self.configured_limits().max_header_bytes).unwrap_or(u64::MAX);
        let mut want = object_len.min(4096);
        loop {
            let len = usize::try_from(want).unwrap_or(usize::MAX);
            let prefix = fetch(0, len).await?;
            if prefix.len() != len {
                return Err(shrank());
            }
            match self.parse_header(&prefix) {
                Ok((header, rest)) => {
                    let used = (prefix.len() - rest.len()) as u64;
                    return Ok((header, used, prefix));
                }
                Err(Error::Truncated(_)) if want < object_len && want <= limit => {
                    let next = want
                        .saturating_mul(4)
                        .min(object_len)
                        .min(limit.saturating_add(1));
                    if next <= want {
                        return Err(Error::Truncated("the object ends inside its header"));
                    }
                    want = next;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn open_range_in(
        &self,
        source: &mut impl Ranged,
        range: impl RangeBounds<u64>,
    ) -> Result<SecretBytes, Error> {
        let (header, body_start) = source.header(self).await?;
        if header.is_signed() {
            return Err(Error::InvalidArgument(
                "a signed message's signature covers all its frames: decrypt it whole",
            ));
        }
        let body_len = source
            .len()
            .checked_sub(body_start)
            .ok_or(Error::Truncated("the object ends inside its header"))?;
        let frame_size = header.frame_size();
        let pt_len = plaintext_len(body_len, frame_size).ok_or(Error::Truncated(
            "the object's size is not that of a whole message (truncated or extended)",
        ))?;
        let opened = self.open_header(&header).await?;
        let (keys, max_threads, lock_policy) = opened.frame_parts();
        let fs = u64::from(frame_size);
        let final_index = pt_len / fs;

        // Reads frames `first..=last` and opens them into locked memory.
        let frames = FrameRun {
            keys,
            message_id: header.message_id(),
            frame_size,
            body_start,
            body_len,
            max_threads,
            lock_policy,
        };
        // The final frame first: it authenticates the length the range is checked against
        // (read again below when the range ends in it; it is at most one frame).
        frames.read(source, final_index, final_index).await?;
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
        let plain = frames.read(source, first, last).await?;
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

/// What reading a run of frames needs from the opened header.
struct FrameRun<'a> {
    keys: &'a crate::key_schedule::MessageKeys,
    message_id: &'a [u8; crate::suite::KEY_LEN],
    frame_size: u32,
    body_start: u64,
    body_len: u64,
    max_threads: Option<usize>,
    lock_policy: crate::secret::LockPolicy,
}

impl FrameRun<'_> {
    /// Reads frames `first..=last` (one read) and opens them into locked memory.
    async fn read(
        &self,
        source: &mut impl Ranged,
        first: u64,
        last: u64,
    ) -> Result<SecretBytes, Error> {
        // Saturating: the body length comes from the object's size, which a hostile store can
        // lie about (up to u64::MAX); a lie fails the final frame, never overflows.
        let full = u64::from(self.frame_size) + TAG_LEN as u64;
        let offset = first.saturating_mul(full).min(self.body_len);
        let run = (last - first).saturating_add(1).saturating_mul(full);
        let len = run.min(self.body_len - offset);
        let len = usize::try_from(len).map_err(|_| Error::InvalidArgument("range too large"))?;
        let body = source.read_at(self.body_start + offset, len).await?;
        let frames = body.len().div_ceil(self.frame_size as usize + TAG_LEN);
        let plain_len = body.len() - frames * TAG_LEN;
        let mut plain = SecretBytes::with_capacity_and_policy(plain_len, self.lock_policy)?;
        plain.resize(plain_len)?;
        open_run(
            self.keys,
            self.message_id,
            self.frame_size,
            first,
            &body,
            plain.expose_secret_mut(),
            self.max_threads,
        )?;
        Ok(plain)
    }
}
