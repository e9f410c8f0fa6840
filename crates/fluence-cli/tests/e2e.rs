//! End to end: the real `fluence` binary as a process, driven over HTTP on
//! loopback, stopped and started again on the same directory.

mod support;

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
    let mut command = support::fluence();
    command
        .args([
            "devnet",
            "--http",
            "127.0.0.1:0",
            "--mongo",
            "0.0.0.0:0",
            "--p2p-port",
            "0",
            "--dir",
        ])
        .arg(dir.path())
        .env("FLUENCE_PASSPHRASE", PASSPHRASE);
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

    let mut command = support::fluence();
    command
        .args([
            "devnet",
            "--http",
            "127.0.0.1:0",
            "--p2p-port",
            "0",
            "--dir",
        ])
        .arg(dir.path())
        .env("FLUENCE_PASSPHRASE", "not the passphrase");
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
