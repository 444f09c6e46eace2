//! One-shot, streaming (blocking and tokio) and random-access decryption of arbitrary bytes
//! never panics and never succeeds for input that was not produced by the encryptor (with
//! overwhelming probability); the streams agree with the one-shot result, and a range that
//! opens equals those bytes of the whole plaintext.
#![no_main]
use std::io::Read;
use std::sync::{Arc, OnceLock};

use kmseal::{Decryptor, Kek, LocalKek, SecretBytes};
use libfuzzer_sys::fuzz_target;

fn decryptor() -> &'static Decryptor {
    static D: OnceLock<Decryptor> = OnceLock::new();
    D.get_or_init(|| {
        // The frozen vectors' KEK A (bytes 00..1f), so the seed corpus reaches the frames.
        let key: Vec<u8> = (0u8..32).collect();
        let kek: Arc<dyn Kek> =
            Arc::new(LocalKek::from_key_bytes(&SecretBytes::from_slice(&key).unwrap()).unwrap());
        Decryptor::new(kek)
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().unwrap())
}

/// An `AsyncRead` over `data`, `step` bytes at a time.
struct Pieces<'a> {
    data: &'a [u8],
    step: usize,
}

impl tokio::io::AsyncRead for Pieces<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = self.step.min(self.data.len()).min(buf.remaining());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        std::task::Poll::Ready(Ok(()))
    }
}

fuzz_target!(|data: &[u8]| {
    let one_shot = decryptor().decrypt_blocking(data);
    if let Ok(mut r) = decryptor().reader_blocking(data) {
        let mut out = Vec::new();
        let streamed = r.read_to_end(&mut out);
        if let Ok(pt) = &one_shot {
            assert!(streamed.is_ok());
            assert_eq!(pt.expose_secret(), &out[..]);
        }
    }
    // The tokio reader, fed in pieces of a size picked from the input: it releases only
    // verified bytes, so it succeeds exactly when the one-shot decryption does, with the
    // same plaintext.
    let step = 1 + data.len() % 61;
    let streamed = runtime().block_on(async {
        use tokio::io::AsyncReadExt;
        let source = Pieces { data, step };
        let mut r = decryptor().async_reader(source).await?;
        let mut out = Vec::new();
        let mut buf = [0u8; 777];
        loop {
            let n = r.read(&mut buf).await.map_err(kmseal::Error::Io)?;
            if n == 0 {
                return Ok::<_, kmseal::Error>(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    });
    match (&one_shot, &streamed) {
        (Ok(pt), Ok(out)) => assert_eq!(pt.expose_secret(), &out[..]),
        (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) => panic!("the async reader refused what decrypt opened: {e}"),
        (Err(e), Ok(_)) => panic!("the async reader opened what decrypt refused: {e}"),
    }
    // A range picked from the input's own length, so seeds reach every frame.
    let n = data.len() as u64;
    let (a, b) = (n % 97, n % 97 + n % 31);
    if let Ok(part) = decryptor().open_range_blocking(&mut std::io::Cursor::new(data), a..b) {
        let pt = one_shot.as_ref().map(|p| p.expose_secret());
        if let Ok(pt) = pt {
            assert_eq!(part.expose_secret(), &pt[a as usize..b as usize]);
        }
    }
});
