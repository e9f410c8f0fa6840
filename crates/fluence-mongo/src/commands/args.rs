//! Typed reading of command fields: every option is checked for its BSON
//! type, so a malformed command gets MongoDB's error instead of a default.

use bson::{doc, oid::ObjectId, Bson, Document};

use super::MAX_WRITE_BATCH_SIZE;
use crate::error::*;

/// The statements of a write command, between 1 and maxWriteBatchSize.
pub(super) fn write_batch<'a>(
    cmd: &'a Document,
    command: &str,
    key: &str,
) -> Result<&'a Vec<Bson>, CommandError> {
    let items = match cmd.get(key) {
        Some(Bson::Array(items)) => items,
        Some(_) => {
            return Err(CommandError::type_mismatch(format!(
                "{command}.{key} must be an array"
            )))
        }
        None => {
            return Err(CommandError::new(
                MISSING_FIELD,
                format!("BSON field '{command}.{key}' is missing but a required field"),
            ))
        }
    };
    if items.is_empty() || items.len() > MAX_WRITE_BATCH_SIZE {
        return Err(CommandError::new(
            INVALID_LENGTH,
            format!(
                "Write batch sizes must be between 1 and {MAX_WRITE_BATCH_SIZE}. Got {} operations.",
                items.len()
            ),
        ));
    }
    Ok(items)
}

/// The document with an `_id` (a new ObjectId first, as MongoDB places it)
/// so that a duplicate can be reported with its key value.
pub(super) fn with_id(doc: &Document) -> Document {
    if doc.contains_key("_id") {
        return doc.clone();
    }
    let mut out = doc! {"_id": ObjectId::new()};
    out.extend(doc.clone());
    out
}

pub(super) fn check_collation(cmd: &Document) -> Result<(), CommandError> {
    match cmd.get("collation") {
        None => Ok(()),
        Some(Bson::Document(c)) if c.is_empty() || c.get_str("locale").ok() == Some("simple") => {
            Ok(())
        }
        Some(_) => Err(CommandError::not_implemented(
            "a collation other than simple",
        )),
    }
}

/// Refuses pipeline variables (`let` of a command, `c` of an update
/// statement): the expression engine has no user variables, and an
/// ignored `let` would turn `$$name` into a confusing undefined variable.
pub(super) fn refuse_variables(cmd: &Document, key: &str, what: &str) -> Result<(), CommandError> {
    match cmd.get(key) {
        None | Some(Bson::Null) => Ok(()),
        Some(_) => Err(CommandError::not_implemented(&format!(
            "{what} with '{key}' variables"
        ))),
    }
}

pub(super) fn truthy(value: &Bson) -> bool {
    match value {
        Bson::Boolean(b) => *b,
        Bson::Int32(i) => *i != 0,
        Bson::Int64(i) => *i != 0,
        Bson::Double(d) => *d != 0.0,
        Bson::Null | Bson::Undefined => false,
        _ => true,
    }
}

pub(super) fn get_bool(cmd: &Document, key: &str) -> Result<bool, CommandError> {
    get_bool_or(cmd, key, false)
}

pub(super) fn get_bool_or(cmd: &Document, key: &str, default: bool) -> Result<bool, CommandError> {
    match cmd.get(key) {
        None | Some(Bson::Null) => Ok(default),
        Some(v @ (Bson::Boolean(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_))) => {
            Ok(truthy(v))
        }
        Some(other) => Err(CommandError::type_mismatch(format!(
            "BSON field '{key}' is the wrong type '{:?}', expected type 'bool'",
            other.element_type()
        ))),
    }
}

/// An integer given as int32, int64 or an integral double.
pub(super) fn integral(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(d) if d.fract() == 0.0 && d.abs() < 9.0e18 => Some(*d as i64),
        _ => None,
    }
}

pub(super) fn get_i64(cmd: &Document, key: &str) -> Result<Option<i64>, CommandError> {
    match cmd.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(v) => integral(v).map(Some).ok_or_else(|| {
            CommandError::type_mismatch(format!("BSON field '{key}' must be an integer"))
        }),
    }
}

pub(super) fn non_negative(cmd: &Document, key: &str) -> Result<Option<u64>, CommandError> {
    match get_i64(cmd, key)? {
        Some(n) if n < 0 => Err(CommandError::bad_value(format!(
            "BSON field '{key}' value must be >= 0, actual value '{n}'"
        ))),
        other => Ok(other.map(|n| n as u64)),
    }
}

pub(super) fn get_doc<'a>(
    cmd: &'a Document,
    key: &str,
) -> Result<Option<&'a Document>, CommandError> {
    match cmd.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Document(d)) => Ok(Some(d)),
        Some(other) => Err(CommandError::type_mismatch(format!(
            "BSON field '{key}' is the wrong type '{:?}', expected type 'object'",
            other.element_type()
        ))),
    }
}

pub(super) fn required_doc<'a>(
    cmd: &'a Document,
    parent: &str,
    key: &str,
) -> Result<&'a Document, CommandError> {
    get_doc(cmd, key)?.ok_or_else(|| {
        CommandError::new(
            MISSING_FIELD,
            format!("BSON field '{parent}.{key}' is missing but a required field"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_id_puts_a_new_id_first() {
        let d = with_id(&doc! {"a": 1});
        assert_eq!(d.keys().next().map(String::as_str), Some("_id"));
        assert_eq!(with_id(&doc! {"a": 1, "_id": 5}), doc! {"a": 1, "_id": 5});
    }

    #[test]
    fn option_parsing_is_typed() {
        assert_eq!(
            get_bool(&doc! {"x": "yes"}, "x").unwrap_err().code,
            TYPE_MISMATCH
        );
        assert!(get_bool(&doc! {"x": 1}, "x").unwrap());
        assert_eq!(
            get_i64(&doc! {"x": 2.5}, "x").unwrap_err().code,
            TYPE_MISMATCH
        );
        assert_eq!(get_i64(&doc! {"x": 3.0}, "x").unwrap(), Some(3));
        assert_eq!(
            non_negative(&doc! {"x": -1}, "x").unwrap_err().code,
            BAD_VALUE
        );
        assert_eq!(
            write_batch(&doc! {"d": []}, "insert", "d")
                .unwrap_err()
                .code,
            INVALID_LENGTH
        );
        assert_eq!(
            write_batch(&doc! {}, "insert", "d").unwrap_err().code,
            MISSING_FIELD
        );
    }
}
