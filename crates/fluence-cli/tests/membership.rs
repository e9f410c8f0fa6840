//! Twelve real `fluence node` processes (each started with a 3-second
//! `--grace-period`) form an open network on loopback, joining through
//! node 0; a real `fluence gateway` enters it through node 0 and creates
//! five datasets, each placed on the 4 nodes closest to its id. A write
//! load then runs on every dataset (one writer per dataset, each reading
//! acknowledged documents back), and meanwhile:
//!
//! - two members of different clusters (never node 0, never in one
//!   cluster together, and leaving at least one dataset untouched) are
//!   killed with SIGKILL;
//! - two new nodes join, one of them with an identity made closer to an
//!   untouched dataset than every one of its members.
//!
//! Checked (`fluence status --json` of every live node, HTTP through the
//! gateway):
//!
//! - every dataset that lost a member returns to 4 live members, in a new
//!   epoch (≥ 1), its list the old one with only the departed member's
//!   seat taken by a node that was not a member; no reachable member is
//!   ever replaced;
//! - the untouched datasets keep their members at epoch 0: the node that
//!   joined closer to one of them causes no churn;
//! - every dataset stays writable and readable: writes are acknowledged
//!   on every dataset after the change, and every read returns what was
//!   written;
//! - no acknowledged write is lost: each reads back through the gateway
//!   as written, and nothing is stored that was never written;
//! - a member of an untouched dataset leaves it with `fluence leave`
//!   (signed with its own key): its seat goes to a node that was not a
//!   member, the other seats stay, and it stops serving the dataset;
//! - once the load stops, each cluster's members agree on the state root
//!   and hold the same block at the same height (`fluence chain show`),
//!   its certificate verified against the members of its epoch.
//!
//! Time limits only turn a hang into a failure. When the test fails it
//! keeps its directory (every node's log is under `logs/`) and prints the
//! end of each log.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fluence_net::keyspace::{self, Target};
use fluence_net::PeerId;
use fluence_proto::{DatasetId, PublicKey};
use serde_json::{json, Value};
use support::{Http, Process};

const NODES: usize = 12;
const NEW_NODES: usize = 2;
const CLUSTER_SIZE: usize = 4;
const DATASETS: usize = 5;
/// `--grace-period` of every node, in seconds.
const GRACE_PERIOD: &str = "3";
/// The nodes' log filter (their logs go to files under `logs/`).
const NODE_LOG: &str = "warn,fluence_node=info";
/// How long the load keeps running once every cluster is full again.
const LOAD_AFTER_CHANGE: Duration = Duration::from_secs(5);
/// Acknowledged writes per dataset before the faults.
const WARM_UP_ACKS: usize = 10;
/// Hang guard for the network to form and the datasets to be placed.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Hang guard for the clusters to return to full size and agree.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(120);

/// One node: its identity, where to reach it, its log, its process
/// (`None` once killed).
struct Node {
    key: PublicKey,
    dial: String,
    process: Option<Process>,
}

fn log_path(dir: &Path, i: usize) -> PathBuf {
    dir.join("logs").join(format!("n{i}.log"))
}

/// A free port on loopback that is not in `taken` (the kernel may hand
/// out a released port again; two nodes on one port would each answer
/// for the other), added to it.
fn fresh_port(taken: &mut BTreeSet<u16>) -> u16 {
    loop {
        let port = support::free_port();
        if taken.insert(port) {
            return port;
        }
    }
}

/// Starts node `i` (data under `dir/n{i}`, log in `dir/logs/n{i}.log`).
fn spawn_node(dir: &Path, i: usize, port: u16, bootstrap: &str) -> Process {
    let mut command = support::network_node(dir, i, port, bootstrap);
    command
        .args(["--grace-period", GRACE_PERIOD])
        .env("FLUENCE_LOG", NODE_LOG)
        .env("NO_COLOR", "1");
    Process::spawn_logged(command, &log_path(dir, i))
}

/// Waits for a spawned node to be up and reads its dial address and key.
fn node_up(mut process: Process) -> Node {
    let dial = process
        .wait_for("dial address:")
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    let key = PublicKey::from_hex(
        process
            .wait_for("member key:")
            .split_whitespace()
            .last()
            .unwrap(),
    )
    .unwrap();
    process.wait_for("clusters:");
    Node {
        key,
        dial,
        process: Some(process),
    }
}

/// `fluence gateway` through `node` with the owner key, its log in
/// `dir/logs/gateway.log`.
fn start_gateway(dir: &Path, node: &str) -> (Process, String) {
    support::start_gateway_with(
        &dir.join("keys").join("owner.key"),
        node,
        &[
            (
                "FLUENCE_LOG",
                "warn,fluence_gateway=info,fluence_client=info",
            ),
            ("NO_COLOR", "1"),
        ],
        Some(&dir.join("logs").join("gateway.log")),
    )
}

/// On a failure, keeps the test directory and prints the end of every
/// node's log (the processes are gone by then: they are dropped first).
struct KeepOnFailure {
    dir: Option<tempfile::TempDir>,
}

impl KeepOnFailure {
    fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }
}

impl Drop for KeepOnFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let dir = self.dir.take().unwrap().keep();
        eprintln!("test directory kept: {}", dir.display());
        let logs = (0..NODES + NEW_NODES)
            .map(|i| (format!("node {i}"), log_path(&dir, i)))
            .chain([("the gateway".to_string(), dir.join("logs/gateway.log"))]);
        for (whose, path) in logs {
            let Ok(log) = std::fs::read_to_string(path) else {
                continue;
            };
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("---- end of {whose}'s log ({} lines)", lines.len());
            for line in &lines[lines.len().saturating_sub(30)..] {
                eprintln!("{line}");
            }
        }
    }
}

fn peer_of(key: &PublicKey) -> PeerId {
    fluence_net::identity::peer_id_of(key).unwrap()
}

/// The `CLUSTER_SIZE` of `keys` closest to `dataset`, closest first.
fn closest(dataset: &DatasetId, keys: &[PublicKey]) -> Vec<PublicKey> {
    let mut closest = support::by_distance(dataset, keys);
    closest.truncate(CLUSTER_SIZE);
    closest
}

/// Two nodes to kill, by index: never node 0 (the gateway's), each a
/// member of some cluster, never both in one cluster (each cluster keeps
/// 3 of 4, a quorum), and at least one cluster without either. Among
/// those, the pair that takes a member from the most clusters.
fn pick_victims(clusters: &[Vec<PublicKey>], keys: &[PublicKey]) -> Option<(usize, usize)> {
    let mut best: Option<(usize, (usize, usize))> = None;
    for a in 1..keys.len() {
        for b in a + 1..keys.len() {
            let has = |c: &Vec<PublicKey>, i: usize| c.contains(&keys[i]);
            let lose_a = clusters.iter().filter(|c| has(c, a)).count();
            let lose_b = clusters.iter().filter(|c| has(c, b)).count();
            let both = clusters.iter().any(|c| has(c, a) && has(c, b));
            let untouched = clusters.iter().any(|c| !has(c, a) && !has(c, b));
            if lose_a == 0 || lose_b == 0 || both || !untouched {
                continue;
            }
            let touched = lose_a + lose_b;
            if best.is_none_or(|(t, _)| touched > t) {
                best = Some((touched, (a, b)));
            }
        }
    }
    best.map(|(_, pair)| pair)
}

/// A dataset under test.
struct Dataset {
    name: String,
    id: DatasetId,
    /// Its members at creation (epoch 0), in list order.
    original: Vec<PublicKey>,
    /// The seats of `original` whose member is killed.
    lost: Vec<usize>,
}

/// One node's view of one dataset in `fluence status --json`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    node: PublicKey,
    members: Vec<PublicKey>,
    epoch: Option<u64>,
    root: String,
    applied: u64,
    syncing: bool,
    fault: Option<String>,
}

fn short(key: &PublicKey) -> String {
    key.to_hex()[..12].to_string()
}

/// Every live node's views, by dataset id (hex); an error when the status
/// command or any node failed to answer.
fn poll(nodes: &[Node]) -> Result<BTreeMap<String, Vec<View>>, String> {
    let mut status = support::fluence();
    status.args(["status", "--json"]);
    let live: Vec<&Node> = nodes.iter().filter(|n| n.process.is_some()).collect();
    for node in &live {
        status.args(["--node", &node.dial]);
    }
    let output = status.output().expect("fluence status");
    if !output.status.success() {
        return Err(format!(
            "fluence status failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let parsed: Value = serde_json::from_slice(&output.stdout).expect("status JSON");
    let answers = parsed["nodes"].as_array().expect("nodes");
    if answers.len() != live.len() {
        return Err(format!(
            "{} answers from {} nodes",
            answers.len(),
            live.len()
        ));
    }
    let mut out: BTreeMap<String, Vec<View>> = BTreeMap::new();
    for answer in answers {
        if let Some(error) = answer.get("error") {
            return Err(format!("{}: {error}", answer["address"]));
        }
        let node = PublicKey::from_hex(answer["node"].as_str().unwrap()).unwrap();
        for d in answer["datasets"].as_array().unwrap() {
            let view = View {
                node,
                members: d["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| PublicKey::from_hex(m.as_str().unwrap()).unwrap())
                    .collect(),
                epoch: d["epoch"].as_u64(),
                root: d["state_root"].as_str().unwrap().to_string(),
                applied: d["applied_height"].as_u64().unwrap(),
                syncing: d["syncing"].as_bool().unwrap_or(false),
                fault: d["fault"].as_str().map(str::to_string),
            };
            out.entry(d["dataset"].as_str().unwrap().to_string())
                .or_default()
                .push(view);
        }
    }
    Ok(out)
}

/// Node numbers (`n3`) by key, for messages.
type Names = BTreeMap<PublicKey, String>;

fn node_names(nodes: &[Node]) -> Names {
    nodes
        .iter()
        .enumerate()
        .map(|(i, node)| (node.key, format!("n{i}")))
        .collect()
}

fn name(names: &Names, key: &PublicKey) -> String {
    names.get(key).cloned().unwrap_or_else(|| short(key))
}

fn name_all<'a>(names: &Names, keys: impl IntoIterator<Item = &'a PublicKey>) -> Vec<String> {
    keys.into_iter().map(|key| name(names, key)).collect()
}

fn describe(views: &[View], names: &Names) -> String {
    views
        .iter()
        .map(|v| {
            format!(
                "[{} says epoch {:?} members {:?} applied {} root {}{}{}]",
                name(names, &v.node),
                v.epoch,
                name_all(names, &v.members),
                v.applied,
                &v.root[..12.min(v.root.len())],
                if v.syncing { " syncing" } else { "" },
                v.fault
                    .as_ref()
                    .map(|f| format!(" FAULT {f}"))
                    .unwrap_or_default(),
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Panics at once on churn: a view of `dataset` in which a member that was
/// not killed lost its seat (for an untouched dataset: any change at all).
fn assert_no_churn(dataset: &Dataset, views: &[View], names: &Names) {
    for view in views {
        let kept_seats = view.members.len() == dataset.original.len()
            && (0..dataset.original.len())
                .filter(|seat| !dataset.lost.contains(seat))
                .all(|seat| view.members[seat] == dataset.original[seat]);
        let untouched_moved = dataset.lost.is_empty()
            && (view.members != dataset.original || view.epoch.is_some_and(|e| e > 0));
        assert!(
            kept_seats && !untouched_moved,
            "{}: the membership changed though no member of these seats was lost \
             (members at creation {:?}, lost seats {:?}): {}",
            dataset.name,
            name_all(names, &dataset.original),
            dataset.lost,
            describe(views, names)
        );
    }
}

/// Whether `dataset` is served as expected: by exactly the 4 live nodes
/// of one members list, all at one epoch, none syncing or faulted; the
/// lost seats taken by nodes that were not members (epoch ≥ 1), or, with
/// none lost, the creation members at epoch 0.
fn check(
    dataset: &Dataset,
    views: &[View],
    live: &BTreeSet<PublicKey>,
    names: &Names,
) -> Result<(), String> {
    assert_no_churn(dataset, views, names);
    let first = views.first().ok_or("served by no live node")?;
    if views
        .iter()
        .any(|v| v.members != first.members || v.epoch != first.epoch)
    {
        return Err("members disagree".into());
    }
    let Some(epoch) = first.epoch else {
        return Err("no epoch in the status".into());
    };
    let serving: BTreeSet<PublicKey> = views.iter().map(|v| v.node).collect();
    let members: BTreeSet<PublicKey> = first.members.iter().copied().collect();
    if first.members.len() != CLUSTER_SIZE || serving != members {
        return Err(format!(
            "not served by exactly its members (silent {:?}, not members {:?})",
            name_all(names, members.difference(&serving)),
            name_all(names, serving.difference(&members))
        ));
    }
    if !members.is_subset(live) {
        return Err("a member is not a live node".into());
    }
    if views.iter().any(|v| v.syncing || v.fault.is_some()) {
        return Err("a member is syncing or faulted".into());
    }
    if dataset.lost.is_empty() {
        return (epoch == 0)
            .then_some(())
            .ok_or_else(|| "epoch moved".into());
    }
    if epoch == 0 {
        return Err("still at epoch 0".into());
    }
    for seat in &dataset.lost {
        if dataset.original.contains(&first.members[*seat]) {
            return Err(format!("seat {seat} not yet taken by a non-member"));
        }
    }
    Ok(())
}

/// Waits until every dataset passes [`check`] and its members have caught
/// up: with `strict`, all on the same state root (once writes stopped);
/// otherwise (under load) each at least at the
/// highest height any of them had applied one poll earlier. Returns the
/// last views.
fn wait_converged(
    nodes: &[Node],
    datasets: &[Dataset],
    strict: bool,
    timeout: Duration,
    details: &dyn Fn() -> String,
) -> BTreeMap<String, Vec<View>> {
    let deadline = Instant::now() + timeout;
    let mut previous_top: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        let live: BTreeSet<PublicKey> = nodes
            .iter()
            .filter(|n| n.process.is_some())
            .map(|n| n.key)
            .collect();
        let names = node_names(nodes);
        let mut waiting = Vec::new();
        match poll(nodes) {
            Err(error) => waiting.push(error),
            Ok(all) => {
                for dataset in datasets {
                    let hex = dataset.id.to_hex();
                    let views = all.get(&hex).map(Vec::as_slice).unwrap_or_default();
                    let top = views.iter().map(|v| v.applied).max().unwrap_or(0);
                    let caught_up = if strict {
                        // Idle clusters go on finalizing empty blocks,
                        // which keep the root: the heights are compared
                        // block by block in `assert_same_blocks`.
                        views.iter().all(|v| v.root == views[0].root)
                    } else {
                        previous_top
                            .get(&hex)
                            .is_some_and(|before| views.iter().all(|v| v.applied >= *before))
                    };
                    previous_top.insert(hex, top);
                    let verdict = check(dataset, views, &live, &names).and_then(|()| {
                        caught_up
                            .then_some(())
                            .ok_or_else(|| "members not caught up".to_string())
                    });
                    if let Err(why) = verdict {
                        waiting.push(format!(
                            "{}: {why}: {}",
                            dataset.name,
                            describe(views, &names)
                        ));
                    }
                }
                if waiting.is_empty() {
                    return all;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the clusters did not converge within {timeout:?}:\n{}\n{}",
            waiting.join("\n"),
            details()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// What one dataset's writer saw.
#[derive(Default)]
struct Ledger {
    /// `_id` → value of every insert the gateway acknowledged.
    acked: BTreeMap<u64, u64>,
    /// Inserts whose outcome is unknown (an error): they may or may not be
    /// stored, and if stored must hold what was written.
    unknown: BTreeMap<u64, u64>,
    /// When each acknowledgement arrived.
    ack_times: Vec<Instant>,
    /// When each read that answered arrived.
    read_times: Vec<Instant>,
    /// The wall clock of the last acknowledgement (see [`clock`]).
    last_ack: Option<String>,
    failed_writes: u64,
    failed_reads: u64,
    last_failure: Option<String>,
    /// Reads that answered something other than what was written.
    wrong: Vec<String>,
}

impl Ledger {
    fn acks_since(&self, since: Instant) -> usize {
        self.ack_times.iter().filter(|t| **t >= since).count()
    }

    fn reads_since(&self, since: Instant) -> usize {
        self.read_times.iter().filter(|t| **t >= since).count()
    }

    /// The longest stretch of `from..to` without an acknowledged write.
    fn longest_gap(&self, from: Instant, to: Instant) -> Duration {
        let mut last = from;
        let mut gap = Duration::ZERO;
        for t in self.ack_times.iter().filter(|t| **t > from && **t < to) {
            gap = gap.max(*t - last);
            last = *t;
        }
        gap.max(to.saturating_duration_since(last))
    }
}

fn value_of(salt: u64, id: u64) -> u64 {
    (id ^ (salt << 32)).wrapping_mul(2_654_435_761) % 1_000_003
}

/// Inserts documents into dataset `name` one at a time until `stop`,
/// reading an acknowledged one back after every other insert.
fn load(api: String, name: String, salt: u64, ledger: Arc<Mutex<Ledger>>, stop: Arc<AtomicBool>) {
    let http = Http::new(&api);
    let mut next = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let id = next;
        next += 1;
        let value = value_of(salt, id);
        let (status, body) = http.post(
            &format!("/v1/datasets/{name}/documents"),
            &json!({"documents": [{"_id": id, "v": value}]}),
        );
        {
            let mut ledger = ledger.lock().unwrap();
            if (200..300).contains(&status) && body["inserted_count"] == 1 {
                ledger.acked.insert(id, value);
                ledger.ack_times.push(Instant::now());
                ledger.last_ack = Some(clock());
            } else {
                ledger.unknown.insert(id, value);
                ledger.failed_writes += 1;
                ledger.last_failure = Some(format!("insert {id}: {status} {body}"));
            }
        }
        std::thread::sleep(Duration::from_millis(30));
        if id % 2 == 1 {
            continue;
        }
        // The newest acknowledged document, or now and then an old one.
        let probe = {
            let ledger = ledger.lock().unwrap();
            match (ledger.acked.keys().next_back().copied(), id % 6) {
                (Some(n), 0) => Some(n / 2),
                (newest, _) => newest,
            }
        };
        let Some(probe) = probe else { continue };
        let (status, found) = http.post(
            &format!("/v1/datasets/{name}/find"),
            &json!({"filter": {"_id": probe}}),
        );
        let mut ledger = ledger.lock().unwrap();
        if !(200..300).contains(&status) {
            ledger.failed_reads += 1;
            ledger.last_failure = Some(format!("find {probe}: {status} {found}"));
            continue;
        }
        ledger.read_times.push(Instant::now());
        let wrong = support::wrong_read(&found, probe, &ledger.acked, &ledger.unknown);
        if wrong {
            ledger
                .wrong
                .push(format!("read of {probe} answered {found}"));
        }
    }
}

/// Every member of `dataset` (as `views` shows it, all on one root) holds
/// the very same block at the lowest height any of them applied, with that
/// root (`fluence chain show --json`).
fn assert_same_blocks(nodes: &[Node], dataset: &Dataset, views: &[View]) -> u64 {
    let height = views.iter().map(|v| v.applied).min().unwrap();
    let blocks: Vec<Value> = views
        .iter()
        .map(|view| {
            let node = nodes.iter().find(|n| n.key == view.node).unwrap();
            let output = support::fluence()
                .args(["chain", "show", &dataset.id.to_hex(), "--json"])
                .args(["--node", &node.dial, "--height", &height.to_string()])
                .output()
                .expect("fluence chain show");
            assert!(
                output.status.success(),
                "{}: chain show at {height} on {} failed: {}",
                dataset.name,
                short(&view.node),
                String::from_utf8_lossy(&output.stderr)
            );
            let shown: Value = serde_json::from_slice(&output.stdout).expect("chain JSON");
            shown["blocks"][0].clone()
        })
        .collect();
    for block in &blocks {
        // Checked by `chain show` against the members of the epoch that
        // certified it (the dataset's route: its Create and changes).
        let certificate = &block["certificate"];
        if certificate["kind"] == "finalization" {
            // A change block is the last of the epoch it ends.
            let certified_by = match block["membership_change"]["epoch"].as_u64() {
                Some(next) => next - 1,
                None => views[0].epoch.unwrap_or(0),
            };
            assert_eq!(
                (&certificate["verified"], &certificate["epoch"]),
                (&json!(true), &json!(certified_by)),
                "{}: block {height}'s certificate: {block}",
                dataset.name
            );
        } else {
            assert_eq!(
                certificate["kind"], "through a descendant's certificate",
                "{}: {block}",
                dataset.name
            );
        }
        assert_eq!(
            block["hash"], blocks[0]["hash"],
            "{}: members hold different blocks at {height}: {blocks:?}",
            dataset.name
        );
        assert_eq!(
            block["state_root"].as_str(),
            Some(views[0].root.as_str()),
            "{}: {blocks:?}",
            dataset.name
        );
    }
    height
}

/// The wall clock as the nodes' logs show it (UTC, `HH:MM:SS.mmm`), to
/// line the test's steps up with the logs.
fn clock() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let (secs, millis) = (now.as_secs() % 86_400, now.subsec_millis());
    format!(
        "{:02}:{:02}:{:02}.{millis:03}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    wait_for_or(what, timeout, &mut done, String::new);
}

/// Waits for `done`; past `timeout`, fails with `what` and `details()`.
fn wait_for_or(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
    details: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} within {timeout:?}; {}",
            details()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Each writer's counts and last failure, for a failure message.
fn load_summary(datasets: &[Dataset], ledgers: &[Arc<Mutex<Ledger>>]) -> String {
    datasets
        .iter()
        .zip(ledgers)
        .map(|(dataset, ledger)| {
            let l = ledger.lock().unwrap();
            format!(
                "{}: {} acked (the last at {}), {} failed writes, {} reads, {} failed reads, \
                 last failure {:?}",
                dataset.name,
                l.acked.len(),
                l.last_ack.as_deref().unwrap_or("-"),
                l.failed_writes,
                l.read_times.len(),
                l.failed_reads,
                l.last_failure
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn twelve_nodes_replace_two_killed_members_under_write_load() {
    let started = Instant::now();
    let keep = KeepOnFailure {
        dir: Some(tempfile::tempdir().unwrap()),
    };
    let dir = keep.path().to_path_buf();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let keys_dir = dir.join("keys");
    support::new_owner_key(&keys_dir);

    // Twelve nodes: node 0 first, then the others all at once through it.
    let mut taken = BTreeSet::new();
    let ports: Vec<u16> = (0..NODES).map(|_| fresh_port(&mut taken)).collect();
    let bootstrap = support::bootstrap_addr(&dir, ports[0]);
    let mut nodes = vec![node_up(spawn_node(&dir, 0, ports[0], &bootstrap))];
    let spawned: Vec<Process> = (1..NODES)
        .map(|i| spawn_node(&dir, i, ports[i], &bootstrap))
        .collect();
    nodes.extend(spawned.into_iter().map(node_up));
    let keys: Vec<PublicKey> = nodes.iter().map(|n| n.key).collect();

    // Five datasets on at least two distinct clusters, with two members
    // to kill that share no cluster and spare at least one dataset.
    let (names, victims) = (0..1000)
        .find_map(|start| {
            let names: Vec<String> = (start..start + DATASETS)
                .map(|i| format!("ds{i}"))
                .collect();
            let clusters: Vec<Vec<PublicKey>> = names
                .iter()
                .map(|name| closest(&support::dataset_id(&keys_dir, name), &keys))
                .collect();
            let distinct: BTreeSet<&Vec<PublicKey>> = clusters.iter().collect();
            if distinct.len() < 2 {
                return None;
            }
            pick_victims(&clusters, &keys).map(|victims| (names, victims))
        })
        .expect("datasets with members to kill");
    let victims = [victims.0, victims.1];
    for (i, node) in nodes.iter().enumerate() {
        eprintln!("n{i}: {} at {}", node.key.to_hex(), node.dial);
    }
    let victim_keys: Vec<PublicKey> = victims.iter().map(|v| keys[*v]).collect();

    // Node 0 must know the whole network before placement asks it.
    wait_for("node 0 saw every node", START_TIMEOUT, || {
        let output = support::fluence()
            .args(["status", "--json", "--node", &nodes[0].dial])
            .output()
            .unwrap();
        let parsed: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        let table = parsed["nodes"][0]["network"]["routing_table_size"].as_u64();
        table.unwrap_or(0) >= (NODES - 1) as u64
    });

    let (gateway, api) = start_gateway(&dir, &nodes[0].dial);
    let http = Http::new(&api);
    let mut datasets = Vec::new();
    for name in &names {
        http.ok("/v1/datasets", &json!({"name": name}));
        let id = support::dataset_id(&keys_dir, name);
        datasets.push(Dataset {
            name: name.clone(),
            id,
            original: closest(&id, &keys),
            lost: Vec::new(),
        });
    }
    // Every dataset on its 4 closest nodes, in order, at epoch 0.
    let placed_at = Instant::now();
    wait_converged(&nodes, &datasets, true, START_TIMEOUT, &String::new);
    let placed_in = placed_at.elapsed();
    for dataset in &datasets {
        eprintln!(
            "{} placed: {} ({}) on {:?}",
            clock(),
            dataset.name,
            dataset.id.to_hex(),
            name_all(&node_names(&nodes), &dataset.original)
        );
    }
    for dataset in &mut datasets {
        dataset.lost = (0..CLUSTER_SIZE)
            .filter(|seat| victim_keys.contains(&dataset.original[*seat]))
            .collect();
    }

    // A dataset the kills spare, which a newcomer will be closer to.
    let spared_at = datasets
        .iter()
        .position(|d| d.lost.is_empty())
        .expect("a dataset loses no member");
    let spared = &datasets[spared_at];
    let spared_name = spared.name.clone();
    // Node 12's identity, made closer to it than every one of its members.
    let target = Target::Dataset(spared.id);
    let closest_member = spared
        .original
        .iter()
        .map(|key| keyspace::distance(&target, &peer_of(key)))
        .min()
        .unwrap();
    let closer_key = {
        let data_dir = dir.join(format!("n{NODES}"));
        let identity = fluence_node::daemon::identity_path(&data_dir);
        std::fs::create_dir_all(&data_dir).unwrap();
        let mut tries = 0;
        loop {
            tries += 1;
            assert!(tries < 10_000, "no identity closer to {}", spared.name);
            let _ = std::fs::remove_file(&identity);
            let keypair = fluence_net::identity::load_or_create(&identity).unwrap();
            let key = fluence_net::identity::member_key(&keypair).unwrap();
            if keyspace::distance(&target, &peer_of(&key)) < closest_member {
                break key;
            }
        }
    };

    // The load: one writer per dataset.
    let stop = Arc::new(AtomicBool::new(false));
    let ledgers: Vec<Arc<Mutex<Ledger>>> = datasets
        .iter()
        .map(|_| Arc::new(Mutex::new(Ledger::default())))
        .collect();
    let writers: Vec<_> = datasets
        .iter()
        .zip(&ledgers)
        .enumerate()
        .map(|(salt, (dataset, ledger))| {
            let (api, name) = (api.clone(), dataset.name.clone());
            let (ledger, stop) = (Arc::clone(ledger), Arc::clone(&stop));
            std::thread::spawn(move || load(api, name, salt as u64, ledger, stop))
        })
        .collect();
    wait_for_or(
        "every dataset acknowledged writes",
        START_TIMEOUT,
        || {
            ledgers
                .iter()
                .all(|l| l.lock().unwrap().acked.len() >= WARM_UP_ACKS)
        },
        || load_summary(&datasets, &ledgers),
    );

    // Two members of different clusters die; two new nodes join.
    let killed_at = Instant::now();
    eprintln!(
        "{} killing n{} and n{}; starting n{NODES} (closer to {} than its members) and n{}",
        clock(),
        victims[0],
        victims[1],
        spared_name,
        NODES + 1
    );
    for victim in victims {
        nodes[victim].process.take().unwrap().kill();
    }
    for i in NODES..NODES + NEW_NODES {
        let port = fresh_port(&mut taken);
        nodes.push(node_up(spawn_node(&dir, i, port, &bootstrap)));
        eprintln!("n{i}: {} at {}", nodes[i].key.to_hex(), nodes[i].dial);
    }
    assert_eq!(nodes[NODES].key, closer_key);

    // Every cluster back to full size (the untouched ones unchanged),
    // every member caught up, while the load runs.
    wait_converged(&nodes, &datasets, false, CONVERGE_TIMEOUT, &|| {
        load_summary(&datasets, &ledgers)
    });
    let converged_at = Instant::now();
    eprintln!("{} every cluster full again", clock());
    let back_in = converged_at - killed_at;

    // The load goes on: every dataset still takes writes and reads.
    wait_for_or(
        "every dataset took writes and reads after the change",
        CONVERGE_TIMEOUT,
        || {
            converged_at.elapsed() >= LOAD_AFTER_CHANGE
                && ledgers.iter().all(|l| {
                    let l = l.lock().unwrap();
                    l.acks_since(converged_at) >= 5 && l.reads_since(converged_at) >= 1
                })
        },
        || load_summary(&datasets, &ledgers),
    );
    stop.store(true, Ordering::Relaxed);
    let load_stopped_at = Instant::now();
    for writer in writers {
        writer.join().expect("a writer panicked");
    }

    // Writes stopped: each cluster's members on one root at one height.
    wait_converged(&nodes, &datasets, true, CONVERGE_TIMEOUT, &|| {
        load_summary(&datasets, &ledgers)
    });

    // A member of the spared dataset (not node 0) leaves it gracefully:
    // `fluence leave`, signed with its own key, hands its seat to a node
    // that was not a member; the others keep theirs.
    let seat = (0..CLUSTER_SIZE)
        .find(|seat| datasets[spared_at].original[*seat] != nodes[0].key)
        .expect("a member besides node 0");
    let leaver_key = datasets[spared_at].original[seat];
    let leaver = nodes
        .iter()
        .position(|node| node.key == leaver_key)
        .expect("the leaver is a node");
    let leave_started = Instant::now();
    let mut leave = support::fluence();
    leave
        .args(["leave", &datasets[spared_at].id.to_hex(), "--node"])
        .arg(&nodes[leaver].dial)
        .arg("--data-dir")
        .arg(dir.join(format!("n{leaver}")));
    let output = leave.output().expect("fluence leave runs");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && said.contains("left"),
        "fluence leave: {output:?}"
    );
    eprintln!(
        "{} n{leaver} left {}: {}",
        clock(),
        spared_name,
        said.trim()
    );
    datasets[spared_at].lost.push(seat);
    let last = wait_converged(&nodes, &datasets, true, CONVERGE_TIMEOUT, &|| {
        load_summary(&datasets, &ledgers)
    });
    let left_in = leave_started.elapsed();

    let mut report = Vec::new();
    for (dataset, ledger) in datasets.iter().zip(&ledgers) {
        let ledger = ledger.lock().unwrap();
        assert!(
            ledger.wrong.is_empty(),
            "{}: the gateway answered wrongly: {:?}",
            dataset.name,
            ledger.wrong
        );
        // Every acknowledged document reads back as written, and nothing
        // else is stored but what may have been written.
        let stored = support::stored_values(&http, &dataset.name);
        for (id, value) in &ledger.acked {
            assert_eq!(
                stored.get(id),
                Some(value),
                "{}: acknowledged {id} lost",
                dataset.name
            );
        }
        for (id, value) in &stored {
            let written = ledger.acked.get(id).or_else(|| ledger.unknown.get(id));
            assert_eq!(
                written,
                Some(value),
                "{}: document {id} was never written so",
                dataset.name
            );
        }
        let counted = http.ok(
            &format!("/v1/datasets/{}/count", dataset.name),
            &json!({"filter": {}}),
        );
        assert_eq!(counted["count"], json!(stored.len()), "{}", dataset.name);

        let views = &last[&dataset.id.to_hex()];
        let height = assert_same_blocks(&nodes, dataset, views);
        let members = &views[0].members;
        let names = node_names(&nodes);
        let seats: Vec<String> = dataset
            .lost
            .iter()
            .map(|seat| {
                format!(
                    "seat {seat}: {} -> {}",
                    name(&names, &dataset.original[*seat]),
                    name(&names, &members[*seat])
                )
            })
            .collect();
        report.push(format!(
            "{} epoch {} at height {} ({}): {} acked, {} unknown, {} reads, {} failed writes, \
             {} failed reads, longest wait for an ack after the kill {:?}{}",
            dataset.name,
            views[0].epoch.unwrap(),
            height,
            if seats.is_empty() {
                "untouched".to_string()
            } else {
                seats.join(", ")
            },
            ledger.acked.len(),
            ledger.unknown.len(),
            ledger.read_times.len(),
            ledger.failed_writes,
            ledger.failed_reads,
            ledger.longest_gap(killed_at, load_stopped_at),
            ledger
                .last_failure
                .as_ref()
                .map(|f| format!("; last failure: {f}"))
                .unwrap_or_default(),
        ));
    }

    let (status, _) = gateway.stop();
    assert!(status.success());
    for node in &mut nodes {
        if let Some(process) = node.process.take() {
            let (status, out) = process.stop();
            assert!(status.success(), "{out:?}");
        }
    }
    eprintln!(
        "{NODES} nodes, {DATASETS} datasets placed in {placed_in:?}; killed n{} and n{}, \
         started n{NODES} (closer to {} than its members) and n{}; every cluster full again \
         {back_in:?} after the kill (grace period {GRACE_PERIOD} s); a graceful leave done in \
         {left_in:?}; total {:?}",
        victims[0],
        victims[1],
        spared_name,
        NODES + 1,
        started.elapsed()
    );
    for line in report {
        eprintln!("  {line}");
    }
}
