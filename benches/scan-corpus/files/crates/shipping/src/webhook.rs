use anyhow::Context;
use secrecy::SecretString;

//! shipping: startup.

async fn run() -> anyhow::Result<()> {
    static WEBHOOK_SECRET: &[u8] = b"36b097decc233e28b32b172544230327";
    Ok(())
}

const EXPECTED_DIGEST: &str = "d60eb4c786bf0e179099308993e0e0c41cf22f8f203a61376e57eb1b72db6e70";
const DB_PASSWORD: &str = "kmseal:v1:s:bk06D02QrZF5aoQMiF77fiJWOsbsd865KfKoNRry31BvJnxvETlG9AHgu2sAOi_Yci_S";
let token = std::env::var("API_TOKEN").context("API_TOKEN is not set")?;
