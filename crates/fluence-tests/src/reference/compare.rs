//! MongoDB's order over BSON values.
//!
//! <https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/>:
//! values of different types order by type (MinKey < Null < numbers < strings
//! < objects < arrays < BinData < ObjectId < booleans < dates < timestamps <
//! regular expressions < MaxKey); numbers compare by value whatever their BSON
//! type; strings by their UTF-8 bytes (no collation); objects field by field;
//! arrays element by element.

use std::cmp::Ordering;

use bson::{Bson, Document};

/// The rank of "no value at this path" in [`type_rank`]'s scale. MongoDB gives
/// a missing field and the deprecated `undefined` the same rank, just below
/// null; the matcher relies on it (a missing field "equals" null).
pub(crate) const MISSING_RANK: i32 = 0;

/// The position of a value's type in MongoDB's cross-type order. Numbers share
/// one rank, as do strings and symbols.
///
/// The numbers are the server's "canonical type" values (they leave gaps);
/// only their order matters, plus the fact the matcher uses that missing (0)
/// and null (5) are different ranks.
pub(crate) fn type_rank(value: &Bson) -> i32 {
    match value {
        Bson::MinKey => -1,
        Bson::Undefined => MISSING_RANK,
        Bson::Null => 5,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => 10,
        Bson::String(_) | Bson::Symbol(_) => 15,
        Bson::Document(_) => 20,
        Bson::Array(_) => 25,
        Bson::Binary(_) => 30,
        Bson::ObjectId(_) => 35,
        Bson::Boolean(_) => 40,
        Bson::DateTime(_) => 45,
        Bson::Timestamp(_) => 47,
        Bson::RegularExpression(_) => 50,
        Bson::DbPointer(_) => 55,
        Bson::JavaScriptCode(_) => 60,
        Bson::JavaScriptCodeWithScope(_) => 65,
        Bson::MaxKey => 127,
    }
}

/// Compares two values in MongoDB's BSON order (the order `sort` uses, and the
/// one `$gt`/`$lt` use within one type).
///
/// - Types first: MinKey < undefined < Null < numbers <
///   String/Symbol < Object < Array < BinData < ObjectId < Boolean < Date <
///   Timestamp < Regex < DBPointer < JavaScript < JavaScript-with-scope < MaxKey.
/// - Numbers (Int32, Int64, Double, Decimal128) by mathematical value, exactly
///   (an Int64 above 2^53 is not rounded to a double); NaN is smaller than every
///   other number and equal to itself; -0.0 equals 0.0.
/// - Strings by UTF-8 bytes (the simple binary collation).
/// - Objects field by field: each pair of fields compares by value type, then
///   field name (bytes), then value; a prefix is smaller. So field order matters.
/// - Arrays element by element; a prefix is smaller.
/// - BinData by length, then subtype, then bytes.
///
/// Decimal128 is approximated by the nearest double (the reference evaluator
/// has no decimal arithmetic; the generators never produce decimals).
pub fn compare_values(a: &Bson, b: &Bson) -> Ordering {
    let by_type = type_rank(a).cmp(&type_rank(b));
    if by_type != Ordering::Equal {
        return by_type;
    }
    match (a, b) {
        // Same rank, so if `a` is a number so is `b`.
        _ if is_number(a) => compare_numbers(&number_of(a), &number_of(b)),
        (Bson::String(x) | Bson::Symbol(x), Bson::String(y) | Bson::Symbol(y)) => {
            x.as_bytes().cmp(y.as_bytes())
        }
        (Bson::Document(x), Bson::Document(y)) => compare_documents(x, y),
        (Bson::Array(x), Bson::Array(y)) => compare_arrays(x, y),
        (Bson::Binary(x), Bson::Binary(y)) => x
            .bytes
            .len()
            .cmp(&y.bytes.len())
            .then(u8::from(x.subtype).cmp(&u8::from(y.subtype)))
            .then(x.bytes.cmp(&y.bytes)),
        (Bson::ObjectId(x), Bson::ObjectId(y)) => x.bytes().cmp(&y.bytes()),
        (Bson::Boolean(x), Bson::Boolean(y)) => x.cmp(y),
        (Bson::DateTime(x), Bson::DateTime(y)) => x.timestamp_millis().cmp(&y.timestamp_millis()),
        (Bson::Timestamp(x), Bson::Timestamp(y)) => {
            (x.time, x.increment).cmp(&(y.time, y.increment))
        }
        (Bson::RegularExpression(x), Bson::RegularExpression(y)) => x
            .pattern
            .as_str()
            .as_bytes()
            .cmp(y.pattern.as_str().as_bytes())
            .then(
                x.options
                    .as_str()
                    .as_bytes()
                    .cmp(y.options.as_str().as_bytes()),
            ),
        (Bson::JavaScriptCode(x), Bson::JavaScriptCode(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Bson::JavaScriptCodeWithScope(x), Bson::JavaScriptCodeWithScope(y)) => x
            .code
            .as_bytes()
            .cmp(y.code.as_bytes())
            .then_with(|| compare_documents(&x.scope, &y.scope)),
        // DBPointer's fields are private in the bson crate; its debug form
        // holds the namespace then the id, which is the server's order.
        (Bson::DbPointer(x), Bson::DbPointer(y)) => format!("{x:?}").cmp(&format!("{y:?}")),
        // MinKey, MaxKey, Null and undefined: every value of the type is equal.
        _ => Ordering::Equal,
    }
}

/// Objects compare field by field: value type, then field name, then value.
/// (BSONObj::woCompare with field names considered.)
fn compare_documents(x: &Document, y: &Document) -> Ordering {
    let mut xs = x.iter();
    let mut ys = y.iter();
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((xk, xv)), Some((yk, yv))) => {
                let order = type_rank(xv)
                    .cmp(&type_rank(yv))
                    .then(xk.as_bytes().cmp(yk.as_bytes()))
                    .then_with(|| compare_values(xv, yv));
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// Arrays are objects whose field names are "0", "1", ...: since the names at
/// one position are always equal, this is plain lexicographic order.
fn compare_arrays(x: &[Bson], y: &[Bson]) -> Ordering {
    for (xv, yv) in x.iter().zip(y.iter()) {
        let order = compare_values(xv, yv);
        if order != Ordering::Equal {
            return order;
        }
    }
    x.len().cmp(&y.len())
}

/// A BSON number: integers are kept exact, everything else is a double.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Number {
    Int(i64),
    Float(f64),
}

/// The numeric value of an Int32, Int64, Double or Decimal128.
///
/// Panics on any other type: callers check [`is_number`] first.
pub(crate) fn number_of(value: &Bson) -> Number {
    match value {
        Bson::Int32(i) => Number::Int(i64::from(*i)),
        Bson::Int64(i) => Number::Int(*i),
        Bson::Double(f) => Number::Float(*f),
        // Approximation, see `compare_values`. Rust parses "NaN", "Infinity"
        // and exponent forms, which is what Decimal128's Display produces.
        Bson::Decimal128(d) => Number::Float(d.to_string().parse().unwrap_or(f64::NAN)),
        other => panic!("not a number: {other:?}"),
    }
}

pub(crate) fn is_number(value: &Bson) -> bool {
    matches!(
        value,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)
    )
}

/// True for a Double (or Decimal128) NaN.
pub(crate) fn is_nan(value: &Bson) -> bool {
    is_number(value) && matches!(number_of(value), Number::Float(f) if f.is_nan())
}

/// Numbers by value; NaN below every number and equal to itself.
fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    match (*a, *b) {
        (Number::Int(x), Number::Int(y)) => x.cmp(&y),
        (Number::Float(x), Number::Float(y)) => compare_doubles(x, y),
        (Number::Int(x), Number::Float(y)) => compare_int_to_double(x, y),
        (Number::Float(x), Number::Int(y)) => compare_int_to_double(y, x).reverse(),
    }
}

fn compare_doubles(x: f64, y: f64) -> Ordering {
    match (x.is_nan(), y.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        // Neither is NaN, so partial_cmp is total here (and -0.0 == 0.0).
        (false, false) => x.partial_cmp(&y).expect("no NaN"),
    }
}

/// Compares an integer with a double exactly, without rounding the integer to
/// a double (2^53 + 1 must be greater than 2^53 as a double).
fn compare_int_to_double(i: i64, f: f64) -> Ordering {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        return Ordering::Greater;
    }
    if f >= TWO_POW_63 {
        return Ordering::Less;
    }
    if f < -TWO_POW_63 {
        return Ordering::Greater;
    }
    // Now trunc(f) fits in an i64 exactly.
    let whole = f.trunc();
    let by_whole = i.cmp(&(whole as i64));
    if by_whole != Ordering::Equal {
        return by_whole;
    }
    // Same integer part: the fraction decides.
    if f > whole {
        Ordering::Less
    } else if f < whole {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

/// Strict equality, for comparing results of two implementations: same BSON
/// type, same value, and for documents the same fields in the same order.
///
/// Unlike `bson`'s `==` (which ignores field order in documents and says
/// NaN != NaN) and unlike [`compare_values`] (which says `1 == 1.0`). Doubles
/// are identical when their bits are, or when both are NaN.
pub fn bson_identical(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Double(x), Bson::Double(y)) => {
            (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits()
        }
        (Bson::Document(x), Bson::Document(y)) => documents_identical(x, y),
        (Bson::Array(x), Bson::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| bson_identical(p, q))
        }
        (Bson::JavaScriptCodeWithScope(x), Bson::JavaScriptCodeWithScope(y)) => {
            x.code == y.code && documents_identical(&x.scope, &y.scope)
        }
        _ => a == b,
    }
}

/// [`bson_identical`] for documents: same keys in the same order with
/// identical values.
pub fn documents_identical(a: &Document, b: &Document) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((ka, va), (kb, vb))| ka == kb && bson_identical(va, vb))
}
