//! Client-signed write operations: what a dataset owner asks a node to
//! apply, and the only way a dataset changes.
//!
//! A [`SignedWrite`] carries a [`WriteBody`] and the owner's ed25519
//! signature over `WRITE_SIGNING_DOMAIN` and [`WriteBody::digest`], a
//! BLAKE3 digest of the body's canonical bytes. Bodies carry a
//! per-dataset sequence number: a node applies body `seq = n + 1` only after
//! `n`, so a replayed or reordered write is refused, and each document
//! operation carries a precondition on the document's version, so a
//! stale read-modify-write is refused too.

use crate::cluster::ClusterGenesis;
use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::ids::{DatasetId, DocId, Hash32, IndexId, PublicKey, Signature, Token};
use crate::limits::*;

/// Domain separation for write signatures. Changing it breaks every client.
pub const WRITE_SIGNING_DOMAIN: &[u8] = b"FLUENCE_WRITE_V1";
/// BLAKE3 key-derivation context of [`WriteBody::digest`].
const WRITE_DIGEST_CONTEXT: &str = "FLUENCE_WRITE_DIGEST_V1";

/// How a node maintains an index. The node learns the kind (it must, to
/// keep the structure) but never the field behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexKind {
    /// Blind equality tokens: equality and `$in`.
    Eq,
    /// Lewi–Wu ORE ciphertexts kept in plaintext order: ranges and sorts.
    Range,
    /// Blind tokens of normalized words: word search.
    Text,
}

impl IndexKind {
    pub fn tag(self) -> u8 {
        match self {
            IndexKind::Eq => 1,
            IndexKind::Range => 2,
            IndexKind::Text => 3,
        }
    }

    pub fn from_tag(tag: u8) -> Result<Self, DecodeError> {
        match tag {
            1 => Ok(IndexKind::Eq),
            2 => Ok(IndexKind::Range),
            3 => Ok(IndexKind::Text),
            tag => Err(DecodeError::UnknownTag {
                what: "index kind",
                tag,
            }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            IndexKind::Eq => "eq",
            IndexKind::Range => "range",
            IndexKind::Text => "text",
        }
    }
}

impl Encode for IndexKind {
    fn encode(&self, writer: &mut Writer) {
        writer.u8(self.tag());
    }
}

impl Decode for IndexKind {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        IndexKind::from_tag(reader.u8("index kind")?)
    }
}

/// One index as the node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDecl {
    pub id: IndexId,
    pub kind: IndexKind,
    /// No two documents may share a token of this index. Only `eq`
    /// indexes can be unique: their tokens are deterministic, so equal
    /// values meet at one posting key (ORE keys of long strings compare
    /// on a prefix only, and text tokens are words).
    pub unique: bool,
}

impl Encode for IndexDecl {
    fn encode(&self, writer: &mut Writer) {
        self.id.encode(writer);
        self.kind.encode(writer);
        writer.bool(self.unique);
    }
}

impl Decode for IndexDecl {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: IndexId::decode(reader)?,
            kind: IndexKind::decode(reader)?,
            unique: reader.bool("index uniqueness")?,
        })
    }
}

/// A document as stored and served: ciphertext plus its wrapped content key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedDoc {
    /// Starts at 1 and grows by one with each update; bound into the AEAD
    /// associated data so a node cannot serve an old version as current.
    pub version: u64,
    pub wrapped_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl Encode for SealedDoc {
    fn encode(&self, writer: &mut Writer) {
        writer.u64(self.version);
        writer.bytes(&self.wrapped_key);
        writer.bytes(&self.ciphertext);
    }
}

impl Decode for SealedDoc {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            version: reader.u64("document version")?,
            wrapped_key: reader.bytes(WRAPPED_KEY_LEN_MAX, "wrapped key")?,
            ciphertext: reader.bytes(DOCUMENT_CIPHERTEXT_LEN_MAX, "document ciphertext")?,
        })
    }
}

/// The values one document contributes to one index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexValues {
    /// `eq` and `text` indexes.
    Tokens(Vec<Token>),
    /// `range` indexes: full Lewi–Wu ciphertexts.
    Ore(Vec<Vec<u8>>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub index: IndexId,
    pub values: IndexValues,
}

impl Encode for IndexEntry {
    fn encode(&self, writer: &mut Writer) {
        self.index.encode(writer);
        match &self.values {
            IndexValues::Tokens(tokens) => {
                writer.u8(1);
                writer.vec(tokens);
            }
            IndexValues::Ore(cts) => {
                writer.u8(2);
                writer.len(cts.len());
                for ct in cts {
                    writer.bytes(ct);
                }
            }
        }
    }
}

impl Decode for IndexEntry {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let index = IndexId::decode(reader)?;
        let values = match reader.u8("index values")? {
            1 => IndexValues::Tokens(reader.vec(VALUES_PER_INDEX_ENTRY_MAX, "index tokens")?),
            2 => IndexValues::Ore(reader.vec_with(
                VALUES_PER_INDEX_ENTRY_MAX,
                "ore values",
                |r| r.bytes(ORE_CIPHERTEXT_LEN_MAX, "ore ciphertext"),
            )?),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "index values",
                    tag,
                })
            }
        };
        Ok(Self { index, values })
    }
}

/// What must hold for a document operation to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// The document must not exist (insert; `_id` uniqueness).
    Absent,
    /// The document must exist at exactly this version (update, delete).
    Version(u64),
}

impl Encode for Precondition {
    fn encode(&self, writer: &mut Writer) {
        match self {
            Precondition::Absent => writer.u8(1),
            Precondition::Version(v) => {
                writer.u8(2);
                writer.u64(*v);
            }
        }
    }
}

impl Decode for Precondition {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match reader.u8("precondition")? {
            1 => Ok(Precondition::Absent),
            2 => Ok(Precondition::Version(reader.u64("expected version")?)),
            tag => Err(DecodeError::UnknownTag {
                what: "precondition",
                tag,
            }),
        }
    }
}

/// One document-level operation inside a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocOp {
    /// Insert or replace a document with all of its index entries (the
    /// node drops the previous version's entries).
    Put {
        doc: DocId,
        expect: Precondition,
        sealed: SealedDoc,
        entries: Vec<IndexEntry>,
    },
    Delete {
        doc: DocId,
        expect_version: u64,
    },
}

impl DocOp {
    pub fn doc(&self) -> DocId {
        match self {
            DocOp::Put { doc, .. } | DocOp::Delete { doc, .. } => *doc,
        }
    }
}

impl Encode for DocOp {
    fn encode(&self, writer: &mut Writer) {
        match self {
            DocOp::Put {
                doc,
                expect,
                sealed,
                entries,
            } => {
                writer.u8(1);
                doc.encode(writer);
                expect.encode(writer);
                sealed.encode(writer);
                writer.vec(entries);
            }
            DocOp::Delete {
                doc,
                expect_version,
            } => {
                writer.u8(2);
                doc.encode(writer);
                writer.u64(*expect_version);
            }
        }
    }
}

impl Decode for DocOp {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match reader.u8("document operation")? {
            1 => Ok(DocOp::Put {
                doc: DocId::decode(reader)?,
                expect: Precondition::decode(reader)?,
                sealed: SealedDoc::decode(reader)?,
                entries: reader.vec(INDEXES_PER_DATASET_MAX, "index entries")?,
            }),
            2 => Ok(DocOp::Delete {
                doc: DocId::decode(reader)?,
                expect_version: reader.u64("expected version")?,
            }),
            tag => Err(DecodeError::UnknownTag {
                what: "document operation",
                tag,
            }),
        }
    }
}

/// What a signed write does to its dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Creates the dataset (must be `seq` 0). The node checks that
    /// `dataset == fluence_crypto::keys::dataset_id(owner, name_tag)`, so only
    /// the owner's key can create an id derived from it.
    Create {
        owner: PublicKey,
        name_tag: [u8; 32],
        descriptor: Vec<u8>,
        indexes: Vec<IndexDecl>,
        /// The cluster that replicates the dataset, agreed at placement
        /// (every member's acceptance inside, covered by the owner's
        /// signature); `None` only for a node that runs alone. A
        /// cluster member refuses a `Create` that does not name it.
        cluster: Option<ClusterGenesis>,
    },
    /// Applies document operations atomically, in order. `schema` is the
    /// [`schema_digest`] of the index declarations the writer computed the
    /// entries for: a node whose declarations differ (another writer
    /// changed the indexes) refuses the batch, so no document is written
    /// without the entries of an index that exists.
    Batch { schema: Hash32, ops: Vec<DocOp> },
    /// Replaces the sealed descriptor and the index set (index rebuilds).
    Reindex {
        descriptor: Vec<u8>,
        indexes: Vec<IndexDecl>,
    },
    /// Deletes the dataset and everything in it.
    Drop,
}

impl Encode for Action {
    fn encode(&self, writer: &mut Writer) {
        match self {
            Action::Create {
                owner,
                name_tag,
                descriptor,
                indexes,
                cluster,
            } => {
                writer.u8(1);
                owner.encode(writer);
                writer.fixed(name_tag);
                writer.bytes(descriptor);
                writer.vec(indexes);
                writer.option(cluster);
            }
            Action::Batch { schema, ops } => {
                writer.u8(2);
                schema.encode(writer);
                writer.vec(ops);
            }
            Action::Reindex {
                descriptor,
                indexes,
            } => {
                writer.u8(3);
                writer.bytes(descriptor);
                writer.vec(indexes);
            }
            Action::Drop => writer.u8(4),
        }
    }
}

impl Decode for Action {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match reader.u8("action")? {
            1 => Ok(Action::Create {
                owner: PublicKey::decode(reader)?,
                name_tag: reader.array("name tag")?,
                descriptor: reader.bytes(DESCRIPTOR_LEN_MAX, "descriptor")?,
                indexes: reader.vec(INDEXES_PER_DATASET_MAX, "index declarations")?,
                cluster: reader.option("cluster genesis")?,
            }),
            2 => Ok(Action::Batch {
                schema: Hash32::decode(reader)?,
                ops: reader.vec(OPS_PER_BATCH_MAX, "batch operations")?,
            }),
            3 => Ok(Action::Reindex {
                descriptor: reader.bytes(DESCRIPTOR_LEN_MAX, "descriptor")?,
                indexes: reader.vec(INDEXES_PER_DATASET_MAX, "index declarations")?,
            }),
            4 => Ok(Action::Drop),
            tag => Err(DecodeError::UnknownTag {
                what: "action",
                tag,
            }),
        }
    }
}

/// The signed part of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBody {
    pub dataset: DatasetId,
    /// 0 for `Create`, then 1, 2, ... with no gaps.
    pub seq: u64,
    pub action: Action,
}

impl Encode for WriteBody {
    fn encode(&self, writer: &mut Writer) {
        self.dataset.encode(writer);
        writer.u64(self.seq);
        self.action.encode(writer);
    }
}

impl Decode for WriteBody {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            dataset: DatasetId::decode(reader)?,
            seq: reader.u64("sequence number")?,
            action: Action::decode(reader)?,
        })
    }
}

/// BLAKE3 key-derivation context of [`schema_digest`].
const SCHEMA_DIGEST_CONTEXT: &str = "FLUENCE_INDEX_SCHEMA_V1";

/// A digest of a dataset's index declarations, in order, as a batch
/// names them (see [`Action::Batch`]).
pub fn schema_digest(indexes: &[IndexDecl]) -> Hash32 {
    let mut writer = Writer::new();
    writer.vec(indexes);
    Hash32(blake3::derive_key(
        SCHEMA_DIGEST_CONTEXT,
        &writer.into_bytes(),
    ))
}

impl WriteBody {
    /// What the owner signs (under [`WRITE_SIGNING_DOMAIN`]): a 32-byte
    /// BLAKE3 digest of the canonical body. A batch body runs to megabytes;
    /// ed25519 would hash it with SHA-512 twice to sign and once to verify,
    /// while this hashes it once, several times faster, with the same
    /// collision resistance the signature relies on.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_derive_key(WRITE_DIGEST_CONTEXT);
        hasher.update(&self.to_bytes());
        *hasher.finalize().as_bytes()
    }
}

/// A write body and the owner's signature over [`WriteBody::digest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedWrite {
    pub body: WriteBody,
    pub signature: Signature,
}

impl Encode for SignedWrite {
    fn encode(&self, writer: &mut Writer) {
        self.body.encode(writer);
        self.signature.encode(writer);
    }
}

impl Decode for SignedWrite {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            body: WriteBody::decode(reader)?,
            signature: Signature::decode(reader)?,
        })
    }
}
