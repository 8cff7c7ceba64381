//! What a topic's configs ask the broker to change in a produced batch before it is stored,
//! as Kafka's `LogValidator` does:
//!
//! - `compression.type` other than `producer`: the records are recompressed with the topic's
//!   codec (or stored uncompressed) when the producer used another one;
//! - `message.timestamp.type=LogAppendTime`: the batch is stamped with the broker's clock
//!   (timestamp-type attribute set, max timestamp = append time; consumers then read that
//!   time for every record).
//!
//! Batches of topics with neither config never come here: they are stored as received.
//! A converted batch keeps everything a producer and a consumer rely on — offset span
//! (`lastOffsetDelta`), records byte for byte (offset and timestamp deltas, keys, values,
//! headers), producer id, epoch and base sequence, transactional and control bits — so
//! idempotent duplicate detection and consumers see the same batch they would have seen.

use bytes::BytesMut;
use zerocopy::FromBytes;

use super::rewrite::{compress, decode, seal};
use super::LOG_OVERHEAD_BYTES;
use super::{check_framing_and_crc, BatchError, BatchHeader, BatchInfo, Compression};
use super::{ATTRIBUTE_COMPRESSION_MASK, ATTRIBUTE_TIMESTAMP_TYPE, HEADER_SIZE_BYTES};

/// The conversion a topic asks for. `Default` is "store as produced".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conversion {
    /// `compression.type`: `None` is `producer` (keep the producer's codec).
    pub compression: Option<Compression>,
    /// `message.timestamp.type=LogAppendTime`: the broker's wall clock at append, in ms.
    pub log_append_time_ms: Option<i64>,
}

impl Conversion {
    /// Whether the batch described by `info` must change at all.
    pub fn changes(&self, info: &BatchInfo) -> bool {
        let recompress = self.compression.is_some_and(|codec| codec != info.compression);
        recompress || self.log_append_time_ms.is_some()
    }
}

/// Applies `conversion` to the one CRC-valid batch that spans `batch`. Recompression builds a
/// new buffer (bounded: records decompress to at most `rewrite::DECOMPRESSED_BYTES_MAX`);
/// stamping the append time alone patches the header in place. Either way the CRC32C is
/// computed afresh over the new bytes.
pub fn convert(batch: &mut BytesMut, conversion: Conversion) -> Result<(), BatchError> {
    let before = check_framing_and_crc(batch)?;
    assert_eq!(before.size_bytes, batch.len(), "one batch per buffer");
    if !conversion.changes(&before) {
        return Ok(());
    }
    if let Some(codec) = conversion.compression.filter(|codec| *codec != before.compression) {
        *batch = recompressed(batch, codec)?;
    }
    if let Some(append_time_ms) = conversion.log_append_time_ms {
        let header = BatchHeader::mut_from_prefix(&mut batch[..]).expect("a whole header").0;
        let attributes = header.attributes.get() | ATTRIBUTE_TIMESTAMP_TYPE;
        header.attributes.set(attributes);
        header.max_timestamp.set(append_time_ms);
    }
    seal(batch);
    let after = check_framing_and_crc(batch).expect("a batch just sealed is valid");
    assert_eq!(after.size_bytes, batch.len());
    assert_eq!(after.last_offset_delta, before.last_offset_delta, "offsets never move");
    assert_eq!(after.records_count, before.records_count);
    assert_eq!(
        (after.producer_id, after.producer_epoch, after.base_sequence),
        (before.producer_id, before.producer_epoch, before.base_sequence),
        "idempotence depends on the producer fields"
    );
    assert_eq!(after.compression, conversion.compression.unwrap_or(before.compression));
    assert!(conversion.log_append_time_ms.is_none() || after.log_append_time);
    Ok(())
}

/// The batch with its records recompressed with `codec`. A CreateTime batch's max timestamp is
/// taken from its records, as Kafka's rebuilt batches do.
fn recompressed(batch: &[u8], codec: Compression) -> Result<BytesMut, BatchError> {
    let decoded = decode(batch)?;
    let body = compress(codec, &decoded.records_bytes)?;
    let mut converted = BytesMut::with_capacity(HEADER_SIZE_BYTES + body.len());
    converted.extend_from_slice(&batch[..HEADER_SIZE_BYTES]);
    converted.extend_from_slice(&body);
    let batch_length = i32::try_from(converted.len() - LOG_OVERHEAD_BYTES)
        .map_err(|_| BatchError::BadRecord { index: -1, reason: "recompressed batch too large" })?;
    let header = BatchHeader::mut_from_prefix(&mut converted[..]).expect("a whole header").0;
    header.batch_length.set(batch_length);
    let attributes = (header.attributes.get() & !ATTRIBUTE_COMPRESSION_MASK) | codec.attribute();
    header.attributes.set(attributes);
    let newest_ms = decoded.records.iter().map(|record| decoded.timestamp_ms(record)).max();
    if let (false, Some(newest_ms)) = (decoded.info.log_append_time, newest_ms) {
        header.max_timestamp.set(newest_ms);
    }
    Ok(converted)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::record_batch::build::{encode_batch, ProducerStamp, Record};
    use crate::record_batch::rewrite::recompressed as compressed_with;

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn record(key: Option<&[u8]>, value: Option<&[u8]>, timestamp_delta: i64) -> Record {
        Record {
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: vec![(b"h".to_vec(), Some(b"v".to_vec())), (b"n".to_vec(), None)],
            timestamp_delta,
        }
    }

    /// (offset delta, timestamp, key, value) of every record: what a consumer sees.
    type Seen = Vec<(i32, i64, Option<Vec<u8>>, Option<Vec<u8>>)>;

    fn seen(batch: &[u8]) -> Seen {
        let decoded = decode(batch).expect("a valid batch");
        let owned = |bytes: Option<&[u8]>| bytes.map(<[u8]>::to_vec);
        decoded
            .records
            .iter()
            .map(|record| {
                let timestamp_ms = decoded.timestamp_ms(record);
                let key = owned(decoded.key(record));
                (record.offset_delta, timestamp_ms, key, owned(decoded.value(record)))
            })
            .collect()
    }

    fn converted(batch: &[u8], conversion: Conversion) -> BytesMut {
        let mut buffer = BytesMut::from(batch);
        convert(&mut buffer, conversion).expect("converts");
        buffer
    }

    #[test]
    fn recompression_keeps_records_and_producer_fields_between_every_pair_of_codecs() {
        let records = vec![
            record(Some(b"a"), Some(b"one"), 0),
            record(None, Some(&[7; 300]), 5),
            record(Some(b"c"), None, 2),
        ];
        let stamp = ProducerStamp { producer_id: 42, producer_epoch: 3, base_sequence: 17 };
        let plain = encode_batch(&records, 1_700_000_000_000, stamp);
        for source in CODECS {
            let original = compressed_with(&plain, source);
            for target in CODECS {
                let conversion = Conversion { compression: Some(target), ..Conversion::default() };
                let batch = converted(&original, conversion);
                let info = check_framing_and_crc(&batch).unwrap();
                assert_eq!(info.compression, target, "{source:?} -> {target:?}");
                assert_eq!(
                    (info.producer_id, info.producer_epoch, info.base_sequence),
                    (42, 3, 17)
                );
                assert_eq!(info.max_timestamp, 1_700_000_000_005);
                assert!(!info.log_append_time);
                assert_eq!(seen(&batch), seen(&plain), "{source:?} -> {target:?}");
                if source == target {
                    assert_eq!(&batch[..], &original[..], "an equal codec is left alone");
                }
            }
        }
    }

    #[test]
    fn log_append_time_stamps_the_batch_and_every_record_reads_it() {
        let records = vec![record(Some(b"k"), Some(b"v"), 0), record(None, None, 9)];
        let plain = encode_batch(&records, 1_000, ProducerStamp::NONE);
        for (source, target) in
            [(Compression::None, None), (Compression::Lz4, Some(Compression::Zstd))]
        {
            let original = compressed_with(&plain, source);
            let conversion = Conversion { compression: target, log_append_time_ms: Some(77_000) };
            let batch = converted(&original, conversion);
            let info = check_framing_and_crc(&batch).unwrap();
            assert!(info.log_append_time);
            assert_eq!(info.max_timestamp, 77_000);
            assert_eq!(info.base_timestamp, 1_000, "the producer's base timestamp stays");
            let timestamps: Vec<i64> = seen(&batch).iter().map(|record| record.1).collect();
            assert_eq!(timestamps, [77_000, 77_000]);
        }
    }

    #[test]
    fn nothing_to_change_leaves_the_bytes_alone_and_damage_is_refused() {
        let plain = encode_batch(&[record(None, Some(b"x"), 0)], 5, ProducerStamp::NONE);
        let keep = Conversion { compression: Some(Compression::None), log_append_time_ms: None };
        assert_eq!(&converted(&plain, keep)[..], &plain[..]);
        let mut damaged = BytesMut::from(&plain[..]);
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        let gzip = Conversion { compression: Some(Compression::Gzip), log_append_time_ms: None };
        assert!(matches!(convert(&mut damaged, gzip), Err(BatchError::CrcMismatch { .. })));
    }

    fn arbitrary_record() -> impl Strategy<Value = Record> {
        let bytes = || proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200));
        (bytes(), bytes(), 0..1_000i64).prop_map(|(key, value, timestamp_delta)| Record {
            key,
            value,
            headers: Vec::new(),
            timestamp_delta,
        })
    }

    proptest! {
        #[test]
        fn any_batch_survives_any_conversion(
            records in proptest::collection::vec(arbitrary_record(), 1..20),
            source in 0..5usize,
            target in proptest::option::of(0..5usize),
            append_time_ms in proptest::option::of(0..i64::MAX / 2),
        ) {
            let plain = encode_batch(&records, 1_000_000, ProducerStamp::NONE);
            let original = compressed_with(&plain, CODECS[source]);
            let compression = target.map(|index| CODECS[index]);
            let conversion = Conversion { compression, log_append_time_ms: append_time_ms };
            let batch = converted(&original, conversion);
            let expected: Seen = match append_time_ms {
                None => seen(&plain),
                Some(time_ms) => seen(&plain)
                    .into_iter()
                    .map(|(delta, _, key, value)| (delta, time_ms, key, value))
                    .collect(),
            };
            prop_assert_eq!(seen(&batch), expected);
        }
    }
}
