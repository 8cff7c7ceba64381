//! Judging the bytes at a position of a segment file as the next batch of the log: the pure
//! core of recovery (and of re-validating a segment whose index must be rebuilt).
//!
//! A batch is *valid* when its framing, magic and CRC32C check out AND its base offset is the
//! one the log expects next (the CRC does not cover the base offset, so contiguity is what
//! catches a flipped base offset).

use crate::record_batch::{self, BatchInfo, HEADER_SIZE_BYTES, LOG_OVERHEAD_BYTES};

/// Offset of the magic byte in a batch header.
const MAGIC_POSITION: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    Valid(BatchInfo),
    /// The window is too short to decide; call again with at least this many bytes.
    NeedBytes(usize),
    /// Not a valid next batch: torn, corrupt, or not contiguous.
    Invalid,
}

/// Which base offsets are acceptable for the batch being judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Exactly this offset: the batch right after a valid one.
    Exactly(i64),
    /// At least this offset: an intact batch found behind a corrupt region.
    AtLeast(i64),
}

/// Judges the batch starting at `window[0]`. `bytes_to_eof` is how many bytes the file holds
/// from that position on (the window may be shorter); `max_batch_bytes` bounds a plausible
/// batch length so a garbage length never makes us read gigabytes.
pub fn judge(
    window: &[u8],
    bytes_to_eof: u64,
    expect: Expect,
    max_batch_bytes: usize,
) -> Judgement {
    debug_assert!(window.len() as u64 <= bytes_to_eof);
    if window.len() < HEADER_SIZE_BYTES {
        if bytes_to_eof < HEADER_SIZE_BYTES as u64 {
            return Judgement::Invalid;
        }
        return Judgement::NeedBytes(HEADER_SIZE_BYTES);
    }
    if window[MAGIC_POSITION] as i8 != record_batch::MAGIC_V2 {
        return Judgement::Invalid;
    }
    let Ok(size_bytes) = record_batch::batch_size_from_prefix(window) else {
        return Judgement::Invalid;
    };
    if size_bytes > max_batch_bytes || size_bytes as u64 > bytes_to_eof {
        return Judgement::Invalid;
    }
    if window.len() < size_bytes {
        return Judgement::NeedBytes(size_bytes);
    }
    let Ok(info) = record_batch::check_framing_and_crc(&window[..size_bytes]) else {
        return Judgement::Invalid;
    };
    let offset_ok = match expect {
        Expect::Exactly(offset) => info.base_offset == offset,
        Expect::AtLeast(offset) => info.base_offset >= offset,
    };
    // A batch we stored holds at least one record, except compaction's fillers: zero records
    // and no record bytes (both under the CRC). The offsets must not overflow.
    let records_ok =
        info.records_count > 0 || (info.records_count == 0 && info.size_bytes == HEADER_SIZE_BYTES);
    let shape_ok =
        records_ok && info.base_offset.checked_add(i64::from(info.last_offset_delta)).is_some();
    if offset_ok && shape_ok {
        Judgement::Valid(info)
    } else {
        Judgement::Invalid
    }
}

/// Largest batch recovery believes in: anything the log could have accepted, plus the header.
pub fn max_batch_bytes(max_message_bytes: u32) -> usize {
    max_message_bytes as usize + LOG_OVERHEAD_BYTES + HEADER_SIZE_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch::build::{encode_batch, ProducerStamp, Record};
    use crate::record_batch::patch_base_offset;

    fn batch_at(base_offset: i64, records: usize) -> Vec<u8> {
        let record = Record { value: Some(b"value".to_vec()), ..Record::default() };
        let mut batch = encode_batch(&vec![record; records], 1_000, ProducerStamp::NONE);
        patch_base_offset(&mut batch, base_offset, 3);
        batch
    }

    #[test]
    fn a_contiguous_intact_batch_is_valid() {
        let batch = batch_at(7, 3);
        let judged = judge(&batch, batch.len() as u64, Expect::Exactly(7), 1 << 20);
        let Judgement::Valid(info) = judged else { panic!("{judged:?}") };
        assert_eq!((info.base_offset, info.next_offset(), info.size_bytes), (7, 10, batch.len()));
        assert_eq!(
            judge(&batch, batch.len() as u64, Expect::Exactly(8), 1 << 20),
            Judgement::Invalid
        );
        assert!(matches!(judge(&batch, 1 << 20, Expect::AtLeast(5), 1 << 20), Judgement::Valid(_)));
    }

    #[test]
    fn a_zero_record_batch_is_valid_only_without_record_bytes() {
        use crate::record_batch::rewrite::{filler, FillerSpan};
        let span = FillerSpan {
            base_offset: 5,
            last_offset: 9,
            max_timestamp_ms: 0,
            partition_leader_epoch: 0,
        };
        let batch = filler(span);
        let judged = judge(&batch, batch.len() as u64, Expect::Exactly(5), 1 << 20);
        let Judgement::Valid(info) = judged else { panic!("{judged:?}") };
        assert_eq!((info.records_count, info.next_offset()), (0, 10));
        // The same header claiming zero records over a record's bytes is not one we wrote.
        let mut batch = batch_at(5, 1);
        batch[57..61].copy_from_slice(&0i32.to_be_bytes());
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        let judged = judge(&batch, batch.len() as u64, Expect::Exactly(5), 1 << 20);
        assert_eq!(judged, Judgement::Invalid);
    }

    #[test]
    fn short_windows_ask_for_more_and_short_files_are_invalid() {
        let batch = batch_at(0, 2);
        let size = batch.len();
        assert_eq!(
            judge(&batch[..10], size as u64, Expect::Exactly(0), 1 << 20),
            Judgement::NeedBytes(61)
        );
        assert_eq!(
            judge(&batch[..70], size as u64, Expect::Exactly(0), 1 << 20),
            Judgement::NeedBytes(size)
        );
        assert_eq!(judge(&batch[..70], 70, Expect::Exactly(0), 1 << 20), Judgement::Invalid);
        assert_eq!(judge(&batch[..10], 10, Expect::Exactly(0), 1 << 20), Judgement::Invalid);
        assert_eq!(judge(&batch, size as u64, Expect::Exactly(0), size - 1), Judgement::Invalid);
    }

    #[test]
    fn every_bit_flip_is_invalid_except_in_the_leader_epoch() {
        let batch = batch_at(0, 2);
        for bit in 0..batch.len() * 8 {
            let byte = bit / 8;
            let mut flipped = batch.clone();
            flipped[byte] ^= 1 << (bit % 8);
            let judged = judge(&flipped, flipped.len() as u64, Expect::Exactly(0), 1 << 20);
            // partitionLeaderEpoch (bytes 12..16) is covered by nothing in the v2 format.
            let expected_valid = (12..16).contains(&byte);
            assert_eq!(
                matches!(judged, Judgement::Valid(_)),
                expected_valid,
                "bit {bit}: {judged:?}"
            );
        }
    }
}
