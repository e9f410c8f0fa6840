//! Reading commands: find, getMore, killCursors, count.

use std::collections::VecDeque;
use std::time::Instant;

use bson::{doc, Bson, Document};
use fluence_client::{ClientError, FindOptions, Transport};

use super::args::*;
use super::{collection_of, namespace, poisoned, Gateway, Reply};
use crate::cursors::take_batch;
use crate::error::*;

/// Documents in a find's first batch when the client gives no batchSize,
/// as MongoDB.
const DEFAULT_FIRST_BATCH: usize = 101;

impl<T: Transport> Gateway<T> {
    pub(super) async fn find(&self, connection: i64, db: &str, cmd: &Document) -> Reply {
        let collection = collection_of(cmd)?;
        let ns = namespace(db, collection)?;
        check_collation(cmd)?;
        let filter = get_doc(cmd, "filter")?.cloned().unwrap_or_default();
        let sort = get_doc(cmd, "sort")?.filter(|s| !s.is_empty()).cloned();
        let projection = get_doc(cmd, "projection")?
            .filter(|p| !p.is_empty())
            .cloned();
        let skip = non_negative(cmd, "skip")?.unwrap_or(0);
        let limit = get_i64(cmd, "limit")?.unwrap_or(0);
        let batch_size = non_negative(cmd, "batchSize")?;
        // A negative limit is the legacy "one batch of at most |limit|".
        let single_batch = get_bool(cmd, "singleBatch")? || limit < 0;
        let options = FindOptions {
            filter,
            sort,
            skip,
            limit,
            projection,
        };
        let docs = match self.client.find(&ns, options).await {
            Ok(docs) => docs,
            // Reading a collection that does not exist finds nothing.
            Err(ClientError::DatasetNotFound(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let mut docs: VecDeque<Document> = docs.into();
        let first_len = match batch_size {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None if single_batch => usize::MAX,
            None => DEFAULT_FIRST_BATCH,
        };
        let first = if first_len == 0 {
            Vec::new()
        } else {
            take_batch(&mut docs, Some(first_len))
        };
        let id = if docs.is_empty() || single_batch {
            0
        } else {
            self.cursors.lock().map_err(|_| poisoned())?.open(
                connection,
                ns.clone(),
                docs,
                Instant::now(),
            )?
        };
        Ok(doc! {"cursor": {"firstBatch": first, "id": id, "ns": ns}})
    }

    pub(super) fn get_more(&self, db: &str, cmd: &Document) -> Reply {
        let id = match cmd.get("getMore") {
            Some(v) => integral(v).ok_or_else(|| {
                CommandError::type_mismatch("getMore cursor id must be an integer")
            })?,
            None => return Err(CommandError::bad_value("getMore without a cursor id")),
        };
        let collection = match cmd.get("collection") {
            Some(Bson::String(c)) => c.as_str(),
            _ => {
                return Err(CommandError::new(
                    MISSING_FIELD,
                    "BSON field 'getMore.collection' is missing but a required field",
                ))
            }
        };
        let ns = namespace(db, collection)?;
        let batch_size = non_negative(cmd, "batchSize")?
            .filter(|&n| n > 0)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let (batch, id) = self.cursors.lock().map_err(|_| poisoned())?.get_more(
            id,
            &ns,
            batch_size,
            Instant::now(),
        )?;
        Ok(doc! {"cursor": {"nextBatch": batch, "id": id, "ns": ns}})
    }

    pub(super) fn kill_cursors(&self, db: &str, cmd: &Document) -> Reply {
        namespace(db, collection_of(cmd)?)?;
        let ids = match cmd.get("cursors") {
            Some(Bson::Array(ids)) => ids,
            _ => {
                return Err(CommandError::new(
                    MISSING_FIELD,
                    "BSON field 'killCursors.cursors' is missing but a required field",
                ))
            }
        };
        let (mut killed, mut not_found) = (Vec::new(), Vec::new());
        let mut cursors = self.cursors.lock().map_err(|_| poisoned())?;
        for id in ids {
            let id = integral(id)
                .ok_or_else(|| CommandError::type_mismatch("cursor ids must be integers"))?;
            if cursors.kill(id) {
                killed.push(Bson::Int64(id));
            } else {
                not_found.push(Bson::Int64(id));
            }
        }
        Ok(doc! {
            "cursorsKilled": killed,
            "cursorsNotFound": not_found,
            "cursorsAlive": [],
            "cursorsUnknown": [],
        })
    }

    pub(super) async fn count(&self, db: &str, cmd: &Document) -> Reply {
        let ns = namespace(db, collection_of(cmd)?)?;
        check_collation(cmd)?;
        let query = get_doc(cmd, "query")?.cloned().unwrap_or_default();
        let skip = non_negative(cmd, "skip")?.unwrap_or(0);
        // count takes |limit| as MongoDB does for a negative limit.
        let limit = get_i64(cmd, "limit")?.unwrap_or(0).unsigned_abs();
        let total = match self.client.count(&ns, &query).await {
            Ok(n) => n,
            Err(ClientError::DatasetNotFound(_)) => 0,
            Err(e) => return Err(e.into()),
        };
        let mut n = total.saturating_sub(skip);
        if limit > 0 {
            n = n.min(limit);
        }
        Ok(doc! {"n": n as i64})
    }
}
