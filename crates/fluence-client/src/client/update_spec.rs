//! Updates given as an [`UpdateSpec`]: an update document or a pipeline
//! (MongoDB's pipeline-style updates), parsed by the caller.

use bson::Document;

use super::{Client, UpdateResult};
use crate::error::ClientError;
use crate::query::UpdateSpec;
use crate::transport::Transport;

impl<T: Transport> Client<T> {
    /// Applies `update` to the first (or, with `multi`, every) matching
    /// document; with `upsert` and no match, inserts one built from the
    /// filter's equalities, as MongoDB does. [`Client::update`] is this
    /// with an update document.
    pub async fn update_spec(
        &self,
        name: &str,
        filter: &Document,
        update: &UpdateSpec,
        multi: bool,
        upsert: bool,
    ) -> Result<UpdateResult, ClientError> {
        if multi && update.is_replacement() {
            return Err(ClientError::InvalidRequest(
                "multi update is not allowed with a replacement document".into(),
            ));
        }
        self.with_fresh_schema(name, |state| {
            Box::pin(async move {
                self.update_once(&state, filter, update, multi, upsert)
                    .await
            })
        })
        .await
    }
}
