//! The topic configs Apache Kafka 4.4 reports for a topic (DescribeConfigs, CreateTopics v5+):
//! name, default, type and the broker-level synonym, so that admin tools and clients see the
//! same catalogue from Tern as from Kafka. Which of them Tern lets a user *set* is decided by
//! `topics::validate_topic_config`; the rest are reported at Kafka's default.
//!
//! Read off Kafka 4.4.0 by `engine/tests/differential.rs` (DescribeConfigs v4 with synonyms).

/// Kafka's `ConfigType` numbering (DescribeConfigs v3+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

#[derive(Debug, Clone, Copy)]
pub struct TopicConfigSpec {
    pub name: &'static str,
    pub default: &'static str,
    pub config_type: ConfigType,
    /// The broker config a default comes from, as Kafka names it among the synonyms.
    pub broker_synonym: Option<&'static str>,
}

const fn spec(
    name: &'static str,
    default: &'static str,
    config_type: ConfigType,
    broker_synonym: Option<&'static str>,
) -> TopicConfigSpec {
    TopicConfigSpec { name, default, config_type, broker_synonym }
}

use ConfigType::{Boolean, Double, Int, List, Long, String as Text};

/// Sorted by name, as Kafka lists them.
pub const KAFKA_TOPIC_CONFIGS: &[TopicConfigSpec] = &[
    spec("cleanup.policy", "delete", List, Some("log.cleanup.policy")),
    spec("compression.gzip.level", "-1", Int, Some("compression.gzip.level")),
    spec("compression.lz4.level", "9", Int, Some("compression.lz4.level")),
    spec("compression.type", "producer", Text, Some("compression.type")),
    spec("compression.zstd.level", "3", Int, Some("compression.zstd.level")),
    spec("delete.retention.ms", "86400000", Long, Some("log.cleaner.delete.retention.ms")),
    spec("errors.deadletterqueue.group.enable", "false", Boolean, None),
    spec("file.delete.delay.ms", "60000", Long, Some("log.segment.delete.delay.ms")),
    spec("flush.messages", "9223372036854775807", Long, Some("log.flush.interval.messages")),
    spec("flush.ms", "9223372036854775807", Long, None),
    spec("follower.replication.throttled.replicas", "", List, None),
    spec("index.interval.bytes", "4096", Int, Some("log.index.interval.bytes")),
    spec("leader.replication.throttled.replicas", "", List, None),
    spec("local.retention.bytes", "-2", Long, Some("log.local.retention.bytes")),
    spec("local.retention.ms", "-2", Long, Some("log.local.retention.ms")),
    spec(
        "max.compaction.lag.ms",
        "9223372036854775807",
        Long,
        Some("log.cleaner.max.compaction.lag.ms"),
    ),
    spec(
        "max.decompressed.message.bytes",
        "2147483639",
        Int,
        Some("max.decompressed.message.bytes"),
    ),
    spec("max.message.bytes", "1048588", Int, Some("message.max.bytes")),
    spec(
        "message.timestamp.after.max.ms",
        "3600000",
        Long,
        Some("log.message.timestamp.after.max.ms"),
    ),
    spec(
        "message.timestamp.before.max.ms",
        "9223372036854775807",
        Long,
        Some("log.message.timestamp.before.max.ms"),
    ),
    spec("message.timestamp.type", "CreateTime", Text, Some("log.message.timestamp.type")),
    spec("min.cleanable.dirty.ratio", "0.5", Double, Some("log.cleaner.min.cleanable.ratio")),
    spec("min.compaction.lag.ms", "0", Long, Some("log.cleaner.min.compaction.lag.ms")),
    spec("min.insync.replicas", "1", Int, Some("min.insync.replicas")),
    spec("preallocate", "false", Boolean, Some("log.preallocate")),
    spec("remote.copy.lag.bytes", "-1", Long, Some("log.remote.copy.lag.bytes")),
    spec("remote.copy.lag.ms", "0", Long, Some("log.remote.copy.lag.ms")),
    spec("remote.log.copy.disable", "false", Boolean, None),
    spec("remote.log.delete.on.disable", "false", Boolean, None),
    spec("remote.storage.enable", "false", Boolean, None),
    spec("retention.bytes", "-1", Long, Some("log.retention.bytes")),
    spec("retention.ms", "604800000", Long, None),
    spec("segment.bytes", "1073741824", Int, Some("log.segment.bytes")),
    spec("segment.index.bytes", "10485760", Int, Some("log.index.size.max.bytes")),
    spec("segment.jitter.ms", "0", Long, None),
    spec("segment.ms", "604800000", Long, None),
    spec(
        "unclean.leader.election.enable",
        "false",
        Boolean,
        Some("unclean.leader.election.enable"),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::topics::TOPIC_CONFIG_DEFAULTS;

    #[test]
    fn the_catalogue_is_sorted_and_unique() {
        for pair in KAFKA_TOPIC_CONFIGS.windows(2) {
            assert!(pair[0].name < pair[1].name, "{} / {}", pair[0].name, pair[1].name);
        }
    }

    #[test]
    fn every_settable_config_is_in_the_catalogue_with_the_same_default() {
        for (name, default) in TOPIC_CONFIG_DEFAULTS {
            let found = KAFKA_TOPIC_CONFIGS.iter().find(|spec| spec.name == *name);
            let found = found.unwrap_or_else(|| panic!("{name} is not in the catalogue"));
            assert_eq!(found.default, *default, "{name}");
        }
    }
}
