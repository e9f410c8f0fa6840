//! Requests a gateway sends to a node and the node's responses.
//!
//! Every message starts with [`PROTOCOL_VERSION`] (`u16` LE) so a node can
//! refuse a client from an incompatible release with a clear error instead
//! of misreading its bytes.

use crate::cluster::{OfferAnswer, RouteAnswer, CLUSTER_SIZE_MAX};
use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::ids::{DatasetId, DocId, Hash32, IndexId, PublicKey};
use crate::limits::*;
use crate::ops::{OpsRequest, OpsResponse};
use crate::plan::Plan;
use crate::read::{FindQuery, KnownRoot, ProvenDocs, SignedPage, StatePin};
use crate::write::{IndexDecl, SealedDoc, SignedWrite};

pub const PROTOCOL_VERSION: u16 = 6;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Apply a client-signed write; answered with `Written` once durable.
    Write(SignedWrite),
    /// Datasets created by this owner key.
    ListDatasets {
        owner: PublicKey,
    },
    DatasetInfo {
        dataset: DatasetId,
    },
    /// One page of the documents selected by `plan`, in `DocId` order,
    /// starting after `after`. `schema` is the digest of the index
    /// declarations the plan was made for (`write::schema_digest`): a node
    /// whose indexes differ refuses with `StaleSchema`, so a reader never
    /// uses an index that was dropped or is being rebuilt.
    Find {
        dataset: DatasetId,
        schema: Hash32,
        plan: Plan,
        after: Option<DocId>,
        page_docs_max: u32,
    },
    /// Operations (`fluence status`, `fluence chain show`): every such
    /// request is one [`OpsRequest`] (see [`crate::ops`]).
    Ops(OpsRequest),
    // Verified reads (`crate::read`); tags 20 and up.
    /// One page of `query`, answered with a [`SignedPage`] at the member's
    /// current state, or at `at` (see [`StatePin`]). The unsigned `Find`
    /// stays for tools; gateways read with this.
    SignedFind {
        query: FindQuery,
        at: Option<StatePin>,
    },
    /// The documents `ids` (sorted, without repeats, at most
    /// `PROVE_IDS_MAX`) with Merkle proofs against the state root of a
    /// finalized block, answered with [`ProvenDocs`]. With `known`, a
    /// member whose state has that root omits the block. Cluster members
    /// only: a single node has no certified blocks.
    ProveIds {
        dataset: DatasetId,
        ids: Vec<DocId>,
        known: Option<KnownRoot>,
    },
    // Placement and routing (`crate::cluster`); tags 40 and up.
    /// Would the node serve `dataset` in the cluster of `members` (it
    /// among them) at `epoch`? Answered with an [`OfferAnswer`]: its
    /// signed acceptance of that membership, or a refusal.
    Offer {
        dataset: DatasetId,
        epoch: u64,
        members: Vec<PublicKey>,
    },
    /// The cluster of `dataset`, asked of a member: answered with a
    /// [`RouteAnswer`], or `DatasetNotFound` by a node that does not serve it.
    Route {
        dataset: DatasetId,
    },
}

/// A dataset as listed for its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSummary {
    pub dataset: DatasetId,
    pub descriptor: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetInfo {
    pub dataset: DatasetId,
    pub owner: PublicKey,
    pub descriptor: Vec<u8>,
    pub indexes: Vec<IndexDecl>,
    /// Sequence number of the last applied write.
    pub seq: u64,
    /// Merkle root over the dataset's documents after that write.
    pub state_root: Hash32,
    pub doc_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocEntry {
    pub doc: DocId,
    pub sealed: SealedDoc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Written {
        seq: u64,
        state_root: Hash32,
    },
    Datasets(Vec<DatasetSummary>),
    Info(DatasetInfo),
    /// `next` is the cursor for the following page, `None` at the end.
    Page {
        docs: Vec<DocEntry>,
        next: Option<DocId>,
    },
    Error(NodeError),
    /// The answer to a [`Request::Ops`].
    Ops(OpsResponse),
    /// The answer to a `SignedFind`.
    SignedPage(SignedPage),
    /// The answer to a `ProveIds`.
    Proven(ProvenDocs),
    /// The answer to an `Offer`.
    Offer(OfferAnswer),
    /// The answer to a `Route`.
    Route(RouteAnswer),
}

/// Why a node refused a request. Stable: gateways map these to user errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("dataset not found")]
    DatasetNotFound,
    #[error("dataset already exists")]
    DatasetExists,
    #[error("signature does not verify against the dataset owner's key")]
    BadSignature,
    #[error("write sequence mismatch: node expects {expected}")]
    SeqMismatch { expected: u64 },
    #[error("operation {op_index} conflicts: document {}", match found_version { None => "is absent".to_string(), Some(v) => format!("is at version {v}") })]
    Precondition {
        op_index: u32,
        found_version: Option<u64>,
    },
    /// The batch was computed for other index declarations than the
    /// dataset's: the writer must reload them and recompute its entries.
    #[error("the dataset's indexes changed since the batch was computed")]
    StaleSchema,
    /// A `Put` would give a unique index a token another document holds.
    #[error("operation {op_index} violates unique index {index}")]
    UniqueViolation { op_index: u32, index: IndexId },
    #[error("node storage failed an integrity check: {0}")]
    Corrupt(String),
    #[error("node internal error: {0}")]
    Internal(String),
    /// A read pinned to another state than the member's: it is past the
    /// pin (it serves only its current state), on another root at the
    /// same seq, or did not reach the pin in time. Carries its own state.
    #[error("the node is at seq {seq} (root {state_root}), not at the state asked for")]
    NotAtState { seq: u64, state_root: Hash32 },
    /// The member cannot answer this now (no certified block for its state
    /// yet, its replica is not running); another member or a later
    /// attempt may.
    #[error("the node cannot answer this now: {0}")]
    Unavailable(String),
}

impl Encode for Request {
    fn encode(&self, writer: &mut Writer) {
        writer.u16(PROTOCOL_VERSION);
        match self {
            Request::Write(write) => {
                writer.u8(1);
                write.encode(writer);
            }
            Request::ListDatasets { owner } => {
                writer.u8(2);
                owner.encode(writer);
            }
            Request::DatasetInfo { dataset } => {
                writer.u8(3);
                dataset.encode(writer);
            }
            Request::Find {
                dataset,
                schema,
                plan,
                after,
                page_docs_max,
            } => {
                writer.u8(4);
                dataset.encode(writer);
                schema.encode(writer);
                plan.encode(writer);
                writer.option(after);
                writer.u32(*page_docs_max);
            }
            // Operations tags start at 32, away from the data-path ones.
            Request::Ops(request) => {
                writer.u8(32);
                request.encode(writer);
            }
            Request::SignedFind { query, at } => {
                writer.u8(20);
                query.encode(writer);
                writer.option(at);
            }
            Request::ProveIds {
                dataset,
                ids,
                known,
            } => {
                writer.u8(21);
                dataset.encode(writer);
                writer.vec(ids);
                writer.option(known);
            }
            Request::Offer {
                dataset,
                epoch,
                members,
            } => {
                writer.u8(40);
                dataset.encode(writer);
                writer.u64(*epoch);
                writer.vec(members);
            }
            Request::Route { dataset } => {
                writer.u8(41);
                dataset.encode(writer);
            }
        }
    }
}

fn read_version(reader: &mut Reader<'_>) -> Result<(), DecodeError> {
    let found = reader.u16("protocol version")?;
    if found != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            found,
            supported: PROTOCOL_VERSION,
        });
    }
    Ok(())
}

impl Decode for Request {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_version(reader)?;
        match reader.u8("request")? {
            1 => Ok(Request::Write(SignedWrite::decode(reader)?)),
            2 => Ok(Request::ListDatasets {
                owner: PublicKey::decode(reader)?,
            }),
            3 => Ok(Request::DatasetInfo {
                dataset: DatasetId::decode(reader)?,
            }),
            4 => Ok(Request::Find {
                dataset: DatasetId::decode(reader)?,
                schema: Hash32::decode(reader)?,
                plan: Plan::decode(reader)?,
                after: reader.option("cursor")?,
                page_docs_max: reader.u32("page size")?,
            }),
            32 => Ok(Request::Ops(OpsRequest::decode(reader)?)),
            20 => Ok(Request::SignedFind {
                query: FindQuery::decode(reader)?,
                at: reader.option("state pin")?,
            }),
            40 => Ok(Request::Offer {
                dataset: DatasetId::decode(reader)?,
                epoch: reader.u64("membership epoch")?,
                members: reader.vec(CLUSTER_SIZE_MAX, "offered members")?,
            }),
            41 => Ok(Request::Route {
                dataset: DatasetId::decode(reader)?,
            }),
            21 => Ok(Request::ProveIds {
                dataset: DatasetId::decode(reader)?,
                ids: reader.vec(PROVE_IDS_MAX, "ids to prove")?,
                known: reader.option("known root")?,
            }),
            tag => Err(DecodeError::UnknownTag {
                what: "request",
                tag,
            }),
        }
    }
}

impl Encode for DatasetSummary {
    fn encode(&self, writer: &mut Writer) {
        self.dataset.encode(writer);
        writer.bytes(&self.descriptor);
    }
}

impl Decode for DatasetSummary {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            dataset: DatasetId::decode(reader)?,
            descriptor: reader.bytes(DESCRIPTOR_LEN_MAX, "descriptor")?,
        })
    }
}

impl Encode for DatasetInfo {
    fn encode(&self, writer: &mut Writer) {
        self.dataset.encode(writer);
        self.owner.encode(writer);
        writer.bytes(&self.descriptor);
        writer.vec(&self.indexes);
        writer.u64(self.seq);
        self.state_root.encode(writer);
        writer.u64(self.doc_count);
    }
}

impl Decode for DatasetInfo {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            dataset: DatasetId::decode(reader)?,
            owner: PublicKey::decode(reader)?,
            descriptor: reader.bytes(DESCRIPTOR_LEN_MAX, "descriptor")?,
            indexes: reader.vec(INDEXES_PER_DATASET_MAX, "index declarations")?,
            seq: reader.u64("sequence number")?,
            state_root: Hash32::decode(reader)?,
            doc_count: reader.u64("document count")?,
        })
    }
}

impl Encode for DocEntry {
    fn encode(&self, writer: &mut Writer) {
        self.doc.encode(writer);
        self.sealed.encode(writer);
    }
}

impl Decode for DocEntry {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            doc: DocId::decode(reader)?,
            sealed: SealedDoc::decode(reader)?,
        })
    }
}

fn write_message(writer: &mut Writer, text: &str) {
    // Error texts are informative only; cut them at a char boundary rather
    // than refuse to report an error.
    let mut end = text.len().min(ERROR_MESSAGE_LEN_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    writer.str(&text[..end]);
}

impl Encode for NodeError {
    fn encode(&self, writer: &mut Writer) {
        match self {
            NodeError::BadRequest(text) => {
                writer.u8(1);
                write_message(writer, text);
            }
            NodeError::DatasetNotFound => writer.u8(2),
            NodeError::DatasetExists => writer.u8(3),
            NodeError::BadSignature => writer.u8(4),
            NodeError::SeqMismatch { expected } => {
                writer.u8(5);
                writer.u64(*expected);
            }
            NodeError::Precondition {
                op_index,
                found_version,
            } => {
                writer.u8(6);
                writer.u32(*op_index);
                writer.option(found_version);
            }
            NodeError::Corrupt(text) => {
                writer.u8(7);
                write_message(writer, text);
            }
            NodeError::Internal(text) => {
                writer.u8(8);
                write_message(writer, text);
            }
            NodeError::StaleSchema => writer.u8(10),
            NodeError::UniqueViolation { op_index, index } => {
                writer.u8(9);
                writer.u32(*op_index);
                index.encode(writer);
            }
            NodeError::NotAtState { seq, state_root } => {
                writer.u8(20);
                writer.u64(*seq);
                state_root.encode(writer);
            }
            NodeError::Unavailable(text) => {
                writer.u8(21);
                write_message(writer, text);
            }
        }
    }
}

impl Decode for NodeError {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let text = |r: &mut Reader<'_>| r.string(ERROR_MESSAGE_LEN_MAX, "error message");
        match reader.u8("node error")? {
            1 => Ok(NodeError::BadRequest(text(reader)?)),
            2 => Ok(NodeError::DatasetNotFound),
            3 => Ok(NodeError::DatasetExists),
            4 => Ok(NodeError::BadSignature),
            5 => Ok(NodeError::SeqMismatch {
                expected: reader.u64("expected sequence")?,
            }),
            6 => Ok(NodeError::Precondition {
                op_index: reader.u32("operation index")?,
                found_version: reader.option("found version")?,
            }),
            7 => Ok(NodeError::Corrupt(text(reader)?)),
            8 => Ok(NodeError::Internal(text(reader)?)),
            9 => Ok(NodeError::UniqueViolation {
                op_index: reader.u32("operation index")?,
                index: IndexId::decode(reader)?,
            }),
            10 => Ok(NodeError::StaleSchema),
            20 => Ok(NodeError::NotAtState {
                seq: reader.u64("node sequence number")?,
                state_root: Hash32::decode(reader)?,
            }),
            21 => Ok(NodeError::Unavailable(text(reader)?)),
            tag => Err(DecodeError::UnknownTag {
                what: "node error",
                tag,
            }),
        }
    }
}

impl Encode for Response {
    fn encode(&self, writer: &mut Writer) {
        writer.u16(PROTOCOL_VERSION);
        match self {
            Response::Written { seq, state_root } => {
                writer.u8(1);
                writer.u64(*seq);
                state_root.encode(writer);
            }
            Response::Datasets(list) => {
                writer.u8(2);
                writer.vec(list);
            }
            Response::Info(info) => {
                writer.u8(3);
                info.encode(writer);
            }
            Response::Page { docs, next } => {
                writer.u8(4);
                writer.vec(docs);
                writer.option(next);
            }
            Response::Error(error) => {
                writer.u8(5);
                error.encode(writer);
            }
            Response::Ops(answer) => {
                writer.u8(32);
                answer.encode(writer);
            }
            Response::SignedPage(page) => {
                writer.u8(20);
                page.encode(writer);
            }
            Response::Proven(proven) => {
                writer.u8(21);
                proven.encode(writer);
            }
            Response::Offer(answer) => {
                writer.u8(40);
                answer.encode(writer);
            }
            Response::Route(route) => {
                writer.u8(41);
                route.encode(writer);
            }
        }
    }
}

impl Decode for Response {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_version(reader)?;
        match reader.u8("response")? {
            1 => Ok(Response::Written {
                seq: reader.u64("sequence number")?,
                state_root: Hash32::decode(reader)?,
            }),
            2 => Ok(Response::Datasets(
                reader.vec(DATASETS_LIST_MAX, "dataset list")?,
            )),
            3 => Ok(Response::Info(DatasetInfo::decode(reader)?)),
            4 => Ok(Response::Page {
                docs: reader.vec(PAGE_DOCS_MAX, "page documents")?,
                next: reader.option("cursor")?,
            }),
            5 => Ok(Response::Error(NodeError::decode(reader)?)),
            32 => Ok(Response::Ops(OpsResponse::decode(reader)?)),
            20 => Ok(Response::SignedPage(SignedPage::decode(reader)?)),
            21 => Ok(Response::Proven(ProvenDocs::decode(reader)?)),
            40 => Ok(Response::Offer(OfferAnswer::decode(reader)?)),
            41 => Ok(Response::Route(RouteAnswer::decode(reader)?)),
            tag => Err(DecodeError::UnknownTag {
                what: "response",
                tag,
            }),
        }
    }
}
