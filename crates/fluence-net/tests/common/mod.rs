//! Helpers shared by the loopback tests: a peer that opens a stream with a
//! bare swarm and writes raw bytes on it.

#![allow(dead_code)]

use std::time::Duration;

use fluence_net::streams::RpcStreams;
use fluence_net::{Multiaddr, PeerId};
use futures::StreamExt;
use libp2p::identity::Keypair;

/// Far above anything these tests should take: reaching it means a hang.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

pub async fn guarded<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, future)
        .await
        .expect("hang guard reached")
}

/// Opens a stream of `behaviour`'s protocol to `peer` at `addrs`, as the
/// holder of `keypair`, with a swarm of its own. The returned task polls
/// that swarm; it must run (be kept) for as long as the stream is used.
pub async fn open_raw_stream(
    keypair: Keypair,
    behaviour: RpcStreams,
    peer: PeerId,
    addrs: Vec<Multiaddr>,
) -> (libp2p::Stream, tokio::task::JoinHandle<()>) {
    let mut swarm = fluence_net::swarm::build(keypair, behaviour).unwrap();
    let (reply, stream) = tokio::sync::oneshot::channel();
    swarm.behaviour_mut().open_stream(peer, addrs, reply);
    let mut stream = std::pin::pin!(stream);
    let stream = guarded(async {
        loop {
            tokio::select! {
                opened = &mut stream => return opened.unwrap().unwrap(),
                _ = swarm.select_next_some() => {}
            }
        }
    })
    .await;
    let driver = tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    (stream, driver)
}
