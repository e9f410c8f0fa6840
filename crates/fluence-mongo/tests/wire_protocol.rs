//! The wire protocol end to end over real loopback sockets: `serve` in
//! front of a real `fluence_client::Client` whose node is an in-process
//! `NodeService` over a real store, reached through the canonical codec
//! (harness in `common`).

mod common;

use std::sync::Arc;

use bson::{doc, Bson, Document};
use common::*;
use fluence_client::Client;
use fluence_crypto::keys::MasterKey;
use fluence_node::service::NodeStore;
use fluence_node::NodeService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

#[tokio::test]
async fn legacy_op_query_handshake() {
    let server = start().await;
    let mut conn = Conn::open(&server).await;
    let query = |request_id: i32, collection: &str, q: &Document| {
        let mut body = Vec::new();
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(collection.as_bytes());
        body.push(0);
        body.extend_from_slice(&0i32.to_le_bytes());
        body.extend_from_slice(&(-1i32).to_le_bytes());
        body.extend(bson_bytes(q));
        let mut out = header(16 + body.len(), request_id, OP_QUERY);
        out.extend(body);
        out
    };
    let read_reply = |reply: Vec<u8>, request_id: i32| {
        let int = |at: usize| i32::from_le_bytes(reply[at..at + 4].try_into().unwrap());
        assert_eq!(int(8), request_id);
        assert_eq!(int(12), OP_REPLY);
        assert_eq!(
            i64::from_le_bytes(reply[20..28].try_into().unwrap()),
            0,
            "cursorID"
        );
        assert_eq!(int(32), 1, "numberReturned");
        Document::from_reader(&reply[36..]).expect("reply document")
    };
    conn.stream
        .write_all(&query(
            7,
            "admin.$cmd",
            &doc! {"isMaster": 1, "helloOk": true, "client": {"driver": {"name": "raw"}}},
        ))
        .await
        .unwrap();
    let reply = read_reply(conn.read_message().await.unwrap(), 7);
    assert_ok(&reply);
    assert_eq!(reply.get_bool("ismaster").ok(), Some(true));
    assert_eq!(reply.get_bool("helloOk").ok(), Some(true));
    assert_eq!(reply.get_i32("maxWireVersion").ok(), Some(17));
    assert_eq!(reply.get_i32("minWireVersion").ok(), Some(0));
    // The $query-wrapped form old drivers send.
    conn.stream
        .write_all(&query(
            8,
            "admin.$cmd",
            &doc! {"$query": {"ismaster": 1}, "$readPreference": {"mode": "primary"}},
        ))
        .await
        .unwrap();
    assert_ok(&read_reply(conn.read_message().await.unwrap(), 8));
    // Anything else over OP_QUERY is refused as MongoDB 5.1+ does.
    conn.stream
        .write_all(&query(9, "test.$cmd", &doc! {"find": "c"}))
        .await
        .unwrap();
    assert_eq!(
        code(&read_reply(conn.read_message().await.unwrap(), 9)),
        352
    );
    // The connection continues with OP_MSG after the handshake.
    assert_ok(&conn.command(doc! {"ping": 1, "$db": "admin"}).await);
}

#[tokio::test]
async fn hello_and_admin_commands() {
    let server = start().await;
    let mut conn = Conn::open(&server).await;
    let hello = conn
        .command(doc! {"hello": 1, "$db": "admin", "apiVersion": "1"})
        .await;
    assert_ok(&hello);
    assert_eq!(hello.get_bool("isWritablePrimary").ok(), Some(true));
    assert_eq!(
        hello.get_i32("maxBsonObjectSize").ok(),
        Some(16 * 1024 * 1024)
    );
    assert_eq!(hello.get_i32("maxMessageSizeBytes").ok(), Some(48_000_000));
    assert_eq!(hello.get_i32("maxWriteBatchSize").ok(), Some(100_000));
    assert_eq!(hello.get_i32("logicalSessionTimeoutMinutes").ok(), Some(30));
    assert_eq!(hello.get_i32("maxWireVersion").ok(), Some(17));
    assert!(hello.get_i64("connectionId").unwrap() > 0);
    assert!(hello.get_datetime("localTime").is_ok());

    let info = conn.command(doc! {"buildInfo": 1, "$db": "admin"}).await;
    assert_eq!(info.get_str("version").ok(), Some("7.0.0"));
    assert_eq!(info.get_array("versionArray").unwrap().len(), 4);
    let fcv = conn
        .command(doc! {"getParameter": 1, "featureCompatibilityVersion": 1, "$db": "admin"})
        .await;
    assert_eq!(
        fcv.get_document("featureCompatibilityVersion")
            .unwrap()
            .get_str("version")
            .ok(),
        Some("7.0")
    );
    // Driver-added fields are accepted silently.
    let ping = conn
        .command(doc! {
            "ping": 1, "$db": "admin",
            "lsid": {"id": Bson::Binary(bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![7; 16] })},
            "$clusterTime": {"clusterTime": bson::Timestamp { time: 1, increment: 1 }},
            "$readPreference": {"mode": "primaryPreferred"},
        })
        .await;
    assert_ok(&ping);
    assert_ok(&conn.command(doc! {"endSessions": [], "$db": "admin"}).await);
    let status = conn
        .command(doc! {"connectionStatus": 1, "$db": "admin"})
        .await;
    assert!(status.get_document("authInfo").is_ok());

    let unknown = conn.command(doc! {"frobnicate": 1, "$db": "admin"}).await;
    assert_eq!(code(&unknown), 59);
    assert_eq!(unknown.get_str("codeName").ok(), Some("CommandNotFound"));
    assert_eq!(
        unknown.get_str("errmsg").ok(),
        Some("no such command: 'frobnicate'")
    );
    assert_eq!(code(&conn.command(doc! {"ping": 1}).await), 40571);
    let txn = conn
        .command(doc! {"find": "c", "$db": "d", "txnNumber": 1i64, "startTransaction": true, "autocommit": false})
        .await;
    assert_eq!(code(&txn), 20);
    assert!(txn.get_str("errmsg").unwrap().contains("transactions"));
}

#[tokio::test]
async fn crud_with_document_sequences() {
    let server = start().await;
    let mut conn = Conn::open(&server).await;
    let docs: Vec<Document> = (1..=3)
        .map(|i| doc! {"_id": i, "qty": i * 10, "kind": "a"})
        .collect();
    let inserted = conn
        .command_with_sequence(
            doc! {"insert": "items", "$db": "shop", "ordered": true},
            "documents",
            &docs,
        )
        .await;
    assert_ok(&inserted);
    assert_eq!(inserted.get_i32("n").ok(), Some(3));

    let found = conn
        .command(doc! {"find": "items", "$db": "shop", "filter": {"qty": {"$gte": 20}}, "sort": {"qty": -1}, "projection": {"qty": 1}})
        .await;
    let (batch, id, ns) = cursor(&found);
    assert_eq!((id, ns), (0, "shop.items"));
    assert_eq!(ints(batch, "qty"), vec![30, 20]);
    assert_eq!(batch[0].as_document().unwrap(), &doc! {"_id": 3, "qty": 30});

    // skip and limit.
    let found = conn
        .command(doc! {"find": "items", "$db": "shop", "sort": {"_id": 1}, "skip": 1, "limit": 1})
        .await;
    assert_eq!(ints(cursor(&found).0, "_id"), vec![2]);

    // Update: one, multi, and an upsert (as a kind-1 sequence, as drivers send).
    let updated = conn
        .command_with_sequence(
            doc! {"update": "items", "$db": "shop"},
            "updates",
            &[
                doc! {"q": {"_id": 1}, "u": {"$inc": {"qty": 1}}},
                doc! {"q": {"kind": "a"}, "u": {"$set": {"seen": true}}, "multi": true},
                doc! {"q": {"_id": 9}, "u": {"$set": {"qty": 90}}, "upsert": true},
            ],
        )
        .await;
    assert_ok(&updated);
    assert_eq!(updated.get_i32("n").ok(), Some(5));
    assert_eq!(updated.get_i32("nModified").ok(), Some(4));
    assert_eq!(
        updated.get_array("upserted").unwrap(),
        &vec![Bson::Document(doc! {"index": 2i64, "_id": 9})]
    );
    let nine = conn
        .command(doc! {"find": "items", "$db": "shop", "filter": {"_id": 9}})
        .await;
    assert_eq!(
        cursor(&nine).0[0].as_document().unwrap(),
        &doc! {"_id": 9, "qty": 90}
    );

    // A replacement with multi is refused per statement.
    let bad = conn
        .command(doc! {"update": "items", "$db": "shop", "updates": [{"q": {}, "u": {"x": 1}, "multi": true}]})
        .await;
    assert_ok(&bad);
    let errors = bad.get_array("writeErrors").unwrap();
    assert_eq!(
        errors[0].as_document().unwrap().get_i32("code").ok(),
        Some(9)
    );

    let count = conn
        .command(doc! {"count": "items", "$db": "shop", "query": {"seen": true}})
        .await;
    assert_eq!(count.get_i32("n").ok(), Some(3));
    let count = conn
        .command(doc! {"count": "items", "$db": "shop", "skip": 1, "limit": 2})
        .await;
    assert_eq!(count.get_i32("n").ok(), Some(2));

    let deleted = conn
        .command(doc! {"delete": "items", "$db": "shop", "deletes": [{"q": {"_id": 2, "kind": "a"}, "limit": 1}, {"q": {"qty": {"$gt": 25}}, "limit": 0}]})
        .await;
    assert_ok(&deleted);
    assert_eq!(deleted.get_i32("n").ok(), Some(3));
    let rest = conn.command(doc! {"count": "items", "$db": "shop"}).await;
    assert_eq!(rest.get_i32("n").ok(), Some(1));
    let bad_limit = conn
        .command(doc! {"delete": "items", "$db": "shop", "deletes": [{"q": {}, "limit": 5}]})
        .await;
    assert_eq!(
        bad_limit.get_array("writeErrors").unwrap()[0]
            .as_document()
            .unwrap()
            .get_i32("code")
            .ok(),
        Some(9)
    );

    // Query errors keep the engine's MongoDB codes.
    let bad_filter = conn
        .command(doc! {"find": "items", "$db": "shop", "filter": {"$bogus": 1}})
        .await;
    assert_eq!(code(&bad_filter), 2);
    assert_eq!(bad_filter.get_str("codeName").ok(), Some("BadValue"));

    // Reading a collection that does not exist finds nothing.
    let none = conn.command(doc! {"find": "nothing", "$db": "shop"}).await;
    assert!(cursor(&none).0.is_empty());
    assert_eq!(
        conn.command(doc! {"count": "nothing", "$db": "shop"})
            .await
            .get_i32("n")
            .ok(),
        Some(0)
    );
}

#[tokio::test]
async fn find_get_more_and_kill_cursors() {
    let server = start().await;
    let mut conn = Conn::open(&server).await;
    let docs: Vec<Document> = (0..25).map(|i| doc! {"_id": i}).collect();
    assert_ok(
        &conn
            .command_with_sequence(doc! {"insert": "c", "$db": "d"}, "documents", &docs)
            .await,
    );

    let first = conn
        .command(doc! {"find": "c", "$db": "d", "sort": {"_id": 1}, "batchSize": 10})
        .await;
    let (batch, id, _) = cursor(&first);
    assert_eq!(ints(batch, "_id"), (0..10).collect::<Vec<_>>());
    assert_ne!(id, 0);
    let mut seen = ints(batch, "_id");
    // getMore may come on another connection (drivers pool them).
    let mut other = Conn::open(&server).await;
    let more = other
        .command(doc! {"getMore": id, "collection": "c", "$db": "d", "batchSize": 10})
        .await;
    let (batch, next, _) = cursor(&more);
    assert_eq!((batch.len(), next), (10, id));
    seen.extend(ints(batch, "_id"));
    let last = conn
        .command(doc! {"getMore": id, "collection": "c", "$db": "d"})
        .await;
    let (batch, next, _) = cursor(&last);
    assert_eq!(next, 0);
    seen.extend(ints(batch, "_id"));
    assert_eq!(seen, (0..25).collect::<Vec<_>>());
    let gone = conn
        .command(doc! {"getMore": id, "collection": "c", "$db": "d"})
        .await;
    assert_eq!(code(&gone), 43);

    // Another namespace may not read the cursor.
    let first = conn
        .command(doc! {"find": "c", "$db": "d", "batchSize": 2})
        .await;
    let id = cursor(&first).1;
    let wrong = conn
        .command(doc! {"getMore": id, "collection": "other", "$db": "d"})
        .await;
    assert_eq!(code(&wrong), 13);
    let killed = conn
        .command(doc! {"killCursors": "c", "$db": "d", "cursors": [id, 12345i64]})
        .await;
    assert_ok(&killed);
    assert_eq!(
        killed.get_array("cursorsKilled").unwrap(),
        &vec![Bson::Int64(id)]
    );
    assert_eq!(
        killed.get_array("cursorsNotFound").unwrap(),
        &vec![Bson::Int64(12345)]
    );
    assert_eq!(
        code(
            &conn
                .command(doc! {"getMore": id, "collection": "c", "$db": "d"})
                .await
        ),
        43
    );

    // Negative limit and singleBatch close the cursor after one batch.
    let single = conn
        .command(doc! {"find": "c", "$db": "d", "limit": -3})
        .await;
    let (batch, id, _) = cursor(&single);
    assert_eq!((batch.len(), id), (3, 0));
    let single = conn
        .command(doc! {"find": "c", "$db": "d", "batchSize": 4, "singleBatch": true})
        .await;
    let (batch, id, _) = cursor(&single);
    assert_eq!((batch.len(), id), (4, 0));
    // A limit shorter than the results bounds what the cursor holds.
    let limited = conn
        .command(doc! {"find": "c", "$db": "d", "limit": 7, "batchSize": 5})
        .await;
    let id = cursor(&limited).1;
    let rest = conn
        .command(doc! {"getMore": id, "collection": "c", "$db": "d"})
        .await;
    let (batch, id, _) = cursor(&rest);
    assert_eq!((batch.len(), id), (2, 0));
    // Default first batch is 101 documents, as MongoDB's.
    let all = conn.command(doc! {"find": "c", "$db": "d"}).await;
    assert_eq!(cursor(&all).0.len(), 25);
    assert_eq!(
        code(
            &conn
                .command(doc! {"find": "c", "$db": "d", "batchSize": -1})
                .await
        ),
        2
    );
}

#[tokio::test]
async fn duplicate_keys_report_11000() {
    let server = start().await;
    let mut conn = Conn::open(&server).await;
    let ordered = conn
        .command(
            doc! {"insert": "c", "$db": "d", "documents": [{"_id": 1}, {"_id": 1}, {"_id": 2}]},
        )
        .await;
    assert_ok(&ordered);
    assert_eq!(ordered.get_i32("n").ok(), Some(1));
    let errors = ordered.get_array("writeErrors").unwrap();
    assert_eq!(errors.len(), 1);
    let error = errors[0].as_document().unwrap();
    assert_eq!(error.get_i32("code").ok(), Some(11000));
    assert_eq!(error.get_i64("index").ok(), Some(1));
    assert_eq!(error.get_document("keyValue").unwrap(), &doc! {"_id": 1});
    assert!(error
        .get_str("errmsg")
        .unwrap()
        .starts_with("E11000 duplicate key error"));

    let unordered = conn
        .command(doc! {"insert": "c", "$db": "d", "ordered": false, "documents": [{"_id": 1}, {"_id": 3}, {"_id": 3}, {"_id": 4}]})
        .await;
    assert_eq!(unordered.get_i32("n").ok(), Some(2));
    let indexes: Vec<i64> = unordered
        .get_array("writeErrors")
        .unwrap()
        .iter()
        .map(|e| e.as_document().unwrap().get_i64("index").unwrap())
        .collect();
    assert_eq!(indexes, vec![0, 2]);
    let count = conn.command(doc! {"count": "c", "$db": "d"}).await;
    assert_eq!(count.get_i32("n").ok(), Some(3));
    // Documents without _id get one, and stay distinct.
    let fresh = conn
        .command(doc! {"insert": "c", "$db": "d", "documents": [{"a": 1}, {"a": 1}]})
        .await;
    assert_eq!(fresh.get_i32("n").ok(), Some(2));
    let found = conn
        .command(doc! {"find": "c", "$db": "d", "filter": {"a": 1}})
        .await;
    let batch = cursor(&found).0;
    assert!(batch
        .iter()
        .all(|d| d.as_document().unwrap().get_object_id("_id").is_ok()));
}

#[tokio::test]
async fn databases_and_collections() {
    let server = start().await;
    let mut conn = Conn::open(&server).await;
    assert_ok(&conn.command(doc! {"create": "a", "$db": "one"}).await);
    assert_ok(&conn.command(doc! {"create": "b.sub", "$db": "one"}).await);
    assert_eq!(
        code(&conn.command(doc! {"create": "a", "$db": "one"}).await),
        48
    );
    assert_ok(
        &conn
            .command(doc! {"insert": "x", "$db": "two", "documents": [{"v": 1}]})
            .await,
    );
    assert_eq!(
        code(&conn.command(doc! {"create": "a$", "$db": "one"}).await),
        73
    );
    assert_eq!(
        code(&conn.command(doc! {"create": "a", "$db": "bad.db"}).await),
        73
    );

    let names = |reply: &Document| -> Vec<String> {
        let (batch, _, _) = cursor(reply);
        batch
            .iter()
            .map(|d| {
                d.as_document()
                    .unwrap()
                    .get_str("name")
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let listed = conn
        .command(doc! {"listCollections": 1, "$db": "one"})
        .await;
    assert_eq!(names(&listed), vec!["a", "b.sub"]);
    assert_eq!(cursor(&listed).2, "one.$cmd.listCollections");
    let listed = conn
        .command(doc! {"listCollections": 1, "$db": "one", "nameOnly": true, "filter": {"name": "b.sub"}})
        .await;
    assert_eq!(names(&listed), vec!["b.sub"]);
    assert_eq!(
        cursor(&listed).0[0].as_document().unwrap(),
        &doc! {"name": "b.sub", "type": "collection"}
    );

    let dbs = conn
        .command(doc! {"listDatabases": 1, "$db": "admin", "nameOnly": true})
        .await;
    assert_ok(&dbs);
    let db_names: Vec<&str> = dbs
        .get_array("databases")
        .unwrap()
        .iter()
        .map(|d| d.as_document().unwrap().get_str("name").unwrap())
        .collect();
    assert_eq!(db_names, vec!["one", "two"]);
    let full = conn
        .command(doc! {"listDatabases": 1, "$db": "admin"})
        .await;
    let first = full.get_array("databases").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(first.get_bool("empty").ok(), Some(true));
    assert!(full.get_i64("totalSize").is_ok());

    let dropped = conn.command(doc! {"drop": "a", "$db": "one"}).await;
    assert_ok(&dropped);
    assert_eq!(dropped.get_str("ns").ok(), Some("one.a"));
    // Dropping what does not exist is fine, as in MongoDB 7.0.
    assert_ok(&conn.command(doc! {"drop": "a", "$db": "one"}).await);
    assert_eq!(
        names(
            &conn
                .command(doc! {"listCollections": 1, "$db": "one"})
                .await
        ),
        vec!["b.sub"]
    );
    assert_ok(&conn.command(doc! {"dropDatabase": 1, "$db": "two"}).await);
    let dbs = conn
        .command(doc! {"listDatabases": 1, "$db": "admin", "nameOnly": true})
        .await;
    assert_eq!(dbs.get_array("databases").unwrap().len(), 1);
}

#[tokio::test]
async fn checksums_are_verified() {
    let server = start().await;
    let mut conn = Conn::open(&server).await;
    let id = conn.id();
    let message = op_msg(id, 1, &doc! {"ping": 1, "$db": "admin"}, None);
    assert_ok(&conn.exchange(id, &message).await);
    // One flipped bit in the body: refused with a typed error, and the
    // connection stays usable because the message was framed correctly.
    let id = conn.id();
    let mut corrupted = op_msg(id, 1, &doc! {"ping": 1, "$db": "admin"}, None);
    let at = corrupted.len() - 8;
    corrupted[at] ^= 0x10;
    let reply = conn.exchange(id, &corrupted).await;
    assert_eq!(code(&reply), 9);
    assert!(reply.get_str("errmsg").unwrap().contains("checksum"));
    assert_ok(&conn.command(doc! {"ping": 1, "$db": "admin"}).await);
}

#[tokio::test]
async fn more_to_come_gets_no_reply() {
    let server = start().await;
    let mut conn = Conn::open(&server).await;
    let id = conn.id();
    let silent = op_msg(
        id,
        2,
        &doc! {"insert": "c", "$db": "d", "documents": [{"_id": 1}]},
        None,
    );
    conn.stream.write_all(&silent).await.unwrap();
    // The next reply is the count's: nothing answered the insert.
    let count = conn.command(doc! {"count": "c", "$db": "d"}).await;
    assert_eq!(count.get_i32("n").ok(), Some(1));
}

#[tokio::test]
async fn oversized_and_malformed_messages() {
    let server = start().await;
    let mut good = Conn::open(&server).await;
    assert_ok(&good.command(doc! {"ping": 1, "$db": "admin"}).await);

    // A header announcing more than 48 MB: closed without a reply and
    // without the body ever being read.
    for length in [48_000_001i32, i32::MAX, -5, 3] {
        let mut bad = Conn::open(&server).await;
        let mut message = header(0, 1, OP_MSG);
        message[..4].copy_from_slice(&length.to_le_bytes());
        bad.stream.write_all(&message).await.unwrap();
        assert!(bad.read_message().await.is_none(), "length {length}");
    }

    // Garbage inside a well-framed message gets an error reply.
    let mut messy = Conn::open(&server).await;
    let mut message = header(16 + 4 + 1 + 5, 5, OP_MSG);
    message.extend_from_slice(&0u32.to_le_bytes());
    message.push(0);
    message.extend_from_slice(&[9, 0, 0, 0, 0]);
    assert_eq!(code(&messy.exchange(5, &message).await), 9);
    let mut message = header(16 + 4, 6, 2012);
    message.extend_from_slice(&[0; 4]);
    assert_eq!(code(&messy.exchange(6, &message).await), 9);
    assert_ok(&messy.command(doc! {"ping": 1, "$db": "admin"}).await);

    // The server kept serving everyone else.
    assert_ok(&good.command(doc! {"ping": 1, "$db": "admin"}).await);
    let mut late = Conn::open(&server).await;
    assert_ok(&late.command(doc! {"hello": 1, "$db": "admin"}).await);
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Arc::new(NodeService::new(
        NodeStore::open(dir.path()).expect("open store"),
    ));
    let client = Arc::new(Client::new(
        MasterKey::generate(),
        Local(node, Default::default()),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(fluence_mongo::serve(listener, client, async {
        let _ = stopped.await;
    }));
    let mut open = TcpStream::connect(addr).await.expect("connect");
    stop.send(()).expect("server running");
    let result = tokio::time::timeout(std::time::Duration::from_secs(10), served)
        .await
        .expect("serve returns after shutdown")
        .expect("serve task");
    assert!(result.is_ok());
    // Open connections were ended and the port no longer accepts.
    let mut buf = [0u8; 1];
    assert_eq!(open.read(&mut buf).await.unwrap_or(0), 0);
    assert!(TcpStream::connect(addr).await.is_err());
}
