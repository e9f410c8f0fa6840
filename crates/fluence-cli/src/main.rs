//! `fluence`: run a devnet, a node or a gateway; manage keys; use datasets.

mod data;
mod keys;
mod mongo_auth;
mod ops;
mod passphrase;
mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use commonware_runtime::Runner as _;
use fluence_net::Multiaddr;
use serde_json::json;

/// Every node, member and gateway of the process allocates through
/// mimalloc: see the workspace `Cargo.toml` for why.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "fluence",
    version,
    about = "Fluence: a decentralized, end-to-end encrypted document database"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a local network and gateway on loopback (foreground; Ctrl-C stops).
    Devnet {
        /// Nodes of the network (1 runs a single node).
        #[arg(long, default_value_t = 4)]
        nodes: usize,
        /// Members of each dataset's cluster (3f + 1: 1, 4, 7, ...);
        /// default 4, or 1 with fewer than 4 nodes.
        #[arg(long)]
        cluster_size: Option<usize>,
        /// Data directory; running again on it resumes the same data.
        #[arg(long, default_value = "devnet-data")]
        dir: PathBuf,
        /// HTTP API address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// MongoDB wire protocol address (loopback only without --mongo-user).
        #[arg(long, default_value = "127.0.0.1:27017")]
        mongo: SocketAddr,
        #[command(flatten)]
        mongo_user: MongoUserArg,
        /// First node's TCP port (0: pick free ports).
        #[arg(long, default_value_t = 4001)]
        p2p_port: u16,
        #[command(flatten)]
        reads: ReadArgs,
    },
    /// Run a node.
    Node {
        #[arg(long, default_value = "fluence-node")]
        data_dir: PathBuf,
        #[arg(long, default_value = "/ip4/127.0.0.1/tcp/4001")]
        listen: Multiaddr,
        /// Run alone: apply writes directly, serve no cluster (no
        /// consensus, no replication). Without it the node serves the
        /// datasets placed on it, each with its own cluster.
        #[arg(long)]
        alone: bool,
        /// Refuse offers of new datasets (those served already go on).
        #[arg(long)]
        no_accept: bool,
        /// Seconds a cluster member must have been out of this node's
        /// reach before the node votes to replace it.
        #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        grace_period: u64,
        /// A node of the open network to join through, with its peer id:
        /// /ip4/203.0.113.5/tcp/4001/p2p/12D3...; repeat for several.
        /// Without any, the node waits to be found by others.
        #[arg(long = "bootstrap", value_name = "MULTIADDR", value_parser = parse_bootstrap)]
        bootstrap: Vec<Multiaddr>,
        /// Append every received request to this file (audits, leak tests).
        #[arg(long, hide = true)]
        debug_record_requests: Option<PathBuf>,
    },
    /// Run a gateway holding an owner key, in front of one node or the
    /// members of a cluster.
    Gateway {
        /// A node's address, e.g. /ip4/127.0.0.1/tcp/4001/p2p/12D3...;
        /// repeat for several. The gateway enters the network through
        /// the first: it looks up each dataset's cluster there and talks
        /// to its members directly (a node run with --alone keeps every
        /// dataset itself).
        #[arg(long = "node", value_name = "MULTIADDR", required = true)]
        nodes: Vec<Multiaddr>,
        /// Members of each new dataset's cluster (3f + 1: 1, 4, 7, ...).
        #[arg(long, default_value_t = fluence_client::CLUSTER_SIZE_DEFAULT)]
        cluster_size: usize,
        /// Keystore file of the owner key.
        #[arg(long)]
        key: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// MongoDB wire protocol address (loopback only without --mongo-user).
        #[arg(long, default_value = "127.0.0.1:27017")]
        mongo: SocketAddr,
        #[command(flatten)]
        mongo_user: MongoUserArg,
        #[command(flatten)]
        reads: ReadArgs,
    },
    /// Manage owner keys.
    Keys {
        /// Directory of keystore files (default: $FLUENCE_HOME/keys or ~/.fluence/keys).
        #[arg(long, global = true)]
        dir: Option<PathBuf>,
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Create, list or drop datasets (through a running gateway).
    Dataset {
        #[command(flatten)]
        gateway: GatewayArg,
        #[command(subcommand)]
        command: DatasetCommand,
    },
    /// Insert one JSON document (or a JSON array of documents).
    Insert {
        #[command(flatten)]
        gateway: GatewayArg,
        dataset: String,
        document: String,
    },
    /// Import a JSON Lines file, one document per line.
    Import {
        #[command(flatten)]
        gateway: GatewayArg,
        dataset: String,
        file: PathBuf,
    },
    /// Find documents matching a MongoDB filter.
    Find {
        #[command(flatten)]
        gateway: GatewayArg,
        dataset: String,
        #[arg(default_value = "{}")]
        filter: String,
        #[arg(long)]
        sort: Option<String>,
        #[arg(long, default_value_t = 0)]
        skip: u64,
        #[arg(long, default_value_t = 0)]
        limit: i64,
        #[arg(long)]
        projection: Option<String>,
    },
    /// Update documents matching a filter.
    Update {
        #[command(flatten)]
        gateway: GatewayArg,
        dataset: String,
        filter: String,
        update: String,
        #[arg(long)]
        multi: bool,
        #[arg(long)]
        upsert: bool,
    },
    /// Delete documents matching a filter.
    Delete {
        #[command(flatten)]
        gateway: GatewayArg,
        dataset: String,
        filter: String,
        #[arg(long)]
        multi: bool,
    },
    /// Count documents matching a filter.
    Count {
        #[command(flatten)]
        gateway: GatewayArg,
        dataset: String,
        #[arg(default_value = "{}")]
        filter: String,
    },
    /// Each node's view: its peer id, connections and routing table; its
    /// cluster's members; per dataset the finalized and applied heights,
    /// state root and lag.
    Status {
        #[command(flatten)]
        nodes: NodesArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A dataset's cluster chain.
    Chain {
        #[command(subcommand)]
        command: ChainCommand,
    },
    /// The open network's distributed hash table (Kademlia).
    Dht {
        #[command(subcommand)]
        command: DhtCommand,
    },
    /// Makes a node leave datasets' clusters gracefully: for each, it
    /// hands its seat to the next closest willing node through a
    /// membership change (while it still votes) and drops its copy once
    /// the change is finalized. Run it on the node's machine: the node's
    /// own key (in --data-dir) signs the departure.
    Leave {
        /// 64-digit hex ids of the datasets to leave (as `fluence status`
        /// lists them).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        datasets: Vec<String>,
        /// Leave every dataset the node serves (before taking it out of
        /// the network for good).
        #[arg(long)]
        all: bool,
        /// The node's data directory (its identity key, node.key).
        #[arg(long)]
        data_dir: PathBuf,
        /// The node's address, e.g. /ip4/127.0.0.1/tcp/4001/p2p/12D3...
        #[arg(long = "node", value_name = "MULTIADDR")]
        node: Multiaddr,
    },
}

#[derive(Subcommand)]
enum DhtCommand {
    /// The nodes closest to a dataset or node id, found by a lookup
    /// through the network from one node (the first --node).
    Closest {
        /// A 64-digit hex dataset id, a peer id (12D3...), or a dataset
        /// name of the owner key in --key.
        target: String,
        /// How many nodes (1 to 20).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=20))]
        count: u8,
        /// Owner keystore file, to resolve a dataset name (default: the
        /// devnet's owner key).
        #[arg(long)]
        key: Option<PathBuf>,
        #[command(flatten)]
        nodes: NodesArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Which nodes an operations command asks.
#[derive(clap::Args)]
struct NodesArg {
    /// A node's address, e.g. /ip4/127.0.0.1/tcp/4001/p2p/12D3...;
    /// repeat for several. Without any, the nodes of the devnet in
    /// --devnet.
    #[arg(long = "node", value_name = "MULTIADDR")]
    nodes: Vec<Multiaddr>,
    /// Directory of a running `fluence devnet` (its nodes and its owner key).
    #[arg(long, default_value = "devnet-data")]
    devnet: PathBuf,
}

#[derive(Subcommand)]
enum ChainCommand {
    /// Finalized blocks: height, hash, parent, timestamp, writes, state
    /// root, the certificate's signers, attestations and evidence.
    Show {
        /// Dataset name (of the owner key in --key) or 64-digit hex id.
        dataset: String,
        /// Only this block (default: the newest --limit blocks).
        #[arg(long)]
        height: Option<u64>,
        #[arg(long, default_value_t = 10)]
        limit: u32,
        /// Owner keystore file, to resolve a dataset name (default: the
        /// devnet's owner key).
        #[arg(long)]
        key: Option<PathBuf>,
        #[command(flatten)]
        nodes: NodesArg,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct MongoUserArg {
    /// Require SCRAM-SHA-256 authentication as this user on the MongoDB
    /// endpoint (password in FLUENCE_MONGO_PASSWORD); needed to bind a
    /// non-loopback address.
    #[arg(long = "mongo-user", value_name = "NAME")]
    name: Option<String>,
}

/// How the gateway verifies reads by default (a request may choose
/// otherwise: `readQuorum` and `proof` in the HTTP API, `readConcern` in
/// MongoDB).
#[derive(clap::Args)]
struct ReadArgs {
    /// Members that must answer a read identically: a number from 1 to
    /// the member count, `majority` (2f + 1) or `all`.
    #[arg(long, value_name = "R", default_value = "1", value_parser = parse_read_quorum)]
    read_quorum: fluence_client::ReadQuorum,
    /// Prove lookups by _id read at quorum 1 with Merkle proofs against a
    /// certified state root (cluster members only).
    #[arg(long)]
    proof_reads: bool,
}

impl ReadArgs {
    fn config(&self) -> fluence_client::ReadConfig {
        fluence_client::ReadConfig {
            quorum: self.read_quorum,
            proofs: self.proof_reads,
        }
    }
}

fn parse_read_quorum(text: &str) -> Result<fluence_client::ReadQuorum, String> {
    use fluence_client::ReadQuorum;
    match text {
        "majority" => Ok(ReadQuorum::Majority),
        "all" => Ok(ReadQuorum::All),
        number => match number.parse::<usize>() {
            Ok(r) if r >= 1 => Ok(ReadQuorum::Count(r)),
            _ => Err(format!(
                "{text:?} is not a read quorum (a positive number, majority or all)"
            )),
        },
    }
}

#[derive(clap::Args)]
struct GatewayArg {
    /// The gateway's HTTP address.
    #[arg(
        long = "gateway",
        env = "FLUENCE_GATEWAY",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a new owner key.
    New { name: String },
    /// List keys with their public keys (no passphrase needed).
    List,
    /// Show one key's public information.
    Show { name: String },
}

#[derive(Subcommand)]
enum DatasetCommand {
    /// Create a dataset; indexes as FIELD:KIND (eq, range, text).
    Create {
        name: String,
        #[arg(long = "index")]
        indexes: Vec<String>,
    },
    List,
    Drop {
        name: String,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FLUENCE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    anyhow::ensure!(
        !fluence_crypto::BENCH_PLAINTEXT,
        "this binary was built with the benchmark-only `bench-plaintext` feature, which stores data unencrypted; rebuild without it"
    );
    let cli = Cli::parse();
    match cli.command {
        Command::Devnet {
            nodes,
            cluster_size,
            dir,
            http,
            mongo,
            mongo_user,
            p2p_port,
            reads,
        } => {
            let mongo = serve::MongoEndpoint::new(mongo, mongo_user.name)?;
            let reads = reads.config();
            let cluster_size = cluster_size.unwrap_or_else(|| serve::devnet_cluster_size(nodes));
            serve::runtime(dir.join("consensus")).start(|context| {
                serve::devnet(
                    context,
                    nodes,
                    cluster_size,
                    dir,
                    http,
                    mongo,
                    p2p_port,
                    reads,
                )
            })
        }
        Command::Node {
            data_dir,
            listen,
            alone,
            no_accept,
            grace_period,
            bootstrap,
            debug_record_requests,
        } => {
            let options = serve::NodeOptions {
                listen,
                alone,
                accepting: !no_accept,
                grace_period: std::time::Duration::from_secs(grace_period),
                bootstrap,
                record_requests: debug_record_requests,
            };
            serve::runtime(data_dir.join("consensus"))
                .start(|context| serve::node(context, data_dir, options))
        }
        Command::Gateway {
            nodes,
            cluster_size,
            key,
            http,
            mongo,
            mongo_user,
            reads,
        } => {
            let mongo = serve::MongoEndpoint::new(mongo, mongo_user.name)?;
            runtime()?.block_on(serve::gateway(
                key,
                nodes,
                reads.config(),
                cluster_size,
                http,
                mongo,
            ))
        }
        Command::Keys { dir, command } => {
            let dir = dir.unwrap_or_else(keys::default_dir);
            match command {
                KeysCommand::New { name } => keys::new(&dir, &name),
                KeysCommand::List => keys::list(&dir),
                KeysCommand::Show { name } => keys::show(&dir, &name),
            }
        }
        Command::Dataset { gateway, command } => {
            let gw = data::Gateway::new(&gateway.url);
            let answer = match command {
                DatasetCommand::Create { name, indexes } => data::create(&gw, &name, &indexes)?,
                DatasetCommand::List => data::list(&gw)?,
                DatasetCommand::Drop { name } => data::drop(&gw, &name)?,
            };
            data::print(&answer);
            Ok(())
        }
        Command::Insert {
            gateway,
            dataset,
            document,
        } => {
            let gw = data::Gateway::new(&gateway.url);
            let value = data::parse_json(&document, "document")?;
            let body = if value.is_array() {
                json!({"documents": value})
            } else {
                value
            };
            data::print(&data::op(&gw, &dataset, "documents", &body)?);
            Ok(())
        }
        Command::Import {
            gateway,
            dataset,
            file,
        } => {
            let gw = data::Gateway::new(&gateway.url);
            let count = data::import(&gw, &dataset, &file)?;
            println!("imported {count} documents into {dataset}");
            Ok(())
        }
        Command::Find {
            gateway,
            dataset,
            filter,
            sort,
            skip,
            limit,
            projection,
        } => {
            let gw = data::Gateway::new(&gateway.url);
            let mut body = json!({"filter": data::parse_json(&filter, "filter")?, "skip": skip, "limit": limit});
            if let Some(sort) = sort {
                body["sort"] = data::parse_json(&sort, "sort")?;
            }
            if let Some(projection) = projection {
                body["projection"] = data::parse_json(&projection, "projection")?;
            }
            data::print(&data::op(&gw, &dataset, "find", &body)?);
            Ok(())
        }
        Command::Update {
            gateway,
            dataset,
            filter,
            update,
            multi,
            upsert,
        } => {
            let gw = data::Gateway::new(&gateway.url);
            let body = json!({
                "filter": data::parse_json(&filter, "filter")?,
                "update": data::parse_json(&update, "update")?,
                "multi": multi,
                "upsert": upsert,
            });
            data::print(&data::op(&gw, &dataset, "update", &body)?);
            Ok(())
        }
        Command::Delete {
            gateway,
            dataset,
            filter,
            multi,
        } => {
            let gw = data::Gateway::new(&gateway.url);
            let body = json!({"filter": data::parse_json(&filter, "filter")?, "multi": multi});
            data::print(&data::op(&gw, &dataset, "delete", &body)?);
            Ok(())
        }
        Command::Count {
            gateway,
            dataset,
            filter,
        } => {
            let gw = data::Gateway::new(&gateway.url);
            data::print(&data::op(
                &gw,
                &dataset,
                "count",
                &json!({"filter": data::parse_json(&filter, "filter")?}),
            )?);
            Ok(())
        }
        Command::Status { nodes, json } => {
            let addrs = ops::nodes(nodes.nodes, &nodes.devnet)?;
            runtime()?.block_on(ops::status(addrs, json))
        }
        Command::Chain {
            command:
                ChainCommand::Show {
                    dataset,
                    height,
                    limit,
                    key,
                    nodes,
                    json,
                },
        } => {
            let key = key.unwrap_or_else(|| ops::devnet_key(&nodes.devnet));
            let dataset = ops::resolve_dataset(&dataset, &key)?;
            let addr = ops::nodes(nodes.nodes, &nodes.devnet)?.remove(0);
            let query = ops::ChainQuery {
                dataset,
                height,
                limit,
            };
            runtime()?.block_on(ops::chain_show(addr, query, json))
        }
        Command::Dht {
            command:
                DhtCommand::Closest {
                    target,
                    count,
                    key,
                    nodes,
                    json,
                },
        } => {
            let key = key.unwrap_or_else(|| ops::devnet_key(&nodes.devnet));
            let target = ops::resolve_target(&target, &key)?;
            let addr = ops::nodes(nodes.nodes, &nodes.devnet)?.remove(0);
            runtime()?.block_on(ops::dht_closest(addr, target, count, json))
        }
        Command::Leave {
            datasets,
            all,
            data_dir,
            node,
        } => {
            let datasets = if all {
                None
            } else {
                Some(
                    datasets
                        .iter()
                        .map(|hex| {
                            fluence_proto::DatasetId::from_hex(hex).with_context(|| {
                                format!("{hex:?} is not a 64-digit hex dataset id")
                            })
                        })
                        .collect::<Result<Vec<_>>>()?,
                )
            };
            runtime()?.block_on(ops::leave(node, &data_dir, datasets))
        }
    }
}

/// A bootstrap multiaddr, which must end in `/p2p/<peer id>`.
fn parse_bootstrap(text: &str) -> Result<Multiaddr, String> {
    let addr: Multiaddr = text
        .parse()
        .map_err(|e| format!("{text:?} is not a multiaddr: {e}"))?;
    fluence_net::discovery::bootstrap_peer(&addr).map_err(|e| e.to_string())?;
    Ok(addr)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
