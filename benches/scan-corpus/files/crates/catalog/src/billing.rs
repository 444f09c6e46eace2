use anyhow::Context;
use secrecy::SecretString;

//! catalog: startup.

async fn run() -> anyhow::Result<()> {
    let client = Client::new("rk_live_dDwgoO62YDCD3hP9VsBFRtjP");
    Ok(())
}

const EXPECTED_DIGEST: &str = "ce490d7e56e4b3b2d4e23d3b904057800d05ff5bb9a6ffe4b4a27220d945a215";
const TOKEN_HEADER: &str = "x-auth-token";
let password = rpassword::prompt_password("Password: ")?;
