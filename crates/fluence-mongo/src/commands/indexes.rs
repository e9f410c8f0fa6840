//! `createIndexes`, `listIndexes` and `dropIndexes`. Every collection has
//! the `_id_` index (documents are addressed by `_id`); other MongoDB
//! indexes map onto the dataset's encrypted indexes ([`index_spec`]) and
//! keep their names in the database's index catalog ([`index_catalog`]).
//!
//! [`index_spec`]: super::index_spec
//! [`index_catalog`]: super::index_catalog

use bson::{doc, Bson, Document};
use fluence_client::descriptor::{kind_name, IndexSpec};
use fluence_client::{ClientError, DatasetView, Transport};

use super::index_catalog::{declared, resolve};
use super::index_spec::{MongoIndex, ID_INDEX_NAME};
use super::{collection_of, namespace, Gateway, Reply};
use crate::error::*;

/// Indexes one `createIndexes` may name: a dataset holds at most this
/// many encrypted indexes.
const INDEXES_PER_REQUEST_MAX: usize = fluence_proto::limits::INDEXES_PER_DATASET_MAX;

impl<T: Transport> Gateway<T> {
    pub(super) async fn list_indexes(&self, db: &str, cmd: &Document) -> Reply {
        let collection = collection_of(cmd)?;
        let ns = namespace(db, collection)?;
        let batch: Vec<Bson> = self
            .mongo_indexes(db, collection, &ns)
            .await?
            .iter()
            .map(|index| Bson::Document(index.describe()))
            .collect();
        // A handful of indexes: one batch, no cursor.
        Ok(doc! {"cursor": {"id": 0i64, "ns": ns, "firstBatch": batch}})
    }

    pub(super) async fn create_indexes(&self, db: &str, cmd: &Document) -> Reply {
        let collection = collection_of(cmd)?;
        let ns = namespace(db, collection)?;
        let requested = requested_indexes(cmd)?;
        // One index change at a time: each reads the catalog, changes the
        // dataset, then writes the catalog.
        let _changing = self.index_changes.lock().await;
        let (view, created) = self.dataset_for_indexes(&ns).await?;
        let before = resolve(
            &declared(&view),
            &self.stored_indexes(db, collection).await?,
        );
        let mut after = before.clone();
        let mut declared = declared(&view);
        let mut new_fields = Vec::new();
        for index in requested {
            if !admit(&after, &declared, &index)? {
                continue;
            }
            for field in &index.fields {
                if !declared.contains(field) {
                    declared.push(field.clone());
                    new_fields.push(field.clone());
                }
            }
            after.push(index);
        }
        let mut reply = doc! {
            "numIndexesBefore": before.len() as i32,
            "numIndexesAfter": after.len() as i32,
            "createdCollectionAutomatically": created,
        };
        if after.len() == before.len() {
            reply.insert("note", "all indexes already exist");
            return Ok(reply);
        }
        if !new_fields.is_empty() {
            match self.client.create_indexes(&ns, new_fields).await {
                Ok(_) => {}
                Err(ClientError::UniqueViolation { path, .. }) => {
                    let index = after[before.len()..]
                        .iter()
                        .find(|i| i.unique && i.fields.iter().any(|f| f.path == path));
                    return Err(build_duplicate(&ns, &path, index));
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.store_indexes(db, collection, &after).await?;
        Ok(reply)
    }

    /// The dataset of `ns` and whether this call created it (MongoDB
    /// creates a missing collection on `createIndexes`).
    async fn dataset_for_indexes(&self, ns: &str) -> Result<(DatasetView, bool), CommandError> {
        match self.client.describe(ns).await {
            Ok(view) => return Ok((view, false)),
            Err(ClientError::DatasetNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        match self.client.create_dataset(ns, Vec::new()).await {
            Ok(view) => Ok((view, true)),
            Err(ClientError::DatasetExists(_)) => Ok((self.client.describe(ns).await?, false)),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn drop_indexes(&self, db: &str, cmd: &Document) -> Reply {
        let collection = collection_of(cmd)?;
        let ns = namespace(db, collection)?;
        let target = cmd.get("index").ok_or_else(|| {
            CommandError::new(
                MISSING_FIELD,
                "BSON field 'dropIndexes.index' is missing but a required field",
            )
        })?;
        let _changing = self.index_changes.lock().await;
        let view = match self.client.describe(&ns).await {
            Ok(view) => view,
            Err(ClientError::DatasetNotFound(_)) => {
                return Err(CommandError::new(
                    NAMESPACE_NOT_FOUND,
                    format!("ns not found {ns}"),
                ))
            }
            Err(e) => return Err(e.into()),
        };
        let declared = declared(&view);
        let current = resolve(&declared, &self.stored_indexes(db, collection).await?);
        let dropped = select_for_drop(&current, target)?;
        let remaining: Vec<MongoIndex> = current
            .iter()
            .filter(|i| !dropped.contains(&i.name))
            .cloned()
            .collect();
        // An encrypted index goes when no remaining MongoIndex needs it.
        let unneeded: Vec<IndexSpec> = declared
            .iter()
            .filter(|spec| !remaining.iter().any(|i| i.fields.contains(spec)))
            .cloned()
            .collect();
        if !unneeded.is_empty() {
            self.client.drop_indexes(&ns, unneeded).await?;
        }
        self.store_indexes(db, collection, &remaining).await?;
        let mut reply = doc! {"nIndexesWas": current.len() as i32};
        if target.as_str() == Some("*") {
            reply.insert("msg", "non-_id indexes dropped for collection");
        }
        Ok(reply)
    }
}

/// The parsed `createIndexes.indexes`.
fn requested_indexes(cmd: &Document) -> Result<Vec<MongoIndex>, CommandError> {
    let specs = match cmd.get("indexes") {
        Some(Bson::Array(specs)) => specs,
        Some(other) => {
            return Err(CommandError::type_mismatch(format!(
            "BSON field 'createIndexes.indexes' is the wrong type '{:?}', expected type 'array'",
            other.element_type()
        )))
        }
        None => {
            return Err(CommandError::new(
                MISSING_FIELD,
                "BSON field 'createIndexes.indexes' is missing but a required field",
            ))
        }
    };
    if specs.is_empty() {
        return Err(CommandError::bad_value(
            "Must specify at least one index to create",
        ));
    }
    if specs.len() > INDEXES_PER_REQUEST_MAX {
        return Err(CommandError::new(
            CANNOT_CREATE_INDEX,
            format!("a collection holds at most {INDEXES_PER_REQUEST_MAX} indexes"),
        ));
    }
    specs
        .iter()
        .map(|spec| match spec {
            Bson::Document(spec) => MongoIndex::parse(spec),
            other => Err(CommandError::type_mismatch(format!(
                "each index specification must be an object, not {:?}",
                other.element_type()
            ))),
        })
        .collect()
}

/// Whether `index` is new (`true`), already exists (`false`), or conflicts
/// with an index of `existing` or an encrypted index of `declared`.
fn admit(
    existing: &[MongoIndex],
    declared: &[IndexSpec],
    index: &MongoIndex,
) -> Result<bool, CommandError> {
    if let Some(same_name) = existing.iter().find(|e| e.name == index.name) {
        if same_name.identical(index) {
            return Ok(false);
        }
        return Err(CommandError::new(
            INDEX_KEY_SPECS_CONFLICT,
            format!(
                "An existing index has the same name as the requested index. When index names \
                 are not specified, they are auto generated and can cause conflicts. Please \
                 refer to our documentation. Requested index: {}, existing index: {}",
                index.describe(),
                same_name.describe()
            ),
        ));
    }
    if let Some(same_key) = existing.iter().find(|e| e.same_key(index)) {
        let message = if same_key.identical(index) {
            format!(
                "Index already exists with a different name: {}",
                same_key.name
            )
        } else {
            format!(
                "An equivalent index already exists with a different name and options. \
                 Requested index: {}, existing index: {}",
                index.describe(),
                same_key.describe()
            )
        };
        return Err(CommandError::new(INDEX_OPTIONS_CONFLICT, message));
    }
    // MongoDB keeps one B-tree per key pattern; Fluence one encrypted index
    // per field and kind, which MongoDB indexes may share only if they
    // agree on uniqueness.
    for field in &index.fields {
        if let Some(held) = declared
            .iter()
            .find(|d| d.same_key(field) && d.unique != field.unique)
        {
            let owner = existing
                .iter()
                .find(|e| e.fields.contains(held))
                .map_or("", |e| e.name.as_str());
            return Err(CommandError::new(
                INDEX_OPTIONS_CONFLICT,
                format!(
                    "Fluence keeps one encrypted {} index per field, and the one on '{}' (index \
                     '{owner}') is {}unique; drop it before creating index '{}'",
                    kind_name(field.kind),
                    field.path,
                    if held.unique { "" } else { "not " },
                    index.name
                ),
            ));
        }
    }
    Ok(true)
}

/// The names of the indexes `dropIndexes.index` selects: `"*"` (all but
/// `_id_`), a name, a list of names, or a key pattern.
fn select_for_drop(current: &[MongoIndex], target: &Bson) -> Result<Vec<String>, CommandError> {
    let id_refused = || CommandError::new(INVALID_OPTIONS, "cannot drop _id index");
    let by_name = |name: &str| -> Result<String, CommandError> {
        if name == ID_INDEX_NAME {
            return Err(id_refused());
        }
        current
            .iter()
            .find(|i| i.name == name)
            .map(|i| i.name.clone())
            .ok_or_else(|| {
                CommandError::new(
                    INDEX_NOT_FOUND,
                    format!("index not found with name [{name}]"),
                )
            })
    };
    match target {
        Bson::String(all) if all == "*" => Ok(current
            .iter()
            .filter(|i| !i.is_id())
            .map(|i| i.name.clone())
            .collect()),
        Bson::String(name) => Ok(vec![by_name(name)?]),
        Bson::Array(names) => names
            .iter()
            .map(|name| match name {
                Bson::String(n) if n == "*" => Err(CommandError::bad_value(
                    "'*' drops every index and cannot be part of a list of index names",
                )),
                Bson::String(n) => by_name(n),
                other => Err(CommandError::type_mismatch(format!(
                    "dropIndexes.index names must be strings, not {:?}",
                    other.element_type()
                ))),
            })
            .collect(),
        Bson::Document(key) => {
            let probe = MongoIndex {
                key: key.clone(),
                ..MongoIndex::id()
            };
            let matched: Vec<&MongoIndex> = current.iter().filter(|i| i.same_key(&probe)).collect();
            if matched.iter().any(|i| i.is_id()) {
                return Err(id_refused());
            }
            if matched.is_empty() {
                return Err(CommandError::new(
                    INDEX_NOT_FOUND,
                    format!("can't find index with key: {key}"),
                ));
            }
            Ok(matched.iter().map(|i| i.name.clone()).collect())
        }
        other => Err(CommandError::type_mismatch(format!(
            "dropIndexes.index must be a string, an array of strings or a key pattern, not {:?}",
            other.element_type()
        ))),
    }
}

/// The error of a unique index whose field already holds a duplicate.
fn build_duplicate(ns: &str, path: &str, index: Option<&MongoIndex>) -> CommandError {
    let name = index.map_or_else(|| format!("{path}_1"), |i| i.name.clone());
    let error = CommandError::new(
        DUPLICATE_KEY,
        format!(
            "Index build failed: E11000 duplicate key error collection: {ns} index: {name}: \
             documents already hold duplicate values of '{path}'"
        ),
    );
    match index {
        Some(index) => error.with_info(doc! {"keyPattern": index.key.clone()}),
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluence_client::query::IndexKindSpec;

    fn index(spec: Document) -> MongoIndex {
        MongoIndex::parse(&spec).unwrap()
    }

    fn listed() -> Vec<MongoIndex> {
        vec![
            MongoIndex::id(),
            index(doc! {"key": {"a": 1}, "name": "a_1"}),
            index(doc! {"key": {"a": -1}, "name": "a_down"}),
            index(doc! {"key": {"t": "text"}, "name": "t_text"}),
        ]
    }

    fn declared() -> Vec<IndexSpec> {
        vec![
            IndexSpec::new("a", IndexKindSpec::Range),
            IndexSpec::new("t", IndexKindSpec::Text),
        ]
    }

    fn admit_code(spec: Document) -> i32 {
        admit(&listed(), &declared(), &index(spec))
            .unwrap_err()
            .code
    }

    #[test]
    fn creating_follows_mongodb_conflict_rules() {
        let (existing, declared) = (listed(), declared());
        // Identical: nothing to do; new name and key: created.
        assert!(!admit(
            &existing,
            &declared,
            &index(doc! {"key": {"a": 1}, "name": "a_1"})
        )
        .unwrap());
        assert!(!admit(
            &existing,
            &declared,
            &index(doc! {"key": {"_id": 1}, "name": "_id_"})
        )
        .unwrap());
        assert!(admit(&existing, &declared, &index(doc! {"key": {"b": 1}})).unwrap());
        // Same name, other key or options: 86.
        assert_eq!(admit_code(doc! {"key": {"b": 1}, "name": "a_1"}), 86);
        assert_eq!(
            admit_code(doc! {"key": {"a": 1}, "name": "a_1", "unique": true}),
            86
        );
        // Same key, other name: 85 (one text index per collection).
        assert_eq!(admit_code(doc! {"key": {"a": 1}, "name": "other"}), 85);
        assert_eq!(admit_code(doc! {"key": {"_id": 1}, "name": "id"}), 85);
        assert_eq!(admit_code(doc! {"key": {"u": "text"}}), 85);
        // A unique index on a field whose encrypted index is not unique.
        let error = admit(
            &existing,
            &declared,
            &index(doc! {"key": {"a": 2}, "name": "a_u", "unique": true}),
        )
        .unwrap_err();
        assert_eq!(error.code, 85);
        assert!(error.message.contains("'a_1'"), "{}", error.message);
    }

    #[test]
    fn drops_select_by_star_name_list_and_key() {
        let current = listed();
        assert_eq!(
            select_for_drop(&current, &Bson::String("*".into())).unwrap(),
            ["a_1", "a_down", "t_text"]
        );
        assert_eq!(
            select_for_drop(&current, &Bson::String("a_down".into())).unwrap(),
            ["a_down"]
        );
        let names = Bson::Array(vec!["a_1".into(), "t_text".into()]);
        assert_eq!(
            select_for_drop(&current, &names).unwrap(),
            ["a_1", "t_text"]
        );
        assert_eq!(
            select_for_drop(&current, &Bson::Document(doc! {"a": -1})).unwrap(),
            ["a_down"]
        );
        let code = |target: Bson| select_for_drop(&current, &target).unwrap_err().code;
        assert_eq!(code(Bson::String("_id_".into())), 72);
        assert_eq!(code(Bson::Document(doc! {"_id": 1})), 72);
        assert_eq!(code(Bson::Array(vec!["a_1".into(), "_id_".into()])), 72);
        assert_eq!(code(Bson::String("nope".into())), 27);
        assert_eq!(code(Bson::Array(vec!["a_1".into(), "nope".into()])), 27);
        assert_eq!(code(Bson::Document(doc! {"zz": 1})), 27);
        assert_eq!(code(Bson::Int32(1)), 14);
    }

    #[test]
    fn request_shape_is_checked() {
        let code = |cmd: Document| requested_indexes(&cmd).unwrap_err().code;
        assert_eq!(code(doc! {"createIndexes": "c"}), 40414);
        assert_eq!(code(doc! {"createIndexes": "c", "indexes": {}}), 14);
        assert_eq!(code(doc! {"createIndexes": "c", "indexes": []}), 2);
        assert_eq!(code(doc! {"createIndexes": "c", "indexes": [1]}), 14);
        let many: Vec<Bson> = (0..65)
            .map(|i| Bson::Document(doc! {"key": {format!("f{i}"): 1}}))
            .collect();
        assert_eq!(code(doc! {"createIndexes": "c", "indexes": many}), 67);
    }
}
