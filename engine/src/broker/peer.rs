//! Broker-to-broker frames: the replica messages of many partitions coalesced into one frame
//! per send, so that two brokers sharing thousands of partitions exchange one frame per
//! turn, not thousands of messages (DESIGN.md: "coalesced across all the partitions they
//! share"). This is the codec; [`transport`] carries it over one connection per broker pair.
//!
//! On the wire every frame (the hello included) is a u32 big-endian length, then the body;
//! the reader bounds the length ([`FRAME_BYTES_MAX`], [`HELLO_BYTES_MAX`]) before reading.
//! All integers are big-endian.
//!
//! The hello is the first frame each side of a new connection sends: who it is (the acceptor
//! learns who dialed from it), where Kafka clients reach it (the controller will learn the
//! endpoints from it), and which data directory it runs on (a random id made with the
//! directory; the controller registers it, so a broker whose disk was wiped is recognised):
//!
//! ```text
//! magic "TRPH" | version u8 (1) | node id u32 | host length u16 | host (UTF-8, 1..=255 bytes)
//!   | port u16 (not 0) | directory id [u8; 16] (a UUID) | CRC32C u32
//! ```
//!
//! Every later frame carries partitions' messages: those of their replicas, and the news of
//! who leads them (for brokers that host no replica; see `cluster::leadership`):
//!
//! ```text
//! magic "TRPF" | version u8 (5) | sender u32 | count u16 | message × count | CRC32C u32
//! message: topic length u8 | topic (UTF-8) | partition i32 | kind u8 | body
//!   0 vote request:    epoch i32 | candidate u32 | log end i64 | last epoch i32 | pre-vote u8
//!                      | transfer u8
//!   1 vote response:   epoch i32 | granted u8 | pre-vote u8
//!   2 append request:  epoch i32 | leader u32 | prev offset i64 | prev epoch i32
//!                      | leader commit i64 | leader clock ms i64 | batches length u32
//!                      | record batches | voter changes u32 (at most the batches)
//!                      | (offset i64 | voter set) × changes
//!   3 append response: epoch i32 | success u8 | matched end i64 | durable end i64
//!                      | log end i64 | rejected prev offset i64 | leader clock ms i64
//!                      | divergence u8
//!                      [| epoch i32 | start offset i64]
//!   4 timeout now:     epoch i32 | leader u32
//!   5 leadership request: epoch i32 | candidate u32
//!   6 leadership news: epoch i32 | leader u32 | in-sync count u8 | node u32 × count
//! ```
//!
//! A voter set is `replication::encode_voter_set`'s: count u8, then per voter node u32,
//! pinned u8, directory 16 bytes.
//!
//! A frame with no messages is a keepalive. The CRC covers everything before it. An append
//! carries its batches as they lie in the leader's log; the entries (offsets and epochs) are
//! read from their headers on decoding, so a frame cannot name batches it does not carry.
//! Every byte comes from the network: lengths are checked against what is present before
//! anything is reserved, booleans are 0 or 1, nothing may trail, and a bad frame or hello is
//! an error (the connection is closed), never a panic.

use bytes::{BufMut, Bytes, BytesMut};

use super::partition::{entries_of, PeerMessage};
use crate::replication::{
    decode_voter_set, encode_voter_set, AppendHeader, AppendRequest, AppendResponse, Divergence,
    LeadershipRequest, Message, NodeId, TimeoutNow, VoteRequest, VoteResponse, VoterChange,
    VOTER_SIZE_BYTES,
};

pub mod transport;

const MAGIC: [u8; 4] = *b"TRPF";
/// 2: appends carry the leader's clock and answers echo it (the leader's read lease).
/// 3: leadership transfer (timeout-now, the transfer flag of a vote request, and a
/// follower's leadership request).
/// 4: leadership news.
/// 5: appends name their voters batches (`replication/membership.rs`).
const VERSION: u8 = 5;
/// A frame body is at most this big: a sender splits its messages across frames.
pub const FRAME_BYTES_MAX: usize = 64 << 20;
/// A frame body's bytes around its messages: magic, version, sender, count and CRC.
pub const FRAME_OVERHEAD_BYTES: usize = 4 + 1 + 4 + 2 + 4;
/// Messages in one frame.
pub const MESSAGES_PER_FRAME_MAX: usize = u16::MAX as usize;
/// Kafka's limit on a topic name.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

const HELLO_MAGIC: [u8; 4] = *b"TRPH";
const HELLO_VERSION: u8 = 1;
/// A hello's advertised host is at most this long (a DNS name is at most 253 bytes).
pub const HELLO_HOST_BYTES_MAX: usize = 255;
/// A hello body is at most this big: magic, version, node id, host, port, directory id, CRC.
pub const HELLO_BYTES_MAX: usize = 4 + 1 + 4 + 2 + HELLO_HOST_BYTES_MAX + 2 + 16 + 4;

const KIND_VOTE_REQUEST: u8 = 0;
const KIND_VOTE_RESPONSE: u8 = 1;
const KIND_APPEND_REQUEST: u8 = 2;
const KIND_APPEND_RESPONSE: u8 = 3;
const KIND_TIMEOUT_NOW: u8 = 4;
const KIND_LEADERSHIP_REQUEST: u8 = 5;
const KIND_LEADERSHIP_NEWS: u8 = 6;
/// The in-sync replicas one leadership news names (its count is a u8).
pub const NEWS_IN_SYNC_MAX: usize = u8::MAX as usize;

/// One partition's message inside a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressed {
    pub topic: String,
    pub partition: i32,
    pub message: PartitionMessage,
}

/// What a frame carries for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionMessage {
    /// For the partition's replica on the receiving broker.
    Replica(PeerMessage),
    /// For the receiving broker itself: who leads the partition.
    Leadership(LeadershipNews),
}

/// A leader's word on its partition, sent to every other broker: the ones that host no
/// replica of it learn its leader only this way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadershipNews {
    pub epoch: i32,
    pub leader: NodeId,
    /// The leader's in-sync replicas, itself included (at most [`NEWS_IN_SYNC_MAX`]).
    pub in_sync: Vec<NodeId>,
}

/// What one broker sends another in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFrame {
    pub sender: NodeId,
    pub messages: Vec<Addressed>,
}

/// The first frame each side of a new peer connection sends (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub node_id: NodeId,
    /// The host and port Kafka clients reach this broker at (its advertised listener).
    pub kafka_host: String,
    pub kafka_port: u16,
    /// A UUID made with the data directory: a new one means the replica lost its disk.
    pub directory_id: [u8; 16],
}

impl Hello {
    /// Whether the hello can be sent: a host of 1..=255 bytes and a port that is not 0.
    pub fn is_valid(&self) -> bool {
        let host_bytes = self.kafka_host.len();
        (1..=HELLO_HOST_BYTES_MAX).contains(&host_bytes) && self.kafka_port != 0
    }
}

/// Why a frame (or a hello) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerDecodeError {
    #[error("peer frame of {size_bytes} bytes is larger than {limit_bytes}")]
    TooLarge { size_bytes: usize, limit_bytes: usize },
    #[error("peer frame ends early (needed {needed} more bytes)")]
    Truncated { needed: usize },
    #[error("not a peer frame (magic or version)")]
    NotAFrame,
    #[error("peer frame checksum mismatch")]
    Checksum,
    #[error("peer frame field {field} holds an impossible value")]
    Invalid { field: &'static str },
    #[error("{trailing} bytes after the last message of a peer frame")]
    Trailing { trailing: usize },
}

/// Encodes `frame` (its body: the caller prefixes the length). Panics if the frame breaks
/// the limits: the sender builds frames, and splitting them is its job.
pub fn encode(frame: &PeerFrame) -> Bytes {
    let size_bytes = frame_size_bytes(frame);
    assert!(size_bytes <= FRAME_BYTES_MAX, "a frame of {size_bytes} bytes");
    let mut out = BytesMut::with_capacity(size_bytes);
    encode_body(frame, &mut out);
    out.freeze()
}

/// Encodes `frame` behind its u32 length prefix: what goes on the wire, in one buffer.
pub fn encode_prefixed(frame: &PeerFrame) -> Bytes {
    let size_bytes = frame_size_bytes(frame);
    assert!(size_bytes <= FRAME_BYTES_MAX, "a frame of {size_bytes} bytes");
    let mut out = BytesMut::with_capacity(4 + size_bytes);
    // At most FRAME_BYTES_MAX, far below u32::MAX.
    out.put_u32(size_bytes as u32);
    encode_body(frame, &mut out);
    out.freeze()
}

/// The exact size of the body that `encode` makes of `frame`.
pub fn frame_size_bytes(frame: &PeerFrame) -> usize {
    FRAME_OVERHEAD_BYTES + frame.messages.iter().map(message_size_bytes).sum::<usize>()
}

/// The exact bytes `addressed` takes inside a frame, so a sender can split its messages into
/// frames before encoding them (`encode_body` checks it, message by message).
pub fn message_size_bytes(addressed: &Addressed) -> usize {
    let message = match &addressed.message {
        PartitionMessage::Replica(message) => message,
        PartitionMessage::Leadership(news) => {
            return 1 + addressed.topic.len() + 4 + 1 + 4 + 4 + 1 + 4 * news.in_sync.len();
        }
    };
    let body_bytes = match message {
        Message::VoteRequest(_) => 4 + 4 + 8 + 4 + 1 + 1,
        Message::VoteResponse(_) => 4 + 1 + 1,
        Message::AppendRequest(request) => {
            let changes = request.voter_changes.iter();
            let changes_bytes: usize =
                changes.map(|change| 8 + 1 + change.voters.len() * VOTER_SIZE_BYTES).sum();
            4 + 4 + 8 + 4 + 8 + 8 + 4 + request.payload.len() + 4 + changes_bytes
        }
        Message::AppendResponse(response) => {
            let divergence_bytes = if response.divergence.is_some() { 4 + 8 } else { 0 };
            4 + 1 + 8 * 5 + 1 + divergence_bytes
        }
        Message::TimeoutNow(_) | Message::LeadershipRequest(_) => 4 + 4,
    };
    1 + addressed.topic.len() + 4 + 1 + body_bytes
}

/// Whether `addressed` can go in a frame: a topic of 1..=249 bytes, a partition that is not
/// negative, news naming at most [`NEWS_IN_SYNC_MAX`] replicas, and a size that fits a
/// frame alone. The decoder refuses anything else (closing the connection), so a sender
/// checks first. An append's payload is taken to be whole batches: it comes from the log.
pub fn is_sendable(addressed: &Addressed) -> bool {
    let topic_bytes = addressed.topic.len();
    let news_fits = match &addressed.message {
        PartitionMessage::Leadership(news) => news.in_sync.len() <= NEWS_IN_SYNC_MAX,
        PartitionMessage::Replica(_) => true,
    };
    (1..=TOPIC_NAME_BYTES_MAX).contains(&topic_bytes)
        && news_fits
        && addressed.partition >= 0
        && message_size_bytes(addressed) <= FRAME_BYTES_MAX - FRAME_OVERHEAD_BYTES
}

/// Appends the body of `frame` to `out`.
fn encode_body(frame: &PeerFrame, out: &mut BytesMut) {
    assert!(frame.messages.len() <= MESSAGES_PER_FRAME_MAX, "too many messages in a frame");
    let start = out.len();
    out.put_slice(&MAGIC);
    out.put_u8(VERSION);
    out.put_u32(frame.sender.0);
    out.put_u16(frame.messages.len() as u16);
    for addressed in &frame.messages {
        let before = out.len();
        encode_message(out, addressed);
        assert_eq!(out.len() - before, message_size_bytes(addressed), "message size");
    }
    let crc = crc32c::crc32c(&out[start..]);
    out.put_u32(crc);
    let size_bytes = out.len() - start;
    assert!(size_bytes <= FRAME_BYTES_MAX, "a frame of {size_bytes} bytes");
    assert_eq!(size_bytes, frame_size_bytes(frame), "frame size");
}

fn encode_message(out: &mut BytesMut, addressed: &Addressed) {
    let topic = addressed.topic.as_bytes();
    assert!(!topic.is_empty() && topic.len() <= TOPIC_NAME_BYTES_MAX, "topic {topic:?}");
    out.put_u8(topic.len() as u8);
    out.put_slice(topic);
    out.put_i32(addressed.partition);
    let message = match &addressed.message {
        PartitionMessage::Replica(message) => message,
        PartitionMessage::Leadership(news) => {
            assert!(
                news.in_sync.len() <= NEWS_IN_SYNC_MAX,
                "news of {} replicas",
                news.in_sync.len()
            );
            out.put_u8(KIND_LEADERSHIP_NEWS);
            out.put_i32(news.epoch);
            out.put_u32(news.leader.0);
            out.put_u8(news.in_sync.len() as u8);
            for node in &news.in_sync {
                out.put_u32(node.0);
            }
            return;
        }
    };
    match message {
        Message::VoteRequest(request) => {
            out.put_u8(KIND_VOTE_REQUEST);
            out.put_i32(request.epoch);
            out.put_u32(request.candidate.0);
            out.put_i64(request.log_end_offset);
            out.put_i32(request.last_epoch);
            out.put_u8(u8::from(request.pre_vote));
            out.put_u8(u8::from(request.transfer));
        }
        Message::VoteResponse(response) => {
            out.put_u8(KIND_VOTE_RESPONSE);
            out.put_i32(response.epoch);
            out.put_u8(u8::from(response.granted));
            out.put_u8(u8::from(response.pre_vote));
        }
        Message::AppendRequest(request) => {
            out.put_u8(KIND_APPEND_REQUEST);
            let header = &request.header;
            out.put_i32(header.epoch);
            out.put_u32(header.leader.0);
            out.put_i64(header.prev_offset);
            out.put_i32(header.prev_epoch);
            out.put_i64(header.leader_commit);
            out.put_i64(header.leader_clock_ms);
            let length = u32::try_from(request.payload.len()).unwrap_or(u32::MAX);
            assert_eq!(length as usize, request.payload.len(), "an append's batches fit a u32");
            out.put_u32(length);
            out.put_slice(&request.payload);
            encode_voter_changes(out, &request.voter_changes);
        }
        Message::AppendResponse(response) => encode_append_response(out, response),
        Message::TimeoutNow(timeout_now) => {
            out.put_u8(KIND_TIMEOUT_NOW);
            out.put_i32(timeout_now.epoch);
            out.put_u32(timeout_now.leader.0);
        }
        Message::LeadershipRequest(request) => {
            out.put_u8(KIND_LEADERSHIP_REQUEST);
            out.put_i32(request.epoch);
            out.put_u32(request.candidate.0);
        }
    }
}

fn encode_append_response(out: &mut BytesMut, response: &AppendResponse) {
    out.put_u8(KIND_APPEND_RESPONSE);
    out.put_i32(response.epoch);
    out.put_u8(u8::from(response.success));
    out.put_i64(response.matched_end_offset);
    out.put_i64(response.durable_end_offset);
    out.put_i64(response.log_end_offset);
    out.put_i64(response.rejected_prev_offset);
    out.put_i64(response.leader_clock_ms);
    match response.divergence {
        None => out.put_u8(0),
        Some(divergence) => {
            out.put_u8(1);
            out.put_i32(divergence.epoch);
            out.put_i64(divergence.epoch_start_offset);
        }
    }
}

/// Decodes a frame body. Record batches stay in `body` (slices of it, no copy).
pub fn decode(body: Bytes) -> Result<PeerFrame, PeerDecodeError> {
    if body.len() > FRAME_BYTES_MAX {
        return Err(PeerDecodeError::TooLarge {
            size_bytes: body.len(),
            limit_bytes: FRAME_BYTES_MAX,
        });
    }
    let mut reader = Reader::checksummed(body)?;
    if reader.take(4)? != MAGIC[..] || reader.u8()? != VERSION {
        return Err(PeerDecodeError::NotAFrame);
    }
    let sender = NodeId(reader.u32()?);
    let count = usize::from(reader.u16()?);
    // Each message takes at least 11 bytes: a lying count cannot reserve more than that.
    let mut messages = Vec::with_capacity(count.min(reader.remaining() / 11));
    for _ in 0..count {
        messages.push(decode_message(&mut reader)?);
    }
    match reader.remaining() {
        0 => Ok(PeerFrame { sender, messages }),
        trailing => Err(PeerDecodeError::Trailing { trailing }),
    }
}

/// Encodes a hello body (the caller prefixes the length). Panics if `hello` is not valid
/// ([`Hello::is_valid`]): it comes from the broker's own configuration, checked before.
pub fn encode_hello(hello: &Hello) -> Bytes {
    assert!(hello.is_valid(), "an invalid hello: {hello:?}");
    let host = hello.kafka_host.as_bytes();
    let mut out = BytesMut::with_capacity(HELLO_BYTES_MAX);
    out.put_slice(&HELLO_MAGIC);
    out.put_u8(HELLO_VERSION);
    out.put_u32(hello.node_id.0);
    out.put_u16(host.len() as u16);
    out.put_slice(host);
    out.put_u16(hello.kafka_port);
    out.put_slice(&hello.directory_id);
    let crc = crc32c::crc32c(&out);
    out.put_u32(crc);
    assert!(out.len() <= HELLO_BYTES_MAX, "a hello of {} bytes", out.len());
    out.freeze()
}

/// Decodes a hello body: a valid hello ([`Hello::is_valid`]) with nothing after it.
pub fn decode_hello(body: Bytes) -> Result<Hello, PeerDecodeError> {
    if body.len() > HELLO_BYTES_MAX {
        let size_bytes = body.len();
        return Err(PeerDecodeError::TooLarge { size_bytes, limit_bytes: HELLO_BYTES_MAX });
    }
    let mut reader = Reader::checksummed(body)?;
    if reader.take(4)? != HELLO_MAGIC[..] || reader.u8()? != HELLO_VERSION {
        return Err(PeerDecodeError::NotAFrame);
    }
    let node_id = NodeId(reader.u32()?);
    let host_length = usize::from(reader.u16()?);
    if host_length == 0 || host_length > HELLO_HOST_BYTES_MAX {
        return Err(PeerDecodeError::Invalid { field: "kafka host length" });
    }
    let kafka_host = std::str::from_utf8(&reader.take(host_length)?)
        .map_err(|_| PeerDecodeError::Invalid { field: "kafka host" })?
        .to_string();
    let kafka_port = reader.u16()?;
    if kafka_port == 0 {
        return Err(PeerDecodeError::Invalid { field: "kafka port" });
    }
    let directory_id = reader.array::<16>()?;
    if reader.remaining() != 0 {
        return Err(PeerDecodeError::Trailing { trailing: reader.remaining() });
    }
    let hello = Hello { node_id, kafka_host, kafka_port, directory_id };
    debug_assert!(hello.is_valid());
    Ok(hello)
}

fn decode_message(reader: &mut Reader) -> Result<Addressed, PeerDecodeError> {
    let topic_length = usize::from(reader.u8()?);
    if topic_length == 0 || topic_length > TOPIC_NAME_BYTES_MAX {
        return Err(PeerDecodeError::Invalid { field: "topic length" });
    }
    let topic = std::str::from_utf8(&reader.take(topic_length)?)
        .map_err(|_| PeerDecodeError::Invalid { field: "topic" })?
        .to_string();
    let partition = reader.i32()?;
    if partition < 0 {
        return Err(PeerDecodeError::Invalid { field: "partition" });
    }
    let message = match reader.u8()? {
        KIND_VOTE_REQUEST => Message::VoteRequest(VoteRequest {
            epoch: reader.i32()?,
            candidate: NodeId(reader.u32()?),
            log_end_offset: reader.i64()?,
            last_epoch: reader.i32()?,
            pre_vote: reader.boolean("pre-vote")?,
            transfer: reader.boolean("transfer")?,
        }),
        KIND_VOTE_RESPONSE => Message::VoteResponse(VoteResponse {
            epoch: reader.i32()?,
            granted: reader.boolean("granted")?,
            pre_vote: reader.boolean("pre-vote")?,
        }),
        KIND_APPEND_REQUEST => Message::AppendRequest(decode_append_request(reader)?),
        KIND_APPEND_RESPONSE => Message::AppendResponse(decode_append_response(reader)?),
        KIND_TIMEOUT_NOW => {
            Message::TimeoutNow(TimeoutNow { epoch: reader.i32()?, leader: NodeId(reader.u32()?) })
        }
        KIND_LEADERSHIP_REQUEST => Message::LeadershipRequest(LeadershipRequest {
            epoch: reader.i32()?,
            candidate: NodeId(reader.u32()?),
        }),
        KIND_LEADERSHIP_NEWS => {
            let message = PartitionMessage::Leadership(decode_leadership_news(reader)?);
            return Ok(Addressed { topic, partition, message });
        }
        _ => return Err(PeerDecodeError::Invalid { field: "kind" }),
    };
    Ok(Addressed { topic, partition, message: PartitionMessage::Replica(message) })
}

fn decode_leadership_news(reader: &mut Reader) -> Result<LeadershipNews, PeerDecodeError> {
    let epoch = reader.i32()?;
    let leader = NodeId(reader.u32()?);
    let count = usize::from(reader.u8()?);
    // At most 255 nodes: nothing a lying count could make large.
    let mut in_sync = Vec::with_capacity(count);
    for _ in 0..count {
        in_sync.push(NodeId(reader.u32()?));
    }
    Ok(LeadershipNews { epoch, leader, in_sync })
}

fn decode_append_request(reader: &mut Reader) -> Result<AppendRequest<Bytes>, PeerDecodeError> {
    let header = AppendHeader {
        epoch: reader.i32()?,
        leader: NodeId(reader.u32()?),
        prev_offset: reader.i64()?,
        prev_epoch: reader.i32()?,
        leader_commit: reader.i64()?,
        leader_clock_ms: reader.i64()?,
    };
    let length = reader.u32()? as usize;
    let payload = reader.take(length)?;
    let entries =
        entries_of(&payload).ok_or(PeerDecodeError::Invalid { field: "record batches" })?;
    let voter_changes = decode_voter_changes(reader, entries.len())?;
    Ok(AppendRequest { header, entries, payload, voter_changes })
}

fn encode_voter_changes(out: &mut BytesMut, changes: &[VoterChange]) {
    // At most one per batch, and the batches fit a frame.
    let count =
        u32::try_from(changes.len()).unwrap_or_else(|_| panic!("{} changes", changes.len()));
    out.put_u32(count);
    let mut set_bytes = Vec::new();
    for change in changes {
        out.put_i64(change.offset);
        set_bytes.clear();
        encode_voter_set(&change.voters, &mut set_bytes);
        out.put_slice(&set_bytes);
    }
}

/// At most one change per batch the append carries (`batch_count`): a lying count reserves
/// nothing beyond what the frame holds.
fn decode_voter_changes(
    reader: &mut Reader,
    batch_count: usize,
) -> Result<Vec<VoterChange>, PeerDecodeError> {
    let count = reader.u32()? as usize;
    if count > batch_count {
        return Err(PeerDecodeError::Invalid { field: "voter changes" });
    }
    // Grown as changes arrive: a count is a claim, the bytes are the proof.
    let mut changes = Vec::with_capacity(count.min(16));
    for _ in 0..count {
        let offset = reader.i64()?;
        let rest = reader.bytes.slice(reader.position..);
        let invalid = PeerDecodeError::Invalid { field: "voter set" };
        let (voters, size_bytes) = decode_voter_set(&rest).ok_or(invalid)?;
        reader.take(size_bytes)?;
        changes.push(VoterChange { offset, voters });
    }
    Ok(changes)
}

fn decode_append_response(reader: &mut Reader) -> Result<AppendResponse, PeerDecodeError> {
    let epoch = reader.i32()?;
    let success = reader.boolean("success")?;
    let matched_end_offset = reader.i64()?;
    let durable_end_offset = reader.i64()?;
    let log_end_offset = reader.i64()?;
    let rejected_prev_offset = reader.i64()?;
    let leader_clock_ms = reader.i64()?;
    let divergence = if reader.boolean("divergence")? {
        Some(Divergence { epoch: reader.i32()?, epoch_start_offset: reader.i64()? })
    } else {
        None
    };
    Ok(AppendResponse {
        epoch,
        success,
        matched_end_offset,
        durable_end_offset,
        log_end_offset,
        rejected_prev_offset,
        divergence,
        leader_clock_ms,
    })
}

/// Reads big-endian fields from a frame, never past its end.
struct Reader {
    bytes: Bytes,
    position: usize,
}

impl Reader {
    /// A reader over `body` without its trailing CRC32C, once the CRC matches.
    fn checksummed(body: Bytes) -> Result<Reader, PeerDecodeError> {
        let Some(crc_start) = body.len().checked_sub(4) else {
            return Err(PeerDecodeError::Truncated { needed: 4 - body.len() });
        };
        let stored_crc = u32::from_be_bytes([
            body[crc_start],
            body[crc_start + 1],
            body[crc_start + 2],
            body[crc_start + 3],
        ]);
        if crc32c::crc32c(&body[..crc_start]) != stored_crc {
            return Err(PeerDecodeError::Checksum);
        }
        Ok(Reader { bytes: body.slice(..crc_start), position: 0 })
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    fn take(&mut self, count: usize) -> Result<Bytes, PeerDecodeError> {
        if count > self.remaining() {
            return Err(PeerDecodeError::Truncated { needed: count - self.remaining() });
        }
        let taken = self.bytes.slice(self.position..self.position + count);
        self.position += count;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PeerDecodeError> {
        let taken = self.take(N)?;
        let mut array = [0u8; N];
        array.copy_from_slice(&taken);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8, PeerDecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, PeerDecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, PeerDecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, PeerDecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, PeerDecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn boolean(&mut self, field: &'static str) -> Result<bool, PeerDecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(PeerDecodeError::Invalid { field }),
        }
    }
}

#[cfg(test)]
mod tests;
