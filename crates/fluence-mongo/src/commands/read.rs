//! Reading commands: find, aggregate, distinct, count, getMore, killCursors.

use std::time::Instant;

use bson::{doc, Bson, Document};
use fluence_client::query::aggregate::Pipeline;
use fluence_client::query::Distinct;
use fluence_client::{ClientError, FindOptions, FindStream, Transport};

use super::args::*;
use super::{collection_of, namespace, poisoned, Gateway, Reply};
use crate::cursors::BATCH_BYTES_MAX;
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
        // Without a sort the answer streams: node pages are read as
        // batches are asked for.
        let stream = match self.client.find_stream(&ns, options).await {
            Ok(stream) => stream,
            Err(ClientError::DatasetNotFound(_)) => FindStream::from_documents(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let first_len = match batch_size {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None if single_batch => usize::MAX,
            None => DEFAULT_FIRST_BATCH,
        };
        self.cursor_reply(connection, ns, stream, first_len, single_batch)
            .await
    }

    /// A find's answer; a collection that does not exist holds nothing.
    async fn find_or_nothing(
        &self,
        ns: &str,
        options: FindOptions,
    ) -> Result<Vec<Document>, CommandError> {
        match self.client.find(ns, options).await {
            Ok(docs) => Ok(docs),
            Err(ClientError::DatasetNotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// `{cursor: {firstBatch, id, ns}}` with the first `first_len`
    /// documents; the rest stay in a cursor for getMore.
    async fn cursor_reply(
        &self,
        connection: i64,
        ns: String,
        mut stream: FindStream<T>,
        first_len: usize,
        single_batch: bool,
    ) -> Reply {
        let first = if first_len == 0 {
            Vec::new()
        } else {
            stream.next_batch(first_len, BATCH_BYTES_MAX).await?
        };
        let id = if stream.is_exhausted() || single_batch {
            0
        } else {
            self.cursors.lock().map_err(|_| poisoned())?.open(
                connection,
                ns.clone(),
                stream,
                Instant::now(),
            )?
        };
        Ok(doc! {"cursor": {"firstBatch": first, "id": id, "ns": ns}})
    }

    pub(super) async fn aggregate(&self, connection: i64, db: &str, cmd: &Document) -> Reply {
        let collection = match cmd.get("aggregate") {
            Some(Bson::String(c)) => c.as_str(),
            Some(other) if integral(other) == Some(1) => {
                return Err(CommandError::not_implemented(
                    "aggregate on a whole database (aggregate: 1)",
                ))
            }
            Some(other) => {
                return Err(CommandError::new(
                    INVALID_NAMESPACE,
                    format!(
                        "Invalid aggregate namespace of type {:?}",
                        other.element_type()
                    ),
                ))
            }
            None => return Err(CommandError::bad_value("aggregate without a collection")),
        };
        let ns = namespace(db, collection)?;
        check_collation(cmd)?;
        if get_bool(cmd, "explain")? {
            return Err(CommandError::not_implemented("explain"));
        }
        if cmd.get("let").is_some_and(|v| !matches!(v, Bson::Null)) {
            return Err(CommandError::not_implemented(
                "aggregate with 'let' variables",
            ));
        }
        let stages = match cmd.get("pipeline") {
            Some(Bson::Array(stages)) => stages,
            Some(_) => {
                return Err(CommandError::type_mismatch(
                    "'pipeline' option must be specified as an array",
                ))
            }
            None => {
                return Err(CommandError::new(
                    MISSING_FIELD,
                    "BSON field 'aggregate.pipeline' is missing but a required field",
                ))
            }
        };
        let cursor = match cmd.get("cursor") {
            Some(Bson::Document(c)) => c,
            Some(_) => {
                return Err(CommandError::type_mismatch(
                    "cursor field must be missing or an object",
                ))
            }
            None => {
                return Err(CommandError::new(
                    FAILED_TO_PARSE,
                    "The 'cursor' option is required, except for aggregate with the explain \
                     argument",
                ))
            }
        };
        let batch_size = non_negative(cursor, "batchSize")?;
        let pipeline = Pipeline::parse(stages).map_err(CommandError::from)?;
        // The leading $match/$sort/$skip/$limit is a find, planned over the
        // encrypted indexes; the other stages run here.
        let lead = pipeline.leading();
        let options = FindOptions {
            filter: lead.filter.clone(),
            sort: lead.sort.clone(),
            skip: lead.skip,
            limit: lead
                .limit
                .map_or(0, |l| i64::try_from(l).unwrap_or(i64::MAX)),
            projection: None,
        };
        let docs = self.find_or_nothing(&ns, options).await?;
        let out = pipeline
            .run_after_leading(docs)
            .map_err(CommandError::from)?;
        let first_len = batch_size.map_or(DEFAULT_FIRST_BATCH, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        });
        self.cursor_reply(
            connection,
            ns,
            FindStream::from_documents(out),
            first_len,
            false,
        )
        .await
    }

    pub(super) async fn distinct(&self, db: &str, cmd: &Document) -> Reply {
        let ns = namespace(db, collection_of(cmd)?)?;
        check_collation(cmd)?;
        let key = match cmd.get("key") {
            Some(Bson::String(key)) => key,
            Some(_) => {
                return Err(CommandError::type_mismatch(
                    "BSON field 'distinct.key' is the wrong type, expected type 'string'",
                ))
            }
            None => {
                return Err(CommandError::new(
                    MISSING_FIELD,
                    "BSON field 'distinct.key' is missing but a required field",
                ))
            }
        };
        if key.is_empty() || key.split('.').any(|p| p.is_empty() || p.starts_with('$')) {
            return Err(CommandError::bad_value(format!(
                "distinct key '{key}' is not a valid field path"
            )));
        }
        let filter = get_doc(cmd, "query")?.cloned().unwrap_or_default();
        let docs = self
            .find_or_nothing(
                &ns,
                FindOptions {
                    filter,
                    ..FindOptions::default()
                },
            )
            .await?;
        let path: Vec<String> = key.split('.').map(str::to_string).collect();
        let mut distinct = Distinct::new();
        for doc in &docs {
            distinct.add(doc, &path);
        }
        let values = distinct.finish();
        let reply = doc! {"values": values};
        // MongoDB answers in one document, so the values must fit one.
        if reply.to_vec().map_or(usize::MAX, |b| b.len()) > crate::wire::BSON_OBJECT_SIZE_MAX {
            return Err(CommandError::new(17217, "distinct too big, 16mb cap"));
        }
        Ok(reply)
    }

    pub(super) async fn get_more(&self, db: &str, cmd: &Document) -> Reply {
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
        // The cursor leaves the registry while its next batch is read, so
        // no lock is held across the node's answer.
        let mut stream =
            self.cursors
                .lock()
                .map_err(|_| poisoned())?
                .check_out(id, &ns, Instant::now())?;
        let batch = match stream
            .next_batch(batch_size.unwrap_or(usize::MAX), BATCH_BYTES_MAX)
            .await
        {
            Ok(batch) => batch,
            Err(e) => {
                self.cursors.lock().map_err(|_| poisoned())?.discard(id);
                return Err(e.into());
            }
        };
        let id = self
            .cursors
            .lock()
            .map_err(|_| poisoned())?
            .check_in(id, stream, Instant::now());
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
        Ok(doc! {"n": super::count_value(n)})
    }
}
