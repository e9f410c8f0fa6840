//! Pipeline-style updates (MongoDB 4.2+): the update is an aggregation
//! pipeline of `$addFields`/`$set`, `$project`/`$unset` and
//! `$replaceRoot`/`$replaceWith` stages, run over the matched document.
//!
//! As in MongoDB's pipeline executor, the pipeline's output replaces the
//! document: an output without `_id` keeps the original one, an output
//! with another `_id` is an `ImmutableField` error, and fields may be
//! `$`-prefixed or dotted (made with `$setField`). An upsert runs the
//! pipeline over the document the filter's equalities seed.

use bson::{Bson, Document};

use super::super::aggregate::Pipeline;
use super::super::compare::documents_identical;
use super::super::error::QueryError;
use super::super::limits::check_depth;
use super::{replace, upsert_seed};

/// Stages MongoDB allows in an update pipeline.
const UPDATE_STAGES: &[&str] = &[
    "$addFields",
    "$set",
    "$project",
    "$unset",
    "$replaceRoot",
    "$replaceWith",
];
/// MongoDB's `InvalidOptions`, its code for a stage an update may not use.
const INVALID_OPTIONS: i32 = 72;

/// A parsed update pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdatePipeline {
    pipeline: Pipeline,
}

impl UpdatePipeline {
    /// Parses the stages of an update pipeline.
    pub fn parse(stages: &[Bson]) -> Result<UpdatePipeline, QueryError> {
        for stage in stages {
            // A malformed stage gets the aggregation parser's error below.
            let Some(name) = stage.as_document().and_then(|d| d.keys().next()) else {
                continue;
            };
            if name.starts_with('$') && !UPDATE_STAGES.contains(&name.as_str()) {
                return Err(QueryError::Location {
                    code: INVALID_OPTIONS,
                    message: format!("{name} is not allowed to be used within an update"),
                });
            }
        }
        Ok(UpdatePipeline {
            pipeline: Pipeline::parse(stages)?,
        })
    }

    /// Runs the pipeline over `doc` and replaces it with the output;
    /// returns whether the document changed. On error `doc` is untouched.
    pub fn apply(&self, doc: &mut Document) -> Result<bool, QueryError> {
        let updated = self.output(doc)?;
        let changed = !documents_identical(doc, &updated);
        *doc = updated;
        Ok(changed)
    }

    /// The document an upsert inserts: the filter's equalities, through
    /// the pipeline.
    pub fn apply_upsert(&self, filter: &Document) -> Result<Document, QueryError> {
        self.output(&upsert_seed(filter)?)
    }

    fn output(&self, doc: &Document) -> Result<Document, QueryError> {
        let mut out = self.pipeline.run(vec![doc.clone()])?;
        // Every allowed stage maps one document to one document.
        debug_assert_eq!(out.len(), 1);
        let output = out.pop().ok_or_else(|| QueryError::Location {
            code: INVALID_OPTIONS,
            message: "the update pipeline produced no document".into(),
        })?;
        let updated = replace(&output, doc.get("_id"))?;
        check_depth(&updated)?;
        Ok(updated)
    }
}

/// An update as `update` and `findAndModify` carry it: an update document
/// (operators or a replacement) or a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateSpec {
    Document(super::Update),
    /// Boxed: a parsed pipeline is many times the size of an update.
    Pipeline(Box<UpdatePipeline>),
}

impl UpdateSpec {
    /// Parses an update document or an array of pipeline stages.
    pub fn parse(update: &Bson) -> Result<UpdateSpec, QueryError> {
        match update {
            Bson::Document(d) => Ok(UpdateSpec::Document(super::Update::parse(d)?)),
            Bson::Array(stages) => Ok(UpdateSpec::Pipeline(Box::new(UpdatePipeline::parse(
                stages,
            )?))),
            _ => Err(QueryError::FailedToParse {
                message: "Update argument must be either an object or an array".into(),
            }),
        }
    }

    /// True for a replacement document.
    pub fn is_replacement(&self) -> bool {
        matches!(self, UpdateSpec::Document(u) if u.is_replacement())
    }

    /// Applies the update to an existing document; returns whether it
    /// changed.
    pub fn apply(&self, doc: &mut Document) -> Result<bool, QueryError> {
        match self {
            UpdateSpec::Document(u) => u.apply(doc),
            UpdateSpec::Pipeline(p) => p.apply(doc),
        }
    }

    /// The document an upsert inserts when nothing matched `filter`.
    pub fn apply_upsert(&self, filter: &Document) -> Result<Document, QueryError> {
        match self {
            UpdateSpec::Document(u) => u.apply_upsert(filter),
            UpdateSpec::Pipeline(p) => p.apply_upsert(filter),
        }
    }
}

impl From<super::Update> for UpdateSpec {
    fn from(update: super::Update) -> UpdateSpec {
        UpdateSpec::Document(update)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{bson, doc};

    fn pipeline(stages: Bson) -> UpdatePipeline {
        let Bson::Array(stages) = stages else {
            panic!("stages")
        };
        UpdatePipeline::parse(&stages).unwrap()
    }

    #[test]
    fn stages_reshape_the_document_and_keep_its_id() {
        let p = pipeline(bson!([{"$project": {"x": 1}}, {"$addFields": {"foo": 1}}]));
        let mut d = doc! {"_id": 1, "x": 1, "y": 1};
        assert!(p.apply(&mut d).unwrap());
        assert_eq!(d, doc! {"_id": 1, "x": 1, "foo": 1});
        // $replaceRoot drops _id from the output; the original stays.
        let p = pipeline(
            bson!([{"$replaceRoot": {"newRoot": "$t"}}, {"$set": {"n": {"$add": ["$u.v", 1]}}}]),
        );
        let mut d = doc! {"_id": 1, "x": 1, "t": {"u": {"v": 1}}};
        p.apply(&mut d).unwrap();
        assert_eq!(d, doc! {"_id": 1, "u": {"v": 1}, "n": 2});
        let p = pipeline(bson!([{"$unset": ["a", "b.c"]}]));
        let mut d = doc! {"_id": 2, "a": 1, "b": {"c": 1, "d": 2}};
        p.apply(&mut d).unwrap();
        assert_eq!(d, doc! {"_id": 2, "b": {"d": 2}});
    }

    #[test]
    fn unchanged_documents_are_not_modified() {
        let p = pipeline(bson!([{"$set": {"a": 1}}]));
        let mut d = doc! {"_id": 1, "a": 1};
        assert!(!p.apply(&mut d).unwrap());
        let mut d = doc! {"_id": 1, "a": 1.0};
        assert!(p.apply(&mut d).unwrap(), "1 over 1.0 changes the bytes");
    }

    #[test]
    fn the_id_may_not_change() {
        let p = pipeline(bson!([{"$set": {"_id": 5}}]));
        let mut d = doc! {"_id": 1};
        let error = p.apply(&mut d).unwrap_err();
        assert_eq!(error.code(), 66);
        assert_eq!(d, doc! {"_id": 1});
    }

    #[test]
    fn upserts_run_over_the_filter_seed() {
        let p = pipeline(bson!([{"$set": {"b": {"$concat": ["$a", "!"]}}}]));
        assert_eq!(
            p.apply_upsert(&doc! {"_id": 7, "a": "hi", "n": {"$gt": 1}})
                .unwrap(),
            doc! {"_id": 7, "a": "hi", "b": "hi!"}
        );
    }

    #[test]
    fn only_shaping_stages_are_allowed() {
        for stage in ["$match", "$group", "$sort", "$limit", "$lookup", "$count"] {
            let stages = vec![Bson::Document(doc! {stage: {}})];
            let error = UpdatePipeline::parse(&stages).unwrap_err();
            assert_eq!(error.code(), 72, "{stage}");
            assert!(error.to_string().contains(stage));
        }
        let bad = vec![Bson::Int32(1)];
        assert_eq!(UpdatePipeline::parse(&bad).unwrap_err().code(), 40323);
        assert!(UpdatePipeline::parse(&[]).is_ok());
        assert_eq!(UpdateSpec::parse(&Bson::Int32(1)).unwrap_err().code(), 9);
    }

    #[test]
    fn specs_dispatch_on_their_shape() {
        let spec = UpdateSpec::parse(&bson!({"$inc": {"n": 1}})).unwrap();
        let mut d = doc! {"_id": 1, "n": 1};
        spec.apply(&mut d).unwrap();
        assert_eq!(d, doc! {"_id": 1, "n": 2});
        assert!(UpdateSpec::parse(&bson!({"n": 1}))
            .unwrap()
            .is_replacement());
        let spec = UpdateSpec::parse(&bson!([{"$set": {"n": {"$multiply": ["$n", 10]}}}])).unwrap();
        assert!(!spec.is_replacement());
        spec.apply(&mut d).unwrap();
        assert_eq!(d, doc! {"_id": 1, "n": 20});
    }
}
