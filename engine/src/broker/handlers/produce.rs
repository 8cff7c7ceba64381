//! Produce: validate batches on the connection's shard, append on the owning shard, answer
//! once the bytes are durable (acks=1/-1) — or not at all (acks=0).
//!
//! Batches are stored as received; only base offset and leader epoch are patched (inside the
//! log). Validation is header + CRC32C, plus record framing for uncompressed batches. Topics
//! with a `compression.type` or LogAppendTime are the exception: their batches are converted
//! here, on the connection's shard, before they go to the log (`record_batch::convert`).

use std::rc::Rc;

use bytes::BytesMut;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use crate::broker::errors::log_error_code;
use crate::broker::shard::Shard;
use crate::log::AppendInfo;
use crate::protocol::error_code::ErrorCode;
use crate::record_batch;
use crate::record_batch::convert::Conversion;

use super::error_message;

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
}

impl From<(ErrorCode, Option<String>)> for Refused {
    fn from((code, message): (ErrorCode, Option<String>)) -> Refused {
        Refused { code, message, from_log_validation: false, log_start_offset: -1 }
    }
}

impl Refused {
    fn by_log_validation(code: ErrorCode, message: String) -> Refused {
        Refused { code, message: Some(message), from_log_validation: true, log_start_offset: -1 }
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
            pending.push(submit(shard, name.clone(), partition.index, outcome));
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
    Some(ProduceResponse::default().with_responses(responses))
}

/// First produce version that may carry zstd batches (KIP-110).
const FIRST_ZSTD_VERSION: i16 = 7;
/// Byte offsets inside a v2 batch header.
const MAGIC_POSITION: usize = 16;
const ATTRIBUTES_POSITION: usize = 21;
const CODEC_MASK: u8 = 0x07;
const CODEC_ZSTD: u8 = 4;

/// Kafka's `ProduceRequest.validateRecords`: a zstd batch in a Produce older than v7 is
/// UNSUPPORTED_COMPRESSION_TYPE, checked before the batch's size and CRC (measured on 4.4.0).
fn refuse_zstd_below_v7(version: i16, records: &[u8]) -> Result<(), (ErrorCode, Option<String>)> {
    if version >= FIRST_ZSTD_VERSION {
        return Ok(());
    }
    let magic = records.get(MAGIC_POSITION).copied();
    let codec = records.get(ATTRIBUTES_POSITION + 1).map(|low_byte| low_byte & CODEC_MASK);
    if magic == Some(2) && codec == Some(CODEC_ZSTD) {
        let message = format!("zstd batches need Produce v{FIRST_ZSTD_VERSION} or newer");
        return Err((ErrorCode::UnsupportedCompressionType, Some(message)));
    }
    Ok(())
}

/// Validates one partition's records and copies each batch into its own buffer for the log.
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
    // Kafka's `ProduceRequest.validateRecords`: exactly one batch per partition (v3+).
    let Some(records) = records.filter(|records| !records.is_empty()) else {
        let message = "produce request carries no records".to_string();
        return Err(Refused::from((ErrorCode::InvalidRecord, Some(message))));
    };
    refuse_zstd_below_v7(version, records).map_err(Refused::from)?;
    // Kafka's `analyzeAndValidateRecords` checks, in this order, a client batch's base offset
    // (always 0: the broker assigns offsets), its size, then its CRC (measured on 4.4.0).
    if records.get(..8).is_some_and(|base_offset| base_offset != [0; 8]) {
        let message = "the base offset of a produced batch must be 0".to_string();
        return Err(Refused::by_log_validation(ErrorCode::InvalidRecord, message));
    }
    let log_config = meta.log_config(&shard.config.log);
    let max_message_bytes = log_config.max_message_bytes as usize;
    if let Some(declared_bytes) = declared_first_batch_bytes(records) {
        if declared_bytes <= records.len() && declared_bytes > max_message_bytes {
            let message = format!(
                "batch of {declared_bytes} bytes exceeds max.message.bytes {max_message_bytes}"
            );
            return Err(Refused::from((ErrorCode::MessageTooLarge, Some(message))));
        }
    }
    let batches = record_batch::split_produced_batches(records).map_err(|error| {
        tracing::warn!(topic, partition, %error, "rejected produced batch");
        Refused::from((ErrorCode::from(&error), Some(error.to_string())))
    })?;
    if batches.len() > 1 {
        let message =
            format!("{} record batches for one partition: Kafka allows one", batches.len());
        return Err(Refused::from((ErrorCode::InvalidRecord, Some(message))));
    }
    let conversion = meta.batch_conversion(crate::io::unix_time_ms());
    let mut owned = Vec::with_capacity(batches.len());
    for (range, info) in batches {
        if info.size_bytes > max_message_bytes {
            let message = format!(
                "batch of {} bytes exceeds max.message.bytes {max_message_bytes}",
                info.size_bytes
            );
            return Err(Refused::from((ErrorCode::MessageTooLarge, Some(message))));
        }
        if log_config.compaction.enabled {
            refuse_keyless(&records[range.clone()], topic, partition).map_err(Refused::from)?;
        }
        let mut batch = BytesMut::from(&records[range]);
        if conversion.changes(&info) {
            convert(&mut batch, conversion, max_message_bytes, (topic, partition))?;
        }
        owned.push(batch);
    }
    let log_append_time_ms = conversion.log_append_time_ms.unwrap_or(-1);
    Ok(Prepared { batches: owned, log_append_time_ms })
}

/// Kafka's `LogValidator` for topics with a `compression.type` or LogAppendTime: recompress
/// and/or stamp the batch; a recompressed batch must still fit `max.message.bytes`.
fn convert(
    batch: &mut BytesMut,
    conversion: Conversion,
    max_message_bytes: usize,
    (topic, partition): (&str, i32),
) -> Result<(), Refused> {
    record_batch::convert::convert(batch, conversion).map_err(|error| {
        tracing::warn!(topic, partition, %error, "produced batch cannot be converted");
        Refused::from((ErrorCode::from(&error), Some(error.to_string())))
    })?;
    if batch.len() > max_message_bytes {
        let message = format!(
            "Message batch size is {} bytes in append to partition {topic}-{partition} which \
             exceeds the maximum configured size of {max_message_bytes}.",
            batch.len()
        );
        return Err(Refused::from((ErrorCode::MessageTooLarge, Some(message))));
    }
    Ok(())
}

/// The size the first batch's header declares (base offset and length fields included).
fn declared_first_batch_bytes(records: &[u8]) -> Option<usize> {
    let length = i32::from_be_bytes(records.get(8..12)?.try_into().ok()?);
    usize::try_from(length).ok()?.checked_add(12)
}

/// Kafka's `LogValidator.validateKey`: a compacted topic refuses records without a key
/// (INVALID_RECORD). Compressed batches are decompressed for this check only.
fn refuse_keyless(
    batch: &[u8],
    topic: &str,
    partition: i32,
) -> Result<(), (ErrorCode, Option<String>)> {
    match record_batch::rewrite::first_keyless_record(batch) {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err((
            ErrorCode::InvalidRecord,
            Some(format!(
                "Compacted topic cannot accept message without key in topic partition \
                 {topic}-{partition}."
            )),
        )),
        Err(error) => Err((ErrorCode::from(&error), Some(error.to_string()))),
    }
}

async fn submit(
    shard: &Rc<Shard>,
    topic: String,
    partition: i32,
    prepared: Result<Prepared, Refused>,
) -> PartitionOutcome {
    let Prepared { batches, log_append_time_ms } = match prepared {
        Ok(prepared) => prepared,
        Err(refused) if refused.from_log_validation => {
            return Err(with_log_start(shard, topic, partition, refused).await)
        }
        Err(refused) => return Err(refused),
    };
    let owner = shard.owner_of(&topic, partition);
    let outcome = shard
        .call_on(owner, move |target| async move {
            let Some(log) = target.local_log(&topic, partition) else {
                return Err(Refused::from((ErrorCode::UnknownTopicOrPartition, None)));
            };
            log.append(batches, 0).await.map_err(|error| {
                tracing::warn!(%topic, partition, %error, "append failed");
                Refused::from((log_error_code(&error), Some(error.to_string())))
            })
        })
        .await;
    let outcome = outcome.unwrap_or(Err(Refused::from((ErrorCode::NotLeaderOrFollower, None))));
    outcome.map(|info| Appended { info, log_append_time_ms })
}

/// Fills in the partition's log start offset, as Kafka reports it with validation errors.
async fn with_log_start(
    shard: &Rc<Shard>,
    topic: String,
    partition: i32,
    refused: Refused,
) -> Refused {
    let owner = shard.owner_of(&topic, partition);
    let start = shard
        .call_on(owner, move |target| async move {
            target.local_log(&topic, partition).map(|log| log.log_start_offset())
        })
        .await;
    Refused { log_start_offset: start.flatten().unwrap_or(-1), ..refused }
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
            .with_error_code(refused.code.code())
            .with_base_offset(-1)
            .with_log_start_offset(refused.log_start_offset)
            .with_error_message(refused.message.as_deref().map(error_message)),
    }
}
