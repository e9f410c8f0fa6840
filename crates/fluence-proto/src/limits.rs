//! Every bound the protocol enforces, in one place. Decoders reject anything
//! above these; encoders never produce it. Units are last in the names.

/// One framed message on the wire (request or response).
pub const MESSAGE_LEN_MAX: usize = 64 * 1024 * 1024;
/// Plaintext BSON of one document, as in MongoDB.
pub const DOCUMENT_LEN_MAX: usize = 16 * 1024 * 1024;
/// Sealed document: plaintext plus nonce and tag, with headroom.
pub const DOCUMENT_CIPHERTEXT_LEN_MAX: usize = DOCUMENT_LEN_MAX + 1024;
/// A wrapped per-document content key (nonce + key + tag is 72 bytes).
pub const WRAPPED_KEY_LEN_MAX: usize = 256;
/// A sealed dataset descriptor (name and index declarations).
pub const DESCRIPTOR_LEN_MAX: usize = 64 * 1024;
/// Indexes one dataset may declare.
pub const INDEXES_PER_DATASET_MAX: usize = 64;
/// Index values one document may contribute to one index (array elements,
/// text words).
pub const VALUES_PER_INDEX_ENTRY_MAX: usize = 8192;
/// One order-revealing ciphertext (Lewi–Wu, 15-byte plaintexts fit easily).
pub const ORE_CIPHERTEXT_LEN_MAX: usize = 4096;
/// Write operations in one signed batch.
pub const OPS_PER_BATCH_MAX: usize = 100_000;
/// Nesting depth of a query plan.
pub const PLAN_DEPTH_MAX: usize = 32;
/// Children of one `And`/`Or` node, and tokens or ids in one leaf.
pub const PLAN_FANOUT_MAX: usize = 65_536;
/// Documents in one page of a find answer.
pub const PAGE_DOCS_MAX: usize = 100_000;
/// Datasets listed in one answer.
pub const DATASETS_LIST_MAX: usize = 100_000;
/// Human-readable error text in an answer.
pub const ERROR_MESSAGE_LEN_MAX: usize = 4096;

// Verified reads (issue 3, part 4).

/// Ids one proven read (`Request::ProveIds`) asks for.
pub const PROVE_IDS_MAX: usize = 1024;
/// Bytes of sealed documents and proofs in one proven answer, beside its
/// certified block. A member stops at this and the gateway asks for the
/// rest, so the answer always fits `MESSAGE_LEN_MAX` (a block is at most
/// `BLOCK_LEN_MAX` and is sent alone when it leaves no room).
pub const PROVEN_BYTES_MAX: usize = 16 * 1024 * 1024;

// The cluster chain (`fluence-chain`, issue 3).

/// Members of one cluster (n = 3f + 1; 4 by default, 7 in larger clusters).
/// Bounds the attestations and evidence records one block carries.
pub const CLUSTER_MEMBERS_MAX: usize = 64;
/// Client-signed writes in one block. Each is a whole batch of document
/// operations, so this bounds verification work per block, not documents.
pub const WRITES_PER_BLOCK_MAX: usize = 4096;
/// One encoded block, writes included: it must travel as one message.
pub const BLOCK_LEN_MAX: usize = MESSAGE_LEN_MAX;
/// One encoded finalization certificate as the consensus engine produced it
/// (2f + 1 signatures of 64 bytes and their signer indexes, with headroom).
pub const CERTIFICATE_LEN_MAX: usize = 16 * 1024;
