//! SCRAM-SHA-256 over real loopback sockets: a gateway configured with a
//! user refuses data commands until the connection authenticates, and
//! wrong passwords, wrong nonces and replayed proofs all fail. The client
//! side of SCRAM is written here from RFC 5802/7677, independently of the
//! server's code.

mod common;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, Document};
use common::*;
use fluence_mongo::{Credentials, ServeOptions};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const USER: &str = "owner";
const PASSWORD: &str = "correct horse";

async fn secured() -> Server {
    start_with(ServeOptions {
        credentials: Some(Credentials::new(USER, PASSWORD).expect("credentials")),
    })
    .await
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn binary(bytes: &[u8]) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    })
}

fn payload(reply: &Document) -> String {
    match reply.get("payload") {
        Some(Bson::Binary(b)) => String::from_utf8(b.bytes.clone()).unwrap(),
        other => panic!("no payload in {reply}: {other:?}"),
    }
}

/// The client's half of one conversation.
struct Scram {
    user: String,
    password: String,
    client_nonce: String,
}

impl Scram {
    fn new(password: &str) -> Scram {
        Scram {
            user: USER.into(),
            password: password.into(),
            client_nonce: BASE64.encode(rand::random::<[u8; 18]>()),
        }
    }

    fn first(&self) -> String {
        format!("n,,n={},r={}", self.user, self.client_nonce)
    }

    /// (client-final, expected server signature) for `server_first`,
    /// answering with `nonce` (normally the server's combined nonce).
    fn last_with_nonce(&self, server_first: &str, nonce: &str) -> (String, String) {
        let field = |name: &str| {
            server_first
                .split(',')
                .find_map(|f| f.strip_prefix(name))
                .unwrap()
                .to_string()
        };
        let salt = BASE64.decode(field("s=")).unwrap();
        let iterations: u32 = field("i=").parse().unwrap();
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(self.password.as_bytes(), &salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!(
            "n={},r={},{server_first},{without_proof}",
            self.user, self.client_nonce
        );
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_signature = hmac(&hmac(&salted, b"Server Key"), auth_message.as_bytes());
        (
            format!("{without_proof},p={}", BASE64.encode(proof)),
            format!("v={}", BASE64.encode(server_signature)),
        )
    }

    fn last(&self, server_first: &str) -> (String, String) {
        let nonce = server_first
            .split(',')
            .find_map(|f| f.strip_prefix("r="))
            .unwrap()
            .to_string();
        self.last_with_nonce(server_first, &nonce)
    }
}

async fn sasl_start(conn: &mut Conn, scram: &Scram, skip_empty: bool) -> Document {
    conn.command(doc! {
        "saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": binary(scram.first().as_bytes()),
        "autoAuthorize": 1, "options": {"skipEmptyExchange": skip_empty}, "$db": "admin",
    })
    .await
}

async fn sasl_continue(conn: &mut Conn, message: &str) -> Document {
    conn.command(doc! {
        "saslContinue": 1, "conversationId": 1, "payload": binary(message.as_bytes()),
        "$db": "admin",
    })
    .await
}

/// Authenticates `conn` the long way (with the empty last exchange) and
/// returns the client-final message it sent.
async fn authenticate(conn: &mut Conn) -> String {
    let scram = Scram::new(PASSWORD);
    let first = sasl_start(conn, &scram, false).await;
    assert_ok(&first);
    assert!(!first.get_bool("done").unwrap());
    let (last, expected) = scram.last(&payload(&first));
    let reply = sasl_continue(conn, &last).await;
    assert_ok(&reply);
    assert_eq!(payload(&reply), expected, "server signature");
    assert!(!reply.get_bool("done").unwrap());
    let reply = sasl_continue(conn, "").await;
    assert_ok(&reply);
    assert!(reply.get_bool("done").unwrap());
    last
}

fn find(db: &str) -> Document {
    doc! {"find": "c", "$db": db}
}

#[tokio::test]
async fn commands_need_an_authenticated_connection() {
    let server = secured().await;
    let mut conn = Conn::open(&server).await;
    // The handshake works and offers SCRAM-SHA-256 for the user.
    let hello = conn
        .command(doc! {"hello": 1, "saslSupportedMechs": "admin.owner", "$db": "admin"})
        .await;
    assert_ok(&hello);
    assert_eq!(
        hello.get_array("saslSupportedMechs").unwrap(),
        &vec![Bson::from("SCRAM-SHA-256")]
    );
    let hello = conn
        .command(doc! {"hello": 1, "saslSupportedMechs": "admin.nobody", "$db": "admin"})
        .await;
    assert!(!hello.contains_key("saslSupportedMechs"));
    assert_ok(&conn.command(doc! {"ping": 1, "$db": "admin"}).await);
    for command in [
        find("shop"),
        doc! {"insert": "c", "documents": [{"a": 1}], "$db": "shop"},
        doc! {"listDatabases": 1, "$db": "admin"},
        doc! {"aggregate": "c", "pipeline": [], "cursor": {}, "$db": "shop"},
        doc! {"serverStatus": 1, "$db": "admin"},
    ] {
        let reply = conn.command(command.clone()).await;
        assert_eq!(code(&reply), 13, "{command}");
        assert_eq!(reply.get_str("codeName").unwrap(), "Unauthorized");
    }
    authenticate(&mut conn).await;
    assert_ok(
        &conn
            .command(doc! {"insert": "c", "documents": [{"a": 1}], "$db": "shop"})
            .await,
    );
    assert_eq!(cursor(&conn.command(find("shop")).await).0.len(), 1);
    let status = conn
        .command(doc! {"connectionStatus": 1, "$db": "admin"})
        .await;
    assert_eq!(
        status
            .get_document("authInfo")
            .unwrap()
            .get_array("authenticatedUsers")
            .unwrap(),
        &vec![Bson::Document(doc! {"user": "owner", "db": "admin"})]
    );
    // Another connection is not authenticated by this one.
    let mut other = Conn::open(&server).await;
    assert_eq!(code(&other.command(find("shop")).await), 13);
    // logout ends it.
    assert_ok(&conn.command(doc! {"logout": 1, "$db": "admin"}).await);
    assert_eq!(code(&conn.command(find("shop")).await), 13);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_fail_alike() {
    let server = secured().await;
    let mut conn = Conn::open(&server).await;
    let scram = Scram::new("wrong horse");
    let first = sasl_start(&mut conn, &scram, true).await;
    assert_ok(&first);
    let (last, _) = scram.last(&payload(&first));
    let reply = sasl_continue(&mut conn, &last).await;
    assert_eq!(code(&reply), 18);
    assert_eq!(reply.get_str("codeName").unwrap(), "AuthenticationFailed");
    assert_eq!(reply.get_str("errmsg").unwrap(), "Authentication failed.");
    assert_eq!(code(&conn.command(find("shop")).await), 13);
    let mut stranger = Scram::new(PASSWORD);
    stranger.user = "mallory".into();
    let reply = sasl_start(&mut conn, &stranger, true).await;
    assert_eq!(code(&reply), 18);
    assert_eq!(reply.get_str("errmsg").unwrap(), "Authentication failed.");
    // Only SCRAM-SHA-256 is offered.
    let reply = conn
        .command(doc! {"saslStart": 1, "mechanism": "SCRAM-SHA-1",
        "payload": binary(b"n,,n=owner,r=abc"), "$db": "admin"})
        .await;
    assert_eq!(code(&reply), 334);
    // A continue with no conversation fails.
    assert_eq!(
        code(&sasl_continue(&mut conn, "c=biws,r=x,p=AAAA").await),
        18
    );
}

#[tokio::test]
async fn wrong_nonces_and_replayed_proofs_fail() {
    let server = secured().await;
    // A proof computed over a nonce the server did not issue.
    let mut conn = Conn::open(&server).await;
    let scram = Scram::new(PASSWORD);
    let first = payload(&sasl_start(&mut conn, &scram, true).await);
    let (forged, _) = scram.last_with_nonce(&first, &format!("{}AAAA", scram.client_nonce));
    assert_eq!(code(&sasl_continue(&mut conn, &forged).await), 18);
    assert_eq!(code(&conn.command(find("shop")).await), 13);

    // A proof recorded from a successful conversation...
    let mut victim = Conn::open(&server).await;
    let recorded = authenticate(&mut victim).await;
    // ...does not authenticate a new conversation on another connection,
    let mut attacker = Conn::open(&server).await;
    let attempt = Scram::new("guess");
    assert_ok(&sasl_start(&mut attacker, &attempt, true).await);
    assert_eq!(code(&sasl_continue(&mut attacker, &recorded).await), 18);
    assert_eq!(code(&attacker.command(find("shop")).await), 13);
    // ...nor can it be sent again on its own connection.
    let mut replay = Conn::open(&server).await;
    assert_eq!(code(&sasl_continue(&mut replay, &recorded).await), 18);
}

#[tokio::test]
async fn speculative_authentication_in_hello() {
    let server = secured().await;
    let mut conn = Conn::open(&server).await;
    let scram = Scram::new(PASSWORD);
    let hello = conn
        .command(
            doc! {"hello": 1, "$db": "admin", "speculativeAuthenticate": {
                "saslStart": 1, "mechanism": "SCRAM-SHA-256",
                "payload": binary(scram.first().as_bytes()),
                "options": {"skipEmptyExchange": true}, "db": "admin",
            }},
        )
        .await;
    assert_ok(&hello);
    let speculative = hello.get_document("speculativeAuthenticate").unwrap();
    assert_eq!(speculative.get_i32("conversationId").unwrap(), 1);
    let (last, expected) = scram.last(&payload(speculative));
    let reply = sasl_continue(&mut conn, &last).await;
    assert_ok(&reply);
    assert!(reply.get_bool("done").unwrap());
    assert_eq!(payload(&reply), expected);
    assert!(ok(&conn.command(find("shop")).await));
}

#[tokio::test]
async fn without_credentials_nothing_is_required() {
    let server = start().await;
    let mut conn = Conn::open(&server).await;
    assert!(ok(&conn.command(find("shop")).await));
    // Authenticating against a gateway without users fails as MongoDB's
    // does for an unknown user.
    let reply = sasl_start(&mut conn, &Scram::new(PASSWORD), true).await;
    assert_eq!(code(&reply), 18);
}
