//! Command dispatch: the first key of the command document names the
//! command (with MongoDB's spelling and aliases), `$db` the database.
//!
//! A MongoDB database is a namespace of datasets: collection `c` of
//! database `d` is the Fluence dataset `"d.c"`. Collections are created on
//! first insert or upsert, as in MongoDB, with no encrypted indexes.

mod admin;
mod args;
mod catalog;
mod duplicates;
mod index_catalog;
mod index_spec;
mod indexes;
mod read;
mod sasl;
mod write;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bson::{Bson, Document};
use fluence_client::{Client, ReadOptions, ReadQuorum, Transport};

use crate::auth::Credentials;
use crate::cursors::Cursors;
use crate::error::*;
use crate::session::Session;
use admin::{build_info, get_parameter, hello};

/// The MongoDB server version announced; drivers enable features by wire
/// version, tools print this.
pub const MONGODB_VERSION: &str = "7.0.0";
pub const MAX_WIRE_VERSION: i32 = 17;
pub const MAX_WRITE_BATCH_SIZE: usize = 100_000;
/// Longest dataset name Fluence accepts (`fluence_client::descriptor`).
const DATASET_NAME_LEN_MAX: usize = 120;

/// State shared by all connections of one `serve`.
pub struct Gateway<T: Transport> {
    client: Arc<Client<T>>,
    cursors: Mutex<Cursors<T>>,
    /// The one user; `None` serves without authentication (loopback only).
    credentials: Option<Credentials>,
    /// Held by `createIndexes` and `dropIndexes` from reading a
    /// collection's indexes to writing its index catalog.
    index_changes: tokio::sync::Mutex<()>,
    started: Instant,
    connections_open: AtomicU64,
    connections_total: AtomicU64,
}

/// Counts a connection as open while it lives.
pub struct ConnectionGuard<'a> {
    open: &'a AtomicU64,
}

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

type Reply = Result<Document, CommandError>;

impl<T: Transport> Gateway<T> {
    pub fn new(client: Arc<Client<T>>, credentials: Option<Credentials>) -> Gateway<T> {
        Gateway {
            client,
            cursors: Mutex::new(Cursors::default()),
            credentials,
            index_changes: tokio::sync::Mutex::new(()),
            started: Instant::now(),
            connections_open: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
        }
    }

    /// Registers a new connection for `serverStatus`.
    pub fn connection_opened(&self) -> ConnectionGuard<'_> {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard {
            open: &self.connections_open,
        }
    }

    /// Runs one command and returns its reply document, `ok: 1` or the
    /// MongoDB error shape.
    pub async fn run(&self, session: &mut Session, command: &Document) -> Document {
        match self.dispatch(session, command).await {
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

    async fn dispatch(&self, session: &mut Session, cmd: &Document) -> Reply {
        let connection = session.id;
        let name = cmd
            .keys()
            .next()
            .ok_or_else(|| CommandError::bad_value("empty command document"))?
            .as_str();
        // Fields drivers add to every command are accepted and ignored:
        // lsid (no multi-statement sessions to track), $clusterTime (no
        // cluster to gossip about), $readPreference (the gateway is the one
        // server), apiVersion, and options without meaning for one local
        // gateway (writeConcern: every write is acknowledged once
        // finalized; maxTimeMS, comment). readConcern chooses the read
        // quorum (`read_options`). Transactions would change what a write
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
        if self.credentials.is_some()
            && !session.is_authenticated()
            && !sasl::allowed_unauthenticated(name)
        {
            return Err(CommandError::new(
                UNAUTHORIZED,
                format!("Command {name} requires authentication"),
            ));
        }
        let reads = read_options(cmd)?;
        reads
            .scope(self.run_command(session, connection, name, db, cmd))
            .await
    }

    async fn run_command(
        &self,
        session: &mut Session,
        connection: i64,
        name: &str,
        db: &str,
        cmd: &Document,
    ) -> Reply {
        match name {
            "hello" | "isMaster" | "ismaster" => {
                let mut reply = hello(name, cmd, connection);
                self.hello_auth(session, cmd, &mut reply);
                Ok(reply)
            }
            "saslStart" => self.sasl_start(session, db, cmd),
            "saslContinue" => self.sasl_continue(session, cmd),
            "logout" => self.logout(session),
            "buildInfo" | "buildinfo" => Ok(build_info()),
            "getParameter" => get_parameter(cmd),
            "ping" | "endSessions" | "refreshSessions" | "killAllSessions" | "killSessions" => {
                Ok(Document::new())
            }
            "connectionStatus" => Ok(admin::connection_status(session, cmd)),
            "whatsmyuri" => Ok(admin::whats_my_uri(session)),
            "getLog" => admin::get_log(cmd),
            "hostInfo" => Ok(admin::host_info()),
            "getCmdLineOpts" => Ok(admin::command_line_options()),
            "listCommands" => Ok(admin::list_commands()),
            "getFreeMonitoringStatus" => Ok(admin::free_monitoring_status()),
            "serverStatus" => Ok(admin::server_status(
                self.started,
                self.connections_open.load(Ordering::Relaxed),
                self.connections_total.load(Ordering::Relaxed),
            )),
            "dbStats" | "dbstats" => self.db_stats(db, cmd).await,
            "collStats" | "collstats" => self.coll_stats(db, cmd).await,
            "listDatabases" => self.list_databases(cmd).await,
            "listCollections" => self.list_collections(db, cmd).await,
            "create" => self.create(db, cmd).await,
            "drop" => self.drop(db, cmd).await,
            "dropDatabase" => self.drop_database(db).await,
            "insert" => self.insert(db, cmd).await,
            "find" => self.find(connection, db, cmd).await,
            "getMore" => self.get_more(db, cmd).await,
            "killCursors" => self.kill_cursors(db, cmd),
            "update" => self.update(db, cmd).await,
            "delete" => self.delete(db, cmd).await,
            "count" => self.count(db, cmd).await,
            "aggregate" => self.aggregate(connection, db, cmd).await,
            "distinct" => self.distinct(db, cmd).await,
            "listIndexes" => self.list_indexes(db, cmd).await,
            "createIndexes" => self.create_indexes(db, cmd).await,
            "dropIndexes" | "deleteIndexes" => self.drop_indexes(db, cmd).await,
            "findAndModify" | "findandmodify" => self.find_and_modify(db, cmd).await,
            "commitTransaction" | "abortTransaction" => Err(transactions_refused()),
            other => Err(command_not_found(other)),
        }
    }
}

/// `readConcern` as a read quorum: `local` and `available` (or none)
/// read at the gateway's default, `majority` from 2f + 1 members that
/// must agree, `linearizable` from every member. `snapshot` (one state
/// for a whole multi-statement session) is not offered.
fn read_options(cmd: &Document) -> Result<ReadOptions, CommandError> {
    let level = match cmd.get("readConcern") {
        None => return Ok(ReadOptions::default()),
        Some(Bson::Document(concern)) => match concern.get("level") {
            None => return Ok(ReadOptions::default()),
            Some(Bson::String(level)) => level.as_str(),
            Some(other) => {
                return Err(CommandError::type_mismatch(format!(
                    "readConcern.level must be a string, not {:?}",
                    other.element_type()
                )))
            }
        },
        Some(other) => {
            return Err(CommandError::type_mismatch(format!(
                "readConcern must be an object, not {:?}",
                other.element_type()
            )))
        }
    };
    let quorum = match level {
        "local" | "available" => None,
        "majority" => Some(ReadQuorum::Majority),
        "linearizable" => Some(ReadQuorum::All),
        "snapshot" => return Err(CommandError::not_implemented("readConcern level snapshot")),
        other => {
            return Err(CommandError::bad_value(format!(
                "invalid read concern level {other:?}"
            )))
        }
    };
    Ok(ReadOptions {
        quorum,
        proof: None,
    })
}

fn command_not_found(name: &str) -> CommandError {
    CommandError::new(COMMAND_NOT_FOUND, format!("no such command: '{name}'"))
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
/// Fluence's naming rules. The index catalog's collection is the
/// gateway's own.
fn namespace(db: &str, collection: &str) -> Result<String, CommandError> {
    check_db(db)?;
    if collection.is_empty() || collection.contains('$') || collection.contains('\0') {
        return Err(CommandError::new(
            INVALID_NAMESPACE,
            format!("Invalid collection name: '{collection}'"),
        ));
    }
    if collection == index_catalog::CATALOG_COLLECTION {
        return Err(CommandError::new(
            INVALID_NAMESPACE,
            format!("Invalid collection name: '{collection}' holds the gateway's index names"),
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

/// A count in a reply as mongod appends it: int32 when it fits (drivers
/// and `mongosh` scripts compare `n`/`nModified` with plain numbers),
/// int64 beyond.
fn count_value(n: u64) -> Bson {
    i32::try_from(n).map_or_else(
        |_| Bson::Int64(i64::try_from(n).unwrap_or(i64::MAX)),
        Bson::Int32,
    )
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
        for c in ["", "a$b", "a\0", "system.indexes"] {
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
    fn read_concern_levels_choose_the_read_quorum() {
        let quorum = |cmd: Document| read_options(&cmd).map(|o| o.quorum);
        assert_eq!(quorum(bson::doc! {"find": "c"}).unwrap(), None);
        for level in ["local", "available"] {
            let cmd = bson::doc! {"find": "c", "readConcern": {"level": level}};
            assert_eq!(quorum(cmd).unwrap(), None, "{level}");
        }
        let majority = bson::doc! {"find": "c", "readConcern": {"level": "majority"}};
        assert_eq!(quorum(majority).unwrap(), Some(ReadQuorum::Majority));
        let linearizable = bson::doc! {"find": "c", "readConcern": {"level": "linearizable"}};
        assert_eq!(quorum(linearizable).unwrap(), Some(ReadQuorum::All));
        assert_eq!(quorum(bson::doc! {"readConcern": {}}).unwrap(), None);
        let snapshot = bson::doc! {"readConcern": {"level": "snapshot"}};
        assert_eq!(quorum(snapshot).unwrap_err().code, NOT_IMPLEMENTED);
        let unknown = bson::doc! {"readConcern": {"level": "eventual"}};
        assert_eq!(quorum(unknown).unwrap_err().code, BAD_VALUE);
        let wrong_type = bson::doc! {"readConcern": "majority"};
        assert_eq!(quorum(wrong_type).unwrap_err().code, TYPE_MISMATCH);
    }
}
