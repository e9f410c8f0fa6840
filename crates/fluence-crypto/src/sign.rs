//! Domain-separated Ed25519 signatures.
//!
//! # What is signed
//!
//! `sign(domain, message)` signs the byte string
//!
//! ```text
//! len(domain) as u8 || domain || message
//! ```
//!
//! The one-byte length prefix makes the encoding injective, so a signature made
//! for domain `FLUENCE_A_V1` over `"B..."` can never verify for a domain
//! `FLUENCE_A_V1B` (or any other split of the same bytes). Domains are
//! protocol constants such as `FLUENCE_BLOCK_V1`, at most [`DOMAIN_LEN_MAX`]
//! bytes.
//!
//! # Verification rules
//!
//! [`verify`] uses ed25519-dalek's `verify_strict`: canonical `s`, canonical
//! `R` encoding, `R` and the public key not of small order. Public keys of
//! small order are rejected up front with [`CryptoError::WeakPublicKey`]: any
//! message "verifies" under them, so they prove nothing.
//!
//! [`check_public_key`] is the stronger check to run once when a key is
//! *registered* (node keys, owner keys): it also rejects keys with a
//! small-order component (not torsion-free). Honestly generated keys always
//! pass; the check costs one scalar multiplication, which is why `verify`
//! does not repeat it on every signature.

use ed25519_dalek::{Signature, Signer, VerifyingKey};

use crate::CryptoError;

/// Longest accepted signature domain, in bytes (it is length-prefixed by one byte).
pub const DOMAIN_LEN_MAX: usize = 255;
/// Ed25519 public key length.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Ed25519 signature length.
pub const SIGNATURE_LEN: usize = 64;

/// An Ed25519 signing key (zeroized on drop by ed25519-dalek).
#[derive(Clone)]
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
}

impl SigningKey {
    /// Builds the key from a 32-byte secret seed (RFC 8032 private key).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            inner: ed25519_dalek::SigningKey::from_bytes(seed),
        }
    }

    /// A fresh random key from the operating system's RNG (node identities).
    pub fn generate() -> Self {
        Self {
            inner: ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// The 32-byte compressed public key.
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.inner.verifying_key().to_bytes()
    }

    /// Signs `len(domain) || domain || message`.
    ///
    /// # Panics
    ///
    /// If `domain` is longer than [`DOMAIN_LEN_MAX`]. Domains are protocol
    /// constants chosen in code, never input, so this is a programming error.
    pub fn sign(&self, domain: &[u8], message: &[u8]) -> [u8; SIGNATURE_LEN] {
        let bytes = signed_bytes(domain, message)
            .expect("signature domains are protocol constants of at most 255 bytes");
        self.inner.sign(&bytes).to_bytes()
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secret material; the public key identifies the key.
        f.debug_struct("SigningKey")
            .field("public_key", &hex::encode(self.public_key()))
            .finish_non_exhaustive()
    }
}

fn signed_bytes(domain: &[u8], message: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let domain_len = u8::try_from(domain.len()).map_err(|_| CryptoError::DomainTooLong)?;
    let mut bytes = Vec::with_capacity(1 + domain.len() + message.len());
    bytes.push(domain_len);
    bytes.extend_from_slice(domain);
    bytes.extend_from_slice(message);
    Ok(bytes)
}

fn verifying_key(public: &[u8; PUBLIC_KEY_LEN]) -> Result<VerifyingKey, CryptoError> {
    let key = VerifyingKey::from_bytes(public).map_err(|_| CryptoError::InvalidPublicKey)?;
    if key.is_weak() {
        return Err(CryptoError::WeakPublicKey);
    }
    Ok(key)
}

/// Verifies `signature` over `len(domain) || domain || message` under `public`
/// with strict Ed25519 rules, rejecting small-order public keys.
pub fn verify(
    public: &[u8; PUBLIC_KEY_LEN],
    domain: &[u8],
    message: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> Result<(), CryptoError> {
    let key = verifying_key(public)?;
    let bytes = signed_bytes(domain, message)?;
    key.verify_strict(&bytes, &Signature::from_bytes(signature))
        .map_err(|_| CryptoError::InvalidSignature)
}

/// Checks a public key before it is registered (node keys, owner keys): a valid
/// encoding, not of small order, and torsion-free (no small-order component).
///
/// Torsion-freeness matters for batch verification: with a mixed-order key a
/// signer can craft signatures whose batch result depends on the random batch
/// coefficients. Keys produced by [`SigningKey`] always pass.
pub fn check_public_key(public: &[u8; PUBLIC_KEY_LEN]) -> Result<(), CryptoError> {
    let key = verifying_key(public)?;
    if !key.to_edwards().is_torsion_free() {
        return Err(CryptoError::WeakPublicKey);
    }
    Ok(())
}

/// One signature to check with [`verify_batch`].
#[derive(Debug, Clone, Copy)]
pub struct VerifyItem<'a> {
    /// Signer's public key.
    pub public_key: &'a [u8; PUBLIC_KEY_LEN],
    /// Signature domain (a `FLUENCE_..._V1` constant).
    pub domain: &'a [u8],
    /// Signed message.
    pub message: &'a [u8],
    /// The signature.
    pub signature: &'a [u8; SIGNATURE_LEN],
}

/// Verifies many signatures at once (about twice as fast as one by one).
///
/// Returns `Ok(())` only if every item is valid; on `Err` the caller can run
/// [`verify`] per item to find the culprit. Before the batch equation, each
/// item gets the same structural checks as [`verify`]: valid and non-weak
/// public key, `R` a valid point not of small order, canonical `s`.
///
/// The batch equation is ed25519-dalek's: cofactorless, with 128-bit
/// coefficients derived deterministically from a transcript of the whole
/// batch. For keys that passed [`check_public_key`] and honestly formed
/// signatures it agrees with [`verify`] except with probability about 2^-128.
/// A malicious signer who puts a small-order component into `R` can make a
/// signature that fails [`verify`] yet passes a given batch with probability
/// 1/8. Because the coefficients are a deterministic function of the batch,
/// every node checking the same batch gets the same answer; a decision that
/// must agree with single verification (for example one signature pulled out
/// of a block) must use [`verify`].
pub fn verify_batch(items: &[VerifyItem<'_>]) -> Result<(), CryptoError> {
    if items.is_empty() {
        return Ok(());
    }
    let mut keys = Vec::with_capacity(items.len());
    let mut signatures = Vec::with_capacity(items.len());
    let mut messages = Vec::with_capacity(items.len());
    for item in items {
        keys.push(verifying_key(item.public_key)?);
        // `verify_strict` refuses a small-order R; the batch equation does
        // not check it, so do it here. Decoding R as a "public key" is just
        // point decompression followed by the small-order test.
        let mut r_bytes = [0u8; 32];
        r_bytes.copy_from_slice(&item.signature[..32]);
        let r = VerifyingKey::from_bytes(&r_bytes).map_err(|_| CryptoError::InvalidSignature)?;
        if r.is_weak() {
            return Err(CryptoError::InvalidSignature);
        }
        signatures.push(Signature::from_bytes(item.signature));
        messages.push(signed_bytes(item.domain, item.message)?);
    }
    let message_refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    ed25519_dalek::verify_batch(&message_refs, &signatures, &keys)
        .map_err(|_| CryptoError::InvalidSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &[u8] = b"FLUENCE_TEST_SIGNATURE_V1";

    #[test]
    fn sign_and_verify() {
        let key = SigningKey::from_seed(&[3u8; 32]);
        let pk = key.public_key();
        let sig = key.sign(DOMAIN, b"message");
        assert_eq!(verify(&pk, DOMAIN, b"message", &sig), Ok(()));
        assert_eq!(check_public_key(&pk), Ok(()));

        let other = SigningKey::from_seed(&[4u8; 32]).public_key();
        assert_eq!(
            verify(&other, DOMAIN, b"message", &sig),
            Err(CryptoError::InvalidSignature)
        );
        assert_eq!(
            verify(&pk, b"FLUENCE_OTHER_V1", b"message", &sig),
            Err(CryptoError::InvalidSignature)
        );
        assert_eq!(
            verify(&pk, DOMAIN, b"messagf", &sig),
            Err(CryptoError::InvalidSignature)
        );
        let mut bad = sig;
        bad[10] ^= 1;
        assert!(verify(&pk, DOMAIN, b"message", &bad).is_err());
    }

    #[test]
    fn domain_split_is_not_ambiguous() {
        let key = SigningKey::from_seed(&[5u8; 32]);
        let sig = key.sign(b"FLUENCE_A_V1", b"Bmsg");
        assert_eq!(
            verify(&key.public_key(), b"FLUENCE_A_V1B", b"msg", &sig),
            Err(CryptoError::InvalidSignature)
        );
        assert_eq!(
            verify(&key.public_key(), &[b'x'; 256], b"msg", &sig),
            Err(CryptoError::DomainTooLong)
        );
    }

    #[test]
    fn weak_and_invalid_keys_rejected() {
        // The identity point (y = 1) has order 1: every "signature" with
        // R = identity and s = 0 satisfies the cofactorless equation.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut forged = [0u8; 64];
        forged[..32].copy_from_slice(&identity);
        assert_eq!(
            verify(&identity, DOMAIN, b"anything", &forged),
            Err(CryptoError::WeakPublicKey)
        );
        assert_eq!(check_public_key(&identity), Err(CryptoError::WeakPublicKey));
        // A point of order 8 (y = 0 would be order 4; this is the canonical
        // order-8 point from the Ed25519 torsion subgroup).
        let order8 =
            hex::decode("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
                .unwrap();
        let order8: [u8; 32] = order8.try_into().unwrap();
        assert_eq!(
            verify(&order8, DOMAIN, b"x", &[0u8; 64]),
            Err(CryptoError::WeakPublicKey)
        );
        // y = 2 is not on the curve.
        let mut not_on_curve = [0u8; 32];
        not_on_curve[0] = 2;
        assert_eq!(
            verify(&not_on_curve, DOMAIN, b"x", &[0u8; 64]),
            Err(CryptoError::InvalidPublicKey)
        );
    }

    #[test]
    fn mixed_order_key_fails_registration_check() {
        // A honest key plus a point of order 8 is valid for `verify` (not of
        // small order) but not torsion-free.
        let honest = SigningKey::from_seed(&[9u8; 32]).public_key();
        let order8 =
            hex::decode("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
                .unwrap();
        let a = VerifyingKey::from_bytes(&honest).unwrap().to_edwards();
        let t = VerifyingKey::from_bytes(&order8.try_into().unwrap())
            .unwrap()
            .to_edwards();
        let mixed = (a + t).compress().to_bytes();
        assert_eq!(check_public_key(&mixed), Err(CryptoError::WeakPublicKey));
    }

    #[test]
    fn batch() {
        let keys: Vec<SigningKey> = (0..8u8).map(|i| SigningKey::from_seed(&[i; 32])).collect();
        let pks: Vec<[u8; 32]> = keys.iter().map(SigningKey::public_key).collect();
        let msgs: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; i as usize * 10]).collect();
        let sigs: Vec<[u8; 64]> = keys
            .iter()
            .zip(&msgs)
            .map(|(k, m)| k.sign(DOMAIN, m))
            .collect();
        let items: Vec<VerifyItem<'_>> = (0..8)
            .map(|i| VerifyItem {
                public_key: &pks[i],
                domain: DOMAIN,
                message: &msgs[i],
                signature: &sigs[i],
            })
            .collect();
        assert_eq!(verify_batch(&items), Ok(()));
        assert_eq!(verify_batch(&[]), Ok(()));

        let mut bad = items.clone();
        bad[3].message = b"tampered";
        assert_eq!(verify_batch(&bad), Err(CryptoError::InvalidSignature));
        let mut bad = items.clone();
        bad[5].domain = b"FLUENCE_OTHER_V1";
        assert_eq!(verify_batch(&bad), Err(CryptoError::InvalidSignature));
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut bad = items;
        bad[0].public_key = &identity;
        assert_eq!(verify_batch(&bad), Err(CryptoError::WeakPublicKey));
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::{Rng, RngCore, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..200 {
            let mut pk = [0u8; 32];
            let mut sig = [0u8; 64];
            rng.fill_bytes(&mut pk);
            rng.fill_bytes(&mut sig);
            let len = rng.gen_range(0..64);
            let msg: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            assert!(verify(&pk, DOMAIN, &msg, &sig).is_err());
            let _ = check_public_key(&pk);
            let item = VerifyItem {
                public_key: &pk,
                domain: DOMAIN,
                message: &msg,
                signature: &sig,
            };
            assert!(verify_batch(&[item]).is_err());
        }
    }
}
