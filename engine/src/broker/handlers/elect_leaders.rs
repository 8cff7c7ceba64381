//! ElectLeaders (API 43, v0-2): an operator asks each partition's preferred leader (its first
//! replica) to lead again — `kafka-leader-election.sh --election-type preferred`, Admin
//! `electLeaders` — after a failover moved leadership away (brokers also do it by
//! themselves every `--leader-rebalance-interval-ms`).
//!
//! Any broker answers. A partition whose preferred replica is on this broker asks its leader
//! for the leadership (`Replica::request_leadership`; the leader hands over once that replica
//! holds its whole log) and waits, bounded by the request's timeout, until it leads. The
//! other partitions are forwarded, grouped, to their preferred replica's broker as one
//! ElectLeaders each (`cluster::forward::call_broker`); a forwarded request is never
//! forwarded again. Per partition: NONE once the preferred replica leads,
//! ELECTION_NOT_NEEDED if it already did (always on a single node: every partition's one
//! replica leads it), PREFERRED_LEADER_NOT_AVAILABLE if it could not take over in time,
//! UNKNOWN_TOPIC_OR_PARTITION. An unclean election (type 1) is never done: Raft elects only
//! a replica holding every committed record (POLICY_VIOLATION, as `unclean.leader.election.
//! enable=true` is refused).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::broker::cluster::forward;
use crate::broker::partition::Partition;
use crate::broker::shard::Shard;
use crate::io::{self, Instant};
use crate::protocol::error_code::ErrorCode;
use crate::protocol::outbound;

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;
/// An election waits at most this long, whatever timeout the request gives.
const ELECTION_WAIT_MAX_MS: u64 = 30_000;
/// How often a waiting preferred replica asks its leader again (the leader hands over only
/// once the replica has caught up).
const ASK_INTERVAL: Duration = Duration::from_millis(200);
/// How often a waiting election looks whether the preferred replica leads.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Partitions one request may name (the request's own size bounds it too).
const PARTITIONS_MAX: usize = 100_000;
/// The version forwarded requests are sent at (every Kafka broker since 2.4 serves it).
const FORWARD_VERSION: i16 = 2;

/// One partition's outcome.
type Outcome = (i16, Option<String>);

pub async fn handle(
    shard: &Rc<Shard>,
    request: ElectLeadersRequest,
    version: i16,
    client_id: Option<&str>,
) -> ElectLeadersResponse {
    let forwarded = client_id == Some(outbound::CLIENT_ID);
    let election_type = if version >= 1 { request.election_type } else { PREFERRED };
    let timeout_ms = u64::try_from(request.timeout_ms).unwrap_or(0).min(ELECTION_WAIT_MAX_MS);
    let deadline = io::now() + Duration::from_millis(timeout_ms);
    let wanted = requested_partitions(shard, request.topic_partitions);
    let mut outcomes: BTreeMap<(String, i32), Outcome> = BTreeMap::new();
    // Partitions to elect here, and per other broker the partitions to forward to it.
    let mut local = Vec::new();
    let mut remote: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
    for (topic, partition) in wanted.into_iter().take(PARTITIONS_MAX) {
        let key = (topic.clone(), partition);
        match place(shard, &topic, partition, election_type) {
            Place::Answered(outcome) => drop(outcomes.insert(key, outcome)),
            Place::Here => local.push(key),
            Place::Broker(_) if forwarded => {
                let reason = "this broker is not the preferred replica".to_string();
                outcomes.insert(key, (ErrorCode::PreferredLeaderNotAvailable.code(), Some(reason)));
            }
            Place::Broker(node_id) => remote.entry(node_id).or_default().push(key),
        }
    }
    let elections =
        local.iter().map(|(topic, partition)| elect_here(shard, topic, *partition, deadline));
    let local_outcomes = futures_util::future::join_all(elections).await;
    outcomes.extend(local.into_iter().zip(local_outcomes));
    let forwards =
        remote.into_iter().map(|(node_id, keys)| forward_to(shard, node_id, keys, deadline));
    for answered in futures_util::future::join_all(forwards).await {
        outcomes.extend(answered);
    }
    response(outcomes)
}

/// The partitions asked for: every partition of every topic when the list is null.
fn requested_partitions(
    shard: &Shard,
    topic_partitions: Option<Vec<TopicPartitions>>,
) -> Vec<(String, i32)> {
    match topic_partitions {
        Some(topics) => topics
            .into_iter()
            .flat_map(|topic| {
                let name = topic.topic.0.to_string();
                topic.partitions.into_iter().map(move |partition| (name.clone(), partition))
            })
            .collect(),
        None => shard
            .topics()
            .by_name
            .values()
            .flat_map(|topic| (0..topic.partition_count).map(|p| (topic.name.clone(), p)))
            .collect(),
    }
}

enum Place {
    Answered(Outcome),
    Here,
    Broker(i32),
}

/// Where a partition's election runs, or its answer when none runs.
fn place(shard: &Shard, topic: &str, partition: i32, election_type: i8) -> Place {
    let snapshot = shard.topics();
    let known = snapshot.get(topic).filter(|meta| (0..meta.partition_count).contains(&partition));
    let Some(meta) = known else {
        return Place::Answered((ErrorCode::UnknownTopicOrPartition.code(), None));
    };
    match election_type {
        PREFERRED => {}
        UNCLEAN => {
            let reason = "unclean leader election is never done: a Raft leader holds every \
                          committed record";
            return Place::Answered((ErrorCode::PolicyViolation.code(), Some(reason.into())));
        }
        _ => {
            let reason = format!("unknown election type {election_type}");
            return Place::Answered((ErrorCode::InvalidRequest.code(), Some(reason)));
        }
    }
    let Some(cluster) = &shard.config.cluster else {
        return Place::Answered((ErrorCode::ElectionNotNeeded.code(), None));
    };
    let replicas = meta.replicas.get(partition.unsigned_abs() as usize);
    match replicas.and_then(|replicas| replicas.first()) {
        Some(&preferred) if preferred == cluster.node_id => Place::Here,
        Some(&preferred) => Place::Broker(preferred),
        None => Place::Answered((ErrorCode::PreferredLeaderNotAvailable.code(), None)),
    }
}

/// The election of a partition whose preferred replica this broker holds, on its owner shard.
async fn elect_here(shard: &Rc<Shard>, topic: &str, partition: i32, deadline: Instant) -> Outcome {
    let owner = shard.owner_of(topic, partition);
    let topic = topic.to_string();
    let elected = shard
        .call_on(owner, move |target| async move {
            // A broker that just started knows its topics (from its metadata log) a moment
            // before it has opened their replicas: wait for this one, bounded by the deadline.
            // Each round sleeps.
            let replicated = loop {
                match target.local_partition(&topic, partition) {
                    Some(Partition::Replicated(replicated)) => break replicated,
                    // Not replicated: its only replica leads it.
                    Some(_) => return (ErrorCode::ElectionNotNeeded.code(), None),
                    None if io::now() >= deadline => {
                        let reason = "the preferred replica is not open on its broker";
                        return (
                            ErrorCode::PreferredLeaderNotAvailable.code(),
                            Some(reason.into()),
                        );
                    }
                    None => io::sleep(POLL_INTERVAL).await,
                }
            };
            if replicated.is_leader() {
                return (ErrorCode::ElectionNotNeeded.code(), None);
            }
            let mut asked_at: Option<Instant> = None;
            // Each round sleeps; the deadline bounds them.
            while io::now() < deadline && !replicated.is_stopped() {
                if replicated.is_leader() {
                    return (ErrorCode::None.code(), None);
                }
                if asked_at.is_none_or(|at| io::now() >= at + ASK_INTERVAL) {
                    replicated.request_leadership();
                    asked_at = Some(io::now());
                }
                io::sleep(POLL_INTERVAL).await;
            }
            let reason = "the preferred replica did not catch up with its leader in time";
            (ErrorCode::PreferredLeaderNotAvailable.code(), Some(reason.to_string()))
        })
        .await;
    elected.unwrap_or((ErrorCode::PreferredLeaderNotAvailable.code(), None))
}

/// Forwards the elections of `keys` to their preferred replica's broker `node_id`.
async fn forward_to(
    shard: &Shard,
    node_id: i32,
    keys: Vec<(String, i32)>,
    deadline: Instant,
) -> Vec<((String, i32), Outcome)> {
    let remaining = deadline.duration_since(io::now());
    let failed = |keys: Vec<(String, i32)>, reason: String| {
        let code = ErrorCode::PreferredLeaderNotAvailable.code();
        keys.into_iter().map(|key| (key, (code, Some(reason.clone())))).collect::<Vec<_>>()
    };
    let Some(address) = forward::broker_address(shard, node_id) else {
        return failed(keys, format!("broker {node_id} has no known address"));
    };
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &keys {
        by_topic.entry(topic).or_default().push(*partition);
    }
    let topics = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            let name = TopicName(StrBytes::from_string(topic.to_string()));
            TopicPartitions::default().with_topic(name).with_partitions(partitions)
        })
        .collect();
    let timeout_ms = i32::try_from(remaining.as_millis()).unwrap_or(i32::MAX);
    let request = ElectLeadersRequest::default()
        .with_election_type(PREFERRED)
        .with_topic_partitions(Some(topics))
        .with_timeout_ms(timeout_ms);
    // A little past the forwarded timeout: the other broker answers at its deadline.
    let bound = remaining + Duration::from_secs(1);
    let called = io::timeout(bound, forward::call_broker(address, FORWARD_VERSION, &request));
    let answer = match called.await {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => return failed(keys, format!("forward to broker {node_id}: {error}")),
        Err(_) => return failed(keys, format!("broker {node_id} did not answer in time")),
    };
    let mut answered: BTreeMap<(String, i32), Outcome> = BTreeMap::new();
    for topic in answer.replica_election_results {
        for result in topic.partition_result {
            let key = (topic.topic.0.to_string(), result.partition_id);
            let message = result.error_message.map(|message| message.to_string());
            answered.insert(key, (result.error_code, message));
        }
    }
    // A partition the other broker left out of its answer failed there.
    keys.into_iter()
        .map(|key| {
            let outcome = answered.remove(&key).unwrap_or_else(|| {
                let reason = format!("broker {node_id} did not answer for it");
                (ErrorCode::PreferredLeaderNotAvailable.code(), Some(reason))
            });
            (key, outcome)
        })
        .collect()
}

fn response(outcomes: BTreeMap<(String, i32), Outcome>) -> ElectLeadersResponse {
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for ((topic, partition), (code, message)) in outcomes {
        let result = PartitionResult::default()
            .with_partition_id(partition)
            .with_error_code(code)
            .with_error_message(message.map(StrBytes::from_string));
        by_topic.entry(topic).or_default().push(result);
    }
    let results = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            ReplicaElectionResult::default()
                .with_topic(TopicName(StrBytes::from_string(topic)))
                .with_partition_result(partitions)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}
