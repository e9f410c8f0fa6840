//! Exact comparison of BSON numbers across Int32, Int64, Double and
//! Decimal128.
//!
//! MongoDB compares numbers by value whatever their type: `1`, `NumberLong(1)`,
//! `1.0` and `NumberDecimal("1.00")` are all equal, NaN equals NaN and sorts
//! below every other number, and `-0.0 == 0`. Integers and doubles are
//! compared exactly with MongoDB's own algorithm (no rounding through `f64`).
//! Whenever a Decimal128 is involved, both sides are expanded to an exact
//! decimal digit string: every finite double is a finite decimal fraction, so
//! this comparison is exact too.

use std::cmp::Ordering;

use bson::{Bson, Decimal128};

/// A BSON number, borrowed from a value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Number {
    Int(i64),
    Double(f64),
    Decimal(Decimal128),
}

impl Number {
    /// The number held by `value`, if it is one of the four numeric types.
    pub(crate) fn of(value: &Bson) -> Option<Number> {
        match value {
            Bson::Int32(i) => Some(Number::Int(i64::from(*i))),
            Bson::Int64(i) => Some(Number::Int(*i)),
            Bson::Double(d) => Some(Number::Double(*d)),
            Bson::Decimal128(d) => Some(Number::Decimal(*d)),
            _ => None,
        }
    }

    pub(crate) fn is_nan(&self) -> bool {
        match self {
            Number::Int(_) => false,
            Number::Double(d) => d.is_nan(),
            Number::Decimal(d) => matches!(decode_decimal(d), DecimalParts::NaN),
        }
    }
}

/// Total order on numbers: NaN (of any type) lowest, NaN == NaN, then by
/// mathematical value.
pub(crate) fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    match (a, b) {
        (Number::Int(x), Number::Int(y)) => x.cmp(y),
        (Number::Int(x), Number::Double(y)) => compare_long_to_double(*x, *y),
        (Number::Double(x), Number::Int(y)) => compare_long_to_double(*y, *x).reverse(),
        (Number::Double(x), Number::Double(y)) => compare_doubles(*x, *y),
        _ => Exact::of(a).cmp(&Exact::of(b)),
    }
}

fn compare_doubles(x: f64, y: f64) -> Ordering {
    match x.partial_cmp(&y) {
        Some(order) => order,
        // At least one NaN: NaN is the smallest number and equal to itself.
        None => match (x.is_nan(), y.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            _ => Ordering::Greater,
        },
    }
}

/// MongoDB's `compareLongToDouble`: exact, without rounding the integer.
fn compare_long_to_double(lhs: i64, rhs: f64) -> Ordering {
    if rhs.is_nan() {
        return Ordering::Greater;
    }
    // Integers of magnitude <= 2^53 convert to f64 exactly.
    const PRECISE: i64 = 1 << 53;
    if (-PRECISE..=PRECISE).contains(&lhs) {
        return compare_doubles(lhs as f64, rhs);
    }
    // 2^63 as a double; doubles at or beyond it exceed every i64.
    const LONG_BOUND: f64 = 9_223_372_036_854_775_808.0;
    if rhs >= LONG_BOUND {
        return Ordering::Less;
    }
    if rhs < -LONG_BOUND {
        return Ordering::Greater;
    }
    // |rhs| < 2^63 here and |lhs| > 2^53: if truncating rhs changes the
    // comparison, rhs would need a fractional part at a magnitude where doubles
    // have none, so comparing against the truncated value is exact.
    lhs.cmp(&(rhs as i64))
}

/// The fields of a decoded IEEE 754-2008 decimal128 (BID encoding).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum DecimalParts {
    NaN,
    Infinity {
        negative: bool,
    },
    Finite {
        negative: bool,
        coefficient: u128,
        exponent: i32,
    },
}

/// Largest canonical decimal128 coefficient (34 nines); larger encodings are
/// non-canonical and, per the specification, mean zero.
const DECIMAL_COEFFICIENT_MAX: u128 = 9_999_999_999_999_999_999_999_999_999_999_999;
const DECIMAL_EXPONENT_BIAS: i32 = 6176;

pub(crate) fn decode_decimal(d: &Decimal128) -> DecimalParts {
    // BSON stores the 128 bits little-endian.
    let bits = u128::from_le_bytes(d.bytes());
    let negative = bits >> 127 == 1;
    let combination = (bits >> 122) & 0x1f;
    if combination == 0x1f {
        return DecimalParts::NaN;
    }
    if combination == 0x1e {
        return DecimalParts::Infinity { negative };
    }
    let (biased_exponent, coefficient) = if (bits >> 125) & 0b11 == 0b11 {
        // The "large coefficient" form: implicit 0b100 prefix, which always
        // exceeds the maximum, so the value is a (non-canonical) zero.
        let exponent = (bits >> 111) & 0x3fff;
        (exponent, DECIMAL_COEFFICIENT_MAX + 1)
    } else {
        ((bits >> 113) & 0x3fff, bits & ((1u128 << 113) - 1))
    };
    let coefficient = if coefficient > DECIMAL_COEFFICIENT_MAX {
        0
    } else {
        coefficient
    };
    // The biased exponent has 14 bits, so it always fits in i32.
    let exponent = i32::try_from(biased_exponent).unwrap_or(0) - DECIMAL_EXPONENT_BIAS;
    DecimalParts::Finite {
        negative,
        coefficient,
        exponent,
    }
}

/// An exact number: NaN, an infinity, or `±0.d1d2…dn × 10^exponent` with no
/// leading or trailing zero digits (zero has no digits). Equal numbers have
/// equal representations, which is what makes [`Exact::encode`] usable as an
/// equality key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exact {
    NaN,
    NegInfinity,
    Finite {
        negative: bool,
        digits: Vec<u8>,
        exponent: i64,
    },
    PosInfinity,
}

impl Exact {
    pub(crate) fn of(n: &Number) -> Exact {
        match n {
            Number::Int(i) => {
                let negative = *i < 0;
                Exact::finite(negative, i.unsigned_abs().to_string().into_bytes(), 0)
            }
            Number::Double(d) => Exact::of_double(*d),
            Number::Decimal(d) => match decode_decimal(d) {
                DecimalParts::NaN => Exact::NaN,
                DecimalParts::Infinity { negative: true } => Exact::NegInfinity,
                DecimalParts::Infinity { negative: false } => Exact::PosInfinity,
                DecimalParts::Finite {
                    negative,
                    coefficient,
                    exponent,
                } => Exact::finite(
                    negative,
                    coefficient.to_string().into_bytes(),
                    i64::from(exponent),
                ),
            },
        }
    }

    /// `±(decimal digits) × 10^scale`, normalised.
    fn finite(negative: bool, ascii_digits: Vec<u8>, scale: i64) -> Exact {
        let mut digits: Vec<u8> = ascii_digits.iter().map(|c| c - b'0').collect();
        let leading = digits.iter().take_while(|d| **d == 0).count();
        digits.drain(..leading);
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            // Zero: sign and exponent carry no meaning (-0 == 0).
            return Exact::Finite {
                negative: false,
                digits,
                exponent: 0,
            };
        }
        // An integer of n significant-leading digits is 0.d1…dn × 10^n;
        // dropping trailing zeros does not change n.
        let integer_len = (ascii_digits.len() - leading) as i64;
        Exact::Finite {
            negative,
            digits,
            exponent: integer_len + scale,
        }
    }

    fn of_double(d: f64) -> Exact {
        if d.is_nan() {
            return Exact::NaN;
        }
        if d.is_infinite() {
            return if d > 0.0 {
                Exact::PosInfinity
            } else {
                Exact::NegInfinity
            };
        }
        let bits = d.to_bits();
        let negative = bits >> 63 == 1;
        let biased = ((bits >> 52) & 0x7ff) as i64;
        let fraction = bits & ((1u64 << 52) - 1);
        // value = mantissa × 2^power
        let (mantissa, power) = if biased == 0 {
            (fraction, -1074)
        } else {
            (fraction | (1u64 << 52), biased - 1075)
        };
        if mantissa == 0 {
            return Exact::finite(false, Vec::new(), 0);
        }
        let mut big = BigDecimal::from_u64(mantissa);
        if power >= 0 {
            big.mul_pow(2, power as u32);
            Exact::finite(negative, big.to_ascii(), 0)
        } else {
            // m × 2^-k = m × 5^k × 10^-k
            let k = (-power) as u32;
            big.mul_pow(5, k);
            Exact::finite(negative, big.to_ascii(), -i64::from(k))
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Exact::NaN => 0,
            Exact::NegInfinity => 1,
            Exact::Finite { digits, .. } if digits.is_empty() => 3,
            Exact::Finite { negative: true, .. } => 2,
            Exact::Finite { .. } => 4,
            Exact::PosInfinity => 5,
        }
    }

    /// Bytes that are equal exactly when the numbers are equal.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.rank());
        if let Exact::Finite {
            negative,
            digits,
            exponent,
        } = self
        {
            out.push(u8::from(*negative));
            out.extend_from_slice(&exponent.to_le_bytes());
            out.extend_from_slice(&(digits.len() as u64).to_le_bytes());
            out.extend_from_slice(digits);
        }
    }
}

impl Ord for Exact {
    fn cmp(&self, other: &Self) -> Ordering {
        let by_rank = self.rank().cmp(&other.rank());
        if by_rank != Ordering::Equal {
            return by_rank;
        }
        match (self, other) {
            (
                Exact::Finite {
                    negative,
                    digits: da,
                    exponent: ea,
                },
                Exact::Finite {
                    digits: db,
                    exponent: eb,
                    ..
                },
            ) => {
                if da.is_empty() {
                    // Both zero (same rank, and only zero has no digits).
                    return Ordering::Equal;
                }
                // Same sign here. Magnitude: exponent first, then digits; a
                // proper prefix is smaller because trailing zeros are stripped.
                let magnitude = ea.cmp(eb).then_with(|| da.cmp(db));
                if *negative {
                    magnitude.reverse()
                } else {
                    magnitude
                }
            }
            _ => Ordering::Equal,
        }
    }
}

impl PartialOrd for Exact {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A non-negative integer in base 10^9, least significant limb first; only
/// what converting a double to decimal digits needs.
struct BigDecimal {
    limbs: Vec<u32>,
}

const LIMB_BASE: u64 = 1_000_000_000;

impl BigDecimal {
    fn from_u64(mut v: u64) -> Self {
        let mut limbs = Vec::new();
        while v > 0 {
            limbs.push((v % LIMB_BASE) as u32);
            v /= LIMB_BASE;
        }
        BigDecimal { limbs }
    }

    fn mul_small(&mut self, factor: u32) {
        let mut carry: u64 = 0;
        for limb in &mut self.limbs {
            // limb < 10^9 and factor < 2^32, so the product fits in u64.
            let product = u64::from(*limb) * u64::from(factor) + carry;
            *limb = (product % LIMB_BASE) as u32;
            carry = product / LIMB_BASE;
        }
        while carry > 0 {
            self.limbs.push((carry % LIMB_BASE) as u32);
            carry /= LIMB_BASE;
        }
    }

    /// Multiplies by `base^exponent` for base 2 or 5, in chunks that keep
    /// each factor below 2^32.
    fn mul_pow(&mut self, base: u32, mut exponent: u32) {
        let (chunk_factor, chunk_exponent) = if base == 2 {
            (1u32 << 29, 29)
        } else {
            (1_220_703_125u32, 13) // 5^13
        };
        while exponent >= chunk_exponent {
            self.mul_small(chunk_factor);
            exponent -= chunk_exponent;
        }
        if exponent > 0 {
            self.mul_small(base.pow(exponent));
        }
    }

    fn to_ascii(&self) -> Vec<u8> {
        let mut s = String::new();
        for (i, limb) in self.limbs.iter().rev().enumerate() {
            if i == 0 {
                s.push_str(&limb.to_string());
            } else {
                s.push_str(&format!("{limb:09}"));
            }
        }
        s.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Number {
        Number::Decimal(Decimal128::from_str(s).unwrap())
    }

    fn cmp(a: Number, b: Number) -> Ordering {
        compare_numbers(&a, &b)
    }

    #[test]
    fn integers_and_doubles_compare_by_value() {
        assert_eq!(cmp(Number::Int(1), Number::Double(1.0)), Ordering::Equal);
        assert_eq!(cmp(Number::Int(1), Number::Double(1.5)), Ordering::Less);
        assert_eq!(cmp(Number::Double(-0.0), Number::Int(0)), Ordering::Equal);
        // 2^53 + 1 is not representable as a double; it must not collapse.
        let big = (1i64 << 53) + 1;
        assert_eq!(
            cmp(Number::Int(big), Number::Double((1u64 << 53) as f64)),
            Ordering::Greater
        );
        assert_eq!(
            cmp(Number::Int(i64::MAX), Number::Double(9.3e18)),
            Ordering::Less
        );
        assert_eq!(
            cmp(Number::Int(i64::MIN), Number::Double(i64::MIN as f64)),
            Ordering::Equal
        );
        assert_eq!(
            cmp(Number::Int(i64::MAX), Number::Double(f64::INFINITY)),
            Ordering::Less
        );
    }

    #[test]
    fn nan_is_lowest_and_equal_to_itself() {
        assert_eq!(
            cmp(Number::Double(f64::NAN), Number::Double(f64::NEG_INFINITY)),
            Ordering::Less
        );
        assert_eq!(
            cmp(Number::Double(f64::NAN), Number::Double(f64::NAN)),
            Ordering::Equal
        );
        assert_eq!(
            cmp(Number::Int(i64::MIN), Number::Double(f64::NAN)),
            Ordering::Greater
        );
        assert_eq!(cmp(dec("NaN"), Number::Double(f64::NAN)), Ordering::Equal);
        assert_eq!(cmp(dec("NaN"), dec("-Infinity")), Ordering::Less);
    }

    #[test]
    fn decimals_compare_exactly_with_every_type() {
        assert_eq!(cmp(dec("1.00"), Number::Int(1)), Ordering::Equal);
        assert_eq!(cmp(dec("1E+2"), Number::Double(100.0)), Ordering::Equal);
        assert_eq!(cmp(dec("-0"), Number::Double(0.0)), Ordering::Equal);
        // 0.1 as a double is 0.1000000000000000055511151231257827...
        assert_eq!(cmp(dec("0.1"), Number::Double(0.1)), Ordering::Less);
        assert_eq!(cmp(dec("0.5"), Number::Double(0.5)), Ordering::Equal);
        assert_eq!(cmp(dec("-2.5"), dec("-2.4")), Ordering::Less);
        assert_eq!(
            cmp(dec("Infinity"), Number::Double(f64::MAX)),
            Ordering::Greater
        );
        assert_eq!(
            cmp(dec("-Infinity"), Number::Double(f64::NEG_INFINITY)),
            Ordering::Equal
        );
        assert_eq!(
            cmp(dec("9223372036854775808"), Number::Int(i64::MAX)),
            Ordering::Greater
        );
        assert_eq!(cmp(dec("1E-6176"), Number::Double(0.0)), Ordering::Greater);
        // The smallest subnormal double is 4.94065645841246544E-324.
        assert_eq!(
            cmp(dec("5E-324"), Number::Double(5e-324)),
            Ordering::Greater
        );
    }

    #[test]
    fn exact_forms_are_canonical() {
        let forms = [
            Exact::of(&Number::Int(1200)),
            Exact::of(&Number::Double(1200.0)),
            Exact::of(&dec("1.200E+3")),
            Exact::of(&dec("12E+2")),
        ];
        for f in &forms {
            assert_eq!(f, &forms[0]);
        }
        assert_eq!(Exact::of(&Number::Double(-0.0)), Exact::of(&Number::Int(0)));
        assert_eq!(
            Exact::of(&Number::Double(f64::MIN_POSITIVE)).cmp(&Exact::of(&Number::Int(0))),
            Ordering::Greater
        );
    }

    #[test]
    fn decimal_decoding_matches_display() {
        for s in [
            "0",
            "-1.5",
            "123456789012345678901234567890.1234",
            "1E+6111",
            "-1E-6176",
        ] {
            let d = Decimal128::from_str(s).unwrap();
            match decode_decimal(&d) {
                DecimalParts::Finite { .. } => {}
                other => panic!("{s} decoded as {other:?}"),
            }
        }
        assert_eq!(
            decode_decimal(&Decimal128::from_str("-1.5").unwrap()),
            DecimalParts::Finite {
                negative: true,
                coefficient: 15,
                exponent: -1
            }
        );
        assert!(Number::Decimal(Decimal128::from_str("NaN").unwrap()).is_nan());
    }

    #[test]
    fn non_canonical_decimal_is_zero() {
        // Combination bits 11 with a coefficient above the maximum.
        let bits: u128 = (0b11u128 << 125) | (6176u128 << 111) | 1;
        let d = Decimal128::from_bytes(bits.to_le_bytes());
        assert_eq!(cmp(Number::Decimal(d), Number::Int(0)), Ordering::Equal);
    }
}
