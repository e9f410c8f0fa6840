//! Fixed-size identifiers and cryptographic values. All are opaque to a
//! node: none carries a field name, value or structure.

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};

macro_rules! fixed_bytes {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            pub const LEN: usize = $len;

            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses the hex form printed by `to_hex`.
            pub fn from_hex(text: &str) -> Result<Self, DecodeError> {
                let mut out = [0u8; $len];
                hex::decode_to_slice(text, &mut out)
                    .map_err(|_| DecodeError::Invalid(concat!(stringify!($name), " must be hex of the right length")))?;
                Ok(Self(out))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl Encode for $name {
            fn encode(&self, writer: &mut Writer) {
                writer.fixed(&self.0);
            }
        }

        impl Decode for $name {
            fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok(Self(reader.array(stringify!($name))?))
            }
        }
    };
}

fixed_bytes!(
    /// A dataset's id: SHA-256 over the owner's public key and a keyed tag
    /// of the dataset name (see `fluence_crypto::keys::dataset_id`).
    DatasetId,
    32
);
fixed_bytes!(
    /// A document's id on a node: a keyed hash of its canonical `_id`.
    DocId,
    16
);
fixed_bytes!(
    /// An index's id: a keyed hash of (index kind, field path).
    IndexId,
    16
);
fixed_bytes!(
    /// A blind token (`eq` value or `text` word): truncated HMAC-SHA256.
    Token,
    16
);
fixed_bytes!(
    /// An ed25519 public key.
    PublicKey,
    32
);
fixed_bytes!(
    /// An ed25519 signature.
    Signature,
    64
);
fixed_bytes!(
    /// A 32-byte digest (state roots, block and query hashes).
    Hash32,
    32
);

impl Encode for u64 {
    fn encode(&self, writer: &mut Writer) {
        writer.u64(*self);
    }
}

impl Decode for u64 {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.u64("u64")
    }
}
