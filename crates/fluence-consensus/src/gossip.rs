//! The two channels the replica adds to consensus: submitted writes, so
//! any member's turn as leader can include them, and state-root
//! attestations. Both carry canonical `fluence_proto` encodings, decoded
//! with their bounds; anything undecodable or unauthorised is dropped.

use std::sync::Arc;

use commonware_cryptography::ed25519;
use commonware_p2p::Receiver;
use fluence_chain::SignedAttestation;
use fluence_proto::limits::BLOCK_LEN_MAX;
use fluence_proto::{Decode, SignedWrite};
use fluence_store::OreOrder;
use tracing::debug;

use crate::keys::to_public_key;
use crate::member::Member;

/// Admits writes other members forward, until the channel closes.
pub async fn receive_submissions<O: OreOrder>(
    member: Arc<Member<O>>,
    mut receiver: impl Receiver<PublicKey = ed25519::PublicKey>,
) {
    while let Ok((sender, message)) = receiver.recv().await {
        let bytes = message.as_ref();
        if bytes.len() > BLOCK_LEN_MAX / 2 {
            continue;
        }
        let Ok(write) = SignedWrite::from_bytes(bytes) else {
            debug!(sender = %sender, "undecodable forwarded write");
            continue;
        };
        if let Err(error) = member.admit(write, false) {
            debug!(sender = %sender, %error, "forwarded write not admitted");
        }
    }
}

/// Keeps attestations members send, until the channel closes.
pub async fn receive_attestations<O: OreOrder>(
    member: Arc<Member<O>>,
    mut receiver: impl Receiver<PublicKey = ed25519::PublicKey>,
) {
    while let Ok((sender, message)) = receiver.recv().await {
        let Ok(attestation) = SignedAttestation::from_bytes(message.as_ref()) else {
            continue;
        };
        member.receive_attestation(&to_public_key(&sender), attestation);
    }
}

/// Keeps membership changes members propose (checked by
/// [`Member::receive_change`]), until the channel closes.
pub async fn receive_changes<O: OreOrder>(
    member: Arc<Member<O>>,
    mut receiver: impl Receiver<PublicKey = ed25519::PublicKey>,
) {
    while let Ok((sender, message)) = receiver.recv().await {
        let bytes = message.as_ref();
        if bytes.len() > BLOCK_LEN_MAX / 2 {
            continue;
        }
        let Ok(change) = fluence_proto::MembershipChange::from_bytes(bytes) else {
            debug!(sender = %sender, "undecodable membership change");
            continue;
        };
        if let Err(error) = member.receive_change(change) {
            debug!(sender = %sender, %error, "membership change not kept");
        }
    }
}
