//! Applying one field operation to a document.
//!
//! Paths are followed through documents and, with numeric components,
//! through array positions. Operators that create (`$set`, `$inc`, `$push`,
//! …) make missing sub-documents and pad arrays with nulls up to a new
//! position; a path that runs into a scalar, or into an array with a
//! non-numeric component, is an error for them ("Cannot create field 'b' in
//! element {a: 1}"). Operators that only remove or shrink (`$unset`, `$pop`,
//! `$pull`, `$pullAll`) do nothing on such paths, as in MongoDB.

use std::cmp::Ordering;

use bson::{Bson, Document};

use super::super::bson_type::type_name;
use super::super::compare::{compare_bson, values_equal};
use super::super::error::QueryError;
use super::super::filter::{eval, EvalContext};
use super::super::limits::ARRAY_BACKFILL_MAX;
use super::super::path::array_offset;
use super::arith::{self, ArithError, ArithOp};
use super::{BitOp, FieldOp, Op, PullMatcher, PushSort, PushSpec};
use crate::query::path::FieldPath;

/// What to do with the value at the end of a path.
pub(super) enum Action {
    Keep,
    Set(Bson),
    /// Remove a document field; an array element becomes null instead.
    Remove,
}

enum Parent<'a> {
    Doc(&'a mut Document),
    /// An array and the field name it was found under (for messages).
    Array(&'a mut Vec<Bson>, String),
}

/// `{name: value}` as MongoDB prints an element in messages, shortened.
fn describe(name: &str, value: &Bson) -> String {
    const MESSAGE_VALUE_MAX: usize = 200;
    let mut text = value.to_string();
    if text.len() > MESSAGE_VALUE_MAX {
        let mut cut = MESSAGE_VALUE_MAX;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    format!("{{{name}: {text}}}")
}

fn not_viable(field: &str, name: &str, value: &Bson) -> QueryError {
    QueryError::PathNotViable {
        message: format!(
            "Cannot create field '{field}' in element {}",
            describe(name, value)
        ),
    }
}

fn backfill_limit(index: usize) -> Result<(), QueryError> {
    if index > ARRAY_BACKFILL_MAX {
        return Err(QueryError::bad_value(format!(
            "can't backfill more than {ARRAY_BACKFILL_MAX} elements"
        )));
    }
    Ok(())
}

/// Walks to the container of the path's last component; `None` when the
/// path does not exist and `create` is false.
fn walk<'a>(
    doc: &'a mut Document,
    prefix: &[String],
    last: &str,
    create: bool,
) -> Result<Option<Parent<'a>>, QueryError> {
    let mut current = Parent::Doc(doc);
    for (i, part) in prefix.iter().enumerate() {
        let next_part = prefix.get(i + 1).map_or(last, String::as_str);
        current = match current {
            Parent::Doc(d) => {
                if !d.contains_key(part) {
                    if !create {
                        return Ok(None);
                    }
                    d.insert(part.clone(), Document::new());
                }
                match d.get_mut(part) {
                    Some(Bson::Document(sub)) => Parent::Doc(sub),
                    Some(Bson::Array(items)) => Parent::Array(items, part.clone()),
                    Some(other) if create => return Err(not_viable(next_part, part, other)),
                    _ => return Ok(None),
                }
            }
            Parent::Array(items, name) => {
                let Some(index) = array_offset(part) else {
                    if create {
                        return Err(not_viable(part, &name, &Bson::Array(items.clone())));
                    }
                    return Ok(None);
                };
                if index >= items.len() {
                    if !create {
                        return Ok(None);
                    }
                    backfill_limit(index)?;
                    items.resize(index, Bson::Null);
                    items.push(Bson::Document(Document::new()));
                }
                match items.get_mut(index) {
                    Some(Bson::Document(sub)) => Parent::Doc(sub),
                    Some(Bson::Array(inner)) => Parent::Array(inner, part.clone()),
                    Some(other) if create => return Err(not_viable(next_part, part, other)),
                    _ => return Ok(None),
                }
            }
        };
    }
    Ok(Some(current))
}

/// Applies `f` to the value at `parts` (None if missing) and performs the
/// returned action.
pub(super) fn write<F>(
    doc: &mut Document,
    parts: &[String],
    create: bool,
    f: F,
) -> Result<(), QueryError>
where
    F: FnOnce(Option<&Bson>) -> Result<Action, QueryError>,
{
    let Some((last, prefix)) = parts.split_last() else {
        return Ok(());
    };
    let Some(parent) = walk(doc, prefix, last, create)? else {
        return Ok(());
    };
    match parent {
        Parent::Doc(d) => match f(d.get(last))? {
            Action::Keep => {}
            Action::Set(value) => {
                d.insert(last.clone(), value);
            }
            Action::Remove => {
                d.remove(last);
            }
        },
        Parent::Array(items, name) => {
            let Some(index) = array_offset(last) else {
                if create {
                    return Err(not_viable(last, &name, &Bson::Array(items.clone())));
                }
                return Ok(());
            };
            match f(items.get(index))? {
                Action::Keep => {}
                Action::Set(value) => {
                    if index < items.len() {
                        items[index] = value;
                    } else {
                        backfill_limit(index)?;
                        items.resize(index, Bson::Null);
                        items.push(value);
                    }
                }
                Action::Remove => {
                    if let Some(slot) = items.get_mut(index) {
                        *slot = Bson::Null;
                    }
                }
            }
        }
    }
    Ok(())
}

fn is_number(value: &Bson) -> bool {
    matches!(
        value,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)
    )
}

/// Applies one operation; `inserting` enables `$setOnInsert`.
pub(super) fn apply_op(
    doc: &mut Document,
    field_op: &FieldOp,
    inserting: bool,
) -> Result<(), QueryError> {
    let parts = field_op.path.parts();
    let path = field_op.path.as_str();
    let field = parts.last().map_or("", String::as_str);
    // How MongoDB names the document in messages.
    let doc_name = match doc.get("_id") {
        Some(id) => describe("_id", id),
        None => "{}".to_string(),
    };
    match &field_op.op {
        Op::SetOnInsert(_) if !inserting => Ok(()),
        Op::Set(value) | Op::SetOnInsert(value) => {
            write(doc, parts, true, |_| Ok(Action::Set(value.clone())))
        }
        Op::Unset => write(doc, parts, false, |current| {
            Ok(if current.is_some() {
                Action::Remove
            } else {
                Action::Keep
            })
        }),
        Op::Inc(operand) | Op::Mul(operand) => {
            let (arith_op, name) = match field_op.op {
                Op::Inc(_) => (ArithOp::Add, "$inc"),
                _ => (ArithOp::Multiply, "$mul"),
            };
            write(doc, parts, true, |current| match current {
                None => Ok(Action::Set(match arith_op {
                    ArithOp::Add => operand.clone(),
                    ArithOp::Multiply => arith::zero_like(operand),
                })),
                Some(value) if is_number(value) => match arith::apply(arith_op, value, operand) {
                    Ok(result) => Ok(Action::Set(result)),
                    Err(ArithError::Overflow) => Err(QueryError::Overflow {
                        message: format!(
                            "Failed to apply {name} operations to current value (({}){value}) \
                             for document {doc_name}",
                            type_name(value)
                        ),
                    }),
                    Err(ArithError::Decimal) => Err(QueryError::unsupported(format!(
                        "{name} on Decimal128 values"
                    ))),
                },
                Some(value) => Err(QueryError::type_mismatch(format!(
                    "Cannot apply {name} to a value of non-numeric type. {doc_name} has the field \
                     '{field}' of non-numeric type {}",
                    type_name(value)
                ))),
            })
        }
        Op::Min(bound) | Op::Max(bound) => {
            let wanted = if matches!(field_op.op, Op::Min(_)) {
                Ordering::Less
            } else {
                Ordering::Greater
            };
            write(doc, parts, true, |current| {
                Ok(match current {
                    Some(value) if compare_bson(bound, value) != wanted => Action::Keep,
                    _ => Action::Set(bound.clone()),
                })
            })
        }
        Op::Push(spec) => write(doc, parts, true, |current| {
            let items = match current {
                None => Vec::new(),
                Some(Bson::Array(items)) => items.clone(),
                Some(other) => {
                    return Err(QueryError::bad_value(format!(
                        "The field '{field}' must be an array but is of type {} in document \
                         {doc_name}",
                        type_name(other)
                    )))
                }
            };
            Ok(Action::Set(Bson::Array(push(items, spec))))
        }),
        Op::AddToSet(values) => write(doc, parts, true, |current| {
            let mut items = match current {
                None => Vec::new(),
                Some(Bson::Array(items)) => items.clone(),
                Some(other) => {
                    return Err(QueryError::bad_value(format!(
                        "Cannot apply $addToSet to non-array field. Field named '{field}' has \
                         non-array type {}",
                        type_name(other)
                    )))
                }
            };
            for value in values {
                if !items.iter().any(|item| values_equal(item, value)) {
                    items.push(value.clone());
                }
            }
            Ok(Action::Set(Bson::Array(items)))
        }),
        Op::Pop { first } => write(doc, parts, false, |current| match current {
            None => Ok(Action::Keep),
            Some(Bson::Array(items)) if items.is_empty() => Ok(Action::Keep),
            Some(Bson::Array(items)) => {
                let mut items = items.clone();
                if *first {
                    items.remove(0);
                } else {
                    items.pop();
                }
                Ok(Action::Set(Bson::Array(items)))
            }
            Some(other) => Err(QueryError::type_mismatch(format!(
                "Path '{path}' contains an element of non-array type '{}'",
                type_name(other)
            ))),
        }),
        Op::Rename { from } => rename(doc, from, &field_op.path),
        Op::CurrentDate { timestamp } => {
            let now = bson::DateTime::now();
            let value = if *timestamp {
                Bson::Timestamp(bson::Timestamp {
                    time: u32::try_from(now.timestamp_millis() / 1000).unwrap_or(u32::MAX),
                    increment: 1,
                })
            } else {
                Bson::DateTime(now)
            };
            write(doc, parts, true, |_| Ok(Action::Set(value)))
        }
        Op::Bit(bit_ops) => write(doc, parts, true, |current| {
            let start = match current {
                None => Bson::Int32(0),
                Some(value @ (Bson::Int32(_) | Bson::Int64(_))) => value.clone(),
                Some(other) => {
                    return Err(QueryError::bad_value(format!(
                        "Cannot apply $bit to a value of non-integral type.{doc_name} has the \
                         field {field} of non-integer type {}",
                        type_name(other)
                    )))
                }
            };
            Ok(Action::Set(
                bit_ops
                    .iter()
                    .fold(start, |acc, (op, operand)| bitwise(*op, &acc, operand)),
            ))
        }),
        Op::Pull(_) | Op::PullAll(_) => write(doc, parts, false, |current| match current {
            None => Ok(Action::Keep),
            Some(Bson::Array(items)) => {
                let kept: Vec<Bson> = items
                    .iter()
                    .filter(|item| !pull_removes(&field_op.op, item))
                    .cloned()
                    .collect();
                Ok(if kept.len() == items.len() {
                    Action::Keep
                } else {
                    Action::Set(Bson::Array(kept))
                })
            }
            Some(_) => Err(QueryError::bad_value(
                "Cannot apply $pull to a non-array value",
            )),
        }),
    }
}

/// Int32 with Int32 stays Int32; any Int64 makes the result Int64.
fn bitwise(op: BitOp, a: &Bson, b: &Bson) -> Bson {
    let apply = |x: i64, y: i64| match op {
        BitOp::And => x & y,
        BitOp::Or => x | y,
        BitOp::Xor => x ^ y,
    };
    match (a, b) {
        (Bson::Int32(x), Bson::Int32(y)) => {
            // Bitwise results of two 32-bit values fit in 32 bits.
            Bson::Int32(apply(i64::from(*x), i64::from(*y)) as i32)
        }
        _ => {
            let wide = |v: &Bson| match v {
                Bson::Int32(i) => i64::from(*i),
                Bson::Int64(i) => *i,
                _ => 0,
            };
            Bson::Int64(apply(wide(a), wide(b)))
        }
    }
}

/// `$rename`: removes the value at `from` and sets it at `to`. A missing
/// source is a no-op; neither path may run through an array (MongoDB
/// refuses to rename array elements).
fn rename(doc: &mut Document, from: &FieldPath, to: &FieldPath) -> Result<(), QueryError> {
    let id = doc
        .get("_id")
        .map_or("null".to_string(), ToString::to_string);
    let array_error = |role: &str, path: &FieldPath, array_field: &str| {
        QueryError::bad_value(format!(
            "The {role} field cannot be an array element, '{}' in doc with _id: {id} has an \
             array field called '{array_field}'",
            path.as_str()
        ))
    };
    let Some((last, prefix)) = from.parts().split_last() else {
        return Ok(());
    };
    let mut parent: &Document = doc;
    for part in prefix {
        match parent.get(part) {
            Some(Bson::Document(sub)) => parent = sub,
            Some(Bson::Array(_)) => return Err(array_error("source", from, part)),
            _ => return Ok(()),
        }
    }
    let Some(value) = parent.get(last).cloned() else {
        return Ok(());
    };
    let mut existing: &Document = doc;
    for part in &to.parts()[..to.parts().len().saturating_sub(1)] {
        match existing.get(part) {
            Some(Bson::Document(sub)) => existing = sub,
            Some(Bson::Array(_)) => return Err(array_error("destination", to, part)),
            _ => break,
        }
    }
    write(doc, from.parts(), false, |_| Ok(Action::Remove))?;
    write(doc, to.parts(), true, |_| Ok(Action::Set(value)))
}

fn pull_removes(op: &Op, item: &Bson) -> bool {
    match op {
        Op::PullAll(values) => values.iter().any(|v| values_equal(v, item)),
        Op::Pull(PullMatcher::Equality(value)) => values_equal(value, item),
        Op::Pull(PullMatcher::Object(filter)) => match item {
            Bson::Document(d) => eval(filter, d, &EvalContext::without_text()),
            _ => false,
        },
        Op::Pull(PullMatcher::Value(filter)) => {
            let mut wrapped = Document::new();
            wrapped.insert("", item.clone());
            eval(filter, &wrapped, &EvalContext::without_text())
        }
        _ => false,
    }
}

fn push(mut items: Vec<Bson>, spec: &PushSpec) -> Vec<Bson> {
    let len = items.len();
    let at = match spec.position {
        None => len,
        Some(p) if p >= 0 => usize::try_from(p).map_or(len, |p| p.min(len)),
        // Negative positions count from the end.
        Some(p) => {
            let from_end = usize::try_from(p.unsigned_abs()).unwrap_or(usize::MAX);
            len.saturating_sub(from_end)
        }
    };
    items.splice(at..at, spec.values.iter().cloned());
    if let Some(sort) = &spec.sort {
        sort_elements(&mut items, sort);
    }
    if let Some(slice) = spec.slice {
        let keep = usize::try_from(slice.unsigned_abs()).unwrap_or(usize::MAX);
        if slice >= 0 {
            items.truncate(keep);
        } else if keep < items.len() {
            items.drain(..items.len() - keep);
        }
    }
    items
}

/// The value at `parts` without array expansion (what `$push`'s `$sort`
/// compares): documents by field, arrays by position.
fn plain_lookup<'a>(value: &'a Bson, parts: &[String]) -> Option<&'a Bson> {
    let mut current = value;
    for part in parts {
        current = match current {
            Bson::Document(d) => d.get(part)?,
            Bson::Array(items) => items.get(array_offset(part)?)?,
            _ => return None,
        };
    }
    Some(current)
}

fn sort_elements(items: &mut [Bson], sort: &PushSort) {
    match sort {
        PushSort::Whole(descending) => items.sort_by(|a, b| {
            let order = compare_bson(a, b);
            if *descending {
                order.reverse()
            } else {
                order
            }
        }),
        PushSort::Fields(fields) => {
            static NULL: Bson = Bson::Null;
            let key = |item: &Bson| -> Vec<Bson> {
                fields
                    .iter()
                    .map(|(path, _)| match item {
                        Bson::Document(_) => {
                            plain_lookup(item, path.parts()).unwrap_or(&NULL).clone()
                        }
                        _ => Bson::Null,
                    })
                    .collect()
            };
            let mut keyed: Vec<(Vec<Bson>, Bson)> =
                items.iter().map(|item| (key(item), item.clone())).collect();
            keyed.sort_by(|(a, _), (b, _)| {
                for ((x, y), (_, descending)) in a.iter().zip(b).zip(fields) {
                    let order = compare_bson(x, y);
                    let order = if *descending { order.reverse() } else { order };
                    if order != Ordering::Equal {
                        return order;
                    }
                }
                Ordering::Equal
            });
            for (slot, (_, item)) in items.iter_mut().zip(keyed) {
                *slot = item;
            }
        }
    }
}
