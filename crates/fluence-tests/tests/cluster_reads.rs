//! Verified reads against a real cluster: four `fluence-node` members in
//! one process (one commonware tokio runtime, as the devnet runs them),
//! reached by a gateway's client over libp2p on loopback.
//!
//! - Quorum reads agree while writes land, so members one block apart do
//!   not raise false alarms; a quorum above the member count is refused.
//! - A member that answers falsely (a node service that rewrites and
//!   re-signs its answers) is named at r ≥ 2 and caught by the Merkle
//!   proof at r = 1.
//! - A member whose disk serves an old, authentic version of a document
//!   (its redb file edited while it was down) is named at r ≥ 2 and caught
//!   by the proof at r = 1.
//! - Answers signed by a key that is not the configured member's are
//!   refused, and so are certificates checked against the wrong members.
//!
//! Time limits here only turn a hang into a failure; none measures speed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bson::{doc, Bson, Document};
use commonware_runtime::{Runner as _, Supervisor as _};
use fluence_client::dataset::Dataset;
use fluence_client::descriptor::{Descriptor, IndexSpec};
use fluence_client::query::IndexKindSpec;
use fluence_client::{
    Client, ClientError, FindOptions, Member, ReadConfig, ReadOptions, ReadQuorum,
};
use fluence_consensus::Timeouts;
use fluence_crypto::keys::MasterKey;
use fluence_crypto::sign::SigningKey;
use fluence_net::cluster::ClusterMember;
use fluence_net::{identity, Answer, NodeClient, PeerId, RequestHandler, Server};
use fluence_node::{ClusterConfig, NodeConfig, NodeService, RunningNode};
use fluence_proto::read::{answer_digest, page_hash};
use fluence_proto::{
    Action, Decode, DocId, DocOp, Encode, PublicKey, Request, Response, SealedDoc, Signature,
    SignedWrite, READ_ANSWER_SIGNING_DOMAIN,
};
use fluence_store::layout;
use redb::{ReadableDatabase, ReadableTable};

/// Far above anything these tests should take: reaching it means a hang.
const HANG_GUARD: Duration = Duration::from_secs(120);
const OWNER_KEY: [u8; 32] = [0x2a; 32];
const MEMBERS: usize = 4;

fn indexes() -> Vec<IndexSpec> {
    vec![IndexSpec::new("n", IndexKindSpec::Range)]
}

fn dataset() -> Dataset {
    Dataset::new(
        &MasterKey::from_bytes(OWNER_KEY),
        Descriptor::new("people", indexes()).unwrap(),
    )
}

/// Runs `test` on a fresh commonware tokio runtime whose storage lives in
/// `dir` (a second run on the same `dir` resumes the same cluster).
fn run<F, Fut>(dir: &Path, test: F)
where
    F: FnOnce(commonware_runtime::tokio::Context) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let config =
        commonware_runtime::tokio::Config::new().with_storage_directory(dir.join("consensus"));
    commonware_runtime::tokio::Runner::new(config).start(|context| async move {
        tokio::time::timeout(HANG_GUARD * 3, test(context))
            .await
            .expect("hang guard reached");
    });
}

/// Starts the members, each in `dir/node-i`, and tells each where the
/// others listen.
async fn start_members(
    context: &commonware_runtime::tokio::Context,
    dir: &Path,
) -> Vec<RunningNode> {
    let mut keys = Vec::new();
    for i in 0..MEMBERS {
        let keypair = identity::load_or_create(&identity_file(dir, i)).unwrap();
        keys.push(identity::member_key(&keypair).unwrap());
    }
    let members = keys
        .iter()
        .map(|key| ClusterMember {
            key: *key,
            addrs: Vec::new(),
        })
        .collect();
    let mut cluster = ClusterConfig::new(members);
    cluster.timeouts = Timeouts {
        leader: Duration::from_millis(500),
        certification: Duration::from_secs(1),
        retry: Duration::from_secs(1),
        fetch: Duration::from_millis(500),
    };
    let mut nodes = Vec::new();
    for i in 0..MEMBERS {
        let config = NodeConfig {
            data_dir: dir.join(format!("node-{i}")),
            listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
            record_requests: None,
            discovery: Default::default(),
        };
        let node = RunningNode::start_member(context.child("node"), config, cluster.clone())
            .await
            .unwrap();
        nodes.push(node);
    }
    for node in &nodes {
        for other in &nodes {
            if other.member_key() != node.member_key() {
                let net = node.replicas().unwrap().net();
                net.set_addresses(&other.member_key(), other.listen_addrs().to_vec());
            }
        }
    }
    nodes
}

fn identity_file(dir: &Path, i: usize) -> std::path::PathBuf {
    let data_dir = dir.join(format!("node-{i}"));
    std::fs::create_dir_all(&data_dir).unwrap();
    fluence_node::daemon::identity_path(&data_dir)
}

/// A gateway's client of `addrs` (one per member, with its member key and
/// a name), reading with `reads` by default.
async fn gateway(
    members: Vec<(String, PublicKey, fluence_net::Multiaddr)>,
    reads: ReadConfig,
) -> Client<NodeClient> {
    let mut connected = Vec::new();
    for (name, key, addr) in members {
        let connection = NodeClient::connect(addr, Duration::from_secs(10))
            .await
            .unwrap();
        connected.push(Member::new(Some(key), name, connection));
    }
    Client::with_members(MasterKey::from_bytes(OWNER_KEY), connected, reads).unwrap()
}

fn member(nodes: &[RunningNode], i: usize) -> (String, PublicKey, fluence_net::Multiaddr) {
    (
        format!("node-{i}"),
        nodes[i].member_key(),
        nodes[i].dial_addr(),
    )
}

fn at(quorum: ReadQuorum) -> ReadOptions {
    ReadOptions {
        quorum: Some(quorum),
        proof: None,
    }
}

fn proven() -> ReadOptions {
    ReadOptions {
        quorum: Some(ReadQuorum::Count(1)),
        proof: Some(true),
    }
}

fn filter(filter: Document) -> FindOptions {
    FindOptions {
        filter,
        ..Default::default()
    }
}

async fn find(
    client: &Client<NodeClient>,
    options: ReadOptions,
    query: Document,
) -> Result<Vec<Document>, ClientError> {
    options.scope(client.find("people", filter(query))).await
}

async fn create_with(client: &Client<NodeClient>, docs: Vec<Document>) {
    client.create_dataset("people", indexes()).await.unwrap();
    client.insert("people", docs).await.unwrap();
}

fn people(n: i32) -> Vec<Document> {
    (1..=n).map(|i| doc! {"_id": i, "n": i}).collect()
}

#[test]
fn quorum_reads_agree_while_writes_land_and_impossible_quorums_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(dir.path(), move |context| async move {
        let nodes = start_members(&context, &path).await;
        let members: Vec<_> = (0..MEMBERS).map(|i| member(&nodes, i)).collect();
        let client = Arc::new(gateway(members, ReadConfig::default()).await);
        create_with(&client, people(20)).await;

        for r in 1..=MEMBERS {
            let quorum = at(ReadQuorum::Count(r));
            let found = find(&client, quorum, doc! {"n": {"$gt": 5}}).await.unwrap();
            assert_eq!(found.len(), 15, "r = {r}");
            let one = find(&client, quorum, doc! {"_id": 7}).await.unwrap();
            assert_eq!(one, vec![doc! {"_id": 7, "n": 7}], "r = {r}");
            let count = quorum
                .scope(client.count("people", &doc! {}))
                .await
                .unwrap();
            assert_eq!(count, 20, "r = {r}");
        }

        // Writes land while every member is asked: members a block apart
        // settle on one state instead of disagreeing.
        let writer = {
            let client = Arc::clone(&client);
            tokio::spawn(async move {
                for i in 21..=40 {
                    client
                        .insert("people", vec![doc! {"_id": i, "n": i}])
                        .await
                        .unwrap();
                }
            })
        };
        let mut seen = 20;
        while !writer.is_finished() {
            let all = find(&client, at(ReadQuorum::All), doc! {}).await.unwrap();
            assert!(all.len() >= seen, "{} documents after {seen}", all.len());
            seen = all.len();
            let majority = find(
                &client,
                at(ReadQuorum::Majority),
                doc! {"_id": {"$in": [3, 33]}},
            )
            .await
            .unwrap();
            assert!(!majority.is_empty());
        }
        writer.await.unwrap();
        let all = find(&client, at(ReadQuorum::All), doc! {}).await.unwrap();
        assert_eq!(all.len(), 40);

        // A quorum no cluster of four can give: a clear request error.
        match find(&client, at(ReadQuorum::Count(5)), doc! {}).await {
            Err(error @ ClientError::InvalidRequest(_)) => {
                assert!(error.to_string().contains("4 members"), "{error}")
            }
            other => panic!("expected a refused quorum, got {other:?}"),
        }
        let members: Vec<_> = (0..MEMBERS).map(|i| member(&nodes, i)).collect();
        let mut connected = Vec::new();
        for (name, key, addr) in members {
            let connection = NodeClient::connect(addr, Duration::from_secs(10))
                .await
                .unwrap();
            connected.push(Member::new(Some(key), name, connection));
        }
        let too_many = ReadConfig {
            quorum: ReadQuorum::Count(5),
            proofs: false,
        };
        assert!(matches!(
            Client::with_members(MasterKey::from_bytes(OWNER_KEY), connected, too_many),
            Err(ClientError::InvalidRequest(_))
        ));

        drop(client);
        for node in nodes {
            node.shutdown().await;
        }
    });
}

/// A member's node service whose read answers leave out one document,
/// re-signed with the member's key so the signature itself is valid: a
/// Byzantine member lying on purpose.
struct Liar {
    honest: Arc<NodeService>,
    key: SigningKey,
    hidden: DocId,
}

impl RequestHandler for Liar {
    fn handle(&self, _peer: PeerId, request: Vec<u8>) -> Answer {
        let query = match Request::from_bytes(&request) {
            Ok(Request::SignedFind { query, .. }) => Some(query),
            _ => None,
        };
        let (key, hidden) = (self.key.clone(), self.hidden);
        match self.honest.answer_bytes(&request) {
            Answer::Ready(bytes) => Answer::Ready(falsify(&key, hidden, query.as_ref(), bytes)),
            Answer::Pending(later) => Answer::Pending(Box::pin(async move {
                falsify(&key, hidden, query.as_ref(), later.await)
            })),
        }
    }
}

fn falsify(
    key: &SigningKey,
    hidden: DocId,
    query: Option<&fluence_proto::FindQuery>,
    bytes: Vec<u8>,
) -> Vec<u8> {
    match (Response::from_bytes(&bytes), query) {
        (Ok(Response::SignedPage(mut page)), Some(query)) => {
            page.docs.retain(|entry| entry.doc != hidden);
            let digest = answer_digest(
                &query.hash(),
                &page_hash(&page.docs, &page.next),
                &page.state,
            );
            page.signature = Signature(key.sign(READ_ANSWER_SIGNING_DOMAIN, &digest));
            Response::SignedPage(page).to_bytes()
        }
        (Ok(Response::Proven(mut proven)), _) => {
            for doc in &mut proven.docs {
                if doc.proof.doc == hidden {
                    doc.sealed = None;
                }
            }
            Response::Proven(proven).to_bytes()
        }
        _ => bytes,
    }
}

fn member_signing_key(dir: &Path, i: usize) -> SigningKey {
    let keypair = identity::load_or_create(&identity_file(dir, i)).unwrap();
    SigningKey::from_seed(&identity::secret_seed(&keypair).unwrap())
}

fn is_disagreement_naming(result: &Result<Vec<Document>, ClientError>, names: &[&str]) -> bool {
    match result {
        Err(ClientError::ReadDisagreement { disagreeing, .. }) => {
            disagreeing.len() == names.len()
                && names
                    .iter()
                    .all(|name| disagreeing.iter().any(|d| d.starts_with(name)))
        }
        _ => false,
    }
}

fn is_integrity_error(result: &Result<Vec<Document>, ClientError>, says: &str) -> bool {
    matches!(result, Err(ClientError::Integrity(message)) if message.contains(says))
}

#[test]
fn a_member_answering_falsely_is_named_at_quorum_and_caught_by_proofs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(dir.path(), move |context| async move {
        let nodes = start_members(&context, &path).await;
        let hidden = dataset().doc_id(&Bson::Int32(7));
        let liar = Liar {
            honest: Arc::clone(nodes[3].service()),
            key: member_signing_key(&path, 3),
            hidden,
        };
        let keypair = identity::load_or_create(&identity_file(&path, 3)).unwrap();
        let liar = Server::start(
            keypair,
            "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
            Arc::new(liar),
        )
        .await
        .unwrap();
        // The liar comes first, so every read asks it.
        let mut members = vec![("liar".to_string(), nodes[3].member_key(), liar.dial_addr())];
        members.extend((0..3).map(|i| member(&nodes, i)));
        let client = gateway(members, ReadConfig::default()).await;
        create_with(&client, people(10)).await;

        // r = 3: the two honest members outvote it, and it is named.
        let result = find(&client, at(ReadQuorum::Count(3)), doc! {"n": {"$gte": 5}}).await;
        assert!(is_disagreement_naming(&result, &["liar"]), "{result:?}");
        let result = find(&client, at(ReadQuorum::Majority), doc! {"_id": 7}).await;
        assert!(is_disagreement_naming(&result, &["liar"]), "{result:?}");
        // r = 2: no majority; both members asked are named.
        let result = find(&client, at(ReadQuorum::Count(2)), doc! {"_id": 7}).await;
        assert!(
            is_disagreement_naming(&result, &["liar", "node-0"]),
            "{result:?}"
        );
        // What it does not lie about still reads at any quorum.
        let honest = find(&client, at(ReadQuorum::Count(3)), doc! {"_id": 3})
            .await
            .unwrap();
        assert_eq!(honest, vec![doc! {"_id": 3, "n": 3}]);

        // r = 1 with a proof: the proof shows the document it withheld.
        let result = find(&client, proven(), doc! {"_id": {"$in": [6, 7, 8]}}).await;
        assert!(
            is_integrity_error(&result, "withheld document"),
            "{result:?}"
        );
        let fine = find(&client, proven(), doc! {"_id": {"$in": [6, 8, 99]}})
            .await
            .unwrap();
        assert_eq!(fine, vec![doc! {"_id": 6, "n": 6}, doc! {"_id": 8, "n": 8}]);

        // r = 1 without a proof trusts the one member asked: the omission
        // goes unnoticed (docs/security.md says so).
        let trusted = find(&client, at(ReadQuorum::Count(1)), doc! {"_id": 7})
            .await
            .unwrap();
        assert!(trusted.is_empty());

        drop(client);
        liar.shutdown().await;
        for node in nodes {
            node.shutdown().await;
        }
    });
}

#[test]
fn answers_and_certificates_of_non_members_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(dir.path(), move |context| async move {
        let nodes = start_members(&context, &path).await;
        let members: Vec<_> = (0..MEMBERS).map(|i| member(&nodes, i)).collect();
        let client = gateway(members, ReadConfig::default()).await;
        create_with(&client, people(5)).await;
        assert_eq!(
            find(&client, proven(), doc! {"_id": 2})
                .await
                .unwrap()
                .len(),
            1
        );

        // Node 0 signs with its own key; the gateway expects another.
        let stranger = PublicKey(SigningKey::from_seed(&[0x55; 32]).public_key());
        let mut members: Vec<_> = (0..MEMBERS).map(|i| member(&nodes, i)).collect();
        members[0].1 = stranger;
        let misconfigured = gateway(members, ReadConfig::default()).await;
        let result = find(&misconfigured, at(ReadQuorum::Count(1)), doc! {"_id": 2}).await;
        assert!(
            is_integrity_error(&result, "not its member key"),
            "{result:?}"
        );
        let result = find(
            &misconfigured,
            at(ReadQuorum::Count(3)),
            doc! {"n": {"$gt": 1}},
        )
        .await;
        assert!(
            is_integrity_error(&result, "not its member key"),
            "{result:?}"
        );

        // A proof read from an honest member, checked against a member
        // set holding two strangers: its certificate cannot hold a quorum
        // (2f + 1 = 3) of that set's signatures. With one stranger it
        // could, rightly: three members of the set may be its signers.
        let other_stranger = PublicKey(SigningKey::from_seed(&[0x56; 32]).public_key());
        let mut members: Vec<_> = (0..MEMBERS).map(|i| member(&nodes, i)).collect();
        members[2].1 = stranger;
        members[3].1 = other_stranger;
        let wrong_set = gateway(members, ReadConfig::default()).await;
        let result = find(&wrong_set, proven(), doc! {"_id": 2}).await;
        assert!(is_integrity_error(&result, "certificate"), "{result:?}");

        for client in [client, misconfigured, wrong_set] {
            drop(client);
        }
        for node in nodes {
            node.shutdown().await;
        }
    });
}

/// Replaces the stored sealed document of `_id` 1 in `node`'s dataset
/// file with the version its first write put there (authentic, but old),
/// leaving its digest, the tree and the state root as they are.
fn serve_first_version(dir: &Path, node: usize) {
    let dataset = dataset();
    let doc = dataset.doc_id(&Bson::Int32(1));
    let file = dir
        .join(format!("node-{node}"))
        .join("store")
        .join("datasets")
        .join(format!("{}.redb", dataset.id.to_hex()));
    let db = redb::Database::open(file).unwrap();
    let first_version = {
        let txn = db.begin_read().unwrap();
        let journal = txn.open_table(layout::JOURNAL).unwrap();
        let mut found = None;
        for entry in journal.iter().unwrap() {
            let (_, bytes) = entry.unwrap();
            let write = SignedWrite::from_bytes(bytes.value()).unwrap();
            if let Action::Batch { ops, .. } = write.body.action {
                for op in ops {
                    if let DocOp::Put { doc: d, sealed, .. } = op {
                        if d == doc && sealed.version == 1 {
                            found = Some(sealed);
                        }
                    }
                }
            }
        }
        found.expect("the insert of document 1 is in the journal")
    };
    let txn = db.begin_write().unwrap();
    {
        let ids = txn.open_table(layout::IDS).unwrap();
        let key = layout::row_key(layout::row_of(&ids, &doc).unwrap().unwrap());
        let mut docs = txn.open_table(layout::DOCS).unwrap();
        let current = {
            let record = docs.get(&key[..]).unwrap().unwrap();
            let (_, sealed) = layout::split_doc_record(record.value()).unwrap();
            SealedDoc::from_bytes(sealed).unwrap()
        };
        assert_eq!(current.version, 2, "the update reached this member");
        let record = layout::doc_record(&doc, &first_version.to_bytes());
        docs.insert(&key[..], record.as_slice()).unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn a_member_serving_an_old_version_from_its_disk_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(dir.path(), {
        let path = path.clone();
        move |context| async move {
            let nodes = start_members(&context, &path).await;
            let members: Vec<_> = (0..MEMBERS).map(|i| member(&nodes, i)).collect();
            let client = gateway(members, ReadConfig::default()).await;
            create_with(&client, people(3)).await;
            client
                .update(
                    "people",
                    &doc! {"_id": 1},
                    &doc! {"$set": {"n": 100}},
                    false,
                    false,
                )
                .await
                .unwrap();
            // Every member applied the update before the cluster stops.
            let all = find(&client, at(ReadQuorum::All), doc! {"_id": 1})
                .await
                .unwrap();
            assert_eq!(all, vec![doc! {"_id": 1, "n": 100}]);
            drop(client);
            for node in nodes {
                node.shutdown().await;
            }
        }
    });
    serve_first_version(&path, 3);
    run(dir.path(), move |context| async move {
        let nodes = start_members(&context, &path).await;
        // The tampered member first, so every read asks it.
        let mut members = vec![member(&nodes, 3)];
        members.extend((0..3).map(|i| member(&nodes, i)));
        let client = gateway(members, ReadConfig::default()).await;

        // Alone and unproven, the old version passes: it is authentic
        // (its AEAD binds its own version), only stale.
        let stale = find(&client, at(ReadQuorum::Count(1)), doc! {"_id": 1})
            .await
            .unwrap();
        assert_eq!(stale, vec![doc! {"_id": 1, "n": 1}]);
        // The proof commits to the current version's digest.
        let result = find(&client, proven(), doc! {"_id": 1}).await;
        assert!(
            is_integrity_error(&result, "is not the one its proof commits to"),
            "{result:?}"
        );
        // A quorum names it.
        let result = find(&client, at(ReadQuorum::Count(3)), doc! {"_id": 1}).await;
        assert!(is_disagreement_naming(&result, &["node-3"]), "{result:?}");
        let result = find(&client, at(ReadQuorum::Count(3)), doc! {"n": {"$gte": 1}}).await;
        assert!(is_disagreement_naming(&result, &["node-3"]), "{result:?}");
        // The honest members still agree without it.
        let mut honest: Vec<_> = (0..3).map(|i| member(&nodes, i)).collect();
        honest.push(member(&nodes, 3));
        let honest = gateway(honest, ReadConfig::default()).await;
        let found = find(&honest, at(ReadQuorum::Count(3)), doc! {"_id": 1})
            .await
            .unwrap();
        assert_eq!(found, vec![doc! {"_id": 1, "n": 100}]);

        drop(client);
        drop(honest);
        for node in nodes {
            node.shutdown().await;
        }
    });
}
