//! Typed errors of the replica: what a submitter is told, and why a
//! replica stops.

use fluence_chain::{BlockError, ChainStoreError, WriteAuthError};
use fluence_proto::{DatasetId, Hash32, NodeError};

/// Why a submitted write was not (and will not be) acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the write is for dataset {found}, this cluster orders {expected}")]
    WrongDataset {
        expected: DatasetId,
        found: DatasetId,
    },
    #[error("the write is larger than a block may be")]
    TooLarge,
    #[error("the write is not the owner's: {0}")]
    Unauthorised(WriteAuthError),
    #[error("the dataset does not exist yet; create it first")]
    NoDataset,
    #[error("the dataset already exists")]
    DatasetExists,
    #[error("sequence number {seq} is already taken (the next is {next})")]
    Stale { seq: u64, next: u64 },
    #[error("another write was finalized with sequence number {seq}")]
    SeqTaken { seq: u64 },
    /// The store refused the write against the state it would extend,
    /// with the error a node reports for it (a failed precondition, a
    /// unique index, a stale index schema, ...).
    #[error("the write was refused by the state it would extend: {0}")]
    Refused(NodeError),
    #[error("the member holds too many pending writes; retry later")]
    PoolFull,
    #[error("the replica stopped before the write was finalized")]
    Stopped,
    /// The member is rebuilding the dataset from another member's
    /// snapshot; another member (or this one, shortly) takes the write.
    #[error("this member is syncing the dataset from its peers; retry shortly")]
    Syncing,
    #[error("the replica cannot read its storage: {0}")]
    Storage(String),
}

/// Why a replica stopped applying finalized blocks. Each means this member's
/// state can no longer be trusted to follow the cluster's chain; the member
/// stops acknowledging blocks (and so stops advancing) instead of serving a
/// state the cluster did not agree on.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaFault {
    #[error("finalized block {height} is {found}, but {stored} is stored at that height")]
    ConflictingFinalized {
        height: u64,
        stored: Hash32,
        found: Hash32,
    },
    #[error("finalized block {height} does not extend the applied tip {tip}")]
    OutOfOrder { height: u64, tip: u64 },
    #[error("finalized block {height} does not apply to the local store: {reason}")]
    DoesNotApply { height: u64, reason: String },
    #[error("after finalized block {height} the local state root is {computed}, the block says {claimed}")]
    StateDiverged {
        height: u64,
        claimed: Hash32,
        computed: Hash32,
    },
    #[error("chain storage failed: {0}")]
    Chain(#[from] ChainStoreError),
    #[error("dataset storage failed: {0}")]
    Store(String),
}

/// Why a proposal was refused by this member (logged; the member votes to
/// skip the view).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error("the block does not extend this member's finalized chain")]
    ForksFinalized,
    #[error("write {index} of the block is refused by the store: {reason}")]
    WriteRefused { index: usize, reason: String },
    #[error("unfinalized ancestor {height} does not execute to its claimed root on this member")]
    AncestorDiverged { height: u64 },
    #[error("local storage failed while verifying: {0}")]
    Storage(String),
}
