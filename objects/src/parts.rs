//! An `AsyncWrite` into a multipart upload that uploads parts as they fill and never
//! completes on its own: the caller checks the object is unchanged first.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use object_store::{MultipartUpload, PutPayload, UploadPart};
use tokio::io::AsyncWrite;

/// Parts of `part_size` bytes (the last one shorter), one upload in flight; the first
/// `keep_head` bytes written are also kept (the new header, for verification).
pub(crate) struct PartWriter {
    upload: Box<dyn MultipartUpload>,
    part_size: usize,
    buf: Vec<u8>,
    in_flight: Option<UploadPart>,
    head: Vec<u8>,
    keep_head: usize,
    written: u64,
    failed: bool,
}

impl PartWriter {
    pub(crate) fn new(
        upload: Box<dyn MultipartUpload>,
        part_size: usize,
        keep_head: usize,
    ) -> PartWriter {
        PartWriter {
            upload,
            part_size: part_size.max(1),
            buf: Vec::new(),
            in_flight: None,
            head: Vec::new(),
            keep_head,
            written: 0,
            failed: false,
        }
    }

    /// The first bytes written (up to `keep_head`).
    pub(crate) fn head(&self) -> &[u8] {
        &self.head
    }

    /// Bytes written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Makes the uploaded parts the object.
    pub(crate) async fn complete(mut self) -> object_store::Result<()> {
        self.upload.complete().await.map(drop)
    }

    /// Discards the uploaded parts (best effort: a bucket lifecycle rule removes what an
    /// abort that failed, or a killed process, leaves behind).
    pub(crate) async fn abort(mut self) {
        if let Err(error) = self.upload.abort().await {
            tracing::warn!(%error, "could not abort a multipart upload");
        }
    }

    fn poll_in_flight(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(part) = &mut self.in_flight {
            let r = ready!(Pin::new(part).poll(cx));
            self.in_flight = None;
            if let Err(e) = r {
                self.failed = true;
                return Poll::Ready(Err(io::Error::other(e)));
            }
        }
        Poll::Ready(Ok(()))
    }

    fn send_part(&mut self) {
        let part = std::mem::take(&mut self.buf);
        self.in_flight = Some(self.upload.put_part(PutPayload::from(part)));
    }

    fn check(&self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("a part upload failed earlier"));
        }
        Ok(())
    }
}

impl AsyncWrite for PartWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check()?;
        if this.buf.len() >= this.part_size {
            ready!(this.poll_in_flight(cx))?;
            this.send_part();
        }
        let n = data.len().min(this.part_size - this.buf.len());
        if this.head.len() < this.keep_head {
            let h = n.min(this.keep_head - this.head.len());
            this.head.extend_from_slice(&data[..h]);
        }
        this.buf.extend_from_slice(&data[..n]);
        this.written += n as u64;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        this.poll_in_flight(cx)
    }

    /// Uploads the last part; the upload stays open until [`PartWriter::complete`].
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        ready!(this.poll_in_flight(cx))?;
        if !this.buf.is_empty() {
            this.send_part();
            ready!(this.poll_in_flight(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}
