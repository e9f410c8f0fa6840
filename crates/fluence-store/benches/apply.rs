//! Criterion benchmark of bulk insert as the gateway sends it: batches of
//! 1,000 new documents applied to a growing dataset, plus the two lookups
//! the end-to-end benchmark times (one document by an `eq` token, 100
//! documents by a two-sided range) on the full dataset.
//!
//! Workload (the end-to-end `fluence-bench` documents, as the node sees
//! them): 1 KiB ciphertext and a 72-byte wrapped key; one `eq` token per
//! document, unique like the HMAC of a unique e-mail address; five `text`
//! tokens drawn from a 12-word vocabulary; one ~750-byte ORE value (the
//! size of a Lewi–Wu ciphertext) whose order is the document's insertion
//! number, like `age = _id`. `PlaintextOrder` stands in for Lewi–Wu: the
//! value is its 8-byte big-endian prefix followed by pseudo-random bytes.
//! Doc ids are keyed-hash-like, so `DocId` order is random.
//!
//! Run: `cargo bench -p fluence-store --bench apply`. The dataset grows
//! from empty by 1,000-document batches; the mean apply time of the
//! `REPORT_BATCHES` batches ending at each size of `REPORT_AT` is printed
//! (the growth curve). At each size of `SIZES` criterion times the
//! batches themselves: one batch per sample, no warm-up, so its
//! `SAMPLES` + 1 batches grow the dataset from about `size - 5,000` to
//! `size + 6,000` (a batch cannot be timed twice on the same state).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use fluence_proto::{
    Action, DatasetId, DocId, DocOp, IndexEntry, IndexId, IndexKind, IndexValues, OreBound, Plan,
    Precondition, SealedDoc, Token,
};
use fluence_store::{PlaintextOrder, Store};

mod support;
use support::signed;

const EQ: IndexId = IndexId([0xe1; 16]);
const TEXT: IndexId = IndexId([0x7e; 16]);
const RANGE: IndexId = IndexId([0x4a; 16]);
/// Documents per write, as the end-to-end benchmark sends them.
const BATCH_DOCS: u64 = 1_000;
/// Dataset sizes around which criterion times batches.
const SIZES: [u64; 2] = [20_000, 100_000];
/// Criterion samples per size (its minimum), one batch each.
const SAMPLES: usize = 10;
/// Sizes at which the fill prints the apply time of the batches that led
/// there (mean of the `REPORT_BATCHES` batches ending at that size).
const REPORT_AT: [u64; 5] = [20_000, 40_000, 60_000, 80_000, 100_000];
const REPORT_BATCHES: u64 = 5;
const CIPHERTEXT_BYTES: usize = 1024;
const ORE_BYTES: usize = 750;
const WORDS: u8 = 12;
const TEXT_TOKENS: u64 = 5;
/// Documents a range lookup selects.
const RANGE_SELECTED: u64 = 100;

/// `len` pseudo-random bytes determined by (`what`, `n`).
fn noise(what: &str, n: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new_derive_key(what)
        .update(&n.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

fn doc(n: u64) -> DocId {
    DocId(noise("bench doc id", n, 16).try_into().expect("16 bytes"))
}

fn eq_token(n: u64) -> Token {
    Token(noise("bench eq token", n, 16).try_into().expect("16 bytes"))
}

fn word(w: u8) -> Token {
    Token([w; 16])
}

/// A ~750-byte ciphertext of `value` under `PlaintextOrder`.
fn ore(value: u64) -> Vec<u8> {
    let mut ct = value.to_be_bytes().to_vec();
    ct.extend(noise("bench ore", value, ORE_BYTES - 8));
    ct
}

fn insert(n: u64) -> DocOp {
    let words = noise("bench words", n, TEXT_TOKENS as usize)
        .into_iter()
        .map(|b| word(b % WORDS))
        .collect();
    DocOp::Put {
        doc: doc(n),
        expect: Precondition::Absent,
        sealed: SealedDoc {
            version: 1,
            wrapped_key: vec![0xaa; 72],
            ciphertext: noise("bench body", n, CIPHERTEXT_BYTES),
        },
        entries: vec![
            IndexEntry {
                index: EQ,
                values: IndexValues::Tokens(vec![eq_token(n)]),
            },
            IndexEntry {
                index: TEXT,
                values: IndexValues::Tokens(words),
            },
            IndexEntry {
                index: RANGE,
                values: IndexValues::Ore(vec![ore(n)]),
            },
        ],
    }
}

/// A dataset and its next write sequence number.
struct Bench {
    store: Store<PlaintextOrder>,
    dataset: DatasetId,
    schema: fluence_proto::Hash32,
    seq: u64,
    /// Next document number to insert: the dataset holds `0..next`.
    next: u64,
    /// Apply time of every batch so far.
    batch_times: Vec<Duration>,
    _dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::<PlaintextOrder>::open(dir.path()).expect("open");
        let dataset = DatasetId([1; 32]);
        let schema = support::create(
            &store,
            dataset,
            &[
                (EQ, IndexKind::Eq),
                (TEXT, IndexKind::Text),
                (RANGE, IndexKind::Range),
            ],
        );
        Bench {
            store,
            dataset,
            schema,
            seq: 1,
            next: 0,
            batch_times: Vec::new(),
            _dir: dir,
        }
    }

    fn apply(&mut self, ops: Vec<DocOp>) -> Duration {
        let action = Action::Batch {
            schema: self.schema,
            ops,
        };
        let write = signed(self.dataset, self.seq, action);
        let started = Instant::now();
        self.store.apply(&write).expect("apply");
        let elapsed = started.elapsed();
        self.seq += 1;
        elapsed
    }

    /// Inserts the next `BATCH_DOCS` documents; returns the apply time.
    fn insert_batch(&mut self) -> Duration {
        let docs = self.next..self.next + BATCH_DOCS;
        self.next = docs.end;
        let elapsed = self.apply(docs.map(insert).collect());
        self.batch_times.push(elapsed);
        if REPORT_AT.contains(&self.next) {
            let last = &self.batch_times[self.batch_times.len() - REPORT_BATCHES as usize..];
            let mean = last.iter().sum::<Duration>() / REPORT_BATCHES as u32;
            println!(
                "fill: {:.1} ms per {BATCH_DOCS}-document batch at {} documents",
                mean.as_secs_f64() * 1e3,
                self.next
            );
        }
        elapsed
    }

    /// Every document of a query, following the cursor (bounded: the
    /// queries here select at most `RANGE_SELECTED` documents).
    fn find(&self, plan: &Plan) -> usize {
        let mut found = 0;
        let mut after = None;
        for _ in 0..1_000 {
            let page = self
                .store
                .find(&self.dataset, plan, after, 1_000)
                .expect("find");
            found += page.docs.len();
            match page.next {
                Some(next) => after = Some(next),
                None => return found,
            }
        }
        panic!("query did not finish");
    }
}

fn bound(ct: Vec<u8>) -> Option<OreBound> {
    Some(OreBound {
        ct,
        inclusive: true,
    })
}

fn apply(c: &mut Criterion) {
    let mut bench = Bench::new();
    let mut group = c.benchmark_group("apply");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(SAMPLES);
    // One batch per sample and no warm-up beyond one batch: every batch
    // grows the dataset, so fewer batches keep the size near its label.
    group.warm_up_time(Duration::from_millis(1));
    group.measurement_time(Duration::from_millis(1));
    for size in SIZES {
        let start = size - (SAMPLES as u64 / 2) * BATCH_DOCS;
        while bench.next < start {
            bench.insert_batch();
        }
        group.bench_function(format!("insert_{BATCH_DOCS}_at_{size}"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| bench.insert_batch()).sum())
        });
    }
    while !REPORT_AT.iter().all(|at| bench.next >= *at) {
        bench.insert_batch();
    }
    group.finish();

    // Lookups on the full dataset.
    let size = bench.next;
    let mut group = c.benchmark_group("find");
    let eq = Plan::Tokens {
        index: EQ,
        any_of: vec![eq_token(size / 2)],
    };
    // `{age: {$gte: low, $lt: low + 100}}` as the client lowers it: two
    // half-open ranges on one index, closed at the edges of the type class.
    // An 8-byte bound sorts before every ciphertext with its prefix.
    let low = size / 2;
    let range = Plan::And(vec![
        Plan::Range {
            index: RANGE,
            lower: bound(low.to_be_bytes().to_vec()),
            upper: bound(vec![0xff; 8]),
        },
        Plan::Range {
            index: RANGE,
            lower: bound(vec![0; 8]),
            // Below the ciphertext of `low + 100` (which extends it).
            upper: Some(OreBound {
                ct: (low + RANGE_SELECTED).to_be_bytes().to_vec(),
                inclusive: false,
            }),
        },
    ]);
    assert_eq!(bench.find(&eq), 1);
    assert_eq!(bench.find(&range), RANGE_SELECTED as usize);
    group.bench_function(format!("eq_1_of_{size}"), |b| {
        b.iter(|| bench.find(black_box(&eq)))
    });
    group.bench_function(format!("range_and_{RANGE_SELECTED}_of_{size}"), |b| {
        b.iter(|| bench.find(black_box(&range)))
    });
    group.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
