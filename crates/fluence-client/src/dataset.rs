//! One dataset as its owner's client sees it: keys, index declarations, and
//! the translation between plaintext documents and what a node stores.

use std::collections::BTreeSet;

use bson::{Bson, Document};
use fluence_crypto::encode as ore_encode;
use fluence_crypto::keys::{DatasetKeys, MasterKey, TokenKey};
use fluence_crypto::ore::OreKey;
use fluence_proto::limits::{DOCUMENT_LEN_MAX, VALUES_PER_INDEX_ENTRY_MAX};
use fluence_proto::{
    DatasetId, DocEntry, DocId, DocOp, Hash32, IndexDecl, IndexEntry, IndexId, IndexKind,
    IndexValues, OreBound, Plan, Precondition, SealedDoc, Token,
};

use crate::descriptor::{Descriptor, IndexSpec};
use crate::error::ClientError;
use crate::query::{equality_key, index_values, IndexKindSpec, IndexPlan};

enum IndexKey {
    Eq(TokenKey),
    Text(TokenKey),
    Range(OreKey),
}

/// One index as declared to the node.
struct Index {
    path: String,
    kind: IndexKindSpec,
    unique: bool,
    /// Built over every document, so queries may use it.
    ready: bool,
    id: IndexId,
    key: IndexKey,
}

impl Index {
    fn decl(&self) -> IndexDecl {
        IndexDecl {
            id: self.id,
            kind: proto_kind(self.kind),
            unique: self.unique,
        }
    }
}

/// Keys and index layout of one dataset.
pub struct Dataset {
    pub id: DatasetId,
    pub name_tag: [u8; 32],
    pub descriptor: Descriptor,
    keys: DatasetKeys,
    indexes: Vec<Index>,
}

/// The indexes a descriptor declares to the node, as `(path, kind, unique,
/// ready)`, in a deterministic order (the schema digest depends on it).
///
/// Uniqueness is enforced by the node on `eq` tokens only: they are exact
/// (1 and 1.0 share one, as in MongoDB), while ORE keys of strings compare
/// on a 14-byte prefix. So a unique `range` index on a path also declares
/// a unique `eq` index on it, merged with an `eq` index declared there.
/// A merged index is ready only if every declaration it merges is: making
/// an existing `eq` index unique rebuilds it.
fn physical_indexes(descriptor: &Descriptor) -> Vec<(String, IndexKindSpec, bool, bool)> {
    let mut out: Vec<(String, IndexKindSpec, bool, bool)> = Vec::new();
    let mut add = |path: &str, kind: IndexKindSpec, unique: bool, ready: bool| match out
        .iter_mut()
        .find(|(p, k, _, _)| p == path && *k == kind)
    {
        Some(existing) => {
            existing.2 |= unique;
            existing.3 &= ready;
        }
        None => out.push((path.to_string(), kind, unique, ready)),
    };
    let specs = descriptor
        .indexes
        .iter()
        .map(|spec| (spec, true))
        .chain(descriptor.pending.iter().map(|spec| (spec, false)));
    for (spec, ready) in specs {
        for (kind, unique) in node_indexes_of(spec) {
            add(&spec.path, kind, unique, ready);
        }
    }
    out
}

/// The `(kind, unique)` indexes one spec declares on its path: itself
/// (unique only if it is an `eq` index), and for a unique `range` index
/// the unique `eq` index that enforces it.
pub(crate) fn node_indexes_of(spec: &IndexSpec) -> Vec<(IndexKindSpec, bool)> {
    let mut out = vec![(spec.kind, spec.unique && spec.kind == IndexKindSpec::Eq)];
    if spec.unique && spec.kind == IndexKindSpec::Range {
        out.push((IndexKindSpec::Eq, true));
    }
    out
}

pub fn proto_kind(kind: IndexKindSpec) -> IndexKind {
    match kind {
        IndexKindSpec::Eq => IndexKind::Eq,
        IndexKindSpec::Range => IndexKind::Range,
        IndexKindSpec::Text => IndexKind::Text,
    }
}

impl Dataset {
    pub fn new(master: &MasterKey, descriptor: Descriptor) -> Dataset {
        let name_tag = master.catalog_key().name_tag(&descriptor.name);
        let id = DatasetId(fluence_crypto::keys::dataset_id(
            &master.owner_public_key(),
            &name_tag,
        ));
        let keys = master.dataset_keys(&name_tag);
        let indexes = physical_indexes(&descriptor)
            .into_iter()
            .map(|(path, kind, unique, ready)| {
                let key = match kind {
                    IndexKindSpec::Eq => IndexKey::Eq(keys.eq_key(&path)),
                    IndexKindSpec::Text => IndexKey::Text(keys.text_key(&path)),
                    IndexKindSpec::Range => IndexKey::Range(keys.ore_key(&path)),
                };
                let id = IndexId(keys.index_id(&path, proto_kind(kind).tag()));
                Index {
                    path,
                    kind,
                    unique,
                    ready,
                    id,
                    key,
                }
            })
            .collect();
        Dataset {
            id,
            name_tag,
            descriptor,
            keys,
            indexes,
        }
    }

    pub fn name(&self) -> &str {
        &self.descriptor.name
    }

    /// What the node is told about the indexes: opaque ids and kinds only.
    pub fn index_decls(&self) -> Vec<IndexDecl> {
        self.indexes.iter().map(Index::decl).collect()
    }

    /// The digest a batch computed with these indexes names.
    pub fn schema(&self) -> Hash32 {
        fluence_proto::schema_digest(&self.index_decls())
    }

    /// The declaration of the index of `kind` on `path`, built or not.
    pub fn decl_of(&self, path: &str, kind: IndexKindSpec) -> Option<IndexDecl> {
        self.indexes
            .iter()
            .find(|i| i.path == path && i.kind == kind)
            .map(Index::decl)
    }

    /// The field path of index `id`, for errors.
    pub fn index_path(&self, id: &IndexId) -> Option<&str> {
        self.indexes
            .iter()
            .find(|i| i.id == *id)
            .map(|i| i.path.as_str())
    }

    /// `(path, kind)` pairs for the planner: built indexes only.
    pub fn planner_indexes(&self) -> Vec<(String, IndexKindSpec)> {
        self.indexes
            .iter()
            .filter(|i| i.ready)
            .map(|i| (i.path.clone(), i.kind))
            .collect()
    }

    pub fn text_paths(&self) -> Vec<String> {
        self.indexes
            .iter()
            .filter(|i| i.ready && i.kind == IndexKindSpec::Text)
            .map(|i| i.path.clone())
            .collect()
    }

    /// The node-side id of the document whose `_id` is `id`.
    pub fn doc_id(&self, id: &Bson) -> DocId {
        DocId(self.keys.doc_id(&equality_key(id)))
    }

    /// Encrypts `doc` as `version` of document `doc_id`.
    pub fn seal(
        &self,
        doc_id: DocId,
        version: u64,
        doc: &Document,
    ) -> Result<SealedDoc, ClientError> {
        let plaintext = doc.to_vec().map_err(|e| {
            ClientError::InvalidRequest(format!("document cannot be encoded as BSON: {e}"))
        })?;
        if plaintext.len() > DOCUMENT_LEN_MAX {
            return Err(ClientError::DocumentTooLarge {
                size: plaintext.len(),
                max: DOCUMENT_LEN_MAX,
            });
        }
        let sealed = self
            .keys
            .seal_document(&self.id.0, &doc_id.0, version, &plaintext);
        Ok(SealedDoc {
            version,
            wrapped_key: sealed.wrapped_key,
            ciphertext: sealed.ciphertext,
        })
    }

    /// Decrypts and authenticates a document a node returned. Any
    /// substitution (another document's ciphertext, an old version, a
    /// flipped bit) fails here.
    pub fn open(&self, entry: &DocEntry) -> Result<Document, ClientError> {
        let plaintext = self
            .keys
            .open_document(
                &self.id.0,
                &entry.doc.0,
                entry.sealed.version,
                &entry.sealed.wrapped_key,
                &entry.sealed.ciphertext,
            )
            .map_err(|_| {
                ClientError::Integrity(format!(
                    "document {} (version {}) failed authentication: the node returned a forged or corrupted ciphertext",
                    entry.doc, entry.sealed.version
                ))
            })?;
        let doc = Document::from_reader(plaintext.as_slice()).map_err(|e| {
            ClientError::Integrity(format!(
                "document {} decrypted to invalid BSON: {e}",
                entry.doc
            ))
        })?;
        // The AEAD binds the node-side id; check it also matches the `_id`
        // inside, so a buggy or malicious writer cannot alias documents.
        match doc.get("_id") {
            Some(id) if self.doc_id(id) == entry.doc => Ok(doc),
            _ => Err(ClientError::Integrity(format!(
                "document {} does not carry the _id its id was derived from",
                entry.doc
            ))),
        }
    }

    /// The index entries `doc` contributes.
    pub fn entries(&self, doc: &Document) -> Result<Vec<IndexEntry>, ClientError> {
        let mut entries = Vec::with_capacity(self.indexes.len());
        for index in &self.indexes {
            let values = index_values(doc, &index.path);
            let values = match &index.key {
                IndexKey::Eq(key) => {
                    let tokens: BTreeSet<[u8; 16]> =
                        values.iter().map(|v| key.token(&equality_key(v))).collect();
                    IndexValues::Tokens(tokens.into_iter().map(Token).collect())
                }
                IndexKey::Text(key) => {
                    let mut tokens = BTreeSet::new();
                    for value in &values {
                        if let Bson::String(text) = value {
                            tokens.extend(key.text_tokens(text));
                        }
                    }
                    IndexValues::Tokens(tokens.into_iter().map(Token).collect())
                }
                IndexKey::Range(key) => {
                    let plaintexts: BTreeSet<Vec<u8>> =
                        values.iter().filter_map(ore_plaintext).collect();
                    let mut cts = Vec::with_capacity(plaintexts.len());
                    for plaintext in &plaintexts {
                        cts.push(key.encrypt(plaintext).map_err(|e| {
                            ClientError::InvalidRequest(format!(
                                "value cannot be range-indexed: {e}"
                            ))
                        })?);
                    }
                    IndexValues::Ore(cts)
                }
            };
            let count = match &values {
                IndexValues::Tokens(t) => t.len(),
                IndexValues::Ore(c) => c.len(),
            };
            if count > VALUES_PER_INDEX_ENTRY_MAX {
                return Err(ClientError::InvalidRequest(format!(
                    "field {:?} holds {count} distinct indexed values; at most {VALUES_PER_INDEX_ENTRY_MAX} are allowed",
                    index.path
                )));
            }
            if count > 0 {
                entries.push(IndexEntry {
                    index: index.id,
                    values,
                });
            }
        }
        Ok(entries)
    }

    /// The operation that writes `doc` (which must carry `_id`) as `version`.
    pub fn put_op(
        &self,
        doc: &Document,
        version: u64,
        expect: Precondition,
    ) -> Result<DocOp, ClientError> {
        let id = doc
            .get("_id")
            .ok_or_else(|| ClientError::InvalidRequest("document has no _id".into()))?;
        let doc_id = self.doc_id(id);
        Ok(DocOp::Put {
            doc: doc_id,
            expect,
            sealed: self.seal(doc_id, version, doc)?,
            entries: self.entries(doc)?,
        })
    }

    /// The built index of `kind` on `path`, if any.
    fn index(&self, path: &str, kind: IndexKindSpec) -> Option<&Index> {
        self.indexes
            .iter()
            .find(|i| i.ready && i.path == path && i.kind == kind)
    }

    /// Translates an abstract plan into one over this dataset's encrypted
    /// indexes. Anything that cannot be translated widens to `All`, which
    /// keeps the answer a superset of the matches.
    pub fn lower(&self, plan: &IndexPlan) -> Plan {
        match plan {
            IndexPlan::All => Plan::All,
            IndexPlan::Eq { path, values } => match self.index(path, IndexKindSpec::Eq) {
                Some(Index {
                    id,
                    key: IndexKey::Eq(key),
                    ..
                }) => {
                    let tokens: BTreeSet<[u8; 16]> =
                        values.iter().map(|v| key.token(&equality_key(v))).collect();
                    Plan::Tokens {
                        index: *id,
                        any_of: tokens.into_iter().map(Token).collect(),
                    }
                }
                _ => Plan::All,
            },
            IndexPlan::Range { path, lower, upper } => match self.index(path, IndexKindSpec::Range)
            {
                Some(Index {
                    id,
                    key: IndexKey::Range(key),
                    ..
                }) => self.lower_range(*id, key, lower, upper),
                _ => Plan::All,
            },
            IndexPlan::Text { paths, search } => {
                let mut branches = Vec::new();
                for path in paths {
                    match self.index(path, IndexKindSpec::Text) {
                        Some(Index {
                            id,
                            key: IndexKey::Text(key),
                            ..
                        }) => branches.push(Plan::Tokens {
                            index: *id,
                            any_of: key.text_tokens(search).into_iter().map(Token).collect(),
                        }),
                        _ => return Plan::All,
                    }
                }
                match branches.len() {
                    0 => Plan::All,
                    1 => branches.pop().unwrap_or(Plan::All),
                    _ => Plan::Or(branches),
                }
            }
            IndexPlan::And(children) => {
                let lowered: Vec<Plan> = children
                    .iter()
                    .map(|c| self.lower(c))
                    .filter(|p| *p != Plan::All)
                    .collect();
                match lowered.len() {
                    0 => Plan::All,
                    1 => lowered.into_iter().next().unwrap_or(Plan::All),
                    _ => Plan::And(lowered),
                }
            }
            IndexPlan::Or(children) => {
                let lowered: Vec<Plan> = children.iter().map(|c| self.lower(c)).collect();
                if lowered.iter().any(|p| *p == Plan::All) || lowered.is_empty() {
                    Plan::All
                } else {
                    Plan::Or(lowered)
                }
            }
        }
    }

    fn lower_range(
        &self,
        index: IndexId,
        key: &OreKey,
        lower: &Option<(Bson, bool)>,
        upper: &Option<(Bson, bool)>,
    ) -> Plan {
        let encode = |bound: &Option<(Bson, bool)>| -> Result<Option<(Vec<u8>, bool)>, ()> {
            match bound {
                None => Ok(None),
                Some((value, inclusive)) => ore_plaintext(value)
                    .map(|p| Some((p, *inclusive)))
                    .ok_or(()),
            }
        };
        let (Ok(lower), Ok(upper)) = (encode(lower), encode(upper)) else {
            return Plan::All;
        };
        // MongoDB brackets comparisons by type: `$gt: 5` matches numbers
        // only. An open end is closed at the edge of the other bound's type
        // class: `[class]` sorts below every value of the class and
        // `[class + 1]` above (see `fluence_crypto::encode`).
        let (lower, upper) = match (lower, upper) {
            (None, None) => return Plan::All,
            (Some(l), None) => {
                let class = l.0[0];
                (l, (vec![class.saturating_add(1)], true))
            }
            (None, Some(u)) => {
                let class = u.0[0];
                ((vec![class], true), u)
            }
            (Some(l), Some(u)) => (l, u),
        };
        // Every bound is made inclusive: the encodings are monotone but lossy
        // (strings keep 14 bytes, large integers round to f64), so a value
        // strictly beyond an exclusive bound may encode equal to it. The
        // gateway applies the exact bound after decryption.
        let bound = |(plaintext, _inclusive): (Vec<u8>, bool)| -> Option<OreBound> {
            key.encrypt(&plaintext).ok().map(|ct| OreBound {
                ct,
                inclusive: true,
            })
        };
        match (bound(lower), bound(upper)) {
            (Some(lower), Some(upper)) => Plan::Range {
                index,
                lower: Some(lower),
                upper: Some(upper),
            },
            _ => Plan::All,
        }
    }
}

/// The order-preserving plaintext of a value for the range index, or
/// `None` for types the range index does not hold.
pub fn ore_plaintext(value: &Bson) -> Option<Vec<u8>> {
    Some(match value {
        Bson::Null => ore_encode::ore_null().to_vec(),
        Bson::Int32(v) => ore_encode::ore_i64(i64::from(*v)).to_vec(),
        Bson::Int64(v) => ore_encode::ore_i64(*v).to_vec(),
        Bson::Double(v) => ore_encode::ore_f64(*v).to_vec(),
        // MongoDB orders symbols with strings.
        Bson::String(s) | Bson::Symbol(s) => ore_encode::ore_string(s).to_vec(),
        // Decimal128 rounds to the nearest f64: monotone non-decreasing, and
        // bounds are always lowered inclusively, so no match is lost.
        Bson::Decimal128(d) => ore_encode::ore_f64(d.to_string().parse::<f64>().ok()?).to_vec(),
        Bson::Boolean(b) => ore_encode::ore_bool(*b).to_vec(),
        Bson::DateTime(d) => ore_encode::ore_date_millis(d.timestamp_millis()).to_vec(),
        _ => return None,
    })
}
