//! The client half of SCRAM-SHA-256 (RFC 5802, RFC 7677), written from the
//! RFCs independently of the gateway's server side, so tests check one
//! against the other. The user name is sent unescaped: test users hold no
//! `,` or `=`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// One client conversation: user, password and a fresh client nonce.
pub struct ScramClient {
    user: String,
    password: String,
    nonce: String,
}

/// The client's proof message and the server signature that must answer it.
pub struct ClientFinal {
    /// `c=biws,r=<nonce>,p=<proof>`.
    pub message: String,
    /// `v=<server signature>`, as the server's final message must read.
    pub server_signature: String,
}

impl ScramClient {
    pub fn new(user: &str, password: &str) -> Self {
        ScramClient {
            user: user.into(),
            password: password.into(),
            nonce: BASE64.encode(rand::random::<[u8; 18]>()),
        }
    }

    /// The client nonce.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// `n=<user>,r=<nonce>`.
    pub fn first_bare(&self) -> String {
        format!("n={},r={}", self.user, self.nonce)
    }

    /// The client-first message, without channel binding: `n,,` and the bare part.
    pub fn first(&self) -> String {
        format!("n,,{}", self.first_bare())
    }

    /// The answer to `server_first`, with the combined nonce the server sent.
    pub fn last(&self, server_first: &str) -> ClientFinal {
        self.last_with_nonce(server_first, &server_field(server_first, "r="))
    }

    /// The answer to `server_first` claiming `nonce` (a test may forge it).
    pub fn last_with_nonce(&self, server_first: &str, nonce: &str) -> ClientFinal {
        let salt = BASE64
            .decode(server_field(server_first, "s="))
            .expect("server salt is base64");
        let iterations: u32 = server_field(server_first, "i=")
            .parse()
            .expect("server iteration count is a number");
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(self.password.as_bytes(), &salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare());
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_signature = hmac(&hmac(&salted, b"Server Key"), auth_message.as_bytes());
        ClientFinal {
            message: format!("{without_proof},p={}", BASE64.encode(proof)),
            server_signature: format!("v={}", BASE64.encode(server_signature)),
        }
    }
}

/// The value of attribute `name` (with its `=`) in a SCRAM message.
pub fn server_field(message: &str, name: &str) -> String {
    message
        .split(',')
        .find_map(|f| f.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {message:?}"))
        .to_string()
}

/// A SASL payload as drivers send it: generic BSON binary.
pub fn sasl_binary(bytes: &[u8]) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    })
}

/// The SASL payload of a `saslStart`/`saslContinue` reply, as text.
pub fn sasl_payload(reply: &Document) -> String {
    match reply.get("payload") {
        Some(Bson::Binary(b)) => String::from_utf8(b.bytes.clone()).expect("payload is UTF-8"),
        other => panic!("no payload in {reply}: {other:?}"),
    }
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3: the SCRAM-SHA-256 example conversation.
    #[test]
    fn matches_the_rfc_7677_example() {
        let client = ScramClient {
            user: "user".into(),
            password: "pencil".into(),
            nonce: "rOprNGfwEbeRWgbNEkqO".into(),
        };
        assert_eq!(client.first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let last = client.last(server_first);
        assert_eq!(
            last.message,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            last.server_signature,
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }
}
