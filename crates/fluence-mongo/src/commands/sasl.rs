//! Authentication commands: `saslStart`, `saslContinue`, the
//! `speculativeAuthenticate` and `saslSupportedMechs` fields of `hello`,
//! and `logout`. The SCRAM arithmetic is in [`crate::auth`]; this module
//! moves its messages in and out of BSON and keeps the per-connection
//! state.
//!
//! Every failure answers MongoDB's `AuthenticationFailed` (18) with the
//! same message, so a client cannot tell an unknown user from a wrong
//! password; the reason is logged.

use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, Document};
use fluence_client::Transport;

use super::args::{get_doc, truthy};
use super::{Gateway, Reply};
use crate::auth::{self, AuthError, MECHANISM, SASL_PAYLOAD_MAX};
use crate::error::*;
use crate::session::{SaslState, Session};

/// MongoDB numbers conversations per connection; there is one at a time.
const CONVERSATION_ID: i32 = 1;

fn failed(session: &Session, reason: impl std::fmt::Display) -> CommandError {
    tracing::info!(peer = %session.peer, id = session.id, %reason, "authentication failed");
    CommandError::new(AUTHENTICATION_FAILED, "Authentication failed.")
}

fn payload_of(cmd: &Document) -> Result<Vec<u8>, CommandError> {
    let bytes = match cmd.get("payload") {
        Some(Bson::Binary(b)) => b.bytes.clone(),
        Some(Bson::String(s)) => s.as_bytes().to_vec(),
        Some(_) => {
            return Err(CommandError::type_mismatch(
                "SASL payload must be binary data or a string",
            ))
        }
        None => {
            return Err(CommandError::new(
                MISSING_FIELD,
                "BSON field 'payload' is missing but a required field",
            ))
        }
    };
    if bytes.len() > SASL_PAYLOAD_MAX {
        return Err(CommandError::bad_value(format!(
            "SASL payload larger than {SASL_PAYLOAD_MAX} bytes"
        )));
    }
    Ok(bytes)
}

fn binary(bytes: Vec<u8>) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes,
    })
}

impl<T: Transport> Gateway<T> {
    /// `saslStart` (also the body of `speculativeAuthenticate`, whose
    /// database is given in its `db` field).
    pub(super) fn sasl_start(&self, session: &mut Session, db: &str, cmd: &Document) -> Reply {
        session.sasl = SaslState::Idle;
        let mechanism = match cmd.get("mechanism") {
            Some(Bson::String(m)) => m.as_str(),
            _ => {
                return Err(CommandError::new(
                    MISSING_FIELD,
                    "BSON field 'saslStart.mechanism' is missing but a required field",
                ))
            }
        };
        if mechanism != MECHANISM {
            return Err(CommandError::new(
                MECHANISM_UNAVAILABLE,
                format!("Received authentication for mechanism {mechanism} which is not enabled"),
            ));
        }
        let payload = payload_of(cmd)?;
        let Some(credentials) = &self.credentials else {
            return Err(failed(session, "no user is configured"));
        };
        let (conversation, server_first) =
            auth::start(credentials, &payload).map_err(|e| failed(session, e))?;
        let skip_empty_exchange = get_doc(cmd, "options")?
            .and_then(|o| o.get("skipEmptyExchange"))
            .is_some_and(truthy);
        session.sasl = SaslState::AwaitingProof {
            conversation,
            db: db.to_string(),
            skip_empty_exchange,
        };
        Ok(doc! {
            "conversationId": CONVERSATION_ID,
            "done": false,
            "payload": binary(server_first),
        })
    }

    pub(super) fn sasl_continue(&self, session: &mut Session, cmd: &Document) -> Reply {
        let payload = payload_of(cmd)?;
        match std::mem::take(&mut session.sasl) {
            SaslState::Idle => Err(failed(session, "no conversation in progress")),
            SaslState::AwaitingProof {
                conversation,
                db,
                skip_empty_exchange,
            } => {
                let Some(credentials) = &self.credentials else {
                    return Err(failed(session, "no user is configured"));
                };
                let server_final = auth::finish(credentials, &conversation, &payload)
                    .map_err(|e: AuthError| failed(session, e))?;
                session.user = Some((credentials.user().to_string(), db));
                tracing::info!(peer = %session.peer, id = session.id, "authenticated");
                if !skip_empty_exchange {
                    session.sasl = SaslState::AwaitingEmpty;
                }
                Ok(doc! {
                    "conversationId": CONVERSATION_ID,
                    "done": skip_empty_exchange,
                    "payload": binary(server_final),
                })
            }
            SaslState::AwaitingEmpty => {
                if !payload.is_empty() {
                    return Err(failed(session, "unexpected payload after the proof"));
                }
                Ok(doc! {
                    "conversationId": CONVERSATION_ID,
                    "done": true,
                    "payload": binary(Vec::new()),
                })
            }
        }
    }

    /// The authentication fields a `hello` reply gains.
    pub(super) fn hello_auth(&self, session: &mut Session, cmd: &Document, reply: &mut Document) {
        if self.credentials.is_none() {
            return;
        }
        // "db.user": the mechanisms the user may use, so the driver picks
        // SCRAM-SHA-256 without guessing. Unknown users get no answer.
        if let Some(Bson::String(name)) = cmd.get("saslSupportedMechs") {
            let user = name.split_once('.').map_or(name.as_str(), |(_, u)| u);
            if self.credentials.as_ref().is_some_and(|c| c.user() == user) {
                reply.insert("saslSupportedMechs", vec![MECHANISM]);
            }
        }
        if let Some(Bson::Document(speculative)) = cmd.get("speculativeAuthenticate") {
            if speculative.contains_key("saslStart")
                && speculative.get_str("mechanism").ok() == Some(MECHANISM)
            {
                let db = speculative.get_str("db").unwrap_or("admin").to_string();
                // A failed speculative start is not an error: the reply
                // just lacks the field and the driver authenticates the
                // ordinary way (and fails there, visibly).
                if let Ok(answer) = self.sasl_start(session, &db, speculative) {
                    reply.insert("speculativeAuthenticate", answer);
                }
            }
        }
    }

    pub(super) fn logout(&self, session: &mut Session) -> Reply {
        session.user = None;
        session.sasl = SaslState::Idle;
        Ok(Document::new())
    }
}

/// Commands a connection may run before it authenticates: the handshake,
/// authentication itself, and answers that reveal nothing stored.
pub(super) fn allowed_unauthenticated(name: &str) -> bool {
    matches!(
        name,
        "hello"
            | "isMaster"
            | "ismaster"
            | "saslStart"
            | "saslContinue"
            | "ping"
            | "buildInfo"
            | "buildinfo"
            | "logout"
            | "endSessions"
            | "connectionStatus"
    )
}
