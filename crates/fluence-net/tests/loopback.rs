//! A real server and client over TCP on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fluence_net::{identity, Answer, NodeClient, PeerId, RequestHandler, Server};
use libp2p::identity::Keypair;

struct Echo {
    calls: AtomicUsize,
}

impl RequestHandler for Echo {
    fn handle(&self, _peer: PeerId, mut request: Vec<u8>) -> Answer {
        self.calls.fetch_add(1, Ordering::SeqCst);
        request.reverse();
        request.into()
    }
}

async fn echo_server() -> (Server, Arc<Echo>) {
    let handler = Arc::new(Echo {
        calls: AtomicUsize::new(0),
    });
    let server = Server::start(
        Keypair::generate_ed25519(),
        "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        handler.clone(),
    )
    .await
    .unwrap();
    (server, handler)
}

#[tokio::test]
async fn request_and_response_cross_loopback() {
    let (server, handler) = echo_server().await;
    let client = NodeClient::connect(server.dial_addr(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(client.peer_id(), server.peer_id);
    let answer = client.call_bytes(b"abc".to_vec()).await.unwrap();
    assert_eq!(answer, b"cba");
    // Many concurrent requests over the one connection.
    let calls: Vec<_> = (0..50u8)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.call_bytes(vec![i, 0, 1]).await.unwrap() })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap(), vec![1, 0, i as u8]);
    }
    assert_eq!(handler.calls.load(Ordering::SeqCst), 51);
    server.shutdown().await;
}

#[tokio::test]
async fn large_messages_cross() {
    let (server, _) = echo_server().await;
    let client = NodeClient::connect(server.dial_addr(), Duration::from_secs(5))
        .await
        .unwrap();
    let big: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut expected = big.clone();
    expected.reverse();
    assert_eq!(client.call_bytes(big).await.unwrap(), expected);
}

#[tokio::test]
async fn wrong_peer_id_is_refused() {
    let (server, _) = echo_server().await;
    let mut addr = server.listen_addrs[0].clone();
    addr.push(libp2p::multiaddr::Protocol::P2p(
        Keypair::generate_ed25519().public().to_peer_id(),
    ));
    assert!(NodeClient::connect(addr, Duration::from_secs(5))
        .await
        .is_err());
}

#[tokio::test]
async fn dialing_nothing_fails_cleanly() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let addr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
    assert!(NodeClient::connect(addr, Duration::from_secs(5))
        .await
        .is_err());
}

#[test]
fn identity_persists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.key");
    let first = identity::load_or_create(&path).unwrap();
    let second = identity::load_or_create(&path).unwrap();
    assert_eq!(first.public().to_peer_id(), second.public().to_peer_id());
    std::fs::write(&path, b"garbage").unwrap();
    assert!(identity::load_or_create(&path).is_err());
}
