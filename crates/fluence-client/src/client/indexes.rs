//! Adding and dropping indexes on a dataset that already holds documents.
//!
//! A change is declared to the node with a `Reindex` write; indexes the
//! node has not held before start empty there and are built by rewriting
//! every document with its entries for them. Until that finishes they sit
//! in the descriptor's `pending` list: every write maintains them, queries
//! do not use them. A build that stops half way (a crash, a unique
//! violation) leaves the dataset consistent; the next `create_indexes`
//! finishes it.

use std::sync::Arc;

use bson::Document;
use fluence_proto::{Action, IndexDecl, NodeError, Precondition};

use super::cursor::PageReader;
use super::{parallel_map, Client, DatasetState, DatasetView, Matched};
use crate::dataset::{node_indexes_of, Dataset};
use crate::descriptor::{kind_name, Descriptor, IndexSpec};
use crate::error::ClientError;
use crate::transport::Transport;

impl<T: Transport> Client<T> {
    /// Adds indexes to dataset `name` and builds them over its documents.
    /// As MongoDB's `createIndexes`: an index that exists with the same
    /// options is left alone; one on the same field and kind with other
    /// options is a conflict. A unique index whose field already holds a
    /// duplicate value is not created (`UniqueViolation`).
    pub async fn create_indexes(
        &self,
        name: &str,
        specs: Vec<IndexSpec>,
    ) -> Result<DatasetView, ClientError> {
        let (state, mut goal) = self.declared_indexes(name).await?;
        for spec in specs {
            match goal.iter().find(|i| i.same_key(&spec)) {
                Some(existing) if *existing == spec => {}
                Some(existing) => {
                    return Err(ClientError::IndexConflict(format!(
                        "an index {} on {:?} already exists with other options (unique: {}); drop it first",
                        kind_name(spec.kind),
                        spec.path,
                        existing.unique
                    )))
                }
                None => goal.push(spec),
            }
        }
        self.change_indexes(state, goal).await?;
        self.describe(name).await
    }

    /// Drops indexes (matched by field and kind) from dataset `name`.
    pub async fn drop_indexes(
        &self,
        name: &str,
        specs: Vec<IndexSpec>,
    ) -> Result<DatasetView, ClientError> {
        let (state, mut goal) = self.declared_indexes(name).await?;
        for spec in &specs {
            let before = goal.len();
            goal.retain(|i| !i.same_key(spec));
            if goal.len() == before {
                return Err(ClientError::IndexNotFound(format!(
                    "dataset {name:?} has no {} index on {:?}",
                    kind_name(spec.kind),
                    spec.path
                )));
            }
        }
        self.change_indexes(state, goal).await?;
        self.describe(name).await
    }

    /// The dataset as the node has it now (not a cached copy) and every
    /// index it declares, built ones first, then those still building.
    async fn declared_indexes(
        &self,
        name: &str,
    ) -> Result<(Arc<DatasetState>, Vec<IndexSpec>), ClientError> {
        self.forget(name).await;
        let state = self.dataset(name).await?;
        let current = &state.dataset.descriptor;
        let specs = current
            .indexes
            .iter()
            .chain(&current.pending)
            .cloned()
            .collect();
        Ok((state, specs))
    }

    /// Moves the dataset to the index set `goal`, building what the node
    /// does not hold yet. If a unique index meets a duplicate, the dataset
    /// goes back to the built indexes it had that `goal` keeps (rebuilt if
    /// the attempt changed them) and the violation is returned.
    async fn change_indexes(
        &self,
        mut state: Arc<DatasetState>,
        mut goal: Vec<IndexSpec>,
    ) -> Result<(), ClientError> {
        let name = state.dataset.name().to_string();
        let fallback: Vec<IndexSpec> = goal
            .iter()
            .filter(|spec| state.dataset.descriptor.indexes.contains(spec))
            .cloned()
            .collect();
        let mut failure = None;
        // Pass two runs only after a failed build, towards a goal without
        // the indexes it was building, which cannot fail on uniqueness.
        for _ in 0..2 {
            let target = Dataset::new(&self.master, Descriptor::new(&name, goal.clone())?);
            let unbuilt = unbuilt_specs(&state.dataset, &target, &goal);
            if unbuilt.is_empty() {
                if target.descriptor != state.dataset.descriptor {
                    self.reindex(&state, &target.descriptor).await?;
                }
                break;
            }
            let ready: Vec<IndexSpec> = goal
                .iter()
                .filter(|spec| !unbuilt.contains(spec))
                .cloned()
                .collect();
            let interim = Descriptor::with_pending(&name, ready, unbuilt)?;
            self.reindex(&state, &interim).await?;
            state = self
                .cache(Dataset::new(&self.master, interim), &state)
                .await;
            match self.rebuild_entries(&state).await {
                Ok(()) => {
                    self.reindex(&state, &target.descriptor).await?;
                    break;
                }
                Err(error @ ClientError::UniqueViolation { .. }) => {
                    failure = Some(error);
                    goal = fallback.clone();
                }
                Err(error) => return Err(error),
            }
        }
        self.forget(&name).await;
        failure.map_or(Ok(()), Err)
    }

    /// Declares `descriptor`'s indexes to the node.
    async fn reindex(
        &self,
        state: &DatasetState,
        descriptor: &Descriptor,
    ) -> Result<(), ClientError> {
        let dataset = Dataset::new(&self.master, descriptor.clone());
        let sealed = self
            .master
            .catalog_key()
            .seal_descriptor(&dataset.id.0, &descriptor.to_bytes());
        let mut last_seq = state.last_seq.lock().await;
        self.submit(
            state,
            &mut last_seq,
            Action::Reindex {
                descriptor: sealed,
                indexes: dataset.index_decls(),
            },
        )
        .await
    }

    /// Makes `dataset` the cached state of its name, continuing the
    /// sequence `previous` knew.
    async fn cache(&self, dataset: Dataset, previous: &DatasetState) -> Arc<DatasetState> {
        let last_seq = *previous.last_seq.lock().await;
        let state = Arc::new(DatasetState {
            dataset,
            last_seq: tokio::sync::Mutex::new(last_seq),
            inserts: Default::default(),
        });
        self.datasets
            .lock()
            .await
            .insert(state.dataset.name().to_string(), Arc::clone(&state));
        state
    }

    /// Rewrites every document with its entries for all declared indexes,
    /// one page at a time. A document another writer changed meanwhile
    /// was written with these declarations (the node refuses batches made
    /// for others), so it is skipped.
    async fn rebuild_entries(&self, state: &Arc<DatasetState>) -> Result<(), ClientError> {
        let mut reader = PageReader::new(self, state, &Document::new())?;
        while let Some(page) = reader.next(self, None).await? {
            let rewrite = {
                let state = Arc::clone(state);
                move |m: Matched| {
                    let expect = Precondition::Version(m.version);
                    state.dataset.put_op(&m.doc, m.version + 1, expect)
                }
            };
            let mut ops = parallel_map(page, rewrite).await?;
            while !ops.is_empty() {
                let mut last_seq = state.last_seq.lock().await;
                match self.submit_ops(state, &mut last_seq, ops.clone()).await {
                    Ok(_) => break,
                    Err((applied, ClientError::Node(NodeError::Precondition { .. }))) => {
                        // `applied` operations went in; the next one is the
                        // document changed under us.
                        ops.drain(..=applied as usize);
                    }
                    Err((applied, error)) => {
                        return Err(super::unique_violation(&state.dataset, error, applied))
                    }
                }
            }
        }
        Ok(())
    }
}

/// The specs of `goal` that must be built: those mapping to an index
/// declaration the node does not hold yet, and those `current` was still
/// building.
fn unbuilt_specs(current: &Dataset, target: &Dataset, goal: &[IndexSpec]) -> Vec<IndexSpec> {
    let held: Vec<IndexDecl> = current.index_decls();
    goal.iter()
        .filter(|spec| {
            let new_to_node = node_indexes_of(spec).into_iter().any(|(kind, _)| {
                target
                    .decl_of(&spec.path, kind)
                    .is_some_and(|decl| !held.contains(&decl))
            });
            new_to_node || current.descriptor.pending.iter().any(|p| p.same_key(spec))
        })
        .cloned()
        .collect()
}
