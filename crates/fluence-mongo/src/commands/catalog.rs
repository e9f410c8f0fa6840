//! Databases and collections: a database is a prefix of dataset names,
//! collection `c` of database `d` is the dataset `"d.c"`.

use std::collections::BTreeMap;

use bson::{doc, Bson, Document};
use fluence_client::query::{self, EvalContext};
use fluence_client::{ClientError, Transport};

use super::args::{get_bool, get_doc, truthy};
use super::index_catalog::{catalog_ns, declared, resolve, CATALOG_COLLECTION};
use super::{check_db, collection_of, namespace, Gateway, Reply};
use crate::error::*;

impl<T: Transport> Gateway<T> {
    pub(super) async fn list_databases(&self, cmd: &Document) -> Reply {
        let name_only = get_bool(cmd, "nameOnly")?;
        let filter = filter_of(cmd, "filter")?;
        // Datasets without a '.' were made through the HTTP API and have no
        // (database, collection) reading; they are not listed.
        let mut dbs: BTreeMap<String, u64> = BTreeMap::new();
        for view in self.client.list_datasets().await? {
            match view.name.split_once('.') {
                // The index catalog alone does not make a database.
                Some((_, CATALOG_COLLECTION)) | None => {}
                Some((db, _)) => *dbs.entry(db.to_string()).or_default() += view.doc_count,
            }
        }
        let mut databases = Vec::new();
        for (name, docs) in dbs {
            // Sizes are not known to the gateway (the node stores
            // ciphertext); 0 keeps tools that sum them working.
            let entry = if name_only {
                doc! {"name": name}
            } else {
                doc! {"name": name, "sizeOnDisk": 0i64, "empty": docs == 0}
            };
            if filter.as_ref().is_none_or(|f| f.matches(&entry)) {
                databases.push(Bson::Document(entry));
            }
        }
        let mut reply = doc! {"databases": databases};
        if !name_only {
            reply.insert("totalSize", 0i64);
            reply.insert("totalSizeMb", 0i64);
        }
        Ok(reply)
    }

    pub(super) async fn collection_names(&self, db: &str) -> Result<Vec<String>, CommandError> {
        check_db(db)?;
        let prefix = format!("{db}.");
        Ok(self
            .client
            .list_datasets()
            .await?
            .into_iter()
            .filter_map(|v| v.name.strip_prefix(&prefix).map(str::to_string))
            .filter(|name| name != CATALOG_COLLECTION)
            .collect())
    }

    pub(super) async fn list_collections(&self, db: &str, cmd: &Document) -> Reply {
        let name_only = get_bool(cmd, "nameOnly")?;
        let filter = filter_of(cmd, "filter")?;
        let mut batch = Vec::new();
        for name in self.collection_names(db).await? {
            let entry = if name_only {
                doc! {"name": name, "type": "collection"}
            } else {
                doc! {
                    "name": name,
                    "type": "collection",
                    "options": {},
                    "info": {"readOnly": false},
                    "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"},
                }
            };
            if filter.as_ref().is_none_or(|f| f.matches(&entry)) {
                batch.push(Bson::Document(entry));
            }
        }
        // Bounded by the owner's dataset count: one batch, no cursor.
        Ok(doc! {"cursor": {
            "id": 0i64,
            "ns": format!("{db}.$cmd.listCollections"),
            "firstBatch": batch,
        }})
    }

    pub(super) async fn create(&self, db: &str, cmd: &Document) -> Reply {
        let ns = namespace(db, collection_of(cmd)?)?;
        for option in [
            "capped",
            "timeseries",
            "viewOn",
            "clusteredIndex",
            "validator",
        ] {
            if cmd.get(option).is_some_and(truthy) {
                return Err(CommandError::not_implemented(&format!(
                    "create with {option}"
                )));
            }
        }
        match self.client.create_dataset(&ns, Vec::new()).await {
            Ok(_) => Ok(Document::new()),
            Err(ClientError::DatasetExists(_)) => Err(CommandError::new(
                NAMESPACE_EXISTS,
                format!("Collection {ns} already exists."),
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn drop(&self, db: &str, cmd: &Document) -> Reply {
        let collection = collection_of(cmd)?;
        let ns = namespace(db, collection)?;
        let _changing = self.index_changes.lock().await;
        let view = match self.client.describe(&ns).await {
            Ok(view) => view,
            // MongoDB 7.0 answers ok for a collection that does not exist.
            Err(ClientError::DatasetNotFound(_)) => return Ok(Document::new()),
            Err(e) => return Err(e.into()),
        };
        // The names only count the indexes here: a catalog that cannot be
        // read must not keep a collection from being dropped.
        let stored = match self.stored_indexes(db, collection).await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(%error, ns, "dropping a collection whose index names are unreadable");
                Vec::new()
            }
        };
        let indexes = resolve(&declared(&view), &stored).len();
        match self.client.drop_dataset(&ns).await {
            Ok(()) => {}
            Err(ClientError::DatasetNotFound(_)) => return Ok(Document::new()),
            Err(e) => return Err(e.into()),
        }
        // The collection is gone whatever happens to its index names; a
        // name left behind is not listed (its indexes do not exist).
        if let Err(error) = self.forget_indexes(db, collection).await {
            tracing::warn!(%error, ns, "could not remove the index names of a dropped collection");
        }
        Ok(doc! {"ns": ns, "nIndexesWas": indexes as i32})
    }

    pub(super) async fn drop_database(&self, db: &str) -> Reply {
        let names = self.collection_names(db).await?;
        let datasets = names
            .iter()
            .map(|name| format!("{db}.{name}"))
            .chain([catalog_ns(db)]);
        for dataset in datasets {
            match self.client.drop_dataset(&dataset).await {
                Ok(()) | Err(ClientError::DatasetNotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(doc! {"dropped": db})
    }
}

/// A name filter for listDatabases / listCollections, evaluated with the
/// query engine over the entry documents the command returns.
pub(super) struct EntryFilter(query::Filter);

impl EntryFilter {
    pub(super) fn matches(&self, entry: &Document) -> bool {
        query::eval(&self.0, entry, &EvalContext::without_text())
    }
}

pub(super) fn filter_of(cmd: &Document, key: &str) -> Result<Option<EntryFilter>, CommandError> {
    match get_doc(cmd, key)? {
        Some(f) if !f.is_empty() => Ok(Some(EntryFilter(
            query::parse_filter(f).map_err(|e| CommandError::from(ClientError::from(e)))?,
        ))),
        _ => Ok(None),
    }
}

impl<T: Transport> Gateway<T> {
    /// `dbStats`: collection and document counts. Sizes are unknown to the
    /// gateway (nodes store ciphertext) and reported as 0.
    pub(super) async fn db_stats(&self, db: &str, _cmd: &Document) -> Reply {
        check_db(db)?;
        let prefix = format!("{db}.");
        let (mut collections, mut objects, mut indexes) = (0i64, 0i64, 0i64);
        for view in self.client.list_datasets().await? {
            if view.name.starts_with(&prefix) && view.name[prefix.len()..] != *CATALOG_COLLECTION {
                collections += 1;
                objects += i64::try_from(view.doc_count).unwrap_or(i64::MAX);
                // The _id index and each encrypted index.
                indexes += 1 + view.indexes.len() as i64;
            }
        }
        Ok(doc! {
            "db": db,
            "collections": collections,
            "views": 0,
            "objects": objects,
            "avgObjSize": 0.0,
            "dataSize": 0.0,
            "storageSize": 0.0,
            "indexes": indexes,
            "indexSize": 0.0,
            "totalSize": 0.0,
            "scaleFactor": 1,
            "fsUsedSize": 0.0,
            "fsTotalSize": 0.0,
        })
    }

    /// The dataset behind `ns`; `NamespaceNotFound` when there is none.
    pub(super) async fn describe_collection(
        &self,
        ns: &str,
    ) -> Result<fluence_client::DatasetView, CommandError> {
        match self.client.describe(ns).await {
            Ok(view) => Ok(view),
            Err(ClientError::DatasetNotFound(_)) => Err(CommandError::new(
                NAMESPACE_NOT_FOUND,
                format!("ns does not exist: {ns}"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// `collStats` (deprecated in MongoDB, still sent by older tools).
    pub(super) async fn coll_stats(&self, db: &str, cmd: &Document) -> Reply {
        let collection = collection_of(cmd)?;
        let ns = namespace(db, collection)?;
        let view = self.describe_collection(&ns).await?;
        let indexes = self.mongo_indexes(db, collection, &ns).await?;
        let mut index_sizes = Document::new();
        for index in &indexes {
            index_sizes.insert(index.name.clone(), 0);
        }
        Ok(doc! {
            "ns": ns,
            "count": i64::try_from(view.doc_count).unwrap_or(i64::MAX),
            "size": 0,
            "avgObjSize": 0,
            "storageSize": 0,
            "nindexes": indexes.len() as i32,
            "totalIndexSize": 0,
            "indexSizes": index_sizes,
            "scaleFactor": 1,
            "capped": false,
        })
    }
}
