//! Leak test: documents with unique markers in dataset names, field names
//! and values go through a real gateway to a real node process; afterwards
//! every byte of every file under the node's data directory, and every byte
//! of every request the node received, is scanned for the markers.

mod support;

use serde_json::json;
use support::{contains, files_under, fluence, start_gateway, Http, Process};

/// Markers long enough that a chance occurrence in ciphertext is
/// impossible in practice (2^-96 per position).
const MARKERS: [&str; 6] = [
    "FLDNAMEq7Zx3Kp", // field name (eq-indexed)
    "RNGFIELDw8Yt2",  // field name (range-indexed)
    "TXTFIELDm4Lr9",  // field name (text-indexed)
    "NESTEDFLDb6Vn1", // nested field name, unindexed
    "SECRETVALk2Pz7", // value
    "DSNAMEh5Qc0Je",  // dataset name
];

#[test]
fn no_plaintext_reaches_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let node_dir = dir.path().join("node");
    let record = dir.path().join("received.bin");
    let keys = dir.path().join("keys");

    let mut node = fluence();
    node.args([
        "node",
        "--alone",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--data-dir",
    ])
    .arg(&node_dir)
    .arg("--debug-record-requests")
    .arg(&record);
    let mut node = Process::spawn(node);
    let dial = node
        .wait_for("dial address:")
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();

    support::new_owner_key(&keys);

    let (gateway, api) = start_gateway(&keys.join("owner.key"), &dial);
    let http = Http::new(&api);

    let [eq_field, range_field, text_field, nested_field, value, dataset] = MARKERS;
    http.ok(
        "/v1/datasets",
        &json!({"name": dataset, "indexes": {eq_field: "eq", range_field: "range", text_field: "text"}}),
    );
    let docs: Vec<_> = (0..50)
        .map(|i| {
            json!({
                "_id": format!("{value}-{i}"),
                eq_field: format!("{value} eq {i}"),
                range_field: format!("{value}{i:03}"),
                text_field: format!("words about {value} number {i}"),
                "outer": {nested_field: value, "list": [value, i]},
            })
        })
        .collect();
    http.ok(
        &format!("/v1/datasets/{dataset}/documents"),
        &json!({ "documents": docs }),
    );
    // Queries put tokens for the markers on the wire too.
    let eq = http.ok(
        &format!("/v1/datasets/{dataset}/find"),
        &json!({"filter": {eq_field: format!("{value} eq 7")}}),
    );
    assert_eq!(eq["documents"].as_array().unwrap().len(), 1);
    let range = http.ok(
        &format!("/v1/datasets/{dataset}/find"),
        &json!({"filter": {range_field: {"$gte": format!("{value}010"), "$lt": format!("{value}020")}}}),
    );
    assert_eq!(range["documents"].as_array().unwrap().len(), 10);
    let text = http.ok(
        &format!("/v1/datasets/{dataset}/count"),
        &json!({"filter": {"$text": {"$search": value}}}),
    );
    assert_eq!(text["count"], 50);
    http.ok(
        &format!("/v1/datasets/{dataset}/update"),
        &json!({"filter": {"_id": format!("{value}-1")}, "update": {"$set": {nested_field: value}}}),
    );
    http.ok(
        &format!("/v1/datasets/{dataset}/delete"),
        &json!({"filter": {"_id": format!("{value}-2")}}),
    );

    let (status, _) = gateway.stop();
    assert!(status.success());
    let (status, _) = node.stop();
    assert!(status.success());

    // The scanner itself must be able to see a marker, or this test proves
    // nothing: the JSON we sent contains them all.
    assert!(contains(docs_text(&docs).as_bytes(), value.as_bytes()));

    let received = std::fs::read(&record).unwrap();
    assert!(
        received.len() > 50 * 1024,
        "the node received {} bytes: recording failed?",
        received.len()
    );
    let mut scanned = vec![(record.clone(), received)];
    for file in files_under(&node_dir) {
        let bytes = std::fs::read(&file).unwrap();
        scanned.push((file, bytes));
    }
    assert!(
        scanned.len() >= 3,
        "expected the node's key, store and record files"
    );
    for (file, bytes) in &scanned {
        for marker in MARKERS {
            assert!(
                !contains(bytes, marker.as_bytes()),
                "{marker} found in {}",
                file.display()
            );
            // Nor a reversed copy (a byte-order slip would still be a leak).
            let reversed: Vec<u8> = marker.bytes().rev().collect();
            assert!(
                !contains(bytes, &reversed),
                "reversed {marker} in {}",
                file.display()
            );
        }
    }
}

fn docs_text(docs: &[serde_json::Value]) -> String {
    serde_json::to_string(docs).unwrap()
}
