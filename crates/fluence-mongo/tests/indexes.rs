//! createIndexes / listIndexes / dropIndexes and unique indexes over real
//! loopback sockets, answered from a real node and store (harness in
//! `common`).

mod common;

use bson::{doc, Bson, Document};
use common::*;

async fn seeded(server: &Server) -> Conn {
    let mut conn = Conn::open(server).await;
    let reply = conn
        .command(doc! {"insert": "people", "$db": "shop", "documents": [
            {"_id": 1, "age": 30, "email": "a@x", "bio": "likes coffee"},
            {"_id": 2, "age": 40, "email": "b@x", "bio": "drinks tea"},
            {"_id": 3, "age": 50, "email": "c@x", "bio": "coffee and tea"},
        ]})
        .await;
    assert_ok(&reply);
    conn
}

async fn create(conn: &mut Conn, collection: &str, indexes: Vec<Document>) -> Document {
    let indexes: Vec<Bson> = indexes.into_iter().map(Bson::Document).collect();
    conn.command(doc! {"createIndexes": collection, "$db": "shop", "indexes": indexes})
        .await
}

async fn listed(conn: &mut Conn, collection: &str) -> Vec<Document> {
    let reply = conn
        .command(doc! {"listIndexes": collection, "$db": "shop"})
        .await;
    cursor(&reply)
        .0
        .iter()
        .map(|d| d.as_document().unwrap().clone())
        .collect()
}

async fn names(conn: &mut Conn, collection: &str) -> Vec<String> {
    listed(conn, collection)
        .await
        .iter()
        .map(|d| d.get_str("name").unwrap().to_string())
        .collect()
}

async fn drop_indexes(conn: &mut Conn, index: Bson) -> Document {
    conn.command(doc! {"dropIndexes": "people", "$db": "shop", "index": index})
        .await
}

async fn find_ids(conn: &mut Conn, filter: Document, sort: Document) -> Vec<i32> {
    let reply = conn
        .command(doc! {"find": "people", "$db": "shop", "filter": filter, "sort": sort})
        .await;
    ints(cursor(&reply).0, "_id")
}

#[tokio::test]
async fn create_list_and_drop_map_onto_encrypted_indexes() {
    let server = start().await;
    let mut conn = seeded(&server).await;
    let reply = create(
        &mut conn,
        "people",
        vec![
            doc! {"key": {"age": 1}, "name": "age_1"},
            doc! {"key": {"email": "hashed"}, "name": "email_hashed"},
            doc! {"key": {"bio": "text"}, "name": "bio_text"},
        ],
    )
    .await;
    assert_ok(&reply);
    assert_eq!(reply.get_i32("numIndexesBefore").unwrap(), 1);
    assert_eq!(reply.get_i32("numIndexesAfter").unwrap(), 4);
    assert!(!reply.get_bool("createdCollectionAutomatically").unwrap());
    // A descending index on the same field shares the range index.
    let reply = create(
        &mut conn,
        "people",
        vec![doc! {"key": {"age": -1}, "name": "age_down"}],
    )
    .await;
    assert_eq!(reply.get_i32("numIndexesAfter").unwrap(), 5);
    let indexes = listed(&mut conn, "people").await;
    assert_eq!(
        indexes[..3],
        [
            doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"},
            doc! {"v": 2, "key": {"age": 1}, "name": "age_1"},
            doc! {"v": 2, "key": {"email": "hashed"}, "name": "email_hashed"},
        ]
    );
    assert_eq!(indexes[3].get_str("name").unwrap(), "bio_text");
    assert_eq!(
        indexes[3].get_document("key").unwrap(),
        &doc! {"_fts": "text", "_ftsx": 1}
    );
    assert_eq!(
        indexes[3].get_document("weights").unwrap(),
        &doc! {"bio": 1}
    );
    assert_eq!(
        indexes[4],
        doc! {"v": 2, "key": {"age": -1}, "name": "age_down"}
    );

    // The indexes were built over the documents already there.
    assert_eq!(
        find_ids(&mut conn, doc! {"age": {"$gte": 40}}, doc! {"age": -1}).await,
        [3, 2]
    );
    assert_eq!(
        find_ids(&mut conn, doc! {"email": "b@x"}, doc! {}).await,
        [2]
    );
    assert_eq!(
        find_ids(
            &mut conn,
            doc! {"$text": {"$search": "coffee"}},
            doc! {"_id": 1}
        )
        .await,
        [1, 3]
    );

    // Dropping one of two indexes sharing the range index keeps it.
    let reply = drop_indexes(&mut conn, "age_1".into()).await;
    assert_ok(&reply);
    assert_eq!(reply.get_i32("nIndexesWas").unwrap(), 5);
    assert_eq!(
        names(&mut conn, "people").await,
        ["_id_", "email_hashed", "bio_text", "age_down"]
    );
    assert_eq!(
        find_ids(&mut conn, doc! {"age": {"$lt": 45}}, doc! {"age": 1}).await,
        [1, 2]
    );
    // By key pattern, then a list of names.
    assert_ok(&drop_indexes(&mut conn, Bson::Document(doc! {"age": -1})).await);
    assert_ok(&drop_indexes(&mut conn, Bson::Array(vec!["email_hashed".into()])).await);
    assert_eq!(names(&mut conn, "people").await, ["_id_", "bio_text"]);
    // A $text search needs the text index; the others still answer.
    assert_eq!(
        find_ids(&mut conn, doc! {"email": "c@x"}, doc! {}).await,
        [3]
    );
    let reply = drop_indexes(&mut conn, "*".into()).await;
    assert_ok(&reply);
    assert_eq!(reply.get_i32("nIndexesWas").unwrap(), 2);
    assert_eq!(
        reply.get_str("msg").unwrap(),
        "non-_id indexes dropped for collection"
    );
    assert_eq!(names(&mut conn, "people").await, ["_id_"]);
    let reply = conn
        .command(doc! {"find": "people", "$db": "shop", "filter": {"$text": {"$search": "tea"}}})
        .await;
    assert!(!ok(&reply), "no text index is left: {reply}");
}

#[tokio::test]
async fn creating_follows_mongodb_rules() {
    let server = start().await;
    let mut conn = seeded(&server).await;
    assert_ok(
        &create(
            &mut conn,
            "people",
            vec![doc! {"key": {"age": 1}, "name": "age_1"}],
        )
        .await,
    );
    // The same index again, and the _id index: nothing to do.
    let reply = create(
        &mut conn,
        "people",
        vec![
            doc! {"key": {"age": 1}, "name": "age_1"},
            doc! {"key": {"_id": 1}, "name": "_id_"},
        ],
    )
    .await;
    assert_ok(&reply);
    assert_eq!(reply.get_str("note").unwrap(), "all indexes already exist");
    assert_eq!(
        (
            reply.get_i32("numIndexesBefore").unwrap(),
            reply.get_i32("numIndexesAfter").unwrap()
        ),
        (2, 2)
    );
    let cases = [
        (doc! {"key": {"email": 1}, "name": "age_1"}, 86),
        (doc! {"key": {"age": 1}, "name": "other"}, 85),
        // One encrypted range index on age, and it is not unique.
        (doc! {"key": {"age": -1}, "name": "u", "unique": true}, 85),
        (doc! {"key": {"a": 1, "b": 1}, "name": "ab"}, 67),
        (doc! {"key": {"a": 1}, "name": "a", "sparse": true}, 67),
        (
            doc! {"key": {"a": 1}, "name": "a", "partialFilterExpression": {"a": 1}},
            67,
        ),
        (
            doc! {"key": {"a": 1}, "name": "a", "expireAfterSeconds": 5},
            67,
        ),
        (
            doc! {"key": {"a": 1}, "name": "a", "collation": {"locale": "de"}},
            67,
        ),
        (doc! {"key": {"a": "2dsphere"}, "name": "a"}, 67),
        (doc! {"key": {"a": 1}, "name": "a", "frobnicate": true}, 197),
        (
            doc! {"key": {"h": "hashed"}, "name": "h", "unique": true},
            16764,
        ),
    ];
    for (spec, expected) in cases {
        let reply = create(&mut conn, "people", vec![spec.clone()]).await;
        assert_eq!(code(&reply), expected, "{spec}: {reply}");
    }
    // Errors name what is not supported.
    let reply = create(
        &mut conn,
        "people",
        vec![doc! {"key": {"a": 1}, "name": "a", "sparse": true}],
    )
    .await;
    assert!(
        reply.get_str("errmsg").unwrap().contains("sparse"),
        "{reply}"
    );
    // A refused request creates nothing, even its valid indexes.
    let reply = create(
        &mut conn,
        "people",
        vec![
            doc! {"key": {"b": 1}, "name": "b_1"},
            doc! {"key": {"c": 1, "d": 1}, "name": "cd"},
        ],
    )
    .await;
    assert_eq!(code(&reply), 67);
    assert_eq!(names(&mut conn, "people").await, ["_id_", "age_1"]);

    // Dropping: unknown names, the _id index, a missing collection.
    assert_eq!(code(&drop_indexes(&mut conn, "nope_1".into()).await), 27);
    assert_eq!(
        code(&drop_indexes(&mut conn, Bson::Document(doc! {"zz": 1})).await),
        27
    );
    assert_eq!(code(&drop_indexes(&mut conn, "_id_".into()).await), 72);
    assert_eq!(
        code(&drop_indexes(&mut conn, Bson::Document(doc! {"_id": 1})).await),
        72
    );
    let reply = conn
        .command(doc! {"dropIndexes": "nothing", "$db": "shop", "index": "*"})
        .await;
    assert_eq!(code(&reply), 26);
    assert_eq!(names(&mut conn, "people").await, ["_id_", "age_1"]);
}

#[tokio::test]
async fn create_indexes_creates_the_collection_and_names_live_in_the_catalog() {
    let server = start().await;
    let mut conn = Conn::open(&server).await;
    let reply = create(
        &mut conn,
        "fresh",
        vec![doc! {"key": {"n": 1}, "name": "by_n"}],
    )
    .await;
    assert_ok(&reply);
    assert!(reply.get_bool("createdCollectionAutomatically").unwrap());
    assert_eq!(reply.get_i32("numIndexesBefore").unwrap(), 1);
    assert_eq!(names(&mut conn, "fresh").await, ["_id_", "by_n"]);
    // The catalog is the gateway's: not listed, not reachable.
    let reply = conn
        .command(doc! {"listCollections": 1, "$db": "shop", "nameOnly": true})
        .await;
    let collections: Vec<&str> = cursor(&reply)
        .0
        .iter()
        .map(|c| c.as_document().unwrap().get_str("name").unwrap())
        .collect();
    assert_eq!(collections, ["fresh"]);
    let reply = conn
        .command(doc! {"find": "system.indexes", "$db": "shop"})
        .await;
    assert_eq!(code(&reply), 73);
    // collStats counts the indexes by name.
    let reply = conn
        .command(doc! {"collStats": "fresh", "$db": "shop"})
        .await;
    assert_eq!(reply.get_i32("nindexes").unwrap(), 2);
    assert!(reply
        .get_document("indexSizes")
        .unwrap()
        .contains_key("by_n"));

    // A dropped collection forgets its index names.
    let reply = conn.command(doc! {"drop": "fresh", "$db": "shop"}).await;
    assert_ok(&reply);
    assert_eq!(reply.get_i32("nIndexesWas").unwrap(), 2);
    assert_ok(
        &create(
            &mut conn,
            "fresh",
            vec![doc! {"key": {"n": 1}, "name": "n_1"}],
        )
        .await,
    );
    assert_eq!(names(&mut conn, "fresh").await, ["_id_", "n_1"]);
    // dropDatabase takes the catalog with it.
    assert_ok(&conn.command(doc! {"dropDatabase": 1, "$db": "shop"}).await);
    let reply = conn
        .command(doc! {"listDatabases": 1, "$db": "admin", "nameOnly": true})
        .await;
    assert!(reply.get_array("databases").unwrap().is_empty(), "{reply}");
}

#[tokio::test]
async fn unique_indexes_refuse_duplicates_with_11000() {
    let server = start().await;
    let mut conn = seeded(&server).await;
    let reply = create(
        &mut conn,
        "people",
        vec![doc! {"key": {"email": 1}, "name": "email_1", "unique": true}],
    )
    .await;
    assert_ok(&reply);
    let indexes = listed(&mut conn, "people").await;
    assert_eq!(
        indexes[1],
        doc! {"v": 2, "key": {"email": 1}, "name": "email_1", "unique": true}
    );

    // An insert: the write error names the index and the value.
    let reply = conn
        .command(doc! {"insert": "people", "$db": "shop", "ordered": false, "documents": [
            {"_id": 10, "email": "new@x"}, {"_id": 11, "email": "a@x"}, {"_id": 12, "email": "z@x"},
        ]})
        .await;
    assert_ok(&reply);
    assert_eq!(reply.get_i32("n").unwrap(), 2);
    let errors = reply.get_array("writeErrors").unwrap();
    assert_eq!(errors.len(), 1);
    let error = errors[0].as_document().unwrap();
    assert_eq!(error.get_i64("index").unwrap(), 1);
    assert_eq!(error.get_i32("code").unwrap(), 11000);
    assert_eq!(
        error.get_document("keyPattern").unwrap(),
        &doc! {"email": 1}
    );
    assert_eq!(
        error.get_document("keyValue").unwrap(),
        &doc! {"email": "a@x"}
    );
    assert!(error.get_str("errmsg").unwrap().contains("index: email_1"));

    // An update.
    let reply = conn
        .command(doc! {"update": "people", "$db": "shop", "updates": [
            {"q": {"_id": 2}, "u": {"$set": {"email": "c@x"}}},
        ]})
        .await;
    let error = reply.get_array("writeErrors").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(error.get_i32("code").unwrap(), 11000);
    assert_eq!(
        error.get_document("keyValue").unwrap(),
        &doc! {"email": "c@x"}
    );

    // findAndModify upserting a duplicate (MongoDB's unified CRUD test
    // "findOneAndUpdate DuplicateKey error is accessible").
    let reply = conn
        .command(
            doc! {"findAndModify": "people", "$db": "shop", "query": {"_id": 20},
            "update": {"$set": {"email": "a@x"}}, "upsert": true},
        )
        .await;
    assert_eq!(code(&reply), 11000);
    assert_eq!(
        reply.get_document("keyPattern").unwrap(),
        &doc! {"email": 1}
    );
    assert_eq!(
        reply.get_document("keyValue").unwrap(),
        &doc! {"email": "a@x"}
    );

    // Documents without the field are not indexed: any number may lack it.
    let reply = conn
        .command(doc! {"insert": "people", "$db": "shop", "documents": [{"_id": 30}, {"_id": 31}]})
        .await;
    assert_eq!(reply.get_i32("n").unwrap(), 2, "{reply}");
    let reply = conn
        .command(doc! {"count": "people", "$db": "shop", "query": {}})
        .await;
    assert_eq!(reply.get_i32("n").unwrap(), 7);
}

#[tokio::test]
async fn a_unique_index_over_duplicates_is_not_created() {
    let server = start().await;
    let mut conn = seeded(&server).await;
    assert_ok(
        &conn
            .command(doc! {"insert": "people", "$db": "shop", "documents": [{"_id": 4, "age": 30}]})
            .await,
    );
    let reply = create(
        &mut conn,
        "people",
        vec![doc! {"key": {"age": 1}, "name": "age_1", "unique": true}],
    )
    .await;
    assert_eq!(code(&reply), 11000, "{reply}");
    assert_eq!(reply.get_document("keyPattern").unwrap(), &doc! {"age": 1});
    assert_eq!(names(&mut conn, "people").await, ["_id_"]);
    // Without the duplicate it builds.
    assert_ok(
        &conn
            .command(doc! {"delete": "people", "$db": "shop", "deletes": [{"q": {"_id": 4}, "limit": 1}]})
            .await,
    );
    assert_ok(
        &create(
            &mut conn,
            "people",
            vec![doc! {"key": {"age": 1}, "name": "age_1", "unique": true}],
        )
        .await,
    );
    let reply = conn
        .command(doc! {"insert": "people", "$db": "shop", "documents": [{"_id": 5, "age": 50}]})
        .await;
    let errors = reply.get_array("writeErrors").unwrap();
    assert_eq!(
        errors[0].as_document().unwrap().get_i32("code").unwrap(),
        11000
    );
}
