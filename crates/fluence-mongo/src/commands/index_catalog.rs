//! Where MongoDB index names live. A dataset's descriptor knows its
//! encrypted indexes (field, kind, unique) but not the MongoDB indexes an
//! application created them as: their names, their direction, which
//! several of them share one encrypted index. The gateway keeps that in
//! one more encrypted dataset per database, `"<db>.system.indexes"`, one
//! document per collection: `{_id: <collection>, indexes: [<entries as
//! listIndexes shows them>]}`.
//!
//! The descriptor stays the truth about what exists: a stored entry whose
//! encrypted indexes are not all declared (dropped through the HTTP API,
//! or a write of the catalog that did not happen) is not listed, and an
//! encrypted index no entry covers is listed under the name drivers would
//! have given it. So the catalog can only be stale about names, never
//! about which indexes exist.

use bson::{doc, Bson};
use fluence_client::descriptor::IndexSpec;
use fluence_client::query::IndexKindSpec;
use fluence_client::{ClientError, FindOptions, Transport};

use super::index_spec::MongoIndex;
use super::Gateway;
use crate::error::CommandError;

/// The collection of every database that holds its index names. MongoDB
/// used this name for its index catalog before 3.0; collections named
/// `system.*` are reserved in MongoDB.
pub(super) const CATALOG_COLLECTION: &str = "system.indexes";

/// The dataset of `db`'s index catalog.
pub(super) fn catalog_ns(db: &str) -> String {
    format!("{db}.{CATALOG_COLLECTION}")
}

/// The MongoDB indexes of a collection whose dataset declares `declared`
/// (built or building), given its stored catalog entries: `_id_` first,
/// then the stored entries that are still true, then defaults for the
/// encrypted indexes no entry covers.
pub(super) fn resolve(declared: &[IndexSpec], stored: &[MongoIndex]) -> Vec<MongoIndex> {
    let mut out = vec![MongoIndex::id()];
    for entry in stored {
        let valid = !entry.is_id() && entry.fields.iter().all(|f| declared.contains(f));
        if valid && !out.iter().any(|o| o.name == entry.name) {
            out.push(entry.clone());
        }
    }
    let covered =
        |spec: &IndexSpec, listed: &[MongoIndex]| listed.iter().any(|m| m.fields.contains(spec));
    let mut text = Vec::new();
    for spec in declared {
        if covered(spec, &out) {
            continue;
        }
        if spec.kind == IndexKindSpec::Text {
            text.push(spec.clone());
        } else {
            out.push(MongoIndex::default_for(vec![spec.clone()]));
        }
    }
    if !text.is_empty() {
        out.push(MongoIndex::default_for(text));
    }
    out
}

impl<T: Transport> Gateway<T> {
    /// The catalog entries stored for `db.collection`.
    pub(super) async fn stored_indexes(
        &self,
        db: &str,
        collection: &str,
    ) -> Result<Vec<MongoIndex>, CommandError> {
        let options = FindOptions {
            filter: doc! {"_id": collection},
            ..FindOptions::default()
        };
        let found = match self.client.find(&catalog_ns(db), options).await {
            Ok(found) => found,
            Err(ClientError::DatasetNotFound(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let Some(entry) = found.into_iter().next() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in entry.get_array("indexes").map(Vec::as_slice).unwrap_or(&[]) {
            // Entries were written by this gateway and sealed under the
            // owner's key; one that does not parse comes from another
            // release and is skipped (its indexes are listed by default
            // names instead).
            match item.as_document().map(MongoIndex::parse) {
                Some(Ok(index)) => out.push(index),
                _ => tracing::warn!(collection, "skipping an unreadable index catalog entry"),
            }
        }
        Ok(out)
    }

    /// Stores `indexes` (the whole list, `_id_` left out) as the catalog
    /// entry of `db.collection`.
    pub(super) async fn store_indexes(
        &self,
        db: &str,
        collection: &str,
        indexes: &[MongoIndex],
    ) -> Result<(), CommandError> {
        let ns = catalog_ns(db);
        let filter = doc! {"_id": collection};
        let entries: Vec<Bson> = indexes
            .iter()
            .filter(|i| !i.is_id())
            .map(|i| Bson::Document(i.describe()))
            .collect();
        if entries.is_empty() {
            return match self.client.delete(&ns, &filter, false).await {
                Ok(_) | Err(ClientError::DatasetNotFound(_)) => Ok(()),
                Err(e) => Err(e.into()),
            };
        }
        let entry = doc! {"_id": collection, "indexes": entries};
        match self.client.update(&ns, &filter, &entry, false, true).await {
            Ok(_) => Ok(()),
            Err(ClientError::DatasetNotFound(_)) => {
                self.ensure_dataset(&ns).await?;
                self.client
                    .update(&ns, &filter, &entry, false, true)
                    .await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Forgets the names of `db.collection`'s indexes (it was dropped).
    pub(super) async fn forget_indexes(
        &self,
        db: &str,
        collection: &str,
    ) -> Result<(), CommandError> {
        self.store_indexes(db, collection, &[]).await
    }

    /// The MongoDB indexes of `db.collection`, whose dataset is `ns`.
    pub(super) async fn mongo_indexes(
        &self,
        db: &str,
        collection: &str,
        ns: &str,
    ) -> Result<Vec<MongoIndex>, CommandError> {
        let view = self.describe_collection(ns).await?;
        let declared = declared(&view);
        let stored = self.stored_indexes(db, collection).await?;
        Ok(resolve(&declared, &stored))
    }
}

/// The encrypted indexes a dataset declares, built or still building.
pub(super) fn declared(view: &fluence_client::DatasetView) -> Vec<IndexSpec> {
    view.indexes.iter().chain(&view.building).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::Document;

    fn spec(path: &str, kind: IndexKindSpec) -> IndexSpec {
        IndexSpec::new(path, kind)
    }

    fn named(spec: Document) -> MongoIndex {
        MongoIndex::parse(&spec).unwrap()
    }

    fn names(list: &[MongoIndex]) -> Vec<&str> {
        list.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn declared_indexes_without_entries_get_default_names() {
        let declared = [
            spec("age", IndexKindSpec::Range),
            spec("email", IndexKindSpec::Eq),
            spec("title", IndexKindSpec::Text),
            spec("body", IndexKindSpec::Text),
        ];
        let list = resolve(&declared, &[]);
        assert_eq!(
            names(&list),
            ["_id_", "age_1", "email_hashed", "title_text_body_text"]
        );
    }

    #[test]
    fn stored_names_cover_their_indexes_and_may_share_them() {
        let declared = [
            spec("age", IndexKindSpec::Range),
            spec("n", IndexKindSpec::Eq),
        ];
        let stored = [
            named(doc! {"key": {"age": 1}, "name": "age_1"}),
            named(doc! {"key": {"age": -1}, "name": "age_down"}),
        ];
        let list = resolve(&declared, &stored);
        assert_eq!(names(&list), ["_id_", "age_1", "age_down", "n_hashed"]);
    }

    #[test]
    fn stale_entries_are_not_listed() {
        // The index was dropped through the HTTP API, or made unique there.
        let stored = [named(doc! {"key": {"age": 1}, "name": "by_age"})];
        assert_eq!(names(&resolve(&[], &stored)), ["_id_"]);
        let unique = IndexSpec {
            unique: true,
            ..spec("age", IndexKindSpec::Range)
        };
        let list = resolve(&[unique], &stored);
        assert_eq!(names(&list), ["_id_", "age_1"]);
        assert!(list[1].unique);
    }
}
