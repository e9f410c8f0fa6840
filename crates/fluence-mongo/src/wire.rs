//! MongoDB wire protocol framing: the 16-byte header, OP_MSG (kind 0 body,
//! kind 1 document sequences, CRC-32C checksums), OP_QUERY (only the legacy
//! handshake uses it) and OP_REPLY.
//!
//! Every decoder here takes bytes from the network: lengths are checked
//! against what is actually present before anything is sliced or
//! allocated, BSON nesting is bounded before the (recursive) conversion to
//! [`Document`], and every failure is a [`WireError`], never a panic.

use bson::raw::{RawBsonRef, RawDocument};
use bson::Document;

/// Largest message accepted or sent, as MongoDB's `maxMessageSizeBytes`.
pub const MESSAGE_SIZE_MAX: usize = 48_000_000;
/// Largest user document, as MongoDB's `maxBsonObjectSize`.
pub const BSON_OBJECT_SIZE_MAX: usize = 16 * 1024 * 1024;
/// A command body may exceed a user document by this much, so that a
/// command carrying a maximum-size document still fits (MongoDB's
/// `BSONObjMaxInternalSize`).
pub const COMMAND_SIZE_MAX: usize = BSON_OBJECT_SIZE_MAX + 16 * 1024;
/// Deepest BSON nesting accepted. The bson crate converts raw bytes to a
/// `Document` recursively, so an unbounded depth would let a 16 MB message
/// of nested empty documents overflow the stack. MongoDB's own limit for
/// stored documents is 100 levels; commands add a few levels around them.
pub const BSON_DEPTH_MAX: usize = 200;
/// Header length: messageLength, requestID, responseTo, opCode.
pub const HEADER_LEN: usize = 16;

pub const OP_REPLY: i32 = 1;
pub const OP_QUERY: i32 = 2004;
pub const OP_COMPRESSED: i32 = 2012;
pub const OP_MSG: i32 = 2013;

/// OP_MSG flag: a CRC-32C of the message follows the sections.
pub const FLAG_CHECKSUM_PRESENT: u32 = 1;
/// OP_MSG flag: the sender expects no reply.
pub const FLAG_MORE_TO_COME: u32 = 1 << 1;
/// OP_MSG flag: the client accepts exhaust replies (optional, ignorable).
pub const FLAG_EXHAUST_ALLOWED: u32 = 1 << 16;
/// The low 16 bits are "required": a receiver must refuse bits it does not
/// know there, so a future flag that changes the meaning of the message is
/// never silently ignored.
const REQUIRED_FLAGS_MASK: u32 = 0xffff;
const KNOWN_REQUIRED_FLAGS: u32 = FLAG_CHECKSUM_PRESENT | FLAG_MORE_TO_COME;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message length {0} is below the 16-byte header")]
    LengthTooSmall(i64),
    #[error("message length {0} is above the maximum of {MESSAGE_SIZE_MAX} bytes")]
    TooLarge(i64),
    #[error("message is truncated: {0}")]
    Truncated(&'static str),
    #[error("message header says {header} bytes but {actual} were given")]
    LengthMismatch { header: usize, actual: usize },
    #[error("unsupported opCode {0}")]
    UnsupportedOpCode(i32),
    #[error("OP_MSG has unknown required flag bits {0:#x}")]
    UnknownRequiredFlags(u32),
    #[error(
        "OP_MSG checksum mismatch: message says {expected:#010x}, content gives {actual:#010x}"
    )]
    ChecksumMismatch { expected: u32, actual: u32 },
    #[error("OP_MSG section kind {0} is unknown")]
    UnknownSectionKind(u8),
    #[error("OP_MSG has no body section")]
    MissingBody,
    #[error("OP_MSG has more than one body section")]
    DuplicateBody,
    #[error("OP_MSG document sequence {0:?} duplicates a field of the command")]
    DuplicateField(String),
    #[error("invalid BSON: {0}")]
    Bson(String),
    #[error("BSON document of {size} bytes is above the maximum of {max}")]
    DocumentTooLarge { size: usize, max: usize },
    #[error("BSON nesting deeper than {BSON_DEPTH_MAX} levels")]
    TooDeep,
    #[error("invalid C string: {0}")]
    CString(&'static str),
}

/// The standard message header, little-endian on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub message_length: i32,
    pub request_id: i32,
    pub response_to: i32,
    pub op_code: i32,
}

impl Header {
    /// Parses a header and checks its length field, so the caller can
    /// allocate the rest of the message knowing it is within bounds.
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Result<Header, WireError> {
        let int =
            |i: usize| i32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let header = Header {
            message_length: int(0),
            request_id: int(4),
            response_to: int(8),
            op_code: int(12),
        };
        header.body_len()?;
        Ok(header)
    }

    /// Bytes after the header, checked against the message size bounds.
    pub fn body_len(&self) -> Result<usize, WireError> {
        let len = i64::from(self.message_length);
        if len < HEADER_LEN as i64 {
            return Err(WireError::LengthTooSmall(len));
        }
        if len > MESSAGE_SIZE_MAX as i64 {
            return Err(WireError::TooLarge(len));
        }
        Ok(len as usize - HEADER_LEN)
    }

    fn write(&self, out: &mut Vec<u8>) {
        for v in [
            self.message_length,
            self.request_id,
            self.response_to,
            self.op_code,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// An OP_MSG as sent: flags, the body and the document sequences in order.
#[derive(Debug, Clone, PartialEq)]
pub struct OpMsg {
    pub flags: u32,
    pub body: Document,
    pub sequences: Vec<(String, Vec<Document>)>,
}

impl OpMsg {
    pub fn more_to_come(&self) -> bool {
        self.flags & FLAG_MORE_TO_COME != 0
    }

    /// The command the message carries: the body with each document
    /// sequence added as an array field under its identifier, as the OP_MSG
    /// spec says a server must treat it. A sequence that names a field the
    /// body already has is refused: which one would win is not defined.
    pub fn into_command(self) -> Result<Document, WireError> {
        let mut command = self.body;
        for (identifier, docs) in self.sequences {
            if command.contains_key(&identifier) {
                return Err(WireError::DuplicateField(identifier));
            }
            command.insert(
                identifier,
                bson::Bson::Array(docs.into_iter().map(bson::Bson::Document).collect()),
            );
        }
        Ok(command)
    }
}

/// An OP_QUERY; Fluence answers it only for the legacy handshake.
#[derive(Debug, Clone, PartialEq)]
pub struct OpQuery {
    pub flags: u32,
    pub full_collection_name: String,
    pub number_to_skip: i32,
    pub number_to_return: i32,
    pub query: Document,
    pub return_fields: Option<Document>,
}

/// An OP_REPLY (only decoded by clients and tests).
#[derive(Debug, Clone, PartialEq)]
pub struct OpReply {
    pub response_flags: u32,
    pub cursor_id: i64,
    pub starting_from: i32,
    pub documents: Vec<Document>,
}

/// A request a client may send.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Msg(OpMsg),
    Query(OpQuery),
}

/// Reads fields from the body of a message, failing on short input.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.bytes.len() < n {
            return Err(WireError::Truncated(what));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, WireError> {
        Ok(self.u32(what)? as i32)
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, WireError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }

    fn cstring(&mut self, what: &'static str) -> Result<String, WireError> {
        let end = self
            .bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or(WireError::CString(what))?;
        let s = std::str::from_utf8(&self.bytes[..end]).map_err(|_| WireError::CString(what))?;
        self.bytes = &self.bytes[end + 1..];
        Ok(s.to_string())
    }

    /// One BSON document: its declared length is checked against `max` and
    /// the remaining input before the bytes are parsed.
    fn document(&mut self, max: usize, what: &'static str) -> Result<Document, WireError> {
        let len_bytes = self.bytes.get(..4).ok_or(WireError::Truncated(what))?;
        let len = i32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        if len < 5 {
            return Err(WireError::Bson(format!("document length {len} is below 5")));
        }
        let len = len as usize;
        if len > max {
            return Err(WireError::DocumentTooLarge { size: len, max });
        }
        let bytes = self.take(len, what)?;
        parse_document(bytes)
    }
}

/// Parses exactly one BSON document, refusing nesting beyond
/// [`BSON_DEPTH_MAX`] before the recursive conversion runs.
pub fn parse_document(bytes: &[u8]) -> Result<Document, WireError> {
    let raw = RawDocument::from_bytes(bytes).map_err(|e| WireError::Bson(e.to_string()))?;
    check_depth(raw)?;
    Document::try_from(raw).map_err(|e| WireError::Bson(e.to_string()))
}

/// Walks the raw document with an explicit stack (no recursion), checking
/// every element's framing and the nesting depth.
fn check_depth(root: &RawDocument) -> Result<(), WireError> {
    let mut stack: Vec<(&RawDocument, usize)> = vec![(root, 1)];
    while let Some((doc, depth)) = stack.pop() {
        for element in doc {
            let (_, value) = element.map_err(|e| WireError::Bson(e.to_string()))?;
            let child = match value {
                RawBsonRef::Document(d) => d,
                RawBsonRef::Array(a) => RawDocument::from_bytes(a.as_bytes())
                    .map_err(|e| WireError::Bson(e.to_string()))?,
                RawBsonRef::JavaScriptCodeWithScope(c) => c.scope,
                _ => continue,
            };
            if depth + 1 > BSON_DEPTH_MAX {
                return Err(WireError::TooDeep);
            }
            stack.push((child, depth + 1));
        }
    }
    Ok(())
}

/// Decodes one whole message (header included) a client sent.
pub fn decode_request(message: &[u8]) -> Result<(Header, Request), WireError> {
    let header_bytes: &[u8; HEADER_LEN] = message
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(WireError::Truncated("header"))?;
    let header = Header::parse(header_bytes)?;
    let body_len = header.body_len()?;
    if message.len() != HEADER_LEN + body_len {
        return Err(WireError::LengthMismatch {
            header: HEADER_LEN + body_len,
            actual: message.len(),
        });
    }
    let request = match header.op_code {
        OP_MSG => Request::Msg(decode_op_msg(message)?),
        OP_QUERY => Request::Query(decode_op_query(&message[HEADER_LEN..])?),
        other => return Err(WireError::UnsupportedOpCode(other)),
    };
    Ok((header, request))
}

/// Decodes an OP_MSG; `message` includes the header because the checksum
/// covers it.
fn decode_op_msg(message: &[u8]) -> Result<OpMsg, WireError> {
    let mut reader = Reader {
        bytes: &message[HEADER_LEN..],
    };
    let flags = reader.u32("flagBits")?;
    let unknown = flags & REQUIRED_FLAGS_MASK & !KNOWN_REQUIRED_FLAGS;
    if unknown != 0 {
        return Err(WireError::UnknownRequiredFlags(unknown));
    }
    if flags & FLAG_CHECKSUM_PRESENT != 0 {
        let split = message
            .len()
            .checked_sub(4)
            .filter(|&s| s >= HEADER_LEN + 4)
            .ok_or(WireError::Truncated("checksum"))?;
        let (covered, sum) = message.split_at(split);
        let expected = u32::from_le_bytes([sum[0], sum[1], sum[2], sum[3]]);
        let actual = crc32c(covered);
        if expected != actual {
            return Err(WireError::ChecksumMismatch { expected, actual });
        }
        reader.bytes = &covered[HEADER_LEN + 4..];
    }
    let mut body = None;
    let mut sequences = Vec::new();
    while !reader.bytes.is_empty() {
        let kind = reader.take(1, "section kind")?[0];
        match kind {
            0 => {
                let doc = reader.document(COMMAND_SIZE_MAX, "body")?;
                if body.replace(doc).is_some() {
                    return Err(WireError::DuplicateBody);
                }
            }
            1 => {
                let size = reader.i32("sequence size")?;
                // The size counts itself; the rest must be present.
                let size = usize::try_from(size)
                    .ok()
                    .and_then(|s| s.checked_sub(4))
                    .ok_or(WireError::Truncated("sequence size"))?;
                let mut section = Reader {
                    bytes: reader.take(size, "document sequence")?,
                };
                let identifier = section.cstring("sequence identifier")?;
                let mut docs = Vec::new();
                while !section.bytes.is_empty() {
                    docs.push(section.document(BSON_OBJECT_SIZE_MAX, "sequence document")?);
                }
                sequences.push((identifier, docs));
            }
            other => return Err(WireError::UnknownSectionKind(other)),
        }
    }
    Ok(OpMsg {
        flags,
        body: body.ok_or(WireError::MissingBody)?,
        sequences,
    })
}

fn decode_op_query(body: &[u8]) -> Result<OpQuery, WireError> {
    let mut reader = Reader { bytes: body };
    let flags = reader.u32("flags")?;
    let full_collection_name = reader.cstring("fullCollectionName")?;
    let number_to_skip = reader.i32("numberToSkip")?;
    let number_to_return = reader.i32("numberToReturn")?;
    let query = reader.document(COMMAND_SIZE_MAX, "query")?;
    let return_fields = if reader.bytes.is_empty() {
        None
    } else {
        Some(reader.document(COMMAND_SIZE_MAX, "returnFieldsSelector")?)
    };
    if !reader.bytes.is_empty() {
        return Err(WireError::Bson("trailing bytes after OP_QUERY".into()));
    }
    Ok(OpQuery {
        flags,
        full_collection_name,
        number_to_skip,
        number_to_return,
        query,
        return_fields,
    })
}

/// Decodes an OP_REPLY message (header included).
pub fn decode_reply(message: &[u8]) -> Result<(Header, OpReply), WireError> {
    let header_bytes: &[u8; HEADER_LEN] = message
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(WireError::Truncated("header"))?;
    let header = Header::parse(header_bytes)?;
    if header.op_code != OP_REPLY {
        return Err(WireError::UnsupportedOpCode(header.op_code));
    }
    if message.len() != HEADER_LEN + header.body_len()? {
        return Err(WireError::LengthMismatch {
            header: HEADER_LEN + header.body_len()?,
            actual: message.len(),
        });
    }
    let mut reader = Reader {
        bytes: &message[HEADER_LEN..],
    };
    let response_flags = reader.u32("responseFlags")?;
    let cursor_id = reader.i64("cursorID")?;
    let starting_from = reader.i32("startingFrom")?;
    let number_returned = reader.i32("numberReturned")?;
    let mut documents = Vec::new();
    while !reader.bytes.is_empty() {
        documents.push(reader.document(COMMAND_SIZE_MAX, "reply document")?);
    }
    if usize::try_from(number_returned).ok() != Some(documents.len()) {
        return Err(WireError::Bson(format!(
            "numberReturned {number_returned} but {} documents",
            documents.len()
        )));
    }
    Ok((
        header,
        OpReply {
            response_flags,
            cursor_id,
            starting_from,
            documents,
        },
    ))
}

fn document_bytes(doc: &Document, out: &mut Vec<u8>) -> Result<(), WireError> {
    doc.to_writer(out)
        .map_err(|e| WireError::Bson(e.to_string()))
}

/// Fills in the length of a message built in `out` (header first) and
/// checks it against the maximum.
fn finish(mut out: Vec<u8>) -> Result<Vec<u8>, WireError> {
    if out.len() > MESSAGE_SIZE_MAX {
        return Err(WireError::TooLarge(out.len() as i64));
    }
    let len = (out.len() as i32).to_le_bytes();
    out[..4].copy_from_slice(&len);
    Ok(out)
}

/// Encodes an OP_MSG; with `FLAG_CHECKSUM_PRESENT` in its flags the CRC-32C
/// is appended.
pub fn encode_op_msg(request_id: i32, response_to: i32, msg: &OpMsg) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    Header {
        message_length: 0,
        request_id,
        response_to,
        op_code: OP_MSG,
    }
    .write(&mut out);
    out.extend_from_slice(&msg.flags.to_le_bytes());
    out.push(0);
    document_bytes(&msg.body, &mut out)?;
    for (identifier, docs) in &msg.sequences {
        if identifier.as_bytes().contains(&0) {
            return Err(WireError::CString("sequence identifier"));
        }
        out.push(1);
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(identifier.as_bytes());
        out.push(0);
        for doc in docs {
            document_bytes(doc, &mut out)?;
        }
        let size = i32::try_from(out.len() - start)
            .map_err(|_| WireError::TooLarge((out.len() - start) as i64))?;
        out[start..start + 4].copy_from_slice(&size.to_le_bytes());
    }
    if msg.flags & FLAG_CHECKSUM_PRESENT != 0 {
        out.extend_from_slice(&[0; 4]);
        let mut out = finish(out)?;
        let split = out.len() - 4;
        let sum = crc32c(&out[..split]);
        out[split..].copy_from_slice(&sum.to_le_bytes());
        return Ok(out);
    }
    finish(out)
}

/// Encodes an OP_QUERY (used by tests and clients).
pub fn encode_op_query(request_id: i32, query: &OpQuery) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    Header {
        message_length: 0,
        request_id,
        response_to: 0,
        op_code: OP_QUERY,
    }
    .write(&mut out);
    out.extend_from_slice(&query.flags.to_le_bytes());
    if query.full_collection_name.as_bytes().contains(&0) {
        return Err(WireError::CString("fullCollectionName"));
    }
    out.extend_from_slice(query.full_collection_name.as_bytes());
    out.push(0);
    out.extend_from_slice(&query.number_to_skip.to_le_bytes());
    out.extend_from_slice(&query.number_to_return.to_le_bytes());
    document_bytes(&query.query, &mut out)?;
    if let Some(fields) = &query.return_fields {
        document_bytes(fields, &mut out)?;
    }
    finish(out)
}

/// Encodes an OP_REPLY answering the legacy handshake.
pub fn encode_op_reply(
    request_id: i32,
    response_to: i32,
    reply: &OpReply,
) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    Header {
        message_length: 0,
        request_id,
        response_to,
        op_code: OP_REPLY,
    }
    .write(&mut out);
    out.extend_from_slice(&reply.response_flags.to_le_bytes());
    out.extend_from_slice(&reply.cursor_id.to_le_bytes());
    out.extend_from_slice(&reply.starting_from.to_le_bytes());
    let n = i32::try_from(reply.documents.len()).map_err(|_| WireError::TooLarge(i64::MAX))?;
    out.extend_from_slice(&n.to_le_bytes());
    for doc in &reply.documents {
        document_bytes(doc, &mut out)?;
    }
    finish(out)
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as OP_MSG
/// checksums use. A 256-entry table computed at compile time: checksums
/// are rare (drivers send them only when asked), so a byte-at-a-time loop
/// is fast enough and saves a dependency.
pub fn crc32c(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = i as u32;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &b in bytes {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, Bson};
    use proptest::prelude::*;

    #[test]
    fn crc32c_known_vectors() {
        // RFC 3720 appendix B.4 and the common check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
    }

    fn arb_value() -> impl Strategy<Value = Bson> {
        let leaf = prop_oneof![
            any::<i32>().prop_map(Bson::Int32),
            any::<i64>().prop_map(Bson::Int64),
            any::<bool>().prop_map(Bson::Boolean),
            "[a-z]{0,8}".prop_map(Bson::String),
            Just(Bson::Null),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Bson::Array),
                prop::collection::vec(("[a-z]{1,5}", inner), 0..4)
                    .prop_map(|kv| Bson::Document(kv.into_iter().collect())),
            ]
        })
    }

    fn arb_doc() -> impl Strategy<Value = Document> {
        prop::collection::vec(("[a-z]{1,6}", arb_value()), 0..5)
            .prop_map(|kv| kv.into_iter().collect())
    }

    fn arb_msg() -> impl Strategy<Value = OpMsg> {
        (
            prop_oneof![
                Just(0u32),
                Just(FLAG_CHECKSUM_PRESENT),
                Just(FLAG_MORE_TO_COME),
                Just(FLAG_EXHAUST_ALLOWED)
            ],
            arb_doc(),
            prop::collection::vec(("[A-Z]{1,6}", prop::collection::vec(arb_doc(), 0..4)), 0..3),
        )
            .prop_map(|(flags, body, sequences)| OpMsg {
                flags,
                body,
                sequences,
            })
    }

    proptest! {
        #[test]
        fn op_msg_round_trips(msg in arb_msg(), id in any::<i32>(), to in any::<i32>()) {
            let bytes = encode_op_msg(id, to, &msg).unwrap();
            let (header, decoded) = decode_request(&bytes).unwrap();
            prop_assert_eq!(header.request_id, id);
            prop_assert_eq!(header.response_to, to);
            prop_assert_eq!(header.message_length as usize, bytes.len());
            prop_assert_eq!(decoded, Request::Msg(msg));
        }

        #[test]
        fn op_query_round_trips(query in arb_doc(), fields in proptest::option::of(arb_doc()),
                                skip in any::<i32>(), ret in any::<i32>(), name in "[a-z]{1,8}\\.\\$cmd") {
            let q = OpQuery { flags: 0, full_collection_name: name, number_to_skip: skip,
                              number_to_return: ret, query, return_fields: fields };
            let bytes = encode_op_query(7, &q).unwrap();
            prop_assert_eq!(decode_request(&bytes).unwrap().1, Request::Query(q));
        }

        #[test]
        fn op_reply_round_trips(docs in prop::collection::vec(arb_doc(), 0..4), cursor in any::<i64>()) {
            let reply = OpReply { response_flags: 8, cursor_id: cursor, starting_from: 0, documents: docs };
            let bytes = encode_op_reply(1, 2, &reply).unwrap();
            let (header, decoded) = decode_reply(&bytes).unwrap();
            prop_assert_eq!(header.response_to, 2);
            prop_assert_eq!(decoded, reply);
        }

        /// Every strict prefix of a valid message is refused with a typed
        /// error, never a panic.
        #[test]
        fn truncated_messages_are_refused(msg in arb_msg(), cut in any::<prop::sample::Index>()) {
            let bytes = encode_op_msg(1, 0, &msg).unwrap();
            let cut = cut.index(bytes.len());
            prop_assert!(decode_request(&bytes[..cut]).is_err());
            // The same prefix with its length field fixed up to match is
            // still refused (or, rarely, is a shorter valid message).
            if cut >= HEADER_LEN {
                let mut short = bytes[..cut].to_vec();
                short[..4].copy_from_slice(&(cut as i32).to_le_bytes());
                let _ = decode_request(&short);
            }
        }

        /// Arbitrary bytes behind a plausible header never panic.
        #[test]
        fn garbage_never_panics(body in prop::collection::vec(any::<u8>(), 0..256),
                                op in prop_oneof![Just(OP_MSG), Just(OP_QUERY), Just(OP_REPLY), any::<i32>()]) {
            let mut bytes = Vec::new();
            Header { message_length: (HEADER_LEN + body.len()) as i32, request_id: 1, response_to: 0, op_code: op }
                .write(&mut bytes);
            bytes.extend_from_slice(&body);
            let _ = decode_request(&bytes);
            let _ = decode_reply(&bytes);
        }

        /// Flipping any byte of a checksummed message after the length field
        /// is caught (by the checksum or by framing).
        #[test]
        fn corrupted_checksummed_messages_are_refused(body in arb_doc(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let msg = OpMsg { flags: FLAG_CHECKSUM_PRESENT, body, sequences: vec![] };
            let mut bytes = encode_op_msg(1, 0, &msg).unwrap();
            let at = 4 + at.index(bytes.len() - 4);
            bytes[at] ^= 1 << bit;
            prop_assert!(decode_request(&bytes).is_err());
        }

        #[test]
        fn oversized_lengths_are_refused(len in (MESSAGE_SIZE_MAX as i64 + 1)..=i32::MAX as i64) {
            let mut header = [0u8; HEADER_LEN];
            header[..4].copy_from_slice(&(len as i32).to_le_bytes());
            header[12..].copy_from_slice(&OP_MSG.to_le_bytes());
            prop_assert_eq!(Header::parse(&header), Err(WireError::TooLarge(len)));
        }

        #[test]
        fn negative_lengths_are_refused(len in i32::MIN..HEADER_LEN as i32) {
            let mut header = [0u8; HEADER_LEN];
            header[..4].copy_from_slice(&len.to_le_bytes());
            prop_assert_eq!(Header::parse(&header), Err(WireError::LengthTooSmall(len.into())));
        }
    }

    #[test]
    fn sequences_merge_into_the_command() {
        let msg = OpMsg {
            flags: 0,
            body: doc! {"insert": "c", "$db": "d"},
            sequences: vec![("documents".into(), vec![doc! {"a": 1}, doc! {"a": 2}])],
        };
        assert_eq!(
            msg.into_command().unwrap(),
            doc! {"insert": "c", "$db": "d", "documents": [{"a": 1}, {"a": 2}]}
        );
        let clash = OpMsg {
            flags: 0,
            body: doc! {"insert": "c", "documents": []},
            sequences: vec![("documents".into(), vec![])],
        };
        assert_eq!(
            clash.into_command(),
            Err(WireError::DuplicateField("documents".into()))
        );
    }

    #[test]
    fn structural_errors_are_typed() {
        let ok = encode_op_msg(
            1,
            0,
            &OpMsg {
                flags: 0,
                body: doc! {"ping": 1},
                sequences: vec![],
            },
        )
        .unwrap();
        // Unknown required flag bit.
        let mut bad = ok.clone();
        bad[16] = 4;
        assert_eq!(
            decode_request(&bad).unwrap_err(),
            WireError::UnknownRequiredFlags(4)
        );
        // Unknown section kind.
        let mut bad = ok.clone();
        bad[20] = 9;
        assert_eq!(
            decode_request(&bad).unwrap_err(),
            WireError::UnknownSectionKind(9)
        );
        // No body: only flag bits.
        let mut bad = ok[..20].to_vec();
        bad[..4].copy_from_slice(&20i32.to_le_bytes());
        assert_eq!(decode_request(&bad).unwrap_err(), WireError::MissingBody);
        // Two bodies.
        let mut bad = ok.clone();
        bad.extend_from_slice(&ok[20..]);
        let len = bad.len() as i32;
        bad[..4].copy_from_slice(&len.to_le_bytes());
        assert_eq!(decode_request(&bad).unwrap_err(), WireError::DuplicateBody);
        // Header length disagreeing with the bytes.
        let mut bad = ok.clone();
        bad.push(0);
        assert!(matches!(
            decode_request(&bad).unwrap_err(),
            WireError::LengthMismatch { .. }
        ));
        // Unsupported opcode (compression is never advertised).
        let mut bad = ok.clone();
        bad[12..16].copy_from_slice(&OP_COMPRESSED.to_le_bytes());
        assert_eq!(
            decode_request(&bad).unwrap_err(),
            WireError::UnsupportedOpCode(OP_COMPRESSED)
        );
        // A body claiming more bytes than there are.
        let mut bad = ok.clone();
        bad[21..25].copy_from_slice(&1000i32.to_le_bytes());
        assert_eq!(
            decode_request(&bad).unwrap_err(),
            WireError::Truncated("body")
        );
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        // 100,000 levels of {"a": {...}} built as raw bytes: converting
        // this recursively would overflow the stack.
        let depth = 100_000usize;
        let mut bytes = Vec::with_capacity(depth * 8 + 5);
        for level in 0..depth {
            // Each level adds 8 bytes: length, type, key "a", terminator.
            let len = 5 + 8 * (depth - level);
            bytes.extend_from_slice(&(len as i32).to_le_bytes());
            bytes.extend_from_slice(&[3, b'a', 0]);
        }
        bytes.extend_from_slice(&[5, 0, 0, 0, 0]);
        bytes.resize(bytes.len() + depth, 0);
        assert_eq!(parse_document(&bytes), Err(WireError::TooDeep));
        let mut shallow = doc! {"x": 1};
        for _ in 0..BSON_DEPTH_MAX - 1 {
            shallow = doc! {"a": shallow};
        }
        assert!(parse_document(&shallow.to_vec().unwrap()).is_ok());
        let deeper = doc! {"a": shallow};
        assert_eq!(
            parse_document(&deeper.to_vec().unwrap()),
            Err(WireError::TooDeep)
        );
    }
}
