//! Finalization certificates as stored on the chain: decoding them and
//! checking them against the cluster's member keys.
//!
//! A certificate is commonware's encoded simplex `Finalization` (the
//! proposal: round, parent view and block digest; then the signer bitmap
//! over the sorted member set and one ed25519 signature per signer). It
//! proves a block final when it verifies under the cluster's namespace
//! ([`CONSENSUS_NAMESPACE_DOMAIN`] ‖ dataset id), carries at least 2f + 1
//! signatures of members (commonware checks the quorum) and names the
//! block's hash as its payload. The check itself is
//! [`fluence_chain::CertificateVerifier`], the one gateways run; this
//! module adds decoding (a synced member starts consensus from the floor's
//! finalization) and the epoch.
//!
//! This is the one place the replica checks a certificate it did not
//! assemble itself: the floor block a member syncs from, and what
//! `fluence chain show` reports.

use commonware_codec::Decode as _;
use commonware_consensus::simplex::types::Finalization;
use commonware_utils::ordered::{Quorum as _, Set};
use fluence_chain::{CertificateVerifier, FinalizedBlock};
use fluence_proto::limits::{CERTIFICATE_LEN_MAX, CLUSTER_MEMBERS_MAX};
use fluence_proto::{DatasetId, PublicKey};

use crate::app::Scheme;
use crate::block::Digest;
use crate::keys::{to_consensus_key, to_public_key};

pub use fluence_chain::CONSENSUS_NAMESPACE_DOMAIN;

/// A decoded finalization certificate of one cluster.
pub type FinalizationCertificate = Finalization<Scheme, Digest>;

/// Why a certificate does not prove a block final here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// Refused by the certificate check gateways run too
    /// ([`fluence_chain::CertificateVerifier`]).
    #[error(transparent)]
    Check(#[from] fluence_chain::CertificateError),
    #[error("the block is of another dataset")]
    OtherDataset,
}

/// The cluster's members as commonware's sorted participant set (signer
/// indexes in certificates count in this order).
fn participants(
    members: &[PublicKey],
) -> Result<Set<commonware_cryptography::ed25519::PublicKey>, CertificateError> {
    if members.is_empty() || members.len() > CLUSTER_MEMBERS_MAX {
        return Err(fluence_chain::CertificateError::BadClusterSize(members.len()).into());
    }
    let mut keys = Vec::with_capacity(members.len());
    for member in members {
        keys.push(
            to_consensus_key(member)
                .ok_or(fluence_chain::CertificateError::BadMemberKey(*member))?,
        );
    }
    Ok(Set::from_iter_dedup(keys))
}

/// Decodes a certificate without checking it (its size is bounded by the
/// cluster size `members_len`).
pub fn decode(
    bytes: &[u8],
    members_len: usize,
) -> Result<FinalizationCertificate, CertificateError> {
    use fluence_chain::CertificateError as Check;
    if bytes.is_empty() {
        return Err(Check::Missing.into());
    }
    if bytes.len() > CERTIFICATE_LEN_MAX {
        return Err(Check::TooLong(bytes.len()).into());
    }
    // The whole input must be one finalization (trailing bytes are refused).
    FinalizationCertificate::decode_cfg(bytes::Bytes::copy_from_slice(bytes), &members_len)
        .map_err(|e| Check::Undecodable(e.to_string()).into())
}

/// Checks that `finalized`'s certificate proves its block final in the
/// cluster of `members` replicating `dataset` at membership `epoch` (the
/// gateways' check), and returns it decoded.
pub fn verify_finalization(
    dataset: &DatasetId,
    epoch: u64,
    members: &[PublicKey],
    finalized: &FinalizedBlock,
) -> Result<FinalizationCertificate, CertificateError> {
    if finalized.block.dataset != *dataset {
        return Err(CertificateError::OtherDataset);
    }
    CertificateVerifier::new(dataset, epoch, members)?
        .verify(&finalized.block.hash(), &finalized.certificate)?;
    decode(&finalized.certificate, members.len())
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
        let key = participants.key(signer).ok_or_else(|| {
            fluence_chain::CertificateError::Undecodable("signer index out of range".into())
        })?;
        out.push(to_public_key(key));
    }
    Ok(out)
}
