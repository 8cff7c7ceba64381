//! Structural pre-check of a request body, run before `kafka-protocol` decodes it.
//!
//! Why: `kafka-protocol` 0.18 decodes an array by reading its element count from the wire and
//! calling `Vec::with_capacity(count)` *before* reading any element (`types.rs`, `Array` and
//! `CompactArray` decoders). A 20-byte frame claiming 2^31 topics would make it reserve
//! hundreds of gigabytes: the allocation fails and the process aborts (allocation failure is
//! not a panic; it cannot be caught). Strings and byte fields are safe (they are sliced out of
//! the frame after a length check), and so are tagged fields (read element by element).
//!
//! So this module walks the body with the same field layout as the generated decoders, for
//! every API and version Tern accepts, and checks every length against the bytes actually
//! present: an array of `count` elements must be followed by `count` well-formed elements. Only
//! then is the crate allowed to allocate, and every element it reserves room for exists in the
//! frame (each is at least one byte), so memory stays proportional to the frame size, which
//! the frame decoder bounds.
//!
//! The walk must follow the crate byte for byte, or the two would read lengths at different
//! places. It mirrors the crate's varint reading (at most 5 bytes) and requires each *known*
//! tagged field (only Fetch has some) to fill exactly its declared size, because the crate
//! decodes those without looking at the size. Being stricter than the crate is safe (the
//! request is answered as malformed); being laxer is not. The corpus test and the round-trip
//! tests check that every request the crate encodes passes this walk.

use kafka_protocol::messages::ApiKey;

/// Where and why a body failed the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundsError {
    pub field: &'static str,
    pub position_bytes: usize,
    pub problem: &'static str,
}

impl std::fmt::Display for BoundsError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} at byte {}: {}", self.field, self.position_bytes, self.problem)
    }
}

type Walk = Result<(), BoundsError>;

/// Checks that `body` (the bytes after the request header) of `api_key` at `version` has
/// lengths consistent with its size. Returns the number of bytes the body occupies.
pub fn check(api_key: ApiKey, version: i16, body: &[u8]) -> Result<usize, BoundsError> {
    let flexible = api_key.request_header_version(version) >= 2;
    let mut walker = Walker { bytes: body, position: 0, elements: 0, flexible };
    match api_key {
        ApiKey::ApiVersions => api_versions(&mut walker, version)?,
        ApiKey::Metadata => metadata(&mut walker, version)?,
        ApiKey::Produce => produce(&mut walker, version)?,
        ApiKey::Fetch => fetch(&mut walker, version)?,
        ApiKey::ListOffsets => list_offsets(&mut walker, version)?,
        ApiKey::OffsetForLeaderEpoch => offset_for_leader_epoch(&mut walker, version)?,
        ApiKey::CreateTopics => create_topics(&mut walker)?,
        ApiKey::DeleteTopics => delete_topics(&mut walker, version)?,
        ApiKey::InitProducerId => init_producer_id(&mut walker, version)?,
        ApiKey::DescribeConfigs => describe_configs(&mut walker, version)?,
        ApiKey::CreatePartitions => create_partitions(&mut walker)?,
        ApiKey::DescribeCluster => describe_cluster(&mut walker, version)?,
        ApiKey::FindCoordinator => find_coordinator(&mut walker, version)?,
        ApiKey::JoinGroup => join_group(&mut walker, version)?,
        ApiKey::SyncGroup => sync_group(&mut walker, version)?,
        ApiKey::Heartbeat => heartbeat(&mut walker, version)?,
        ApiKey::LeaveGroup => leave_group(&mut walker, version)?,
        ApiKey::OffsetCommit => offset_commit(&mut walker, version)?,
        ApiKey::OffsetFetch => offset_fetch(&mut walker, version)?,
        ApiKey::ListGroups => list_groups(&mut walker, version)?,
        ApiKey::DescribeGroups => string_array_then(&mut walker, "groups", 3, version)?,
        ApiKey::DeleteGroups => string_array_then(&mut walker, "groups_names", i16::MAX, 0)?,
        ApiKey::OffsetDelete => offset_delete(&mut walker)?,
        ApiKey::DeleteRecords => delete_records(&mut walker)?,
        ApiKey::ElectLeaders => elect_leaders(&mut walker, version)?,
        ApiKey::AlterConfigs | ApiKey::IncrementalAlterConfigs => {
            alter_configs(&mut walker, api_key == ApiKey::IncrementalAlterConfigs)?
        }
        _ => return Err(walker.error("api key", "no bounds walk for this API")),
    }
    Ok(walker.position)
}

fn api_versions(walker: &mut Walker, version: i16) -> Walk {
    if version >= 3 {
        walker.string("client_software_name")?;
        walker.string("client_software_version")?;
    }
    walker.tagged_fields(no_known_tags)
}

fn metadata(walker: &mut Walker, version: i16) -> Walk {
    walker.array("topics", |topic| {
        if version >= 10 {
            topic.fixed(16, "topic_id")?;
        }
        topic.string("name")?;
        topic.tagged_fields(no_known_tags)
    })?;
    if version >= 4 {
        walker.fixed(1, "allow_auto_topic_creation")?;
    }
    if (8..=10).contains(&version) {
        walker.fixed(1, "include_cluster_authorized_operations")?;
    }
    if version >= 8 {
        walker.fixed(1, "include_topic_authorized_operations")?;
    }
    walker.tagged_fields(no_known_tags)
}

fn produce(walker: &mut Walker, version: i16) -> Walk {
    walker.string("transactional_id")?;
    walker.fixed(2 + 4, "acks, timeout_ms")?;
    walker.array("topic_data", |topic| {
        if version <= 12 {
            topic.string("name")?;
        } else {
            topic.fixed(16, "topic_id")?;
        }
        topic.array("partition_data", |partition| {
            partition.fixed(4, "index")?;
            partition.bytes("records")?;
            partition.tagged_fields(no_known_tags)
        })?;
        topic.tagged_fields(no_known_tags)
    })?;
    walker.tagged_fields(no_known_tags)
}

fn fetch(walker: &mut Walker, version: i16) -> Walk {
    if version <= 14 {
        walker.fixed(4, "replica_id")?;
    }
    walker.fixed(4 + 4 + 4 + 1, "max_wait_ms, min_bytes, max_bytes, isolation_level")?;
    if version >= 7 {
        walker.fixed(4 + 4, "session_id, session_epoch")?;
    }
    walker.array("topics", |topic| {
        if version <= 12 {
            topic.string("topic")?;
        } else {
            topic.fixed(16, "topic_id")?;
        }
        topic.array("partitions", |partition| fetch_partition(partition, version))?;
        topic.tagged_fields(no_known_tags)
    })?;
    if version >= 7 {
        walker.array("forgotten_topics_data", |topic| {
            if version <= 12 {
                topic.string("topic")?;
            } else {
                topic.fixed(16, "topic_id")?;
            }
            topic.array("partitions", |partition| partition.fixed(4, "partition"))?;
            topic.tagged_fields(no_known_tags)
        })?;
    }
    if version >= 11 {
        walker.string("rack_id")?;
    }
    walker.tagged_fields(|tag, field| match tag {
        0 => field.string("cluster_id").map(|()| true),
        1 if version >= 15 => {
            field.fixed(4 + 8, "replica_state")?;
            field.tagged_fields(no_known_tags).map(|()| true)
        }
        1 => Err(field.error("replica_state", "tag not valid before version 15")),
        _ => Ok(false),
    })
}

fn fetch_partition(partition: &mut Walker, version: i16) -> Walk {
    partition.fixed(4, "partition")?;
    if version >= 9 {
        partition.fixed(4, "current_leader_epoch")?;
    }
    partition.fixed(8, "fetch_offset")?;
    if version >= 12 {
        partition.fixed(4, "last_fetched_epoch")?;
    }
    if version >= 5 {
        partition.fixed(8, "log_start_offset")?;
    }
    partition.fixed(4, "partition_max_bytes")?;
    partition.tagged_fields(|tag, field| match tag {
        0 if version >= 17 => field.fixed(16, "replica_directory_id").map(|()| true),
        1 if version >= 18 => field.fixed(8, "high_watermark").map(|()| true),
        0 | 1 => Err(field.error("partition tagged field", "tag not valid for this version")),
        _ => Ok(false),
    })
}

fn offset_for_leader_epoch(walker: &mut Walker, version: i16) -> Walk {
    if version >= 3 {
        walker.fixed(4, "replica_id")?;
    }
    walker.array("topics", |topic| {
        topic.string("topic")?;
        topic.array("partitions", |partition| {
            partition.fixed(4 + 4 + 4, "partition, current_leader_epoch, leader_epoch")?;
            partition.tagged_fields(no_known_tags)
        })?;
        topic.tagged_fields(no_known_tags)
    })?;
    walker.tagged_fields(no_known_tags)
}

fn list_offsets(walker: &mut Walker, version: i16) -> Walk {
    walker.fixed(4, "replica_id")?;
    if version >= 2 {
        walker.fixed(1, "isolation_level")?;
    }
    walker.array("topics", |topic| {
        topic.string("name")?;
        topic.array("partitions", |partition| {
            partition.fixed(4, "partition_index")?;
            if version >= 4 {
                partition.fixed(4, "current_leader_epoch")?;
            }
            partition.fixed(8, "timestamp")?;
            partition.tagged_fields(no_known_tags)
        })?;
        topic.tagged_fields(no_known_tags)
    })?;
    if version >= 10 {
        walker.fixed(4, "timeout_ms")?;
    }
    walker.tagged_fields(no_known_tags)
}

fn create_topics(walker: &mut Walker) -> Walk {
    walker.array("topics", |topic| {
        topic.string("name")?;
        topic.fixed(4 + 2, "num_partitions, replication_factor")?;
        topic.array("assignments", |assignment| {
            assignment.fixed(4, "partition_index")?;
            assignment.array("broker_ids", |broker| broker.fixed(4, "broker_id"))?;
            assignment.tagged_fields(no_known_tags)
        })?;
        topic.array("configs", |config| {
            config.string("name")?;
            config.string("value")?;
            config.tagged_fields(no_known_tags)
        })?;
        topic.tagged_fields(no_known_tags)
    })?;
    walker.fixed(4 + 1, "timeout_ms, validate_only")?;
    walker.tagged_fields(no_known_tags)
}

fn create_partitions(walker: &mut Walker) -> Walk {
    walker.array("topics", |topic| {
        topic.string("name")?;
        topic.fixed(4, "count")?;
        // Nullable: null (-1, or 0 when compact) keeps the broker's placement.
        topic.array("assignments", |assignment| {
            assignment.array("broker_ids", |broker| broker.fixed(4, "broker_id"))?;
            assignment.tagged_fields(no_known_tags)
        })?;
        topic.tagged_fields(no_known_tags)
    })?;
    walker.fixed(4 + 1, "timeout_ms, validate_only")?;
    walker.tagged_fields(no_known_tags)
}

fn delete_topics(walker: &mut Walker, version: i16) -> Walk {
    if version >= 6 {
        walker.array("topics", |topic| {
            topic.string("name")?;
            topic.fixed(16, "topic_id")?;
            topic.tagged_fields(no_known_tags)
        })?;
    } else {
        walker.array("topic_names", |name| name.string("topic_name"))?;
    }
    walker.fixed(4, "timeout_ms")?;
    walker.tagged_fields(no_known_tags)
}

fn describe_configs(walker: &mut Walker, version: i16) -> Walk {
    walker.array("resources", |resource| {
        resource.fixed(1, "resource_type")?;
        resource.string("resource_name")?;
        resource.array("configuration_keys", |key| key.string("configuration_key"))?;
        resource.tagged_fields(no_known_tags)
    })?;
    walker.fixed(1, "include_synonyms")?;
    if version >= 3 {
        walker.fixed(1, "include_documentation")?;
    }
    walker.tagged_fields(no_known_tags)
}

fn init_producer_id(walker: &mut Walker, version: i16) -> Walk {
    walker.string("transactional_id")?;
    walker.fixed(4, "transaction_timeout_ms")?;
    if version >= 3 {
        walker.fixed(8, "producer_id")?;
        walker.fixed(2, "producer_epoch")?;
    }
    if version >= 6 {
        walker.fixed(1, "enable_2pc")?;
        walker.fixed(1, "keep_prepared_txn")?;
    }
    walker.tagged_fields(no_known_tags)
}

fn describe_cluster(walker: &mut Walker, version: i16) -> Walk {
    walker.fixed(1, "include_cluster_authorized_operations")?;
    if version >= 1 {
        walker.fixed(1, "endpoint_type")?;
    }
    if version >= 2 {
        walker.fixed(1, "include_fenced_brokers")?;
    }
    walker.tagged_fields(no_known_tags)
}

fn find_coordinator(walker: &mut Walker, version: i16) -> Walk {
    if version <= 3 {
        walker.string("key")?;
    }
    if version >= 1 {
        walker.fixed(1, "key_type")?;
    }
    if version >= 4 {
        walker.array("coordinator_keys", |key| key.string("coordinator_key"))?;
    }
    walker.tagged_fields(no_known_tags)
}

fn join_group(walker: &mut Walker, version: i16) -> Walk {
    walker.string("group_id")?;
    walker.fixed(4, "session_timeout_ms")?;
    if version >= 1 {
        walker.fixed(4, "rebalance_timeout_ms")?;
    }
    walker.string("member_id")?;
    if version >= 5 {
        walker.string("group_instance_id")?;
    }
    walker.string("protocol_type")?;
    walker.array("protocols", |protocol| {
        protocol.string("name")?;
        protocol.bytes("metadata")?;
        protocol.tagged_fields(no_known_tags)
    })?;
    if version >= 8 {
        walker.string("reason")?;
    }
    walker.tagged_fields(no_known_tags)
}

fn sync_group(walker: &mut Walker, version: i16) -> Walk {
    walker.string("group_id")?;
    walker.fixed(4, "generation_id")?;
    walker.string("member_id")?;
    if version >= 3 {
        walker.string("group_instance_id")?;
    }
    if version >= 5 {
        walker.string("protocol_type")?;
        walker.string("protocol_name")?;
    }
    walker.array("assignments", |assignment| {
        assignment.string("member_id")?;
        assignment.bytes("assignment")?;
        assignment.tagged_fields(no_known_tags)
    })?;
    walker.tagged_fields(no_known_tags)
}

fn heartbeat(walker: &mut Walker, version: i16) -> Walk {
    walker.string("group_id")?;
    walker.fixed(4, "generation_id")?;
    walker.string("member_id")?;
    if version >= 3 {
        walker.string("group_instance_id")?;
    }
    walker.tagged_fields(no_known_tags)
}

fn leave_group(walker: &mut Walker, version: i16) -> Walk {
    walker.string("group_id")?;
    if version <= 2 {
        walker.string("member_id")?;
    } else {
        walker.array("members", |member| {
            member.string("member_id")?;
            member.string("group_instance_id")?;
            if version >= 5 {
                member.string("reason")?;
            }
            member.tagged_fields(no_known_tags)
        })?;
    }
    walker.tagged_fields(no_known_tags)
}

fn offset_commit(walker: &mut Walker, version: i16) -> Walk {
    walker.string("group_id")?;
    walker.fixed(4, "generation_id_or_member_epoch")?;
    walker.string("member_id")?;
    if version >= 7 {
        walker.string("group_instance_id")?;
    }
    if version <= 4 {
        walker.fixed(8, "retention_time_ms")?;
    }
    walker.array("topics", |topic| {
        topic.string("name")?;
        topic.array("partitions", |partition| {
            partition.fixed(4 + 8, "partition_index, committed_offset")?;
            if version >= 6 {
                partition.fixed(4, "committed_leader_epoch")?;
            }
            partition.string("committed_metadata")?;
            partition.tagged_fields(no_known_tags)
        })?;
        topic.tagged_fields(no_known_tags)
    })?;
    walker.tagged_fields(no_known_tags)
}

fn offset_fetch(walker: &mut Walker, version: i16) -> Walk {
    let topics = |walker: &mut Walker| {
        walker.array("topics", |topic| {
            topic.string("name")?;
            topic.array("partition_indexes", |index| index.fixed(4, "partition_index"))?;
            topic.tagged_fields(no_known_tags)
        })
    };
    if version <= 7 {
        walker.string("group_id")?;
        topics(walker)?;
    } else {
        walker.array("groups", |group| {
            group.string("group_id")?;
            if version >= 9 {
                group.string("member_id")?;
                group.fixed(4, "member_epoch")?;
            }
            topics(group)?;
            group.tagged_fields(no_known_tags)
        })?;
    }
    if version >= 7 {
        walker.fixed(1, "require_stable")?;
    }
    walker.tagged_fields(no_known_tags)
}

fn list_groups(walker: &mut Walker, version: i16) -> Walk {
    if version >= 4 {
        walker.array("states_filter", |state| state.string("state"))?;
    }
    if version >= 5 {
        walker.array("types_filter", |kind| kind.string("type"))?;
    }
    walker.tagged_fields(no_known_tags)
}

/// DescribeGroups and DeleteGroups: an array of group ids, then (DescribeGroups from
/// `boolean_from`) include_authorized_operations.
fn string_array_then(
    walker: &mut Walker,
    field: &'static str,
    boolean_from: i16,
    version: i16,
) -> Walk {
    walker.array(field, |group| group.string("group_id"))?;
    if version >= boolean_from {
        walker.fixed(1, "include_authorized_operations")?;
    }
    walker.tagged_fields(no_known_tags)
}

fn offset_delete(walker: &mut Walker) -> Walk {
    walker.string("group_id")?;
    walker.array("topics", |topic| {
        topic.string("name")?;
        topic.array("partitions", |partition| partition.fixed(4, "partition_index"))
    })?;
    walker.tagged_fields(no_known_tags)
}

fn delete_records(walker: &mut Walker) -> Walk {
    walker.array("topics", |topic| {
        topic.string("name")?;
        topic.array("partitions", |partition| {
            partition.fixed(4 + 8, "partition_index, offset")?;
            partition.tagged_fields(no_known_tags)
        })?;
        topic.tagged_fields(no_known_tags)
    })?;
    walker.fixed(4, "timeout_ms")?;
    walker.tagged_fields(no_known_tags)
}

/// ElectLeaders: v1 added the election type before the (nullable) topics.
fn elect_leaders(walker: &mut Walker, version: i16) -> Walk {
    if version >= 1 {
        walker.fixed(1, "election_type")?;
    }
    walker.array("topic_partitions", |topic| {
        topic.string("topic")?;
        topic.array("partitions", |partition| partition.fixed(4, "partition"))?;
        topic.tagged_fields(no_known_tags)
    })?;
    walker.fixed(4, "timeout_ms")?;
    walker.tagged_fields(no_known_tags)
}

/// AlterConfigs and IncrementalAlterConfigs: the same layout, except that each config of the
/// incremental one carries its operation between name and value.
fn alter_configs(walker: &mut Walker, incremental: bool) -> Walk {
    walker.array("resources", |resource| {
        resource.fixed(1, "resource_type")?;
        resource.string("resource_name")?;
        resource.array("configs", |config| {
            config.string("name")?;
            if incremental {
                config.fixed(1, "config_operation")?;
            }
            config.string("value")?;
            config.tagged_fields(no_known_tags)
        })?;
        resource.tagged_fields(no_known_tags)
    })?;
    walker.fixed(1, "validate_only")?;
    walker.tagged_fields(no_known_tags)
}

fn no_known_tags(_tag: u32, _field: &mut Walker) -> Result<bool, BoundsError> {
    Ok(false)
}

/// Bound on the array elements of one request, all arrays together. The codec turns each
/// element of a few wire bytes into a struct of up to ~150 bytes (33x for Metadata topics), so
/// without this a 100 MiB frame could cost gigabytes; with it one request decodes into at most
/// ~15 MB of structs. Real requests stay far below: a fetch of 10,000 partitions has ~10,000.
pub const ARRAY_ELEMENTS_PER_REQUEST_MAX: usize = 100_000;

/// Longest string a request may carry, compact or classic: Kafka's limit (`0x7fff` in its
/// `MessageDataGenerator`), the largest an int16 length can hold. Bytes fields (Produce
/// records, JoinGroup metadata, SyncGroup assignment) are not strings and have no such cap.
pub const STRING_BYTES_MAX: usize = i16::MAX as usize;

// Lengths are read as u32 (compact) or non-negative i32 (classic) and used as usize.
const _: () = assert!(usize::BITS >= 32, "lengths from the wire fit a usize");

/// A read-only cursor that understands Kafka's length encodings (classic or compact).
struct Walker<'a> {
    bytes: &'a [u8],
    position: usize,
    /// Array elements seen so far, against [`ARRAY_ELEMENTS_PER_REQUEST_MAX`].
    elements: usize,
    /// Flexible versions use compact (varint) lengths and carry tagged fields.
    flexible: bool,
}

impl Walker<'_> {
    fn error(&self, field: &'static str, problem: &'static str) -> BoundsError {
        BoundsError { field, position_bytes: self.position, problem }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    fn fixed(&mut self, count: usize, field: &'static str) -> Walk {
        if count > self.remaining() {
            return Err(self.error(field, "ends past the frame"));
        }
        self.position += count;
        Ok(())
    }

    fn take<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], BoundsError> {
        let start = self.position;
        self.fixed(N, field)?;
        let mut value = [0u8; N];
        value.copy_from_slice(&self.bytes[start..start + N]);
        Ok(value)
    }

    /// Exactly the crate's `UnsignedVarInt` reading: at most 5 bytes, the fifth ends it.
    fn unsigned_varint(&mut self, field: &'static str) -> Result<u32, BoundsError> {
        let mut value = 0u32;
        for index in 0..5 {
            let [byte] = self.take::<1>(field)?;
            value |= u32::from(byte & 0x7f) << (index * 7);
            if byte < 0x80 {
                break;
            }
        }
        Ok(value)
    }

    /// A length prefix: `None` for null, else the length. Classic encodings use a signed
    /// int16/int32 with -1 for null; compact ones an unsigned varint holding length + 1.
    fn length(
        &mut self,
        field: &'static str,
        classic_bytes: usize,
    ) -> Result<Option<usize>, BoundsError> {
        if self.flexible {
            let raw = self.unsigned_varint(field)?;
            return Ok(raw.checked_sub(1).map(|length| length as usize));
        }
        let raw = match classic_bytes {
            2 => i32::from(i16::from_be_bytes(self.take::<2>(field)?)),
            _ => i32::from_be_bytes(self.take::<4>(field)?),
        };
        match raw {
            -1 => Ok(None),
            length if length < 0 => Err(self.error(field, "negative length")),
            length => Ok(Some(length as usize)),
        }
    }

    /// A (nullable) string: classic int16 length or compact varint length. Kafka's generated
    /// readers refuse any string longer than [`STRING_BYTES_MAX`], compact ones included
    /// ("string field X had invalid length"), and close the connection; so does Tern. Every
    /// string the broker keeps (group ids, member ids, topic names, metadata) therefore fits
    /// the int16 length of the `__consumer_offsets` records.
    fn string(&mut self, field: &'static str) -> Walk {
        match self.length(field, 2)? {
            Some(length) if length > STRING_BYTES_MAX => {
                Err(self.error(field, "string longer than 32,767 bytes"))
            }
            Some(length) => self.fixed(length, field),
            None => Ok(()),
        }
    }

    /// (Nullable) bytes: classic int32 length or compact varint length.
    fn bytes(&mut self, field: &'static str) -> Walk {
        match self.length(field, 4)? {
            Some(length) => self.fixed(length, field),
            None => Ok(()),
        }
    }

    /// A (nullable) array whose every element `element` must walk. The count is checked
    /// against the remaining bytes first (every element takes at least one byte), which
    /// also bounds the loop.
    fn array(&mut self, field: &'static str, mut element: impl FnMut(&mut Self) -> Walk) -> Walk {
        let Some(count) = self.length(field, 4)? else {
            return Ok(());
        };
        if count > self.remaining() {
            return Err(self.error(field, "element count exceeds the remaining bytes"));
        }
        self.elements += count;
        if self.elements > ARRAY_ELEMENTS_PER_REQUEST_MAX {
            return Err(self.error(field, "more array elements than one request may carry"));
        }
        for _ in 0..count {
            element(self)?;
        }
        Ok(())
    }

    /// The tagged-field section of a flexible struct (nothing in classic versions). `known`
    /// walks a tag's value and returns `Ok(true)` if it knows the tag; the value must fill
    /// exactly its declared size. Unknown tags are skipped by size.
    fn tagged_fields(
        &mut self,
        mut known: impl FnMut(u32, &mut Walker) -> Result<bool, BoundsError>,
    ) -> Walk {
        if !self.flexible {
            return Ok(());
        }
        let count = self.unsigned_varint("tagged field count")?;
        // Each tagged field takes at least two bytes (tag and size), so this bounds the loop.
        if count as usize > self.remaining() {
            return Err(self.error("tagged fields", "count exceeds the remaining bytes"));
        }
        for _ in 0..count {
            let tag = self.unsigned_varint("tag")?;
            let size_bytes = self.unsigned_varint("tag size")? as usize;
            let start = self.position;
            self.fixed(size_bytes, "tagged field")?;
            let mut value = Walker {
                bytes: &self.bytes[start..start + size_bytes],
                position: 0,
                elements: self.elements,
                flexible: true,
            };
            let is_known = known(tag, &mut value)?;
            self.elements = value.elements;
            if is_known && value.remaining() != 0 {
                return Err(self.error("tagged field", "value does not fill its declared size"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_array_count_is_rejected_before_decoding() {
        // Metadata v1: topics array claiming i32::MAX entries, nothing after.
        let body = i32::MAX.to_be_bytes();
        let error = check(ApiKey::Metadata, 1, &body).unwrap_err();
        assert_eq!(error.field, "topics");
    }

    /// Metadata v1 body with `count` topics of empty names (2 bytes each on the wire).
    fn metadata_v1_with_topics(count: usize) -> Vec<u8> {
        let mut body = (count as i32).to_be_bytes().to_vec();
        body.resize(4 + 2 * count, 0);
        body
    }

    #[test]
    fn array_elements_per_request_are_bounded() {
        let at_limit = metadata_v1_with_topics(ARRAY_ELEMENTS_PER_REQUEST_MAX);
        assert_eq!(check(ApiKey::Metadata, 1, &at_limit), Ok(at_limit.len()));
        let over = metadata_v1_with_topics(ARRAY_ELEMENTS_PER_REQUEST_MAX + 1);
        let error = check(ApiKey::Metadata, 1, &over).unwrap_err();
        assert_eq!(error.problem, "more array elements than one request may carry");
    }

    #[test]
    fn huge_compact_array_count_is_rejected() {
        // Metadata v12: compact topics array with varint 0xffff_ffff (count 2^32 - 2).
        let body = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(check(ApiKey::Metadata, 12, &body).is_err());
    }

    #[test]
    fn null_arrays_and_strings_are_accepted() {
        // Metadata v1 with a null topic list means "all topics".
        assert_eq!(check(ApiKey::Metadata, 1, &(-1i32).to_be_bytes()), Ok(4));
        // Metadata v12: null compact array (0), three booleans... only two in v12, then tags.
        assert_eq!(check(ApiKey::Metadata, 12, &[0, 1, 0, 0]), Ok(4));
    }

    #[test]
    fn group_api_arrays_claiming_too_much_are_rejected() {
        let huge = i32::MAX.to_be_bytes();
        // OffsetCommit v2: group id "", generation, member id "", retention, topics.
        let mut commit = vec![0, 0, 0, 0, 0, 1, 0, 0];
        commit.extend_from_slice(&[0; 8]);
        commit.extend_from_slice(&huge);
        assert_eq!(check(ApiKey::OffsetCommit, 2, &commit).unwrap_err().field, "topics");
        // LeaveGroup v3: group id "", members.
        let mut leave = vec![0, 0];
        leave.extend_from_slice(&huge);
        assert_eq!(check(ApiKey::LeaveGroup, 3, &leave).unwrap_err().field, "members");
        // JoinGroup v9 (compact): protocols with a varint count of 2^32 - 2.
        let mut join = vec![1]; // group id ""
        join.extend_from_slice(&[0; 8]); // session and rebalance timeouts
        join.extend_from_slice(&[1, 0, 1]); // member id "", instance id null, protocol type ""
        join.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(check(ApiKey::JoinGroup, 9, &join).unwrap_err().field, "protocols");
        // OffsetFetch v8: groups.
        let groups = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(check(ApiKey::OffsetFetch, 8, &groups).unwrap_err().field, "groups");
    }

    fn put_unsigned_varint(out: &mut Vec<u8>, mut value: u32) {
        while value >= 0x80 {
            out.push((value & 0x7f) as u8 | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    /// Metadata v12 (compact) asking for one topic whose name is `length` bytes long.
    fn metadata_v12_with_name(length: usize) -> Vec<u8> {
        let mut body = vec![2]; // one topic
        body.extend_from_slice(&[0; 16]); // topic id
        put_unsigned_varint(&mut body, u32::try_from(length + 1).unwrap());
        body.resize(body.len() + length, b't');
        body.extend_from_slice(&[0, 1, 0, 0]); // tags; auto-create, topic ops; tags
        body
    }

    /// FindCoordinator v2 (classic) whose key has the int16 length `length`, then as many
    /// bytes as that length says when it is not negative.
    fn find_coordinator_v2_with_key(length: i16) -> Vec<u8> {
        let mut body = length.to_be_bytes().to_vec();
        body.resize(body.len() + usize::try_from(length).unwrap_or(0), b'g');
        body.push(0); // key type
        body
    }

    #[test]
    fn compact_strings_are_capped_at_32767_bytes_like_kafka() {
        let at_limit = metadata_v12_with_name(STRING_BYTES_MAX);
        assert_eq!(check(ApiKey::Metadata, 12, &at_limit), Ok(at_limit.len()));
        for length in [STRING_BYTES_MAX + 1, 40_000, 100_000] {
            let over = metadata_v12_with_name(length);
            let error = check(ApiKey::Metadata, 12, &over).unwrap_err();
            assert_eq!((error.field, error.problem), ("name", "string longer than 32,767 bytes"));
        }
    }

    #[test]
    fn classic_strings_are_capped_at_32767_bytes_like_kafka() {
        let at_limit = find_coordinator_v2_with_key(i16::MAX);
        assert_eq!(check(ApiKey::FindCoordinator, 2, &at_limit), Ok(at_limit.len()));
        // 32,768 in an int16 length is 0x8000: negative, and not the -1 of null.
        let over = find_coordinator_v2_with_key(i16::MIN);
        let error = check(ApiKey::FindCoordinator, 2, &over).unwrap_err();
        assert_eq!((error.field, error.problem), ("key", "negative length"));
    }

    #[test]
    fn nullable_compact_strings_are_capped_too() {
        // OffsetCommit v8: group id "g", generation, member id "", group instance id of
        // 32,768 bytes (nullable), then no topics.
        let mut body = vec![2, b'g', 0, 0, 0, 0, 1];
        put_unsigned_varint(&mut body, 32_769);
        body.resize(body.len() + 32_768, b'i');
        body.extend_from_slice(&[1, 0]);
        let error = check(ApiKey::OffsetCommit, 8, &body).unwrap_err();
        assert_eq!(error.field, "group_instance_id");
        let mut null_instance = vec![2, b'g', 0, 0, 0, 0, 1, 0];
        null_instance.extend_from_slice(&[1, 0]);
        assert_eq!(check(ApiKey::OffsetCommit, 8, &null_instance), Ok(null_instance.len()));
    }

    #[test]
    fn known_tag_must_fill_its_size() {
        // Fetch v17 partition tag 0 (replica_directory_id, 16 bytes) declared as 17 bytes.
        let mut body = Vec::new();
        body.extend_from_slice(&[0; 4 + 4 + 4 + 1 + 4 + 4]); // fixed top-level fields
        body.push(2); // one topic
        body.extend_from_slice(&[0; 16]); // topic id
        body.push(2); // one partition
        body.extend_from_slice(&[0; 4 + 4 + 8 + 4 + 8 + 4]);
        body.extend_from_slice(&[1, 0, 17]); // one tag: 0, size 17
        body.extend_from_slice(&[0; 17]);
        let error = check(ApiKey::Fetch, 17, &body).unwrap_err();
        assert_eq!(error.problem, "value does not fill its declared size");
    }
}
