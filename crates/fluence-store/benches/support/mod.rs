//! Shared by the store benchmarks.

use fluence_proto::{Action, DatasetId, Signature, SignedWrite, WriteBody};

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
