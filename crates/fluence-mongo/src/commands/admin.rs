//! Handshake and server-information commands: answers that do not touch
//! datasets.

use bson::{doc, Bson, Document};

use std::time::Instant;

use super::args::truthy;
use super::{Reply, MAX_WIRE_VERSION, MAX_WRITE_BATCH_SIZE, MONGODB_VERSION};
use crate::error::*;
use crate::session::Session;
use crate::wire::{BSON_OBJECT_SIZE_MAX, MESSAGE_SIZE_MAX};

/// Every command the gateway answers, for `listCommands`.
const COMMANDS: &[(&str, &str)] = &[
    ("aggregate", "run an aggregation pipeline"),
    ("buildInfo", "server version and build"),
    ("collStats", "collection statistics"),
    (
        "connectionStatus",
        "the authenticated user of this connection",
    ),
    ("count", "count documents"),
    ("create", "create a collection"),
    (
        "createIndexes",
        "create indexes (encrypted eq, range and text indexes)",
    ),
    ("dbStats", "database statistics"),
    ("delete", "delete documents"),
    ("distinct", "distinct values of a field"),
    ("drop", "drop a collection"),
    ("dropDatabase", "drop every collection of a database"),
    ("dropIndexes", "drop indexes"),
    ("endSessions", "end logical sessions"),
    ("find", "query documents"),
    (
        "findAndModify",
        "update or remove one document and return it",
    ),
    ("getCmdLineOpts", "the gateway's command line"),
    (
        "getFreeMonitoringStatus",
        "free monitoring (always disabled)",
    ),
    ("getLog", "log messages (none are kept)"),
    ("getMore", "the next batch of a cursor"),
    ("getParameter", "server parameters"),
    ("hello", "handshake"),
    ("hostInfo", "the machine the gateway runs on"),
    ("insert", "insert documents"),
    ("isMaster", "legacy handshake"),
    ("killCursors", "close cursors"),
    ("listCollections", "collections of a database"),
    ("listCommands", "this list"),
    ("listDatabases", "databases"),
    ("listIndexes", "indexes of a collection"),
    ("logout", "end authentication on this connection"),
    ("ping", "liveness"),
    ("saslContinue", "SCRAM-SHA-256 authentication"),
    ("saslStart", "SCRAM-SHA-256 authentication"),
    ("serverStatus", "server statistics"),
    ("update", "update documents"),
    ("whatsmyuri", "this connection's address"),
];

pub(super) fn hello(name: &str, cmd: &Document, connection: i64) -> Document {
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

pub(super) fn build_info() -> Document {
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

pub(super) fn get_parameter(cmd: &Document) -> Reply {
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

pub(super) fn connection_status(session: &Session, cmd: &Document) -> Document {
    let (users, roles) = match &session.user {
        Some((user, db)) => (
            vec![Bson::Document(doc! {"user": user, "db": db})],
            // The one user may do everything the gateway offers.
            vec![Bson::Document(doc! {"role": "root", "db": "admin"})],
        ),
        None => (Vec::new(), Vec::new()),
    };
    let mut auth = doc! {"authenticatedUsers": users, "authenticatedUserRoles": roles};
    if cmd.get("showPrivileges").is_some_and(truthy) {
        auth.insert("authenticatedUserPrivileges", Vec::<Bson>::new());
    }
    doc! {"authInfo": auth}
}

pub(super) fn whats_my_uri(session: &Session) -> Document {
    doc! {"you": session.peer.to_string()}
}

/// The gateway keeps no server log to hand out: logs go to its own
/// output through `tracing`. The names mongosh and tools ask for answer
/// empty, as a server without warnings does.
pub(super) fn get_log(cmd: &Document) -> Reply {
    match cmd.get("getLog") {
        Some(Bson::String(name)) if name == "*" => {
            Ok(doc! {"names": ["global", "startupWarnings"]})
        }
        Some(Bson::String(name)) if name == "global" || name == "startupWarnings" => {
            Ok(doc! {"totalLinesWritten": 0, "log": []})
        }
        Some(Bson::String(name)) => Err(CommandError::bad_value(format!("No log named '{name}'"))),
        _ => Err(CommandError::type_mismatch(
            "Argument to getLog must be of type String",
        )),
    }
}

pub(super) fn host_info() -> Document {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as i32;
    doc! {
        "system": {
            "currentTime": bson::DateTime::now(),
            "hostname": hostname(),
            "cpuAddrSize": 64,
            "numCores": cores,
            "cpuArch": std::env::consts::ARCH,
            "numaEnabled": false,
        },
        "os": {"type": std::env::consts::OS, "name": std::env::consts::OS},
        "extra": {},
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// The gateway's arguments are not echoed (they may name key files);
/// `parsed` is empty.
pub(super) fn command_line_options() -> Document {
    doc! {"argv": ["fluence"], "parsed": {}}
}

pub(super) fn list_commands() -> Document {
    let mut commands = Document::new();
    for (name, help) in COMMANDS {
        let open = super::sasl::allowed_unauthenticated(name);
        commands.insert(
            *name,
            doc! {"help": *help, "requiresAuth": !open, "secondaryOk": true, "adminOnly": false},
        );
    }
    doc! {"commands": commands}
}

pub(super) fn free_monitoring_status() -> Document {
    doc! {"state": "disabled"}
}

pub(super) fn server_status(started: Instant, open: u64, total: u64) -> Document {
    let uptime = started.elapsed();
    doc! {
        "host": hostname(),
        "version": MONGODB_VERSION,
        "process": "fluence",
        "pid": i64::from(std::process::id()),
        "uptime": uptime.as_secs_f64(),
        "uptimeMillis": i64::try_from(uptime.as_millis()).unwrap_or(i64::MAX),
        "uptimeEstimate": i64::try_from(uptime.as_secs()).unwrap_or(i64::MAX),
        "localTime": bson::DateTime::now(),
        "connections": {
            "current": i64::try_from(open).unwrap_or(i64::MAX),
            "available": i64::try_from(crate::server::CONNECTIONS_MAX as u64 - open.min(crate::server::CONNECTIONS_MAX as u64)).unwrap_or(0),
            "totalCreated": i64::try_from(total).unwrap_or(i64::MAX),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
