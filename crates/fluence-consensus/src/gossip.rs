//! The channels the replica adds to consensus: submitted writes, so any
//! member's turn as leader can include them, state-root attestations, and
//! proposed membership changes. All carry canonical `fluence_proto`
//! encodings, decoded with their bounds; anything undecodable or
//! unauthorised is dropped.

use std::sync::Arc;

use commonware_cryptography::ed25519;
use commonware_p2p::Receiver;
use fluence_chain::SignedAttestation;
use fluence_proto::limits::BLOCK_LEN_MAX;
use fluence_proto::{Decode, MembershipChange, SignedWrite};
use fluence_store::OreOrder;
use tracing::debug;

use crate::keys::to_public_key;
use crate::member::Member;

/// Decodes each message on `receiver` (at most half a block; larger or
/// undecodable ones are dropped) and hands it to `keep`, until the
/// channel closes.
async fn receive_each<T: Decode, E: std::fmt::Display>(
    mut receiver: impl Receiver<PublicKey = ed25519::PublicKey>,
    what: &'static str,
    mut keep: impl FnMut(&ed25519::PublicKey, T) -> Result<(), E>,
) {
    while let Ok((sender, message)) = receiver.recv().await {
        let bytes = message.as_ref();
        if bytes.len() > BLOCK_LEN_MAX / 2 {
            continue;
        }
        let Ok(item) = T::from_bytes(bytes) else {
            debug!(sender = %sender, what, "undecodable");
            continue;
        };
        if let Err(error) = keep(&sender, item) {
            debug!(sender = %sender, what, %error, "not kept");
        }
    }
}

/// Admits writes other members forward, until the channel closes.
pub async fn receive_submissions<O: OreOrder>(
    member: Arc<Member<O>>,
    receiver: impl Receiver<PublicKey = ed25519::PublicKey>,
) {
    receive_each(receiver, "forwarded write", |_, write: SignedWrite| {
        member.admit(write, false).map(drop)
    })
    .await;
}

/// Keeps attestations members send, until the channel closes.
pub async fn receive_attestations<O: OreOrder>(
    member: Arc<Member<O>>,
    receiver: impl Receiver<PublicKey = ed25519::PublicKey>,
) {
    receive_each(
        receiver,
        "attestation",
        |sender, attestation: SignedAttestation| {
            member.receive_attestation(&to_public_key(sender), attestation);
            Ok::<(), std::convert::Infallible>(())
        },
    )
    .await;
}

/// Keeps membership changes members propose (checked by
/// [`Member::receive_change`]), until the channel closes.
pub async fn receive_changes<O: OreOrder>(
    member: Arc<Member<O>>,
    receiver: impl Receiver<PublicKey = ed25519::PublicKey>,
) {
    receive_each(
        receiver,
        "membership change",
        |_, change: MembershipChange| member.receive_change(change),
    )
    .await;
}
