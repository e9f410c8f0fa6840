//! `find`: filter, sort, skip, limit, projection.
//!
//! References:
//! - sort: <https://www.mongodb.com/docs/manual/reference/method/cursor.sort/>
//!   and the array rules of
//!   <https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/#arrays>:
//!   "With arrays, a less-than comparison or an ascending sort compares the
//!   smallest elements of the arrays, and a greater-than comparison or a
//!   descending sort compares the largest elements of the arrays. [...] A
//!   comparison of an empty array (example, [ ]) considers the empty array as
//!   less than a null value or a missing field value."
//! - limit: <https://www.mongodb.com/docs/manual/reference/method/cursor.limit/>
//!   ("A limit() value of 0 [...] is equivalent to setting no limit"; a
//!   negative limit returns abs(n) documents in a single batch).
//! - projection: <https://www.mongodb.com/docs/manual/reference/method/db.collection.find/#projection>
//!   and <https://www.mongodb.com/docs/manual/tutorial/project-fields-from-query-results/>.

use std::cmp::Ordering;

use bson::{Array, Bson, Document};

use super::compare::compare_values;
use super::filter::{eval, parse_filter};
use super::path::{is_array_index, split_path};

/// MongoDB `find`: the documents of `docs` (given in insertion order) that
/// match `filter`, sorted by `sort`, then `skip` documents dropped, at most
/// `limit` kept, each shaped by `projection`.
///
/// - `sort`: `{path: 1 | -1, ...}`, compound left to right. `None` or `{}`:
///   insertion order. Ties keep insertion order (MongoDB leaves it undefined).
/// - `limit`: `None` or `Some(0)`: no limit; negative: its absolute value.
/// - `projection`: `None` or `{}`: whole documents.
///
/// Errors: a malformed filter, sort or projection, `$text` without
/// `text_paths`, and MongoDB's "parallel arrays" error when a *matching*
/// document has arrays at two sort paths that are not nested one in the other.
pub fn find(
    docs: &[Document],
    filter: &Document,
    sort: Option<&Document>,
    skip: u64,
    limit: Option<i64>,
    projection: Option<&Document>,
    text_paths: &[&str],
) -> Result<Vec<Document>, String> {
    // Parse everything first, so errors do not depend on the data.
    let filter = parse_filter(filter, text_paths)?;
    let sort = match sort {
        Some(spec) => parse_sort(spec)?,
        None => Vec::new(),
    };
    let projection = match projection {
        Some(spec) => parse_projection(spec)?,
        None => None,
    };

    let matching: Vec<&Document> = docs
        .iter()
        .filter(|doc| eval(&filter, doc, text_paths))
        .collect();

    let ordered: Vec<&Document> = if sort.is_empty() {
        matching
    } else {
        let mut keyed = Vec::with_capacity(matching.len());
        for doc in matching {
            keyed.push((sort_key(doc, &sort)?, doc));
        }
        // `sort_by` is stable: ties keep insertion order.
        keyed.sort_by(|(a, _), (b, _)| compare_sort_keys(a, b, &sort));
        keyed.into_iter().map(|(_, doc)| doc).collect()
    };

    let skip = usize::try_from(skip).unwrap_or(usize::MAX);
    let limit = match limit {
        None | Some(0) => usize::MAX,
        Some(n) => usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX),
    };
    Ok(ordered
        .into_iter()
        .skip(skip)
        .take(limit)
        .map(|doc| match &projection {
            Some(p) => p.apply(doc),
            None => doc.clone(),
        })
        .collect())
}

// ---------------------------------------------------------------------------
// Sort
// ---------------------------------------------------------------------------

/// One field of a sort specification.
#[derive(Clone, Debug)]
struct SortField {
    path: Vec<String>,
    descending: bool,
}

/// `{a: 1, "b.c": -1}`. The direction must be 1 or -1 (as an Int32, Int64 or
/// Double); `{$meta: ...}` sorts are not supported.
fn parse_sort(spec: &Document) -> Result<Vec<SortField>, String> {
    let mut fields = Vec::new();
    for (path, direction) in spec {
        let direction = match direction {
            Bson::Int32(i) => f64::from(*i),
            Bson::Int64(i) => *i as f64,
            Bson::Double(f) => *f,
            other => return Err(format!("unsupported sort direction for {path}: {other}")),
        };
        let descending = if direction == 1.0 {
            false
        } else if direction == -1.0 {
            true
        } else {
            return Err(format!(
                "$sort key ordering must be 1 (for ascending) or -1 (for descending), got {direction} for {path}"
            ));
        };
        let components = split_path(path);
        if components
            .iter()
            .any(|c| c.is_empty() || c.starts_with('$'))
        {
            return Err(format!("invalid sort path {path:?}"));
        }
        fields.push(SortField {
            path: components.into_iter().map(str::to_string).collect(),
            descending,
        });
    }
    Ok(fields)
}

/// Compares two sort keys (one value per sort field) under the sort's
/// directions.
fn compare_sort_keys(a: &[Bson], b: &[Bson], fields: &[SortField]) -> Ordering {
    for ((x, y), field) in a.iter().zip(b).zip(fields) {
        let order = compare_values(x, y);
        let order = if field.descending {
            order.reverse()
        } else {
            order
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

/// A document's sort key: of all the key tuples its arrays generate (see
/// [`key_tuples`]), the one that sorts first under the sort's directions. For
/// one field that is the smallest element ascending and the largest
/// descending, as documented; for compound sorts through one array it keeps
/// the values of one array element together, as an index would (jstest
/// `sort_dotted_paths.js`).
fn sort_key(doc: &Document, fields: &[SortField]) -> Result<Vec<Bson>, String> {
    let root = Bson::Document(doc.clone());
    let steps = fields
        .iter()
        .map(|f| Step::Pending {
            base: &root,
            rest: &f.path,
        })
        .collect();
    let tuples = key_tuples(steps)?;
    Ok(tuples
        .into_iter()
        .min_by(|a, b| compare_sort_keys(a, b, fields))
        .expect("key_tuples returns at least one tuple"))
}

/// How far one sort path has been resolved.
#[derive(Clone, Debug)]
enum Step<'a> {
    /// The key value is known. A missing value is recorded as null.
    Done(Bson),
    /// `rest` is still to be resolved, starting at `base`.
    Pending { base: &'a Bson, rest: &'a [String] },
}

/// Where walking a path through documents stopped.
enum Walk<'a> {
    Done(Bson),
    /// An array was met after walking `prefix` (relative to the walk's base);
    /// `rest` remains to be resolved in each element (empty: the path ends at
    /// the array).
    AtArray {
        array: &'a Array,
        prefix: &'a [String],
        rest: &'a [String],
    },
}

/// Walks `path` down from `base` through documents, and through arrays only
/// by position (`a.0` takes element 0 of an array without expanding it; the
/// element is the key even if it is itself an array). Stops at the first array
/// that would have to be expanded.
fn walk<'a>(base: &'a Bson, path: &'a [String]) -> Walk<'a> {
    let mut value = base;
    let mut walked = 0;
    loop {
        let rest = &path[walked..];
        match value {
            Bson::Array(items) => {
                if let Some(next) = rest.first().filter(|c| is_array_index(c)) {
                    // Positional: "a.0" picks an element. Out of range: null.
                    match next.parse::<usize>().ok().and_then(|i| items.get(i)) {
                        Some(item) if rest.len() == 1 => return Walk::Done(item.clone()),
                        Some(item) => {
                            value = item;
                            walked += 1;
                            continue;
                        }
                        None => return Walk::Done(Bson::Null),
                    }
                }
                return Walk::AtArray {
                    array: items,
                    prefix: &path[..walked],
                    rest,
                };
            }
            _ if rest.is_empty() => return Walk::Done(value.clone()),
            Bson::Document(doc) => match doc.get(&rest[0]) {
                Some(child) => {
                    value = child;
                    walked += 1;
                }
                // Missing sorts as null.
                None => return Walk::Done(Bson::Null),
            },
            // A scalar has no sub-fields: missing, so null.
            _ => return Walk::Done(Bson::Null),
        }
    }
}

/// All key tuples of a document for a compound sort, the way MongoDB builds
/// multikey index keys (which its sort uses):
///
/// - Each path is walked through documents; missing gives null.
/// - If some paths reach an array, it must be the same array for all of them
///   (same prefix); two different arrays are "parallel arrays", an error.
/// - That array is expanded: one round per element. A path ending at the array
///   takes the element itself (a nested array stays whole). A path going on
///   continues inside a document element, positionally inside an array
///   element (`a.0.1`), and is null for any other element. An empty array
///   counts as one element, `undefined` (so `[]` sorts below null); paths
///   going through it get null.
/// - Paths that did not reach the array keep their value in every round.
fn key_tuples(steps: Vec<Step<'_>>) -> Result<Vec<Vec<Bson>>, String> {
    let walks: Vec<Walk> = steps
        .into_iter()
        .map(|step| match step {
            Step::Done(value) => Walk::Done(value),
            Step::Pending { base, rest } => walk(base, rest),
        })
        .collect();

    // Which array must be expanded, if any.
    let mut expanded: Option<(&Array, &[String])> = None;
    for w in &walks {
        if let Walk::AtArray { array, prefix, .. } = w {
            match expanded {
                None => expanded = Some((array, prefix)),
                Some((_, seen)) if seen == *prefix => {}
                Some((_, seen)) => {
                    return Err(format!(
                        "cannot sort with keys that are parallel arrays ({} and {})",
                        seen.join("."),
                        prefix.join(".")
                    ))
                }
            }
        }
    }

    let Some((array, _)) = expanded else {
        let tuple = walks
            .into_iter()
            .map(|w| match w {
                Walk::Done(value) => value,
                Walk::AtArray { .. } => unreachable!("no array to expand"),
            })
            .collect();
        return Ok(vec![tuple]);
    };

    let empty_array_element = [Bson::Undefined];
    let elements: &[Bson] = if array.is_empty() {
        &empty_array_element
    } else {
        array
    };

    let mut tuples = Vec::new();
    for element in elements {
        let next_steps = walks
            .iter()
            .map(|w| match w {
                Walk::Done(value) => Step::Done(value.clone()),
                Walk::AtArray { rest, .. } => match (rest.first(), element) {
                    (None, _) => Step::Done(element.clone()),
                    (Some(_), Bson::Document(_)) => Step::Pending {
                        base: element,
                        rest,
                    },
                    (Some(next), Bson::Array(_)) if is_array_index(next) => Step::Pending {
                        base: element,
                        rest,
                    },
                    (Some(_), _) => Step::Done(Bson::Null),
                },
            })
            .collect();
        tuples.extend(key_tuples(next_steps)?);
    }
    Ok(tuples)
}

// ---------------------------------------------------------------------------
// Projection
// ---------------------------------------------------------------------------

/// A parsed projection: either the listed paths are kept, or they are removed.
/// `_id` is handled apart: kept unless `_id: 0` (an inclusion projection), or
/// removed only if `_id: 0` (an exclusion projection).
#[derive(Clone, Debug)]
struct Projection {
    include: bool,
    /// Paths other than `_id`, as components. `_id` is added here when it is
    /// to be included (inclusion) or removed (exclusion).
    paths: Vec<Vec<String>>,
}

/// Parses `{a: 1, "b.c": 1, _id: 0}` or `{a: 0, ...}`. Values: booleans and
/// numbers (non-zero = include). `{}` means no projection (`None`).
///
/// Errors: mixing inclusion and exclusion (other than `_id`); a path and one
/// of its prefixes both listed ("path collision"); `$`-operators, positional
/// `.$`, and expression values (strings, documents), which are unsupported.
fn parse_projection(spec: &Document) -> Result<Option<Projection>, String> {
    if spec.is_empty() {
        return Ok(None);
    }
    let mut id_setting: Option<bool> = None;
    let mut includes = Vec::new();
    let mut excludes = Vec::new();
    for (path, value) in spec {
        let keep = match value {
            Bson::Boolean(b) => *b,
            Bson::Int32(i) => *i != 0,
            Bson::Int64(i) => *i != 0,
            Bson::Double(f) => *f != 0.0,
            other => {
                return Err(format!(
                    "unsupported projection value for {path}: {other} (expressions, $slice, $elemMatch and $meta are not supported)"
                ))
            }
        };
        let components: Vec<String> = split_path(path).into_iter().map(str::to_string).collect();
        if components
            .iter()
            .any(|c| c.is_empty() || c.starts_with('$'))
        {
            return Err(format!("unsupported projection path {path:?}"));
        }
        if path == "_id" {
            id_setting = Some(keep);
        } else if keep {
            includes.push(components);
        } else {
            excludes.push(components);
        }
    }
    if !includes.is_empty() && !excludes.is_empty() {
        return Err(format!(
            "Cannot do exclusion on field {} in inclusion projection",
            excludes[0].join(".")
        ));
    }
    // `_id` alone decides the kind only when it is the only field listed:
    // `{_id: 1}` keeps just `_id`, `{_id: 1, a: 0}` is an exclusion of `a`.
    let include = !includes.is_empty() || (excludes.is_empty() && id_setting == Some(true));
    let mut paths = if include { includes } else { excludes };
    for (i, p) in paths.iter().enumerate() {
        for q in &paths[i + 1..] {
            if p.starts_with(q) || q.starts_with(p) {
                return Err(format!(
                    "Path collision at {} and {}",
                    p.join("."),
                    q.join(".")
                ));
            }
        }
    }
    let id_listed = if include {
        id_setting != Some(false)
    } else {
        id_setting == Some(false)
    };
    if id_listed {
        paths.push(vec!["_id".to_string()]);
    }
    Ok(Some(Projection { include, paths }))
}

impl Projection {
    fn apply(&self, doc: &Document) -> Document {
        let paths: Vec<&[String]> = self.paths.iter().map(Vec::as_slice).collect();
        if self.include {
            include_paths(doc, &paths)
        } else {
            exclude_paths(doc, &paths)
        }
    }
}

/// The paths that start with `key`, minus that first component: empty if no
/// path starts with `key`; contains an empty slice if a path is exactly `key`.
fn paths_under<'a>(paths: &[&'a [String]], key: &str) -> Vec<&'a [String]> {
    paths
        .iter()
        .filter(|p| p[0] == key)
        .map(|p| &p[1..])
        .collect()
}

/// Inclusion: keep only the listed paths, in the document's own field order.
/// Through an embedded document the kept sub-fields form a (possibly empty)
/// document; through an array, each document element is projected, nested
/// arrays are projected element-wise, and scalar elements are dropped; a
/// scalar where a sub-path was asked is dropped. (jstest
/// `null_query_semantics.js`: `{"a.b": 1}` turns `{a: [1, "x"]}` into `{a: []}`,
/// `{a: {}}` into `{a: {}}`, `{a: 4}` into `{}`.)
fn include_paths(doc: &Document, paths: &[&[String]]) -> Document {
    let mut out = Document::new();
    for (key, value) in doc {
        let sub = paths_under(paths, key);
        if sub.is_empty() {
            continue;
        }
        if sub.iter().any(|p| p.is_empty()) {
            out.insert(key.clone(), value.clone());
            continue;
        }
        match value {
            Bson::Document(d) => {
                out.insert(key.clone(), include_paths(d, &sub));
            }
            Bson::Array(items) => {
                out.insert(key.clone(), include_in_array(items, &sub));
            }
            _ => {}
        }
    }
    out
}

fn include_in_array(items: &Array, paths: &[&[String]]) -> Array {
    items
        .iter()
        .filter_map(|item| match item {
            Bson::Document(d) => Some(Bson::Document(include_paths(d, paths))),
            Bson::Array(inner) => Some(Bson::Array(include_in_array(inner, paths))),
            _ => None,
        })
        .collect()
}

/// Exclusion: remove the listed paths; everything else stays, in order.
/// Through arrays, each document element loses the sub-path; other elements
/// stay as they are.
fn exclude_paths(doc: &Document, paths: &[&[String]]) -> Document {
    let mut out = Document::new();
    for (key, value) in doc {
        let sub = paths_under(paths, key);
        if sub.iter().any(|p| p.is_empty()) {
            continue;
        }
        if sub.is_empty() {
            out.insert(key.clone(), value.clone());
            continue;
        }
        let kept = match value {
            Bson::Document(d) => Bson::Document(exclude_paths(d, &sub)),
            Bson::Array(items) => Bson::Array(exclude_in_array(items, &sub)),
            other => other.clone(),
        };
        out.insert(key.clone(), kept);
    }
    out
}

fn exclude_in_array(items: &Array, paths: &[&[String]]) -> Array {
    items
        .iter()
        .map(|item| match item {
            Bson::Document(d) => Bson::Document(exclude_paths(d, paths)),
            Bson::Array(inner) => Bson::Array(exclude_in_array(inner, paths)),
            other => other.clone(),
        })
        .collect()
}
