//! End to end: the MongoDB endpoint of the real `fluence` binary.
//! `fluence devnet --mongo-user` requires SCRAM-SHA-256: a raw wire-protocol
//! client (SCRAM's client side written here from RFC 5802/7677)
//! authenticates and writes; a wrong password gets AuthenticationFailed
//! (18). Loopback is used: the point is the authentication path. Index
//! names created through the endpoint survive a restart.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use bson::{doc, Bson, Document};
use fluence_testkit::scram::{sasl_binary, sasl_payload, server_field, ScramClient};
use support::{Process, PASSPHRASE};

const USER: &str = "app@shop";
const PASSWORD: &str = "s3cret mongo password";

/// A devnet whose MongoDB endpoint requires `USER` / `password`; returns
/// the process and the connection string it printed.
fn devnet(dir: &std::path::Path, password: &str) -> (Process, String) {
    let mut command =
        support::devnet_command(dir, PASSPHRASE, "127.0.0.1:0", &["--mongo-user", USER]);
    command.env("FLUENCE_MONGO_PASSWORD", password);
    let mut process = Process::spawn(command);
    let line = process.wait_for("MongoDB:");
    let uri = line.split_whitespace().last().expect("uri").to_string();
    (process, uri)
}

/// `host:port` of a `mongodb://user@host:port/?...` string.
fn host_of(uri: &str) -> &str {
    let rest = uri.strip_prefix("mongodb://").expect("scheme");
    let rest = rest.split_once('@').expect("user").1;
    rest.split_once('/').expect("path").0
}

/// One connection, one OP_MSG command at a time.
struct Conn {
    stream: TcpStream,
    request_id: i32,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        Conn {
            stream: TcpStream::connect(addr).expect("connect"),
            request_id: 0,
        }
    }

    fn command(&mut self, command: Document) -> Document {
        self.request_id += 1;
        let body = command.to_vec().unwrap();
        let len = 16 + 4 + 1 + body.len();
        let mut message = Vec::with_capacity(len);
        message.extend_from_slice(&(len as i32).to_le_bytes());
        message.extend_from_slice(&self.request_id.to_le_bytes());
        message.extend_from_slice(&0i32.to_le_bytes()); // responseTo
        message.extend_from_slice(&2013i32.to_le_bytes()); // OP_MSG
        message.extend_from_slice(&0u32.to_le_bytes()); // flagBits
        message.push(0); // section kind 0: the body
        message.extend_from_slice(&body);
        self.stream.write_all(&message).unwrap();
        let mut header = [0u8; 16];
        self.stream.read_exact(&mut header).unwrap();
        let reply_len = i32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
        let responds_to = i32::from_le_bytes(header[8..12].try_into().unwrap());
        assert_eq!(responds_to, self.request_id);
        let mut rest = vec![0u8; reply_len - 16];
        self.stream.read_exact(&mut rest).unwrap();
        assert_eq!(rest[4], 0, "first section is the body");
        Document::from_reader(&rest[5..]).unwrap()
    }
}

fn ok(reply: &Document) -> bool {
    reply.get_f64("ok").ok() == Some(1.0)
}

/// Runs a SCRAM-SHA-256 conversation as `USER` with `password`; returns
/// the reply to the client's proof.
fn authenticate(conn: &mut Conn, password: &str) -> Document {
    let scram = ScramClient::new(USER, password);
    let reply = conn.command(doc! {
        "saslStart": 1, "mechanism": "SCRAM-SHA-256",
        "payload": sasl_binary(scram.first().as_bytes()),
        "options": {"skipEmptyExchange": true}, "$db": "admin",
    });
    assert!(ok(&reply), "saslStart: {reply}");
    let conversation = reply.get("conversationId").cloned().unwrap();
    let server_first = sasl_payload(&reply);
    assert!(server_field(&server_first, "r=").starts_with(scram.nonce()));
    let last = scram.last(&server_first);
    let reply = conn.command(doc! {
        "saslContinue": 1, "conversationId": conversation,
        "payload": sasl_binary(last.message.as_bytes()),
        "$db": "admin",
    });
    if ok(&reply) {
        assert_eq!(sasl_payload(&reply), last.server_signature);
        assert!(reply.get_bool("done").unwrap(), "{reply}");
    }
    reply
}

#[test]
fn devnet_with_a_mongo_user_requires_scram() {
    let dir = tempfile::tempdir().unwrap();
    let (process, uri) = devnet(dir.path(), PASSWORD);
    // The user, percent-encoded, and the options drivers need; never the
    // password.
    assert!(uri.starts_with("mongodb://app%40shop@127.0.0.1:"), "{uri}");
    assert!(
        uri.ends_with("/?authSource=admin&authMechanism=SCRAM-SHA-256"),
        "{uri}"
    );
    assert!(
        !process.seen.iter().any(|line| line.contains(PASSWORD)),
        "{:?}",
        process.seen
    );
    let addr = host_of(&uri).to_string();

    // Without authentication, data commands are refused.
    let mut conn = Conn::open(&addr);
    let reply = conn.command(doc! {"insert": "c", "$db": "shop", "documents": [{"_id": 1}]});
    assert_eq!(reply.get_i32("code").unwrap(), 13, "{reply}");

    // Authenticated, the same connection writes and reads.
    let reply = authenticate(&mut conn, PASSWORD);
    assert!(ok(&reply), "{reply}");
    let reply =
        conn.command(doc! {"insert": "c", "$db": "shop", "documents": [{"_id": 1, "v": "x"}]});
    assert_eq!(reply.get_i32("n").ok(), Some(1), "{reply}");
    let reply = conn.command(doc! {"find": "c", "$db": "shop", "filter": {"_id": 1}});
    let batch = reply
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap();
    assert_eq!(batch, &vec![Bson::Document(doc! {"_id": 1, "v": "x"})]);
    let reply = conn.command(doc! {"connectionStatus": 1, "$db": "admin"});
    let users = reply
        .get_document("authInfo")
        .unwrap()
        .get_array("authenticatedUsers")
        .unwrap();
    assert_eq!(
        users[0].as_document().unwrap().get_str("user").unwrap(),
        USER
    );

    // A wrong password: AuthenticationFailed, and still unauthenticated.
    let mut wrong = Conn::open(&addr);
    let reply = authenticate(&mut wrong, "not the password");
    assert_eq!(reply.get_i32("code").unwrap(), 18, "{reply}");
    let reply = wrong.command(doc! {"find": "c", "$db": "shop"});
    assert_eq!(reply.get_i32("code").unwrap(), 13, "{reply}");

    let (status, _) = process.stop();
    assert!(status.success());
}

#[test]
fn a_mongo_user_needs_its_password_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = support::devnet_command(
        dir.path(),
        PASSPHRASE,
        "127.0.0.1:0",
        &["--mongo-user", USER],
    );
    command.env_remove("FLUENCE_MONGO_PASSWORD");
    let (status, stderr) = Process::spawn(command).exit();
    assert!(!status.success());
    assert!(
        stderr.contains("FLUENCE_MONGO_PASSWORD"),
        "stderr: {stderr}"
    );
    // And a password alone does not protect anything: refused too.
    let mut command = support::devnet_command(dir.path(), PASSPHRASE, "127.0.0.1:0", &[]);
    command.env("FLUENCE_MONGO_PASSWORD", PASSWORD);
    let (status, stderr) = Process::spawn(command).exit();
    assert!(!status.success());
    assert!(stderr.contains("--mongo-user"), "stderr: {stderr}");
}

#[test]
fn index_names_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (process, uri) = devnet(dir.path(), PASSWORD);
    let mut conn = Conn::open(host_of(&uri));
    assert!(ok(&authenticate(&mut conn, PASSWORD)));
    let reply = conn.command(doc! {"insert": "c", "$db": "shop", "documents": [
        {"_id": 1, "v": 3, "email": "a@x"}, {"_id": 2, "v": 1, "email": "b@x"},
    ]});
    assert_eq!(reply.get_i32("n").ok(), Some(2), "{reply}");
    let reply = conn.command(doc! {"createIndexes": "c", "$db": "shop", "indexes": [
        {"key": {"v": -1}, "name": "newest_first"},
        {"key": {"email": 1}, "name": "email_1", "unique": true},
    ]});
    assert!(ok(&reply), "{reply}");
    let (status, _) = process.stop();
    assert!(status.success());

    let (process, uri) = devnet(dir.path(), PASSWORD);
    let mut conn = Conn::open(host_of(&uri));
    assert!(ok(&authenticate(&mut conn, PASSWORD)));
    let reply = conn.command(doc! {"listIndexes": "c", "$db": "shop"});
    let indexes = reply
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap();
    assert_eq!(
        indexes[1..],
        [
            Bson::Document(doc! {"v": 2, "key": {"v": -1}, "name": "newest_first"}),
            Bson::Document(doc! {"v": 2, "key": {"email": 1}, "name": "email_1", "unique": true}),
        ]
    );
    // Still enforced.
    let reply = conn.command(doc! {"insert": "c", "$db": "shop", "documents": [{"email": "a@x"}]});
    let error = reply.get_array("writeErrors").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(error.get_i32("code").unwrap(), 11000, "{reply}");
    let (status, _) = process.stop();
    assert!(status.success());
}
