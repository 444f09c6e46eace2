//! The embedded local KEK passes the provider conformance suite every KMS provider runs.
//! (Here rather than in the core's tests: a dev-dependency of the core on this crate would pull
//! its stand-ins' dependencies into the core's bench and example builds, and `rsa` turns on
//! `sha2/zeroize`, which changes what the benches measure.)

use std::sync::Arc;

use kmseal::LocalKek;

#[test]
fn the_local_kek_passes_the_conformance_suite() {
    let a = Arc::new(LocalKek::generate().expect("key"));
    let b = Arc::new(LocalKek::generate().expect("key"));
    kmseal::blocking::block_on(kmseal_test_support::conformance::run(a, b));
}
