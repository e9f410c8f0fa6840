//! The owner's master key and every key derived from it.
//!
//! # Key tree
//!
//! All derivations are HKDF-SHA256 (RFC 5869, no salt, extract then expand)
//! with a distinct `FLUENCE_..._V1` info string; variable-length inputs in the
//! info are length-prefixed (u64 LE) so the info encoding is injective.
//!
//! ```text
//! MasterKey (32 random bytes, lives only in the keystore and in memory)
//! ├── FLUENCE_OWNER_SIGNING_KEY_V1           → Ed25519 seed → owner signing key
//! ├── FLUENCE_CATALOG_NAME_TAG_KEY_V1        → HMAC key: dataset name → name tag
//! ├── FLUENCE_CATALOG_DESCRIPTOR_KEY_V1      → AEAD key: dataset descriptors
//! └── FLUENCE_DATASET_KEY_V1 || name_tag     → dataset key
//!     ├── FLUENCE_INDEX_ID_KEY_V1            → HMAC key: (kind, field path) → index id
//!     ├── FLUENCE_DOC_ID_KEY_V1              → HMAC key: canonical _id → doc id
//!     ├── FLUENCE_CONTENT_WRAP_KEY_V1        → AEAD key wrapping per-document content keys
//!     ├── FLUENCE_EQ_KEY_V1   || len || path → TokenKey for the `eq` index of that field
//!     ├── FLUENCE_TEXT_KEY_V1 || len || path → TokenKey for the `text` index of that field
//!     └── FLUENCE_ORE_KEY_V1  || len || path → OreKey for the `range` index of that field
//! ```
//!
//! Distinct keys per field and index kind mean tokens of one field cannot be
//! linked to tokens of another even when the values are equal.
//!
//! # Documents
//!
//! Each document (each version) gets a fresh random 32-byte content key. The
//! document is sealed under it, and the content key is wrapped under the
//! dataset's wrap key; both AEADs bind `(dataset id, doc id, version)` in their
//! associated data. Per-document keys let the owner hand out a single
//! document later (share its content key) without exposing the dataset key.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::aead;
use crate::ore::OreKey;
use crate::sign::SigningKey;
use crate::text::normalize_words;
use crate::CryptoError;

/// Domain of [`dataset_id`].
pub const DATASET_ID_DOMAIN: &[u8] = b"FLUENCE_DATASET_ID_V1";

const OWNER_SIGNING_KEY_INFO: &[u8] = b"FLUENCE_OWNER_SIGNING_KEY_V1";
const CATALOG_NAME_TAG_KEY_INFO: &[u8] = b"FLUENCE_CATALOG_NAME_TAG_KEY_V1";
const CATALOG_DESCRIPTOR_KEY_INFO: &[u8] = b"FLUENCE_CATALOG_DESCRIPTOR_KEY_V1";
const DATASET_KEY_INFO: &[u8] = b"FLUENCE_DATASET_KEY_V1";
const INDEX_ID_KEY_INFO: &[u8] = b"FLUENCE_INDEX_ID_KEY_V1";
const DOC_ID_KEY_INFO: &[u8] = b"FLUENCE_DOC_ID_KEY_V1";
const CONTENT_WRAP_KEY_INFO: &[u8] = b"FLUENCE_CONTENT_WRAP_KEY_V1";
const EQ_KEY_INFO: &[u8] = b"FLUENCE_EQ_KEY_V1";
const TEXT_KEY_INFO: &[u8] = b"FLUENCE_TEXT_KEY_V1";
const ORE_KEY_INFO: &[u8] = b"FLUENCE_ORE_KEY_V1";

const NAME_TAG_DOMAIN: &[u8] = b"FLUENCE_DATASET_NAME_TAG_V1";
const DESCRIPTOR_AD_DOMAIN: &[u8] = b"FLUENCE_DATASET_DESCRIPTOR_V1";
const INDEX_ID_DOMAIN: &[u8] = b"FLUENCE_INDEX_ID_V1";
const DOC_ID_DOMAIN: &[u8] = b"FLUENCE_DOC_ID_V1";
const DOCUMENT_AD_DOMAIN: &[u8] = b"FLUENCE_DOCUMENT_V1";
const CONTENT_KEY_WRAP_AD_DOMAIN: &[u8] = b"FLUENCE_CONTENT_KEY_WRAP_V1";
const EQ_TOKEN_DOMAIN: &[u8] = b"FLUENCE_EQ_TOKEN_V1";
const TEXT_TOKEN_DOMAIN: &[u8] = b"FLUENCE_TEXT_TOKEN_V1";

/// Length of a master key, dataset key or content key.
pub const KEY_LEN: usize = 32;
/// Length of a blind token, index id and document id (128 bits; see [`TokenKey`]).
pub const TOKEN_LEN: usize = 16;
/// Exact length of [`SealedDocument::wrapped_key`]: nonce + 32-byte key + tag.
pub const WRAPPED_KEY_LEN: usize = aead::OVERHEAD + KEY_LEN;

type HmacSha256 = Hmac<Sha256>;

/// HKDF-SHA256 to 32 bytes. `info` parts are concatenated; callers put a
/// constant domain first and length-prefix anything variable.
fn hkdf32(ikm: &[u8; KEY_LEN], info: &[&[u8]]) -> Zeroizing<[u8; KEY_LEN]> {
    let hk = Hkdf::<Sha256>::new(None, ikm);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    hk.expand_multi_info(info, out.as_mut())
        .expect("32 bytes is far below HKDF-SHA256's 8160-byte output limit");
    out
}

/// HKDF info for a per-field key: domain || u64 LE path length || path.
fn field_key(root: &[u8; KEY_LEN], domain: &[u8], path: &str) -> Zeroizing<[u8; KEY_LEN]> {
    let len = (path.len() as u64).to_le_bytes();
    hkdf32(root, &[domain, &len, path.as_bytes()])
}

/// HMAC-SHA256 over the concatenated parts. Keys are stored as bytes
/// (zeroized on drop) and HMAC is keyed per call: the `hmac` crate's
/// pre-keyed state cannot be zeroized, and keying costs only two extra
/// SHA-256 compressions (tokens still run at about 5 M/s).
fn hmac32(key: &[u8; KEY_LEN], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn hmac16(key: &[u8; KEY_LEN], parts: &[&[u8]]) -> [u8; TOKEN_LEN] {
    let full = hmac32(key, parts);
    let mut out = [0u8; TOKEN_LEN];
    out.copy_from_slice(&full[..TOKEN_LEN]);
    out
}

/// Generates a random 32-byte key from the operating system.
fn os_random_key() -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}

/// The owner's root secret: 32 random bytes, zeroized on drop.
///
/// Everything else (signing key, catalog key, dataset keys) is derived from it,
/// so the keystore protects exactly this value.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    bytes: [u8; KEY_LEN],
}

impl MasterKey {
    /// A fresh key from the operating system's RNG.
    pub fn generate() -> Self {
        Self {
            bytes: os_random_key(),
        }
    }

    /// Wraps existing key bytes (for example from a backup).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self { bytes }
    }

    /// The raw key, for the keystore only.
    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// The owner's Ed25519 key: signs write operations and dataset creation.
    pub fn owner_signing_key(&self) -> SigningKey {
        let seed = hkdf32(&self.bytes, &[OWNER_SIGNING_KEY_INFO]);
        SigningKey::from_seed(&seed)
    }

    /// The owner's Ed25519 public key (stored in clear in the keystore header).
    pub fn owner_public_key(&self) -> [u8; 32] {
        self.owner_signing_key().public_key()
    }

    /// The key for the owner's private catalog of datasets.
    pub fn catalog_key(&self) -> CatalogKey {
        CatalogKey {
            name_tag_key: hkdf32(&self.bytes, &[CATALOG_NAME_TAG_KEY_INFO]),
            descriptor_key: hkdf32(&self.bytes, &[CATALOG_DESCRIPTOR_KEY_INFO]),
        }
    }

    /// The keys of one dataset, identified by its name tag
    /// ([`CatalogKey::name_tag`]).
    pub fn dataset_keys(&self, name_tag: &[u8; 32]) -> DatasetKeys {
        let root = hkdf32(&self.bytes, &[DATASET_KEY_INFO, name_tag]);
        DatasetKeys {
            index_id_key: hkdf32(&root, &[INDEX_ID_KEY_INFO]),
            doc_id_key: hkdf32(&root, &[DOC_ID_KEY_INFO]),
            wrap_key: hkdf32(&root, &[CONTENT_WRAP_KEY_INFO]),
            root,
        }
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// The dataset id a node can recompute from public values:
/// `SHA-256(FLUENCE_DATASET_ID_V1 || owner_pk || name_tag)`.
///
/// A node accepts "create dataset D" only if it is signed by `owner_pk` and
/// `D == dataset_id(owner_pk, name_tag)`, so no one else can claim (squat) an
/// id in the owner's name space. Both inputs are fixed-width, so the
/// concatenation is injective. The name tag hides the dataset name.
pub fn dataset_id(owner_pk: &[u8; 32], name_tag: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(DATASET_ID_DOMAIN);
    hasher.update(owner_pk);
    hasher.update(name_tag);
    hasher.finalize().into()
}

/// Keys of the owner's private dataset catalog.
#[derive(Clone)]
pub struct CatalogKey {
    name_tag_key: Zeroizing<[u8; KEY_LEN]>,
    descriptor_key: Zeroizing<[u8; KEY_LEN]>,
}

impl CatalogKey {
    /// `HMAC-SHA256(name_tag_key, FLUENCE_DATASET_NAME_TAG_V1 || name)`: a
    /// stable, opaque stand-in for the dataset name (the exact UTF-8 bytes; no
    /// normalization, so names are case-sensitive).
    pub fn name_tag(&self, dataset_name: &str) -> [u8; 32] {
        hmac32(
            &self.name_tag_key,
            &[NAME_TAG_DOMAIN, dataset_name.as_bytes()],
        )
    }

    /// Encrypts a dataset descriptor (name, index definitions, ...) so it can
    /// be stored on the network and found again from the owner's key alone.
    /// The associated data binds it to `dataset_id`.
    pub fn seal_descriptor(&self, dataset_id: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
        aead::seal(
            &self.descriptor_key,
            &aead::ad(&[DESCRIPTOR_AD_DOMAIN, dataset_id]),
            plaintext,
        )
    }

    /// Opens a descriptor sealed for `dataset_id`; any other id, key or
    /// modification is [`CryptoError::Authentication`].
    pub fn open_descriptor(
        &self,
        dataset_id: &[u8; 32],
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        aead::open(
            &self.descriptor_key,
            &aead::ad(&[DESCRIPTOR_AD_DOMAIN, dataset_id]),
            sealed,
        )
    }
}

impl std::fmt::Debug for CatalogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CatalogKey(<redacted>)")
    }
}

/// A document sealed under a fresh content key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedDocument {
    /// The content key sealed under the dataset's wrap key
    /// ([`WRAPPED_KEY_LEN`] bytes).
    pub wrapped_key: Vec<u8>,
    /// The document sealed under the content key (plaintext + 40 bytes).
    pub ciphertext: Vec<u8>,
}

/// A per-document content key (zeroized on drop). Handing it to someone lets
/// them read exactly that document version and nothing else.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ContentKey {
    bytes: [u8; KEY_LEN],
}

impl ContentKey {
    /// Wraps received key bytes (document sharing).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self { bytes }
    }

    /// The raw key, to hand to the party a single document is shared with.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }
}

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContentKey(<redacted>)")
    }
}

/// `domain || dataset id || doc id || version (u64 LE)`; all fixed width.
fn document_ad(domain: &[u8], dataset_id: &[u8; 32], doc_id: &[u8; 16], version: u64) -> Vec<u8> {
    aead::ad(&[domain, dataset_id, doc_id, &version.to_le_bytes()])
}

/// Opens a document ciphertext with its content key (for a party that was
/// given this single document). Fails with [`CryptoError::Authentication`]
/// unless `(dataset_id, doc_id, version)` are exactly those it was sealed for.
pub fn open_with_content_key(
    content_key: &ContentKey,
    dataset_id: &[u8; 32],
    doc_id: &[u8; 16],
    version: u64,
    ciphertext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    aead::open(
        &content_key.bytes,
        &document_ad(DOCUMENT_AD_DOMAIN, dataset_id, doc_id, version),
        ciphertext,
    )
}

/// The keys of one dataset.
#[derive(Clone)]
pub struct DatasetKeys {
    root: Zeroizing<[u8; KEY_LEN]>,
    index_id_key: Zeroizing<[u8; KEY_LEN]>,
    doc_id_key: Zeroizing<[u8; KEY_LEN]>,
    wrap_key: Zeroizing<[u8; KEY_LEN]>,
}

impl DatasetKeys {
    /// Opaque id of the index of `kind` on `field_path`:
    /// `HMAC(index_id_key, FLUENCE_INDEX_ID_V1 || kind || u64 LE len || path)`
    /// truncated to 128 bits. Nodes address indexes by this id and never see
    /// field names; the id is stable so the gateway can find the index again.
    pub fn index_id(&self, field_path: &str, kind: u8) -> [u8; TOKEN_LEN] {
        let len = (field_path.len() as u64).to_le_bytes();
        hmac16(
            &self.index_id_key,
            &[INDEX_ID_DOMAIN, &[kind], &len, field_path.as_bytes()],
        )
    }

    /// Token key of the `eq` index on `field_path`.
    pub fn eq_key(&self, field_path: &str) -> TokenKey {
        TokenKey {
            key: field_key(&self.root, EQ_KEY_INFO, field_path),
        }
    }

    /// Token key of the `text` index on `field_path`.
    pub fn text_key(&self, field_path: &str) -> TokenKey {
        TokenKey {
            key: field_key(&self.root, TEXT_KEY_INFO, field_path),
        }
    }

    /// ORE key of the `range` index on `field_path`. Derive it once per field
    /// and reuse it (clones are cheap): the key memoizes per-prefix tables
    /// that make later encryptions faster.
    pub fn ore_key(&self, field_path: &str) -> OreKey {
        OreKey::from_bytes(*field_key(&self.root, ORE_KEY_INFO, field_path))
    }

    /// Opaque document id: `HMAC(doc_id_key, FLUENCE_DOC_ID_V1 || canonical _id)`
    /// truncated to 128 bits. Equal `_id` values give equal doc ids, which is
    /// how the node enforces `_id` uniqueness without seeing `_id`.
    /// 128 bits: a collision needs about 2^64 documents in one dataset.
    pub fn doc_id(&self, canonical_id: &[u8]) -> [u8; TOKEN_LEN] {
        hmac16(&self.doc_id_key, &[DOC_ID_DOMAIN, canonical_id])
    }

    /// Seals one version of a document under a fresh random content key and
    /// wraps that key under the dataset key. Both AEADs bind
    /// `(dataset_id, doc_id, version)`.
    pub fn seal_document(
        &self,
        dataset_id: &[u8; 32],
        doc_id: &[u8; 16],
        version: u64,
        plaintext: &[u8],
    ) -> SealedDocument {
        if crate::BENCH_PLAINTEXT {
            return SealedDocument {
                wrapped_key: Vec::new(),
                ciphertext: plaintext.to_vec(),
            };
        }
        // thread_rng: a CSPRNG seeded from the OS; see the `aead` module docs.
        let mut content_key = ContentKey::from_bytes([0u8; KEY_LEN]);
        rand::thread_rng().fill_bytes(&mut content_key.bytes);
        let ciphertext = aead::seal(
            &content_key.bytes,
            &document_ad(DOCUMENT_AD_DOMAIN, dataset_id, doc_id, version),
            plaintext,
        );
        let wrapped_key = aead::seal(
            &self.wrap_key,
            &document_ad(CONTENT_KEY_WRAP_AD_DOMAIN, dataset_id, doc_id, version),
            &content_key.bytes,
        );
        debug_assert_eq!(wrapped_key.len(), WRAPPED_KEY_LEN);
        SealedDocument {
            wrapped_key,
            ciphertext,
        }
    }

    /// Unwraps the content key of `(dataset_id, doc_id, version)`.
    pub fn unwrap_content_key(
        &self,
        dataset_id: &[u8; 32],
        doc_id: &[u8; 16],
        version: u64,
        wrapped_key: &[u8],
    ) -> Result<ContentKey, CryptoError> {
        if wrapped_key.len() != WRAPPED_KEY_LEN {
            return Err(CryptoError::Malformed(
                "wrapped content key has the wrong length",
            ));
        }
        let bytes = Zeroizing::new(aead::open(
            &self.wrap_key,
            &document_ad(CONTENT_KEY_WRAP_AD_DOMAIN, dataset_id, doc_id, version),
            wrapped_key,
        )?);
        let bytes: [u8; KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Malformed("content key has the wrong length"))?;
        Ok(ContentKey::from_bytes(bytes))
    }

    /// Opens a document sealed by [`DatasetKeys::seal_document`]. A wrapped key
    /// or ciphertext from another document, version or dataset, or any flipped
    /// bit, is [`CryptoError::Authentication`].
    pub fn open_document(
        &self,
        dataset_id: &[u8; 32],
        doc_id: &[u8; 16],
        version: u64,
        wrapped_key: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        if crate::BENCH_PLAINTEXT {
            return Ok(ciphertext.to_vec());
        }
        let content_key = self.unwrap_content_key(dataset_id, doc_id, version, wrapped_key)?;
        open_with_content_key(&content_key, dataset_id, doc_id, version, ciphertext)
    }
}

impl std::fmt::Debug for DatasetKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatasetKeys(<redacted>)")
    }
}

/// Key of one blind-token index (`eq` or `text`) on one field.
///
/// A token is `HMAC-SHA256(key, domain || bytes)` truncated to 128 bits, with
/// domain `FLUENCE_EQ_TOKEN_V1` for [`TokenKey::token`] and
/// `FLUENCE_TEXT_TOKEN_V1` for [`TokenKey::text_tokens`].
///
/// Why 128 bits suffice: tokens are only ever compared for equality by nodes.
/// Nobody without the key can compute or predict a token (HMAC is a PRF;
/// guessing one succeeds with probability 2^-128 per try), and two distinct
/// values of one field collide with probability about n²/2^129 for n distinct
/// values, i.e. below 2^-65 even for 2^32 values. A collision would only make
/// the node return an extra candidate, which the gateway drops after
/// decrypting, so it can never cause a wrong answer.
///
/// Leakage: the node learns which stored values are equal (and how often a
/// value occurs), nothing else.
#[derive(Clone)]
pub struct TokenKey {
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl TokenKey {
    /// Builds a token key from raw bytes (tests, or keys derived elsewhere).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self {
            key: Zeroizing::new(bytes),
        }
    }

    /// The equality token of `bytes` (the client's canonical encoding of a value).
    pub fn token(&self, bytes: &[u8]) -> [u8; TOKEN_LEN] {
        hmac16(&self.key, &[EQ_TOKEN_DOMAIN, bytes])
    }

    /// Tokens of the normalized words of `text` ([`normalize_words`]), in
    /// order of first appearance, without duplicates. Domain-separated from
    /// [`TokenKey::token`], so the word "x" and the value "x" never share a
    /// token even under the same key.
    pub fn text_tokens(&self, text: &str) -> Vec<[u8; TOKEN_LEN]> {
        normalize_words(text)
            .iter()
            .map(|word| self.word_token(word))
            .collect()
    }

    /// The token of one already-normalized word.
    pub fn word_token(&self, word: &str) -> [u8; TOKEN_LEN] {
        hmac16(&self.key, &[TEXT_TOKEN_DOMAIN, word.as_bytes()])
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys() -> (MasterKey, DatasetKeys, [u8; 32]) {
        let master = MasterKey::from_bytes([42u8; 32]);
        let tag = master.catalog_key().name_tag("orders");
        let ds = master.dataset_keys(&tag);
        let id = dataset_id(&master.owner_public_key(), &tag);
        (master, ds, id)
    }

    #[test]
    fn derivations_are_deterministic_and_distinct() {
        let (master, ds, id) = keys();
        let again = MasterKey::from_bytes([42u8; 32]);
        assert_eq!(master.owner_public_key(), again.owner_public_key());
        let catalog = master.catalog_key();
        assert_eq!(
            catalog.name_tag("orders"),
            again.catalog_key().name_tag("orders")
        );
        assert_ne!(catalog.name_tag("orders"), catalog.name_tag("Orders"));
        assert_eq!(
            id,
            dataset_id(&again.owner_public_key(), &catalog.name_tag("orders"))
        );
        let other_ds = master.dataset_keys(&catalog.name_tag("users"));

        assert_eq!(ds.index_id("a.b", 1), ds.index_id("a.b", 1));
        assert_ne!(ds.index_id("a.b", 1), ds.index_id("a.b", 2));
        assert_ne!(ds.index_id("a.b", 1), ds.index_id("a.c", 1));
        assert_ne!(ds.index_id("a.b", 1), other_ds.index_id("a.b", 1));

        assert_eq!(ds.doc_id(b"id1"), ds.doc_id(b"id1"));
        assert_ne!(ds.doc_id(b"id1"), ds.doc_id(b"id2"));
        assert_ne!(ds.doc_id(b"id1"), other_ds.doc_id(b"id1"));

        let eq = ds.eq_key("price");
        assert_eq!(eq.token(b"5"), ds.eq_key("price").token(b"5"));
        assert_ne!(eq.token(b"5"), eq.token(b"6"));
        assert_ne!(eq.token(b"5"), ds.eq_key("qty").token(b"5"));
        assert_ne!(eq.token(b"5"), other_ds.eq_key("price").token(b"5"));
        // Same field, different kinds: different keys.
        assert_ne!(eq.token(b"5"), ds.text_key("price").token(b"5"));
        // Same key, eq vs text: different domains.
        assert_ne!(eq.token(b"word"), eq.word_token("word"));
        assert_eq!(
            eq.text_tokens("Word word WORD"),
            vec![eq.word_token("word")]
        );

        let ore_a = ds.ore_key("price").encrypt(&[1, 2, 3]).unwrap();
        let ore_b = ds.ore_key("qty").encrypt(&[1, 2, 3]).unwrap();
        // Left parts are deterministic per key; different fields differ.
        assert_ne!(ore_a[..19], ore_b[..19]);

        // Different master keys give different owners.
        assert_ne!(
            master.owner_public_key(),
            MasterKey::from_bytes([43u8; 32]).owner_public_key()
        );
        let g1 = MasterKey::generate();
        let g2 = MasterKey::generate();
        assert_ne!(g1.owner_public_key(), g2.owner_public_key());
    }

    #[test]
    fn owner_key_signs() {
        let (master, _, _) = keys();
        let sig = master.owner_signing_key().sign(b"FLUENCE_TEST_V1", b"m");
        assert!(
            crate::sign::verify(&master.owner_public_key(), b"FLUENCE_TEST_V1", b"m", &sig).is_ok()
        );
    }

    #[test]
    fn dataset_id_matches_definition() {
        let pk = [1u8; 32];
        let tag = [2u8; 32];
        let mut h = Sha256::new();
        h.update(b"FLUENCE_DATASET_ID_V1");
        h.update(pk);
        h.update(tag);
        let expected: [u8; 32] = h.finalize().into();
        assert_eq!(dataset_id(&pk, &tag), expected);
        assert_ne!(dataset_id(&pk, &tag), dataset_id(&tag, &pk));
    }

    #[test]
    fn descriptor_round_trip_and_binding() {
        let (master, _, id) = keys();
        let catalog = master.catalog_key();
        let sealed = catalog.seal_descriptor(&id, b"{\"name\":\"orders\"}");
        assert_eq!(
            catalog.open_descriptor(&id, &sealed).unwrap(),
            b"{\"name\":\"orders\"}"
        );
        let mut other_id = id;
        other_id[0] ^= 1;
        assert_eq!(
            catalog.open_descriptor(&other_id, &sealed),
            Err(CryptoError::Authentication)
        );
        let other_catalog = MasterKey::from_bytes([1u8; 32]).catalog_key();
        assert_eq!(
            other_catalog.open_descriptor(&id, &sealed),
            Err(CryptoError::Authentication)
        );
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x80;
            assert_eq!(
                catalog.open_descriptor(&id, &bad),
                Err(CryptoError::Authentication)
            );
        }
        for len in 0..sealed.len() {
            assert!(catalog.open_descriptor(&id, &sealed[..len]).is_err());
        }
    }

    #[test]
    fn document_round_trip() {
        let (_, ds, id) = keys();
        let doc = ds.doc_id(b"\x07_id-1");
        let sealed = ds.seal_document(&id, &doc, 3, b"document body");
        assert_eq!(sealed.wrapped_key.len(), WRAPPED_KEY_LEN);
        assert_eq!(sealed.ciphertext.len(), 13 + aead::OVERHEAD);
        assert_eq!(
            ds.open_document(&id, &doc, 3, &sealed.wrapped_key, &sealed.ciphertext)
                .unwrap(),
            b"document body"
        );
        // Sharing path: unwrap once, open with the content key alone.
        let ck = ds
            .unwrap_content_key(&id, &doc, 3, &sealed.wrapped_key)
            .unwrap();
        let shared = ContentKey::from_bytes(*ck.as_bytes());
        assert_eq!(
            open_with_content_key(&shared, &id, &doc, 3, &sealed.ciphertext).unwrap(),
            b"document body"
        );
        // Fresh content key per seal.
        let again = ds.seal_document(&id, &doc, 3, b"document body");
        assert_ne!(again.wrapped_key, sealed.wrapped_key);
        assert_ne!(again.ciphertext, sealed.ciphertext);
        // Empty documents work too.
        let empty = ds.seal_document(&id, &doc, 0, b"");
        assert_eq!(
            ds.open_document(&id, &doc, 0, &empty.wrapped_key, &empty.ciphertext)
                .unwrap(),
            b""
        );
    }

    #[test]
    fn document_swaps_fail() {
        let (master, ds, id) = keys();
        let doc_a = ds.doc_id(b"a");
        let doc_b = ds.doc_id(b"b");
        let a = ds.seal_document(&id, &doc_a, 1, b"alpha");
        let b = ds.seal_document(&id, &doc_b, 1, b"bravo");
        let a2 = ds.seal_document(&id, &doc_a, 2, b"alpha v2");
        let mut other_id = id;
        other_id[31] ^= 1;
        let auth = Err(CryptoError::Authentication);

        // Another doc id, version or dataset id.
        assert_eq!(
            ds.open_document(&id, &doc_b, 1, &a.wrapped_key, &a.ciphertext),
            auth
        );
        assert_eq!(
            ds.open_document(&id, &doc_a, 2, &a.wrapped_key, &a.ciphertext),
            auth
        );
        assert_eq!(
            ds.open_document(&other_id, &doc_a, 1, &a.wrapped_key, &a.ciphertext),
            auth
        );
        // Wrapped key of another document or version.
        assert_eq!(
            ds.open_document(&id, &doc_a, 1, &b.wrapped_key, &a.ciphertext),
            auth
        );
        assert_eq!(
            ds.open_document(&id, &doc_a, 1, &a2.wrapped_key, &a.ciphertext),
            auth
        );
        // Ciphertext of another document under its own (valid) key.
        assert_eq!(
            ds.open_document(&id, &doc_a, 1, &a.wrapped_key, &b.ciphertext),
            auth
        );
        // Replay of an old version as the new one.
        assert_eq!(
            ds.open_document(&id, &doc_a, 2, &a.wrapped_key, &a.ciphertext),
            auth
        );
        // A content key cannot open another document even if the attacker
        // relabels it: the document AD binds (dataset, doc, version).
        let ck = ds
            .unwrap_content_key(&id, &doc_a, 1, &a.wrapped_key)
            .unwrap();
        assert_eq!(
            open_with_content_key(&ck, &id, &doc_b, 1, &a.ciphertext),
            auth
        );
        // Another dataset's keys.
        let other_ds = master.dataset_keys(&[9u8; 32]);
        assert_eq!(
            other_ds.open_document(&id, &doc_a, 1, &a.wrapped_key, &a.ciphertext),
            auth
        );
        // Wrong wrapped-key length is malformed, not a panic.
        assert!(matches!(
            ds.open_document(&id, &doc_a, 1, &a.wrapped_key[..10], &a.ciphertext),
            Err(CryptoError::Malformed(_))
        ));
        // Every single bit flip in either part fails.
        for i in 0..a.wrapped_key.len() {
            for bit in 0..8 {
                let mut w = a.wrapped_key.clone();
                w[i] ^= 1 << bit;
                assert_eq!(ds.open_document(&id, &doc_a, 1, &w, &a.ciphertext), auth);
            }
        }
        for i in 0..a.ciphertext.len() {
            for bit in 0..8 {
                let mut c = a.ciphertext.clone();
                c[i] ^= 1 << bit;
                assert_eq!(ds.open_document(&id, &doc_a, 1, &a.wrapped_key, &c), auth);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_input_to_open_never_panics(
            wrapped in proptest::collection::vec(any::<u8>(), 0..100),
            ct in proptest::collection::vec(any::<u8>(), 0..100),
            version in any::<u64>(),
        ) {
            let (master, ds, id) = keys();
            let doc = ds.doc_id(b"x");
            prop_assert!(ds.open_document(&id, &doc, version, &wrapped, &ct).is_err());
            prop_assert!(master.catalog_key().open_descriptor(&id, &ct).is_err());
            let ck = ContentKey::from_bytes([5u8; 32]);
            prop_assert!(open_with_content_key(&ck, &id, &doc, version, &ct).is_err());
        }

        #[test]
        fn truncated_documents_fail(len_cut in 1usize..60, which in 0u8..2) {
            let (_, ds, id) = keys();
            let doc = ds.doc_id(b"x");
            let s = ds.seal_document(&id, &doc, 7, b"some document bytes");
            let (w, c) = if which == 0 {
                let cut = s.wrapped_key.len().saturating_sub(len_cut);
                (s.wrapped_key[..cut].to_vec(), s.ciphertext.clone())
            } else {
                let cut = s.ciphertext.len().saturating_sub(len_cut);
                (s.wrapped_key.clone(), s.ciphertext[..cut].to_vec())
            };
            prop_assert!(ds.open_document(&id, &doc, 7, &w, &c).is_err());
        }
    }
}
