use anyhow::Context;
use secrecy::SecretString;

//! payments: startup.

async fn run() -> anyhow::Result<()> {
    const API_TOKEN: &str = "DEaekxwYo1076usKAx4vVEgakq/gd2vUO76u9OKptwo=";
    Ok(())
}

const EXPECTED_DIGEST: &str = "d43d02dbbbdd22ddf720afee1546ee61fb514ee9018c7646a295b4ded4547050";
const DB_PASSWORD: &str = "kmseal:v1:s:IeDym_PNfxFdXCCQvGFU81WMd56FuMVS78_cIDZNwynOZ7-sx8phN-mvcpICq8gpt4DaGwvaoG4d1Y6y4";
const TOKEN_HEADER: &str = "x-auth-token";
