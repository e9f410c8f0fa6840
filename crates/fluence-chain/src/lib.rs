//! Fluence cluster chain: the block format of a dataset's chain, its canonical encoding and hash, the rules a block must satisfy, and the store of finalized blocks.
//!
//! Owns: what a block is and when it is valid, short of executing it.
//! Must not depend on networking or on running the consensus engine:
//! blocks are plain data verified with plain functions, so the consensus
//! replica, the CLI (`fluence chain show`), gateways checking proofs and,
//! later, arbiters share them. It uses commonware's consensus crate only
//! for the certificate type and its codec (see [`certificate`]).
//!
//! # One chain per dataset
//!
//! Each dataset is replicated by a cluster of n = 3f + 1 members that order
//! the owner's signed writes into a chain of [`Block`]s. A block holds the
//! dataset id, its height, its parent's hash, the proposer's timestamp, the
//! client-signed writes in the order they apply, the dataset state root
//! after applying them, and the members' signed attestations of the
//! parent's state root ([`attest`]); an attestation naming another root is
//! kept as [`Evidence`] against that member. Height 0 is the implicit
//! [`Block::genesis`] of the dataset id; the dataset itself appears with its
//! owner's `Create` write in a later block.
//!
//! # Rules ([`verify`])
//!
//! A member votes for a block only if it extends its parent (dataset,
//! height + 1, parent hash, timestamp not before the parent's), its
//! timestamp is not ahead of the member's clock by more than
//! [`ChainRules::timestamp_ahead_max_ms`], its writes are for this dataset
//! with consecutive sequence numbers (a `Create` or `Drop` alone in its
//! block), every write is signed by the dataset owner, the attestations
//! and evidence are by members with valid signatures, and, checked by the
//! replica against its store, executing the writes yields the claimed
//! state root. A `Create` must carry the cluster's genesis membership
//! (exactly the chain's members, each with a signed acceptance:
//! [`genesis`]).
//!
//! # Storage ([`ChainStore`])
//!
//! Finalized blocks with their finalization certificates, one redb file per
//! dataset; the certificate is stored as the consensus engine encoded it.
//!
//! # Certificates ([`certificate`])
//!
//! [`CertificateVerifier`] checks that a certificate finalizes a given
//! block with a quorum of the configured members' signatures, using the
//! engine's certificate type and codec but no engine: a gateway checks the
//! state root behind a Merkle proof with it.
//!
//! Every encoding is bounded by limits in `fluence_proto::limits`
//! (`WRITES_PER_BLOCK_MAX`, `CLUSTER_MEMBERS_MAX`, `BLOCK_LEN_MAX`,
//! `CERTIFICATE_LEN_MAX`); the domain strings are [`BLOCK_HASH_CONTEXT`]
//! and [`ATTESTATION_SIGNING_DOMAIN`].

pub mod attest;
pub mod block;
pub mod certificate;
pub mod genesis;
pub mod history;
pub mod store;
pub mod verify;

pub use attest::{AttestationBody, SignedAttestation, ATTESTATION_SIGNING_DOMAIN};
pub use block::{
    hash_encoded, is_lifecycle_write, Attestation, Block, Evidence, ABSENT_STATE_ROOT,
    BLOCK_FORMAT_VERSION, BLOCK_HASH_CONTEXT,
};
pub use certificate::{
    consensus_namespace, CertificateError, CertificateVerifier, CONSENSUS_NAMESPACE_DOMAIN,
};
pub use genesis::{
    sign_acceptance, sign_departure, verify_change, verify_create, verify_genesis, CreateError,
};
pub use history::{
    verify_certified_change, verify_history, CertifiedChange, ClusterHistory, Epoch, HistoryError,
    CHANGE_PROOF_BLOCKS_MAX, HISTORY_CHANGES_MAX,
};
pub use store::{
    write_digests, ChainStore, ChainStoreError, ChainTip, FinalizedBlock, WriteLocation,
    CHAIN_RANGE_MAX,
};
pub use verify::{
    check_attestations, check_genesis_membership, check_link, check_timestamp,
    check_write_signatures, check_writes_shape, verify_block, verify_write_signature, BlockError,
    ChainRules, VerifyContext, WriteAuthError,
};
