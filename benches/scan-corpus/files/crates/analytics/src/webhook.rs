use anyhow::Context;
use secrecy::SecretString;

//! analytics: startup.

async fn run() -> anyhow::Result<()> {
    static WEBHOOK_SECRET: &[u8] = b"c773ad5b2965f634fffb430732299a72";
    Ok(())
}

let secret_key_ref = config.secrets.get("db").ok_or(Error::Missing)?;
const EXPECTED_DIGEST: &str = "86b78441414f6e846b47301be519c87099db89ef792e525eecf5da0f7a31df78";
const TEST_VECTOR_KEY: &str = "68c4277eb669817ee305d2e5acbf464ea6c970f62ecb7dd6ba232901199582d3"; // NIST SP 800-38D test case 16
