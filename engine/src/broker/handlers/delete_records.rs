//! DeleteRecords: moves partitions' log start offsets forward (Kafka's
//! `ReplicaManager.deleteRecords` and `UnifiedLog.deleteRecordsOnLeader`).
//!
//! Each partition's work runs on the shard that owns it, like Produce; all of a request's
//! partitions proceed at once. An offset of -1 means the high watermark; any other negative
//! offset, or one above the high watermark, is OFFSET_OUT_OF_RANGE; one at or below the
//! current start changes nothing and answers the current start (the low watermark). The new
//! start is durable before the answer (see `log/start_offset.rs`), whole segments below it are
//! deleted, and Fetch and ListOffsets see it at once. The internal `__consumer_offsets` is
//! refused (INVALID_TOPIC_EXCEPTION), as Kafka refuses deleting records of internal topics: the
//! groups' state is rebuilt from it. A cluster's replicated partitions refuse it too
//! (POLICY_VIOLATION, Kafka's answer when a topic's policy forbids deletion): a log start
//! moved on one replica alone would leave a log the replica cannot re-open (no snapshot
//! transfer yet brings a follower past a leader's log start).

use std::rc::Rc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::broker::errors::log_error_code;
use crate::broker::groups::OFFSETS_TOPIC;
use crate::broker::partition::{Access, Partition};
use crate::broker::shard::Shard;
use crate::protocol::error_code::ErrorCode;

/// DeleteRecords' "up to the high watermark".
pub const HIGH_WATERMARK_OFFSET: i64 = -1;

pub async fn handle(shard: &Rc<Shard>, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut pending = Vec::new();
    for topic in &request.topics {
        for partition in &topic.partitions {
            let name = topic.name.to_string();
            pending.push(delete_below(shard, name, partition.partition_index, partition.offset));
        }
    }
    let mut outcomes = futures_util::future::join_all(pending).await.into_iter();
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let outcome = outcomes.next().unwrap_or(Err(ErrorCode::KafkaStorageError));
                    let (code, low_watermark) = match outcome {
                        Ok(low_watermark) => (ErrorCode::None, low_watermark),
                        Err(code) => (code, -1),
                    };
                    DeleteRecordsPartitionResult::default()
                        .with_partition_index(partition.partition_index)
                        .with_low_watermark(low_watermark)
                        .with_error_code(code.code())
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

/// The partition's low watermark (log start offset) after the deletion, or why none.
async fn delete_below(
    shard: &Rc<Shard>,
    topic: String,
    partition: i32,
    offset: i64,
) -> Result<i64, ErrorCode> {
    if !shard.topics().has_partition(&topic, partition) {
        return Err(ErrorCode::UnknownTopicOrPartition);
    }
    if topic == OFFSETS_TOPIC {
        return Err(ErrorCode::InvalidTopicException);
    }
    let name = topic.clone();
    let outcome = shard
        .on_partition(&name, partition, Access::Write, move |leader| async move {
            let Partition::Local(log) = leader else {
                return Err(ErrorCode::PolicyViolation);
            };
            let target =
                if offset == HIGH_WATERMARK_OFFSET { log.high_watermark() } else { offset };
            log.delete_records_before(target).await.map_err(|error| {
                if !matches!(error, crate::log::LogError::OffsetOutOfRange { .. }) {
                    tracing::warn!(%topic, partition, %error, "DeleteRecords failed");
                }
                log_error_code(&error)
            })
        })
        .await;
    outcome.unwrap_or_else(|unavailable| Err(unavailable.error_code()))
}
