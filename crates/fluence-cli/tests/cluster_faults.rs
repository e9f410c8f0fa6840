//! Four real `fluence node` processes form one cluster on loopback, with a
//! real `fluence gateway` in front of one of them, under a continuous
//! write load. Meanwhile one member is killed with SIGKILL and restarted
//! on the same directory, and another is stopped, loses its data
//! directory (all but its identity key: the same member, restored on a
//! new disk) and started again, so it syncs a snapshot from the others.
//!
//! Checked at the end: every acknowledged document reads back through the
//! gateway as written; every read during the run returned what was
//! written; the four members report the same state root at the same
//! height (`fluence status --json`, `fluence chain show`); the wiped
//! member rebuilt the dataset from a snapshot.
//!
//! The default run writes for about a minute of wall time;
//! `FLUENCE_LONG_TESTS=1` runs several rounds of faults under a longer
//! load. Time limits only turn a hang into a failure.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Http, Process, PASSPHRASE};

const NODES: usize = 4;
/// The gateway's member: never faulted, so every acknowledged write is
/// applied on the member that answers the reads.
const GATEWAY_NODE: usize = 0;
/// Hang guard for waiting on the cluster.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(90);

fn long() -> bool {
    std::env::var("FLUENCE_LONG_TESTS").as_deref() == Ok("1")
}

/// One member process and how to start it again.
struct Member {
    data_dir: PathBuf,
    port: u16,
    /// `--bootstrap` addresses (node 0's, for every other node).
    bootstrap: Vec<String>,
    dial: String,
    process: Option<Process>,
}

impl Member {
    fn command(&self) -> Command {
        let mut node = support::fluence();
        node.args([
            "node",
            "--listen",
            &format!("/ip4/127.0.0.1/tcp/{}", self.port),
            "--data-dir",
        ])
        .arg(&self.data_dir);
        for peer in &self.bootstrap {
            node.args(["--bootstrap", peer]);
        }
        node
    }

    fn start(&mut self) {
        assert!(self.process.is_none());
        let mut process = Process::spawn(self.command());
        self.dial = process
            .wait_for("dial address:")
            .split_whitespace()
            .last()
            .expect("dial address")
            .to_string();
        process.wait_for("clusters:");
        self.process = Some(process);
    }

    /// SIGKILL: no shutdown path runs.
    fn kill(&mut self) {
        let mut process = self.process.take().expect("running");
        process.kill();
    }

    /// SIGTERM and a clean exit.
    fn stop(&mut self) {
        let (status, out) = self.process.take().expect("running").stop();
        assert!(status.success(), "node exited with {status}: {out:?}");
    }

    /// Everything in the data directory but the node's identity key.
    fn wipe(&self) {
        for entry in std::fs::read_dir(&self.data_dir).expect("data dir") {
            let path = entry.expect("entry").path();
            if path.file_name().and_then(|n| n.to_str()) == Some("node.key") {
                continue;
            }
            if path.is_dir() {
                std::fs::remove_dir_all(&path).expect("wipe");
            } else {
                std::fs::remove_file(&path).expect("wipe");
            }
        }
    }
}

fn start_cluster(dir: &Path) -> Vec<Member> {
    let ports: Vec<u16> = (0..NODES).map(|_| support::free_port()).collect();
    let bootstrap = support::bootstrap_addr(dir, ports[0]);
    let mut nodes: Vec<Member> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| Member {
            data_dir: dir.join(format!("n{i}")),
            port: *port,
            bootstrap: if i == 0 {
                Vec::new()
            } else {
                vec![bootstrap.clone()]
            },
            dial: String::new(),
            process: None,
        })
        .collect();
    for node in &mut nodes {
        node.start();
    }
    nodes
}

/// What the load saw: acknowledged documents, and the first wrong answer.
#[derive(Default)]
struct Ledger {
    /// `_id` → value, for every insert the gateway acknowledged.
    acked: BTreeMap<u64, u64>,
    /// Inserts whose outcome is unknown (an error or a timeout): they may
    /// or may not be applied, but if present must hold what was written.
    unknown: BTreeMap<u64, u64>,
    reads: u64,
    wrong: Vec<String>,
}

fn value_of(id: u64) -> u64 {
    id.wrapping_mul(2_654_435_761) % 1_000_003
}

/// Inserts documents one at a time until `stop`, reading one acknowledged
/// document back after each insert and comparing it with what was written.
fn load(api: String, ledger: Arc<Mutex<Ledger>>, stop: Arc<AtomicBool>) {
    let http = Http::new(&api);
    let mut next = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let id = next;
        next += 1;
        let (status, body) = http.post(
            "/v1/datasets/load/documents",
            &json!({"documents": [{"_id": id, "v": value_of(id)}]}),
        );
        {
            let mut ledger = ledger.lock().unwrap();
            if (200..300).contains(&status) && body["inserted_count"] == 1 {
                ledger.acked.insert(id, value_of(id));
            } else {
                ledger.unknown.insert(id, value_of(id));
            }
        }
        // Read back an acknowledged document (the newest and, now and
        // then, an old one).
        let probe = {
            let ledger = ledger.lock().unwrap();
            let newest = ledger.acked.keys().next_back().copied();
            match (newest, id % 3) {
                (Some(n), 0) => Some(n / 2),
                (Some(n), _) => Some(n),
                (None, _) => None,
            }
        };
        let Some(probe) = probe else { continue };
        let (status, found) =
            http.post("/v1/datasets/load/find", &json!({"filter": {"_id": probe}}));
        let mut ledger = ledger.lock().unwrap();
        ledger.reads += 1;
        if !(200..300).contains(&status) {
            // An error is not a wrong answer; the gateway said it failed.
            continue;
        }
        let wrong = support::wrong_read(&found, probe, &ledger.acked, &ledger.unknown);
        if wrong {
            ledger
                .wrong
                .push(format!("read of {probe} answered {found}"));
        }
    }
}

fn run_status(nodes: &[Member]) -> Value {
    let mut status = support::fluence();
    status.args(["status", "--json"]);
    for node in nodes {
        status.args(["--node", &node.dial]);
    }
    let output = status.output().expect("fluence status");
    assert!(
        output.status.success(),
        "fluence status failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("status JSON")
}

/// Each node's (applied height, state root, floor) for the one dataset.
fn views(status: &Value) -> Vec<Option<(u64, String, Option<u64>)>> {
    status["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|node| {
            let dataset = node["datasets"].as_array()?.first()?.clone();
            Some((
                dataset["applied_height"].as_u64()?,
                dataset["state_root"].as_str()?.to_string(),
                dataset["floor_height"].as_u64(),
            ))
        })
        .collect()
}

/// Waits until every member has applied at least `height`.
fn wait_caught_up(nodes: &[Member], height: u64) {
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let views = views(&run_status(nodes));
        if views
            .iter()
            .all(|v| v.as_ref().is_some_and(|(h, _, _)| *h >= height))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "members did not catch up: {views:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn highest_applied(nodes: &[Member]) -> u64 {
    views(&run_status(nodes))
        .into_iter()
        .flatten()
        .map(|(h, _, _)| h)
        .max()
        .unwrap_or(0)
}

/// `fluence chain show --json` of one block at one node.
fn block_at(node: &Member, dataset: &str, height: u64) -> Value {
    let output = support::fluence()
        .args(["chain", "show", dataset, "--json", "--node", &node.dial])
        .args(["--height", &height.to_string()])
        .output()
        .expect("fluence chain show");
    assert!(
        output.status.success(),
        "chain show failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let shown: Value = serde_json::from_slice(&output.stdout).expect("chain JSON");
    shown["blocks"][0].clone()
}

/// The id of the dataset the load writes, in hex.
fn dataset_hex(dir: &Path) -> String {
    let master = fluence_crypto::keystore::Keystore::unlock(
        &dir.join("keys").join("owner.key"),
        PASSPHRASE.as_bytes(),
    )
    .unwrap();
    let tag = master.catalog_key().name_tag("load");
    fluence_proto::DatasetId(fluence_crypto::keys::dataset_id(
        &master.owner_public_key(),
        &tag,
    ))
    .to_hex()
}

fn wait_for_acks(ledger: &Mutex<Ledger>, count: usize) {
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    while ledger.lock().unwrap().acked.len() < count {
        assert!(Instant::now() < deadline, "the load stalled");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_cluster_under_load_survives_a_killed_and_a_wiped_member() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = start_cluster(dir.path());

    support::new_owner_key(&dir.path().join("keys"));
    let (gateway, api) = support::start_gateway(
        &dir.path().join("keys").join("owner.key"),
        &nodes[GATEWAY_NODE].dial,
    );
    Http::new(&api).ok("/v1/datasets", &json!({"name": "load"}));

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = std::thread::spawn({
        let (api, ledger, stop) = (api.clone(), Arc::clone(&ledger), Arc::clone(&stop));
        move || load(api, ledger, stop)
    });

    let rounds = if long() { 3 } else { 1 };
    let mut acks = 0;
    for round in 0..rounds {
        let (killed, wiped) = (1 + round % 3, 1 + (round + 1) % 3);
        acks += 40;
        wait_for_acks(&ledger, acks);

        // SIGKILL, then back on the same directory.
        nodes[killed].kill();
        acks += 20;
        wait_for_acks(&ledger, acks);
        nodes[killed].start();
        wait_caught_up(&nodes, highest_applied(&nodes));

        // Stopped, disk lost (identity kept), started empty: it syncs.
        nodes[wiped].stop();
        nodes[wiped].wipe();
        acks += 20;
        wait_for_acks(&ledger, acks);
        nodes[wiped].start();
        let height = highest_applied(&nodes);
        wait_caught_up(&nodes, height);
        let views = views(&run_status(&nodes));
        let floor = views[wiped].as_ref().and_then(|v| v.2);
        assert!(
            floor.is_some_and(|f| f >= 1),
            "the wiped member did not sync from a snapshot: {views:?}"
        );
        // Below its floor it says it never stored the blocks.
        if floor.is_some_and(|f| f > 1) {
            let below = support::fluence()
                .args(["chain", "show", &dataset_hex(dir.path()), "--height", "1"])
                .args(["--node", &nodes[wiped].dial])
                .output()
                .expect("fluence chain show");
            assert!(!below.status.success());
            let error = String::from_utf8_lossy(&below.stderr);
            assert!(
                error.contains("rebuilt the dataset from a snapshot"),
                "{error}"
            );
        }
        acks += 20;
        wait_for_acks(&ledger, acks);
    }
    if long() {
        // A longer load after the faults.
        let more = ledger.lock().unwrap().acked.len() + 500;
        wait_for_acks(&ledger, more);
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("load thread");

    let ledger = ledger.lock().unwrap();
    assert!(
        ledger.wrong.is_empty(),
        "the gateway answered wrongly: {:?}",
        ledger.wrong
    );
    assert!(ledger.reads > 0);

    // Every acknowledged document reads back as written.
    let http = Http::new(&api);
    let stored = support::stored_values(&http, "load");
    for (id, value) in &ledger.acked {
        assert_eq!(stored.get(id), Some(value), "acknowledged {id} lost");
    }
    for (id, value) in &stored {
        let written = ledger.acked.get(id).or_else(|| ledger.unknown.get(id));
        assert_eq!(written, Some(value), "document {id} was never written so");
    }

    // All four members on the same state root at the same height.
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    let (height, root) = loop {
        let views = views(&run_status(&nodes));
        let first = views[0].clone();
        if let Some((h, root, _)) = &first {
            if views
                .iter()
                .all(|v| v.as_ref().is_some_and(|(vh, vr, _)| vh == h && vr == root))
            {
                break (*h, root.clone());
            }
        }
        assert!(
            Instant::now() < deadline,
            "members never agreed on one height and root: {views:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // And each holds the very same block there, with a verified certificate
    // or one of a descendant.
    let dataset = dataset_hex(dir.path());
    let blocks: Vec<Value> = nodes
        .iter()
        .map(|node| block_at(node, &dataset, height))
        .collect();
    for block in &blocks {
        assert_eq!(block["hash"], blocks[0]["hash"], "{blocks:?}");
        assert_eq!(block["state_root"].as_str(), Some(root.as_str()));
        let certificate = &block["certificate"];
        assert!(
            certificate["kind"] != "finalization" || certificate["verified"] == true,
            "{certificate}"
        );
    }
    eprintln!(
        "{} writes acknowledged, {} unknown, {} reads checked; members agree at height {height}",
        ledger.acked.len(),
        ledger.unknown.len(),
        ledger.reads
    );

    let (status, _) = gateway.stop();
    assert!(status.success());
    for node in &mut nodes {
        node.stop();
    }
}
