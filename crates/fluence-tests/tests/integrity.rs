//! Bad input reaching the node or its disk: forged, swapped and replayed
//! ciphertexts on disk, writes signed by the wrong key, replays, garbage
//! requests. Each gets a clear error; the node keeps serving; nothing that
//! was acknowledged is lost.

mod common;

use bson::{doc, Bson};
use fluence_client::dataset::Dataset;
use fluence_client::descriptor::{Descriptor, IndexSpec};
use fluence_client::query::IndexKindSpec;
use fluence_client::{ClientError, FindOptions, Transport};
use fluence_crypto::keys::MasterKey;
use fluence_proto::{
    Action, DatasetId, Decode, DocOp, Encode, NodeError, Precondition, PublicKey, Request,
    Response, SealedDoc, Signature, SignedWrite, WriteBody, WRITE_SIGNING_DOMAIN,
};
use fluence_store::layout;
use redb::{ReadableDatabase, ReadableTable};

use common::{runtime, Harness, Local};

const KEY: [u8; 32] = [7; 32];

fn indexes() -> Vec<IndexSpec> {
    vec![IndexSpec::new("n", IndexKindSpec::Range)]
}

fn dataset() -> Dataset {
    Dataset::new(
        &MasterKey::from_bytes(KEY),
        Descriptor::new("t", indexes()).unwrap(),
    )
}

fn dataset_file(dir: &std::path::Path, id: &DatasetId) -> std::path::PathBuf {
    dir.join("datasets").join(format!("{}.redb", id.to_hex()))
}

/// Rewrites the stored sealed document of `_id`.
fn rewrite_doc(dir: &std::path::Path, id: &Bson, change: impl FnOnce(SealedDoc) -> SealedDoc) {
    let dataset = dataset();
    let doc_id = dataset.doc_id(id);
    let db = redb::Database::open(dataset_file(dir, &dataset.id)).unwrap();
    let txn = db.begin_write().unwrap();
    {
        // Documents are stored by row id; `ids` maps the doc id to it.
        let ids = txn.open_table(layout::IDS).unwrap();
        let key = layout::row_key(layout::row_of(&ids, &doc_id).unwrap().unwrap());
        let mut docs = txn.open_table(layout::DOCS).unwrap();
        let record = docs.get(&key[..]).unwrap().unwrap().value().to_vec();
        let (_, sealed) = layout::split_doc_record(&record).unwrap();
        let new = change(SealedDoc::from_bytes(sealed).unwrap());
        let record = layout::doc_record(&doc_id, &new.to_bytes());
        docs.insert(&key[..], record.as_slice()).unwrap();
    }
    txn.commit().unwrap();
}

fn read_doc(dir: &std::path::Path, id: &Bson) -> SealedDoc {
    let dataset = dataset();
    let doc_id = dataset.doc_id(id);
    let db = redb::Database::open(dataset_file(dir, &dataset.id)).unwrap();
    let txn = db.begin_read().unwrap();
    let ids = txn.open_table(layout::IDS).unwrap();
    let key = layout::row_key(layout::row_of(&ids, &doc_id).unwrap().unwrap());
    let docs = txn.open_table(layout::DOCS).unwrap();
    let record = docs.get(&key[..]).unwrap().unwrap();
    let (_, sealed) = layout::split_doc_record(record.value()).unwrap();
    SealedDoc::from_bytes(sealed).unwrap()
}

fn find_id(
    harness: &Harness,
    rt: &tokio::runtime::Runtime,
    id: i32,
) -> Result<Vec<bson::Document>, ClientError> {
    rt.block_on(harness.client.find(
        "t",
        FindOptions {
            filter: doc! {"_id": id},
            ..Default::default()
        },
    ))
}

fn setup(rt: &tokio::runtime::Runtime) -> Harness {
    let harness = Harness::with_key(tempfile::tempdir().unwrap(), MasterKey::from_bytes(KEY));
    rt.block_on(harness.client.create_dataset("t", indexes()))
        .unwrap();
    let docs = (1..=5).map(|i| doc! {"_id": i, "n": i * 10}).collect();
    rt.block_on(harness.client.insert("t", docs)).unwrap();
    harness
}

fn reopen(dir: tempfile::TempDir) -> Harness {
    Harness::with_key(dir, MasterKey::from_bytes(KEY))
}

fn assert_integrity_error(result: Result<Vec<bson::Document>, ClientError>) {
    match result {
        Err(ClientError::Integrity(message)) => {
            assert!(message.contains("failed authentication"), "{message}")
        }
        other => panic!("expected an integrity error, got {other:?}"),
    }
}

#[test]
fn a_flipped_ciphertext_bit_on_disk_is_detected_and_the_rest_still_serves() {
    let rt = runtime();
    let dir = setup(&rt).close();
    rewrite_doc(dir.path(), &Bson::Int32(3), |mut sealed| {
        let at = sealed.ciphertext.len() / 2;
        sealed.ciphertext[at] ^= 0x01;
        sealed
    });
    let harness = reopen(dir);
    assert_integrity_error(find_id(&harness, &rt, 3));
    // A scan that meets the forged document fails loudly rather than
    // silently dropping it.
    assert_integrity_error(rt.block_on(harness.client.find("t", FindOptions::default())));
    // Everything else is served, and writes still work.
    assert_eq!(
        find_id(&harness, &rt, 2).unwrap(),
        vec![doc! {"_id": 2, "n": 20}]
    );
    rt.block_on(harness.client.insert("t", vec![doc! {"_id": 6, "n": 60}]))
        .unwrap();
    let found = rt
        .block_on(harness.client.find(
            "t",
            FindOptions {
                filter: doc! {"n": {"$gte": 40}},
                ..Default::default()
            },
        ))
        .unwrap();
    assert_eq!(found.len(), 3);
}

#[test]
fn a_ciphertext_moved_to_another_document_is_detected() {
    let rt = runtime();
    let dir = setup(&rt).close();
    let four = read_doc(dir.path(), &Bson::Int32(4));
    rewrite_doc(dir.path(), &Bson::Int32(3), |_| four);
    let harness = reopen(dir);
    assert_integrity_error(find_id(&harness, &rt, 3));
    assert_eq!(
        find_id(&harness, &rt, 4).unwrap(),
        vec![doc! {"_id": 4, "n": 40}]
    );
}

#[test]
fn an_old_version_served_as_current_is_detected() {
    let rt = runtime();
    let harness = setup(&rt);
    let dir = harness.close();
    let version_one = read_doc(dir.path(), &Bson::Int32(2));
    let harness = reopen(dir);
    rt.block_on(harness.client.update(
        "t",
        &doc! {"_id": 2},
        &doc! {"$set": {"n": 21}},
        false,
        false,
    ))
    .unwrap();
    let dir = harness.close();
    // Replay: the old ciphertext relabelled with the current version.
    rewrite_doc(dir.path(), &Bson::Int32(2), |current| SealedDoc {
        version: current.version,
        ..version_one
    });
    let harness = reopen(dir);
    assert_integrity_error(find_id(&harness, &rt, 2));
}

#[test]
fn a_truncated_record_on_disk_is_a_clear_error() {
    let rt = runtime();
    let dir = setup(&rt).close();
    let dataset = dataset();
    {
        let db = redb::Database::open(dataset_file(dir.path(), &dataset.id)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let doc_id = dataset.doc_id(&Bson::Int32(5));
            let ids = txn.open_table(layout::IDS).unwrap();
            let key = layout::row_key(layout::row_of(&ids, &doc_id).unwrap().unwrap());
            let mut docs = txn.open_table(layout::DOCS).unwrap();
            // The doc's own id, then a sealed document cut short.
            docs.insert(
                &key[..],
                layout::doc_record(&doc_id, &[1u8, 2, 3]).as_slice(),
            )
            .unwrap();
        }
        txn.commit().unwrap();
    }
    let harness = reopen(dir);
    match find_id(&harness, &rt, 5) {
        Err(ClientError::Node(NodeError::Corrupt(message))) => assert!(!message.is_empty()),
        other => panic!("expected the node to report corruption, got {other:?}"),
    }
    assert_eq!(
        find_id(&harness, &rt, 1).unwrap(),
        vec![doc! {"_id": 1, "n": 10}]
    );
}

/// Sends a write through the node's real request path.
fn send(harness: &Harness, rt: &tokio::runtime::Runtime, write: SignedWrite) -> Response {
    rt.block_on(Local(harness.node.clone()).call(&Request::Write(write)))
        .unwrap()
}

fn info(
    harness: &Harness,
    rt: &tokio::runtime::Runtime,
    dataset: DatasetId,
) -> fluence_proto::DatasetInfo {
    match rt
        .block_on(Local(harness.node.clone()).call(&Request::DatasetInfo { dataset }))
        .unwrap()
    {
        Response::Info(info) => info,
        other => panic!("{other:?}"),
    }
}

#[test]
fn writes_signed_by_another_key_are_refused() {
    let rt = runtime();
    let harness = setup(&rt);
    let victim = dataset();
    let before = info(&harness, &rt, victim.id);
    let attacker = MasterKey::generate().owner_signing_key();
    let put = victim
        .put_op(&doc! {"_id": 9, "n": 90}, 1, Precondition::Absent)
        .unwrap();
    let body = WriteBody {
        dataset: victim.id,
        seq: before.seq + 1,
        action: Action::Batch {
            schema: victim.schema(),
            ops: vec![put.clone()],
        },
    };
    let forged = SignedWrite {
        signature: Signature(attacker.sign(WRITE_SIGNING_DOMAIN, &body.digest())),
        body,
    };
    assert_eq!(
        send(&harness, &rt, forged),
        Response::Error(NodeError::BadSignature)
    );

    // A valid signature over a different body does not transfer either.
    let owner = MasterKey::from_bytes(KEY).owner_signing_key();
    let other_body = WriteBody {
        dataset: victim.id,
        seq: before.seq + 1,
        action: Action::Drop,
    };
    let signature = Signature(owner.sign(WRITE_SIGNING_DOMAIN, &other_body.digest()));
    let body = WriteBody {
        dataset: victim.id,
        seq: before.seq + 1,
        action: Action::Batch {
            schema: victim.schema(),
            ops: vec![put],
        },
    };
    assert_eq!(
        send(&harness, &rt, SignedWrite { body, signature }),
        Response::Error(NodeError::BadSignature)
    );

    // Squatting: creating a dataset id derived from the victim's key with
    // the attacker's key as owner is refused.
    let attacker_pk = PublicKey(attacker.public_key());
    let squat = WriteBody {
        dataset: DatasetId([9; 32]),
        seq: 0,
        action: Action::Create {
            owner: attacker_pk,
            name_tag: victim.name_tag,
            descriptor: vec![],
            indexes: vec![],
            cluster: None,
        },
    };
    let signed = SignedWrite {
        signature: Signature(attacker.sign(WRITE_SIGNING_DOMAIN, &squat.digest())),
        body: squat,
    };
    assert!(matches!(
        send(&harness, &rt, signed),
        Response::Error(NodeError::BadRequest(_))
    ));

    let after = info(&harness, &rt, victim.id);
    assert_eq!(
        (after.seq, after.state_root, after.doc_count),
        (before.seq, before.state_root, before.doc_count)
    );
    assert_eq!(find_id(&harness, &rt, 9).unwrap(), vec![]);
}

#[test]
fn a_replayed_write_is_refused() {
    let rt = runtime();
    let harness = setup(&rt);
    let victim = dataset();
    let owner = MasterKey::from_bytes(KEY).owner_signing_key();
    let seq = info(&harness, &rt, victim.id).seq;
    let delete = WriteBody {
        dataset: victim.id,
        seq: seq + 1,
        action: Action::Batch {
            schema: victim.schema(),
            ops: vec![DocOp::Delete {
                doc: victim.doc_id(&Bson::Int32(1)),
                expect_version: 1,
            }],
        },
    };
    let signed = SignedWrite {
        signature: Signature(owner.sign(WRITE_SIGNING_DOMAIN, &delete.digest())),
        body: delete,
    };
    assert!(matches!(
        send(&harness, &rt, signed.clone()),
        Response::Written { .. }
    ));
    rt.block_on(harness.client.insert("t", vec![doc! {"_id": 1, "n": 11}]))
        .unwrap();
    // The same signed delete again: refused by its sequence number.
    assert!(matches!(
        send(&harness, &rt, signed),
        Response::Error(NodeError::SeqMismatch { .. })
    ));
    assert_eq!(
        find_id(&harness, &rt, 1).unwrap(),
        vec![doc! {"_id": 1, "n": 11}]
    );
}

#[test]
fn garbage_requests_get_typed_errors_and_the_node_keeps_serving() {
    let rt = runtime();
    let harness = setup(&rt);
    let garbage: [&[u8]; 4] = [b"", b"\x01\x00\x09", &[0xff; 64], &[1, 0, 4, 0xaa]];
    for bytes in garbage {
        match Response::from_bytes(&harness.node.handle_bytes(bytes)).unwrap() {
            Response::Error(NodeError::BadRequest(message)) => {
                assert!(message.contains("undecodable"))
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        find_id(&harness, &rt, 4).unwrap(),
        vec![doc! {"_id": 4, "n": 40}]
    );
}
