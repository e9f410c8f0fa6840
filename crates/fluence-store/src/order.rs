//! The redb key types of the store: fixed-width byte strings, and the range
//! index key whose comparator is the ORE order of its ciphertexts.
//!
//! redb calls [`Key::compare`] on bytes read from disk, so every comparator
//! here is total over *all* byte strings and never panics: a corrupted or
//! malformed key sorts somewhere deterministic instead of crashing the node.

use std::cmp::Ordering;
use std::fmt;
use std::marker::PhantomData;

use fluence_proto::IndexId;
use redb::{Key, TypeName, Value};

/// The order of order-revealing ciphertexts, as a static type so it can
/// parameterise a redb key type (redb comparators are `fn`s, not closures).
///
/// The production implementation wraps `fluence_crypto::ore::{ore_compare,
/// validate}`; tests use [`PlaintextOrder`].
///
/// Contract, relied on by the range index B-tree (breaking it corrupts the
/// index order, not memory):
/// - on ciphertexts for which `validate` is true, `compare` is a total
///   preorder that agrees with the plaintext order: ciphertexts of equal
///   plaintexts compare `Equal` even when their bytes differ;
/// - `compare` never panics, whatever the input (redb hands it bytes from
///   disk), and is deterministic;
/// - `validate` never panics.
pub trait OreOrder: 'static + Send + Sync {
    /// Stable name of the order, persisted in the range table's type name so
    /// a file written under one order is refused under another (the B-tree
    /// would otherwise be silently out of order).
    const NAME: &'static str;

    /// Order of the plaintexts behind two ciphertexts.
    fn compare(a: &[u8], b: &[u8]) -> Ordering;

    /// Whether `ct` is a well-formed ciphertext `compare` can order. Run
    /// once per ciphertext, on ingress (writes, plan bounds, imports).
    fn validate(ct: &[u8]) -> bool;

    /// A cheaper check the range key comparator runs on both keys of every
    /// comparison: whether `ct` has the shape of a ciphertext (for Lewi–Wu:
    /// version, block count, length), without the per-byte checks
    /// `validate` makes once on ingress. Must accept everything `validate`
    /// accepts and never panic. Defaults to `validate`.
    fn well_formed(ct: &[u8]) -> bool {
        Self::validate(ct)
    }
}

/// Test order: a ciphertext *is* its plaintext, compared bytewise. Lets
/// tests and other crates exercise the store before (or without) the ORE
/// scheme. Never use it for real data: it reveals everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlaintextOrder;

impl OreOrder for PlaintextOrder {
    const NAME: &'static str = "plaintext-bytewise-v1";

    fn compare(a: &[u8], b: &[u8]) -> Ordering {
        a.cmp(b)
    }

    fn validate(ct: &[u8]) -> bool {
        !ct.is_empty() && ct.len() <= fluence_proto::limits::ORE_CIPHERTEXT_LEN_MAX
    }
}

/// A fixed-width byte string key or value (`DocId`, posting keys, hashes),
/// ordered bytewise. `SelfType` is a borrowed slice so reads never copy and
/// never panic: callers check the length of what they read and report
/// [`crate::StoreError::Corrupt`] when it is wrong.
pub struct FixedBytes<const N: usize>;

impl<const N: usize> fmt::Debug for FixedBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FixedBytes<{N}>")
    }
}

impl<const N: usize> Value for FixedBytes<N> {
    type SelfType<'a>
        = &'a [u8]
    where
        Self: 'a;
    type AsBytes<'a>
        = &'a [u8]
    where
        Self: 'a;

    fn fixed_width() -> Option<usize> {
        Some(N)
    }

    fn from_bytes<'a>(data: &'a [u8]) -> &'a [u8]
    where
        Self: 'a,
    {
        data
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a &'b [u8]) -> &'a [u8]
    where
        Self: 'b,
    {
        value
    }

    fn type_name() -> TypeName {
        TypeName::new(&format!("fluence_store::FixedBytes<{N}>"))
    }
}

impl<const N: usize> Key for FixedBytes<N> {
    fn compare(data1: &[u8], data2: &[u8]) -> Ordering {
        // Bytewise: for DocIds this is `DocId`'s own `Ord`, so table order
        // is the page order `find` promises.
        data1.cmp(data2)
    }
}

/// Length of the fixed prefix of a range key: index id then marker.
pub const RANGE_KEY_PREFIX_LEN: usize = IndexId::LEN + 1;

/// Range key marker below every value of an index (an open lower bound).
pub const MARKER_MIN: u8 = 0;
/// Range key marker of a stored value (followed by its ORE ciphertext).
pub const MARKER_VALUE: u8 = 1;
/// Range key marker above every value of an index (an open upper bound).
pub const MARKER_MAX: u8 = 2;

/// Encodes a range key: `index id (16) ‖ marker (1) ‖ ciphertext`. Markers
/// `MARKER_MIN`/`MARKER_MAX` carry an empty ciphertext.
pub fn range_key(index: &IndexId, marker: u8, ct: &[u8]) -> Vec<u8> {
    assert!(marker <= MARKER_MAX, "range key marker out of range");
    assert!(
        marker == MARKER_VALUE || ct.is_empty(),
        "only value keys carry a ciphertext"
    );
    let mut key = Vec::with_capacity(RANGE_KEY_PREFIX_LEN + ct.len());
    key.extend_from_slice(index.as_bytes());
    key.push(marker);
    key.extend_from_slice(ct);
    key
}

/// Splits a range key into (index id bytes, marker, ciphertext), or `None`
/// when it is malformed under order `O`.
fn split_range_key<O: OreOrder>(key: &[u8]) -> Option<(&[u8], u8, &[u8])> {
    if key.len() < RANGE_KEY_PREFIX_LEN {
        return None;
    }
    let (prefix, ct) = key.split_at(RANGE_KEY_PREFIX_LEN);
    let (index, marker) = prefix.split_at(IndexId::LEN);
    let marker = marker[0];
    let well_formed = match marker {
        MARKER_MIN | MARKER_MAX => ct.is_empty(),
        // A value key must have the shape of a ciphertext the order accepts,
        // or `compare` could be inconsistent between it and valid keys. The
        // full check (`validate`) ran when the key was stored; repeating it
        // here, on both keys of every B-tree comparison, was a measurable
        // part of a node's insert CPU (see DESIGN.md, "Range index keys").
        MARKER_VALUE => O::well_formed(ct),
        _ => false,
    };
    well_formed.then_some((index, marker, ct))
}

/// The range index key: `index id ‖ marker ‖ ORE ciphertext`, ordered by
/// index id, then marker, then the ORE order of the ciphertexts, so a range
/// table is in plaintext order without any key and supports seeks.
///
/// Malformed keys (only reachable through disk corruption: ingress
/// validates every ciphertext) sort before all well-formed keys, bytewise
/// among themselves, which keeps the order total.
pub struct RangeKey<O: OreOrder>(PhantomData<O>);

impl<O: OreOrder> fmt::Debug for RangeKey<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RangeKey<{}>", O::NAME)
    }
}

impl<O: OreOrder> Value for RangeKey<O> {
    type SelfType<'a>
        = &'a [u8]
    where
        Self: 'a;
    type AsBytes<'a>
        = &'a [u8]
    where
        Self: 'a;

    fn fixed_width() -> Option<usize> {
        None
    }

    fn from_bytes<'a>(data: &'a [u8]) -> &'a [u8]
    where
        Self: 'a,
    {
        data
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a &'b [u8]) -> &'a [u8]
    where
        Self: 'b,
    {
        value
    }

    fn type_name() -> TypeName {
        TypeName::new(&format!("fluence_store::RangeKey<{}>", O::NAME))
    }
}

impl<O: OreOrder> Key for RangeKey<O> {
    fn compare(data1: &[u8], data2: &[u8]) -> Ordering {
        match (split_range_key::<O>(data1), split_range_key::<O>(data2)) {
            (None, None) => data1.cmp(data2),
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some((index1, marker1, ct1)), Some((index2, marker2, ct2))) => index1
                .cmp(index2)
                .then(marker1.cmp(&marker2))
                .then_with(|| {
                    if marker1 == MARKER_VALUE {
                        O::compare(ct1, ct2)
                    } else {
                        // Both are empty: MIN/MAX keys of one index are equal.
                        Ordering::Equal
                    }
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type K = RangeKey<PlaintextOrder>;

    fn arb_key() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            // Garbage of any shape.
            proptest::collection::vec(any::<u8>(), 0..24),
            // Well-formed keys over two indexes and small values.
            (0u8..2, 0u8..4, proptest::collection::vec(0u8..3, 0..3)).prop_map(
                |(index, marker, ct)| {
                    let mut key = vec![index; IndexId::LEN];
                    key.push(marker);
                    if marker == MARKER_VALUE {
                        key.extend_from_slice(&ct);
                    }
                    key
                }
            ),
        ]
    }

    proptest! {
        /// redb needs a total order on whatever bytes it meets on disk.
        #[test]
        fn range_key_compare_is_a_total_order(a in arb_key(), b in arb_key(), c in arb_key()) {
            let ab = K::compare(&a, &b);
            prop_assert_eq!(ab, K::compare(&b, &a).reverse());
            prop_assert_eq!(K::compare(&a, &a), Ordering::Equal);
            if ab != Ordering::Greater && K::compare(&b, &c) != Ordering::Greater {
                prop_assert_ne!(K::compare(&a, &c), Ordering::Greater);
            }
        }
    }

    #[test]
    fn open_markers_bracket_every_value_of_their_index() {
        let index = IndexId([7; 16]);
        let other = IndexId([8; 16]);
        let min = range_key(&index, MARKER_MIN, &[]);
        let max = range_key(&index, MARKER_MAX, &[]);
        for ct in [&[0u8][..], &[255; 40][..], &[1, 2, 3][..]] {
            let value = range_key(&index, MARKER_VALUE, ct);
            assert_eq!(K::compare(&min, &value), Ordering::Less);
            assert_eq!(K::compare(&value, &max), Ordering::Less);
            let next_index = range_key(&other, MARKER_MIN, &[]);
            assert_eq!(K::compare(&max, &next_index), Ordering::Less);
        }
    }

    #[test]
    fn malformed_keys_sort_first() {
        let index = IndexId([7; 16]);
        let valid = range_key(&index, MARKER_VALUE, &[0]);
        // Too short, unknown marker, MIN with a payload, value without one.
        let mut bad_marker = vec![0u8; IndexId::LEN];
        bad_marker.push(9);
        let mut min_with_payload = vec![0u8; IndexId::LEN];
        min_with_payload.extend_from_slice(&[MARKER_MIN, 1]);
        let mut empty_value = vec![0u8; IndexId::LEN];
        empty_value.push(MARKER_VALUE);
        for bad in [vec![1, 2, 3], bad_marker, min_with_payload, empty_value] {
            assert_eq!(K::compare(&bad, &valid), Ordering::Less);
        }
    }
}
