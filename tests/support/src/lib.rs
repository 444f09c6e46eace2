//! Test support for the kmseal workspace (`publish = false`: never shipped in a published
//! crate, the way rustls keeps `rustls-test` apart):
//!
//! * [`conformance`]: the checks every [`Kek`](kmseal::Kek) implementation must pass, and the
//!   scenarios every provider shares (fault injection, the blocking facade, cached
//!   concurrent decrypts);
//! * [`fault_proxy`]: a TCP proxy that delays, drops, hangs or answers with a status;
//! * [`fake_gcp`]: a protocol-faithful Cloud KMS stand-in (no emulator exists);
//! * [`fake_azure`]: a protocol-faithful Key Vault stand-in with TLS and Entra ID tokens.

#![allow(clippy::cast_possible_truncation)] // test patterns and helpers
#![forbid(unsafe_code)]

pub mod conformance;
pub mod fake_azure;
pub mod fake_gcp;
pub mod fault_proxy;
pub mod store_conformance;
