//! Fluence wire and storage types with one canonical, length-bounded
//! binary encoding.
//!
//! Owns: the messages gateways and nodes exchange, client-signed write
//! operations, query plans, identifiers, and every size limit. Must not
//! depend on tokio, libp2p or any storage engine: it is plain data plus the
//! codec, so every other crate can share it.
//!
//! Encoding rules (see [`codec`]): little-endian fixed-width integers,
//! `u32` length prefixes checked against a named `*_MAX` in [`limits`],
//! `u8` tags, complete consumption. Anything signed or hashed uses these
//! bytes behind a domain-separation string.

pub mod cluster;
pub mod codec;
pub mod ids;
pub mod limits;
pub mod merkle;
pub mod message;
pub mod ops;
pub mod plan;
pub mod read;
pub mod snapshot;
pub mod write;

pub use cluster::{
    ClusterGenesis, Departure, MemberAddrs, MembershipChange, MembershipError, OfferAnswer,
    Refusal, RouteAnswer, Seat, CLUSTER_SIZE_MAX, LEAVE_SIGNING_DOMAIN, SERVE_SIGNING_DOMAIN,
};
pub use codec::{Decode, DecodeError, Encode, Reader, Writer};
pub use ids::{DatasetId, DocId, Hash32, IndexId, PublicKey, Signature, Token};
pub use merkle::{verify_proof, DocDigest, MerkleProof, ProofError};
pub use message::{
    DatasetInfo, DatasetSummary, DocEntry, NodeError, Request, Response, PROTOCOL_VERSION,
};
pub use ops::{
    ChainRecord, ChainSlice, DatasetStatus, MemberStatus, NodeStatus, OpsRequest, OpsResponse,
};
pub use plan::{OreBound, Plan};
pub use read::{
    CertifiedBlock, FindQuery, KnownRoot, ProvenDoc, ProvenDocs, ReadState, SignedPage, StatePin,
    READ_ANSWER_SIGNING_DOMAIN,
};
pub use snapshot::{SnapshotDoc, SnapshotHeader};
pub use write::{
    schema_digest, Action, DocOp, IndexDecl, IndexEntry, IndexKind, IndexValues, Precondition,
    SealedDoc, SignedWrite, WriteBody, WRITE_SIGNING_DOMAIN,
};
