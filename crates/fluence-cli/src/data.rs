//! Data commands (`dataset`, `insert`, `import`, `find`, `update`,
//! `delete`, `count`): thin clients of a running gateway's HTTP API.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

/// Documents per insert request during `import`.
const IMPORT_BATCH_DOCS: usize = 1000;
/// One JSON line of an import file; far above the 16 MiB document limit in
/// Extended JSON, so the gateway, not this reader, reports oversized ones.
const IMPORT_LINE_LEN_MAX: usize = 64 * 1024 * 1024;

pub struct Gateway {
    base: String,
    agent: ureq::Agent,
}

impl Gateway {
    pub fn new(url: &str) -> Gateway {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Gateway {
            base: url.trim_end_matches('/').to_string(),
            agent,
        }
    }

    fn check(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value> {
        let mut response =
            response.map_err(|e| anyhow!("cannot reach the gateway at {}: {e}", self.base))?;
        let status = response.status();
        let body: Value = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_json()
            .with_context(|| format!("gateway answered {status} without JSON"))?;
        if status.is_success() {
            Ok(body)
        } else {
            let code = body
                .pointer("/error/code")
                .and_then(Value::as_str)
                .unwrap_or("error");
            let message = body
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("");
            bail!("{code}: {message}")
        }
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.check(
            self.agent
                .post(format!("{}{path}", self.base))
                .send_json(body),
        )
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        self.check(self.agent.get(format!("{}{path}", self.base)).call())
    }

    pub fn delete(&self, path: &str) -> Result<Value> {
        self.check(self.agent.delete(format!("{}{path}", self.base)).call())
    }
}

pub fn parse_json(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text).with_context(|| format!("{what} is not valid JSON: {text}"))
}

pub fn print(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// `FIELD:KIND` pairs, e.g. `age:range`.
pub fn index_specs(specs: &[String]) -> Result<Vec<Value>> {
    specs
        .iter()
        .map(|spec| match spec.rsplit_once(':') {
            Some((field, kind)) if !field.is_empty() => Ok(json!({"field": field, "kind": kind})),
            _ => bail!("index {spec:?} must be FIELD:KIND, with KIND one of eq, range, text"),
        })
        .collect()
}

fn dataset_path(name: &str) -> String {
    let encoded: String = name
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("/v1/datasets/{encoded}")
}

pub fn create(gw: &Gateway, name: &str, indexes: &[String]) -> Result<Value> {
    gw.post(
        "/v1/datasets",
        &json!({"name": name, "indexes": index_specs(indexes)?}),
    )
}

pub fn list(gw: &Gateway) -> Result<Value> {
    gw.get("/v1/datasets")
}

pub fn drop(gw: &Gateway, name: &str) -> Result<Value> {
    gw.delete(&dataset_path(name))
}

pub fn op(gw: &Gateway, name: &str, op: &str, body: &Value) -> Result<Value> {
    gw.post(&format!("{}/{op}", dataset_path(name)), body)
}

/// Streams a JSON Lines file into the dataset in batches, with progress.
pub fn import(gw: &Gateway, name: &str, file: &Path) -> Result<u64> {
    let handle =
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let total_bytes = handle.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = indicatif::ProgressBar::new(total_bytes);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut reader = BufReader::new(handle);
    let mut batch = Vec::with_capacity(IMPORT_BATCH_DOCS);
    let mut inserted = 0u64;
    let mut line_no = 0u64;
    let mut line = String::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(IMPORT_LINE_LEN_MAX as u64 + 1)
            .read_line(&mut line)
            .with_context(|| format!("reading {}", file.display()))?;
        if read == 0 {
            break;
        }
        line_no += 1;
        if read > IMPORT_LINE_LEN_MAX {
            bail!("line {line_no} is longer than {IMPORT_LINE_LEN_MAX} bytes");
        }
        bar.inc(read as u64);
        if line.trim().is_empty() {
            continue;
        }
        let doc: Value = serde_json::from_str(&line)
            .with_context(|| format!("line {line_no} is not valid JSON"))?;
        if !doc.is_object() {
            bail!("line {line_no} is not a JSON object");
        }
        batch.push(doc);
        if batch.len() == IMPORT_BATCH_DOCS {
            inserted += send_batch(gw, name, &mut batch, line_no)?;
            bar.set_message(format!("{inserted} documents"));
        }
    }
    if !batch.is_empty() {
        inserted += send_batch(gw, name, &mut batch, line_no)?;
    }
    bar.finish_with_message(format!("{inserted} documents"));
    Ok(inserted)
}

fn send_batch(gw: &Gateway, name: &str, batch: &mut Vec<Value>, line_no: u64) -> Result<u64> {
    let docs = std::mem::take(batch);
    let answer = op(gw, name, "documents", &json!({"documents": docs}))
        .with_context(|| format!("inserting the batch ending at line {line_no}"))?;
    Ok(answer
        .get("inserted_count")
        .and_then(Value::as_u64)
        .unwrap_or(0))
}
