//! YCSB's core workloads A–F through the MongoDB wire protocol, with the
//! official MongoDB Rust driver, against a running gateway (`fluence
//! devnet`) or any MongoDB endpoint.
//!
//! ```text
//! fluence devnet --nodes 1 --dir /tmp/ycsb-devnet &      # prints its MongoDB URI
//! cargo run --release -p fluence-bench --bin ycsb -- \
//!     --uri mongodb://127.0.0.1:27017/ --records 10000 --operations 20000 --threads 8
//! ```
//!
//! The run loads `--records` records of ten 100-byte fields (`_id:
//! "user<fnv hash>"`), then runs each workload for `--operations`
//! operations on `--threads` client tasks sharing one driver connection
//! pool, and prints ops/s and p50/p99 latency per operation type.

mod generators;
mod latency;
mod workload;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use latency::Latencies;
use workload::{
    field_name, field_value, key_name, scan_length, KeyChooser, Op, Workload, FIELD_COUNT,
};

#[derive(Parser, Debug)]
#[command(about = "YCSB core workloads through the MongoDB wire protocol")]
struct Args {
    /// MongoDB connection string of the gateway.
    #[arg(long, default_value = "mongodb://127.0.0.1:27017/")]
    uri: String,
    /// Workloads to run, in order (YCSB's recommended order is a,b,c,f,d,e).
    #[arg(long, value_delimiter = ',', default_value = "a,b,c,f,d,e")]
    workloads: Vec<char>,
    /// Records loaded before the workloads run.
    #[arg(long, default_value_t = 10_000)]
    records: u64,
    /// Operations per workload.
    #[arg(long, default_value_t = 10_000)]
    operations: u64,
    /// Concurrent client tasks.
    #[arg(long, default_value_t = 8)]
    threads: u64,
    /// Records per insert_many while loading.
    #[arg(long, default_value_t = 500)]
    load_batch: u64,
    /// Concurrent insert_many tasks while loading. The load prints the
    /// commit latency of each insert_many (p50/p99): against a cluster it
    /// is the time to finalize and apply a batch.
    #[arg(long, default_value_t = 1)]
    load_threads: u64,
    /// Operations of workload E (scans) are capped separately: each scan may
    /// read the whole collection when `_id` has no ordered index.
    #[arg(long)]
    scan_operations: Option<u64>,
    #[arg(long, default_value = "ycsb")]
    database: String,
    #[arg(long, default_value = "usertable")]
    collection: String,
    /// Keep the existing collection instead of dropping and loading it.
    #[arg(long)]
    skip_load: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the results as a Markdown table too.
    #[arg(long)]
    markdown: bool,
}

/// The next key number to insert, shared by all tasks: inserts take
/// increasing numbers, reads choose among the ones already acknowledged.
struct Inserted {
    next: AtomicU64,
    acknowledged: AcknowledgedKeys,
}

/// YCSB's acknowledged counter: the highest key number below which every
/// insert has been acknowledged, so a read never picks a key whose insert
/// is still in flight on another task.
struct AcknowledgedKeys {
    state: Mutex<(u64, BTreeSet<u64>)>,
}

impl AcknowledgedKeys {
    fn new(last: u64) -> AcknowledgedKeys {
        AcknowledgedKeys {
            state: Mutex::new((last, BTreeSet::new())),
        }
    }

    fn last(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    fn acknowledge(&self, key: u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last, pending) = &mut *state;
        pending.insert(key);
        while pending.remove(&(*last + 1)) {
            *last += 1;
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.records > 0 && args.threads > 0,
        "--records and --threads must be positive"
    );
    let mut options = ClientOptions::parse(&args.uri)
        .await
        .context("parsing --uri")?;
    options.max_pool_size = Some(u32::try_from(args.threads.max(10))?);
    options.app_name = Some("fluence-ycsb".into());
    let client = Client::with_options(options)?;
    let ping_started = Instant::now();
    client
        .database("admin")
        .run_command(doc! {"ping": 1})
        .await
        .context("ping")?;
    println!("connected to {} in {:?}", args.uri, ping_started.elapsed());
    let build = client
        .database("admin")
        .run_command(doc! {"buildInfo": 1})
        .await?;
    println!("server version {}", build.get_str("version").unwrap_or("?"));

    let coll: Collection<Document> = client.database(&args.database).collection(&args.collection);
    let mut args = args;
    if args.skip_load {
        // Earlier runs' inserts (workloads D and E) extend the key numbers
        // contiguously past the load: continue after them.
        args.records = coll
            .estimated_document_count()
            .await
            .context("counting records")?;
        anyhow::ensure!(args.records > 0, "--skip-load on an empty collection");
        println!("using the {} records already loaded", args.records);
    } else {
        load(&coll, &args).await?;
    }
    let inserted = Arc::new(Inserted {
        next: AtomicU64::new(args.records),
        acknowledged: AcknowledgedKeys::new(args.records - 1),
    });

    let mut rows = Vec::new();
    for name in &args.workloads {
        let Some(workload) = Workload::core(*name) else {
            bail!("unknown workload {name:?}: the core workloads are a-f");
        };
        let operations = match (workload.name, args.scan_operations) {
            ('E', Some(n)) => n,
            _ => args.operations,
        };
        println!(
            "\nworkload {}: {} ({} operations, {} tasks)",
            workload.name, workload.description, operations, args.threads
        );
        let (elapsed, mut latencies) = run(&coll, &workload, operations, &args, &inserted).await;
        let total = latencies.total();
        let throughput = total as f64 / elapsed.as_secs_f64();
        println!(
            "  {total} operations in {:.2} s: {throughput:.0} ops/s, {} errors",
            elapsed.as_secs_f64(),
            latencies.total_errors()
        );
        if let Some(error) = &latencies.first_error {
            println!("  first error: {error}");
        }
        for s in latencies.summaries() {
            let [p50, p99, max] = s.quantiles_ms();
            println!(
                "  {:<18} {:>7} ops  p50 {p50:>8.2} ms  p99 {p99:>8.2} ms  max {max:>8.2} ms  mean {:>8.2} ms  errors {}",
                s.op.name(),
                s.count,
                s.mean_us / 1000.0,
                s.errors
            );
            rows.push((workload.name, throughput, s));
        }
    }
    if args.markdown {
        println!("\n| workload | ops/s | operation | count | p50 ms | p99 ms | max ms | errors |");
        println!("|---|---:|---|---:|---:|---:|---:|---:|");
        for (name, throughput, s) in rows {
            let [p50, p99, max] = s.quantiles_ms();
            println!(
                "| {name} | {throughput:.0} | {} | {} | {p50:.2} | {p99:.2} | {max:.2} | {} |",
                s.op.name(),
                s.count,
                s.errors
            );
        }
    }
    Ok(())
}

fn record(key: u64, rng: &mut impl Rng) -> Document {
    let mut document = doc! {"_id": key_name(key)};
    for i in 0..FIELD_COUNT {
        document.insert(field_name(i), field_value(rng));
    }
    document
}

/// Drops and re-creates the collection, then inserts `records` records in
/// batches of `load_batch`, on `load_threads` tasks that take the next
/// batch in turn. The collection is created before the clock starts, as
/// YCSB initialises its table before the load phase: otherwise the first
/// batch's latency would include creating the dataset (on a cluster, a
/// block of its own).
async fn load(coll: &Collection<Document>, args: &Args) -> Result<()> {
    coll.drop().await.context("dropping the collection")?;
    let namespace = coll.namespace();
    coll.client()
        .database(&namespace.db)
        .create_collection(&namespace.coll)
        .await
        .context("creating the collection")?;
    let batch_len = args.load_batch.max(1);
    let next_batch = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.load_threads.max(1) {
        let coll = coll.clone();
        let next_batch = Arc::clone(&next_batch);
        let (records, seed) = (args.records, args.seed);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            loop {
                let first = next_batch.fetch_add(batch_len, Ordering::AcqRel);
                if first >= records {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let end = (first + batch_len).min(records);
                // Seeded by the batch, so a load is the same whatever the
                // number of tasks.
                let mut rng = StdRng::seed_from_u64(seed ^ first.rotate_left(17));
                let batch: Vec<Document> = (first..end).map(|k| record(k, &mut rng)).collect();
                let batch_started = Instant::now();
                coll.insert_many(batch)
                    .await
                    .with_context(|| format!("loading records {first}..{end}"))?;
                latencies.record(Op::Insert, batch_started.elapsed());
            }
        }));
    }
    let mut all = Latencies::default();
    for task in tasks {
        all.merge(task.await.context("load task failed")??);
    }
    let elapsed = started.elapsed();
    println!(
        "loaded {} records in {:.2} s ({:.0} records/s, insert_many of {} on {} tasks)",
        args.records,
        elapsed.as_secs_f64(),
        args.records as f64 / elapsed.as_secs_f64(),
        args.load_batch,
        args.load_threads.max(1)
    );
    if let Some(error) = &all.first_error {
        println!("  first error: {error}");
    }
    if let Some(s) = all.summaries().first() {
        let [p50, p99, max] = s.quantiles_ms();
        println!(
            "  insert_many        {:>7} ops  p50 {p50:>8.2} ms  p99 {p99:>8.2} ms  max {max:>8.2} ms",
            s.count
        );
    }
    Ok(())
}

/// Runs `operations` operations of `workload` on `args.threads` tasks.
async fn run(
    coll: &Collection<Document>,
    workload: &Workload,
    operations: u64,
    args: &Args,
    inserted: &Arc<Inserted>,
) -> (Duration, Latencies) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..args.threads {
        // Operations split evenly; the first tasks take the remainder.
        let share = operations / args.threads + u64::from(task < operations % args.threads);
        let coll = coll.clone();
        let workload = *workload;
        let inserted = Arc::clone(inserted);
        let seed = args.seed ^ (u64::from(workload.name as u32) << 32) ^ (task + 1);
        let records = args.records;
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut keys = KeyChooser::new(&workload, records, operations);
            let mut latencies = Latencies::default();
            for _ in 0..share {
                let op = workload.choose_op(&mut rng);
                let op_started = Instant::now();
                match one_op(&coll, op, &mut keys, &inserted, &mut rng).await {
                    Ok(()) => latencies.record(op, op_started.elapsed()),
                    Err(e) => latencies.error(op, format!("{}: {e:#}", op.name())),
                }
            }
            latencies
        }));
    }
    let mut all = Latencies::default();
    for task in tasks {
        match task.await {
            Ok(latencies) => all.merge(latencies),
            Err(e) => all.error(Op::Read, format!("client task failed: {e}")),
        }
    }
    (started.elapsed(), all)
}

async fn one_op(
    coll: &Collection<Document>,
    op: Op,
    keys: &mut KeyChooser,
    inserted: &Inserted,
    rng: &mut StdRng,
) -> Result<()> {
    match op {
        Op::Read => {
            let key = keys.next(inserted.acknowledged.last(), rng);
            read(coll, key).await
        }
        Op::Update => {
            let key = keys.next(inserted.acknowledged.last(), rng);
            update(coll, key, rng).await
        }
        Op::ReadModifyWrite => {
            let key = keys.next(inserted.acknowledged.last(), rng);
            read(coll, key).await?;
            update(coll, key, rng).await
        }
        Op::Insert => {
            let key = inserted.next.fetch_add(1, Ordering::AcqRel);
            coll.insert_one(record(key, rng)).await?;
            inserted.acknowledged.acknowledge(key);
            Ok(())
        }
        Op::Scan => {
            let key = keys.next(inserted.acknowledged.last(), rng);
            let length = scan_length(rng);
            let mut cursor = coll
                .find(doc! {"_id": {"$gte": key_name(key)}})
                .sort(doc! {"_id": 1})
                .limit(i64::try_from(length)?)
                .await?;
            let mut seen = 0u64;
            while cursor.try_next().await?.is_some() {
                seen += 1;
            }
            anyhow::ensure!(seen >= 1, "a scan from an existing key found nothing");
            Ok(())
        }
    }
}

async fn read(coll: &Collection<Document>, key: u64) -> Result<()> {
    let found = coll.find_one(doc! {"_id": key_name(key)}).await?;
    let document = found.with_context(|| format!("record {} not found", key_name(key)))?;
    anyhow::ensure!(
        document.len() == FIELD_COUNT + 1,
        "record {} has {} fields",
        key_name(key),
        document.len()
    );
    Ok(())
}

/// YCSB's default update writes one random field (`writeallfields=false`).
async fn update(coll: &Collection<Document>, key: u64, rng: &mut StdRng) -> Result<()> {
    let field = field_name(rng.gen_range(0..FIELD_COUNT));
    let result = coll
        .update_one(
            doc! {"_id": key_name(key)},
            doc! {"$set": {field: field_value(rng)}},
        )
        .await?;
    anyhow::ensure!(
        result.matched_count == 1,
        "update matched {} records",
        result.matched_count
    );
    Ok(())
}
