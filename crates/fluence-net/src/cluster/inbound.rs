//! Reading the cluster streams other members open: each frame is checked
//! and handed to its (dataset, channel) queue.

use std::sync::{Arc, Weak};

use commonware_runtime::IoBuf;
use fluence_proto::DatasetId;
use futures::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{Member, Shared, CHANNEL_IDS_MAX, DATASET_PREFIX_LEN};
use crate::frame::{Frame, FrameKind, FrameReader};
use crate::streams::InboundStream;

/// Accepts inbound cluster streams until the transport shuts down (the
/// task is aborted, which ends every stream it reads).
pub async fn accept(shared: Weak<Shared>, mut streams: mpsc::Receiver<InboundStream>) {
    let mut reading = JoinSet::new();
    loop {
        tokio::select! {
            accepted = streams.recv() => {
                let Some(accepted) = accepted else { return };
                let Some(shared) = shared.upgrade() else { return };
                // Any node may open a stream (it may share a cluster with
                // this one, or ask for a membership); what it sends is
                // delivered only to the datasets it is a member of.
                let Some(member) = Member::from_peer(&accepted.peer) else {
                    tracing::debug!(peer = %accepted.peer, "closing a cluster stream from a peer without an ed25519 id");
                    continue;
                };
                reading.spawn(read(shared, member, accepted));
            }
            // Reap finished readers so the set does not grow.
            Some(_) = reading.join_next(), if !reading.is_empty() => {}
        }
    }
}

/// Why a frame ends the stream it came on.
#[derive(Debug, PartialEq, Eq)]
pub enum BadFrame {
    NotCluster(FrameKind),
    NoDataset(usize),
    Channel(u64),
}

/// Splits a cluster frame into (dataset, channel, message).
pub fn parse(frame: Frame) -> Result<(DatasetId, u64, IoBuf), BadFrame> {
    if frame.kind != FrameKind::Cluster {
        return Err(BadFrame::NotCluster(frame.kind));
    }
    if frame.id >= CHANNEL_IDS_MAX {
        return Err(BadFrame::Channel(frame.id));
    }
    if frame.payload.len() < DATASET_PREFIX_LEN {
        return Err(BadFrame::NoDataset(frame.payload.len()));
    }
    let mut dataset = [0u8; DATASET_PREFIX_LEN];
    dataset.copy_from_slice(&frame.payload[..DATASET_PREFIX_LEN]);
    let message = IoBuf::from(frame.payload).slice(DATASET_PREFIX_LEN..);
    Ok((DatasetId(dataset), frame.id, message))
}

async fn read(shared: Arc<Shared>, member: Member, accepted: InboundStream) {
    let InboundStream { stream, token, .. } = accepted;
    let (read, _write) = stream.split();
    let mut reader = FrameReader::new(read);
    loop {
        let frame = match reader.next().await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(error) => {
                tracing::debug!(member = %member.key, %error, "closing a cluster stream after a bad frame");
                break;
            }
        };
        let (dataset, channel, message) = match parse(frame) {
            Ok(parsed) => parsed,
            Err(bad) => {
                tracing::debug!(member = %member.key, ?bad, "closing a cluster stream after a malformed frame");
                break;
            }
        };
        if shared.peers.is_blocked(&member.consensus) {
            continue;
        }
        shared.deliver(&member, dataset, channel, message);
    }
    drop(token);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_into_dataset_channel_and_message() {
        let mut payload = vec![7u8; DATASET_PREFIX_LEN];
        payload.extend_from_slice(b"vote");
        let (dataset, channel, message) = parse(Frame::cluster(3, payload)).unwrap();
        assert_eq!(dataset, DatasetId([7; 32]));
        assert_eq!(channel, 3);
        assert_eq!(message.as_ref(), b"vote");
        // An empty message is allowed; a missing dataset id is not.
        assert!(parse(Frame::cluster(0, vec![1; DATASET_PREFIX_LEN])).is_ok());
        assert_eq!(
            parse(Frame::cluster(0, vec![1; DATASET_PREFIX_LEN - 1])).unwrap_err(),
            BadFrame::NoDataset(DATASET_PREFIX_LEN - 1)
        );
        assert_eq!(
            parse(Frame::cluster(CHANNEL_IDS_MAX, vec![0; 40])).unwrap_err(),
            BadFrame::Channel(CHANNEL_IDS_MAX)
        );
        assert_eq!(
            parse(Frame::request(0, vec![0; 40])).unwrap_err(),
            BadFrame::NotCluster(FrameKind::Request)
        );
    }
}
