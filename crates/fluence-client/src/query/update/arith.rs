//! Arithmetic for `$inc` and `$mul`, with MongoDB's type promotion
//! (the server's `SafeNum`).
//!
//! Int32 op Int32 widens to Int64 on overflow; any Int64 operand makes the
//! result Int64 and overflow an error; a Double operand makes the result a
//! Double. Decimal128 arithmetic is not implemented (the bson crate has no
//! decimal arithmetic) and is reported as unsupported.

use bson::Bson;

/// Why an arithmetic update could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithError {
    /// The Int64 result does not fit.
    Overflow,
    /// A Decimal128 operand.
    Decimal,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum ArithOp {
    Add,
    Multiply,
}

/// `current op operand` for two numeric values.
pub(crate) fn apply(op: ArithOp, current: &Bson, operand: &Bson) -> Result<Bson, ArithError> {
    match (current, operand) {
        (Bson::Decimal128(_), _) | (_, Bson::Decimal128(_)) => Err(ArithError::Decimal),
        (Bson::Int32(a), Bson::Int32(b)) => {
            let checked = match op {
                ArithOp::Add => a.checked_add(*b),
                ArithOp::Multiply => a.checked_mul(*b),
            };
            Ok(match checked {
                Some(v) => Bson::Int32(v),
                // Two 32-bit operands always fit in 64 bits.
                None => Bson::Int64(match op {
                    ArithOp::Add => i64::from(*a) + i64::from(*b),
                    ArithOp::Multiply => i64::from(*a) * i64::from(*b),
                }),
            })
        }
        (Bson::Double(_), _) | (_, Bson::Double(_)) => {
            let (a, b) = (as_f64(current), as_f64(operand));
            Ok(Bson::Double(match op {
                ArithOp::Add => a + b,
                ArithOp::Multiply => a * b,
            }))
        }
        _ => {
            let (a, b) = (as_i64(current), as_i64(operand));
            let checked = match op {
                ArithOp::Add => a.checked_add(b),
                ArithOp::Multiply => a.checked_mul(b),
            };
            checked.map(Bson::Int64).ok_or(ArithError::Overflow)
        }
    }
}

/// Zero of the same numeric type as `like` (what `$mul` stores in a missing
/// field).
pub(crate) fn zero_like(like: &Bson) -> Bson {
    match like {
        Bson::Int64(_) => Bson::Int64(0),
        Bson::Double(_) => Bson::Double(0.0),
        Bson::Decimal128(d) => Bson::Decimal128(zero_decimal(d)),
        _ => Bson::Int32(0),
    }
}

fn zero_decimal(_like: &bson::Decimal128) -> bson::Decimal128 {
    // Exponent bias 6176 and a zero coefficient: the canonical "0".
    let bits: u128 = 6176u128 << 113;
    bson::Decimal128::from_bytes(bits.to_le_bytes())
}

fn as_f64(v: &Bson) -> f64 {
    match v {
        Bson::Int32(i) => f64::from(*i),
        Bson::Int64(i) => *i as f64,
        Bson::Double(d) => *d,
        _ => 0.0,
    }
}

fn as_i64(v: &Bson) -> i64 {
    match v {
        Bson::Int32(i) => i64::from(*i),
        Bson::Int64(i) => *i,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int32_widens_on_overflow() {
        assert_eq!(
            apply(ArithOp::Add, &Bson::Int32(1), &Bson::Int32(2)),
            Ok(Bson::Int32(3))
        );
        assert_eq!(
            apply(ArithOp::Add, &Bson::Int32(i32::MAX), &Bson::Int32(1)),
            Ok(Bson::Int64(i64::from(i32::MAX) + 1))
        );
        assert_eq!(
            apply(ArithOp::Multiply, &Bson::Int32(i32::MAX), &Bson::Int32(2)),
            Ok(Bson::Int64(i64::from(i32::MAX) * 2))
        );
    }

    #[test]
    fn int64_overflow_is_an_error() {
        assert_eq!(
            apply(ArithOp::Add, &Bson::Int64(i64::MAX), &Bson::Int32(1)),
            Err(ArithError::Overflow)
        );
        assert_eq!(
            apply(ArithOp::Multiply, &Bson::Int32(2), &Bson::Int64(i64::MAX)),
            Err(ArithError::Overflow)
        );
        assert_eq!(
            apply(ArithOp::Add, &Bson::Int32(1), &Bson::Int64(1)),
            Ok(Bson::Int64(2))
        );
    }

    #[test]
    fn doubles_win_and_decimals_are_unsupported() {
        assert_eq!(
            apply(ArithOp::Add, &Bson::Int64(1), &Bson::Double(0.5)),
            Ok(Bson::Double(1.5))
        );
        let d = Bson::Decimal128(zero_decimal(&bson::Decimal128::from_bytes([0; 16])));
        assert_eq!(
            apply(ArithOp::Add, &d, &Bson::Int32(1)),
            Err(ArithError::Decimal)
        );
        assert_eq!(d.to_string(), "0");
        assert_eq!(zero_like(&Bson::Int64(5)), Bson::Int64(0));
        assert_eq!(zero_like(&Bson::Double(5.0)), Bson::Double(0.0));
    }
}
