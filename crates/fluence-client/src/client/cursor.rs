//! Reading a find's answer page by page instead of all at once.
//!
//! [`PageReader`] asks the node for one page of candidates at a time,
//! checks its order, decrypts and filters it; `Client::matching` drains it
//! for the client's own calls. [`FindStream`] is the public face: an
//! unsorted find streams (only one node page of documents is held at a
//! time, skip and limit are applied as pages arrive), while a sorted one
//! has to see every match before the first can be returned and is
//! materialised by `Client::find` (no encrypted index can order a page
//! stream yet).

use std::collections::VecDeque;
use std::sync::Arc;

use bson::Document;
use fluence_proto::limits::PAGE_DOCS_MAX;
use fluence_proto::{DocEntry, DocId, FindQuery, NodeError, Plan, StatePin};

use super::point_reads::BATCH_IDS_MAX;
use super::{check_page_order, id_lookup, parallel_map, Client, DatasetState, Matched};
use super::{FindOptions, FIND_PAGE_DOCS};
use crate::error::ClientError;
use crate::query::{self, EvalContext, Filter, Projection};
use crate::reads::{ReadChoice, ReadOptions};
use crate::transport::Transport;

/// The node pages of one planned filter, verified, decrypted and filtered.
///
/// Pages are read as the request's [`ReadChoice`] says (captured when the
/// reader is made, so a cursor keeps it across getMore): from a quorum of
/// members, each page after the first pinned to the state the previous
/// one was agreed at (members that moved on report their new state and
/// the page is read there: a find is consistent per page, not across
/// pages, as MongoDB's default read concern); or, with proofs, as chunks
/// of the `_id` lookup, each proven.
pub(super) struct PageReader {
    state: Arc<DatasetState>,
    filter: Arc<Filter>,
    plan: Plan,
    text_paths: Arc<Vec<String>>,
    choice: ReadChoice,
    /// With proofs: the ids looked up, sorted, without repeats.
    proven_ids: Option<Vec<DocId>>,
    /// The state the last page was agreed at.
    pin: Option<StatePin>,
    after: Option<DocId>,
    done: bool,
}

impl PageReader {
    pub(super) fn new<T: Transport>(
        client: &Client<T>,
        state: &Arc<DatasetState>,
        filter_doc: &Document,
    ) -> Result<PageReader, ClientError> {
        let filter = Arc::new(query::parse_filter(filter_doc)?);
        let plan = client.plan(&state.dataset, filter_doc, &filter)?;
        let options = ReadOptions::current();
        let mut choice = client.read_choice(options)?;
        let proven_ids = match (choice.proof, id_lookup(&state.dataset, filter_doc)) {
            (true, Some(Plan::Ids(mut ids))) => {
                ids.sort_unstable();
                ids.dedup();
                Some(ids)
            }
            (true, _) if ReadChoice::proof_required(&options) => {
                return Err(ClientError::InvalidRequest(
                    "\"proof\": true needs a lookup by _id ({_id: v}, {_id: {$eq: v}} or {_id: {$in: [...]}} at the top of the filter)"
                        .into(),
                ))
            }
            _ => {
                // A default that cannot apply to this query: read signed.
                choice.proof = false;
                None
            }
        };
        Ok(PageReader {
            state: Arc::clone(state),
            filter,
            plan,
            text_paths: Arc::new(state.dataset.text_paths()),
            choice,
            proven_ids,
            pin: None,
            after: None,
            done: false,
        })
    }

    /// The next page's documents and cursor, verified.
    async fn read<T: Transport>(
        &mut self,
        client: &Client<T>,
    ) -> Result<(Vec<DocEntry>, Option<DocId>), ClientError> {
        let dataset = &self.state.dataset;
        if let Some(ids) = &self.proven_ids {
            // Proven: the ids after the cursor, a batch at a time.
            let start = self
                .after
                .map_or(0, |after| ids.partition_point(|id| *id <= after));
            let rest = &ids[start..];
            let chunk = &rest[..rest.len().min(BATCH_IDS_MAX)];
            let next = (rest.len() > chunk.len()).then(|| chunk[chunk.len() - 1]);
            if chunk.is_empty() {
                return Ok((Vec::new(), None));
            }
            let (docs, _) = client
                .point_read(dataset.id, dataset.schema(), chunk.to_vec(), self.choice)
                .await?;
            return Ok((docs, next));
        }
        match &self.plan {
            Plan::Ids(ids)
                if self.after.is_none() && !ids.is_empty() && ids.len() <= BATCH_IDS_MAX =>
            {
                client
                    .point_read(dataset.id, dataset.schema(), ids.clone(), self.choice)
                    .await
            }
            _ => {
                let query = FindQuery {
                    dataset: dataset.id,
                    schema: dataset.schema(),
                    plan: self.plan.clone(),
                    after: self.after,
                    page_docs_max: FIND_PAGE_DOCS.min(PAGE_DOCS_MAX as u32),
                };
                let agreed = client.read_page(&query, self.pin, self.choice).await?;
                self.pin = Some(agreed.state.pin());
                Ok((agreed.docs, agreed.next))
            }
        }
    }

    /// The matches of the next node page (possibly none), or `None` once
    /// the node has no more. With `wanted`, stops decrypting the page once
    /// that many matched (the rest of the page is skipped for good).
    pub(super) async fn next<T: Transport>(
        &mut self,
        client: &Client<T>,
        wanted: Option<usize>,
    ) -> Result<Option<Vec<Matched>>, ClientError> {
        if self.done {
            return Ok(None);
        }
        let (docs, next) = match self.read(client).await {
            Ok(page) => page,
            Err(ClientError::Node(NodeError::DatasetNotFound)) => {
                let name = self.state.dataset.name().to_string();
                return Err(ClientError::DatasetNotFound(name));
            }
            Err(e) => return Err(e),
        };
        check_page_order(self.after, &docs, next)?;
        match next {
            Some(cursor) => self.after = Some(cursor),
            None => self.done = true,
        }
        let open_and_match = {
            let (state, filter, text_paths) = (
                Arc::clone(&self.state),
                Arc::clone(&self.filter),
                Arc::clone(&self.text_paths),
            );
            move |entry: DocEntry| -> Result<Option<Matched>, ClientError> {
                let doc = state.dataset.open(&entry)?;
                let context = EvalContext::new(&text_paths, &fluence_crypto::text::normalize_words);
                Ok(query::eval(&filter, &doc, &context).then_some(Matched {
                    doc_id: entry.doc,
                    version: entry.sealed.version,
                    doc,
                }))
            }
        };
        let matched = match wanted {
            // A few matches wanted (update one, a limit without sort):
            // stop decrypting at the last one needed.
            Some(n) => {
                let mut matched = Vec::new();
                for entry in docs {
                    if matched.len() >= n {
                        break;
                    }
                    if let Some(m) = open_and_match(entry)? {
                        matched.push(m);
                    }
                }
                matched
            }
            None => parallel_map(docs, open_and_match)
                .await?
                .into_iter()
                .flatten()
                .collect(),
        };
        Ok(Some(matched))
    }
}

/// The answer of a find, read in batches (see the module docs).
pub struct FindStream<T: Transport> {
    source: Source<T>,
}

impl<T: Transport> std::fmt::Debug for FindStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, buffered) = match &self.source {
            Source::Materialised(docs) => ("materialised", docs.len()),
            Source::Streaming { buffer, .. } => ("streaming", buffer.len()),
        };
        f.debug_struct("FindStream")
            .field("kind", &kind)
            .field("buffered", &buffered)
            .finish_non_exhaustive()
    }
}

enum Source<T: Transport> {
    /// Sorted: the whole answer, computed up front.
    Materialised(VecDeque<Document>),
    Streaming {
        client: Arc<Client<T>>,
        reader: PageReader,
        /// Decrypted matches not yet handed out.
        buffer: VecDeque<Document>,
        skip_left: u64,
        /// `None`: no limit.
        limit_left: Option<u64>,
        projection: Option<Projection>,
    },
}

impl<T: Transport> Client<T> {
    /// Runs a find whose answer is read with [`FindStream::next_batch`].
    /// Without a sort nothing is read from the node until then.
    pub async fn find_stream(
        self: &Arc<Self>,
        name: &str,
        options: FindOptions,
    ) -> Result<FindStream<T>, ClientError> {
        if options.sort.as_ref().is_some_and(|s| !s.is_empty()) {
            let docs = self.find(name, options).await?;
            return Ok(FindStream {
                source: Source::Materialised(docs.into()),
            });
        }
        let state = self.dataset(name).await?;
        let projection = options
            .projection
            .as_ref()
            .map(Projection::parse)
            .transpose()?;
        let reader = PageReader::new(self, &state, &options.filter)?;
        let limit = options.limit.unsigned_abs();
        Ok(FindStream {
            source: Source::Streaming {
                client: Arc::clone(self),
                reader,
                buffer: VecDeque::new(),
                skip_left: options.skip,
                limit_left: (limit > 0).then_some(limit),
                projection,
            },
        })
    }
}

impl<T: Transport> FindStream<T> {
    /// A stream over documents already at hand (an aggregation's output,
    /// or nothing for a collection that does not exist).
    pub fn from_documents(docs: Vec<Document>) -> FindStream<T> {
        FindStream {
            source: Source::Materialised(docs.into()),
        }
    }

    /// BSON bytes of the documents held in memory, waiting to be handed
    /// out: a whole sorted answer, or at most one node page of a stream.
    pub fn buffered_bytes(&self) -> usize {
        let buffer = match &self.source {
            Source::Materialised(docs) => docs,
            Source::Streaming { buffer, .. } => buffer,
        };
        buffer
            .iter()
            .map(|d| d.to_vec().map_or(0, |v| v.len()))
            .fold(0usize, usize::saturating_add)
    }

    /// Up to `max_docs` more documents, fewer only at the end of the
    /// answer (an empty batch means the end). `max_bytes` also stops the
    /// batch once its documents' BSON size would pass it (at least one
    /// document is always returned if any remain).
    pub async fn next_batch(
        &mut self,
        max_docs: usize,
        max_bytes: usize,
    ) -> Result<Vec<Document>, ClientError> {
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        loop {
            let buffer = self.buffer_mut();
            while batch.len() < max_docs {
                let Some(doc) = buffer.front() else { break };
                let size = doc.to_vec().map_or(0, |v| v.len());
                if !batch.is_empty() && bytes.saturating_add(size) > max_bytes {
                    return Ok(batch);
                }
                bytes = bytes.saturating_add(size);
                batch.extend(buffer.pop_front());
            }
            if batch.len() >= max_docs || !self.refill().await? {
                return Ok(batch);
            }
        }
    }

    fn buffer_mut(&mut self) -> &mut VecDeque<Document> {
        match &mut self.source {
            Source::Materialised(docs) => docs,
            Source::Streaming { buffer, .. } => buffer,
        }
    }

    /// Reads node pages until the buffer holds documents; false once the
    /// answer has ended.
    async fn refill(&mut self) -> Result<bool, ClientError> {
        let Source::Streaming {
            client,
            reader,
            buffer,
            skip_left,
            limit_left,
            projection,
        } = &mut self.source
        else {
            return Ok(false);
        };
        while buffer.is_empty() {
            if *limit_left == Some(0) {
                return Ok(false);
            }
            // With a limit, only skip + limit more matches are ever needed,
            // so the page may stop decrypting there.
            let wanted = limit_left
                .map(|l| usize::try_from(l.saturating_add(*skip_left)).unwrap_or(usize::MAX));
            let Some(page) = reader.next(client.as_ref(), wanted).await? else {
                return Ok(false);
            };
            for matched in page {
                if *skip_left > 0 {
                    *skip_left -= 1;
                    continue;
                }
                match limit_left {
                    Some(0) => break,
                    Some(n) => *n -= 1,
                    None => {}
                }
                buffer.push_back(match projection {
                    Some(p) => p.apply(&matched.doc),
                    None => matched.doc,
                });
            }
        }
        Ok(true)
    }

    /// Whether every document has been handed out.
    pub fn is_exhausted(&self) -> bool {
        match &self.source {
            Source::Materialised(docs) => docs.is_empty(),
            Source::Streaming {
                reader,
                buffer,
                limit_left,
                ..
            } => buffer.is_empty() && (reader.done || *limit_left == Some(0)),
        }
    }
}
