//! The handshake-adjacent and administrative commands `mongosh`, pymongo
//! and tools send on connect and from common helpers, over real loopback
//! sockets.

mod common;

use bson::{doc, Bson};
use common::*;

#[tokio::test]
async fn what_mongosh_sends_on_connect() {
    let server = start().await;
    let mut conn = Conn::open(&server).await;
    // getLog startupWarnings: no warnings.
    let reply = conn
        .command(doc! {"getLog": "startupWarnings", "$db": "admin"})
        .await;
    assert_ok(&reply);
    assert!(reply.get_array("log").unwrap().is_empty());
    let reply = conn.command(doc! {"getLog": "*", "$db": "admin"}).await;
    assert!(reply
        .get_array("names")
        .unwrap()
        .contains(&Bson::from("global")));
    assert_eq!(
        code(&conn.command(doc! {"getLog": "nope", "$db": "admin"}).await),
        2
    );
    // atlasVersion is unknown, with the command named.
    let reply = conn.command(doc! {"atlasVersion": 1, "$db": "admin"}).await;
    assert_eq!(code(&reply), 59);
    assert_eq!(reply.get_str("codeName").unwrap(), "CommandNotFound");
    assert_eq!(
        reply.get_str("errmsg").unwrap(),
        "no such command: 'atlasVersion'"
    );
    // getParameter for an unknown parameter fails; fcv is answered.
    assert_eq!(
        code(
            &conn
                .command(doc! {"getParameter": "foo", "$db": "admin"})
                .await
        ),
        72
    );
    // countDocuments on admin.atlascli: an aggregate over nothing.
    let reply = conn
        .command(
            doc! {"aggregate": "atlascli", "$db": "admin", "cursor": {}, "pipeline": [
                {"$match": {"managedClusterType": "atlasCliLocalDevCluster"}},
                {"$group": {"_id": 1, "n": {"$sum": 1}}},
            ]},
        )
        .await;
    assert!(cursor(&reply).0.is_empty());
    let reply = conn.command(doc! {"hostInfo": 1, "$db": "admin"}).await;
    assert_ok(&reply);
    assert!(
        reply
            .get_document("system")
            .unwrap()
            .get_i32("numCores")
            .unwrap()
            >= 1
    );
    let reply = conn
        .command(doc! {"getCmdLineOpts": 1, "$db": "admin"})
        .await;
    assert_ok(&reply);
    assert!(reply.get_array("argv").is_ok());
    let reply = conn.command(doc! {"whatsmyuri": 1, "$db": "admin"}).await;
    let local = conn.stream.local_addr().unwrap().to_string();
    assert_eq!(reply.get_str("you").unwrap(), local);
    let reply = conn
        .command(doc! {"getFreeMonitoringStatus": 1, "$db": "admin"})
        .await;
    assert_eq!(reply.get_str("state").unwrap(), "disabled");
}

#[tokio::test]
async fn server_status_list_commands_and_stats() {
    let server = start().await;
    let mut conn = Conn::open(&server).await;
    let mut second = Conn::open(&server).await;
    assert_ok(&second.command(doc! {"ping": 1, "$db": "admin"}).await);
    let reply = conn.command(doc! {"serverStatus": 1, "$db": "admin"}).await;
    assert_ok(&reply);
    let connections = reply.get_document("connections").unwrap();
    assert_eq!(connections.get_i64("current").unwrap(), 2);
    assert!(connections.get_i64("totalCreated").unwrap() >= 2);
    assert_eq!(reply.get_str("process").unwrap(), "fluence");

    let reply = conn.command(doc! {"listCommands": 1, "$db": "admin"}).await;
    let commands = reply.get_document("commands").unwrap();
    for name in [
        "find",
        "aggregate",
        "findAndModify",
        "saslStart",
        "distinct",
    ] {
        assert!(commands.contains_key(name), "{name}");
    }
    assert!(commands
        .get_document("find")
        .unwrap()
        .get_bool("requiresAuth")
        .unwrap());

    assert_ok(
        &conn
            .command(doc! {"insert": "a", "documents": [{"x": 1}, {"x": 2}], "$db": "shop"})
            .await,
    );
    assert_ok(
        &conn
            .command(doc! {"insert": "b", "documents": [{"x": 1}], "$db": "shop"})
            .await,
    );
    let reply = conn.command(doc! {"dbStats": 1, "$db": "shop"}).await;
    assert_ok(&reply);
    assert_eq!(reply.get_i64("collections").unwrap(), 2);
    assert_eq!(reply.get_i64("objects").unwrap(), 3);
    assert_eq!(reply.get_str("db").unwrap(), "shop");
    let reply = conn.command(doc! {"collStats": "a", "$db": "shop"}).await;
    assert_ok(&reply);
    assert_eq!(reply.get_i64("count").unwrap(), 2);
    assert_eq!(reply.get_str("ns").unwrap(), "shop.a");
    assert_eq!(
        code(&conn.command(doc! {"collStats": "zzz", "$db": "shop"}).await),
        26
    );
    // Every collection lists its _id index; a missing one is an error.
    let reply = conn.command(doc! {"listIndexes": "a", "$db": "shop"}).await;
    let (indexes, id, ns) = cursor(&reply);
    assert_eq!((id, ns), (0, "shop.a"));
    assert_eq!(
        indexes,
        &vec![Bson::Document(
            doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"}
        )]
    );
    assert_eq!(
        code(
            &conn
                .command(doc! {"listIndexes": "zzz", "$db": "shop"})
                .await
        ),
        26
    );
    // Unknown commands are named.
    let reply = conn.command(doc! {"fsync": 1, "$db": "admin"}).await;
    assert_eq!(code(&reply), 59);
    assert!(reply.get_str("errmsg").unwrap().contains("'fsync'"));
}
