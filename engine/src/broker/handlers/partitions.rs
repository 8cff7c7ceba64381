//! CreatePartitions: grows topics to a new partition count, by Kafka 4's rules
//! (`ReplicationControlManager.createPartitions`; `ControllerApis` refuses duplicate names).
//!
//! Like CreateTopics, the change runs on shard 0 under the registry lock: validate each topic,
//! store the grown registry durably, then have every shard open the new partitions it owns
//! before answering, so they take produce, fetch and Metadata at once. Kafka lets the internal
//! `__consumer_offsets` grow too; groups keep their partition (hash modulo the fixed 50), as in
//! Kafka, whose coordinator also ignores the extra partitions.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, TopicName};

use crate::broker::cluster::assignment;
use crate::broker::shard::{PublishError, Shard};
use crate::broker::topics::{TopicMeta, TopicSnapshot, PARTITIONS_PER_TOPIC_MAX};
use crate::protocol::error_code::ErrorCode;

use super::{error_message, str_bytes};

/// One topic to grow, as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Growth {
    pub name: String,
    /// The new total partition count.
    pub count: i32,
    /// The replicas of each new partition, in partition order; `None` lets the broker place.
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// Why a topic was not grown: Kafka's error code and message (`None` where Kafka sends none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: Option<String>,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal { code, message: Some(message.into()) }
    }
}

pub async fn create_partitions(
    shard: &Rc<Shard>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let names: Vec<&str> = request.topics.iter().map(|topic| topic.name.as_str()).collect();
    let (duplicates, unique) = split_duplicates(&names);
    let mut results: Vec<CreatePartitionsTopicResult> = duplicates
        .iter()
        .map(|name| {
            result(name, Err(Refusal::new(ErrorCode::InvalidRequest, "Duplicate topic name.")))
        })
        .collect();
    let growths: Vec<Growth> = unique
        .iter()
        .map(|&index| {
            // `unique` holds indexes into `names`, which has one entry per request topic.
            let topic = &request.topics[index];
            let assignments = topic.assignments.as_ref().map(|assignments| {
                let replicas = |a: &kafka_protocol::messages::create_partitions_request::
                    CreatePartitionsAssignment| a.broker_ids.iter().map(|id| id.0).collect();
                assignments.iter().map(replicas).collect()
            });
            Growth { name: topic.name.to_string(), count: topic.count, assignments }
        })
        .collect();
    let names: Vec<String> = growths.iter().map(|growth| growth.name.clone()).collect();
    let validate_only = request.validate_only;
    let outcomes = shard
        .call_on(0, move |controller| async move {
            grow_on_controller(&controller, growths, validate_only).await
        })
        .await
        .unwrap_or_default();
    let shutting_down =
        || Err(Refusal::new(ErrorCode::KafkaStorageError, "broker is shutting down"));
    let mut outcomes = outcomes.into_iter();
    for name in &names {
        results.push(result(name, outcomes.next().unwrap_or_else(shutting_down)));
    }
    CreatePartitionsResponse::default().with_results(results)
}

fn result(name: &str, outcome: Result<(), Refusal>) -> CreatePartitionsTopicResult {
    let (code, message) = match outcome {
        Ok(()) => (ErrorCode::None, None),
        Err(refusal) => (refusal.code, refusal.message),
    };
    CreatePartitionsTopicResult::default()
        .with_name(TopicName(str_bytes(name)))
        .with_error_code(code.code())
        .with_error_message(message.as_deref().map(error_message))
}

/// The names asked more than once (each once, in order of first appearance), and the indexes
/// of the others. Kafka answers the former INVALID_REQUEST and does not touch those topics.
pub fn split_duplicates(names: &[&str]) -> (Vec<String>, Vec<usize>) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for name in names {
        *counts.entry(name).or_default() += 1;
    }
    let mut duplicates = Vec::new();
    let mut unique = Vec::new();
    for (index, name) in names.iter().enumerate() {
        if counts.get(name) == Some(&1) {
            unique.push(index);
        } else if !duplicates.iter().any(|seen: &String| seen == name) {
            duplicates.push(name.to_string());
        }
    }
    (duplicates, unique)
}

/// Runs on shard 0. Validates each topic, then stores and publishes all grown ones at once.
pub async fn grow_on_controller(
    controller: &Rc<Shard>,
    growths: Vec<Growth>,
    validate_only: bool,
) -> Vec<Result<(), Refusal>> {
    let guard = controller.lock_registry().await;
    if !controller.may_change_registry().await {
        let refusal = Refusal::new(ErrorCode::NotController, "not the controller".to_string());
        return growths.iter().map(|_| Err(refusal.clone())).collect();
    }
    let current = controller.topics();
    let node_id = controller.cluster.node_id;
    let mut grown: BTreeMap<String, TopicMeta> = BTreeMap::new();
    let mut outcomes = Vec::with_capacity(growths.len());
    let in_cluster = controller.config.cluster.is_some();
    for growth in &growths {
        let checked = check_growth(&current, growth, node_id);
        let checked = checked.and_then(|topic| match in_cluster {
            true => with_new_replicas(&current, topic, growth.assignments.as_deref()),
            false => Ok(topic),
        });
        outcomes.push(checked.map(|topic| {
            grown.insert(topic.name.clone(), topic);
        }));
    }
    if validate_only || grown.is_empty() {
        return outcomes;
    }
    let all = current.by_name.values().map(|topic| grown.get(&topic.name).unwrap_or(topic));
    let snapshot = Arc::new(TopicSnapshot::new(all.cloned()));
    if let Err(error) = controller.publish_registry(&guard, snapshot).await {
        tracing::error!(%error, "cannot store the topic registry; partitions not created");
        let refusal = match error {
            PublishError::NotController => {
                Refusal::new(ErrorCode::NotController, "not the controller".to_string())
            }
            PublishError::Failed(error) => Refusal::new(
                ErrorCode::KafkaStorageError,
                format!("cannot store the topic registry: {error}"),
            ),
        };
        return outcomes.into_iter().map(|outcome| outcome.and(Err(refusal.clone()))).collect();
    }
    for topic in grown.values() {
        tracing::info!(topic = %topic.name, partitions = topic.partition_count, "topic grown");
    }
    outcomes
}

/// Kafka's checks, in Kafka's order, plus Tern's bound on partitions per topic. Returns the
/// grown topic (same id and configs, the new count).
pub fn check_growth(
    current: &TopicSnapshot,
    growth: &Growth,
    node_id: i32,
) -> Result<TopicMeta, Refusal> {
    let Some(topic) = current.get(&growth.name) else {
        return Err(Refusal { code: ErrorCode::UnknownTopicOrPartition, message: None });
    };
    let (have, count) = (topic.partition_count, growth.count);
    let invalid_partitions =
        |message: String| Err(Refusal::new(ErrorCode::InvalidPartitions, message));
    if count == have {
        return invalid_partitions(format!("Topic already has {have} partition(s)."));
    }
    if count < have {
        return invalid_partitions(format!(
            "The topic {} currently has {have} partition(s); {count} would not be an increase.",
            topic.name
        ));
    }
    let additional = i64::from(count) - i64::from(have);
    if let Some(assignments) = &growth.assignments {
        if assignments.len() as i64 != additional {
            return Err(Refusal::new(
                ErrorCode::InvalidReplicaAssignment,
                format!(
                    "Attempted to add {additional} additional partition(s), but only {} \
                     assignment(s) were specified.",
                    assignments.len()
                ),
            ));
        }
    }
    if count > PARTITIONS_PER_TOPIC_MAX {
        return invalid_partitions(format!(
            "Topic {} cannot have more than {PARTITIONS_PER_TOPIC_MAX} partitions.",
            topic.name
        ));
    }
    // A single node registers no brokers: it is the only one, and every partition has one
    // replica. A cluster's partitions all have as many replicas as the first.
    let registered: Vec<i32> = match current.brokers.is_empty() {
        true => vec![node_id],
        false => current.unfenced_brokers(),
    };
    let replica_count = topic.replicas.first().map_or(1, Vec::len);
    for replicas in growth.assignments.iter().flatten() {
        check_replicas(replicas, &registered, replica_count)?;
    }
    Ok(TopicMeta { partition_count: count, ..topic.clone() })
}

/// In a cluster: the grown topic's new partitions get the replicas the request assigned
/// (checked by [`check_growth`]), or as many as its first partition has, spread like a new
/// topic's.
fn with_new_replicas(
    current: &TopicSnapshot,
    mut topic: TopicMeta,
    assignments: Option<&[Vec<i32>]>,
) -> Result<TopicMeta, Refusal> {
    if let Some(assignments) = assignments {
        topic.replicas.extend(assignments.iter().cloned());
        assert_eq!(topic.replicas.len(), topic.partition_count as usize, "checked: one each");
        return Ok(topic);
    }
    let brokers: Vec<i32> = current.unfenced_brokers();
    let factor = topic.replicas.first().map_or(0, Vec::len);
    if factor == 0 || factor > brokers.len() {
        let message = format!("{factor} replicas per partition, {} brokers", brokers.len());
        return Err(Refusal::new(ErrorCode::InvalidReplicationFactor, message));
    }
    // The grown count was checked against PARTITIONS_PER_TOPIC_MAX: it fits.
    let existing = topic.replicas.len() as i32;
    let added = topic.partition_count - existing;
    let replicas = assignment::assign(&topic.name, &brokers, existing, added, factor);
    topic.replicas.extend(replicas);
    Ok(topic)
}

/// Kafka's `validateManualPartitionAssignment`: distinct registered brokers, as many as the
/// topic's partitions have (on a single node: exactly this broker).
fn check_replicas(
    replicas: &[i32],
    registered: &[i32],
    replica_count: usize,
) -> Result<(), Refusal> {
    let invalid = |message: String| Err(Refusal::new(ErrorCode::InvalidReplicaAssignment, message));
    if replicas.is_empty() {
        return invalid("The manual partition assignment includes an empty replica list.".into());
    }
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    let mut previous = None;
    for broker in sorted.iter().copied() {
        if !registered.contains(&broker) {
            return invalid(format!(
                "The manual partition assignment includes broker {broker}, but no such broker \
                 is registered."
            ));
        }
        if previous == Some(broker) {
            return invalid(format!(
                "The manual partition assignment includes the broker {broker} more than once."
            ));
        }
        previous = Some(broker);
    }
    if sorted.len() != replica_count {
        return invalid(format!(
            "The manual partition assignment includes a partition with {} replica(s), but this \
             is not consistent with previous partitions, which have {replica_count} replica(s).",
            sorted.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
