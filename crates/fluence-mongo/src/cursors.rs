//! Open cursors: the rest of a find's or an aggregate's answer, held until
//! getMore drains it, killCursors drops it, or it sits idle too long.
//!
//! A cursor holds a [`FindStream`]: an unsorted find reads node pages only
//! as getMore asks for them, holding at most one decrypted page; a sorted
//! find or an aggregation holds its remaining answer, at most
//! [`CURSOR_BYTES_MAX`] of it.
//!
//! The registry is shared by all connections rather than kept per
//! connection: drivers pool connections and may send a getMore on a
//! different connection from the find that opened the cursor. State stays
//! bounded anyway: each connection may hold [`CURSORS_PER_CONNECTION_MAX`]
//! open cursors, all connections together [`CURSORS_MAX`], and a cursor
//! unused for [`CURSOR_IDLE_TIMEOUT`] is dropped (as MongoDB's
//! `cursorTimeoutMillis`, 10 minutes by default).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fluence_client::{FindStream, Transport};

use crate::error::{CommandError, CURSOR_NOT_FOUND, OPERATION_FAILED, UNAUTHORIZED};

pub const CURSORS_PER_CONNECTION_MAX: usize = 64;
pub const CURSORS_MAX: usize = 1024;
pub const CURSOR_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Bytes of documents per batch, as MongoDB caps a batch at 16 MiB so a
/// reply always fits a message.
pub const BATCH_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Bytes of not yet returned documents one cursor may hold between
/// getMores (a sorted answer or an aggregation's output). MongoDB bounds
/// in-memory sorts at 100 MiB; a larger answer must be narrowed or read
/// without a sort.
pub const CURSOR_BYTES_MAX: usize = 256 * 1024 * 1024;
/// MongoDB's `QueryExceededMemoryLimitNoDiskUseAllowed`.
const EXCEEDED_MEMORY_LIMIT: i32 = 292;

struct Cursor<T: Transport> {
    ns: String,
    /// `None` while a getMore is reading from it.
    stream: Option<FindStream<T>>,
    connection: i64,
    last_used: Instant,
}

pub struct Cursors<T: Transport> {
    open: HashMap<i64, Cursor<T>>,
}

impl<T: Transport> Default for Cursors<T> {
    fn default() -> Self {
        Cursors {
            open: HashMap::new(),
        }
    }
}

impl<T: Transport> Cursors<T> {
    fn expire(&mut self, now: Instant) {
        self.open
            .retain(|_, c| now.duration_since(c.last_used) < CURSOR_IDLE_TIMEOUT);
    }

    /// Keeps the rest of an answer and returns a fresh random, positive,
    /// non-zero id (0 means "no cursor" on the wire).
    pub fn open(
        &mut self,
        connection: i64,
        ns: String,
        stream: FindStream<T>,
        now: Instant,
    ) -> Result<i64, CommandError> {
        let held = stream.buffered_bytes();
        if held > CURSOR_BYTES_MAX {
            return Err(CommandError::new(
                EXCEEDED_MEMORY_LIMIT,
                format!(
                    "the rest of this answer is {held} bytes, above the {CURSOR_BYTES_MAX} bytes a \
                     cursor may hold; narrow the query, or drop the sort so it can stream"
                ),
            ));
        }
        self.expire(now);
        if self.open.len() >= CURSORS_MAX {
            return Err(CommandError::new(
                OPERATION_FAILED,
                format!("too many open cursors (maximum {CURSORS_MAX}); exhaust or kill some"),
            ));
        }
        let mine = self
            .open
            .values()
            .filter(|c| c.connection == connection)
            .count();
        if mine >= CURSORS_PER_CONNECTION_MAX {
            return Err(CommandError::new(
                OPERATION_FAILED,
                format!(
                    "too many open cursors on this connection (maximum \
                     {CURSORS_PER_CONNECTION_MAX}); exhaust or kill some"
                ),
            ));
        }
        let id = loop {
            // Random ids keep one client from guessing another's cursors
            // and make a stale id after a restart unlikely to hit.
            let id = rand::random::<i64>() & i64::MAX;
            if id != 0 && !self.open.contains_key(&id) {
                break id;
            }
        };
        self.open.insert(
            id,
            Cursor {
                ns,
                stream: Some(stream),
                connection,
                last_used: now,
            },
        );
        Ok(id)
    }

    /// Takes cursor `id` on namespace `ns` out for a getMore; give it back
    /// with [`Cursors::check_in`].
    pub fn check_out(
        &mut self,
        id: i64,
        ns: &str,
        now: Instant,
    ) -> Result<FindStream<T>, CommandError> {
        self.expire(now);
        let cursor = self.open.get_mut(&id).ok_or_else(|| {
            CommandError::new(CURSOR_NOT_FOUND, format!("cursor id {id} not found"))
        })?;
        if cursor.ns != ns {
            return Err(CommandError::new(
                UNAUTHORIZED,
                format!(
                    "Requested getMore on namespace '{ns}', but cursor belongs to a different \
                     namespace {}",
                    cursor.ns
                ),
            ));
        }
        cursor.last_used = now;
        cursor.stream.take().ok_or_else(|| {
            CommandError::new(
                OPERATION_FAILED,
                format!("cursor id {id} is already in use by another getMore"),
            )
        })
    }

    /// Returns a checked-out cursor; drops it when its answer is
    /// exhausted (or it was killed meanwhile). The id to report.
    pub fn check_in(&mut self, id: i64, stream: FindStream<T>, now: Instant) -> i64 {
        if stream.is_exhausted() {
            self.open.remove(&id);
            return 0;
        }
        match self.open.get_mut(&id) {
            Some(cursor) => {
                cursor.stream = Some(stream);
                cursor.last_used = now;
                id
            }
            None => 0,
        }
    }

    /// Drops cursor `id` after a failed getMore.
    pub fn discard(&mut self, id: i64) {
        self.open.remove(&id);
    }

    /// Drops cursor `id`; false if it was not open.
    pub fn kill(&mut self, id: i64) -> bool {
        self.open.remove(&id).is_some()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, Document};
    use fluence_client::ClientError;
    use fluence_proto::{Request, Response};

    /// Cursors over materialised answers never call the node.
    #[derive(Clone)]
    struct NoNode;

    impl Transport for NoNode {
        async fn call(&self, _: &Request) -> Result<Response, ClientError> {
            Err(ClientError::Unavailable("no node in this test".into()))
        }
    }

    fn stream(n: i32) -> FindStream<NoNode> {
        FindStream::from_documents((0..n).map(|i| doc! {"i": i}).collect::<Vec<Document>>())
    }

    #[tokio::test]
    async fn pages_then_closes() {
        let mut cursors = Cursors::default();
        let now = Instant::now();
        let id = cursors.open(1, "d.c".into(), stream(5), now).unwrap();
        assert!(id > 0);
        let mut s = cursors.check_out(id, "d.c", now).unwrap();
        // In use: a second getMore is refused, not served twice.
        assert_eq!(
            cursors.check_out(id, "d.c", now).unwrap_err().code,
            OPERATION_FAILED
        );
        assert_eq!(s.next_batch(2, BATCH_BYTES_MAX).await.unwrap().len(), 2);
        assert_eq!(cursors.check_in(id, s, now), id);
        let mut s = cursors.check_out(id, "d.c", now).unwrap();
        assert_eq!(s.next_batch(10, BATCH_BYTES_MAX).await.unwrap().len(), 3);
        assert_eq!(cursors.check_in(id, s, now), 0);
        assert_eq!(
            cursors.check_out(id, "d.c", now).unwrap_err().code,
            CURSOR_NOT_FOUND
        );
    }

    #[test]
    fn wrong_namespace_is_refused() {
        let mut cursors = Cursors::default();
        let now = Instant::now();
        let id = cursors.open(1, "d.c".into(), stream(3), now).unwrap();
        assert_eq!(
            cursors.check_out(id, "d.other", now).unwrap_err().code,
            UNAUTHORIZED
        );
        assert!(cursors.kill(id));
        assert!(!cursors.kill(id));
    }

    #[test]
    fn per_connection_and_idle_bounds() {
        let mut cursors = Cursors::default();
        let now = Instant::now();
        for _ in 0..CURSORS_PER_CONNECTION_MAX {
            cursors.open(1, "d.c".into(), stream(2), now).unwrap();
        }
        assert_eq!(
            cursors
                .open(1, "d.c".into(), stream(2), now)
                .unwrap_err()
                .code,
            OPERATION_FAILED
        );
        // Another connection still may.
        cursors.open(2, "d.c".into(), stream(2), now).unwrap();
        // After the idle timeout all are gone and connection 1 may again.
        let later = now + CURSOR_IDLE_TIMEOUT;
        cursors.open(1, "d.c".into(), stream(2), later).unwrap();
        assert_eq!(cursors.len(), 1);
    }

    #[tokio::test]
    async fn batches_respect_the_byte_cap_and_cursors_their_memory_bound() {
        let big = "x".repeat(6 * 1024 * 1024);
        let mut s: FindStream<NoNode> =
            FindStream::from_documents((0..4).map(|_| doc! {"s": big.clone()}).collect());
        assert_eq!(
            s.next_batch(usize::MAX, BATCH_BYTES_MAX)
                .await
                .unwrap()
                .len(),
            2
        );
        assert_eq!(s.next_batch(1, BATCH_BYTES_MAX).await.unwrap().len(), 1);
        let mut huge: FindStream<NoNode> = FindStream::from_documents(
            (0..2)
                .map(|_| doc! {"s": "y".repeat(17 * 1024 * 1024)})
                .collect(),
        );
        // One over-cap document still goes out alone.
        assert_eq!(
            huge.next_batch(usize::MAX, BATCH_BYTES_MAX)
                .await
                .unwrap()
                .len(),
            1
        );
        let too_much: FindStream<NoNode> = FindStream::from_documents(
            (0..17)
                .map(|_| doc! {"s": "z".repeat(16 * 1024 * 1024)})
                .collect(),
        );
        let mut cursors = Cursors::default();
        assert_eq!(
            cursors
                .open(1, "d.c".into(), too_much, Instant::now())
                .unwrap_err()
                .code,
            292
        );
    }
}
