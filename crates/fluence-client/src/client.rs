//! The client proper: dataset management, writes signed by the owner, and
//! MongoDB-style queries evaluated exactly after decryption.

use std::collections::HashMap;
use std::sync::Arc;

use bson::{oid::ObjectId, Bson, Document};
use fluence_crypto::keys::MasterKey;
use fluence_crypto::sign::SigningKey;
use fluence_proto::limits::OPS_PER_BATCH_MAX;
use fluence_proto::{
    Action, DocEntry, DocId, DocOp, IndexValues, NodeError, Plan, Precondition, PublicKey, Request,
    Response, Signature, SignedWrite, Token, WriteBody, WRITE_SIGNING_DOMAIN,
};
use tokio::sync::Mutex;

use crate::dataset::Dataset;
use crate::descriptor::{Descriptor, IndexSpec};
use crate::error::ClientError;
use crate::members::{check_members, Member};
use crate::query::{self, Filter, Projection, SortSpec, Update, UpdateSpec};
use crate::reads::{proven, quorum, ReadChoice, ReadConfig, ReadOptions};
use crate::transport::Transport;

pub mod cursor;
pub mod find_and_modify;
mod group_commit;
mod indexes;
mod point_reads;
mod update_spec;

/// Bytes of encoded operations per signed batch: well under the protocol's
/// message limit, and small enough that one batch commits in milliseconds.
const BATCH_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Documents asked for per page of a find.
const FIND_PAGE_DOCS: u32 = 1000;
/// Attempts when another writer advanced the dataset's sequence meanwhile.
const SEQ_RETRIES_MAX: usize = 5;
/// Attempts when another writer changed the dataset's indexes meanwhile.
const SCHEMA_RETRIES_MAX: usize = 3;

/// One attempt of an operation [`Client::with_fresh_schema`] may repeat.
type Attempt<'a, R> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<R, ClientError>> + Send + 'a>>;

/// What `find` takes, as MongoDB's find command does.
#[derive(Debug, Clone, Default)]
pub struct FindOptions {
    pub filter: Document,
    pub sort: Option<Document>,
    pub skip: u64,
    /// 0 means no limit; a negative limit is taken as its absolute value.
    pub limit: i64,
    pub projection: Option<Document>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InsertResult {
    pub inserted_ids: Vec<Bson>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpdateResult {
    pub matched: u64,
    pub modified: u64,
    pub upserted_id: Option<Bson>,
}

/// A dataset as listed to its owner.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetView {
    pub name: String,
    pub indexes: Vec<IndexSpec>,
    /// Indexes declared but not yet built over every document (a build
    /// that was interrupted; `create_indexes` finishes it).
    pub building: Vec<IndexSpec>,
    pub doc_count: u64,
    pub seq: u64,
    pub state_root: String,
}

/// One decrypted document and where it lives.
struct Matched {
    doc_id: DocId,
    version: u64,
    doc: Document,
}

struct DatasetState {
    dataset: Dataset,
    /// Sequence number of the last write this client knows applied; the
    /// lock also serialises this gateway's writes to the dataset.
    last_seq: Mutex<u64>,
    /// Inserts waiting to be sent together (see `group_commit`).
    inserts: group_commit::InsertQueue,
}

pub struct Client<T: Transport> {
    master: MasterKey,
    signer: SigningKey,
    owner: PublicKey,
    /// Every node this client reads from; writes, dataset information and
    /// listings go to the first. In the open network (`network`), the
    /// nodes it enters through: the first looks routes up, listings ask
    /// them all, and each dataset's reads and writes go to its route.
    members: Vec<Member<T>>,
    /// Placement and routing in the open network; `None`: every dataset
    /// lives on `members`.
    network: Option<crate::network::Network<T>>,
    reads: ReadConfig,
    /// State roots whose finalization certificates were checked.
    roots: proven::RootCache,
    datasets: Mutex<HashMap<String, Arc<DatasetState>>>,
    point_reads: point_reads::PointReads,
}

impl<T: Transport> Client<T> {
    /// A client of one node whose key it does not know: every read at
    /// r = 1 from that node (its signatures are checked for form only).
    pub fn new(master: MasterKey, transport: T) -> Self {
        Self::with_members(
            master,
            vec![Member::new(None, "node", transport)],
            ReadConfig::default(),
        )
        .expect("one node at read quorum 1 is a valid configuration")
    }

    /// A client of the cluster `members` (or of one node with a known
    /// key), reading with `reads` unless a request says otherwise. Fails
    /// on a read quorum above the member count, a member without a key in
    /// a cluster, or a member listed twice.
    pub fn with_members(
        master: MasterKey,
        members: Vec<Member<T>>,
        reads: ReadConfig,
    ) -> Result<Self, ClientError> {
        check_members(&members)?;
        reads.quorum.resolve(members.len())?;
        let signer = master.owner_signing_key();
        let owner = PublicKey(master.owner_public_key());
        Ok(Client {
            master,
            signer,
            owner,
            members,
            network: None,
            reads,
            roots: proven::RootCache::default(),
            datasets: Mutex::new(HashMap::new()),
            point_reads: point_reads::PointReads::default(),
        })
    }

    /// A client of the open network entered through `entry` (one node,
    /// or several: listings ask them all): new datasets are placed on the
    /// `network.cluster_size` closest nodes that accept them, and each
    /// dataset is read and written through its cluster, found through
    /// the DHT. Fails on a cluster size that is not 3f + 1 or a read
    /// quorum above it.
    pub fn in_network(
        master: MasterKey,
        entry: Vec<Member<T>>,
        reads: ReadConfig,
        network: crate::network::NetworkConfig<T>,
    ) -> Result<Self, ClientError> {
        check_members(&entry)?;
        reads.quorum.resolve(network.cluster_size)?;
        let entry_addr = entry[0].key.map(|key| (key, entry[0].label.clone()));
        let network = crate::network::Network::new(network, entry_addr)?;
        let mut client = Self::with_members(master, entry, ReadConfig::default())?;
        client.reads = reads;
        client.network = Some(network);
        Ok(client)
    }

    pub fn owner(&self) -> PublicKey {
        self.owner
    }

    /// The members of `dataset`'s cluster as this client reaches them
    /// (the cached or looked-up route), in the open network.
    pub async fn route_keys(
        &self,
        dataset: fluence_proto::DatasetId,
    ) -> Result<Option<Vec<PublicKey>>, ClientError> {
        match &self.network {
            Some(network) => Ok(Some(
                network
                    .route(&self.members[0].transport, dataset)
                    .await?
                    .keys
                    .clone(),
            )),
            None => Ok(None),
        }
    }

    /// The nodes this client reads from.
    pub fn members(&self) -> &[Member<T>] {
        &self.members
    }

    /// The read defaults.
    pub fn read_config(&self) -> ReadConfig {
        self.reads
    }

    /// One request to the first member (writes, dataset information),
    /// or in the open network to the cluster of the dataset it is about.
    async fn call(&self, request: &Request) -> Result<Response, ClientError> {
        if let (Some(network), Some(dataset)) = (&self.network, dataset_of(request)) {
            return self.routed_call(network, dataset, request).await;
        }
        match self.members[0].transport.call(request).await? {
            Response::Error(error) => Err(ClientError::Node(error)),
            response => Ok(response),
        }
    }

    /// `request` to the members of `dataset`'s route, first to answer
    /// wins; a member that does not serve the dataset, or none
    /// answering, refreshes the route once.
    async fn routed_call(
        &self,
        network: &crate::network::Network<T>,
        dataset: fluence_proto::DatasetId,
        request: &Request,
    ) -> Result<Response, ClientError> {
        let mut last = ClientError::Unavailable("no member of the cluster answered".into());
        for _attempt in 0..2 {
            let route = network.route(&self.members[0].transport, dataset).await?;
            let mut failed = Vec::new();
            let mut stale = false;
            for member in &route.members {
                match member.transport.call(request).await {
                    Ok(Response::Error(NodeError::DatasetNotFound)) => {
                        stale = true;
                        last = ClientError::Node(NodeError::DatasetNotFound);
                        failed.extend(member.key);
                    }
                    Ok(Response::Error(error)) => return Err(ClientError::Node(error)),
                    Ok(response) => return Ok(response),
                    Err(error @ ClientError::Unavailable(_)) => {
                        last = error;
                        failed.extend(member.key);
                    }
                    Err(error) => return Err(error),
                }
                if stale {
                    break;
                }
            }
            network.forget(&dataset, &failed).await;
        }
        Err(last)
    }

    /// `read` with the members reads of `dataset` go to: its route in the
    /// open network (`None` for a fixed cluster). A route whose member no
    /// longer serves the dataset (it left, or was replaced) is looked up
    /// again once.
    async fn with_route<R, F, Fut>(
        &self,
        dataset: fluence_proto::DatasetId,
        read: F,
    ) -> Result<R, ClientError>
    where
        F: Fn(Option<Arc<crate::network::Route<T>>>) -> Fut,
        Fut: std::future::Future<Output = Result<R, ClientError>>,
    {
        let Some(network) = &self.network else {
            return read(None).await;
        };
        let route = network.route(&self.members[0].transport, dataset).await?;
        match read(Some(route)).await {
            Err(ClientError::Node(NodeError::DatasetNotFound)) => {
                network.forget(&dataset, &[]).await;
                let route = network.route(&self.members[0].transport, dataset).await?;
                read(Some(route)).await
            }
            answer => answer,
        }
    }

    /// The read choices of the running request (see [`ReadOptions`]).
    pub(crate) fn read_choice(&self, options: ReadOptions) -> Result<ReadChoice, ClientError> {
        if let Some(network) = &self.network {
            return ReadChoice::resolve(options, &self.reads, network.cluster_size, true);
        }
        let keys_known = self.members.iter().all(|m| m.key.is_some());
        ReadChoice::resolve(options, &self.reads, self.members.len(), keys_known)
    }

    /// One page of `query`, agreed on by `choice.quorum` members, at
    /// `pin` (or at whatever state they settle on).
    pub(crate) async fn read_page(
        &self,
        query: &fluence_proto::FindQuery,
        pin: Option<fluence_proto::StatePin>,
        choice: ReadChoice,
    ) -> Result<quorum::Agreed, ClientError> {
        self.with_route(query.dataset, |route| async move {
            match route {
                Some(route) => quorum::read(&route.members, choice.quorum, query, pin).await,
                None => quorum::read(&self.members, choice.quorum, query, pin).await,
            }
        })
        .await
    }

    /// A lookup of `ids` (at most `point_reads::BATCH_IDS_MAX`) sharing
    /// requests with concurrent lookups of the same dataset and choice;
    /// verified as `choice` says before it is shared out.
    pub(crate) async fn point_read(
        &self,
        dataset: fluence_proto::DatasetId,
        schema: fluence_proto::Hash32,
        ids: Vec<DocId>,
        choice: ReadChoice,
    ) -> Result<(Vec<DocEntry>, Option<DocId>), ClientError> {
        let read = point_reads::PointRead::new(dataset, schema, ids, choice);
        let send = |request: Request| async move { self.verified_lookup(request, choice).await };
        match self.point_reads.read(read, send).await? {
            Response::Page { docs, next } => Ok((docs, next)),
            Response::Error(error) => Err(ClientError::Node(error)),
            other => Err(unexpected(&other)),
        }
    }

    /// One (possibly shared) lookup by ids, verified, as an unsigned page
    /// the lookups sharing it split; node refusals stay answers so every
    /// lookup they answer gets them.
    async fn verified_lookup(
        &self,
        request: Request,
        choice: ReadChoice,
    ) -> Result<Response, ClientError> {
        let Request::Find {
            dataset,
            schema,
            plan: Plan::Ids(mut ids),
            after,
            page_docs_max,
        } = request
        else {
            return Err(ClientError::Internal(
                "a point read is a lookup by ids".into(),
            ));
        };
        let answer = if choice.proof {
            ids.sort_unstable();
            ids.dedup();
            let ids = &ids;
            self.with_route(dataset, |route| async move {
                match route {
                    Some(route) => {
                        proven::read(&route.members, &route.epochs, &self.roots, dataset, ids).await
                    }
                    None => proven::read(&self.members, &[], &self.roots, dataset, ids).await,
                }
            })
            .await
            .map(|docs| Response::Page { docs, next: None })
        } else {
            let query = fluence_proto::FindQuery {
                dataset,
                schema,
                plan: Plan::Ids(ids),
                after,
                page_docs_max,
            };
            self.read_page(&query, None, choice)
                .await
                .map(|agreed| Response::Page {
                    docs: agreed.docs,
                    next: agreed.next,
                })
        };
        match answer {
            Err(ClientError::Node(error)) => Ok(Response::Error(error)),
            answer => answer,
        }
    }

    fn sign(&self, body: WriteBody) -> SignedWrite {
        let signature = Signature(self.signer.sign(WRITE_SIGNING_DOMAIN, &body.digest()));
        SignedWrite { body, signature }
    }

    pub async fn create_dataset(
        &self,
        name: &str,
        indexes: Vec<IndexSpec>,
    ) -> Result<DatasetView, ClientError> {
        let descriptor = Descriptor::new(name, indexes)?;
        let dataset = Dataset::new(&self.master, descriptor.clone());
        let sealed = self
            .master
            .catalog_key()
            .seal_descriptor(&dataset.id.0, &descriptor.to_bytes());
        let cluster = match &self.network {
            Some(network) => Some(self.place(network, dataset.id).await?),
            // A fixed cluster: every configured member serves the dataset.
            None if self.members.len() > 1 => Some(self.place_on_members(dataset.id).await?),
            None => None,
        };
        let write = self.sign(WriteBody {
            dataset: dataset.id,
            seq: 0,
            action: Action::Create {
                owner: self.owner,
                name_tag: dataset.name_tag,
                descriptor: sealed,
                indexes: dataset.index_decls(),
                cluster,
            },
        });
        let created = match &self.network {
            Some(network) => self.submit_create(network, &write).await,
            None if self.members.len() > 1 => {
                let transports: Vec<&T> = self.members.iter().map(|m| &m.transport).collect();
                first_written(&transports, &write).await
            }
            None => self.call(&Request::Write(write)).await,
        };
        match created {
            Ok(Response::Written { seq, state_root }) => {
                self.datasets.lock().await.insert(
                    name.to_string(),
                    Arc::new(DatasetState {
                        dataset,
                        last_seq: Mutex::new(seq),
                        inserts: Default::default(),
                    }),
                );
                Ok(DatasetView {
                    name: name.to_string(),
                    indexes: descriptor.indexes,
                    building: descriptor.pending,
                    doc_count: 0,
                    seq,
                    state_root: state_root.to_hex(),
                })
            }
            Ok(other) => Err(unexpected(&other)),
            Err(ClientError::Node(NodeError::DatasetExists)) => {
                Err(ClientError::DatasetExists(name.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// Placement: the genesis membership of a new dataset, from the k
    /// closest nodes to its id that accept it (see [`crate::network`]).
    async fn place(
        &self,
        network: &crate::network::Network<T>,
        dataset: fluence_proto::DatasetId,
    ) -> Result<fluence_proto::ClusterGenesis, ClientError> {
        let entry = &self.members[0].transport;
        let closest = crate::network::closest(
            entry,
            fluence_proto::ops::DhtTarget::Dataset(dataset),
            fluence_proto::ops::CLOSEST_PEERS_MAX,
        )
        .await?;
        let mut addrs: HashMap<PublicKey, Vec<String>> = HashMap::new();
        for peer in &closest {
            if let Some(key) = crate::network::key_of(&peer.peer) {
                addrs.insert(key, peer.addrs.clone());
            }
        }
        let candidates: Vec<PublicKey> = addrs.keys().copied().collect();
        let ask = |key: PublicKey, members: Vec<PublicKey>| {
            let known = addrs.get(&key).cloned().unwrap_or_default();
            async move {
                let connection = match network.connect(key, known).await {
                    Ok(connection) => connection,
                    // The entry node reports itself without addresses.
                    Err(_) if self.members[0].key == Some(key) => {
                        return self
                            .offer(&self.members[0].transport, dataset, members)
                            .await
                    }
                    Err(error) => return Err(error.to_string()),
                };
                self.offer(&*connection, dataset, members).await
            }
        };
        let seats =
            crate::network::gather_acceptances(&dataset, network.cluster_size, &candidates, ask)
                .await
                .map_err(|e| ClientError::Unavailable(format!("cannot place the dataset: {e}")))?;
        checked_genesis(&dataset, seats)
    }

    /// The genesis membership of a new dataset on a fixed cluster: every
    /// configured member (n = 3f + 1 of them), each asked to accept.
    async fn place_on_members(
        &self,
        dataset: fluence_proto::DatasetId,
    ) -> Result<fluence_proto::ClusterGenesis, ClientError> {
        let keys: Vec<PublicKey> = self.members.iter().filter_map(|m| m.key).collect();
        let ask = |key: PublicKey, members: Vec<PublicKey>| async move {
            match self.members.iter().find(|m| m.key == Some(key)) {
                Some(member) => self.offer(&member.transport, dataset, members).await,
                None => Err("not a configured member".to_string()),
            }
        };
        let seats = crate::network::gather_acceptances(&dataset, keys.len(), &keys, ask)
            .await
            .map_err(|e| ClientError::Unavailable(format!("cannot place the dataset: {e}")))?;
        checked_genesis(&dataset, seats)
    }

    /// One offer, its answer or why there is none.
    async fn offer<N: Transport>(
        &self,
        node: &N,
        dataset: fluence_proto::DatasetId,
        members: Vec<PublicKey>,
    ) -> Result<fluence_proto::OfferAnswer, String> {
        let request = Request::Offer {
            dataset,
            epoch: fluence_proto::cluster::GENESIS_EPOCH,
            members,
        };
        match node.call(&request).await {
            Ok(Response::Offer(answer)) => Ok(answer),
            Ok(Response::Error(error)) => Err(error.to_string()),
            Ok(other) => Err(format!("answered an offer with {other:?}")),
            Err(error) => Err(error.to_string()),
        }
    }

    /// Sends a new dataset's `Create` to every member of its cluster
    /// (each keeps the membership and starts its replica), remembers the
    /// route, and answers with the first member's acknowledgement.
    async fn submit_create(
        &self,
        network: &crate::network::Network<T>,
        write: &SignedWrite,
    ) -> Result<Response, ClientError> {
        let Action::Create {
            cluster: Some(genesis),
            ..
        } = &write.body.action
        else {
            return Err(ClientError::Internal(
                "a placed Create names its cluster".into(),
            ));
        };
        let dataset = write.body.dataset;
        let route = network
            .connect_route(&self.members[0].transport, genesis.keys(), HashMap::new())
            .await?;
        let transports: Vec<&Arc<T>> = route.members.iter().map(|m| &m.transport).collect();
        let answer = first_written(&transports, write).await;
        network.remember(dataset, Arc::new(route));
        answer
    }

    /// Looks a dataset up by name (cached after the first time).
    async fn dataset(&self, name: &str) -> Result<Arc<DatasetState>, ClientError> {
        crate::descriptor::validate_name(name)?;
        if let Some(state) = self.datasets.lock().await.get(name) {
            return Ok(Arc::clone(state));
        }
        let name_tag = self.master.catalog_key().name_tag(name);
        let id =
            fluence_proto::DatasetId(fluence_crypto::keys::dataset_id(&self.owner.0, &name_tag));
        let info = match self.call(&Request::DatasetInfo { dataset: id }).await {
            Ok(Response::Info(info)) => info,
            Ok(other) => return Err(unexpected(&other)),
            Err(ClientError::Node(NodeError::DatasetNotFound)) => {
                return Err(ClientError::DatasetNotFound(name.to_string()))
            }
            Err(e) => return Err(e),
        };
        let descriptor = self.open_descriptor(&info.dataset, &info.descriptor)?;
        if descriptor.name != name {
            return Err(ClientError::Integrity(format!(
                "node returned the descriptor of another dataset for {name:?}"
            )));
        }
        let dataset = Dataset::new(&self.master, descriptor);
        if dataset.index_decls() != info.indexes {
            return Err(ClientError::Integrity(format!(
                "node's index declarations for {name:?} do not match the signed descriptor"
            )));
        }
        let state = Arc::new(DatasetState {
            dataset,
            last_seq: Mutex::new(info.seq),
            inserts: Default::default(),
        });
        self.datasets
            .lock()
            .await
            .insert(name.to_string(), Arc::clone(&state));
        Ok(state)
    }

    fn open_descriptor(
        &self,
        id: &fluence_proto::DatasetId,
        sealed: &[u8],
    ) -> Result<Descriptor, ClientError> {
        let plaintext = self
            .master
            .catalog_key()
            .open_descriptor(&id.0, sealed)
            .map_err(|_| {
                ClientError::Integrity(format!("descriptor of dataset {id} failed authentication"))
            })?;
        Descriptor::from_bytes(&plaintext)
    }

    pub async fn list_datasets(&self) -> Result<Vec<DatasetView>, ClientError> {
        let summaries = match &self.network {
            None => match self
                .call(&Request::ListDatasets { owner: self.owner })
                .await?
            {
                Response::Datasets(list) => list,
                other => return Err(unexpected(&other)),
            },
            // Each node lists the datasets it serves: ask every entry node.
            Some(_) => self.list_everywhere().await?,
        };
        let mut views = Vec::with_capacity(summaries.len());
        for summary in summaries {
            let descriptor = self.open_descriptor(&summary.dataset, &summary.descriptor)?;
            views.push(self.describe(&descriptor.name).await?);
        }
        views.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(views)
    }

    /// The owner's datasets served by any of the entry nodes (each once).
    async fn list_everywhere(&self) -> Result<Vec<fluence_proto::DatasetSummary>, ClientError> {
        let request = Request::ListDatasets { owner: self.owner };
        let mut seen = std::collections::BTreeMap::new();
        let mut answered = false;
        let mut last = None;
        for member in &self.members {
            match member.transport.call(&request).await {
                Ok(Response::Datasets(list)) => {
                    answered = true;
                    for summary in list {
                        seen.entry(summary.dataset).or_insert(summary);
                    }
                }
                Ok(Response::Error(error)) => last = Some(ClientError::Node(error)),
                Ok(other) => last = Some(unexpected(&other)),
                Err(error) => last = Some(error),
            }
        }
        match (answered, last) {
            (false, Some(error)) => Err(error),
            _ => Ok(seen.into_values().collect()),
        }
    }

    /// Name, indexes and the node's current counters for one dataset.
    pub async fn describe(&self, name: &str) -> Result<DatasetView, ClientError> {
        let state = self.dataset(name).await?;
        match self
            .call(&Request::DatasetInfo {
                dataset: state.dataset.id,
            })
            .await?
        {
            Response::Info(info) => Ok(DatasetView {
                name: name.to_string(),
                indexes: state.dataset.descriptor.indexes.clone(),
                building: state.dataset.descriptor.pending.clone(),
                doc_count: info.doc_count,
                seq: info.seq,
                state_root: info.state_root.to_hex(),
            }),
            other => Err(unexpected(&other)),
        }
    }

    pub async fn drop_dataset(&self, name: &str) -> Result<(), ClientError> {
        let state = self.dataset(name).await?;
        let mut last_seq = state.last_seq.lock().await;
        self.submit(&state, &mut last_seq, Action::Drop).await?;
        self.datasets.lock().await.remove(name);
        Ok(())
    }

    /// Signs `action` with the next sequence number and submits it,
    /// following the node's sequence if another writer got there first.
    async fn submit(
        &self,
        state: &DatasetState,
        last_seq: &mut u64,
        action: Action,
    ) -> Result<(), ClientError> {
        self.submit_keeping(state, last_seq, action).await.0
    }

    /// [`Client::submit`], handing the action back: a refused batch is
    /// resubmitted in part, and a batch runs to megabytes, so it is moved
    /// rather than copied for each attempt.
    async fn submit_keeping(
        &self,
        state: &DatasetState,
        last_seq: &mut u64,
        action: Action,
    ) -> (Result<(), ClientError>, Action) {
        let mut write = self.sign(WriteBody {
            dataset: state.dataset.id,
            seq: *last_seq + 1,
            action,
        });
        for _ in 0..SEQ_RETRIES_MAX {
            let request = Request::Write(write);
            let result = self.call(&request).await;
            let Request::Write(sent) = request else {
                unreachable_request()
            };
            write = sent;
            let outcome = match result {
                Ok(Response::Written { seq, .. }) => {
                    *last_seq = seq;
                    Ok(())
                }
                Ok(other) => Err(unexpected(&other)),
                Err(ClientError::Node(NodeError::SeqMismatch { expected })) if expected > 0 => {
                    *last_seq = expected - 1;
                    write.body.seq = expected;
                    write.signature =
                        Signature(self.signer.sign(WRITE_SIGNING_DOMAIN, &write.body.digest()));
                    continue;
                }
                Err(ClientError::Node(NodeError::DatasetNotFound)) => {
                    self.datasets.lock().await.remove(state.dataset.name());
                    Err(ClientError::DatasetNotFound(
                        state.dataset.name().to_string(),
                    ))
                }
                Err(e) => Err(e),
            };
            return (outcome, write.body.action);
        }
        let error = ClientError::Conflict(format!(
            "dataset {:?} kept changing under concurrent writers",
            state.dataset.name()
        ));
        (Err(error), write.body.action)
    }

    /// Submits document operations in batches bounded by size. When the
    /// node refuses one operation (a failed precondition, a unique index),
    /// the batch is atomic on the node, so the operations before the
    /// failing one are resubmitted and the failure is returned with how
    /// many operations were applied in total.
    async fn submit_ops(
        &self,
        state: &DatasetState,
        last_seq: &mut u64,
        ops: Vec<DocOp>,
    ) -> Result<u64, (u64, ClientError)> {
        let schema = state.dataset.schema();
        let mut applied = 0u64;
        for batch in batches(ops) {
            let len = batch.len() as u64;
            let action = Action::Batch { schema, ops: batch };
            let (error, batch) = match self.submit_keeping(state, last_seq, action).await {
                (Ok(()), _) => {
                    applied += len;
                    continue;
                }
                (Err(ClientError::Node(error)), Action::Batch { ops, .. })
                    if refused_op(&error).is_some() =>
                {
                    (error, ops)
                }
                (Err(e), _) => return Err((applied, e)),
            };
            let op_index = refused_op(&error).unwrap_or_default() as usize;
            if op_index > batch.len() {
                return Err((
                    applied,
                    ClientError::Integrity("node blamed an operation that was not sent".into()),
                ));
            }
            let mut prefix = batch;
            prefix.truncate(op_index);
            if !prefix.is_empty() {
                let len = prefix.len() as u64;
                let action = Action::Batch {
                    schema,
                    ops: prefix,
                };
                self.submit(state, last_seq, action)
                    .await
                    .map_err(|e| (applied, e))?;
                applied += len;
            }
            return Err((applied, ClientError::Node(error)));
        }
        Ok(applied)
    }

    /// Forgets the cached keys and indexes of dataset `name`, so the next
    /// operation reloads them from the node.
    pub(crate) async fn forget(&self, name: &str) {
        self.datasets.lock().await.remove(name);
    }

    /// Runs `attempt` on the dataset, again on a freshly loaded one when
    /// the node refused a batch because another writer changed the
    /// dataset's indexes (see [`Action::Batch`]). `attempt` must return
    /// `StaleSchema` only if it applied nothing (see [`settle`]).
    async fn with_fresh_schema<'a, R>(
        &'a self,
        name: &str,
        mut attempt: impl FnMut(Arc<DatasetState>) -> Attempt<'a, R>,
    ) -> Result<R, ClientError> {
        for _ in 0..SCHEMA_RETRIES_MAX {
            let state = self.dataset(name).await?;
            match attempt(state).await {
                Err(ClientError::Node(NodeError::StaleSchema)) => self.forget(name).await,
                result => return result,
            }
        }
        Err(ClientError::Conflict(format!(
            "the indexes of dataset {name:?} kept changing under this write"
        )))
    }

    /// Inserts documents in order; `_id` is generated when absent. Stops at
    /// the first duplicate `_id` or unique-index value, keeping the
    /// documents before it, as MongoDB's ordered insert does.
    pub async fn insert(
        &self,
        name: &str,
        docs: Vec<Document>,
    ) -> Result<InsertResult, ClientError> {
        let mut remaining = docs;
        let mut inserted_ids: Option<Vec<Bson>> = None;
        let mut inserted = 0u64;
        for _ in 0..SCHEMA_RETRIES_MAX {
            let state = self.dataset(name).await?;
            let (ops, docs): (Vec<DocOp>, Vec<Document>) =
                insert_ops(&state, remaining).await?.into_iter().unzip();
            // `_id`s are given on the first pass and kept by the documents.
            let ids = inserted_ids.get_or_insert_with(|| {
                docs.iter()
                    .map(|d| d.get("_id").cloned().unwrap_or(Bson::Null))
                    .collect()
            });
            let (applied, error) = match self.submit_inserts(&state, ops).await {
                Ok(_) => {
                    return Ok(InsertResult {
                        inserted_ids: std::mem::take(ids),
                    })
                }
                Err(failure) => failure,
            };
            inserted += applied;
            match error {
                ClientError::Node(NodeError::StaleSchema) => {
                    remaining = docs.into_iter().skip(applied as usize).collect();
                    self.forget(name).await;
                }
                ClientError::Node(NodeError::Precondition { .. }) => {
                    let id = ids.get(inserted as usize).map(display_id);
                    return Err(ClientError::DuplicateKey {
                        id: id.unwrap_or_default(),
                        inserted,
                    });
                }
                error => return Err(unique_violation(&state.dataset, error, inserted)),
            }
        }
        Err(ClientError::Conflict(format!(
            "the indexes of dataset {name:?} kept changing under this insert ({inserted} documents inserted)"
        )))
    }

    fn plan(
        &self,
        dataset: &Dataset,
        filter_doc: &Document,
        filter: &Filter,
    ) -> Result<Plan, ClientError> {
        let indexed = dataset.lower(&query::plan(filter, &dataset.planner_indexes())?);
        Ok(match id_lookup(dataset, filter_doc) {
            Some(ids) if indexed == Plan::All => ids,
            Some(ids) => Plan::And(vec![ids, indexed]),
            None => indexed,
        })
    }

    /// Every document matching `filter`, decrypted and verified; stops
    /// early once `enough` documents matched.
    async fn matching(
        &self,
        state: &Arc<DatasetState>,
        filter_doc: &Document,
        enough: Option<usize>,
    ) -> Result<Vec<Matched>, ClientError> {
        let mut reader = cursor::PageReader::new(self, state, filter_doc)?;
        let mut matched = Vec::new();
        while let Some(page) = reader
            .next(self, enough.map(|n| n.saturating_sub(matched.len())))
            .await?
        {
            matched.extend(page);
            if enough.is_some_and(|n| matched.len() >= n) {
                break;
            }
        }
        Ok(matched)
    }

    pub async fn find(
        &self,
        name: &str,
        options: FindOptions,
    ) -> Result<Vec<Document>, ClientError> {
        let sort = options.sort.as_ref().map(SortSpec::parse).transpose()?;
        let projection = options
            .projection
            .as_ref()
            .map(Projection::parse)
            .transpose()?;
        let limit = options.limit.unsigned_abs();
        let skip = options.skip;
        // Without a sort, the first skip + limit matches are the answer.
        let enough = match (&sort, limit) {
            (None, l) if l > 0 => usize::try_from(skip.saturating_add(l)).ok(),
            _ => None,
        };
        let matched = self
            .with_fresh_schema(name, |state| {
                let filter = &options.filter;
                Box::pin(async move { self.matching(&state, filter, enough).await })
            })
            .await?;
        let mut docs: Vec<Document> = matched.into_iter().map(|m| m.doc).collect();
        if let Some(sort) = &sort {
            sort.sort(&mut docs)?;
        }
        let docs = docs
            .into_iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .take(if limit == 0 {
                usize::MAX
            } else {
                usize::try_from(limit).unwrap_or(usize::MAX)
            });
        Ok(match &projection {
            Some(projection) => docs.map(|d| projection.apply(&d)).collect(),
            None => docs.collect(),
        })
    }

    pub async fn count(&self, name: &str, filter: &Document) -> Result<u64, ClientError> {
        self.with_fresh_schema(name, |state| {
            Box::pin(async move { Ok(self.matching(&state, filter, None).await?.len() as u64) })
        })
        .await
    }

    /// Applies `update` to the first (or, with `multi`, every) matching
    /// document; with `upsert` and no match, inserts one built from the
    /// filter's equalities, as MongoDB does.
    pub async fn update(
        &self,
        name: &str,
        filter: &Document,
        update: &Document,
        multi: bool,
        upsert: bool,
    ) -> Result<UpdateResult, ClientError> {
        let update = UpdateSpec::from(Update::parse(update)?);
        self.update_spec(name, filter, &update, multi, upsert).await
    }

    async fn update_once(
        &self,
        state: &Arc<DatasetState>,
        filter: &Document,
        update: &UpdateSpec,
        multi: bool,
        upsert: bool,
    ) -> Result<UpdateResult, ClientError> {
        // Holding the write lock across read-modify-write makes this
        // gateway's updates serialisable; version preconditions protect
        // against any other writer.
        let mut last_seq = state.last_seq.lock().await;
        let matched = self
            .matching(state, filter, if multi { None } else { Some(1) })
            .await?;
        if matched.is_empty() {
            if !upsert {
                return Ok(UpdateResult::default());
            }
            let doc = with_id(update.apply_upsert(filter)?)?;
            let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
            let op = state.dataset.put_op(&doc, 1, Precondition::Absent)?;
            self.submit_ops(state, &mut last_seq, vec![op])
                .await
                .map_err(|(applied, e)| {
                    settle(&state.dataset, conflict_to_duplicate(e, &id), applied)
                })?;
            return Ok(UpdateResult {
                matched: 0,
                modified: 0,
                upserted_id: Some(id),
            });
        }
        let mut ops = Vec::new();
        for m in &matched {
            let mut doc = m.doc.clone();
            if !update.apply(&mut doc)? {
                continue;
            }
            if doc.get("_id") != m.doc.get("_id") {
                return Err(ClientError::InvalidRequest(
                    "Performing an update on the path '_id' would modify the immutable field '_id'"
                        .into(),
                ));
            }
            debug_assert_eq!(
                state.dataset.doc_id(doc.get("_id").unwrap_or(&Bson::Null)),
                m.doc_id
            );
            ops.push(state.dataset.put_op(
                &doc,
                m.version + 1,
                Precondition::Version(m.version),
            )?);
        }
        let modified = ops.len() as u64;
        self.submit_ops(state, &mut last_seq, ops)
            .await
            .map_err(|(applied, e)| settle(&state.dataset, e, applied))?;
        Ok(UpdateResult {
            matched: matched.len() as u64,
            modified,
            upserted_id: None,
        })
    }

    /// Deletes the first (or, with `multi`, every) matching document.
    pub async fn delete(
        &self,
        name: &str,
        filter: &Document,
        multi: bool,
    ) -> Result<u64, ClientError> {
        self.with_fresh_schema(name, |state| {
            Box::pin(async move {
                let mut last_seq = state.last_seq.lock().await;
                let matched = self
                    .matching(&state, filter, if multi { None } else { Some(1) })
                    .await?;
                let ops: Vec<DocOp> = matched
                    .iter()
                    .map(|m| DocOp::Delete {
                        doc: m.doc_id,
                        expect_version: m.version,
                    })
                    .collect();
                let deleted = ops.len() as u64;
                self.submit_ops(&state, &mut last_seq, ops)
                    .await
                    .map_err(|(applied, e)| settle(&state.dataset, e, applied))?;
                Ok(deleted)
            })
        })
        .await
    }
}

/// The operation a node refused within a batch, if the error names one.
fn refused_op(error: &NodeError) -> Option<u32> {
    match error {
        NodeError::Precondition { op_index, .. } | NodeError::UniqueViolation { op_index, .. } => {
            Some(*op_index)
        }
        _ => None,
    }
}

/// A unique-index refusal as the application sees it, naming the field.
fn unique_violation(dataset: &Dataset, error: ClientError, inserted: u64) -> ClientError {
    match error {
        ClientError::Node(NodeError::UniqueViolation { index, .. }) => {
            ClientError::UniqueViolation {
                path: dataset
                    .index_path(&index)
                    .map_or_else(|| index.to_string(), str::to_string),
                inserted,
            }
        }
        other => other,
    }
}

/// The error of a write that stopped after `applied` operations. A stale
/// schema is retried by [`Client::with_fresh_schema`] only when nothing
/// was applied; after a partial write, retrying could apply an update
/// twice, so it is a conflict for the application to resolve.
fn settle(dataset: &Dataset, error: ClientError, applied: u64) -> ClientError {
    match error {
        ClientError::Node(NodeError::StaleSchema) if applied > 0 => ClientError::Conflict(format!(
            "the indexes of dataset {:?} changed after {applied} operations of this write were applied; the rest were not",
            dataset.name()
        )),
        error => unique_violation(dataset, error, applied),
    }
}

/// Items below which working on one thread is cheaper than handing work to
/// others. A document costs a few microseconds to seal or open; measured on
/// the 2-core reference machine, a 100-document answer was slower in
/// parallel (2.26 ms p50) than on one thread (2.07 ms).
const PARALLEL_ITEMS_MIN: usize = 256;

/// Maps `work` over `items` on every core, in contiguous chunks, keeping
/// order. Sealing, opening and evaluating documents are independent per
/// document and CPU-bound, so large inserts and pages use both cores of a
/// small machine instead of one.
async fn parallel_map<T, R>(
    items: Vec<T>,
    work: impl Fn(T) -> Result<R, ClientError> + Send + Sync + 'static,
) -> Result<Vec<R>, ClientError>
where
    T: Send + 'static,
    R: Send + 'static,
{
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if items.len() < PARALLEL_ITEMS_MIN || threads == 1 {
        return items.into_iter().map(work).collect();
    }
    let work = Arc::new(work);
    let chunk_len = items.len().div_ceil(threads);
    let mut items = items.into_iter();
    let mut tasks = Vec::with_capacity(threads);
    loop {
        let chunk: Vec<T> = items.by_ref().take(chunk_len).collect();
        if chunk.is_empty() {
            break;
        }
        let work = Arc::clone(&work);
        tasks.push(tokio::task::spawn_blocking(move || {
            chunk
                .into_iter()
                .map(|item| work(item))
                .collect::<Result<Vec<R>, ClientError>>()
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        let chunk = task
            .await
            .map_err(|e| ClientError::Internal(format!("worker task failed: {e}")))??;
        out.extend(chunk);
    }
    Ok(out)
}

/// The insert operation of each document, in order, with the document as
/// inserted (given an `_id` if it had none).
async fn insert_ops(
    state: &Arc<DatasetState>,
    docs: Vec<Document>,
) -> Result<Vec<(DocOp, Document)>, ClientError> {
    let state = Arc::clone(state);
    parallel_map(docs, move |doc| {
        query::limits::check_depth(&doc)?;
        let doc = with_id(doc)?;
        let op = state.dataset.put_op(&doc, 1, Precondition::Absent)?;
        Ok((op, doc))
    })
    .await
}

/// `submit_keeping` builds its request as a write two lines above.
fn unreachable_request() -> ! {
    unreachable!("a write request is still a write request")
}

/// The genesis membership of `seats` (gathered acceptances), checked:
/// a node that signed something else is caught before the owner signs.
fn checked_genesis(
    dataset: &fluence_proto::DatasetId,
    seats: Vec<fluence_proto::Seat>,
) -> Result<fluence_proto::ClusterGenesis, ClientError> {
    let genesis = fluence_proto::ClusterGenesis {
        epoch: fluence_proto::cluster::GENESIS_EPOCH,
        members: seats,
    };
    fluence_chain::verify_genesis(dataset, &genesis)
        .map_err(|e| ClientError::Integrity(format!("a node signed an invalid acceptance: {e}")))?;
    Ok(genesis)
}

/// Sends a `Create` to every member at once (each keeps the membership
/// and starts its replica) and answers with the first acknowledgement,
/// or the first refusal if none acknowledges.
async fn first_written<N: Transport>(
    members: &[&N],
    write: &SignedWrite,
) -> Result<Response, ClientError> {
    let request = Request::Write(write.clone());
    let answers =
        futures::future::join_all(members.iter().map(|member| member.call(&request))).await;
    let mut first_error = None;
    for answer in answers {
        match answer {
            Ok(Response::Error(error)) => {
                first_error.get_or_insert(ClientError::Node(error));
            }
            Ok(response) => return Ok(response),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| ClientError::Unavailable("no member answered".into())))
}

/// The dataset a request is about, if it is about one.
fn dataset_of(request: &Request) -> Option<fluence_proto::DatasetId> {
    match request {
        Request::Write(write) => Some(write.body.dataset),
        Request::DatasetInfo { dataset }
        | Request::Find { dataset, .. }
        | Request::ProveIds { dataset, .. }
        | Request::Route { dataset }
        | Request::Offer { dataset, .. } => Some(*dataset),
        Request::SignedFind { query, .. } => Some(query.dataset),
        Request::ListDatasets { .. } | Request::Ops(_) => None,
    }
}

fn unexpected(response: &Response) -> ClientError {
    ClientError::Integrity(format!("node sent an unexpected response: {response:?}"))
}

fn conflict_to_duplicate(error: ClientError, id: &Bson) -> ClientError {
    match error {
        ClientError::Node(NodeError::Precondition { .. }) => ClientError::DuplicateKey {
            id: display_id(id),
            inserted: 0,
        },
        other => other,
    }
}

fn display_id(id: &Bson) -> String {
    id.clone().into_relaxed_extjson().to_string()
}

/// Gives `doc` an `_id` if it has none and checks the one it has. As
/// MongoDB stores it, `_id` is the first field either way.
fn with_id(mut doc: Document) -> Result<Document, ClientError> {
    match doc.get("_id") {
        Some(Bson::Array(_)) => Err(ClientError::InvalidRequest(
            "The '_id' value cannot be of type array".into(),
        )),
        Some(Bson::RegularExpression(_)) => Err(ClientError::InvalidRequest(
            "The '_id' value cannot be of type regex".into(),
        )),
        Some(_) if doc.keys().next().is_some_and(|k| k == "_id") => Ok(doc),
        Some(_) => {
            let mut with = Document::new();
            if let Some(id) = doc.remove("_id") {
                with.insert("_id", id);
            }
            with.extend(doc);
            Ok(with)
        }
        None => {
            let mut with = Document::new();
            with.insert("_id", ObjectId::new());
            with.extend(doc);
            Ok(with)
        }
    }
}

/// Splits operations into batches bounded by count and encoded size.
/// Bytes `op` takes on the wire, to within its fixed-size framing (ids,
/// tags, lengths: under 64 bytes plus 8 per value). Batches are bounded at
/// `BATCH_BYTES_MAX`, far below the protocol's message limit, so an
/// estimate serves and saves encoding every operation an extra time.
fn approximate_encoded_len(op: &DocOp) -> usize {
    const FRAMING: usize = 64;
    match op {
        DocOp::Delete { .. } => FRAMING,
        DocOp::Put {
            sealed, entries, ..
        } => {
            let values: usize = entries
                .iter()
                .map(|entry| match &entry.values {
                    IndexValues::Tokens(tokens) => FRAMING + tokens.len() * Token::LEN,
                    IndexValues::Ore(cts) => {
                        FRAMING + cts.iter().map(|ct| ct.len() + 8).sum::<usize>()
                    }
                })
                .sum();
            FRAMING + sealed.wrapped_key.len() + sealed.ciphertext.len() + values
        }
    }
}

fn batches(ops: Vec<DocOp>) -> Vec<Vec<DocOp>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0usize;
    for op in ops {
        let size = approximate_encoded_len(&op);
        if !current.is_empty()
            && (bytes + size > BATCH_BYTES_MAX || current.len() >= OPS_PER_BATCH_MAX)
        {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(op);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A node must page in strictly increasing id order after the cursor; an
/// answer that does not is refused rather than risk looping or repeating.
fn check_page_order(
    after: Option<DocId>,
    docs: &[DocEntry],
    next: Option<DocId>,
) -> Result<(), ClientError> {
    let mut previous = after;
    for entry in docs {
        if previous.is_some_and(|p| entry.doc <= p) {
            return Err(ClientError::Integrity(
                "node returned a page out of order".into(),
            ));
        }
        previous = Some(entry.doc);
    }
    if let (Some(next), Some(last)) = (next, previous) {
        if next < last {
            return Err(ClientError::Integrity(
                "node returned a cursor behind its page".into(),
            ));
        }
    }
    if next.is_some() && docs.is_empty() && next <= after {
        return Err(ClientError::Integrity(
            "node returned a cursor that does not advance".into(),
        ));
    }
    Ok(())
}

/// `{_id: v}`, `{_id: {$eq: v}}` and `{_id: {$in: [...]}}` at the top level
/// of a filter become a direct lookup by document id.
fn id_lookup(dataset: &Dataset, filter: &Document) -> Option<Plan> {
    let value = filter.get("_id")?;
    let ids: Vec<DocId> = match value {
        Bson::Document(ops) if ops.keys().any(|k| k.starts_with('$')) => {
            if ops.len() != 1 {
                return None;
            }
            match ops.iter().next() {
                Some((op, v)) if op == "$eq" && !matches!(v, Bson::Array(_) | Bson::Null) => {
                    vec![dataset.doc_id(v)]
                }
                Some((op, Bson::Array(values))) if op == "$in" => {
                    if values.iter().any(|v| {
                        matches!(v, Bson::Array(_) | Bson::Null | Bson::RegularExpression(_))
                    }) {
                        return None;
                    }
                    values.iter().map(|v| dataset.doc_id(v)).collect()
                }
                _ => return None,
            }
        }
        Bson::Array(_) | Bson::Null | Bson::RegularExpression(_) => return None,
        v => vec![dataset.doc_id(v)],
    };
    Some(Plan::Ids(ids))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluence_proto::{Encode, IndexEntry, IndexId, SealedDoc};

    fn put(ciphertext_len: usize, ore: usize) -> DocOp {
        DocOp::Put {
            doc: DocId([1; 16]),
            expect: Precondition::Absent,
            sealed: SealedDoc {
                version: 1,
                wrapped_key: vec![0; 72],
                ciphertext: vec![0; ciphertext_len],
            },
            entries: vec![
                IndexEntry {
                    index: IndexId([2; 16]),
                    values: IndexValues::Tokens(vec![Token([3; 16]); 5]),
                },
                IndexEntry {
                    index: IndexId([4; 16]),
                    values: IndexValues::Ore(vec![vec![5; 747]; ore]),
                },
            ],
        }
    }

    #[test]
    fn the_size_estimate_bounds_the_real_encoding() {
        for op in [
            put(0, 0),
            put(1024, 1),
            put(16 << 20, 3),
            DocOp::Delete {
                doc: DocId([9; 16]),
                expect_version: 4,
            },
        ] {
            let real = op.to_bytes().len();
            let estimate = approximate_encoded_len(&op);
            assert!(
                estimate >= real && estimate <= real + 512,
                "estimate {estimate} for {real} bytes"
            );
        }
    }

    #[test]
    fn ids_are_checked_and_stored_first() {
        let given = with_id(bson::doc! {"a": 1, "_id": 5, "b": 2}).unwrap();
        assert_eq!(given, bson::doc! {"_id": 5, "a": 1, "b": 2});
        assert_eq!(
            given.keys().collect::<Vec<_>>(),
            vec!["_id", "a", "b"],
            "order, not just equality"
        );
        let generated = with_id(bson::doc! {"a": 1}).unwrap();
        assert!(matches!(generated.get("_id"), Some(Bson::ObjectId(_))));
        assert_eq!(generated.keys().next().map(String::as_str), Some("_id"));
        assert!(with_id(bson::doc! {"_id": [1]}).is_err());
    }

    #[test]
    fn batches_respect_the_byte_bound_and_keep_order() {
        let ops: Vec<DocOp> = (0..40).map(|_| put(1 << 20, 1)).collect();
        let split = batches(ops);
        assert!(split.len() >= 5);
        for batch in &split {
            let bytes: usize = batch.iter().map(|op| op.to_bytes().len()).sum();
            assert!(bytes <= BATCH_BYTES_MAX, "batch of {bytes} bytes");
        }
        assert_eq!(split.iter().map(Vec::len).sum::<usize>(), 40);
    }
}
