//! Proves the secret-memory claim: after decrypt and drop, a unique plaintext pattern is no
//! longer anywhere in the process's writable memory, while the same pattern in a plain
//! `Vec<u8>` is still found after the vector is dropped (so the scan can see leftovers).
//!
//! This file holds a single test so no other test runs in this process during the scan.
//! The needle is random at run time and kept only XOR-masked, so the scanner never finds its
//! own copy.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::io::Read;
use std::sync::Arc;

use common::{MASK, scan};

use kmseal::{Decryptor, Encryptor, Kek, LocalKek, SecretBytes, Suite};

const NEEDLE: usize = 64;
const REPEAT: usize = 128; // 8 KiB of plaintext: small enough for malloc's heap, not mmap

fn random_masked() -> [u8; NEEDLE] {
    let secret = SecretBytes::random(NEEDLE).unwrap();
    let mut masked = [0u8; NEEDLE];
    for (m, s) in masked.iter_mut().zip(secret.expose_secret()) {
        *m = s ^ MASK;
    }
    masked
}

fn fill_unmasked(dst: &mut [u8], masked: &[u8; NEEDLE]) {
    for (i, d) in dst.iter_mut().enumerate() {
        *d = masked[i % NEEDLE] ^ MASK;
    }
}

#[test]
fn decrypted_plaintext_leaves_no_copy_after_drop_but_a_vec_does() {
    // Control: a plain Vec leaves its contents behind when freed.
    let control = random_masked();
    {
        let mut v = vec![0u8; NEEDLE * REPEAT];
        fill_unmasked(&mut v, &control);
        std::hint::black_box(&v);
        assert!(
            scan(&control) >= REPEAT / 2,
            "the scanner must see the live vector"
        );
    }
    let leftovers = scan(&control);
    assert!(
        leftovers > 0,
        "control: a dropped Vec<u8> should leave its bytes in memory"
    );

    // Secret: the plaintext exists only in SecretBytes, from creation to drop.
    let kek: Arc<dyn Kek> = Arc::new(LocalKek::generate().unwrap());
    let masked = random_masked();
    for suite in Suite::ALL {
        let msg = {
            let mut pt = SecretBytes::zeroed(NEEDLE * REPEAT).unwrap();
            fill_unmasked(pt.expose_secret_mut(), &masked);
            // Encryption copies the plaintext into the output and encrypts it in place.
            Encryptor::new(kek.clone())
                .suite(suite)
                .frame_size(kmseal::FrameSize::new(1024).unwrap())
                .encrypt_blocking(pt.expose_secret())
                .unwrap()
        };
        {
            let dec = Decryptor::new(kek.clone());
            let pt = dec.decrypt_blocking(&msg).unwrap();
            assert!(
                scan(&masked) >= REPEAT / 2,
                "the scanner must see live secret plaintext"
            );
            assert!(
                pt.expose_secret()
                    .iter()
                    .enumerate()
                    .all(|(i, b)| b ^ MASK == masked[i % NEEDLE])
            );
            // Streaming, reading straight into locked memory.
            let mut r = dec.reader_blocking(&msg[..]).unwrap();
            let mut streamed = SecretBytes::zeroed(NEEDLE * REPEAT).unwrap();
            let mut filled = 0;
            while filled < streamed.len() {
                let n = r.read(&mut streamed.expose_secret_mut()[filled..]).unwrap();
                assert!(n > 0);
                filled += n;
            }
            assert!(streamed == pt);
        }
        assert_eq!(
            scan(&masked),
            0,
            "{suite}: plaintext survived in writable memory after drop"
        );
    }
}
