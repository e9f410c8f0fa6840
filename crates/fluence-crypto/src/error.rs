//! The error type shared by [`crate::aead`], [`crate::keys`] and [`crate::sign`].

/// Errors from sealing/opening, key derivation and signatures.
///
/// Authentication failures deliberately carry no detail: telling a caller
/// *which* check failed (wrong key, wrong id, flipped bit) would help an
/// attacker and never helps an honest user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// An AEAD tag did not verify: wrong key, tampered ciphertext, or a
    /// ciphertext presented under another id, version or dataset.
    #[error("authentication failed: wrong key, or the ciphertext was modified or moved")]
    Authentication,
    /// Input is structurally invalid (for example shorter than nonce + tag).
    #[error("malformed input: {0}")]
    Malformed(&'static str),
    /// The bytes are not a valid Ed25519 public key encoding.
    #[error("invalid public key encoding")]
    InvalidPublicKey,
    /// The public key has small order (or, for [`crate::sign::check_public_key`],
    /// a small-order component); signatures under it prove nothing.
    #[error("weak public key (small-order component)")]
    WeakPublicKey,
    /// The signature does not verify under strict Ed25519 rules.
    #[error("invalid signature")]
    InvalidSignature,
    /// A signature domain longer than [`crate::sign::DOMAIN_LEN_MAX`].
    #[error("signature domain longer than {max} bytes", max = crate::sign::DOMAIN_LEN_MAX)]
    DomainTooLong,
}
