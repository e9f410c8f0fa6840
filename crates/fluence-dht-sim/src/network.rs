//! The simulated network: nodes with real ed25519 identities, their
//! routing tables, joining, refreshing and leaving.
//!
//! Everything random comes from one seeded generator and nothing is
//! iterated in hash order, so a seed replays the same network exactly.

use std::collections::HashMap;

use fluence_net::keyspace::Target;
use fluence_net::{Keypair, PeerId};
use fluence_proto::DatasetId;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::space::Key;
use crate::table::{NodeId, RoutingTable};

/// The protocol parameters the model runs with (libp2p-kad's and the
/// Fluence node's, see `fluence_net::discovery`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// k: bucket size, and the peers a lookup seeds with and an answer lists.
    pub bucket_size: usize,
    /// α: requests a lookup keeps in flight while it makes progress.
    pub parallelism: usize,
    /// A request to a departed node fails after this long (the node's
    /// Kademlia request timeout).
    pub request_timeout_ms: u64,
    /// A lookup answers with what it has after this long.
    pub query_timeout_ms: u64,
    /// One-way delay of one message, drawn uniformly from this range.
    pub message_delay_ms: (u64, u64),
    /// Random keys libp2p tries to find a bucket refresh's target.
    pub refresh_target_trials: usize,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            bucket_size: 20,
            parallelism: 3,
            request_timeout_ms: 5_000,
            query_timeout_ms: 10_000,
            message_delay_ms: (20, 120),
            refresh_target_trials: 16,
        }
    }
}

/// A network of simulated nodes.
#[derive(Debug, Clone)]
pub struct Network {
    pub(crate) params: Params,
    pub(crate) rng: StdRng,
    peers: Vec<PeerId>,
    pub(crate) keys: Vec<Key>,
    pub(crate) alive: Vec<bool>,
    pub(crate) tables: Vec<RoutingTable>,
    /// Peer id → node, for mapping placement answers back (never iterated).
    by_peer: HashMap<PeerId, NodeId>,
    live: usize,
}

impl Network {
    /// An empty network whose randomness all comes from `seed`.
    pub fn new(params: Params, seed: u64) -> Network {
        Network {
            params,
            rng: StdRng::seed_from_u64(seed),
            peers: Vec::new(),
            keys: Vec::new(),
            alive: Vec::new(),
            tables: Vec::new(),
            by_peer: HashMap::new(),
            live: 0,
        }
    }

    /// The parameters the network runs with.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Creates a node with a fresh ed25519 key and an empty table; it
    /// knows nobody until it [`joins`](Network::join).
    pub fn spawn(&mut self) -> NodeId {
        let secret: [u8; 32] = self.rng.gen();
        let peer = Keypair::ed25519_from_bytes(secret)
            .expect("any 32 bytes are an ed25519 secret key")
            .public()
            .to_peer_id();
        let id = NodeId::try_from(self.peers.len()).expect("fewer than 2^32 simulated nodes");
        let key = Key::of_peer(&peer);
        self.peers.push(peer);
        self.keys.push(key);
        self.alive.push(true);
        self.tables
            .push(RoutingTable::new(key, self.params.bucket_size));
        self.by_peer.insert(peer, id);
        self.live += 1;
        id
    }

    /// `node` joins through `via`: adds it to its table (an operator's
    /// `--bootstrap` peer is trusted) and bootstraps.
    pub fn join(&mut self, node: NodeId, via: NodeId) {
        let key = self.keys[via as usize];
        self.tables[node as usize].insert(via, &key);
        self.bootstrap(node);
    }

    /// libp2p's bootstrap: a lookup of the node's own key, then one lookup
    /// of a random key in every bucket farther than the nearest non-empty
    /// one. Runs at join and every refresh interval.
    pub fn bootstrap(&mut self, node: NodeId) {
        if self.tables[node as usize].is_empty() {
            return;
        }
        let k = self.params.bucket_size;
        let own = self.keys[node as usize];
        self.lookup(node, own, k);
        let Some(nearest) = self.tables[node as usize].nearest_bucket() else {
            return;
        };
        for bucket in u16::from(nearest) + 1..=255 {
            let target = self.refresh_target(node, bucket as u8);
            self.lookup(node, target, k);
        }
    }

    /// A random key in `bucket` of `node`, found as libp2p does: up to
    /// `refresh_target_trials` random keys, the last one if none fits.
    /// (libp2p hashes random peer ids; their hashes are uniform, as these
    /// keys are.)
    fn refresh_target(&mut self, node: NodeId, bucket: u8) -> Key {
        let own = self.keys[node as usize];
        let mut target = Key(self.rng.gen());
        for _ in 1..self.params.refresh_target_trials {
            if own.distance(&target).bucket_index() == Some(bucket) {
                break;
            }
            target = Key(self.rng.gen());
        }
        target
    }

    /// One refresh interval: every live node bootstraps, in a random order.
    pub fn refresh_round(&mut self) {
        let mut order: Vec<NodeId> = self.live_nodes();
        order.shuffle(&mut self.rng);
        for node in order {
            self.bootstrap(node);
        }
    }

    /// `node` goes silent: requests to it fail after the request timeout.
    /// Other nodes' tables still list it until they notice.
    pub fn leave(&mut self, node: NodeId) {
        if std::mem::replace(&mut self.alive[node as usize], false) {
            self.live -= 1;
        }
    }

    /// Live nodes, in id order.
    pub fn live_nodes(&self) -> Vec<NodeId> {
        (0..self.len() as NodeId)
            .filter(|n| self.alive[*n as usize])
            .collect()
    }

    /// A live node chosen uniformly.
    pub fn random_live_node(&mut self) -> NodeId {
        assert!(self.live > 0, "the network has no live node");
        loop {
            let node = self.rng.gen_range(0..self.len()) as NodeId;
            if self.alive[node as usize] {
                return node;
            }
        }
    }

    /// A random dataset id and its position.
    pub fn random_dataset(&mut self) -> (DatasetId, Key) {
        let id = DatasetId(self.rng.gen());
        (id, Key::of_target(&Target::Dataset(id)))
    }

    /// The truth: the `count` live nodes closest to `target`, closest first.
    pub fn true_closest(&self, target: &Key, count: usize) -> Vec<NodeId> {
        let mut all: Vec<_> = self
            .live_nodes()
            .into_iter()
            .map(|n| (self.keys[n as usize].distance(target), n))
            .collect();
        if all.len() > count {
            all.select_nth_unstable(count);
            all.truncate(count);
        }
        all.sort_unstable();
        all.into_iter().map(|(_, n)| n).collect()
    }

    /// Nodes ever created (live and departed).
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// True when no node was ever created.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Live nodes.
    pub fn live_count(&self) -> usize {
        self.live
    }

    /// Whether `node` is live.
    pub fn is_alive(&self, node: NodeId) -> bool {
        self.alive[node as usize]
    }

    /// `node`'s peer id.
    pub fn peer(&self, node: NodeId) -> PeerId {
        self.peers[node as usize]
    }

    /// The node with `peer` id.
    pub fn node_of(&self, peer: &PeerId) -> Option<NodeId> {
        self.by_peer.get(peer).copied()
    }

    /// `node`'s position.
    pub fn key(&self, node: NodeId) -> Key {
        self.keys[node as usize]
    }

    /// `node`'s routing table.
    pub fn table(&self, node: NodeId) -> &RoutingTable {
        &self.tables[node as usize]
    }

    /// One message's simulated one-way delay.
    pub(crate) fn message_delay(&mut self) -> u64 {
        let (low, high) = self.params.message_delay_ms;
        self.rng.gen_range(low..=high.max(low))
    }
}
