//! Kademlia discovery between real servers on loopback, in one process:
//! joining through a chain of bootstrap peers, lookups that agree with the
//! true closest nodes, admission (a gateway never enters a routing
//! table), and a dead node leaving lookups.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fluence_net::discovery::{Discovery, DiscoveryConfig, NetworkStatus};
use fluence_net::keyspace::{self, Target};
use fluence_net::{Answer, NodeClient, NodeParts, PeerId, RequestHandler, Server};
use fluence_proto::DatasetId;
use libp2p::identity::Keypair;
use libp2p::Multiaddr;

struct NoRpc;

impl RequestHandler for NoRpc {
    fn handle(&self, _: PeerId, _: Vec<u8>) -> Answer {
        Vec::new().into()
    }
}

struct Node {
    server: Server,
    discovery: Discovery,
}

async fn start_node(bootstrap: Vec<Multiaddr>) -> Node {
    let listen = "/ip4/127.0.0.1/tcp/0".parse().unwrap();
    start_node_at(Keypair::generate_ed25519(), listen, bootstrap).await
}

async fn start_node_at(keypair: Keypair, listen: Multiaddr, bootstrap: Vec<Multiaddr>) -> Node {
    let (discovery, side) = Discovery::new(DiscoveryConfig {
        bootstrap,
        ..DiscoveryConfig::default()
    })
    .unwrap();
    let parts = NodeParts {
        cluster: None,
        discovery: Some(side),
    };
    let server = Server::start_node(keypair, listen, Arc::new(NoRpc), parts)
        .await
        .unwrap();
    Node { server, discovery }
}

async fn status(node: &Node) -> NetworkStatus {
    node.discovery.status().await.unwrap()
}

/// Waits (bounded) until `check` holds.
async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The true `k` closest of `peers` to `target`, closest first.
fn truly_closest(target: &Target, peers: &[PeerId], k: usize) -> Vec<PeerId> {
    let mut sorted = peers.to_vec();
    sorted.sort_by(|a, b| keyspace::by_distance(&target.key(), a, b));
    sorted.truncate(k);
    sorted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_joining_through_a_chain_find_each_other_and_agree_on_the_closest() {
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..6 {
        let bootstrap = match i {
            0 => Vec::new(),
            _ => vec![nodes[i - 1].server.dial_addr()],
        };
        nodes.push(start_node(bootstrap).await);
    }
    let ids: Vec<PeerId> = nodes.iter().map(|n| n.server.peer_id).collect();
    for node in &nodes {
        eventually(
            "every routing table holds every other node",
            Duration::from_secs(20),
            || async { status(node).await.routing_table_size() == ids.len() - 1 },
        )
        .await;
    }

    // A gateway's connection (rpc only, no identify, no Kademlia) never
    // enters the routing table.
    let gateway = NodeClient::connect(nodes[0].server.dial_addr(), Duration::from_secs(5))
        .await
        .unwrap();
    gateway.call_bytes(vec![1]).await.unwrap();
    let seen = status(&nodes[0]).await;
    let strangers: Vec<&PeerId> = seen.connected.iter().filter(|p| !ids.contains(p)).collect();
    assert_eq!(strangers.len(), 1, "the gateway is connected");
    assert_eq!(seen.routing_table_size(), ids.len() - 1);

    for target in [
        Target::Dataset(DatasetId([9; 32])),
        Target::Dataset(DatasetId([200; 32])),
        Target::Peer(ids[3]),
    ] {
        let expected = truly_closest(&target, &ids, 4);
        for asker in [&nodes[1], &nodes[5]] {
            let answer = asker.discovery.closest(target, 4).await.unwrap();
            assert!(answer.complete);
            let got: Vec<PeerId> = answer.peers.iter().map(|p| p.peer).collect();
            assert_eq!(got, expected, "{target} asked at {}", asker.server.peer_id);
        }
    }

    // A node that dies leaves lookups: its connections close, the first
    // lookup that tries it fails to dial it and drops it.
    let dead = nodes.remove(2);
    let dead_id = dead.server.peer_id;
    dead.server.shutdown().await;
    let alive: Vec<PeerId> = ids.iter().copied().filter(|p| *p != dead_id).collect();
    let target = Target::Peer(dead_id);
    let answer = nodes[0].discovery.closest(target, 20).await.unwrap();
    let got: Vec<PeerId> = answer.peers.iter().map(|p| p.peer).collect();
    assert!(!got.contains(&dead_id));
    assert_eq!(got, truly_closest(&target, &alive, 20));
    eventually(
        "the dead node leaves the asker's routing table",
        Duration::from_secs(10),
        || async { status(&nodes[0]).await.routing_table_size() == alive.len() - 1 },
    )
    .await;

    for node in nodes {
        node.server.shutdown().await;
    }
}

#[tokio::test]
async fn a_node_whose_bootstrap_peer_starts_later_joins_when_it_does() {
    // Bind a port for the bootstrap peer first, so its address is known.
    let keypair = Keypair::generate_ed25519();
    let peer = keypair.public().to_peer_id();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
    let joining = start_node(vec![format!("{addr}/p2p/{peer}").parse().unwrap()]).await;
    // The bootstrap peer is not there yet: the table empties.
    eventually(
        "the unreachable bootstrap peer is dropped",
        Duration::from_secs(10),
        || async { status(&joining).await.routing_table_size() == 0 },
    )
    .await;
    let bootstrap = start_node_at(keypair, addr, Vec::new()).await;
    eventually(
        "both tables hold the other",
        Duration::from_secs(15),
        || async {
            status(&joining).await.routing_table_size() == 1
                && status(&bootstrap).await.routing_table_size() == 1
        },
    )
    .await;
    joining.server.shutdown().await;
    bootstrap.server.shutdown().await;
}
