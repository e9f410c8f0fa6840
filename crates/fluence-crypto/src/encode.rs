//! Order-preserving plaintext encodings for the `range` index (inputs to [`crate::ore`]).
//!
//! # Cross-type order
//!
//! MongoDB sorts values of different BSON types by a fixed type order; the
//! part Fluence indexes is
//!
//! ```text
//! null < numbers < strings < booleans < dates
//! ```
//!
//! Every encoding starts with a class byte that realises this order. The
//! classes are spaced apart so other MongoDB types (objects, arrays, binary,
//! ObjectId between strings and booleans; timestamps after dates) can be added
//! later without renumbering:
//!
//! | class | byte | payload | plaintext length |
//! |---|---|---|---|
//! | null | `0x10` [`CLASS_NULL`] | none | 1 |
//! | number | `0x20` [`CLASS_NUMBER`] | 8-byte order-preserving f64 | 9 |
//! | string | `0x30` [`CLASS_STRING`] | first 14 UTF-8 bytes, zero padded | 15 |
//! | boolean | `0x80` [`CLASS_BOOL`] | `0` or `1` | 2 |
//! | date | `0x90` [`CLASS_DATE`] | 8-byte order-preserving i64 (ms since epoch) | 9 |
//!
//! ORE compares plaintexts as byte strings (a proper prefix is smaller), so a
//! bare class byte (`[CLASS_NUMBER]`) sorts below every value of its class and
//! `[CLASS_NUMBER + 1]` above: the gateway uses these as bounds for "all
//! values of one type" (MongoDB's type bracketing of `$gt`/`$lt`).
//!
//! # Monotone, exact where possible
//!
//! Each encoding `e` is *monotone non-decreasing*: `x < y` implies
//! `e(x) <= e(y)`. Where an encoding is lossy (long strings, i64 beyond
//! ±2^53) distinct values may encode equal but are never reordered, so a range
//! scan over the encodings returns a superset in the right order and the
//! gateway refines it exactly after decryption. Exactness:
//!
//! - numbers: exact for all f64 and for i64 in ±2^53; `-0.0` equals `0.0` and
//!   every NaN equals every other NaN, as in MongoDB; NaN sorts below `-inf`.
//! - strings: exact (MongoDB's default binary comparison of UTF-8) whenever
//!   the first 14 bytes differ, or both strings are at most 14 bytes and
//!   neither ends in NUL bytes.
//! - null, booleans, dates: exact.
//!
//! Leakage note: the ORE ciphertext length reveals the plaintext length, i.e.
//! the class (null, number/date, string, boolean); the order leakage reveals
//! the class ordering anyway.

/// Class byte of `null` (and missing fields, which MongoDB sorts as null).
pub const CLASS_NULL: u8 = 0x10;
/// Class byte of all numbers (int32, int64, double).
pub const CLASS_NUMBER: u8 = 0x20;
/// Class byte of strings.
pub const CLASS_STRING: u8 = 0x30;
/// Class byte of booleans.
pub const CLASS_BOOL: u8 = 0x80;
/// Class byte of dates.
pub const CLASS_DATE: u8 = 0x90;

/// How many leading UTF-8 bytes of a string the encoding keeps.
pub const STRING_PREFIX_LEN: usize = 14;

/// Encoding of `null`.
pub fn ore_null() -> [u8; 1] {
    [CLASS_NULL]
}

/// Encoding of a number (int32/int64 callers may use [`ore_i64`]).
///
/// The payload is the IEEE-754 bit pattern made order-preserving: for
/// non-negative numbers the sign bit is set, for negative numbers all bits are
/// flipped; then big-endian. `-0.0` is mapped to `0.0` first; every NaN is
/// mapped to the all-zero payload, which is below the encoding of `-inf`
/// (`0x000F_FFFF_FFFF_FFFF`), matching MongoDB where NaN sorts below all
/// numbers.
pub fn ore_f64(value: f64) -> [u8; 9] {
    let payload: u64 = if value.is_nan() {
        0
    } else {
        // `+ 0.0` turns -0.0 into +0.0 and leaves everything else alone.
        let bits = (value + 0.0).to_bits();
        if bits >> 63 == 1 {
            !bits
        } else {
            bits | (1 << 63)
        }
    };
    let mut out = [0u8; 9];
    out[0] = CLASS_NUMBER;
    out[1..].copy_from_slice(&payload.to_be_bytes());
    out
}

/// Encoding of an integer, consistent with [`ore_f64`]: `ore_i64(v) ==
/// ore_f64(v as f64)`.
///
/// Beyond ±2^53 the conversion rounds to the nearest f64, which is monotone
/// non-decreasing, so neighbours may encode equal but never swap; within
/// ±2^53 it is exact, and an integer and a double of equal value encode equal.
pub fn ore_i64(value: i64) -> [u8; 9] {
    ore_f64(value as f64)
}

/// Encoding of a string: class byte, then the first [`STRING_PREFIX_LEN`]
/// bytes of its UTF-8, zero padded.
///
/// Order is MongoDB's default (binary comparison of UTF-8 bytes). Zero padding
/// keeps the encoding monotone: if `s` is a proper prefix of `t`, `t`'s extra
/// bytes are `>= 0`; if they first differ at byte `k < 14`, the encodings differ
/// there the same way; if `k >= 14` they are equal. So truncation and padding
/// can only merge values (`"a"` and `"a\0"`, or long strings with a common
/// 14-byte prefix), never reorder them. The cut may fall inside a multi-byte
/// character; that is harmless because order is by bytes.
pub fn ore_string(value: &str) -> [u8; 1 + STRING_PREFIX_LEN] {
    let mut out = [0u8; 1 + STRING_PREFIX_LEN];
    out[0] = CLASS_STRING;
    let bytes = value.as_bytes();
    let len = bytes.len().min(STRING_PREFIX_LEN);
    out[1..1 + len].copy_from_slice(&bytes[..len]);
    out
}

/// Encoding of a boolean (`false < true`).
pub fn ore_bool(value: bool) -> [u8; 2] {
    [CLASS_BOOL, u8::from(value)]
}

/// Encoding of a date (milliseconds since the Unix epoch, signed like BSON):
/// the sign bit flipped, then big-endian, which orders two's complement
/// integers as unsigned bytes. Exact.
pub fn ore_date_millis(millis: i64) -> [u8; 9] {
    let mut out = [0u8; 9];
    out[0] = CLASS_DATE;
    out[1..].copy_from_slice(&((millis as u64) ^ (1 << 63)).to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cmp::Ordering;

    /// MongoDB's order on doubles: NaN lowest, -0 == 0.
    fn mongo_cmp_f64(a: f64, b: f64) -> Ordering {
        match (a.is_nan(), b.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => a.partial_cmp(&b).expect("no NaN here"),
        }
    }

    /// Exact comparison of an i64 with an f64 (what MongoDB does).
    fn exact_cmp_i64_f64(i: i64, f: f64) -> Ordering {
        if f.is_nan() {
            return Ordering::Greater;
        }
        if f >= 9.3e18 {
            return Ordering::Less;
        }
        if f < -9.3e18 {
            return Ordering::Greater;
        }
        // |f| < 2^63.05: compare via i128 parts of f.
        let t = f.trunc();
        let ti = t as i128;
        match (i as i128).cmp(&ti) {
            Ordering::Equal => {
                let frac = f - t;
                if frac > 0.0 {
                    Ordering::Less
                } else if frac < 0.0 {
                    Ordering::Greater
                } else {
                    Ordering::Equal
                }
            }
            o => o,
        }
    }

    fn interesting_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(-f64::NAN),
            Just(0.0),
            Just(-0.0),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::MIN),
            Just(f64::MAX),
            Just(f64::MIN_POSITIVE),
            Just(-f64::MIN_POSITIVE),
            Just(f64::from_bits(1)),
            Just(-f64::from_bits(1)),
            (-1000i64..1000).prop_map(|v| v as f64),
            (-(1i64 << 20)..(1i64 << 20)).prop_map(|d| (1i64 << 53) as f64 + d as f64),
            (-(1i64 << 20)..(1i64 << 20)).prop_map(|d| -((1i64 << 53) as f64) + d as f64),
            (0u64..(1 << 52)).prop_map(f64::from_bits), // subnormals
            any::<i64>().prop_map(|v| v as f64),
        ]
    }

    fn interesting_i64() -> impl Strategy<Value = i64> {
        prop_oneof![
            any::<i64>(),
            Just(i64::MIN),
            Just(i64::MAX),
            Just(0),
            Just(-1),
            (-1000i64..1000),
            (-(1i64 << 12)..(1i64 << 12)).prop_map(|d| (1i64 << 53) + d),
            (-(1i64 << 12)..(1i64 << 12)).prop_map(|d| -(1i64 << 53) + d),
            (-(1i64 << 12)..(1i64 << 12)).prop_map(|d| i64::MAX - d.abs()),
        ]
    }

    /// Monotone non-decreasing and exact where the spec says so.
    fn check_monotone(enc_a: &[u8], enc_b: &[u8], order: Ordering, exact: bool) {
        let enc_order = enc_a.cmp(enc_b);
        if exact {
            assert_eq!(enc_order, order);
        } else {
            match order {
                Ordering::Less => assert_ne!(enc_order, Ordering::Greater),
                Ordering::Greater => assert_ne!(enc_order, Ordering::Less),
                Ordering::Equal => assert_eq!(enc_order, Ordering::Equal),
            }
        }
    }

    #[test]
    fn number_edge_cases() {
        assert_eq!(ore_f64(0.0), ore_f64(-0.0));
        assert_eq!(ore_f64(f64::NAN), ore_f64(-f64::NAN));
        assert_eq!(
            ore_f64(f64::NAN),
            ore_f64(f64::from_bits(0x7ff0_0000_0000_0001))
        );
        assert!(ore_f64(f64::NAN) < ore_f64(f64::NEG_INFINITY));
        assert!(ore_f64(f64::NEG_INFINITY) < ore_f64(f64::MIN));
        assert!(ore_f64(f64::MIN) < ore_f64(-1.0));
        assert!(ore_f64(-f64::from_bits(1)) < ore_f64(0.0));
        assert!(ore_f64(0.0) < ore_f64(f64::from_bits(1)));
        assert!(ore_f64(f64::MAX) < ore_f64(f64::INFINITY));
        assert_eq!(ore_i64(5), ore_f64(5.0));
        assert_eq!(ore_i64(-(1 << 53)), ore_f64(-(2f64.powi(53))));
        // Beyond 2^53: 2^53 + 1 rounds to 2^53 (equal, not reordered).
        assert_eq!(ore_i64((1 << 53) + 1), ore_i64(1 << 53));
        assert!(ore_i64((1 << 53) + 2) > ore_i64(1 << 53));
        assert!(ore_i64(i64::MIN) < ore_i64(i64::MIN + 1024 * 1024));
        assert_eq!(ore_i64(i64::MAX), ore_f64(9_223_372_036_854_775_808.0));
    }

    #[test]
    fn string_edge_cases() {
        assert!(ore_string("") < ore_string("\0\u{1}"));
        assert_eq!(ore_string(""), ore_string("\0"));
        assert_eq!(ore_string("a"), ore_string("a\0"));
        assert!(ore_string("a") < ore_string("b"));
        assert!(ore_string("a") < ore_string("aa"));
        assert!(ore_string("Z") < ore_string("a"));
        assert_eq!(ore_string("abcdefghijklmnX"), ore_string("abcdefghijklmnY"));
        assert!(ore_string("abcdefghijklmX") < ore_string("abcdefghijklmY"));
        // 'é' = C3 A9 cut in the middle at byte 14.
        let s = format!("{}é", "a".repeat(13));
        assert_eq!(ore_string(&s)[14], 0xC3);
    }

    #[test]
    fn cross_class_order() {
        let null = ore_null().to_vec();
        let num_min = ore_f64(f64::NAN).to_vec();
        let num_max = ore_f64(f64::INFINITY).to_vec();
        let str_min = ore_string("").to_vec();
        let str_max = ore_string(&"\u{10FFFF}".repeat(4)).to_vec();
        let f = ore_bool(false).to_vec();
        let t = ore_bool(true).to_vec();
        let d_min = ore_date_millis(i64::MIN).to_vec();
        let d_max = ore_date_millis(i64::MAX).to_vec();
        let chain = [null, num_min, num_max, str_min, str_max, f, t, d_min, d_max];
        for w in chain.windows(2) {
            assert!(w[0] < w[1], "{:?} !< {:?}", w[0], w[1]);
        }
        // Bare class bytes bracket each class.
        assert!(vec![CLASS_NUMBER] < ore_f64(f64::NAN).to_vec());
        assert!(vec![CLASS_NUMBER + 1] > ore_f64(f64::INFINITY).to_vec());
        assert!(vec![CLASS_STRING + 1] > ore_string("\u{10FFFF}").to_vec());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn f64_pairs(a in interesting_f64(), b in interesting_f64()) {
            check_monotone(&ore_f64(a), &ore_f64(b), mongo_cmp_f64(a, b), true);
        }

        #[test]
        fn i64_pairs(a in interesting_i64(), b in interesting_i64()) {
            let exact = a.unsigned_abs() <= 1 << 53 && b.unsigned_abs() <= 1 << 53;
            check_monotone(&ore_i64(a), &ore_i64(b), a.cmp(&b), exact);
        }

        #[test]
        fn mixed_i64_f64(i in interesting_i64(), f in interesting_f64()) {
            let exact = i.unsigned_abs() <= 1 << 53;
            check_monotone(&ore_i64(i), &ore_f64(f), exact_cmp_i64_f64(i, f), exact);
        }

        #[test]
        fn dates(a in any::<i64>(), b in any::<i64>()) {
            check_monotone(&ore_date_millis(a), &ore_date_millis(b), a.cmp(&b), true);
        }

        #[test]
        fn strings(prefix in "\\PC{0,12}", a in "\\PC{0,8}", b in "\\PC{0,8}") {
            // Shared prefixes of random length make the 14-byte cut matter.
            let a = format!("{prefix}{a}");
            let b = format!("{prefix}{b}");
            let order = a.as_bytes().cmp(b.as_bytes());
            let first_differ = a.bytes().zip(b.bytes()).position(|(x, y)| x != y);
            let exact = match first_differ {
                Some(k) => k < STRING_PREFIX_LEN,
                // One is a prefix of the other: exact if the shorter is
                // shorter than 14 bytes and the longer does not continue
                // with NUL bytes only (those pad equal).
                None => {
                    let (short, long) = if a.len() <= b.len() { (&a, &b) } else { (&b, &a) };
                    short.len() < STRING_PREFIX_LEN
                        && long.as_bytes()[short.len()..]
                            .iter()
                            .take(STRING_PREFIX_LEN - short.len())
                            .any(|&c| c != 0)
                        || a == b
                }
            };
            check_monotone(&ore_string(&a), &ore_string(&b), order, exact);
        }

        #[test]
        fn cross_class(x in 0u8..5, y in 0u8..5, f in interesting_f64(), s in "\\PC{0,20}",
                       bo in any::<bool>(), d in any::<i64>()) {
            let enc = |class: u8| -> Vec<u8> {
                match class {
                    0 => ore_null().to_vec(),
                    1 => ore_f64(f).to_vec(),
                    2 => ore_string(&s).to_vec(),
                    3 => ore_bool(bo).to_vec(),
                    _ => ore_date_millis(d).to_vec(),
                }
            };
            if x != y {
                prop_assert_eq!(enc(x).cmp(&enc(y)), x.cmp(&y));
            }
        }
    }
}
