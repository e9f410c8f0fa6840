//! Indexes added and dropped on datasets that hold documents, unique
//! indexes, and writers whose cached index declarations went stale.

mod common;

use bson::{doc, Bson, Document};
use fluence_client::dataset::Dataset;
use fluence_client::descriptor::{Descriptor, IndexSpec};
use fluence_client::query::{IndexKindSpec, IndexPlan};
use fluence_client::{Client, ClientError, FindOptions, Transport};
use fluence_crypto::keys::MasterKey;
use fluence_proto::{Request, Response};

use common::{runtime, Harness, Local};

const KEY: [u8; 32] = [0x1d; 32];

fn harness() -> Harness {
    Harness::with_key(tempfile::tempdir().unwrap(), MasterKey::from_bytes(KEY))
}

fn unique(path: &str, kind: IndexKindSpec) -> IndexSpec {
    IndexSpec {
        unique: true,
        ..IndexSpec::new(path, kind)
    }
}

fn people(range: std::ops::Range<i32>) -> Vec<Document> {
    range
        .map(|n| doc! {"_id": n, "n": n, "email": format!("p{}@example.org", n % 50)})
        .collect()
}

async fn find(client: &Client<Local>, filter: Document) -> Vec<Document> {
    client
        .find(
            "people",
            FindOptions {
                filter,
                sort: Some(doc! {"_id": 1}),
                ..Default::default()
            },
        )
        .await
        .unwrap()
}

/// How many documents the node itself selects for `plan` over the
/// dataset's current built indexes: shows an index is really populated
/// (the gateway's exact evaluation would hide a missing one).
async fn node_selects(harness: &Harness, plan: IndexPlan) -> usize {
    let view = harness.client.describe("people").await.unwrap();
    let descriptor = Descriptor::with_pending("people", view.indexes, view.building).unwrap();
    let dataset = Dataset::new(&MasterKey::from_bytes(KEY), descriptor);
    let request = Request::Find {
        dataset: dataset.id,
        schema: dataset.schema(),
        plan: dataset.lower(&plan),
        after: None,
        page_docs_max: 10_000,
    };
    match Local(harness.node.clone()).call(&request).await.unwrap() {
        Response::Page { docs, next: None } => docs.len(),
        other => panic!("unexpected answer {other:?}"),
    }
}

fn range_n(low: i32, high: i32) -> IndexPlan {
    IndexPlan::Range {
        path: "n".into(),
        lower: Some((Bson::Int32(low), true)),
        upper: Some((Bson::Int32(high), false)),
    }
}

#[test]
fn indexes_added_to_a_populated_dataset_are_built_and_used() {
    let rt = runtime();
    let h = harness();
    rt.block_on(async {
        h.client.create_dataset("people", vec![]).await.unwrap();
        h.client.insert("people", people(0..300)).await.unwrap();
        let view = h
            .client
            .create_indexes(
                "people",
                vec![
                    IndexSpec::new("n", IndexKindSpec::Range),
                    IndexSpec::new("email", IndexKindSpec::Eq),
                ],
            )
            .await
            .unwrap();
        assert_eq!(view.indexes.len(), 2);
        assert!(view.building.is_empty());
        assert_eq!(view.doc_count, 300);
        // The node's own selection is exact for these plans (range bounds
        // go to the node inclusive): the indexes hold every older document.
        assert_eq!(node_selects(&h, range_n(100, 110)).await, 11);
        let eq = IndexPlan::Eq {
            path: "email".into(),
            values: vec![Bson::String("p7@example.org".into())],
        };
        assert_eq!(node_selects(&h, eq).await, 6);
        let found = find(&h.client, doc! {"n": {"$gte": 100, "$lt": 103}}).await;
        assert_eq!(found, people(100..103));
        // Creating the same index again changes nothing; the same field
        // and kind with other options is a conflict.
        let before = h.client.describe("people").await.unwrap();
        let again = h
            .client
            .create_indexes("people", vec![IndexSpec::new("n", IndexKindSpec::Range)])
            .await
            .unwrap();
        assert_eq!(again.seq, before.seq);
        let conflict = h
            .client
            .create_indexes("people", vec![unique("n", IndexKindSpec::Range)])
            .await;
        assert!(
            matches!(conflict, Err(ClientError::IndexConflict(_))),
            "{conflict:?}"
        );
    });
}

#[test]
fn a_unique_index_over_duplicates_is_not_created_and_the_rest_keeps_working() {
    let rt = runtime();
    let h = harness();
    rt.block_on(async {
        h.client
            .create_dataset("people", vec![IndexSpec::new("email", IndexKindSpec::Eq)])
            .await
            .unwrap();
        // Emails repeat every 50 documents.
        h.client.insert("people", people(0..120)).await.unwrap();
        let refused = h
            .client
            .create_indexes(
                "people",
                vec![
                    unique("email", IndexKindSpec::Range),
                    IndexSpec::new("n", IndexKindSpec::Range),
                ],
            )
            .await;
        match refused {
            Err(ClientError::UniqueViolation { path, .. }) => assert_eq!(path, "email"),
            other => panic!("expected a unique violation, got {other:?}"),
        }
        let view = h.client.describe("people").await.unwrap();
        assert_eq!(
            view.indexes,
            vec![IndexSpec::new("email", IndexKindSpec::Eq)]
        );
        assert!(view.building.is_empty());
        // The eq index was briefly made unique (merged with the unique
        // range index's check) and rebuilt afterwards: it is complete.
        let eq = IndexPlan::Eq {
            path: "email".into(),
            values: vec![Bson::String("p3@example.org".into())],
        };
        assert_eq!(node_selects(&h, eq).await, 3);
        h.client.insert("people", people(500..501)).await.unwrap();
        assert_eq!(h.client.count("people", &doc! {}).await.unwrap(), 121);
    });
}

#[test]
fn unique_indexes_refuse_duplicates_on_insert_update_and_upsert() {
    let rt = runtime();
    let h = harness();
    rt.block_on(async {
        h.client
            .create_dataset(
                "people",
                vec![
                    unique("email", IndexKindSpec::Eq),
                    unique("handle", IndexKindSpec::Range),
                ],
            )
            .await
            .unwrap();
        let docs = vec![
            doc! {"_id": 1, "email": "a@x", "handle": "same-long-prefix-one"},
            // Shares a 14-byte prefix with the first handle, which ORE
            // alone could not tell apart; uniqueness is exact.
            doc! {"_id": 2, "email": "b@x", "handle": "same-long-prefix-two"},
            doc! {"_id": 3, "email": "a@x", "handle": "other"},
            doc! {"_id": 4, "email": "d@x", "handle": "later"},
        ];
        match h.client.insert("people", docs).await {
            Err(ClientError::UniqueViolation { path, inserted }) => {
                assert_eq!((path.as_str(), inserted), ("email", 2));
            }
            other => panic!("expected a unique violation, got {other:?}"),
        }
        assert_eq!(h.client.count("people", &doc! {}).await.unwrap(), 2);
        // 1 and 1.0 are one value to MongoDB's unique indexes, and here.
        h.client
            .insert("people", vec![doc! {"_id": 5, "email": 1, "handle": "h5"}])
            .await
            .unwrap();
        let float = h
            .client
            .insert(
                "people",
                vec![doc! {"_id": 6, "email": 1.0, "handle": "h6"}],
            )
            .await;
        assert!(
            matches!(float, Err(ClientError::UniqueViolation { .. })),
            "{float:?}"
        );

        let update = h
            .client
            .update(
                "people",
                &doc! {"_id": 2},
                &doc! {"$set": {"handle": "same-long-prefix-one"}},
                false,
                false,
            )
            .await;
        match update {
            Err(ClientError::UniqueViolation { path, .. }) => assert_eq!(path, "handle"),
            other => panic!("expected a unique violation, got {other:?}"),
        }
        let upsert = h
            .client
            .update(
                "people",
                &doc! {"_id": 9},
                &doc! {"$set": {"email": "b@x"}},
                false,
                true,
            )
            .await;
        assert!(
            matches!(upsert, Err(ClientError::UniqueViolation { .. })),
            "{upsert:?}"
        );
        // Moving a value away frees it.
        h.client
            .update(
                "people",
                &doc! {"_id": 1},
                &doc! {"$set": {"email": "z@x"}},
                false,
                false,
            )
            .await
            .unwrap();
        h.client
            .insert(
                "people",
                vec![doc! {"_id": 3, "email": "a@x", "handle": "other"}],
            )
            .await
            .unwrap();
        assert_eq!(h.client.count("people", &doc! {}).await.unwrap(), 4);
    });
}

#[test]
fn a_writer_with_stale_indexes_is_brought_up_to_date() {
    let rt = runtime();
    let h = harness();
    let other = Client::new(MasterKey::from_bytes(KEY), Local(h.node.clone()));
    rt.block_on(async {
        h.client.create_dataset("people", vec![]).await.unwrap();
        h.client.insert("people", people(0..20)).await.unwrap();
        // `other` caches the dataset without indexes...
        assert_eq!(other.count("people", &doc! {}).await.unwrap(), 20);
        // ...then the first client adds one.
        h.client
            .create_indexes("people", vec![IndexSpec::new("n", IndexKindSpec::Range)])
            .await
            .unwrap();
        // The stale writer's batch is refused by the node and redone with
        // the new declarations: the new documents are in the index.
        other.insert("people", people(20..40)).await.unwrap();
        other
            .update(
                "people",
                &doc! {"_id": 3},
                &doc! {"$set": {"n": 33}},
                false,
                false,
            )
            .await
            .unwrap();
        assert_eq!(node_selects(&h, range_n(30, 39)).await, 11);
        assert_eq!(
            other
                .count("people", &doc! {"n": {"$gte": 30}})
                .await
                .unwrap(),
            11
        );

        // A reader that planned with a dropped index is refused and
        // replans: no answer silently misses documents.
        other.count("people", &doc! {"n": 5}).await.unwrap();
        h.client
            .drop_indexes("people", vec![IndexSpec::new("n", IndexKindSpec::Range)])
            .await
            .unwrap();
        assert_eq!(
            other
                .count("people", &doc! {"n": {"$lt": 10}})
                .await
                .unwrap(),
            9
        );
    });
}

#[test]
fn dropping_indexes_names_what_is_missing() {
    let rt = runtime();
    let h = harness();
    rt.block_on(async {
        h.client
            .create_dataset(
                "people",
                vec![
                    IndexSpec::new("n", IndexKindSpec::Range),
                    IndexSpec::new("email", IndexKindSpec::Eq),
                ],
            )
            .await
            .unwrap();
        h.client.insert("people", people(0..60)).await.unwrap();
        let missing = h
            .client
            .drop_indexes("people", vec![IndexSpec::new("n", IndexKindSpec::Eq)])
            .await;
        assert!(
            matches!(missing, Err(ClientError::IndexNotFound(_))),
            "{missing:?}"
        );
        let view = h
            .client
            .drop_indexes("people", vec![IndexSpec::new("n", IndexKindSpec::Range)])
            .await
            .unwrap();
        assert_eq!(
            view.indexes,
            vec![IndexSpec::new("email", IndexKindSpec::Eq)]
        );
        assert_eq!(find(&h.client, doc! {"n": {"$lt": 2}}).await, people(0..2));
    });
}
