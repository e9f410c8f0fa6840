//! The harness shared by the wire-protocol tests: a gateway over a real
//! node service and store on a loopback socket, and a deliberately small
//! raw OP_MSG client written here (there is no MongoDB driver for Rust in
//! this workspace). It encodes and decodes messages by hand rather than
//! with the crate's own `wire` module, so an encoding mistake there cannot
//! hide itself.
#![allow(dead_code)] // each test file uses its own part of the harness

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bson::{Bson, Document};
use fluence_client::{Client, ClientError, Transport};
use fluence_crypto::keys::MasterKey;
use fluence_node::service::NodeStore;
use fluence_node::NodeService;
use fluence_proto::{Decode, Encode, Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The node in-process, reached through the canonical codec; counts the
/// pages of documents asked for.
#[derive(Clone)]
pub struct Local(pub Arc<NodeService>, pub Arc<AtomicUsize>);

impl Transport for Local {
    async fn call(&self, request: &Request) -> Result<Response, ClientError> {
        if matches!(request, Request::Find { .. } | Request::SignedFind { .. }) {
            self.1.fetch_add(1, Ordering::Relaxed);
        }
        let bytes = self.0.handle_bytes(&request.to_bytes());
        Response::from_bytes(&bytes).map_err(|e| ClientError::Integrity(e.to_string()))
    }
}

/// A running gateway; dropping it stops the server.
pub struct Server {
    pub addr: SocketAddr,
    /// Find requests (pages) the node has answered.
    pub pages: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

pub async fn start() -> Server {
    start_with(fluence_mongo::ServeOptions::default()).await
}

pub async fn start_with(options: fluence_mongo::ServeOptions) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Arc::new(NodeService::new(
        NodeStore::open(dir.path()).expect("open store"),
    ));
    let pages = Arc::new(AtomicUsize::new(0));
    let client = Arc::new(Client::new(
        MasterKey::generate(),
        Local(node, Arc::clone(&pages)),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        fluence_mongo::serve_with(listener, client, options, async {
            let _ = stopped.await;
        })
        .await
        .expect("serve");
    });
    Server {
        addr,
        pages,
        _dir: dir,
        _stop: stop,
    }
}

pub const OP_REPLY: i32 = 1;
pub const OP_QUERY: i32 = 2004;
pub const OP_MSG: i32 = 2013;

pub fn bson_bytes(doc: &Document) -> Vec<u8> {
    doc.to_vec().expect("encode")
}

pub fn header(len: usize, request_id: i32, op_code: i32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(len as i32).to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&op_code.to_le_bytes());
    out
}

/// An OP_MSG with a body, an optional document sequence and optionally a
/// CRC-32C checksum.
pub fn op_msg(
    request_id: i32,
    flags: u32,
    body: &Document,
    sequence: Option<(&str, &[Document])>,
) -> Vec<u8> {
    let mut sections = Vec::new();
    sections.push(0u8);
    sections.extend(bson_bytes(body));
    if let Some((identifier, docs)) = sequence {
        let mut payload = Vec::new();
        payload.extend_from_slice(identifier.as_bytes());
        payload.push(0);
        for d in docs {
            payload.extend(bson_bytes(d));
        }
        sections.push(1);
        sections.extend_from_slice(&((payload.len() + 4) as i32).to_le_bytes());
        sections.extend(payload);
    }
    let checksum = flags & 1 != 0;
    let len = 16 + 4 + sections.len() + if checksum { 4 } else { 0 };
    let mut out = header(len, request_id, OP_MSG);
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend(sections);
    if checksum {
        let sum = fluence_mongo::wire::crc32c(&out);
        out.extend_from_slice(&sum.to_le_bytes());
    }
    out
}

pub struct Conn {
    pub stream: TcpStream,
    pub next_id: i32,
}

impl Conn {
    pub async fn open(server: &Server) -> Conn {
        Conn {
            stream: TcpStream::connect(server.addr).await.expect("connect"),
            next_id: 100,
        }
    }

    pub fn id(&mut self) -> i32 {
        self.next_id += 1;
        self.next_id
    }

    /// One whole message from the server; `None` if it closed the stream.
    pub async fn read_message(&mut self) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await.ok()?;
        let len = i32::from_le_bytes(len) as usize;
        assert!((16..=48_000_000).contains(&len), "reply length {len}");
        let mut message = len.to_le_bytes()[..4].to_vec();
        message.resize(len, 0);
        self.stream.read_exact(&mut message[4..]).await.ok()?;
        Some(message)
    }

    /// Sends raw bytes and decodes the OP_MSG reply to request `id`.
    pub async fn exchange(&mut self, id: i32, bytes: &[u8]) -> Document {
        self.stream.write_all(bytes).await.expect("write");
        let reply = self
            .read_message()
            .await
            .expect("server closed the connection");
        let int = |at: usize| i32::from_le_bytes(reply[at..at + 4].try_into().unwrap());
        assert_eq!(int(8), id, "responseTo");
        assert_eq!(int(12), OP_MSG, "opCode");
        assert_eq!(int(16), 0, "flagBits");
        assert_eq!(reply[20], 0, "section kind");
        let doc = Document::from_reader(&reply[21..]).expect("reply body");
        assert_eq!(bson_bytes(&doc).len(), reply.len() - 21, "one body section");
        doc
    }

    pub async fn command(&mut self, body: Document) -> Document {
        let id = self.id();
        self.exchange(id, &op_msg(id, 0, &body, None)).await
    }

    pub async fn command_with_sequence(
        &mut self,
        body: Document,
        identifier: &str,
        docs: &[Document],
    ) -> Document {
        let id = self.id();
        self.exchange(id, &op_msg(id, 0, &body, Some((identifier, docs))))
            .await
    }
}

pub fn ok(reply: &Document) -> bool {
    matches!(reply.get("ok"), Some(Bson::Double(v)) if *v == 1.0)
}

pub fn code(reply: &Document) -> i32 {
    assert!(!ok(reply), "expected an error: {reply}");
    reply.get_i32("code").expect("code")
}

pub fn assert_ok(reply: &Document) {
    assert!(ok(reply), "command failed: {reply}");
}

pub fn cursor(reply: &Document) -> (&Vec<Bson>, i64, &str) {
    assert_ok(reply);
    let c = reply.get_document("cursor").expect("cursor");
    let batch = c
        .get_array("firstBatch")
        .or_else(|_| c.get_array("nextBatch"))
        .expect("batch");
    (
        batch,
        c.get_i64("id").expect("id"),
        c.get_str("ns").expect("ns"),
    )
}

pub fn ints(batch: &[Bson], field: &str) -> Vec<i32> {
    batch
        .iter()
        .map(|d| d.as_document().unwrap().get_i32(field).unwrap())
        .collect()
}
