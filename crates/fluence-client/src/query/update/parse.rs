//! Parsing update documents into ordered, conflict-free field operations.

use std::cmp::Ordering;

use bson::{Bson, Document};

use super::super::bson_type::type_name;
use super::super::compare::values_equal;
use super::super::error::QueryError;
use super::super::filter::{parse_filter, Filter};
use super::super::limits::check_depth;
use super::super::path::FieldPath;
use super::{BitOp, FieldOp, Kind, Op, PullMatcher, PushSort, PushSpec, Update};

pub(super) fn parse_update(update: &Document) -> Result<Update, QueryError> {
    check_depth(update)?;
    let operator_style = update.keys().next().is_some_and(|k| k.starts_with('$'));
    if !operator_style {
        if let Some(key) = update.keys().find(|k| k.starts_with('$')) {
            return Err(QueryError::DollarPrefixedFieldName {
                message: format!(
                    "The dollar ($) prefixed field '{key}' in '{key}' is not allowed in the \
                     context of an update's replacement document. Consider using an aggregation \
                     pipeline with $replaceWith."
                ),
            });
        }
        return Ok(Update {
            kind: Kind::Replacement(update.clone()),
        });
    }
    let mut ops = Vec::new();
    for (modifier, argument) in update {
        if !is_known_modifier(modifier) {
            return Err(QueryError::UnknownModifier {
                operator: modifier.clone(),
            });
        }
        let Bson::Document(fields) = argument else {
            return Err(QueryError::failed_to_parse(format!(
                "Modifiers operate on fields but we found type {} instead. For example: {{$mod: \
                 {{<field>: ...}}}} not {{{modifier}: {argument}}}",
                type_name(argument)
            )));
        };
        for (path, value) in fields {
            validate_update_path(path)?;
            let op = parse_op(modifier, path, value)?;
            // A rename writes (and is ordered by) its target; its source
            // travels in the op.
            let written = match (&op, value) {
                (Op::Rename { .. }, Bson::String(target)) => FieldPath::new(target),
                _ => FieldPath::new(path),
            };
            ops.push(FieldOp { path: written, op });
        }
    }
    ops.sort_by(|a, b| compare_paths(a.path.parts(), b.path.parts()));
    check_conflicts(&ops)?;
    Ok(Update {
        kind: Kind::Operators(ops),
    })
}

/// Every path an update touches, `$rename` sources included, must be
/// disjoint from the others: sorted component-wise, a path and the paths
/// it prefixes are adjacent, so neighbours are enough to compare.
fn check_conflicts(ops: &[FieldOp]) -> Result<(), QueryError> {
    let mut touched: Vec<&FieldPath> = ops.iter().map(|op| &op.path).collect();
    touched.extend(ops.iter().filter_map(|op| match &op.op {
        Op::Rename { from } => Some(from),
        _ => None,
    }));
    touched.sort_by(|a, b| compare_paths(a.parts(), b.parts()));
    for pair in touched.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if is_prefix(a.parts(), b.parts()) {
            return Err(QueryError::ConflictingUpdateOperators {
                message: format!(
                    "Updating the path '{}' would create a conflict at '{}'",
                    b.as_str(),
                    a.as_str()
                ),
            });
        }
    }
    Ok(())
}

fn is_known_modifier(name: &str) -> bool {
    matches!(
        name,
        "$set"
            | "$setOnInsert"
            | "$unset"
            | "$inc"
            | "$mul"
            | "$min"
            | "$max"
            | "$push"
            | "$addToSet"
            | "$pop"
            | "$pull"
            | "$pullAll"
            | "$rename"
            | "$currentDate"
            | "$bit"
    )
}

fn validate_update_path(path: &str) -> Result<(), QueryError> {
    if path.is_empty() {
        return Err(QueryError::Location {
            code: 56,
            message: "An empty update path is not valid.".to_string(),
        });
    }
    for part in path.split('.') {
        if part.is_empty() {
            return Err(QueryError::Location {
                code: 56,
                message: format!(
                    "The update path '{path}' contains an empty field name, which is not allowed."
                ),
            });
        }
        if part == "$" || part.starts_with("$[") {
            return Err(QueryError::unsupported(format!(
                "positional update operator ({part})"
            )));
        }
        if part.starts_with('$') {
            return Err(QueryError::DollarPrefixedFieldName {
                message: format!(
                    "The dollar ($) prefixed field '{part}' in '{path}' is not valid for storage."
                ),
            });
        }
    }
    Ok(())
}

/// MongoDB 5.0+ update order: component by component, numeric names in
/// numeric order, others bytewise; a prefix first.
pub(super) fn compare_paths(a: &[String], b: &[String]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = compare_components(x, y);
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

fn compare_components(x: &str, y: &str) -> Ordering {
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if numeric(x) && numeric(y) {
        let (tx, ty) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
        return tx
            .len()
            .cmp(&ty.len())
            .then_with(|| tx.cmp(ty))
            .then_with(|| x.cmp(y));
    }
    x.as_bytes().cmp(y.as_bytes())
}

/// Whether `a` equals `b` or is a component-wise prefix of it.
pub(super) fn is_prefix(a: &[String], b: &[String]) -> bool {
    a.len() <= b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

fn is_number(value: &Bson) -> bool {
    matches!(
        value,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)
    )
}

fn parse_op(modifier: &str, path: &str, value: &Bson) -> Result<Op, QueryError> {
    Ok(match modifier {
        "$set" => Op::Set(value.clone()),
        "$setOnInsert" => Op::SetOnInsert(value.clone()),
        "$unset" => Op::Unset,
        "$inc" | "$mul" => {
            if !is_number(value) {
                let verb = if modifier == "$inc" {
                    "increment"
                } else {
                    "multiply"
                };
                return Err(QueryError::type_mismatch(format!(
                    "Cannot {verb} with non-numeric argument: {{{path}: {value}}}"
                )));
            }
            if modifier == "$inc" {
                Op::Inc(value.clone())
            } else {
                Op::Mul(value.clone())
            }
        }
        "$min" => Op::Min(value.clone()),
        "$max" => Op::Max(value.clone()),
        "$push" => Op::Push(parse_push(value)?),
        "$addToSet" => Op::AddToSet(parse_add_to_set(value)?),
        "$pop" => {
            let first = if is_number(value) && values_equal(value, &Bson::Int32(-1)) {
                true
            } else if is_number(value) && values_equal(value, &Bson::Int32(1)) {
                false
            } else {
                return Err(QueryError::failed_to_parse(format!(
                    "$pop expects 1 or -1, found: {value}"
                )));
            };
            Op::Pop { first }
        }
        "$pull" => Op::Pull(parse_pull(value)?),
        "$pullAll" => match value {
            Bson::Array(items) => Op::PullAll(items.clone()),
            other => {
                return Err(QueryError::bad_value(format!(
                    "$pullAll requires an array argument but was given a {}",
                    type_name(other)
                )))
            }
        },
        "$rename" => parse_rename(path, value)?,
        "$currentDate" => parse_current_date(value)?,
        "$bit" => parse_bit(value)?,
        // `is_known_modifier` admitted only the names above.
        other => {
            return Err(QueryError::UnknownModifier {
                operator: other.to_string(),
            })
        }
    })
}

/// An integer argument (`$slice`, `$position`): Int32, Int64 or an integral
/// Double.
fn integer(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(d) if d.fract() == 0.0 && d.abs() < 9.2e18 => Some(*d as i64),
        _ => None,
    }
}

fn parse_push(value: &Bson) -> Result<PushSpec, QueryError> {
    let modifiers = match value {
        Bson::Document(d) if d.contains_key("$each") => d,
        _ => {
            return Ok(PushSpec {
                values: vec![value.clone()],
                position: None,
                slice: None,
                sort: None,
            })
        }
    };
    let mut spec = PushSpec {
        values: Vec::new(),
        position: None,
        slice: None,
        sort: None,
    };
    for (clause, argument) in modifiers {
        match clause.as_str() {
            "$each" => match argument {
                Bson::Array(items) => spec.values = items.clone(),
                other => {
                    return Err(QueryError::bad_value(format!(
                        "The argument to $each in $push must be an array but it was of type: {}",
                        type_name(other)
                    )))
                }
            },
            "$slice" => {
                spec.slice = Some(integer(argument).ok_or_else(|| {
                    QueryError::bad_value(format!(
                        "The value for $slice must be an integer value but was given type: {}",
                        type_name(argument)
                    ))
                })?)
            }
            "$position" => {
                spec.position = Some(integer(argument).ok_or_else(|| {
                    QueryError::bad_value(format!(
                        "The value for $position must be an integer value, not of type: {}",
                        type_name(argument)
                    ))
                })?)
            }
            "$sort" => spec.sort = Some(parse_push_sort(argument)?),
            other => {
                return Err(QueryError::bad_value(format!(
                    "Unrecognized clause in $push: {other}"
                )))
            }
        }
    }
    Ok(spec)
}

fn sort_direction(value: &Bson) -> Option<bool> {
    if !is_number(value) {
        return None;
    }
    if values_equal(value, &Bson::Int32(1)) {
        Some(false)
    } else if values_equal(value, &Bson::Int32(-1)) {
        Some(true)
    } else {
        None
    }
}

fn parse_push_sort(value: &Bson) -> Result<PushSort, QueryError> {
    let invalid = || {
        QueryError::bad_value(
            "The $sort is invalid: use 1/-1 to sort the whole element, or {field:1/-1} to sort \
             embedded fields",
        )
    };
    match value {
        Bson::Document(pattern) => {
            if pattern.is_empty() {
                return Err(QueryError::bad_value(
                    "The $sort pattern is empty when it should be a set of fields.",
                ));
            }
            let mut fields = Vec::with_capacity(pattern.len());
            for (path, direction) in pattern {
                if path.is_empty() || path.split('.').any(|p| p.is_empty() || p.starts_with('$')) {
                    return Err(invalid());
                }
                let desc = sort_direction(direction).ok_or_else(invalid)?;
                fields.push((FieldPath::new(path), desc));
            }
            Ok(PushSort::Fields(fields))
        }
        other => sort_direction(other)
            .map(PushSort::Whole)
            .ok_or_else(invalid),
    }
}

fn parse_add_to_set(value: &Bson) -> Result<Vec<Bson>, QueryError> {
    match value {
        // MongoDB only treats `$each` as a modifier when it comes first.
        Bson::Document(d) if d.keys().next().is_some_and(|k| k == "$each") => {
            if d.len() > 1 {
                return Err(QueryError::bad_value(format!(
                    "Found unexpected fields after $each in $addToSet: {d}"
                )));
            }
            match d.get("$each") {
                Some(Bson::Array(items)) => Ok(items.clone()),
                Some(other) => Err(QueryError::type_mismatch(format!(
                    "The argument to $each in $addToSet must be an array but it was of type {}",
                    type_name(other)
                ))),
                None => Ok(Vec::new()),
            }
        }
        _ => Ok(vec![value.clone()]),
    }
}

fn parse_pull(value: &Bson) -> Result<PullMatcher, QueryError> {
    let reject_text = |filter: Filter| {
        if filter.text_search().is_some() {
            Err(QueryError::bad_value(
                "$text is not allowed in this context",
            ))
        } else {
            Ok(filter)
        }
    };
    match value {
        Bson::RegularExpression(_) => Err(QueryError::unsupported("$regex")),
        Bson::Document(condition) => {
            let first = condition.keys().next();
            if first.is_some_and(|k| crate::query::filter::is_path_operator(k)) {
                let mut wrapped = Document::new();
                wrapped.insert("", value.clone());
                Ok(PullMatcher::Value(reject_text(parse_filter(&wrapped)?)?))
            } else {
                Ok(PullMatcher::Object(reject_text(parse_filter(condition)?)?))
            }
        }
        other => Ok(PullMatcher::Equality(other.clone())),
    }
}

fn parse_rename(from: &str, to: &Bson) -> Result<Op, QueryError> {
    let Bson::String(target) = to else {
        return Err(QueryError::bad_value(format!(
            "The 'to' field for $rename must be a string: {from}: {to}"
        )));
    };
    validate_update_path(target)?;
    let (source, destination) = (FieldPath::new(from), FieldPath::new(target));
    if source.parts() == destination.parts() {
        return Err(QueryError::bad_value(format!(
            "The source and target field for $rename must differ: {from}: \"{target}\""
        )));
    }
    if is_prefix(source.parts(), destination.parts())
        || is_prefix(destination.parts(), source.parts())
    {
        return Err(QueryError::bad_value(format!(
            "The source and target field for $rename must not be on the same path: {from}: \"{target}\""
        )));
    }
    Ok(Op::Rename { from: source })
}

fn parse_current_date(value: &Bson) -> Result<Op, QueryError> {
    match value {
        Bson::Boolean(_) => Ok(Op::CurrentDate { timestamp: false }),
        Bson::Document(spec) => match (spec.len(), spec.get("$type")) {
            (1, Some(Bson::String(t))) if t == "date" => Ok(Op::CurrentDate { timestamp: false }),
            (1, Some(Bson::String(t))) if t == "timestamp" => {
                Ok(Op::CurrentDate { timestamp: true })
            }
            _ => Err(QueryError::bad_value(
                "The '$type' string field is required to be 'date' or 'timestamp': \
                 {$currentDate: {field : {$type: 'date'}}}",
            )),
        },
        other => Err(QueryError::bad_value(format!(
            "{} is not valid type for $currentDate. Please use a boolean ('true') or a $type \
             expression ({{$type: 'timestamp/date'}}).",
            type_name(other)
        ))),
    }
}

fn parse_bit(value: &Bson) -> Result<Op, QueryError> {
    let Bson::Document(spec) = value else {
        return Err(QueryError::bad_value(format!(
            "The $bit modifier is not compatible with a {}. You must pass in an embedded \
             document: {{$bit: {{field: {{and/or/xor: #}}}}",
            type_name(value)
        )));
    };
    if spec.is_empty() {
        return Err(QueryError::bad_value(
            "You must pass in at least one bitwise operation. The format is: {$bit: {field: \
             {and/or/xor: #}}",
        ));
    }
    let mut ops = Vec::with_capacity(spec.len());
    for (name, operand) in spec {
        let op = match name.as_str() {
            "and" => BitOp::And,
            "or" => BitOp::Or,
            "xor" => BitOp::Xor,
            other => {
                return Err(QueryError::bad_value(format!(
                    "The $bit modifier only supports 'and', 'or', and 'xor', not '{other}' which \
                     is an unknown operator: {{{other}: {operand}}}"
                )))
            }
        };
        if !matches!(operand, Bson::Int32(_) | Bson::Int64(_)) {
            return Err(QueryError::bad_value(format!(
                "The $bit modifier field must be an Integer(32/64 bit); a '{}' is not supported \
                 here: {{{name}: {operand}}}",
                type_name(operand)
            )));
        }
        ops.push((op, operand.clone()));
    }
    Ok(Op::Bit(ops))
}
