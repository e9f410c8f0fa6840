//! End to end through the public API: value → order-preserving encoding → ORE
//! ciphertext → keyless comparison, against the order MongoDB defines.
//!
//! The encode module's own tests check the encodings as byte strings with
//! many cases; these run the same properties through real encryption.

use std::cmp::Ordering;

use fluence_crypto::encode::{
    ore_bool, ore_date_millis, ore_f64, ore_i64, ore_null, ore_string, STRING_PREFIX_LEN,
};
use fluence_crypto::{ore_compare, ore_validate, MasterKey, OreKey};
use proptest::prelude::*;

fn key() -> OreKey {
    MasterKey::from_bytes([11u8; 32])
        .dataset_keys(&[12u8; 32])
        .ore_key("field")
}

/// Compares two plaintexts through encryption, checking both directions and
/// that the ciphertexts validate.
fn ore_cmp(key: &OreKey, a: &[u8], b: &[u8]) -> Ordering {
    let ca = key.encrypt(a).expect("encodings are 1..=15 bytes");
    let cb = key.encrypt(b).expect("encodings are 1..=15 bytes");
    assert_eq!(ore_validate(&ca), Ok(()));
    assert_eq!(ore_validate(&cb), Ok(()));
    let ab = ore_compare(&ca, &cb).expect("same key");
    assert_eq!(ore_compare(&cb, &ca).expect("same key"), ab.reverse());
    ab
}

/// `x < y` must never encrypt to "greater"; exact where the spec says so.
fn assert_monotone(got: Ordering, expected: Ordering, exact: bool) {
    if exact || expected == Ordering::Equal {
        assert_eq!(got, expected);
    } else {
        assert!(
            got == expected || got == Ordering::Equal,
            "{got:?} vs {expected:?}"
        );
    }
}

fn mongo_cmp_f64(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.partial_cmp(&b).expect("not NaN"),
    }
}

fn interesting_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(0.0),
        Just(-0.0),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MIN),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(f64::from_bits(1)),
        (0u64..(1 << 52)).prop_map(f64::from_bits),
        (-1000i64..1000).prop_map(|v| v as f64 / 4.0),
        (-(1i64 << 10)..(1i64 << 10)).prop_map(|d| (1i64 << 53) as f64 + d as f64),
    ]
}

#[test]
fn edge_cases() {
    let k = key();
    assert_eq!(ore_cmp(&k, &ore_f64(0.0), &ore_f64(-0.0)), Ordering::Equal);
    assert_eq!(
        ore_cmp(&k, &ore_f64(f64::NAN), &ore_f64(f64::NEG_INFINITY)),
        Ordering::Less
    );
    assert_eq!(
        ore_cmp(&k, &ore_f64(f64::MAX), &ore_f64(f64::INFINITY)),
        Ordering::Less
    );
    assert_eq!(ore_cmp(&k, &ore_i64(-1), &ore_f64(-0.5)), Ordering::Less);
    assert_eq!(ore_cmp(&k, &ore_i64(3), &ore_f64(3.0)), Ordering::Equal);
    assert_eq!(
        ore_cmp(&k, &ore_string("abc"), &ore_string("abd")),
        Ordering::Less
    );
    assert_eq!(
        ore_cmp(&k, &ore_string("b"), &ore_string("abc")),
        Ordering::Greater
    );
    assert_eq!(
        ore_cmp(&k, &ore_bool(false), &ore_bool(true)),
        Ordering::Less
    );
    assert_eq!(
        ore_cmp(&k, &ore_date_millis(-1), &ore_date_millis(0)),
        Ordering::Less
    );
    // Cross-class chain: null < numbers < strings < booleans < dates.
    let chain: Vec<Vec<u8>> = vec![
        ore_null().to_vec(),
        ore_f64(f64::NAN).to_vec(),
        ore_f64(f64::INFINITY).to_vec(),
        ore_string("").to_vec(),
        ore_string("\u{10FFFF}\u{10FFFF}\u{10FFFF}\u{10FFFF}").to_vec(),
        ore_bool(false).to_vec(),
        ore_bool(true).to_vec(),
        ore_date_millis(i64::MIN).to_vec(),
        ore_date_millis(i64::MAX).to_vec(),
    ];
    for (i, a) in chain.iter().enumerate() {
        for (j, b) in chain.iter().enumerate() {
            assert_eq!(ore_cmp(&k, a, b), i.cmp(&j), "{i} vs {j}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn f64_pairs(a in interesting_f64(), b in interesting_f64()) {
        assert_monotone(ore_cmp(&key(), &ore_f64(a), &ore_f64(b)), mongo_cmp_f64(a, b), true);
    }

    #[test]
    fn i64_pairs(a in any::<i64>(), b in any::<i64>(), small in -5000i64..5000) {
        let k = key();
        let exact = a.unsigned_abs() <= 1 << 53 && b.unsigned_abs() <= 1 << 53;
        assert_monotone(ore_cmp(&k, &ore_i64(a), &ore_i64(b)), a.cmp(&b), exact);
        assert_monotone(ore_cmp(&k, &ore_i64(small), &ore_i64(a)), small.cmp(&a), a.unsigned_abs() <= 1 << 53);
        // Near 2^53 neighbours are equal or ordered, never swapped.
        let big = (1i64 << 53) + small;
        assert_monotone(ore_cmp(&k, &ore_i64(big), &ore_i64(big + 1)), Ordering::Less, big < 1 << 53);
    }

    #[test]
    fn mixed_i64_f64(i in -(1i64 << 53)..=(1i64 << 53), f in interesting_f64()) {
        // Within ±2^53 the i64 converts exactly, so f64 order is exact order.
        assert_monotone(ore_cmp(&key(), &ore_i64(i), &ore_f64(f)), mongo_cmp_f64(i as f64, f), true);
    }

    #[test]
    fn strings(prefix in "\\PC{0,10}", a in "\\PC{0,6}", b in "\\PC{0,6}") {
        let a = format!("{prefix}{a}");
        let b = format!("{prefix}{b}");
        let expected = a.as_bytes().cmp(b.as_bytes());
        let first_differ = a.bytes().zip(b.bytes()).position(|(x, y)| x != y);
        let exact = match first_differ {
            Some(k) => k < STRING_PREFIX_LEN,
            None => false,
        };
        assert_monotone(ore_cmp(&key(), &ore_string(&a), &ore_string(&b)), expected, exact);
    }

    #[test]
    fn dates(a in any::<i64>(), b in any::<i64>()) {
        assert_monotone(ore_cmp(&key(), &ore_date_millis(a), &ore_date_millis(b)), a.cmp(&b), true);
    }

    #[test]
    fn cross_class(x in 0u8..5, y in 0u8..5, f in interesting_f64(), s in "\\PC{0,20}",
                   flag in any::<bool>(), d in any::<i64>()) {
        let enc = |class: u8| -> Vec<u8> {
            match class {
                0 => ore_null().to_vec(),
                1 => ore_f64(f).to_vec(),
                2 => ore_string(&s).to_vec(),
                3 => ore_bool(flag).to_vec(),
                _ => ore_date_millis(d).to_vec(),
            }
        };
        if x != y {
            prop_assert_eq!(ore_cmp(&key(), &enc(x), &enc(y)), x.cmp(&y));
        }
    }
}
