//! OffsetForLeaderEpoch (KIP-320): where a leader epoch ends, so that a consumer that saw an
//! older leader can detect log truncation. The answer comes from the log's leader-epoch
//! cache (`log/leader_epochs.rs`), as Kafka's `LeaderEpochFileCache.endOffsetFor`: the
//! current epoch ends at the high watermark, an older one where the next one starts, an
//! unknown newer one is UNDEFINED (-1, -1). The leader's current epoch (0 on a single node,
//! the Raft term in a cluster) is answered even before it holds a batch, as Kafka does for a
//! fresh leader; a client's `current_leader_epoch` is fenced first (KIP-320).

use std::rc::Rc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::broker::partition::Access;
use crate::broker::shard::Shard;
use crate::protocol::error_code::ErrorCode;

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
    let answer = shard
        .on_partition(&topic, partition, Access::Read, move |leader| async move {
            // The fencing check comes first, as in Kafka's `Partition.lastOffsetForLeaderEpoch`.
            if let Err(fenced) = leader.check_epoch(current_leader_epoch) {
                return (fenced, NO_EPOCH, -1);
            }
            let log = leader.log();
            // The leader's own epoch ends where its consumers may read: the high watermark.
            if leader_epoch == leader.leader_epoch() {
                return (ErrorCode::None, leader_epoch, log.high_watermark());
            }
            match log.end_offset_for_epoch(leader_epoch) {
                Some((epoch, end_offset)) => (ErrorCode::None, epoch, end_offset),
                None => (ErrorCode::None, NO_EPOCH, -1),
            }
        })
        .await;
    answer.unwrap_or_else(|unavailable| (unavailable.error_code(), NO_EPOCH, -1))
}
