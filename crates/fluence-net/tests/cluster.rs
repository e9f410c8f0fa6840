//! The cluster transport over real TCP on loopback: members exchange
//! messages on several (dataset, channel) pairs through commonware's p2p
//! traits; oversized messages and frames are refused; a non-member and a
//! blocked member are not heard; messages for an unknown dataset are
//! reported.
//!
//! Time limits here only turn a hang into a failure; none measures speed.

use std::sync::Arc;
use std::time::Duration;

use commonware_cryptography::ed25519;
use commonware_p2p::{Blocker, Provider, Receiver, Recipients, Sender};
use fluence_net::cluster::members::consensus_key;
use fluence_net::cluster::{
    ClusterMember, ClusterNet, ClusterReceiver, ClusterSender, CLUSTER_MESSAGE_LEN_MAX,
    CLUSTER_PROTOCOL, DATASET_PREFIX_LEN, MEMBERSHIP_CHANNEL,
};
use fluence_net::frame::Frame;
use fluence_net::streams::RpcStreams;
use fluence_net::{identity, Answer, Multiaddr, PeerId, RequestHandler, Server};
use fluence_proto::limits::MESSAGE_LEN_MAX;
use fluence_proto::{DatasetId, PublicKey};
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::identity::Keypair;

mod common;
use common::guarded;

/// How long a test waits to conclude that a message did not arrive.
const SILENCE: Duration = Duration::from_millis(300);

struct NoRpc;

impl RequestHandler for NoRpc {
    fn handle(&self, _: PeerId, _: Vec<u8>) -> Answer {
        Vec::new().into()
    }
}

fn loopback() -> Multiaddr {
    "/ip4/127.0.0.1/tcp/0".parse().unwrap()
}

struct Node {
    key: PublicKey,
    consensus: ed25519::PublicKey,
    net: ClusterNet,
    server: Server,
    /// The cluster every dataset of these tests is served by.
    members: Vec<PublicKey>,
}

/// The dataset joined at start (so links exist before any test dataset).
const SETUP_DATASET: DatasetId = DatasetId([0xee; 32]);

/// Starts a member for each of `keypairs` (the cluster is `members`, which
/// may name keys no node here holds), tells each where the others listen,
/// and waits until every pair of running members is connected.
async fn start_members(keypairs: &[Keypair], members: &[PublicKey]) -> Vec<Node> {
    let configured: Vec<ClusterMember> = members
        .iter()
        .map(|key| ClusterMember {
            key: *key,
            addrs: Vec::new(),
        })
        .collect();
    let mut nodes = Vec::new();
    for keypair in keypairs {
        let (net, side) = ClusterNet::start(keypair, configured.clone()).unwrap();
        let server =
            Server::start_with_cluster(keypair.clone(), loopback(), Arc::new(NoRpc), Some(side))
                .await
                .unwrap();
        let key = identity::member_key(keypair).unwrap();
        nodes.push(Node {
            key,
            consensus: consensus_key(&key).unwrap(),
            net,
            server,
            members: members.to_vec(),
        });
    }
    for node in &nodes {
        for other in &nodes {
            if other.key != node.key {
                node.net
                    .set_addresses(&other.key, other.server.listen_addrs.clone());
            }
        }
        node.net.join(SETUP_DATASET, members).unwrap();
    }
    guarded(async {
        loop {
            let all = nodes.iter().all(|node| {
                nodes
                    .iter()
                    .all(|other| other.key == node.key || node.net.is_connected(&other.key))
            });
            if all {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    nodes
}

fn keypairs(n: usize) -> (Vec<Keypair>, Vec<PublicKey>) {
    let keypairs: Vec<Keypair> = (0..n).map(|_| Keypair::generate_ed25519()).collect();
    let keys = keypairs
        .iter()
        .map(|k| identity::member_key(k).unwrap())
        .collect();
    (keypairs, keys)
}

fn dataset(byte: u8) -> DatasetId {
    DatasetId([byte; 32])
}

fn register(node: &Node, dataset: DatasetId, channel: u64) -> (ClusterSender, ClusterReceiver) {
    node.net.join(dataset, &node.members).unwrap();
    node.net.register(dataset, channel).unwrap()
}

async fn receive(receiver: &mut ClusterReceiver) -> (ed25519::PublicKey, Vec<u8>) {
    let (from, message) = guarded(receiver.recv()).await.unwrap();
    (from, message.as_ref().to_vec())
}

/// Whether anything arrives within [`SILENCE`].
async fn hears_anything(receiver: &mut ClusterReceiver) -> bool {
    tokio::time::timeout(SILENCE, receiver.recv()).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_exchange_messages_per_dataset_and_channel() {
    let (keypairs, keys) = keypairs(3);
    let nodes = start_members(&keypairs, &keys).await;
    let (d1, d2) = (dataset(1), dataset(2));
    let mut channels: Vec<Vec<(ClusterSender, ClusterReceiver)>> = nodes
        .iter()
        .map(|node| {
            vec![
                register(node, d1, 0),
                register(node, d1, 6),
                register(node, d2, 0),
            ]
        })
        .collect();

    // To everyone, on (d1, 0).
    let sent = channels[0][0]
        .0
        .send(Recipients::All, b"to all".to_vec(), false);
    let mut expected: Vec<_> = vec![nodes[1].consensus.clone(), nodes[2].consensus.clone()];
    let mut sent_sorted = sent.clone();
    sent_sorted.sort();
    expected.sort();
    assert_eq!(sent_sorted, expected);
    for node in channels.iter_mut().skip(1) {
        let (from, message) = receive(&mut node[0].1).await;
        assert_eq!(from, nodes[0].consensus);
        assert_eq!(message, b"to all");
    }

    // To one member, on (d2, 0): same channel id, other dataset.
    let sent = channels[1][2].0.send(
        Recipients::One(nodes[2].consensus.clone()),
        b"d2 only".to_vec(),
        true,
    );
    assert_eq!(sent, vec![nodes[2].consensus.clone()]);
    let (from, message) = receive(&mut channels[2][2].1).await;
    assert_eq!(
        (from, message),
        (nodes[1].consensus.clone(), b"d2 only".to_vec())
    );

    // Many messages on another channel arrive whole and in order.
    for i in 0..200u32 {
        let mut message = i.to_le_bytes().to_vec();
        message.resize(4 + (i as usize * 997) % 40_000, 0xab);
        let sent = channels[2][1].0.send(
            Recipients::Some(vec![nodes[0].consensus.clone()]),
            message,
            false,
        );
        assert_eq!(sent.len(), 1);
    }
    for i in 0..200u32 {
        let (from, message) = receive(&mut channels[0][1].1).await;
        assert_eq!(from, nodes[2].consensus);
        assert_eq!(&message[..4], &i.to_le_bytes());
        assert_eq!(message.len(), 4 + (i as usize * 997) % 40_000);
    }

    // Nothing leaked onto other (dataset, channel) pairs.
    assert!(!hears_anything(&mut channels[1][2].1).await);
    assert!(!hears_anything(&mut channels[0][2].1).await);
    assert!(!hears_anything(&mut channels[1][1].1).await);

    // A large message (a block of several MiB) crosses too.
    let big: Vec<u8> = (0..6 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let sent = channels[0][2].0.send(
        Recipients::One(nodes[1].consensus.clone()),
        big.clone(),
        false,
    );
    assert_eq!(sent.len(), 1);
    assert_eq!(receive(&mut channels[1][2].1).await.1, big);

    for node in &nodes {
        node.net.shutdown();
    }
    // After shutdown a receiver reports the end instead of waiting.
    assert!(guarded(channels[0][0].1.recv()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_refused_by_the_sender() {
    let (keypairs, keys) = keypairs(2);
    let nodes = start_members(&keypairs, &keys).await;
    let (mut sender, _) = register(&nodes[0], dataset(1), 0);
    let (_, mut receiver) = register(&nodes[1], dataset(1), 0);
    let sent = sender.send(
        Recipients::All,
        vec![0u8; CLUSTER_MESSAGE_LEN_MAX + 1],
        false,
    );
    assert!(sent.is_empty());
    assert!(!hears_anything(&mut receiver).await);
    // The link is still usable.
    assert_eq!(
        sender.send(Recipients::All, b"fits".to_vec(), false).len(),
        1
    );
    assert_eq!(receive(&mut receiver).await.1, b"fits");
}

/// A member (or stranger) that writes raw frames on a cluster stream.
struct RawMember {
    stream: libp2p::Stream,
    _swarm: tokio::task::JoinHandle<()>,
}

impl RawMember {
    async fn connect(keypair: Keypair, node: &Node) -> RawMember {
        let (stream, swarm) = common::open_raw_stream(
            keypair,
            RpcStreams::for_protocol(CLUSTER_PROTOCOL, None),
            node.server.peer_id,
            node.server.listen_addrs.clone(),
        )
        .await;
        RawMember {
            stream,
            _swarm: swarm,
        }
    }

    /// Writes one cluster frame; fails if the node has closed the stream.
    async fn send(
        &mut self,
        dataset: DatasetId,
        channel: u64,
        message: &[u8],
    ) -> std::io::Result<()> {
        let mut payload = dataset.as_bytes().to_vec();
        payload.extend_from_slice(message);
        let frame = Frame::cluster(channel, payload);
        self.stream.write_all(&frame.header()).await?;
        self.stream.write_all(&frame.payload).await?;
        self.stream.flush().await
    }

    /// Waits until the node closes the stream.
    async fn closed(&mut self) {
        let mut rest = Vec::new();
        let _ = guarded(self.stream.read_to_end(&mut rest)).await;
        assert!(
            rest.is_empty(),
            "a member never writes on a stream it accepted"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_stream_with_an_oversized_frame_is_closed() {
    // Three members; the third is a raw peer writing frames by hand.
    let (keypairs, keys) = keypairs(3);
    let nodes = start_members(&keypairs[..2], &keys).await;
    let (_, mut receiver) = register(&nodes[0], dataset(1), 3);
    let mut raw = RawMember::connect(keypairs[2].clone(), &nodes[0]).await;
    raw.send(dataset(1), 3, b"well formed").await.unwrap();
    let (from, message) = receive(&mut receiver).await;
    assert_eq!(from, consensus_key(&keys[2]).unwrap());
    assert_eq!(message, b"well formed");
    // A header announcing more than the limit: the node must not wait for
    // (or allocate) the body, and closes the stream.
    let mut header = Frame::cluster(3, Vec::new()).header();
    header[0..4].copy_from_slice(&((MESSAGE_LEN_MAX + 1) as u32).to_le_bytes());
    raw.stream.write_all(&header).await.unwrap();
    raw.stream.flush().await.unwrap();
    raw.closed().await;
    assert!(!hears_anything(&mut receiver).await);

    // A frame too short to hold a dataset id closes the stream as well.
    let mut raw = RawMember::connect(keypairs[2].clone(), &nodes[0]).await;
    let short = Frame::cluster(3, vec![1; DATASET_PREFIX_LEN - 1]);
    raw.stream.write_all(&short.header()).await.unwrap();
    raw.stream.write_all(&short.payload).await.unwrap();
    raw.stream.flush().await.unwrap();
    raw.closed().await;

    // The other member is unaffected.
    let (mut sender, _) = register(&nodes[1], dataset(1), 3);
    sender.send(Recipients::All, b"still here".to_vec(), false);
    assert_eq!(receive(&mut receiver).await.1, b"still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_member_is_not_heard() {
    let (keypairs, keys) = keypairs(2);
    let nodes = start_members(&keypairs, &keys).await;
    let (_, mut receiver) = register(&nodes[0], dataset(1), 0);
    let mut unknown = nodes[0].net.take_unknown_datasets().unwrap();
    // Any node may open a stream (it may share another cluster), but
    // what it says about a dataset it is not a member of is dropped, and
    // reported (so the node can tell a replaced member the cluster
    // changed).
    let stranger_keypair = Keypair::generate_ed25519();
    let stranger_key = identity::member_key(&stranger_keypair).unwrap();
    let mut stranger = RawMember::connect(stranger_keypair, &nodes[0]).await;
    stranger.send(dataset(1), 0, b"let me in").await.unwrap();
    assert!(!hears_anything(&mut receiver).await);
    let report = guarded(unknown.recv()).await.unwrap();
    assert_eq!(
        (report.dataset, report.channel, report.from),
        (dataset(1), 0, stranger_key)
    );
    // A dataset this node has no membership for is reported, so the
    // node can ask the sender for it (a wiped member learns its clusters
    // this way), and membership messages reach the node-wide queue.
    let mut membership = nodes[0].net.take_membership_messages().unwrap();
    stranger.send(dataset(2), 0, b"about 2").await.unwrap();
    let report = guarded(unknown.recv()).await.unwrap();
    assert_eq!(report.dataset, dataset(2));
    stranger
        .send(dataset(2), MEMBERSHIP_CHANNEL, b"\x01")
        .await
        .unwrap();
    let message = guarded(membership.recv()).await.unwrap();
    assert_eq!(message.dataset, dataset(2));
    assert_eq!(message.message, b"\x01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_serves_datasets_with_different_members() {
    let (keypairs, keys) = keypairs(3);
    let nodes = start_members(&keypairs, &keys).await;
    // Dataset 1 is served by nodes 0 and 1, dataset 2 by nodes 0 and 2.
    let (a, b) = (dataset(1), dataset(2));
    for (node, datasets) in [(0, vec![a, b]), (1, vec![a]), (2, vec![b])] {
        for d in datasets {
            let members = if d == a {
                vec![keys[0], keys[1]]
            } else {
                vec![keys[0], keys[2]]
            };
            nodes[node].net.join(d, &members).unwrap();
        }
    }
    // Joining again with other members is refused.
    assert!(nodes[0].net.join(a, &[keys[0], keys[2]]).is_err());
    let mut zero_a = nodes[0].net.register(a, 0).unwrap();
    let mut zero_b = nodes[0].net.register(b, 0).unwrap();
    let mut one_a = nodes[1].net.register(a, 0).unwrap();
    let mut two_b = nodes[2].net.register(b, 0).unwrap();
    assert_eq!(
        zero_a.0.send(Recipients::All, b"to a".to_vec(), false),
        vec![nodes[1].consensus.clone()]
    );
    assert_eq!(
        zero_b.0.send(Recipients::All, b"to b".to_vec(), false),
        vec![nodes[2].consensus.clone()]
    );
    assert_eq!(receive(&mut one_a.1).await.1, b"to a");
    assert_eq!(receive(&mut two_b.1).await.1, b"to b");
    // Node 2 is not a member of dataset 1: naming it sends nothing, and
    // what it sends about dataset 1 is dropped.
    assert!(zero_a
        .0
        .send(
            Recipients::One(nodes[2].consensus.clone()),
            b"no".to_vec(),
            false
        )
        .is_empty());
    let mut two_a = RawMember::connect(keypairs[2].clone(), &nodes[0]).await;
    two_a.send(a, 0, b"sneaky").await.unwrap();
    two_b.0.send(Recipients::All, b"from two".to_vec(), false);
    assert_eq!(receive(&mut zero_b.1).await.1, b"from two");
    assert!(!hears_anything(&mut zero_a.1).await);
    assert_eq!(nodes[0].net.members(&a).unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_member_is_ignored_both_ways() {
    let (keypairs, keys) = keypairs(3);
    let nodes = start_members(&keypairs, &keys).await;
    let d = dataset(9);
    let mut zero = register(&nodes[0], d, 1);
    let mut one = register(&nodes[1], d, 1);
    let mut two = register(&nodes[2], d, 1);
    let mut blocker = nodes[0].net.blocker();
    let mut blocked = blocker.blocked();
    assert!(guarded(blocked.recv()).await.unwrap().is_empty());
    assert!(blocker.block(nodes[1].consensus.clone()).accepted());
    let now_blocked = guarded(blocked.recv()).await.unwrap();
    assert_eq!(
        now_blocked.iter().cloned().collect::<Vec<_>>(),
        vec![nodes[1].consensus.clone()]
    );

    // Node 0 no longer sends to node 1, and drops what node 1 sends.
    let sent = zero.0.send(Recipients::All, b"not for one".to_vec(), false);
    assert_eq!(sent, vec![nodes[2].consensus.clone()]);
    assert_eq!(receive(&mut two.1).await.1, b"not for one");
    assert!(!hears_anything(&mut one.1).await);
    one.0.send(
        Recipients::One(nodes[0].consensus.clone()),
        b"ignored".to_vec(),
        false,
    );
    two.0.send(
        Recipients::One(nodes[0].consensus.clone()),
        b"heard".to_vec(),
        false,
    );
    let (from, message) = receive(&mut zero.1).await;
    assert_eq!(
        (from, message),
        (nodes[2].consensus.clone(), b"heard".to_vec())
    );
    assert!(!hears_anything(&mut zero.1).await);
    // Other nodes still hear node 1.
    one.0.send(
        Recipients::One(nodes[2].consensus.clone()),
        b"fine".to_vec(),
        false,
    );
    assert_eq!(receive(&mut two.1).await.1, b"fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_registration_and_unknown_datasets() {
    let (keypairs, keys) = keypairs(2);
    let nodes = start_members(&keypairs, &keys).await;
    let mut unknown = nodes[1].net.take_unknown_datasets().unwrap();
    assert!(nodes[1].net.take_unknown_datasets().is_none());

    // The member set is peer set 0, now and in every subscription.
    let mut peers = nodes[0].net.peers(&SETUP_DATASET).unwrap();
    assert!(nodes[0].net.peers(&dataset(77)).is_none());
    let set = guarded(peers.peer_set(0)).await.unwrap().union();
    let mut expected: Vec<_> = nodes.iter().map(|n| n.consensus.clone()).collect();
    expected.sort();
    assert_eq!(set.iter().cloned().collect::<Vec<_>>(), expected);
    assert!(guarded(peers.peer_set(1)).await.is_none());
    let mut updates = guarded(peers.subscribe()).await;
    let update = guarded(updates.recv()).await.unwrap();
    assert_eq!(update.index, 0);
    assert_eq!(update.latest.union(), set);

    // A message for a dataset node 1 has not registered is reported.
    let (mut sender, _) = register(&nodes[0], dataset(5), 2);
    sender.send(Recipients::All, b"hello?".to_vec(), false);
    let report = guarded(unknown.recv()).await.unwrap();
    assert_eq!(report.dataset, dataset(5));
    assert_eq!(report.from, nodes[0].key);

    // Registering twice is refused; after the receiver is dropped the
    // channel can be registered again, and then it is delivered.
    let (_, receiver) = register(&nodes[1], dataset(5), 2);
    assert!(nodes[1].net.register(dataset(5), 2).is_err());
    // Later epochs' channels are registered like the first's, up to the
    // channel id limit.
    drop(register(&nodes[1], dataset(5), 16 + 2));
    assert!(nodes[1]
        .net
        .register(dataset(5), fluence_net::cluster::CHANNEL_IDS_MAX)
        .is_err());
    // The membership channel is not a replica's.
    assert!(nodes[1]
        .net
        .register(dataset(5), MEMBERSHIP_CHANNEL)
        .is_err());
    // A dataset not joined cannot be registered.
    assert!(matches!(
        nodes[1].net.register(dataset(6), 0),
        Err(fluence_net::cluster::RegisterError::NotJoined(_))
    ));
    drop(receiver);
    let (_, mut receiver) = register(&nodes[1], dataset(5), 2);
    sender.send(Recipients::All, b"now".to_vec(), false);
    assert_eq!(receive(&mut receiver).await.1, b"now");
}
