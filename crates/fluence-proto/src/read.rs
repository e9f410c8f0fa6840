//! Read answers a gateway can check: pages signed by the member that
//! answered, and documents proven against a certified state root.
//!
//! # Signed pages
//!
//! A [`Request::SignedFind`](crate::Request::SignedFind) is answered with a
//! [`SignedPage`]: the page, the state it was read at ([`ReadState`]:
//! chain height, write sequence number and state root), and the member's
//! ed25519 signature (its node identity key, which is its cluster key)
//! over
//!
//! ```text
//! answer digest = BLAKE3_dk("FLUENCE_READ_ANSWER_DIGEST_V1",
//!                   query hash ‖ result hash ‖ height u64 LE ‖ seq u64 LE ‖ state root)
//! query hash    = BLAKE3_dk("FLUENCE_READ_QUERY_V1",  canonical FindQuery bytes)
//! result hash   = BLAKE3_dk("FLUENCE_READ_RESULT_V1", canonical Vec<DocEntry> ‖ Option<DocId>)
//! signature     = ed25519 sign(domain "FLUENCE_READ_ANSWER_V1", answer digest)
//! ```
//!
//! (`BLAKE3_dk` is BLAKE3 in derive-key mode; the signing domain is
//! length-prefixed as every `fluence_crypto::sign` domain.) What is hashed
//! is exactly the page answered: its documents and the cursor of the next
//! page, for exactly the query asked (dataset, schema digest, plan, cursor,
//! page size). A signed false answer is evidence against its signer.
//!
//! # Pinning a state
//!
//! A request may name the state it wants ([`StatePin`]: seq and root). A
//! member serves only its current state: one that has not reached the pin
//! waits a little for it, one that is past it (or on another root at the
//! same seq) answers `NodeError::NotAtState` with its own state, and the
//! gateway asks again at a state all members share. Pins name a state, not
//! a height: empty blocks change the height, not the state, so members a
//! few empty blocks apart still serve the same pinned read.
//!
//! # Proven documents
//!
//! A [`Request::ProveIds`](crate::Request::ProveIds) is answered with
//! [`ProvenDocs`]: per id, the sealed document (or nothing) with its
//! [`MerkleProof`] against the state root of a finalized block, and that
//! block with its finalization certificate ([`CertifiedBlock`]) unless the
//! gateway said it already holds that root verified. No signature is
//! needed: the certificate (2f + 1 members) vouches for the root, the
//! proofs for the documents.

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::ids::{DatasetId, DocId, Hash32, PublicKey, Signature};
use crate::limits::*;
use crate::merkle::MerkleProof;
use crate::message::DocEntry;
use crate::plan::Plan;
use crate::write::SealedDoc;

/// BLAKE3 key-derivation context of [`FindQuery::hash`].
pub const READ_QUERY_CONTEXT: &str = "FLUENCE_READ_QUERY_V1";
/// BLAKE3 key-derivation context of [`page_hash`].
pub const READ_RESULT_CONTEXT: &str = "FLUENCE_READ_RESULT_V1";
/// BLAKE3 key-derivation context of [`answer_digest`].
pub const READ_ANSWER_DIGEST_CONTEXT: &str = "FLUENCE_READ_ANSWER_DIGEST_V1";
/// Signing domain of a read answer.
pub const READ_ANSWER_SIGNING_DOMAIN: &[u8] = b"FLUENCE_READ_ANSWER_V1";

/// One page of a find, as a gateway asks for it: the documents `plan`
/// selects in `DocId` order after `after`, at most `page_docs_max`.
/// `schema` is the digest of the index declarations the plan was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindQuery {
    pub dataset: DatasetId,
    pub schema: Hash32,
    pub plan: Plan,
    pub after: Option<DocId>,
    pub page_docs_max: u32,
}

impl FindQuery {
    /// What a signed answer names as its query.
    pub fn hash(&self) -> Hash32 {
        derive(READ_QUERY_CONTEXT, &self.to_bytes())
    }
}

/// The state a member answered at: its last applied finalized block
/// (`height`; a single node outside a cluster reports its `seq`), the
/// dataset's write sequence number and its state root there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReadState {
    pub height: u64,
    pub seq: u64,
    pub state_root: Hash32,
}

impl ReadState {
    /// The state without its height: what a later request pins.
    pub fn pin(&self) -> StatePin {
        StatePin {
            seq: self.seq,
            state_root: self.state_root,
        }
    }
}

/// A dataset state a request wants its answer at. The root binds the seq
/// (`fluence_proto::merkle::state_root`); the seq tells a member whether it
/// is behind or past the pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatePin {
    pub seq: u64,
    pub state_root: Hash32,
}

/// A page answered and signed by one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPage {
    pub docs: Vec<DocEntry>,
    /// Cursor of the next page, `None` at the end.
    pub next: Option<DocId>,
    pub state: ReadState,
    /// The member key that signed.
    pub signer: PublicKey,
    pub signature: Signature,
}

impl SignedPage {
    /// The hash of what this page answers ([`page_hash`]).
    pub fn result_hash(&self) -> Hash32 {
        page_hash(&self.docs, &self.next)
    }

    /// What the signer signed, for the query whose hash is `query`.
    pub fn digest(&self, query: &Hash32) -> [u8; 32] {
        answer_digest(query, &self.result_hash(), &self.state)
    }
}

/// The result hash of a page: its documents and its cursor, canonically
/// encoded.
pub fn page_hash(docs: &[DocEntry], next: &Option<DocId>) -> Hash32 {
    let mut writer = Writer::new();
    writer.vec(docs);
    writer.option(next);
    derive(READ_RESULT_CONTEXT, &writer.into_bytes())
}

/// The digest a member signs: (query hash, result hash, height, seq,
/// root), fixed width.
pub fn answer_digest(query: &Hash32, result: &Hash32, state: &ReadState) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(READ_ANSWER_DIGEST_CONTEXT);
    hasher.update(query.as_bytes());
    hasher.update(result.as_bytes());
    hasher.update(&state.height.to_le_bytes());
    hasher.update(&state.seq.to_le_bytes());
    hasher.update(state.state_root.as_bytes());
    *hasher.finalize().as_bytes()
}

fn derive(context: &str, bytes: &[u8]) -> Hash32 {
    Hash32(
        *blake3::Hasher::new_derive_key(context)
            .update(bytes)
            .finalize()
            .as_bytes(),
    )
}

/// A state root the gateway has already verified (a finalized block's,
/// through its certificate): a member at that root omits the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownRoot {
    pub height: u64,
    pub state_root: Hash32,
}

/// A finalized block (canonical `fluence_chain::Block` bytes) and its
/// finalization certificate (the consensus engine's encoding), opaque
/// here: `fluence-chain` decodes and checks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifiedBlock {
    pub block: Vec<u8>,
    pub certificate: Vec<u8>,
}

/// One requested id: its sealed document if present, and the proof of
/// presence (with its digest) or absence. The id is `proof.doc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenDoc {
    pub sealed: Option<SealedDoc>,
    pub proof: MerkleProof,
}

/// Documents proven against the state root of the finalized block at
/// `height`. `docs` answers a prefix of the requested ids, in the order
/// asked, at least one: a member stops early rather than exceed
/// `PROVEN_BYTES_MAX`, and the gateway asks again for the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenDocs {
    pub height: u64,
    pub state_root: Hash32,
    pub docs: Vec<ProvenDoc>,
    /// The block at `height` with its certificate; `None` when the request
    /// named this root as known.
    pub certified: Option<CertifiedBlock>,
}

impl Encode for FindQuery {
    fn encode(&self, writer: &mut Writer) {
        self.dataset.encode(writer);
        self.schema.encode(writer);
        self.plan.encode(writer);
        writer.option(&self.after);
        writer.u32(self.page_docs_max);
    }
}

impl Decode for FindQuery {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(FindQuery {
            dataset: DatasetId::decode(reader)?,
            schema: Hash32::decode(reader)?,
            plan: Plan::decode(reader)?,
            after: reader.option("cursor")?,
            page_docs_max: reader.u32("page size")?,
        })
    }
}

impl Encode for ReadState {
    fn encode(&self, writer: &mut Writer) {
        writer.u64(self.height);
        writer.u64(self.seq);
        self.state_root.encode(writer);
    }
}

impl Decode for ReadState {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ReadState {
            height: reader.u64("read height")?,
            seq: reader.u64("read sequence number")?,
            state_root: Hash32::decode(reader)?,
        })
    }
}

impl Encode for StatePin {
    fn encode(&self, writer: &mut Writer) {
        writer.u64(self.seq);
        self.state_root.encode(writer);
    }
}

impl Decode for StatePin {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(StatePin {
            seq: reader.u64("pinned sequence number")?,
            state_root: Hash32::decode(reader)?,
        })
    }
}

impl Encode for SignedPage {
    fn encode(&self, writer: &mut Writer) {
        writer.vec(&self.docs);
        writer.option(&self.next);
        self.state.encode(writer);
        self.signer.encode(writer);
        self.signature.encode(writer);
    }
}

impl Decode for SignedPage {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SignedPage {
            docs: reader.vec(PAGE_DOCS_MAX, "page documents")?,
            next: reader.option("cursor")?,
            state: ReadState::decode(reader)?,
            signer: PublicKey::decode(reader)?,
            signature: Signature::decode(reader)?,
        })
    }
}

impl Encode for KnownRoot {
    fn encode(&self, writer: &mut Writer) {
        writer.u64(self.height);
        self.state_root.encode(writer);
    }
}

impl Decode for KnownRoot {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(KnownRoot {
            height: reader.u64("known height")?,
            state_root: Hash32::decode(reader)?,
        })
    }
}

impl Encode for CertifiedBlock {
    fn encode(&self, writer: &mut Writer) {
        writer.bytes(&self.block);
        writer.bytes(&self.certificate);
    }
}

impl Decode for CertifiedBlock {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(CertifiedBlock {
            block: reader.bytes(BLOCK_LEN_MAX, "certified block")?,
            certificate: reader.bytes(CERTIFICATE_LEN_MAX, "finalization certificate")?,
        })
    }
}

impl Encode for ProvenDoc {
    fn encode(&self, writer: &mut Writer) {
        writer.option(&self.sealed);
        self.proof.encode(writer);
    }
}

impl Decode for ProvenDoc {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ProvenDoc {
            sealed: reader.option("proven document")?,
            proof: MerkleProof::decode(reader)?,
        })
    }
}

impl Encode for ProvenDocs {
    fn encode(&self, writer: &mut Writer) {
        writer.u64(self.height);
        self.state_root.encode(writer);
        writer.vec(&self.docs);
        writer.option(&self.certified);
    }
}

impl Decode for ProvenDocs {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ProvenDocs {
            height: reader.u64("proven height")?,
            state_root: Hash32::decode(reader)?,
            docs: reader.vec(PROVE_IDS_MAX, "proven documents")?,
            certified: reader.option("certified block")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Token;
    use crate::plan::OreBound;

    fn query() -> FindQuery {
        FindQuery {
            dataset: DatasetId([1; 32]),
            schema: Hash32([2; 32]),
            plan: Plan::And(vec![
                Plan::Ids(vec![DocId([3; 16])]),
                Plan::Tokens {
                    index: crate::ids::IndexId([4; 16]),
                    any_of: vec![Token([5; 16])],
                },
                Plan::Range {
                    index: crate::ids::IndexId([6; 16]),
                    lower: Some(OreBound {
                        ct: vec![7; 3],
                        inclusive: true,
                    }),
                    upper: None,
                },
            ]),
            after: Some(DocId([8; 16])),
            page_docs_max: 1000,
        }
    }

    fn page() -> (Vec<DocEntry>, Option<DocId>) {
        let docs = vec![DocEntry {
            doc: DocId([9; 16]),
            sealed: SealedDoc {
                version: 2,
                wrapped_key: vec![10; 4],
                ciphertext: vec![11; 5],
            },
        }];
        (docs, Some(DocId([12; 16])))
    }

    /// The hashes and the digest are a protocol: these values change only
    /// with a deliberate, breaking change of the read answer format.
    #[test]
    fn digests_are_pinned() {
        let query_hash = query().hash();
        let (docs, next) = page();
        let result_hash = page_hash(&docs, &next);
        let state = ReadState {
            height: 7,
            seq: 5,
            state_root: Hash32([13; 32]),
        };
        let digest = answer_digest(&query_hash, &result_hash, &state);
        assert_eq!(
            query_hash.to_hex(),
            "22f1141f99e6a77605e8a66f408cd3f87b228c89734831c14392046c9a3c40eb"
        );
        assert_eq!(
            result_hash.to_hex(),
            "cb318b57973b143a05c16f0c57b8a4aff48e14a73a9f2ee341f065fb6e596695"
        );
        assert_eq!(
            hex::encode(digest),
            "d5c95d31036d32509fd667f518a85b3afba5bdfc43a34487b77ef3643056e471"
        );
    }

    #[test]
    fn every_field_changes_the_digest() {
        let (docs, next) = page();
        let base_state = ReadState {
            height: 7,
            seq: 5,
            state_root: Hash32([13; 32]),
        };
        let q = query().hash();
        let r = page_hash(&docs, &next);
        let base = answer_digest(&q, &r, &base_state);
        let mut other_query = query();
        other_query.page_docs_max = 999;
        assert_ne!(answer_digest(&other_query.hash(), &r, &base_state), base);
        assert_ne!(
            answer_digest(&q, &page_hash(&docs, &None), &base_state),
            base
        );
        assert_ne!(answer_digest(&q, &page_hash(&[], &next), &base_state), base);
        for state in [
            ReadState {
                height: 8,
                ..base_state
            },
            ReadState {
                seq: 6,
                ..base_state
            },
            ReadState {
                state_root: Hash32([14; 32]),
                ..base_state
            },
        ] {
            assert_ne!(answer_digest(&q, &r, &state), base);
        }
    }

    #[test]
    fn answers_round_trip_and_refuse_trailing_bytes() {
        let (docs, next) = page();
        let signed = SignedPage {
            docs,
            next,
            state: ReadState {
                height: 1,
                seq: 2,
                state_root: Hash32([3; 32]),
            },
            signer: PublicKey([4; 32]),
            signature: Signature([5; 64]),
        };
        let bytes = signed.to_bytes();
        assert_eq!(SignedPage::from_bytes(&bytes).unwrap(), signed);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(SignedPage::from_bytes(&longer).is_err());
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(SignedPage::from_bytes(&bytes[..cut]).is_err());
        }
        assert_eq!(FindQuery::from_bytes(&query().to_bytes()).unwrap(), query());
    }
}
