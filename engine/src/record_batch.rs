//! Kafka record batch v2 ("magic 2"), read in place.
//!
//! Tern stores batches exactly as producers sent them. The broker only ever needs the 61-byte
//! header (read through `zerocopy`, big-endian, no copy) and a CRC32C check; it patches the base
//! offset and the partition leader epoch in place. Both fields lie *before* the CRC range
//! (attributes..end), so patching never invalidates the CRC.
//!
//! Layout (all big-endian):
//! ```text
//! offset size field
//!      0    8 base_offset
//!      8    4 batch_length            (bytes after this field)
//!     12    4 partition_leader_epoch
//!     16    1 magic                   (must be 2)
//!     17    4 crc                     (CRC32C of bytes 21..end)
//!     21    2 attributes              (bits 0-2 compression, 3 timestamp type,
//!                                      4 transactional, 5 control)
//!     23    4 last_offset_delta
//!     27    8 base_timestamp
//!     35    8 max_timestamp
//!     43    8 producer_id
//!     51    2 producer_epoch
//!     53    4 base_sequence
//!     57    4 records_count
//!     61      records...
//! ```

use zerocopy::byteorder::big_endian::{I16, I32, I64, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Size of the fixed batch header.
pub const HEADER_SIZE_BYTES: usize = 61;
/// Bytes before `batch_length`'s coverage starts: base_offset (8) + batch_length (4).
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// Offset of the first byte covered by the CRC (attributes).
pub const CRC_START: usize = 21;
/// The only record-batch format Tern accepts (KIP-724 removed v0/v1).
pub const MAGIC_V2: i8 = 2;

pub(crate) const ATTRIBUTE_COMPRESSION_MASK: i16 = 0x07;
const ATTRIBUTE_TIMESTAMP_TYPE: i16 = 0x08;
const ATTRIBUTE_TRANSACTIONAL: i16 = 0x10;
const ATTRIBUTE_CONTROL: i16 = 0x20;

/// The fixed record-batch header, exactly as it sits on the wire and on disk.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Debug)]
#[repr(C)]
pub struct BatchHeader {
    pub base_offset: I64,
    pub batch_length: I32,
    pub partition_leader_epoch: I32,
    pub magic: i8,
    pub crc: U32,
    pub attributes: I16,
    pub last_offset_delta: I32,
    pub base_timestamp: I64,
    pub max_timestamp: I64,
    pub producer_id: I64,
    pub producer_epoch: I16,
    pub base_sequence: I32,
    pub records_count: I32,
}

const _: () = assert!(std::mem::size_of::<BatchHeader>() == HEADER_SIZE_BYTES);

/// Compression codec named by the low three attribute bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The low three attribute bits that name this codec.
    pub fn attribute(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    fn from_attributes(attributes: i16) -> Option<Compression> {
        match attributes & ATTRIBUTE_COMPRESSION_MASK {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// Why a batch was rejected. Every variant maps to CORRUPT_MESSAGE (or INVALID_RECORD) at the
/// protocol edge; none of them is a broker bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    #[error("batch is {available} bytes, shorter than the {HEADER_SIZE_BYTES}-byte header")]
    TooShortForHeader { available: usize },
    #[error("batch_length {batch_length} is impossible (header needs at least 49)")]
    BadLength { batch_length: i32 },
    #[error("batch claims {claimed} bytes but only {available} are present")]
    Truncated { claimed: usize, available: usize },
    #[error("magic {magic} is not supported (only record batch v2)")]
    UnsupportedMagic { magic: i8 },
    #[error("CRC32C mismatch: header says {stored:#010x}, bytes give {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("unknown compression codec in attributes {attributes:#06x}")]
    UnknownCompression { attributes: i16 },
    #[error("records_count {records_count} is invalid")]
    BadRecordCount { records_count: i32 },
    #[error("last_offset_delta {last_offset_delta} disagrees with the records")]
    BadLastOffsetDelta { last_offset_delta: i32 },
    #[error("record {index} is malformed: {reason}")]
    BadRecord { index: i32, reason: &'static str },
    #[error("records end at byte {records_end} of a {batch_size}-byte batch")]
    TrailingBytes { records_end: usize, batch_size: usize },
}

/// What the broker needs to know about a batch, read from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    pub base_offset: i64,
    pub last_offset_delta: i32,
    pub records_count: i32,
    pub size_bytes: usize,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub partition_leader_epoch: i32,
    pub compression: Compression,
    pub log_append_time: bool,
    pub is_transactional: bool,
    pub is_control: bool,
}

impl BatchInfo {
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }
    /// The offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
}

/// Reads the header at the start of `bytes` without copying.
pub fn header(bytes: &[u8]) -> Result<&BatchHeader, BatchError> {
    let prefix = bytes
        .get(..HEADER_SIZE_BYTES)
        .ok_or(BatchError::TooShortForHeader { available: bytes.len() })?;
    Ok(BatchHeader::ref_from_bytes(prefix).expect("size checked above"))
}

/// Total size in bytes of the batch that starts at `bytes`, from its length field alone.
/// Needs only the first 12 bytes; checks that the length is plausible, not that it is present.
pub fn batch_size_from_prefix(bytes: &[u8]) -> Result<usize, BatchError> {
    if bytes.len() < LOG_OVERHEAD_BYTES {
        return Err(BatchError::TooShortForHeader { available: bytes.len() });
    }
    let batch_length = i32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let minimum = (HEADER_SIZE_BYTES - LOG_OVERHEAD_BYTES) as i32;
    if batch_length < minimum {
        return Err(BatchError::BadLength { batch_length });
    }
    // Not negative: at least `minimum` (checked above).
    Ok(LOG_OVERHEAD_BYTES + batch_length as usize)
}

/// Checks length, magic and CRC32C of the one batch starting at `bytes` (which may continue
/// with further batches). Cheap: no record is decoded. This is what recovery and fetch-side
/// checks use.
pub fn check_framing_and_crc(bytes: &[u8]) -> Result<BatchInfo, BatchError> {
    let size_bytes = batch_size_from_prefix(bytes)?;
    if bytes.len() < size_bytes {
        return Err(BatchError::Truncated { claimed: size_bytes, available: bytes.len() });
    }
    let batch = &bytes[..size_bytes];
    let header = header(batch)?;
    if header.magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic { magic: header.magic });
    }
    let computed = crc32c::crc32c(&batch[CRC_START..]);
    let stored = header.crc.get();
    if computed != stored {
        return Err(BatchError::CrcMismatch { stored, computed });
    }
    info_from_header(header, size_bytes)
}

/// What the header of the batch at the start of `bytes` says, without checking its CRC: for
/// batches validated earlier (the log's append path). Checks that the length is plausible
/// and present and that the attributes name a known codec.
pub fn header_info(bytes: &[u8]) -> Result<BatchInfo, BatchError> {
    let size_bytes = batch_size_from_prefix(bytes)?;
    if bytes.len() < size_bytes {
        return Err(BatchError::Truncated { claimed: size_bytes, available: bytes.len() });
    }
    info_from_header(header(&bytes[..size_bytes])?, size_bytes)
}

/// Full producer-side validation of one batch that must span exactly `bytes`: framing, CRC,
/// and — for uncompressed batches — the framing of every record. Compressed batches are
/// checked by header and CRC only; Tern never decompresses (a documented difference from Kafka).
pub fn validate_produced_batch(bytes: &[u8]) -> Result<BatchInfo, BatchError> {
    let info = check_framing_and_crc(bytes)?;
    if info.size_bytes != bytes.len() {
        return Err(BatchError::TrailingBytes {
            records_end: info.size_bytes,
            batch_size: bytes.len(),
        });
    }
    if info.records_count <= 0 {
        return Err(BatchError::BadRecordCount { records_count: info.records_count });
    }
    if info.last_offset_delta < info.records_count - 1 {
        return Err(BatchError::BadLastOffsetDelta { last_offset_delta: info.last_offset_delta });
    }
    if info.compression == Compression::None {
        validate_records(&bytes[HEADER_SIZE_BYTES..], &info)?;
    }
    Ok(info)
}

/// Splits a produce payload (one or more concatenated batches) and validates each with
/// [`validate_produced_batch`]. Returns the byte ranges of the batches.
pub fn split_produced_batches(
    bytes: &[u8],
) -> Result<Vec<(std::ops::Range<usize>, BatchInfo)>, BatchError> {
    // A produce payload is bounded by the request size, and each batch is at least 61 bytes,
    // so this loop is bounded by bytes.len() / 61.
    let mut batches = Vec::new();
    let mut position = 0usize;
    while position < bytes.len() {
        let rest = &bytes[position..];
        let size_bytes = batch_size_from_prefix(rest)?;
        if rest.len() < size_bytes {
            return Err(BatchError::Truncated { claimed: size_bytes, available: rest.len() });
        }
        let info = validate_produced_batch(&rest[..size_bytes])?;
        batches.push((position..position + size_bytes, info));
        position += size_bytes;
    }
    if batches.is_empty() {
        return Err(BatchError::TooShortForHeader { available: 0 });
    }
    Ok(batches)
}

/// Rewrites base offset and partition leader epoch in place. Both are outside the CRC range,
/// so the batch stays valid.
pub fn patch_base_offset(batch: &mut [u8], base_offset: i64, partition_leader_epoch: i32) {
    debug_assert!(batch.len() >= HEADER_SIZE_BYTES);
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[12..16].copy_from_slice(&partition_leader_epoch.to_be_bytes());
}

fn info_from_header(header: &BatchHeader, size_bytes: usize) -> Result<BatchInfo, BatchError> {
    let attributes = header.attributes.get();
    let compression = Compression::from_attributes(attributes)
        .ok_or(BatchError::UnknownCompression { attributes })?;
    let last_offset_delta = header.last_offset_delta.get();
    if last_offset_delta < 0 {
        return Err(BatchError::BadLastOffsetDelta { last_offset_delta });
    }
    Ok(BatchInfo {
        base_offset: header.base_offset.get(),
        last_offset_delta,
        records_count: header.records_count.get(),
        size_bytes,
        base_timestamp: header.base_timestamp.get(),
        max_timestamp: header.max_timestamp.get(),
        producer_id: header.producer_id.get(),
        producer_epoch: header.producer_epoch.get(),
        base_sequence: header.base_sequence.get(),
        partition_leader_epoch: header.partition_leader_epoch.get(),
        compression,
        log_append_time: attributes & ATTRIBUTE_TIMESTAMP_TYPE != 0,
        is_transactional: attributes & ATTRIBUTE_TRANSACTIONAL != 0,
        is_control: attributes & ATTRIBUTE_CONTROL != 0,
    })
}

/// Walks the records of an uncompressed batch: every length must fit, every field must parse,
/// offset deltas must increase and end at `last_offset_delta`, and the records must fill the
/// batch exactly.
fn validate_records(records: &[u8], info: &BatchInfo) -> Result<(), BatchError> {
    let mut cursor = Cursor { bytes: records, position: 0 };
    let mut previous_offset_delta: i64 = -1;
    for index in 0..info.records_count {
        let bad = |reason| BatchError::BadRecord { index, reason };
        let length = cursor.varint().ok_or(bad("length varint"))?;
        if length < 0 || length as usize > cursor.remaining() {
            return Err(bad("length exceeds the batch"));
        }
        let record_end = cursor.position + length as usize;
        let mut record = Cursor { bytes: &cursor.bytes[..record_end], position: cursor.position };
        record.take(1).ok_or(bad("attributes"))?;
        record.varlong().ok_or(bad("timestamp delta"))?;
        let offset_delta = i64::from(record.varint().ok_or(bad("offset delta"))?);
        if offset_delta <= previous_offset_delta {
            return Err(bad("offset delta does not increase"));
        }
        previous_offset_delta = offset_delta;
        record.nullable_bytes().ok_or(bad("key"))?;
        record.nullable_bytes().ok_or(bad("value"))?;
        let headers_count = record.varint().ok_or(bad("headers count"))?;
        if headers_count < 0 {
            return Err(bad("negative headers count"));
        }
        // Each header is at least two bytes, so the remaining length bounds this loop.
        for _ in 0..headers_count {
            let key = record.nullable_bytes().ok_or(bad("header key"))?;
            if key.is_none() {
                return Err(bad("null header key"));
            }
            record.nullable_bytes().ok_or(bad("header value"))?;
        }
        if record.position != record_end {
            return Err(bad("fields do not fill the record length"));
        }
        cursor.position = record_end;
    }
    if previous_offset_delta != i64::from(info.last_offset_delta) {
        return Err(BatchError::BadLastOffsetDelta { last_offset_delta: info.last_offset_delta });
    }
    if cursor.position != records.len() {
        return Err(BatchError::TrailingBytes {
            records_end: HEADER_SIZE_BYTES + cursor.position,
            batch_size: info.size_bytes,
        });
    }
    Ok(())
}

struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        let end = self.position.checked_add(count)?;
        let slice = self.bytes.get(self.position..end)?;
        self.position = end;
        Some(slice)
    }

    fn unsigned_varint(&mut self, max_bytes: usize) -> Option<u64> {
        let mut value: u64 = 0;
        for index in 0..max_bytes {
            let byte = *self.bytes.get(self.position)?;
            self.position += 1;
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn varint(&mut self) -> Option<i32> {
        let raw = self.unsigned_varint(5)?;
        let raw = u32::try_from(raw).ok()?;
        Some(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    fn varlong(&mut self) -> Option<i64> {
        let raw = self.unsigned_varint(10)?;
        Some(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// A varint length followed by that many bytes; -1 means null.
    fn nullable_bytes(&mut self) -> Option<Option<&'a [u8]>> {
        let length = self.varint()?;
        match length {
            -1 => Some(None),
            length if length < 0 => None,
            length => self.take(length as usize).map(Some),
        }
    }
}

pub mod build;
pub mod convert;
pub mod decompress;
pub mod rewrite;
pub mod validate;

#[cfg(test)]
mod tests;
