//! XChaCha20-Poly1305 helpers: random 24-byte nonce prepended, 16-byte tag appended.
//!
//! Sealed layout: `nonce (24) || ciphertext (len(plaintext)) || tag (16)`.
//!
//! Why XChaCha20 and random nonces: the 192-bit nonce makes random nonces safe
//! for any number of messages a key will ever see (collision probability after
//! 2^64 messages is about 2^-64), so no nonce state has to be stored or
//! synchronised between the gateways of one owner. Nonces come from
//! `rand::thread_rng()`, a ChaCha12 CSPRNG seeded and periodically reseeded from
//! the operating system (reseeded after `fork` as well); using it rather than a
//! `getrandom` system call per message keeps sealing cheap.
//!
//! Callers always pass associated data that starts with a `FLUENCE_..._V1`
//! domain string and binds the ciphertext to where it belongs (dataset id,
//! document id, version), so a ciphertext moved elsewhere fails to open.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{Key, KeyInit, Tag, XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::CryptoError;

/// Key length in bytes.
pub const KEY_LEN: usize = 32;
/// Nonce length in bytes (XChaCha20).
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag length in bytes.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed message is longer than its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Seals `plaintext` under `key` with a fresh random nonce.
///
/// # Panics
///
/// Only if `plaintext` is longer than XChaCha20's 256 GiB keystream, which no
/// caller can hold in memory; Fluence documents are bounded far below that by
/// `fluence-proto`.
pub fn seal(key: &[u8; KEY_LEN], ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    seal_with_nonce(key, &nonce, ad, plaintext)
}

/// Seals with a caller-chosen nonce. Only for the keystore, whose nonce is
/// drawn from the OS and stored in the (authenticated) file header.
pub(crate) fn seal_with_nonce(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    ad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(nonce), ad, &mut out[NONCE_LEN..])
        .expect("plaintext shorter than the 256 GiB XChaCha20 keystream");
    out.extend_from_slice(&tag);
    out
}

/// Opens a message produced by [`seal`] under the same key and associated data.
///
/// Any modification of the nonce, ciphertext, tag or associated data gives
/// [`CryptoError::Authentication`]; input shorter than nonce + tag gives
/// [`CryptoError::Malformed`].
pub fn open(key: &[u8; KEY_LEN], ad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < OVERHEAD {
        return Err(CryptoError::Malformed(
            "sealed message shorter than nonce and tag",
        ));
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    let mut plaintext = body.to_vec();
    cipher
        .decrypt_in_place_detached(
            XNonce::from_slice(nonce),
            ad,
            &mut plaintext,
            Tag::from_slice(tag),
        )
        .map_err(|_| CryptoError::Authentication)?;
    Ok(plaintext)
}

/// Concatenates associated-data parts into one buffer. Every caller passes a
/// constant domain string first and fixed-width fields after it, so plain
/// concatenation is an injective encoding.
pub(crate) fn ad(parts: &[&[u8]]) -> Vec<u8> {
    let len = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(len);
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let key = [7u8; KEY_LEN];
        let sealed = seal(&key, b"FLUENCE_TEST_V1", b"hello");
        assert_eq!(sealed.len(), 5 + OVERHEAD);
        assert_eq!(open(&key, b"FLUENCE_TEST_V1", &sealed).unwrap(), b"hello");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                open(&key, b"FLUENCE_TEST_V1", &bad),
                Err(CryptoError::Authentication)
            );
        }
        assert_eq!(
            open(&key, b"FLUENCE_TEST_V2", &sealed),
            Err(CryptoError::Authentication)
        );
        assert_eq!(
            open(&[8u8; KEY_LEN], b"FLUENCE_TEST_V1", &sealed),
            Err(CryptoError::Authentication)
        );
        for len in 0..OVERHEAD {
            assert!(matches!(
                open(&key, b"FLUENCE_TEST_V1", &sealed[..len]),
                Err(CryptoError::Malformed(_))
            ));
        }
    }

    #[test]
    fn empty_plaintext_and_fresh_nonces() {
        let key = [1u8; KEY_LEN];
        let a = seal(&key, b"", b"");
        let b = seal(&key, b"", b"");
        assert_ne!(a, b, "nonces must be fresh");
        assert_eq!(open(&key, b"", &a).unwrap(), b"");
    }
}
