//! Operations requests: what `fluence status` and `fluence chain show`
//! ask a node over `/fluence/rpc/2`, and its answers. One
//! [`crate::Request::Ops`] variant carries them all, so they stay in one
//! place and out of the data path.
//!
//! Blocks travel as their canonical `fluence_chain` encoding (this crate
//! sits below the chain crate); the caller decodes them with
//! `Block::from_untrusted`.

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::ids::{DatasetId, Hash32, PublicKey};
use crate::limits::{
    BLOCK_LEN_MAX, CERTIFICATE_LEN_MAX, CLUSTER_MEMBERS_MAX, ERROR_MESSAGE_LEN_MAX,
};

/// Blocks in one [`OpsResponse::Chain`] answer.
pub const CHAIN_BLOCKS_PER_ANSWER_MAX: u32 = 256;
/// Datasets in one [`OpsResponse::Status`] answer.
pub const STATUS_DATASETS_MAX: usize = 4096;
/// Addresses listed for one member.
pub const MEMBER_ADDRS_MAX: usize = 16;
/// Bytes of one listed address.
pub const ADDR_LEN_MAX: usize = 512;

/// An operations request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpsRequest {
    /// The node's view of its cluster and of every dataset it replicates.
    Status,
    /// Finalized blocks of `dataset`'s chain, oldest first: from height
    /// `from` on, or the newest ones when `from` is `None`; at most
    /// `limit` (capped at [`CHAIN_BLOCKS_PER_ANSWER_MAX`]).
    Chain {
        dataset: DatasetId,
        from: Option<u64>,
        limit: u32,
    },
}

/// A member of the node's cluster as the node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    pub key: PublicKey,
    /// Where the node dials it (multiaddrs as text).
    pub addrs: Vec<String>,
    /// The answering node itself.
    pub local: bool,
    /// Whether the node holds an open stream to it now.
    pub connected: bool,
}

/// One dataset the node replicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetStatus {
    pub dataset: DatasetId,
    /// The newest finalized height the node has heard of.
    pub finalized_height: u64,
    /// The newest block applied to its store.
    pub applied_height: u64,
    /// The state root after that block.
    pub state_root: Hash32,
    /// The first block its chain holds, when it synced from a snapshot.
    pub floor_height: Option<u64>,
    /// It is rebuilding the dataset from a member's snapshot.
    pub syncing: bool,
    /// Why it stopped applying blocks, if it did.
    pub fault: Option<String>,
}

/// A node's view of its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// The answering node's member key.
    pub node: PublicKey,
    /// Empty for a node that runs alone.
    pub members: Vec<MemberStatus>,
    pub datasets: Vec<DatasetStatus>,
}

/// One finalized block with its certificate, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRecord {
    /// The block's canonical encoding.
    pub block: Vec<u8>,
    /// The consensus engine's finalization certificate (empty when a
    /// descendant's certificate finalized the block).
    pub certificate: Vec<u8>,
}

/// A stretch of a dataset's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSlice {
    /// The cluster's member keys (to read the certificates' signers).
    pub members: Vec<PublicKey>,
    /// The height of the newest stored block (0: none).
    pub tip: u64,
    /// The first block this node holds when it synced from a snapshot:
    /// the blocks below were never stored here.
    pub floor: Option<u64>,
    pub blocks: Vec<ChainRecord>,
}

/// An answer to an [`OpsRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpsResponse {
    Status(NodeStatus),
    Chain(ChainSlice),
}

impl Encode for OpsRequest {
    fn encode(&self, writer: &mut Writer) {
        match self {
            OpsRequest::Status => writer.u8(1),
            OpsRequest::Chain {
                dataset,
                from,
                limit,
            } => {
                writer.u8(2);
                dataset.encode(writer);
                writer.bool(from.is_some());
                writer.u64(from.unwrap_or(0));
                writer.u32(*limit);
            }
        }
    }
}

impl Decode for OpsRequest {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match reader.u8("operations request")? {
            1 => Ok(OpsRequest::Status),
            2 => {
                let dataset = DatasetId::decode(reader)?;
                let has_from = reader.bool("from present")?;
                let from = reader.u64("from height")?;
                if !has_from && from != 0 {
                    return Err(DecodeError::Invalid(
                        "an absent height must be encoded as 0",
                    ));
                }
                Ok(OpsRequest::Chain {
                    dataset,
                    from: has_from.then_some(from),
                    limit: reader.u32("limit")?,
                })
            }
            tag => Err(DecodeError::UnknownTag {
                what: "operations request",
                tag,
            }),
        }
    }
}

fn write_optional_height(writer: &mut Writer, height: Option<u64>) {
    writer.bool(height.is_some());
    writer.u64(height.unwrap_or(0));
}

fn read_optional_height(reader: &mut Reader<'_>) -> Result<Option<u64>, DecodeError> {
    let present = reader.bool("height present")?;
    let height = reader.u64("height")?;
    if !present && height != 0 {
        return Err(DecodeError::Invalid(
            "an absent height must be encoded as 0",
        ));
    }
    Ok(present.then_some(height))
}

impl Encode for MemberStatus {
    fn encode(&self, writer: &mut Writer) {
        self.key.encode(writer);
        writer.len(self.addrs.len());
        for addr in &self.addrs {
            writer.str(addr);
        }
        writer.bool(self.local);
        writer.bool(self.connected);
    }
}

impl Decode for MemberStatus {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(MemberStatus {
            key: PublicKey::decode(reader)?,
            addrs: reader.vec_with(MEMBER_ADDRS_MAX, "member addresses", |r| {
                r.string(ADDR_LEN_MAX, "member address")
            })?,
            local: reader.bool("local")?,
            connected: reader.bool("connected")?,
        })
    }
}

impl Encode for DatasetStatus {
    fn encode(&self, writer: &mut Writer) {
        self.dataset.encode(writer);
        writer.u64(self.finalized_height);
        writer.u64(self.applied_height);
        self.state_root.encode(writer);
        write_optional_height(writer, self.floor_height);
        writer.bool(self.syncing);
        writer.bool(self.fault.is_some());
        if let Some(fault) = &self.fault {
            let mut end = fault.len().min(ERROR_MESSAGE_LEN_MAX);
            while !fault.is_char_boundary(end) {
                end -= 1;
            }
            writer.str(&fault[..end]);
        }
    }
}

impl Decode for DatasetStatus {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(DatasetStatus {
            dataset: DatasetId::decode(reader)?,
            finalized_height: reader.u64("finalized height")?,
            applied_height: reader.u64("applied height")?,
            state_root: Hash32::decode(reader)?,
            floor_height: read_optional_height(reader)?,
            syncing: reader.bool("syncing")?,
            fault: if reader.bool("fault present")? {
                Some(reader.string(ERROR_MESSAGE_LEN_MAX, "fault")?)
            } else {
                None
            },
        })
    }
}

impl Encode for NodeStatus {
    fn encode(&self, writer: &mut Writer) {
        self.node.encode(writer);
        writer.vec(&self.members);
        writer.vec(&self.datasets);
    }
}

impl Decode for NodeStatus {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(NodeStatus {
            node: PublicKey::decode(reader)?,
            members: reader.vec(CLUSTER_MEMBERS_MAX, "members")?,
            datasets: reader.vec(STATUS_DATASETS_MAX, "datasets")?,
        })
    }
}

impl Encode for ChainRecord {
    fn encode(&self, writer: &mut Writer) {
        writer.bytes(&self.block);
        writer.bytes(&self.certificate);
    }
}

impl Decode for ChainRecord {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ChainRecord {
            block: reader.bytes(BLOCK_LEN_MAX, "block")?,
            certificate: reader.bytes(CERTIFICATE_LEN_MAX, "certificate")?,
        })
    }
}

impl Encode for ChainSlice {
    fn encode(&self, writer: &mut Writer) {
        writer.vec(&self.members);
        writer.u64(self.tip);
        write_optional_height(writer, self.floor);
        writer.vec(&self.blocks);
    }
}

impl Decode for ChainSlice {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ChainSlice {
            members: reader.vec(CLUSTER_MEMBERS_MAX, "members")?,
            tip: reader.u64("tip height")?,
            floor: read_optional_height(reader)?,
            blocks: reader.vec(CHAIN_BLOCKS_PER_ANSWER_MAX as usize, "blocks")?,
        })
    }
}

impl Encode for OpsResponse {
    fn encode(&self, writer: &mut Writer) {
        match self {
            OpsResponse::Status(status) => {
                writer.u8(1);
                status.encode(writer);
            }
            OpsResponse::Chain(slice) => {
                writer.u8(2);
                slice.encode(writer);
            }
        }
    }
}

impl Decode for OpsResponse {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match reader.u8("operations response")? {
            1 => Ok(OpsResponse::Status(NodeStatus::decode(reader)?)),
            2 => Ok(OpsResponse::Chain(ChainSlice::decode(reader)?)),
            tag => Err(DecodeError::UnknownTag {
                what: "operations response",
                tag,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Encode + Decode + PartialEq + std::fmt::Debug>(value: T) {
        let bytes = value.to_bytes();
        assert_eq!(T::from_bytes(&bytes).unwrap(), value);
        for cut in 0..bytes.len() {
            assert!(T::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn requests_and_answers_round_trip() {
        round_trip(OpsRequest::Status);
        round_trip(OpsRequest::Chain {
            dataset: DatasetId([1; 32]),
            from: Some(7),
            limit: 10,
        });
        round_trip(OpsRequest::Chain {
            dataset: DatasetId([1; 32]),
            from: None,
            limit: 10,
        });
        round_trip(OpsResponse::Status(NodeStatus {
            node: PublicKey([2; 32]),
            members: vec![MemberStatus {
                key: PublicKey([3; 32]),
                addrs: vec!["/ip4/127.0.0.1/tcp/4001".into()],
                local: false,
                connected: true,
            }],
            datasets: vec![DatasetStatus {
                dataset: DatasetId([4; 32]),
                finalized_height: 12,
                applied_height: 11,
                state_root: Hash32([5; 32]),
                floor_height: Some(3),
                syncing: false,
                fault: Some("stopped".into()),
            }],
        }));
        round_trip(OpsResponse::Chain(ChainSlice {
            members: vec![PublicKey([6; 32])],
            tip: 9,
            floor: None,
            blocks: vec![ChainRecord {
                block: vec![1, 2, 3],
                certificate: vec![4, 5],
            }],
        }));
    }

    #[test]
    fn a_non_canonical_absent_height_is_refused() {
        let mut bytes = OpsRequest::Chain {
            dataset: DatasetId([1; 32]),
            from: None,
            limit: 1,
        }
        .to_bytes();
        // The u64 after the presence flag.
        bytes[1 + 32 + 1] = 1;
        assert!(OpsRequest::from_bytes(&bytes).is_err());
    }
}
