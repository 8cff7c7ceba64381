//! Produce: validate batches on the connection's shard, append on the owning shard, answer
//! once the bytes are durable (acks=1/-1) — or not at all (acks=0).
//!
//! Batches are stored as received; only base offset and leader epoch are patched (inside the
//! log). Validation (`record_batch::validate`) is header + CRC32C, plus record framing for
//! uncompressed batches. Topics with a `compression.type` or LogAppendTime are the exception:
//! their batches are converted there, on the connection's shard, before they go to the log.

use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};

use crate::broker::errors::log_error_code;
use crate::broker::partition::{Access, Acks, NotLeader, Partition};
use crate::broker::shard::{LeaderHint, PartitionUnavailable, Shard};
use crate::io;
use crate::log::{AppendInfo, LogError};
use crate::protocol::error_code::ErrorCode;
use crate::record_batch::validate::{validate_produced, ProducePolicy, ProducedError};

use super::{error_message, hinted_brokers, str_bytes};

type PartitionOutcome = Result<Appended, Refused>;

/// A partition's batch, validated (and converted, if its topic asks for it) on the
/// connection's shard, ready for the owning shard's log.
struct Prepared {
    batches: Vec<BytesMut>,
    /// The time a LogAppendTime topic stamped the batch with; -1 for CreateTime topics.
    log_append_time_ms: i64,
}

struct Appended {
    info: AppendInfo,
    log_append_time_ms: i64,
}

/// Why a partition's batch was not appended.
#[derive(Debug)]
struct Refused {
    code: ErrorCode,
    message: Option<String>,
    /// Kafka reports the log start offset with errors its log validation raises (a record
    /// validation error inside the append), -1 with errors found before (measured on 4.4.0).
    from_log_validation: bool,
    log_start_offset: i64,
    /// With NOT_LEADER_OR_FOLLOWER: the leader this broker's replica knows (KIP-951).
    leader_hint: Option<LeaderHint>,
}

impl From<(ErrorCode, Option<String>)> for Refused {
    fn from((code, message): (ErrorCode, Option<String>)) -> Refused {
        let leader_hint = None;
        Refused { code, message, from_log_validation: false, log_start_offset: -1, leader_hint }
    }
}

impl Refused {
    fn unavailable(unavailable: PartitionUnavailable) -> Refused {
        let leader_hint = unavailable.leader_hint();
        Refused { leader_hint, ..Refused::from((produce_error_code(unavailable), None)) }
    }

    fn by_log_validation(code: ErrorCode, message: String) -> Refused {
        let message = Some(message);
        let leader_hint = None;
        Refused { code, message, from_log_validation: true, log_start_offset: -1, leader_hint }
    }
}

pub async fn handle(
    shard: &Rc<Shard>,
    request: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    let started_at = crate::io::now();
    let response = answer(shard, request, version).await;
    let elapsed = crate::io::now().duration_since(started_at);
    shard.produce_latency.borrow_mut().record(elapsed);
    response
}

async fn answer(
    shard: &Rc<Shard>,
    request: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let acks_valid = matches!(acks, -1..=1);
    // Kafka waits this long for the replicas; a negative timeout is no time at all.
    let timeout = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    let replica_acks = if acks == -1 { Acks::All } else { Acks::Leader };
    let mut pending = Vec::new();
    let mut layout = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let name = topic.name.to_string();
        let mut indexes = Vec::with_capacity(topic.partition_data.len());
        for partition in topic.partition_data {
            indexes.push(partition.index);
            let outcome = if acks_valid {
                prepare(shard, &name, partition.index, partition.records.as_deref(), version)
            } else {
                Err(Refused::from((ErrorCode::InvalidRequiredAcks, None)))
            };
            let wait = (replica_acks, timeout);
            pending.push(submit(shard, (name.clone(), partition.index), outcome, wait));
        }
        layout.push((topic.name, indexes));
    }
    // join_all polls every future once, in order, before waiting: appends reach each
    // partition in request order.
    let mut outcomes = futures_util::future::join_all(pending).await.into_iter();
    if acks == 0 {
        return None;
    }
    let responses = layout
        .into_iter()
        .map(|(name, indexes)| {
            // `pending` got one future per pushed index, and join_all yields one outcome each.
            let partitions = indexes
                .into_iter()
                .map(|index| partition_response(index, outcomes.next().expect("one per partition")))
                .collect();
            TopicProduceResponse::default().with_name(name).with_partition_responses(partitions)
        })
        .collect();
    let body = ProduceResponse::default().with_responses(responses);
    let node_endpoints = hinted_endpoints(shard, &body);
    Some(body.with_node_endpoints(node_endpoints))
}

/// KIP-951's CurrentLeader (Produce v10+, a tagged field older versions skip); the default
/// (-1, -1) when there is no hint, which is not encoded.
fn leader_and_epoch(hint: Option<LeaderHint>) -> LeaderIdAndEpoch {
    match hint {
        Some(hint) => LeaderIdAndEpoch::default()
            .with_leader_id(BrokerId(hint.leader_id))
            .with_leader_epoch(hint.leader_epoch),
        None => LeaderIdAndEpoch::default(),
    }
}

/// The endpoints of the leaders the body's hints name (KIP-951's NodeEndpoints, Produce
/// v10+), from the cluster metadata this broker applied.
fn hinted_endpoints(shard: &Shard, body: &ProduceResponse) -> Vec<NodeEndpoint> {
    let partitions = body.responses.iter().flat_map(|topic| topic.partition_responses.iter());
    let leaders = partitions.map(|partition| partition.current_leader.leader_id.0);
    hinted_brokers(shard, leaders)
        .into_iter()
        .map(|broker| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(broker.node_id))
                .with_host(str_bytes(&broker.host))
                .with_port(i32::from(broker.port))
        })
        .collect()
}

/// Validates one partition's records (`record_batch::validate`) and maps a refusal to
/// Kafka's error code.
fn prepare(
    shard: &Shard,
    topic: &str,
    partition: i32,
    records: Option<&[u8]>,
    version: i16,
) -> Result<Prepared, Refused> {
    let snapshot = shard.topics();
    let Some(meta) = snapshot.get(topic).filter(|_| snapshot.has_partition(topic, partition))
    else {
        return Err(Refused::from((ErrorCode::UnknownTopicOrPartition, None)));
    };
    let log_config = meta.log_config(&shard.config.log);
    let conversion = meta.batch_conversion(crate::io::unix_time_ms());
    let policy = ProducePolicy {
        produce_version: version,
        max_message_bytes: log_config.max_message_bytes as usize,
        keys_required: log_config.compaction.enabled,
        conversion,
    };
    match validate_produced(records, &policy) {
        Ok(validated) => {
            let log_append_time_ms = conversion.log_append_time_ms.unwrap_or(-1);
            Ok(Prepared { batches: vec![validated.batch], log_append_time_ms })
        }
        Err(error) => {
            tracing::warn!(topic, partition, %error, "rejected produced batch");
            Err(refused(&error, (topic, partition)))
        }
    }
}

/// Kafka's code for each refusal. Kafka reports a non-zero base offset as its log validation
/// does (with the log start offset), the rest as found before the append.
fn refused(error: &ProducedError, (topic, partition): (&str, i32)) -> Refused {
    let message = Some(error.to_string());
    match error {
        ProducedError::Empty | ProducedError::SeveralBatches { .. } => {
            Refused::from((ErrorCode::InvalidRecord, message))
        }
        ProducedError::ZstdBeforeV7 => {
            Refused::from((ErrorCode::UnsupportedCompressionType, message))
        }
        ProducedError::BaseOffsetNotZero => {
            Refused::by_log_validation(ErrorCode::InvalidRecord, error.to_string())
        }
        ProducedError::TooLarge { .. } => Refused::from((ErrorCode::MessageTooLarge, message)),
        ProducedError::ConvertedTooLarge { size_bytes, max_message_bytes } => {
            let message = format!(
                "Message batch size is {size_bytes} bytes in append to partition \
                 {topic}-{partition} which exceeds the maximum configured size of \
                 {max_message_bytes}."
            );
            Refused::from((ErrorCode::MessageTooLarge, Some(message)))
        }
        ProducedError::KeyMissing => {
            let message = format!(
                "Compacted topic cannot accept message without key in topic partition \
                 {topic}-{partition}."
            );
            Refused::from((ErrorCode::InvalidRecord, Some(message)))
        }
        ProducedError::Batch(batch_error) | ProducedError::Conversion(batch_error) => {
            Refused::from((ErrorCode::from(batch_error), message))
        }
    }
}

/// Appends on the partition's leader and waits for the acknowledgement. A replicated
/// partition's wait is bounded by the request's timeout (REQUEST_TIMED_OUT: the batch may
/// still commit later, as in Kafka); a single node's is its own fdatasync.
async fn submit(
    shard: &Rc<Shard>,
    (topic, partition): (String, i32),
    prepared: Result<Prepared, Refused>,
    (acks, timeout): (Acks, Duration),
) -> PartitionOutcome {
    let Prepared { batches, log_append_time_ms } = match prepared {
        Ok(prepared) => prepared,
        Err(refused) if refused.from_log_validation => {
            return Err(with_log_start(shard, topic, partition, refused).await)
        }
        Err(refused) => return Err(refused),
    };
    let name = topic.clone();
    let outcome = shard
        .on_partition(&name, partition, Access::Write, move |leader| async move {
            let replicated = match &leader {
                Partition::Replicated(replicated) => Some(replicated.clone()),
                Partition::Local(_) => None,
            };
            let appended = match leader.produce(batches, acks) {
                Ok(appended) => appended,
                Err(not_leader) => {
                    return Err(Refused::unavailable(PartitionUnavailable::NotLeader(not_leader)));
                }
            };
            let appended = match &replicated {
                Some(_) => io::timeout(timeout, appended).await,
                None => Ok(appended.await),
            };
            let Ok(appended) = appended else {
                return Err(Refused::from((ErrorCode::RequestTimedOut, None)));
            };
            // Committed, but the in-sync replicas shrank meanwhile: Kafka's answer.
            if appended.is_ok()
                && acks == Acks::All
                && replicated.is_some_and(|replicated| !replicated.has_enough_in_sync())
            {
                return Err(Refused::from((ErrorCode::NotEnoughReplicasAfterAppend, None)));
            }
            appended.map_err(|error| {
                // Leadership moving is routine (the client retries at the new leader); the
                // rest is worth an operator's attention.
                match error {
                    LogError::Truncated | LogError::CommitAbandoned => {
                        tracing::debug!(%topic, partition, %error, "append not committed here")
                    }
                    _ => tracing::warn!(%topic, partition, %error, "append failed"),
                }
                Refused::from((log_error_code(&error), Some(error.to_string())))
            })
        })
        .await;
    let outcome = outcome.unwrap_or_else(|unavailable| Err(Refused::unavailable(unavailable)));
    outcome.map(|info| Appended { info, log_append_time_ms })
}

/// A leader that cannot take writes yet is NOT_LEADER_OR_FOLLOWER to producers (their
/// clients know no OFFSET_NOT_AVAILABLE; they retry after a metadata refresh).
fn produce_error_code(unavailable: PartitionUnavailable) -> ErrorCode {
    match unavailable {
        PartitionUnavailable::NotLeader(NotLeader::NotServing) => ErrorCode::NotLeaderOrFollower,
        other => other.error_code(),
    }
}

/// Fills in the partition's log start offset, as Kafka reports it with validation errors.
async fn with_log_start(
    shard: &Rc<Shard>,
    topic: String,
    partition: i32,
    refused: Refused,
) -> Refused {
    let start = shard
        .on_partition_log(&topic, partition, |log| async move { log.log_start_offset() })
        .await;
    Refused { log_start_offset: start.unwrap_or(-1), ..refused }
}

fn partition_response(index: i32, outcome: PartitionOutcome) -> PartitionProduceResponse {
    let response =
        PartitionProduceResponse::default().with_index(index).with_log_append_time_ms(-1);
    match outcome {
        Ok(Appended { info, log_append_time_ms }) => response
            .with_base_offset(info.base_offset)
            .with_log_start_offset(info.log_start_offset)
            .with_log_append_time_ms(log_append_time_ms),
        Err(refused) => response
            .with_current_leader(leader_and_epoch(refused.leader_hint))
            .with_error_code(refused.code.code())
            .with_base_offset(-1)
            .with_log_start_offset(refused.log_start_offset)
            .with_error_message(refused.message.as_deref().map(error_message)),
    }
}
