//! The state root and Merkle proofs.

mod common;

use common::*;
use fluence_proto::{
    Action, Decode, DocId, DocOp, Encode, Hash32, IndexDecl, IndexKind, Plan, Precondition,
};
use fluence_store::merkle::{bucket_of, hash_sealed};
use fluence_store::{verify_proof, MerkleProof, ProofError};

fn root(store: &TestStore) -> Hash32 {
    store.info(&dataset(1)).unwrap().state_root
}

#[test]
fn same_writes_give_the_same_root_in_two_stores() {
    let (_a_dir, a) = open();
    let (_b_dir, b) = open();
    for store in [&a, &b] {
        create(store, dataset(1));
        store
            .apply(&batch(
                dataset(1),
                1,
                (0..50).map(|n| insert(n, 1, &[2], n)).collect(),
            ))
            .unwrap();
        store
            .apply(&batch(
                dataset(1),
                2,
                vec![update(3, 1, 4, &[], 9), delete(7, 1)],
            ))
            .unwrap();
    }
    assert_eq!(root(&a), root(&b));
}

#[test]
fn the_root_depends_on_the_state_not_on_the_order_of_ops() {
    // Documented design: the tree commits to the final document set only,
    // so ops on different docs may come in any order, or in other batches.
    let (_a_dir, a) = open();
    let (_b_dir, b) = open();
    create(&a, dataset(1));
    create(&b, dataset(1));
    let ops: Vec<DocOp> = (0..20).map(|n| insert(n, 1, &[], n)).collect();
    let mut reversed = ops.clone();
    reversed.reverse();
    let ra = a.apply(&batch(dataset(1), 1, ops)).unwrap();
    let rb = b.apply(&batch(dataset(1), 1, reversed)).unwrap();
    assert_eq!(ra.state_root, rb.state_root);

    // An insert and a later delete leave the same state as never inserting,
    // given equal seq.
    let (_c_dir, c) = open();
    create(&c, dataset(1));
    c.apply(&batch(
        dataset(1),
        1,
        (0..20).map(|n| insert(n, 1, &[], n)).collect(),
    ))
    .unwrap();
    let (_e_dir, e) = open();
    create(&e, dataset(1));
    let mut with_extra: Vec<DocOp> = (0..20).map(|n| insert(n, 1, &[], n)).collect();
    with_extra.push(insert(99, 1, &[], 1));
    with_extra.push(delete(99, 1));
    e.apply(&batch(dataset(1), 1, with_extra)).unwrap();
    assert_eq!(root(&c), root(&e));
    assert_eq!(root(&c), ra.state_root);
}

#[test]
fn the_root_changes_on_any_change() {
    let (_dir, store) = open();
    let d = dataset(1);
    let mut roots = vec![create(&store, d).state_root];
    let mut push = |write| roots.push(store.apply(&write).unwrap().state_root);
    push(batch(d, 1, vec![insert(1, 1, &[1], 1)]));
    // Only the ciphertext changes.
    push(batch(
        d,
        2,
        vec![DocOp::Put {
            doc: doc(1),
            expect: Precondition::Version(1),
            sealed: sealed(2, b"other"),
            entries: entries(1, &[1], 1),
        }],
    ));
    // Only the index entries change.
    push(batch(
        d,
        3,
        vec![DocOp::Put {
            doc: doc(1),
            expect: Precondition::Version(2),
            sealed: sealed(3, b"other"),
            entries: entries(1, &[1], 2),
        }],
    ));
    // Nothing but the seq changes.
    push(batch(d, 4, vec![]));
    // Only the descriptor changes.
    push(signed(
        d,
        5,
        Action::Reindex {
            descriptor: b"d2".to_vec(),
            indexes: decls(),
        },
    ));
    // Only the index declarations change (one added).
    let mut more = decls();
    more.push(IndexDecl {
        id: fluence_proto::IndexId([0x55; 16]),
        kind: IndexKind::Text,
        unique: false,
    });
    push(signed(
        d,
        6,
        Action::Reindex {
            descriptor: b"d2".to_vec(),
            indexes: more.clone(),
        },
    ));
    push(batch_for(&more, d, 7, vec![delete(1, 3)]));
    let distinct: std::collections::HashSet<_> = roots.iter().collect();
    assert_eq!(distinct.len(), roots.len(), "{roots:?}");

    // Same content in another dataset id: another root.
    let other = dataset(2);
    let r_other = store
        .apply(&create_write(other, owner(1)))
        .unwrap()
        .state_root;
    assert_ne!(r_other, roots[0]);
}

fn populated() -> (tempfile::TempDir, TestStore) {
    let (dir, store) = open();
    create(&store, dataset(1));
    store
        .apply(&batch(
            dataset(1),
            1,
            (0..300).map(|n| insert(n, 1, &[], n)).collect(),
        ))
        .unwrap();
    (dir, store)
}

#[test]
fn inclusion_proofs_verify_and_bind_the_served_document() {
    let (_dir, store) = populated();
    let d = dataset(1);
    let state_root = root(&store);
    for n in [0u64, 17, 299] {
        let proof = store.prove(&d, &doc(n)).unwrap();
        assert_eq!(proof.seq, 1);
        let digest = verify_proof(&d, &state_root, &proof)
            .unwrap()
            .expect("present");
        // A reader with only the served SealedDoc can check it.
        let served = store.get(&d, &doc(n)).unwrap().unwrap();
        assert_eq!(digest.sealed.0, hash_sealed(&served.to_bytes()));
        let page = store.find(&d, &Plan::Ids(vec![doc(n)]), None, 1).unwrap();
        assert_eq!(
            digest.sealed.0,
            hash_sealed(&page.docs[0].sealed.to_bytes())
        );
        // Encoding round trip.
        let bytes = proof.to_bytes();
        assert_eq!(MerkleProof::from_bytes(&bytes).unwrap(), proof);
    }
}

#[test]
fn absence_proofs_verify() {
    let (_dir, store) = populated();
    let d = dataset(1);
    let state_root = root(&store);
    // A doc sharing a bucket with a present doc, and one in an empty bucket.
    let present = doc(5);
    let mut neighbour = present;
    neighbour.0[15] ^= 1;
    let mut lonely = DocId([0; 16]);
    'search: for b0 in 0..=255u8 {
        for b1 in 0..=255u8 {
            lonely = DocId([b0, b1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            if store.prove(&d, &lonely).unwrap().bucket.is_empty() {
                break 'search;
            }
        }
    }
    for absent in [neighbour, lonely] {
        let proof = store.prove(&d, &absent).unwrap();
        assert_eq!(verify_proof(&d, &state_root, &proof), Ok(None));
    }
    assert_eq!(bucket_of(&neighbour), bucket_of(&present));
}

#[test]
fn tampered_proofs_fail() {
    let (_dir, store) = populated();
    let d = dataset(1);
    let state_root = root(&store);
    let proof = store.prove(&d, &doc(42)).unwrap();
    assert!(verify_proof(&d, &state_root, &proof).unwrap().is_some());

    let mut tampered: Vec<(&str, MerkleProof)> = Vec::new();
    let mut p = proof.clone();
    p.bucket[0].1.sealed.0[0] ^= 1;
    tampered.push(("digest", p));
    let mut p = proof.clone();
    let position = p.bucket.iter().position(|(id, _)| *id == doc(42)).unwrap();
    p.bucket.remove(position);
    tampered.push(("hide the doc", p));
    let mut p = proof.clone();
    p.siblings[7].0[3] ^= 1;
    tampered.push(("sibling", p));
    let mut p = proof.clone();
    p.seq = 2;
    tampered.push(("seq", p));
    let mut p = proof.clone();
    p.descriptor_hash.0[0] ^= 1;
    tampered.push(("descriptor", p));
    for (what, p) in tampered {
        assert_eq!(
            verify_proof(&d, &state_root, &p),
            Err(ProofError::RootMismatch),
            "{what}"
        );
    }

    // Structural lies are caught before hashing.
    let mut p = proof.clone();
    let extra = (DocId([0xff; 16]), p.bucket[0].1);
    p.bucket.push(extra);
    assert!(matches!(
        verify_proof(&d, &state_root, &p),
        Err(ProofError::BucketMismatch(_))
    ));
    let mut p = proof.clone();
    let first = p.bucket[0];
    p.bucket.push(first);
    assert_eq!(
        verify_proof(&d, &state_root, &p),
        Err(ProofError::BucketUnordered)
    );
    assert_eq!(
        verify_proof(&dataset(2), &state_root, &proof),
        Err(ProofError::WrongDataset)
    );
    // An old root does not verify a new proof.
    store
        .apply(&batch(d, 2, vec![update(42, 1, 1, &[], 7)]))
        .unwrap();
    let new_proof = store.prove(&d, &doc(42)).unwrap();
    assert_eq!(
        verify_proof(&d, &state_root, &new_proof),
        Err(ProofError::RootMismatch)
    );
    assert!(verify_proof(&d, &root(&store), &new_proof)
        .unwrap()
        .is_some());
}

#[test]
fn proof_bytes_are_decoded_with_bounds() {
    let (_dir, store) = populated();
    let proof = store.prove(&dataset(1), &doc(1)).unwrap();
    let bytes = proof.to_bytes();
    for cut in [0, 10, bytes.len() - 1] {
        assert!(MerkleProof::from_bytes(&bytes[..cut]).is_err());
    }
    // A bucket count above BUCKET_DOCS_MAX is refused without allocating.
    let mut huge = bytes.clone();
    let count_at = 32 + 16 + 8 + 32;
    huge[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(MerkleProof::from_bytes(&huge).is_err());
}

/// State root of a fixed history with multi-valued range entries, recorded
/// with the store as it was before the `multi` table existed: that table
/// (like `postings` and `range`) is derived from `entries` and must not
/// enter the root, so adding it left every root unchanged. (Re-recorded
/// once since, when format 4 added the `unique` flag to the encoded index
/// declarations the root commits to.)
#[test]
fn the_multi_valued_table_does_not_enter_the_state_root() {
    let (_dir, store) = open();
    let d = dataset(1);
    create(&store, d);
    let put = |n: u64, values: &[u64]| DocOp::Put {
        doc: doc(n),
        expect: Precondition::Absent,
        sealed: sealed(1, format!("doc {n}").as_bytes()),
        entries: vec![fluence_proto::IndexEntry {
            index: RANGE,
            values: fluence_proto::IndexValues::Ore(values.iter().map(|v| ore(*v)).collect()),
        }],
    };
    let ops = vec![
        put(1, &[5, 25]),
        put(2, &[7, 7]),
        put(3, &[1, 2, 3]),
        put(4, &[9]),
        insert(5, 1, &[2], 11),
    ];
    store.apply(&batch(d, 1, ops)).unwrap();
    store
        .apply(&batch(d, 2, vec![update(1, 1, 3, &[4], 6), delete(3, 1)]))
        .unwrap();
    assert_eq!(
        root(&store).to_string(),
        "1d8d69de655323be2d7d35a1ee9623f572344b14d525bacd184ec27223bdb765"
    );
}
