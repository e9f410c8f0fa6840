//! Writing commands: insert, update, delete, findAndModify.

use bson::{doc, Bson, Document};
use fluence_client::query::{Projection, UpdateSpec};
use fluence_client::{ClientError, FindAndModify, ModifyAction, Transport};

use super::args::*;
use super::duplicates::is_duplicate;
use super::{collection_of, count_value, namespace, Gateway, Reply};
use crate::error::*;

impl<T: Transport> Gateway<T> {
    /// Creates the dataset for `ns` if it does not exist (first insert or
    /// upsert into a collection creates it in MongoDB).
    pub(super) async fn ensure_dataset(&self, ns: &str) -> Result<(), CommandError> {
        match self.client.create_dataset(ns, Vec::new()).await {
            Ok(_) | Err(ClientError::DatasetExists(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn insert(&self, db: &str, cmd: &Document) -> Reply {
        let collection = collection_of(cmd)?;
        let ns = namespace(db, collection)?;
        let ordered = get_bool_or(cmd, "ordered", true)?;
        let docs = write_batch(cmd, "insert", "documents")?
            .iter()
            .map(|d| match d {
                Bson::Document(d) => {
                    check_id_for_storage(d)?;
                    Ok(with_id(d))
                }
                other => Err(CommandError::type_mismatch(format!(
                    "insert documents must be objects, not {:?}",
                    other.element_type()
                ))),
            })
            .collect::<Result<Vec<Document>, _>>()?;
        self.ensure_dataset(&ns).await?;
        let mut n = 0usize;
        let mut write_errors = Vec::new();
        let mut start = 0usize;
        while start < docs.len() {
            match self.client.insert(&ns, docs[start..].to_vec()).await {
                Ok(result) => {
                    n += result.inserted_ids.len();
                    break;
                }
                Err(
                    error @ (ClientError::DuplicateKey { inserted, .. }
                    | ClientError::UniqueViolation { inserted, .. }),
                ) => {
                    let inserted = usize::try_from(inserted).unwrap_or(usize::MAX);
                    let index = start.saturating_add(inserted);
                    n += inserted;
                    let error = self
                        .duplicate(db, collection, &ns, error, docs.get(index))
                        .await;
                    write_errors.push(Bson::Document(error.to_write_error(index)));
                    if ordered {
                        break;
                    }
                    start = index + 1;
                }
                // A batch-level failure (a document too large, the node
                // unreachable) applies to the whole command.
                Err(e) if n == 0 && write_errors.is_empty() => return Err(e.into()),
                Err(e) => {
                    write_errors.push(Bson::Document(CommandError::from(e).to_write_error(start)));
                    break;
                }
            }
        }
        let mut reply = doc! {"n": count_value(n as u64)};
        if !write_errors.is_empty() {
            reply.insert("writeErrors", write_errors);
        }
        Ok(reply)
    }

    pub(super) async fn update(&self, db: &str, cmd: &Document) -> Reply {
        let collection = collection_of(cmd)?;
        let ns = namespace(db, collection)?;
        let ordered = get_bool_or(cmd, "ordered", true)?;
        let statements = write_batch(cmd, "update", "updates")?;
        refuse_variables(cmd, "let", "update")?;
        // `sort` in an update statement is MongoDB 8.0; the 7.0 this
        // gateway announces fails the whole command (its parser knows no
        // such field) rather than update an arbitrary first match.
        if statements
            .iter()
            .any(|s| s.as_document().is_some_and(|d| d.contains_key("sort")))
        {
            return Err(CommandError::new(
                UNKNOWN_FIELD,
                "BSON field 'update.updates.sort' is an unknown field.",
            ));
        }
        let (mut n, mut modified) = (0u64, 0u64);
        let (mut upserted, mut write_errors) = (Vec::new(), Vec::new());
        for (index, statement) in statements.iter().enumerate() {
            match self.update_one(db, collection, &ns, statement).await {
                Ok(result) => {
                    n += result.matched;
                    modified += result.modified;
                    if let Some(id) = result.upserted_id {
                        n += 1;
                        upserted.push(Bson::Document(doc! {"index": index as i64, "_id": id}));
                    }
                }
                Err(error) => {
                    write_errors.push(Bson::Document(error.to_write_error(index)));
                    if ordered {
                        break;
                    }
                }
            }
        }
        let mut reply = doc! {"n": count_value(n), "nModified": count_value(modified)};
        if !upserted.is_empty() {
            reply.insert("upserted", upserted);
        }
        if !write_errors.is_empty() {
            reply.insert("writeErrors", write_errors);
        }
        Ok(reply)
    }

    pub(super) async fn update_one(
        &self,
        db: &str,
        collection: &str,
        ns: &str,
        statement: &Bson,
    ) -> Result<fluence_client::UpdateResult, CommandError> {
        let statement = statement
            .as_document()
            .ok_or_else(|| CommandError::type_mismatch("update statements must be objects"))?;
        check_collation(statement)?;
        if statement
            .get("arrayFilters")
            .is_some_and(|a| !matches!(a, Bson::Array(v) if v.is_empty()))
        {
            return Err(CommandError::not_implemented("arrayFilters"));
        }
        refuse_variables(statement, "c", "an update statement")?;
        let q = required_doc(statement, "update.updates", "q")?;
        let u = match statement.get("u") {
            Some(u @ (Bson::Document(_) | Bson::Array(_))) => UpdateSpec::parse(u)?,
            Some(_) => {
                return Err(CommandError::type_mismatch(
                    "update 'u' must be an object or an array of pipeline stages",
                ))
            }
            None => {
                return Err(CommandError::new(
                    MISSING_FIELD,
                    "BSON field 'update.updates.u' is missing but a required field",
                ))
            }
        };
        let multi = get_bool(statement, "multi")?;
        let upsert = get_bool(statement, "upsert")?;
        if multi && u.is_replacement() {
            return Err(CommandError::new(
                FAILED_TO_PARSE,
                "multi update is not supported for replacement-style update",
            ));
        }
        let result = match self.client.update_spec(ns, q, &u, multi, upsert).await {
            Err(ClientError::DatasetNotFound(_)) if upsert => {
                self.ensure_dataset(ns).await?;
                self.client.update_spec(ns, q, &u, multi, upsert).await
            }
            Err(ClientError::DatasetNotFound(_)) => Ok(fluence_client::UpdateResult::default()),
            other => other,
        };
        match result {
            Ok(result) => Ok(result),
            Err(error) if is_duplicate(&error) => {
                // Which of several documents collided is not known.
                let written = match multi {
                    false => self.preview_update(ns, q, None, &u, upsert).await,
                    true => None,
                };
                Err(self
                    .duplicate(db, collection, ns, error, written.as_ref())
                    .await)
            }
            Err(error) => Err(error.into()),
        }
    }

    pub(super) async fn delete(&self, db: &str, cmd: &Document) -> Reply {
        let ns = namespace(db, collection_of(cmd)?)?;
        let ordered = get_bool_or(cmd, "ordered", true)?;
        let statements = write_batch(cmd, "delete", "deletes")?;
        let mut n = 0u64;
        let mut write_errors = Vec::new();
        for (index, statement) in statements.iter().enumerate() {
            match self.delete_one(&ns, statement).await {
                Ok(deleted) => n += deleted,
                Err(error) => {
                    write_errors.push(Bson::Document(error.to_write_error(index)));
                    if ordered {
                        break;
                    }
                }
            }
        }
        let mut reply = doc! {"n": count_value(n)};
        if !write_errors.is_empty() {
            reply.insert("writeErrors", write_errors);
        }
        Ok(reply)
    }

    pub(super) async fn delete_one(&self, ns: &str, statement: &Bson) -> Result<u64, CommandError> {
        let statement = statement
            .as_document()
            .ok_or_else(|| CommandError::type_mismatch("delete statements must be objects"))?;
        check_collation(statement)?;
        let q = required_doc(statement, "delete.deletes", "q")?;
        let multi = match statement.get("limit").map(integral) {
            Some(Some(0)) => true,
            Some(Some(1)) => false,
            Some(_) => {
                return Err(CommandError::new(
                    FAILED_TO_PARSE,
                    "The limit field in delete objects must be 0 or 1",
                ))
            }
            None => {
                return Err(CommandError::new(
                    MISSING_FIELD,
                    "BSON field 'delete.deletes.limit' is missing but a required field",
                ))
            }
        };
        match self.client.delete(ns, q, multi).await {
            Err(ClientError::DatasetNotFound(_)) => Ok(0),
            other => Ok(other?),
        }
    }

    pub(super) async fn find_and_modify(&self, db: &str, cmd: &Document) -> Reply {
        let collection = collection_of(cmd)?;
        let ns = namespace(db, collection)?;
        check_collation(cmd)?;
        refuse_variables(cmd, "let", "findAndModify")?;
        if cmd
            .get("arrayFilters")
            .is_some_and(|a| !matches!(a, Bson::Array(v) if v.is_empty()))
        {
            return Err(CommandError::not_implemented("arrayFilters"));
        }
        let filter = get_doc(cmd, "query")?.cloned().unwrap_or_default();
        let sort = get_doc(cmd, "sort")?.filter(|s| !s.is_empty()).cloned();
        let fields = get_doc(cmd, "fields")?
            .filter(|f| !f.is_empty())
            .map(Projection::parse)
            .transpose()
            .map_err(CommandError::from)?;
        let remove = get_bool(cmd, "remove")?;
        let return_new = get_bool(cmd, "new")?;
        let upsert = get_bool(cmd, "upsert")?;
        let update = match cmd.get("update") {
            None | Some(Bson::Null) => None,
            Some(u @ (Bson::Document(_) | Bson::Array(_))) => Some(UpdateSpec::parse(u)?),
            Some(_) => {
                return Err(CommandError::new(
                    FAILED_TO_PARSE,
                    "Update argument must be either an object or an array",
                ))
            }
        };
        let action =
            match (remove, update) {
                (true, Some(_)) => {
                    return Err(CommandError::new(
                        FAILED_TO_PARSE,
                        "Cannot specify both an update and remove=true",
                    ))
                }
                (true, None) if upsert => {
                    return Err(CommandError::new(
                        FAILED_TO_PARSE,
                        "Cannot specify both upsert=true and remove=true",
                    ))
                }
                (true, None) if return_new => return Err(CommandError::new(
                    FAILED_TO_PARSE,
                    "Cannot specify both new=true and remove=true; 'remove' always returns the \
                     deleted document",
                )),
                (true, None) => ModifyAction::Remove,
                (false, Some(u)) => ModifyAction::Update(u),
                (false, None) => {
                    return Err(CommandError::new(
                        FAILED_TO_PARSE,
                        "Either an update or remove=true must be specified",
                    ))
                }
            };
        let request = FindAndModify {
            filter,
            sort,
            action,
            upsert,
        };
        let result = match self.client.find_and_modify(&ns, &request).await {
            Err(ClientError::DatasetNotFound(_)) if upsert => {
                self.ensure_dataset(&ns).await?;
                self.client.find_and_modify(&ns, &request).await
            }
            Err(ClientError::DatasetNotFound(_)) => Ok(Default::default()),
            other => other,
        };
        let result = match result {
            Ok(result) => result,
            Err(error) if is_duplicate(&error) => {
                let written = match &request.action {
                    ModifyAction::Update(u) => {
                        let sort = request.sort.as_ref();
                        self.preview_update(&ns, &request.filter, sort, u, upsert)
                            .await
                    }
                    ModifyAction::Remove => None,
                };
                return Err(self
                    .duplicate(db, collection, &ns, error, written.as_ref())
                    .await);
            }
            Err(e) => return Err(e.into()),
        };
        let found = result.before.is_some();
        let mut last_error = doc! {"n": i32::from(found || result.counts.upserted_id.is_some())};
        if !remove {
            last_error.insert("updatedExisting", found);
            if let Some(id) = &result.counts.upserted_id {
                last_error.insert("upserted", id.clone());
            }
        }
        let value = if return_new {
            result.after
        } else {
            result.before
        };
        let value = match (value, &fields) {
            (Some(d), Some(projection)) => Bson::Document(projection.apply(&d)),
            (Some(d), None) => Bson::Document(d),
            (None, _) => Bson::Null,
        };
        Ok(doc! {"lastErrorObject": last_error, "value": value})
    }
}

/// MongoDB refuses to store an `_id` that is a document with `$`-prefixed
/// fields (it could not be matched by a query).
fn check_id_for_storage(doc: &Document) -> Result<(), CommandError> {
    if let Some(Bson::Document(id)) = doc.get("_id") {
        if let Some(key) = id.keys().find(|k| k.starts_with('$')) {
            return Err(CommandError::new(
                DOLLAR_PREFIXED_FIELD_NAME,
                format!(
                    "_id fields may not contain '$'-prefixed fields: {key} is not valid for \
                     storage."
                ),
            ));
        }
    }
    Ok(())
}
