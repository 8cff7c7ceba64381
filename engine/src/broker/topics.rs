//! The topic registry: which topics exist, their ids, partition counts and configs.
//!
//! Shard 0 owns the durable copy (`<data_dir>/topics.json`, checksummed by `metadata_file`
//! and replaced atomically by write-temp + fdatasync + rename + directory sync) and is the
//! only writer. Every shard holds an immutable [`TopicSnapshot`] that shard 0 replaces on each
//! change, so request handlers read metadata without locks or cross-shard calls.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::metadata_file;
use super::topic_configs::{ConfigType, KAFKA_TOPIC_CONFIGS};
use crate::io::{Disk, OpenOptions};
use crate::log::LogConfig;
use crate::record_batch::convert::Conversion;
use crate::record_batch::Compression;

pub const REGISTRY_FILE_NAME: &str = "topics.json";
const REGISTRY_FORMAT_VERSION: u32 = 1;
/// Kafka's limit: a topic name plus a partition suffix must fit a file name.
pub const TOPIC_NAME_LENGTH_MAX: usize = 249;
/// Bound on partitions per topic: each one is a directory and open files on one node.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: uuid::Uuid,
    pub partition_count: i32,
    /// Only configs set explicitly at creation; defaults come from [`TOPIC_CONFIG_DEFAULTS`].
    pub configs: BTreeMap<String, String>,
    /// In a cluster, each partition's replicas (node ids; the first is the preferred
    /// leader). Empty on a single node, where every partition is the node's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<Vec<i32>>,
    /// In a cluster, the data directory of each replica in `replicas` as its broker had
    /// registered it when the controller first published the partition (`None`: not known,
    /// as for a topic made before directory ids). The partition's first voters are pinned to
    /// them, so a replica that comes back on a wiped disk is a learner even with an empty log
    /// (`replication/membership.rs`). Empty, or shaped like `replicas`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replica_directories: Vec<Vec<Option<uuid::Uuid>>>,
}

/// Where clients reach a broker of the cluster (Metadata, DescribeCluster).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    pub node_id: i32,
    pub host: String,
    pub port: u16,
    /// The broker's data-directory id (`server.rs`), as its hello gave it: a new one means
    /// the broker lost its disk. None in records written before ids existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_id: Option<uuid::Uuid>,
}

impl TopicMeta {
    /// The registered directory of replica `index` of `partition`, if one was recorded.
    pub fn replica_directory(&self, partition: usize, index: usize) -> Option<uuid::Uuid> {
        self.replica_directories.get(partition)?.get(index).copied().flatten()
    }

    /// Records, for every replica without one, the directory its broker registered in
    /// `brokers`; recorded ones stay as they are.
    pub fn pin_directories(&mut self, brokers: &BTreeMap<i32, BrokerEndpoint>) {
        let pinned: Vec<Vec<Option<uuid::Uuid>>> = self
            .replicas
            .iter()
            .enumerate()
            .map(|(partition, replicas)| {
                let registered = |node: &i32| brokers.get(node).and_then(|b| b.directory_id);
                let directory =
                    |(index, node)| self.replica_directory(partition, index).or(registered(node));
                replicas.iter().enumerate().map(directory).collect()
            })
            .collect();
        let any = pinned.iter().flatten().any(Option::is_some);
        self.replica_directories = if any { pinned } else { Vec::new() };
    }

    /// The log settings for this topic's partitions: broker defaults overridden by topic configs.
    pub fn log_config(&self, defaults: &LogConfig) -> LogConfig {
        let mut config = defaults.clone();
        // Values come from CreateTopics/AlterConfigs, range-checked by `validate_topic_config`
        // (segment.bytes 1 MiB..=i32::MAX, internal.segment.bytes from 14; the byte sizes below
        // 0..=i32::MAX); the conversions are checked anyway, so a registry edited by hand keeps
        // the default instead.
        let number = |key: &str| self.configs.get(key).and_then(|value| value.parse::<i64>().ok());
        let unsigned = |key: &str| number(key).and_then(|value| u32::try_from(value).ok());
        let segment_bytes = number(INTERNAL_SEGMENT_BYTES).or_else(|| number("segment.bytes"));
        if let Some(value) = segment_bytes.and_then(|value| u64::try_from(value).ok()) {
            config.segment_size_bytes = value;
        }
        if let Some(value) = number("segment.ms") {
            config.segment_age_ms = value.max(1);
        }
        if let Some(value) = number("retention.bytes") {
            config.retention_size_bytes = value;
        }
        if let Some(value) = number("retention.ms") {
            config.retention_age_ms = value;
        }
        // Kafka allows 0 for both; the log needs an index interval and room for one batch
        // header (the produce handler still refuses batches above the topic's own value).
        if let Some(value) = unsigned("index.interval.bytes") {
            config.index_interval_bytes = value.max(1);
        }
        if let Some(value) = unsigned("max.message.bytes") {
            // A constant: 61 bytes.
            let floor_bytes = crate::record_batch::HEADER_SIZE_BYTES as u32;
            config.max_message_bytes = value.max(floor_bytes);
        }
        self.apply_cleanup_policy(&mut config);
        config
    }

    /// What `compression.type` and `message.timestamp.type` ask of produced batches; a
    /// LogAppendTime topic stamps them with `append_time_ms`, the broker's clock.
    pub fn batch_conversion(&self, append_time_ms: i64) -> Conversion {
        let value = |key: &str| self.configs.get(key).map(String::as_str);
        let compression = match value("compression.type") {
            Some("uncompressed") => Some(Compression::None),
            Some("gzip") => Some(Compression::Gzip),
            Some("snappy") => Some(Compression::Snappy),
            Some("lz4") => Some(Compression::Lz4),
            Some("zstd") => Some(Compression::Zstd),
            _ => None,
        };
        let log_append_time = value("message.timestamp.type") == Some("LogAppendTime");
        Conversion { compression, log_append_time_ms: log_append_time.then_some(append_time_ms) }
    }

    /// `cleanup.policy` and the compaction configs: `compact` alone turns time and size
    /// retention off (as in Kafka); `compact,delete` keeps both.
    fn apply_cleanup_policy(&self, config: &mut LogConfig) {
        let policy = self.configs.get("cleanup.policy").map_or("delete", String::as_str);
        let (compact, delete) = cleanup_policy(policy).unwrap_or((false, true));
        config.compaction.enabled = compact;
        if !delete {
            config.retention_age_ms = -1;
            config.retention_size_bytes = -1;
        }
        let number = |key: &str| self.configs.get(key).and_then(|value| value.parse::<i64>().ok());
        if let Some(value) = number("delete.retention.ms") {
            config.compaction.delete_retention_ms = value;
        }
        if let Some(value) = number("min.compaction.lag.ms") {
            config.compaction.min_compaction_lag_ms = value;
        }
        let ratio = self.configs.get("min.cleanable.dirty.ratio");
        if let Some(ratio) = ratio.and_then(|value| value.parse::<f64>().ok()) {
            let ppm = (ratio.clamp(0.0, 1.0) * 1_000_000.0).round() as u32;
            config.compaction.min_cleanable_dirty_ratio_ppm = ppm;
        }
    }

    /// The value a topic reports for `key`, and whether it was set on the topic.
    pub fn config_value(&self, key: &str) -> Option<(String, bool)> {
        if let Some(value) = self.configs.get(key) {
            return Some((value.clone(), true));
        }
        TOPIC_CONFIG_DEFAULTS
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| (value.to_string(), false))
    }
}

/// Topic configs Tern reports, with Kafka 4.0's defaults, sorted by name.
pub const TOPIC_CONFIG_DEFAULTS: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("compression.type", "producer"),
    ("delete.retention.ms", "86400000"),
    ("file.delete.delay.ms", "60000"),
    ("flush.messages", "9223372036854775807"),
    ("flush.ms", "9223372036854775807"),
    ("index.interval.bytes", "4096"),
    ("max.compaction.lag.ms", "9223372036854775807"),
    ("max.message.bytes", "1048588"),
    ("message.timestamp.type", "CreateTime"),
    ("min.cleanable.dirty.ratio", "0.5"),
    ("min.compaction.lag.ms", "0"),
    ("min.insync.replicas", "1"),
    ("retention.bytes", "-1"),
    ("retention.ms", "604800000"),
    ("segment.bytes", "1073741824"),
    ("segment.index.bytes", "10485760"),
    ("segment.ms", "604800000"),
    ("unclean.leader.election.enable", "false"),
];

/// Why a topic cannot be created; each maps to one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// In a cluster, this broker does not lead the controller.
    #[error("This is not the correct controller for this cluster.")]
    NotController,
    #[error("{0}")]
    InvalidName(String),
    #[error("Topic '{0}' already exists.")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    UnsupportedConfig(String),
}

/// Kafka's topic name rule: 1..=249 of `[a-zA-Z0-9._-]`, and not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::InvalidName("Topic name is illegal, it can't be empty".into()));
    }
    if name == "." || name == ".." {
        return Err(TopicError::InvalidName("Topic name cannot be \".\" or \"..\"".into()));
    }
    if name.len() > TOPIC_NAME_LENGTH_MAX {
        return Err(TopicError::InvalidName(format!(
            "Topic name is illegal, it can't be longer than {TOPIC_NAME_LENGTH_MAX} characters, \
             topic name: {name}"
        )));
    }
    let legal = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-';
    if !name.chars().all(legal) {
        return Err(TopicError::InvalidName(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII \
             alphanumerics, '.', '_' and '-'"
        )));
    }
    Ok(())
}

/// Kafka's test-only topic config: a segment size below `segment.bytes`' minimum (at least 14
/// bytes, one legacy record), winning over `segment.bytes`. Accepted only from a broker started
/// with the hidden `--internal-topic-configs` flag (Tern's tests); unknown to others.
pub const INTERNAL_SEGMENT_BYTES: &str = "internal.segment.bytes";
const INTERNAL_SEGMENT_BYTES_MIN: i64 = 14;

/// [`validate_topic_config`], plus the internal configs when the broker allows them.
pub fn validate_topic_config_with(
    key: &str,
    value: Option<&str>,
    internal_configs_allowed: bool,
) -> Result<(), TopicError> {
    if !internal_configs_allowed || key != INTERNAL_SEGMENT_BYTES {
        return validate_topic_config(key, value);
    }
    match value.map(|value| value.trim().parse::<i32>()) {
        Some(Ok(bytes)) if i64::from(bytes) >= INTERNAL_SEGMENT_BYTES_MIN => Ok(()),
        _ => Err(TopicError::InvalidConfig(format!(
            "Invalid value {value:?} for configuration {key}"
        ))),
    }
}

/// Checks one topic config against what Tern implements. Kafka's whole catalogue is known
/// (`topic_configs.rs`): a config Tern does not implement accepts Kafka's default only (so a
/// client that writes back what DescribeConfigs reported succeeds), anything else is refused
/// rather than silently ignored.
pub fn validate_topic_config(key: &str, value: Option<&str>) -> Result<(), TopicError> {
    let Some(value) = value else {
        return Err(TopicError::InvalidConfig(format!("Null value not supported for {key}")));
    };
    let Some(spec) = KAFKA_TOPIC_CONFIGS.iter().find(|spec| spec.name == key) else {
        return Err(TopicError::InvalidConfig(format!("Unknown topic config name: {key}")));
    };
    let invalid =
        || TopicError::InvalidConfig(format!("Invalid value {value} for configuration {key}"));
    if !TOPIC_CONFIG_DEFAULTS.iter().any(|(name, _)| *name == key) {
        if !value_has_type(value, spec.config_type) {
            return Err(invalid());
        }
        if value == spec.default {
            return Ok(());
        }
        return Err(TopicError::UnsupportedConfig(format!(
            "{key}={value} is not supported by Tern (only Kafka's default, {:?})",
            spec.default
        )));
    }
    match key {
        "cleanup.policy" => cleanup_policy(value).map(|_| ()).ok_or_else(invalid),
        "message.timestamp.type" => match value {
            "CreateTime" | "LogAppendTime" => Ok(()),
            _ => Err(invalid()),
        },
        "compression.type" => match value {
            "producer" | "uncompressed" | "zstd" | "lz4" | "snappy" | "gzip" => Ok(()),
            _ => Err(invalid()),
        },
        "min.cleanable.dirty.ratio" => match value.parse::<f64>() {
            Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(()),
            _ => Err(invalid()),
        },
        // Tern never elects a replica that may lack committed records (Raft's leader
        // completeness is the point): asking for it is refused, not silently ignored.
        "unclean.leader.election.enable" => match value {
            "false" => Ok(()),
            "true" => Err(TopicError::InvalidConfig(
                "unclean.leader.election.enable=true is not supported: Tern never elects a \
                 replica that may lack acknowledged records"
                    .to_string(),
            )),
            _ => Err(invalid()),
        },
        _ => {
            let minimum = numeric_minimum(key).ok_or_else(invalid)?;
            let number = value.trim().parse::<i64>().map_err(|_| invalid())?;
            if value_has_type(value, spec.config_type) && number >= minimum {
                Ok(())
            } else {
                Err(invalid())
            }
        }
    }
}

/// Kafka 4.4's minimum of each numeric topic config Tern implements; the maximum is its
/// type's (i32::MAX for an Int, i64::MAX for a Long). Measured against Kafka 4.4.0 by
/// differential.rs `topic_config_bounds`.
const NUMERIC_MINIMUMS: &[(&str, i64)] = &[
    ("delete.retention.ms", 0),
    ("file.delete.delay.ms", 0),
    ("flush.messages", 1),
    ("flush.ms", 0),
    ("index.interval.bytes", 0),
    ("max.compaction.lag.ms", 1),
    ("max.message.bytes", 0),
    ("min.compaction.lag.ms", 0),
    ("min.insync.replicas", 1),
    ("retention.bytes", i64::MIN),
    ("retention.ms", -1),
    // Kafka 4 (KIP-1030): segments of at least 1 MiB; tests that need tiny segments use
    // `internal.segment.bytes` (see `INTERNAL_SEGMENT_BYTES`).
    ("segment.bytes", 1024 * 1024),
    ("segment.index.bytes", 4),
    ("segment.ms", 1),
];

fn numeric_minimum(key: &str) -> Option<i64> {
    NUMERIC_MINIMUMS.iter().find(|(name, _)| *name == key).map(|(_, minimum)| *minimum)
}

/// Whether `value` parses as Kafka's `ConfigDef` type (no range checks).
fn value_has_type(value: &str, config_type: ConfigType) -> bool {
    match config_type {
        ConfigType::Boolean => matches!(value.to_ascii_lowercase().as_str(), "true" | "false"),
        ConfigType::Int => value.trim().parse::<i32>().is_ok(),
        ConfigType::Long => value.trim().parse::<i64>().is_ok(),
        ConfigType::Double => value.trim().parse::<f64>().is_ok(),
        ConfigType::String | ConfigType::List => true,
    }
}

/// (compact, delete) of a `cleanup.policy` value: a comma-separated list of `compact` and
/// `delete`; the empty list (allowed since Kafka 4.x) is neither: segments are never deleted
/// nor compacted. `None` for anything else.
pub fn cleanup_policy(value: &str) -> Option<(bool, bool)> {
    let mut policy = (false, false);
    if value.trim().is_empty() {
        return Some(policy);
    }
    for item in value.split(',') {
        match item.trim() {
            "compact" => policy.0 = true,
            "delete" => policy.1 = true,
            _ => return None,
        }
    }
    Some(policy)
}

/// Immutable view of all topics, shared by every request handler of a shard.
#[derive(Debug, Default)]
pub struct TopicSnapshot {
    pub by_name: BTreeMap<String, TopicMeta>,
    pub name_by_id: BTreeMap<uuid::Uuid, String>,
    /// In a cluster, every registered broker; empty on a single node (which is its own).
    pub brokers: BTreeMap<i32, BrokerEndpoint>,
    /// In a cluster, the registered brokers that are fenced (`cluster/fencing.rs`).
    pub fenced: BTreeSet<i32>,
}

impl TopicSnapshot {
    pub fn new(topics: impl IntoIterator<Item = TopicMeta>) -> TopicSnapshot {
        let mut snapshot = TopicSnapshot::default();
        for topic in topics {
            snapshot.name_by_id.insert(topic.id, topic.name.clone());
            snapshot.by_name.insert(topic.name.clone(), topic);
        }
        snapshot
    }

    pub fn get(&self, name: &str) -> Option<&TopicMeta> {
        self.by_name.get(name)
    }

    /// The registered brokers that are not fenced: where new replicas may go.
    pub fn unfenced_brokers(&self) -> Vec<i32> {
        let fenced = |node_id: &&i32| self.fenced.contains(node_id);
        self.brokers.keys().filter(|node_id| !fenced(node_id)).copied().collect()
    }

    pub fn get_by_id(&self, id: &uuid::Uuid) -> Option<&TopicMeta> {
        self.name_by_id.get(id).and_then(|name| self.by_name.get(name))
    }

    pub fn has_partition(&self, name: &str, partition: i32) -> bool {
        self.get(name).is_some_and(|topic| partition >= 0 && partition < topic.partition_count)
    }

    /// The replicas of a partition in a cluster (empty on a single node, or when unknown).
    pub fn replicas(&self, name: &str, partition: i32) -> &[i32] {
        let replicas = self.get(name).zip(usize::try_from(partition).ok());
        replicas.and_then(|(topic, index)| topic.replicas.get(index)).map_or(&[], Vec::as_slice)
    }
}

#[derive(Serialize, Deserialize)]
struct RegistryFile {
    version: u32,
    topics: Vec<TopicMeta>,
}

/// Loads the registry, or an empty one when the data dir is new.
pub async fn load_registry(disk: &Disk, data_dir: &Path) -> std::io::Result<Arc<TopicSnapshot>> {
    let path = data_dir.join(REGISTRY_FILE_NAME);
    if !disk.exists(&path) {
        return Ok(Arc::new(TopicSnapshot::default()));
    }
    let (bytes, legacy) = metadata_file::read(disk, &path).await?;
    let file: RegistryFile = metadata_file::parse_versioned(
        &bytes,
        &path,
        "topic registry",
        |file: &RegistryFile| file.version,
        REGISTRY_FORMAT_VERSION,
    )?;
    // Names become directory names (`Shard::open_local_partitions`): a registry that breaks
    // the rules CreateTopics enforces is refused whole, as a damaged file.
    for topic in &file.topics {
        let partitions_valid = (1..=PARTITIONS_PER_TOPIC_MAX).contains(&topic.partition_count);
        if validate_topic_name(&topic.name).is_err() || !partitions_valid {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} holds an invalid topic {:?}", path.display(), topic.name),
            ));
        }
    }
    let snapshot = Arc::new(TopicSnapshot::new(file.topics));
    if legacy {
        // Written before metadata files had checksums: seal it now, not at the next change.
        store_registry(disk, data_dir, &snapshot).await?;
        tracing::info!(path = %path.display(), "topic registry upgraded to the checksummed format");
    }
    Ok(snapshot)
}

/// Durably replaces the registry file with `snapshot`'s topics.
pub async fn store_registry(
    disk: &Disk,
    data_dir: &Path,
    snapshot: &TopicSnapshot,
) -> std::io::Result<()> {
    let file = RegistryFile {
        version: REGISTRY_FORMAT_VERSION,
        topics: snapshot.by_name.values().cloned().collect(),
    };
    let bytes = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
    metadata_file::write(disk, &data_dir.join(REGISTRY_FILE_NAME), &bytes).await
}

/// Reads a small metadata file whole.
pub async fn read_whole_file(disk: &Disk, path: &Path) -> std::io::Result<Vec<u8>> {
    let file = disk.open(path, OpenOptions { create: false, truncate: false })?;
    let size_bytes = file.len()? as usize;
    let (result, bytes) = file.read_exact_at(Vec::with_capacity(size_bytes), 0).await;
    result?;
    Ok(bytes)
}

/// write temp + fdatasync + rename + directory sync: after a crash either the old or the new
/// content is there, never a torn mix.
pub async fn write_file_atomically(
    disk: &Disk,
    path: &Path,
    bytes: Vec<u8>,
) -> std::io::Result<()> {
    let temporary: PathBuf = path.with_extension("tmp");
    let file = disk.open(&temporary, OpenOptions { create: true, truncate: true })?;
    let (result, _) = file.write_all_at(bytes, 0).await;
    result?;
    file.sync_data().await?;
    drop(file);
    disk.rename(&temporary, path)?;
    let parent = path.parent().unwrap_or(Path::new("."));
    disk.sync_dir(parent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{block_on, SimDisk};

    fn one_topic() -> TopicSnapshot {
        TopicSnapshot::new([TopicMeta {
            name: "orders".to_string(),
            id: uuid::Uuid::from_u128(7),
            partition_count: 3,
            configs: BTreeMap::new(),
            replicas: Vec::new(),
            replica_directories: Vec::new(),
        }])
    }

    async fn write_raw(disk: &Disk, path: &Path, bytes: Vec<u8>) {
        write_file_atomically(disk, path, bytes).await.expect("write");
    }

    #[test]
    fn out_of_range_size_configs_keep_the_defaults() {
        let defaults = LogConfig::default();
        let mut topic = one_topic().by_name.values().next().unwrap().clone();
        for (key, value) in [
            ("segment.bytes", "-5"),
            ("index.interval.bytes", "-1"),
            ("max.message.bytes", "4294967296"),
        ] {
            topic.configs.insert(key.to_string(), value.to_string());
        }
        let config = topic.log_config(&defaults);
        assert_eq!(config.segment_size_bytes, defaults.segment_size_bytes);
        assert_eq!(config.index_interval_bytes, defaults.index_interval_bytes);
        assert_eq!(config.max_message_bytes, defaults.max_message_bytes);
    }

    #[test]
    fn a_registry_naming_a_path_or_too_many_partitions_is_refused() {
        block_on(async {
            let disk = Disk::Simulated(SimDisk::new(1));
            let data_dir = Path::new("/data");
            disk.create_dir_all(data_dir).unwrap();
            let path = data_dir.join(REGISTRY_FILE_NAME);
            let good = one_topic().by_name.values().next().unwrap().clone();
            let escaping = TopicMeta { name: "../escape".into(), ..good.clone() };
            let too_many = TopicMeta { partition_count: PARTITIONS_PER_TOPIC_MAX + 1, ..good };
            for topic in [escaping, too_many] {
                let file = RegistryFile { version: REGISTRY_FORMAT_VERSION, topics: vec![topic] };
                let body = serde_json::to_vec_pretty(&file).unwrap();
                metadata_file::write(&disk, &path, &body).await.unwrap();
                let error = load_registry(&disk, data_dir).await.unwrap_err();
                assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
            }
        });
    }

    #[test]
    fn a_pre_checksum_registry_loads_and_is_sealed_at_load() {
        block_on(async {
            let disk = Disk::Simulated(SimDisk::new(1));
            let data_dir = Path::new("/data");
            disk.create_dir_all(data_dir).unwrap();
            let path = data_dir.join(REGISTRY_FILE_NAME);
            let topics: Vec<TopicMeta> = one_topic().by_name.values().cloned().collect();
            let legacy = RegistryFile { version: REGISTRY_FORMAT_VERSION, topics };
            write_raw(&disk, &path, serde_json::to_vec_pretty(&legacy).unwrap()).await;
            let loaded = load_registry(&disk, data_dir).await.expect("a legacy file loads");
            assert_eq!(loaded.by_name, one_topic().by_name);
            let stored = read_whole_file(&disk, &path).await.unwrap();
            assert!(stored.starts_with(b"tern-crc32c v1 "), "sealed at load");
            let reloaded = load_registry(&disk, data_dir).await.expect("the sealed file loads");
            assert_eq!(reloaded.by_name, one_topic().by_name);
        });
    }

    #[test]
    fn a_damaged_registry_refuses_to_load_naming_the_file() {
        block_on(async {
            let disk = Disk::Simulated(SimDisk::new(2));
            let data_dir = Path::new("/data");
            disk.create_dir_all(data_dir).unwrap();
            store_registry(&disk, data_dir, &one_topic()).await.unwrap();
            let path = data_dir.join(REGISTRY_FILE_NAME);
            let sealed = read_whole_file(&disk, &path).await.unwrap();
            // A flip that keeps the JSON valid: "orders" becomes "ordess".
            let at = sealed.windows(6).position(|window| window == b"orders").unwrap() + 4;
            let mut damaged = sealed.clone();
            damaged[at] ^= 0x01;
            write_raw(&disk, &path, damaged).await;
            let error = load_registry(&disk, data_dir).await.expect_err("damage is detected");
            assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
            let message = error.to_string();
            assert!(message.contains("/data/topics.json is damaged"), "{message}");
            // The operator's repair: check the JSON, drop the header line.
            let newline = sealed.iter().position(|byte| *byte == b'\n').unwrap();
            write_raw(&disk, &path, sealed[newline + 1..].to_vec()).await;
            let loaded = load_registry(&disk, data_dir).await.expect("repaired");
            assert_eq!(loaded.by_name, one_topic().by_name);
        });
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        for good in ["a", "orders", "a.b_c-d", &"x".repeat(249)] {
            assert!(validate_topic_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a b", "ü", "a/b", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numeric_configs_have_kafkas_bounds() {
        let valid = |key: &str, value: &str| validate_topic_config(key, Some(value)).is_ok();
        assert!(!valid("segment.bytes", "1048575") && valid("segment.bytes", "1048576"));
        assert!(valid("segment.bytes", "2147483647") && !valid("segment.bytes", "2147483648"));
        assert!(!valid("retention.ms", "-2") && valid("retention.ms", "-1"));
        assert!(valid("retention.ms", "9223372036854775807"));
        assert!(!valid("retention.ms", "9223372036854775808"));
        assert!(!valid("min.insync.replicas", "0") && valid("min.insync.replicas", "1"));
        assert!(valid("segment.ms", " 5"), "Kafka trims numbers");
    }

    #[test]
    fn internal_segment_bytes_needs_the_test_flag() {
        let check = |value: &str, allowed: bool| {
            validate_topic_config_with(INTERNAL_SEGMENT_BYTES, Some(value), allowed).is_ok()
        };
        assert!(!check("4096", false), "unknown to a normal broker, as to Kafka's clients");
        assert!(check("4096", true) && check("14", true));
        assert!(!check("13", true) && !check("2147483648", true));
        let mut topic = one_topic().by_name.values().next().unwrap().clone();
        topic.configs.insert("segment.bytes".into(), "1048576".into());
        topic.configs.insert(INTERNAL_SEGMENT_BYTES.into(), "4096".into());
        assert_eq!(topic.log_config(&LogConfig::default()).segment_size_bytes, 4096);
    }

    #[test]
    fn configs_are_checked_by_name_and_value() {
        assert!(validate_topic_config("retention.ms", Some("1000")).is_ok());
        assert!(validate_topic_config("retention.ms", Some("-1")).is_ok());
        assert!(validate_topic_config("retention.ms", Some("soon")).is_err());
        assert!(validate_topic_config("no.such.config", Some("1")).is_err());
        assert!(validate_topic_config("cleanup.policy", Some("compact")).is_ok());
        assert!(validate_topic_config("cleanup.policy", Some("delete,compact")).is_ok());
        assert!(validate_topic_config("cleanup.policy", Some("compact,nope")).is_err());
        assert!(validate_topic_config("min.cleanable.dirty.ratio", Some("1.5")).is_err());
        assert!(validate_topic_config("segment.bytes", Some("1")).is_err());
        assert!(validate_topic_config("retention.ms", None).is_err());
        assert!(validate_topic_config("cleanup.policy", Some("")).is_ok());
        assert!(validate_topic_config("segment.ms", Some("0")).is_err());
        // Known to Kafka, not implemented by Tern: its default only.
        assert!(validate_topic_config("preallocate", Some("false")).is_ok());
        assert!(validate_topic_config("preallocate", Some("true")).is_err());
        assert!(validate_topic_config("compression.gzip.level", Some("-1")).is_ok());
        assert!(validate_topic_config("message.format.version", Some("3.0")).is_err());
        // Never an unclean election: refused as INVALID_CONFIG (docs/replication.md).
        assert!(validate_topic_config("unclean.leader.election.enable", Some("false")).is_ok());
        let unclean = validate_topic_config("unclean.leader.election.enable", Some("true"));
        assert!(matches!(unclean, Err(TopicError::InvalidConfig(_))), "{unclean:?}");
    }

    #[test]
    fn cleanup_policy_maps_to_compaction_and_retention() {
        let topic = |policy: &str| TopicMeta {
            name: "t".into(),
            id: uuid::Uuid::nil(),
            partition_count: 1,
            configs: [
                ("cleanup.policy".to_string(), policy.to_string()),
                ("min.cleanable.dirty.ratio".to_string(), "0.01".to_string()),
                ("delete.retention.ms".to_string(), "5".to_string()),
            ]
            .into_iter()
            .collect(),
            replicas: Vec::new(),
            replica_directories: Vec::new(),
        };
        let defaults = LogConfig::default();
        let compact = topic("compact").log_config(&defaults);
        assert!(compact.compaction.enabled && compact.retention_age_ms == -1);
        assert_eq!(compact.compaction.min_cleanable_dirty_ratio_ppm, 10_000);
        assert_eq!(compact.compaction.delete_retention_ms, 5);
        let both = topic("delete,compact").log_config(&defaults);
        assert!(both.compaction.enabled);
        assert_eq!(both.retention_age_ms, defaults.retention_age_ms);
        assert!(!topic("delete").log_config(&defaults).compaction.enabled);
    }

    #[test]
    fn defaults_are_sorted_and_unique() {
        for pair in TOPIC_CONFIG_DEFAULTS.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
        }
    }
}
