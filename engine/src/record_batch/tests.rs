use super::build::{encode_batch, ProducerStamp, Record};
use super::*;
use proptest::prelude::*;

fn record_strategy() -> impl Strategy<Value = Record> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..64);
    (
        proptest::option::of(bytes.clone()),
        proptest::option::of(bytes.clone()),
        proptest::collection::vec((bytes.clone(), proptest::option::of(bytes)), 0..3),
        0i64..10_000,
    )
        .prop_map(|(key, value, headers, timestamp_delta)| Record {
            key,
            value,
            headers,
            timestamp_delta,
        })
}

proptest! {
    #[test]
    fn every_encoded_batch_validates(
        records in proptest::collection::vec(record_strategy(), 1..20),
    ) {
        let batch = encode_batch(&records, 1_700_000_000_000, ProducerStamp::NONE);
        let info = validate_produced_batch(&batch).unwrap();
        prop_assert_eq!(info.records_count as usize, records.len());
        prop_assert_eq!(info.size_bytes, batch.len());
        prop_assert_eq!(info.last_offset_delta as usize, records.len() - 1);
    }

    #[test]
    fn any_bit_flip_in_crc_range_is_rejected(
        records in proptest::collection::vec(record_strategy(), 1..5),
        bit in any::<prop::sample::Index>(),
    ) {
        let mut batch = encode_batch(&records, 0, ProducerStamp::NONE);
        let position = CRC_START * 8 + bit.index((batch.len() - CRC_START) * 8);
        batch[position / 8] ^= 1 << (position % 8);
        prop_assert!(validate_produced_batch(&batch).is_err());
    }

    #[test]
    fn patching_base_offset_keeps_the_crc_valid(
        records in proptest::collection::vec(record_strategy(), 1..5),
        base_offset in 0i64..i64::MAX / 2,
        epoch in 0i32..i32::MAX,
    ) {
        let mut batch = encode_batch(&records, 0, ProducerStamp::NONE);
        patch_base_offset(&mut batch, base_offset, epoch);
        let info = validate_produced_batch(&batch).unwrap();
        prop_assert_eq!(info.base_offset, base_offset);
        prop_assert_eq!(info.partition_leader_epoch, epoch);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = validate_produced_batch(&bytes);
        let _ = split_produced_batches(&bytes);
    }
}

#[test]
fn concatenated_batches_split_at_their_boundaries() {
    let one = encode_batch(&[Record::default()], 0, ProducerStamp::NONE);
    let two = encode_batch(&[Record::default(), Record::default()], 0, ProducerStamp::NONE);
    let payload = [one.clone(), two.clone()].concat();
    let batches = split_produced_batches(&payload).unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].0, 0..one.len());
    assert_eq!(batches[1].0, one.len()..one.len() + two.len());
}

#[test]
fn truncated_batch_is_rejected() {
    let batch = encode_batch(&[Record::default()], 0, ProducerStamp::NONE);
    let error = validate_produced_batch(&batch[..batch.len() - 1]).unwrap_err();
    assert!(matches!(error, BatchError::Truncated { .. }), "{error}");
}

#[test]
fn magic_one_is_rejected() {
    let mut batch = encode_batch(&[Record::default()], 0, ProducerStamp::NONE);
    batch[16] = 1;
    assert_eq!(validate_produced_batch(&batch), Err(BatchError::UnsupportedMagic { magic: 1 }));
}
