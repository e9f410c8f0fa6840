//! The listener: one task per connection, at most [`CONNECTIONS_MAX`] at
//! once, each reading one message at a time and answering it before
//! reading the next (as a MongoDB server treats one connection).

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bson::Document;
use fluence_client::{Client, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::auth::Credentials;
use crate::commands::Gateway;
use crate::error::{CommandError, UNSUPPORTED_OP_QUERY_COMMAND};
use crate::session::Session;
use crate::wire::{
    self, Header, OpMsg, OpReply, Request, WireError, FLAG_MORE_TO_COME, HEADER_LEN, OP_MSG,
};

/// Connections served at once; more are accepted and closed at once, so a
/// flood of connections cannot exhaust memory (each may hold a message of
/// up to 48 MB while it is read).
pub const CONNECTIONS_MAX: usize = 128;
/// Time allowed to receive the rest of a message once its header arrived,
/// so a peer that announces a large message and then stalls does not hold
/// its buffer forever. Idle time between messages is not limited: drivers
/// keep pooled connections open and quiet.
const MESSAGE_READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause after an accept error such as running out of file descriptors,
/// instead of spinning on it.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// OP_REPLY responseFlags: AwaitCapable, which every server since 1.6 sets.
const REPLY_AWAIT_CAPABLE: u32 = 8;

/// How a gateway serves.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// With credentials, every command except the handshake, `ping`,
    /// `buildInfo` and authentication itself needs a connection
    /// authenticated with SCRAM-SHA-256 as this user (MongoDB error 13,
    /// `Unauthorized`, otherwise). Without, anyone who can connect is the
    /// owner: serve only on loopback then.
    pub credentials: Option<Credentials>,
}

/// Serves the MongoDB wire protocol on `listener` until `shutdown`
/// completes, answering with `client`'s view of the owner's datasets,
/// without authentication (see [`serve_with`]).
pub async fn serve<T, S>(
    listener: TcpListener,
    client: Arc<Client<T>>,
    shutdown: S,
) -> io::Result<()>
where
    T: Transport,
    S: Future<Output = ()> + Send,
{
    serve_with(listener, client, ServeOptions::default(), shutdown).await
}

/// Serves the MongoDB wire protocol on `listener` with `options` until
/// `shutdown` completes. Returns an error only when the listener itself
/// fails; connections that misbehave are closed on their own.
pub async fn serve_with<T, S>(
    listener: TcpListener,
    client: Arc<Client<T>>,
    options: ServeOptions,
    shutdown: S,
) -> io::Result<()>
where
    T: Transport,
    S: Future<Output = ()> + Send,
{
    let gateway = Arc::new(Gateway::new(client, options.credentials));
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let mut tasks = JoinSet::new();
    let mut next_connection: i64 = 0;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            // Reap finished connection tasks so the set does not grow.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) if transient(&e) => {
                        tracing::warn!(error = %e, "accept failed; retrying");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    tracing::warn!(%peer, "refusing connection: {CONNECTIONS_MAX} already open");
                    continue;
                };
                next_connection += 1;
                let id = next_connection;
                let gateway = Arc::clone(&gateway);
                tasks.spawn(async move {
                    let _permit = permit;
                    let _open = gateway.connection_opened();
                    let mut session = Session::new(id, peer);
                    match connection(&gateway, stream, &mut session).await {
                        Ok(()) => tracing::debug!(%peer, id, "connection closed"),
                        Err(e) => tracing::info!(%peer, id, error = %e, "connection dropped"),
                    }
                });
            }
        }
    }
    tasks.shutdown().await;
    Ok(())
}

/// Accept errors that concern one connection or a passing shortage, not
/// the listener.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
            | io::ErrorKind::OutOfMemory
    ) || matches!(e.raw_os_error(), Some(23 | 24 | 105)) // ENFILE, EMFILE, ENOBUFS
}

/// Why a connection was closed by the server.
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("framing: {0}")]
    Wire(#[from] WireError),
    #[error("peer stalled in the middle of a message")]
    Stalled,
    #[error("invalid message with moreToCome set: {0}")]
    UnanswerableError(WireError),
}

async fn connection<T: Transport>(
    gateway: &Gateway<T>,
    mut stream: TcpStream,
    session: &mut Session,
) -> Result<(), ConnectionError> {
    let id = session.id;
    stream.set_nodelay(true)?;
    let mut next_request_id: i32 = 0;
    loop {
        let mut header_bytes = [0u8; HEADER_LEN];
        match stream.read_exact(&mut header_bytes).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        // A bad length means the stream cannot be framed any more: the
        // connection is closed without reading (or allocating) the body.
        let header = Header::parse(&header_bytes)?;
        let body_len = header.body_len()?;
        let mut message = Vec::with_capacity(HEADER_LEN + body_len.min(64 * 1024));
        message.extend_from_slice(&header_bytes);
        // Reading through `take` grows the buffer only as bytes arrive, so
        // a peer announcing 48 MB and sending little costs little.
        let mut body = (&mut stream).take(body_len as u64);
        let n = tokio::time::timeout(MESSAGE_READ_TIMEOUT, body.read_to_end(&mut message))
            .await
            .map_err(|_| ConnectionError::Stalled)??;
        if n != body_len {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        next_request_id = next_request_id.wrapping_add(1);
        let reply = match wire::decode_request(&message) {
            Ok((_, Request::Msg(msg))) => {
                let more_to_come = msg.more_to_come();
                let reply = match msg.into_command() {
                    Ok(command) => gateway.run(session, &command).await,
                    Err(e) => CommandError::from(e).to_reply(),
                };
                if more_to_come {
                    continue;
                }
                op_msg_reply(next_request_id, header.request_id, reply)
            }
            Ok((_, Request::Query(query))) => {
                let reply = legacy_handshake(gateway, session, query).await;
                wire::encode_op_reply(
                    next_request_id,
                    header.request_id,
                    &OpReply {
                        response_flags: REPLY_AWAIT_CAPABLE,
                        cursor_id: 0,
                        starting_from: 0,
                        documents: vec![reply],
                    },
                )?
            }
            Err(e) => {
                // The whole message was read, so the stream is still in
                // step: answer with an error unless the client said it
                // will not read one.
                let flags = message
                    .get(HEADER_LEN..HEADER_LEN + 4)
                    .map(|f| u32::from_le_bytes([f[0], f[1], f[2], f[3]]));
                if header.op_code == OP_MSG && flags.is_some_and(|f| f & FLAG_MORE_TO_COME != 0) {
                    return Err(ConnectionError::UnanswerableError(e));
                }
                tracing::debug!(id, error = %e, "invalid message");
                op_msg_reply(
                    next_request_id,
                    header.request_id,
                    CommandError::from(e).to_reply(),
                )
            }
        };
        stream.write_all(&reply).await?;
    }
}

/// Encodes a command reply; a reply that cannot be encoded (it cannot
/// exceed the message limit, batches are capped) becomes an error reply.
fn op_msg_reply(request_id: i32, response_to: i32, body: Document) -> Vec<u8> {
    let encode = |body: Document| {
        wire::encode_op_msg(
            request_id,
            response_to,
            &OpMsg {
                flags: 0,
                body,
                sequences: Vec::new(),
            },
        )
    };
    match encode(body) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(error = %e, "reply could not be encoded");
            let fallback = CommandError::from(e).to_reply();
            encode(fallback).unwrap_or_default()
        }
    }
}

/// Answers an OP_QUERY. MongoDB 5.1+ accepts OP_QUERY only for the
/// handshake drivers send before they know the server speaks OP_MSG.
async fn legacy_handshake<T: Transport>(
    gateway: &Gateway<T>,
    session: &mut Session,
    query: wire::OpQuery,
) -> Document {
    let db = query.full_collection_name.strip_suffix(".$cmd");
    // Old drivers wrap the command as {$query: {...}, $readPreference: ...}.
    let mut command = match query
        .query
        .get("$query")
        .or_else(|| query.query.get("query"))
    {
        Some(bson::Bson::Document(inner)) => inner.clone(),
        _ => query.query,
    };
    let name = command.keys().next().cloned().unwrap_or_default();
    match (db, name.as_str()) {
        (Some(db), "isMaster" | "ismaster" | "hello") => {
            command.insert("$db", db);
            gateway.run(session, &command).await
        }
        _ => CommandError::new(
            UNSUPPORTED_OP_QUERY_COMMAND,
            format!(
                "Unsupported OP_QUERY command: {name}. The client driver may require an upgrade."
            ),
        )
        .to_reply(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_accept_errors() {
        assert!(transient(&io::Error::from_raw_os_error(24)));
        assert!(transient(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
        assert!(!transient(&io::Error::from(io::ErrorKind::InvalidInput)));
    }
}
