//! kmseal next to its peers, in one process, on the same inputs.
//!
//! * kmseal: [`Encryptor::encrypt_blocking`] / [`Decryptor::decrypt_blocking`] with the local
//!   KEK, one thread (`threads(1)`), a fresh data key per message unless the case says
//!   "cached"; aws-lc backend (and RustCrypto where named).
//! * AWS Encryption SDK for Rust (`aws-esdk`): raw AES keyring (AES-256-GCM wrapping), the
//!   committing suite without signature (`AlgAes256GcmHkdfSha512CommitKey`), 4 KiB frames
//!   (its default), one encryption-context pair like kmseal's.
//! * age: X25519 recipient, `age::encrypt` / `age::decrypt` (64 KiB chunks).
//! * `--signed`: kmseal's signed suite (Ed25519, RustCrypto) against the ESDK's signed
//!   default (`AlgAes256GcmHkdfSha512CommitKeyEcdsaP384`), encrypt + decrypt per message.
//!
//! Every round times each contender back to back on the same buffer; ratios are taken within
//! the round and the median over rounds is printed, so load that comes and goes on a noisy
//! machine hits both sides of a ratio alike. Output: Markdown tables (scripts/bench-peers).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_esdk::client as esdk_client;
use aws_esdk::material_providers::client as mpl_client;
use aws_esdk::material_providers::types::AesWrappingAlg;
use aws_esdk::material_providers::types::EsdkAlgorithmSuiteId;
use aws_esdk::material_providers::types::EsdkAlgorithmSuiteId::AlgAes256GcmHkdfSha512CommitKey;
use aws_esdk::material_providers::types::material_providers_config::MaterialProvidersConfig;
use aws_esdk::types::aws_encryption_sdk_config::AwsEncryptionSdkConfig;
use kmseal::{Backend, CacheLimits, Decryptor, EncryptCache, Encryptor, Kek, LocalKek};

type Job<'a> = Box<dyn FnMut() + 'a>;

/// One contender: the operation timed (one message per call) and its timings.
struct Contender<'a> {
    run: Job<'a>,
    iters: u32,
    times: Vec<f64>,
}

impl<'a> Contender<'a> {
    /// `backend` labels which AEAD backend a kmseal contender's encryptor was built with.
    fn new(name: &'static str, backend: Option<Backend>, run: Job<'a>) -> Contender<'a> {
        let _ = (name, backend);
        Contender {
            run,
            iters: 1,
            times: Vec::new(),
        }
    }

    fn time_once(&mut self) -> f64 {
        let t = Instant::now();
        for _ in 0..self.iters {
            (self.run)();
        }
        t.elapsed().as_secs_f64() / f64::from(self.iters)
    }

    /// Picks an iteration count so one timing takes about `target`.
    fn calibrate(&mut self, target: Duration) {
        self.iters = 1;
        let one = self.time_once().max(1e-9);
        self.iters = ((target.as_secs_f64() / one) as u32).clamp(1, 200_000);
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs `rounds` interleaved rounds, each timing every contender once.
fn race(contenders: &mut [Contender<'_>], rounds: usize, target: Duration) {
    for c in contenders.iter_mut() {
        c.calibrate(target);
    }
    for _ in 0..rounds {
        for c in contenders.iter_mut() {
            let t = c.time_once();
            c.times.push(t);
        }
    }
}

/// Median over rounds of `slow[i] / fast[i]`: how many times faster `fast` was, within rounds.
fn speedup(fast: &Contender<'_>, slow: &Contender<'_>) -> f64 {
    median(
        slow.times
            .iter()
            .zip(&fast.times)
            .map(|(s, f)| s / f)
            .collect(),
    )
}

fn fmt_time(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.2} µs", s * 1e6)
    } else {
        format!("{:.2} ms", s * 1e3)
    }
}

fn fmt_size(n: usize) -> String {
    match n {
        n if n >= 1 << 20 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

fn gbps(size: usize, s: f64) -> String {
    format!("{:.2}", size as f64 / s / 1e9)
}

struct Esdk {
    rt: tokio::runtime::Runtime,
    client: esdk_client::Client,
    keyring: aws_esdk::material_providers::types::keyring::KeyringRef,
    context: std::collections::HashMap<String, String>,
    suite: EsdkAlgorithmSuiteId,
}

impl Esdk {
    fn new() -> Esdk {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client =
            esdk_client::Client::from_conf(AwsEncryptionSdkConfig::builder().build().unwrap())
                .unwrap();
        let mpl =
            mpl_client::Client::from_conf(MaterialProvidersConfig::builder().build().unwrap())
                .unwrap();
        let keyring = rt
            .block_on(
                mpl.create_raw_aes_keyring()
                    .key_name("bench")
                    .key_namespace("kmseal-peers")
                    .wrapping_key(vec![7u8; 32])
                    .wrapping_alg(AesWrappingAlg::AlgAes256GcmIv12Tag16)
                    .send(),
            )
            .unwrap();
        let context = [("app".to_string(), "bench".to_string())].into();
        Esdk {
            rt,
            client,
            keyring,
            context,
            suite: AlgAes256GcmHkdfSha512CommitKey,
        }
    }

    fn encrypt(&self, pt: &[u8]) -> Vec<u8> {
        let r = self
            .rt
            .block_on(
                self.client
                    .encrypt()
                    .plaintext(pt.to_vec())
                    .keyring(self.keyring.clone())
                    .encryption_context(self.context.clone())
                    .algorithm_suite_id(self.suite.clone())
                    .frame_length(4096)
                    .send(),
            )
            .unwrap();
        r.ciphertext.unwrap().into_inner()
    }

    fn decrypt(&self, ct: &[u8]) -> Vec<u8> {
        let r = self
            .rt
            .block_on(
                self.client
                    .decrypt()
                    .ciphertext(ct.to_vec())
                    .keyring(self.keyring.clone())
                    .encryption_context(self.context.clone())
                    .send(),
            )
            .unwrap();
        r.plaintext.unwrap().into_inner()
    }
}

/// kmseal's signed suite against the ESDK's signed default, encrypt + decrypt per message.
fn signed(rounds: usize, target: Duration) {
    let kek: Arc<dyn Kek> = Arc::new(LocalKek::generate().unwrap());
    let enc = Encryptor::new(kek.clone())
        .context("app", "bench")
        .unwrap()
        .threads(1)
        .signed(true)
        .backend(Backend::RustCrypto)
        .unwrap();
    let dec = Decryptor::new(kek)
        .expect_context("app", "bench")
        .unwrap()
        .threads(1)
        .require_signed(true);
    let mut esdk = Esdk::new();
    esdk.suite = EsdkAlgorithmSuiteId::AlgAes256GcmHkdfSha512CommitKeyEcdsaP384;
    println!("## Signed messages: kmseal vs the AWS Encryption SDK's signed default\n");
    println!(
        "Encrypt + decrypt of one message, one thread, medians of {rounds} interleaved rounds.\n"
    );
    println!(
        "| size | kmseal signed (Ed25519, RustCrypto) | AWS ESDK signed default (ECDSA P-384) | kmseal vs ESDK |"
    );
    println!("| --- | --- | --- | --- |");
    for size in [1usize << 10, 1 << 20] {
        let pt: Vec<u8> = (0..size).map(|i| (i * 31) as u8).collect();
        let mut cs = vec![
            Contender::new(
                "kmseal signed",
                Some(Backend::RustCrypto),
                Box::new(|| {
                    let m = enc.encrypt_blocking(black_box(&pt)).unwrap();
                    black_box(dec.decrypt_blocking(&m).unwrap());
                }),
            ),
            Contender::new(
                "esdk signed",
                None,
                Box::new(|| {
                    let c = esdk.encrypt(black_box(&pt));
                    black_box(esdk.decrypt(&c));
                }),
            ),
        ];
        race(&mut cs, rounds, target);
        let t = |c: &Contender<'_>| fmt_time(median(c.times.clone()));
        println!(
            "| {} | {} | {} | **{:.1}×** |",
            fmt_size(size),
            t(&cs[0]),
            t(&cs[1]),
            speedup(&cs[0], &cs[1])
        );
    }
    println!();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rounds = if quick { 3 } else { 11 };
    let target = Duration::from_millis(if quick { 20 } else { 60 });
    if args.iter().any(|a| a == "--signed") {
        signed(rounds, target);
        return;
    }
    let sizes: &[usize] = &[64, 1 << 10, 64 << 10, 1 << 20, 64 << 20];

    let kek: Arc<dyn Kek> = Arc::new(LocalKek::generate().unwrap());
    let enc = Encryptor::new(kek.clone())
        .context("app", "bench")
        .unwrap()
        .threads(1);
    let dec = Decryptor::new(kek.clone())
        .expect_context("app", "bench")
        .unwrap()
        .threads(1);
    let (enc_lc, enc_rc) = (
        enc.clone().backend(Backend::AwsLc).unwrap(),
        enc.clone().backend(Backend::RustCrypto).unwrap(),
    );
    let (dec_lc, dec_rc) = (
        dec.clone().backend(Backend::AwsLc).unwrap(),
        dec.clone().backend(Backend::RustCrypto).unwrap(),
    );
    let esdk = Esdk::new();
    let age_id = age::x25519::Identity::generate();
    let age_to = age_id.to_public();

    println!("## kmseal and its peers, one thread (`scripts/bench-peers`)\n");
    println!(
        "Medians of {rounds} interleaved rounds; speed-ups are medians of within-round ratios.\n"
    );
    for op in ["encrypt", "decrypt"] {
        println!("### {op}\n");
        println!(
            "| size | kmseal aws-lc | kmseal RustCrypto | AWS ESDK | age | kmseal aws-lc vs ESDK | vs age |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- |");
        for &size in sizes {
            let pt: Vec<u8> = (0..size).map(|i| (i * 31) as u8).collect();
            // Sanity: every peer round-trips this input.
            let k_ct = enc.encrypt_blocking(&pt).unwrap();
            assert_eq!(
                dec.decrypt_blocking(&k_ct).unwrap().expose_secret(),
                &pt[..]
            );
            let e_ct = esdk.encrypt(&pt);
            assert_eq!(esdk.decrypt(&e_ct), pt);
            let a_ct = age::encrypt(&age_to, &pt).unwrap();
            assert_eq!(age::decrypt(&age_id, &a_ct).unwrap(), pt);
            let mut cs: Vec<Contender<'_>> = if op == "encrypt" {
                vec![
                    Contender::new(
                        "kmseal aws-lc",
                        Some(Backend::AwsLc),
                        Box::new(|| {
                            black_box(enc_lc.encrypt_blocking(black_box(&pt)).unwrap());
                        }),
                    ),
                    Contender::new(
                        "kmseal RustCrypto",
                        Some(Backend::RustCrypto),
                        Box::new(|| {
                            black_box(enc_rc.encrypt_blocking(black_box(&pt)).unwrap());
                        }),
                    ),
                    Contender::new(
                        "esdk",
                        None,
                        Box::new(|| {
                            black_box(esdk.encrypt(black_box(&pt)));
                        }),
                    ),
                    Contender::new(
                        "age",
                        None,
                        Box::new(|| {
                            black_box(age::encrypt(&age_to, black_box(&pt)).unwrap());
                        }),
                    ),
                ]
            } else {
                vec![
                    Contender::new(
                        "kmseal aws-lc",
                        Some(Backend::AwsLc),
                        Box::new(|| {
                            black_box(dec_lc.decrypt_blocking(black_box(&k_ct)).unwrap());
                        }),
                    ),
                    Contender::new(
                        "kmseal RustCrypto",
                        Some(Backend::RustCrypto),
                        Box::new(|| {
                            black_box(dec_rc.decrypt_blocking(black_box(&k_ct)).unwrap());
                        }),
                    ),
                    Contender::new(
                        "esdk",
                        None,
                        Box::new(|| {
                            black_box(esdk.decrypt(black_box(&e_ct)));
                        }),
                    ),
                    Contender::new(
                        "age",
                        None,
                        Box::new(|| {
                            black_box(age::decrypt(&age_id, black_box(&a_ct)).unwrap());
                        }),
                    ),
                ]
            };
            race(&mut cs, rounds, target);
            let cell = |c: &Contender<'_>| {
                let t = median(c.times.clone());
                format!("{} ({} GB/s)", fmt_time(t), gbps(size, t))
            };
            println!(
                "| {} | {} | {} | {} | {} | **{:.1}×** | {:.1}× |",
                fmt_size(size),
                cell(&cs[0]),
                cell(&cs[1]),
                cell(&cs[2]),
                cell(&cs[3]),
                speedup(&cs[0], &cs[2]),
                speedup(&cs[0], &cs[3]),
            );
        }
        println!();
    }

    // Small messages with a cached data key (kmseal's EncryptCache / DecryptCache, default
    // limits) against the ESDK's per-message cost.
    println!("### 1 KiB messages, kmseal with its data-key caches\n");
    println!(
        "| op | kmseal aws-lc, cached | kmseal RustCrypto, cached | AWS ESDK | kmseal aws-lc vs ESDK (messages/s) |"
    );
    println!("| --- | --- | --- | --- | --- |");
    let pt = vec![0x42u8; 1024];
    let cenc = |e: &Encryptor| e.clone().cache(EncryptCache::new(CacheLimits::default()));
    let cdec = |d: &Decryptor| {
        d.clone()
            .cache(kmseal::DecryptCache::new(Duration::from_secs(300), 100))
    };
    let (cenc_lc, cenc_rc) = (cenc(&enc_lc), cenc(&enc_rc));
    let (cdec_lc, cdec_rc) = (cdec(&dec_lc), cdec(&dec_rc));
    let k_ct = cenc_rc.encrypt_blocking(&pt).unwrap();
    let e_ct = esdk.encrypt(&pt);
    for op in ["encrypt", "decrypt"] {
        let mut cs: Vec<Contender<'_>> = if op == "encrypt" {
            vec![
                Contender::new(
                    "kmseal aws-lc cached",
                    Some(Backend::AwsLc),
                    Box::new(|| {
                        black_box(cenc_lc.encrypt_blocking(black_box(&pt)).unwrap());
                    }),
                ),
                Contender::new(
                    "kmseal rc cached",
                    Some(Backend::RustCrypto),
                    Box::new(|| {
                        black_box(cenc_rc.encrypt_blocking(black_box(&pt)).unwrap());
                    }),
                ),
                Contender::new(
                    "esdk",
                    None,
                    Box::new(|| {
                        black_box(esdk.encrypt(black_box(&pt)));
                    }),
                ),
            ]
        } else {
            vec![
                Contender::new(
                    "kmseal aws-lc cached",
                    Some(Backend::AwsLc),
                    Box::new(|| {
                        black_box(cdec_lc.decrypt_blocking(black_box(&k_ct)).unwrap());
                    }),
                ),
                Contender::new(
                    "kmseal rc cached",
                    Some(Backend::RustCrypto),
                    Box::new(|| {
                        black_box(cdec_rc.decrypt_blocking(black_box(&k_ct)).unwrap());
                    }),
                ),
                Contender::new(
                    "esdk",
                    None,
                    Box::new(|| {
                        black_box(esdk.decrypt(black_box(&e_ct)));
                    }),
                ),
            ]
        };
        race(&mut cs, rounds, target);
        let t = |c: &Contender<'_>| fmt_time(median(c.times.clone()));
        println!(
            "| {op} | {} | {} | {} | **{:.1}×** |",
            t(&cs[0]),
            t(&cs[1]),
            t(&cs[2]),
            speedup(&cs[0], &cs[2]),
        );
    }
    println!();
}
