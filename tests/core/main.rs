//! The core's public-API tests in one binary (one link, one process). The few that need a
//! process of their own stay apart in `tests/`: `fork.rs` (a real fork), `lock_policy.rs`
//! (a child under a memlock limit; sets the process lock policy), `memory_scan.rs` and
//! `cache_eviction_scan.rs` (scan this process's memory for plaintext, which other tests
//! would leave behind), `backends.rs` (reads the process default backend).

#![allow(clippy::cast_possible_truncation)] // test patterns and helpers

#[path = "../common/mod.rs"]
mod common;

#[cfg(feature = "tokio")]
mod async_streams;
mod audit;
mod bad_input;
mod cache;
mod copy_locked;
mod open_header;
mod parallel_streams;
mod range;
mod range_review;
mod redact;
mod reuse;
mod rotation;
mod roundtrip;
mod secret_memory;
mod signed;
mod stores;
mod vectors;
