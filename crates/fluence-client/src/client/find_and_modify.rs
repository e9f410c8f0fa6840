//! findAndModify: one document found (the first in sort order), updated,
//! replaced or removed, and returned as it was before or after, as
//! MongoDB's `findAndModify` command and the drivers' `find_one_and_*`
//! helpers expect.
//!
//! The write carries a version precondition on the document it read, so
//! another writer changing that document in between makes the command fail
//! with a write conflict instead of overwriting a change it never saw.

use bson::{Bson, Document};
use fluence_proto::{DocOp, Precondition};

use super::{conflict_to_duplicate, unique_violation, with_id, Client, UpdateResult};
use crate::error::ClientError;
use crate::query::{SortSpec, UpdateSpec};
use crate::transport::Transport;

/// What to do with the document found.
#[derive(Debug, Clone, PartialEq)]
pub enum ModifyAction {
    Remove,
    /// An operator update, a replacement document or a pipeline.
    Update(UpdateSpec),
}

/// A findAndModify request.
#[derive(Debug, Clone, PartialEq)]
pub struct FindAndModify {
    pub filter: Document,
    /// The first document in this order is the one modified.
    pub sort: Option<Document>,
    pub action: ModifyAction,
    /// With an update: insert a document built from the filter and the
    /// update when nothing matches.
    pub upsert: bool,
}

/// The document before and after the change (`None` where there is none).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FindAndModifyResult {
    pub before: Option<Document>,
    pub after: Option<Document>,
    /// Counts as an update reports them (`matched` is 0 or 1).
    pub counts: UpdateResult,
}

impl<T: Transport> Client<T> {
    /// Finds the first document matching `request.filter` in
    /// `request.sort` order and applies `request.action` to it.
    pub async fn find_and_modify(
        &self,
        name: &str,
        request: &FindAndModify,
    ) -> Result<FindAndModifyResult, ClientError> {
        let state = self.dataset(name).await?;
        let sort = request.sort.as_ref().map(SortSpec::parse).transpose()?;
        let update = match &request.action {
            ModifyAction::Update(u) => Some(u),
            ModifyAction::Remove if request.upsert => {
                return Err(ClientError::InvalidRequest(
                    "Cannot specify both an upsert and a remove".into(),
                ))
            }
            ModifyAction::Remove => None,
        };
        // The write lock is held from read to write, as in `update`.
        let mut last_seq = state.last_seq.lock().await;
        let enough = if sort.is_none() { Some(1) } else { None };
        let mut matched = self.matching(&state, &request.filter, enough).await?;
        if let Some(sort) = &sort {
            sort.sort_by(&mut matched, |m| &m.doc)?;
        }
        let Some(found) = matched.into_iter().next() else {
            let Some(update) = update.filter(|_| request.upsert) else {
                return Ok(FindAndModifyResult::default());
            };
            let doc = with_id(update.apply_upsert(&request.filter)?)?;
            let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
            let op = state.dataset.put_op(&doc, 1, Precondition::Absent)?;
            self.submit_ops(&state, &mut last_seq, vec![op])
                .await
                .map_err(|(_, e)| {
                    unique_violation(&state.dataset, conflict_to_duplicate(e, &id), 0)
                })?;
            return Ok(FindAndModifyResult {
                before: None,
                after: Some(doc),
                counts: UpdateResult {
                    matched: 0,
                    modified: 0,
                    upserted_id: Some(id),
                },
            });
        };
        let Some(update) = update else {
            let op = DocOp::Delete {
                doc: found.doc_id,
                expect_version: found.version,
            };
            self.submit_ops(&state, &mut last_seq, vec![op])
                .await
                .map_err(|(_, e)| e)?;
            return Ok(FindAndModifyResult {
                before: Some(found.doc),
                after: None,
                counts: UpdateResult {
                    matched: 1,
                    modified: 0,
                    upserted_id: None,
                },
            });
        };
        let mut doc = found.doc.clone();
        let changed = update.apply(&mut doc)?;
        if changed {
            let op = state.dataset.put_op(
                &doc,
                found.version + 1,
                Precondition::Version(found.version),
            )?;
            self.submit_ops(&state, &mut last_seq, vec![op])
                .await
                .map_err(|(_, e)| unique_violation(&state.dataset, e, 0))?;
        }
        Ok(FindAndModifyResult {
            before: Some(found.doc),
            after: Some(doc),
            counts: UpdateResult {
                matched: 1,
                modified: u64::from(changed),
                upserted_id: None,
            },
        })
    }
}
