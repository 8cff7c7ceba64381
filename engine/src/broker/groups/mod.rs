//! Consumer groups: the classic group coordinator, its durable state in the internal topic
//! `__consumer_offsets`, and the per-shard driver that connects the two.
//!
//! - `coordinator.rs`: the state machine (join/sync barriers, generations, sessions, static
//!   members, committed offsets). Pure: time comes in as an argument.
//! - `records.rs`: Kafka's record schemas for `__consumer_offsets`.
//! - `service.rs`: the driver on each shard: timers, delayed answers, appends, rebuild.
//!
//! A group belongs to partition `abs(javaStringHashCode(group id)) % 50` of
//! `__consumer_offsets`, exactly as Kafka computes it, and its coordinator runs on the shard
//! that owns that partition, so its records are appended to a log of the same shard.

pub mod coordinator;
pub mod records;
pub mod service;

pub use coordinator::{Coordinator, CoordinatorConfig, GroupError, GroupState};
pub use service::GroupService;

/// Kafka's internal topic for group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Kafka's default offsets.topic.num.partitions.
pub const OFFSETS_TOPIC_PARTITIONS: i32 = 50;
/// Kafka's offsets.topic.segment.bytes: smaller segments than data topics.
pub const OFFSETS_TOPIC_SEGMENT_BYTES: &str = "104857600";
/// Room for the group record of a large group (members' subscriptions and assignments).
pub const OFFSETS_TOPIC_MAX_MESSAGE_BYTES: &str = "10485760";

/// `__consumer_offsets` as Kafka creates it: compacted like Kafka's, `retention.ms=-1` so a
/// broker-wide `--retention-ms` never ages it out, smaller segments. `replicas` is empty on a
/// single node.
pub fn offsets_topic(id: uuid::Uuid, replicas: Vec<Vec<i32>>) -> crate::broker::topics::TopicMeta {
    let configs = [
        ("cleanup.policy", "compact"),
        ("retention.ms", "-1"),
        ("segment.bytes", OFFSETS_TOPIC_SEGMENT_BYTES),
        ("max.message.bytes", OFFSETS_TOPIC_MAX_MESSAGE_BYTES),
    ];
    crate::broker::topics::TopicMeta {
        name: OFFSETS_TOPIC.to_string(),
        id,
        partition_count: OFFSETS_TOPIC_PARTITIONS,
        configs: configs.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect(),
        replicas,
        replica_directories: Vec::new(),
    }
}

/// Java's `String.hashCode`: `h = 31 * h + c` over the UTF-16 code units, wrapping.
pub fn java_string_hash(value: &str) -> i32 {
    value
        .encode_utf16()
        .fold(0i32, |hash, unit| hash.wrapping_mul(31).wrapping_add(i32::from(unit)))
}

/// The `__consumer_offsets` partition of a group: Kafka's `Utils.abs(hash) % partitions`,
/// where `Utils.abs` is `n & 0x7fffffff` (so `i32::MIN` maps to 0, unlike `i32::abs`).
pub fn group_partition(group_id: &str) -> i32 {
    let partition = (java_string_hash(group_id) & 0x7fff_ffff) % OFFSETS_TOPIC_PARTITIONS;
    assert!((0..OFFSETS_TOPIC_PARTITIONS).contains(&partition));
    partition
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_partition_matches_kafka() {
        // Values of Java's String.hashCode: "my-group" → -1906497762 (→ 36 after
        // Utils.abs and % 50), "polygenelubricants" → i32::MIN (→ 0), "é" is one UTF-16 unit.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("ab"), 97 * 31 + 98);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(group_partition("polygenelubricants"), 0);
        assert_eq!(java_string_hash("é"), 0xe9);
        assert_eq!(group_partition("a"), 97 % 50);
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(group_partition("my-group"), 36);
    }
}
