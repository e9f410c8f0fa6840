//! `$group`: documents with equal `_id` values (by value equality, so `1`
//! and `1.0` share a group; a missing `_id` is `null`) fold into one output
//! document per group through accumulators `$sum`, `$avg`, `$min`, `$max`,
//! `$first`, `$last`, `$push`, `$addToSet` and `$count`.
//!
//! Groups come out in the order their first document arrived (MongoDB
//! leaves the order unspecified).

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use bson::{Bson, Document};

use super::super::compare::{compare_bson, equality_key};
use super::super::error::QueryError;
use super::expr::{check_field_name, Expr};
use super::operators::{numeric, Num};

/// A parsed `$group` stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    id: Expr,
    fields: Vec<(String, Accumulator, Expr)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accumulator {
    Sum,
    Avg,
    Min,
    Max,
    First,
    Last,
    Push,
    AddToSet,
}

/// MongoDB accumulators Fluence does not implement.
const KNOWN_UNSUPPORTED: &[&str] = &[
    "$mergeObjects",
    "$stdDevPop",
    "$stdDevSamp",
    "$top",
    "$topN",
    "$bottom",
    "$bottomN",
    "$firstN",
    "$lastN",
    "$maxN",
    "$minN",
    "$median",
    "$percentile",
    "$accumulator",
];

impl Group {
    pub fn parse(spec: &Document) -> Result<Group, QueryError> {
        let mut id = None;
        let mut fields = Vec::new();
        for (name, value) in spec {
            if name == "_id" {
                id = Some(Expr::parse(value)?);
                continue;
            }
            check_field_name(name).map_err(|_| QueryError::Location {
                code: 16414,
                message: format!(
                    "the group aggregate field name '{name}' cannot be used because $group's \
                     field names cannot contain '.' or start with '$'"
                ),
            })?;
            let accumulator = match value {
                Bson::Document(d) if d.len() == 1 => d,
                _ => {
                    return Err(QueryError::Location {
                        code: 40234,
                        message: format!("The field '{name}' must be an accumulator object"),
                    })
                }
            };
            let (op, argument) = accumulator.iter().next().expect("one field");
            let (kind, expr) = match op.as_str() {
                "$sum" => (Accumulator::Sum, Expr::parse(argument)?),
                "$avg" => (Accumulator::Avg, Expr::parse(argument)?),
                "$min" => (Accumulator::Min, Expr::parse(argument)?),
                "$max" => (Accumulator::Max, Expr::parse(argument)?),
                "$first" => (Accumulator::First, Expr::parse(argument)?),
                "$last" => (Accumulator::Last, Expr::parse(argument)?),
                "$push" => (Accumulator::Push, Expr::parse(argument)?),
                "$addToSet" => (Accumulator::AddToSet, Expr::parse(argument)?),
                "$count" => {
                    if !matches!(argument, Bson::Document(d) if d.is_empty()) {
                        return Err(QueryError::Location {
                            code: 5304301,
                            message: "$count takes no arguments, i.e. $count:{}".into(),
                        });
                    }
                    (Accumulator::Sum, Expr::Literal(Bson::Int32(1)))
                }
                other if KNOWN_UNSUPPORTED.contains(&other) => {
                    return Err(QueryError::unsupported(format!("accumulator {other}")))
                }
                other => {
                    return Err(QueryError::Location {
                        code: 15952,
                        message: format!("unknown group operator '{other}'"),
                    })
                }
            };
            fields.push((name.clone(), kind, expr));
        }
        let id = id.ok_or_else(|| QueryError::Location {
            code: 15955,
            message: "a group specification must include an _id".into(),
        })?;
        Ok(Group { id, fields })
    }

    /// Groups `docs` into one document per distinct `_id`.
    pub fn run(&self, docs: Vec<Document>) -> Result<Vec<Document>, QueryError> {
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut groups: Vec<(Bson, Vec<State>)> = Vec::new();
        for doc in docs {
            let id = self.id.eval(&doc)?.unwrap_or(Bson::Null);
            let key = equality_key(&id);
            let slot = match index.get(&key) {
                Some(&slot) => slot,
                None => {
                    index.insert(key, groups.len());
                    groups.push((id, self.fields.iter().map(|f| State::new(f.1)).collect()));
                    groups.len() - 1
                }
            };
            let states = &mut groups[slot].1;
            for ((_, _, expr), state) in self.fields.iter().zip(states.iter_mut()) {
                state.add(expr.eval(&doc)?)?;
            }
        }
        Ok(groups
            .into_iter()
            .map(|(id, states)| {
                let mut out = Document::new();
                out.insert("_id", id);
                for ((name, _, _), state) in self.fields.iter().zip(states) {
                    out.insert(name.clone(), state.finish());
                }
                out
            })
            .collect())
    }
}

/// The running value of one accumulator in one group.
enum State {
    Sum(Num),
    Avg { sum: Num, count: u64 },
    Min(Option<Bson>),
    Max(Option<Bson>),
    First(Option<Bson>),
    Last(Bson),
    Push(Vec<Bson>),
    AddToSet(Vec<Bson>, HashSet<Vec<u8>>),
}

/// `$min` / `$max`: null and missing values are ignored.
fn keep_extreme(best: &mut Option<Bson>, value: Option<Bson>, wanted: Ordering) {
    match value {
        None | Some(Bson::Null | Bson::Undefined) => {}
        Some(v) => {
            if best.as_ref().is_none_or(|b| compare_bson(&v, b) == wanted) {
                *best = Some(v);
            }
        }
    }
}

impl State {
    fn new(kind: Accumulator) -> State {
        match kind {
            Accumulator::Sum => State::Sum(Num::Int(0)),
            Accumulator::Avg => State::Avg {
                sum: Num::Int(0),
                count: 0,
            },
            Accumulator::Min => State::Min(None),
            Accumulator::Max => State::Max(None),
            Accumulator::First => State::First(None),
            Accumulator::Last => State::Last(Bson::Null),
            Accumulator::Push => State::Push(Vec::new()),
            Accumulator::AddToSet => State::AddToSet(Vec::new(), HashSet::new()),
        }
    }

    fn add(&mut self, value: Option<Bson>) -> Result<(), QueryError> {
        match self {
            // $sum and $avg ignore values that are not numbers.
            State::Sum(sum) => {
                if let Some(n) = numeric(&value) {
                    *sum = sum.add(n?);
                }
            }
            State::Avg { sum, count } => {
                if let Some(n) = numeric(&value) {
                    *sum = sum.add(n?);
                    *count += 1;
                }
            }
            State::Min(best) => keep_extreme(best, value, Ordering::Less),
            State::Max(best) => keep_extreme(best, value, Ordering::Greater),
            State::First(first) => {
                if first.is_none() {
                    *first = Some(value.unwrap_or(Bson::Null));
                }
            }
            State::Last(last) => *last = value.unwrap_or(Bson::Null),
            // $push and $addToSet skip missing values (null is kept).
            State::Push(items) => items.extend(value),
            State::AddToSet(items, seen) => {
                if let Some(v) = value {
                    if seen.insert(equality_key(&v)) {
                        items.push(v);
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> Bson {
        match self {
            State::Sum(sum) => sum.to_bson(),
            State::Avg { count: 0, .. } => Bson::Null,
            State::Avg { sum, count } => Bson::Double(sum.as_f64() / count as f64),
            State::Min(best) | State::Max(best) | State::First(best) => best.unwrap_or(Bson::Null),
            State::Last(last) => last,
            State::Push(items) | State::AddToSet(items, _) => Bson::Array(items),
        }
    }
}
