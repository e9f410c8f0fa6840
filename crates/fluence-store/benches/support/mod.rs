//! Shared by the store benchmarks.

use fluence_proto::{
    Action, DatasetId, Hash32, IndexDecl, IndexId, IndexKind, PublicKey, Signature, SignedWrite,
    WriteBody,
};
use fluence_store::{PlaintextOrder, Store};

/// A write for the store as the node would hand it over, unsigned: the
/// store never checks signatures (the node service does).
pub fn signed(dataset: DatasetId, seq: u64, action: Action) -> SignedWrite {
    SignedWrite {
        body: WriteBody {
            dataset,
            seq,
            action,
        },
        signature: Signature([0; 64]),
    }
}

/// Creates `dataset` with non-unique indexes of the given kinds and returns
/// the schema digest its batches must name.
pub fn create(
    store: &Store<PlaintextOrder>,
    dataset: DatasetId,
    kinds: &[(IndexId, IndexKind)],
) -> Hash32 {
    let indexes: Vec<IndexDecl> = kinds
        .iter()
        .map(|&(id, kind)| IndexDecl {
            id,
            kind,
            unique: false,
        })
        .collect();
    let schema = fluence_proto::schema_digest(&indexes);
    let action = Action::Create {
        owner: PublicKey([1; 32]),
        name_tag: [9; 32],
        descriptor: Vec::new(),
        indexes,
        cluster: None,
    };
    store.apply(&signed(dataset, 0, action)).expect("create");
    schema
}
