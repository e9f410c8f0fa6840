//! Errors the client reports to applications. Each has a stable `code`
//! that the gateway puts in its JSON errors; messages never leak keys or
//! plaintext of other documents.

use fluence_proto::NodeError;

use crate::query::QueryError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("dataset {0:?} does not exist")]
    DatasetNotFound(String),
    #[error("dataset {0:?} already exists")]
    DatasetExists(String),
    #[error("duplicate key: a document with _id {id} already exists ({inserted} documents inserted before it)")]
    DuplicateKey { id: String, inserted: u64 },
    #[error("duplicate key: another document holds the same value of {path:?}, which a unique index covers ({inserted} documents written before it)")]
    UniqueViolation { path: String, inserted: u64 },
    #[error("{0}")]
    IndexConflict(String),
    #[error("{0}")]
    IndexNotFound(String),
    #[error("document is {size} bytes as BSON, above the maximum of {max}")]
    DocumentTooLarge { size: usize, max: usize },
    #[error("integrity check failed: {0}")]
    Integrity(String),
    #[error("node refused the request: {0}")]
    Node(NodeError),
    #[error("node unavailable: {0}")]
    Unavailable(String),
    /// The members asked for a read did not agree on its answer (or on
    /// the dataset's state); `disagreeing` names the members outvoted, or
    /// every member asked when no answer has a majority.
    #[error("read quorum not reached: {detail}")]
    ReadDisagreement {
        disagreeing: Vec<String>,
        detail: String,
    },
    #[error("write conflict: {0}")]
    Conflict(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ClientError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::InvalidRequest(_) => "bad_request",
            ClientError::Query(_) => "bad_query",
            ClientError::DatasetNotFound(_) => "dataset_not_found",
            ClientError::DatasetExists(_) => "dataset_exists",
            ClientError::DuplicateKey { .. } | ClientError::UniqueViolation { .. } => {
                "duplicate_key"
            }
            ClientError::IndexConflict(_) => "index_conflict",
            ClientError::IndexNotFound(_) => "index_not_found",
            ClientError::DocumentTooLarge { .. } => "document_too_large",
            ClientError::Integrity(_) => "integrity_error",
            ClientError::Node(_) => "node_error",
            ClientError::Unavailable(_) => "node_unavailable",
            ClientError::ReadDisagreement { .. } => "read_disagreement",
            ClientError::Conflict(_) => "write_conflict",
            ClientError::Internal(_) => "internal_error",
        }
    }
}
