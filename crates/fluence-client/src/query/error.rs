//! The one error type of the query engine.
//!
//! Filters, updates, sorts and projections arrive straight from HTTP and
//! MongoDB-wire requests, so every malformed input must come back as a value
//! of this type, never as a panic. Messages follow MongoDB's wording where
//! practical (drivers and users search for them), and [`QueryError::code`]
//! gives the MongoDB error code the wire-protocol layer should report.

use thiserror::Error;

/// Why a filter, update, sort or projection was rejected or could not be
/// applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueryError {
    /// Malformed input (MongoDB `BadValue`, code 2).
    #[error("{message}")]
    BadValue { message: String },

    /// Input that could not be parsed (MongoDB `FailedToParse`, code 9).
    #[error("{message}")]
    FailedToParse { message: String },

    /// A value of the wrong BSON type (MongoDB `TypeMismatch`, code 14).
    #[error("{message}")]
    TypeMismatch { message: String },

    /// A required field is missing (MongoDB `NoSuchKey`, code 4).
    #[error("{message}")]
    NoSuchKey { message: String },

    /// A `$`-operator MongoDB does not know inside a field's condition.
    #[error("unknown operator: {operator}")]
    UnknownOperator { operator: String },

    /// A `$`-operator MongoDB does not know at the top level of a filter.
    #[error("unknown top level operator: {operator}")]
    UnknownTopLevelOperator { operator: String },

    /// An update document with an operator MongoDB does not know.
    #[error(
        "Unknown modifier: {operator}. Expected a valid update modifier or pipeline-style \
         update specified as an array"
    )]
    UnknownModifier { operator: String },

    /// A real MongoDB operator that Fluence's engine does not implement.
    #[error("{operator} is not supported by Fluence")]
    UnsupportedOperator { operator: String },

    /// A `$text` query on a collection without a text index
    /// (MongoDB `IndexNotFound`, code 27).
    #[error("text index required for $text query")]
    TextIndexRequired,

    /// An update would change `_id` (MongoDB `ImmutableField`, code 66).
    #[error("{message}")]
    ImmutableField { message: String },

    /// Two parts of one update touch overlapping paths
    /// (MongoDB `ConflictingUpdateOperators`, code 40).
    #[error("{message}")]
    ConflictingUpdateOperators { message: String },

    /// An update path runs through a value it cannot traverse
    /// (MongoDB `PathNotViable`, code 28).
    #[error("{message}")]
    PathNotViable { message: String },

    /// A `$`-prefixed field name where a plain name is required
    /// (MongoDB `DollarPrefixedFieldName`, code 52).
    #[error("{message}")]
    DollarPrefixedFieldName { message: String },

    /// An update's arithmetic or result cannot be represented
    /// (MongoDB reports these as `BadValue`/`Overflow`).
    #[error("{message}")]
    Overflow { message: String },

    /// An error MongoDB reports with a numbered "location" code.
    #[error("{message}")]
    Location { code: i32, message: String },
}

impl QueryError {
    /// The MongoDB error code for this error, for the wire-protocol layer.
    pub fn code(&self) -> i32 {
        match self {
            QueryError::BadValue { .. }
            | QueryError::UnknownOperator { .. }
            | QueryError::UnknownTopLevelOperator { .. } => 2,
            QueryError::FailedToParse { .. } | QueryError::UnknownModifier { .. } => 9,
            QueryError::TypeMismatch { .. } => 14,
            QueryError::NoSuchKey { .. } => 4,
            // NotImplemented: the operator is valid MongoDB, we just lack it.
            QueryError::UnsupportedOperator { .. } => 238,
            QueryError::TextIndexRequired => 27,
            QueryError::ImmutableField { .. } => 66,
            QueryError::ConflictingUpdateOperators { .. } => 40,
            QueryError::PathNotViable { .. } => 28,
            QueryError::DollarPrefixedFieldName { .. } => 52,
            QueryError::Overflow { .. } => 15,
            QueryError::Location { code, .. } => *code,
        }
    }

    pub(crate) fn bad_value(message: impl Into<String>) -> Self {
        QueryError::BadValue {
            message: message.into(),
        }
    }

    pub(crate) fn failed_to_parse(message: impl Into<String>) -> Self {
        QueryError::FailedToParse {
            message: message.into(),
        }
    }

    pub(crate) fn type_mismatch(message: impl Into<String>) -> Self {
        QueryError::TypeMismatch {
            message: message.into(),
        }
    }

    pub(crate) fn unsupported(operator: impl Into<String>) -> Self {
        QueryError::UnsupportedOperator {
            operator: operator.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_follow_mongodb_wording() {
        assert_eq!(
            QueryError::UnknownOperator {
                operator: "$foo".into()
            }
            .to_string(),
            "unknown operator: $foo"
        );
        assert_eq!(
            QueryError::UnknownTopLevelOperator {
                operator: "$foo".into()
            }
            .to_string(),
            "unknown top level operator: $foo"
        );
        assert_eq!(
            QueryError::TextIndexRequired.to_string(),
            "text index required for $text query"
        );
        assert_eq!(
            QueryError::unsupported("$regex").to_string(),
            "$regex is not supported by Fluence"
        );
    }

    #[test]
    fn codes_match_mongodb() {
        assert_eq!(QueryError::bad_value("x").code(), 2);
        assert_eq!(QueryError::failed_to_parse("x").code(), 9);
        assert_eq!(QueryError::type_mismatch("x").code(), 14);
        assert_eq!(QueryError::TextIndexRequired.code(), 27);
        assert_eq!(
            QueryError::ImmutableField {
                message: String::new()
            }
            .code(),
            66
        );
        assert_eq!(
            QueryError::Location {
                code: 31249,
                message: String::new()
            }
            .code(),
            31249
        );
    }
}
