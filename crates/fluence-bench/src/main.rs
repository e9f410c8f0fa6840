//! `fluence-bench`: end-to-end throughput and latency through the real HTTP
//! gateway, client encryption, libp2p on loopback, node and store.
//!
//! Workload: documents of about 1 KiB with three indexed fields (`email`
//! eq, `age` range, `title` text) and an unindexed payload. Measured: bulk
//! insert (batches of 1,000 per request), `eq` lookup of one document, and
//! a range query returning 100 documents. Build with `--features plaintext`
//! to run the same paths with encryption switched off.

mod http;
mod workload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use fluence_client::Client;
use fluence_crypto::keys::MasterKey;
use fluence_net::NodeClient;
use fluence_node::{NodeConfig, RunningNode};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    /// Dataset sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    docs: Vec<usize>,
    /// Documents per insert request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Insert requests in flight at once (separate HTTP connections).
    #[arg(long, default_value_t = 1)]
    inserters: usize,
    /// Timed lookups and range queries per size.
    #[arg(long, default_value_t = 500)]
    queries: usize,
    /// Trials per size, each on a fresh node and data directory; the
    /// figures reported are the medians over trials.
    #[arg(long, default_value_t = 3)]
    trials: usize,
}

const BODY_BYTES: usize = 1024;

/// CPU time (user + system) this process has used so far, all threads,
/// from `/proc/self/stat` (clock ticks, fields 14 and 15). CPU time rather
/// than wall time does not depend on what else the machine runs, so the
/// two builds can be compared on a shared machine; `None` off Linux.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux ABI Rust targets.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// CPU time used since `since`, per operation, in microseconds.
fn cpu_per_op_us(since: Option<Duration>, ops: usize) -> Option<f64> {
    let used = process_cpu()?.checked_sub(since?)?;
    Some(used.as_secs_f64() * 1e6 / ops.max(1) as f64)
}

fn show(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.0}"))
}
const RANGE_DOCS: i64 = 100;

struct Stats {
    samples_us: Vec<u64>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            samples_us: Vec::new(),
        }
    }
    fn push(&mut self, elapsed: Duration) {
        self.samples_us.push(elapsed.as_micros() as u64);
    }
    fn quantile_ms(&mut self, q: f64) -> f64 {
        if self.samples_us.is_empty() {
            return f64::NAN;
        }
        self.samples_us.sort_unstable();
        let at = ((self.samples_us.len() as f64 - 1.0) * q).round() as usize;
        self.samples_us[at] as f64 / 1000.0
    }
    fn per_second(&self) -> f64 {
        let total: u64 = self.samples_us.iter().sum();
        self.samples_us.len() as f64 / (total as f64 / 1e6)
    }
}

fn post(agent: &ureq::Agent, url: &str, body: &Value) -> Result<Value> {
    http::post(agent, url, &serde_json::to_vec(body)?)
}

/// POSTs every body to `url`, keeping `inserters` requests in flight (one
/// connection each; each takes the next body not yet sent), and fails with
/// the first request that failed.
fn insert_all(agent: &ureq::Agent, url: &str, bodies: &[Vec<u8>], inserters: usize) -> Result<()> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..inserters)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(body) = bodies.get(i) else {
                            return Ok(());
                        };
                        http::post(agent, url, body)?;
                    }
                })
            })
            .collect();
        workers.into_iter().try_for_each(|worker| {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("inserter panicked"))?
        })
    })
}

/// What one trial measured: one size, on a fresh node and data directory.
struct Trial {
    insert_per_second: f64,
    eq: Stats,
    range: Stats,
    insert_cpu_us: Option<f64>,
    eq_cpu_us: Option<f64>,
    range_cpu_us: Option<f64>,
}

/// One trial of `n` documents: a fresh node, gateway and dataset; a bulk
/// insert, then the timed lookups and range queries.
fn trial(runtime: &tokio::runtime::Runtime, args: &Args, n: usize) -> Result<Trial> {
    let dir = tempfile::tempdir()?;
    let (node, api, stop) = runtime.block_on(async {
        let node = RunningNode::start(NodeConfig {
            data_dir: dir.path().join("node"),
            listen: "/ip4/127.0.0.1/tcp/0".parse()?,
            record_requests: None,
            discovery: Default::default(),
        })
        .await?;
        let connection = NodeClient::connect(node.dial_addr(), Duration::from_secs(10)).await?;
        let client = Arc::new(Client::new(MasterKey::generate(), connection));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let api = format!("http://{}", listener.local_addr()?);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(fluence_gateway::serve(listener, client, async {
            let _ = stop_rx.await;
        }));
        anyhow::Ok((node, api, stop_tx))
    })?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into();
    post(
        &agent,
        &format!("{api}/v1/datasets"),
        &json!({"name": "bench", "indexes": {"email": "eq", "age": "range", "title": "text"}}),
    )?;

    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let docs: Vec<Value> = (0..n)
        .map(|i| workload::document(i, BODY_BYTES, &mut rng))
        .collect();
    // Request bodies are serialized before the clock starts, so the
    // figure is the gateway's and the node's work, not this client's.
    let bodies: Vec<Vec<u8>> = docs
        .chunks(args.batch)
        .map(|chunk| serde_json::to_vec(&json!({ "documents": chunk })))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let cpu_before_insert = process_cpu();
    insert_all(
        &agent,
        &format!("{api}/v1/datasets/bench/documents"),
        &bodies,
        args.inserters,
    )?;
    let insert_per_second = n as f64 / started.elapsed().as_secs_f64();
    let insert_cpu_us = cpu_per_op_us(cpu_before_insert, n);

    let find = format!("{api}/v1/datasets/bench/find");
    let (eq, eq_cpu_us) = timed_queries(&agent, &find, args.queries, 1, || {
        let i = rng.gen_range(0..n);
        json!({"filter": {"email": format!("user{i}@example.org")}})
    })?;
    let (range, range_cpu_us) =
        timed_queries(&agent, &find, args.queries, RANGE_DOCS as usize, || {
            let low = rng.gen_range(0..(n as i64 - RANGE_DOCS));
            json!({"filter": {"age": {"$gte": low, "$lt": low + RANGE_DOCS}}})
        })?;
    let _ = stop.send(());
    runtime.block_on(node.shutdown());
    Ok(Trial {
        insert_per_second,
        eq,
        range,
        insert_cpu_us,
        eq_cpu_us,
        range_cpu_us,
    })
}

/// Runs `count` finds one after another, each with the body `next_body`
/// makes, each answer checked to hold `expected` documents: the
/// latencies and the CPU time per find.
fn timed_queries(
    agent: &ureq::Agent,
    url: &str,
    count: usize,
    expected: usize,
    mut next_body: impl FnMut() -> Value,
) -> Result<(Stats, Option<f64>)> {
    let mut stats = Stats::new();
    let cpu_before = process_cpu();
    for _ in 0..count {
        let body = next_body();
        let started = Instant::now();
        let found = post(agent, url, &body)?;
        stats.push(started.elapsed());
        anyhow::ensure!(
            found["documents"].as_array().map(Vec::len) == Some(expected),
            "expected {expected} documents, found {found}"
        );
    }
    Ok((stats, cpu_per_op_us(cpu_before, count)))
}

/// The median of `values` (the upper one of an even count); NaN if none.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The median over trials of one optional figure (CPU time is `None` off
/// Linux).
fn median_of(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let values: Option<Vec<f64>> = values.collect();
    values.filter(|v| !v.is_empty()).map(median)
}

fn main() -> Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.trials >= 1, "--trials must be at least 1");
    anyhow::ensure!(args.batch >= 1, "--batch must be at least 1");
    anyhow::ensure!(args.inserters >= 1, "--inserters must be at least 1");
    anyhow::ensure!(
        args.docs.iter().all(|&n| n > RANGE_DOCS as usize),
        "every --docs size must exceed the {RANGE_DOCS} documents a range query returns"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mode = if fluence_crypto::BENCH_PLAINTEXT {
        "encryption OFF (bench build)"
    } else {
        "encrypted"
    };
    println!(
        "# fluence-bench: {mode}, {} insert request(s) in flight, {} documents per request, median of {} trial(s) per size",
        args.inserters, args.batch, args.trials
    );
    println!("| docs | bulk insert docs/s | eq lookup p50 ms | eq lookup p99 ms | eq lookups/s | range(100) p50 ms | range(100) p99 ms | range queries/s |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut cpu_lines = Vec::new();
    let mut trial_lines = Vec::new();
    for &n in &args.docs {
        let mut trials = (0..args.trials)
            .map(|_| trial(&runtime, &args, n))
            .collect::<Result<Vec<_>>>()?;
        let insert = median(trials.iter().map(|t| t.insert_per_second).collect());
        let eq_p50 = median(trials.iter_mut().map(|t| t.eq.quantile_ms(0.5)).collect());
        let eq_p99 = median(trials.iter_mut().map(|t| t.eq.quantile_ms(0.99)).collect());
        let eq_rate = median(trials.iter().map(|t| t.eq.per_second()).collect());
        let range_p50 = median(
            trials
                .iter_mut()
                .map(|t| t.range.quantile_ms(0.5))
                .collect(),
        );
        let range_p99 = median(
            trials
                .iter_mut()
                .map(|t| t.range.quantile_ms(0.99))
                .collect(),
        );
        let range_rate = median(trials.iter().map(|t| t.range.per_second()).collect());
        println!(
            "| {n} | {insert:.0} | {eq_p50:.3} | {eq_p99:.3} | {eq_rate:.0} | {range_p50:.3} | {range_p99:.3} | {range_rate:.0} |"
        );
        cpu_lines.push(format!(
            "| {n} | {} | {} | {} |",
            show(median_of(trials.iter().map(|t| t.insert_cpu_us))),
            show(median_of(trials.iter().map(|t| t.eq_cpu_us))),
            show(median_of(trials.iter().map(|t| t.range_cpu_us))),
        ));
        let rates: Vec<String> = trials
            .iter()
            .map(|t| format!("{:.0}", t.insert_per_second))
            .collect();
        trial_lines.push(format!("| {n} | {} |", rates.join(", ")));
    }
    // Client, gateway and node share this process: its CPU time is the
    // whole system's, independent of other load on the machine.
    println!();
    println!("| docs | insert CPU µs/doc | eq lookup CPU µs | range(100) CPU µs |");
    println!("|---|---|---|---|");
    for line in cpu_lines {
        println!("{line}");
    }
    // Every trial, in order: the first one of a run also pays the
    // process's start-up (thread pools, heap growth, caches).
    println!();
    println!("| docs | bulk insert docs/s of each trial, in order |");
    println!("|---|---|");
    for line in trial_lines {
        println!("{line}");
    }
    Ok(())
}
