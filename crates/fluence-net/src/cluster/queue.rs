//! A bounded queue with two priorities, bounded both in items and in
//! bytes: the inbound queue of one (dataset, channel) and the outbound
//! queue of one peer. A full queue refuses what arrives (the caller drops
//! it); nothing ever waits for room, so a slow consumer or peer costs at
//! most the queue's bounds, never unbounded memory or a stalled sender.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// What [`BoundedQueue::push`] did with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Accepted,
    /// Over the item or byte bound: the item was dropped.
    Full,
    /// The queue was closed: the item was dropped.
    Closed,
}

struct State<T> {
    high: VecDeque<(T, usize)>,
    low: VecDeque<(T, usize)>,
    bytes: usize,
    closed: bool,
}

/// The queue. One consumer; any number of producers.
pub struct BoundedQueue<T> {
    state: Mutex<State<T>>,
    ready: Notify,
    items_max: usize,
    bytes_max: usize,
}

impl<T> BoundedQueue<T> {
    /// At most `items_max` items and `bytes_max` bytes, except that an
    /// empty queue accepts one item of any size (every message the
    /// protocol allows must be able to pass).
    pub fn new(items_max: usize, bytes_max: usize) -> Self {
        assert!(items_max > 0, "a queue holds at least one item");
        BoundedQueue {
            state: Mutex::new(State {
                high: VecDeque::new(),
                low: VecDeque::new(),
                bytes: 0,
                closed: false,
            }),
            ready: Notify::new(),
            items_max,
            bytes_max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Every update is a push or pop with its counter: a panic elsewhere
        // cannot leave it half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `item` of `len` bytes; `priority` items are taken first.
    pub fn push(&self, item: T, len: usize, priority: bool) -> Pushed {
        let mut state = self.lock();
        if state.closed {
            return Pushed::Closed;
        }
        let items = state.high.len() + state.low.len();
        if items > 0
            && (items >= self.items_max || state.bytes.saturating_add(len) > self.bytes_max)
        {
            return Pushed::Full;
        }
        state.bytes += len;
        if priority {
            state.high.push_back((item, len));
        } else {
            state.low.push_back((item, len));
        }
        drop(state);
        self.ready.notify_one();
        Pushed::Accepted
    }

    /// The next item if one is queued.
    pub fn try_pop(&self) -> Option<T> {
        let mut state = self.lock();
        let (item, len) = match state.high.pop_front() {
            Some(entry) => entry,
            None => state.low.pop_front()?,
        };
        state.bytes -= len;
        Some(item)
    }

    /// The next item, waiting for one; `None` once the queue is closed
    /// (what was queued before is dropped with it).
    pub async fn pop(&self) -> Option<T> {
        loop {
            if self.lock().closed {
                return None;
            }
            if let Some(item) = self.try_pop() {
                return Some(item);
            }
            // `notify_one` keeps a permit when nobody waits, so a push
            // between the check above and this wait is not missed.
            self.ready.notified().await;
        }
    }

    /// Drops everything queued.
    pub fn clear(&self) {
        let mut state = self.lock();
        state.high.clear();
        state.low.clear();
        state.bytes = 0;
    }

    /// Drops everything queued and refuses what comes after; a waiting
    /// [`BoundedQueue::pop`] returns `None`.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.high.clear();
        state.low.clear();
        state.bytes = 0;
        drop(state);
        self.ready.notify_waiters();
        self.ready.notify_one();
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        let state = self.lock();
        state.high.len() + state.low.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_by_items_and_bytes_but_always_takes_one() {
        let queue = BoundedQueue::new(3, 100);
        assert_eq!(queue.push("big", 500, false), Pushed::Accepted);
        assert_eq!(queue.push("small", 1, false), Pushed::Full);
        assert_eq!(queue.try_pop(), Some("big"));
        for i in 0..3 {
            assert_eq!(queue.push("x", 10 + i, false), Pushed::Accepted);
        }
        assert_eq!(queue.push("fourth", 1, false), Pushed::Full);
        assert_eq!(queue.len(), 3);
        queue.clear();
        assert_eq!(queue.len(), 0);
        assert_eq!(queue.push("again", 100, false), Pushed::Accepted);
        assert_eq!(queue.push("over", 1, false), Pushed::Full);
    }

    #[test]
    fn priority_items_go_first() {
        let queue = BoundedQueue::new(10, 1000);
        queue.push(1, 1, false);
        queue.push(2, 1, true);
        queue.push(3, 1, false);
        queue.push(4, 1, true);
        let order: Vec<_> = std::iter::from_fn(|| queue.try_pop()).collect();
        assert_eq!(order, vec![2, 4, 1, 3]);
    }

    #[tokio::test]
    async fn pop_waits_for_a_push_and_ends_on_close() {
        let queue = std::sync::Arc::new(BoundedQueue::new(4, 100));
        let consumer = {
            let queue = std::sync::Arc::clone(&queue);
            tokio::spawn(async move {
                let first = queue.pop().await;
                let second = queue.pop().await;
                (first, second)
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        queue.push(7, 1, false);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        queue.close();
        assert_eq!(consumer.await.unwrap(), (Some(7), None));
        assert_eq!(queue.push(8, 1, false), Pushed::Closed);
    }
}
