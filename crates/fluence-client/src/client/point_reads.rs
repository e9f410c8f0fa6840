//! Concurrent point reads of one dataset share node requests.
//!
//! A lookup by `_id` is a `Find` with a [`Plan::Ids`] plan. Each request to
//! the node costs far more in framing, transport encryption, system calls
//! and thread hand-offs than the lookup itself, and under load (a MongoDB
//! driver's connection pool, YCSB's read workloads) many lookups of the same
//! dataset are waiting at once. So at most [`LEADERS_MAX`] point-read
//! requests per dataset and schema are in flight; a lookup that arrives
//! while they are busy queues, and when one finishes, one of the queued
//! lookups becomes the next *leader* and sends the ids of every queued
//! lookup (up to [`BATCH_IDS_MAX`]) as one request. Nothing waits on a
//! timer: with no concurrency a lookup goes out at once, as before.
//!
//! Each lookup receives exactly the documents of its own ids, in document id
//! order, as its own request would have returned them (the node answers an
//! `Ids` plan in document id order). When the shared answer is not one whole
//! page (a page cut short by the node's size limit) or is an error that
//! cannot be handed to every lookup, each lookup sends its own request
//! instead, so the batching never changes an answer. A lookup whose caller
//! goes away (a dropped future) never strands the others: a leader that is
//! dropped hands its place to the next queued lookup, and the lookups it
//! carried send their own requests.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

use fluence_proto::{DatasetId, DocEntry, DocId, Hash32, Plan, Request, Response};
use tokio::sync::oneshot;

use crate::error::ClientError;
use crate::reads::ReadChoice;

/// Point-read requests per dataset and schema in flight at once: one being
/// answered by the node while the next is being prepared or decrypted.
pub(crate) const LEADERS_MAX: usize = 2;
/// Ids per shared request. Well below the protocol's fan-out limit; a batch
/// of 1 KiB documents this large is about a quarter of a megabyte.
pub(crate) const BATCH_IDS_MAX: usize = 256;

/// What lookups share: requests for one dataset under one index schema,
/// verified the same way (read quorum, proofs).
type LaneKey = (DatasetId, Hash32, ReadChoice);

/// Every lane, shared with the [`Leadership`]s handed out, which must be
/// able to hand their lane over wherever they are dropped.
type Lanes = Arc<Mutex<HashMap<LaneKey, Lane>>>;

/// The coalescer of one client (see the module docs).
#[derive(Default)]
pub(crate) struct PointReads {
    lanes: Lanes,
}

#[derive(Default)]
struct Lane {
    /// Requests of this lane in flight.
    leaders: usize,
    /// Lookups waiting for a request to carry them.
    queued: VecDeque<Waiter>,
}

/// A queued lookup.
struct Waiter {
    ids: Vec<DocId>,
    wake: oneshot::Sender<Wake>,
}

/// How a queued lookup is resumed.
enum Wake {
    /// Its answer.
    Answer(Result<Response, ClientError>),
    /// It leads the next request, carrying `others` with it. The
    /// leadership travels with the message: if the lookup is dropped
    /// before it takes it, dropping the message hands the lane on.
    Lead {
        ids: Vec<DocId>,
        others: Vec<Waiter>,
        leadership: Leadership,
    },
    /// It sends its own request (the shared one cannot answer it exactly).
    Alone(Vec<DocId>),
}

/// A request this module may batch: a first page of a lookup by ids that
/// fits one page.
pub(crate) struct PointRead {
    dataset: DatasetId,
    schema: Hash32,
    ids: Vec<DocId>,
    choice: ReadChoice,
}

impl PointRead {
    /// A lookup of `ids` (at most [`BATCH_IDS_MAX`]) verified as `choice`
    /// says.
    pub(crate) fn new(
        dataset: DatasetId,
        schema: Hash32,
        ids: Vec<DocId>,
        choice: ReadChoice,
    ) -> PointRead {
        debug_assert!(!ids.is_empty() && ids.len() <= BATCH_IDS_MAX);
        PointRead {
            dataset,
            schema,
            ids,
            choice,
        }
    }

    /// `Some` for a `Find` with an `Ids` plan of at most [`BATCH_IDS_MAX`]
    /// ids, no cursor, and a page large enough for all of them (read at
    /// r = 1 without proofs).
    #[cfg(test)]
    pub(crate) fn of(request: &Request) -> Option<PointRead> {
        match request {
            Request::Find {
                dataset,
                schema,
                plan: Plan::Ids(ids),
                after: None,
                page_docs_max,
            } if !ids.is_empty()
                && ids.len() <= BATCH_IDS_MAX
                && ids.len() <= *page_docs_max as usize =>
            {
                Some(PointRead {
                    dataset: *dataset,
                    schema: *schema,
                    ids: ids.clone(),
                    choice: ReadChoice {
                        quorum: 1,
                        proof: false,
                    },
                })
            }
            _ => None,
        }
    }
}

impl PointReads {
    /// Answers `read` with `send` (one request to the node), sharing the
    /// request with other lookups of the same lane when some are in flight.
    pub(crate) async fn read<F, Fut>(
        &self,
        read: PointRead,
        send: F,
    ) -> Result<Response, ClientError>
    where
        F: Fn(Request) -> Fut,
        Fut: Future<Output = Result<Response, ClientError>>,
    {
        let key = (read.dataset, read.schema, read.choice);
        let queued = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            let lane = lanes.entry(key).or_default();
            if lane.leaders < LEADERS_MAX {
                lane.leaders += 1;
                None
            } else {
                let (wake, woken) = oneshot::channel();
                lane.queued.push_back(Waiter {
                    ids: read.ids.clone(),
                    wake,
                });
                Some(woken)
            }
        };
        let (ids, others, _leadership) = match queued {
            None => (read.ids, Vec::new(), Leadership::new(&self.lanes, key)),
            Some(woken) => match woken.await {
                Ok(Wake::Answer(answer)) => return answer,
                Ok(Wake::Lead {
                    ids,
                    others,
                    leadership,
                }) => (ids, others, leadership),
                Ok(Wake::Alone(ids)) => return send(request(key, ids)).await,
                // The leader carrying this lookup was dropped mid-request.
                Err(_) => return send(request(key, read.ids)).await,
            },
        };
        self.lead(key, ids, others, &send).await
    }

    /// Sends one request for `ids` and every id of `others`, and hands each
    /// lookup its part of the answer.
    async fn lead<F, Fut>(
        &self,
        key: LaneKey,
        ids: Vec<DocId>,
        others: Vec<Waiter>,
        send: &F,
    ) -> Result<Response, ClientError>
    where
        F: Fn(Request) -> Fut,
        Fut: Future<Output = Result<Response, ClientError>>,
    {
        if others.is_empty() {
            return send(request(key, ids)).await;
        }
        let mut all: Vec<DocId> = ids
            .iter()
            .chain(others.iter().flat_map(|w| w.ids.iter()))
            .copied()
            .collect();
        all.sort_unstable();
        all.dedup();
        match send(request(key, all)).await {
            Ok(Response::Page { docs, next: None }) => {
                for waiter in others {
                    let answer = Ok(page_of(&docs, &waiter.ids));
                    // A waiter that went away needs no answer.
                    let _ = waiter.wake.send(Wake::Answer(answer));
                }
                Ok(page_of(&docs, &ids))
            }
            Ok(Response::Error(error)) => {
                for waiter in others {
                    let answer = Ok(Response::Error(error.clone()));
                    let _ = waiter.wake.send(Wake::Answer(answer));
                }
                Ok(Response::Error(error))
            }
            Err(error) => {
                for waiter in others {
                    let wake = match shared_error(&error) {
                        Some(copy) => Wake::Answer(Err(copy)),
                        None => Wake::Alone(waiter.ids),
                    };
                    let _ = waiter.wake.send(wake);
                }
                Err(error)
            }
            // A page cut short, or an answer a lookup does not expect: each
            // asks on its own and gets exactly its own request's answer.
            Ok(_) => {
                for waiter in others {
                    let _ = waiter.wake.send(Wake::Alone(waiter.ids));
                }
                send(request(key, ids)).await
            }
        }
    }
}

/// One of a lane's [`LEADERS_MAX`] places in flight. Dropped (a leader that
/// finished, was cancelled, or never took its place), it hands the lane
/// over: see [`hand_over`].
struct Leadership {
    lanes: Lanes,
    key: LaneKey,
    /// False once [`hand_over`] takes a place back itself.
    armed: bool,
}

impl Leadership {
    fn new(lanes: &Lanes, key: LaneKey) -> Self {
        Leadership {
            lanes: Arc::clone(lanes),
            key,
            armed: true,
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if self.armed {
            hand_over(&self.lanes, self.key);
        }
    }
}

/// Ends one leadership of `key`: the next queued lookups (up to
/// [`BATCH_IDS_MAX`] ids) go out as the next request, led by the first of
/// them; with none queued the lane has one request fewer in flight.
fn hand_over(lanes: &Lanes, key: LaneKey) {
    let mut map = lanes.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lane) = map.get_mut(&key) else {
        return;
    };
    loop {
        let Some(first) = lane.queued.pop_front() else {
            lane.leaders -= 1;
            if lane.leaders == 0 {
                map.remove(&key);
            }
            return;
        };
        let mut batch_ids = first.ids.len();
        let mut others = Vec::new();
        while let Some(next) = lane.queued.front() {
            if batch_ids + next.ids.len() > BATCH_IDS_MAX {
                break;
            }
            batch_ids += next.ids.len();
            others.extend(lane.queued.pop_front());
        }
        let lead = Wake::Lead {
            ids: first.ids,
            others,
            leadership: Leadership::new(lanes, key),
        };
        match first.wake.send(lead) {
            Ok(()) => return,
            // That lookup's caller went away: the next one leads. The place
            // stays taken by this loop, so the message's leadership must
            // not hand it over again (that would also relock `lanes`).
            Err(returned) => {
                if let Wake::Lead {
                    others,
                    mut leadership,
                    ..
                } = returned
                {
                    leadership.armed = false;
                    for waiter in others.into_iter().rev() {
                        lane.queued.push_front(waiter);
                    }
                }
            }
        }
    }
}

fn request((dataset, schema, _): LaneKey, ids: Vec<DocId>) -> Request {
    Request::Find {
        dataset,
        schema,
        page_docs_max: ids.len() as u32,
        plan: Plan::Ids(ids),
        after: None,
    }
}

/// The documents of `docs` (in document id order) whose ids are in `ids`,
/// as a whole page.
fn page_of(docs: &[DocEntry], ids: &[DocId]) -> Response {
    let docs = docs
        .iter()
        .filter(|entry| ids.contains(&entry.doc))
        .cloned()
        .collect();
    Response::Page { docs, next: None }
}

/// A copy of a transport error for every lookup it failed, where the error
/// is about the node or the connection rather than the one request.
fn shared_error(error: &ClientError) -> Option<ClientError> {
    match error {
        ClientError::Unavailable(message) => Some(ClientError::Unavailable(message.clone())),
        ClientError::Integrity(message) => Some(ClientError::Integrity(message.clone())),
        ClientError::ReadDisagreement {
            disagreeing,
            detail,
        } => Some(ClientError::ReadDisagreement {
            disagreeing: disagreeing.clone(),
            detail: detail.clone(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use fluence_proto::{NodeError, SealedDoc};
    use tokio::sync::Semaphore;

    fn doc_id(n: u8) -> DocId {
        DocId([n; 16])
    }

    fn entry(n: u8) -> DocEntry {
        DocEntry {
            doc: doc_id(n),
            sealed: SealedDoc {
                version: 1,
                wrapped_key: vec![n],
                ciphertext: vec![n; 4],
            },
        }
    }

    fn find(ids: &[u8]) -> Request {
        Request::Find {
            dataset: DatasetId([7; 32]),
            schema: Hash32([1; 32]),
            plan: Plan::Ids(ids.iter().map(|&n| doc_id(n)).collect()),
            after: None,
            page_docs_max: 1000,
        }
    }

    /// A node holding documents 0..=99 except the multiples of 10, that
    /// answers `Ids` plans in id order; it lets one request through per
    /// permit of `gate` and counts the requests and ids it saw.
    struct FakeNode {
        stored: BTreeMap<DocId, DocEntry>,
        gate: Semaphore,
        requests: AtomicUsize,
        largest: AtomicUsize,
        page_limit: usize,
    }

    impl FakeNode {
        fn new(page_limit: usize) -> Arc<FakeNode> {
            Arc::new(FakeNode {
                stored: (0..100u8)
                    .filter(|n| n % 10 != 0)
                    .map(|n| (doc_id(n), entry(n)))
                    .collect(),
                gate: Semaphore::new(0),
                requests: AtomicUsize::new(0),
                largest: AtomicUsize::new(0),
                page_limit,
            })
        }

        async fn answer(&self, request: Request) -> Result<Response, ClientError> {
            self.gate
                .acquire()
                .await
                .expect("the gate is never closed")
                .forget();
            self.requests.fetch_add(1, Ordering::SeqCst);
            let Request::Find {
                plan: Plan::Ids(mut ids),
                ..
            } = request
            else {
                panic!("only id lookups reach the fake node");
            };
            self.largest.fetch_max(ids.len(), Ordering::SeqCst);
            ids.sort_unstable();
            ids.dedup();
            let found: Vec<DocEntry> = ids
                .iter()
                .filter_map(|id| self.stored.get(id).cloned())
                .collect();
            if found.len() > self.page_limit {
                let docs = found[..self.page_limit].to_vec();
                let next = docs.last().map(|d| d.doc);
                return Ok(Response::Page { docs, next });
            }
            Ok(Response::Page {
                docs: found,
                next: None,
            })
        }
    }

    /// What a lookup of `ids` must return: the stored ones, in id order.
    fn expected(ids: &[u8]) -> Response {
        let mut ids: Vec<u8> = ids.iter().copied().filter(|n| n % 10 != 0).collect();
        ids.sort_unstable();
        ids.dedup();
        Response::Page {
            docs: ids.into_iter().map(entry).collect(),
            next: None,
        }
    }

    /// Starts `lookups.len()` concurrent lookups against `node`, then opens
    /// its gate and returns every answer with the lookup it answers.
    async fn run(
        node: &Arc<FakeNode>,
        lookups: Vec<Vec<u8>>,
    ) -> Vec<(Vec<u8>, Result<Response, ClientError>)> {
        let reads = Arc::new(PointReads::default());
        let mut tasks = Vec::new();
        for ids in lookups {
            let (reads, node) = (Arc::clone(&reads), Arc::clone(node));
            tasks.push(tokio::spawn(async move {
                let read = PointRead::of(&find(&ids)).expect("a point read");
                let answer = reads
                    .read(read, |request| {
                        let node = Arc::clone(&node);
                        async move { node.answer(request).await }
                    })
                    .await;
                (ids, answer)
            }));
        }
        // Let every lookup reach the coalescer before the node answers.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        node.gate.add_permits(10_000);
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.expect("lookup task"));
        }
        assert!(
            reads.lanes.lock().unwrap().is_empty(),
            "an idle coalescer keeps no lanes"
        );
        answers
    }

    #[tokio::test]
    async fn concurrent_lookups_share_requests_and_get_exactly_their_documents() {
        let node = FakeNode::new(usize::MAX);
        let lookups: Vec<Vec<u8>> = (0..60u8)
            .map(|i| match i % 3 {
                0 => vec![i],
                1 => vec![i + 1, i, 10],
                _ => vec![99 - i, 99 - i, 5],
            })
            .collect();
        let count = lookups.len();
        for (ids, answer) in run(&node, lookups).await {
            assert_eq!(answer.expect("answered"), expected(&ids), "lookup {ids:?}");
        }
        let requests = node.requests.load(Ordering::SeqCst);
        assert!(
            requests < count / 4,
            "{requests} requests for {count} lookups"
        );
        assert!(node.largest.load(Ordering::SeqCst) <= BATCH_IDS_MAX);
    }

    #[tokio::test]
    async fn a_shared_page_cut_short_sends_every_lookup_alone() {
        // The node's page holds 3 documents: shared answers are cut short,
        // lone lookups of at most 3 stored ids are whole.
        let node = FakeNode::new(3);
        let lookups: Vec<Vec<u8>> = (1..30u8).filter(|n| n % 10 != 0).map(|n| vec![n]).collect();
        let count = lookups.len();
        for (ids, answer) in run(&node, lookups).await {
            assert_eq!(answer.expect("answered"), expected(&ids), "lookup {ids:?}");
        }
        assert!(node.requests.load(Ordering::SeqCst) > count);
    }

    #[tokio::test]
    async fn a_node_error_reaches_every_lookup_it_answered() {
        let reads = Arc::new(PointReads::default());
        let gate = Arc::new(Semaphore::new(0));
        let mut tasks = Vec::new();
        for n in 0..20u8 {
            let (reads, gate) = (Arc::clone(&reads), Arc::clone(&gate));
            tasks.push(tokio::spawn(async move {
                let read = PointRead::of(&find(&[n])).expect("a point read");
                reads
                    .read(read, |_| {
                        let gate = Arc::clone(&gate);
                        async move {
                            gate.acquire().await.expect("open").forget();
                            Ok(Response::Error(NodeError::StaleSchema))
                        }
                    })
                    .await
            }));
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(1000);
        for task in tasks {
            assert_eq!(
                task.await.expect("task").expect("answered"),
                Response::Error(NodeError::StaleSchema)
            );
        }
    }

    #[tokio::test]
    async fn a_dropped_leader_strands_no_one() {
        let node = FakeNode::new(usize::MAX);
        let reads = Arc::new(PointReads::default());
        let send = |node: Arc<FakeNode>| {
            move |request: Request| {
                let node = Arc::clone(&node);
                async move { node.answer(request).await }
            }
        };
        // Two leaders take the lane; they will be dropped mid-request.
        let mut leaders = Vec::new();
        for n in 1..=LEADERS_MAX as u8 {
            let (reads, send) = (Arc::clone(&reads), send(Arc::clone(&node)));
            leaders.push(tokio::spawn(async move {
                let read = PointRead::of(&find(&[n])).expect("a point read");
                reads.read(read, send).await
            }));
        }
        tokio::task::yield_now().await;
        let mut queued = Vec::new();
        for n in 11..20u8 {
            let (reads, send) = (Arc::clone(&reads), send(Arc::clone(&node)));
            queued.push(tokio::spawn(async move {
                let read = PointRead::of(&find(&[n])).expect("a point read");
                (n, reads.read(read, send).await)
            }));
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        for leader in &leaders {
            leader.abort();
        }
        node.gate.add_permits(10_000);
        for task in queued {
            let (n, answer) = tokio::time::timeout(std::time::Duration::from_secs(60), task)
                .await
                .expect("a queued lookup is never stranded")
                .expect("task");
            assert_eq!(answer.expect("answered"), expected(&[n]));
        }
        assert!(reads.lanes.lock().unwrap().is_empty());
    }

    /// A lookup chosen to lead, whose caller goes away before it takes the
    /// lead, must not keep the lane's place: the next queued lookup leads.
    #[test]
    fn a_lead_never_taken_is_handed_on() {
        let reads = PointReads::default();
        let key = (
            DatasetId([7; 32]),
            Hash32([1; 32]),
            ReadChoice {
                quorum: 1,
                proof: false,
            },
        );
        let mut woken = Vec::new();
        {
            let mut lanes = reads.lanes.lock().unwrap();
            let lane = lanes.entry(key).or_default();
            lane.leaders = LEADERS_MAX;
            // 200 ids each: two do not fit one request.
            const _: () = assert!(200 <= BATCH_IDS_MAX && 400 > BATCH_IDS_MAX);
            for n in 0..2u8 {
                let (wake, rx) = oneshot::channel();
                lane.queued.push_back(Waiter {
                    ids: (0..200u8).map(|i| doc_id(i ^ n)).collect(),
                    wake,
                });
                woken.push(rx);
            }
        }
        // A leader finishes: the first waiter is told to lead.
        hand_over(&reads.lanes, key);
        let mut second = woken.pop().unwrap();
        let first = woken.pop().unwrap();
        assert!(second.try_recv().is_err(), "only one lead is handed out");
        // It goes away without taking it: the second waiter leads instead.
        drop(first);
        match second.try_recv() {
            Ok(Wake::Lead { leadership, .. }) => drop(leadership),
            _ => panic!("the second waiter should lead"),
        }
        // And when that leadership ends, the lane has one leader fewer.
        let lanes = reads.lanes.lock().unwrap();
        assert_eq!(lanes.get(&key).map(|l| l.leaders), Some(LEADERS_MAX - 1));
    }

    #[test]
    fn only_first_pages_of_small_id_lookups_are_batched() {
        assert!(PointRead::of(&find(&[1, 2])).is_some());
        let mut later_page = find(&[1, 2]);
        if let Request::Find { after, .. } = &mut later_page {
            *after = Some(doc_id(1));
        }
        assert!(PointRead::of(&later_page).is_none());
        let mut small_page = find(&[1, 2, 3]);
        if let Request::Find { page_docs_max, .. } = &mut small_page {
            *page_docs_max = 2;
        }
        assert!(PointRead::of(&small_page).is_none());
        let many: Vec<u8> = (0..=255).collect();
        let mut too_many = find(&many);
        if let Request::Find {
            plan: Plan::Ids(ids),
            ..
        } = &mut too_many
        {
            ids.push(DocId([0xAA; 16]));
        }
        assert!(PointRead::of(&too_many).is_none());
        assert!(PointRead::of(&find(&[])).is_none());
    }
}
