//! The one entry point for what a producer sends for one partition: every check Kafka's
//! `ProduceRequest.validateRecords` and `LogValidator` make, in Kafka's order (measured on
//! 4.4.0, and pinned by the differential tests), then the topic's conversion. What passes is
//! what the log appends; the log re-reads only the header fields it relies on.
//!
//! Order: records present; zstd only from Produce v7; base offset 0 (the broker assigns
//! offsets); the declared size against `max.message.bytes`; framing and CRC32C of every batch
//! (and record framing of uncompressed ones); exactly one batch; its size; keys on a
//! compacted topic; then recompression or LogAppendTime, after which the size is checked again.

use bytes::BytesMut;

use super::convert::{self, Conversion};
use super::{rewrite, split_produced_batches, BatchError, Compression, MAGIC_V2};

/// First produce version that may carry zstd batches (KIP-110).
pub const FIRST_ZSTD_PRODUCE_VERSION: i16 = 7;

/// What the topic and the request allow.
#[derive(Debug, Clone, Copy)]
pub struct ProducePolicy {
    /// The Produce request's version (zstd needs v7+).
    pub produce_version: i16,
    /// The topic's `max.message.bytes`.
    pub max_message_bytes: usize,
    /// A compacted topic: every record needs a key.
    pub keys_required: bool,
    /// The topic's `compression.type` and timestamp type.
    pub conversion: Conversion,
}

/// Why a partition's records were refused. Each maps to one Kafka error code at the protocol
/// edge (`broker/handlers/produce.rs`); none is a broker bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProducedError {
    #[error("produce request carries no records")]
    Empty,
    #[error("zstd batches need Produce v{FIRST_ZSTD_PRODUCE_VERSION} or newer")]
    ZstdBeforeV7,
    #[error("the base offset of a produced batch must be 0")]
    BaseOffsetNotZero,
    #[error("batch of {size_bytes} bytes exceeds max.message.bytes {max_message_bytes}")]
    TooLarge { size_bytes: usize, max_message_bytes: usize },
    #[error(transparent)]
    Batch(BatchError),
    #[error("{count} record batches for one partition: Kafka allows one")]
    SeveralBatches { count: usize },
    #[error("Compacted topic cannot accept message without key")]
    KeyMissing,
    #[error("produced batch cannot be converted: {0}")]
    Conversion(BatchError),
    #[error(
        "Message batch size is {size_bytes} bytes which exceeds the maximum configured size \
         of {max_message_bytes}."
    )]
    ConvertedTooLarge { size_bytes: usize, max_message_bytes: usize },
}

/// A partition's records, checked and converted: one batch, owned, ready for the log.
#[derive(Debug)]
pub struct ValidatedBatch {
    pub batch: BytesMut,
}

/// Checks `records` (one partition's bytes from a Produce request) against `policy`.
pub fn validate_produced(
    records: Option<&[u8]>,
    policy: &ProducePolicy,
) -> Result<ValidatedBatch, ProducedError> {
    let Some(records) = records.filter(|records| !records.is_empty()) else {
        return Err(ProducedError::Empty);
    };
    refuse_zstd_before_v7(policy.produce_version, records)?;
    if records.get(..8).is_some_and(|base_offset| base_offset != [0; 8]) {
        return Err(ProducedError::BaseOffsetNotZero);
    }
    let max_message_bytes = policy.max_message_bytes;
    if let Some(declared_bytes) = declared_first_batch_bytes(records) {
        if declared_bytes <= records.len() && declared_bytes > max_message_bytes {
            return Err(ProducedError::TooLarge { size_bytes: declared_bytes, max_message_bytes });
        }
    }
    let batches = split_produced_batches(records).map_err(ProducedError::Batch)?;
    let [(range, info)] = batches.as_slice() else {
        return Err(ProducedError::SeveralBatches { count: batches.len() });
    };
    if info.size_bytes > max_message_bytes {
        return Err(ProducedError::TooLarge { size_bytes: info.size_bytes, max_message_bytes });
    }
    // In range: `split_produced_batches` returns ranges inside `records`.
    let bytes = &records[range.clone()];
    if policy.keys_required {
        match rewrite::first_keyless_record(bytes) {
            Ok(None) => {}
            Ok(Some(_)) => return Err(ProducedError::KeyMissing),
            Err(error) => return Err(ProducedError::Batch(error)),
        }
    }
    let mut batch = BytesMut::from(bytes);
    if policy.conversion.changes(info) {
        convert::convert(&mut batch, policy.conversion).map_err(ProducedError::Conversion)?;
        if batch.len() > max_message_bytes {
            let size_bytes = batch.len();
            return Err(ProducedError::ConvertedTooLarge { size_bytes, max_message_bytes });
        }
    }
    Ok(ValidatedBatch { batch })
}

const MAGIC_POSITION: usize = 16;
const ATTRIBUTES_POSITION: usize = 21;
const CODEC_MASK: u8 = 0x07;

/// Kafka's `ProduceRequest.validateRecords`: a zstd batch in a Produce older than v7 is
/// refused before the batch's size and CRC are looked at.
fn refuse_zstd_before_v7(version: i16, records: &[u8]) -> Result<(), ProducedError> {
    if version >= FIRST_ZSTD_PRODUCE_VERSION {
        return Ok(());
    }
    let magic = records.get(MAGIC_POSITION).map(|byte| i8::from_be_bytes([*byte]));
    let codec =
        records.get(ATTRIBUTES_POSITION + 1).map(|low_byte| i16::from(low_byte & CODEC_MASK));
    if magic == Some(MAGIC_V2) && codec == Some(Compression::Zstd.attribute()) {
        return Err(ProducedError::ZstdBeforeV7);
    }
    Ok(())
}

/// The size the first batch's header declares (base offset and length fields included).
fn declared_first_batch_bytes(records: &[u8]) -> Option<usize> {
    let length = i32::from_be_bytes(records.get(8..12)?.try_into().ok()?);
    usize::try_from(length).ok()?.checked_add(12)
}

#[cfg(test)]
mod tests {
    use super::super::build::{encode_batch, ProducerStamp, Record};
    use super::super::rewrite::recompressed;
    use super::super::{check_framing_and_crc, patch_base_offset};
    use super::*;

    fn batch(keys: &[Option<&str>]) -> Vec<u8> {
        let records: Vec<Record> = keys
            .iter()
            .map(|key| Record {
                key: key.map(|key| key.as_bytes().to_vec()),
                value: Some(b"value".to_vec()),
                ..Record::default()
            })
            .collect();
        encode_batch(&records, 1_700_000_000_000, ProducerStamp::NONE)
    }

    fn policy() -> ProducePolicy {
        ProducePolicy {
            produce_version: 9,
            max_message_bytes: 1 << 20,
            keys_required: false,
            conversion: Conversion { compression: None, log_append_time_ms: None },
        }
    }

    /// Validates `records` under `policy`: the refusal, or `None` when accepted.
    fn check(records: &[u8], policy: ProducePolicy) -> Option<ProducedError> {
        validate_produced(Some(records), &policy).err()
    }

    #[test]
    fn a_well_formed_batch_passes_byte_for_byte() {
        let records = batch(&[Some("a"), None]);
        let validated = validate_produced(Some(&records), &policy()).unwrap();
        assert_eq!(&validated.batch[..], &records[..]);
    }

    #[test]
    fn each_refusal_in_kafkas_order() {
        let good = batch(&[None]);
        let zstd = recompressed(&good, Compression::Zstd);
        let mut offset_seven = good.clone();
        patch_base_offset(&mut offset_seven, 7, 0);
        let mut corrupt = good.clone();
        *corrupt.last_mut().unwrap() ^= 1;
        let two = [good.clone(), good.clone()].concat();
        let small = ProducePolicy { max_message_bytes: good.len() - 1, ..policy() };
        let compacted = ProducePolicy { keys_required: true, ..policy() };
        let version_6 = ProducePolicy { produce_version: 6, ..policy() };
        assert_eq!(validate_produced(None, &policy()).err(), Some(ProducedError::Empty));
        assert_eq!(check(&[], policy()), Some(ProducedError::Empty));
        assert_eq!(check(&zstd, version_6), Some(ProducedError::ZstdBeforeV7));
        assert_eq!(check(&zstd, policy()), None);
        // Before the size and the CRC are looked at.
        let mut zstd_corrupt = zstd.clone();
        *zstd_corrupt.last_mut().unwrap() ^= 1;
        assert_eq!(check(&zstd_corrupt, version_6), Some(ProducedError::ZstdBeforeV7));
        assert_eq!(check(&offset_seven, small), Some(ProducedError::BaseOffsetNotZero));
        let too_large =
            ProducedError::TooLarge { size_bytes: good.len(), max_message_bytes: good.len() - 1 };
        assert_eq!(check(&good, small), Some(too_large.clone()));
        assert_eq!(check(&corrupt, small), Some(too_large));
        assert!(matches!(
            check(&corrupt, policy()),
            Some(ProducedError::Batch(BatchError::CrcMismatch { .. }))
        ));
        assert_eq!(check(&two, policy()), Some(ProducedError::SeveralBatches { count: 2 }));
        assert_eq!(check(&batch(&[Some("k"), None]), compacted), Some(ProducedError::KeyMissing));
        assert_eq!(check(&batch(&[Some("k")]), compacted), None);
    }

    #[test]
    fn a_converted_batch_is_stamped_and_checked_again() {
        let records = batch(&[Some("a")]);
        let stamp = Conversion { compression: None, log_append_time_ms: Some(42) };
        let validated =
            validate_produced(Some(&records), &ProducePolicy { conversion: stamp, ..policy() })
                .unwrap();
        let info = check_framing_and_crc(&validated.batch).unwrap();
        assert!(info.log_append_time);
        assert_eq!(info.max_timestamp, 42);
        let gzip = Conversion { compression: Some(Compression::Gzip), log_append_time_ms: None };
        let tight =
            ProducePolicy { conversion: gzip, max_message_bytes: records.len(), ..policy() };
        // Gzip of one tiny record is larger than the record: over the limit once converted.
        assert!(matches!(
            check(&records, tight),
            Some(ProducedError::ConvertedTooLarge { max_message_bytes, .. })
                if max_message_bytes == records.len()
        ));
    }
}
