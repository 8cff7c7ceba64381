//! The cluster's metadata image and the records that change it. The controller's Raft log
//! (`__cluster_metadata`, partition 0) is a sequence of these records; every broker applies
//! the committed ones in offset order to the same image, so every broker agrees on brokers,
//! topics, partition counts, configs and replica assignments (KRaft's metadata log, in
//! Tern's own records).
//!
//! A record is the JSON value of one Kafka record (key [`RECORD_KEY`]); a batch may hold
//! several, applied in order. Applying is deterministic and total: a record that does not
//! fit the image (a topic created twice, a deletion of an unknown id, an assignment that
//! names no replica) is skipped with a warning on every broker alike, never a panic — the
//! log's bytes came over the network.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::broker::topics::{
    validate_topic_name, BrokerEndpoint, TopicMeta, TopicSnapshot, PARTITIONS_PER_TOPIC_MAX,
};

/// The key of every metadata record: names the format, so a record of another kind (a
/// control batch's) is never read as one.
pub const RECORD_KEY: &[u8] = b"tern.metadata.v1";
/// Replicas of one partition at most (Kafka allows more; a Raft group of more voters only
/// slows every commit).
pub const REPLICAS_MAX: usize = 7;
/// Bound on a broker's advertised host name (DNS names fit in 253 bytes).
pub const HOST_BYTES_MAX: usize = 255;

/// One change to the cluster's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MetadataRecord {
    /// A broker's client endpoint, new or changed.
    RegisterBroker(BrokerEndpoint),
    /// A topic created, or changed (configs, more partitions): its whole new description.
    /// A change keeps the topic's id and the replicas of its existing partitions.
    PutTopic { topic: TopicMeta },
    /// A topic deleted (by id, so a stale deletion cannot remove a re-created topic).
    DeleteTopic { name: String, id: uuid::Uuid },
    /// A registered broker the controller could not reach for a session timeout: listed by
    /// no Metadata answer and given no new replica until unfenced (`fencing.rs`).
    FenceBroker { node_id: i32 },
    /// A fenced broker back and caught up with the metadata log.
    UnfenceBroker { node_id: i32 },
}

/// Why a record was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordRejected {
    #[error("broker endpoint {0:?} is invalid")]
    BadEndpoint(BrokerEndpoint),
    #[error("topic {0:?} is invalid")]
    BadTopic(String),
    #[error("topic {0:?} exists with another id")]
    IdMismatch(String),
    #[error("topic {0:?} would lose partitions or move existing replicas")]
    ShrinksOrMoves(String),
    #[error("no topic {0:?} with that id")]
    UnknownTopic(String),
    #[error("no registered broker {0}")]
    UnknownBroker(i32),
}

/// What every broker knows of the cluster, as of `next_offset` of the metadata log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterImage {
    pub brokers: BTreeMap<i32, BrokerEndpoint>,
    pub topics: BTreeMap<String, TopicMeta>,
    /// Registered brokers that are fenced (each one of `brokers`).
    pub fenced: BTreeSet<i32>,
    /// The metadata log offset of the next record to apply.
    pub next_offset: i64,
}

impl ClusterImage {
    /// Applies one committed record. Deterministic: the same records give the same image.
    pub fn apply(&mut self, record: MetadataRecord) -> Result<(), RecordRejected> {
        match record {
            MetadataRecord::RegisterBroker(endpoint) => self.register(endpoint)?,
            MetadataRecord::PutTopic { topic } => {
                check_topic(&topic)?;
                if let Some(existing) = self.topics.get(&topic.name) {
                    check_change(existing, &topic)?;
                }
                self.topics.insert(topic.name.clone(), topic);
            }
            MetadataRecord::DeleteTopic { name, id } => {
                if self.topics.get(&name).map(|topic| topic.id) != Some(id) {
                    return Err(RecordRejected::UnknownTopic(name));
                }
                self.topics.remove(&name);
            }
            MetadataRecord::FenceBroker { node_id } | MetadataRecord::UnfenceBroker { node_id }
                if !self.brokers.contains_key(&node_id) =>
            {
                return Err(RecordRejected::UnknownBroker(node_id));
            }
            MetadataRecord::FenceBroker { node_id } => {
                self.fenced.insert(node_id);
            }
            MetadataRecord::UnfenceBroker { node_id } => {
                self.fenced.remove(&node_id);
            }
        }
        assert!(self.fenced.iter().all(|node_id| self.brokers.contains_key(node_id)));
        Ok(())
    }

    /// A broker's endpoint, new or changed. A new data-directory id means the broker lost its
    /// disk (its replicas' logs, votes and epochs); a record without one (written before ids
    /// existed) keeps the id known.
    fn register(&mut self, mut endpoint: BrokerEndpoint) -> Result<(), RecordRejected> {
        check_endpoint(&endpoint)?;
        let known = self.brokers.get(&endpoint.node_id).and_then(|broker| broker.directory_id);
        match (known, endpoint.directory_id) {
            (Some(known), None) => endpoint.directory_id = Some(known),
            (Some(known), Some(new)) if known != new => tracing::warn!(
                node_id = endpoint.node_id,
                %known,
                %new,
                "broker came back with a new data directory: its replicas lost their data"
            ),
            _ => {}
        }
        self.brokers.insert(endpoint.node_id, endpoint);
        Ok(())
    }

    /// The view request handlers and shards work from.
    pub fn snapshot(&self) -> TopicSnapshot {
        let mut snapshot = TopicSnapshot::new(self.topics.values().cloned());
        snapshot.brokers = self.brokers.clone();
        snapshot.fenced = self.fenced.clone();
        snapshot
    }
}

fn check_endpoint(endpoint: &BrokerEndpoint) -> Result<(), RecordRejected> {
    let host_valid = !endpoint.host.is_empty() && endpoint.host.len() <= HOST_BYTES_MAX;
    if endpoint.node_id < 0 || !host_valid || endpoint.port == 0 {
        return Err(RecordRejected::BadEndpoint(endpoint.clone()));
    }
    Ok(())
}

/// A topic's own shape: a valid name, a partition count in range, and one non-empty set of
/// distinct replicas per partition.
fn check_topic(topic: &TopicMeta) -> Result<(), RecordRejected> {
    let bad = || RecordRejected::BadTopic(topic.name.clone());
    if validate_topic_name(&topic.name).is_err()
        || !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&topic.partition_count)
        || usize::try_from(topic.partition_count) != Ok(topic.replicas.len())
    {
        return Err(bad());
    }
    let directories_fit = topic.replica_directories.is_empty()
        || (topic.replica_directories.len() == topic.replicas.len()
            && topic
                .replicas
                .iter()
                .zip(&topic.replica_directories)
                .all(|(r, d)| r.len() == d.len()));
    if !directories_fit {
        return Err(bad());
    }
    for replicas in &topic.replicas {
        let mut distinct = replicas.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let sized = (1..=REPLICAS_MAX).contains(&replicas.len());
        if !sized || distinct.len() != replicas.len() || distinct.iter().any(|node| *node < 0) {
            return Err(bad());
        }
    }
    Ok(())
}

/// A change keeps the id, never removes partitions and never moves existing replicas
/// (reassignment is not built: its Raft membership change is next round's).
fn check_change(existing: &TopicMeta, changed: &TopicMeta) -> Result<(), RecordRejected> {
    if existing.id != changed.id {
        return Err(RecordRejected::IdMismatch(changed.name.clone()));
    }
    let kept = changed.replicas.get(..existing.replicas.len());
    if changed.partition_count < existing.partition_count || kept != Some(&existing.replicas[..]) {
        return Err(RecordRejected::ShrinksOrMoves(changed.name.clone()));
    }
    // A replica's recorded directory is its partition's first voter: it may be learned, never
    // changed (a changed one could turn a voter into a learner or back).
    for (partition, replicas) in existing.replicas.iter().enumerate() {
        for index in 0..replicas.len() {
            let recorded = existing.replica_directory(partition, index);
            if recorded.is_some() && changed.replica_directory(partition, index) != recorded {
                return Err(RecordRejected::ShrinksOrMoves(changed.name.clone()));
            }
        }
    }
    Ok(())
}

/// The records that turn `before` into `after` (both registries of one cluster): what the
/// controller proposes for a change a request handler computed as a new registry.
pub fn records_between(before: &TopicSnapshot, after: &TopicSnapshot) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for (name, topic) in &before.by_name {
        if after.get(name).map(|now| now.id) != Some(topic.id) {
            records.push(MetadataRecord::DeleteTopic { name: name.clone(), id: topic.id });
        }
    }
    for (name, topic) in &after.by_name {
        if before.get(name) != Some(topic) {
            records.push(MetadataRecord::PutTopic { topic: topic.clone() });
        }
    }
    records
}

/// Encodes records as the values of one record batch's records.
pub fn encode_records(records: &[MetadataRecord], timestamp_ms: i64) -> Vec<u8> {
    use crate::record_batch::build::{encode_batch, ProducerStamp, Record};
    let records: Vec<Record> = records
        .iter()
        .map(|record| Record {
            key: Some(RECORD_KEY.to_vec()),
            // Serialising plain data to JSON cannot fail.
            value: Some(serde_json::to_vec(record).unwrap_or_default()),
            ..Record::default()
        })
        .collect();
    encode_batch(&records, timestamp_ms, ProducerStamp::NONE)
}

/// The metadata record a record's key and value hold; `None` for another kind of record
/// (a control batch's), an error for a metadata record that does not parse.
pub fn decode_record(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Option<Result<MetadataRecord, serde_json::Error>> {
    if key != Some(RECORD_KEY) {
        return None;
    }
    Some(serde_json::from_slice(value.unwrap_or_default()))
}

#[cfg(test)]
mod tests;
