//! A dataset's descriptor: its name and index declarations in plaintext,
//! which a node only ever holds sealed under the owner's catalog key.

use bson::{doc, Bson, Document};

use crate::error::ClientError;
use crate::query::IndexKindSpec;

/// Descriptor format version, inside the sealed payload. 2 added unique
/// indexes and indexes still being built.
const DESCRIPTOR_VERSION: i32 = 2;
/// Field paths are dotted MongoDB paths; bound their length so a
/// descriptor always fits the protocol's limit.
pub const FIELD_PATH_LEN_MAX: usize = 512;
/// Dataset names, as MongoDB bounds collection names.
pub const DATASET_NAME_LEN_MAX: usize = 120;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub path: String,
    pub kind: IndexKindSpec,
    /// No two documents may hold one value of `path` (for `eq` and `range`
    /// indexes; enforced by the node on an `eq` index, see
    /// `Dataset::new`).
    pub unique: bool,
}

impl IndexSpec {
    /// A non-unique index on `path`.
    pub fn new(path: impl Into<String>, kind: IndexKindSpec) -> IndexSpec {
        IndexSpec {
            path: path.into(),
            kind,
            unique: false,
        }
    }

    /// Same field and kind (whatever the options).
    pub fn same_key(&self, other: &IndexSpec) -> bool {
        self.path == other.path && self.kind == other.kind
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub name: String,
    /// Indexes queries may use.
    pub indexes: Vec<IndexSpec>,
    /// Indexes declared to the node and maintained by every write, but
    /// still being built over older documents: queries do not use them
    /// until they move to `indexes`.
    pub pending: Vec<IndexSpec>,
}

pub fn kind_name(kind: IndexKindSpec) -> &'static str {
    match kind {
        IndexKindSpec::Eq => "eq",
        IndexKindSpec::Range => "range",
        IndexKindSpec::Text => "text",
    }
}

pub fn parse_kind(name: &str) -> Result<IndexKindSpec, ClientError> {
    match name {
        "eq" => Ok(IndexKindSpec::Eq),
        "range" => Ok(IndexKindSpec::Range),
        "text" => Ok(IndexKindSpec::Text),
        other => Err(ClientError::InvalidRequest(format!(
            "unknown index kind {other:?}: expected \"eq\", \"range\" or \"text\""
        ))),
    }
}

pub fn validate_name(name: &str) -> Result<(), ClientError> {
    let bad = |why: &str| {
        Err(ClientError::InvalidRequest(format!(
            "invalid dataset name {name:?}: {why}"
        )))
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > DATASET_NAME_LEN_MAX {
        return bad("it is longer than 120 bytes");
    }
    if name.contains('\0') || name.contains('/') || name.starts_with('$') {
        return bad("it may not contain '/' or NUL or start with '$'");
    }
    Ok(())
}

impl Descriptor {
    /// Checks the declarations a user sent: valid paths, no duplicates.
    pub fn new(name: &str, indexes: Vec<IndexSpec>) -> Result<Descriptor, ClientError> {
        Descriptor::with_pending(name, indexes, Vec::new())
    }

    /// A descriptor some of whose indexes are still being built.
    pub fn with_pending(
        name: &str,
        indexes: Vec<IndexSpec>,
        pending: Vec<IndexSpec>,
    ) -> Result<Descriptor, ClientError> {
        validate_name(name)?;
        let all: Vec<&IndexSpec> = indexes.iter().chain(&pending).collect();
        // Unique range indexes add an `eq` index each (see `Dataset::new`).
        let declared = all.len() + all.iter().filter(|i| i.unique).count();
        if declared > fluence_proto::limits::INDEXES_PER_DATASET_MAX {
            return Err(ClientError::InvalidRequest(format!(
                "at most {} indexes per dataset",
                fluence_proto::limits::INDEXES_PER_DATASET_MAX
            )));
        }
        for (i, index) in all.iter().enumerate() {
            let path = &index.path;
            if path.is_empty()
                || path.len() > FIELD_PATH_LEN_MAX
                || path
                    .split('.')
                    .any(|part| part.is_empty() || part.starts_with('$'))
            {
                return Err(ClientError::InvalidRequest(format!(
                    "invalid index field path {path:?}"
                )));
            }
            if path == "_id" || path.starts_with("_id.") {
                return Err(ClientError::InvalidRequest(
                    "_id is always indexed (by document id); declare other fields".into(),
                ));
            }
            if all[..i].iter().any(|other| other.same_key(index)) {
                return Err(ClientError::InvalidRequest(format!(
                    "index {} on {path:?} is declared twice",
                    kind_name(index.kind)
                )));
            }
            if index.unique && index.kind == IndexKindSpec::Text {
                return Err(ClientError::InvalidRequest(format!(
                    "the text index on {path:?} cannot be unique"
                )));
            }
        }
        Ok(Descriptor {
            name: name.to_string(),
            indexes,
            pending,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let specs = |list: &[IndexSpec]| -> Vec<Bson> {
            list.iter()
                .map(|i| {
                    Bson::Document(
                        doc! { "path": &i.path, "kind": kind_name(i.kind), "unique": i.unique },
                    )
                })
                .collect()
        };
        let document = doc! {
            "v": DESCRIPTOR_VERSION,
            "name": &self.name,
            "indexes": specs(&self.indexes),
            "pending": specs(&self.pending),
        };
        document
            .to_vec()
            .expect("a document of strings always serialises")
    }

    /// Parses a descriptor that was authenticated by the catalog key, so
    /// malformed content means a bug or a different release, not an attack;
    /// it is still an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Descriptor, ClientError> {
        let bad =
            |why: String| ClientError::Integrity(format!("dataset descriptor is malformed: {why}"));
        let document = Document::from_reader(bytes).map_err(|e| bad(e.to_string()))?;
        match document.get_i32("v") {
            Ok(DESCRIPTOR_VERSION) => {}
            _ => return Err(bad("unknown descriptor version".into())),
        }
        let name = document
            .get_str("name")
            .map_err(|e| bad(e.to_string()))?
            .to_string();
        let specs = |key: &str| -> Result<Vec<IndexSpec>, ClientError> {
            let mut out = Vec::new();
            for item in document.get_array(key).map_err(|e| bad(e.to_string()))? {
                let item = item
                    .as_document()
                    .ok_or_else(|| bad("index is not a document".into()))?;
                let path = item
                    .get_str("path")
                    .map_err(|e| bad(e.to_string()))?
                    .to_string();
                let kind = parse_kind(item.get_str("kind").map_err(|e| bad(e.to_string()))?)
                    .map_err(|e| bad(e.to_string()))?;
                let unique = item.get_bool("unique").map_err(|e| bad(e.to_string()))?;
                out.push(IndexSpec { path, kind, unique });
            }
            Ok(out)
        };
        Ok(Descriptor {
            name,
            indexes: specs("indexes")?,
            pending: specs("pending")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let d = Descriptor::new(
            "people",
            vec![
                IndexSpec::new("age", IndexKindSpec::Range),
                IndexSpec::new("name.first", IndexKindSpec::Eq),
                IndexSpec::new("bio", IndexKindSpec::Text),
            ],
        )
        .unwrap();
        assert_eq!(Descriptor::from_bytes(&d.to_bytes()).unwrap(), d);
        let d = Descriptor::with_pending(
            "people",
            vec![IndexSpec::new("age", IndexKindSpec::Range)],
            vec![IndexSpec {
                unique: true,
                ..IndexSpec::new("email", IndexKindSpec::Range)
            }],
        )
        .unwrap();
        assert_eq!(Descriptor::from_bytes(&d.to_bytes()).unwrap(), d);
    }

    #[test]
    fn rejects_bad_declarations() {
        let eq = |p: &str| IndexSpec::new(p, IndexKindSpec::Eq);
        assert!(Descriptor::new("", vec![]).is_err());
        assert!(Descriptor::new("a/b", vec![]).is_err());
        assert!(Descriptor::new("x", vec![eq("")]).is_err());
        assert!(Descriptor::new("x", vec![eq("a..b")]).is_err());
        assert!(Descriptor::new("x", vec![eq("$a")]).is_err());
        assert!(Descriptor::new("x", vec![eq("_id")]).is_err());
        assert!(Descriptor::new("x", vec![eq("a"), eq("a")]).is_err());
        let unique_eq = IndexSpec {
            unique: true,
            ..eq("a")
        };
        assert!(Descriptor::new("x", vec![eq("a"), unique_eq.clone()]).is_err());
        assert!(Descriptor::with_pending("x", vec![eq("a")], vec![unique_eq]).is_err());
        assert!(Descriptor::new(
            "x",
            vec![IndexSpec {
                unique: true,
                ..IndexSpec::new("t", IndexKindSpec::Text)
            }]
        )
        .is_err());
        assert!(Descriptor::new(
            "x",
            vec![eq("a"), IndexSpec::new("a", IndexKindSpec::Range)]
        )
        .is_ok());
        assert!(parse_kind("hash").is_err());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Descriptor::from_bytes(b"not bson").is_err());
        assert!(Descriptor::from_bytes(&doc! {"v": 1}.to_vec().unwrap()).is_err());
        assert!(Descriptor::from_bytes(&doc! {"v": 2}.to_vec().unwrap()).is_err());
    }
}
