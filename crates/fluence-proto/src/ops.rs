//! Operations requests: what `fluence status`, `fluence chain show` and
//! `fluence dht closest` ask a node over `/fluence/rpc/2`, and its answers. One
//! [`crate::Request::Ops`] variant carries them all, so they stay in one
//! place and out of the data path.
//!
//! Blocks travel as their canonical `fluence_chain` encoding (this crate
//! sits below the chain crate); the caller decodes them with
//! `Block::from_untrusted`. Peer ids travel as their libp2p multihash
//! bytes ([`PeerIdBytes`]; this crate does not depend on libp2p), which
//! `fluence-net` parses.

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::ids::{DatasetId, Hash32, PublicKey, Signature};
use crate::limits::{
    BLOCK_LEN_MAX, CERTIFICATE_LEN_MAX, CLUSTER_MEMBERS_MAX, ERROR_MESSAGE_LEN_MAX,
};

/// Blocks in one [`OpsResponse::Chain`] answer.
pub const CHAIN_BLOCKS_PER_ANSWER_MAX: u32 = 256;
/// Nodes (this one and those it shares a cluster with) in one
/// [`OpsResponse::Status`] answer.
pub const STATUS_MEMBERS_MAX: usize = 4096;
/// Datasets in one [`OpsResponse::Status`] answer.
pub const STATUS_DATASETS_MAX: usize = 4096;
/// Addresses listed for one member.
pub const MEMBER_ADDRS_MAX: usize = 16;
/// Bytes of one listed address.
pub const ADDR_LEN_MAX: usize = 512;
/// Bytes of a peer id: a multihash of at most 64 digest bytes with its
/// two varint headers (an ed25519 node's is 38).
pub const PEER_ID_LEN_MAX: usize = 80;
/// Nodes one [`OpsRequest::Closest`] asks for (Kademlia's k).
pub const CLOSEST_PEERS_MAX: u8 = 20;
/// Connected peers listed in one [`NetworkStatus`].
pub const CONNECTED_PEERS_LISTED_MAX: usize = 1024;
/// Buckets of a routing table (one per bit of the 256-bit key space).
pub const ROUTING_BUCKETS_MAX: usize = 256;

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
    /// The `count` nodes (1..=[`CLOSEST_PEERS_MAX`]) closest to `target`
    /// in the Kademlia key space, found by a lookup through the network.
    Closest { target: DhtTarget, count: u8 },
    /// The answering node leaves `dataset`'s cluster gracefully: it hands
    /// its seat to the next closest willing node through a membership
    /// change of `epoch` (the one it serves) and answers once the change
    /// is finalized. `signature` is the node's own departure signature
    /// (`fluence_chain::sign_departure` with its identity key): only the
    /// holder of the node's key can make it leave, and the change carries
    /// the signature as proof.
    Leave {
        dataset: DatasetId,
        epoch: u64,
        signature: Signature,
    },
}

/// A libp2p peer id as its multihash bytes (at most [`PEER_ID_LEN_MAX`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerIdBytes(pub Vec<u8>);

/// A position in the Kademlia key space, named by what sits there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhtTarget {
    Dataset(DatasetId),
    Peer(PeerIdBytes),
}

/// A node a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtPeer {
    pub peer: PeerIdBytes,
    /// Where it can be reached (multiaddrs as text); empty for the node
    /// that answered.
    pub addrs: Vec<String>,
}

/// The answer to [`OpsRequest::Closest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosestPeers {
    /// Closest first, the answering node included when it is among them.
    pub peers: Vec<DhtPeer>,
    /// False when the lookup ran out of time (then `peers` is what it found).
    pub complete: bool,
}

/// One non-empty bucket of a routing table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketStatus {
    /// `floor(log2(distance))` of its peers from the node, 0..=255.
    pub index: u8,
    pub entries: u32,
}

/// A node's place in the open network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkStatus {
    pub peer_id: PeerIdBytes,
    /// Where it listens (multiaddrs as text).
    pub listen_addrs: Vec<String>,
    /// Peers with an open connection, nodes and gateways (at most
    /// [`CONNECTED_PEERS_LISTED_MAX`] listed).
    pub connected: Vec<PeerIdBytes>,
    /// The routing table's non-empty buckets, nearest first.
    pub buckets: Vec<BucketStatus>,
}

impl NetworkStatus {
    /// Peers in the routing table.
    pub fn routing_table_size(&self) -> u64 {
        self.buckets.iter().map(|b| u64::from(b.entries)).sum()
    }
}

/// Another node the answering node shares a cluster with (or the node
/// itself), as it sees it.
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
    /// The membership epoch the node serves the dataset in (0 at
    /// creation, one more per membership change).
    pub epoch: u64,
    /// The dataset's current members, in the order their epoch lists them.
    pub members: Vec<PublicKey>,
}

/// A node's view of its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// The answering node's member key.
    pub node: PublicKey,
    /// The node itself and every node it shares a cluster with; empty
    /// for a node that runs alone.
    pub members: Vec<MemberStatus>,
    pub datasets: Vec<DatasetStatus>,
    /// Its peer id, connections and routing table; `None` for a node that
    /// runs no discovery.
    pub network: Option<NetworkStatus>,
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
    Closest(ClosestPeers),
    /// The node left the cluster: the finalized change handed its seat
    /// to `newcomer`, starting `epoch`.
    Left {
        epoch: u64,
        newcomer: PublicKey,
    },
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
            OpsRequest::Closest { target, count } => {
                writer.u8(3);
                target.encode(writer);
                writer.u8(*count);
            }
            OpsRequest::Leave {
                dataset,
                epoch,
                signature,
            } => {
                writer.u8(4);
                dataset.encode(writer);
                writer.u64(*epoch);
                signature.encode(writer);
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
            3 => {
                let target = DhtTarget::decode(reader)?;
                let count = reader.u8("count")?;
                if !(1..=CLOSEST_PEERS_MAX).contains(&count) {
                    return Err(DecodeError::Invalid("closest count must be 1 to 20"));
                }
                Ok(OpsRequest::Closest { target, count })
            }
            4 => Ok(OpsRequest::Leave {
                dataset: DatasetId::decode(reader)?,
                epoch: reader.u64("epoch")?,
                signature: Signature::decode(reader)?,
            }),
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

impl Encode for PeerIdBytes {
    fn encode(&self, writer: &mut Writer) {
        writer.bytes(&self.0);
    }
}

impl Decode for PeerIdBytes {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let bytes = reader.bytes(PEER_ID_LEN_MAX, "peer id")?;
        if bytes.is_empty() {
            return Err(DecodeError::Invalid("a peer id is never empty"));
        }
        Ok(PeerIdBytes(bytes))
    }
}

impl Encode for DhtTarget {
    fn encode(&self, writer: &mut Writer) {
        match self {
            DhtTarget::Dataset(id) => {
                writer.u8(1);
                id.encode(writer);
            }
            DhtTarget::Peer(peer) => {
                writer.u8(2);
                peer.encode(writer);
            }
        }
    }
}

impl Decode for DhtTarget {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match reader.u8("lookup target")? {
            1 => Ok(DhtTarget::Dataset(DatasetId::decode(reader)?)),
            2 => Ok(DhtTarget::Peer(PeerIdBytes::decode(reader)?)),
            tag => Err(DecodeError::UnknownTag {
                what: "lookup target",
                tag,
            }),
        }
    }
}

fn write_addrs(writer: &mut Writer, addrs: &[String]) {
    writer.len(addrs.len());
    for addr in addrs {
        writer.str(addr);
    }
}

fn read_addrs(reader: &mut Reader<'_>) -> Result<Vec<String>, DecodeError> {
    reader.vec_with(MEMBER_ADDRS_MAX, "addresses", |r| {
        r.string(ADDR_LEN_MAX, "address")
    })
}

impl Encode for DhtPeer {
    fn encode(&self, writer: &mut Writer) {
        self.peer.encode(writer);
        write_addrs(writer, &self.addrs);
    }
}

impl Decode for DhtPeer {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(DhtPeer {
            peer: PeerIdBytes::decode(reader)?,
            addrs: read_addrs(reader)?,
        })
    }
}

impl Encode for ClosestPeers {
    fn encode(&self, writer: &mut Writer) {
        writer.vec(&self.peers);
        writer.bool(self.complete);
    }
}

impl Decode for ClosestPeers {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ClosestPeers {
            peers: reader.vec(usize::from(CLOSEST_PEERS_MAX), "closest peers")?,
            complete: reader.bool("complete")?,
        })
    }
}

impl Encode for BucketStatus {
    fn encode(&self, writer: &mut Writer) {
        writer.u8(self.index);
        writer.u32(self.entries);
    }
}

impl Decode for BucketStatus {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(BucketStatus {
            index: reader.u8("bucket index")?,
            entries: reader.u32("bucket entries")?,
        })
    }
}

impl Encode for NetworkStatus {
    fn encode(&self, writer: &mut Writer) {
        self.peer_id.encode(writer);
        write_addrs(writer, &self.listen_addrs);
        writer.vec(&self.connected);
        writer.vec(&self.buckets);
    }
}

impl Decode for NetworkStatus {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(NetworkStatus {
            peer_id: PeerIdBytes::decode(reader)?,
            listen_addrs: read_addrs(reader)?,
            connected: reader.vec(CONNECTED_PEERS_LISTED_MAX, "connected peers")?,
            buckets: reader.vec(ROUTING_BUCKETS_MAX, "routing buckets")?,
        })
    }
}

impl Encode for MemberStatus {
    fn encode(&self, writer: &mut Writer) {
        self.key.encode(writer);
        write_addrs(writer, &self.addrs);
        writer.bool(self.local);
        writer.bool(self.connected);
    }
}

impl Decode for MemberStatus {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(MemberStatus {
            key: PublicKey::decode(reader)?,
            addrs: read_addrs(reader)?,
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
        writer.u64(self.epoch);
        writer.vec(&self.members);
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
            epoch: reader.u64("epoch")?,
            members: reader.vec(CLUSTER_MEMBERS_MAX, "dataset members")?,
        })
    }
}

impl Encode for NodeStatus {
    fn encode(&self, writer: &mut Writer) {
        self.node.encode(writer);
        writer.vec(&self.members);
        writer.vec(&self.datasets);
        writer.option(&self.network);
    }
}

impl Decode for NodeStatus {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(NodeStatus {
            node: PublicKey::decode(reader)?,
            members: reader.vec(STATUS_MEMBERS_MAX, "members")?,
            datasets: reader.vec(STATUS_DATASETS_MAX, "datasets")?,
            network: reader.option("network status")?,
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
            OpsResponse::Closest(closest) => {
                writer.u8(3);
                closest.encode(writer);
            }
            OpsResponse::Left { epoch, newcomer } => {
                writer.u8(4);
                writer.u64(*epoch);
                newcomer.encode(writer);
            }
        }
    }
}

impl Decode for OpsResponse {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match reader.u8("operations response")? {
            1 => Ok(OpsResponse::Status(NodeStatus::decode(reader)?)),
            2 => Ok(OpsResponse::Chain(ChainSlice::decode(reader)?)),
            3 => Ok(OpsResponse::Closest(ClosestPeers::decode(reader)?)),
            4 => Ok(OpsResponse::Left {
                epoch: reader.u64("epoch")?,
                newcomer: PublicKey::decode(reader)?,
            }),
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
                epoch: 2,
                members: vec![PublicKey([3; 32]), PublicKey([2; 32])],
            }],
            network: Some(NetworkStatus {
                peer_id: PeerIdBytes(vec![0, 36, 8, 1]),
                listen_addrs: vec!["/ip4/127.0.0.1/tcp/4001".into()],
                connected: vec![PeerIdBytes(vec![7; 38])],
                buckets: vec![
                    BucketStatus {
                        index: 250,
                        entries: 3,
                    },
                    BucketStatus {
                        index: 255,
                        entries: 20,
                    },
                ],
            }),
        }));
        round_trip(OpsResponse::Status(NodeStatus {
            node: PublicKey([2; 32]),
            members: Vec::new(),
            datasets: Vec::new(),
            network: None,
        }));
        for target in [
            DhtTarget::Dataset(DatasetId([8; 32])),
            DhtTarget::Peer(PeerIdBytes(vec![9; 38])),
        ] {
            round_trip(OpsRequest::Closest { target, count: 4 });
        }
        round_trip(OpsResponse::Closest(ClosestPeers {
            peers: vec![
                DhtPeer {
                    peer: PeerIdBytes(vec![1; 38]),
                    addrs: Vec::new(),
                },
                DhtPeer {
                    peer: PeerIdBytes(vec![2; 38]),
                    addrs: vec!["/ip4/127.0.0.1/tcp/4002".into()],
                },
            ],
            complete: false,
        }));
        round_trip(OpsRequest::Leave {
            dataset: DatasetId([1; 32]),
            epoch: 3,
            signature: Signature([7; 64]),
        });
        round_trip(OpsResponse::Left {
            epoch: 4,
            newcomer: PublicKey([5; 32]),
        });
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
    fn closest_counts_and_peer_ids_are_bounded() {
        let dataset = DhtTarget::Dataset(DatasetId([1; 32]));
        for count in [0, CLOSEST_PEERS_MAX + 1] {
            let mut writer = Writer::new();
            writer.u8(3);
            dataset.encode(&mut writer);
            writer.u8(count);
            assert!(
                OpsRequest::from_bytes(&writer.into_bytes()).is_err(),
                "{count}"
            );
        }
        for len in [0, PEER_ID_LEN_MAX + 1] {
            let bytes = OpsRequest::Closest {
                target: DhtTarget::Peer(PeerIdBytes(vec![5; len])),
                count: 1,
            }
            .to_bytes();
            assert!(OpsRequest::from_bytes(&bytes).is_err(), "{len}");
        }
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
