//! aggregate, distinct, findAndModify and the newer update operators over
//! real loopback sockets, answered from a real node and store (harness in
//! `common`).

mod common;

use bson::{doc, Bson, Document};
use common::*;

/// A connection with `shop.items` holding five documents.
async fn seeded(server: &Server) -> Conn {
    let mut conn = Conn::open(server).await;
    let reply = conn
        .command(doc! {"insert": "items", "$db": "shop", "documents": [
            {"_id": 1, "kind": "fruit", "name": "apple", "qty": 5, "tags": ["red", "sweet"]},
            {"_id": 2, "kind": "fruit", "name": "lime", "qty": 2, "tags": ["green"]},
            {"_id": 3, "kind": "veg", "name": "kale", "qty": 7, "tags": []},
            {"_id": 4, "kind": "veg", "name": "leek", "qty": 1},
            {"_id": 5, "kind": "nut", "name": "pecan", "qty": 10, "tags": ["sweet"]},
        ]})
        .await;
    assert_ok(&reply);
    conn
}

fn docs(batch: &[Bson]) -> Vec<Document> {
    batch
        .iter()
        .map(|d| d.as_document().expect("document").clone())
        .collect()
}

#[tokio::test]
async fn aggregate_groups_sorts_and_pages() {
    let server = start().await;
    let mut conn = seeded(&server).await;
    let reply = conn
        .command(doc! {"aggregate": "items", "$db": "shop", "cursor": {}, "pipeline": [
            {"$match": {"qty": {"$gte": 2}}},
            {"$sort": {"_id": 1}},
            {"$group": {"_id": "$kind", "total": {"$sum": "$qty"}, "names": {"$push": "$name"}}},
            {"$sort": {"total": -1}},
        ]})
        .await;
    let (batch, id, ns) = cursor(&reply);
    assert_eq!((id, ns), (0, "shop.items"));
    assert_eq!(
        docs(batch),
        vec![
            doc! {"_id": "nut", "total": 10, "names": ["pecan"]},
            doc! {"_id": "fruit", "total": 7, "names": ["apple", "lime"]},
            doc! {"_id": "veg", "total": 7, "names": ["kale"]},
        ]
    );

    // countDocuments as drivers send it.
    let reply = conn
        .command(
            doc! {"aggregate": "items", "$db": "shop", "cursor": {}, "pipeline": [
                {"$match": {"kind": "fruit"}}, {"$skip": 0}, {"$limit": 10},
                {"$group": {"_id": 1, "n": {"$sum": 1}}},
            ]},
        )
        .await;
    assert_eq!(docs(cursor(&reply).0), vec![doc! {"_id": 1, "n": 2}]);

    // $unwind, $project with expressions, paged with cursor.batchSize.
    let reply = conn
        .command(
            doc! {"aggregate": "items", "$db": "shop", "cursor": {"batchSize": 2},
            "pipeline": [
                {"$sort": {"_id": 1}},
                {"$unwind": {"path": "$tags", "includeArrayIndex": "i"}},
                {"$project": {"_id": 0, "tag": {"$toUpper": "$tags"}, "i": 1,
                              "label": {"$concat": ["$name", ":", {"$toString": "$qty"}]}}},
            ]},
        )
        .await;
    let (first, id, _) = cursor(&reply);
    assert_eq!(first.len(), 2);
    assert_ne!(id, 0);
    assert_eq!(
        docs(first)[0],
        doc! {"i": 0i64, "tag": "RED", "label": "apple:5"}
    );
    let more = conn
        .command(doc! {"getMore": id, "collection": "items", "$db": "shop"})
        .await;
    let (rest, id, _) = cursor(&more);
    assert_eq!((rest.len(), id), (2, 0));

    // $count, and nothing at all from a collection that does not exist.
    let reply = conn
        .command(doc! {"aggregate": "items", "$db": "shop", "cursor": {},
        "pipeline": [{"$match": {"tags": "sweet"}}, {"$count": "sweet"}]})
        .await;
    assert_eq!(docs(cursor(&reply).0), vec![doc! {"sweet": 2}]);
    let reply = conn
        .command(doc! {"aggregate": "nothing", "$db": "shop", "cursor": {},
        "pipeline": [{"$count": "n"}]})
        .await;
    assert!(cursor(&reply).0.is_empty());
}

#[tokio::test]
async fn aggregate_errors_name_what_is_wrong() {
    let server = start().await;
    let mut conn = seeded(&server).await;
    let cases = [
        (
            doc! {"aggregate": "items", "$db": "shop", "pipeline": []},
            9,
        ),
        (
            doc! {"aggregate": "items", "$db": "shop", "cursor": {}},
            40414,
        ),
        (
            doc! {"aggregate": "items", "$db": "shop", "cursor": {}, "pipeline": [{"$foo": 1}]},
            40324,
        ),
        (
            doc! {"aggregate": "items", "$db": "shop", "cursor": {},
            "pipeline": [{"$lookup": {"from": "x"}}]},
            238,
        ),
        (
            doc! {"aggregate": "items", "$db": "shop", "cursor": {},
            "pipeline": [{"$project": {"x": {"$bogus": 1}}}]},
            168,
        ),
        (
            doc! {"aggregate": "items", "$db": "shop", "cursor": {}, "explain": true,
            "pipeline": []},
            238,
        ),
        (
            doc! {"aggregate": 1, "$db": "admin", "cursor": {},
            "pipeline": [{"$currentOp": {}}]},
            238,
        ),
        (
            doc! {"aggregate": "items", "$db": "shop", "cursor": {},
            "pipeline": [{"$project": {"n": {"$size": "$name"}}}]},
            17124,
        ),
    ];
    for (command, expected) in cases {
        let reply = conn.command(command.clone()).await;
        assert_eq!(code(&reply), expected, "{command}: {reply}");
        assert!(!reply.get_str("errmsg").unwrap().is_empty());
    }
    let reply = conn
        .command(doc! {"aggregate": "items", "$db": "shop", "cursor": {},
        "pipeline": [{"$project": {"x": {"$bogus": 1}}}]})
        .await;
    assert_eq!(
        reply.get_str("codeName").unwrap(),
        "InvalidPipelineOperator"
    );
    assert_eq!(
        reply.get_str("errmsg").unwrap(),
        "Unrecognized expression '$bogus'"
    );
}

#[tokio::test]
async fn distinct_with_and_without_query() {
    let server = start().await;
    let mut conn = seeded(&server).await;
    let reply = conn
        .command(doc! {"distinct": "items", "key": "kind", "$db": "shop"})
        .await;
    assert_ok(&reply);
    assert_eq!(
        reply.get_array("values").unwrap(),
        &vec![Bson::from("fruit"), Bson::from("nut"), Bson::from("veg")]
    );
    let reply = conn
        .command(
            doc! {"distinct": "items", "key": "tags", "query": {"qty": {"$gt": 1}},
            "$db": "shop"},
        )
        .await;
    assert_eq!(
        reply.get_array("values").unwrap(),
        &vec![Bson::from("green"), Bson::from("red"), Bson::from("sweet")]
    );
    let reply = conn
        .command(doc! {"distinct": "missing", "key": "a", "$db": "shop"})
        .await;
    assert!(reply.get_array("values").unwrap().is_empty());
    let reply = conn
        .command(doc! {"distinct": "items", "$db": "shop"})
        .await;
    assert_eq!(code(&reply), 40414);
}

#[tokio::test]
async fn find_and_modify_replies_as_drivers_parse_them() {
    let server = start().await;
    let mut conn = seeded(&server).await;
    // find_one_and_update with sort, returning the old document.
    let reply = conn
        .command(
            doc! {"findAndModify": "items", "$db": "shop", "query": {"kind": "fruit"},
            "sort": {"qty": -1}, "update": {"$inc": {"qty": 1}}},
        )
        .await;
    assert_ok(&reply);
    assert_eq!(
        reply.get_document("lastErrorObject").unwrap(),
        &doc! {"n": 1, "updatedExisting": true}
    );
    assert_eq!(
        reply.get_document("value").unwrap().get_i32("qty").unwrap(),
        5
    );

    // new: true with a projection.
    let reply = conn
        .command(
            doc! {"findAndModify": "items", "$db": "shop", "query": {"_id": 1},
            "update": {"$set": {"name": "Apple"}}, "new": true,
            "fields": {"name": 1, "qty": 1, "_id": 0}},
        )
        .await;
    assert_eq!(
        reply.get_document("value").unwrap(),
        &doc! {"name": "Apple", "qty": 6}
    );

    // Replacement keeps _id.
    let reply = conn
        .command(
            doc! {"findAndModify": "items", "$db": "shop", "query": {"_id": 4},
            "update": {"name": "leek", "kind": "veg", "qty": 3}, "new": true},
        )
        .await;
    assert_eq!(
        reply.get_document("value").unwrap(),
        &doc! {"_id": 4, "name": "leek", "kind": "veg", "qty": 3}
    );

    // Upsert: nothing matched, the new document is reported.
    let reply = conn
        .command(
            doc! {"findAndModify": "items", "$db": "shop", "query": {"_id": 9},
            "update": {"$setOnInsert": {"name": "fig"}}, "upsert": true,
            "new": true},
        )
        .await;
    assert_eq!(
        reply.get_document("lastErrorObject").unwrap(),
        &doc! {"n": 1, "updatedExisting": false, "upserted": 9}
    );
    assert_eq!(
        reply.get_document("value").unwrap(),
        &doc! {"_id": 9, "name": "fig"}
    );
    // Upsert without new: value null.
    let reply = conn
        .command(
            doc! {"findAndModify": "fresh", "$db": "shop", "query": {"_id": "a"},
            "update": {"$set": {"v": 1}}, "upsert": true},
        )
        .await;
    assert_ok(&reply);
    assert_eq!(reply.get("value"), Some(&Bson::Null));

    // Remove returns the removed document; nothing matched is null, n 0.
    let reply = conn
        .command(
            doc! {"findAndModify": "items", "$db": "shop", "query": {"kind": "nut"},
            "remove": true},
        )
        .await;
    assert_eq!(
        reply.get_document("lastErrorObject").unwrap(),
        &doc! {"n": 1}
    );
    assert_eq!(
        reply.get_document("value").unwrap().get_i32("_id").unwrap(),
        5
    );
    let reply = conn
        .command(
            doc! {"findAndModify": "items", "$db": "shop", "query": {"kind": "nut"},
            "remove": true},
        )
        .await;
    assert_eq!(
        reply.get_document("lastErrorObject").unwrap(),
        &doc! {"n": 0}
    );
    assert_eq!(reply.get("value"), Some(&Bson::Null));

    // The removal and updates are really stored.
    let reply = conn
        .command(doc! {"find": "items", "$db": "shop", "sort": {"_id": 1},
        "projection": {"qty": 1}})
        .await;
    assert_eq!(
        docs(cursor(&reply).0),
        vec![
            doc! {"_id": 1, "qty": 6},
            doc! {"_id": 2, "qty": 2},
            doc! {"_id": 3, "qty": 7},
            doc! {"_id": 4, "qty": 3},
            doc! {"_id": 9},
        ]
    );

    // Bad combinations, and an update that fails.
    for (command, expected) in [
        (
            doc! {"findAndModify": "items", "$db": "shop", "remove": true,
            "update": {"$set": {"a": 1}}},
            9,
        ),
        (doc! {"findAndModify": "items", "$db": "shop"}, 9),
        (
            doc! {"findAndModify": "items", "$db": "shop", "remove": true, "new": true},
            9,
        ),
        (
            doc! {"findAndModify": "items", "$db": "shop", "query": {"_id": 1},
            "update": {"$inc": {"name": 1}}},
            14,
        ),
        (
            doc! {"findAndModify": "items", "$db": "shop", "query": {"_id": 1},
            "update": {"$set": {"_id": 2}}},
            66,
        ),
    ] {
        let reply = conn.command(command.clone()).await;
        assert_eq!(code(&reply), expected, "{command}: {reply}");
    }
    // An upsert onto an existing _id is a duplicate key.
    let reply = conn
        .command(doc! {"findAndModify": "items", "$db": "shop",
        "query": {"_id": 1, "name": "nope"},
        "update": {"$set": {"v": 1}}, "upsert": true})
        .await;
    assert_eq!(code(&reply), 11000);
}

#[tokio::test]
async fn update_operators_through_the_wire() {
    let server = start().await;
    let mut conn = seeded(&server).await;
    let reply = conn
        .command(doc! {"update": "items", "$db": "shop", "updates": [
            {"q": {"_id": 1}, "u": {
                "$rename": {"name": "title"},
                "$min": {"qty": 3},
                "$max": {"best": 9},
                "$mul": {"price": 2},
                "$addToSet": {"tags": {"$each": ["red", "round"]}},
                "$setOnInsert": {"never": true},
            }},
            {"q": {"_id": 2}, "u": {"$pop": {"tags": 1}, "$bit": {"qty": {"or": 4}}}},
            {"q": {"_id": 3}, "u": {"$push": {"tags": {"$each": [3, 1, 2], "$sort": 1,
                                                       "$slice": 2}}}},
        ]})
        .await;
    assert_ok(&reply);
    assert_eq!(reply.get_i32("nModified").unwrap(), 3);
    let reply = conn
        .command(
            doc! {"find": "items", "$db": "shop", "filter": {"_id": {"$in": [1, 2, 3]}},
            "sort": {"_id": 1}},
        )
        .await;
    assert_eq!(
        docs(cursor(&reply).0),
        vec![
            doc! {"_id": 1, "kind": "fruit", "qty": 3, "tags": ["red", "sweet", "round"],
            "best": 9, "price": 0, "title": "apple"},
            doc! {"_id": 2, "kind": "fruit", "name": "lime", "qty": 6, "tags": []},
            doc! {"_id": 3, "kind": "veg", "name": "kale", "qty": 7, "tags": [1, 2]},
        ]
    );
    // MongoDB's errors, reported per statement.
    let reply = conn
        .command(
            doc! {"update": "items", "$db": "shop", "ordered": false, "updates": [
                {"q": {"_id": 1}, "u": {"$rename": {"a": "a.b"}}},
                {"q": {"_id": 1}, "u": {"$set": {"a": 1}, "$rename": {"a": "b"}}},
                {"q": {"_id": 1}, "u": {"$mul": {"qty": "x"}}},
            ]},
        )
        .await;
    assert_ok(&reply);
    let errors = reply.get_array("writeErrors").unwrap();
    let codes: Vec<i32> = errors
        .iter()
        .map(|e| e.as_document().unwrap().get_i32("code").unwrap())
        .collect();
    assert_eq!(codes, vec![2, 40, 14]);
}

#[tokio::test]
async fn type_filters_and_refused_write_shapes() {
    let server = start().await;
    let mut conn = seeded(&server).await;
    let reply = conn
        .command(doc! {"insert": "items", "$db": "shop", "documents": [{"_id": null, "v": 1}]})
        .await;
    assert_ok(&reply);
    let reply = conn
        .command(doc! {"find": "items", "$db": "shop", "filter": {"_id": {"$type": "null"}}})
        .await;
    assert_eq!(docs(cursor(&reply).0), vec![doc! {"_id": null, "v": 1}]);
    let reply = conn
        .command(doc! {"count": "items", "$db": "shop", "query": {"tags": {"$type": "array"}}})
        .await;
    assert_eq!(reply.get_i32("n").unwrap(), 4);
    // MongoDB 7.0 has no sort in update statements.
    let reply = conn
        .command(doc! {"update": "items", "$db": "shop", "updates": [
            {"q": {}, "u": {"$set": {"x": 1}}, "sort": {"_id": 1}},
        ]})
        .await;
    assert_eq!(code(&reply), 40415);
    // An _id with $-prefixed fields cannot be stored.
    let reply = conn
        .command(doc! {"insert": "items", "$db": "shop", "documents": [{"_id": {"$a": 1}}]})
        .await;
    assert_eq!(code(&reply), 52);
}
