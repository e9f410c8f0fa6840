//! Typed errors of the store. `StoreError` is about the storage itself;
//! `ApplyError` and `FindError` add what a write or a query can get wrong.
//! [`ApplyError::to_node_error`] and [`FindError::to_node_error`] map them
//! onto the wire's `NodeError` without leaking storage internals.

use std::path::PathBuf;

use fluence_proto::{IndexId, NodeError};

/// Why the storage itself failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The storage engine failed (disk full, I/O error, ...).
    #[error("storage engine error: {0}")]
    Db(#[source] redb::Error),
    /// Bytes on disk do not decode or break an invariant. Never a panic.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("dataset file format {found} is not supported (this build reads {supported})")]
    UnsupportedFormat { found: u16, supported: u16 },
    #[error("dataset not found")]
    DatasetNotFound,
    /// A write began while a [`crate::Staged`] transaction of the dataset
    /// was still open: its holder must commit or drop it first.
    #[error("a staged transaction of the dataset is still open")]
    Staged,
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }

    /// The wire error for this failure. Engine and I/O details stay in the
    /// node's log (the caller logs `self`); a client learns only the class.
    pub fn to_node_error(&self) -> NodeError {
        match self {
            StoreError::DatasetNotFound => NodeError::DatasetNotFound,
            StoreError::Corrupt(text) => NodeError::Corrupt(text.clone()),
            StoreError::UnsupportedFormat { .. } => {
                NodeError::Corrupt("dataset file format not supported".into())
            }
            StoreError::Io { .. } | StoreError::Db(_) | StoreError::Staged => {
                NodeError::Internal("node storage failed".into())
            }
        }
    }
}

impl From<redb::Error> for StoreError {
    fn from(error: redb::Error) -> Self {
        match error {
            redb::Error::Corrupted(text) => StoreError::Corrupt(format!("storage engine: {text}")),
            // A table that is missing or typed differently (for instance a
            // range table written under another ORE order) means the file is
            // not a dataset this build can serve.
            error @ (redb::Error::TableTypeMismatch { .. }
            | redb::Error::TableIsMultimap(_)
            | redb::Error::TableIsNotMultimap(_)
            | redb::Error::TypeDefinitionChanged { .. }
            | redb::Error::TableDoesNotExist(_)) => {
                StoreError::Corrupt(format!("dataset file layout: {error}"))
            }
            error => StoreError::Db(error),
        }
    }
}

macro_rules! from_redb {
    ($($error:ty),* $(,)?) => {
        $(impl From<$error> for StoreError {
            fn from(error: $error) -> Self {
                redb::Error::from(error).into()
            }
        })*
    };
}

from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
);

/// Why a write was refused. Every refusal leaves the dataset unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("dataset not found")]
    DatasetNotFound,
    #[error("dataset already exists")]
    DatasetExists,
    #[error("write sequence mismatch: expected {expected}")]
    SeqMismatch { expected: u64 },
    #[error("operation {op_index} precondition failed: found version {found_version:?}")]
    Precondition {
        op_index: u32,
        found_version: Option<u64>,
    },
    /// The batch names other index declarations than the dataset's.
    #[error("the dataset's indexes changed since the batch was computed")]
    StaleSchema,
    /// A `Put` gives a unique index a token another document holds.
    #[error("operation {op_index} violates unique index {index}")]
    UniqueViolation { op_index: u32, index: IndexId },
    /// The write is malformed for this dataset (undeclared index, wrong
    /// value shape, invalid ciphertext, bad version, ...).
    #[error("bad write: {0}")]
    BadWrite(String),
    /// A Merkle bucket would exceed `BUCKET_DOCS_MAX`, which keeps every
    /// proof below the message limit.
    #[error("Merkle bucket {bucket:#06x} is full")]
    BucketFull { bucket: u16 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApplyError {
    pub fn to_node_error(&self) -> NodeError {
        match self {
            ApplyError::DatasetNotFound => NodeError::DatasetNotFound,
            ApplyError::DatasetExists => NodeError::DatasetExists,
            ApplyError::SeqMismatch { expected } => NodeError::SeqMismatch {
                expected: *expected,
            },
            ApplyError::Precondition {
                op_index,
                found_version,
            } => NodeError::Precondition {
                op_index: *op_index,
                found_version: *found_version,
            },
            ApplyError::StaleSchema => NodeError::StaleSchema,
            ApplyError::UniqueViolation { op_index, index } => NodeError::UniqueViolation {
                op_index: *op_index,
                index: *index,
            },
            ApplyError::BadWrite(_) | ApplyError::BucketFull { .. } => {
                NodeError::BadRequest(self.to_string())
            }
            ApplyError::Store(store) => store.to_node_error(),
        }
    }
}

impl<E> From<E> for ApplyError
where
    E: RedbError,
{
    fn from(error: E) -> Self {
        ApplyError::Store(error.into_store())
    }
}

impl<E> From<E> for FindError
where
    E: RedbError,
{
    fn from(error: E) -> Self {
        FindError::Store(error.into_store())
    }
}

/// redb error types, so `?` converts them straight into `ApplyError` and
/// `FindError` through [`StoreError`].
pub trait RedbError {
    fn into_store(self) -> StoreError;
}

macro_rules! redb_error {
    ($($error:ty),* $(,)?) => {
        $(impl RedbError for $error {
            fn into_store(self) -> StoreError {
                self.into()
            }
        })*
    };
}

redb_error!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
);

/// Why a query was refused.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error("dataset not found")]
    DatasetNotFound,
    /// The plan does not fit the dataset (undeclared index, wrong kind,
    /// invalid ciphertext) or the request is malformed.
    #[error("bad query: {0}")]
    BadPlan(String),
    /// The plan was made for other index declarations than the dataset's.
    #[error("the dataset's indexes changed since the query was planned")]
    StaleSchema,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl FindError {
    pub fn to_node_error(&self) -> NodeError {
        match self {
            FindError::DatasetNotFound => NodeError::DatasetNotFound,
            FindError::BadPlan(_) => NodeError::BadRequest(self.to_string()),
            FindError::StaleSchema => NodeError::StaleSchema,
            FindError::Store(store) => store.to_node_error(),
        }
    }
}
