//! Metadata: brokers, cluster id, controller, and topics with their partitions.
//!
//! A null topic list means all topics, an empty list means none. Unknown topics are created
//! when the request allows it (v4+ flag; always for v0-v3) and the broker enables
//! auto-creation — the Kafka behaviour clients rely on.

use std::rc::Rc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use crate::broker::groups;
use crate::broker::shard::Shard;
use crate::broker::topics::{validate_topic_name, TopicMeta};
use crate::protocol::error_code::ErrorCode;

use super::{admin, str_bytes};

/// Kafka's "authorized operations not requested" sentinel.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub async fn handle(shard: &Rc<Shard>, request: MetadataRequest, version: i16) -> MetadataResponse {
    let allow_auto_create =
        shard.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    // Metadata v0 has no null list: there, an empty list means all topics.
    let all_topics = match &request.topics {
        None => true,
        Some(requested) => version == 0 && requested.is_empty(),
    };
    let topics = match request.topics.filter(|_| !all_topics) {
        None => {
            let node_id = shard.cluster.node_id;
            shard.topics().by_name.values().map(|topic| topic_entry(topic, node_id)).collect()
        }
        Some(requested) => {
            let mut entries = Vec::with_capacity(requested.len());
            for topic in requested {
                entries.push(
                    requested_topic(shard, topic.name, topic.topic_id, allow_auto_create).await,
                );
            }
            entries
        }
    };
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(shard.cluster.node_id))
            .with_host(str_bytes(&shard.config.advertised_host))
            .with_port(i32::from(shard.config.advertised_port))])
        .with_cluster_id(Some(str_bytes(&shard.cluster.cluster_id)))
        .with_controller_id(BrokerId(shard.cluster.node_id))
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
        .with_topics(topics)
}

async fn requested_topic(
    shard: &Rc<Shard>,
    name: Option<TopicName>,
    topic_id: uuid::Uuid,
    allow_auto_create: bool,
) -> MetadataResponseTopic {
    let snapshot = shard.topics();
    let Some(name) = name else {
        return match snapshot.get_by_id(&topic_id) {
            Some(topic) => topic_entry(topic, shard.cluster.node_id),
            None => error_entry(None, topic_id, ErrorCode::UnknownTopicId),
        };
    };
    if let Some(topic) = snapshot.get(name.as_str()) {
        return topic_entry(topic, shard.cluster.node_id);
    }
    if validate_topic_name(name.as_str()).is_err() {
        return error_entry(Some(name), topic_id, ErrorCode::InvalidTopicException);
    }
    if !allow_auto_create {
        return error_entry(Some(name), topic_id, ErrorCode::UnknownTopicOrPartition);
    }
    match admin::auto_create_topic(shard, name.as_str()).await {
        Ok(topic) => topic_entry(&topic, shard.cluster.node_id),
        Err(code) => error_entry(Some(name), topic_id, code),
    }
}

fn topic_entry(topic: &TopicMeta, node_id: i32) -> MetadataResponseTopic {
    let node = BrokerId(node_id);
    let partitions = (0..topic.partition_count)
        .map(|index| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&topic.name))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.name == groups::OFFSETS_TOPIC)
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

fn error_entry(name: Option<TopicName>, id: uuid::Uuid, code: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code.code())
        .with_name(name)
        .with_topic_id(id)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}
