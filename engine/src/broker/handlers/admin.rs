//! CreateTopics and DeleteTopics, and Metadata's auto-creation.
//!
//! All registry changes run on shard 0 (the registry's only writer), one at a time: validate,
//! write the new registry durably, then have every shard open or delete its partitions before
//! answering — so a client that sees success can produce at once, on any shard.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};

use crate::broker::cluster::{assignment, forward, image};
use crate::broker::groups;
use crate::broker::shard::{PublishError, Shard};
use crate::broker::topic_configs::KAFKA_TOPIC_CONFIGS;
use crate::broker::topics::{
    validate_topic_config_with, validate_topic_name, TopicError, TopicMeta, TopicSnapshot,
    PARTITIONS_PER_TOPIC_MAX,
};
use crate::io;
use crate::protocol::error_code::ErrorCode;

use super::{error_message, str_bytes};

/// A cluster's default replication factor is min(this, brokers).
const DEFAULT_REPLICATION_FACTOR_MAX: usize = 3;

/// Config sources as Kafka numbers them.
const CONFIG_SOURCE_TOPIC: i8 = 1;
const CONFIG_SOURCE_DEFAULT: i8 = 5;

/// A topic to create, as asked by CreateTopics or by auto-creation.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1 means the broker default.
    pub partition_count: i32,
    /// -1 means the broker default (1 on a single node).
    pub replication_factor: i16,
    /// Manual replica assignment: (partition index, broker ids), empty for none.
    pub assignments: Vec<(i32, Vec<i32>)>,
    pub configs: Vec<(String, Option<String>)>,
}

impl TopicError {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            TopicError::NotController => ErrorCode::NotController,
            TopicError::InvalidName(_) => ErrorCode::InvalidTopicException,
            TopicError::AlreadyExists(_) => ErrorCode::TopicAlreadyExists,
            TopicError::InvalidPartitions(_) => ErrorCode::InvalidPartitions,
            TopicError::InvalidReplicationFactor(_) => ErrorCode::InvalidReplicationFactor,
            TopicError::InvalidReplicaAssignment(_) => ErrorCode::InvalidReplicaAssignment,
            TopicError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            TopicError::InvalidConfig(_) | TopicError::UnsupportedConfig(_) => {
                ErrorCode::InvalidConfig
            }
        }
    }
}

pub async fn create_topics(
    shard: &Rc<Shard>,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let duplicates = duplicate_names(&request);
    let asked: Vec<_> =
        request.topics.iter().filter(|topic| !duplicates.contains(topic.name.as_str())).collect();
    let new_topics: Vec<NewTopic> = asked
        .iter()
        .map(|topic| NewTopic {
            name: topic.name.to_string(),
            partition_count: topic.num_partitions,
            replication_factor: topic.replication_factor,
            assignments: topic
                .assignments
                .iter()
                .map(|assignment| {
                    let brokers = assignment.broker_ids.iter().map(|id| id.0).collect();
                    (assignment.partition_index, brokers)
                })
                .collect(),
            configs: topic
                .configs
                .iter()
                .map(|config| {
                    (config.name.to_string(), config.value.as_ref().map(|v| v.to_string()))
                })
                .collect(),
        })
        .collect();
    let validate_only = request.validate_only;
    let outcomes = shard
        .call_on(0, move |controller| async move {
            create_topics_on_controller(&controller, new_topics, validate_only).await
        })
        .await
        .unwrap_or_default();
    let mut results: Vec<CreatableTopicResult> = asked
        .iter()
        .zip(outcomes.into_iter().map(Some).chain(std::iter::repeat(None)))
        .map(|(asked, outcome)| creation_result(asked.name.clone(), outcome))
        .collect();
    results.extend(duplicates.into_iter().map(|name| {
        CreatableTopicResult::default()
            .with_name(TopicName(str_bytes(name)))
            .with_error_code(ErrorCode::InvalidRequest.code())
            .with_error_message(Some(str_bytes("Duplicate topic name.")))
    }));
    CreateTopicsResponse::default().with_topics(results)
}

/// Names a CreateTopics request lists more than once. Kafka (ControllerApis) creates none of
/// them and answers each once, with INVALID_REQUEST, after the other topics' results.
fn duplicate_names(request: &CreateTopicsRequest) -> BTreeSet<&str> {
    let mut seen = BTreeSet::new();
    let mut duplicates = BTreeSet::new();
    for topic in &request.topics {
        if !seen.insert(topic.name.as_str()) {
            duplicates.insert(topic.name.as_str());
        }
    }
    duplicates
}

fn creation_result(
    name: TopicName,
    outcome: Option<Result<TopicMeta, TopicError>>,
) -> CreatableTopicResult {
    let result = CreatableTopicResult::default().with_name(name);
    match outcome {
        Some(Ok(topic)) => result
            .with_topic_id(topic.id)
            .with_error_message(None)
            .with_num_partitions(topic.partition_count)
            .with_replication_factor(1)
            .with_configs(Some(created_configs(&topic))),
        Some(Err(error)) => result
            .with_error_code(error.error_code().code())
            .with_error_message(Some(error_message(&error.to_string())))
            .with_num_partitions(-1)
            .with_replication_factor(-1),
        None => result
            .with_error_code(ErrorCode::KafkaStorageError.code())
            .with_error_message(Some(str_bytes("broker is shutting down"))),
    }
}

/// The configs of a created topic as CreateTopics v5+ reports them (Kafka lists all of them).
fn created_configs(topic: &TopicMeta) -> Vec<CreatableTopicConfigs> {
    KAFKA_TOPIC_CONFIGS
        .iter()
        .map(|spec| {
            let (value, source) = match topic.configs.get(spec.name) {
                Some(value) => (value.as_str(), CONFIG_SOURCE_TOPIC),
                None => (spec.default, CONFIG_SOURCE_DEFAULT),
            };
            CreatableTopicConfigs::default()
                .with_name(str_bytes(spec.name))
                .with_value(Some(str_bytes(value)))
                .with_config_source(source)
        })
        .collect()
}

/// Creates the topic that a Metadata request named, with the broker's defaults. An existing
/// topic (created concurrently) is returned as is.
pub async fn auto_create_topic(shard: &Rc<Shard>, name: &str) -> Result<TopicMeta, ErrorCode> {
    let new_topic = NewTopic {
        name: name.to_string(),
        partition_count: -1,
        replication_factor: -1,
        assignments: Vec::new(),
        configs: Vec::new(),
    };
    let outcome = shard
        .call_on(0, move |controller| async move {
            create_topics_on_controller(&controller, vec![new_topic], false).await
        })
        .await
        .and_then(|mut outcomes| outcomes.pop());
    match outcome {
        Some(Ok(topic)) => Ok(topic),
        Some(Err(TopicError::AlreadyExists(_))) => {
            shard.topics().get(name).cloned().ok_or(ErrorCode::LeaderNotAvailable)
        }
        // Another broker leads the controller: it creates the topic (forwarded), and the
        // client's next Metadata, retrying LEADER_NOT_AVAILABLE, finds it here.
        Some(Err(TopicError::NotController)) => {
            forward::create_topic(shard, name);
            Err(ErrorCode::LeaderNotAvailable)
        }
        Some(Err(error)) => Err(error.error_code()),
        None => Err(ErrorCode::LeaderNotAvailable),
    }
}

/// Runs on shard 0. Validates each topic, then stores and publishes all valid ones at once.
pub async fn create_topics_on_controller(
    controller: &Rc<Shard>,
    new_topics: Vec<NewTopic>,
    validate_only: bool,
) -> Vec<Result<TopicMeta, TopicError>> {
    let guard = controller.lock_registry().await;
    if !controller.may_change_registry().await {
        return new_topics.iter().map(|_| Err(TopicError::NotController)).collect();
    }
    let current = controller.topics();
    let mut created: BTreeMap<String, TopicMeta> = BTreeMap::new();
    let mut outcomes = Vec::with_capacity(new_topics.len());
    for new_topic in new_topics {
        let outcome = check_new_topic(controller, &current, &created, &new_topic);
        if let Ok(topic) = &outcome {
            created.insert(topic.name.clone(), topic.clone());
        }
        outcomes.push(outcome);
    }
    if validate_only || created.is_empty() {
        return outcomes;
    }
    let all = current.by_name.values().cloned().chain(created.values().cloned());
    let snapshot = Arc::new(TopicSnapshot::new(all));
    if let Err(error) = controller.publish_registry(&guard, snapshot).await {
        tracing::error!(%error, "cannot store the topic registry; topics not created");
        let refusal = match error {
            PublishError::NotController => TopicError::NotController,
            PublishError::Failed(error) => {
                TopicError::InvalidConfig(format!("cannot store the topic registry: {error}"))
            }
        };
        return outcomes.into_iter().map(|outcome| outcome.and(Err(refusal.clone()))).collect();
    }
    for topic in created.values() {
        tracing::info!(topic = %topic.name, partitions = topic.partition_count, "topic created");
    }
    outcomes
}

/// Kafka's rules for a manual replica assignment (`ReplicationControlManager`): it replaces
/// the partition count and replication factor, which must then be -1; partitions are numbered
/// 0..n without gaps; every partition lists the same number of distinct, registered brokers
/// (on a single node, `brokers` is this one alone). Returns n.
fn check_assignments(new_topic: &NewTopic, brokers: &[i32]) -> Result<i32, TopicError> {
    if new_topic.partition_count != -1 || new_topic.replication_factor != -1 {
        return Err(TopicError::InvalidRequest(
            "Both numPartitions or replicationFactor and replicasAssignments were set. \
             Both cannot be used at the same time."
                .into(),
        ));
    }
    let invalid = |message: String| Err(TopicError::InvalidReplicaAssignment(message));
    for (expected_index, (partition, nodes)) in new_topic.assignments.iter().enumerate() {
        if usize::try_from(*partition) != Ok(expected_index) {
            return invalid(format!(
                "Partitions should be 0..{} without gaps; found {partition}",
                new_topic.assignments.len()
            ));
        }
        if nodes.is_empty() {
            return invalid(format!("Partition {partition} has no replicas."));
        }
        if nodes.len() != new_topic.assignments[0].1.len() {
            return invalid("All partitions should have the same number of replicas.".into());
        }
        if let Some(unknown) = nodes.iter().find(|node| !brokers.contains(node)) {
            return invalid(format!(
                "The manual partition assignment includes broker {unknown}, \
                but no such broker is registered."
            ));
        }
        let distinct: BTreeSet<&i32> = nodes.iter().collect();
        if distinct.len() != nodes.len() || nodes.len() > image::REPLICAS_MAX {
            return invalid(format!("Duplicate replica assignment for partition {partition}."));
        }
    }
    i32::try_from(new_topic.assignments.len())
        .map_err(|_| TopicError::InvalidPartitions("too many partitions".into()))
}

fn check_new_topic(
    controller: &Shard,
    current: &TopicSnapshot,
    created: &BTreeMap<String, TopicMeta>,
    new_topic: &NewTopic,
) -> Result<TopicMeta, TopicError> {
    validate_topic_name(&new_topic.name)?;
    if current.get(&new_topic.name).is_some() || created.contains_key(&new_topic.name) {
        return Err(TopicError::AlreadyExists(new_topic.name.clone()));
    }
    if controller.config.cluster.is_some() {
        return check_new_topic_in_cluster(controller, current, new_topic);
    }
    let partition_count = if new_topic.assignments.is_empty() {
        match new_topic.partition_count {
            -1 => controller.config.default_partitions,
            count => count,
        }
    } else {
        check_assignments(new_topic, &[controller.cluster.node_id])?
    };
    check_partition_count(partition_count)?;
    match new_topic.replication_factor {
        -1 | 1 => {}
        factor => return Err(replication_factor_refused(factor, 1)),
    }
    new_topic_meta(controller, new_topic, partition_count, Vec::new())
}

fn check_partition_count(partition_count: i32) -> Result<(), TopicError> {
    if partition_count <= 0 || partition_count > PARTITIONS_PER_TOPIC_MAX {
        return Err(TopicError::InvalidPartitions(format!(
            "Number of partitions must be larger than 0 and at most {PARTITIONS_PER_TOPIC_MAX}."
        )));
    }
    Ok(())
}

/// Kafka's messages for a replication factor it cannot use.
fn replication_factor_refused(factor: i16, broker_count: usize) -> TopicError {
    if factor <= 0 {
        return TopicError::InvalidReplicationFactor(
            "Replication factor must be larger than 0, or -1 to use the default value.".into(),
        );
    }
    TopicError::InvalidReplicationFactor(format!(
        "Unable to replicate the partition {factor} time(s): The target replication factor of \
         {factor} cannot be reached because only {broker_count} broker(s) are registered."
    ))
}

/// A new topic of a cluster: its replicas assigned over the registered brokers (default
/// replication factor min(3, brokers), as Kafka's `default.replication.factor` would need
/// setting for), or as the request's manual assignment says.
fn check_new_topic_in_cluster(
    controller: &Shard,
    current: &TopicSnapshot,
    new_topic: &NewTopic,
) -> Result<TopicMeta, TopicError> {
    let brokers: Vec<i32> = current.unfenced_brokers();
    if !new_topic.assignments.is_empty() {
        let partition_count = check_assignments(new_topic, &brokers)?;
        check_partition_count(partition_count)?;
        let replicas = new_topic.assignments.iter().map(|(_, nodes)| nodes.clone()).collect();
        return new_topic_meta(controller, new_topic, partition_count, replicas);
    }
    let partition_count = match new_topic.partition_count {
        -1 => controller.config.default_partitions,
        count => count,
    };
    check_partition_count(partition_count)?;
    let factor = match new_topic.replication_factor {
        -1 => brokers.len().min(DEFAULT_REPLICATION_FACTOR_MAX),
        factor if factor > 0 && (factor as usize) <= brokers.len() => factor as usize,
        factor => return Err(replication_factor_refused(factor, brokers.len())),
    };
    if factor == 0 || factor > image::REPLICAS_MAX {
        return Err(replication_factor_refused(factor as i16, brokers.len()));
    }
    let replicas = assignment::assign(&new_topic.name, &brokers, 0, partition_count, factor);
    new_topic_meta(controller, new_topic, partition_count, replicas)
}

fn new_topic_meta(
    controller: &Shard,
    new_topic: &NewTopic,
    partition_count: i32,
    replicas: Vec<Vec<i32>>,
) -> Result<TopicMeta, TopicError> {
    let mut configs = BTreeMap::new();
    for (key, value) in &new_topic.configs {
        validate_topic_config_with(
            key,
            value.as_deref(),
            controller.config.internal_topic_configs,
        )?;
        configs.insert(key.clone(), value.clone().unwrap_or_default());
    }
    Ok(TopicMeta {
        name: new_topic.name.clone(),
        id: io::random_uuid(),
        partition_count,
        configs,
        replicas,
        replica_directories: Vec::new(),
    })
}

pub async fn delete_topics(
    shard: &Rc<Shard>,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    // v6 names topics by name or id in `topics`; older versions list names in `topic_names`.
    let targets: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id))
            .collect()
    } else {
        request.topic_names.iter().map(|name| (Some(name.to_string()), uuid::Uuid::nil())).collect()
    };
    let asked = targets.clone();
    let outcomes = shard
        .call_on(
            0,
            move |controller| async move { delete_on_controller(&controller, targets).await },
        )
        .await;
    let responses = asked
        .into_iter()
        .enumerate()
        .map(|(index, (name, id))| {
            let outcome = outcomes.as_ref().and_then(|all| all.get(index).cloned());
            let (code, found_name, found_id) = match outcome {
                Some(Ok((name, id))) => (ErrorCode::None, Some(name), id),
                Some(Err(code)) => (code, name, id),
                None => (ErrorCode::KafkaStorageError, name, id),
            };
            DeletableTopicResult::default()
                .with_name(found_name.map(|name| TopicName(str_bytes(&name))))
                .with_topic_id(found_id)
                .with_error_code(code.code())
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

type DeleteOutcome = Result<(String, uuid::Uuid), ErrorCode>;

async fn delete_on_controller(
    controller: &Rc<Shard>,
    targets: Vec<(Option<String>, uuid::Uuid)>,
) -> Vec<DeleteOutcome> {
    let guard = controller.lock_registry().await;
    if !controller.may_change_registry().await {
        return targets.iter().map(|_| Err(ErrorCode::NotController)).collect();
    }
    let current = controller.topics();
    let mut remaining = current.by_name.clone();
    let mut outcomes = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let found = match &name {
            Some(name) => remaining.get(name).cloned(),
            None => remaining.values().find(|topic| topic.id == id).cloned(),
        };
        outcomes.push(match (found, name.is_some()) {
            // Group state lives there: like Kafka, the internal topic cannot be deleted.
            (Some(topic), _) if topic.name == groups::OFFSETS_TOPIC => {
                Err(ErrorCode::InvalidRequest)
            }
            (Some(topic), _) => {
                remaining.remove(&topic.name);
                Ok((topic.name, topic.id))
            }
            (None, true) => Err(ErrorCode::UnknownTopicOrPartition),
            (None, false) => Err(ErrorCode::UnknownTopicId),
        });
    }
    if remaining.len() == current.by_name.len() {
        return outcomes;
    }
    let snapshot = Arc::new(TopicSnapshot::new(remaining.into_values()));
    if let Err(error) = controller.publish_registry(&guard, snapshot).await {
        tracing::error!(%error, "cannot store the topic registry; topics not deleted");
        let code = match error {
            PublishError::NotController => ErrorCode::NotController,
            PublishError::Failed(_) => ErrorCode::KafkaStorageError,
        };
        return outcomes.into_iter().map(|o| o.and(Err(code))).collect();
    }
    outcomes
}
