//! Concurrent inserts into one dataset share signed writes (group commit)
//! through the real client and node, and each insert still receives
//! exactly the answer it would have received alone.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bson::{doc, Bson, Document};
use fluence_client::{Client, ClientError, Transport};
use fluence_crypto::keys::MasterKey;
use fluence_proto::{Action, Request, Response};
use tokio::sync::Semaphore;

use common::{runtime, Harness, Local};

/// The in-process node behind a gate: every `Batch` write waits for a
/// permit, and the number of operations of each is recorded in order.
#[derive(Clone)]
struct Gated {
    node: Local,
    gate: Arc<Semaphore>,
    arrived: Arc<AtomicUsize>,
    batches: Arc<Mutex<Vec<usize>>>,
}

impl Transport for Gated {
    async fn call(&self, request: &Request) -> Result<Response, ClientError> {
        if let Request::Write(write) = request {
            if let Action::Batch { ops, .. } = &write.body.action {
                self.arrived.fetch_add(1, Ordering::SeqCst);
                self.gate.acquire().await.expect("gate open").forget();
                self.batches.lock().unwrap().push(ops.len());
            }
        }
        self.node.call(request).await
    }
}

fn gated(harness: &Harness) -> Gated {
    Gated {
        node: Local(harness.node.clone()),
        gate: Arc::new(Semaphore::new(0)),
        arrived: Arc::new(AtomicUsize::new(0)),
        batches: Arc::new(Mutex::new(Vec::new())),
    }
}

/// A node, a client reaching it through a closed gate, and dataset `t`.
async fn with_dataset() -> (Harness, Gated, Arc<Client<Gated>>) {
    let harness = Harness::new();
    let transport = gated(&harness);
    let client = Arc::new(Client::new(MasterKey::generate(), transport.clone()));
    client.create_dataset("t", Vec::new()).await.unwrap();
    (harness, transport, client)
}

fn docs(ids: std::ops::Range<i32>) -> Vec<Document> {
    ids.map(|n| doc! {"_id": n, "n": n}).collect()
}

type Inserted = Result<Vec<Bson>, ClientError>;

fn spawn_insert(
    client: &Arc<Client<Gated>>,
    docs: Vec<Document>,
) -> tokio::task::JoinHandle<Inserted> {
    let client = Arc::clone(client);
    tokio::spawn(async move {
        client
            .insert("t", docs)
            .await
            .map(|result| result.inserted_ids)
    })
}

/// Lets every spawned task run until it waits (on this current-thread
/// runtime nothing else runs meanwhile: the node is called in-process).
async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

/// Starts an insert of `first` that the node holds, so inserts spawned
/// next queue behind it.
async fn hold_first(
    client: &Arc<Client<Gated>>,
    transport: &Gated,
    first: Vec<Document>,
) -> tokio::task::JoinHandle<Inserted> {
    let before = transport.arrived.load(Ordering::SeqCst);
    let held = spawn_insert(client, first);
    while transport.arrived.load(Ordering::SeqCst) == before {
        tokio::task::yield_now().await;
    }
    held
}

fn ids(range: std::ops::Range<i32>) -> Vec<Bson> {
    range.map(Bson::Int32).collect()
}

#[test]
fn inserts_queued_behind_one_in_flight_go_out_as_one_write() {
    runtime().block_on(async {
        let (_harness, transport, client) = with_dataset().await;

        let first = hold_first(&client, &transport, docs(0..10)).await;
        let queued: Vec<_> = [10..20, 20..30, 30..40]
            .into_iter()
            .map(|range| spawn_insert(&client, docs(range)))
            .collect();
        settle().await;
        transport.gate.add_permits(1_000);

        assert_eq!(first.await.unwrap().unwrap(), ids(0..10));
        for (task, range) in queued.into_iter().zip([10..20, 20..30, 30..40]) {
            assert_eq!(task.await.unwrap().unwrap(), ids(range));
        }
        assert_eq!(*transport.batches.lock().unwrap(), vec![10, 30]);
        assert_eq!(client.count("t", &doc! {}).await.unwrap(), 40);
    });
}

#[test]
fn a_refused_group_is_sent_again_insert_by_insert_with_each_ones_own_answer() {
    runtime().block_on(async {
        let (_harness, transport, client) = with_dataset().await;

        let first = hold_first(&client, &transport, docs(0..10)).await;
        // The second insert repeats `_id` 5 after three new documents.
        let mut clashing = docs(100..103);
        clashing.push(doc! {"_id": 5, "n": -5});
        clashing.extend(docs(103..105));
        let before = spawn_insert(&client, docs(200..210));
        let clash = spawn_insert(&client, clashing);
        let after = spawn_insert(&client, docs(300..310));
        settle().await;
        transport.gate.add_permits(1_000);

        assert_eq!(first.await.unwrap().unwrap(), ids(0..10));
        assert_eq!(before.await.unwrap().unwrap(), ids(200..210));
        match clash.await.unwrap() {
            Err(ClientError::DuplicateKey { id, inserted }) => {
                assert_eq!((id.as_str(), inserted), ("5", 3));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(after.await.unwrap().unwrap(), ids(300..310));
        // The group of 26, refused; then each alone (the clashing one
        // keeps the three documents before its duplicate, as alone).
        assert_eq!(
            *transport.batches.lock().unwrap(),
            vec![10, 26, 10, 6, 3, 10]
        );
        assert_eq!(client.count("t", &doc! {}).await.unwrap(), 33);
    });
}

#[test]
fn an_insert_whose_caller_went_away_before_its_group_is_left_out() {
    runtime().block_on(async {
        let (_harness, transport, client) = with_dataset().await;

        let first = hold_first(&client, &transport, docs(0..10)).await;
        let abandoned = spawn_insert(&client, docs(10..20));
        let kept = spawn_insert(&client, docs(20..30));
        settle().await;
        abandoned.abort();
        settle().await;
        transport.gate.add_permits(1_000);

        assert_eq!(first.await.unwrap().unwrap(), ids(0..10));
        assert_eq!(kept.await.unwrap().unwrap(), ids(20..30));
        assert_eq!(*transport.batches.lock().unwrap(), vec![10, 10]);
        assert_eq!(client.count("t", &doc! {}).await.unwrap(), 20);
    });
}
