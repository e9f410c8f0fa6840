//! SCRAM-SHA-256 authentication (RFC 5802 with RFC 7677's SHA-256), as
//! MongoDB drivers speak it through `saslStart` / `saslContinue` and the
//! `speculativeAuthenticate` field of `hello`.
//!
//! The gateway holds one user. Its password never stays in memory: at
//! start-up it is SASLprep-normalised and stretched with PBKDF2 into the
//! stored key (`H(HMAC(salted, "Client Key"))`) and the server key, which
//! is all the server side of SCRAM needs. A proof is checked in constant
//! time. Each conversation has a fresh random server nonce and lives on
//! one connection until it succeeds or fails, so a proof recorded from one
//! conversation is worthless in another (the nonce is part of what is
//! signed) and cannot be replayed into the same one (it is gone).
//!
//! Any authentication database is accepted for the user (a gateway has one
//! user, and drivers authenticate against the database named in the
//! connection string unless told otherwise).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use unicode_normalization::UnicodeNormalization;

/// The only mechanism offered.
pub const MECHANISM: &str = "SCRAM-SHA-256";
/// PBKDF2 iterations, MongoDB's default `scramSHA256IterationCount`.
pub const SCRAM_ITERATIONS: u32 = 15_000;
/// Longest SASL payload accepted; real ones are about 100 bytes.
pub const SASL_PAYLOAD_MAX: usize = 4096;
/// Longest user name and password accepted in configuration.
pub const CREDENTIAL_LEN_MAX: usize = 1024;
const SALT_LEN: usize = 28;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Why credentials could not be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("the user name must not be empty")]
    EmptyUser,
    #[error("the password must not be empty")]
    EmptyPassword,
    #[error("the user name and password may be at most {CREDENTIAL_LEN_MAX} bytes")]
    TooLong,
    #[error(
        "the password contains a character SASLprep prohibits (a control or private-use character)"
    )]
    ProhibitedCharacter,
}

/// The one user of a gateway, as SCRAM's server side stores it.
#[derive(Clone)]
pub struct Credentials {
    user: String,
    salt: [u8; SALT_LEN],
    iterations: u32,
    stored_key: [u8; KEY_LEN],
    server_key: [u8; KEY_LEN],
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Derives the SCRAM keys of `user` / `password` with a fresh salt
    /// (about 10 ms of PBKDF2 on one core).
    pub fn new(user: &str, password: &str) -> Result<Credentials, CredentialsError> {
        Credentials::with_iterations(user, password, SCRAM_ITERATIONS)
    }

    fn with_iterations(
        user: &str,
        password: &str,
        iterations: u32,
    ) -> Result<Credentials, CredentialsError> {
        if user.is_empty() {
            return Err(CredentialsError::EmptyUser);
        }
        if password.is_empty() {
            return Err(CredentialsError::EmptyPassword);
        }
        if user.len() > CREDENTIAL_LEN_MAX || password.len() > CREDENTIAL_LEN_MAX {
            return Err(CredentialsError::TooLong);
        }
        let prepared = saslprep(password)?;
        let salt: [u8; SALT_LEN] = rand::random();
        let mut salted = [0u8; KEY_LEN];
        pbkdf2::pbkdf2_hmac::<Sha256>(prepared.as_bytes(), &salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        Ok(Credentials {
            user: user.to_string(),
            salt,
            iterations,
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        })
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; KEY_LEN] {
    // HMAC accepts keys of any length.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// SASLprep (RFC 4013) as drivers apply it to SCRAM-SHA-256 passwords:
/// non-ASCII spaces become spaces, characters "mapped to nothing" go,
/// NFKC; control and private-use characters are refused.
fn saslprep(password: &str) -> Result<String, CredentialsError> {
    if password.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Ok(password.to_string());
    }
    let mapped: String = password
        .chars()
        .filter(|c| {
            !matches!(*c as u32, 0xAD | 0x34F | 0x1806 | 0x180B..=0x180D | 0x200B..=0x200D
                | 0x2060 | 0xFE00..=0xFE0F | 0xFEFF)
        })
        .map(|c| {
            if c != ' ' && c.is_whitespace() {
                ' '
            } else {
                c
            }
        })
        .collect();
    let normalized: String = mapped.nfkc().collect();
    if normalized.chars().any(|c| {
        c.is_control()
            || matches!(c as u32, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD)
    }) {
        return Err(CredentialsError::ProhibitedCharacter);
    }
    Ok(normalized)
}

/// Why an authentication exchange failed. Clients are told only
/// "Authentication failed." (as MongoDB does); the reason is logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("unknown user")]
    UnknownUser,
    #[error("channel binding is not supported")]
    ChannelBinding,
    #[error("the nonce does not continue this conversation")]
    WrongNonce,
    #[error("invalid proof")]
    InvalidProof,
}

/// A conversation between the server's first and the client's final
/// message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// `client-first-message-bare , server-first-message ,`: the start of
    /// what both sides sign.
    auth_message_head: String,
    /// The whole nonce (client's then server's part) the final message
    /// must repeat.
    nonce: String,
    /// The GS2 header the client sent, base64-encoded as `c=` must repeat it.
    channel_binding: String,
}

/// Handles the client-first message; returns the conversation to keep and
/// the server-first message to send.
pub fn start(
    credentials: &Credentials,
    client_first: &[u8],
) -> Result<(Conversation, Vec<u8>), AuthError> {
    let text = std::str::from_utf8(client_first).map_err(|_| AuthError::Malformed("not UTF-8"))?;
    // gs2-header: "n" or "y" (no channel binding used), no authzid.
    let (gs2_header, bare) = match text.get(..3) {
        Some("n,," | "y,,") => (&text[..3], &text[3..]),
        Some(h) if h.starts_with("p=") || h.starts_with('p') => {
            return Err(AuthError::ChannelBinding)
        }
        _ => return Err(AuthError::Malformed("gs2 header")),
    };
    let mut fields = bare.split(',');
    let user = fields
        .next()
        .and_then(|f| f.strip_prefix("n="))
        .ok_or(AuthError::Malformed("user name"))?;
    let client_nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b','))
        .ok_or(AuthError::Malformed("client nonce"))?;
    if fields.any(|f| f.starts_with("m=")) {
        return Err(AuthError::Malformed("mandatory extension"));
    }
    if unescape_user(user)? != credentials.user {
        return Err(AuthError::UnknownUser);
    }
    let server_nonce: [u8; NONCE_LEN] = rand::random();
    let nonce = format!("{client_nonce}{}", BASE64.encode(server_nonce));
    let server_first = format!(
        "r={nonce},s={},i={}",
        BASE64.encode(credentials.salt),
        credentials.iterations
    );
    Ok((
        Conversation {
            auth_message_head: format!("{bare},{server_first},"),
            nonce,
            channel_binding: BASE64.encode(gs2_header),
        },
        server_first.into_bytes(),
    ))
}

/// `=2C` and `=3D` are the only escapes in a SCRAM user name.
fn unescape_user(user: &str) -> Result<String, AuthError> {
    let mut out = String::with_capacity(user.len());
    let mut rest = user;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(AuthError::Malformed("user name escape")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Handles the client-final message of `conversation`; returns the
/// server-final message (`v=` signature) when the proof is right.
pub fn finish(
    credentials: &Credentials,
    conversation: &Conversation,
    client_final: &[u8],
) -> Result<Vec<u8>, AuthError> {
    let text = std::str::from_utf8(client_final).map_err(|_| AuthError::Malformed("not UTF-8"))?;
    let (without_proof, proof) = text
        .rsplit_once(",p=")
        .ok_or(AuthError::Malformed("proof"))?;
    let mut fields = without_proof.split(',');
    let binding = fields
        .next()
        .and_then(|f| f.strip_prefix("c="))
        .ok_or(AuthError::Malformed("channel binding"))?;
    let nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .ok_or(AuthError::Malformed("nonce"))?;
    if binding != conversation.channel_binding {
        return Err(AuthError::ChannelBinding);
    }
    // Not secret: both nonces went over the wire in clear.
    if nonce != conversation.nonce {
        return Err(AuthError::WrongNonce);
    }
    let proof = BASE64
        .decode(proof)
        .map_err(|_| AuthError::Malformed("proof encoding"))?;
    if proof.len() != KEY_LEN {
        return Err(AuthError::InvalidProof);
    }
    let auth_message = format!("{}{without_proof}", conversation.auth_message_head);
    let client_signature = hmac(&credentials.stored_key, auth_message.as_bytes());
    let mut client_key = [0u8; KEY_LEN];
    for (i, byte) in client_key.iter_mut().enumerate() {
        *byte = proof[i] ^ client_signature[i];
    }
    let stored: [u8; KEY_LEN] = Sha256::digest(client_key).into();
    if !bool::from(stored.ct_eq(&credentials.stored_key)) {
        return Err(AuthError::InvalidProof);
    }
    let server_signature = hmac(&credentials.server_key, auth_message.as_bytes());
    Ok(format!("v={}", BASE64.encode(server_signature)).into_bytes())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The client side of SCRAM-SHA-256, written from the RFC for tests.
    pub(crate) struct TestClient {
        pub user: String,
        pub password: String,
        pub nonce: String,
    }

    impl TestClient {
        pub(crate) fn first(&self) -> String {
            format!("n,,n={},r={}", self.user, self.nonce)
        }

        /// The final message for `server_first`, and the server signature
        /// to expect.
        pub(crate) fn last(&self, server_first: &str) -> (String, String) {
            let mut nonce = "";
            let mut salt = Vec::new();
            let mut iterations = 0;
            for field in server_first.split(',') {
                if let Some(v) = field.strip_prefix("r=") {
                    nonce = v;
                } else if let Some(v) = field.strip_prefix("s=") {
                    salt = BASE64.decode(v).unwrap();
                } else if let Some(v) = field.strip_prefix("i=") {
                    iterations = v.parse().unwrap();
                }
            }
            let mut salted = [0u8; 32];
            pbkdf2::pbkdf2_hmac::<Sha256>(self.password.as_bytes(), &salt, iterations, &mut salted);
            let client_key = hmac(&salted, b"Client Key");
            let stored: [u8; 32] = Sha256::digest(client_key).into();
            let without_proof = format!("c=biws,r={nonce}");
            let auth = format!(
                "n={},r={},{server_first},{without_proof}",
                self.user, self.nonce
            );
            let signature = hmac(&stored, auth.as_bytes());
            let proof: Vec<u8> = client_key
                .iter()
                .zip(signature)
                .map(|(a, b)| a ^ b)
                .collect();
            let server_signature = hmac(&hmac(&salted, b"Server Key"), auth.as_bytes());
            (
                format!("{without_proof},p={}", BASE64.encode(proof)),
                format!("v={}", BASE64.encode(server_signature)),
            )
        }
    }

    fn creds() -> Credentials {
        Credentials::with_iterations("ann", "pencil", 4096).unwrap()
    }

    fn client(password: &str) -> TestClient {
        TestClient {
            user: "ann".into(),
            password: password.into(),
            nonce: "rOprNGfwEbeRWgbNEkqO".into(),
        }
    }

    #[test]
    fn a_correct_exchange_verifies_both_ways() {
        let creds = creds();
        let c = client("pencil");
        let (conversation, server_first) = start(&creds, c.first().as_bytes()).unwrap();
        let server_first = String::from_utf8(server_first).unwrap();
        assert!(server_first.starts_with("r=rOprNGfwEbeRWgbNEkqO"));
        assert!(server_first.ends_with(",i=4096"));
        let (last, expected_signature) = c.last(&server_first);
        let server_final = finish(&creds, &conversation, last.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(server_final).unwrap(), expected_signature);
    }

    #[test]
    fn wrong_password_nonce_or_user_fail() {
        let creds = creds();
        let (conversation, server_first) =
            start(&creds, client("pencil").first().as_bytes()).unwrap();
        let server_first = String::from_utf8(server_first).unwrap();
        let (wrong, _) = client("crayon").last(&server_first);
        assert_eq!(
            finish(&creds, &conversation, wrong.as_bytes()),
            Err(AuthError::InvalidProof)
        );
        // A proof from another conversation does not fit this one.
        let (other, other_first) = start(&creds, client("pencil").first().as_bytes()).unwrap();
        let (replayed, _) = client("pencil").last(&String::from_utf8(other_first).unwrap());
        assert_eq!(
            finish(&creds, &conversation, replayed.as_bytes()),
            Err(AuthError::WrongNonce)
        );
        assert!(finish(&creds, &other, replayed.as_bytes()).is_ok());
        let mut stranger = client("pencil");
        stranger.user = "bob".into();
        assert_eq!(
            start(&creds, stranger.first().as_bytes()).unwrap_err(),
            AuthError::UnknownUser
        );
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let creds = creds();
        for first in [
            &b""[..],
            b"n,",
            b"p=tls-unique,,n=ann,r=x",
            b"n,,r=x",
            b"n,,n=ann",
            b"n,,n=ann,r=",
            b"n,,n=a=ZZ,r=x",
            b"\xff\xfe",
        ] {
            assert!(start(&creds, first).is_err(), "{first:?}");
        }
        let (conversation, _) = start(&creds, client("pencil").first().as_bytes()).unwrap();
        for last in [
            &b""[..],
            b"c=biws",
            b"c=biws,r=x,p=!!!",
            b"c=eSws,r=x,p=AAAA",
            b"c=biws,p=AAAA",
        ] {
            assert!(finish(&creds, &conversation, last).is_err(), "{last:?}");
        }
    }

    #[test]
    fn credentials_are_checked_and_prepared() {
        assert_eq!(
            Credentials::new("", "x").unwrap_err(),
            CredentialsError::EmptyUser
        );
        assert_eq!(
            Credentials::new("u", "").unwrap_err(),
            CredentialsError::EmptyPassword
        );
        assert_eq!(saslprep("I\u{00AD}X").unwrap(), "IX");
        assert_eq!(saslprep("a\u{00A0}b").unwrap(), "a b");
        assert_eq!(saslprep("\u{2168}").unwrap(), "IX");
        assert!(saslprep("a\u{0007}").is_err());
        assert!(!format!("{:?}", creds()).contains("stored"));
        assert_eq!(unescape_user("a=2Cb=3D").unwrap(), "a,b=");
    }
}
