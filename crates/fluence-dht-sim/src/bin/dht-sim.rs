//! `dht-sim`: lookup hops, latency and placement spread of a simulated
//! Fluence network, per network size, before and after churn.
//!
//! ```sh
//! cargo run --release -p fluence-dht-sim -- --nodes 100,1000,10000 --lookups 1000 --seed 1 --markdown
//! ```

use std::process::ExitCode;

use clap::Parser;
use fluence_dht_sim::{report, run, Scenario};

#[derive(Debug, Parser)]
#[command(
    name = "dht-sim",
    about = "Deterministic simulation of Fluence's Kademlia lookups and dataset placement"
)]
struct Args {
    /// Network sizes to simulate, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    nodes: Vec<usize>,
    /// Lookups measured per size, before and again after churn.
    #[arg(long, default_value_t = 1000)]
    lookups: usize,
    /// Datasets placed per size (default: 4 per node, so 16 per node to serve).
    #[arg(long)]
    datasets: Option<usize>,
    /// Nodes per dataset cluster.
    #[arg(long, default_value_t = 4)]
    cluster_size: usize,
    /// Percent of nodes that leave, and percent that join, in the churn step.
    #[arg(long, default_value_t = 10)]
    churn: usize,
    /// Refresh intervals (every node bootstraps again) before measuring.
    #[arg(long, default_value_t = 2)]
    refresh_rounds: usize,
    /// Seed of the run: the same seed gives the same output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print Markdown tables instead of text.
    #[arg(long)]
    markdown: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut reports = Vec::new();
    for nodes in &args.nodes {
        let mut scenario = Scenario::new(
            *nodes,
            args.lookups,
            args.datasets.unwrap_or(nodes.saturating_mul(4)),
            args.seed,
        );
        scenario.cluster_size = args.cluster_size;
        scenario.churn_percent = args.churn;
        scenario.refresh_rounds = args.refresh_rounds;
        match run(&scenario) {
            Ok(r) => {
                if !args.markdown {
                    print!("{}", report::text(std::slice::from_ref(&r)));
                }
                reports.push(r);
            }
            Err(error) => {
                eprintln!("dht-sim: {error}");
                return ExitCode::from(2);
            }
        }
    }
    if args.markdown {
        print!("{}", report::markdown(&reports));
    }
    ExitCode::SUCCESS
}
