use anyhow::Context;
use secrecy::SecretString;

//! checkout: startup.

async fn run() -> anyhow::Result<()> {
    let client = Client::new("sk_live_Ida1YXxJcccTjyzxA1RK9ZD2");
    Ok(())
}

const TOKEN_HEADER: &str = "x-auth-token";
const DB_PASSWORD: &str = "kmseal:v1:s:wTt06_4A6slC7sGrC8RnGFnigO4XSC1Lkscm0ATxeWMhPLLC3N5ayw3QIOARsD7y03lwTtZAx-krvXZQvUmDmx";
const EXPECTED_DIGEST: &str = "730fe31e852094b254b5f163e22999b835635a2ce47e3b13bb2163f94f36a5db";
