//! Fetch: whole batches straight from the owning shards' logs, no record decoding.
//!
//! Limits follow KIP-74: `partition_max_bytes` per partition and `max_bytes` for the response,
//! both in whole batches, except that the first non-empty partition always gets at least one
//! batch so a consumer can never be stuck behind a batch larger than its limits. Long-poll:
//! while fewer than `min_bytes` are available and `max_wait_ms` has not passed, the request
//! waits for any of its partitions' high watermarks to move.
//!
//! Incremental fetch sessions (KIP-227) are declined: the response's session id is 0, which
//! tells clients to keep sending full fetch requests.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};

use crate::broker::errors::log_error_code;
use crate::broker::shard::Shard;
use crate::io;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::record_batch;

use super::str_bytes;

/// First fetch version that names topics by id instead of by name.
const TOPIC_ID_VERSION: i16 = 13;
/// Bound on a long-poll, whatever the client asks: a request never parks for longer.
const MAX_WAIT_MS_LIMIT: i32 = 5 * 60 * 1000;

/// One partition of the request, resolved against the topic registry.
struct Target {
    topic_index: usize,
    name: Option<String>,
    partition: i32,
    fetch_offset: i64,
    partition_max_bytes: usize,
}

/// What one partition's owner answered.
#[derive(Clone)]
struct PartitionRead {
    error: ErrorCode,
    high_watermark: i64,
    log_start_offset: i64,
    records: Bytes,
}

pub async fn handle(shard: &Rc<Shard>, request: FetchRequest, version: i16) -> FetchResponse {
    if request.session_id != 0 {
        return FetchResponse::default().with_error_code(ErrorCode::FetchSessionIdNotFound.code());
    }
    let max_wait = Duration::from_millis(request.max_wait_ms.clamp(0, MAX_WAIT_MS_LIMIT) as u64);
    let deadline = io::now() + max_wait;
    let targets = resolve_targets(shard, &request, version);
    let min_bytes = request.min_bytes.max(0) as usize;
    let max_bytes = if request.max_bytes <= 0 { usize::MAX } else { request.max_bytes as usize };
    // Bounded: each turn waits for progress or for the deadline.
    loop {
        let reads = read_all(shard, &targets).await;
        let reads = trim_to_response_limit(reads, max_bytes);
        let available: usize = reads.iter().map(|read| read.records.len()).sum();
        let has_error = reads.iter().any(|read| read.error != ErrorCode::None);
        let remaining = deadline.duration_since(io::now());
        if available >= min_bytes || has_error || remaining.is_zero() || shard.is_shutting_down() {
            return build_response(&request, version, &targets, reads);
        }
        wait_for_progress(shard, &targets, &reads, remaining).await;
    }
}

fn resolve_targets(shard: &Shard, request: &FetchRequest, version: i16) -> Vec<Target> {
    let snapshot = shard.topics();
    let mut targets = Vec::new();
    for (topic_index, topic) in request.topics.iter().enumerate() {
        let name = if version >= TOPIC_ID_VERSION {
            snapshot.get_by_id(&topic.topic_id).map(|meta| meta.name.clone())
        } else {
            Some(topic.topic.to_string())
        };
        for partition in &topic.partitions {
            targets.push(Target {
                topic_index,
                name: name.clone(),
                partition: partition.partition,
                fetch_offset: partition.fetch_offset,
                partition_max_bytes: partition.partition_max_bytes.max(0) as usize,
            });
        }
    }
    targets
}

async fn read_all(shard: &Rc<Shard>, targets: &[Target]) -> Vec<PartitionRead> {
    let reads = targets.iter().map(|target| read_partition(shard, target));
    futures_util::future::join_all(reads).await
}

async fn read_partition(shard: &Rc<Shard>, target: &Target) -> PartitionRead {
    let unknown = PartitionRead {
        error: ErrorCode::UnknownTopicOrPartition,
        high_watermark: -1,
        log_start_offset: -1,
        records: Bytes::new(),
    };
    let Some(name) = target.name.clone() else {
        return PartitionRead { error: ErrorCode::UnknownTopicId, ..unknown };
    };
    if !shard.topics().has_partition(&name, target.partition) {
        return unknown;
    }
    let (partition, offset, max_bytes) =
        (target.partition, target.fetch_offset, target.partition_max_bytes);
    let owner = shard.owner_of(&name, partition);
    let answer = shard
        .call_on(owner, move |owner| async move {
            let Some(log) = owner.local_log(&name, partition) else {
                return unknown;
            };
            match log.read(offset, max_bytes, true).await {
                Ok(read) => PartitionRead {
                    error: ErrorCode::None,
                    high_watermark: read.high_watermark,
                    log_start_offset: read.log_start_offset,
                    records: read.bytes,
                },
                Err(error) => PartitionRead {
                    error: log_error_code(&error),
                    high_watermark: log.high_watermark(),
                    log_start_offset: log.log_start_offset(),
                    records: Bytes::new(),
                },
            }
        })
        .await;
    answer.unwrap_or(PartitionRead {
        error: ErrorCode::NotLeaderOrFollower,
        high_watermark: -1,
        log_start_offset: -1,
        records: Bytes::new(),
    })
}

/// Cuts each partition's bytes to whole batches within what is left of `max_bytes`; the first
/// non-empty partition keeps at least one batch (KIP-74).
fn trim_to_response_limit(mut reads: Vec<PartitionRead>, max_bytes: usize) -> Vec<PartitionRead> {
    let mut budget = max_bytes;
    let mut any_taken = false;
    for read in &mut reads {
        if read.records.is_empty() {
            continue;
        }
        let kept = whole_batches_within(&read.records, budget, !any_taken);
        read.records = read.records.slice(..kept);
        budget = budget.saturating_sub(kept);
        any_taken |= kept > 0;
    }
    reads
}

/// Length of the longest prefix of whole batches that fits `limit`; with `at_least_one`, the
/// first batch even when it alone exceeds the limit.
pub(crate) fn whole_batches_within(records: &[u8], limit: usize, at_least_one: bool) -> usize {
    let mut end = 0usize;
    while end < records.len() {
        let Ok(size) = record_batch::batch_size_from_prefix(&records[end..]) else { break };
        let next = end.saturating_add(size);
        if next > records.len() || (next > limit && !(at_least_one && end == 0)) {
            break;
        }
        end = next;
    }
    end
}

/// Waits until any partition's high watermark passes what this request has seen, or until
/// `remaining` has passed.
async fn wait_for_progress(
    shard: &Rc<Shard>,
    targets: &[Target],
    reads: &[PartitionRead],
    remaining: Duration,
) {
    let mut waits = Vec::new();
    for (target, read) in targets.iter().zip(reads) {
        let Some(name) = target.name.clone() else { continue };
        let (partition, seen) = (target.partition, read.high_watermark);
        let owner = shard.owner_of(&name, partition);
        let wait = shard.call_on(owner, move |owner| async move {
            if let Some(log) = owner.local_log(&name, partition) {
                let _ = io::timeout(remaining, log.wait_for_high_watermark_above(seen)).await;
            }
        });
        waits.push(wait.boxed_local());
    }
    if waits.is_empty() {
        io::sleep(remaining).await;
        return;
    }
    let _ = io::timeout(remaining, futures_util::future::select_all(waits)).await;
}

fn build_response(
    request: &FetchRequest,
    version: i16,
    targets: &[Target],
    reads: Vec<PartitionRead>,
) -> FetchResponse {
    let mut topics: Vec<FetchableTopicResponse> = request
        .topics
        .iter()
        .map(|topic| {
            let response = FetchableTopicResponse::default();
            if version >= TOPIC_ID_VERSION {
                response.with_topic_id(topic.topic_id)
            } else {
                response.with_topic(TopicName(str_bytes(topic.topic.as_str())))
            }
        })
        .collect();
    // Aborted transactions, as Kafka 4.4 (measured): a list (empty here) for a successful
    // read_committed read, null for a read_uncommitted one and for an error the read itself
    // met (offset out of range, storage); an empty list for a partition refused before any
    // read (unknown topic or partition: `FetchResponse.partitionResponse`).
    let read_committed = request.isolation_level != 0;
    for (target, read) in targets.iter().zip(reads) {
        let refused_before_reading =
            matches!(read.error, ErrorCode::UnknownTopicOrPartition | ErrorCode::UnknownTopicId);
        let listed = refused_before_reading || (read_committed && read.error == ErrorCode::None);
        let aborted = listed.then(Vec::new);
        let mut partition = PartitionData::default()
            .with_partition_index(target.partition)
            .with_error_code(read.error.code())
            .with_aborted_transactions(aborted);
        partition = if read.error == ErrorCode::None {
            partition
                .with_high_watermark(read.high_watermark)
                .with_last_stable_offset(read.high_watermark)
                .with_log_start_offset(read.log_start_offset)
                .with_records(Some(read.records))
        } else {
            // As Kafka's `FetchResponse.partitionResponse(error)`: no watermarks with an error.
            partition
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_records(Some(Bytes::new()))
        };
        topics[target.topic_index].partitions.push(partition);
    }
    FetchResponse::default().with_session_id(0).with_responses(topics)
}

#[cfg(test)]
mod tests {
    use super::whole_batches_within;
    use crate::protocol::record_batch::build::{encode_batch, ProducerStamp, Record};

    fn batches(sizes: &[usize]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for size in sizes {
            let record = Record { value: Some(vec![1; *size]), ..Record::default() };
            bytes.extend(encode_batch(&[record], 0, ProducerStamp::NONE));
            ends.push(bytes.len());
        }
        (bytes, ends)
    }

    #[test]
    fn limits_cut_at_whole_batches() {
        let (bytes, ends) = batches(&[100, 100, 100]);
        assert_eq!(whole_batches_within(&bytes, usize::MAX, false), bytes.len());
        assert_eq!(whole_batches_within(&bytes, ends[1], false), ends[1]);
        assert_eq!(whole_batches_within(&bytes, ends[1] + 5, false), ends[1]);
        assert_eq!(whole_batches_within(&bytes, 10, false), 0);
    }

    #[test]
    fn first_batch_is_served_even_when_larger_than_the_limit() {
        let (bytes, ends) = batches(&[5000, 10]);
        assert_eq!(whole_batches_within(&bytes, 100, true), ends[0]);
        assert_eq!(whole_batches_within(&bytes, 100, false), 0);
    }
}
