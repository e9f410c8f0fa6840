//! The benchmarks' documents: about `size` bytes of JSON with three
//! indexed fields (`email` eq, `age` range, `title` text) and an unindexed
//! payload. Shared by `fluence-bench` and `restore`.

use rand::Rng;
use serde_json::{json, Value};

/// Document number `i`, about `size` bytes long.
pub fn document(i: usize, size: usize, rng: &mut impl Rng) -> Value {
    const WORDS: [&str; 12] = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
        "juliet", "kilo", "lima",
    ];
    let title: Vec<&str> = (0..5)
        .map(|_| WORDS[rng.gen_range(0..WORDS.len())])
        .collect();
    let mut doc = json!({
        "_id": i as i64,
        "email": format!("user{i}@example.org"),
        "age": i as i64,
        "title": title.join(" "),
    });
    let used = doc.to_string().len();
    let payload: String = (0..size.saturating_sub(used + 16))
        .map(|_| char::from(b'a' + rng.gen_range(0..26u8)))
        .collect();
    doc["payload"] = Value::String(payload);
    doc
}
