//! Client-side cryptography for Fluence: keys, keystore, AEAD, blind index tokens, Lewi–Wu ORE.
//!
//! This crate must not depend on any I/O or async framework (no tokio, no libp2p,
//! no networking). The only I/O it does is `std::fs` for the passphrase-protected
//! keystore file. Everything here is pure computation so the gateway, the client
//! SDK and the node (which only *verifies* and *compares*, never decrypts) can
//! all link it.
//!
//! # Map
//!
//! | module | owns |
//! |---|---|
//! | [`keys`] | the owner's [`MasterKey`] and the HKDF tree below it: signing key, catalog key, dataset keys, per-field token and ORE keys, document ids, per-document content keys |
//! | [`keystore`] | one Argon2id + XChaCha20-Poly1305 protected file per master key |
//! | [`sign`] | domain-separated Ed25519 signatures (strict verification, weak-key rejection, batches) |
//! | [`aead`] | XChaCha20-Poly1305 with a random 24-byte nonce, used by everything above |
//! | [`text`] | word normalization for the `text` index |
//! | [`ore`] | Lewi–Wu block order-revealing encryption for the `range` index |
//! | [`encode`] | order-preserving plaintext encodings (MongoDB cross-type order) fed to [`ore`] |
//!
//! # Domain separation
//!
//! Every hash, MAC, key derivation, signature and AEAD associated-data string
//! starts with a constant named `FLUENCE_..._V1`. Changing one of them is a
//! breaking change of the on-disk and on-wire formats. Integers inside those
//! inputs are fixed-width little-endian; variable-length fields are length
//! prefixed so every input encoding is injective.
//!
//! # What a node learns
//!
//! See the rustdoc of each index kind: [`keys::TokenKey`] (equality pattern),
//! [`TokenKey::text_tokens`](keys::TokenKey::text_tokens) (which documents share
//! a word) and [`ore`] (order and the index of the first differing byte).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod aead;
pub mod encode;
mod error;
pub mod keys;
pub mod keystore;
pub mod ore;
pub mod sign;
pub mod text;

pub use error::CryptoError;

/// True in a build with the benchmark-only `bench-plaintext` feature, where
/// documents and range values are NOT encrypted. Binaries that store data
/// must refuse to run when this is set.
pub const BENCH_PLAINTEXT: bool = cfg!(feature = "bench-plaintext");
pub use keys::{
    dataset_id, open_with_content_key, CatalogKey, ContentKey, DatasetKeys, MasterKey,
    SealedDocument, TokenKey,
};
pub use keystore::{KdfParams, Keystore, KeystoreError, KeystoreInfo};
pub use ore::{
    ore_ciphertext_len, ore_compare, validate as ore_validate, OreError, OreKey,
    ORE_CIPHERTEXT_LEN_MAX, ORE_PLAINTEXT_LEN_MAX,
};
pub use sign::{check_public_key, verify, verify_batch, SigningKey, VerifyItem};
pub use text::normalize_words;
