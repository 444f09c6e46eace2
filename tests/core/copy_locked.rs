//! `kmseal::stream::copy_locked`: exact copies whatever the reader's piece sizes, and the
//! stream's own errors (not `Error::Io`) when the message is tampered with or truncated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Read, Write};
use std::sync::Arc;

use kmseal::stream::{COPY_CHUNK, copy_locked};
use kmseal::{Decryptor, Encryptor, Error, LocalKek, SecretBytes};

/// Hands out at most `piece` bytes per read, with an `Interrupted` error before every third.
struct Choppy<'a> {
    data: &'a [u8],
    piece: usize,
    calls: usize,
}

impl Read for Choppy<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls.is_multiple_of(3) {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        let n = self.piece.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Records the size of every write it receives.
#[derive(Default)]
struct Sizes {
    data: Vec<u8>,
    writes: Vec<usize>,
}

impl Write for Sizes {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.data.extend_from_slice(b);
        self.writes.push(b.len());
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn copies_exactly_in_whole_chunks_whatever_the_reads() {
    for len in [
        0,
        1,
        COPY_CHUNK - 1,
        COPY_CHUNK,
        COPY_CHUNK + 1,
        2 * COPY_CHUNK + 777,
    ] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        for piece in [1000, 65_521, COPY_CHUNK] {
            let mut r = Choppy {
                data: &data,
                piece,
                calls: 0,
            };
            let mut w = Sizes::default();
            assert_eq!(copy_locked(&mut r, &mut w).unwrap(), len as u64);
            assert!(w.data == data, "{len} bytes in {piece}-byte reads");
            // Whole chunks, however short the reads were, then the rest.
            let mut want = vec![COPY_CHUNK; len / COPY_CHUNK];
            want.extend((len % COPY_CHUNK != 0).then_some(len % COPY_CHUNK));
            assert_eq!(w.writes, want, "{len} bytes in {piece}-byte reads");
        }
    }
}

#[test]
fn stream_errors_come_back_typed() {
    let kek = Arc::new(LocalKek::generate().unwrap());
    let plaintext = vec![0x5au8; 3 * COPY_CHUNK / 2];
    let mut w = Encryptor::new(kek.clone())
        .writer_blocking(Vec::new())
        .unwrap();
    copy_locked(&mut &plaintext[..], &mut w).unwrap();
    let sealed = w.finish().unwrap();
    let dec = Decryptor::new(kek);

    let mut out = SecretBytes::new();
    let mut r = dec.reader_blocking(&sealed[..]).unwrap();
    assert_eq!(
        copy_locked(&mut r, &mut out).unwrap(),
        plaintext.len() as u64
    );
    assert_eq!(out.expose_secret(), &plaintext[..]);

    // A flipped bit in the last frame: Decrypt, and only verified frames were written.
    let mut bad = sealed.clone();
    let last = bad.len() - 5;
    bad[last] ^= 1;
    let mut out = SecretBytes::new();
    let mut r = dec.reader_blocking(&bad[..]).unwrap();
    assert!(matches!(copy_locked(&mut r, &mut out), Err(Error::Decrypt)));
    assert!(out.len() < plaintext.len());
    assert_eq!(out.expose_secret(), &plaintext[..out.len()]);

    // Cut at a frame boundary: Truncated.
    let cut = sealed.len() - (plaintext.len() % (64 << 10)) - 16;
    let mut r = dec.reader_blocking(&sealed[..cut]).unwrap();
    let e = copy_locked(&mut r, &mut SecretBytes::new()).unwrap_err();
    assert!(matches!(e, Error::Truncated(_)), "{e:?}");

    // A writer that fails: the I/O error itself.
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut r = dec.reader_blocking(&sealed[..]).unwrap();
    let e = copy_locked(&mut r, &mut Full).unwrap_err();
    assert!(
        matches!(&e, Error::Io(io) if io.to_string() == "disk full"),
        "{e:?}"
    );
}
