//! Writing frames to a stream: every frame already queued goes out with the
//! one before it, so concurrent requests (or answers) share a write.

use std::future::Future;
use std::io;

use futures::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::frame::Frame;

/// Where a writer takes its frames from: a channel, or a cluster peer's
/// prioritised queue.
pub trait FrameSource: Send {
    /// The next frame, waiting for one; `None` once no more will come.
    fn recv(&mut self) -> impl Future<Output = Option<Frame>> + Send;
    /// The next frame if one is queued now.
    fn try_recv(&mut self) -> Option<Frame>;
}

impl FrameSource for mpsc::Receiver<Frame> {
    fn recv(&mut self) -> impl Future<Output = Option<Frame>> + Send {
        mpsc::Receiver::recv(self)
    }

    fn try_recv(&mut self) -> Option<Frame> {
        mpsc::Receiver::try_recv(self).ok()
    }
}

/// Bytes gathered before a write. yamux sends each write of up to 16 KiB
/// as one frame, and each frame is one noise message and one `sendto`, so
/// batches of that size cost one system call each.
const BATCH_LEN_MAX: usize = 16 * 1024;

/// Writes the frames received from `frames` to `io`, coalescing those
/// that are queued together, until the source ends; then closes `io`.
pub async fn write_frames<W: AsyncWrite + Unpin, S: FrameSource>(
    mut io: W,
    mut frames: S,
) -> io::Result<()> {
    let mut batch = Vec::with_capacity(BATCH_LEN_MAX);
    while let Some(first) = frames.recv().await {
        let mut next = Some(first);
        while let Some(frame) = next.take() {
            batch.extend_from_slice(&frame.header());
            if batch.len() + frame.payload.len() <= BATCH_LEN_MAX {
                batch.extend_from_slice(&frame.payload);
            } else {
                // Large payloads are written from their own buffer rather
                // than copied into the batch.
                io.write_all(&batch).await?;
                batch.clear();
                io.write_all(&frame.payload).await?;
            }
            if batch.len() < BATCH_LEN_MAX {
                next = frames.try_recv();
            }
        }
        if !batch.is_empty() {
            io.write_all(&batch).await?;
            batch.clear();
        }
        io.flush().await?;
    }
    io.close().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameReader;
    use futures::io::Cursor;

    /// Records the size of every write, to check that queued frames share
    /// writes and that nothing is lost or reordered.
    #[derive(Default)]
    struct Recorder {
        bytes: Vec<u8>,
        writes: Vec<usize>,
        closed: bool,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            self.bytes.extend_from_slice(buf);
            self.writes.push(buf.len());
            std::task::Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_close(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            self.closed = true;
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn queued_frames_share_writes_in_order() {
        let (tx, rx) = mpsc::channel(64);
        let mut sent = Vec::new();
        for id in 0..40u64 {
            // Mostly small frames, one larger than a batch.
            let len = if id == 20 { BATCH_LEN_MAX * 2 } else { 100 };
            let frame = Frame::response(id, vec![id as u8; len]);
            sent.push(frame.clone());
            tx.send(frame).await.unwrap();
        }
        drop(tx);
        let mut recorder = Recorder::default();
        write_frames(&mut recorder, rx).await.unwrap();
        assert!(recorder.closed);
        // 40 frames: far fewer writes than frames.
        assert!(recorder.writes.len() <= 6, "{:?}", recorder.writes);
        assert!(recorder.writes.iter().all(|&n| n <= BATCH_LEN_MAX * 2));
        let mut reader = FrameReader::new(Cursor::new(recorder.bytes));
        let mut received = Vec::new();
        while let Some(frame) = reader.next().await.unwrap() {
            received.push(frame);
        }
        assert_eq!(received, sent);
    }
}
