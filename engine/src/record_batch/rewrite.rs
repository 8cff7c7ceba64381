//! Decoding a stored batch's records (decompressing them when needed) and re-encoding the batch
//! with some records left out: what log compaction and the compacted-topic key check need.
//! The fetch path never comes here; the produce path only for topics that ask for a
//! conversion (`convert.rs`) or refuse keyless records (compacted topics).
//!
//! A rewritten batch keeps everything Kafka's cleaner keeps: base offset, `lastOffsetDelta`
//! (so the batch still spans the same offsets), partitionLeaderEpoch, attributes (codec,
//! timestamp type), base and max timestamp, producer id, epoch and base sequence. Records keep
//! their offset and timestamp deltas byte for byte; only `batchLength`, `recordsCount` and the
//! CRC32C change.

use bytes::{BufMut, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

use super::ATTRIBUTE_COMPRESSION_MASK;
use super::{check_framing_and_crc, BatchError, BatchInfo, Compression, Cursor};
use super::{CRC_START, HEADER_SIZE_BYTES, LOG_OVERHEAD_BYTES, MAGIC_V2};

/// Most bytes one batch's records may decompress to. A batch is at most `max.message.bytes`
/// compressed; a higher ratio than this is refused rather than allocated.
pub const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

/// Where one record sits in the (uncompressed) records section, and what compaction asks of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView {
    /// The whole record, length prefix included.
    pub range: std::ops::Range<usize>,
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<std::ops::Range<usize>>,
    pub value: Option<std::ops::Range<usize>>,
}

impl RecordView {
    /// A tombstone: compaction removes it once older than `delete.retention.ms`.
    pub fn value_is_null(&self) -> bool {
        self.value.is_none()
    }
}

/// A CRC-valid batch with its records section uncompressed and its records located.
pub struct DecodedBatch {
    pub info: BatchInfo,
    pub records_bytes: Vec<u8>,
    pub records: Vec<RecordView>,
}

impl DecodedBatch {
    pub fn key(&self, record: &RecordView) -> Option<&[u8]> {
        record.key.as_ref().map(|range| &self.records_bytes[range.clone()])
    }

    pub fn value(&self, record: &RecordView) -> Option<&[u8]> {
        record.value.as_ref().map(|range| &self.records_bytes[range.clone()])
    }

    /// Offset of `record`.
    pub fn offset(&self, record: &RecordView) -> i64 {
        self.info.base_offset + i64::from(record.offset_delta)
    }

    /// Timestamp of `record` (LogAppendTime batches stamp every record with the max timestamp).
    pub fn timestamp_ms(&self, record: &RecordView) -> i64 {
        if self.info.log_append_time {
            return self.info.max_timestamp;
        }
        self.info.base_timestamp.saturating_add(record.timestamp_delta)
    }
}

fn bad(index: i32, reason: &'static str) -> BatchError {
    BatchError::BadRecord { index, reason }
}

/// Checks the CRC, decompresses and locates every record of the batch at the start of `batch`.
pub fn decode(batch: &[u8]) -> Result<DecodedBatch, BatchError> {
    let info = check_framing_and_crc(batch)?;
    let compressed = &batch[HEADER_SIZE_BYTES..info.size_bytes];
    let records_bytes = decompress(info.compression, compressed)?;
    let records = locate_records(&records_bytes, info.records_count)?;
    Ok(DecodedBatch { info, records_bytes, records })
}

/// The index of the first record without a key, if any (Kafka refuses those on compacted
/// topics with INVALID_RECORD). Control batches carry keys of their own and are skipped.
pub fn first_keyless_record(batch: &[u8]) -> Result<Option<i32>, BatchError> {
    let decoded = decode(batch)?;
    if decoded.info.is_control {
        return Ok(None);
    }
    Ok(decoded.records.iter().position(|record| record.key.is_none()).map(|index| index as i32))
}

fn locate_records(bytes: &[u8], records_count: i32) -> Result<Vec<RecordView>, BatchError> {
    if records_count < 0 {
        return Err(BatchError::BadRecordCount { records_count });
    }
    let mut cursor = Cursor { bytes, position: 0 };
    // Every record takes at least one byte: bounded by the records section's length.
    // A negative count from the wire becomes huge as usize; `min` bounds it by the bytes.
    let mut records = Vec::with_capacity((records_count as usize).min(bytes.len()));
    for index in 0..records_count {
        let start = cursor.position;
        let length = cursor.varint().ok_or(bad(index, "length varint"))?;
        if length < 0 || length as usize > cursor.remaining() {
            return Err(bad(index, "length exceeds the batch"));
        }
        let end = cursor.position + length as usize;
        let mut record = Cursor { bytes: &bytes[..end], position: cursor.position };
        record.take(1).ok_or(bad(index, "attributes"))?;
        let timestamp_delta = record.varlong().ok_or(bad(index, "timestamp delta"))?;
        let offset_delta = record.varint().ok_or(bad(index, "offset delta"))?;
        let key = record.nullable_bytes().ok_or(bad(index, "key"))?;
        let key = key.map(|key| record.position - key.len()..record.position);
        let value = record.nullable_bytes().ok_or(bad(index, "value"))?;
        let value = value.map(|value| record.position - value.len()..record.position);
        records.push(RecordView { range: start..end, offset_delta, timestamp_delta, key, value });
        cursor.position = end;
    }
    if cursor.position != bytes.len() {
        return Err(bad(records_count, "bytes after the last record"));
    }
    Ok(records)
}

fn decompress(compression: Compression, compressed: &[u8]) -> Result<Vec<u8>, BatchError> {
    super::decompress::decompress_bounded(compression, compressed, DECOMPRESSED_BYTES_MAX)
        .map_err(|reason| bad(-1, reason))
}

pub(super) fn compress(compression: Compression, records: &[u8]) -> Result<Vec<u8>, BatchError> {
    let mut output: Vec<u8> = Vec::with_capacity(records.len() / 2 + 64);
    macro_rules! with {
        ($codec:ty) => {
            <$codec>::compress(&mut output, |buffer: &mut BytesMut| {
                buffer.put_slice(records);
                Ok(())
            })
        };
    }
    let result = match compression {
        Compression::None => return Ok(records.to_vec()),
        Compression::Gzip => with!(Gzip),
        Compression::Snappy => with!(Snappy),
        Compression::Lz4 => with!(Lz4),
        Compression::Zstd => with!(Zstd),
    };
    result.map_err(|_| bad(-1, "records do not compress"))?;
    Ok(output)
}

/// The batch `original` (decoded as `decoded`) with only the records at `keep` (indexes into
/// `decoded.records`, increasing, not empty), recompressed with the batch's own codec.
pub fn encode_subset(
    original: &[u8],
    decoded: &DecodedBatch,
    keep: &[usize],
) -> Result<Vec<u8>, BatchError> {
    assert!(!keep.is_empty(), "an empty batch is written as a filler");
    assert!(keep.windows(2).all(|pair| pair[0] < pair[1]));
    let mut records = Vec::with_capacity(decoded.records_bytes.len());
    for &index in keep {
        records.extend_from_slice(&decoded.records_bytes[decoded.records[index].range.clone()]);
    }
    let body = compress(decoded.info.compression, &records)?;
    let mut batch = Vec::with_capacity(HEADER_SIZE_BYTES + body.len());
    batch.extend_from_slice(&original[..HEADER_SIZE_BYTES]);
    batch.extend_from_slice(&body);
    let batch_length = i32::try_from(batch.len() - LOG_OVERHEAD_BYTES)
        .map_err(|_| bad(-1, "rewritten batch too large"))?;
    batch[8..12].copy_from_slice(&batch_length.to_be_bytes());
    batch[57..61].copy_from_slice(&(keep.len() as i32).to_be_bytes());
    seal(&mut batch);
    let info = check_framing_and_crc(&batch).expect("a batch just encoded is valid");
    assert_eq!(info.last_offset(), decoded.info.last_offset(), "offsets are never reassigned");
    assert_eq!(info.records_count as usize, keep.len());
    Ok(batch)
}

/// What a filler batch (see [`filler`]) stands in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillerSpan {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Max timestamp of the batches it replaces: the segment's time bounds stay as they were.
    pub max_timestamp_ms: i64,
    pub partition_leader_epoch: i32,
}

/// An uncompressed batch of zero records spanning `span`: it replaces batches whose every
/// record compaction removed, so batch offsets stay contiguous (Kafka's cleaner writes such
/// empty batches too, to keep a producer's last sequence; clients skip them).
pub fn filler(span: FillerSpan) -> Vec<u8> {
    let last_offset_delta = span.last_offset - span.base_offset;
    assert!(last_offset_delta >= 0 && last_offset_delta <= i64::from(i32::MAX));
    let mut batch = Vec::with_capacity(HEADER_SIZE_BYTES);
    batch.extend_from_slice(&span.base_offset.to_be_bytes());
    batch.extend_from_slice(&((HEADER_SIZE_BYTES - LOG_OVERHEAD_BYTES) as i32).to_be_bytes());
    batch.extend_from_slice(&span.partition_leader_epoch.to_be_bytes());
    batch.push(MAGIC_V2 as u8);
    batch.extend_from_slice(&0u32.to_be_bytes());
    batch.extend_from_slice(&0i16.to_be_bytes());
    batch.extend_from_slice(&(last_offset_delta as i32).to_be_bytes());
    batch.extend_from_slice(&span.max_timestamp_ms.to_be_bytes());
    batch.extend_from_slice(&span.max_timestamp_ms.to_be_bytes());
    batch.extend_from_slice(&(-1i64).to_be_bytes());
    batch.extend_from_slice(&(-1i16).to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes());
    batch.extend_from_slice(&0i32.to_be_bytes());
    assert_eq!(batch.len(), HEADER_SIZE_BYTES);
    seal(&mut batch);
    batch
}

/// `original` with every record removed but its header kept (offset span, producer id, epoch,
/// base sequence, timestamps), uncompressed: what Kafka's cleaner keeps of a producer's last
/// batch so that the producer's last sequence survives compaction.
pub fn emptied(original: &[u8]) -> Vec<u8> {
    let mut batch = original[..HEADER_SIZE_BYTES].to_vec();
    let batch_length = (HEADER_SIZE_BYTES - LOG_OVERHEAD_BYTES) as i32;
    batch[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = i16::from_be_bytes([batch[21], batch[22]]) & !ATTRIBUTE_COMPRESSION_MASK;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch[57..61].copy_from_slice(&0i32.to_be_bytes());
    seal(&mut batch);
    let info = check_framing_and_crc(&batch).expect("a batch just encoded is valid");
    assert_eq!((info.records_count, info.compression), (0, Compression::None));
    batch
}

pub(super) fn seal(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// The batch with its records section recompressed with `compression`.
#[cfg(test)]
pub fn recompressed(batch: &[u8], compression: Compression) -> Vec<u8> {
    let body = compress(compression, &batch[HEADER_SIZE_BYTES..]).unwrap();
    let mut out = batch[..HEADER_SIZE_BYTES].to_vec();
    out.extend_from_slice(&body);
    let batch_length = (out.len() - LOG_OVERHEAD_BYTES) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    out[21..23].copy_from_slice(&compression.attribute().to_be_bytes());
    seal(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decompression_bomb_is_refused_not_allocated() {
        let zeros = vec![0u8; 4 << 20];
        for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let compressed = compress(codec, &zeros).unwrap();
            assert!(compressed.len() < zeros.len() / 16, "{codec:?}");
            let bounded = super::super::decompress::decompress_bounded(codec, &compressed, 1 << 20);
            assert_eq!(bounded, Err("records decompress beyond the bound"), "{codec:?}");
            let whole = super::super::decompress::decompress_bounded(codec, &compressed, 4 << 20);
            assert_eq!(whole.as_deref(), Ok(&zeros[..]), "{codec:?}");
        }
    }
    use crate::record_batch::build::{encode_batch, ProducerStamp, Record};
    use crate::record_batch::patch_base_offset;

    fn keyed(key: &str, value: Option<&str>) -> Record {
        Record {
            key: Some(key.as_bytes().to_vec()),
            value: value.map(|value| value.as_bytes().to_vec()),
            ..Record::default()
        }
    }

    #[test]
    fn a_subset_keeps_offsets_timestamps_and_producer_fields_under_every_codec() {
        let records = vec![keyed("a", Some("1")), keyed("b", None), keyed("a", Some("2"))];
        let stamp = ProducerStamp { producer_id: 7, producer_epoch: 2, base_sequence: 40 };
        let mut plain = encode_batch(&records, 5_000, stamp);
        patch_base_offset(&mut plain, 100, 9);
        let codecs = [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ];
        for codec in codecs {
            let batch = recompressed(&plain, codec);
            let decoded = decode(&batch).unwrap();
            assert_eq!(decoded.records.len(), 3);
            assert_eq!(decoded.key(&decoded.records[1]), Some(&b"b"[..]));
            assert!(decoded.records[1].value_is_null());
            let subset = encode_subset(&batch, &decoded, &[1]).unwrap();
            let info = check_framing_and_crc(&subset).unwrap();
            assert_eq!((info.base_offset, info.last_offset(), info.records_count), (100, 102, 1));
            assert_eq!((info.producer_id, info.producer_epoch, info.base_sequence), (7, 2, 40));
            assert_eq!((info.partition_leader_epoch, info.compression), (9, codec));
            let again = decode(&subset).unwrap();
            assert_eq!(again.offset(&again.records[0]), 101);
            assert_eq!(again.key(&again.records[0]), Some(&b"b"[..]));
        }
    }

    #[test]
    fn an_emptied_batch_keeps_its_producer_and_its_span() {
        let stamp = ProducerStamp { producer_id: 3, producer_epoch: 1, base_sequence: 17 };
        let mut plain = encode_batch(&[keyed("a", Some("1")), keyed("b", None)], 9, stamp);
        patch_base_offset(&mut plain, 40, 2);
        let batch = emptied(&recompressed(&plain, Compression::Gzip));
        let info = check_framing_and_crc(&batch).unwrap();
        assert_eq!((info.base_offset, info.last_offset(), info.records_count), (40, 41, 0));
        assert_eq!((info.producer_id, info.producer_epoch, info.base_sequence), (3, 1, 17));
        assert_eq!((info.size_bytes, info.partition_leader_epoch), (HEADER_SIZE_BYTES, 2));
    }

    #[test]
    fn a_filler_spans_its_offsets_with_no_records() {
        let span = FillerSpan {
            base_offset: 10,
            last_offset: 19,
            max_timestamp_ms: 77,
            partition_leader_epoch: 3,
        };
        let batch = filler(span);
        let info = check_framing_and_crc(&batch).unwrap();
        assert_eq!((info.base_offset, info.next_offset(), info.records_count), (10, 20, 0));
        assert_eq!((info.max_timestamp, info.size_bytes), (77, HEADER_SIZE_BYTES));
        assert!(decode(&batch).unwrap().records.is_empty());
    }

    #[test]
    fn keyless_records_are_found() {
        let keyless = Record { value: Some(b"v".to_vec()), ..Record::default() };
        let batch = encode_batch(&[keyed("a", Some("1")), keyless], 0, ProducerStamp::NONE);
        assert_eq!(first_keyless_record(&batch), Ok(Some(1)));
        let batch = recompressed(&batch, Compression::Zstd);
        assert_eq!(first_keyless_record(&batch), Ok(Some(1)));
        let batch = encode_batch(&[keyed("a", None)], 0, ProducerStamp::NONE);
        assert_eq!(first_keyless_record(&batch), Ok(None));
    }
}
