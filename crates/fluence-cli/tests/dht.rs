//! The open network's discovery with real `fluence node` processes on
//! loopback: eight nodes join in a chain (node i through node i − 1), every
//! routing table fills with all the others, `fluence dht closest` asked of
//! two different nodes agrees with the true closest nodes (XOR distance
//! over every peer id), a node started later is found, and a killed node
//! leaves the lookups.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fluence_net::keyspace::{self, Target};
use fluence_net::PeerId;
use fluence_proto::DatasetId;
use serde_json::Value;
use support::Process;

const NODES: usize = 8;
/// How long the network may take to settle after a change.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

struct Node {
    process: Process,
    dial: String,
    peer: PeerId,
}

/// `fluence node` on a free loopback port, joining through `bootstrap`.
fn start_node(dir: &Path, bootstrap: Option<&Node>) -> Node {
    let mut command = support::fluence();
    command
        .args(["node", "--listen", "/ip4/127.0.0.1/tcp/0", "--data-dir"])
        .arg(dir);
    if let Some(bootstrap) = bootstrap {
        command.args(["--bootstrap", &bootstrap.dial]);
    }
    let mut process = Process::spawn(command);
    let dial = process
        .wait_for("dial address:")
        .split_whitespace()
        .last()
        .expect("dial address")
        .to_string();
    process.wait_for("network:");
    let peer = dial
        .rsplit("/p2p/")
        .next()
        .and_then(|id| id.parse().ok())
        .expect("a peer id in the dial address");
    Node {
        process,
        dial,
        peer,
    }
}

fn run_json(mut command: Command) -> Value {
    let output = command.output().expect("run fluence");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

/// `fluence status --json` of every node in `nodes`.
fn status(nodes: &[&Node]) -> Value {
    let mut command = support::fluence();
    command.args(["status", "--json"]);
    for node in nodes {
        command.args(["--node", &node.dial]);
    }
    run_json(command)
}

/// The peer ids `fluence dht closest` asked of `node` returns for `target`.
fn closest(node: &Node, target: &str, count: usize) -> Vec<PeerId> {
    let mut command = support::fluence();
    command.args([
        "dht",
        "closest",
        target,
        "--count",
        &count.to_string(),
        "--json",
        "--node",
        &node.dial,
    ]);
    let answer = run_json(command);
    assert_eq!(answer["complete"], true, "{answer}");
    answer["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .map(|p| {
            p["peer_id"]
                .as_str()
                .expect("peer id")
                .parse()
                .expect("a peer id")
        })
        .collect()
}

/// The true `count` closest of `peers` to `target`, closest first.
fn truly_closest(target: &Target, peers: &[PeerId], count: usize) -> Vec<PeerId> {
    let mut sorted = peers.to_vec();
    sorted.sort_by(|a, b| keyspace::by_distance(&target.key(), a, b));
    sorted.truncate(count);
    sorted
}

/// Waits until every node's routing table holds exactly the others.
fn wait_for_full_tables(nodes: &[&Node]) {
    let start = Instant::now();
    loop {
        let status = status(nodes);
        let sizes: Vec<u64> = status["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| n["network"]["routing_table_size"].as_u64().unwrap_or(0))
            .collect();
        if sizes.iter().all(|&size| size == nodes.len() as u64 - 1) {
            return;
        }
        assert!(
            start.elapsed() < SETTLE_TIMEOUT,
            "routing tables not full within {SETTLE_TIMEOUT:?}: sizes {sizes:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `node`'s lookup for `target` returns the true closest of
/// `peers`.
fn wait_for_lookup(node: &Node, target: &Target, text: &str, peers: &[PeerId], count: usize) {
    let expected = truly_closest(target, peers, count);
    let start = Instant::now();
    loop {
        let got = closest(node, text, count);
        if got == expected {
            return;
        }
        assert!(
            start.elapsed() < SETTLE_TIMEOUT,
            "{target} at {}: got {got:?}, expected {expected:?}",
            node.peer
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn nodes_find_each_other_and_agree_on_the_closest() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = Vec::with_capacity(NODES + 1);
    for i in 0..NODES {
        let node = start_node(&dir.path().join(format!("n{i}")), nodes.last());
        nodes.push(node);
    }
    wait_for_full_tables(&nodes.iter().collect::<Vec<_>>());
    let status = status(&[&nodes[0]]);
    let network = &status["nodes"][0]["network"];
    assert_eq!(network["peer_id"], nodes[0].peer.to_string());
    assert!(network["connected"].as_array().unwrap().len() >= 1);
    assert!(!network["buckets"].as_array().unwrap().is_empty());

    // Every lookup agrees with the truth, whichever node is asked.
    let peers: Vec<PeerId> = nodes.iter().map(|n| n.peer).collect();
    let dataset = DatasetId([0x5a; 32]);
    for (target, text) in [
        (Target::Dataset(dataset), dataset.to_hex()),
        (Target::Peer(peers[4]), peers[4].to_string()),
    ] {
        let expected = truly_closest(&target, &peers, 4);
        assert_eq!(
            closest(&nodes[1], &text, 4),
            expected,
            "{target} from node 1"
        );
        assert_eq!(
            closest(&nodes[6], &text, 4),
            expected,
            "{target} from node 6"
        );
    }

    // A node started later, through a node in the middle, is found.
    let late = start_node(&dir.path().join("late"), Some(&nodes[3]));
    let late_target = Target::Peer(late.peer);
    let mut with_late = peers.clone();
    with_late.push(late.peer);
    wait_for_lookup(
        &nodes[0],
        &late_target,
        &late.peer.to_string(),
        &with_late,
        3,
    );
    assert_eq!(
        closest(&nodes[0], &late.peer.to_string(), 1),
        vec![late.peer]
    );
    nodes.push(late);
    wait_for_full_tables(&nodes.iter().collect::<Vec<_>>());

    // A killed node leaves the lookups (its connections close; the first
    // lookup that tries it cannot dial it and drops it).
    let mut killed = nodes.remove(5);
    killed.process.kill();
    let alive: Vec<PeerId> = nodes.iter().map(|n| n.peer).collect();
    let text = killed.peer.to_string();
    let target = Target::Peer(killed.peer);
    wait_for_lookup(&nodes[0], &target, &text, &alive, alive.len());
    wait_for_lookup(&nodes[7], &target, &text, &alive, alive.len());
    wait_for_lookup(
        &nodes[2],
        &Target::Dataset(dataset),
        &dataset.to_hex(),
        &alive,
        4,
    );

    for node in nodes {
        let (exit, out) = node.process.stop();
        assert!(exit.success(), "node exited with {exit}: {out:?}");
    }
}
