//! [`ChainBlock`]: a `fluence_chain::Block` as commonware's consensus and
//! marshal see it.
//!
//! On their wire and in their archives a block is `u32` length (little
//! endian, at most `BLOCK_LEN_MAX`) followed by the block's canonical
//! encoding, so it delimits itself inside larger messages. The digest is
//! the block hash (`FLUENCE_BLOCK_V1`), computed once when the block is
//! built or decoded.
//!
//! Each membership epoch runs its own consensus instance, whose first
//! block (height 0 for marshal) is the block the epoch starts on: the
//! chain's genesis for epoch 0, the membership change for later ones. So
//! the height consensus sees is the chain height minus that base height
//! (the codec's configuration); the block itself keeps its chain height.

use bytes::{Buf, BufMut};
use commonware_codec::{EncodeSize, Error as CodecError, Read, Write};
use commonware_consensus::types::Height;
use commonware_cryptography::Digestible;
use fluence_chain::{hash_encoded, Block};
use fluence_proto::limits::BLOCK_LEN_MAX;
use fluence_proto::{DatasetId, Encode, Hash32};

/// The digest consensus orders: a 32-byte block hash (BLAKE3, context
/// `FLUENCE_BLOCK_V1`), carried in commonware's BLAKE3 digest type.
pub type Digest = commonware_cryptography::blake3::Digest;

/// Converts a chain hash to the consensus digest.
pub fn to_digest(hash: &Hash32) -> Digest {
    commonware_cryptography::blake3::Digest(hash.0)
}

/// Converts a consensus digest to a chain hash.
pub fn to_hash(digest: &Digest) -> Hash32 {
    Hash32(digest.0)
}

/// A block with its canonical bytes' hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBlock {
    block: Block,
    hash: Hash32,
    encoded_len: usize,
    /// Chain height of the epoch's first block (see the module docs).
    base: u64,
}

impl ChainBlock {
    /// Wraps a block, hashing its canonical bytes. Fails if the encoding is
    /// above `BLOCK_LEN_MAX` (such a block could not be sent).
    pub fn new(block: Block) -> Result<Self, fluence_proto::DecodeError> {
        Self::in_epoch(block, 0)
    }

    /// Wraps a block of the epoch that starts on the block at chain
    /// height `base`.
    pub fn in_epoch(block: Block, base: u64) -> Result<Self, fluence_proto::DecodeError> {
        if block.height < base {
            return Err(fluence_proto::DecodeError::Invalid(
                "a block below its epoch's first block",
            ));
        }
        let bytes = block.to_bounded_bytes()?;
        Ok(ChainBlock {
            hash: hash_encoded(&bytes),
            encoded_len: bytes.len(),
            block,
            base,
        })
    }

    /// The genesis block of `dataset`'s chain.
    pub fn genesis(dataset: DatasetId) -> Self {
        Self::new(Block::genesis(dataset)).expect("the genesis block is a few dozen bytes")
    }

    /// Chain height of the first block of this block's epoch.
    pub fn base(&self) -> u64 {
        self.base
    }

    pub fn block(&self) -> &Block {
        &self.block
    }

    pub fn hash(&self) -> Hash32 {
        self.hash
    }
}

impl Write for ChainBlock {
    fn write(&self, buf: &mut impl BufMut) {
        let bytes = self.block.to_bytes();
        debug_assert_eq!(bytes.len(), self.encoded_len);
        buf.put_u32_le(u32::try_from(bytes.len()).expect("blocks are bounded by BLOCK_LEN_MAX"));
        buf.put_slice(&bytes);
    }
}

impl EncodeSize for ChainBlock {
    fn encode_size(&self) -> usize {
        4 + self.encoded_len
    }
}

impl Read for ChainBlock {
    /// The chain height of the epoch's first block.
    type Cfg = u64;

    fn read_cfg(buf: &mut impl Buf, base: &u64) -> Result<Self, CodecError> {
        if buf.remaining() < 4 {
            return Err(CodecError::EndOfBuffer);
        }
        let len = buf.get_u32_le() as usize;
        if len > BLOCK_LEN_MAX {
            return Err(CodecError::InvalidLength(len));
        }
        if buf.remaining() < len {
            return Err(CodecError::EndOfBuffer);
        }
        let bytes = buf.copy_to_bytes(len);
        let block = Block::from_untrusted(&bytes)
            .map_err(|_| CodecError::Invalid("fluence block", "not a canonical block"))?;
        if block.height < *base {
            return Err(CodecError::Invalid(
                "fluence block",
                "below its epoch's first block",
            ));
        }
        Ok(ChainBlock {
            block,
            hash: hash_encoded(&bytes),
            encoded_len: len,
            base: *base,
        })
    }
}

impl Digestible for ChainBlock {
    type Digest = Digest;

    fn digest(&self) -> Digest {
        to_digest(&self.hash)
    }
}

impl commonware_consensus::Heightable for ChainBlock {
    fn height(&self) -> Height {
        Height::new(self.block.height - self.base)
    }
}

impl commonware_consensus::Block for ChainBlock {
    fn parent(&self) -> Digest {
        to_digest(&self.block.parent)
    }
}

impl commonware_consensus::BoundedBlock for ChainBlock {
    fn max_encode_size(_: &u64) -> usize {
        4 + BLOCK_LEN_MAX
    }
}
