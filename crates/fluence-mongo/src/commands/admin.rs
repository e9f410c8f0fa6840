//! Handshake and server-information commands: answers that do not touch
//! datasets.

use bson::{doc, Bson, Document};

use super::args::truthy;
use super::{Reply, MAX_WIRE_VERSION, MAX_WRITE_BATCH_SIZE, MONGODB_VERSION};
use crate::error::*;
use crate::wire::{BSON_OBJECT_SIZE_MAX, MESSAGE_SIZE_MAX};

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

pub(super) fn connection_status(cmd: &Document) -> Document {
    let mut auth = doc! {"authenticatedUsers": [], "authenticatedUserRoles": []};
    if cmd.get("showPrivileges").is_some_and(truthy) {
        auth.insert("authenticatedUserPrivileges", Vec::<Bson>::new());
    }
    doc! {"authInfo": auth}
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
