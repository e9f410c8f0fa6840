//! The frame format of `/fluence/rpc/2`: many requests and responses
//! multiplexed over one long-lived stream, matched by request id. The
//! node-to-node `/fluence/cluster/1` streams use the same frames (see
//! [`crate::cluster`]).
//!
//! ```text
//! offset  size  field
//!      0     4  payload length, u32 little-endian, at most MESSAGE_LEN_MAX
//!      4     8  request id, u64 little-endian: chosen by the client,
//!               echoed by the node in the answer (cluster frames: the
//!               channel id)
//!     12     1  kind: 0 request, 1 response, 2 failure, 3 cluster message
//!     13     n  payload
//! ```
//!
//! A request carries encoded `fluence_proto` bytes and a response the
//! node's answer to them; decoding happens above this layer, so a node
//! answers a malformed request with a typed error rather than dropping the
//! stream. A failure says the node could not produce an answer at all (its
//! handler failed, or the answer exceeded the size limit); its payload is
//! a UTF-8 reason of at most [`FAILURE_REASON_LEN_MAX`] bytes. Lengths are
//! checked before anything is allocated, and any malformed frame ends the
//! stream: there is no way to resynchronise a byte stream after it.

use std::io;

use fluence_proto::limits::MESSAGE_LEN_MAX;
use futures::{AsyncRead, AsyncReadExt};
use libp2p::StreamProtocol;

/// The protocol name negotiated (once per stream) with multistream-select.
pub const RPC_PROTOCOL: StreamProtocol = StreamProtocol::new("/fluence/rpc/2");

/// Bytes before each payload: length, request id and kind.
pub const HEADER_LEN: usize = 13;

/// A failure reason is a short human-readable sentence, never a payload.
pub const FAILURE_REASON_LEN_MAX: usize = 1024;

/// Bytes read from the stream at a time; frames smaller than this are
/// parsed out of one buffer, so a read that returns several of them costs
/// one call into the stream.
const READ_BUFFER_LEN: usize = 64 * 1024;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Client to node: a request.
    Request,
    /// Node to client: the answer to the request with the same id.
    Response,
    /// Node to client: the request with the same id got no answer; the
    /// payload says why.
    Failure,
    /// Member to member, only on `/fluence/cluster/1` streams: a consensus
    /// message; the id is its channel, the payload the dataset id and the
    /// message.
    Cluster,
}

impl FrameKind {
    fn to_byte(self) -> u8 {
        match self {
            FrameKind::Request => 0,
            FrameKind::Response => 1,
            FrameKind::Failure => 2,
            FrameKind::Cluster => 3,
        }
    }

    fn from_byte(byte: u8) -> Option<FrameKind> {
        match byte {
            0 => Some(FrameKind::Request),
            1 => Some(FrameKind::Response),
            2 => Some(FrameKind::Failure),
            3 => Some(FrameKind::Cluster),
            _ => None,
        }
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub id: u64,
    pub kind: FrameKind,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn request(id: u64, payload: Vec<u8>) -> Frame {
        Frame {
            id,
            kind: FrameKind::Request,
            payload,
        }
    }

    pub fn response(id: u64, payload: Vec<u8>) -> Frame {
        Frame {
            id,
            kind: FrameKind::Response,
            payload,
        }
    }

    /// A cluster message on `channel` (its payload starts with the dataset
    /// id; see [`crate::cluster`]).
    pub fn cluster(channel: u64, payload: Vec<u8>) -> Frame {
        Frame {
            id: channel,
            kind: FrameKind::Cluster,
            payload,
        }
    }

    /// A failure frame; `reason` is cut to [`FAILURE_REASON_LEN_MAX`] bytes
    /// (at a character boundary).
    pub fn failure(id: u64, reason: &str) -> Frame {
        let mut end = reason.len().min(FAILURE_REASON_LEN_MAX);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        Frame {
            id,
            kind: FrameKind::Failure,
            payload: reason.as_bytes()[..end].to_vec(),
        }
    }

    /// The header that goes on the wire before `self.payload`.
    ///
    /// The payload must already be within [`MESSAGE_LEN_MAX`]: senders check
    /// it when the frame is made (see [`FrameError::Oversized`]).
    pub fn header(&self) -> [u8; HEADER_LEN] {
        assert!(
            self.payload.len() <= MESSAGE_LEN_MAX,
            "frame payload of {} bytes was not checked against the limit",
            self.payload.len()
        );
        let mut header = [0u8; HEADER_LEN];
        // MESSAGE_LEN_MAX < u32::MAX, so the cast cannot truncate.
        header[0..4].copy_from_slice(&(self.payload.len() as u32).to_le_bytes());
        header[4..12].copy_from_slice(&self.id.to_le_bytes());
        header[12] = self.kind.to_byte();
        header
    }

    /// The reason carried by a failure frame, lossily decoded.
    pub fn reason(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// Why a stream of frames could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the maximum {MESSAGE_LEN_MAX}")]
    Oversized(usize),
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("failure reason of {0} bytes exceeds the maximum {FAILURE_REASON_LEN_MAX}")]
    ReasonTooLong(usize),
    #[error("stream ended inside a frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads frames from a byte stream, buffering so that small frames that
/// arrive together are parsed without further reads.
pub struct FrameReader<R> {
    io: R,
    buffer: Box<[u8]>,
    /// `buffer[start..end]` holds bytes read but not yet parsed.
    start: usize,
    end: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(io: R) -> Self {
        FrameReader {
            io,
            buffer: vec![0u8; READ_BUFFER_LEN].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// The next frame, or `None` when the stream ended cleanly between
    /// frames.
    pub async fn next(&mut self) -> Result<Option<Frame>, FrameError> {
        while self.end - self.start < HEADER_LEN {
            if !self.fill().await? {
                return if self.start == self.end {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated)
                };
            }
        }
        let header = &self.buffer[self.start..self.start + HEADER_LEN];
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
        let id = u64::from_le_bytes(header[4..12].try_into().expect("8 bytes"));
        let kind = FrameKind::from_byte(header[12]).ok_or(FrameError::UnknownKind(header[12]))?;
        if len > MESSAGE_LEN_MAX {
            return Err(FrameError::Oversized(len));
        }
        if kind == FrameKind::Failure && len > FAILURE_REASON_LEN_MAX {
            return Err(FrameError::ReasonTooLong(len));
        }
        self.start += HEADER_LEN;
        let payload = self.read_payload(len).await?;
        Ok(Some(Frame { id, kind, payload }))
    }

    async fn read_payload(&mut self, len: usize) -> Result<Vec<u8>, FrameError> {
        if len <= self.buffer.len() {
            // Small: gather it in the buffer, then copy it out once.
            while self.end - self.start < len {
                if !self.fill().await? {
                    return Err(FrameError::Truncated);
                }
            }
            let payload = self.buffer[self.start..self.start + len].to_vec();
            self.start += len;
            return Ok(payload);
        }
        // Large: take what is buffered, then read the rest straight into
        // the payload instead of through the buffer. `len` was bounded by
        // MESSAGE_LEN_MAX before this allocation.
        let mut payload = vec![0u8; len];
        let buffered = self.end - self.start;
        payload[..buffered].copy_from_slice(&self.buffer[self.start..self.end]);
        self.start = 0;
        self.end = 0;
        self.io
            .read_exact(&mut payload[buffered..])
            .await
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => FrameError::Truncated,
                _ => FrameError::Io(e),
            })?;
        Ok(payload)
    }

    /// Reads more bytes after the unparsed ones; `false` at end of stream.
    async fn fill(&mut self) -> Result<bool, FrameError> {
        if self.start > 0 {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        assert!(self.end < self.buffer.len(), "fill called on a full buffer");
        let read = self.io.read(&mut self.buffer[self.end..]).await?;
        self.end += read;
        Ok(read > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    fn encode(frames: &[Frame]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for frame in frames {
            bytes.extend_from_slice(&frame.header());
            bytes.extend_from_slice(&frame.payload);
        }
        bytes
    }

    async fn read_all(bytes: Vec<u8>) -> Result<Vec<Frame>, FrameError> {
        let mut reader = FrameReader::new(Cursor::new(bytes));
        let mut frames = Vec::new();
        while let Some(frame) = reader.next().await? {
            frames.push(frame);
        }
        Ok(frames)
    }

    #[tokio::test]
    async fn frames_of_every_kind_and_size_round_trip() {
        let big: Vec<u8> = (0..READ_BUFFER_LEN * 3 + 7).map(|i| i as u8).collect();
        let frames = vec![
            Frame::request(1, b"hello".to_vec()),
            Frame::response(u64::MAX, Vec::new()),
            Frame::failure(7, "no answer"),
            Frame::request(2, big),
            Frame::response(3, vec![9; READ_BUFFER_LEN]),
            Frame::request(4, vec![1; READ_BUFFER_LEN - HEADER_LEN]),
        ];
        assert_eq!(read_all(encode(&frames)).await.unwrap(), frames);
    }

    #[tokio::test]
    async fn oversized_length_is_refused_before_reading() {
        let mut bytes = ((MESSAGE_LEN_MAX + 1) as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 9]);
        bytes.extend_from_slice(&[0; 16]);
        let err = read_all(bytes).await.unwrap_err();
        assert!(matches!(err, FrameError::Oversized(len) if len == MESSAGE_LEN_MAX + 1));
    }

    #[tokio::test]
    async fn unknown_kind_and_long_reason_are_refused() {
        let mut bytes = encode(&[Frame::request(1, b"x".to_vec())]);
        bytes[12] = 9;
        assert!(matches!(
            read_all(bytes).await.unwrap_err(),
            FrameError::UnknownKind(9)
        ));
        let mut long = Frame::failure(1, "");
        long.payload = vec![b'a'; FAILURE_REASON_LEN_MAX + 1];
        assert!(matches!(
            read_all(encode(&[long])).await.unwrap_err(),
            FrameError::ReasonTooLong(_)
        ));
    }

    #[tokio::test]
    async fn truncated_frames_are_errors_and_clean_ends_are_not() {
        let bytes = encode(&[Frame::request(1, b"abcdef".to_vec())]);
        for cut in 1..bytes.len() {
            let err = read_all(bytes[..cut].to_vec()).await.unwrap_err();
            assert!(matches!(err, FrameError::Truncated), "cut at {cut}: {err}");
        }
        let big = encode(&[Frame::request(1, vec![5; READ_BUFFER_LEN * 2])]);
        assert!(matches!(
            read_all(big[..big.len() - 1].to_vec()).await.unwrap_err(),
            FrameError::Truncated
        ));
        assert!(read_all(Vec::new()).await.unwrap().is_empty());
    }

    #[test]
    fn failure_reasons_are_cut_at_a_character_boundary() {
        let reason = "é".repeat(FAILURE_REASON_LEN_MAX);
        let frame = Frame::failure(1, &reason);
        assert!(frame.payload.len() <= FAILURE_REASON_LEN_MAX);
        assert!(std::str::from_utf8(&frame.payload).is_ok());
    }
}
