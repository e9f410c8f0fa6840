//! A cluster's chain of custody: who may speak for a dataset now.
//!
//! The owner's `Create` names the genesis membership (epoch 0, every
//! member's acceptance signed). Each later epoch began with a block that
//! carries a [`MembershipChange`], finalized by the members of the epoch
//! it ended. A node that was not there (a newcomer, a gateway, a member
//! back from a long absence) is shown that history and checks it from the
//! owner's signature on: every change against the members before it, and
//! every change block's finalization against those same members. It then
//! knows the current members and the block the current epoch started on
//! without trusting whoever showed it.
//!
//! A change block may have been finalized only through a descendant (its
//! own certificate then never formed): its proof ([`CertifiedChange`]) is
//! the change block, the empty blocks of the ending epoch above it (a
//! retired epoch adds nothing else, chain rule `AfterChange`), and the
//! first of them that carries a certificate.

use fluence_proto::cluster::GENESIS_EPOCH;
use fluence_proto::{
    DatasetId, Decode, DecodeError, Encode, MembershipChange, MembershipError, PublicKey, Reader,
    SignedWrite, Writer,
};

use crate::certificate::{CertificateError, CertificateVerifier};
use crate::genesis::{verify_change, verify_create, CreateError};
use crate::{Block, FinalizedBlock};

/// Blocks one change's proof may hold: the change block and the empty
/// blocks above it up to the first certified one.
pub const CHANGE_PROOF_BLOCKS_MAX: usize = 16;
/// Membership changes a history may hold (bounds what a node accepts from
/// a peer; a dataset replaced more members than that over its life would
/// need its history trimmed to a checkpoint, which does not exist yet).
pub const HISTORY_CHANGES_MAX: usize = 256;

/// One finalized membership change and its proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifiedChange {
    /// The change block first, then the blocks linking it to the first
    /// certified one; the last carries a certificate by the members of
    /// the epoch the change ended.
    pub blocks: Vec<FinalizedBlock>,
}

impl CertifiedChange {
    /// The block carrying the change: the first block of the epoch it
    /// starts.
    pub fn base(&self) -> Option<&Block> {
        self.blocks.first().map(|finalized| &finalized.block)
    }

    /// The change itself.
    pub fn change(&self) -> Option<&MembershipChange> {
        self.base().and_then(|block| block.change.as_ref())
    }
}

impl Encode for CertifiedChange {
    fn encode(&self, writer: &mut Writer) {
        writer.vec(&self.blocks);
    }
}

impl Decode for CertifiedChange {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(CertifiedChange {
            blocks: reader.vec(CHANGE_PROOF_BLOCKS_MAX, "change proof blocks")?,
        })
    }
}

/// A dataset's membership history: its `Create` and every change since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterHistory {
    pub create: SignedWrite,
    pub changes: Vec<CertifiedChange>,
}

impl Encode for ClusterHistory {
    fn encode(&self, writer: &mut Writer) {
        self.create.encode(writer);
        writer.vec(&self.changes);
    }
}

impl Decode for ClusterHistory {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ClusterHistory {
            create: SignedWrite::decode(reader)?,
            changes: reader.vec(HISTORY_CHANGES_MAX, "membership changes")?,
        })
    }
}

/// One membership epoch of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    pub epoch: u64,
    /// The members, in the order the `Create` or the change lists them.
    pub members: Vec<PublicKey>,
    /// The block whose change started a later epoch (`None` for epoch 0).
    pub base: Option<Block>,
}

impl Epoch {
    /// The chain height the epoch starts at (0 for the genesis epoch).
    pub fn base_height(&self) -> u64 {
        self.base.as_ref().map_or(0, |base| base.height)
    }
}

/// Why a history does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error("the Create: {0}")]
    Create(#[from] CreateError),
    #[error("change {index}: its proof holds no block or more than {CHANGE_PROOF_BLOCKS_MAX}")]
    ProofSize { index: usize },
    #[error("change {index}: the first block carries no membership change")]
    NoChange { index: usize },
    #[error("change {index}: a block of another dataset")]
    ForeignBlock { index: usize },
    #[error("change {index}: {error}")]
    Change {
        index: usize,
        error: MembershipError,
    },
    #[error("change {index}: the change block is at height {height}, not above the epoch's start at {base}")]
    Height {
        index: usize,
        height: u64,
        base: u64,
    },
    #[error("change {index}: block {position} of the proof does not extend the one before it or is not empty")]
    Link { index: usize, position: usize },
    #[error("change {index}: {error}")]
    Certificate {
        index: usize,
        error: CertificateError,
    },
}

/// Checks `history` from the owner's `Create` on and returns every epoch
/// it establishes, the current one last.
pub fn verify_history(history: &ClusterHistory) -> Result<Vec<Epoch>, HistoryError> {
    let dataset = history.create.body.dataset;
    let genesis = verify_create(&history.create)?;
    let mut epochs = vec![Epoch {
        epoch: GENESIS_EPOCH,
        members: genesis.keys(),
        base: None,
    }];
    for (index, certified) in history.changes.iter().enumerate() {
        let current = epochs.last().expect("the genesis epoch is always there");
        let next = verify_certified_change(&dataset, current, certified, index)?;
        epochs.push(next);
    }
    Ok(epochs)
}

/// Checks one change of epoch `current` (the `index`-th of its history)
/// and returns the epoch it starts.
pub fn verify_certified_change(
    dataset: &DatasetId,
    current: &Epoch,
    certified: &CertifiedChange,
    index: usize,
) -> Result<Epoch, HistoryError> {
    let blocks = &certified.blocks;
    if blocks.is_empty() || blocks.len() > CHANGE_PROOF_BLOCKS_MAX {
        return Err(HistoryError::ProofSize { index });
    }
    let base = &blocks[0].block;
    let change = base
        .change
        .as_ref()
        .ok_or(HistoryError::NoChange { index })?;
    if blocks.iter().any(|b| b.block.dataset != *dataset) {
        return Err(HistoryError::ForeignBlock { index });
    }
    if base.height <= current.base_height() {
        return Err(HistoryError::Height {
            index,
            height: base.height,
            base: current.base_height(),
        });
    }
    verify_change(dataset, current.epoch, &current.members, change)
        .map_err(|error| HistoryError::Change { index, error })?;
    for (position, pair) in blocks.windows(2).enumerate() {
        let (below, above) = (&pair[0].block, &pair[1].block);
        let links = above.parent == below.hash()
            && above.height == below.height + 1
            && above.writes.is_empty()
            && above.change.is_none();
        if !links {
            return Err(HistoryError::Link {
                index,
                position: position + 1,
            });
        }
    }
    let certified_block = blocks.last().expect("not empty");
    CertificateVerifier::new(dataset, current.epoch, &current.members)
        .and_then(|verifier| {
            verifier.verify(&certified_block.block.hash(), &certified_block.certificate)
        })
        .map_err(|error| HistoryError::Certificate { index, error })?;
    Ok(Epoch {
        epoch: change.epoch,
        members: change.keys(),
        base: Some(base.clone()),
    })
}
