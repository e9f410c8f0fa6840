//! Twelve real `fluence node` processes form an open network on loopback
//! (each joins through node 0; one is started with `--no-accept`), and a
//! real `fluence gateway` enters it through node 0 only. Five datasets
//! are created through the gateway's HTTP API; then checked:
//!
//! - each dataset's cluster (as every member reports it in `fluence
//!   status --json`) is exactly the 4 closest accepting nodes to its id,
//!   computed here independently from all twelve peer ids (the refusing
//!   node is among the 4 closest of at least one dataset, so the next
//!   closest served instead);
//! - at least two datasets have different clusters;
//! - writes and reads work on every dataset, through routes the gateway
//!   found through the DHT;
//! - the members of each cluster agree on the state root.
//!
//! Time limits only turn a hang into a failure.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fluence_proto::{DatasetId, PublicKey};
use serde_json::{json, Value};
use support::{Http, Process};

const NODES: usize = 12;
const CLUSTER_SIZE: usize = 4;
const DATASETS: usize = 5;
/// The node started with `--no-accept`.
const REFUSING: usize = 5;
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);

use support::{by_distance, dataset_id};

fn expected_cluster(
    dataset: &DatasetId,
    keys: &[PublicKey],
    refusing: &PublicKey,
) -> Vec<PublicKey> {
    by_distance(dataset, keys)
        .into_iter()
        .filter(|key| key != refusing)
        .take(CLUSTER_SIZE)
        .collect()
}

fn closest_four(dataset: &DatasetId, keys: &[PublicKey]) -> Vec<PublicKey> {
    by_distance(dataset, keys)
        .into_iter()
        .take(CLUSTER_SIZE)
        .collect()
}

/// `fluence status --json` of every node.
fn statuses(dials: &[String]) -> Vec<Value> {
    let mut status = support::fluence();
    status.args(["status", "--json"]);
    for dial in dials {
        status.args(["--node", dial]);
    }
    let output = status.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let parsed: Value = serde_json::from_slice(&output.stdout).unwrap();
    parsed["nodes"].as_array().unwrap().clone()
}

#[test]
fn twelve_nodes_place_five_datasets_on_their_closest_accepting_nodes() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    support::new_owner_key(&keys_dir);

    let ports: Vec<u16> = (0..NODES).map(|_| support::free_port()).collect();
    let bootstrap = support::bootstrap_addr(dir.path(), ports[0]);
    let mut nodes = Vec::new();
    let mut dials = Vec::new();
    let mut keys = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let mut node = support::network_node(dir.path(), i, *port, &bootstrap);
        if i == REFUSING {
            node.arg("--no-accept");
        }
        let mut node = Process::spawn(node);
        dials.push(
            node.wait_for("dial address:")
                .split_whitespace()
                .last()
                .unwrap()
                .to_string(),
        );
        keys.push(
            PublicKey::from_hex(
                node.wait_for("member key:")
                    .split_whitespace()
                    .last()
                    .unwrap(),
            )
            .unwrap(),
        );
        node.wait_for("clusters:");
        nodes.push(node);
    }
    let refusing = keys[REFUSING];

    // Five names, the first one a dataset whose 4 closest include the
    // refusing node (so its refusal is exercised), found by computing ids.
    let mut names = Vec::new();
    let mut refused_somewhere = false;
    for i in 0.. {
        let name = format!("ds{i}");
        let id = dataset_id(&keys_dir, &name);
        let refuses_here = closest_four(&id, &keys).contains(&refusing);
        if names.is_empty() && !refuses_here {
            continue;
        }
        refused_somewhere |= refuses_here;
        names.push(name);
        if names.len() == DATASETS {
            break;
        }
    }
    assert!(refused_somewhere);

    // Node 0 must know the whole network before placement asks it.
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let table = statuses(&dials[..1])[0]["network"]["routing_table_size"].as_u64();
        if table.unwrap_or(0) >= (NODES - 1) as u64 {
            break;
        }
        assert!(Instant::now() < deadline, "node 0 never saw every node");
        std::thread::sleep(Duration::from_millis(200));
    }

    let (gateway, api) = support::start_gateway(&keys_dir.join("owner.key"), &dials[0]);
    let http = Http::new(&api);
    for name in &names {
        http.ok(
            "/v1/datasets",
            &json!({"name": name, "indexes": {"n": "range"}}),
        );
    }
    for (d, name) in names.iter().enumerate() {
        let documents: Vec<Value> = (0..10)
            .map(|i| json!({"_id": i, "n": i * 10 + d}))
            .collect();
        let inserted = http.ok(
            &format!("/v1/datasets/{name}/documents"),
            &json!({ "documents": documents }),
        );
        assert_eq!(inserted["inserted_count"], 10, "{name}");
    }
    for (d, name) in names.iter().enumerate() {
        let found = http.ok(
            &format!("/v1/datasets/{name}/count"),
            &json!({"filter": {"n": {"$gte": 50}}}),
        );
        assert_eq!(found["count"], 5, "{name}");
        let one = http.ok(
            &format!("/v1/datasets/{name}/find"),
            &json!({"filter": {"_id": 3}}),
        );
        assert_eq!(one["documents"][0]["n"], json!(30 + d), "{name}: {one}");
    }

    // Every member reports the dataset with the expected cluster, and the
    // members agree on its state (seq 10 applied: Create + one batch).
    let mut clusters = BTreeMap::new();
    for name in &names {
        let id = dataset_id(&keys_dir, name);
        let expected = expected_cluster(&id, &keys, &refusing);
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        loop {
            let views: Vec<(PublicKey, Vec<String>, String, u64)> = statuses(&dials)
                .iter()
                .flat_map(|node| {
                    let key = PublicKey::from_hex(node["node"].as_str().unwrap()).unwrap();
                    node["datasets"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|d| d["dataset"] == id.to_hex())
                        .map(|d| {
                            (
                                key,
                                d["members"]
                                    .as_array()
                                    .unwrap()
                                    .iter()
                                    .map(|m| m.as_str().unwrap().to_string())
                                    .collect(),
                                d["state_root"].as_str().unwrap().to_string(),
                                d["applied_height"].as_u64().unwrap(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            let serving: Vec<PublicKey> = views.iter().map(|v| v.0).collect();
            let mut sorted_expected = expected.clone();
            sorted_expected.sort();
            let mut sorted_serving = serving.clone();
            sorted_serving.sort();
            let roots: std::collections::BTreeSet<&String> = views.iter().map(|v| &v.2).collect();
            let heights: std::collections::BTreeSet<u64> = views.iter().map(|v| v.3).collect();
            let converged =
                sorted_serving == sorted_expected && roots.len() == 1 && heights.len() == 1;
            if converged {
                let expected_hex: Vec<String> = expected.iter().map(|k| k.to_hex()).collect();
                for view in &views {
                    assert_eq!(view.1, expected_hex, "{name}: the cluster in its genesis");
                }
                clusters.insert(name.clone(), expected.clone());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: expected cluster {expected:?}, served by {serving:?}, roots {roots:?}, heights {heights:?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        assert!(!expected.contains(&refusing));
    }
    let distinct: std::collections::BTreeSet<_> = clusters.values().collect();
    assert!(
        distinct.len() >= 2,
        "every dataset landed on one cluster: {clusters:?}"
    );

    let (status, _) = gateway.stop();
    assert!(status.success());
    for node in nodes {
        let (status, out) = node.stop();
        assert!(status.success(), "{out:?}");
    }
    eprintln!(
        "{} datasets on {} distinct clusters of {NODES} nodes in {:?}",
        names.len(),
        distinct.len(),
        started.elapsed()
    );
}
