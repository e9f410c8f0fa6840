//! Helpers shared by the integration tests: writes built the way a gateway
//! would build them, with `PlaintextOrder` (ciphertext = big-endian value).

#![allow(dead_code)]

use fluence_proto::{
    Action, DatasetId, DocId, DocOp, IndexDecl, IndexEntry, IndexId, IndexKind, IndexValues,
    Precondition, PublicKey, SealedDoc, Signature, SignedWrite, Token, WriteBody,
};
use fluence_store::{Applied, OreOrder, PlaintextOrder, Store};

pub const EQ: IndexId = IndexId([0xe1; 16]);
pub const TEXT: IndexId = IndexId([0x7e; 16]);
pub const RANGE: IndexId = IndexId([0x4a; 16]);
pub const RANGE2: IndexId = IndexId([0x4b; 16]);

pub fn decls() -> Vec<IndexDecl> {
    vec![
        IndexDecl {
            id: EQ,
            kind: IndexKind::Eq,
            unique: false,
        },
        IndexDecl {
            id: TEXT,
            kind: IndexKind::Text,
            unique: false,
        },
        IndexDecl {
            id: RANGE,
            kind: IndexKind::Range,
            unique: false,
        },
        IndexDecl {
            id: RANGE2,
            kind: IndexKind::Range,
            unique: false,
        },
    ]
}

pub fn dataset(n: u8) -> DatasetId {
    DatasetId([n; 32])
}

pub fn owner(n: u8) -> PublicKey {
    PublicKey([n; 32])
}

/// A doc id spread over the Merkle buckets like a keyed hash would be.
pub fn doc(n: u64) -> DocId {
    let hash = blake3::hash(&n.to_le_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&hash.as_bytes()[..16]);
    DocId(id)
}

pub fn token(n: u8) -> Token {
    Token([n; 16])
}

/// Plaintext-order "ciphertext" of a value: bytewise order = numeric order.
pub fn ore(value: u64) -> Vec<u8> {
    value.to_be_bytes().to_vec()
}

pub fn signed(dataset: DatasetId, seq: u64, action: Action) -> SignedWrite {
    SignedWrite {
        body: WriteBody {
            dataset,
            seq,
            action,
        },
        // The store never checks signatures: the node service does.
        signature: Signature([0; 64]),
    }
}

pub fn create_write(dataset: DatasetId, owner: PublicKey) -> SignedWrite {
    signed(
        dataset,
        0,
        Action::Create {
            owner,
            name_tag: [9; 32],
            descriptor: b"sealed descriptor".to_vec(),
            indexes: decls(),
            cluster: None,
        },
    )
}

pub fn create<O: OreOrder>(store: &Store<O>, dataset: DatasetId) -> Applied {
    store
        .apply(&create_write(dataset, owner(1)))
        .expect("create")
}

pub fn sealed(version: u64, body: &[u8]) -> SealedDoc {
    SealedDoc {
        version,
        wrapped_key: vec![0xaa; 72],
        ciphertext: body.to_vec(),
    }
}

/// Index entries of a test document: one eq token, some text tokens, one
/// range value.
pub fn entries(eq: u8, words: &[u8], value: u64) -> Vec<IndexEntry> {
    vec![
        IndexEntry {
            index: EQ,
            values: IndexValues::Tokens(vec![token(eq)]),
        },
        IndexEntry {
            index: TEXT,
            values: IndexValues::Tokens(words.iter().map(|w| token(*w)).collect()),
        },
        IndexEntry {
            index: RANGE,
            values: IndexValues::Ore(vec![ore(value)]),
        },
    ]
}

pub fn insert(n: u64, eq: u8, words: &[u8], value: u64) -> DocOp {
    DocOp::Put {
        doc: doc(n),
        expect: Precondition::Absent,
        sealed: sealed(1, format!("doc {n} v1").as_bytes()),
        entries: entries(eq, words, value),
    }
}

pub fn update(n: u64, from_version: u64, eq: u8, words: &[u8], value: u64) -> DocOp {
    DocOp::Put {
        doc: doc(n),
        expect: Precondition::Version(from_version),
        sealed: sealed(
            from_version + 1,
            format!("doc {n} v{}", from_version + 1).as_bytes(),
        ),
        entries: entries(eq, words, value),
    }
}

pub fn delete(n: u64, version: u64) -> DocOp {
    DocOp::Delete {
        doc: doc(n),
        expect_version: version,
    }
}

/// A batch for a dataset with the index declarations of [`decls`].
pub fn batch(dataset: DatasetId, seq: u64, ops: Vec<DocOp>) -> SignedWrite {
    batch_for(&decls(), dataset, seq, ops)
}

/// A batch for a dataset declaring `indexes`.
pub fn batch_for(
    indexes: &[IndexDecl],
    dataset: DatasetId,
    seq: u64,
    ops: Vec<DocOp>,
) -> SignedWrite {
    let schema = fluence_proto::schema_digest(indexes);
    signed(dataset, seq, Action::Batch { schema, ops })
}

/// Every doc id of a complete query, following the cursor page by page.
pub fn find_all<O: OreOrder>(
    store: &Store<O>,
    dataset: &DatasetId,
    plan: &fluence_proto::Plan,
    page_docs: usize,
) -> Vec<DocId> {
    let mut out = Vec::new();
    let mut after = None;
    for _ in 0..100_000 {
        let page = store.find(dataset, plan, after, page_docs).expect("find");
        assert!(page.docs.len() <= page_docs);
        out.extend(page.docs.iter().map(|d| d.doc));
        match page.next {
            Some(next) => {
                assert!(Some(next) > after, "cursor must advance");
                after = Some(next);
            }
            None => return out,
        }
    }
    panic!("query did not finish");
}

/// Sorted doc ids of docs numbered `ns`.
pub fn sorted_docs(ns: impl IntoIterator<Item = u64>) -> Vec<DocId> {
    let mut out: Vec<DocId> = ns.into_iter().map(doc).collect();
    out.sort();
    out.dedup();
    out
}

pub type TestStore = Store<PlaintextOrder>;

/// A store in a fresh temporary directory (kept alive by the guard).
pub fn open() -> (tempfile::TempDir, TestStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::open(dir.path()).unwrap();
    (dir, store)
}
