//! SCRAM-SHA-256 over real loopback sockets: a gateway configured with a
//! user refuses data commands until the connection authenticates, and
//! wrong passwords, wrong nonces and replayed proofs all fail. The client
//! side of SCRAM (`fluence_testkit::scram`) is written from RFC 5802/7677,
//! independently of the server's code.

mod common;

use bson::{doc, Bson, Document};
use common::*;
use fluence_mongo::{Credentials, ServeOptions};
use fluence_testkit::scram::{sasl_binary, sasl_payload, ClientFinal, ScramClient};

const USER: &str = "owner";
const PASSWORD: &str = "correct horse";

async fn secured() -> Server {
    start_with(ServeOptions {
        credentials: Some(Credentials::new(USER, PASSWORD).expect("credentials")),
    })
    .await
}

/// A conversation as `USER` with `password`.
fn conversation(password: &str) -> ScramClient {
    ScramClient::new(USER, password)
}

async fn sasl_start(conn: &mut Conn, scram: &ScramClient, skip_empty: bool) -> Document {
    conn.command(doc! {
        "saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": sasl_binary(scram.first().as_bytes()),
        "autoAuthorize": 1, "options": {"skipEmptyExchange": skip_empty}, "$db": "admin",
    })
    .await
}

async fn sasl_continue(conn: &mut Conn, message: &str) -> Document {
    conn.command(doc! {
        "saslContinue": 1, "conversationId": 1, "payload": sasl_binary(message.as_bytes()),
        "$db": "admin",
    })
    .await
}

/// Authenticates `conn` the long way (with the empty last exchange) and
/// returns the client-final message it sent.
async fn authenticate(conn: &mut Conn) -> String {
    let scram = conversation(PASSWORD);
    let first = sasl_start(conn, &scram, false).await;
    assert_ok(&first);
    assert!(!first.get_bool("done").unwrap());
    let ClientFinal {
        message: last,
        server_signature: expected,
    } = scram.last(&sasl_payload(&first));
    let reply = sasl_continue(conn, &last).await;
    assert_ok(&reply);
    assert_eq!(sasl_payload(&reply), expected, "server signature");
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
    let scram = conversation("wrong horse");
    let first = sasl_start(&mut conn, &scram, true).await;
    assert_ok(&first);
    let last = scram.last(&sasl_payload(&first)).message;
    let reply = sasl_continue(&mut conn, &last).await;
    assert_eq!(code(&reply), 18);
    assert_eq!(reply.get_str("codeName").unwrap(), "AuthenticationFailed");
    assert_eq!(reply.get_str("errmsg").unwrap(), "Authentication failed.");
    assert_eq!(code(&conn.command(find("shop")).await), 13);
    let stranger = ScramClient::new("mallory", PASSWORD);
    let reply = sasl_start(&mut conn, &stranger, true).await;
    assert_eq!(code(&reply), 18);
    assert_eq!(reply.get_str("errmsg").unwrap(), "Authentication failed.");
    // Only SCRAM-SHA-256 is offered.
    let reply = conn
        .command(doc! {"saslStart": 1, "mechanism": "SCRAM-SHA-1",
        "payload": sasl_binary(b"n,,n=owner,r=abc"), "$db": "admin"})
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
    let scram = conversation(PASSWORD);
    let first = sasl_payload(&sasl_start(&mut conn, &scram, true).await);
    let forged = scram
        .last_with_nonce(&first, &format!("{}AAAA", scram.nonce()))
        .message;
    assert_eq!(code(&sasl_continue(&mut conn, &forged).await), 18);
    assert_eq!(code(&conn.command(find("shop")).await), 13);

    // A proof recorded from a successful conversation...
    let mut victim = Conn::open(&server).await;
    let recorded = authenticate(&mut victim).await;
    // ...does not authenticate a new conversation on another connection,
    let mut attacker = Conn::open(&server).await;
    let attempt = conversation("guess");
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
    let scram = conversation(PASSWORD);
    let hello = conn
        .command(
            doc! {"hello": 1, "$db": "admin", "speculativeAuthenticate": {
                "saslStart": 1, "mechanism": "SCRAM-SHA-256",
                "payload": sasl_binary(scram.first().as_bytes()),
                "options": {"skipEmptyExchange": true}, "db": "admin",
            }},
        )
        .await;
    assert_ok(&hello);
    let speculative = hello.get_document("speculativeAuthenticate").unwrap();
    assert_eq!(speculative.get_i32("conversationId").unwrap(), 1);
    let ClientFinal {
        message: last,
        server_signature: expected,
    } = scram.last(&sasl_payload(speculative));
    let reply = sasl_continue(&mut conn, &last).await;
    assert_ok(&reply);
    assert!(reply.get_bool("done").unwrap());
    assert_eq!(sasl_payload(&reply), expected);
    assert!(ok(&conn.command(find("shop")).await));
}

#[tokio::test]
async fn without_credentials_nothing_is_required() {
    let server = start().await;
    let mut conn = Conn::open(&server).await;
    assert!(ok(&conn.command(find("shop")).await));
    // Authenticating against a gateway without users fails as MongoDB's
    // does for an unknown user.
    let reply = sasl_start(&mut conn, &conversation(PASSWORD), true).await;
    assert_eq!(code(&reply), 18);
}
