//! Checking a block's finalization certificate without running consensus:
//! what a gateway does before it trusts a state root a member shows it.
//!
//! A certificate is the consensus engine's encoding of a simplex
//! finalization (commonware `=2026.10.0`, ed25519 scheme): the proposal
//! (round, parent view, payload = the block hash, `FLUENCE_BLOCK_V1`) and
//! the signatures of at least 2f + 1 of the n members with a bitmap of
//! who signed. Votes are signed under the namespace
//! [`CONSENSUS_NAMESPACE_DOMAIN`] ‖ dataset id, so a certificate of one
//! dataset's cluster proves nothing about another's.
//!
//! [`CertificateVerifier::verify`] accepts a certificate only if it
//! decodes within the member count, certifies exactly the given block
//! hash, names at least the quorum of distinct members of the configured
//! set and every signature verifies. A signer index is a position in the
//! sorted member set, so a certificate made by other keys fails on its
//! signatures. Each membership epoch signs its rounds with its own epoch
//! number, and the verifier is built for one epoch's members: a
//! certificate of another epoch is refused even where the keys overlap.

use commonware_codec::{Decode as _, DecodeExt as _};
use commonware_consensus::simplex::scheme::ed25519::Scheme;
use commonware_consensus::simplex::types::Finalization;
use commonware_cryptography::ed25519;
use commonware_parallel::Sequential;
use commonware_utils::ordered::Set;
use fluence_proto::limits::{CERTIFICATE_LEN_MAX, CLUSTER_MEMBERS_MAX};
use fluence_proto::{DatasetId, Hash32, PublicKey};

/// Domain of the namespace simplex signs votes under; the dataset id
/// follows it. Changing it is a breaking change of every certificate.
pub const CONSENSUS_NAMESPACE_DOMAIN: &[u8] = b"FLUENCE_CONSENSUS_V1";

/// The certificate scheme of the cluster chain.
pub type CertificateScheme = Scheme;

/// The consensus digest type: a 32-byte block hash.
pub type BlockDigest = commonware_cryptography::blake3::Digest;

/// The namespace of `dataset`'s cluster votes.
pub fn consensus_namespace(dataset: &DatasetId) -> Vec<u8> {
    let mut namespace = CONSENSUS_NAMESPACE_DOMAIN.to_vec();
    namespace.extend_from_slice(dataset.as_bytes());
    namespace
}

/// Why a certificate was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("the cluster must have 1 to {CLUSTER_MEMBERS_MAX} distinct members, not {0}")]
    BadClusterSize(usize),
    #[error("member key {0} is not a valid ed25519 key")]
    BadMemberKey(PublicKey),
    #[error("the block has no certificate of its own")]
    Missing,
    #[error("the certificate is {0} bytes, above CERTIFICATE_LEN_MAX")]
    TooLong(usize),
    #[error("the certificate does not decode: {0}")]
    Undecodable(String),
    #[error("the certificate is for block {certified}, not {expected}")]
    WrongBlock { certified: Hash32, expected: Hash32 },
    #[error("the certificate lacks a quorum of valid member signatures")]
    Invalid,
    #[error("the certificate is of membership epoch {found}, not {expected}")]
    OtherEpoch { expected: u64, found: u64 },
}

/// Checks certificates of one dataset's cluster.
#[derive(Clone)]
pub struct CertificateVerifier {
    scheme: Scheme,
    members: usize,
    epoch: u64,
}

impl std::fmt::Debug for CertificateVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateVerifier")
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

impl CertificateVerifier {
    /// A verifier for the cluster of `members` replicating `dataset`.
    pub fn new(
        dataset: &DatasetId,
        epoch: u64,
        members: &[PublicKey],
    ) -> Result<Self, CertificateError> {
        let mut keys = Vec::with_capacity(members.len());
        for member in members {
            let key = ed25519::PublicKey::decode(bytes::Bytes::copy_from_slice(&member.0))
                .map_err(|_| CertificateError::BadMemberKey(*member))?;
            keys.push(key);
        }
        let participants = Set::from_iter_dedup(keys);
        let count = participants.len();
        if count == 0 || count > CLUSTER_MEMBERS_MAX || count != members.len() {
            return Err(CertificateError::BadClusterSize(count));
        }
        Ok(CertificateVerifier {
            scheme: Scheme::verifier(&consensus_namespace(dataset), participants),
            members: count,
            epoch,
        })
    }

    /// Accepts `certificate` only as a valid finalization of the block
    /// whose hash is `block`.
    pub fn verify(&self, block: &Hash32, certificate: &[u8]) -> Result<(), CertificateError> {
        if certificate.is_empty() {
            return Err(CertificateError::Missing);
        }
        if certificate.len() > CERTIFICATE_LEN_MAX {
            return Err(CertificateError::TooLong(certificate.len()));
        }
        let finalization = Finalization::<Scheme, BlockDigest>::decode_cfg(
            bytes::Bytes::copy_from_slice(certificate),
            &self.members,
        )
        .map_err(|e| CertificateError::Undecodable(e.to_string()))?;
        let found = finalization.round().epoch().get();
        if found != self.epoch {
            return Err(CertificateError::OtherEpoch {
                expected: self.epoch,
                found,
            });
        }
        let certified = Hash32(finalization.proposal.payload.0);
        if certified != *block {
            return Err(CertificateError::WrongBlock {
                certified,
                expected: *block,
            });
        }
        // Batch verification draws its coefficients from fresh randomness,
        // so a forger cannot aim at them.
        let mut rng = rand_010::rng();
        if finalization.verify(&mut rng, &self.scheme, &Sequential) {
            Ok(())
        } else {
            Err(CertificateError::Invalid)
        }
    }
}
