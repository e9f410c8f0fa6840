//! Databases and collections: a database is a prefix of dataset names,
//! collection `c` of database `d` is the dataset `"d.c"`.

use std::collections::BTreeMap;

use bson::{doc, Bson, Document};
use fluence_client::query::{self, EvalContext};
use fluence_client::{ClientError, Transport};

use super::args::{get_bool, get_doc, truthy};
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
            if let Some((db, _)) = view.name.split_once('.') {
                *dbs.entry(db.to_string()).or_default() += view.doc_count;
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
        let ns = namespace(db, collection_of(cmd)?)?;
        match self.client.drop_dataset(&ns).await {
            Ok(()) => Ok(doc! {"ns": ns, "nIndexesWas": 1}),
            // MongoDB 7.0 answers ok for a collection that does not exist.
            Err(ClientError::DatasetNotFound(_)) => Ok(Document::new()),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn drop_database(&self, db: &str) -> Reply {
        for name in self.collection_names(db).await? {
            match self.client.drop_dataset(&format!("{db}.{name}")).await {
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
