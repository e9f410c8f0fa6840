//! Operations commands: `fluence status` (each node's place in the
//! network, its cluster and datasets), `fluence chain show` (a dataset's
//! finalized blocks), `fluence dht closest` (the nodes closest to a
//! key) and `fluence leave` (a node hands its seats over). All ask nodes
//! directly over `/fluence/rpc/2` (`Request::Ops`); no gateway is
//! involved.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use fluence_chain::Block;
use fluence_net::discovery::wire;
use fluence_net::keyspace::{self, Target};
use fluence_net::{Multiaddr, NodeClient, PeerId};
use fluence_proto::ops::{ClosestPeers, DhtTarget, NetworkStatus};
use fluence_proto::{
    ChainSlice, DatasetId, NodeStatus, OpsRequest, OpsResponse, PublicKey, Request, Response,
};
use serde_json::{json, Value};

use crate::keys;

/// How long a node may take to accept the connection and answer.
const NODE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a node may take to answer a lookup: its own lookup timeout
/// (10 s by default) and some margin.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a node may take to hand a seat over: its own wait for the
/// change to be finalized (`fluence_node::coordinator::LEAVE_TIMEOUT`)
/// and some margin.
const LEAVE_ANSWER_TIMEOUT: Duration = Duration::from_secs(150);
/// The file a devnet writes its nodes' dial addresses to, one per line.
pub const DEVNET_NODES_FILE: &str = "nodes.txt";

/// The nodes to ask: the `--node` addresses, else those of the devnet in
/// `devnet` (written when it started).
pub fn nodes(addrs: Vec<Multiaddr>, devnet: &Path) -> Result<Vec<Multiaddr>> {
    if !addrs.is_empty() {
        return Ok(addrs);
    }
    let path = devnet.join(DEVNET_NODES_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no --node given and no devnet node list at {} (is `fluence devnet` running there?)",
            path.display()
        )
    })?;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        out.push(
            line.parse()
                .with_context(|| format!("{}: {line:?} is not a multiaddr", path.display()))?,
        );
    }
    if out.is_empty() {
        bail!("{} lists no node", path.display());
    }
    Ok(out)
}

/// Writes the devnet's node list (see [`nodes`]).
pub fn write_devnet_nodes(dir: &Path, addrs: &[Multiaddr]) -> Result<()> {
    let path = dir.join(DEVNET_NODES_FILE);
    let text: String = addrs.iter().map(|a| format!("{a}\n")).collect();
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

async fn ask(addr: &Multiaddr, request: OpsRequest) -> Result<OpsResponse> {
    ask_within(addr, request, NODE_TIMEOUT).await
}

async fn ask_within(
    addr: &Multiaddr,
    request: OpsRequest,
    answer_timeout: Duration,
) -> Result<OpsResponse> {
    let client = tokio::time::timeout(
        NODE_TIMEOUT,
        NodeClient::connect(addr.clone(), NODE_TIMEOUT),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no connection within {NODE_TIMEOUT:?}"))?
    .with_context(|| format!("connecting to {addr}"))?;
    let answer = tokio::time::timeout(answer_timeout, client.call(&Request::Ops(request)))
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {answer_timeout:?}"))?
        .with_context(|| format!("asking {addr}"))?;
    match answer {
        Response::Ops(answer) => Ok(answer),
        Response::Error(error) => bail!("{addr}: {error}"),
        other => bail!("{addr} answered something else: {other:?}"),
    }
}

fn short(key: &PublicKey) -> String {
    key.to_hex()[..12].to_string()
}

/// `fluence status`: asks every node, prints one table (or JSON).
pub async fn status(addrs: Vec<Multiaddr>, as_json: bool) -> Result<()> {
    let mut answers: Vec<(Multiaddr, Result<NodeStatus>)> = Vec::new();
    for addr in addrs {
        let answer = match ask(&addr, OpsRequest::Status).await {
            Ok(OpsResponse::Status(status)) => Ok(status),
            Ok(_) => Err(anyhow::anyhow!("{addr} answered with something else")),
            Err(error) => Err(error),
        };
        answers.push((addr, answer));
    }
    // The highest height any node has seen finalized, per dataset.
    let mut highest: BTreeMap<DatasetId, u64> = BTreeMap::new();
    for (_, answer) in &answers {
        if let Ok(status) = answer {
            for d in &status.datasets {
                let h = highest.entry(d.dataset).or_default();
                *h = (*h).max(d.finalized_height).max(d.applied_height);
            }
        }
    }
    let lag =
        |d: &fluence_proto::DatasetStatus| highest[&d.dataset].saturating_sub(d.applied_height);
    if as_json {
        let nodes: Vec<Value> = answers
            .iter()
            .map(|(addr, answer)| match answer {
                Ok(status) => json!({
                    "address": addr.to_string(),
                    "node": status.node.to_hex(),
                    "network": status.network.as_ref().map(network_json),
                    "members": status.members.iter().map(|m| json!({
                        "key": m.key.to_hex(),
                        "addresses": m.addrs,
                        "local": m.local,
                        "connected": m.connected,
                    })).collect::<Vec<_>>(),
                    "datasets": status.datasets.iter().map(|d| json!({
                        "dataset": d.dataset.to_hex(),
                        "finalized_height": d.finalized_height,
                        "applied_height": d.applied_height,
                        "lag": lag(d),
                        "state_root": d.state_root.to_hex(),
                        "floor_height": d.floor_height,
                        "syncing": d.syncing,
                        "fault": d.fault,
                        "epoch": d.epoch,
                        "members": d.members.iter().map(|k| k.to_hex()).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                }),
                Err(error) => json!({"address": addr.to_string(), "error": format!("{error:#}")}),
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "nodes": nodes }))?
        );
        return Ok(());
    }
    for (addr, answer) in &answers {
        match answer {
            Ok(status) => {
                let connected = status.members.iter().filter(|m| m.connected).count();
                if status.members.is_empty() {
                    println!(
                        "node {} at {addr}: runs alone, no cluster",
                        short(&status.node)
                    );
                } else {
                    println!(
                        "node {} at {addr}: serves {} dataset(s); shares clusters with {} node(s), {} reachable",
                        short(&status.node),
                        status.datasets.len(),
                        status.members.len().saturating_sub(1),
                        connected.saturating_sub(1)
                    );
                }
                match &status.network {
                    Some(network) => print_network(network),
                    None => println!("  network: no discovery"),
                }
                for m in &status.members {
                    let state = match (m.local, m.connected) {
                        (true, _) => "this node",
                        (false, true) => "connected",
                        (false, false) => "not connected",
                    };
                    let addrs = m.addrs.join(" ");
                    println!("  member {}  {state:<13}  {addrs}", short(&m.key));
                }
                for d in &status.datasets {
                    let members: Vec<String> = d.members.iter().map(short).collect();
                    println!(
                        "  dataset {}  cluster {}",
                        &d.dataset.to_hex()[..12],
                        members.join(" ")
                    );
                }
            }
            Err(error) => println!("node at {addr}: unreachable: {error:#}"),
        }
    }
    println!();
    println!(
        "{:<14} {:<14} {:>5} {:>10} {:>10} {:>6}  {:<16}  note",
        "dataset", "node", "epoch", "finalized", "applied", "lag", "state root"
    );
    for (_, answer) in &answers {
        let Ok(status) = answer else { continue };
        for d in &status.datasets {
            let mut note = Vec::new();
            if d.syncing {
                note.push("syncing".to_string());
            }
            if let Some(floor) = d.floor_height {
                note.push(format!("synced at {floor}"));
            }
            if let Some(fault) = &d.fault {
                note.push(format!("FAULT: {fault}"));
            }
            println!(
                "{:<14} {:<14} {:>5} {:>10} {:>10} {:>6}  {:<16}  {}",
                &d.dataset.to_hex()[..12],
                short(&status.node),
                d.epoch,
                d.finalized_height,
                d.applied_height,
                lag(d),
                &d.state_root.to_hex()[..16],
                note.join(", ")
            );
        }
    }
    Ok(())
}

/// A peer id from the wire, as text (or what is wrong with it).
fn peer_text(bytes: &fluence_proto::ops::PeerIdBytes) -> String {
    match wire::parse_peer_id(bytes) {
        Ok(peer) => peer.to_string(),
        Err(error) => format!("<{error}>"),
    }
}

fn network_json(network: &NetworkStatus) -> Value {
    json!({
        "peer_id": peer_text(&network.peer_id),
        "listen_addrs": network.listen_addrs,
        "connected": network.connected.iter().map(peer_text).collect::<Vec<_>>(),
        "routing_table_size": network.routing_table_size(),
        "buckets": network.buckets.iter().map(|b| json!({
            "index": b.index,
            "entries": b.entries,
        })).collect::<Vec<_>>(),
    })
}

fn print_network(network: &NetworkStatus) {
    println!("  peer id {}", peer_text(&network.peer_id));
    println!("  listening on {}", network.listen_addrs.join(" "));
    let buckets: Vec<String> = network
        .buckets
        .iter()
        .map(|b| format!("{}:{}", b.index, b.entries))
        .collect();
    println!(
        "  {} connected peers; routing table {} peers (bucket:entries {})",
        network.connected.len(),
        network.routing_table_size(),
        if buckets.is_empty() {
            "none".to_string()
        } else {
            buckets.join(" ")
        }
    );
}

/// A lookup target named on the command line: a 64-digit hex dataset id,
/// a peer id, or a dataset name of the owner key in `key`.
pub fn resolve_target(text: &str, key: &Path) -> Result<Target> {
    // A hex dataset id first: it is never meant as a peer id.
    if let Ok(id) = DatasetId::from_hex(text) {
        return Ok(Target::Dataset(id));
    }
    if let Ok(peer) = text.parse::<PeerId>() {
        return Ok(Target::Peer(peer));
    }
    resolve_dataset(text, key)
        .map(Target::Dataset)
        .with_context(|| format!("{text:?} is not a peer id (12D3...) either"))
}

/// `fluence dht closest`: asks one node to look up the nodes closest to
/// `target` and prints them with their distances.
pub async fn dht_closest(addr: Multiaddr, target: Target, count: u8, as_json: bool) -> Result<()> {
    let request = OpsRequest::Closest {
        target: DhtTarget::from(&target),
        count,
    };
    let closest: ClosestPeers = match ask_within(&addr, request, LOOKUP_TIMEOUT).await? {
        OpsResponse::Closest(closest) => closest,
        _ => bail!("{addr} answered with something else"),
    };
    let mut rows = Vec::with_capacity(closest.peers.len());
    for found in &closest.peers {
        let peer = wire::parse_peer_id(&found.peer).with_context(|| format!("{addr} answered"))?;
        let distance = keyspace::distance(&target, &peer);
        rows.push((peer, distance, &found.addrs));
    }
    let position = hex::encode(target.key().hashed_bytes());
    if as_json {
        let peers: Vec<Value> = rows
            .iter()
            .map(|(peer, distance, addrs)| {
                json!({
                    "peer_id": peer.to_string(),
                    "distance": hex::encode(keyspace::distance_bytes(distance)),
                    "bucket": keyspace::bucket_index(distance),
                    "addrs": addrs,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "target": target.to_string(),
                "key": position,
                "node": addr.to_string(),
                "complete": closest.complete,
                "peers": peers,
            }))?
        );
        return Ok(());
    }
    println!("{target}: key {position}");
    println!("{} closest, as found by {addr}:", rows.len());
    for (peer, distance, addrs) in &rows {
        let bucket = keyspace::bucket_index(distance).map_or("-".to_string(), |b| b.to_string());
        let distance_hex = hex::encode(keyspace::distance_bytes(distance));
        let addrs = if addrs.is_empty() {
            "(the node asked)".to_string()
        } else {
            addrs.join(" ")
        };
        println!(
            "  {peer}  log2 distance {bucket:>3}  {}…  {addrs}",
            &distance_hex[..16]
        );
    }
    if !closest.complete {
        println!("(the lookup ran out of time: these are the closest it had found)");
    }
    Ok(())
}

/// A dataset named on the command line: a 64-digit hex id, or a name of
/// the owner key in `key` (unlocked with its passphrase).
pub fn resolve_dataset(text: &str, key: &Path) -> Result<DatasetId> {
    if text.len() == 64 {
        if let Ok(id) = DatasetId::from_hex(text) {
            return Ok(id);
        }
    }
    if !key.exists() {
        bail!(
            "{text:?} is not a dataset id (64 hex digits), and naming a dataset needs its owner key: {} does not exist (use --key)",
            key.display()
        );
    }
    let master = keys::unlock(key)?;
    let name_tag = master.catalog_key().name_tag(text);
    Ok(DatasetId(fluence_crypto::keys::dataset_id(
        &master.owner_public_key(),
        &name_tag,
    )))
}

/// The default owner key of `chain show`: the devnet's.
pub fn devnet_key(devnet: &Path) -> PathBuf {
    devnet.join("keys").join("owner.key")
}

/// What to show of a chain.
pub struct ChainQuery {
    pub dataset: DatasetId,
    /// One block, or the newest `limit` when `None`.
    pub height: Option<u64>,
    pub limit: u32,
}

/// `fluence chain show`: asks one node for blocks and prints them.
pub async fn chain_show(addr: Multiaddr, query: ChainQuery, as_json: bool) -> Result<()> {
    let request = OpsRequest::Chain {
        dataset: query.dataset,
        from: query.height,
        limit: if query.height.is_some() {
            1
        } else {
            query.limit
        },
    };
    let slice = match ask(&addr, request).await? {
        OpsResponse::Chain(slice) => slice,
        _ => bail!("{addr} answered with something else"),
    };
    if let Some(height) = query.height {
        if !slice
            .blocks
            .first()
            .is_some_and(|b| Block::from_untrusted(&b.block).is_ok_and(|b| b.height == height))
        {
            match slice.floor {
                Some(floor) if height < floor => bail!(
                    "{addr} holds this chain from height {floor} on: it rebuilt the dataset from a snapshot at that block and never stored the blocks below"
                ),
                _ => bail!("{addr} holds no block {height} (its chain tip is {})", slice.tip),
            }
        }
    }
    let epochs = epochs_of(&addr, &query.dataset, &slice).await;
    let blocks = describe(&slice, &query.dataset, &epochs)?;
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "dataset": query.dataset.to_hex(),
                "node": addr.to_string(),
                "tip": slice.tip,
                "floor": slice.floor,
                "blocks": blocks,
            }))?
        );
        return Ok(());
    }
    println!(
        "chain of {} at {addr}: tip {}{}",
        query.dataset,
        slice.tip,
        match slice.floor {
            Some(floor) => format!(
                ", held from {floor} (synced from a snapshot there; blocks below are not stored on this node)"
            ),
            None => String::new(),
        }
    );
    for block in &blocks {
        print_block(block);
    }
    Ok(())
}

/// The dataset's membership epochs, from the node's route (checked from
/// the owner's `Create` on); a node that gives none (one running alone)
/// is taken to report its genesis members.
async fn epochs_of(
    addr: &Multiaddr,
    dataset: &DatasetId,
    slice: &ChainSlice,
) -> Vec<fluence_chain::Epoch> {
    let genesis = || {
        vec![fluence_chain::Epoch {
            epoch: fluence_proto::cluster::GENESIS_EPOCH,
            members: slice.members.clone(),
            base: None,
        }]
    };
    let Ok(Ok(client)) = tokio::time::timeout(
        NODE_TIMEOUT,
        NodeClient::connect(addr.clone(), NODE_TIMEOUT),
    )
    .await
    else {
        return genesis();
    };
    let route = tokio::time::timeout(
        NODE_TIMEOUT,
        client.call(&Request::Route { dataset: *dataset }),
    )
    .await;
    match route {
        Ok(Ok(Response::Route(answer))) => {
            fluence_client::network::check_route(dataset, &answer).unwrap_or_else(|_| genesis())
        }
        _ => genesis(),
    }
}

/// Each block of `slice` as JSON, its certificate decoded and checked
/// against the members of the epoch that certified it.
fn describe(
    slice: &ChainSlice,
    dataset: &DatasetId,
    epochs: &[fluence_chain::Epoch],
) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for record in &slice.blocks {
        let block = Block::from_untrusted(&record.block).context("a block the node sent")?;
        let finalized = fluence_chain::FinalizedBlock {
            block: block.clone(),
            certificate: record.certificate.clone(),
        };
        let epoch = fluence_client::reads::certifying_epoch(epochs, block.height);
        let certificate = match epoch {
            _ if record.certificate.is_empty() => {
                json!({"kind": "through a descendant's certificate"})
            }
            None => {
                json!({"kind": "unchecked", "problem": "no membership epoch is known for this height"})
            }
            Some(epoch) => match fluence_consensus::certificate::decode(
                &record.certificate,
                epoch.members.len(),
            ) {
                Ok(decoded) => {
                    let signers = fluence_consensus::certificate::signers(&decoded, &epoch.members)
                        .unwrap_or_default();
                    let verified = fluence_consensus::verify_finalization(
                        dataset,
                        epoch.epoch,
                        &epoch.members,
                        &finalized,
                    );
                    json!({
                        "kind": "finalization",
                        "epoch": epoch.epoch,
                        "view": decoded.proposal.round.view().get(),
                        "signers": signers.iter().map(|k| k.to_hex()).collect::<Vec<_>>(),
                        "verified": verified.is_ok(),
                        "problem": verified.err().map(|e| e.to_string()),
                    })
                }
                Err(error) => json!({"kind": "undecodable", "problem": error.to_string()}),
            },
        };
        out.push(json!({
            "height": block.height,
            "hash": block.hash().to_hex(),
            "parent": block.parent.to_hex(),
            "timestamp_ms": block.timestamp_ms,
            "writes": block.writes.len(),
            "seqs": block.writes.first().map(|w| [w.body.seq, block.writes.last().map_or(w.body.seq, |l| l.body.seq)]),
            "state_root": block.state_root.to_hex(),
            "membership_change": block.change.as_ref().map(|change| json!({
                "epoch": change.epoch,
                "departed": change.departed.to_hex(),
                "members": change.keys().iter().map(|k| k.to_hex()).collect::<Vec<_>>(),
            })),
            "certificate": certificate,
            "attestations": block.attestations.iter().map(|a| a.member.to_hex()).collect::<Vec<_>>(),
            "evidence": block.evidence.iter().map(|e| json!({
                "member": e.member.to_hex(),
                "root": e.root.to_hex(),
            })).collect::<Vec<_>>(),
        }));
    }
    Ok(out)
}

fn print_block(block: &Value) {
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    println!();
    println!("block {}  {}", block["height"], text(&block["hash"]));
    println!("  parent       {}", text(&block["parent"]));
    println!("  timestamp    {} ms", block["timestamp_ms"]);
    match block["seqs"].as_array() {
        Some(seqs) => println!(
            "  writes       {} (seq {} to {})",
            block["writes"], seqs[0], seqs[1]
        ),
        None => println!("  writes       0"),
    }
    println!("  state root   {}", text(&block["state_root"]));
    let change = &block["membership_change"];
    if !change.is_null() {
        println!(
            "  membership   epoch {} begins: {}… replaced",
            change["epoch"],
            &text(&change["departed"])[..12]
        );
    }
    let certificate = &block["certificate"];
    match certificate["kind"].as_str() {
        Some("finalization") => {
            let signers: Vec<String> = certificate["signers"]
                .as_array()
                .map(|s| s.iter().map(|k| text(k)[..12].to_string()).collect())
                .unwrap_or_default();
            println!(
                "  certificate  view {}, {} signers ({}){}",
                certificate["view"],
                signers.len(),
                signers.join(" "),
                if certificate["verified"].as_bool() == Some(true) {
                    format!(
                        ", verified against the members of epoch {}",
                        certificate["epoch"]
                    )
                } else {
                    format!(", DOES NOT VERIFY: {}", text(&certificate["problem"]))
                }
            );
        }
        _ => println!("  certificate  {}", text(&certificate["kind"])),
    }
    let attestations: Vec<String> = block["attestations"]
        .as_array()
        .map(|a| a.iter().map(|k| text(k)[..12].to_string()).collect())
        .unwrap_or_default();
    println!(
        "  attestations {} of the parent's root ({})",
        attestations.len(),
        attestations.join(" ")
    );
    if let Some(evidence) = block["evidence"].as_array().filter(|e| !e.is_empty()) {
        for e in evidence {
            println!(
                "  EVIDENCE     member {} attested root {}",
                &text(&e["member"])[..12],
                text(&e["root"])
            );
        }
    }
}

/// `fluence leave`: the node at `addr`, whose identity key is in
/// `data_dir`, leaves each of `datasets` (every dataset it serves when
/// `None`), one after the other; each departure is signed for the epoch
/// the node serves (from its status).
pub async fn leave(
    addr: Multiaddr,
    data_dir: &Path,
    datasets: Option<Vec<DatasetId>>,
) -> Result<()> {
    let path = fluence_node::daemon::identity_path(data_dir);
    let keypair = fluence_net::identity::load(&path)
        .with_context(|| format!("reading the node's identity key in {}", data_dir.display()))?;
    let signer = fluence_crypto::sign::SigningKey::from_seed(&*fluence_net::identity::secret_seed(
        &keypair,
    )?);
    let OpsResponse::Status(status) = ask(&addr, OpsRequest::Status).await? else {
        bail!("{addr} answered a status request with something else");
    };
    if status.node.0 != signer.public_key() {
        bail!(
            "the key in {} is not the key of the node at {addr} ({})",
            path.display(),
            status.node
        );
    }
    let serving: Vec<(DatasetId, u64)> = status
        .datasets
        .iter()
        .map(|d| (d.dataset, d.epoch))
        .collect();
    let chosen: Vec<(DatasetId, u64)> = match datasets {
        None => serving,
        Some(datasets) => datasets
            .into_iter()
            .map(|dataset| {
                serving
                    .iter()
                    .find(|(served, _)| *served == dataset)
                    .copied()
                    .with_context(|| format!("the node at {addr} does not serve {dataset} (or its replica is not running)"))
            })
            .collect::<Result<_>>()?,
    };
    if chosen.is_empty() {
        println!("the node serves no dataset");
    }
    for (dataset, epoch) in chosen {
        let signature = fluence_chain::sign_departure(&signer, &dataset, epoch);
        let request = OpsRequest::Leave {
            dataset,
            epoch,
            signature,
        };
        match ask_within(&addr, request, LEAVE_ANSWER_TIMEOUT)
            .await
            .with_context(|| format!("leaving {dataset}"))?
        {
            OpsResponse::Left { epoch, newcomer } => {
                println!("left {dataset}: its seat went to {newcomer} (epoch {epoch})")
            }
            other => bail!("{addr} answered a leave request with {other:?}"),
        }
    }
    Ok(())
}
