//! MongoDB's total order of BSON values, value equality, and an equality key.
//!
//! Values are ordered first by *canonical type*, then within the type:
//!
//! MinKey < Undefined < Null < numbers < String/Symbol < Object < Array <
//! Binary < ObjectId < Boolean < DateTime < Timestamp < RegularExpression <
//! DBPointer < JavaScript < JavaScript-with-scope < MaxKey
//!
//! Numbers compare by value across Int32/Int64/Double/Decimal128 (NaN lowest,
//! equal to itself). Strings compare as raw UTF-8 bytes (the simple
//! collation). Documents compare field by field (canonical type of the value,
//! then the field name, then the value), then by length; arrays element by
//! element, then by length. Binary compares length, then subtype, then bytes.
//! This is `BSONElement::compareElements` of the MongoDB server.
//!
//! [`equality_key`] turns a value into bytes that are equal exactly when the
//! values compare equal, so an index layer can hash it into an equality token
//! and stay consistent with `$eq` (`1`, `1.0` and `NumberLong(1)` get the same
//! key; `{a: 1}` and `{a: 1.0}` too).

use std::cmp::Ordering;

use bson::{Bson, Document};

use super::number::{compare_numbers, Exact, Number};

/// The canonical type rank MongoDB uses to order values of different types.
/// Numbers share one rank, as do String and Symbol.
pub fn canonical_rank(value: &Bson) -> i32 {
    match value {
        Bson::MinKey => -1,
        Bson::Undefined => 0,
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

/// Compares two BSON values in MongoDB's sort order.
pub fn compare_bson(a: &Bson, b: &Bson) -> Ordering {
    canonical_rank(a)
        .cmp(&canonical_rank(b))
        .then_with(|| compare_same_rank(a, b))
}

/// `$eq`-style equality: the values compare equal (`1 == 1.0`, NaN == NaN).
pub fn values_equal(a: &Bson, b: &Bson) -> bool {
    compare_bson(a, b) == Ordering::Equal
}

/// Compares two documents as MongoDB compares embedded objects.
pub fn compare_documents(a: &Document, b: &Document) -> Ordering {
    let mut left = a.iter();
    let mut right = b.iter();
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((ka, va)), Some((kb, vb))) => {
                let order = canonical_rank(va)
                    .cmp(&canonical_rank(vb))
                    .then_with(|| ka.as_bytes().cmp(kb.as_bytes()))
                    .then_with(|| compare_same_rank(va, vb));
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

fn compare_arrays(a: &[Bson], b: &[Bson]) -> Ordering {
    for (x, y) in a.iter().zip(b.iter()) {
        let order = compare_bson(x, y);
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// Compares values already known to share a canonical rank.
fn compare_same_rank(a: &Bson, b: &Bson) -> Ordering {
    if let (Some(x), Some(y)) = (Number::of(a), Number::of(b)) {
        return compare_numbers(&x, &y);
    }
    match (a, b) {
        (Bson::String(x) | Bson::Symbol(x), Bson::String(y) | Bson::Symbol(y)) => {
            x.as_bytes().cmp(y.as_bytes())
        }
        (Bson::Document(x), Bson::Document(y)) => compare_documents(x, y),
        (Bson::Array(x), Bson::Array(y)) => compare_arrays(x, y),
        (Bson::Binary(x), Bson::Binary(y)) => x
            .bytes
            .len()
            .cmp(&y.bytes.len())
            .then_with(|| u8::from(x.subtype).cmp(&u8::from(y.subtype)))
            .then_with(|| x.bytes.cmp(&y.bytes)),
        (Bson::ObjectId(x), Bson::ObjectId(y)) => x.bytes().cmp(&y.bytes()),
        (Bson::Boolean(x), Bson::Boolean(y)) => x.cmp(y),
        (Bson::DateTime(x), Bson::DateTime(y)) => x.timestamp_millis().cmp(&y.timestamp_millis()),
        // Timestamps compare as one unsigned 64-bit number: time, then increment.
        (Bson::Timestamp(x), Bson::Timestamp(y)) => {
            (x.time, x.increment).cmp(&(y.time, y.increment))
        }
        (Bson::RegularExpression(x), Bson::RegularExpression(y)) => x
            .pattern
            .as_str()
            .as_bytes()
            .cmp(y.pattern.as_str().as_bytes())
            .then_with(|| {
                x.options
                    .as_str()
                    .as_bytes()
                    .cmp(y.options.as_str().as_bytes())
            }),
        (Bson::DbPointer(_), Bson::DbPointer(_)) => {
            // The bson crate keeps DBPointer fields private; MongoDB compares
            // the raw values (size, then bytes), which the encoding exposes.
            let ra = raw_value_bytes(a);
            let rb = raw_value_bytes(b);
            ra.len().cmp(&rb.len()).then_with(|| ra.cmp(&rb))
        }
        (Bson::JavaScriptCode(x), Bson::JavaScriptCode(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Bson::JavaScriptCodeWithScope(x), Bson::JavaScriptCodeWithScope(y)) => x
            .code
            .as_bytes()
            .cmp(y.code.as_bytes())
            .then_with(|| compare_documents(&x.scope, &y.scope)),
        // MinKey, MaxKey, Null, Undefined: one value per type.
        _ => Ordering::Equal,
    }
}

/// The BSON encoding of `value` as the single field of a document, minus the
/// document framing; used only for types the bson crate keeps opaque.
fn raw_value_bytes(value: &Bson) -> Vec<u8> {
    let mut doc = Document::new();
    doc.insert("", value.clone());
    // A document holding one DBPointer always encodes; an empty result would
    // only make two such pointers compare equal, never panic.
    doc.to_vec().unwrap_or_default()
}

/// Bytes that are equal exactly when the values compare equal with
/// [`compare_bson`]. Index layers hash this for equality tokens.
pub fn equality_key(value: &Bson) -> Vec<u8> {
    let mut out = Vec::new();
    write_equality_key(value, &mut out);
    out
}

fn write_len(len: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&(len as u64).to_le_bytes());
}

fn write_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    write_len(bytes.len(), out);
    out.extend_from_slice(bytes);
}

fn write_equality_key(value: &Bson, out: &mut Vec<u8>) {
    // The canonical rank fits in one byte (-1..=127) once offset by one.
    out.push((canonical_rank(value) + 1) as u8);
    if let Some(n) = Number::of(value) {
        Exact::of(&n).encode(out);
        return;
    }
    match value {
        Bson::String(s) | Bson::Symbol(s) | Bson::JavaScriptCode(s) => {
            write_bytes(s.as_bytes(), out)
        }
        Bson::Document(d) => write_document_key(d, out),
        Bson::Array(items) => {
            write_len(items.len(), out);
            for item in items {
                write_equality_key(item, out);
            }
        }
        Bson::Binary(b) => {
            out.push(u8::from(b.subtype));
            write_bytes(&b.bytes, out);
        }
        Bson::ObjectId(o) => out.extend_from_slice(&o.bytes()),
        Bson::Boolean(b) => out.push(u8::from(*b)),
        Bson::DateTime(d) => out.extend_from_slice(&d.timestamp_millis().to_le_bytes()),
        Bson::Timestamp(t) => {
            out.extend_from_slice(&t.time.to_le_bytes());
            out.extend_from_slice(&t.increment.to_le_bytes());
        }
        Bson::RegularExpression(r) => {
            write_bytes(r.pattern.as_str().as_bytes(), out);
            write_bytes(r.options.as_str().as_bytes(), out);
        }
        Bson::DbPointer(_) => write_bytes(&raw_value_bytes(value), out),
        Bson::JavaScriptCodeWithScope(c) => {
            write_bytes(c.code.as_bytes(), out);
            write_document_key(&c.scope, out);
        }
        _ => {}
    }
}

fn write_document_key(doc: &Document, out: &mut Vec<u8>) {
    write_len(doc.len(), out);
    for (k, v) in doc {
        write_bytes(k.as_bytes(), out);
        write_equality_key(v, out);
    }
}

/// Exact identity: same types, same field order, same bits (so `1` and `1.0`
/// differ, and NaN is identical to the same NaN). This is how MongoDB decides
/// whether an update modified a document.
pub fn identical(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Double(x), Bson::Double(y)) => x.to_bits() == y.to_bits(),
        (Bson::Document(x), Bson::Document(y)) => documents_identical(x, y),
        (Bson::Array(x), Bson::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| identical(p, q))
        }
        (Bson::JavaScriptCodeWithScope(x), Bson::JavaScriptCodeWithScope(y)) => {
            x.code == y.code && documents_identical(&x.scope, &y.scope)
        }
        _ => a == b,
    }
}

/// [`identical`] for documents.
pub fn documents_identical(a: &Document, b: &Document) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((ka, va), (kb, vb))| ka == kb && identical(va, vb))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{
        doc, oid::ObjectId, spec::BinarySubtype, Binary, DateTime, Decimal128, Regex, Timestamp,
    };
    use std::str::FromStr;

    fn ordered(values: &[Bson]) {
        for (i, a) in values.iter().enumerate() {
            for (j, b) in values.iter().enumerate() {
                assert_eq!(
                    compare_bson(a, b),
                    i.cmp(&j),
                    "{a:?} vs {b:?} should be {:?}",
                    i.cmp(&j)
                );
            }
        }
    }

    #[test]
    fn type_order_matches_mongodb() {
        ordered(&[
            Bson::MinKey,
            Bson::Undefined,
            Bson::Null,
            Bson::Double(f64::NAN),
            Bson::Int32(1),
            Bson::String("a".into()),
            Bson::Document(doc! {}),
            Bson::Array(vec![]),
            Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: vec![],
            }),
            Bson::ObjectId(ObjectId::from_bytes([0; 12])),
            Bson::Boolean(false),
            Bson::DateTime(DateTime::from_millis(0)),
            Bson::Timestamp(Timestamp {
                time: 0,
                increment: 0,
            }),
            Bson::RegularExpression(Regex {
                pattern: "a".try_into().unwrap(),
                options: "".try_into().unwrap(),
            }),
            Bson::JavaScriptCode("x".into()),
            Bson::MaxKey,
        ]);
    }

    #[test]
    fn numbers_are_equal_across_types() {
        let one = [
            Bson::Int32(1),
            Bson::Int64(1),
            Bson::Double(1.0),
            Bson::Decimal128(Decimal128::from_str("1.0").unwrap()),
        ];
        for a in &one {
            for b in &one {
                assert!(values_equal(a, b));
                assert_eq!(equality_key(a), equality_key(b));
            }
        }
        assert!(values_equal(
            &Bson::Double(f64::NAN),
            &Bson::Double(f64::NAN)
        ));
        assert!(!values_equal(&Bson::Double(f64::NAN), &Bson::Int32(0)));
        assert!(values_equal(&Bson::Double(-0.0), &Bson::Int32(0)));
    }

    #[test]
    fn strings_compare_bytewise_and_symbols_equal_strings() {
        ordered(&[
            Bson::String("".into()),
            Bson::String("B".into()),
            Bson::String("a".into()),
            Bson::String("ab".into()),
            Bson::String("é".into()),
        ]);
        assert!(values_equal(
            &Bson::Symbol("x".into()),
            &Bson::String("x".into())
        ));
    }

    #[test]
    fn documents_compare_type_then_name_then_value() {
        // Type of the first value decides before the field name does.
        ordered(&[
            Bson::Document(doc! {"z": 1}),
            Bson::Document(doc! {"a": "x"}),
        ]);
        ordered(&[
            Bson::Document(doc! {"a": 1}),
            Bson::Document(doc! {"a": 1, "b": 1}),
            Bson::Document(doc! {"a": 2}),
            Bson::Document(doc! {"b": 0}),
        ]);
        // Field order matters for equality.
        assert!(!values_equal(
            &Bson::Document(doc! {"a": 1, "b": 2}),
            &Bson::Document(doc! {"b": 2, "a": 1})
        ));
        assert!(values_equal(
            &Bson::Document(doc! {"a": 1}),
            &Bson::Document(doc! {"a": 1.0})
        ));
    }

    #[test]
    fn arrays_compare_elementwise_then_length() {
        ordered(&[
            Bson::Array(vec![]),
            Bson::Array(vec![Bson::Int32(1)]),
            Bson::Array(vec![Bson::Int32(1), Bson::Int32(0)]),
            Bson::Array(vec![Bson::Int32(2)]),
            Bson::Array(vec![Bson::String("a".into())]),
        ]);
    }

    #[test]
    fn binary_compares_length_then_subtype_then_bytes() {
        let bin = |subtype: u8, bytes: &[u8]| {
            Bson::Binary(Binary {
                subtype: BinarySubtype::from(subtype),
                bytes: bytes.to_vec(),
            })
        };
        ordered(&[
            bin(5, &[9]),
            bin(0, &[0, 0]),
            bin(0, &[0, 1]),
            bin(4, &[0, 0]),
        ]);
    }

    #[test]
    fn dates_are_signed_and_timestamps_unsigned() {
        ordered(&[
            Bson::DateTime(DateTime::from_millis(-1)),
            Bson::DateTime(DateTime::from_millis(0)),
        ]);
        ordered(&[
            Bson::Timestamp(Timestamp {
                time: 1,
                increment: 9,
            }),
            Bson::Timestamp(Timestamp {
                time: u32::MAX,
                increment: 0,
            }),
        ]);
    }

    #[test]
    fn equality_key_separates_unequal_values() {
        let values = [
            Bson::Null,
            Bson::Undefined,
            Bson::Int32(1),
            Bson::Int32(2),
            Bson::String("1".into()),
            Bson::Array(vec![Bson::Int32(1)]),
            Bson::Document(doc! {"a": 1}),
            Bson::Document(doc! {"b": 1}),
            Bson::Boolean(true),
            Bson::Double(f64::NAN),
        ];
        for (i, a) in values.iter().enumerate() {
            for (j, b) in values.iter().enumerate() {
                assert_eq!(equality_key(a) == equality_key(b), i == j, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn identical_distinguishes_types_and_order() {
        assert!(!identical(&Bson::Int32(1), &Bson::Double(1.0)));
        assert!(identical(&Bson::Double(f64::NAN), &Bson::Double(f64::NAN)));
        assert!(!identical(&Bson::Double(0.0), &Bson::Double(-0.0)));
        assert!(!documents_identical(
            &doc! {"a": 1, "b": 2},
            &doc! {"b": 2, "a": 1}
        ));
    }
}
