//! End to end: the real `fluence` binary as a process, driven over HTTP on
//! loopback, stopped and started again on the same directory.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{Devnet, Http, PASSPHRASE};

fn ids(found: &Value) -> Vec<Value> {
    found["documents"]
        .as_array()
        .expect("documents")
        .iter()
        .map(|d| d["_id"].clone())
        .collect()
}

#[test]
fn devnet_crud_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = Devnet::start(dir.path(), PASSPHRASE);
    let http = Http::new(&devnet.api);

    let (status, health) = http.get("/v1/health");
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));

    let created = http.ok(
        "/v1/datasets",
        &json!({"name": "people", "indexes": {"email": "eq", "age": "range", "bio": "text"}}),
    );
    assert_eq!(created["name"], "people");

    let inserted = http.ok(
        "/v1/datasets/people/documents",
        &json!({"documents": [
            {"_id": 1, "email": "ada@example.org", "age": 36, "bio": "Mathematician and writer"},
            {"_id": 2, "email": "alan@example.org", "age": 41, "bio": "mathematician, code breaker",
             "address": {"city": "Wilmslow"}, "tags": ["logic", "ai"]},
            {"_id": 3, "email": "grace@example.org", "age": 85, "bio": "admiral"},
            {"email": "anon@example.org", "age": {"$numberLong": "20"}}
        ]}),
    );
    assert_eq!(inserted["inserted_count"], 4);
    assert!(
        inserted["inserted_ids"][3]["$oid"].is_string(),
        "generated ObjectId: {inserted}"
    );

    let by_email = http.ok(
        "/v1/datasets/people/find",
        &json!({"filter": {"email": "alan@example.org"}}),
    );
    assert_eq!(ids(&by_email), vec![json!(2)]);
    let range = http.ok(
        "/v1/datasets/people/find",
        &json!({"filter": {"age": {"$gte": 36, "$lt": 85}}, "sort": {"age": -1}}),
    );
    assert_eq!(ids(&range), vec![json!(2), json!(1)]);
    let text = http.ok("/v1/datasets/people/find", &json!({"filter": {"$text": {"$search": "MATHEMATICIAN"}}, "projection": {"email": 1, "_id": 0}}));
    let emails: Vec<&Value> = text["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["email"])
        .collect();
    assert_eq!(emails.len(), 2);
    assert!(text["documents"][0].get("_id").is_none());
    let nested = http.ok(
        "/v1/datasets/people/count",
        &json!({"filter": {"address.city": "Wilmslow", "tags": "ai"}}),
    );
    assert_eq!(nested["count"], 1);

    let updated = http.ok(
        "/v1/datasets/people/update",
        &json!({"filter": {"_id": 1}, "update": {"$inc": {"age": 1}, "$push": {"tags": "poetry"}}}),
    );
    assert_eq!(
        (
            updated["matched_count"].as_u64(),
            updated["modified_count"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let upserted = http.ok(
        "/v1/datasets/people/update",
        &json!({"filter": {"email": "new@example.org"}, "update": {"$set": {"age": 50}}, "upsert": true}),
    );
    assert!(!upserted["upserted_id"].is_null());
    let deleted = http.ok(
        "/v1/datasets/people/delete",
        &json!({"filter": {"age": {"$lt": 30}}, "multi": true}),
    );
    assert_eq!(deleted["deleted_count"], 1);
    let total = http.ok("/v1/datasets/people/count", &json!({}));
    assert_eq!(total["count"], 4);

    // The same data through the MongoDB wire protocol endpoint.
    let hello = mongo_command(&devnet.mongo, bson::doc! {"hello": 1, "$db": "admin"});
    assert_eq!(
        hello.get_bool("isWritablePrimary").ok(),
        Some(true),
        "{hello}"
    );

    let (status, out) = devnet.process.stop();
    assert!(status.success(), "devnet exited with {status}: {out:?}");
    assert!(out.iter().any(|l| l.contains("stopped cleanly")), "{out:?}");

    // Same directory, same key: everything is still there.
    let devnet = Devnet::start(dir.path(), PASSPHRASE);
    let http = Http::new(&devnet.api);
    let (_, list) = http.get("/v1/datasets");
    assert_eq!(list["datasets"][0]["name"], "people");
    assert_eq!(list["datasets"][0]["document_count"], 4);
    let ada = http.ok("/v1/datasets/people/find", &json!({"filter": {"_id": 1}}));
    assert_eq!(ada["documents"][0]["age"], 37);
    assert_eq!(ada["documents"][0]["tags"], json!(["poetry"]));
    let range = http.ok(
        "/v1/datasets/people/find",
        &json!({"filter": {"age": {"$gt": 40}}, "sort": {"age": 1}}),
    );
    assert_eq!(range["documents"].as_array().unwrap().len(), 3);

    let (status, _) = http.delete("/v1/datasets/people");
    assert_eq!(status, 200);
    let (status, body) = http.post("/v1/datasets/people/find", &json!({}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("dataset_not_found"))
    );
    let (status, _) = devnet.process.stop();
    assert!(status.success());
}

/// Every member's store state for `dataset`: (seq, state root) as each
/// node answers over `/fluence/rpc/2`.
fn member_states(nodes: &[String], dataset: fluence_proto::DatasetId) -> Vec<(u64, String)> {
    use fluence_proto::{Request, Response};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut states = Vec::new();
        for addr in nodes {
            let client =
                fluence_net::NodeClient::connect(addr.parse().unwrap(), Duration::from_secs(10))
                    .await
                    .unwrap();
            match client
                .call(&Request::DatasetInfo { dataset })
                .await
                .unwrap()
            {
                Response::Info(info) => states.push((info.seq, info.state_root.to_hex())),
                other => panic!("node {addr} answered {other:?}"),
            }
        }
        states
    })
}

/// The id of dataset `name` of the devnet's owner key in `dir`.
fn devnet_dataset(dir: &std::path::Path, name: &str) -> fluence_proto::DatasetId {
    let master = fluence_crypto::keystore::Keystore::unlock(
        &dir.join("keys").join("owner.key"),
        PASSPHRASE.as_bytes(),
    )
    .unwrap();
    let tag = master.catalog_key().name_tag(name);
    fluence_proto::DatasetId(fluence_crypto::keys::dataset_id(
        &master.owner_public_key(),
        &tag,
    ))
}

/// Waits until every member holds `dataset` at node 0's seq, then checks
/// they all hold the same state root.
fn assert_members_agree(nodes: &[String], dataset: fluence_proto::DatasetId) -> (u64, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let states = member_states(nodes, dataset);
        if states.iter().all(|s| s.0 == states[0].0) {
            assert!(
                states.iter().all(|s| s.1 == states[0].1),
                "members disagree on the state root: {states:?}"
            );
            return states[0].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "members did not catch up: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_four_node_devnet_replicates_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = Devnet::start_nodes(dir.path(), PASSPHRASE, 4);
    assert_eq!(devnet.nodes.len(), 4);
    assert!(
        devnet
            .process
            .seen
            .iter()
            .any(|l| l
                .contains("an open network of 4 nodes; each dataset is served by the 4 closest"))
    );
    let http = Http::new(&devnet.api);

    http.ok(
        "/v1/datasets",
        &json!({"name": "ledger", "indexes": {"account": "eq", "amount": "range"}}),
    );
    let inserted = http.ok(
        "/v1/datasets/ledger/documents",
        &json!({"documents": [
            {"_id": 1, "account": "a", "amount": 10},
            {"_id": 2, "account": "b", "amount": 20},
            {"_id": 3, "account": "a", "amount": 30}
        ]}),
    );
    assert_eq!(inserted["inserted_count"], 3);
    let found = http.ok(
        "/v1/datasets/ledger/find",
        &json!({"filter": {"account": "a"}, "sort": {"amount": 1}}),
    );
    assert_eq!(ids(&found), vec![json!(1), json!(3)]);
    let updated = http.ok(
        "/v1/datasets/ledger/update",
        &json!({"filter": {"_id": 2}, "update": {"$inc": {"amount": 5}}}),
    );
    assert_eq!(updated["modified_count"], 1);
    let deleted = http.ok(
        "/v1/datasets/ledger/delete",
        &json!({"filter": {"amount": {"$gte": 30}}}),
    );
    assert_eq!(deleted["deleted_count"], 1);
    let range = http.ok(
        "/v1/datasets/ledger/find",
        &json!({"filter": {"amount": {"$gt": 0}}, "sort": {"amount": -1}}),
    );
    assert_eq!(ids(&range), vec![json!(2), json!(1)]);
    assert_eq!(range["documents"][0]["amount"], 25);

    // A unique-index refusal travels back through consensus typed.
    http.ok(
        "/v1/datasets",
        &json!({"name": "users", "indexes": [{"field": "email", "kind": "eq", "unique": true}]}),
    );
    http.ok(
        "/v1/datasets/users/documents",
        &json!({"documents": [{"_id": 1, "email": "x@example.org"}]}),
    );
    let (status, body) = http.post(
        "/v1/datasets/users/documents",
        &json!({"documents": [{"_id": 2, "email": "x@example.org"}]}),
    );
    assert_eq!(status, 409, "{body}");

    // Every member holds the same state, as each answers it.
    let ledger = devnet_dataset(dir.path(), "ledger");
    let (seq, root) = assert_members_agree(&devnet.nodes, ledger);
    let (_, list) = http.get("/v1/datasets");
    let view = list["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "ledger")
        .cloned()
        .unwrap();
    assert_eq!(view["seq"].as_u64(), Some(seq), "{view}");
    assert_eq!(view["state_root"].as_str(), Some(root.as_str()), "{view}");
    assert_members_agree(&devnet.nodes, devnet_dataset(dir.path(), "users"));

    // The operations commands find the devnet's nodes and owner key in
    // its directory.
    let status = support::fluence()
        .arg("status")
        .arg("--devnet")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    assert_eq!(
        text.matches("shares clusters with 3 node(s), 3 reachable")
            .count(),
        4,
        "{text}"
    );
    assert_eq!(
        text.matches(&ledger.to_hex()[..12]).count(),
        8,
        "per node, its cluster line and its row in the table: {text}"
    );
    let chain = support::fluence()
        .args(["chain", "show", "ledger", "--limit", "2", "--devnet"])
        .arg(dir.path())
        .env("FLUENCE_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&chain.stdout);
    assert!(
        chain.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&chain.stderr)
    );
    assert!(text.contains(&format!("chain of {ledger}")), "{text}");
    assert_eq!(text.matches("\nblock ").count(), 2, "{text}");
    assert!(text.contains("verified against the members"), "{text}");

    let (status, out) = devnet.process.stop();
    assert!(status.success(), "devnet exited with {status}: {out:?}");
    assert!(out.iter().any(|l| l.contains("stopped cleanly")), "{out:?}");

    // Restarted on the same directory: the same cluster resumes, and a
    // write after the restart reaches every member.
    let devnet = Devnet::start_nodes(dir.path(), PASSPHRASE, 4);
    let http = Http::new(&devnet.api);
    let found = http.ok(
        "/v1/datasets/ledger/find",
        &json!({"filter": {}, "sort": {"_id": 1}}),
    );
    assert_eq!(ids(&found), vec![json!(1), json!(2)]);
    http.ok(
        "/v1/datasets/ledger/documents",
        &json!({"documents": [{"_id": 4, "account": "c", "amount": 40}]}),
    );
    let (after, _) = assert_members_agree(&devnet.nodes, ledger);
    assert_eq!(after, seq + 1);
    let (status, _) = devnet.process.stop();
    assert!(status.success());
}

#[test]
fn separate_node_processes_form_a_network_and_a_cluster_from_bootstrap_flags() {
    let dir = tempfile::tempdir().unwrap();
    // Node 0's identity first: every other node joins through it.
    let ports: Vec<u16> = (0..4).map(|_| support::free_port()).collect();
    let bootstrap = support::bootstrap_addr(dir.path(), ports[0]);
    let mut nodes = Vec::new();
    let mut dial = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let node = support::network_node(dir.path(), i, *port, &bootstrap);
        let mut node = support::Process::spawn(node);
        dial.push(
            node.wait_for("dial address:")
                .split_whitespace()
                .last()
                .unwrap()
                .to_string(),
        );
        node.wait_for("clusters:");
        nodes.push(node);
    }

    support::new_owner_key(&dir.path().join("keys"));
    // The gateway may talk to any member: here the third.
    let (gateway, api) =
        support::start_gateway(&dir.path().join("keys").join("owner.key"), &dial[2]);
    let http = Http::new(&api);
    http.ok(
        "/v1/datasets",
        &json!({"name": "notes", "indexes": {"day": "range"}}),
    );
    let inserted = http.ok(
        "/v1/datasets/notes/documents",
        &json!({"documents": (0..20).map(|i| json!({"_id": i, "day": i % 7})).collect::<Vec<_>>()}),
    );
    assert_eq!(inserted["inserted_count"], 20);
    let found = http.ok(
        "/v1/datasets/notes/count",
        &json!({"filter": {"day": {"$lt": 2}}}),
    );
    assert_eq!(found["count"], 6);
    let (seq, _) = assert_members_agree(&dial, devnet_dataset(dir.path(), "notes"));
    assert!(seq >= 1);

    let (status, _) = gateway.stop();
    assert!(status.success());
    for node in nodes {
        let (status, out) = node.stop();
        assert!(status.success(), "{out:?}");
    }
}

/// Sends one OP_MSG command over a fresh connection and returns the reply
/// document (a minimal client: the crate's own codec is not used here).
fn mongo_command(addr: &str, command: bson::Document) -> bson::Document {
    use std::io::{Read, Write};
    let body = command.to_vec().unwrap();
    let len = 16 + 4 + 1 + body.len();
    let mut message = Vec::with_capacity(len);
    message.extend_from_slice(&(len as i32).to_le_bytes());
    message.extend_from_slice(&1i32.to_le_bytes()); // requestID
    message.extend_from_slice(&0i32.to_le_bytes()); // responseTo
    message.extend_from_slice(&2013i32.to_le_bytes()); // OP_MSG
    message.extend_from_slice(&0u32.to_le_bytes()); // flagBits
    message.push(0); // section kind 0: the body
    message.extend_from_slice(&body);
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(&message).unwrap();
    let mut header = [0u8; 16];
    stream.read_exact(&mut header).unwrap();
    let reply_len = i32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
    assert_eq!(
        i32::from_le_bytes(header[12..16].try_into().unwrap()),
        2013,
        "reply is OP_MSG"
    );
    let mut rest = vec![0u8; reply_len - 16];
    stream.read_exact(&mut rest).unwrap();
    assert_eq!(rest[4], 0, "first section is the body");
    bson::Document::from_reader(&rest[5..]).unwrap()
}

#[test]
fn the_mongodb_endpoint_serves_only_loopback_without_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let command = support::devnet_command(dir.path(), PASSPHRASE, "0.0.0.0:0", &[]);
    let (status, stderr) = support::Process::spawn(command).exit();
    assert!(!status.success());
    assert!(
        stderr.contains("loopback") && stderr.contains("SCRAM"),
        "stderr: {stderr}"
    );
}

#[test]
fn wrong_passphrase_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = Devnet::start(dir.path(), PASSPHRASE);
    let (status, _) = devnet.process.stop();
    assert!(status.success());

    let command = support::devnet_command(dir.path(), "not the passphrase", "127.0.0.1:0", &[]);
    let (status, stderr) = support::Process::spawn(command).exit();
    assert!(!status.success());
    assert!(
        stderr.to_lowercase().contains("wrong passphrase"),
        "stderr: {stderr}"
    );
}

#[test]
fn bad_input_gets_clear_errors_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = Devnet::start(dir.path(), PASSPHRASE);
    let http = Http::new(&devnet.api);
    http.ok(
        "/v1/datasets",
        &json!({"name": "t", "indexes": [{"field": "n", "kind": "range"}]}),
    );
    http.ok("/v1/datasets/t/documents", &json!({"_id": "a", "n": 1}));

    let expect = |(status, body): (u16, Value), want_status: u16, want_code: &str| {
        assert_eq!(status, want_status, "{body}");
        assert_eq!(body["error"]["code"], want_code, "{body}");
        assert!(!body["error"]["message"].as_str().unwrap_or("").is_empty());
        body
    };
    expect(
        http.post_raw("/v1/datasets/t/find", b"{\"filter\": "),
        400,
        "invalid_json",
    );
    let unknown = expect(
        http.post(
            "/v1/datasets/t/find",
            &json!({"filter": {"n": {"$near": 1}}}),
        ),
        400,
        "bad_query",
    );
    assert!(unknown["error"]["message"]
        .as_str()
        .unwrap()
        .contains("$near"));
    expect(
        http.post("/v1/datasets/t/find", &json!({"filter": 3})),
        400,
        "bad_request",
    );
    expect(
        http.post("/v1/datasets/t/find", &json!({"filter": {}, "bogus": 1})),
        400,
        "bad_request",
    );
    expect(
        http.post(
            "/v1/datasets/t/update",
            &json!({"filter": {}, "update": {"$frobnicate": {"a": 1}}}),
        ),
        400,
        "bad_query",
    );
    expect(
        http.post(
            "/v1/datasets",
            &json!({"name": "u", "indexes": {"x": "hash"}}),
        ),
        400,
        "bad_request",
    );
    expect(
        http.post("/v1/datasets", &json!({"name": "t"})),
        409,
        "dataset_exists",
    );
    expect(
        http.post("/v1/datasets/missing/find", &json!({})),
        404,
        "dataset_not_found",
    );
    expect(
        http.post("/v1/datasets/t/documents", &json!({"_id": "a", "n": 2})),
        409,
        "duplicate_key",
    );
    expect(
        http.post("/v1/datasets/t/documents", &json!({"_id": [1, 2]})),
        400,
        "bad_request",
    );
    let big = "x".repeat(17 * 1024 * 1024);
    expect(
        http.post(
            "/v1/datasets/t/documents",
            &json!({"_id": "big", "blob": big}),
        ),
        413,
        "document_too_large",
    );
    expect(
        http.post_declaring_len("/v1/datasets/t/documents", 65 * 1024 * 1024),
        413,
        "payload_too_large",
    );
    expect(http.get("/v1/nowhere"), 404, "not_found");

    // Nothing acknowledged was lost, and the node still serves.
    let found = http.ok(
        "/v1/datasets/t/find",
        &json!({"filter": {"n": {"$gte": 0}}}),
    );
    assert_eq!(found["documents"], json!([{"_id": "a", "n": 1}]));
    http.ok("/v1/datasets/t/documents", &json!({"_id": "b", "n": 2}));
    assert_eq!(http.ok("/v1/datasets/t/count", &json!({}))["count"], 2);
    let (status, _) = devnet.process.stop();
    assert!(status.success());
}
