//! Finalization certificates as stored on the chain: decoding them and
//! checking them against the cluster's member keys.
//!
//! A certificate is commonware's encoded simplex `Finalization` (the
//! proposal: round, parent view and block digest; then the signer bitmap
//! over the sorted member set and one ed25519 signature per signer). It
//! proves a block final when it verifies under the cluster's namespace
//! ([`CONSENSUS_NAMESPACE_DOMAIN`] ‖ dataset id), carries at least 2f + 1
//! signatures of members (commonware checks the quorum) and names the
//! block's hash as its payload.
//!
//! This is the one place the replica checks a certificate it did not
//! assemble itself: the floor block a member syncs from, and what
//! `fluence chain show` reports.

use commonware_codec::Decode as _;
use commonware_consensus::simplex::types::Finalization;
use commonware_parallel::Sequential;
use commonware_utils::ordered::{Quorum as _, Set};
use fluence_chain::FinalizedBlock;
use fluence_proto::limits::{CERTIFICATE_LEN_MAX, CLUSTER_MEMBERS_MAX};
use fluence_proto::{DatasetId, PublicKey};
use rand_core::CryptoRng;

use crate::app::Scheme;
use crate::block::{to_digest, Digest};
use crate::keys::{to_consensus_key, to_public_key};

/// Domain of the namespace simplex signs votes under; the dataset id
/// follows it, so a vote in one cluster is worthless in another.
pub const CONSENSUS_NAMESPACE_DOMAIN: &[u8] = b"FLUENCE_CONSENSUS_V1";

/// A decoded finalization certificate of one cluster.
pub type FinalizationCertificate = Finalization<Scheme, Digest>;

/// Why a certificate does not prove a block final.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("the block has no certificate of its own (a descendant's finalized it)")]
    Missing,
    #[error("the certificate is {0} bytes, above CERTIFICATE_LEN_MAX")]
    TooLong(usize),
    #[error("the certificate does not decode: {0}")]
    Malformed(String),
    #[error("the cluster has {0} members; a cluster has 1 to CLUSTER_MEMBERS_MAX")]
    BadClusterSize(usize),
    #[error("member key {0} is not a valid ed25519 key")]
    BadMemberKey(PublicKey),
    #[error("the certificate finalizes another block")]
    OtherBlock,
    #[error("the certificate is from another epoch")]
    OtherEpoch,
    #[error("the certificate's signatures do not verify against 2f + 1 members of the cluster")]
    BadSignatures,
}

/// The namespace the members of `dataset`'s cluster sign votes under.
pub fn namespace(dataset: &DatasetId) -> Vec<u8> {
    let mut namespace = CONSENSUS_NAMESPACE_DOMAIN.to_vec();
    namespace.extend_from_slice(dataset.as_bytes());
    namespace
}

/// The cluster's members as commonware's sorted participant set (signer
/// indexes in certificates count in this order).
pub fn participants(
    members: &[PublicKey],
) -> Result<Set<commonware_cryptography::ed25519::PublicKey>, CertificateError> {
    if members.is_empty() || members.len() > CLUSTER_MEMBERS_MAX {
        return Err(CertificateError::BadClusterSize(members.len()));
    }
    let mut keys = Vec::with_capacity(members.len());
    for member in members {
        keys.push(to_consensus_key(member).ok_or(CertificateError::BadMemberKey(*member))?);
    }
    Ok(Set::from_iter_dedup(keys))
}

/// Decodes a certificate without checking it (its size is bounded by the
/// cluster size `members_len`).
pub fn decode(
    bytes: &[u8],
    members_len: usize,
) -> Result<FinalizationCertificate, CertificateError> {
    if bytes.is_empty() {
        return Err(CertificateError::Missing);
    }
    if bytes.len() > CERTIFICATE_LEN_MAX {
        return Err(CertificateError::TooLong(bytes.len()));
    }
    // The whole input must be one finalization (trailing bytes are refused).
    FinalizationCertificate::decode_cfg(bytes::Bytes::copy_from_slice(bytes), &members_len)
        .map_err(|e| CertificateError::Malformed(e.to_string()))
}

/// Checks that `finalized`'s certificate proves its block final in the
/// cluster of `members` replicating `dataset`, and returns it decoded.
pub fn verify_finalization(
    rng: &mut impl CryptoRng,
    dataset: &DatasetId,
    members: &[PublicKey],
    finalized: &FinalizedBlock,
) -> Result<FinalizationCertificate, CertificateError> {
    let participants = participants(members)?;
    let finalization = decode(&finalized.certificate, participants.len())?;
    if finalized.block.dataset != *dataset
        || finalization.proposal.payload != to_digest(&finalized.block.hash())
    {
        return Err(CertificateError::OtherBlock);
    }
    // Membership is fixed, so the whole chain is epoch 0.
    if finalization.round().epoch() != commonware_consensus::types::Epoch::zero() {
        return Err(CertificateError::OtherEpoch);
    }
    let verifier = Scheme::verifier(&namespace(dataset), participants);
    if !finalization.verify(rng, &verifier, &Sequential) {
        return Err(CertificateError::BadSignatures);
    }
    Ok(finalization)
}

/// The members whose signatures a certificate carries, in member order
/// (not verified: see [`verify_finalization`]).
pub fn signers(
    certificate: &FinalizationCertificate,
    members: &[PublicKey],
) -> Result<Vec<PublicKey>, CertificateError> {
    let participants = participants(members)?;
    let mut out = Vec::new();
    for signer in certificate.certificate.signers.iter() {
        let key = participants
            .key(signer)
            .ok_or_else(|| CertificateError::Malformed("signer index out of range".into()))?;
        out.push(to_public_key(key));
    }
    Ok(out)
}
