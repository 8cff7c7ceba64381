//! OffsetForLeaderEpoch (KIP-320): where a leader epoch ends, so that a consumer that saw an
//! older leader can detect log truncation. A single node has one leader epoch, 0, for every
//! partition since its creation (batches are stamped with it), so the answer for epoch 0 is
//! the log end; later epochs are unknown here and earlier ones do not exist.

use std::rc::Rc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::broker::shard::{PartitionUnavailable, Shard};
use crate::protocol::error_code::ErrorCode;

/// The leader epoch of every partition of a single node.
const LEADER_EPOCH: i32 = 0;
/// "No epoch given": the client skips the fencing check.
const NO_EPOCH: i32 = -1;

pub async fn handle(
    shard: &Rc<Shard>,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.topic.to_string();
        let answers = topic.partitions.iter().map(|partition| {
            let name = name.clone();
            async move {
                let (error, epoch, end_offset) = end_of_epoch(
                    shard,
                    name,
                    partition.partition,
                    partition.current_leader_epoch,
                    partition.leader_epoch,
                )
                .await;
                EpochEndOffset::default()
                    .with_partition(partition.partition)
                    .with_error_code(error.code())
                    .with_leader_epoch(epoch)
                    .with_end_offset(end_offset)
            }
        });
        let partitions = futures_util::future::join_all(answers).await;
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions),
        );
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

/// (error, epoch, end offset) for one partition, answered by the shard that owns it.
async fn end_of_epoch(
    shard: &Rc<Shard>,
    topic: String,
    partition: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> (ErrorCode, i32, i64) {
    if !shard.topics().has_partition(&topic, partition) {
        return (ErrorCode::UnknownTopicOrPartition, NO_EPOCH, -1);
    }
    // The fencing check comes first, as in Kafka's `Partition.lastOffsetForLeaderEpoch`.
    if current_leader_epoch != NO_EPOCH && current_leader_epoch < LEADER_EPOCH {
        return (ErrorCode::FencedLeaderEpoch, NO_EPOCH, -1);
    }
    if current_leader_epoch > LEADER_EPOCH {
        return (ErrorCode::UnknownLeaderEpoch, NO_EPOCH, -1);
    }
    let answer = shard
        .on_partition_log(&topic, partition, move |log| async move {
            if leader_epoch == LEADER_EPOCH {
                (ErrorCode::None, LEADER_EPOCH, log.high_watermark())
            } else {
                (ErrorCode::None, NO_EPOCH, -1)
            }
        })
        .await;
    answer.unwrap_or_else(|unavailable| match unavailable {
        PartitionUnavailable::NoLog => (ErrorCode::UnknownTopicOrPartition, NO_EPOCH, -1),
        PartitionUnavailable::ShardGone => (ErrorCode::NotLeaderOrFollower, NO_EPOCH, -1),
    })
}
