//! The `/fluence/rpc/2` stream over real TCP on loopback: many requests in
//! flight on one stream, size limits on both sides, failures that reach the
//! caller as errors, slow requests beside fast ones, and reconnection.
//!
//! Time limits here only turn a hang into a failure; none measures speed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use fluence_net::frame::{Frame, HEADER_LEN};
use fluence_net::streams::RpcStreams;
use fluence_net::{Answer, Multiaddr, NetError, NodeClient, PeerId, RequestHandler, Server};
use fluence_proto::limits::MESSAGE_LEN_MAX;
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::identity::Keypair;

mod common;
use common::{guarded, HANG_GUARD};

const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// A gate that blocks `slow` requests until opened, so tests control when
/// they finish.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
    waiting: AtomicUsize,
}

impl Gate {
    fn wait(&self) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let open = self.open.lock().unwrap();
        // Bounded so a failing test cannot leave a thread blocked forever.
        let _ = self
            .changed
            .wait_timeout_while(open, HANG_GUARD, |open| !*open)
            .unwrap();
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.changed.notify_all();
    }

    async fn until_waiting(&self, count: usize) {
        tokio::time::timeout(HANG_GUARD, async {
            while self.waiting.load(Ordering::SeqCst) < count {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the slow request never reached the handler");
    }
}

/// Reverses requests. Requests starting with `slow` wait for the gate on
/// their blocking thread, `later` are answered by a future once `later`
/// is notified, `panic` panics and `huge` answers above the size limit.
#[derive(Default)]
struct TestHandler {
    gate: Gate,
    later: Arc<tokio::sync::Notify>,
    calls: AtomicUsize,
}

impl TestHandler {
    fn new() -> Arc<Self> {
        Arc::new(TestHandler::default())
    }

    fn answer(&self, mut request: Vec<u8>) -> Vec<u8> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if request.starts_with(b"panic") {
            panic!("test handler asked to panic");
        }
        if request.starts_with(b"huge") {
            return vec![0; MESSAGE_LEN_MAX + 1];
        }
        request.reverse();
        request
    }
}

impl RequestHandler for TestHandler {
    fn handle(&self, _: PeerId, mut request: Vec<u8>) -> Answer {
        if request.starts_with(b"later") {
            let later = Arc::clone(&self.later);
            return Answer::Pending(Box::pin(async move {
                later.notified().await;
                request.reverse();
                request
            }));
        }
        if request.starts_with(b"slow") {
            self.gate.wait();
        }
        self.answer(request).into()
    }
}

fn loopback() -> Multiaddr {
    "/ip4/127.0.0.1/tcp/0".parse().unwrap()
}

async fn start(keypair: Keypair, listen: Multiaddr, handler: Arc<TestHandler>) -> Server {
    Server::start(keypair, listen, handler).await.unwrap()
}

/// A fresh node with `handler` and a client connected to it.
async fn serve_and_connect(handler: &Arc<TestHandler>) -> (Server, NodeClient) {
    let server = start(Keypair::generate_ed25519(), loopback(), handler.clone()).await;
    let client = NodeClient::connect(server.dial_addr(), DIAL_TIMEOUT)
        .await
        .unwrap();
    (server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_concurrent_calls_reach_their_callers() {
    let handler = TestHandler::new();
    let (server, client) = serve_and_connect(&handler).await;
    let tasks: Vec<_> = (0..2000u32)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                // Sizes from empty to several stream frames, so answers
                // share writes and split across them.
                let len = (i as usize * 37) % 40_000;
                let request: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
                let answer = client.call_bytes(request.clone()).await.unwrap();
                let mut expected = request;
                expected.reverse();
                assert_eq!(answer, expected, "call {i} got someone else's answer");
            })
        })
        .collect();
    for task in tasks {
        guarded(task).await.unwrap();
    }
    assert_eq!(handler.calls.load(Ordering::SeqCst), 2000);
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_requests_are_refused_before_sending() {
    let handler = TestHandler::new();
    let (_server, client) = serve_and_connect(&handler).await;
    let err = client
        .call_bytes(vec![0; MESSAGE_LEN_MAX + 1])
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::Oversized(len) if len == MESSAGE_LEN_MAX + 1));
    assert_eq!(handler.calls.load(Ordering::SeqCst), 0);
    // The connection is untouched.
    assert_eq!(client.call_bytes(b"ab".to_vec()).await.unwrap(), b"ba");
}

#[tokio::test]
async fn oversized_answers_and_panics_fail_only_their_call() {
    let handler = TestHandler::new();
    let (server, client) = serve_and_connect(&handler).await;
    let err = guarded(client.call_bytes(b"huge".to_vec()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exceeds the maximum"), "{err}");
    let err = guarded(client.call_bytes(b"panic".to_vec()))
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::Request(_)), "{err}");
    assert_eq!(
        guarded(client.call_bytes(b"xyz".to_vec())).await.unwrap(),
        b"zyx"
    );
    server.shutdown().await;
}

/// A peer that skips `NodeClient` and writes raw frames on an rpc stream.
struct RawPeer {
    stream: libp2p::Stream,
    _swarm: tokio::task::JoinHandle<()>,
}

impl RawPeer {
    async fn connect(server: &Server) -> RawPeer {
        let (stream, swarm) = common::open_raw_stream(
            Keypair::generate_ed25519(),
            RpcStreams::outbound(),
            server.peer_id,
            vec![server.listen_addrs[0].clone()],
        )
        .await;
        RawPeer {
            stream,
            _swarm: swarm,
        }
    }

    async fn send(&mut self, frame: &Frame) {
        self.stream.write_all(&frame.header()).await.unwrap();
        self.stream.write_all(&frame.payload).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// Reads until the node closes the stream; returns what it sent.
    async fn read_to_end(&mut self) -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        guarded(self.stream.read_to_end(&mut bytes)).await?;
        Ok(bytes)
    }
}

#[tokio::test]
async fn a_node_closes_a_stream_that_sends_an_oversized_frame() {
    let handler = TestHandler::new();
    let server = start(Keypair::generate_ed25519(), loopback(), handler.clone()).await;
    let mut raw = RawPeer::connect(&server).await;
    // A well-formed request first: answered.
    raw.send(&Frame::request(5, b"hello".to_vec())).await;
    // Then a header announcing more than the limit; the node must not wait
    // for (or allocate) the body.
    let mut header = Frame::request(6, Vec::new()).header();
    header[0..4].copy_from_slice(&((MESSAGE_LEN_MAX + 1) as u32).to_le_bytes());
    raw.stream.write_all(&header).await.unwrap();
    raw.stream.flush().await.unwrap();
    let answered = raw.read_to_end().await.unwrap_or_default();
    assert!(answered.len() >= HEADER_LEN + 5, "{answered:?}");
    assert_eq!(&answered[4..12], &5u64.to_le_bytes());
    assert_eq!(&answered[HEADER_LEN..HEADER_LEN + 5], b"olleh");
    assert_eq!(handler.calls.load(Ordering::SeqCst), 1);

    // Other clients are not affected.
    let client = NodeClient::connect(server.dial_addr(), DIAL_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(client.call_bytes(b"ok".to_vec()).await.unwrap(), b"ko");
}

#[tokio::test]
async fn a_node_closes_a_stream_that_sends_an_answer_frame() {
    let handler = TestHandler::new();
    let server = start(Keypair::generate_ed25519(), loopback(), handler.clone()).await;
    let mut raw = RawPeer::connect(&server).await;
    raw.send(&Frame::response(1, b"not a request".to_vec()))
        .await;
    assert!(raw.read_to_end().await.unwrap_or_default().is_empty());
    assert_eq!(handler.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_does_not_hold_up_fast_ones() {
    let handler = TestHandler::new();
    let (server, client) = serve_and_connect(&handler).await;
    let slow = {
        let client = client.clone();
        tokio::spawn(async move { client.call_bytes(b"slow!".to_vec()).await })
    };
    handler.gate.until_waiting(1).await;
    for i in 0..200u32 {
        let request = i.to_le_bytes().to_vec();
        let mut expected = request.clone();
        expected.reverse();
        assert_eq!(guarded(client.call_bytes(request)).await.unwrap(), expected);
    }
    assert!(!slow.is_finished(), "the slow request was not held");
    handler.gate.open();
    assert_eq!(guarded(slow).await.unwrap().unwrap(), b"!wols");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_given_later_does_not_hold_up_others() {
    let handler = TestHandler::new();
    let (server, client) = serve_and_connect(&handler).await;
    // More pending answers than blocking threads would allow if each held
    // one, to show they do not.
    let later: Vec<_> = (0..8u8)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .call_bytes(vec![b'l', b'a', b't', b'e', b'r', i])
                    .await
            })
        })
        .collect();
    for i in 0..100u32 {
        let request = i.to_le_bytes().to_vec();
        let mut expected = request.clone();
        expected.reverse();
        assert_eq!(guarded(client.call_bytes(request)).await.unwrap(), expected);
    }
    assert!(later.iter().all(|call| !call.is_finished()));
    // Release them one by one until all are answered.
    let answers = guarded(async {
        let mut answers = Vec::new();
        for call in later {
            loop {
                handler.later.notify_waiters();
                tokio::time::sleep(Duration::from_millis(5)).await;
                if call.is_finished() {
                    break;
                }
            }
            answers.push(call.await.unwrap().unwrap());
        }
        answers
    })
    .await;
    for (i, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer, vec![i as u8, b'r', b'e', b't', b'a', b'l']);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_mid_request_fails_its_callers() {
    let handler = TestHandler::new();
    let (server, client) = serve_and_connect(&handler).await;
    let waiting: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.call_bytes(b"slow".to_vec()).await })
        })
        .collect();
    handler.gate.until_waiting(10).await;
    server.shutdown().await;
    for call in waiting {
        let result = guarded(call).await.unwrap();
        assert!(result.is_err(), "a call survived its server: {result:?}");
    }
    handler.gate.open();
    // With nobody listening, a new call fails too, promptly.
    assert!(guarded(client.call_bytes(b"x".to_vec())).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reconnects_after_a_node_restart() {
    let keypair = Keypair::generate_ed25519();
    let handler = TestHandler::new();
    let server = start(keypair.clone(), loopback(), handler.clone()).await;
    let listen = server.listen_addrs[0].clone();
    let client = NodeClient::connect(server.dial_addr(), DIAL_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(client.call_bytes(b"12".to_vec()).await.unwrap(), b"21");

    server.shutdown().await;
    assert!(guarded(client.call_bytes(b"34".to_vec())).await.is_err());

    let server = start(keypair, listen.clone(), handler.clone()).await;
    assert_eq!(
        guarded(client.call_bytes(b"56".to_vec())).await.unwrap(),
        b"65"
    );
    // Many callers at once after the restart share the new stream.
    let calls: Vec<_> = (0..100u8)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.call_bytes(vec![i, 1]).await.unwrap() })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(guarded(call).await.unwrap(), vec![1, i as u8]);
    }
    server.shutdown().await;

    // A different node on the same address is not the node the client
    // connected to: the noise handshake's identity check refuses it.
    let impostor = start(Keypair::generate_ed25519(), listen, handler).await;
    assert!(guarded(client.call_bytes(b"x".to_vec())).await.is_err());
    let err = guarded(client.call_bytes(b"x".to_vec())).await.unwrap_err();
    assert!(matches!(err, NetError::Dial(..)), "{err}");
    impostor.shutdown().await;
}
