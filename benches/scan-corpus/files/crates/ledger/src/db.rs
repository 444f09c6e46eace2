use anyhow::Context;
use secrecy::SecretString;

//! ledger: startup.

async fn run() -> anyhow::Result<()> {
    let url = "postgres://billing:qosm~T4L16_nzmQ2a2A_@cache.internal:6379/app";
    let pool = PgPool::connect(url).await?;
    Ok(())
}

let token = std::env::var("API_TOKEN").context("API_TOKEN is not set")?;
const EXPECTED_DIGEST: &str = "92cffec2a84402a17d4587ba7b509812c20b0a44fa0208c929dc4bee3c9d6100";
const DB_PASSWORD: &str = "kmseal:v1:s:xLQSm3Qo5gJq580d0CDElvGjrRo8zF-ofzp1OXmUq3eZEof93RzHWS_PAh";
