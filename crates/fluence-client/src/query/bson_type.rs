//! MongoDB's names for BSON types, as they appear in error messages.

use bson::Bson;

/// The alias MongoDB uses for the type of `value` (`"int"`, `"string"`, …).
pub(crate) fn type_name(value: &Bson) -> &'static str {
    match value {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Array(_) => "array",
        Bson::Document(_) => "object",
        Bson::Boolean(_) => "bool",
        Bson::Null => "null",
        Bson::RegularExpression(_) => "regex",
        Bson::JavaScriptCode(_) => "javascript",
        Bson::JavaScriptCodeWithScope(_) => "javascriptWithScope",
        Bson::Int32(_) => "int",
        Bson::Int64(_) => "long",
        Bson::Timestamp(_) => "timestamp",
        Bson::Binary(_) => "binData",
        Bson::ObjectId(_) => "objectId",
        Bson::DateTime(_) => "date",
        Bson::Symbol(_) => "symbol",
        Bson::Decimal128(_) => "decimal",
        Bson::Undefined => "undefined",
        Bson::MaxKey => "maxKey",
        Bson::MinKey => "minKey",
        Bson::DbPointer(_) => "dbPointer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_mongodb_aliases() {
        assert_eq!(type_name(&Bson::Int32(1)), "int");
        assert_eq!(type_name(&Bson::Int64(1)), "long");
        assert_eq!(type_name(&Bson::Document(Default::default())), "object");
        assert_eq!(type_name(&Bson::Null), "null");
    }
}
