//! proptest strategies for the differential test: documents, filters, updates,
//! sorts and projections over one small vocabulary, so that random filters
//! actually hit random documents.
//!
//! The vocabulary (every generated document and query uses only these):
//!
//! | path | values |
//! |---|---|
//! | `_id` | unique Int32 or String (`"id3"`) |
//! | `a` | a scalar, never an array (safe to sort on with anything) |
//! | `b` | a scalar, or an array of scalars (possibly empty, rarely holding a nested array) |
//! | `c` | a scalar (strings favoured), an array of strings, or a document `{x: scalar}` |
//! | `tags` | an array of strings (possibly empty), sometimes one string |
//! | `nested` | a document `{x, y}` (either may be missing, either order), an array of such documents (sometimes with a scalar element), or a scalar |
//! | `nested.x` | a scalar, never an array |
//! | `nested.y` | a scalar or an array of scalars |
//!
//! Any field but `_id` may be missing. Scalars are Int32, Int64 and Double
//! from a few small values that collide across types (1, 1i64, 1.0), short
//! strings (some with several words, mixed case, punctuation and one non-ASCII
//! word, for `$text`), booleans, null, dates, and rarely NaN.
//!
//! NaN follows MongoDB exactly in the reference: NaN equals NaN, sorts below
//! all numbers, and matches no `$gt/$lt` and only NaN in `$gte/$lte`.
//!
//! Text search paths: [`TEXT_PATHS`].

use std::sync::Arc;

use bson::{doc, Bson, Document};
use proptest::prelude::*;
use proptest::sample::select;

/// The paths the generated `$text` filters are meant to search (pass these as
/// `text_paths` to both evaluators).
pub const TEXT_PATHS: &[&str] = &["c", "tags", "nested.y"];

/// Words and phrases. Short single letters make equality and `$in` collide;
/// "B" < "a" < "ab" < "b" in byte order exercises string comparison.
const STRINGS: &[&str] = &[
    "",
    "a",
    "ab",
    "b",
    "B",
    "apple",
    "Apple pie",
    "banana split",
    "cherry-red",
    "Éclair au café",
    "zebra",
];

/// Words for `$search`: some appear in [`STRINGS`] (in other cases), some not.
const SEARCH_WORDS: &[&str] = &[
    "apple", "APPLE", "pie", "banana", "red", "cherry", "éclair", "café", "zebra", "a", "b",
    "missing", "split!", "-pie",
];

const DATES_MS: &[i64] = &[-86_400_000, 0, 1_000, 1_700_000_000_000];

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

/// A scalar from the small shared domains.
pub fn arb_scalar() -> BoxedStrategy<Bson> {
    prop_oneof![
        30 => (-2i32..=3).prop_map(Bson::Int32),
        15 => (-2i64..=3).prop_map(Bson::Int64),
        20 => select(vec![-1.5, -1.0, 0.0, 0.5, 1.0, 2.0, 2.5, 3.0]).prop_map(Bson::Double),
        30 => arb_string(),
        8 => any::<bool>().prop_map(Bson::Boolean),
        8 => Just(Bson::Null),
        6 => select(DATES_MS.to_vec()).prop_map(|ms| Bson::DateTime(bson::DateTime::from_millis(ms))),
        1 => Just(Bson::Double(f64::NAN)),
    ]
    .boxed()
}

pub fn arb_string() -> BoxedStrategy<Bson> {
    select(STRINGS.to_vec())
        .prop_map(|s| Bson::String(s.to_string()))
        .boxed()
}

/// An array of 0..=3 scalars.
fn arb_scalar_array() -> BoxedStrategy<Bson> {
    prop::collection::vec(arb_scalar(), 0..=3)
        .prop_map(Bson::Array)
        .boxed()
}

/// `b`: scalar, array, or (rarely) an array holding a nested array.
fn arb_b() -> BoxedStrategy<Bson> {
    prop_oneof![
        6 => arb_scalar(),
        4 => arb_scalar_array(),
        1 => (arb_scalar(), prop::collection::vec(arb_scalar(), 0..=2))
            .prop_map(|(s, inner)| Bson::Array(vec![s, Bson::Array(inner)])),
    ]
    .boxed()
}

/// `c`: strings favoured; arrays of strings; small documents.
fn arb_c() -> BoxedStrategy<Bson> {
    prop_oneof![
        4 => arb_string(),
        2 => arb_scalar(),
        2 => prop::collection::vec(arb_string(), 0..=3).prop_map(Bson::Array),
        2 => arb_scalar().prop_map(|x| Bson::Document(doc! { "x": x })),
    ]
    .boxed()
}

/// `tags`: arrays of strings, sometimes a single string.
fn arb_tags() -> BoxedStrategy<Bson> {
    prop_oneof![
        5 => prop::collection::vec(arb_string(), 0..=4).prop_map(Bson::Array),
        1 => arb_string(),
    ]
    .boxed()
}

/// One `{x, y}` document; either field may be missing, and y may come first.
fn arb_xy() -> BoxedStrategy<Document> {
    (
        prop::option::weighted(0.8, arb_scalar()),
        prop::option::weighted(0.8, prop_oneof![3 => arb_scalar(), 1 => arb_scalar_array()]),
        any::<bool>(),
    )
        .prop_map(|(x, y, y_first)| {
            let mut d = Document::new();
            let fields = [("x", x), ("y", y)];
            let order: [usize; 2] = if y_first { [1, 0] } else { [0, 1] };
            for i in order {
                if let (name, Some(value)) = &fields[i] {
                    d.insert(*name, value.clone());
                }
            }
            d
        })
        .boxed()
}

/// `nested`: a document, an array of documents (maybe with a scalar), or a
/// scalar.
fn arb_nested() -> BoxedStrategy<Bson> {
    prop_oneof![
        5 => arb_xy().prop_map(Bson::Document),
        3 => (prop::collection::vec(arb_xy(), 0..=3), prop::option::weighted(0.2, arb_scalar()))
            .prop_map(|(docs, scalar)| {
                let mut items: Vec<Bson> = docs.into_iter().map(Bson::Document).collect();
                items.extend(scalar);
                Bson::Array(items)
            }),
        1 => arb_scalar(),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------

/// A document without `_id`: the fields `a b c tags nested`, each present
/// with probability 0.75, in that order.
pub fn arb_document_body() -> BoxedStrategy<Document> {
    (
        prop::option::weighted(0.75, arb_scalar()),
        prop::option::weighted(0.75, arb_b()),
        prop::option::weighted(0.75, arb_c()),
        prop::option::weighted(0.75, arb_tags()),
        prop::option::weighted(0.75, arb_nested()),
    )
        .prop_map(|(a, b, c, tags, nested)| {
            let mut d = Document::new();
            for (name, value) in [
                ("a", a),
                ("b", b),
                ("c", c),
                ("tags", tags),
                ("nested", nested),
            ] {
                if let Some(value) = value {
                    d.insert(name, value);
                }
            }
            d
        })
        .boxed()
}

/// One document with an `_id` (Int32 0..100 or a string `"idN"`) first. For
/// several documents with distinct `_id`s use [`arb_documents`].
pub fn arb_document() -> BoxedStrategy<Document> {
    (arb_document_body(), 0i32..100, any::<bool>())
        .prop_map(|(body, n, string_id)| with_id(body, id_value(n, string_id)))
        .boxed()
}

/// 0..=`max_len` documents with unique `_id`s, in insertion order. Ids are a
/// shuffled 0..n, each spelt as an Int32 or as a string `"idN"` (never both
/// spellings of one number, and never 1 vs 1i64, which MongoDB would consider
/// the same `_id`).
pub fn arb_documents(max_len: usize) -> BoxedStrategy<Vec<Document>> {
    prop::collection::vec((arb_document_body(), any::<bool>()), 0..=max_len)
        .prop_flat_map(|bodies| {
            let ids: Vec<i32> = (0..bodies.len() as i32).collect();
            (Just(bodies), Just(ids).prop_shuffle())
        })
        .prop_map(|(bodies, ids)| {
            bodies
                .into_iter()
                .zip(ids)
                .map(|((body, string_id), n)| with_id(body, id_value(n, string_id)))
                .collect()
        })
        .boxed()
}

fn id_value(n: i32, string_id: bool) -> Bson {
    if string_id {
        Bson::String(format!("id{n}"))
    } else {
        Bson::Int32(n)
    }
}

/// `body` with `_id` inserted first.
pub fn with_id(body: Document, id: Bson) -> Document {
    let mut d = doc! { "_id": id };
    for (k, v) in body {
        if k != "_id" {
            d.insert(k, v);
        }
    }
    d
}

// ---------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------

/// Paths filters test: every vocabulary path, dotted paths into `c` and
/// `nested` (through arrays of documents), array positions, and one path no
/// document has.
pub const FILTER_PATHS: &[&str] = &[
    "_id",
    "a",
    "b",
    "b.0",
    "c",
    "c.x",
    "tags",
    "tags.0",
    "tags.1",
    "nested",
    "nested.x",
    "nested.y",
    "nested.0.x",
    "nested.1",
    "d",
];

/// An operand: mostly a scalar; sometimes an `_id`-like string, an array (to
/// equal whole arrays), or a document (to equal `c` or `nested`).
pub fn arb_operand() -> BoxedStrategy<Bson> {
    prop_oneof![
        20 => arb_scalar(),
        2 => (0i32..4).prop_map(|n| Bson::String(format!("id{n}"))),
        3 => prop::collection::vec(arb_scalar(), 0..=2).prop_map(Bson::Array),
        1 => arb_scalar().prop_map(|x| Bson::Document(doc! { "x": x })),
        1 => arb_xy().prop_map(Bson::Document),
    ]
    .boxed()
}

/// For each filter path, the values documents hold there (as the matcher
/// sees them: array elements and whole arrays included). Empty: no
/// collection to draw from.
#[derive(Clone, Debug, Default)]
struct OperandPools(Arc<Vec<(&'static str, Vec<Bson>)>>);

impl OperandPools {
    fn of(docs: &[Document]) -> Self {
        let pools = FILTER_PATHS
            .iter()
            .map(|path| {
                let values = docs
                    .iter()
                    .flat_map(|d| crate::reference::values_at(d, path))
                    .collect();
                (*path, values)
            })
            .collect();
        OperandPools(Arc::new(pools))
    }

    /// Operands for `path`: three times in four a value found at that path in
    /// the collection (if any), else [`arb_operand`].
    fn operand_for(&self, path: &str) -> BoxedStrategy<Bson> {
        match self.0.iter().find(|(p, _)| *p == path) {
            Some((_, values)) if !values.is_empty() => prop_oneof![
                1 => arb_operand(),
                3 => select(values.clone()),
            ]
            .boxed(),
            _ => arb_operand(),
        }
    }
}

/// A single field-level operator (not `$not`).
fn arb_operator(operand: BoxedStrategy<Bson>) -> BoxedStrategy<(String, Bson)> {
    prop_oneof![
        3 => (select(vec!["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]), operand.clone())
            .prop_map(|(op, v)| (op.to_string(), v)),
        2 => (select(vec!["$in", "$nin"]), prop::collection::vec(operand, 0..=3))
            .prop_map(|(op, vs)| (op.to_string(), Bson::Array(vs))),
        1 => prop_oneof![
            4 => any::<bool>().prop_map(Bson::Boolean),
            1 => select(vec![0, 1]).prop_map(Bson::Int32),
        ]
        .prop_map(|v| ("$exists".to_string(), v)),
    ]
    .boxed()
}

/// An operator document like `{$gt: 1, $lt: 3}` (1 or 2 operators; a repeated
/// operator keeps the last operand).
fn arb_operator_doc(operand: BoxedStrategy<Bson>) -> BoxedStrategy<Document> {
    prop::collection::vec(arb_operator(operand), 1..=2)
        .prop_map(|ops| {
            let mut d = Document::new();
            for (op, v) in ops {
                d.insert(op, v);
            }
            d
        })
        .boxed()
}

/// `{path: condition}` for one path: implicit equality, operators, or
/// `$not` of operators, with operands for that path.
fn arb_field_clause(pools: OperandPools) -> BoxedStrategy<Document> {
    select(FILTER_PATHS.to_vec())
        .prop_flat_map(move |path| {
            let operand = pools.operand_for(path);
            prop_oneof![
                4 => operand.clone(),
                5 => arb_operator_doc(operand.clone()).prop_map(Bson::Document),
                2 => arb_operator_doc(operand).prop_map(|inner| Bson::Document(doc! { "$not": inner })),
            ]
            .prop_map(move |condition| {
                let mut d = Document::new();
                d.insert(path, condition);
                d
            })
        })
        .boxed()
}

/// Merges clauses into one filter: their fields side by side (implicit AND),
/// or, if two clauses use the same key, an explicit `$and`.
fn merge_clauses(clauses: Vec<Document>) -> Document {
    let mut merged = Document::new();
    for clause in &clauses {
        for (k, v) in clause {
            if merged.contains_key(k) {
                return doc! { "$and": docs_to_array(clauses) };
            }
            merged.insert(k.clone(), v.clone());
        }
    }
    merged
}

fn docs_to_array(docs: Vec<Document>) -> Vec<Bson> {
    docs.into_iter().map(Bson::Document).collect()
}

/// See [`arb_filter_without_text`]; operands come from `pools`.
fn arb_filter_without_text_from(pools: OperandPools) -> BoxedStrategy<Document> {
    let leaf = arb_field_clause(pools);
    let tree = leaf.prop_recursive(3, 12, 3, |inner| {
        let list = prop::collection::vec(inner, 1..=3);
        prop_oneof![
            2 => list.clone().prop_map(|v| doc! { "$and": docs_to_array(v) }),
            3 => list.clone().prop_map(|v| doc! { "$or": docs_to_array(v) }),
            2 => list.clone().prop_map(|v| doc! { "$nor": docs_to_array(v) }),
            1 => list.prop_map(merge_clauses),
        ]
    });
    prop_oneof![
        1 => Just(Document::new()),
        10 => tree.clone(),
        5 => prop::collection::vec(tree, 2..=3).prop_map(merge_clauses),
    ]
    .boxed()
}

/// A filter without `$text`: one clause tree, or 2..=3 combined by implicit AND (or
/// rarely the empty filter); each tree nests `$and/$or/$nor` (and implicit
/// ANDs) up to depth 3 over field clauses on [`FILTER_PATHS`], with
/// independent random operands.
pub fn arb_filter_without_text() -> BoxedStrategy<Document> {
    arb_filter_without_text_from(OperandPools::default())
}

/// A `$search` string of 1..=3 words (mixed case, punctuation), or rarely one
/// with no word at all.
fn arb_search() -> BoxedStrategy<String> {
    prop_oneof![
        12 => prop::collection::vec(select(SEARCH_WORDS.to_vec()), 1..=3).prop_map(|w| w.join(" ")),
        1 => Just(" ,; ".to_string()),
    ]
    .boxed()
}

/// [`arb_filter_without_text_from`], with a top-level `$text: {$search: ...}`
/// about one time in eight (MongoDB only allows `$text` at the top level or
/// in a top-level `$and`; it is never put under `$or/$nor/$not`). Evaluate
/// with [`TEXT_PATHS`].
fn arb_filter_from(pools: OperandPools) -> BoxedStrategy<Document> {
    (
        arb_filter_without_text_from(pools),
        prop::option::weighted(0.125, arb_search()),
    )
        .prop_map(|(filter, search)| match search {
            None => filter,
            Some(search) => merge_clauses(vec![doc! { "$text": { "$search": search } }, filter]),
        })
        .boxed()
}

/// A random filter ([`arb_filter_without_text`], sometimes with `$text`)
/// with independent random operands. Prefer [`arb_collection_and_filter`]
/// for differential tests: its filters match more often.
pub fn arb_filter() -> BoxedStrategy<Document> {
    arb_filter_from(OperandPools::default())
}

/// A filter like [`arb_filter`] whose operands are mostly values that `docs`
/// hold at the operand's path.
pub fn arb_filter_for(docs: &[Document]) -> BoxedStrategy<Document> {
    arb_filter_from(OperandPools::of(docs))
}

/// A collection (0..=`max_len` documents, unique `_id`s, insertion order)
/// and a filter built for it with [`arb_filter_for`].
pub fn arb_collection_and_filter(max_len: usize) -> BoxedStrategy<(Vec<Document>, Document)> {
    arb_documents(max_len)
        .prop_flat_map(|docs| {
            let filter = arb_filter_for(&docs);
            (Just(docs), filter)
        })
        .boxed()
}

// ---------------------------------------------------------------------------
// Updates
// ---------------------------------------------------------------------------

/// Paths updates write to: vocabulary paths, new fields (`e`, `nested.z`),
/// array positions in and past the end of arrays, and a path through an array
/// of documents by position.
pub const UPDATE_PATHS: &[&str] = &[
    "a",
    "b",
    "c",
    "tags",
    "tags.0",
    "tags.3",
    "nested.x",
    "nested.y",
    "nested.z",
    "nested.0.x",
    "e",
    "c.x",
];

/// A value for `$set` or a replacement field.
fn arb_value() -> BoxedStrategy<Bson> {
    prop_oneof![
        6 => arb_scalar(),
        2 => arb_scalar_array(),
        1 => arb_xy().prop_map(Bson::Document),
    ]
    .boxed()
}

/// `(operator, path, argument)`.
fn arb_field_update() -> BoxedStrategy<(&'static str, &'static str, Bson)> {
    let path = select(UPDATE_PATHS.to_vec());
    let inc_arg = prop_oneof![
        6 => (-2i32..=3).prop_map(Bson::Int32),
        2 => (-2i64..=3).prop_map(Bson::Int64),
        2 => select(vec![-1.5, 0.5, 2.0]).prop_map(Bson::Double),
        1 => Just(Bson::Int32(i32::MAX)),
        // Invalid: $inc needs a number.
        1 => arb_string(),
    ];
    let push_arg = prop_oneof![
        3 => arb_scalar(),
        2 => prop::collection::vec(arb_scalar(), 0..=3).prop_map(|v| Bson::Document(doc! { "$each": v })),
    ];
    let pull_arg = prop_oneof![
        4 => arb_scalar(),
        2 => prop::collection::vec(arb_scalar(), 0..=3).prop_map(|v| Bson::Document(doc! { "$in": v })),
        2 => (select(vec!["$gte", "$lt", "$ne"]), arb_scalar()).prop_map(|(op, v)| {
            let mut d = Document::new();
            d.insert(op, v);
            Bson::Document(d)
        }),
        1 => arb_scalar().prop_map(|x| Bson::Document(doc! { "x": x })),
        1 => arb_scalar_array(),
    ];
    prop_oneof![
        4 => (path.clone(), arb_value()).prop_map(|(p, v)| ("$set", p, v)),
        2 => path.clone().prop_map(|p| ("$unset", p, Bson::String(String::new()))),
        3 => (path.clone(), inc_arg).prop_map(|(p, v)| ("$inc", p, v)),
        2 => (path.clone(), push_arg).prop_map(|(p, v)| ("$push", p, v)),
        2 => (path, pull_arg).prop_map(|(p, v)| ("$pull", p, v)),
    ]
    .boxed()
}

fn conflicts(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    a.starts_with(&b) || b.starts_with(&a)
}

/// An operator update with 1..=4 field updates. Conflicting paths (`tags` and
/// `tags.0`) are dropped, except in about one update in twelve, which keeps
/// them and is therefore invalid.
pub fn arb_operator_update() -> BoxedStrategy<Document> {
    (
        prop::collection::vec(arb_field_update(), 1..=4),
        prop::bool::weighted(1.0 / 12.0),
    )
        .prop_map(|(fields, keep_conflicts)| {
            let mut kept: Vec<(&str, &str, Bson)> = Vec::new();
            for (op, path, arg) in fields {
                if !keep_conflicts && kept.iter().any(|(_, p, _)| conflicts(p, path)) {
                    continue;
                }
                kept.push((op, path, arg));
            }
            let mut update = Document::new();
            for (op, path, arg) in kept {
                let entry = update
                    .entry(op.to_string())
                    .or_insert_with(|| Bson::Document(Document::new()));
                if let Bson::Document(fields) = entry {
                    // Same path twice in one operator: a document cannot hold
                    // it twice, so the last one wins (no conflict to report).
                    fields.insert(path, arg);
                }
            }
            update
        })
        .boxed()
}

/// A replacement document (no `_id`, so it keeps the document's).
pub fn arb_replacement() -> BoxedStrategy<Document> {
    (
        prop::option::weighted(0.7, arb_value()),
        prop::option::weighted(0.5, arb_tags()),
        prop::option::weighted(0.5, arb_nested()),
        prop::option::weighted(0.3, arb_value()),
    )
        .prop_map(|(a, tags, nested, e)| {
            let mut d = Document::new();
            for (name, value) in [("a", a), ("tags", tags), ("nested", nested), ("e", e)] {
                if let Some(value) = value {
                    d.insert(name, value);
                }
            }
            d
        })
        .boxed()
}

/// An update: an operator update (4 in 5) or a replacement.
pub fn arb_update() -> BoxedStrategy<Document> {
    prop_oneof![
        4 => arb_operator_update(),
        1 => arb_replacement(),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// Sort, projection, skip and limit
// ---------------------------------------------------------------------------

/// Groups of sort paths that may meet arrays; a sort uses at most one group,
/// so that MongoDB's "parallel arrays" error cannot happen (`a` and `_id` are
/// never arrays; `nested.x` and `nested.y` share the `nested` array and `x` is
/// never an array).
const SORT_ARRAY_GROUPS: &[&[&str]] = &[
    &["b"],
    &["c"],
    &["c.x"],
    &["tags"],
    &["tags.0"],
    &["nested.x"],
    &["nested.y"],
    &["nested.x", "nested.y"],
    &["nested.y", "nested.x"],
];

/// A sort specification of 1..=4 fields: maybe `a`, maybe one group of
/// array-prone paths (before or after `a`), and sometimes `_id` last (which
/// makes the order total). Directions 1 or -1, as Int32, or rarely Int64 or
/// Double. Never hits MongoDB's "parallel arrays" error on generated
/// documents.
pub fn arb_sort() -> BoxedStrategy<Document> {
    (
        prop::bool::weighted(0.5),
        prop::option::weighted(0.8, select(SORT_ARRAY_GROUPS.to_vec())),
        any::<bool>(),
        prop::bool::weighted(0.3),
        prop::collection::vec((any::<bool>(), 0u8..10), 4),
    )
        .prop_map(|(use_a, group, a_first, id_last, directions)| {
            let group: Vec<&str> = group.map(|g| g.to_vec()).unwrap_or_default();
            let a: Vec<&str> = if use_a { vec!["a"] } else { vec![] };
            let mut paths: Vec<&str> = if a_first {
                a.into_iter().chain(group).collect()
            } else {
                group.into_iter().chain(a).collect()
            };
            if id_last || paths.is_empty() {
                paths.push("_id");
            }
            let mut sort = Document::new();
            for (path, (descending, spelling)) in paths.into_iter().zip(directions) {
                let sign = if descending { -1 } else { 1 };
                let direction = match spelling {
                    0 => Bson::Int64(sign.into()),
                    1 => Bson::Double(sign.into()),
                    _ => Bson::Int32(sign),
                };
                sort.insert(path, direction);
            }
            sort
        })
        .boxed()
}

/// Groups of projection paths that do not collide (a path and its prefix).
const PROJECTION_GROUPS: &[&[&str]] = &[
    &["a"],
    &["b"],
    &["tags"],
    &["c"],
    &["c.x"],
    &["nested"],
    &["nested.x"],
    &["nested.y"],
    &["nested.x", "nested.y"],
];

/// A projection: an inclusion or an exclusion of a few paths (dotted ones
/// included), with or without `_id` settings, values spelt as 1/0, true/false
/// or 1.0/0.0. Sometimes `{}` (no projection) or `{_id: 0}` alone.
pub fn arb_projection() -> BoxedStrategy<Document> {
    (
        prop::sample::subsequence(PROJECTION_GROUPS.to_vec(), 0..=3),
        any::<bool>(),
        prop::option::of(any::<bool>()),
        0u8..3,
    )
        .prop_map(|(groups, include, id, spelling)| {
            let spell = |keep: bool| match spelling {
                0 => Bson::Boolean(keep),
                1 => Bson::Double(if keep { 1.0 } else { 0.0 }),
                _ => Bson::Int32(keep.into()),
            };
            let mut projection = Document::new();
            if let Some(id) = id {
                projection.insert("_id", spell(id));
            }
            let mut seen: Vec<&str> = Vec::new();
            for path in groups.into_iter().flatten() {
                if seen.iter().any(|p| conflicts(p, path)) {
                    continue;
                }
                seen.push(path);
                projection.insert(*path, spell(include));
            }
            projection
        })
        .boxed()
}

/// `(skip, limit)` for `find`: small skips; limit `None`, 0 (no limit), small
/// positive, or negative (its absolute value).
pub fn arb_skip_limit() -> BoxedStrategy<(u64, Option<i64>)> {
    (
        prop_oneof![3 => Just(0u64), 2 => 0u64..6],
        prop_oneof![3 => Just(None), 1 => Just(Some(0i64)), 3 => (1i64..6).prop_map(Some), 1 => (-5i64..0).prop_map(Some)],
    )
    .boxed()
}

#[cfg(test)]
mod tests;
