//! What the server remembers about one connection: its id and peer, and
//! where it stands in authentication.

use std::net::SocketAddr;

use crate::auth::Conversation;

/// One client connection's state, owned by its task.
#[derive(Debug)]
pub struct Session {
    /// Positive, unique per `serve` (MongoDB's `connectionId`).
    pub id: i64,
    pub peer: SocketAddr,
    pub(crate) sasl: SaslState,
    /// The authenticated user and the database it authenticated against.
    pub(crate) user: Option<(String, String)>,
}

/// Progress of a SCRAM conversation on this connection.
#[derive(Debug, Default)]
pub(crate) enum SaslState {
    #[default]
    Idle,
    /// The server-first message was sent; the client's proof is due.
    AwaitingProof {
        conversation: Conversation,
        db: String,
        /// The client asked to finish without the empty last round trip.
        skip_empty_exchange: bool,
    },
    /// The proof was accepted; MongoDB's protocol still expects one empty
    /// `saslContinue` before it reports `done`.
    AwaitingEmpty,
}

impl Session {
    pub fn new(id: i64, peer: SocketAddr) -> Session {
        Session {
            id,
            peer,
            sasl: SaslState::Idle,
            user: None,
        }
    }

    pub fn is_authenticated(&self) -> bool {
        self.user.is_some()
    }
}
