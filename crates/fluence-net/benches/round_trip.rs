//! Criterion benchmark of the gateway-node path alone: round trips of an
//! empty request through `NodeClient` and `Server` over TCP on loopback
//! (noise, yamux, the `/fluence/rpc/2` stream), against a handler that
//! answers at once, so everything measured is transport.
//!
//! - `sequential`: one caller, one request at a time: the latency of a
//!   round trip.
//! - `concurrent/N`: N callers on the one connection, each sending requests
//!   back to back; reported per request, so the time is the inverse of the
//!   throughput with N requests in flight (what a gateway serving N
//!   application connections sees).
//!
//! Run: `cargo bench -p fluence-net --bench round_trip` on an idle machine
//! (client, server and their threads share the cores).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fluence_net::{Answer, NodeClient, PeerId, RequestHandler, Server};
use libp2p::identity::Keypair;

/// Answers every request with an empty answer.
struct Empty;

impl RequestHandler for Empty {
    fn handle(&self, _: PeerId, _: Vec<u8>) -> Answer {
        Vec::new().into()
    }
}

const CALLERS: [usize; 3] = [4, 16, 64];

fn round_trips(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (server, client) = runtime.block_on(async {
        let server = Server::start(
            Keypair::generate_ed25519(),
            "/ip4/127.0.0.1/tcp/0".parse().expect("address"),
            Arc::new(Empty),
        )
        .await
        .expect("server starts");
        let client = NodeClient::connect(server.dial_addr(), Duration::from_secs(10))
            .await
            .expect("client connects");
        (server, client)
    });

    let mut group = c.benchmark_group("round_trip");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sequential", |b| {
        b.iter(|| {
            runtime
                .block_on(client.call_bytes(Vec::new()))
                .expect("answer")
        })
    });
    for callers in CALLERS {
        group.bench_with_input(
            BenchmarkId::new("concurrent", callers),
            &callers,
            |b, &callers| {
                b.iter_custom(|requests| runtime.block_on(concurrent(&client, callers, requests)))
            },
        );
    }
    group.finish();
    runtime.block_on(server.shutdown());
}

/// Time for `requests` round trips split over `callers` concurrent tasks.
async fn concurrent(client: &NodeClient, callers: usize, requests: u64) -> Duration {
    let per_caller = requests.div_ceil(callers as u64);
    let start = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..per_caller {
                    client.call_bytes(Vec::new()).await.expect("answer");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("caller task");
    }
    // Scaled back to the `requests` criterion asked for.
    start
        .elapsed()
        .mul_f64(requests as f64 / (per_caller * callers as u64) as f64)
}

criterion_group!(benches, round_trips);
criterion_main!(benches);
