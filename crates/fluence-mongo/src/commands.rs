//! Command dispatch: the first key of the command document names the
//! command (with MongoDB's spelling and aliases), `$db` the database.
//!
//! A MongoDB database is a namespace of datasets: collection `c` of
//! database `d` is the Fluence dataset `"d.c"`. Collections are created on
//! first insert or upsert, as in MongoDB, with no encrypted indexes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bson::{doc, oid::ObjectId, Bson, Document};
use fluence_client::query::{self, EvalContext};
use fluence_client::{Client, ClientError, FindOptions, Transport};

use crate::cursors::{take_batch, Cursors};
use crate::error::*;
use crate::wire::{BSON_OBJECT_SIZE_MAX, MESSAGE_SIZE_MAX};

/// The MongoDB server version announced; drivers enable features by wire
/// version, tools print this.
pub const MONGODB_VERSION: &str = "7.0.0";
pub const MAX_WIRE_VERSION: i32 = 17;
pub const MAX_WRITE_BATCH_SIZE: usize = 100_000;
/// Documents in a find's first batch when the client gives no batchSize,
/// as MongoDB.
const DEFAULT_FIRST_BATCH: usize = 101;
/// Longest dataset name Fluence accepts (`fluence_client::descriptor`).
const DATASET_NAME_LEN_MAX: usize = 120;

/// State shared by all connections of one `serve`.
pub struct Gateway<T: Transport> {
    client: Arc<Client<T>>,
    cursors: Mutex<Cursors>,
}

type Reply = Result<Document, CommandError>;

impl<T: Transport> Gateway<T> {
    pub fn new(client: Arc<Client<T>>) -> Gateway<T> {
        Gateway {
            client,
            cursors: Mutex::new(Cursors::default()),
        }
    }

    /// Runs one command and returns its reply document, `ok: 1` or the
    /// MongoDB error shape.
    pub async fn run(&self, connection: i64, command: &Document) -> Document {
        match self.dispatch(connection, command).await {
            Ok(mut reply) => {
                reply.insert("ok", 1.0);
                reply
            }
            Err(error) => {
                tracing::debug!(%error, "command failed");
                error.to_reply()
            }
        }
    }

    async fn dispatch(&self, connection: i64, cmd: &Document) -> Reply {
        let name = cmd
            .keys()
            .next()
            .ok_or_else(|| CommandError::bad_value("empty command document"))?
            .as_str();
        // Fields drivers add to every command are accepted and ignored:
        // lsid (no multi-statement sessions to track), $clusterTime (no
        // cluster), $readPreference (one server), apiVersion, and options
        // without meaning for one local gateway (writeConcern, readConcern,
        // maxTimeMS, comment). Transactions would change what a write
        // means, so they are refused instead.
        if cmd.contains_key("startTransaction") || cmd.contains_key("autocommit") {
            return Err(transactions_refused());
        }
        let db = match cmd.get("$db") {
            Some(Bson::String(db)) => db.as_str(),
            Some(other) => {
                return Err(CommandError::type_mismatch(format!(
                    "$db must be a string, not {:?}",
                    other.element_type()
                )))
            }
            None => {
                return Err(CommandError::new(
                    MISSING_DB,
                    "OP_MSG requests require a $db argument",
                ))
            }
        };
        match name {
            "hello" | "isMaster" | "ismaster" => Ok(hello(name, cmd, connection)),
            "buildInfo" | "buildinfo" => Ok(build_info()),
            "getParameter" => get_parameter(cmd),
            "ping" | "endSessions" => Ok(Document::new()),
            "connectionStatus" => Ok(connection_status(cmd)),
            "listDatabases" => self.list_databases(cmd).await,
            "listCollections" => self.list_collections(db, cmd).await,
            "create" => self.create(db, cmd).await,
            "drop" => self.drop(db, cmd).await,
            "dropDatabase" => self.drop_database(db).await,
            "insert" => self.insert(db, cmd).await,
            "find" => self.find(connection, db, cmd).await,
            "getMore" => self.get_more(db, cmd),
            "killCursors" => self.kill_cursors(db, cmd),
            "update" => self.update(db, cmd).await,
            "delete" => self.delete(db, cmd).await,
            "count" => self.count(db, cmd).await,
            "commitTransaction" | "abortTransaction" => Err(transactions_refused()),
            other => Err(CommandError::new(
                COMMAND_NOT_FOUND,
                format!("no such command: '{other}'"),
            )),
        }
    }

    async fn list_databases(&self, cmd: &Document) -> Reply {
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

    async fn collection_names(&self, db: &str) -> Result<Vec<String>, CommandError> {
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

    async fn list_collections(&self, db: &str, cmd: &Document) -> Reply {
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

    async fn create(&self, db: &str, cmd: &Document) -> Reply {
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

    async fn drop(&self, db: &str, cmd: &Document) -> Reply {
        let ns = namespace(db, collection_of(cmd)?)?;
        match self.client.drop_dataset(&ns).await {
            Ok(()) => Ok(doc! {"ns": ns, "nIndexesWas": 1}),
            // MongoDB 7.0 answers ok for a collection that does not exist.
            Err(ClientError::DatasetNotFound(_)) => Ok(Document::new()),
            Err(e) => Err(e.into()),
        }
    }

    async fn drop_database(&self, db: &str) -> Reply {
        for name in self.collection_names(db).await? {
            match self.client.drop_dataset(&format!("{db}.{name}")).await {
                Ok(()) | Err(ClientError::DatasetNotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(doc! {"dropped": db})
    }

    /// Creates the dataset for `ns` if it does not exist (first insert or
    /// upsert into a collection creates it in MongoDB).
    async fn ensure_dataset(&self, ns: &str) -> Result<(), CommandError> {
        match self.client.create_dataset(ns, Vec::new()).await {
            Ok(_) | Err(ClientError::DatasetExists(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn insert(&self, db: &str, cmd: &Document) -> Reply {
        let ns = namespace(db, collection_of(cmd)?)?;
        let ordered = get_bool_or(cmd, "ordered", true)?;
        let docs = write_batch(cmd, "insert", "documents")?
            .iter()
            .map(|d| match d {
                Bson::Document(d) => Ok(with_id(d)),
                other => Err(CommandError::type_mismatch(format!(
                    "insert documents must be objects, not {:?}",
                    other.element_type()
                ))),
            })
            .collect::<Result<Vec<Document>, _>>()?;
        self.ensure_dataset(&ns).await?;
        let mut n = 0usize;
        let mut write_errors = Vec::new();
        let mut start = 0usize;
        while start < docs.len() {
            match self.client.insert(&ns, docs[start..].to_vec()).await {
                Ok(result) => {
                    n += result.inserted_ids.len();
                    break;
                }
                Err(ClientError::DuplicateKey { inserted, .. }) => {
                    let inserted = usize::try_from(inserted).unwrap_or(usize::MAX);
                    let index = start.saturating_add(inserted);
                    n += inserted;
                    let id = docs
                        .get(index)
                        .and_then(|d| d.get("_id"))
                        .cloned()
                        .unwrap_or(Bson::Null);
                    let error = CommandError::new(
                        DUPLICATE_KEY,
                        format!(
                            "E11000 duplicate key error collection: {ns} index: _id_ dup key: \
                             {{ _id: {id} }}"
                        ),
                    );
                    let mut entry = error.to_write_error(index);
                    entry.insert("keyPattern", doc! {"_id": 1});
                    entry.insert("keyValue", doc! {"_id": id});
                    write_errors.push(Bson::Document(entry));
                    if ordered {
                        break;
                    }
                    start = index + 1;
                }
                // A batch-level failure (a document too large, the node
                // unreachable) applies to the whole command.
                Err(e) if n == 0 && write_errors.is_empty() => return Err(e.into()),
                Err(e) => {
                    write_errors.push(Bson::Document(CommandError::from(e).to_write_error(start)));
                    break;
                }
            }
        }
        let mut reply = doc! {"n": n as i64};
        if !write_errors.is_empty() {
            reply.insert("writeErrors", write_errors);
        }
        Ok(reply)
    }

    async fn find(&self, connection: i64, db: &str, cmd: &Document) -> Reply {
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

    fn get_more(&self, db: &str, cmd: &Document) -> Reply {
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

    fn kill_cursors(&self, db: &str, cmd: &Document) -> Reply {
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

    async fn update(&self, db: &str, cmd: &Document) -> Reply {
        let ns = namespace(db, collection_of(cmd)?)?;
        let ordered = get_bool_or(cmd, "ordered", true)?;
        let statements = write_batch(cmd, "update", "updates")?;
        let (mut n, mut modified) = (0u64, 0u64);
        let (mut upserted, mut write_errors) = (Vec::new(), Vec::new());
        for (index, statement) in statements.iter().enumerate() {
            match self.update_one(&ns, statement).await {
                Ok(result) => {
                    n += result.matched;
                    modified += result.modified;
                    if let Some(id) = result.upserted_id {
                        n += 1;
                        upserted.push(Bson::Document(doc! {"index": index as i64, "_id": id}));
                    }
                }
                Err(error) => {
                    write_errors.push(Bson::Document(error.to_write_error(index)));
                    if ordered {
                        break;
                    }
                }
            }
        }
        let mut reply = doc! {"n": n as i64, "nModified": modified as i64};
        if !upserted.is_empty() {
            reply.insert("upserted", upserted);
        }
        if !write_errors.is_empty() {
            reply.insert("writeErrors", write_errors);
        }
        Ok(reply)
    }

    async fn update_one(
        &self,
        ns: &str,
        statement: &Bson,
    ) -> Result<fluence_client::UpdateResult, CommandError> {
        let statement = statement
            .as_document()
            .ok_or_else(|| CommandError::type_mismatch("update statements must be objects"))?;
        check_collation(statement)?;
        if statement
            .get("arrayFilters")
            .is_some_and(|a| !matches!(a, Bson::Array(v) if v.is_empty()))
        {
            return Err(CommandError::not_implemented("arrayFilters"));
        }
        let q = required_doc(statement, "update.updates", "q")?;
        let u = match statement.get("u") {
            Some(Bson::Document(u)) => u,
            Some(Bson::Array(_)) => {
                return Err(CommandError::not_implemented("a pipeline-style update"))
            }
            Some(_) => return Err(CommandError::type_mismatch("update 'u' must be an object")),
            None => {
                return Err(CommandError::new(
                    MISSING_FIELD,
                    "BSON field 'update.updates.u' is missing but a required field",
                ))
            }
        };
        let multi = get_bool(statement, "multi")?;
        let upsert = get_bool(statement, "upsert")?;
        if multi && u.keys().next().is_some_and(|k| !k.starts_with('$')) {
            return Err(CommandError::new(
                FAILED_TO_PARSE,
                "multi update is not supported for replacement-style update",
            ));
        }
        match self.client.update(ns, q, u, multi, upsert).await {
            Err(ClientError::DatasetNotFound(_)) if upsert => {
                self.ensure_dataset(ns).await?;
                Ok(self.client.update(ns, q, u, multi, upsert).await?)
            }
            Err(ClientError::DatasetNotFound(_)) => Ok(fluence_client::UpdateResult::default()),
            Err(ClientError::DuplicateKey { id, .. }) => Err(CommandError::new(
                DUPLICATE_KEY,
                format!("E11000 duplicate key error collection: {ns} index: _id_ dup key: {{ _id: {id} }}"),
            )),
            other => Ok(other?),
        }
    }

    async fn delete(&self, db: &str, cmd: &Document) -> Reply {
        let ns = namespace(db, collection_of(cmd)?)?;
        let ordered = get_bool_or(cmd, "ordered", true)?;
        let statements = write_batch(cmd, "delete", "deletes")?;
        let mut n = 0u64;
        let mut write_errors = Vec::new();
        for (index, statement) in statements.iter().enumerate() {
            match self.delete_one(&ns, statement).await {
                Ok(deleted) => n += deleted,
                Err(error) => {
                    write_errors.push(Bson::Document(error.to_write_error(index)));
                    if ordered {
                        break;
                    }
                }
            }
        }
        let mut reply = doc! {"n": n as i64};
        if !write_errors.is_empty() {
            reply.insert("writeErrors", write_errors);
        }
        Ok(reply)
    }

    async fn delete_one(&self, ns: &str, statement: &Bson) -> Result<u64, CommandError> {
        let statement = statement
            .as_document()
            .ok_or_else(|| CommandError::type_mismatch("delete statements must be objects"))?;
        check_collation(statement)?;
        let q = required_doc(statement, "delete.deletes", "q")?;
        let multi = match statement.get("limit").map(integral) {
            Some(Some(0)) => true,
            Some(Some(1)) => false,
            Some(_) => {
                return Err(CommandError::new(
                    FAILED_TO_PARSE,
                    "The limit field in delete objects must be 0 or 1",
                ))
            }
            None => {
                return Err(CommandError::new(
                    MISSING_FIELD,
                    "BSON field 'delete.deletes.limit' is missing but a required field",
                ))
            }
        };
        match self.client.delete(ns, q, multi).await {
            Err(ClientError::DatasetNotFound(_)) => Ok(0),
            other => Ok(other?),
        }
    }

    async fn count(&self, db: &str, cmd: &Document) -> Reply {
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

fn transactions_refused() -> CommandError {
    CommandError::new(
        ILLEGAL_OPERATION,
        "transactions are not supported by Fluence (the gateway is a standalone server)",
    )
}

fn poisoned() -> CommandError {
    CommandError::new(INTERNAL_ERROR, "cursor registry is unavailable")
}

fn hello(name: &str, cmd: &Document, connection: i64) -> Document {
    let mut reply = Document::new();
    if cmd.get("helloOk").is_some_and(truthy) {
        reply.insert("helloOk", true);
    }
    // `hello` answers isWritablePrimary; the legacy spellings `ismaster`.
    if name == "hello" {
        reply.insert("isWritablePrimary", true);
    } else {
        reply.insert("ismaster", true);
    }
    reply.extend(doc! {
        "maxBsonObjectSize": BSON_OBJECT_SIZE_MAX as i32,
        "maxMessageSizeBytes": MESSAGE_SIZE_MAX as i32,
        "maxWriteBatchSize": MAX_WRITE_BATCH_SIZE as i32,
        "localTime": bson::DateTime::now(),
        "logicalSessionTimeoutMinutes": 30,
        "connectionId": connection,
        "minWireVersion": 0,
        "maxWireVersion": MAX_WIRE_VERSION,
        "readOnly": false,
    });
    reply
}

fn build_info() -> Document {
    doc! {
        "version": MONGODB_VERSION,
        "gitVersion": "fluence",
        "versionArray": [7, 0, 0, 0],
        "fluenceVersion": env!("CARGO_PKG_VERSION"),
        "bits": 64,
        "debug": false,
        "maxBsonObjectSize": BSON_OBJECT_SIZE_MAX as i32,
        "javascriptEngine": "none",
        "storageEngines": ["fluence"],
        "modules": [],
        "openssl": {"running": "none"},
        "buildEnvironment": {},
    }
}

fn get_parameter(cmd: &Document) -> Reply {
    let fcv = doc! {"version": "7.0"};
    let all = matches!(cmd.get("getParameter"), Some(Bson::String(s)) if s == "*");
    let mut reply = Document::new();
    // The only parameter drivers and tools ask for; others are unknown.
    if all || cmd.contains_key("featureCompatibilityVersion") {
        reply.insert("featureCompatibilityVersion", fcv);
    }
    if reply.is_empty() {
        return Err(CommandError::new(INVALID_OPTIONS, "no option found to get"));
    }
    Ok(reply)
}

fn connection_status(cmd: &Document) -> Document {
    let mut auth = doc! {"authenticatedUsers": [], "authenticatedUserRoles": []};
    if cmd.get("showPrivileges").is_some_and(truthy) {
        auth.insert("authenticatedUserPrivileges", Vec::<Bson>::new());
    }
    doc! {"authInfo": auth}
}

/// A name filter for listDatabases / listCollections, evaluated with the
/// query engine over the entry documents the command returns.
struct EntryFilter(query::Filter);

impl EntryFilter {
    fn matches(&self, entry: &Document) -> bool {
        query::eval(&self.0, entry, &EvalContext::without_text())
    }
}

fn filter_of(cmd: &Document, key: &str) -> Result<Option<EntryFilter>, CommandError> {
    match get_doc(cmd, key)? {
        Some(f) if !f.is_empty() => Ok(Some(EntryFilter(
            query::parse_filter(f).map_err(|e| CommandError::from(ClientError::from(e)))?,
        ))),
        _ => Ok(None),
    }
}

/// MongoDB's database name rules (a database is a dataset-name prefix, so
/// it may not contain the '.' that separates it from the collection).
fn check_db(db: &str) -> Result<(), CommandError> {
    if db.is_empty()
        || db
            .chars()
            .any(|c| matches!(c, '.' | '/' | '\\' | ' ' | '"' | '$' | '\0'))
    {
        return Err(CommandError::new(
            INVALID_NAMESPACE,
            format!("Invalid database name: '{db}'"),
        ));
    }
    Ok(())
}

/// The dataset name of `db.collection`, checked against MongoDB's and
/// Fluence's naming rules.
fn namespace(db: &str, collection: &str) -> Result<String, CommandError> {
    check_db(db)?;
    if collection.is_empty() || collection.contains('$') || collection.contains('\0') {
        return Err(CommandError::new(
            INVALID_NAMESPACE,
            format!("Invalid collection name: '{collection}'"),
        ));
    }
    let ns = format!("{db}.{collection}");
    if ns.len() > DATASET_NAME_LEN_MAX {
        return Err(CommandError::new(
            INVALID_NAMESPACE,
            format!("Fully qualified namespace {ns} is longer than {DATASET_NAME_LEN_MAX} bytes"),
        ));
    }
    Ok(ns)
}

/// The collection named by the command's first field.
fn collection_of(cmd: &Document) -> Result<&str, CommandError> {
    match cmd.iter().next() {
        Some((_, Bson::String(c))) => Ok(c),
        Some((name, other)) => Err(CommandError::new(
            INVALID_NAMESPACE,
            format!(
                "collection name has invalid type {:?} in {name}",
                other.element_type()
            ),
        )),
        None => Err(CommandError::bad_value("empty command document")),
    }
}

/// The statements of a write command, between 1 and maxWriteBatchSize.
fn write_batch<'a>(
    cmd: &'a Document,
    command: &str,
    key: &str,
) -> Result<&'a Vec<Bson>, CommandError> {
    let items = match cmd.get(key) {
        Some(Bson::Array(items)) => items,
        Some(_) => {
            return Err(CommandError::type_mismatch(format!(
                "{command}.{key} must be an array"
            )))
        }
        None => {
            return Err(CommandError::new(
                MISSING_FIELD,
                format!("BSON field '{command}.{key}' is missing but a required field"),
            ))
        }
    };
    if items.is_empty() || items.len() > MAX_WRITE_BATCH_SIZE {
        return Err(CommandError::new(
            INVALID_LENGTH,
            format!(
                "Write batch sizes must be between 1 and {MAX_WRITE_BATCH_SIZE}. Got {} operations.",
                items.len()
            ),
        ));
    }
    Ok(items)
}

/// The document with an `_id` (a new ObjectId first, as MongoDB places it)
/// so that a duplicate can be reported with its key value.
fn with_id(doc: &Document) -> Document {
    if doc.contains_key("_id") {
        return doc.clone();
    }
    let mut out = doc! {"_id": ObjectId::new()};
    out.extend(doc.clone());
    out
}

fn check_collation(cmd: &Document) -> Result<(), CommandError> {
    match cmd.get("collation") {
        None => Ok(()),
        Some(Bson::Document(c)) if c.is_empty() || c.get_str("locale").ok() == Some("simple") => {
            Ok(())
        }
        Some(_) => Err(CommandError::not_implemented(
            "a collation other than simple",
        )),
    }
}

fn truthy(value: &Bson) -> bool {
    match value {
        Bson::Boolean(b) => *b,
        Bson::Int32(i) => *i != 0,
        Bson::Int64(i) => *i != 0,
        Bson::Double(d) => *d != 0.0,
        Bson::Null | Bson::Undefined => false,
        _ => true,
    }
}

fn get_bool(cmd: &Document, key: &str) -> Result<bool, CommandError> {
    get_bool_or(cmd, key, false)
}

fn get_bool_or(cmd: &Document, key: &str, default: bool) -> Result<bool, CommandError> {
    match cmd.get(key) {
        None | Some(Bson::Null) => Ok(default),
        Some(v @ (Bson::Boolean(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_))) => {
            Ok(truthy(v))
        }
        Some(other) => Err(CommandError::type_mismatch(format!(
            "BSON field '{key}' is the wrong type '{:?}', expected type 'bool'",
            other.element_type()
        ))),
    }
}

/// An integer given as int32, int64 or an integral double.
fn integral(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(d) if d.fract() == 0.0 && d.abs() < 9.0e18 => Some(*d as i64),
        _ => None,
    }
}

fn get_i64(cmd: &Document, key: &str) -> Result<Option<i64>, CommandError> {
    match cmd.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(v) => integral(v).map(Some).ok_or_else(|| {
            CommandError::type_mismatch(format!("BSON field '{key}' must be an integer"))
        }),
    }
}

fn non_negative(cmd: &Document, key: &str) -> Result<Option<u64>, CommandError> {
    match get_i64(cmd, key)? {
        Some(n) if n < 0 => Err(CommandError::bad_value(format!(
            "BSON field '{key}' value must be >= 0, actual value '{n}'"
        ))),
        other => Ok(other.map(|n| n as u64)),
    }
}

fn get_doc<'a>(cmd: &'a Document, key: &str) -> Result<Option<&'a Document>, CommandError> {
    match cmd.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Document(d)) => Ok(Some(d)),
        Some(other) => Err(CommandError::type_mismatch(format!(
            "BSON field '{key}' is the wrong type '{:?}', expected type 'object'",
            other.element_type()
        ))),
    }
}

fn required_doc<'a>(
    cmd: &'a Document,
    parent: &str,
    key: &str,
) -> Result<&'a Document, CommandError> {
    get_doc(cmd, key)?.ok_or_else(|| {
        CommandError::new(
            MISSING_FIELD,
            format!("BSON field '{parent}.{key}' is missing but a required field"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_follow_mongodb_rules() {
        assert_eq!(
            namespace("shop", "orders.2024").unwrap(),
            "shop.orders.2024"
        );
        for db in ["", "a.b", "a/b", "a b", "$x", "a\0"] {
            assert_eq!(
                namespace(db, "c").unwrap_err().code,
                INVALID_NAMESPACE,
                "{db:?}"
            );
        }
        for c in ["", "a$b", "a\0"] {
            assert_eq!(
                namespace("d", c).unwrap_err().code,
                INVALID_NAMESPACE,
                "{c:?}"
            );
        }
        assert_eq!(
            namespace("d", &"c".repeat(200)).unwrap_err().code,
            INVALID_NAMESPACE
        );
    }

    #[test]
    fn with_id_puts_a_new_id_first() {
        let d = with_id(&doc! {"a": 1});
        assert_eq!(d.keys().next().map(String::as_str), Some("_id"));
        assert_eq!(with_id(&doc! {"a": 1, "_id": 5}), doc! {"a": 1, "_id": 5});
    }

    #[test]
    fn option_parsing_is_typed() {
        assert_eq!(
            get_bool(&doc! {"x": "yes"}, "x").unwrap_err().code,
            TYPE_MISMATCH
        );
        assert!(get_bool(&doc! {"x": 1}, "x").unwrap());
        assert_eq!(
            get_i64(&doc! {"x": 2.5}, "x").unwrap_err().code,
            TYPE_MISMATCH
        );
        assert_eq!(get_i64(&doc! {"x": 3.0}, "x").unwrap(), Some(3));
        assert_eq!(
            non_negative(&doc! {"x": -1}, "x").unwrap_err().code,
            BAD_VALUE
        );
        assert_eq!(
            write_batch(&doc! {"d": []}, "insert", "d")
                .unwrap_err()
                .code,
            INVALID_LENGTH
        );
        assert_eq!(
            write_batch(&doc! {}, "insert", "d").unwrap_err().code,
            MISSING_FIELD
        );
    }

    #[test]
    fn get_parameter_answers_fcv_only() {
        let reply = get_parameter(
            &doc! {"getParameter": 1, "featureCompatibilityVersion": 1, "$db": "admin"},
        )
        .unwrap();
        assert_eq!(
            reply,
            doc! {"featureCompatibilityVersion": {"version": "7.0"}}
        );
        assert_eq!(
            get_parameter(&doc! {"getParameter": 1, "nope": 1})
                .unwrap_err()
                .code,
            INVALID_OPTIONS
        );
    }
}
