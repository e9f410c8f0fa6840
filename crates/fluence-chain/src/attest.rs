//! State-root attestations: a member's signed statement "executing block
//! `block` at `height` of `dataset` leaves state root `root`".
//!
//! The block hash is part of the statement: before finalization two blocks
//! can compete for one height (a later view may replace a block that never
//! finalized), and an honest member that executed the losing one must not
//! look like a member that disagrees about the winner. Evidence is
//! therefore an attestation for the same block with another root.
//!
//! The signed message is the canonical encoding of [`AttestationBody`]
//! (dataset, height, block, root: 104 bytes) under the domain
//! [`ATTESTATION_SIGNING_DOMAIN`], with `fluence_crypto::sign`'s
//! length-prefixed domain separation. Members sign with their node key,
//! the same ed25519 key the cluster's consensus uses.

use fluence_crypto::sign::{self, SigningKey};
use fluence_proto::{
    DatasetId, Decode, DecodeError, Encode, Hash32, PublicKey, Reader, Signature, Writer,
};

/// Domain separation of attestation signatures. Changing it breaks every
/// chain.
pub const ATTESTATION_SIGNING_DOMAIN: &[u8] = b"FLUENCE_ROOT_ATTESTATION_V1";

/// What a member attests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttestationBody {
    pub dataset: DatasetId,
    pub height: u64,
    /// Hash of the executed block.
    pub block: Hash32,
    pub root: Hash32,
}

impl Encode for AttestationBody {
    fn encode(&self, writer: &mut Writer) {
        self.dataset.encode(writer);
        writer.u64(self.height);
        self.block.encode(writer);
        self.root.encode(writer);
    }
}

impl Decode for AttestationBody {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(AttestationBody {
            dataset: DatasetId::decode(reader)?,
            height: reader.u64("attested height")?,
            block: Hash32::decode(reader)?,
            root: Hash32::decode(reader)?,
        })
    }
}

/// An attestation as it travels between members before a proposer puts it
/// into a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedAttestation {
    pub body: AttestationBody,
    pub member: PublicKey,
    pub signature: Signature,
}

impl SignedAttestation {
    /// Signs `body` with a member's key.
    pub fn sign(key: &SigningKey, body: AttestationBody) -> Self {
        SignedAttestation {
            body,
            member: PublicKey(key.public_key()),
            signature: Signature(key.sign(ATTESTATION_SIGNING_DOMAIN, &body.to_bytes())),
        }
    }

    /// Checks the signature against the named member's key.
    pub fn verify(&self) -> Result<(), fluence_crypto::CryptoError> {
        verify_attestation(&self.member, &self.body, &self.signature)
    }
}

impl Encode for SignedAttestation {
    fn encode(&self, writer: &mut Writer) {
        self.body.encode(writer);
        self.member.encode(writer);
        self.signature.encode(writer);
    }
}

impl Decode for SignedAttestation {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SignedAttestation {
            body: AttestationBody::decode(reader)?,
            member: PublicKey::decode(reader)?,
            signature: Signature::decode(reader)?,
        })
    }
}

/// Verifies one attestation signature (strict ed25519, weak keys refused).
pub fn verify_attestation(
    member: &PublicKey,
    body: &AttestationBody,
    signature: &Signature,
) -> Result<(), fluence_crypto::CryptoError> {
    sign::verify(
        &member.0,
        ATTESTATION_SIGNING_DOMAIN,
        &body.to_bytes(),
        &signature.0,
    )
}
