//! `restore`: the time from a cluster member's death to restored
//! replication, on an open network of real `fluence node` processes on
//! loopback (issue 4: "time from a member's death to restored replication
//! on the devnet. Target: replication restored within 60 s of the grace
//! period ending for a 100 MB dataset on loopback").
//!
//! 1. Starts `--nodes` nodes (each with `--grace-period`), all joining
//!    through node 0, waits until every node's routing table holds all the
//!    others, starts a `fluence gateway` entering through node 0, creates one
//!    dataset (placed on the `--cluster-size` nodes closest to its id) and
//!    loads `--mib` MiB of ~1 KiB documents in batches of `--batch`; waits
//!    until the members agree on the state root and applied height.
//! 2. SIGKILLs one member other than node 0 (the gateway's entry node):
//!    `t_kill`.
//! 3. Polls `fluence status --json` on every live node every `--poll-ms`:
//!    - `t_change`: the first continuing member reports epoch ≥ 1 (the
//!      membership change was finalized and its replica restarted);
//!      `t_change_all`: every continuing member does;
//!    - `t_restored`: a node that was not a member reports the dataset at
//!      the new epoch, in the members' list, not syncing, without fault,
//!      on the continuing members' state root, at an applied height at
//!      least the lowest of theirs (it is polled after them): the dataset
//!      has its full number of copies again.
//! 4. Prints the figures, and the lines of the coordinator's and the
//!    newcomer's logs that mark the steps in between (detection, proposal,
//!    snapshot, restart), as seconds after the kill.
//!
//! The nodes' logs stay in a directory printed at the start; their data
//! directories are deleted at the end unless `--keep`.

#[path = "../http.rs"]
mod http;
#[path = "../workload.rs"]
mod workload;

use http::post;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use rand::SeedableRng;
use serde_json::{json, Value};

const PASSPHRASE: &str = "restore benchmark passphrase";
const DATASET: &str = "restore";
const START_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Parser)]
#[command(about = "Time from a member's death to restored replication, on real node processes")]
struct Args {
    /// The `fluence` binary (release build). Default: next to this
    /// binary, else $CARGO_TARGET_DIR/release/fluence, else
    /// target/release/fluence in the workspace.
    #[arg(long)]
    fluence: Option<PathBuf>,
    /// Nodes of the open network.
    #[arg(long, default_value_t = 6)]
    nodes: usize,
    /// Members of the dataset's cluster (the gateway's --cluster-size).
    #[arg(long, default_value_t = 4)]
    cluster_size: usize,
    /// Size of the loaded documents' JSON, in MiB.
    #[arg(long, default_value_t = 100.0)]
    mib: f64,
    /// Approximate size of one document's JSON, in bytes.
    #[arg(long, default_value_t = 1024)]
    doc_bytes: usize,
    /// Documents per insert request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Every node's --grace-period, in seconds.
    #[arg(long, default_value_t = 10)]
    grace: u64,
    /// Interval between status polls, in milliseconds.
    #[arg(long, default_value_t = 250)]
    poll_ms: u64,
    /// Give up waiting for the restore after this many seconds.
    #[arg(long, default_value_t = 1200)]
    timeout: u64,
    /// Node to kill (index); default: the first member that is not node 0.
    #[arg(long)]
    victim: Option<usize>,
    /// During the restore, insert this many documents per request, one
    /// request every --load-interval-ms (0: no write load).
    #[arg(long, default_value_t = 0)]
    load_docs: usize,
    #[arg(long, default_value_t = 500)]
    load_interval_ms: u64,
    /// Where the data directories go (a new temporary directory inside).
    #[arg(long, default_value = "/tmp")]
    dir: PathBuf,
    /// Keep the data directories at the end.
    #[arg(long)]
    keep: bool,
    /// The nodes' FLUENCE_LOG filter (their logs are kept). The default
    /// logs each step of a change and of a sync, and the serving member's
    /// "snapshot opened" (`fluence_consensus` debug is quiet).
    #[arg(long, default_value = "warn,fluence_node=info,fluence_consensus=debug")]
    node_log: String,
}

/// A child process whose stdout is read line by line; SIGKILLed on drop.
struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Process {
    /// Starts `command` with its stderr appended to `log` (or discarded).
    fn spawn(mut command: Command, log: Option<&Path>) -> Result<Process> {
        let stderr = match log {
            Some(log) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .with_context(|| format!("opening {}", log.display()))?,
            ),
            None => Stdio::null(),
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {command:?}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // Drains stdout for the life of the process.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Ok(Process { child, lines: rx })
    }

    /// The next stdout line containing `needle`.
    fn wait_for(&mut self, needle: &str) -> Result<String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(line),
                Ok(line) => seen.push(line),
                Err(_) => bail!("no stdout line with {needle:?}; saw {seen:?}"),
            }
        }
    }

    /// The last word of the next stdout line containing `needle`.
    fn value_of(&mut self, needle: &str) -> Result<String> {
        let line = self.wait_for(needle)?;
        Ok(line
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_string())
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One node of the network.
struct Node {
    dial: String,
    key: String,
    data: PathBuf,
    log: PathBuf,
    process: Option<Process>,
}

/// One node's view of the dataset in `fluence status --json`.
#[derive(Debug, Clone)]
struct View {
    epoch: Option<u64>,
    applied: u64,
    root: String,
    syncing: bool,
    fault: Option<String>,
    members: Vec<String>,
}

impl View {
    fn parse(d: &Value) -> View {
        View {
            epoch: d["epoch"].as_u64(),
            applied: d["applied_height"].as_u64().unwrap_or(0),
            root: d["state_root"].as_str().unwrap_or_default().to_string(),
            syncing: d["syncing"].as_bool().unwrap_or(false),
            fault: d["fault"].as_str().map(str::to_string),
            members: d["members"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "epoch {:?} applied {} root {}{}{}",
            self.epoch,
            self.applied,
            &self.root[..12.min(self.root.len())],
            if self.syncing { " syncing" } else { "" },
            self.fault
                .as_ref()
                .map(|f| format!(" FAULT {f}"))
                .unwrap_or_default()
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fluence_binary(args: &Args) -> Result<PathBuf> {
    if let Some(path) = &args.fluence {
        return Ok(path.clone());
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe()?.parent() {
        candidates.push(dir.join("fluence"));
    }
    if let Ok(target) = std::env::var("CARGO_TARGET_DIR") {
        candidates.push(Path::new(&target).join("release/fluence"));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/fluence"));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| anyhow!("no fluence binary in {candidates:?}; pass --fluence"))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Every file under `dir`, with its size in bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                files.push((entry.path(), meta.len()));
            }
        }
    }
    files
}

/// Total size of the files under `dir`, in bytes.
fn size_on_disk(dir: &Path) -> u64 {
    files_under(dir).iter().map(|(_, len)| len).sum()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into()
}

/// `fluence status --json` of `dials`, in that order: each node's answer
/// (an error when a node did not answer).
fn status(fluence: &Path, dials: &[String]) -> Result<Vec<Value>> {
    let mut command = Command::new(fluence);
    command
        .args(["status", "--json"])
        .env("FLUENCE_LOG", "error");
    for dial in dials {
        command.args(["--node", dial]);
    }
    let output = command.output().context("fluence status")?;
    anyhow::ensure!(
        output.status.success(),
        "fluence status failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: Value = serde_json::from_slice(&output.stdout).context("status JSON")?;
    let nodes = parsed["nodes"]
        .as_array()
        .ok_or_else(|| anyhow!("no nodes in {parsed}"))?
        .clone();
    for node in &nodes {
        if let Some(error) = node.get("error") {
            bail!("{}: {error}", node["address"]);
        }
    }
    Ok(nodes)
}

/// The dataset's view in one node's status answer, if it serves it.
fn view_of(answer: &Value, dataset: &str) -> Option<View> {
    answer["datasets"]
        .as_array()?
        .iter()
        .find(|d| d["dataset"] == dataset)
        .map(View::parse)
}

/// Seconds since the Unix epoch of a log line's leading RFC 3339 UTC
/// timestamp (`2026-11-22T03:47:12.123456Z`), as tracing writes it.
fn log_time(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let s: f64 = t.next()?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + min * 60) as f64 + s)
}

/// The machine's 1, 5 and 15 minute load averages (`/proc/loadavg`).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

/// CPU time (user + system) process `pid` has used, in seconds
/// (`/proc/<pid>/stat`, fields 14 and 15, in clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Lines of `log` written at or after `since` (Unix seconds) that mention
/// the dataset or a step of a membership change or sync, with their time
/// relative to `since`; at most `max`, then a count of the rest.
fn log_events(log: &Path, since: f64, dataset: &str, max: usize) -> Vec<String> {
    const STEPS: [&str; 8] = [
        "out of reach",
        "proposed a membership change",
        "membership changed",
        "replica started",
        "snapshot",
        "learned a dataset",
        "replaced",
        "could not propose",
    ];
    let Ok(text) = std::fs::read_to_string(log) else {
        return vec!["(no log)".into()];
    };
    let mut out = Vec::new();
    let mut more = 0;
    for line in text.lines() {
        let Some(t) = log_time(line) else { continue };
        if t < since - 0.001 {
            continue;
        }
        if !(line.contains(dataset) || STEPS.iter().any(|s| line.contains(s))) {
            continue;
        }
        if out.len() < max {
            let rest = line.split_once(' ').map(|x| x.1).unwrap_or(line).trim();
            out.push(format!("+{:8.3} s  {}", t - since, rest));
        } else {
            more += 1;
        }
    }
    if more > 0 {
        out.push(format!("({more} more lines)"));
    }
    out
}

/// A light write load: one insert of `docs` documents every `interval`,
/// ids from `first` on, until stopped.
#[derive(Default)]
struct Load {
    acked: usize,
    failed: usize,
    ack_times: Vec<Instant>,
    last_failure: Option<String>,
}

fn run_load(
    api: String,
    docs: usize,
    doc_bytes: usize,
    interval: Duration,
    first: usize,
    stop: Arc<AtomicBool>,
    load: Arc<Mutex<Load>>,
) {
    let agent = agent();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut next = first;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let batch: Vec<Value> = (next..next + docs)
            .map(|i| workload::document(i, doc_bytes, &mut rng))
            .collect();
        next += docs;
        let body = serde_json::to_vec(&json!({ "documents": batch })).expect("JSON");
        let result = post(
            &agent,
            &format!("{api}/v1/datasets/{DATASET}/documents"),
            &body,
        );
        {
            let mut load = load.lock().unwrap();
            match result {
                Ok(_) => {
                    load.acked += docs;
                    load.ack_times.push(Instant::now());
                }
                Err(error) => {
                    load.failed += 1;
                    load.last_failure = Some(format!("{error:#}"));
                }
            }
        }
        std::thread::sleep(interval.saturating_sub(started.elapsed()));
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.nodes > args.cluster_size,
        "--nodes must exceed --cluster-size"
    );
    let fluence = fluence_binary(&args)?;
    let work = tempfile::Builder::new()
        .prefix("fluence-restore-")
        .tempdir_in(&args.dir)?;
    let logs = std::env::temp_dir().join(format!(
        "fluence-restore-logs-{}",
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs()
    ));
    std::fs::create_dir_all(&logs)?;
    let run = run(&args, &fluence, work.path(), &logs);
    if args.keep {
        let kept = work.keep();
        println!("data kept in {}", kept.display());
    } else {
        drop(work);
    }
    println!("node logs in {}", logs.display());
    run
}

fn run(args: &Args, fluence: &Path, work: &Path, logs: &Path) -> Result<()> {
    let started = Instant::now();
    println!(
        "# restore: {} nodes, cluster of {}, {:.1} MiB of ~{} B documents, grace period {} s; \
         binary {}",
        args.nodes,
        args.cluster_size,
        args.mib,
        args.doc_bytes,
        args.grace,
        fluence.display()
    );
    println!(
        "data in {}, node logs in {}",
        work.display(),
        logs.display()
    );

    // The owner's key, for the gateway and to compute the dataset's id.
    let keys = work.join("keys");
    let mut new_key = Command::new(fluence);
    new_key
        .args(["keys", "new", "owner", "--dir"])
        .arg(&keys)
        .env("FLUENCE_PASSPHRASE", PASSPHRASE)
        .stdout(Stdio::null());
    let output = new_key.output()?;
    anyhow::ensure!(output.status.success(), "fluence keys new: {output:?}");
    let master =
        fluence_crypto::keystore::Keystore::unlock(&keys.join("owner.key"), PASSPHRASE.as_bytes())
            .map_err(|e| anyhow!("unlocking the owner key: {e:?}"))?;
    let dataset = hex(&fluence_crypto::keys::dataset_id(
        &master.owner_public_key(),
        &master.catalog_key().name_tag(DATASET),
    ));

    // The nodes: node 0 first, then the others through it.
    let mut nodes: Vec<Node> = Vec::new();
    let mut bootstrap = String::new();
    for i in 0..args.nodes {
        let data = work.join(format!("n{i}"));
        let log = logs.join(format!("n{i}.log"));
        let mut command = Command::new(fluence);
        command
            .args([
                "node",
                "--listen",
                &format!("/ip4/127.0.0.1/tcp/{}", free_port()?),
                "--grace-period",
                &args.grace.to_string(),
                "--data-dir",
            ])
            .arg(&data)
            .env("FLUENCE_LOG", &args.node_log)
            .env("NO_COLOR", "1");
        if i > 0 {
            command.args(["--bootstrap", &bootstrap]);
        }
        let mut process = Process::spawn(command, Some(&log))?;
        let dial = process.value_of("dial address:")?;
        let key = process.value_of("member key:")?;
        process.wait_for("clusters:")?;
        if i == 0 {
            bootstrap = dial.clone();
        }
        nodes.push(Node {
            dial,
            key,
            data,
            log,
            process: Some(process),
        });
    }
    let all_dials: Vec<String> = nodes.iter().map(|n| n.dial.clone()).collect();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let ready = status(fluence, &all_dials)
            .map(|answers| {
                answers.iter().all(|a| {
                    a["network"]["routing_table_size"].as_u64().unwrap_or(0)
                        >= (args.nodes - 1) as u64
                })
            })
            .unwrap_or(false);
        if ready {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the nodes' routing tables never held every node"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "{} nodes up, every routing table full, in {:.1} s",
        args.nodes,
        started.elapsed().as_secs_f64()
    );

    // The gateway, through node 0.
    let mut gateway = Command::new(fluence);
    gateway
        .args([
            "gateway",
            "--http",
            "127.0.0.1:0",
            "--mongo",
            "127.0.0.1:0",
            "--cluster-size",
            &args.cluster_size.to_string(),
            "--node",
            &nodes[0].dial,
            "--key",
        ])
        .arg(keys.join("owner.key"))
        .env("FLUENCE_PASSPHRASE", PASSPHRASE)
        .env("FLUENCE_LOG", "warn")
        .env("NO_COLOR", "1");
    let mut gateway = Process::spawn(gateway, Some(&logs.join("gateway.log")))?;
    let api = gateway
        .wait_for("HTTP API:")?
        .split_whitespace()
        .nth(2)
        .ok_or_else(|| anyhow!("no HTTP API address"))?
        .trim_end_matches("/v1")
        .to_string();
    let agent = agent();
    post(
        &agent,
        &format!("{api}/v1/datasets"),
        &serde_json::to_vec(&json!({
            "name": DATASET,
            "indexes": {"email": "eq", "age": "range", "title": "text"},
        }))?,
    )?;

    // The load.
    let docs = ((args.mib * 1024.0 * 1024.0) / args.doc_bytes as f64).round() as usize;
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let load_started = Instant::now();
    let mut sent_bytes = 0u64;
    let mut loaded = 0usize;
    let mut last_report = Instant::now();
    while loaded < docs {
        let n = args.batch.min(docs - loaded);
        let batch: Vec<Value> = (loaded..loaded + n)
            .map(|i| workload::document(i, args.doc_bytes, &mut rng))
            .collect();
        let body = serde_json::to_vec(&json!({ "documents": batch }))?;
        sent_bytes += body.len() as u64;
        let answer = post(
            &agent,
            &format!("{api}/v1/datasets/{DATASET}/documents"),
            &body,
        )?;
        anyhow::ensure!(
            answer["inserted_count"].as_u64() == Some(n as u64),
            "insert answered {answer}"
        );
        loaded += n;
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            println!(
                "  loaded {loaded} of {docs} documents ({:.0}/s)",
                loaded as f64 / load_started.elapsed().as_secs_f64()
            );
        }
    }
    let load_took = load_started.elapsed();
    println!(
        "loaded {loaded} documents, {:.1} MiB of JSON sent, in {:.1} s ({:.0} documents/s)",
        mib(sent_bytes),
        load_took.as_secs_f64(),
        loaded as f64 / load_took.as_secs_f64()
    );

    // The members, agreeing.
    let deadline = Instant::now() + Duration::from_secs(300);
    let (members, before) = loop {
        let answers = status(fluence, &all_dials)?;
        let views: Vec<(usize, View)> = answers
            .iter()
            .enumerate()
            .filter_map(|(i, a)| view_of(a, &dataset).map(|v| (i, v)))
            .collect();
        let agree = views.len() == args.cluster_size
            && views.iter().all(|(_, v)| {
                v.root == views[0].1.root
                    && !v.syncing
                    && v.fault.is_none()
                    && v.epoch == Some(0)
                    && v.members == views[0].1.members
            })
            && views.iter().map(|(_, v)| v.applied).max().unwrap_or(0)
                - views.iter().map(|(_, v)| v.applied).min().unwrap_or(0)
                <= 2;
        if agree {
            break (views.iter().map(|(i, _)| *i).collect::<Vec<_>>(), views);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the members never agreed: {views:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let member_list = &before[0].1.members;
    for i in &members {
        anyhow::ensure!(
            member_list.contains(&nodes[*i].key),
            "node {i} serves the dataset but is not in its members list {member_list:?}"
        );
    }
    let store_bytes: Vec<u64> = members
        .iter()
        .map(|i| size_on_disk(&nodes[*i].data))
        .collect();
    println!(
        "members: nodes {members:?} at height {} (root {}); data directory of each member: {} MiB",
        before[0].1.applied,
        &before[0].1.root[..12],
        store_bytes
            .iter()
            .map(|b| format!("{:.0}", mib(*b)))
            .collect::<Vec<_>>()
            .join(" / ")
    );
    let store_files = describe_store(&nodes[members[0]].data);

    // The kill.
    let victim = match args.victim {
        Some(v) => {
            anyhow::ensure!(
                v != 0 && members.contains(&v),
                "--victim {v} is not a member other than node 0"
            );
            v
        }
        None => *members
            .iter()
            .find(|i| **i != 0)
            .expect("a member but node 0"),
    };
    let continuing: Vec<usize> = members.iter().copied().filter(|i| *i != victim).collect();
    let outsiders: Vec<usize> = (0..args.nodes).filter(|i| !members.contains(i)).collect();
    // Continuing members first, outsiders last: a newcomer polled after
    // the members is caught up if it is at least as high as they were.
    let order: Vec<usize> = continuing.iter().chain(&outsiders).copied().collect();
    let dials: Vec<String> = order.iter().map(|i| nodes[*i].dial.clone()).collect();

    let stop_load = Arc::new(AtomicBool::new(false));
    let load = Arc::new(Mutex::new(Load::default()));
    let writer = (args.load_docs > 0).then(|| {
        let (api, stop, load) = (api.clone(), Arc::clone(&stop_load), Arc::clone(&load));
        let (n, size) = (args.load_docs, args.doc_bytes);
        let interval = Duration::from_millis(args.load_interval_ms);
        std::thread::spawn(move || run_load(api, n, size, interval, docs, stop, load))
    });
    if writer.is_some() {
        std::thread::sleep(Duration::from_secs(3));
    }

    let kill_wall = unix_now();
    nodes[victim]
        .process
        .as_mut()
        .expect("alive")
        .child
        .kill()
        .context("SIGKILL")?;
    let t_kill = Instant::now();
    let _ = nodes[victim].process.take().map(|mut p| p.child.wait());
    println!(
        "SIGKILLed node {victim} (member {}); grace period ends at +{} s; load average {}",
        &nodes[victim].key[..12],
        args.grace,
        load_average()
    );

    let since = |t: Instant| t.duration_since(t_kill).as_secs_f64();
    let poll = Duration::from_millis(args.poll_ms);
    let deadline = t_kill + Duration::from_secs(args.timeout);
    let mut change_first: Option<Instant> = None;
    let mut change_all: Option<Instant> = None;
    let mut newcomer: Option<usize> = None;
    let mut newcomer_seen: Option<Instant> = None;
    let mut newcomer_syncing: Option<(Instant, Instant)> = None;
    let mut restored: Option<(Instant, View)> = None;
    let mut polls = 0u32;
    let mut poll_time = Duration::ZERO;
    let mut poll_errors = 0u32;
    let mut last_answers: Vec<Value> = Vec::new();
    let mut last_line = String::new();
    let mut last_print = Instant::now();
    let pids: Vec<(usize, u32)> = order
        .iter()
        .filter_map(|i| Some((*i, nodes[*i].process.as_ref()?.child.id())))
        .collect();
    let cpu_all = |pids: &[(usize, u32)]| -> BTreeMap<usize, f64> {
        pids.iter()
            .filter_map(|(i, pid)| Some((*i, cpu_seconds(*pid)?)))
            .collect()
    };
    // CPU used by each live node from the newcomer's first report to the
    // restore: is the sync bound by the newcomer, the serving member, or
    // neither (waiting)?
    let mut cpu_at_seen: BTreeMap<usize, f64> = BTreeMap::new();
    let mut cpu_at_restored: BTreeMap<usize, f64> = BTreeMap::new();
    while restored.is_none() {
        if Instant::now() > deadline {
            eprintln!("no restore within {} s; last status:", args.timeout);
            eprintln!("{}", serde_json::to_string_pretty(&last_answers)?);
            for i in order.iter().chain([&victim]) {
                eprintln!("---- node {i} ({})", nodes[*i].log.display());
                for line in log_events(&nodes[*i].log, kill_wall - 1.0, &dataset, 60) {
                    eprintln!("  {line}");
                }
            }
            bail!("replication was not restored within {} s", args.timeout);
        }
        let asked = Instant::now();
        let answers = match status(fluence, &dials) {
            Ok(a) => a,
            Err(error) => {
                poll_errors += 1;
                eprintln!("  +{:.1} s: status failed: {error:#}", since(asked));
                std::thread::sleep(poll);
                continue;
            }
        };
        let seen = Instant::now();
        polls += 1;
        poll_time += seen - asked;
        let views: BTreeMap<usize, View> = order
            .iter()
            .zip(&answers)
            .filter_map(|(i, a)| view_of(a, &dataset).map(|v| (*i, v)))
            .collect();
        let cont: Vec<&View> = continuing.iter().filter_map(|i| views.get(i)).collect();
        let moved = cont.iter().filter(|v| v.epoch.unwrap_or(0) >= 1).count();
        if moved > 0 && change_first.is_none() {
            change_first = Some(seen);
            println!(
                "  +{:.2} s: a continuing member reports epoch 1",
                since(seen)
            );
        }
        if moved == continuing.len() && change_all.is_none() {
            change_all = Some(seen);
            println!(
                "  +{:.2} s: every continuing member reports epoch 1",
                since(seen)
            );
        }
        for i in &outsiders {
            let Some(view) = views.get(i) else { continue };
            if view.epoch.unwrap_or(0) < 1 {
                continue;
            }
            if newcomer.is_none() {
                newcomer = Some(*i);
                newcomer_seen = Some(seen);
                cpu_at_seen = cpu_all(&pids);
                println!(
                    "  +{:.2} s: node {i} (not a member before) reports the dataset: {}",
                    since(seen),
                    view.describe()
                );
            }
            if newcomer == Some(*i) && view.syncing {
                let first = newcomer_syncing.map_or(seen, |(f, _)| f);
                newcomer_syncing = Some((first, seen));
            }
        }
        if let (Some(i), true) = (newcomer, moved == continuing.len() && !cont.is_empty()) {
            if let Some(view) = views.get(&i) {
                let lowest = cont.iter().map(|v| v.applied).min().unwrap_or(u64::MAX);
                let members = &cont[0].members;
                let done = view.epoch == cont[0].epoch
                    && cont
                        .iter()
                        .all(|v| v.members == *members && v.root == cont[0].root)
                    && members.len() == args.cluster_size
                    && members.contains(&nodes[i].key)
                    && !members.contains(&nodes[victim].key)
                    && !view.syncing
                    && view.fault.is_none()
                    && view.root == cont[0].root
                    && view.applied >= lowest;
                if done {
                    cpu_at_restored = cpu_all(&pids);
                    restored = Some((seen, view.clone()));
                }
            }
        }
        let line = format!(
            "members: {}; newcomer: {}",
            cont.iter()
                .map(|v| v.describe())
                .collect::<Vec<_>>()
                .join(" | "),
            newcomer
                .and_then(|i| views.get(&i))
                .map(|v| v.describe())
                .unwrap_or_else(|| "none yet".into())
        );
        // One line per change of epochs or flags, and one every 5 s.
        let shape = |s: &str| {
            s.split(" | ")
                .map(|p| {
                    p.split(" applied").next().unwrap_or("").to_string()
                        + if p.contains("syncing") { "s" } else { "" }
                })
                .collect::<Vec<_>>()
                .join("|")
        };
        if shape(&line) != shape(&last_line) || last_print.elapsed() >= Duration::from_secs(5) {
            println!("  +{:.2} s: {line}", since(seen));
            last_print = Instant::now();
        }
        last_line = line;
        last_answers = answers;
        std::thread::sleep(poll.saturating_sub(asked.elapsed()));
    }
    stop_load.store(true, Ordering::Relaxed);
    if let Some(writer) = writer {
        let _ = writer.join();
    }

    let (t_restored, view) = restored.expect("loop ends restored");
    let newcomer = newcomer.expect("restored by a newcomer");
    let grace = args.grace as f64;
    let kill_to_change = change_first.map(since);
    let kill_to_restored = since(t_restored);
    let newcomer_bytes = size_on_disk(&nodes[newcomer].data);
    println!();
    println!("## result");
    println!(
        "dataset: {loaded} documents, {:.1} MiB of JSON sent; each member's data directory {:.0} MiB before the kill ({store_files})",
        mib(sent_bytes),
        mib(store_bytes[0])
    );
    println!(
        "killed node {victim}; node {newcomer} took its seat; restored at height {} (root {})",
        view.applied,
        &view.root[..12]
    );
    println!("| grace period | kill → change finalized (first member at epoch 1) | kill → every member at epoch 1 | kill → newcomer seen | kill → restored | grace end → restored | newcomer's sync (restored − change) | newcomer's data directory |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let show = |t: Option<f64>| t.map_or("–".into(), |t| format!("{t:.1} s"));
    println!(
        "| {grace:.0} s | {} | {} | {} | {kill_to_restored:.1} s | {:.1} s | {} | {:.0} MiB |",
        show(kill_to_change),
        show(change_all.map(since)),
        show(newcomer_seen.map(since)),
        kill_to_restored - grace,
        show(kill_to_change.map(|c| kill_to_restored - c)),
        mib(newcomer_bytes)
    );
    println!(
        "status polls: {polls} (every {} ms), mean {:.0} ms each, {poll_errors} failed; each time \
         above is when a poll saw the state, so up to one poll period plus a poll late",
        args.poll_ms,
        poll_time.as_secs_f64() * 1000.0 / polls.max(1) as f64
    );
    if let Some(seen_at) = newcomer_seen {
        let window = t_restored.duration_since(seen_at).as_secs_f64();
        println!(
            "CPU used from the newcomer's first report to the restore ({window:.1} s): {}",
            cpu_at_restored
                .iter()
                .filter_map(|(i, after)| {
                    let used = after - cpu_at_seen.get(i)?;
                    Some(format!(
                        "node {i}{} {used:.1} s",
                        if *i == newcomer { " (newcomer)" } else { "" }
                    ))
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some((first, last)) = newcomer_syncing {
        println!(
            "newcomer seen syncing from +{:.1} s to +{:.1} s",
            since(first),
            since(last)
        );
    }
    if args.load_docs > 0 {
        let load = load.lock().unwrap();
        let longest_gap = load
            .ack_times
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default();
        println!(
            "write load: {} documents acknowledged, {} requests failed, longest gap between acks {:.1} s{}",
            load.acked,
            load.failed,
            longest_gap.as_secs_f64(),
            load.last_failure
                .as_ref()
                .map(|f| format!("; last failure: {f}"))
                .unwrap_or_default()
        );
    }
    println!("load average at the restore: {}", load_average());
    let target = 60.0;
    println!(
        "target: restored ≤ {target:.0} s after the grace period ends: {} ({:.1} s)",
        if kill_to_restored - grace <= target {
            "MET"
        } else {
            "MISSED"
        },
        kill_to_restored - grace
    );
    println!();
    println!("## log events after the kill (seconds after the kill)");
    for i in continuing.iter().chain([&newcomer]) {
        println!(
            "node {i}{}:",
            if *i == newcomer { " (newcomer)" } else { "" }
        );
        for line in log_events(&nodes[*i].log, kill_wall, &dataset, 40) {
            println!("  {line}");
        }
    }

    // The dataset reads back in full through the gateway.
    let counted = post(
        &agent,
        &format!("{api}/v1/datasets/{DATASET}/count"),
        br#"{"filter": {}}"#,
    )?;
    println!(
        "count through the gateway after the restore: {}",
        counted["count"]
    );
    gateway.kill();
    for node in &mut nodes {
        if let Some(mut p) = node.process.take() {
            p.kill();
        }
    }
    println!("total run time {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The biggest files of a data directory, for the report.
fn describe_store(dir: &Path) -> String {
    let mut files: Vec<(u64, String)> = files_under(dir)
        .into_iter()
        .map(|(path, len)| {
            let name = path
                .strip_prefix(dir)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            (len, name)
        })
        .collect();
    files.sort_unstable_by(|a, b| b.cmp(a));
    files
        .iter()
        .take(4)
        .map(|(len, name)| format!("{name} {:.0} MiB", mib(*len)))
        .collect::<Vec<_>>()
        .join(", ")
}
