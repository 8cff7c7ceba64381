//! The records of `__consumer_offsets`, in Kafka's own key and value schemas (the
//! `group-coordinator` module's `OffsetCommitKey/Value` and `GroupMetadataKey/Value` message
//! JSONs), so that Kafka's tools can read a Tern offsets log and the other way round.
//!
//! Key: `version: int16` then the fields; version 0 or 1 is an offset commit
//! (`group, topic: string, partition: int32`), version 2 is group metadata (`group: string`).
//! Value: `version: int16` then the fields; a null value is a tombstone. Tern writes
//! OffsetCommitValue v3 and GroupMetadataValue v3 (what Kafka 4.x writes for classic groups)
//! and reads v0-v4 of both (v4 is flexible: compact lengths and tagged fields). Other key
//! versions (KIP-848 consumer groups, share groups) are skipped.

use bytes::{BufMut, Bytes};

/// Key version Tern writes for offset commits (Kafka 4.x writes 1; 0 is the same layout).
pub const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;
pub const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
pub const GROUP_METADATA_VALUE_VERSION: i16 = 3;
/// Highest value version of either record that Tern reads.
const VALUE_VERSION_MAX: i16 = 4;
/// Value versions from here on are flexible (compact lengths, tagged fields).
const FIRST_FLEXIBLE_VALUE_VERSION: i16 = 4;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupKey {
    Offset { group: String, topic: String, partition: i32 },
    Metadata { group: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Only in v1 (a per-commit retention of old clients); -1 otherwise.
    pub expire_timestamp_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// One record to write to the group's `__consumer_offsets` partition; `None` is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub key: GroupKey,
    pub value: Option<GroupValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupValue {
    Offset(OffsetValue),
    Metadata(MetadataValue),
}

impl GroupKey {
    pub fn group(&self) -> &str {
        match self {
            GroupKey::Offset { group, .. } | GroupKey::Metadata { group } => group,
        }
    }
}

impl GroupRecord {
    /// The record's key and value bytes, as they go into a record batch; an error when a
    /// field does not fit the schema's length prefix (see [`RecordError::TooLong`]).
    pub fn encode(&self) -> Result<(Vec<u8>, Option<Vec<u8>>), RecordError> {
        let value = match &self.value {
            None => None,
            Some(GroupValue::Offset(offset)) => Some(encode_offset_value(offset)?),
            Some(GroupValue::Metadata(metadata)) => Some(encode_metadata_value(metadata)?),
        };
        Ok((encode_key(&self.key)?, value))
    }

    /// The record read back from a batch; `Ok(None)` for record kinds Tern skips.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<GroupRecord>, RecordError> {
        let Some(key) = decode_key(key)? else { return Ok(None) };
        let value = match (&key, value) {
            (_, None) => None,
            (GroupKey::Offset { .. }, Some(bytes)) => {
                Some(GroupValue::Offset(decode_offset_value(bytes)?))
            }
            (GroupKey::Metadata { .. }, Some(bytes)) => {
                Some(GroupValue::Metadata(decode_metadata_value(bytes)?))
            }
        };
        Ok(Some(GroupRecord { key, value }))
    }
}

/// Why bytes of `__consumer_offsets` are not a record Tern understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("{field} ends past the record")]
    Truncated { field: &'static str },
    #[error("{field} has an invalid length")]
    BadLength { field: &'static str },
    #[error("value version {version} is not one Tern reads")]
    UnknownValueVersion { version: i16 },
    #[error("{field} is null but may not be")]
    UnexpectedNull { field: &'static str },
    #[error("{field} is not UTF-8")]
    NotUtf8 { field: &'static str },
    /// Encoding: a string longer than its int16 length can say (or bytes or an array longer
    /// than an int32). The request parser refuses such strings as Kafka does, so this is a
    /// second line: the record is not written and the request fails, the broker stays up.
    #[error("{field} is {length} long, more than its length prefix can hold")]
    TooLong { field: &'static str, length: usize },
}

pub fn encode_key(key: &GroupKey) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::with_capacity(64);
    match key {
        GroupKey::Offset { group, topic, partition } => {
            out.put_i16(OFFSET_COMMIT_KEY_VERSION);
            put_string(&mut out, "group", group)?;
            put_string(&mut out, "topic", topic)?;
            out.put_i32(*partition);
        }
        GroupKey::Metadata { group } => {
            out.put_i16(GROUP_METADATA_KEY_VERSION);
            put_string(&mut out, "group", group)?;
        }
    }
    Ok(out)
}

/// `Ok(None)` for key versions of other record kinds, which Tern skips.
pub fn decode_key(bytes: &[u8]) -> Result<Option<GroupKey>, RecordError> {
    let mut reader = Reader { bytes, position: 0, flexible: false };
    let key = match reader.i16("key version")? {
        0 | 1 => GroupKey::Offset {
            group: reader.string("group")?,
            topic: reader.string("topic")?,
            partition: reader.i32("partition")?,
        },
        2 => GroupKey::Metadata { group: reader.string("group")? },
        _ => return Ok(None),
    };
    Ok(Some(key))
}

pub fn encode_offset_value(value: &OffsetValue) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::with_capacity(32 + value.metadata.len());
    out.put_i16(OFFSET_COMMIT_VALUE_VERSION);
    out.put_i64(value.offset);
    out.put_i32(value.leader_epoch);
    put_string(&mut out, "metadata", &value.metadata)?;
    out.put_i64(value.commit_timestamp_ms);
    Ok(out)
}

pub fn decode_offset_value(bytes: &[u8]) -> Result<OffsetValue, RecordError> {
    let (mut reader, version) = value_reader(bytes)?;
    let offset = reader.i64("offset")?;
    let leader_epoch = if version >= 3 { reader.i32("leader epoch")? } else { -1 };
    let metadata = reader.string("metadata")?;
    let commit_timestamp_ms = reader.i64("commit timestamp")?;
    let expire_timestamp_ms = if version == 1 { reader.i64("expire timestamp")? } else { -1 };
    reader.tagged_fields()?;
    Ok(OffsetValue { offset, leader_epoch, metadata, commit_timestamp_ms, expire_timestamp_ms })
}

pub fn encode_metadata_value(value: &MetadataValue) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::with_capacity(128);
    out.put_i16(GROUP_METADATA_VALUE_VERSION);
    put_string(&mut out, "protocol type", &value.protocol_type)?;
    out.put_i32(value.generation);
    put_nullable_string(&mut out, "protocol", value.protocol.as_deref())?;
    put_nullable_string(&mut out, "leader", value.leader.as_deref())?;
    out.put_i64(value.current_state_timestamp_ms);
    out.put_i32(int32_length("members", value.members.len())?);
    for member in &value.members {
        put_string(&mut out, "member id", &member.member_id)?;
        put_nullable_string(&mut out, "group instance id", member.group_instance_id.as_deref())?;
        put_string(&mut out, "client id", &member.client_id)?;
        put_string(&mut out, "client host", &member.client_host)?;
        out.put_i32(member.rebalance_timeout_ms);
        out.put_i32(member.session_timeout_ms);
        put_bytes(&mut out, "subscription", &member.subscription)?;
        put_bytes(&mut out, "assignment", &member.assignment)?;
    }
    Ok(out)
}

pub fn decode_metadata_value(bytes: &[u8]) -> Result<MetadataValue, RecordError> {
    let (mut reader, version) = value_reader(bytes)?;
    let protocol_type = reader.string("protocol type")?;
    let generation = reader.i32("generation")?;
    let protocol = reader.nullable_string("protocol")?;
    let leader = reader.nullable_string("leader")?;
    let current_state_timestamp_ms =
        if version >= 2 { reader.i64("current state timestamp")? } else { -1 };
    let count = reader.array_count("members")?;
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        members.push(decode_member(&mut reader, version)?);
    }
    reader.tagged_fields()?;
    Ok(MetadataValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp_ms,
        members,
    })
}

fn decode_member(reader: &mut Reader, version: i16) -> Result<MemberValue, RecordError> {
    let member_id = reader.string("member id")?;
    let group_instance_id =
        if version >= 3 { reader.nullable_string("group instance id")? } else { None };
    let client_id = reader.string("client id")?;
    let client_host = reader.string("client host")?;
    let rebalance_timeout_ms = if version >= 1 { reader.i32("rebalance timeout")? } else { 0 };
    let session_timeout_ms = reader.i32("session timeout")?;
    let subscription = reader.bytes("subscription")?;
    let assignment = reader.bytes("assignment")?;
    reader.tagged_fields()?;
    // v0 has no rebalance timeout: Kafka uses the session timeout in its place.
    let rebalance_timeout_ms = if version >= 1 { rebalance_timeout_ms } else { session_timeout_ms };
    Ok(MemberValue {
        member_id,
        group_instance_id,
        client_id,
        client_host,
        rebalance_timeout_ms,
        session_timeout_ms,
        subscription,
        assignment,
    })
}

fn value_reader(bytes: &[u8]) -> Result<(Reader<'_>, i16), RecordError> {
    let mut reader = Reader { bytes, position: 0, flexible: false };
    let version = reader.i16("value version")?;
    if !(0..=VALUE_VERSION_MAX).contains(&version) {
        return Err(RecordError::UnknownValueVersion { version });
    }
    reader.flexible = version >= FIRST_FLEXIBLE_VALUE_VERSION;
    Ok((reader, version))
}

/// Request strings are at most 32,767 bytes (`protocol::request::bounds`), so this fails only
/// if that bound is broken, or for strings the broker makes up (none is that long).
fn put_string(out: &mut Vec<u8>, field: &'static str, value: &str) -> Result<(), RecordError> {
    let length = value.len();
    let length = i16::try_from(length).map_err(|_| RecordError::TooLong { field, length })?;
    out.put_i16(length);
    out.put_slice(value.as_bytes());
    Ok(())
}

fn put_nullable_string(
    out: &mut Vec<u8>,
    field: &'static str,
    value: Option<&str>,
) -> Result<(), RecordError> {
    match value {
        Some(value) => put_string(out, field, value),
        None => {
            out.put_i16(-1);
            Ok(())
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, field: &'static str, value: &[u8]) -> Result<(), RecordError> {
    out.put_i32(int32_length(field, value.len())?);
    out.put_slice(value);
    Ok(())
}

fn int32_length(field: &'static str, length: usize) -> Result<i32, RecordError> {
    i32::try_from(length).map_err(|_| RecordError::TooLong { field, length })
}

/// A bounds-checked cursor over one key or value.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
    flexible: bool,
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize, field: &'static str) -> Result<&'a [u8], RecordError> {
        let end = self.position.checked_add(count).filter(|end| *end <= self.bytes.len());
        let end = end.ok_or(RecordError::Truncated { field })?;
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    fn i16(&mut self, field: &'static str) -> Result<i16, RecordError> {
        let bytes = self.take(2, field)?;
        Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, RecordError> {
        let bytes = self.take(4, field)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn i64(&mut self, field: &'static str) -> Result<i64, RecordError> {
        let mut value = [0u8; 8];
        value.copy_from_slice(self.take(8, field)?);
        Ok(i64::from_be_bytes(value))
    }

    fn unsigned_varint(&mut self, field: &'static str) -> Result<u32, RecordError> {
        let mut value = 0u32;
        for index in 0..5 {
            let byte = self.take(1, field)?[0];
            value |= u32::from(byte & 0x7f) << (index * 7);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(RecordError::BadLength { field })
    }

    /// `None` for null. Classic: int16 (strings) or int32 (bytes, arrays) with -1 for null;
    /// flexible: unsigned varint of length + 1.
    fn length(&mut self, field: &'static str, wide: bool) -> Result<Option<usize>, RecordError> {
        if self.flexible {
            let raw = self.unsigned_varint(field)?;
            return Ok(raw.checked_sub(1).map(|length| length as usize));
        }
        let raw = if wide { self.i32(field)? } else { i32::from(self.i16(field)?) };
        match raw {
            -1 => Ok(None),
            length if length < 0 => Err(RecordError::BadLength { field }),
            length => Ok(Some(length as usize)),
        }
    }

    /// Flexible (compact) strings longer than an int16 could say are refused, as Kafka's
    /// generated readers do: every record read back can be written again.
    fn nullable_string(&mut self, field: &'static str) -> Result<Option<String>, RecordError> {
        let Some(length) = self.length(field, false)? else { return Ok(None) };
        if i16::try_from(length).is_err() {
            return Err(RecordError::BadLength { field });
        }
        let bytes = self.take(length, field)?;
        let text = std::str::from_utf8(bytes).map_err(|_| RecordError::NotUtf8 { field })?;
        Ok(Some(text.to_owned()))
    }

    fn string(&mut self, field: &'static str) -> Result<String, RecordError> {
        self.nullable_string(field)?.ok_or(RecordError::UnexpectedNull { field })
    }

    fn bytes(&mut self, field: &'static str) -> Result<Bytes, RecordError> {
        let length = self.length(field, true)?.ok_or(RecordError::UnexpectedNull { field })?;
        Ok(Bytes::copy_from_slice(self.take(length, field)?))
    }

    /// An element count, checked against the bytes left (each element takes at least one).
    fn array_count(&mut self, field: &'static str) -> Result<usize, RecordError> {
        let count = self.length(field, true)?.ok_or(RecordError::UnexpectedNull { field })?;
        if count > self.bytes.len() - self.position {
            return Err(RecordError::BadLength { field });
        }
        Ok(count)
    }

    /// Skips a flexible struct's tagged fields (none are known in these versions).
    fn tagged_fields(&mut self) -> Result<(), RecordError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.unsigned_varint("tagged field count")?;
        for _ in 0..count {
            self.unsigned_varint("tag")?;
            let size_bytes = self.unsigned_varint("tag size")? as usize;
            self.take(size_bytes, "tagged field")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9._-]{0,40}"
    }

    fn member() -> impl Strategy<Value = MemberValue> {
        let ids = (text(), proptest::option::of(text()), text(), text());
        let numbers = (any::<i32>(), any::<i32>());
        let blobs =
            (prop::collection::vec(any::<u8>(), 0..64), prop::collection::vec(any::<u8>(), 0..64));
        (ids, numbers, blobs).prop_map(
            |((member_id, instance, client_id, host), (r, s), (a, b))| MemberValue {
                member_id,
                group_instance_id: instance,
                client_id,
                client_host: host,
                rebalance_timeout_ms: r,
                session_timeout_ms: s,
                subscription: Bytes::from(a),
                assignment: Bytes::from(b),
            },
        )
    }

    proptest! {
        #[test]
        fn offset_records_round_trip(
            group in text(), topic in text(), partition in any::<i32>(),
            offset in any::<i64>(), epoch in any::<i32>(), metadata in ".{0,100}",
            timestamp in any::<i64>(),
        ) {
            let key = GroupKey::Offset { group, topic, partition };
            prop_assert_eq!(decode_key(&encode_key(&key).unwrap()).unwrap(), Some(key));
            let value = OffsetValue {
                offset, leader_epoch: epoch, metadata, commit_timestamp_ms: timestamp,
                expire_timestamp_ms: -1,
            };
            let encoded = encode_offset_value(&value).unwrap();
            prop_assert_eq!(decode_offset_value(&encoded).unwrap(), value);
        }

        #[test]
        fn group_records_round_trip(
            group in text(), protocol_type in text(), generation in any::<i32>(),
            protocol in proptest::option::of(text()), leader in proptest::option::of(text()),
            timestamp in any::<i64>(), members in prop::collection::vec(member(), 0..5),
        ) {
            let key = GroupKey::Metadata { group };
            prop_assert_eq!(decode_key(&encode_key(&key).unwrap()).unwrap(), Some(key));
            let value = MetadataValue {
                protocol_type, generation, protocol, leader,
                current_state_timestamp_ms: timestamp, members,
            };
            let encoded = encode_metadata_value(&value).unwrap();
            prop_assert_eq!(decode_metadata_value(&encoded).unwrap(), value);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_key(&bytes);
            let _ = decode_offset_value(&bytes);
            let _ = decode_metadata_value(&bytes);
        }
    }

    #[test]
    fn offset_value_v1_and_v4_decode() {
        // v1: offset, metadata, commit timestamp, expire timestamp.
        let mut v1 = vec![0, 1];
        v1.extend_from_slice(&42i64.to_be_bytes());
        v1.extend_from_slice(&[0, 2, b'h', b'i']);
        v1.extend_from_slice(&7i64.to_be_bytes());
        v1.extend_from_slice(&9i64.to_be_bytes());
        let value = decode_offset_value(&v1).unwrap();
        assert_eq!((value.offset, value.leader_epoch, value.expire_timestamp_ms), (42, -1, 9));
        assert_eq!(value.metadata, "hi");
        // v4: flexible; compact string, then an empty tagged-field section.
        let mut v4 = vec![0, 4];
        v4.extend_from_slice(&42i64.to_be_bytes());
        v4.extend_from_slice(&5i32.to_be_bytes());
        v4.extend_from_slice(&[3, b'h', b'i']);
        v4.extend_from_slice(&7i64.to_be_bytes());
        v4.push(0);
        let value = decode_offset_value(&v4).unwrap();
        assert_eq!((value.offset, value.leader_epoch, value.commit_timestamp_ms), (42, 5, 7));
    }

    #[test]
    fn other_key_versions_are_skipped_and_bad_values_refused() {
        assert_eq!(decode_key(&[0, 3, 0, 0]), Ok(None));
        assert!(decode_offset_value(&[0, 9]).is_err());
        assert!(decode_metadata_value(&[0, 3, 0xff, 0xff]).is_err());
        // A member count larger than the remaining bytes is refused before allocating.
        let mut huge = vec![0, 3, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        huge.extend_from_slice(&0i64.to_be_bytes());
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(decode_metadata_value(&huge), Err(RecordError::BadLength { field: "members" }));
    }

    #[test]
    fn strings_longer_than_an_int16_length_are_errors_not_panics() {
        let at_limit = "g".repeat(i16::MAX as usize);
        let key = GroupKey::Metadata { group: at_limit.clone() };
        assert_eq!(decode_key(&encode_key(&key).unwrap()).unwrap(), Some(key));
        let group = "g".repeat(40_000);
        let key = GroupKey::Offset { group, topic: "t".into(), partition: 0 };
        let expected = RecordError::TooLong { field: "group", length: 40_000 };
        assert_eq!(encode_key(&key), Err(expected.clone()));
        let record = GroupRecord { key, value: None };
        assert_eq!(record.encode(), Err(expected));
        let value = OffsetValue {
            offset: 0,
            leader_epoch: -1,
            metadata: at_limit + "m",
            commit_timestamp_ms: 0,
            expire_timestamp_ms: -1,
        };
        let expected = RecordError::TooLong { field: "metadata", length: 32_768 };
        assert_eq!(encode_offset_value(&value), Err(expected));
    }
}
