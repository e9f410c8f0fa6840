//! Criterion benchmarks of the hot paths of `fluence-crypto`.
//!
//! Run: `cargo bench -p fluence-crypto` (or `-- --quick`). Results go into
//! docs/benchmarks.md with the machine and date.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use fluence_crypto::encode::{ore_f64, ore_string};
use fluence_crypto::{dataset_id, ore_compare, Keystore, MasterKey};

fn documents(c: &mut Criterion) {
    let master = MasterKey::from_bytes([1u8; 32]);
    let tag = master.catalog_key().name_tag("bench");
    let keys = master.dataset_keys(&tag);
    let id = dataset_id(&master.owner_public_key(), &tag);
    let doc = keys.doc_id(b"doc-1");
    let body = vec![0x5Au8; 1024];
    c.bench_function("seal_document_1kib", |b| {
        b.iter(|| keys.seal_document(black_box(&id), black_box(&doc), 1, black_box(&body)))
    });
    let sealed = keys.seal_document(&id, &doc, 1, &body);
    c.bench_function("open_document_1kib", |b| {
        b.iter(|| {
            keys.open_document(
                black_box(&id),
                black_box(&doc),
                1,
                black_box(&sealed.wrapped_key),
                black_box(&sealed.ciphertext),
            )
            .expect("opens")
        })
    });
}

fn tokens(c: &mut Criterion) {
    let master = MasterKey::from_bytes([2u8; 32]);
    let keys = master.dataset_keys(&[3u8; 32]);
    let eq = keys.eq_key("customer.email");
    c.bench_function("eq_token", |b| {
        b.iter(|| eq.token(black_box(b"\x02alice@example.com")))
    });
    let text_key = keys.text_key("review");
    let words = [
        "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "Über", "naïve",
    ];
    let text: String = (0..100)
        .map(|i| format!("{}{} ", words[i % words.len()], i / words.len()))
        .collect();
    c.bench_function("text_tokens_100_words", |b| {
        b.iter(|| text_key.text_tokens(black_box(&text)))
    });
}

fn ore(c: &mut Criterion) {
    let master = MasterKey::from_bytes([4u8; 32]);
    let key = master.dataset_keys(&[5u8; 32]).ore_key("price");
    // Distinct plaintexts per iteration, as in real use: the key keeps the
    // tables of blocks 0 and 1 (the class byte) and, in its bounded cache,
    // those of the high-byte prefixes the 1,024 values share; the tables of
    // their unique low-order prefixes are computed anew (far more of them
    // than the cache holds).
    let numbers: Vec<[u8; 9]> = (0..1024)
        .map(|i| ore_f64(f64::from(i) * 13.37 - 5000.0))
        .collect();
    let mut next = 0usize;
    c.bench_function("ore_encrypt_f64", |b| {
        b.iter(|| {
            next = (next + 1) % numbers.len();
            key.encrypt(black_box(&numbers[next])).expect("9 bytes")
        })
    });
    // The end-to-end benchmark's `age` field: consecutive integers. As
    // `f64` their low four bytes are zero, so each value's last four or
    // five prefixes are its own and their tables are built every time.
    let integers: Vec<[u8; 9]> = (0..10_000).map(|i| ore_f64(f64::from(i))).collect();
    c.bench_function("ore_encrypt_consecutive_integers", |b| {
        b.iter(|| {
            next = (next + 1) % integers.len();
            key.encrypt(black_box(&integers[next])).expect("9 bytes")
        })
    });
    // The same on two threads sharing the key, as a gateway encrypts a
    // large insert: time per encryption per thread.
    c.bench_function("ore_encrypt_consecutive_integers_two_threads", |b| {
        b.iter_custom(|iterations| {
            let started = std::time::Instant::now();
            std::thread::scope(|scope| {
                for half in 0..2u64 {
                    let (key, integers) = (&key, &integers);
                    scope.spawn(move || {
                        for i in 0..iterations {
                            let value = &integers[((2 * i + half) % 10_000) as usize];
                            black_box(key.encrypt(black_box(value)).expect("9 bytes"));
                        }
                    });
                }
            });
            started.elapsed()
        })
    });
    let strings: Vec<[u8; 15]> = (0..1024)
        .map(|i| ore_string(&format!("{i:05} Fluence string value")))
        .collect();
    c.bench_function("ore_encrypt_string", |b| {
        b.iter(|| {
            next = (next + 1) % strings.len();
            key.encrypt(black_box(&strings[next])).expect("15 bytes")
        })
    });
    // Two numbers that first differ in plaintext byte 5 of 9, so the
    // comparison walks five equal left blocks before the one AES evaluation.
    let a = key.encrypt(&ore_f64(1234.5678)).expect("encrypts");
    let b2 = key.encrypt(&ore_f64(1234.5679)).expect("encrypts");
    c.bench_function("ore_compare", |b| {
        b.iter(|| ore_compare(black_box(&a), black_box(&b2)).expect("compares"))
    });
    // Equal plaintexts: all nine left blocks compared, no AES at all.
    let a2 = key.encrypt(&ore_f64(1234.5678)).expect("encrypts");
    c.bench_function("ore_compare_equal", |b| {
        b.iter(|| ore_compare(black_box(&a), black_box(&a2)).expect("compares"))
    });
}

fn keystore(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.key");
    Keystore::create(&path, "bench", b"correct horse battery staple").expect("create");
    let mut group = c.benchmark_group("keystore");
    group.sample_size(10);
    group.bench_function("keystore_unlock", |b| {
        b.iter(|| {
            Keystore::unlock(black_box(&path), b"correct horse battery staple").expect("unlock")
        })
    });
    group.finish();
}

criterion_group!(benches, documents, tokens, ore, keystore);
criterion_main!(benches);
