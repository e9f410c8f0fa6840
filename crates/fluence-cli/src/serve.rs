//! Long-running commands: `fluence node`, `fluence gateway`, `fluence devnet`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use commonware_runtime::Supervisor as _;
use fluence_client::{Client, Member, NetworkConfig, NodeDialer, ReadConfig};
use fluence_crypto::keys::MasterKey;
use fluence_net::cluster::ClusterMember;
use fluence_net::discovery::DiscoveryConfig;
use fluence_net::{identity, Multiaddr, NodeClient};
use fluence_node::{ClusterConfig, NodeConfig, RunningNode};

use crate::{keys, mongo_auth};

const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The runtime `fluence node` and `fluence devnet` run in: commonware's
/// tokio runtime (a real multi-thread tokio runtime, so the libp2p and
/// HTTP code runs in it unchanged), whose storage under `storage` holds
/// the consensus logs of the replicas.
pub fn runtime(storage: PathBuf) -> commonware_runtime::tokio::Runner {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    commonware_runtime::tokio::Runner::new(
        commonware_runtime::tokio::Config::new()
            .with_worker_threads(threads)
            .with_storage_directory(storage),
    )
}

/// How `fluence node` runs.
pub struct NodeOptions {
    pub listen: Multiaddr,
    /// It runs alone: applies writes itself, serves no cluster.
    pub alone: bool,
    /// It takes offers of new datasets (`--no-accept` turns it off).
    pub accepting: bool,
    /// How long a member must be out of reach before the node votes to
    /// replace it (`--grace-period`).
    pub grace_period: std::time::Duration,
    /// Nodes of the open network to join through (`.../p2p/<peer id>`).
    pub bootstrap: Vec<Multiaddr>,
    /// Where to copy every request received.
    pub record_requests: Option<PathBuf>,
}

/// `fluence node`: a node of the open network (joined through the
/// bootstrap peers) that serves the datasets placed on it, each in its
/// own cluster; or, with `alone`, a single node applying writes itself.
pub async fn node(
    context: commonware_runtime::tokio::Context,
    data_dir: PathBuf,
    options: NodeOptions,
) -> Result<()> {
    let shutdown = ShutdownSignal::install()?;
    let NodeOptions {
        listen,
        alone,
        accepting,
        grace_period,
        bootstrap,
        record_requests,
    } = options;
    let bootstrap_count = bootstrap.len();
    let config = NodeConfig {
        data_dir: data_dir.clone(),
        listen,
        record_requests,
        discovery: DiscoveryConfig {
            bootstrap,
            ..DiscoveryConfig::default()
        },
    };
    let node = if alone {
        RunningNode::start(config).await
    } else {
        let cluster = ClusterConfig {
            accepting,
            unreachable_grace: grace_period,
            ..ClusterConfig::new(Vec::new())
        };
        RunningNode::start_member(context, config, cluster).await
    }
    .with_context(|| format!("starting node in {}", data_dir.display()))?;
    println!("node {} listening", node.peer_id());
    println!("  dial address: {}", node.dial_addr());
    println!("  member key:   {}", node.member_key());
    println!("  data:         {}", data_dir.display());
    match bootstrap_count {
        0 => println!("  network:      no bootstrap peers; waiting to be found"),
        n => println!("  network:      joining through {n} bootstrap peer(s)"),
    }
    match node.replicas() {
        Some(replicas) => println!(
            "  clusters:     serving {} dataset(s); {}; writes are acknowledged once finalized",
            replicas.served(),
            if accepting {
                "accepting new datasets"
            } else {
                "not accepting new datasets"
            }
        ),
        None => println!("  alone:        applies writes itself, serves no cluster"),
    }
    shutdown.wait().await;
    println!("shutting down");
    node.shutdown().await;
    Ok(())
}

/// Where and for whom the MongoDB wire protocol is served.
pub struct MongoEndpoint {
    addr: SocketAddr,
    user: Option<String>,
    credentials: Option<fluence_mongo::Credentials>,
}

impl MongoEndpoint {
    /// Checks the address against the credentials (from the environment)
    /// before anything starts.
    pub fn new(addr: SocketAddr, user: Option<String>) -> Result<MongoEndpoint> {
        let credentials = mongo_auth::credentials(user.as_deref())?;
        mongo_auth::check_bind(addr, credentials.as_ref())?;
        Ok(MongoEndpoint {
            addr,
            user,
            credentials,
        })
    }
}

/// The gateway's listeners, running over one client with a connection to
/// each node it reads from.
struct Gateway {
    http: SocketAddr,
    mongo: SocketAddr,
    mongo_user: Option<String>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Gateway {
    /// Connects to every node of `nodes` (one node, or the members of a
    /// cluster; writes go to the first) and binds the HTTP API and the
    /// MongoDB wire protocol listener (authenticated when `mongo` has
    /// credentials; `MongoEndpoint::new` refused a non-loopback address
    /// without). Refuses a read quorum above the node count.
    async fn start(
        master: MasterKey,
        nodes: &[Multiaddr],
        reads: ReadConfig,
        cluster_size: usize,
        http: SocketAddr,
        mongo: MongoEndpoint,
    ) -> Result<Gateway> {
        let MongoEndpoint {
            addr: mongo,
            user: mongo_user,
            credentials,
        } = mongo;
        mongo_auth::check_bind(mongo, credentials.as_ref())?;
        let members = connect_members(nodes).await?;
        let client = if runs_alone(&members[0].transport).await? {
            Client::with_members(master, members, reads)
        } else {
            let network = NetworkConfig {
                cluster_size,
                dial: Arc::new(NodeDialer {
                    timeout: DIAL_TIMEOUT,
                }),
            };
            Client::in_network(master, members, reads, network)
        }
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("configuring the gateway's placement and reads")?;
        let client = Arc::new(client);
        let http_listener = tokio::net::TcpListener::bind(http)
            .await
            .with_context(|| format!("binding the HTTP API on {http}"))?;
        let mongo_listener = tokio::net::TcpListener::bind(mongo)
            .await
            .with_context(|| format!("binding the MongoDB endpoint on {mongo}"))?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let gateway = Gateway {
            http: http_listener.local_addr()?,
            mongo: mongo_listener.local_addr()?,
            mongo_user,
            tasks: vec![
                tokio::spawn(fluence_gateway::serve(
                    http_listener,
                    Arc::clone(&client),
                    until_stopped(stopped.clone()),
                )),
                tokio::spawn(fluence_mongo::serve_with(
                    mongo_listener,
                    client,
                    fluence_mongo::ServeOptions { credentials },
                    until_stopped(stopped),
                )),
            ],
            stop,
        };
        Ok(gateway)
    }

    fn print_endpoints(&self) {
        println!("  HTTP API: http://{}/v1", self.http);
        println!("  OpenAPI:  http://{}/v1/openapi.json", self.http);
        println!(
            "  MongoDB:  {}",
            mongo_auth::connection_string(self.mongo, self.mongo_user.as_deref())
        );
    }

    async fn stop(self) -> Result<()> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await
                .context("gateway task")?
                .context("gateway listener")?;
        }
        Ok(())
    }
}

/// Whether the node runs alone (serves no cluster): the gateway then
/// keeps every dataset on the nodes it was given, as before the open
/// network. A node that serves clusters lists itself among its members.
async fn runs_alone(node: &NodeClient) -> Result<bool> {
    let request = fluence_proto::Request::Ops(fluence_proto::OpsRequest::Status);
    match node
        .call(&request)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
    {
        fluence_proto::Response::Ops(fluence_proto::OpsResponse::Status(status)) => {
            Ok(status.members.is_empty())
        }
        other => anyhow::bail!("the node answered a status request with {other:?}"),
    }
}

/// A connection to each of `nodes`, with the member key its peer id
/// carries (checked by the noise handshake), labelled by its address.
async fn connect_members(nodes: &[Multiaddr]) -> Result<Vec<Member<NodeClient>>> {
    let mut members = Vec::with_capacity(nodes.len());
    for addr in nodes {
        let connection = NodeClient::connect(addr.clone(), DIAL_TIMEOUT)
            .await
            .with_context(|| format!("connecting to node {addr}"))?;
        let key = identity::member_key_of(&connection.peer_id())
            .with_context(|| format!("the key of node {addr}"))?;
        let text = addr.to_string();
        let label = text.split("/p2p/").next().unwrap_or(&text);
        members.push(Member::new(Some(key), label, connection));
    }
    Ok(members)
}

pub async fn gateway(
    key: PathBuf,
    nodes: Vec<Multiaddr>,
    reads: ReadConfig,
    cluster_size: usize,
    http: SocketAddr,
    mongo: MongoEndpoint,
) -> Result<()> {
    let shutdown = ShutdownSignal::install()?;
    let master = keys::unlock(&key)?;
    let gateway = Gateway::start(master, &nodes, reads, cluster_size, http, mongo).await?;
    match nodes.as_slice() {
        [node] => println!("gateway entering the network through node {node}"),
        nodes => println!("gateway entering the network through {} nodes", nodes.len()),
    }
    println!("  placement: new datasets go to the {cluster_size} closest nodes that accept them");
    print_reads(&reads);
    gateway.print_endpoints();
    shutdown.wait().await;
    println!("shutting down");
    gateway.stop().await
}

fn print_reads(reads: &ReadConfig) {
    let quorum = match reads.quorum {
        fluence_client::ReadQuorum::Count(r) => r.to_string(),
        fluence_client::ReadQuorum::Majority => "majority (2f + 1)".into(),
        fluence_client::ReadQuorum::All => "all members".into(),
    };
    println!(
        "  reads:    quorum {quorum}{}",
        if reads.proofs {
            ", lookups by _id proven at quorum 1"
        } else {
            ""
        }
    );
}

/// The owner key of a devnet lives in its directory; created on first run.
fn devnet_key(dir: &Path) -> Result<MasterKey> {
    let key_dir = dir.join("keys");
    let path = keys::key_path(&key_dir, "owner")?;
    if path.exists() {
        keys::unlock(&path)
    } else {
        let (path, master) = keys::create(&key_dir, "owner")?;
        println!("created the devnet owner key at {}", path.display());
        Ok(master)
    }
}

/// Members a devnet may have: its nodes listen on consecutive ports.
pub const DEVNET_NODES_MAX: usize = fluence_proto::limits::CLUSTER_MEMBERS_MAX;

/// The cluster size a devnet of `nodes` uses unless told: 4, or 1 when
/// there are fewer than 4 nodes (a cluster has 3f + 1 members).
pub fn devnet_cluster_size(nodes: usize) -> usize {
    if nodes >= 4 {
        4
    } else {
        1
    }
}

/// `fluence devnet`: `nodes` nodes on loopback forming an open network
/// (each joins through node 0; one node runs alone, as a single node),
/// and a gateway entering it through them: each dataset is placed on the
/// `cluster_size` closest nodes that accept it.
#[allow(clippy::too_many_arguments)]
pub async fn devnet(
    context: commonware_runtime::tokio::Context,
    nodes: usize,
    cluster_size: usize,
    dir: PathBuf,
    http: SocketAddr,
    mongo: MongoEndpoint,
    p2p_port: u16,
    reads: ReadConfig,
) -> Result<()> {
    let shutdown = ShutdownSignal::install()?;
    anyhow::ensure!(
        (1..=DEVNET_NODES_MAX).contains(&nodes),
        "a devnet has 1 to {DEVNET_NODES_MAX} nodes"
    );
    anyhow::ensure!(
        p2p_port == 0 || usize::from(p2p_port) + nodes <= usize::from(u16::MAX),
        "--p2p-port {p2p_port} leaves no room for {nodes} consecutive ports"
    );
    // Refused before any node starts rather than after.
    anyhow::ensure!(
        nodes == 1 || cluster_size <= nodes,
        "--cluster-size {cluster_size} needs at least that many nodes, not {nodes}"
    );
    let readers = if nodes == 1 { 1 } else { cluster_size };
    reads
        .quorum
        .resolve(readers)
        .map_err(|e| anyhow::anyhow!("--read-quorum: {e}"))?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let master = devnet_key(&dir)?;
    let listen = |i: usize| -> Result<Multiaddr> {
        let port = if p2p_port == 0 {
            0
        } else {
            usize::from(p2p_port) + i
        };
        Ok(format!("/ip4/127.0.0.1/tcp/{port}").parse()?)
    };
    let config = |i: usize, bootstrap: Vec<Multiaddr>| -> Result<NodeConfig> {
        Ok(NodeConfig {
            data_dir: dir.join(format!("node-{i}")),
            listen: listen(i)?,
            record_requests: None,
            discovery: DiscoveryConfig {
                bootstrap,
                ..DiscoveryConfig::default()
            },
        })
    };
    let mut running = Vec::with_capacity(nodes);
    if nodes == 1 {
        let config = config(0, Vec::new())?;
        let data_dir = config.data_dir.clone();
        let node = RunningNode::start(config)
            .await
            .with_context(|| format!("starting node 0 in {}", data_dir.display()))?;
        running.push(node);
    } else {
        // Every node knows where the others listen (fixed ports); with
        // ports picked at start they learn it below, and through discovery.
        let cluster = ClusterConfig::new(devnet_members(&dir, nodes, p2p_port, &listen)?);
        let mut bootstrap = Vec::new();
        for i in 0..nodes {
            let config = config(i, bootstrap.clone())?;
            let data_dir = config.data_dir.clone();
            let node = RunningNode::start_member(context.child("node"), config, cluster.clone())
                .await
                .with_context(|| format!("starting node {i} in {}", data_dir.display()))?;
            if i == 0 {
                bootstrap.push(node.dial_addr());
            }
            running.push(node);
        }
        for node in &running {
            let net = node.replicas().expect("a member has replicas").net();
            for other in &running {
                if other.member_key() != node.member_key() {
                    net.set_addresses(&other.member_key(), other.listen_addrs().to_vec());
                }
            }
        }
        wait_for_discovery(&running).await;
    }
    let dial_addrs: Vec<Multiaddr> = running.iter().map(RunningNode::dial_addr).collect();
    let gateway = Gateway::start(master, &dial_addrs, reads, cluster_size, http, mongo).await?;
    crate::ops::write_devnet_nodes(&dir, &dial_addrs)?;
    println!(
        "fluence devnet is up ({} node{}, data in {})",
        nodes,
        if nodes == 1 { "" } else { "s" },
        dir.display()
    );
    for (i, node) in running.iter().enumerate() {
        println!("  node {i}:   {}", node.dial_addr());
    }
    if nodes > 1 {
        println!(
            "  an open network of {nodes} nodes; each dataset is served by the {cluster_size} closest that accept it"
        );
    }
    print_reads(&reads);
    gateway.print_endpoints();
    println!(
        "press Ctrl-C to stop; running it again on {} resumes the same data",
        dir.display()
    );
    shutdown.wait().await;
    println!("shutting down");
    gateway.stop().await?;
    for node in running {
        node.shutdown().await;
    }
    println!("stopped cleanly");
    Ok(())
}

/// How long a devnet waits for node 0's routing table to hold every
/// other node, so the first placement sees the whole network.
const DEVNET_DISCOVERY_WAIT: Duration = Duration::from_secs(10);

/// Waits until node 0's routing table holds every other node (they
/// joined through it), or [`DEVNET_DISCOVERY_WAIT`] passed.
async fn wait_for_discovery(running: &[RunningNode]) {
    let deadline = tokio::time::Instant::now() + DEVNET_DISCOVERY_WAIT;
    let others = running.len().saturating_sub(1) as u64;
    while tokio::time::Instant::now() < deadline {
        if let Ok(status) = running[0].discovery().status().await {
            if status.routing_table_size() as u64 >= others {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The nodes of a devnet: the identities of its node directories
/// (created on the first run, so a restart is the same network), dialed
/// on their fixed ports (with `--p2p-port 0`, set once every node
/// listens).
fn devnet_members(
    dir: &Path,
    nodes: usize,
    p2p_port: u16,
    listen: &dyn Fn(usize) -> Result<Multiaddr>,
) -> Result<Vec<ClusterMember>> {
    let mut members = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let data_dir = dir.join(format!("node-{i}"));
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let keypair = identity::load_or_create(&fluence_node::daemon::identity_path(&data_dir))?;
        members.push(ClusterMember {
            key: identity::member_key(&keypair)?,
            addrs: if p2p_port == 0 {
                Vec::new()
            } else {
                vec![listen(i)?]
            },
        });
    }
    Ok(members)
}

/// Ctrl-C or SIGTERM, listened for from the moment it is installed: each
/// command installs it before it starts anything, so a signal that arrives
/// while services start (or just after their addresses were printed)
/// stops them cleanly instead of killing the process.
struct ShutdownSignal {
    #[cfg(unix)]
    signals: [tokio::signal::unix::Signal; 2],
}

impl ShutdownSignal {
    fn install() -> Result<ShutdownSignal> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let listen = |kind| signal(kind).context("installing the signal handler");
            Ok(ShutdownSignal {
                signals: [
                    listen(SignalKind::interrupt())?,
                    listen(SignalKind::terminate())?,
                ],
            })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignal {})
    }

    async fn wait(self) {
        #[cfg(unix)]
        {
            let [mut interrupt, mut terminate] = self.signals;
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
