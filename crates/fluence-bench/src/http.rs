//! The benchmarks' one HTTP call: a JSON POST to the gateway whose answer
//! must be a success. Shared by `fluence-bench` and `restore`.

use anyhow::{Context, Result};
use serde_json::Value;

/// POSTs `body` (already JSON); the answer, which must be a success.
/// Answers may be large (pages of documents), hence the 1 GiB limit.
pub fn post(agent: &ureq::Agent, url: &str, body: &[u8]) -> Result<Value> {
    let mut response = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let value: Value = response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_json()
        .with_context(|| format!("POST {url}: {status}, body not JSON"))?;
    anyhow::ensure!(status.is_success(), "{url}: {status} {value}");
    Ok(value)
}
