//! Finding the first record at or after a timestamp inside one batch, for ListOffsets. Only
//! the record prefix (length, attributes, timestamp delta, offset delta) is decoded; keys,
//! values and headers are skipped by length. A compressed batch is decompressed for this
//! (bounded, like the compaction path): Kafka answers the record, not the batch, and a lookup
//! by time is rare next to produce and fetch, which never decompress.

use crate::record_batch::decompress::decompress_bounded;
use crate::record_batch::rewrite::DECOMPRESSED_BYTES_MAX;
use crate::record_batch::{BatchInfo, Compression, HEADER_SIZE_BYTES};

/// `(offset, timestamp_ms)` of the first record of `batch` whose timestamp is at least
/// `timestamp_ms`. For LogAppendTime batches (every record has the batch's time) and for
/// batches whose records do not parse or decompress: the batch's base offset and max
/// timestamp.
pub fn first_record_at_or_after(batch: &[u8], info: &BatchInfo, timestamp_ms: i64) -> (i64, i64) {
    first_record_at_or_after_from(batch, info, timestamp_ms, i64::MIN)
}

/// Like [`first_record_at_or_after`], among the records at or after `offset_min` only (the
/// log start offset, which DeleteRecords may move inside a batch).
pub fn first_record_at_or_after_from(
    batch: &[u8],
    info: &BatchInfo,
    timestamp_ms: i64,
    offset_min: i64,
) -> (i64, i64) {
    let approximation = (info.base_offset.max(offset_min), info.max_timestamp);
    if info.log_append_time {
        return approximation;
    }
    let Some(records) = batch.get(HEADER_SIZE_BYTES..info.size_bytes) else { return approximation };
    let found = if info.compression == Compression::None {
        first_in_records(records, info, timestamp_ms, offset_min)
    } else {
        decompress_bounded(info.compression, records, DECOMPRESSED_BYTES_MAX)
            .ok()
            .and_then(|records| first_in_records(&records, info, timestamp_ms, offset_min))
    };
    found.unwrap_or(approximation)
}

/// Walks the (uncompressed) records section; `None` if no record at or after `offset_min`
/// reaches the timestamp or a record does not parse.
fn first_in_records(
    records: &[u8],
    info: &BatchInfo,
    timestamp_ms: i64,
    offset_min: i64,
) -> Option<(i64, i64)> {
    let mut position = 0usize;
    // Bounded by records_count and by the batch length (every record consumes >= 1 byte).
    for _ in 0..info.records_count {
        let record = record_prefix(records, &mut position)?;
        let record_timestamp_ms = info.base_timestamp.saturating_add(record.timestamp_delta);
        let offset = info.base_offset + i64::from(record.offset_delta);
        if record_timestamp_ms >= timestamp_ms && offset >= offset_min {
            return Some((offset, record_timestamp_ms));
        }
    }
    None
}

struct RecordPrefix {
    timestamp_delta: i64,
    offset_delta: i32,
}

/// Decodes the prefix of the record at `*position` and moves `*position` past the record.
fn record_prefix(records: &[u8], position: &mut usize) -> Option<RecordPrefix> {
    let length = usize::try_from(zigzag(unsigned_varint(records, position, 5)?)).ok()?;
    let end = position.checked_add(length).filter(|&end| end <= records.len())?;
    let mut cursor = *position + 1; // attributes
    let record = &records[..end];
    let timestamp_delta = zigzag(unsigned_varint(record, &mut cursor, 10)?);
    let offset_delta = i32::try_from(zigzag(unsigned_varint(record, &mut cursor, 5)?)).ok()?;
    *position = end;
    Some(RecordPrefix { timestamp_delta, offset_delta })
}

fn unsigned_varint(bytes: &[u8], position: &mut usize, max_bytes: usize) -> Option<u64> {
    let mut value: u64 = 0;
    for index in 0..max_bytes {
        let byte = *bytes.get(*position)?;
        *position += 1;
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn zigzag(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch::build::{encode_batch, ProducerStamp, Record};
    use crate::record_batch::{check_framing_and_crc, patch_base_offset};

    #[test]
    fn finds_the_first_record_reaching_the_timestamp() {
        let deltas = [0i64, 5, 3, 20, 7];
        let records: Vec<Record> = deltas
            .iter()
            .map(|&timestamp_delta| Record {
                value: Some(vec![1; 300]),
                timestamp_delta,
                ..Record::default()
            })
            .collect();
        let mut batch = encode_batch(&records, 1_000, ProducerStamp::NONE);
        patch_base_offset(&mut batch, 50, 0);
        let info = check_framing_and_crc(&batch).unwrap();
        assert_eq!(first_record_at_or_after(&batch, &info, 0), (50, 1_000));
        assert_eq!(first_record_at_or_after(&batch, &info, 1_004), (51, 1_005));
        assert_eq!(first_record_at_or_after(&batch, &info, 1_006), (53, 1_020));
        assert_eq!(first_record_at_or_after(&batch, &info, 1_020), (53, 1_020));
        assert_eq!(first_record_at_or_after_from(&batch, &info, 0, 52), (52, 1_003));
    }
}
