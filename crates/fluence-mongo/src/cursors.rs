//! Open cursors: the rest of a find's answer, held until getMore drains it,
//! killCursors drops it, or it sits idle too long.
//!
//! The registry is shared by all connections rather than kept per
//! connection: drivers pool connections and may send a getMore on a
//! different connection from the find that opened the cursor. State stays
//! bounded anyway: each connection may hold [`CURSORS_PER_CONNECTION_MAX`]
//! open cursors, all connections together [`CURSORS_MAX`], and a cursor
//! unused for [`CURSOR_IDLE_TIMEOUT`] is dropped (as MongoDB's
//! `cursorTimeoutMillis`, 10 minutes by default).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bson::Document;

use crate::error::{CommandError, CURSOR_NOT_FOUND, OPERATION_FAILED, UNAUTHORIZED};

pub const CURSORS_PER_CONNECTION_MAX: usize = 64;
pub const CURSORS_MAX: usize = 1024;
pub const CURSOR_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Bytes of documents per batch, as MongoDB caps a batch at 16 MiB so a
/// reply always fits a message.
pub const BATCH_BYTES_MAX: usize = 16 * 1024 * 1024;

struct Cursor {
    ns: String,
    docs: VecDeque<Document>,
    connection: i64,
    last_used: Instant,
}

#[derive(Default)]
pub struct Cursors {
    open: HashMap<i64, Cursor>,
}

impl Cursors {
    fn expire(&mut self, now: Instant) {
        self.open
            .retain(|_, c| now.duration_since(c.last_used) < CURSOR_IDLE_TIMEOUT);
    }

    /// Stores the remaining documents of a query and returns a fresh
    /// random, positive, non-zero id (0 means "no cursor" on the wire).
    pub fn open(
        &mut self,
        connection: i64,
        ns: String,
        docs: VecDeque<Document>,
        now: Instant,
    ) -> Result<i64, CommandError> {
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
                docs,
                connection,
                last_used: now,
            },
        );
        Ok(id)
    }

    /// The next batch of cursor `id` on namespace `ns`, and the id to report
    /// (0 once the cursor is exhausted and removed).
    pub fn get_more(
        &mut self,
        id: i64,
        ns: &str,
        batch_size: Option<usize>,
        now: Instant,
    ) -> Result<(Vec<Document>, i64), CommandError> {
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
        let batch = take_batch(&mut cursor.docs, batch_size);
        if cursor.docs.is_empty() {
            self.open.remove(&id);
            return Ok((batch, 0));
        }
        Ok((batch, id))
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

/// Takes up to `limit` documents (no count limit when `None`) and at most
/// [`BATCH_BYTES_MAX`] bytes of them, but always at least one document when
/// any remain, so a cursor always makes progress.
pub fn take_batch(docs: &mut VecDeque<Document>, limit: Option<usize>) -> Vec<Document> {
    let mut batch = Vec::new();
    let mut bytes = 0usize;
    while let Some(doc) = docs.front() {
        if limit.is_some_and(|l| batch.len() >= l) {
            break;
        }
        // Documents came from the store through the client, which bounds
        // them at 16 MiB; measuring means serialising once more.
        let size = doc.to_vec().map(|v| v.len()).unwrap_or(0);
        if !batch.is_empty() && bytes + size > BATCH_BYTES_MAX {
            break;
        }
        bytes += size;
        if let Some(doc) = docs.pop_front() {
            batch.push(doc);
        }
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn docs(n: i32) -> VecDeque<Document> {
        (0..n).map(|i| doc! {"i": i}).collect()
    }

    #[test]
    fn pages_then_closes() {
        let mut cursors = Cursors::default();
        let now = Instant::now();
        let id = cursors.open(1, "d.c".into(), docs(5), now).unwrap();
        assert!(id > 0);
        let (batch, next) = cursors.get_more(id, "d.c", Some(2), now).unwrap();
        assert_eq!((batch.len(), next), (2, id));
        let (batch, next) = cursors.get_more(id, "d.c", None, now).unwrap();
        assert_eq!((batch.len(), next), (3, 0));
        assert_eq!(
            cursors.get_more(id, "d.c", None, now).unwrap_err().code,
            CURSOR_NOT_FOUND
        );
    }

    #[test]
    fn wrong_namespace_is_refused() {
        let mut cursors = Cursors::default();
        let now = Instant::now();
        let id = cursors.open(1, "d.c".into(), docs(3), now).unwrap();
        assert_eq!(
            cursors.get_more(id, "d.other", None, now).unwrap_err().code,
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
            cursors.open(1, "d.c".into(), docs(2), now).unwrap();
        }
        assert_eq!(
            cursors
                .open(1, "d.c".into(), docs(2), now)
                .unwrap_err()
                .code,
            OPERATION_FAILED
        );
        // Another connection still may.
        cursors.open(2, "d.c".into(), docs(2), now).unwrap();
        // After the idle timeout all are gone and connection 1 may again.
        let later = now + CURSOR_IDLE_TIMEOUT;
        cursors.open(1, "d.c".into(), docs(2), later).unwrap();
        assert_eq!(cursors.len(), 1);
    }

    #[test]
    fn batches_respect_the_byte_cap() {
        let big = "x".repeat(6 * 1024 * 1024);
        let mut queue: VecDeque<Document> = (0..4).map(|_| doc! {"s": big.clone()}).collect();
        assert_eq!(take_batch(&mut queue, None).len(), 2);
        assert_eq!(take_batch(&mut queue, Some(1)).len(), 1);
        let mut huge: VecDeque<Document> = (0..2)
            .map(|_| doc! {"s": "y".repeat(17 * 1024 * 1024)})
            .collect();
        // One over-cap document still goes out alone.
        assert_eq!(take_batch(&mut huge, None).len(), 1);
    }
}
