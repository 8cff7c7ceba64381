//! ListOffsets: earliest (-2), latest (-1), max-timestamp (-3, KIP-734), or the first offset
//! whose timestamp is at least the one asked for.

use std::rc::Rc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::broker::errors::log_error_code;
use crate::broker::partition::Access;
use crate::broker::shard::Shard;
use crate::log::Log;
use crate::protocol::error_code::ErrorCode;

pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
/// KIP-405: the earliest offset still in local storage (without tiered storage: the log start).
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
/// KIP-1005: the latest offset in tiered storage.
pub const LATEST_TIERED_TIMESTAMP: i64 = -5;

/// Whether `version` may ask for `timestamp`: a special (negative) timestamp needs the version
/// that introduced it, and one this broker does not know is refused alike. Kafka checks this
/// before it looks the partition up, answering UNSUPPORTED_VERSION for the partition
/// (measured on 4.4.0: -3 at v1, -4 at v1, -7 at v7 → 35, whether the partition exists or not).
fn version_allows(timestamp: i64, version: i16) -> bool {
    match timestamp {
        LATEST_TIMESTAMP | EARLIEST_TIMESTAMP => true,
        MAX_TIMESTAMP => version >= 7,
        EARLIEST_LOCAL_TIMESTAMP => version >= 8,
        LATEST_TIERED_TIMESTAMP => version >= 9,
        timestamp => timestamp >= 0,
    }
}

/// (error, timestamp, offset) for one partition.
type Lookup = (ErrorCode, i64, i64);

pub async fn handle(
    shard: &Rc<Shard>,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let topic_name = topic.name.to_string();
        let lookups = topic.partitions.iter().map(|partition| {
            let topic_name = topic_name.clone();
            async move {
                if !version_allows(partition.timestamp, version) {
                    return (ErrorCode::UnsupportedVersion, -1, -1, -1);
                }
                let index = partition.partition_index;
                let fencing = partition.current_leader_epoch;
                lookup(shard, topic_name, index, partition.timestamp, fencing).await
            }
        });
        let answers = futures_util::future::join_all(lookups).await;
        let partitions = topic
            .partitions
            .iter()
            .zip(answers)
            .map(|(partition, (error, timestamp, offset, epoch))| {
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(partition.partition_index)
                    .with_error_code(error.code())
                    .with_timestamp(timestamp)
                    .with_offset(offset)
                    .with_leader_epoch(if error == ErrorCode::None && offset >= 0 {
                        epoch
                    } else {
                        -1
                    })
            })
            .collect();
        topics.push(
            ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// (error, timestamp, offset, leader epoch of the offset) for one partition.
async fn lookup(
    shard: &Rc<Shard>,
    topic: String,
    partition: i32,
    timestamp: i64,
    current_leader_epoch: i32,
) -> (ErrorCode, i64, i64, i32) {
    if !shard.topics().has_partition(&topic, partition) {
        return (ErrorCode::UnknownTopicOrPartition, -1, -1, -1);
    }
    let answer = shard
        .on_partition(&topic, partition, Access::Read, move |leader| async move {
            if let Err(fenced) = leader.check_epoch(current_leader_epoch) {
                return (fenced, -1, -1, -1);
            }
            let log = leader.log().clone();
            let (error, found_timestamp, offset) = lookup_in(&log, timestamp).await;
            let epoch = epoch_of(&log, timestamp, offset, leader.leader_epoch());
            (error, found_timestamp, offset, epoch)
        })
        .await;
    answer.unwrap_or_else(|unavailable| (unavailable.error_code(), -1, -1, -1))
}

/// The epoch Kafka gives with an offset: the leader's epoch for "latest" (Kafka's leader
/// assigns its epoch at the log end when elected), else the epoch of the batch holding the
/// offset in the log's epoch cache (the leader's, for an offset no batch holds yet).
fn epoch_of(log: &Log, timestamp: i64, offset: i64, leader_epoch: i32) -> i32 {
    match timestamp {
        LATEST_TIMESTAMP => leader_epoch,
        _ => log.leader_epochs().epoch_at(offset).unwrap_or(leader_epoch),
    }
}

async fn lookup_in(log: &Log, timestamp: i64) -> Lookup {
    {
        {
            match timestamp {
                LATEST_TIMESTAMP => (ErrorCode::None, -1, log.high_watermark()),
                // Without tiered storage the whole log is local.
                EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => {
                    (ErrorCode::None, -1, log.log_start_offset())
                }
                MAX_TIMESTAMP => max_timestamp_lookup(log).await,
                // Nothing is tiered: no offset, no error (as Kafka without remote storage).
                LATEST_TIERED_TIMESTAMP => (ErrorCode::None, -1, -1),
                timestamp if timestamp < 0 => (ErrorCode::UnsupportedVersion, -1, -1),
                timestamp => match log.offset_for_timestamp(timestamp).await {
                    Ok(Some((offset, found))) => (ErrorCode::None, found, offset),
                    Ok(None) => (ErrorCode::None, -1, -1),
                    Err(error) => (log_error_code(&error), -1, -1),
                },
            }
        }
    }
}

/// KIP-734's max timestamp: the first record that carries the log's largest timestamp, as
/// Kafka answers (`RecordBatch.offsetOfMaxTimestamp`). Every record of a LogAppendTime batch
/// carries the batch's time: the answer is then the batch's first offset.
async fn max_timestamp_lookup(log: &Log) -> Lookup {
    let Some((_, max_timestamp)) = log.max_timestamp() else {
        return (ErrorCode::None, -1, -1);
    };
    match log.offset_for_timestamp(max_timestamp).await {
        Ok(Some((offset, found))) => (ErrorCode::None, found, offset),
        // Removed since (retention, DeleteRecords): as Kafka, no offset.
        Ok(None) => (ErrorCode::None, -1, -1),
        Err(error) => (log_error_code(&error), -1, -1),
    }
}
