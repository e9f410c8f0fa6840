//! The rules a block must satisfy before a member votes for it, short of
//! executing its writes (the consensus replica does that against its store
//! and compares the state root).
//!
//! Each check returns a typed [`BlockError`]; [`verify_block`] runs them
//! all in a fixed order, cheapest first, so every honest member rejects a
//! bad block with the same error.

use fluence_proto::{Action, DatasetId, Hash32, PublicKey, SignedWrite, WRITE_SIGNING_DOMAIN};

use crate::attest::{verify_attestation, AttestationBody};
use crate::block::{is_lifecycle_write, Block};

/// Chain parameters every member of a cluster must share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainRules {
    /// How far a block's timestamp may run ahead of the verifying member's
    /// clock, in milliseconds. Larger than the clock skew between honest
    /// members, or honest proposals are refused; a proposer "speeding up
    /// time" beyond it is refused (whitepaper, "Security Concerns").
    pub timestamp_ahead_max_ms: u64,
}

impl Default for ChainRules {
    fn default() -> Self {
        ChainRules {
            timestamp_ahead_max_ms: 5_000,
        }
    }
}

/// Why a block is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("block is for dataset {found}, the chain is of {expected}")]
    WrongDataset {
        expected: DatasetId,
        found: DatasetId,
    },
    #[error("block height {found} does not follow its parent (expected {expected})")]
    WrongHeight { expected: u64, found: u64 },
    #[error("block names parent {found}, the parent block hashes to {expected}")]
    WrongParent { expected: Hash32, found: Hash32 },
    #[error("block timestamp {block_ms} ms is before its parent's {parent_ms} ms")]
    TimestampBeforeParent { parent_ms: u64, block_ms: u64 },
    #[error("block timestamp {block_ms} ms runs ahead of the local clock {now_ms} ms by more than {ahead_max_ms} ms")]
    TimestampAhead {
        block_ms: u64,
        now_ms: u64,
        ahead_max_ms: u64,
    },
    #[error("write {index} is for dataset {found}, not this chain's")]
    ForeignWrite { index: usize, found: DatasetId },
    #[error("write {index} creates or drops the dataset and must be alone in its block")]
    LifecycleNotAlone { index: usize },
    #[error("above a membership change its epoch may only add empty blocks")]
    AfterChange,
    #[error("a block with a membership change holds no writes")]
    ChangeNotAlone,
    #[error("a block with a membership change must keep its parent's state root")]
    ChangeMovesRoot,
    #[error("the membership change is invalid: {0}")]
    Change(fluence_proto::MembershipError),
    #[error("write {index} has seq {found}, expected {expected} after the previous write")]
    SeqGap {
        index: usize,
        expected: u64,
        found: u64,
    },
    #[error("write {index} is not authorised: {reason}")]
    Unauthorised {
        index: usize,
        reason: WriteAuthError,
    },
    #[error("{member} attests the genesis block, which has no state")]
    AttestsGenesis { member: PublicKey },
    #[error("{member} is not a member of this cluster")]
    NotAMember { member: PublicKey },
    #[error("{member} both attests and is named in evidence")]
    AttesterInEvidence { member: PublicKey },
    #[error("signature of {member} over the parent's state root does not verify")]
    BadAttestation { member: PublicKey },
    #[error("evidence against {member} names the parent's own root; it is an attestation")]
    EvidenceAgrees { member: PublicKey },
    #[error("write {index} creates the dataset with an invalid cluster: {reason}")]
    Membership {
        index: usize,
        reason: fluence_proto::MembershipError,
    },
    #[error("state root after the writes is {computed}, the block claims {claimed}")]
    StateRootMismatch { claimed: Hash32, computed: Hash32 },
}

/// Why a client-signed write is not the owner's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteAuthError {
    #[error("the owner key is not a valid, strong ed25519 key")]
    BadOwnerKey,
    #[error("dataset id is not derived from the owner key and name tag")]
    IdNotDerived,
    #[error("the dataset does not exist, so only a Create can be signed for it")]
    NoOwner,
    #[error("the owner's signature does not verify")]
    BadSignature,
}

/// Checks that `write` is signed by the dataset's owner: for `Create`, the
/// key named in the body, from which the dataset id must derive (nobody can
/// squat an id that belongs to another key); for every later write,
/// `owner`, the owner recorded when the dataset was created (`None` while
/// it does not exist).
pub fn verify_write_signature(
    write: &SignedWrite,
    owner: Option<&PublicKey>,
) -> Result<(), WriteAuthError> {
    let body = &write.body;
    let signer = match &body.action {
        Action::Create {
            owner, name_tag, ..
        } => {
            fluence_crypto::sign::check_public_key(&owner.0)
                .map_err(|_| WriteAuthError::BadOwnerKey)?;
            if fluence_crypto::keys::dataset_id(&owner.0, name_tag) != body.dataset.0 {
                return Err(WriteAuthError::IdNotDerived);
            }
            *owner
        }
        _ => *owner.ok_or(WriteAuthError::NoOwner)?,
    };
    fluence_crypto::sign::verify(
        &signer.0,
        WRITE_SIGNING_DOMAIN,
        &body.digest(),
        &write.signature.0,
    )
    .map_err(|_| WriteAuthError::BadSignature)
}

/// Dataset, height, parent hash and timestamp order against the parent.
pub fn check_link(block: &Block, parent: &Block, parent_hash: &Hash32) -> Result<(), BlockError> {
    if block.dataset != parent.dataset {
        return Err(BlockError::WrongDataset {
            expected: parent.dataset,
            found: block.dataset,
        });
    }
    let expected = parent.height.saturating_add(1);
    if block.height != expected || parent.height == u64::MAX {
        return Err(BlockError::WrongHeight {
            expected,
            found: block.height,
        });
    }
    if block.parent != *parent_hash {
        return Err(BlockError::WrongParent {
            expected: *parent_hash,
            found: block.parent,
        });
    }
    if block.timestamp_ms < parent.timestamp_ms {
        return Err(BlockError::TimestampBeforeParent {
            parent_ms: parent.timestamp_ms,
            block_ms: block.timestamp_ms,
        });
    }
    Ok(())
}

/// The block's timestamp is not ahead of `now_ms` (the verifying member's
/// clock) by more than the rules allow.
pub fn check_timestamp(block: &Block, now_ms: u64, rules: &ChainRules) -> Result<(), BlockError> {
    if block.timestamp_ms > now_ms.saturating_add(rules.timestamp_ahead_max_ms) {
        return Err(BlockError::TimestampAhead {
            block_ms: block.timestamp_ms,
            now_ms,
            ahead_max_ms: rules.timestamp_ahead_max_ms,
        });
    }
    Ok(())
}

/// Every write is for this chain's dataset, a `Create` or `Drop` stands
/// alone, and sequence numbers run consecutively. (Whether the first one
/// follows the dataset's state is for execution to decide.)
pub fn check_writes_shape(block: &Block) -> Result<(), BlockError> {
    let lifecycle = block.writes.len() > 1 && block.writes.iter().any(is_lifecycle_write);
    for (index, write) in block.writes.iter().enumerate() {
        if write.body.dataset != block.dataset {
            return Err(BlockError::ForeignWrite {
                index,
                found: write.body.dataset,
            });
        }
        if lifecycle && is_lifecycle_write(write) {
            return Err(BlockError::LifecycleNotAlone { index });
        }
        if index > 0 {
            let expected = block.writes[index - 1].body.seq.saturating_add(1);
            if write.body.seq != expected {
                return Err(BlockError::SeqGap {
                    index,
                    expected,
                    found: write.body.seq,
                });
            }
        }
    }
    Ok(())
}

/// Every write is signed by the dataset's owner (see
/// [`verify_write_signature`]); `owner` is the owner as of the parent's
/// state.
pub fn check_write_signatures(block: &Block, owner: Option<&PublicKey>) -> Result<(), BlockError> {
    for (index, write) in block.writes.iter().enumerate() {
        verify_write_signature(write, owner)
            .map_err(|reason| BlockError::Unauthorised { index, reason })?;
    }
    Ok(())
}

/// Attestations and evidence name members of the cluster (`members`), each
/// at most once, with valid signatures over (dataset, parent height, parent
/// hash, root): attestations over the parent's state root, evidence over
/// another root.
pub fn check_attestations(
    block: &Block,
    parent: &Block,
    parent_hash: &Hash32,
    members: &[PublicKey],
) -> Result<(), BlockError> {
    if parent.height == 0 {
        // The genesis block has no state to attest; nothing may claim one.
        if let Some(first) = block.attestations.first() {
            return Err(BlockError::AttestsGenesis {
                member: first.member,
            });
        }
        if let Some(first) = block.evidence.first() {
            return Err(BlockError::AttestsGenesis {
                member: first.member,
            });
        }
        return Ok(());
    }
    let is_member = |member: &PublicKey| members.contains(member);
    for attestation in &block.attestations {
        if !is_member(&attestation.member) {
            return Err(BlockError::NotAMember {
                member: attestation.member,
            });
        }
    }
    for evidence in &block.evidence {
        if !is_member(&evidence.member) {
            return Err(BlockError::NotAMember {
                member: evidence.member,
            });
        }
        // Both lists are sorted (the decoder enforces it), but a member in
        // both would be counted twice.
        if block
            .attestations
            .binary_search_by(|a| a.member.cmp(&evidence.member))
            .is_ok()
        {
            return Err(BlockError::AttesterInEvidence {
                member: evidence.member,
            });
        }
        if evidence.root == parent.state_root {
            return Err(BlockError::EvidenceAgrees {
                member: evidence.member,
            });
        }
    }
    let attested = AttestationBody {
        dataset: parent.dataset,
        height: parent.height,
        block: *parent_hash,
        root: parent.state_root,
    };
    for attestation in &block.attestations {
        verify_attestation(&attestation.member, &attested, &attestation.signature).map_err(
            |_| BlockError::BadAttestation {
                member: attestation.member,
            },
        )?;
    }
    for evidence in &block.evidence {
        let body = AttestationBody {
            root: evidence.root,
            ..attested
        };
        verify_attestation(&evidence.member, &body, &evidence.signature).map_err(|_| {
            BlockError::BadAttestation {
                member: evidence.member,
            }
        })?;
    }
    Ok(())
}

/// What a member needs besides the block and its parent to verify it.
#[derive(Debug, Clone, Copy)]
pub struct VerifyContext<'a> {
    pub rules: &'a ChainRules,
    /// The cluster's members.
    pub members: &'a [PublicKey],
    /// The verifying member's clock, milliseconds since the Unix epoch.
    pub now_ms: u64,
    /// The dataset's owner as of the parent's state (`None` if it does not
    /// exist there).
    pub owner: Option<&'a PublicKey>,
    /// The membership epoch the block is proposed in (the genesis
    /// membership's is 0; each change adds one).
    pub epoch: u64,
}

/// Every rule short of execution, cheapest first: link to the parent,
/// timestamp, shape of the writes, attestations, owner signatures.
pub fn verify_block(
    block: &Block,
    parent: &Block,
    parent_hash: &Hash32,
    context: &VerifyContext<'_>,
) -> Result<(), BlockError> {
    check_link(block, parent, parent_hash)?;
    check_timestamp(block, context.now_ms, context.rules)?;
    check_writes_shape(block)?;
    check_attestations(block, parent, parent_hash, context.members)?;
    check_write_signatures(block, context.owner)?;
    check_genesis_membership(block, context.members)?;
    check_membership_change(block, parent, context.members, context.epoch)?;
    Ok(())
}

/// A block carrying a membership change holds nothing else and keeps its
/// parent's state root; the change replaces one of this epoch's members
/// (see [`crate::genesis::verify_change`]). Whether the departure is
/// true (a member unreachable for the grace period) is not a rule of the
/// chain: each member decides that for itself before it votes.
pub fn check_membership_change(
    block: &Block,
    parent: &Block,
    members: &[PublicKey],
    epoch: u64,
) -> Result<(), BlockError> {
    // Above a change, its epoch finalizes only empty blocks (they let the
    // change be finalized through a descendant); the next epoch builds on
    // it from its first block.
    if let Some(previous) = &parent.change {
        if previous.epoch > epoch && (!block.writes.is_empty() || block.change.is_some()) {
            return Err(BlockError::AfterChange);
        }
    }
    let Some(change) = &block.change else {
        return Ok(());
    };
    if !block.writes.is_empty() {
        return Err(BlockError::ChangeNotAlone);
    }
    if block.state_root != parent.state_root {
        return Err(BlockError::ChangeMovesRoot);
    }
    crate::genesis::verify_change(&block.dataset, epoch, members, change)
        .map(|_| ())
        .map_err(BlockError::Change)
}

/// A `Create` names exactly this cluster's members, each of whom signed
/// its acceptance (see [`crate::genesis`]): a chain can only begin with
/// the membership that runs it.
pub fn check_genesis_membership(block: &Block, members: &[PublicKey]) -> Result<(), BlockError> {
    for (index, write) in block.writes.iter().enumerate() {
        crate::genesis::check_create_members(write, members)
            .map_err(|reason| BlockError::Membership { index, reason })?;
    }
    Ok(())
}
