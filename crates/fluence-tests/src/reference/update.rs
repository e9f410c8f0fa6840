//! Updates: `$set $unset $inc $push $pull` and replacement documents, and the
//! document an upsert starts from.
//!
//! References:
//! - <https://www.mongodb.com/docs/manual/reference/operator/update/set/>
//! - <https://www.mongodb.com/docs/manual/reference/operator/update/unset/>
//! - <https://www.mongodb.com/docs/manual/reference/operator/update/inc/>
//! - <https://www.mongodb.com/docs/manual/reference/operator/update/push/>
//! - <https://www.mongodb.com/docs/manual/reference/operator/update/pull/>
//! - replacement: <https://www.mongodb.com/docs/manual/reference/method/db.collection.replaceOne/>
//! - upsert: <https://www.mongodb.com/docs/manual/reference/method/db.collection.update/#upsert-behavior>
//! - field order: "Starting in MongoDB 5.0, update operators process document
//!   fields with string-based names in lexicographic order. Fields with
//!   numeric names are processed in numeric order." (on each operator's page)

use std::cmp::Ordering;

use bson::{doc, Array, Bson, Document};

use super::compare::{bson_identical, compare_values, is_number};
use super::filter::{check_filter_syntax, first_key_is_operator, matches, parse_filter};
use super::path::{is_array_index, split_path};

/// Array positions beyond this are refused rather than padded (MongoDB has a
/// similar, larger limit); the generators use tiny positions.
const MAX_ARRAY_INDEX: usize = 10_000;

/// True if `update` is a replacement document rather than a set of update
/// operators: its first key does not start with `$` (an empty update is an
/// empty replacement).
pub fn is_replacement(update: &Document) -> bool {
    !first_key_is_operator(update)
}

/// The document `doc` becomes under `update`.
///
/// Operator updates: all paths of all operators are checked for conflicts
/// (the same path twice, or a path and its prefix, is an error), then applied
/// in lexicographic path order, which fixes where new fields go.
/// - `$set`: creates missing embedded documents on the way; a numeric
///   component addresses an array position (padding with nulls past the end);
///   through a scalar, or through an array with a non-numeric component, it
///   is an error.
/// - `$unset`: removes the field; on an array position it sets the element to
///   null; a path that does not exist is a no-op.
/// - `$inc`: the argument must be a number. Missing field: set to the
///   argument. Int32+Int32 stays Int32 unless it overflows (then Int64);
///   integers with an Int64 give Int64 (overflow is an error); anything with a
///   Double gives a Double. A non-numeric field is an error.
/// - `$push`: appends one value, or each value of `{$each: [...]}` (other
///   modifiers are unsupported). Missing field: a new array. Not an array:
///   error.
/// - `$pull`: removes every element matching the condition: a value (removed
///   if equal, as `compare_values` sees it), a document of query operators
///   like `{$gte: 6}` or `{$in: [...]}` (each element tested as a field value,
///   arrays traversed as in queries), or any other document, which is a query
///   run on each *document* element. Missing field: no-op; not an array: error.
/// - `_id` may not change (an operator may set it to an identical value).
///
/// Replacement: the new document is `_id` (kept from `doc`) followed by the
/// replacement's other fields. A replacement `_id` different from the
/// document's is an error, as is a `$`-prefixed field.
pub fn apply_update(doc: &Document, update: &Document) -> Result<Document, String> {
    if is_replacement(update) {
        return replace(doc, update);
    }
    let changes = parse_operator_update(update)?;
    let mut out = doc.clone();
    for change in &changes {
        update_in_document(&mut out, &change.path, change)?;
    }
    if let Some(old_id) = doc.get("_id") {
        match out.get("_id") {
            Some(new_id) if bson_identical(old_id, new_id) => {}
            _ => {
                return Err(
                    "Performing an update on the path '_id' would modify the immutable field '_id'"
                        .to_string(),
                )
            }
        }
    }
    Ok(out)
}

fn replace(doc: &Document, replacement: &Document) -> Result<Document, String> {
    if let Some(key) = replacement.keys().find(|k| k.starts_with('$')) {
        return Err(format!(
            "The dollar ($) prefixed field '{key}' is not allowed in a replacement document"
        ));
    }
    if let (Some(old_id), Some(new_id)) = (doc.get("_id"), replacement.get("_id")) {
        if !bson_identical(old_id, new_id) {
            return Err(format!(
                "The _id field cannot be changed from {{_id: {old_id}}} to {{_id: {new_id}}}"
            ));
        }
    }
    let mut out = Document::new();
    if let Some(id) = doc.get("_id").or(replacement.get("_id")) {
        out.insert("_id", id.clone());
    }
    for (key, value) in replacement {
        if key != "_id" {
            out.insert(key.clone(), value.clone());
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Parsing operator updates
// ---------------------------------------------------------------------------

/// One field of one operator, e.g. `$inc: {"a.b": 2}`.
#[derive(Clone, Debug)]
struct FieldChange {
    path: Vec<String>,
    /// The dotted path, for messages.
    dotted: String,
    kind: ChangeKind,
}

#[derive(Clone, Debug)]
enum ChangeKind {
    Set(Bson),
    Unset,
    Inc(Bson),
    Push(Vec<Bson>),
    Pull(Bson),
}

impl FieldChange {
    /// `$set`, `$inc` and `$push` create missing fields (and the embedded
    /// documents leading to them); `$unset` and `$pull` leave a missing path
    /// alone, and also a path that could not be created.
    fn creates_path(&self) -> bool {
        matches!(
            self.kind,
            ChangeKind::Set(_) | ChangeKind::Inc(_) | ChangeKind::Push(_)
        )
    }
}

fn parse_operator_update(update: &Document) -> Result<Vec<FieldChange>, String> {
    let mut changes = Vec::new();
    for (operator, spec) in update {
        if !operator.starts_with('$') {
            return Err(format!(
                "Unknown modifier: {operator} (update operators and replacement fields cannot be mixed)"
            ));
        }
        let Bson::Document(fields) = spec else {
            return Err(format!(
                "Modifiers operate on fields but we found {spec} instead (in {operator})"
            ));
        };
        for (dotted, argument) in fields {
            let path = parse_update_path(dotted)?;
            let kind = match operator.as_str() {
                "$set" => ChangeKind::Set(argument.clone()),
                "$unset" => ChangeKind::Unset,
                "$inc" => {
                    if !is_number(argument) {
                        return Err(format!(
                            "Cannot increment with non-numeric argument: {{{dotted}: {argument}}}"
                        ));
                    }
                    if matches!(argument, Bson::Decimal128(_)) {
                        return Err("Decimal128 $inc is not supported".to_string());
                    }
                    ChangeKind::Inc(argument.clone())
                }
                "$push" => ChangeKind::Push(parse_push(dotted, argument)?),
                "$pull" => {
                    validate_pull(argument)?;
                    ChangeKind::Pull(argument.clone())
                }
                other => return Err(format!("unsupported update operator {other}")),
            };
            changes.push(FieldChange {
                path,
                dotted: dotted.clone(),
                kind,
            });
        }
    }

    // "Updating the path 'a.b' would create a conflict at 'a'".
    for (i, a) in changes.iter().enumerate() {
        for b in &changes[i + 1..] {
            if a.path.starts_with(&b.path) || b.path.starts_with(&a.path) {
                return Err(format!(
                    "Updating the path '{}' would create a conflict at '{}'",
                    b.dotted, a.dotted
                ));
            }
        }
    }

    changes.sort_by(|a, b| compare_update_paths(&a.path, &b.path));
    Ok(changes)
}

fn parse_update_path(dotted: &str) -> Result<Vec<String>, String> {
    let parts = split_path(dotted);
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "The update path '{dotted}' contains an empty field name"
        ));
    }
    if parts.iter().any(|p| p.starts_with('$')) {
        return Err(format!(
            "positional and $-prefixed update paths are not supported: '{dotted}'"
        ));
    }
    Ok(parts.into_iter().map(str::to_string).collect())
}

/// The order updates are applied in: component by component, names as
/// strings except that numeric names compare as numbers ("9" < "10" < "a").
///
/// (The server compares two numeric names by length first and everything
/// else as strings, which is not transitive for names like "1a"; zero-padding
/// numeric names gives the same order on sane names and a total order on all.)
fn compare_update_paths(a: &[String], b: &[String]) -> Ordering {
    fn key(name: &str) -> (String, &str) {
        let padded = if is_array_index(name) && name.len() < 40 {
            format!("{name:0>40}")
        } else {
            name.to_string()
        };
        (padded, name)
    }
    for (x, y) in a.iter().zip(b) {
        let order = key(x).cmp(&key(y));
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// `$push: {path: value}` or `$push: {path: {$each: [v1, v2]}}`.
fn parse_push(dotted: &str, argument: &Bson) -> Result<Vec<Bson>, String> {
    match argument {
        Bson::Document(spec) if spec.contains_key("$each") => {
            let mut values = Vec::new();
            for (key, value) in spec {
                match (key.as_str(), value) {
                    ("$each", Bson::Array(items)) => values = items.clone(),
                    ("$each", _) => {
                        return Err(format!(
                            "The argument to $each in $push must be an array ({dotted})"
                        ))
                    }
                    ("$slice" | "$sort" | "$position", _) => {
                        return Err(format!("$push modifier {key} is not supported"))
                    }
                    _ => return Err(format!("Unrecognized clause in $push: {key}")),
                }
            }
            Ok(values)
        }
        other => Ok(vec![other.clone()]),
    }
}

/// How `$pull` reads its condition (the server's PullNode):
/// - a document whose first key is a field-level query operator (`$gte`,
///   `$in`, `$not`, ...), or a regex: the element is tested as the value of a
///   field, `{v: element}` against `{v: condition}`;
/// - any other document (`{score: 8}`, `{$or: [...]}`, `{}`): a query that
///   document elements must match; other elements never match;
/// - anything else: elements equal to it.
enum PullMatcher {
    AsFieldValue(Document),
    QueryOnDocuments(Document),
    Equals(Bson),
}

fn pull_matcher(condition: &Bson) -> PullMatcher {
    const TOP_LEVEL_ONLY: [&str; 8] = [
        "$and",
        "$or",
        "$nor",
        "$text",
        "$expr",
        "$where",
        "$comment",
        "$jsonSchema",
    ];
    match condition {
        Bson::Document(d) => match d.keys().next() {
            Some(first) if first.starts_with('$') && !TOP_LEVEL_ONLY.contains(&first.as_str()) => {
                PullMatcher::AsFieldValue(doc! { "v": condition.clone() })
            }
            _ => PullMatcher::QueryOnDocuments(d.clone()),
        },
        Bson::RegularExpression(_) => PullMatcher::AsFieldValue(doc! { "v": condition.clone() }),
        other => PullMatcher::Equals(other.clone()),
    }
}

fn validate_pull(condition: &Bson) -> Result<(), String> {
    match pull_matcher(condition) {
        PullMatcher::AsFieldValue(filter) | PullMatcher::QueryOnDocuments(filter) => {
            parse_filter(&filter, &[]).map(|_| ())
        }
        PullMatcher::Equals(_) => Ok(()),
    }
}

fn pull_removes(condition: &Bson, element: &Bson) -> bool {
    let result = match pull_matcher(condition) {
        PullMatcher::AsFieldValue(filter) => matches(&filter, &doc! { "v": element.clone() }, &[]),
        PullMatcher::QueryOnDocuments(filter) => match element {
            Bson::Document(d) => matches(&filter, d, &[]),
            _ => Ok(false),
        },
        PullMatcher::Equals(value) => Ok(compare_values(element, &value) == Ordering::Equal),
    };
    result.expect("the $pull condition was validated when parsed")
}

// ---------------------------------------------------------------------------
// Applying
// ---------------------------------------------------------------------------

/// Resolves `path` inside `doc`, creating embedded documents if the change
/// creates paths, and applies the change at the end.
fn update_in_document(
    doc: &mut Document,
    path: &[String],
    change: &FieldChange,
) -> Result<(), String> {
    let key = path[0].as_str();
    if path.len() == 1 {
        return apply_at(Slot::Field(doc, key), change);
    }
    if doc.get(key).is_none() {
        if !change.creates_path() {
            return Ok(());
        }
        doc.insert(key, Document::new());
    }
    match doc.get_mut(key).expect("present") {
        Bson::Document(sub) => update_in_document(sub, &path[1..], change),
        Bson::Array(items) => update_in_array(items, &path[1..], change),
        other => cannot_traverse(change, &path[1], &format!("{{{key}: {other}}}")),
    }
}

/// Like [`update_in_document`] after an array: the next component must be a
/// position.
fn update_in_array(items: &mut Array, path: &[String], change: &FieldChange) -> Result<(), String> {
    let key = path[0].as_str();
    let index = match key.parse::<usize>() {
        Ok(i) if is_array_index(key) && i <= MAX_ARRAY_INDEX => i,
        Ok(_) if is_array_index(key) => {
            return Err(format!(
                "array position {key} is too large for the reference evaluator"
            ))
        }
        _ => return cannot_traverse(change, key, "an array"),
    };
    if path.len() == 1 {
        return apply_at(Slot::Element(items, index), change);
    }
    if index >= items.len() {
        if !change.creates_path() {
            return Ok(());
        }
        items.resize(index + 1, Bson::Null);
        items[index] = Bson::Document(Document::new());
    }
    match &mut items[index] {
        Bson::Document(sub) => update_in_document(sub, &path[1..], change),
        Bson::Array(inner) => update_in_array(inner, &path[1..], change),
        other => {
            let shown = other.to_string();
            cannot_traverse(change, &path[1], &shown)
        }
    }
}

/// The path goes through a value that cannot hold `field`: an error for
/// changes that create paths, a no-op for `$unset` and `$pull`.
fn cannot_traverse(change: &FieldChange, field: &str, holder: &str) -> Result<(), String> {
    if change.creates_path() {
        Err(format!(
            "Cannot create field '{field}' in element {holder} (updating '{}')",
            change.dotted
        ))
    } else {
        Ok(())
    }
}

/// Where a change lands: a field of a document, or a position of an array.
enum Slot<'a> {
    Field(&'a mut Document, &'a str),
    Element(&'a mut Array, usize),
}

impl Slot<'_> {
    fn get(&self) -> Option<&Bson> {
        match self {
            Slot::Field(doc, key) => doc.get(*key),
            Slot::Element(items, index) => items.get(*index),
        }
    }

    fn get_mut(&mut self) -> Option<&mut Bson> {
        match self {
            Slot::Field(doc, key) => doc.get_mut(*key),
            Slot::Element(items, index) => items.get_mut(*index),
        }
    }

    /// Sets the value. An existing field keeps its position; a new one goes
    /// last. Past the end of an array, the gap is filled with nulls.
    fn set(self, value: Bson) {
        match self {
            Slot::Field(doc, key) => {
                doc.insert(key, value);
            }
            Slot::Element(items, index) => {
                if index >= items.len() {
                    items.resize(index + 1, Bson::Null);
                }
                items[index] = value;
            }
        }
    }

    /// Removes a field; an array element becomes null (arrays do not shrink).
    fn unset(self) {
        match self {
            Slot::Field(doc, key) => {
                doc.remove(key);
            }
            Slot::Element(items, index) => {
                if let Some(item) = items.get_mut(index) {
                    *item = Bson::Null;
                }
            }
        }
    }
}

fn apply_at(mut slot: Slot<'_>, change: &FieldChange) -> Result<(), String> {
    let dotted = &change.dotted;
    match &change.kind {
        ChangeKind::Set(value) => slot.set(value.clone()),
        ChangeKind::Unset => slot.unset(),
        ChangeKind::Inc(delta) => {
            let new_value = match slot.get() {
                None => delta.clone(),
                Some(current) if is_number(current) => add_numbers(current, delta, dotted)?,
                Some(current) => {
                    return Err(format!(
                        "Cannot apply $inc to a value of non-numeric type: field '{dotted}' holds {current}"
                    ))
                }
            };
            slot.set(new_value);
        }
        ChangeKind::Push(values) => match slot.get_mut() {
            None => slot.set(Bson::Array(values.clone())),
            Some(Bson::Array(items)) => items.extend(values.iter().cloned()),
            Some(other) => {
                return Err(format!(
                    "The field '{dotted}' must be an array but holds {other}"
                ))
            }
        },
        ChangeKind::Pull(condition) => match slot.get_mut() {
            None => {}
            Some(Bson::Array(items)) => items.retain(|item| !pull_removes(condition, item)),
            Some(other) => {
                return Err(format!(
                    "Cannot apply $pull to a non-array value: field '{dotted}' holds {other}"
                ))
            }
        },
    }
    Ok(())
}

/// `$inc` arithmetic (the server's SafeNum).
fn add_numbers(current: &Bson, delta: &Bson, dotted: &str) -> Result<Bson, String> {
    let as_i64 = |v: &Bson| match v {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        _ => None,
    };
    let as_f64 = |v: &Bson| match v {
        Bson::Int32(i) => f64::from(*i),
        Bson::Int64(i) => *i as f64,
        Bson::Double(f) => *f,
        _ => f64::NAN,
    };
    match (current, delta) {
        (Bson::Decimal128(_), _) | (_, Bson::Decimal128(_)) => {
            Err("Decimal128 $inc is not supported".to_string())
        }
        (Bson::Int32(a), Bson::Int32(b)) => Ok(match a.checked_add(*b) {
            Some(sum) => Bson::Int32(sum),
            None => Bson::Int64(i64::from(*a) + i64::from(*b)),
        }),
        _ => match (as_i64(current), as_i64(delta)) {
            (Some(a), Some(b)) => a.checked_add(b).map(Bson::Int64).ok_or_else(|| {
                format!("Failed to apply $inc to '{dotted}': 64-bit integer overflow")
            }),
            _ => Ok(Bson::Double(as_f64(current) + as_f64(delta))),
        },
    }
}

// ---------------------------------------------------------------------------
// Upserts
// ---------------------------------------------------------------------------

/// The document an upsert starts from when nothing matches: the filter's
/// equality conditions, with dotted paths turned into embedded documents and
/// `_id` first.
///
/// Equality conditions: `{path: value}` (value not an operator document),
/// `{path: {$eq: value}}`, `{path: {$in: [one value]}}`, inside the top level,
/// `$and` clauses, and an `$or` with exactly one clause. Everything else
/// (ranges, `$ne`, `$nor`, multi-clause `$or`, `$text`) contributes nothing.
///
/// Errors: a malformed filter, and two equalities on the same path or on a
/// path and its prefix ("cannot infer query fields to set").
///
/// The result has no `_id` unless the filter fixes one; the caller generates
/// it (and puts it first).
pub fn upsert_seed(filter: &Document) -> Result<Document, String> {
    check_filter_syntax(filter)?;
    let mut equalities = Vec::new();
    collect_equalities(filter, &mut equalities);

    for (i, (a, _)) in equalities.iter().enumerate() {
        for (b, _) in &equalities[i + 1..] {
            if a.starts_with(b) || b.starts_with(a) {
                return Err(format!(
                    "cannot infer query fields to set, both paths '{}' and '{}' are matched",
                    a.join("."),
                    b.join(".")
                ));
            }
        }
    }

    // `_id` (and `_id.*`) first, then the others in filter order.
    equalities.sort_by_key(|(path, _)| path[0] != "_id");
    let mut seed = Document::new();
    for (path, value) in equalities {
        let change = FieldChange {
            dotted: path.join("."),
            path,
            kind: ChangeKind::Set(value),
        };
        update_in_document(&mut seed, &change.path, &change)?;
    }
    Ok(seed)
}

fn collect_equalities(filter: &Document, out: &mut Vec<(Vec<String>, Bson)>) {
    for (key, value) in filter {
        match (key.as_str(), value) {
            ("$and", Bson::Array(clauses)) => {
                for clause in clauses {
                    if let Bson::Document(clause) = clause {
                        collect_equalities(clause, out);
                    }
                }
            }
            ("$or", Bson::Array(clauses)) if clauses.len() == 1 => {
                if let Bson::Document(clause) = &clauses[0] {
                    collect_equalities(clause, out);
                }
            }
            (other, _) if other.starts_with('$') => {}
            (path, Bson::Document(ops)) if first_key_is_operator(ops) => {
                for (op, operand) in ops {
                    match (op.as_str(), operand) {
                        ("$eq", v) => out.push((path_components(path), v.clone())),
                        ("$in", Bson::Array(items)) if items.len() == 1 => {
                            out.push((path_components(path), items[0].clone()))
                        }
                        _ => {}
                    }
                }
            }
            (path, v) => out.push((path_components(path), v.clone())),
        }
    }
}

fn path_components(path: &str) -> Vec<String> {
    split_path(path).into_iter().map(str::to_string).collect()
}

/// The document an upsert inserts when nothing matches `filter`:
/// [`upsert_seed`] updated by `update`; for a replacement, the replacement
/// with the filter's `_id` equality (if any) as its `_id`.
pub fn upsert_document(filter: &Document, update: &Document) -> Result<Document, String> {
    let seed = upsert_seed(filter)?;
    if is_replacement(update) {
        let mut id_only = Document::new();
        if let Some(id) = seed.get("_id") {
            id_only.insert("_id", id.clone());
        }
        replace(&id_only, update)
    } else {
        apply_update(&seed, update)
    }
}
