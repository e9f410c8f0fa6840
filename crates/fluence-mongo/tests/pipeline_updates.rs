//! Pipeline-style updates (`u: [stages]`) in `update` and `findAndModify`
//! over real loopback sockets, answered from a real node and store
//! (harness in `common`).

mod common;

use bson::{doc, Document};
use common::*;

async fn seeded(server: &Server) -> Conn {
    let mut conn = Conn::open(server).await;
    let reply = conn
        .command(doc! {"insert": "test", "$db": "crud", "documents": [
            {"_id": 1, "x": 1, "y": 1, "t": {"u": {"v": 1}}},
            {"_id": 2, "x": 2, "y": 1},
        ]})
        .await;
    assert_ok(&reply);
    conn
}

async fn all(conn: &mut Conn) -> Vec<Document> {
    let reply = conn
        .command(doc! {"find": "test", "$db": "crud", "sort": {"_id": 1}})
        .await;
    cursor(&reply)
        .0
        .iter()
        .map(|d| d.as_document().unwrap().clone())
        .collect()
}

#[tokio::test]
async fn update_many_and_one_with_pipelines() {
    let server = start().await;
    let mut conn = seeded(&server).await;
    let reply = conn
        .command(doc! {"update": "test", "$db": "crud", "updates": [
            {"q": {}, "u": [{"$project": {"x": 1}}, {"$addFields": {"foo": 1}}], "multi": true},
        ]})
        .await;
    assert_ok(&reply);
    assert_eq!(
        (
            reply.get_i32("n").unwrap(),
            reply.get_i32("nModified").unwrap()
        ),
        (2, 2)
    );
    assert_eq!(
        all(&mut conn).await,
        [
            doc! {"_id": 1, "x": 1, "foo": 1},
            doc! {"_id": 2, "x": 2, "foo": 1}
        ]
    );

    let server = start().await;
    let mut conn = seeded(&server).await;
    let reply = conn
        .command(doc! {"update": "test", "$db": "crud", "updates": [
            {"q": {"_id": 1}, "u": [{"$replaceRoot": {"newRoot": "$t"}}, {"$addFields": {"foo": 1}}]},
        ]})
        .await;
    assert_eq!(reply.get_i32("nModified").unwrap(), 1, "{reply}");
    assert_eq!(
        all(&mut conn).await,
        [
            doc! {"_id": 1, "u": {"v": 1}, "foo": 1},
            doc! {"_id": 2, "x": 2, "y": 1}
        ]
    );
    // Expressions read the document being updated; $unset removes.
    let reply = conn
        .command(doc! {"update": "test", "$db": "crud", "updates": [
            {"q": {"_id": 2}, "u": [{"$set": {"sum": {"$add": ["$x", "$y"]}}}, {"$unset": "y"}]},
        ]})
        .await;
    assert_ok(&reply);
    assert_eq!(all(&mut conn).await[1], doc! {"_id": 2, "x": 2, "sum": 3});
    // Nothing changes: matched, not modified.
    let reply = conn
        .command(doc! {"update": "test", "$db": "crud", "updates": [
            {"q": {"_id": 2}, "u": [{"$set": {"x": 2}}]},
        ]})
        .await;
    assert_eq!(
        (
            reply.get_i32("n").unwrap(),
            reply.get_i32("nModified").unwrap()
        ),
        (1, 0)
    );
}

#[tokio::test]
async fn pipelines_upsert_and_write_dotted_and_dollar_fields() {
    let server = start().await;
    let mut conn = seeded(&server).await;
    let reply = conn
        .command(doc! {"update": "test", "$db": "crud", "updates": [
            {"q": {"_id": 3, "k": "a"}, "u": [{"$set": {"k2": {"$concat": ["$k", "b"]}}}], "upsert": true},
        ]})
        .await;
    assert_ok(&reply);
    assert_eq!(reply.get_array("upserted").unwrap().len(), 1);
    assert_eq!(
        all(&mut conn).await[2],
        doc! {"_id": 3, "k": "a", "k2": "ab"}
    );
    // $setField writes names a field path cannot (MongoDB 5.0+).
    let reply = conn
        .command(doc! {"update": "test", "$db": "crud", "updates": [
            {"q": {"_id": 3}, "u": [{"$replaceWith": {"$setField": {
                "field": {"$literal": "$a"}, "value": 1, "input": "$$ROOT"}}}]},
            {"q": {"_id": 3}, "u": [{"$set": {"foo": {"$setField": {
                "field": {"$literal": "a.b"}, "value": 2, "input": {}}}}}]},
        ]})
        .await;
    assert_eq!(reply.get_i32("nModified").unwrap(), 2, "{reply}");
    assert_eq!(
        all(&mut conn).await[2],
        doc! {"_id": 3, "k": "a", "k2": "ab", "$a": 1, "foo": {"a.b": 2}}
    );
}

#[tokio::test]
async fn find_and_modify_with_a_pipeline() {
    let server = start().await;
    let mut conn = seeded(&server).await;
    let reply = conn
        .command(
            doc! {"findAndModify": "test", "$db": "crud", "query": {"_id": 1},
            "update": [{"$project": {"x": 1}}, {"$addFields": {"foo": 1}}], "new": true},
        )
        .await;
    assert_ok(&reply);
    assert_eq!(
        reply.get_document("value").unwrap(),
        &doc! {"_id": 1, "x": 1, "foo": 1}
    );
    let reply = conn
        .command(
            doc! {"findAndModify": "test", "$db": "crud", "query": {"_id": 9},
            "update": [{"$set": {"n": 1}}], "upsert": true, "new": true},
        )
        .await;
    assert_eq!(
        reply.get_document("value").unwrap(),
        &doc! {"_id": 9, "n": 1}
    );
}

#[tokio::test]
async fn pipeline_errors_are_mongodbs() {
    let server = start().await;
    let mut conn = seeded(&server).await;
    let update = |u: bson::Bson| doc! {"update": "test", "$db": "crud", "updates": [{"q": {"_id": 1}, "u": u}]};
    let write_code = |reply: &Document| {
        reply.get_array("writeErrors").expect("writeErrors")[0]
            .as_document()
            .unwrap()
            .get_i32("code")
            .unwrap()
    };
    let reply = conn
        .command(update(bson::bson!([{"$match": {"x": 1}}])))
        .await;
    assert_eq!(write_code(&reply), 72, "{reply}");
    let reply = conn
        .command(update(bson::bson!([{"$set": {"_id": 5}}])))
        .await;
    assert_eq!(write_code(&reply), 66, "{reply}");
    let reply = conn
        .command(update(bson::bson!([{"$replaceWith": "$x"}])))
        .await;
    assert_eq!(write_code(&reply), 40228, "{reply}");
    let reply = conn
        .command(
            doc! {"findAndModify": "test", "$db": "crud", "query": {"_id": 1},
            "update": [{"$group": {"_id": 1}}]},
        )
        .await;
    assert_eq!(code(&reply), 72);
    // Variables are not supported, and say so.
    let reply = conn
        .command(doc! {"update": "test", "$db": "crud", "let": {"x": 1},
        "updates": [{"q": {"_id": 1}, "u": [{"$set": {"x": "$$x"}}]}]})
        .await;
    assert_eq!(code(&reply), 238);
    assert!(
        reply.get_str("errmsg").unwrap().contains("'let'"),
        "{reply}"
    );
    let reply = conn
        .command(doc! {"update": "test", "$db": "crud",
        "updates": [{"q": {"_id": 1}, "u": [{"$set": {"x": "$$x"}}], "c": {"x": 1}}]})
        .await;
    assert_eq!(write_code(&reply), 238);
    let reply = conn
        .command(
            doc! {"findAndModify": "test", "$db": "crud", "query": {"_id": 1}, "let": {"x": 1},
            "update": [{"$set": {"x": "$$x"}}]},
        )
        .await;
    assert_eq!(code(&reply), 238);
    // Nothing was written by the refused updates.
    assert_eq!(
        all(&mut conn).await[0],
        doc! {"_id": 1, "x": 1, "y": 1, "t": {"u": {"v": 1}}}
    );
}
