//! Command errors as MongoDB reports them: `{ok: 0, errmsg, code,
//! codeName}`. Drivers pick exception types by `code` (pymongo raises
//! `DuplicateKeyError` for 11000, for example), so the numbers follow
//! MongoDB's `error_codes.yml` wherever a MongoDB error means the same.

use bson::{doc, Document};
use fluence_client::query::QueryError;
use fluence_client::ClientError;
use fluence_proto::NodeError;

use crate::wire::WireError;

pub const INTERNAL_ERROR: i32 = 1;
pub const BAD_VALUE: i32 = 2;
pub const NO_SUCH_KEY: i32 = 4;
pub const HOST_UNREACHABLE: i32 = 6;
pub const FAILED_TO_PARSE: i32 = 9;
pub const UNAUTHORIZED: i32 = 13;
pub const AUTHENTICATION_FAILED: i32 = 18;
pub const TYPE_MISMATCH: i32 = 14;
pub const INVALID_LENGTH: i32 = 16;
pub const ILLEGAL_OPERATION: i32 = 20;
pub const NAMESPACE_NOT_FOUND: i32 = 26;
pub const CURSOR_NOT_FOUND: i32 = 43;
pub const NAMESPACE_EXISTS: i32 = 48;
pub const COMMAND_NOT_FOUND: i32 = 59;
pub const IMMUTABLE_FIELD: i32 = 66;
pub const INVALID_OPTIONS: i32 = 72;
pub const INVALID_NAMESPACE: i32 = 73;
pub const INDEX_NOT_FOUND: i32 = 27;
pub const INDEX_OPTIONS_CONFLICT: i32 = 85;
pub const INDEX_KEY_SPECS_CONFLICT: i32 = 86;
pub const CANNOT_CREATE_INDEX: i32 = 67;
pub const INVALID_INDEX_SPECIFICATION_OPTION: i32 = 197;
pub const OPERATION_FAILED: i32 = 96;
pub const WRITE_CONFLICT: i32 = 112;
pub const NOT_IMPLEMENTED: i32 = 238;
pub const MECHANISM_UNAVAILABLE: i32 = 334;
pub const UNSUPPORTED_OP_QUERY_COMMAND: i32 = 352;
pub const BSON_OBJECT_TOO_LARGE: i32 = 10334;
pub const DUPLICATE_KEY: i32 = 11000;
/// "OP_MSG requests require a $db argument".
pub const MISSING_DB: i32 = 40571;
/// "BSON field ... is missing but a required field".
pub const MISSING_FIELD: i32 = 40414;
/// "BSON field ... is an unknown field".
pub const UNKNOWN_FIELD: i32 = 40415;
pub const DOLLAR_PREFIXED_FIELD_NAME: i32 = 52;
/// Fluence's own: the members asked for a read at a quorum disagreed. No
/// MongoDB code means this; it lies outside MongoDB's range so no driver
/// takes it for a retryable or user error.
pub const READ_DISAGREEMENT: i32 = 91_001;

/// MongoDB's name for an error code. Codes without a name in MongoDB
/// (assertion locations) are named `Location<code>`, as the server does.
pub fn code_name(code: i32) -> String {
    let name = match code {
        1 => "InternalError",
        2 => "BadValue",
        4 => "NoSuchKey",
        6 => "HostUnreachable",
        9 => "FailedToParse",
        13 => "Unauthorized",
        17 => "ProtocolError",
        18 => "AuthenticationFailed",
        14 => "TypeMismatch",
        15 => "Overflow",
        16 => "InvalidLength",
        20 => "IllegalOperation",
        26 => "NamespaceNotFound",
        27 => "IndexNotFound",
        28 => "PathNotViable",
        40 => "ConflictingUpdateOperators",
        43 => "CursorNotFound",
        48 => "NamespaceExists",
        52 => "DollarPrefixedFieldName",
        59 => "CommandNotFound",
        66 => "ImmutableField",
        67 => "CannotCreateIndex",
        72 => "InvalidOptions",
        73 => "InvalidNamespace",
        85 => "IndexOptionsConflict",
        86 => "IndexKeySpecsConflict",
        96 => "OperationFailed",
        168 => "InvalidPipelineOperator",
        197 => "InvalidIndexSpecificationOption",
        241 => "ConversionFailure",
        292 => "QueryExceededMemoryLimitNoDiskUseAllowed",
        334 => "MechanismUnavailable",
        112 => "WriteConflict",
        238 => "NotImplemented",
        352 => "UnsupportedOpQueryCommand",
        10334 => "BSONObjectTooLarge",
        11000 => "DuplicateKey",
        91_001 => "FluenceReadDisagreement",
        other => return format!("Location{other}"),
    };
    name.to_string()
}

/// One failed command (or one failed write in a batch).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct CommandError {
    pub code: i32,
    pub message: String,
    /// Fields the error carries beside its code and message, as MongoDB
    /// adds `keyPattern` and `keyValue` to a duplicate key error.
    pub info: Document,
}

impl CommandError {
    pub fn new(code: i32, message: impl Into<String>) -> CommandError {
        CommandError {
            code,
            message: message.into(),
            info: Document::new(),
        }
    }

    /// The error with `info`'s fields added to its reply.
    pub fn with_info(mut self, info: Document) -> CommandError {
        self.info.extend(info);
        self
    }

    pub fn bad_value(message: impl Into<String>) -> CommandError {
        CommandError::new(BAD_VALUE, message)
    }

    pub fn type_mismatch(message: impl Into<String>) -> CommandError {
        CommandError::new(TYPE_MISMATCH, message)
    }

    pub fn not_implemented(what: &str) -> CommandError {
        CommandError::new(
            NOT_IMPLEMENTED,
            format!("{what} is not supported by Fluence"),
        )
    }

    /// The command reply: `{ok: 0, errmsg, code, codeName}`.
    pub fn to_reply(&self) -> Document {
        let mut reply = doc! {
            "ok": 0.0,
            "errmsg": &self.message,
            "code": self.code,
            "codeName": code_name(self.code),
        };
        reply.extend(self.info.clone());
        reply
    }

    /// An entry of a write command's `writeErrors`.
    pub fn to_write_error(&self, index: usize) -> Document {
        let mut entry = doc! {
            "index": index as i64,
            "code": self.code,
            "codeName": code_name(self.code),
            "errmsg": &self.message,
        };
        entry.extend(self.info.clone());
        entry
    }
}

impl From<ClientError> for CommandError {
    fn from(error: ClientError) -> CommandError {
        let code = match &error {
            ClientError::Query(q) => q.code(),
            // The client has no typed variant for this check of its
            // update path; MongoDB reports it as ImmutableField.
            ClientError::InvalidRequest(m)
                if m.contains("would modify the immutable field '_id'") =>
            {
                IMMUTABLE_FIELD
            }
            ClientError::InvalidRequest(m) if m.starts_with("invalid dataset name") => {
                INVALID_NAMESPACE
            }
            ClientError::InvalidRequest(_) => BAD_VALUE,
            ClientError::DatasetNotFound(_) => NAMESPACE_NOT_FOUND,
            ClientError::DatasetExists(_) => NAMESPACE_EXISTS,
            ClientError::DuplicateKey { .. } | ClientError::UniqueViolation { .. } => DUPLICATE_KEY,
            ClientError::IndexConflict(_) => INDEX_OPTIONS_CONFLICT,
            ClientError::IndexNotFound(_) => INDEX_NOT_FOUND,
            ClientError::DocumentTooLarge { .. } => BSON_OBJECT_TOO_LARGE,
            ClientError::Node(node) => match node {
                NodeError::BadRequest(_) => BAD_VALUE,
                NodeError::DatasetNotFound => NAMESPACE_NOT_FOUND,
                NodeError::DatasetExists => NAMESPACE_EXISTS,
                NodeError::SeqMismatch { .. }
                | NodeError::Precondition { .. }
                | NodeError::StaleSchema => WRITE_CONFLICT,
                NodeError::UniqueViolation { .. } => DUPLICATE_KEY,
                NodeError::BadSignature | NodeError::Corrupt(_) | NodeError::Internal(_) => {
                    INTERNAL_ERROR
                }
                // Transient: the client retries these itself before they
                // reach here; what is left is a node that is not ready.
                NodeError::NotAtState { .. } | NodeError::Unavailable(_) => HOST_UNREACHABLE,
            },
            // Drivers treat HostUnreachable as a transient network error,
            // which is what an unreachable node is to the application.
            ClientError::Unavailable(_) => HOST_UNREACHABLE,
            ClientError::Conflict(_) => WRITE_CONFLICT,
            // A forged or corrupted answer has no MongoDB equivalent; it
            // must not look retryable or like a user mistake.
            ClientError::Integrity(_) | ClientError::Internal(_) => INTERNAL_ERROR,
            // Members gave different answers: like a forged answer, not
            // retryable and not the application's mistake; the message
            // names the members and `disagreeingMembers` lists them.
            ClientError::ReadDisagreement { .. } => READ_DISAGREEMENT,
        };
        let message = match &error {
            ClientError::DuplicateKey { .. } | ClientError::UniqueViolation { .. } => {
                format!("E11000 {error}")
            }
            _ => error.to_string(),
        };
        let info = match &error {
            ClientError::ReadDisagreement { disagreeing, .. } => {
                doc! {"disagreeingMembers": disagreeing.clone()}
            }
            _ => Document::new(),
        };
        CommandError::new(code, message).with_info(info)
    }
}

impl From<QueryError> for CommandError {
    fn from(error: QueryError) -> CommandError {
        CommandError::new(error.code(), error.to_string())
    }
}

impl From<WireError> for CommandError {
    fn from(error: WireError) -> CommandError {
        let code = match &error {
            WireError::DocumentTooLarge { .. } | WireError::TooLarge(_) => BSON_OBJECT_TOO_LARGE,
            _ => FAILED_TO_PARSE,
        };
        CommandError::new(code, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_map_to_mongodb_codes() {
        let cases: Vec<(ClientError, i32, &str)> = vec![
            (ClientError::InvalidRequest("x".into()), 2, "BadValue"),
            (
                ClientError::DatasetNotFound("d.c".into()),
                26,
                "NamespaceNotFound",
            ),
            (
                ClientError::DatasetExists("d.c".into()),
                48,
                "NamespaceExists",
            ),
            (
                ClientError::DuplicateKey {
                    id: "1".into(),
                    inserted: 0,
                },
                11000,
                "DuplicateKey",
            ),
            (
                ClientError::DocumentTooLarge { size: 1, max: 0 },
                10334,
                "BSONObjectTooLarge",
            ),
            (
                ClientError::Unavailable("down".into()),
                6,
                "HostUnreachable",
            ),
            (ClientError::Conflict("c".into()), 112, "WriteConflict"),
            (ClientError::Integrity("forged".into()), 1, "InternalError"),
            (
                ClientError::ReadDisagreement {
                    disagreeing: vec!["node-3".into()],
                    detail: "x".into(),
                },
                91_001,
                "FluenceReadDisagreement",
            ),
            (
                ClientError::Node(NodeError::Precondition {
                    op_index: 0,
                    found_version: None,
                }),
                112,
                "WriteConflict",
            ),
            (
                ClientError::Query(QueryError::FailedToParse {
                    message: "x".into(),
                }),
                9,
                "FailedToParse",
            ),
            (
                ClientError::Query(QueryError::UnsupportedOperator {
                    operator: "$where".into(),
                }),
                238,
                "NotImplemented",
            ),
            (
                ClientError::Query(QueryError::Location {
                    code: 31249,
                    message: "x".into(),
                }),
                31249,
                "Location31249",
            ),
        ];
        for (error, code, name) in cases {
            let mapped = CommandError::from(error);
            assert_eq!(mapped.code, code, "{}", mapped.message);
            assert_eq!(code_name(mapped.code), name);
        }
    }

    #[test]
    fn replies_have_the_mongodb_shape() {
        let reply = CommandError::new(COMMAND_NOT_FOUND, "no such command: 'x'").to_reply();
        assert_eq!(
            reply,
            doc! {"ok": 0.0, "errmsg": "no such command: 'x'", "code": 59, "codeName": "CommandNotFound"}
        );
    }
}
