//! Encoder for uncompressed v2 batches. Used by tests, benches and the simulator's clients —
//! never by the broker's produce path, which stores producers' bytes as received — and for
//! the batches the broker writes itself: a new leader's LeaderChange control batch and a
//! leader's voters control batch.

use super::{CRC_START, HEADER_SIZE_BYTES, MAGIC_V2};

/// One record to encode. Header keys are never null in Kafka.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    pub timestamp_delta: i64,
}

/// Producer identity stamped into a batch; `NONE` for non-idempotent producers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStamp {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl ProducerStamp {
    pub const NONE: ProducerStamp =
        ProducerStamp { producer_id: -1, producer_epoch: -1, base_sequence: -1 };
}

/// Encodes `records` as one uncompressed batch with base offset 0 and a valid CRC32C.
pub fn encode_batch(records: &[Record], base_timestamp: i64, producer: ProducerStamp) -> Vec<u8> {
    encode_batch_with_attributes(records, base_timestamp, producer, 0)
}

/// Bit 5 of a batch's attributes: a control batch (markers and leader changes; clients skip
/// it, it is never handed to an application).
const CONTROL_ATTRIBUTE: i16 = 0x20;
/// Control record type of a KRaft LeaderChange (0 abort, 1 commit, 2 leader change).
const LEADER_CHANGE_TYPE: i16 = 2;

/// A new leader's first batch (the Raft entry of its own epoch that commits earlier ones), in
/// the shape KRaft writes it: a control batch of one record whose key is (version 0, type 2)
/// and whose value is a LeaderChangeMessage v0 (flexible: leader id, voters, granting voters,
/// tagged fields). Clients skip control batches, so consumers never see it.
pub fn encode_leader_change(leader_id: i32, voters: &[i32], timestamp_ms: i64) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&LEADER_CHANGE_TYPE.to_be_bytes());
    let mut value = Vec::with_capacity(16 + 10 * voters.len());
    value.extend_from_slice(&0i16.to_be_bytes()); // LeaderChangeMessage version
    value.extend_from_slice(&leader_id.to_be_bytes());
    for _list in ["voters", "granting voters"] {
        put_unsigned(&mut value, voters.len() as u64 + 1); // compact array length
        for voter in voters {
            value.extend_from_slice(&voter.to_be_bytes());
            put_unsigned(&mut value, 0); // the voter's tagged fields
        }
    }
    put_unsigned(&mut value, 0); // the message's tagged fields
    let record = Record { key: Some(key), value: Some(value), ..Record::default() };
    encode_batch_with_attributes(&[record], timestamp_ms, ProducerStamp::NONE, CONTROL_ATTRIBUTE)
}

/// Control record type of a KRaft VotersRecord (KIP-853).
const VOTERS_TYPE: i16 = 6;

/// A leader's change of its partition's voters (`replication/membership.rs`), in the shape
/// KRaft writes it: a control batch of one record whose key is (version 0, type 6) and whose
/// value is a VotersRecord v0 (flexible: per voter its id, its directory id — the zero UUID
/// for a voter not pinned to one — no endpoints and a KRaft version range of 0..0).
pub fn encode_voters(voters: &[(i32, u128)], timestamp_ms: i64) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&VOTERS_TYPE.to_be_bytes());
    let mut value = Vec::with_capacity(8 + 30 * voters.len());
    value.extend_from_slice(&0i16.to_be_bytes()); // VotersRecord version
    put_unsigned(&mut value, voters.len() as u64 + 1); // compact array length
    for (voter, directory) in voters {
        value.extend_from_slice(&voter.to_be_bytes());
        value.extend_from_slice(&directory.to_be_bytes());
        put_unsigned(&mut value, 1); // no endpoints
        value.extend_from_slice(&0i16.to_be_bytes()); // min supported KRaft version
        value.extend_from_slice(&0i16.to_be_bytes()); // max supported KRaft version
        put_unsigned(&mut value, 0); // the version range's tagged fields
        put_unsigned(&mut value, 0); // the voter's tagged fields
    }
    put_unsigned(&mut value, 0); // the record's tagged fields
    let record = Record { key: Some(key), value: Some(value), ..Record::default() };
    encode_batch_with_attributes(&[record], timestamp_ms, ProducerStamp::NONE, CONTROL_ATTRIBUTE)
}

fn encode_batch_with_attributes(
    records: &[Record],
    base_timestamp: i64,
    producer: ProducerStamp,
    attributes: i16,
) -> Vec<u8> {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let mut body = Vec::with_capacity(records.len() * 32);
    let mut max_timestamp = base_timestamp;
    for (offset_delta, record) in records.iter().enumerate() {
        max_timestamp = max_timestamp.max(base_timestamp + record.timestamp_delta);
        encode_record(&mut body, record, offset_delta as i32);
    }
    let mut batch = Vec::with_capacity(HEADER_SIZE_BYTES + body.len());
    let batch_length = (HEADER_SIZE_BYTES - 12 + body.len()) as i32;
    batch.extend_from_slice(&0i64.to_be_bytes());
    batch.extend_from_slice(&batch_length.to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    batch.push(MAGIC_V2 as u8);
    batch.extend_from_slice(&0u32.to_be_bytes()); // crc, filled below
    batch.extend_from_slice(&attributes.to_be_bytes()); // no compression, create time
    batch.extend_from_slice(&((records.len() - 1) as i32).to_be_bytes());
    batch.extend_from_slice(&base_timestamp.to_be_bytes());
    batch.extend_from_slice(&max_timestamp.to_be_bytes());
    batch.extend_from_slice(&producer.producer_id.to_be_bytes());
    batch.extend_from_slice(&producer.producer_epoch.to_be_bytes());
    batch.extend_from_slice(&producer.base_sequence.to_be_bytes());
    batch.extend_from_slice(&(records.len() as i32).to_be_bytes());
    debug_assert_eq!(batch.len(), HEADER_SIZE_BYTES);
    batch.extend_from_slice(&body);
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

fn encode_record(out: &mut Vec<u8>, record: &Record, offset_delta: i32) {
    let mut body = Vec::with_capacity(16);
    body.push(0); // attributes
    put_varlong(&mut body, record.timestamp_delta);
    put_varint(&mut body, offset_delta);
    put_nullable(&mut body, record.key.as_deref());
    put_nullable(&mut body, record.value.as_deref());
    put_varint(&mut body, record.headers.len() as i32);
    for (key, value) in &record.headers {
        put_nullable(&mut body, Some(key));
        put_nullable(&mut body, value.as_deref());
    }
    put_varint(out, body.len() as i32);
    out.extend_from_slice(&body);
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(bytes) => {
            put_varint(out, bytes.len() as i32);
            out.extend_from_slice(bytes);
        }
    }
}

fn put_varint(out: &mut Vec<u8>, value: i32) {
    put_unsigned(out, ((value << 1) ^ (value >> 31)) as u32 as u64);
}

fn put_varlong(out: &mut Vec<u8>, value: i64) {
    put_unsigned(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_unsigned(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}
