//! Metadata: brokers, cluster id, controller, and topics with their partitions.
//!
//! A null topic list means all topics, an empty list means none. Unknown topics are created
//! when the request allows it (v4+ flag; always for v0-v3) and the broker enables
//! auto-creation — the Kafka behaviour clients rely on.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use crate::broker::groups;
use crate::broker::shard::{PartitionKey, PartitionState, Shard};
use crate::broker::topics::{validate_topic_name, BrokerEndpoint, TopicMeta};
use crate::protocol::error_code::ErrorCode;

use super::{admin, str_bytes};

/// Kafka's "authorized operations not requested" sentinel.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// What this broker knows of leadership: gathered from every shard's replicas, and the
/// controller's leader from shard 0. Empty on a single node (every partition is its own).
#[derive(Default)]
pub struct LeadershipView {
    pub partitions: BTreeMap<PartitionKey, PartitionState>,
    pub controller: Option<i32>,
    pub in_cluster: bool,
    /// The brokers the controller fenced (as this broker applied it).
    pub fenced: BTreeSet<i32>,
}

impl LeadershipView {
    pub async fn gather(shard: &Rc<Shard>) -> LeadershipView {
        if shard.config.cluster.is_none() {
            return LeadershipView::default();
        }
        let fenced = shard.topics().fenced.clone();
        let mut view = LeadershipView { in_cluster: true, fenced, ..LeadershipView::default() };
        for index in 0..shard.shard_count() {
            let answer = shard
                .call_on(index, |target| async move {
                    let controller = target.controller().and_then(|c| c.leader());
                    (target.partition_states(), controller)
                })
                .await;
            let Some((states, controller)) = answer else { continue };
            view.partitions.extend(states);
            view.controller = view.controller.or(controller);
        }
        view
    }
}

pub async fn handle(shard: &Rc<Shard>, request: MetadataRequest, version: i16) -> MetadataResponse {
    let view = LeadershipView::gather(shard).await;
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
            let snapshot = shard.topics();
            snapshot.by_name.values().map(|topic| topic_entry(topic, node_id, &view)).collect()
        }
        Some(requested) => {
            let mut entries = Vec::with_capacity(requested.len());
            for topic in requested {
                let (name, id) = (topic.name, topic.topic_id);
                entries.push(requested_topic(shard, name, id, allow_auto_create, &view).await);
            }
            entries
        }
    };
    let controller_id = match view.in_cluster {
        true => view.controller.unwrap_or(-1),
        false => shard.cluster.node_id,
    };
    let leaders: BTreeSet<i32> = topics
        .iter()
        .flat_map(|topic| topic.partitions.iter().map(|partition| partition.leader_id.0))
        .collect();
    let brokers = listed_brokers(shard, &view.fenced, &leaders)
        .into_iter()
        .map(|endpoint| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(endpoint.node_id))
                .with_host(str_bytes(&endpoint.host))
                .with_port(i32::from(endpoint.port))
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(&shard.cluster.cluster_id)))
        .with_controller_id(BrokerId(controller_id))
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
        .with_topics(topics)
}

/// The brokers clients are told of: every broker the controller registered and did not
/// fence, as Kafka lists them (this one alone on a single node, or before its registration
/// has been applied). A fenced broker that a partition of the answer names as its leader is
/// listed too: partitions elect their own leaders, and a leader the controller cannot reach
/// may still serve clients, who need its endpoint.
pub fn listed_brokers(
    shard: &Shard,
    fenced: &BTreeSet<i32>,
    leaders: &BTreeSet<i32>,
) -> Vec<BrokerEndpoint> {
    let snapshot = shard.topics();
    let own = shard.own_endpoint();
    let mut endpoints = snapshot.brokers.clone();
    endpoints.entry(own.node_id).or_insert(own);
    endpoints.retain(|node_id, _| !fenced.contains(node_id) || leaders.contains(node_id));
    endpoints.into_values().collect()
}

async fn requested_topic(
    shard: &Rc<Shard>,
    name: Option<TopicName>,
    topic_id: uuid::Uuid,
    allow_auto_create: bool,
    view: &LeadershipView,
) -> MetadataResponseTopic {
    let snapshot = shard.topics();
    let node_id = shard.cluster.node_id;
    let Some(name) = name else {
        return match snapshot.get_by_id(&topic_id) {
            Some(topic) => topic_entry(topic, node_id, view),
            None => error_entry(None, topic_id, ErrorCode::UnknownTopicId),
        };
    };
    if let Some(topic) = snapshot.get(name.as_str()) {
        return topic_entry(topic, node_id, view);
    }
    if validate_topic_name(name.as_str()).is_err() {
        return error_entry(Some(name), topic_id, ErrorCode::InvalidTopicException);
    }
    if !allow_auto_create {
        return error_entry(Some(name), topic_id, ErrorCode::UnknownTopicOrPartition);
    }
    match admin::auto_create_topic(shard, name.as_str()).await {
        Ok(topic) => topic_entry(&topic, node_id, view),
        Err(code) => error_entry(Some(name), topic_id, code),
    }
}

fn topic_entry(topic: &TopicMeta, node_id: i32, view: &LeadershipView) -> MetadataResponseTopic {
    let partitions = (0..topic.partition_count)
        .map(|index| match view.in_cluster {
            false => {
                let node = BrokerId(node_id);
                MetadataResponsePartition::default()
                    .with_partition_index(index)
                    .with_leader_id(node)
                    .with_leader_epoch(0)
                    .with_replica_nodes(vec![node])
                    .with_isr_nodes(vec![node])
            }
            true => replicated_partition_entry(topic, index, view),
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&topic.name))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.name == groups::OFFSETS_TOPIC)
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

/// A cluster's partition: its replicas from the assignment; leader, epoch and in-sync
/// replicas as this broker's replica knows them. A partition whose leader this broker does
/// not know answers LEADER_NOT_AVAILABLE, and clients ask again (another broker knows).
fn replicated_partition_entry(
    topic: &TopicMeta,
    index: i32,
    view: &LeadershipView,
) -> MetadataResponsePartition {
    let replicas: Vec<BrokerId> = topic
        .replicas
        .get(index.unsigned_abs() as usize)
        .map(|nodes| nodes.iter().copied().map(BrokerId).collect())
        .unwrap_or_default();
    // Kafka reports the replicas of fenced brokers as offline.
    let offline = replicas.iter().filter(|node| view.fenced.contains(&node.0)).copied().collect();
    let entry = MetadataResponsePartition::default()
        .with_partition_index(index)
        .with_replica_nodes(replicas.clone())
        .with_offline_replicas(offline);
    let state = view.partitions.get(&(topic.name.clone(), index));
    match state.and_then(|state| state.leader.map(|leader| (leader, state))) {
        Some((leader, state)) => {
            // The leader knows the in-sync set; another replica reports the replica set.
            let in_sync = match state.in_sync.is_empty() {
                true => replicas,
                false => state.in_sync.iter().copied().map(BrokerId).collect(),
            };
            entry
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(state.epoch)
                .with_isr_nodes(in_sync)
        }
        None => entry
            .with_error_code(ErrorCode::LeaderNotAvailable.code())
            .with_leader_id(BrokerId(-1))
            .with_leader_epoch(-1)
            .with_isr_nodes(Vec::new()),
    }
}

fn error_entry(name: Option<TopicName>, id: uuid::Uuid, code: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code.code())
        .with_name(name)
        .with_topic_id(id)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}
