//! Starting the real `fluence` binary as a process and talking to it over
//! HTTP on loopback.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub const PASSPHRASE: &str = "correct horse battery staple";
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub fn fluence() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fluence"));
    command
        .env_remove("FLUENCE_PASSPHRASE")
        .env("FLUENCE_LOG", "warn");
    command
}

/// A running `fluence` process whose stdout is collected line by line.
pub struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Process {
    pub fn spawn(command: Command) -> Process {
        Self::spawn_with_stderr(command, Stdio::piped())
    }

    /// Like [`Process::spawn`], with stderr (the log) appended to the file
    /// at `log` instead of a pipe nobody reads: a long run's log can
    /// neither fill the pipe nor be lost.
    pub fn spawn_logged(command: Command, log: &Path) -> Process {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        Self::spawn_with_stderr(command, Stdio::from(file))
    }

    fn spawn_with_stderr(mut command: Command, stderr: Stdio) -> Process {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = command.spawn().expect("start fluence");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Process {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a stdout line containing `needle` and returns it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let mut err = String::new();
                    if let Some(mut stderr) = self.child.stderr.take() {
                        let _ = stderr.read_to_string(&mut err);
                    }
                    panic!(
                        "no line with {needle:?}; stdout so far: {:?}; stderr: {err}",
                        self.seen
                    );
                }
            }
        }
    }

    /// SIGTERM, then waits; returns the exit status and the rest of stdout.
    pub fn stop(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().expect("wait for fluence");
        // The process has exited, so its stdout reaches EOF and the reader
        // thread hangs up: this drains every remaining line.
        let rest: Vec<String> = self.lines.iter().collect();
        self.seen.extend(rest);
        (status, self.seen.clone())
    }

    /// SIGKILL (no shutdown path runs), then waits for it to be gone.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL fluence");
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself; returns status and stderr.
    pub fn exit(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().expect("wait for fluence");
        let mut err = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        (status, err)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A devnet on free ports in `dir`.
pub struct Devnet {
    pub process: Process,
    pub api: String,
    /// `host:port` of the MongoDB wire protocol endpoint.
    pub mongo: String,
    /// Each node's dial address, in node order.
    pub nodes: Vec<String>,
}

/// `fluence devnet` on `dir` with free HTTP and p2p ports, its MongoDB
/// endpoint on `mongo`, the passphrase in the environment, and `extra`
/// arguments.
pub fn devnet_command(dir: &Path, passphrase: &str, mongo: &str, extra: &[&str]) -> Command {
    let mut command = fluence();
    command
        .args([
            "devnet",
            "--http",
            "127.0.0.1:0",
            "--mongo",
            mongo,
            "--p2p-port",
            "0",
        ])
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .env("FLUENCE_PASSPHRASE", passphrase);
    command
}

impl Devnet {
    /// A devnet of one node.
    pub fn start(dir: &Path, passphrase: &str) -> Devnet {
        Self::start_nodes(dir, passphrase, 1)
    }

    /// A devnet of `nodes` nodes (one cluster when more than one).
    pub fn start_nodes(dir: &Path, passphrase: &str, nodes: usize) -> Devnet {
        let command = devnet_command(
            dir,
            passphrase,
            "127.0.0.1:0",
            &["--nodes", &nodes.to_string()],
        );
        let mut process = Process::spawn(command);
        let node_addrs = (0..nodes)
            .map(|i| {
                let line = process.wait_for(&format!("node {i}:"));
                line.split_whitespace().last().expect("address").to_string()
            })
            .collect();
        let line = process.wait_for("HTTP API:");
        let api = line
            .split_whitespace()
            .last()
            .expect("address")
            .trim_end_matches("/v1")
            .to_string();
        let line = process.wait_for("MongoDB:");
        let mongo = line
            .split_whitespace()
            .last()
            .expect("address")
            .trim_start_matches("mongodb://")
            .trim_end_matches('/')
            .to_string();
        Devnet {
            process,
            api,
            mongo,
            nodes: node_addrs,
        }
    }
}

/// Creates the owner keystore `owner.key` in `keys_dir` with `fluence keys
/// new`, protected by [`PASSPHRASE`].
pub fn new_owner_key(keys_dir: &Path) {
    let mut new_key = fluence();
    new_key
        .args(["keys", "new", "owner", "--dir"])
        .arg(keys_dir)
        .env("FLUENCE_PASSPHRASE", PASSPHRASE);
    let (status, stderr) = Process::spawn(new_key).exit();
    assert!(status.success(), "{stderr}");
}

/// Every document of `dataset` (whose documents are `{_id, v}` with
/// unsigned integers), read through the gateway: `_id` → `v`.
pub fn stored_values(http: &Http, dataset: &str) -> std::collections::BTreeMap<u64, u64> {
    let found = http.ok(
        &format!("/v1/datasets/{dataset}/find"),
        &serde_json::json!({"filter": {}, "sort": {"_id": 1}}),
    );
    found["documents"]
        .as_array()
        .expect("documents")
        .iter()
        .map(|d| (d["_id"].as_u64().unwrap(), d["v"].as_u64().unwrap()))
        .collect()
}

/// The id of the owner's dataset `name`, from the owner keystore in
/// `keys_dir` (unlocked with [`PASSPHRASE`]).
pub fn dataset_id(keys_dir: &Path, name: &str) -> fluence_proto::DatasetId {
    let master = fluence_crypto::keystore::Keystore::unlock(
        &keys_dir.join("owner.key"),
        PASSPHRASE.as_bytes(),
    )
    .expect("owner keystore");
    let tag = master.catalog_key().name_tag(name);
    fluence_proto::DatasetId(fluence_crypto::keys::dataset_id(
        &master.owner_public_key(),
        &tag,
    ))
}

/// `keys` ordered by their XOR distance to `dataset`, closest first.
pub fn by_distance(
    dataset: &fluence_proto::DatasetId,
    keys: &[fluence_proto::PublicKey],
) -> Vec<fluence_proto::PublicKey> {
    use fluence_net::keyspace::{self, Target};
    let target = Target::Dataset(*dataset).key();
    let mut peers: Vec<(fluence_net::PeerId, fluence_proto::PublicKey)> = keys
        .iter()
        .map(|key| {
            (
                fluence_net::identity::peer_id_of(key).expect("ed25519 key"),
                *key,
            )
        })
        .collect();
    peers.sort_by(|(a, _), (b, _)| keyspace::by_distance(&target, a, b));
    peers.into_iter().map(|(_, key)| key).collect()
}

/// Whether a find of document `probe` that answered `found` is wrong,
/// given the documents written so far (`acked`: acknowledged; `unknown`:
/// maybe written): not exactly the document with its written value, or
/// nothing for an acknowledged one.
pub fn wrong_read(
    found: &Value,
    probe: u64,
    acked: &std::collections::BTreeMap<u64, u64>,
    unknown: &std::collections::BTreeMap<u64, u64>,
) -> bool {
    let docs = found["documents"].as_array().cloned().unwrap_or_default();
    let expected = acked.get(&probe).or_else(|| unknown.get(&probe));
    match (docs.as_slice(), expected) {
        ([doc], Some(v)) => {
            doc["_id"] != serde_json::json!(probe) || doc["v"] != serde_json::json!(v)
        }
        ([], _) => acked.contains_key(&probe),
        _ => true,
    }
}

/// `fluence gateway` in front of the node at `node` with the owner key at
/// `key` (unlocked with [`PASSPHRASE`]), on free ports; returns the process
/// and the HTTP API's base address.
pub fn start_gateway(key: &Path, node: &str) -> (Process, String) {
    start_gateway_with(key, node, &[], None)
}

/// [`start_gateway`] with environment `env` and, if `log` is given, its
/// log appended to that file.
pub fn start_gateway_with(
    key: &Path,
    node: &str,
    env: &[(&str, &str)],
    log: Option<&Path>,
) -> (Process, String) {
    let mut gateway = fluence();
    gateway
        .args([
            "gateway",
            "--http",
            "127.0.0.1:0",
            "--mongo",
            "127.0.0.1:0",
            "--node",
            node,
            "--key",
        ])
        .arg(key)
        .env("FLUENCE_PASSPHRASE", PASSPHRASE)
        .envs(env.iter().copied());
    let mut gateway = match log {
        Some(log) => Process::spawn_logged(gateway, log),
        None => Process::spawn(gateway),
    };
    let api = gateway
        .wait_for("HTTP API:")
        .split_whitespace()
        .nth(2)
        .expect("address")
        .trim_end_matches("/v1")
        .to_string();
    (gateway, api)
}

/// Minimal HTTP/JSON client for tests.
pub struct Http {
    base: String,
    agent: ureq::Agent,
}

impl Http {
    pub fn new(base: &str) -> Http {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Http {
            base: base.to_string(),
            agent,
        }
    }

    fn read(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
        let mut response = response.expect("HTTP request");
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .expect("body");
        let value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        (status, value)
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        Self::read(
            self.agent
                .post(format!("{}{path}", self.base))
                .send_json(body),
        )
    }

    pub fn post_raw(&self, path: &str, body: &[u8]) -> (u16, Value) {
        Self::read(
            self.agent
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .send(body),
        )
    }

    /// A request that declares a body of `len` bytes but sends only a few:
    /// the server must refuse on the declared length, before reading.
    pub fn post_declaring_len(&self, path: &str, len: usize) -> (u16, Value) {
        use std::io::Write;
        let authority = self.base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(authority).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{{\"a\": "
        )
        .expect("send");
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let text = String::from_utf8_lossy(&response);
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
        // The body may be chunked; take the JSON object inside.
        let start = body.find('{').unwrap_or(0);
        let end = body.rfind('}').map(|e| e + 1).unwrap_or(body.len());
        (
            status,
            serde_json::from_str(&body[start..end]).unwrap_or(Value::Null),
        )
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        Self::read(self.agent.get(format!("{}{path}", self.base)).call())
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        Self::read(self.agent.delete(format!("{}{path}", self.base)).call())
    }

    /// POST that must succeed; returns the body.
    pub fn ok(&self, path: &str, body: &Value) -> Value {
        let (status, value) = self.post(path, body);
        assert!(
            (200..300).contains(&status),
            "{path} answered {status}: {value}"
        );
        value
    }
}

/// A free TCP port on loopback (free when asked; a node binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// The `--bootstrap` address of node `n0` (identity created under
/// `dir/n0` if it does not exist yet) listening on `port`: every other
/// node of a test network joins through it.
pub fn bootstrap_addr(dir: &Path, port: u16) -> String {
    let data_dir = dir.join("n0");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let keypair =
        fluence_net::identity::load_or_create(&fluence_node::daemon::identity_path(&data_dir))
            .expect("identity");
    format!(
        "/ip4/127.0.0.1/tcp/{port}/p2p/{}",
        keypair.public().to_peer_id()
    )
}

/// `fluence node` number `i` of a test network: data under `dir/n{i}`,
/// listening on `port`; every node but the first joins through
/// `bootstrap` (see [`bootstrap_addr`]).
pub fn network_node(dir: &Path, i: usize, port: u16, bootstrap: &str) -> Command {
    let mut node = fluence();
    node.args([
        "node",
        "--listen",
        &format!("/ip4/127.0.0.1/tcp/{port}"),
        "--data-dir",
    ])
    .arg(dir.join(format!("n{i}")));
    if i > 0 {
        node.args(["--bootstrap", bootstrap]);
    }
    node
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
