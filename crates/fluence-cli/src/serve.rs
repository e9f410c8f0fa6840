//! Long-running commands: `fluence node`, `fluence gateway`, `fluence devnet`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use fluence_client::Client;
use fluence_crypto::keys::MasterKey;
use fluence_net::{Multiaddr, NodeClient};
use fluence_node::{NodeConfig, RunningNode};

use crate::{keys, mongo_auth};

const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn node(
    data_dir: PathBuf,
    listen: Multiaddr,
    record_requests: Option<PathBuf>,
) -> Result<()> {
    let shutdown = ShutdownSignal::install()?;
    let node = RunningNode::start(NodeConfig {
        data_dir: data_dir.clone(),
        listen,
        record_requests,
    })
    .await
    .with_context(|| format!("starting node in {}", data_dir.display()))?;
    println!("node {} listening", node.peer_id());
    println!("  dial address: {}", node.dial_addr());
    println!("  data:         {}", data_dir.display());
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

/// The gateway's listeners, running over one client connection to a node.
struct Gateway {
    http: SocketAddr,
    mongo: SocketAddr,
    mongo_user: Option<String>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Gateway {
    /// Connects to `node_addr` and binds the HTTP API and the MongoDB wire
    /// protocol listener (authenticated when `mongo` has credentials;
    /// `MongoEndpoint::new` refused a non-loopback address without).
    async fn start(
        master: MasterKey,
        node_addr: Multiaddr,
        http: SocketAddr,
        mongo: MongoEndpoint,
    ) -> Result<Gateway> {
        let MongoEndpoint {
            addr: mongo,
            user: mongo_user,
            credentials,
        } = mongo;
        mongo_auth::check_bind(mongo, credentials.as_ref())?;
        let connection = NodeClient::connect(node_addr.clone(), DIAL_TIMEOUT)
            .await
            .with_context(|| format!("connecting to node {node_addr}"))?;
        let client = Arc::new(Client::new(master, connection));
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

pub async fn gateway(
    key: PathBuf,
    node_addr: Multiaddr,
    http: SocketAddr,
    mongo: MongoEndpoint,
) -> Result<()> {
    let shutdown = ShutdownSignal::install()?;
    let master = keys::unlock(&key)?;
    let gateway = Gateway::start(master, node_addr.clone(), http, mongo).await?;
    println!("gateway for node {node_addr}");
    gateway.print_endpoints();
    shutdown.wait().await;
    println!("shutting down");
    gateway.stop().await
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

pub async fn devnet(
    nodes: usize,
    dir: PathBuf,
    http: SocketAddr,
    mongo: MongoEndpoint,
    p2p_port: u16,
) -> Result<()> {
    let shutdown = ShutdownSignal::install()?;
    anyhow::ensure!(nodes >= 1, "a devnet needs at least one node");
    anyhow::ensure!(
        nodes == 1,
        "this release runs a devnet of one node; clusters of several nodes come with replication"
    );
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let master = devnet_key(&dir)?;
    let mut running = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let port = if p2p_port == 0 {
            0
        } else {
            p2p_port + i as u16
        };
        let listen: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse()?;
        let data_dir = dir.join(format!("node-{i}"));
        let node = RunningNode::start(NodeConfig {
            data_dir: data_dir.clone(),
            listen,
            record_requests: None,
        })
        .await
        .with_context(|| format!("starting node {i} in {}", data_dir.display()))?;
        running.push(node);
    }
    let gateway = Gateway::start(master, running[0].dial_addr(), http, mongo).await?;
    println!(
        "fluence devnet is up ({} node{}, data in {})",
        nodes,
        if nodes == 1 { "" } else { "s" },
        dir.display()
    );
    for (i, node) in running.iter().enumerate() {
        println!("  node {i}:   {}", node.dial_addr());
    }
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
