//! The block: its fields, canonical encoding and domain-separated hash.
//!
//! # Encoding (all integers little-endian, see `fluence_proto::codec`)
//!
//! ```text
//! version      u16   BLOCK_FORMAT_VERSION
//! dataset      [32]
//! height       u64   0 for the genesis block, then parent + 1
//! parent       [32]  hash of the parent block; all zeros for genesis
//! timestamp_ms u64   proposer's clock, milliseconds since the Unix epoch
//! writes       u32 count (<= WRITES_PER_BLOCK_MAX), then each SignedWrite
//! state_root   [32]  dataset state root after applying `writes`
//! attestations u32 count (<= CLUSTER_MEMBERS_MAX), then (member [32], signature [64])
//! evidence     u32 count (<= CLUSTER_MEMBERS_MAX), then (member [32], root [32], signature [64])
//! change       u8 0, or 1 then a MembershipChange (fluence_proto::cluster)
//! ```
//!
//! The whole encoding is at most `BLOCK_LEN_MAX` bytes. Attestations and
//! evidence are sorted by member key, strictly increasing, so one block has
//! exactly one encoding; the decoder refuses any other order.
//!
//! The block hash is BLAKE3 in key-derivation mode with context
//! [`BLOCK_HASH_CONTEXT`] over those bytes. Changing the format or the
//! context is a breaking change of every chain.

use fluence_proto::limits::{BLOCK_LEN_MAX, CLUSTER_MEMBERS_MAX, WRITES_PER_BLOCK_MAX};
use fluence_proto::{
    Action, DatasetId, Decode, DecodeError, Encode, Hash32, MembershipChange, PublicKey, Reader,
    Signature, SignedWrite, Writer,
};

/// Version of the block encoding, first in every block.
pub const BLOCK_FORMAT_VERSION: u16 = 2;
/// BLAKE3 key-derivation context of [`Block::hash`].
pub const BLOCK_HASH_CONTEXT: &str = "FLUENCE_BLOCK_V1";
/// The state root of a dataset that does not exist (before its `Create`,
/// after its `Drop`); the store reports the same after a `Drop`.
pub const ABSENT_STATE_ROOT: Hash32 = Hash32([0; 32]);

/// A cluster member's signature that executing the parent block leaves
/// the parent's state root (see [`crate::attest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attestation {
    pub member: PublicKey,
    pub signature: Signature,
}

/// A member's signed attestation that executing the parent block leaves a
/// root other than the parent's: the member computed, or claims to hold,
/// another state. Kept on the chain so arbiters can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evidence {
    pub member: PublicKey,
    pub root: Hash32,
    pub signature: Signature,
}

/// One block of a dataset's cluster chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub dataset: DatasetId,
    pub height: u64,
    pub parent: Hash32,
    pub timestamp_ms: u64,
    /// Client-signed writes, applied in this order.
    pub writes: Vec<SignedWrite>,
    /// Dataset state root after applying `writes` on the parent's state.
    pub state_root: Hash32,
    /// Members attesting the parent's state root, sorted by member.
    pub attestations: Vec<Attestation>,
    /// Members that attested another root for the parent, sorted by member.
    pub evidence: Vec<Evidence>,
    /// A membership change: the block holds no writes, its members
    /// finalize it and the new members run every block after it (see
    /// `fluence_proto::cluster`).
    pub change: Option<MembershipChange>,
}

impl Block {
    /// The first block of every dataset's chain: height 0, no writes, no
    /// dataset yet. The same on every member, derived from the id alone.
    pub fn genesis(dataset: DatasetId) -> Self {
        Block {
            dataset,
            height: 0,
            parent: Hash32([0; 32]),
            timestamp_ms: 0,
            writes: Vec::new(),
            state_root: ABSENT_STATE_ROOT,
            attestations: Vec::new(),
            evidence: Vec::new(),
            change: None,
        }
    }

    /// The block's identity: BLAKE3 (context [`BLOCK_HASH_CONTEXT`]) of its
    /// canonical encoding.
    pub fn hash(&self) -> Hash32 {
        hash_encoded(&self.to_bytes())
    }

    /// Whether the block holds a `Create`, a `Drop` or a membership
    /// change. Such a block holds that one thing only: creating or
    /// removing the dataset file cannot be tried out speculatively
    /// together with later writes, and a change ends its epoch.
    pub fn is_lifecycle(&self) -> bool {
        self.change.is_some() || self.writes.iter().any(is_lifecycle_write)
    }

    /// The sequence number of the last write, if any.
    pub fn last_seq(&self) -> Option<u64> {
        self.writes.last().map(|w| w.body.seq)
    }

    /// Encodes and checks the size bound, for a block about to be proposed.
    pub fn to_bounded_bytes(&self) -> Result<Vec<u8>, DecodeError> {
        let bytes = self.to_bytes();
        if bytes.len() > BLOCK_LEN_MAX {
            return Err(DecodeError::TooLong {
                what: "block",
                len: bytes.len() as u64,
                max: BLOCK_LEN_MAX as u64,
            });
        }
        Ok(bytes)
    }

    /// Decodes a complete block from untrusted bytes, refusing anything
    /// above `BLOCK_LEN_MAX` before reading.
    pub fn from_untrusted(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > BLOCK_LEN_MAX {
            return Err(DecodeError::TooLong {
                what: "block",
                len: bytes.len() as u64,
                max: BLOCK_LEN_MAX as u64,
            });
        }
        Block::from_bytes(bytes)
    }
}

/// Whether a write creates or drops its dataset.
pub fn is_lifecycle_write(write: &SignedWrite) -> bool {
    matches!(write.body.action, Action::Create { .. } | Action::Drop)
}

/// The block hash of already encoded block bytes.
pub fn hash_encoded(bytes: &[u8]) -> Hash32 {
    let mut hasher = blake3::Hasher::new_derive_key(BLOCK_HASH_CONTEXT);
    hasher.update(bytes);
    Hash32(*hasher.finalize().as_bytes())
}

impl Encode for Block {
    fn encode(&self, writer: &mut Writer) {
        writer.u16(BLOCK_FORMAT_VERSION);
        self.dataset.encode(writer);
        writer.u64(self.height);
        self.parent.encode(writer);
        writer.u64(self.timestamp_ms);
        writer.vec(&self.writes);
        self.state_root.encode(writer);
        writer.len(self.attestations.len());
        for attestation in &self.attestations {
            attestation.member.encode(writer);
            attestation.signature.encode(writer);
        }
        writer.len(self.evidence.len());
        for evidence in &self.evidence {
            evidence.member.encode(writer);
            evidence.root.encode(writer);
            evidence.signature.encode(writer);
        }
        writer.option(&self.change);
    }
}

impl Decode for Block {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = reader.u16("block format version")?;
        if version != BLOCK_FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                found: version,
                supported: BLOCK_FORMAT_VERSION,
            });
        }
        let dataset = DatasetId::decode(reader)?;
        let height = reader.u64("block height")?;
        let parent = Hash32::decode(reader)?;
        let timestamp_ms = reader.u64("block timestamp")?;
        let writes = reader.vec(WRITES_PER_BLOCK_MAX, "block writes")?;
        let state_root = Hash32::decode(reader)?;
        let attestations = reader.vec_with(CLUSTER_MEMBERS_MAX, "block attestations", |r| {
            Ok(Attestation {
                member: PublicKey::decode(r)?,
                signature: Signature::decode(r)?,
            })
        })?;
        let evidence = reader.vec_with(CLUSTER_MEMBERS_MAX, "block evidence", |r| {
            Ok(Evidence {
                member: PublicKey::decode(r)?,
                root: Hash32::decode(r)?,
                signature: Signature::decode(r)?,
            })
        })?;
        let change = reader.option("membership change")?;
        // One encoding per block: members strictly increasing in each list.
        if !attestations.windows(2).all(|w| w[0].member < w[1].member) {
            return Err(DecodeError::Invalid(
                "block attestations are not sorted by member without repeats",
            ));
        }
        if !evidence.windows(2).all(|w| w[0].member < w[1].member) {
            return Err(DecodeError::Invalid(
                "block evidence is not sorted by member without repeats",
            ));
        }
        Ok(Block {
            dataset,
            height,
            parent,
            timestamp_ms,
            writes,
            state_root,
            attestations,
            evidence,
            change,
        })
    }
}
