//! One ed25519 identity, two views: commonware's key types for consensus
//! and p2p, fluence's for attestations and chain records. The same 32-byte
//! secret (RFC 8032 seed) gives the same public key in both.

use commonware_codec::DecodeExt;
use commonware_cryptography::{ed25519, Signer};
use fluence_crypto::sign::SigningKey;
use fluence_proto::PublicKey;
use zeroize::Zeroizing;

/// A member's identity: both key views from one secret seed.
pub struct Identity {
    pub consensus: ed25519::PrivateKey,
    pub chain: SigningKey,
}

impl Identity {
    pub fn from_seed(seed: &Zeroizing<[u8; 32]>) -> Self {
        let consensus = ed25519::PrivateKey::decode(bytes::Bytes::copy_from_slice(&seed[..]))
            .expect("every 32-byte string is an ed25519 secret seed");
        let chain = SigningKey::from_seed(seed);
        debug_assert_eq!(
            to_public_key(&consensus.public_key()).0,
            chain.public_key(),
            "both libraries derive the same public key from a seed"
        );
        Identity { consensus, chain }
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.chain.public_key())
    }
}

/// A commonware public key as a fluence one.
pub fn to_public_key(key: &ed25519::PublicKey) -> PublicKey {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(key.as_ref());
    PublicKey(bytes)
}

/// A fluence public key as a commonware one, if it is a valid point.
pub fn to_consensus_key(key: &PublicKey) -> Option<ed25519::PublicKey> {
    ed25519::PublicKey::decode(bytes::Bytes::copy_from_slice(&key.0)).ok()
}
