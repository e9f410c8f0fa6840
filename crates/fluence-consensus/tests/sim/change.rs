//! A membership change under write load: one of four members stops, the
//! others finalize the change that gives its seat to a newcomer, every
//! continuing member restarts in the new epoch on the change block, the
//! newcomer syncs from their snapshot, and the cluster goes on finalizing
//! with the new membership, even once a second member stops and the
//! newcomer's votes are needed for every block.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use commonware_p2p::simulated::Network;
use commonware_p2p::Manager as _;
use commonware_runtime::{deterministic, Clock, Runner, Spawner, Supervisor as _};
use commonware_utils::ordered::Set;
use fluence_consensus::keys::to_public_key;
use fluence_consensus::{Behavior, EpochStart};
use fluence_proto::PublicKey;
use rand::{Rng, SeedableRng};

use super::adversary::Key;
use super::check::{check, fingerprint, highest_height};
use super::cluster::{connect, insert, network_config, start_node, test_owner, Membership, Node};
use super::run::{submit_until_acked, wait_for, Acked, Nodes};

/// Members of the cluster (the newcomer is one more node).
const MEMBERS: usize = 4;
/// Client writes, spread over the whole run.
const WRITES: u64 = 30;
/// Simulated time the run may take.
const RUN_DEADLINE: Duration = Duration::from_secs(240);

/// What one replacement run ended with.
#[derive(Debug)]
pub struct ChangeStats {
    /// Height of the block carrying the change (the new epoch's base).
    pub base_height: u64,
    /// Height of the last acknowledged write.
    pub height: u64,
    pub acked: usize,
    /// Height of the block the newcomer's snapshot was taken at.
    pub synced_at: u64,
    /// Writes acknowledged after a second member stopped (so with the
    /// newcomer's votes).
    pub acked_with_newcomer: usize,
    pub fingerprint: String,
}

pub fn replace_one(seed: u64) -> ChangeStats {
    let config = deterministic::Config::new()
        .with_seed(seed)
        .with_timeout(Some(RUN_DEADLINE));
    deterministic::Runner::new(config).start(|context| async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0xc4a6);
        let nodes: Vec<Node> = (0..=MEMBERS)
            .map(|i| Node::new(seed, i, Behavior::Honest))
            .collect();
        let newcomer = MEMBERS;
        let departed = rng.gen_range(0..MEMBERS);
        let keys: Vec<Key> = nodes.iter().map(|n| n.key.clone()).collect();
        let members: Vec<PublicKey> = keys[..MEMBERS].iter().map(to_public_key).collect();
        let signers: Vec<fluence_crypto::sign::SigningKey> = nodes
            .iter()
            .map(|node| fluence_crypto::sign::SigningKey::from_seed(&node.secret))
            .collect();
        let owner = Arc::new(test_owner(seed));
        let (network, oracle) = Network::new_with_peers(
            context.child("network"),
            network_config(MEMBERS + 1),
            keys[..MEMBERS].to_vec(),
        )
        .await;
        network.start();
        connect(&oracle, &keys, true).await;
        let genesis = Membership {
            accepts_changes: true,
            ..Membership::genesis(&members)
        };
        let nodes: Nodes = Arc::new(Mutex::new(nodes));
        for i in 0..MEMBERS {
            let spec = nodes.lock().unwrap()[i].spec();
            let handle = start_node(&context, &oracle, spec, &genesis, owner.dataset, None).await;
            nodes.lock().unwrap()[i].handle = Some(handle);
        }

        // The client writes throughout, resubmitting to another running
        // member when one is slow, stopped, or between epochs.
        let acked: Acked = Arc::default();
        let create = owner.create_for_cluster(&signers[..MEMBERS]);
        let genesis_create = create.clone();
        let client = context.child("client").spawn({
            let nodes = Arc::clone(&nodes);
            let acked = Arc::clone(&acked);
            let owner = Arc::clone(&owner);
            move |context| async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0xc11e);
                submit_until_acked(&context, &nodes, &create, &acked, &mut rng).await;
                for seq in 1..=WRITES {
                    let write = insert(&owner, seq, 1 + seq % 2);
                    submit_until_acked(&context, &nodes, &write, &acked, &mut rng).await;
                    context.sleep(Duration::from_millis(300)).await;
                }
            }
        });

        // One member stops for good once the dataset has some history.
        wait_for(&context, &nodes, Duration::from_secs(60), |_| {
            (acked.lock().unwrap().len() < 6).then(|| "six acknowledged writes".to_string())
        })
        .await;
        let stopped = nodes.lock().unwrap()[departed]
            .handle
            .take()
            .expect("running");
        stopped.crash().await;

        // Every continuing member proposes the change (any may lead the
        // view that puts it in a block); each votes for it.
        let change = fluence_testkit::replacement(
            &owner.dataset,
            1,
            &signers[..MEMBERS],
            departed,
            &signers[newcomer],
        );
        let new_members: Vec<PublicKey> = change.members.iter().map(|seat| seat.key).collect();
        for node in nodes.lock().unwrap().iter() {
            if let Some(handle) = &node.handle {
                handle
                    .propose_change(change.clone())
                    .expect("a valid change of epoch 0");
            }
        }
        wait_for(&context, &nodes, Duration::from_secs(60), |nodes| {
            let waiting = nodes
                .iter()
                .filter_map(|n| n.handle.as_ref())
                .filter(|h| h.epoch_end().is_none())
                .count();
            (waiting > 0).then(|| format!("{waiting} members have not applied the change"))
        })
        .await;
        let ends: Vec<_> = nodes
            .lock()
            .unwrap()
            .iter()
            .filter_map(|n| n.handle.as_ref())
            .map(|h| h.epoch_end().expect("applied"))
            .collect();
        // Each member's proof convinces a newcomer of the new membership.
        let create_history = |end: &fluence_chain::CertifiedChange| fluence_chain::ClusterHistory {
            create: genesis_create.clone(),
            changes: vec![end.clone()],
        };
        for end in &ends {
            let epochs = fluence_chain::verify_history(&create_history(end))
                .expect("the change's proof checks out");
            assert_eq!(epochs[1].members, new_members);
        }
        let ends: Vec<_> = ends
            .into_iter()
            .map(|end| end.base().expect("a change block").clone())
            .collect();
        let base = ends[0].clone();
        assert!(
            ends.iter().all(|b| b.hash() == base.hash()),
            "members ended epoch 0 on different blocks"
        );
        assert_eq!(
            base.change.as_ref(),
            Some(&change),
            "the change block carries the change"
        );
        assert!(base.writes.is_empty(), "a change block carries no writes");

        // The new epoch: the network tracks the new members; the
        // continuing ones restart on the change block, the newcomer
        // starts empty.
        let _ = oracle.manager().track(
            1,
            Set::from_iter_dedup(
                keys.iter()
                    .enumerate()
                    .filter(|(i, _)| *i != departed)
                    .map(|(_, k)| k.clone()),
            ),
        );
        let epoch_one = Membership {
            members: new_members.clone(),
            epoch: EpochStart::Change {
                epoch: 1,
                base: base.clone(),
            },
            accepts_changes: true,
        };
        for i in (0..=MEMBERS).filter(|&i| i != departed) {
            let old = nodes.lock().unwrap()[i].handle.take();
            if let Some(old) = old {
                old.crash().await;
            }
            let spec = nodes.lock().unwrap()[i].spec();
            let handle = start_node(&context, &oracle, spec, &epoch_one, owner.dataset, None).await;
            nodes.lock().unwrap()[i].handle = Some(handle);
        }

        // Once the newcomer holds the state, a continuing member stops
        // too: the new epoch then finalizes only with the newcomer's votes.
        let newcomer_key = to_public_key(&keys[newcomer]);
        wait_for(&context, &nodes, Duration::from_secs(60), |nodes| {
            let synced = nodes[newcomer]
                .handle
                .as_ref()
                .is_some_and(|h| h.sync_report().is_some() && !h.syncing());
            (!synced).then(|| "the newcomer has not synced".to_string())
        })
        .await;
        let second = loop {
            let candidate = rng.gen_range(0..MEMBERS);
            if candidate != departed {
                break candidate;
            }
        };
        let stopped = nodes.lock().unwrap()[second]
            .handle
            .take()
            .expect("running");
        stopped.crash().await;
        let acked_before = acked.lock().unwrap().len();

        client.await.expect("client task");
        let target = highest_height(&acked.lock().unwrap());
        assert!(
            target > base.height,
            "writes were finalized in the new epoch"
        );
        wait_for(&context, &nodes, Duration::from_secs(60), |nodes| {
            let behind = nodes
                .iter()
                .filter_map(|n| n.handle.as_ref())
                .filter(|h| h.applied().height < target || h.fault().is_some())
                .count();
            (behind > 0).then(|| format!("{behind} members did not reach height {target}"))
        })
        .await;

        let acked_after = acked.lock().unwrap().len() - acked_before;
        assert!(
            acked_after > 0,
            "no write acknowledged once the newcomer's votes were needed"
        );

        // The two stopped members are not part of the checks.
        let mut nodes = nodes.lock().unwrap();
        nodes.retain(|n| n.handle.is_some());
        assert_eq!(nodes.len(), MEMBERS - 1);
        let newcomer = nodes
            .iter()
            .find(|n| n.public_key() == newcomer_key)
            .and_then(|n| n.handle.as_ref())
            .expect("the newcomer runs");
        let synced_at = newcomer
            .sync_report()
            .expect("the newcomer synced from a snapshot")
            .height;
        assert!(
            synced_at >= base.height,
            "the newcomer's snapshot predates the change"
        );
        assert_eq!(newcomer.members(), {
            let mut sorted = new_members.clone();
            sorted.sort();
            sorted
        });
        let acked = acked.lock().unwrap();
        // Every member of the new epoch holds the same chain from where it
        // starts, its store at its tip, and every acknowledged write.
        check(&nodes, &acked, owner.dataset, target);
        ChangeStats {
            base_height: base.height,
            height: target,
            acked: acked.len(),
            synced_at,
            acked_with_newcomer: acked_after,
            fingerprint: fingerprint(&nodes, &acked, ""),
        }
    })
}
