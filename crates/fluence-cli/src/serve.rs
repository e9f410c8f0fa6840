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

use crate::keys;

const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn node(
    data_dir: PathBuf,
    listen: Multiaddr,
    record_requests: Option<PathBuf>,
) -> Result<()> {
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
    shutdown_signal().await;
    println!("shutting down");
    node.shutdown().await;
    Ok(())
}

/// Binds the HTTP API and serves it over a connection to `node_addr`.
async fn start_gateway(
    master: MasterKey,
    node_addr: Multiaddr,
    http: SocketAddr,
) -> Result<(
    SocketAddr,
    tokio::task::JoinHandle<std::io::Result<()>>,
    tokio::sync::oneshot::Sender<()>,
)> {
    let connection = NodeClient::connect(node_addr.clone(), DIAL_TIMEOUT)
        .await
        .with_context(|| format!("connecting to node {node_addr}"))?;
    let client = Arc::new(Client::new(master, connection));
    let listener = tokio::net::TcpListener::bind(http)
        .await
        .with_context(|| format!("binding the HTTP API on {http}"))?;
    let bound = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(fluence_gateway::serve(listener, client, async {
        let _ = stop_rx.await;
    }));
    Ok((bound, task, stop_tx))
}

pub async fn gateway(key: PathBuf, node_addr: Multiaddr, http: SocketAddr) -> Result<()> {
    let master = keys::unlock(&key)?;
    let (bound, task, stop) = start_gateway(master, node_addr.clone(), http).await?;
    println!("gateway for node {node_addr}");
    println!("  HTTP API: http://{bound}/v1  (OpenAPI: http://{bound}/v1/openapi.json)");
    shutdown_signal().await;
    println!("shutting down");
    let _ = stop.send(());
    task.await.context("gateway task")?.context("HTTP server")?;
    Ok(())
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

pub async fn devnet(nodes: usize, dir: PathBuf, http: SocketAddr, p2p_port: u16) -> Result<()> {
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
    let (bound, task, stop) = start_gateway(master, running[0].dial_addr(), http).await?;
    println!(
        "fluence devnet is up ({} node{}, data in {})",
        nodes,
        if nodes == 1 { "" } else { "s" },
        dir.display()
    );
    for (i, node) in running.iter().enumerate() {
        println!("  node {i}:   {}", node.dial_addr());
    }
    println!("  HTTP API: http://{bound}/v1");
    println!("  OpenAPI:  http://{bound}/v1/openapi.json");
    println!(
        "press Ctrl-C to stop; running it again on {} resumes the same data",
        dir.display()
    );
    shutdown_signal().await;
    println!("shutting down");
    let _ = stop.send(());
    task.await.context("gateway task")?.context("HTTP server")?;
    for node in running {
        node.shutdown().await;
    }
    println!("stopped cleanly");
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
