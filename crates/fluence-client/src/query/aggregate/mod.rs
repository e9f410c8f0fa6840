//! Aggregation pipelines over decrypted documents: pure functions from
//! documents to documents, with MongoDB's stage and expression semantics.
//!
//! Stages: `$match`, `$sort`, `$skip`, `$limit`, `$project`, `$addFields`
//! (and its alias `$set`), `$unset`, `$group`, `$count`, `$unwind`,
//! `$replaceRoot` and `$replaceWith`. Other MongoDB stages are refused as
//! unsupported, unknown names with MongoDB's error.
//!
//! The caller runs the [`Leading`] stages itself: a first `$match`, then
//! optionally `$sort`, `$skip` and `$limit` in that order, are exactly a
//! find (filter, sort, skip, limit), which the client plans over encrypted
//! indexes. [`Pipeline::run_after_leading`] runs the rest over its answer;
//! [`Pipeline::run`] runs everything (a `$text` search then matches
//! nothing, since no text index is at hand).
//!
//! ```
//! use bson::{bson, doc};
//! use fluence_client::query::aggregate::Pipeline;
//!
//! let pipeline = Pipeline::parse(&[
//!     bson!({"$match": {"qty": {"$gt": 1}}}),
//!     bson!({"$group": {"_id": "$kind", "total": {"$sum": "$qty"}}}),
//! ])
//! .unwrap();
//! assert_eq!(pipeline.leading().filter, doc! {"qty": {"$gt": 1}});
//! let out = pipeline
//!     .run_after_leading(vec![doc! {"kind": "a", "qty": 2}, doc! {"kind": "a", "qty": 3}])
//!     .unwrap();
//! assert_eq!(out, vec![doc! {"_id": "a", "total": 5}]);
//! ```

mod expr;
mod fields;
mod group;
mod operators;
mod shape;
mod unwind;

#[cfg(test)]
mod tests;

use bson::{Bson, Document};

pub use expr::{Expr, Value};
pub use group::Group;
pub use shape::Shape;
pub use unwind::Unwind;

use super::bson_type::type_name;
use super::error::QueryError;
use super::filter::{eval, parse_filter, EvalContext, Filter};
use super::sort::SortSpec;
use operators::integral;

/// Stages in one pipeline, as MongoDB's `internalPipelineLengthLimit`.
pub const PIPELINE_STAGES_MAX: usize = 1000;
/// Bytes of documents one `$unwind` may produce. MongoDB streams `$unwind`;
/// here stage results are held in memory, so a large array in a large
/// document must not multiply into gigabytes.
pub const UNWIND_OUTPUT_BYTES_MAX: usize = 512 * 1024 * 1024;
/// MongoDB's `QueryExceededMemoryLimitNoDiskUseAllowed`.
const EXCEEDED_MEMORY_LIMIT: i32 = 292;

/// A parsed pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    stages: Vec<Stage>,
    leading: Leading,
}

/// The stages at the head of a pipeline that amount to a find; the caller
/// runs them through its query planner.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Leading {
    /// The first `$match` (empty when the pipeline does not start with one).
    pub filter: Document,
    pub sort: Option<Document>,
    pub skip: u64,
    pub limit: Option<u64>,
    /// How many stages of the pipeline these stand for.
    pub stages: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Stage {
    Match { filter: Filter, spec: Document },
    Sort { sort: SortSpec, spec: Document },
    Skip(u64),
    Limit(u64),
    Shape(Shape),
    Group(Group),
    Unwind(Unwind),
    Count(String),
    ReplaceRoot(Expr),
}

/// Stages MongoDB has that Fluence does not implement.
const KNOWN_UNSUPPORTED: &[&str] = &[
    "$lookup",
    "$graphLookup",
    "$facet",
    "$bucket",
    "$bucketAuto",
    "$sortByCount",
    "$sample",
    "$out",
    "$merge",
    "$geoNear",
    "$indexStats",
    "$collStats",
    "$currentOp",
    "$listSessions",
    "$listLocalSessions",
    "$redact",
    "$unionWith",
    "$densify",
    "$fill",
    "$setWindowFields",
    "$search",
    "$searchMeta",
    "$changeStream",
    "$documents",
    "$planCacheStats",
    "$listSearchIndexes",
    "$vectorSearch",
];

fn location(code: i32, message: impl Into<String>) -> QueryError {
    QueryError::Location {
        code,
        message: message.into(),
    }
}

impl Pipeline {
    /// Parses the stages of an `aggregate` command.
    pub fn parse(stages: &[Bson]) -> Result<Pipeline, QueryError> {
        if stages.len() > PIPELINE_STAGES_MAX {
            return Err(location(
                7749501,
                format!("Pipeline length must be no longer than {PIPELINE_STAGES_MAX} stages"),
            ));
        }
        let parsed = stages
            .iter()
            .enumerate()
            .map(|(i, stage)| parse_stage(stage, i == 0))
            .collect::<Result<Vec<_>, _>>()?;
        let leading = leading(&parsed);
        Ok(Pipeline {
            stages: parsed,
            leading,
        })
    }

    /// The stages the caller runs as a find.
    pub fn leading(&self) -> &Leading {
        &self.leading
    }

    /// Runs the stages after [`Pipeline::leading`] over the leading
    /// stages' answer.
    pub fn run_after_leading(&self, docs: Vec<Document>) -> Result<Vec<Document>, QueryError> {
        run_stages(&self.stages[self.leading.stages..], docs)
    }

    /// Runs every stage.
    pub fn run(&self, docs: Vec<Document>) -> Result<Vec<Document>, QueryError> {
        run_stages(&self.stages, docs)
    }
}

fn leading(stages: &[Stage]) -> Leading {
    let mut lead = Leading::default();
    let mut rest = stages.iter().peekable();
    if let Some(Stage::Match { spec, .. }) = rest.peek() {
        lead.filter = spec.clone();
        lead.stages += 1;
        rest.next();
    }
    if let Some(Stage::Sort { spec, .. }) = rest.peek() {
        lead.sort = Some(spec.clone());
        lead.stages += 1;
        rest.next();
    }
    if let Some(Stage::Skip(n)) = rest.peek() {
        lead.skip = *n;
        lead.stages += 1;
        rest.next();
    }
    if let Some(Stage::Limit(n)) = rest.peek() {
        lead.limit = Some(*n);
        lead.stages += 1;
    }
    lead
}

fn parse_stage(stage: &Bson, first: bool) -> Result<Stage, QueryError> {
    let spec = match stage {
        Bson::Document(d) if d.len() == 1 => d,
        _ => {
            return Err(location(
                40323,
                "A pipeline stage specification object must contain exactly one field.",
            ))
        }
    };
    let (name, argument) = spec.iter().next().expect("one field");
    Ok(match name.as_str() {
        "$match" => {
            let Bson::Document(filter_doc) = argument else {
                return Err(location(
                    15959,
                    "the match filter must be an expression in an object",
                ));
            };
            let filter = parse_filter(filter_doc)?;
            if !first && filter.text_search().is_some() {
                return Err(location(
                    17313,
                    "$match with $text is only allowed as the first pipeline stage",
                ));
            }
            Stage::Match {
                filter,
                spec: filter_doc.clone(),
            }
        }
        "$sort" => {
            let Bson::Document(sort_doc) = argument else {
                return Err(location(15973, "the $sort key specification must be an object"));
            };
            if sort_doc.is_empty() {
                return Err(location(15976, "$sort stage must have at least one sort key"));
            }
            Stage::Sort {
                sort: SortSpec::parse(sort_doc)?,
                spec: sort_doc.clone(),
            }
        }
        "$skip" => match integral(argument) {
            Some(n) if n >= 0 => Stage::Skip(n as u64),
            Some(n) => {
                return Err(location(
                    5107200,
                    format!("invalid argument to $skip stage: Cannot skip a negative number of documents: {n}"),
                ))
            }
            None => return Err(location(15972, "Argument to $skip must be a number")),
        },
        "$limit" => match integral(argument) {
            Some(n) if n > 0 => Stage::Limit(n as u64),
            Some(_) => return Err(location(15958, "the limit must be positive")),
            None => return Err(location(15957, "the limit must be specified as a number")),
        },
        "$project" => match argument {
            Bson::Document(d) => Stage::Shape(Shape::project(d)?),
            other => {
                return Err(location(
                    15969,
                    format!(
                        "$project specification must be an object, got {}",
                        type_name(other)
                    ),
                ))
            }
        },
        "$addFields" | "$set" => match argument {
            Bson::Document(d) => Stage::Shape(Shape::add_fields(d, name)?),
            other => {
                return Err(location(
                    40272,
                    format!(
                        "{name} specification stage must be an object, got {}",
                        type_name(other)
                    ),
                ))
            }
        },
        "$unset" => Stage::Shape(Shape::unset(argument)?),
        "$group" => match argument {
            Bson::Document(d) => Stage::Group(Group::parse(d)?),
            _ => {
                return Err(location(
                    15947,
                    "a group's fields must be specified in an object",
                ))
            }
        },
        "$unwind" => Stage::Unwind(Unwind::parse(argument)?),
        "$count" => Stage::Count(parse_count(argument)?),
        "$replaceRoot" => {
            let Bson::Document(options) = argument else {
                return Err(location(
                    40228,
                    format!(
                        "expected an object as specification for $replaceRoot stage, got {}",
                        type_name(argument)
                    ),
                ));
            };
            if let Some(other) = options.keys().find(|k| *k != "newRoot") {
                return Err(location(
                    40230,
                    format!(
                        "unrecognized option to $replaceRoot stage: {other}, only valid option \
                         is 'newRoot'."
                    ),
                ));
            }
            let root = options
                .get("newRoot")
                .ok_or_else(|| location(40231, "no newRoot specified for the $replaceRoot stage"))?;
            Stage::ReplaceRoot(Expr::parse(root)?)
        }
        "$replaceWith" => Stage::ReplaceRoot(Expr::parse(argument)?),
        other if KNOWN_UNSUPPORTED.contains(&other) => {
            return Err(QueryError::unsupported(format!("stage {other}")))
        }
        other => {
            return Err(location(
                40324,
                format!("Unrecognized pipeline stage name: '{other}'"),
            ))
        }
    })
}

fn parse_count(argument: &Bson) -> Result<String, QueryError> {
    let Bson::String(field) = argument else {
        return Err(location(
            40156,
            "the count field must be a non-empty string",
        ));
    };
    if field.is_empty() {
        return Err(location(
            40157,
            "the count field must be a non-empty string",
        ));
    }
    if field.starts_with('$') {
        return Err(location(
            40158,
            "the count field cannot be a $-prefixed path",
        ));
    }
    if field.contains('.') {
        return Err(location(40160, "the count field cannot contain '.'"));
    }
    Ok(field.clone())
}

fn run_stages(stages: &[Stage], mut docs: Vec<Document>) -> Result<Vec<Document>, QueryError> {
    for stage in stages {
        docs = run_stage(stage, docs)?;
    }
    Ok(docs)
}

fn run_stage(stage: &Stage, mut docs: Vec<Document>) -> Result<Vec<Document>, QueryError> {
    Ok(match stage {
        Stage::Match { filter, .. } => {
            let context = EvalContext::without_text();
            docs.retain(|d| eval(filter, d, &context));
            docs
        }
        Stage::Sort { sort, .. } => {
            sort.sort(&mut docs)?;
            docs
        }
        Stage::Skip(n) => docs
            .into_iter()
            .skip(usize::try_from(*n).unwrap_or(usize::MAX))
            .collect(),
        Stage::Limit(n) => {
            docs.truncate(usize::try_from(*n).unwrap_or(usize::MAX));
            docs
        }
        Stage::Shape(shape) => docs
            .iter()
            .map(|d| shape.apply(d))
            .collect::<Result<_, _>>()?,
        Stage::Group(group) => group.run(docs)?,
        Stage::Unwind(unwind) => {
            let mut out = Vec::with_capacity(docs.len());
            let mut bytes = 0usize;
            for doc in docs {
                let before = out.len();
                let size = bson_len(&doc);
                unwind.run(doc, &mut out);
                bytes = bytes.saturating_add(size.saturating_mul(out.len() - before));
                if bytes > UNWIND_OUTPUT_BYTES_MAX {
                    return Err(location(
                        EXCEEDED_MEMORY_LIMIT,
                        format!(
                            "$unwind would produce more than {UNWIND_OUTPUT_BYTES_MAX} bytes of \
                             documents, above Fluence's in-memory pipeline limit"
                        ),
                    ));
                }
            }
            out
        }
        Stage::Count(field) => {
            if docs.is_empty() {
                Vec::new()
            } else {
                let n = docs.len();
                let mut out = Document::new();
                out.insert(
                    field.clone(),
                    i32::try_from(n).map_or(Bson::Int64(n as i64), Bson::Int32),
                );
                vec![out]
            }
        }
        Stage::ReplaceRoot(expr) => docs
            .iter()
            .map(|d| match expr.eval(d)? {
                Some(Bson::Document(root)) => Ok(root),
                other => Err(location(
                    40228,
                    format!(
                        "'newRoot' expression must evaluate to an object, but resulting value \
                         was: {}. Type of resulting value: '{}'.",
                        other.as_ref().map_or("MISSING".into(), ToString::to_string),
                        other.as_ref().map_or("missing", type_name)
                    ),
                )),
            })
            .collect::<Result<_, _>>()?,
    })
}

/// Encoded size of a document (an estimate of what it holds in memory).
fn bson_len(doc: &Document) -> usize {
    doc.to_vec().map_or(0, |bytes| bytes.len())
}
