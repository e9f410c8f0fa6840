//! Four real nodes in one process (one commonware tokio runtime, as the
//! devnet runs them) form a cluster over libp2p on loopback. A gateway's
//! writes, sent to one member over `/fluence/rpc/2`, are answered once
//! finalized; the store's refusals reach the gateway with the same typed
//! errors a single node gives; a resubmitted write is applied once; every
//! member ends on the same state root.
//!
//! Time limits here only turn a hang into a failure; none measures speed.

use std::sync::Arc;
use std::time::Duration;

use commonware_runtime::{Runner as _, Supervisor as _};
use fluence_chain::FinalizedBlock;
use fluence_consensus::{CertificateError, Timeouts};
use fluence_crypto::sign::SigningKey;
use fluence_net::cluster::ClusterMember;
use fluence_net::{identity, NodeClient};
use fluence_node::{ClusterConfig, NodeConfig, RunningNode};
use fluence_proto::{
    Action, DatasetId, DocId, DocOp, Hash32, NodeError, Precondition, PublicKey, Request, Response,
    SealedDoc, Signature, SignedWrite, WriteBody,
};
use fluence_testkit::Owner;

/// Far above anything these tests should take: reaching it means a hang.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn test_owner() -> Owner {
    Owner::new([0x0d; 32], [3; 32])
}

/// Write `seq`: one new document `doc`, under the schema digest `schema`.
fn put(owner: &Owner, seq: u64, doc: u8, expect: Precondition, schema: Hash32) -> SignedWrite {
    owner.sign(WriteBody {
        dataset: owner.dataset,
        seq,
        action: Action::Batch {
            schema,
            ops: vec![DocOp::Put {
                doc: DocId([doc; 16]),
                expect,
                sealed: SealedDoc {
                    version: 1,
                    wrapped_key: vec![0xaa; 72],
                    ciphertext: format!("document {doc} at {seq}").into_bytes(),
                },
                entries: Vec::new(),
            }],
        },
    })
}

fn no_indexes() -> Hash32 {
    fluence_proto::schema_digest(&[])
}

/// Asserts that `answer` acknowledges write `seq`.
fn written(answer: Response, seq: u64) {
    assert!(
        matches!(answer, Response::Written { seq: s, .. } if s == seq),
        "write {seq}: {answer:?}"
    );
}

/// Inserts document `seq` for each `seq` of `seqs` through `gateway`,
/// each acknowledged.
async fn put_all(gateway: &NodeClient, owner: &Owner, seqs: std::ops::RangeInclusive<u64>) {
    for seq in seqs {
        let put = put(owner, seq, seq as u8, Precondition::Absent, no_indexes());
        written(write(gateway, &put).await, seq);
    }
}

async fn write(client: &NodeClient, write: &SignedWrite) -> Response {
    tokio::time::timeout(HANG_GUARD, client.call(&Request::Write(write.clone())))
        .await
        .expect("hang guard reached")
        .expect("the node answers")
}

/// Starts `n` members in `context`, each in its own data directory under
/// `dir`, and tells each where the others listen.
async fn start_cluster(
    context: &commonware_runtime::tokio::Context,
    dir: &std::path::Path,
    n: usize,
) -> Vec<RunningNode> {
    start_cluster_with_config(context, dir, n).await.0
}

/// [`start_cluster`], also returning the cluster configuration (to
/// restart a member with).
async fn start_cluster_with_config(
    context: &commonware_runtime::tokio::Context,
    dir: &std::path::Path,
    n: usize,
) -> (Vec<RunningNode>, ClusterConfig) {
    let mut keys = Vec::new();
    for i in 0..n {
        let data_dir = dir.join(format!("node-{i}"));
        std::fs::create_dir_all(&data_dir).unwrap();
        let keypair =
            identity::load_or_create(&fluence_node::daemon::identity_path(&data_dir)).unwrap();
        keys.push(identity::member_key(&keypair).unwrap());
    }
    let members: Vec<ClusterMember> = keys
        .iter()
        .map(|key| ClusterMember {
            key: *key,
            addrs: Vec::new(),
        })
        .collect();
    let mut cluster = ClusterConfig::new(members);
    cluster.timeouts = Timeouts {
        leader: Duration::from_millis(500),
        certification: Duration::from_secs(1),
        retry: Duration::from_secs(1),
        fetch: Duration::from_millis(500),
    };
    // Short, so a replacement test does not wait long for its vote.
    cluster.unreachable_grace = Duration::from_secs(1);
    let mut nodes = Vec::new();
    for i in 0..n {
        let node = start_member(context, dir, i, &cluster).await;
        assert_eq!(node.member_key(), keys[i]);
        nodes.push(node);
    }
    introduce(&nodes);
    (nodes, cluster)
}

/// Starts member `i` of `cluster` on its directory under `dir`. Started
/// again in the same runtime, it waits until its stopped replicas' tasks
/// have released its store.
async fn start_member(
    context: &commonware_runtime::tokio::Context,
    dir: &std::path::Path,
    i: usize,
    cluster: &ClusterConfig,
) -> RunningNode {
    start_member_joining(context, dir, i, cluster, Vec::new()).await
}

/// [`start_member`] that joins the open network through `bootstrap`.
async fn start_member_joining(
    context: &commonware_runtime::tokio::Context,
    dir: &std::path::Path,
    i: usize,
    cluster: &ClusterConfig,
    bootstrap: Vec<fluence_net::Multiaddr>,
) -> RunningNode {
    let config = NodeConfig {
        data_dir: dir.join(format!("node-{i}")),
        listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        record_requests: None,
        discovery: fluence_net::discovery::DiscoveryConfig {
            bootstrap,
            ..Default::default()
        },
    };
    tokio::time::timeout(HANG_GUARD, async {
        loop {
            match RunningNode::start_member(context.child("node"), config.clone(), cluster.clone())
                .await
            {
                Ok(node) => return node,
                Err(error) => {
                    assert!(error.to_string().contains("already open"), "{error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
    .await
    .expect("the member starts")
}

/// Tells every member where the others listen.
fn introduce(nodes: &[RunningNode]) {
    for node in nodes {
        for other in nodes {
            if other.member_key() != node.member_key() {
                let net = node.replicas().unwrap().net();
                net.set_addresses(&other.member_key(), other.listen_addrs().to_vec());
            }
        }
    }
}

/// The node keys of the `n` members under `dir` (from their identity
/// files), which sign their acceptances of a dataset's cluster.
fn signers(dir: &std::path::Path, n: usize) -> Vec<SigningKey> {
    (0..n)
        .map(|i| {
            let path = fluence_node::daemon::identity_path(&dir.join(format!("node-{i}")));
            let keypair = identity::load_or_create(&path).unwrap();
            SigningKey::from_seed(&identity::secret_seed(&keypair).unwrap())
        })
        .collect()
}

/// The owner's `Create` for the cluster of the `n` members under `dir`.
fn create_for(owner: &Owner, dir: &std::path::Path, n: usize) -> SignedWrite {
    owner.create_for_cluster(&signers(dir, n))
}

/// Waits until every node's store holds the dataset at `seq`, and returns
/// their state roots.
async fn converged(nodes: &[RunningNode], dataset: &DatasetId, seq: u64) -> Vec<Hash32> {
    tokio::time::timeout(HANG_GUARD, async {
        loop {
            let infos: Vec<_> = nodes
                .iter()
                .map(|node| node.service().store().info(dataset).ok())
                .collect();
            if infos
                .iter()
                .all(|info| info.as_ref().is_some_and(|i| i.seq == seq))
            {
                return infos
                    .into_iter()
                    .map(|info| info.expect("checked").state_root)
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the members did not all apply the writes")
}

#[test]
fn a_four_node_cluster_orders_a_gateways_writes() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("consensus");
    let config = commonware_runtime::tokio::Config::new().with_storage_directory(storage);
    commonware_runtime::tokio::Runner::new(config).start(|context| async move {
        let nodes = start_cluster(&context, dir.path(), 4).await;
        let owner = test_owner();
        let gateway = NodeClient::connect(nodes[0].dial_addr(), Duration::from_secs(10))
            .await
            .unwrap();

        // Two Creates of the same id (sealed apart, so two bodies) race:
        // one is applied, the other is told `DatasetExists`, as a single
        // node tells it; a later Create is refused the same way.
        let another_create = |descriptor: &[u8]| {
            owner.sign(WriteBody {
                seq: 0,
                dataset: owner.dataset,
                action: Action::Create {
                    owner: PublicKey(owner.key.public_key()),
                    name_tag: owner.name_tag,
                    descriptor: descriptor.to_vec(),
                    indexes: Vec::new(),
                    cluster: Some(fluence_testkit::genesis(
                        &owner.dataset,
                        &signers(dir.path(), 4),
                    )),
                },
            })
        };
        let (create, racing) = (
            create_for(&owner, dir.path(), 4),
            another_create(b"a racing descriptor"),
        );
        let (first, second) = futures::join!(write(&gateway, &create), write(&gateway, &racing));
        let mut outcomes = [first, second];
        outcomes.sort_by_key(|outcome| matches!(outcome, Response::Error(_)));
        assert!(
            matches!(outcomes[0], Response::Written { seq: 0, .. }),
            "{outcomes:?}"
        );
        assert_eq!(outcomes[1], Response::Error(NodeError::DatasetExists));
        assert_eq!(
            write(&gateway, &another_create(b"another descriptor")).await,
            Response::Error(NodeError::DatasetExists)
        );

        // Inserts, each answered once finalized with its own seq.
        for seq in 1..=5u64 {
            let put = put(&owner, seq, seq as u8, Precondition::Absent, no_indexes());
            match write(&gateway, &put).await {
                Response::Written { seq: written, .. } => assert_eq!(written, seq),
                other => panic!("write {seq}: {other:?}"),
            }
        }

        // A resubmission of an applied write is acknowledged, not applied.
        let third = put(&owner, 3, 3, Precondition::Absent, no_indexes());
        assert!(matches!(
            write(&gateway, &third).await,
            Response::Written { seq: 3, .. }
        ));
        // A write with a taken number but another body is told the next.
        let late = put(&owner, 3, 99, Precondition::Absent, no_indexes());
        assert_eq!(
            write(&gateway, &late).await,
            Response::Error(NodeError::SeqMismatch { expected: 6 })
        );

        // The store's refusals keep their types.
        let conflict = put(&owner, 6, 1, Precondition::Absent, no_indexes());
        assert_eq!(
            write(&gateway, &conflict).await,
            Response::Error(NodeError::Precondition {
                op_index: 0,
                found_version: Some(1),
            })
        );
        let stale = put(&owner, 6, 42, Precondition::Absent, Hash32([9; 32]));
        assert_eq!(
            write(&gateway, &stale).await,
            Response::Error(NodeError::StaleSchema)
        );
        // A forged write (not the owner's signature) is refused.
        let mut forged = put(&owner, 6, 50, Precondition::Absent, no_indexes());
        forged.signature = Signature([7; 64]);
        assert_eq!(
            write(&gateway, &forged).await,
            Response::Error(NodeError::BadSignature)
        );

        // The same write submitted twice at once: one apply, two answers.
        let sixth = put(&owner, 6, 6, Precondition::Absent, no_indexes());
        let (a, b) = futures::join!(write(&gateway, &sixth), write(&gateway, &sixth));
        assert!(matches!(a, Response::Written { seq: 6, .. }), "{a:?}");
        assert_eq!(a, b);

        // Reads are local; every member ends on the same root.
        let roots = converged(&nodes, &owner.dataset, 6).await;
        assert!(roots.windows(2).all(|w| w[0] == w[1]), "{roots:?}");
        let Response::Written { state_root, .. } = a else {
            unreachable!()
        };
        assert_eq!(roots[0], state_root);
        match gateway
            .call(&Request::DatasetInfo {
                dataset: owner.dataset,
            })
            .await
            .unwrap()
        {
            Response::Info(info) => {
                assert_eq!(info.seq, 6);
                assert_eq!(info.doc_count, 6);
            }
            other => panic!("{other:?}"),
        }
        // Every member's chain holds the writes, applied in the same blocks.
        let mut tips = Vec::new();
        for node in &nodes {
            let tip = node
                .replicas()
                .unwrap()
                .applied(&owner.dataset)
                .await
                .expect("every member runs the replica");
            tips.push(tip);
        }
        assert!(tips.iter().all(|tip| tip.height >= 1));

        for node in nodes {
            node.shutdown().await;
        }
    });
}

#[test]
fn a_restarted_cluster_resumes_its_chains() {
    let dir = tempfile::tempdir().unwrap();
    let owner = test_owner();
    let root = |seq: u64| {
        let dir = dir.path().to_path_buf();
        let storage = dir.join("consensus");
        let config = commonware_runtime::tokio::Config::new().with_storage_directory(storage);
        let owner = test_owner();
        commonware_runtime::tokio::Runner::new(config).start(move |context| async move {
            let nodes = start_cluster(&context, &dir, 4).await;
            let gateway = NodeClient::connect(nodes[1].dial_addr(), Duration::from_secs(10))
                .await
                .unwrap();
            if seq == 1 {
                assert!(matches!(
                    write(&gateway, &create_for(&owner, &dir, 4)).await,
                    Response::Written { seq: 0, .. }
                ));
            }
            let put = put(&owner, seq, seq as u8, Precondition::Absent, no_indexes());
            let answer = write(&gateway, &put).await;
            assert!(
                matches!(answer, Response::Written { seq: s, .. } if s == seq),
                "{answer:?}"
            );
            let roots = converged(&nodes, &owner.dataset, seq).await;
            assert!(roots.windows(2).all(|w| w[0] == w[1]), "{roots:?}");
            for node in nodes {
                node.shutdown().await;
            }
            roots[0]
        })
    };
    let first = root(1);
    // Same directories: identities, stores, chains and consensus logs
    // resume, and the next write extends the same dataset.
    let second = root(2);
    assert_ne!(first, second);
    drop(owner);
}

#[test]
fn a_member_whose_disk_was_wiped_syncs_a_snapshot_and_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("consensus");
    let config = commonware_runtime::tokio::Config::new().with_storage_directory(storage);
    commonware_runtime::tokio::Runner::new(config).start(|context| async move {
        let (mut nodes, cluster) = start_cluster_with_config(&context, dir.path(), 4).await;
        let owner = test_owner();
        let gateway = NodeClient::connect(nodes[0].dial_addr(), Duration::from_secs(10))
            .await
            .unwrap();
        written(write(&gateway, &create_for(&owner, dir.path(), 4)).await, 0);
        put_all(&gateway, &owner, 1..=10).await;
        converged(&nodes, &owner.dataset, 10).await;

        // Member 3 stops and loses its store and chain (its identity key
        // stays: it is the same member). The cluster goes on without it.
        let wiped = nodes.pop().unwrap();
        let key = wiped.member_key();
        wiped.shutdown().await;
        let data_dir = dir.path().join("node-3");
        std::fs::remove_dir_all(data_dir.join("store")).unwrap();
        std::fs::remove_dir_all(data_dir.join("chain")).unwrap();
        put_all(&gateway, &owner, 11..=20).await;

        // Back with an empty disk: it syncs from a member and follows on.
        let back = start_member(&context, dir.path(), 3, &cluster).await;
        assert_eq!(back.member_key(), key);
        nodes.push(back);
        introduce(&nodes);
        put_all(&gateway, &owner, 21..=30).await;
        // It rebuilt the dataset from a snapshot (not by replaying).
        let replica = tokio::time::timeout(HANG_GUARD, async {
            loop {
                if let Some(replica) = nodes[3].replicas().unwrap().replica(&owner.dataset).await {
                    if replica.sync_report().is_some() {
                        return replica;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the wiped member did not sync");
        let report = replica.sync_report().unwrap();
        assert!(report.height >= 1, "{report:?}");
        assert_ne!(report.from, key);
        let floor = replica.chain().floor_height().unwrap().expect("a floor");
        assert_eq!(floor, report.height);
        // Its floor block carries the certificate it was checked against;
        // an altered certificate, another block or other keys fail.
        let anchor = replica.chain().floor().unwrap().expect("the floor block");
        let members = replica.members().to_vec();
        let verify = |block: &FinalizedBlock| {
            fluence_consensus::verify_finalization(&owner.dataset, 0, &members, block)
        };
        assert!(verify(&anchor).is_ok());
        let mut altered = anchor.clone();
        *altered.certificate.last_mut().unwrap() ^= 1;
        assert!(verify(&altered).is_err());
        let mut other = anchor.clone();
        other.block.timestamp_ms += 1;
        assert!(matches!(
            verify(&other).unwrap_err(),
            CertificateError::Check(fluence_chain::CertificateError::WrongBlock { .. })
        ));
        let strangers: Vec<PublicKey> = (1..=4u8)
            .map(|i| PublicKey(fluence_crypto::sign::SigningKey::from_seed(&[i; 32]).public_key()))
            .collect();
        assert!(
            fluence_consensus::verify_finalization(&owner.dataset, 0, &strangers, &anchor).is_err()
        );
        // It applies the blocks after its floor like every member, and
        // every document is there, those before the floor included.
        let put = put(&owner, 31, 31, Precondition::Absent, no_indexes());
        written(write(&gateway, &put).await, 31);
        let roots = converged(&nodes, &owner.dataset, 31).await;
        assert!(roots.windows(2).all(|w| w[0] == w[1]), "{roots:?}");
        assert!(replica.applied().height > floor);
        let store = nodes[3].service().store();
        for seq in 1..=31u8 {
            assert!(
                store
                    .get(&owner.dataset, &DocId([seq; 16]))
                    .unwrap()
                    .is_some(),
                "document {seq} missing on the synced member"
            );
        }
        for node in nodes {
            node.shutdown().await;
        }
    });
}

/// Creates the test owner's dataset on the cluster of the first four of
/// `nodes` (directories under `dir`) through a gateway connected to node
/// 0, writes documents 1..=`docs` and waits until the four apply them.
async fn four_with_documents(
    nodes: &[RunningNode],
    dir: &std::path::Path,
    docs: u64,
) -> (Owner, NodeClient) {
    let owner = test_owner();
    let gateway = NodeClient::connect(nodes[0].dial_addr(), Duration::from_secs(10))
        .await
        .unwrap();
    written(write(&gateway, &create_for(&owner, dir, 4)).await, 0);
    put_all(&gateway, &owner, 1..=docs).await;
    converged(&nodes[..4], &owner.dataset, docs).await;
    (owner, gateway)
}

/// Waits until `node` runs `dataset`'s replica in `epoch`.
async fn in_epoch(
    node: &RunningNode,
    dataset: &DatasetId,
    epoch: u64,
) -> Arc<fluence_node::cluster::Replica> {
    tokio::time::timeout(HANG_GUARD, async {
        loop {
            if let Some(replica) = node.replicas().unwrap().replica(dataset).await {
                if replica.epoch() == epoch {
                    return replica;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} never ran epoch {epoch}", node.member_key()))
}

#[test]
fn a_stopped_member_is_replaced_by_a_newcomer_that_syncs_and_votes() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("consensus");
    let config = commonware_runtime::tokio::Config::new().with_storage_directory(storage);
    commonware_runtime::tokio::Runner::new(config).start(|context| async move {
        // Five nodes; the dataset's cluster is the first four.
        let (mut nodes, cluster) = start_cluster_with_config(&context, dir.path(), 5).await;
        let (owner, gateway) = four_with_documents(&nodes, dir.path(), 10).await;
        let dataset = owner.dataset;

        // Member 3 stops for good. The fifth node accepts its seat for
        // epoch 1 (the offer a coordinator makes), and once the others
        // have not reached member 3 for the grace period they finalize
        // the change.
        let departed = nodes.remove(3);
        let departed_key = departed.member_key();
        departed.shutdown().await;
        let keys = signers(dir.path(), 5);
        let change = fluence_testkit::replacement(&dataset, 1, &keys[..4], 3, &keys[4]);
        let new_members: Vec<PublicKey> = change.members.iter().map(|seat| seat.key).collect();
        // Every node of the new list accepts it: the newcomer its seat,
        // the continuing members their place in epoch 1.
        for (i, node) in nodes.iter().enumerate() {
            let offered = node.replicas().unwrap().offer(dataset, 1, &new_members);
            assert_eq!(
                offered,
                Response::Offer(fluence_proto::OfferAnswer::Accepted(
                    change.members[i].acceptance
                )),
                "node {i} accepts the list it is offered"
            );
        }
        // A continuing member accepts no list that skips an epoch or
        // replaces two seats.
        let mut two_replaced = new_members.clone();
        two_replaced[0] = PublicKey(SigningKey::from_seed(&[77; 32]).public_key());
        for (epoch, list) in [(2, &new_members), (1, &two_replaced)] {
            assert_eq!(
                nodes[1].replicas().unwrap().offer(dataset, epoch, list),
                Response::Error(NodeError::DatasetExists)
            );
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for node in &nodes[..3] {
            let detector = node.replicas().unwrap().detector();
            assert!(detector.unreachable(&departed_key));
            let replica = node.replicas().unwrap().replica(&dataset).await.unwrap();
            replica.propose_change(change.clone()).unwrap();
        }

        // Every continuing member moves to epoch 1 and keeps the change;
        // the newcomer learns the membership from them and syncs.
        for node in &nodes {
            in_epoch(node, &dataset, 1).await;
            let cluster = node
                .replicas()
                .unwrap()
                .memberships()
                .cluster(&dataset)
                .unwrap();
            assert_eq!(cluster.current.epoch, 1);
            assert_eq!(cluster.current.members, new_members);
            assert_eq!(cluster.changes.len(), 1);
        }
        // A gateway asking for the route learns the new members, and can
        // check the change from the owner's Create on.
        let Response::Route(route) = nodes[1].replicas().unwrap().route(&dataset) else {
            panic!("no route")
        };
        let mut reader = fluence_proto::Reader::new(&route.changes);
        let history = fluence_chain::ClusterHistory {
            create: route.create.clone(),
            changes: reader.vec(16, "changes").unwrap(),
        };
        let epochs = fluence_chain::verify_history(&history).unwrap();
        assert_eq!(epochs.last().unwrap().members, new_members);
        let routed: Vec<PublicKey> = route.addrs.iter().map(|a| a.key).collect();
        assert_eq!(routed, new_members);
        put_all(&gateway, &owner, 11..=20).await;
        converged(&nodes, &dataset, 20).await;
        let newcomer = in_epoch(&nodes[3], &dataset, 1).await;
        let report = newcomer
            .sync_report()
            .expect("the newcomer synced from a snapshot");
        assert!(report.height >= 12, "synced at {report:?}");

        // A second member stops: every block now needs the newcomer's
        // votes, and writes still go through.
        let stopped = nodes.remove(2);
        stopped.shutdown().await;
        put_all(&gateway, &owner, 21..=25).await;
        let roots = converged(&nodes, &dataset, 25).await;
        assert!(roots.windows(2).all(|w| w[0] == w[1]), "{roots:?}");
        let store = nodes[2].service().store();
        for seq in 1..=25u8 {
            assert!(
                store.get(&dataset, &DocId([seq; 16])).unwrap().is_some(),
                "document {seq} missing on the newcomer"
            );
        }

        // A restarted continuing member comes back in epoch 1 from its
        // files.
        let restarted_key = nodes[1].member_key();
        let member = nodes.remove(1);
        member.shutdown().await;
        let back = start_member(&context, dir.path(), 1, &cluster).await;
        assert_eq!(back.member_key(), restarted_key);
        nodes.insert(1, back);
        introduce(&nodes);
        let put = put(&owner, 26, 26, Precondition::Absent, no_indexes());
        written(write(&gateway, &put).await, 26);
        converged(&nodes, &dataset, 26).await;
        in_epoch(&nodes[1], &dataset, 1).await;

        // The replaced member comes back: a member tells it the cluster
        // changed, and it drops its copy.
        let back = start_member(&context, dir.path(), 3, &cluster).await;
        assert_eq!(back.member_key(), departed_key);
        nodes.push(back);
        introduce(&nodes);
        let gone = tokio::time::timeout(HANG_GUARD, async {
            loop {
                let node = nodes.last().unwrap();
                let replicas = node.replicas().unwrap();
                if replicas.memberships().cluster(&dataset).is_none()
                    && replicas.replica(&dataset).await.is_none()
                    && node.service().store().info(&dataset).is_err()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(gone.is_ok(), "the replaced member kept the dataset");
        for node in nodes {
            node.shutdown().await;
        }
    });
}

/// Waits until `nodes` all keep `dataset`'s membership at `epoch`, and
/// returns it.
async fn membership_at(nodes: &[&RunningNode], dataset: &DatasetId, epoch: u64) -> Vec<PublicKey> {
    tokio::time::timeout(HANG_GUARD, async {
        loop {
            let lists: Vec<Option<Vec<PublicKey>>> = nodes
                .iter()
                .map(|node| {
                    let cluster = node.replicas().unwrap().memberships().cluster(dataset)?;
                    (cluster.current.epoch == epoch).then(|| cluster.current.members.clone())
                })
                .collect();
            if let Some(Some(first)) = lists.first() {
                if lists.iter().all(|list| list.as_ref() == Some(first)) {
                    return first.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the members never agreed on epoch {epoch}"))
}

#[test]
fn the_coordinator_replaces_a_stopped_member_and_a_member_hands_its_seat_over() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("consensus");
    let config = commonware_runtime::tokio::Config::new().with_storage_directory(storage);
    commonware_runtime::tokio::Runner::new(config).start(|context| async move {
        // Six nodes of an open network, joined through node 0; the
        // dataset's cluster is the first four.
        let (first, cluster) = start_cluster_with_config(&context, dir.path(), 1).await;
        let bootstrap = vec![first[0].dial_addr()];
        let mut nodes = first;
        for i in 1..6 {
            let node =
                start_member_joining(&context, dir.path(), i, &cluster, bootstrap.clone()).await;
            nodes.push(node);
        }
        introduce(&nodes);
        let keys: Vec<PublicKey> = nodes.iter().map(RunningNode::member_key).collect();
        // Every node must be in node 0's routing table before a lookup
        // can find the candidates.
        tokio::time::timeout(HANG_GUARD, async {
            loop {
                let status = nodes[0].discovery().status().await.unwrap();
                if status.routing_table_size() >= 5 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .expect("node 0 never knew every node");
        let (owner, gateway) = four_with_documents(&nodes, dir.path(), 5).await;
        let dataset = owner.dataset;

        // Member 2 stops. Nobody proposes by hand: after the grace period
        // the coordinator finds one of the two free nodes, gathers every
        // acceptance and proposes; the cluster moves to epoch 1 with
        // member 2's seat taken at the same position.
        let stopped = nodes.remove(2);
        stopped.shutdown().await;
        let continuing: Vec<&RunningNode> = vec![&nodes[0], &nodes[1], &nodes[2]];
        let epoch1 = membership_at(&continuing, &dataset, 1).await;
        let newcomer = epoch1[2];
        assert_eq!(
            [epoch1[0], epoch1[1], epoch1[3]],
            [keys[0], keys[1], keys[3]]
        );
        assert!(newcomer == keys[4] || newcomer == keys[5], "{newcomer}");
        let newcomer_node = nodes
            .iter()
            .position(|node| node.member_key() == newcomer)
            .unwrap();
        put_all(&gateway, &owner, 6..=10).await;
        let members: Vec<&RunningNode> = [0, 1, 2, newcomer_node].map(|i| &nodes[i]).to_vec();
        membership_at(&members, &dataset, 1).await;
        let owned: Vec<usize> = vec![0, 1, 2, newcomer_node];

        // Member 1 leaves gracefully: its signed departure; the seat goes
        // to the last free node (the stopped one does not answer), and
        // the leaver drops its copy once the change is finalized.
        let leaver = nodes[1].replicas().unwrap();
        let signature = fluence_chain::sign_departure(&signers(dir.path(), 2)[1], &dataset, 1);
        // A departure signed by another key, or for another epoch, is refused.
        let forged = fluence_chain::sign_departure(&signers(dir.path(), 1)[0], &dataset, 1);
        assert_eq!(
            leaver.leave(dataset, 1, forged).await,
            Err(NodeError::BadSignature)
        );
        assert!(matches!(
            leaver.leave(dataset, 0, signature).await,
            Err(NodeError::BadRequest(_))
        ));
        let (epoch, second) = leaver.leave(dataset, 1, signature).await.unwrap();
        assert_eq!(epoch, 2);
        let free = keys[4..].iter().find(|key| **key != newcomer).unwrap();
        assert_eq!(second, *free);
        let staying: Vec<&RunningNode> = owned
            .iter()
            .filter(|i| **i != 1)
            .map(|i| &nodes[*i])
            .collect();
        let epoch2 = membership_at(&staying, &dataset, 2).await;
        assert_eq!(epoch2, vec![keys[0], second, newcomer, keys[3]]);
        put_all(&gateway, &owner, 11..=15).await;
        let second_node = nodes
            .iter()
            .position(|node| node.member_key() == second)
            .unwrap();
        let all: Vec<&RunningNode> = [0, 2, newcomer_node, second_node]
            .map(|i| &nodes[i])
            .to_vec();
        membership_at(&all, &dataset, 2).await;
        tokio::time::timeout(HANG_GUARD, async {
            loop {
                let seqs: Vec<Option<u64>> = all
                    .iter()
                    .map(|node| node.service().store().info(&dataset).ok().map(|i| i.seq))
                    .collect();
                if seqs.iter().all(|seq| *seq == Some(15)) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the new members never applied every write");
        let roots: Vec<Hash32> = all
            .iter()
            .map(|node| node.service().store().info(&dataset).unwrap().state_root)
            .collect();
        assert!(roots.windows(2).all(|w| w[0] == w[1]), "{roots:?}");
        let store = nodes[second_node].service().store();
        for seq in 1..=15u8 {
            assert!(store.get(&dataset, &DocId([seq; 16])).unwrap().is_some());
        }
        let left = nodes[1].replicas().unwrap();
        assert!(left.memberships().cluster(&dataset).is_none());
        for node in nodes {
            node.shutdown().await;
        }
    });
}
