//! The log start offset set by DeleteRecords (`log-start-offset` file), and the operation.
//!
//! Without DeleteRecords the log start offset is the first segment's base offset, known from
//! the file names. DeleteRecords moves it to any offset up to the high watermark, often inside
//! a segment, so it must be recorded: a client told "deleted below N" must never read below N
//! again, restart included. Kafka checkpoints it every minute
//! (`log.flush.start.offset.checkpoint.interval.ms`); Tern records it before answering.
//!
//! Format (20 bytes, big-endian): magic `TRLS`, version u16 (1), reserved u16, offset i64,
//! CRC32C u32 of bytes 0..16. Replaced atomically (temporary file, fdatasync, rename,
//! directory fsync). At open the start is the larger of the first segment's base offset and
//! the recorded offset (clamped to the recovered log end); a damaged file is ignored with an
//! error logged (the start then falls back to the first segment, which retention deletes
//! only as a whole).

use std::path::Path;

use super::error::LogError;
use super::partition::Log;
use crate::io::{Disk, OpenOptions};

pub const START_OFFSET_FILE_NAME: &str = "log-start-offset";
pub const START_OFFSET_SIZE_BYTES: usize = 20;
const MAGIC: [u8; 4] = *b"TRLS";
const VERSION: u16 = 1;

pub fn encode(offset: i64) -> Vec<u8> {
    assert!(offset >= 0, "log start offset {offset}");
    let mut bytes = Vec::with_capacity(START_OFFSET_SIZE_BYTES);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&VERSION.to_be_bytes());
    bytes.extend_from_slice(&0u16.to_be_bytes());
    bytes.extend_from_slice(&offset.to_be_bytes());
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    debug_assert_eq!(bytes.len(), START_OFFSET_SIZE_BYTES);
    bytes
}

/// `None` for anything but an intact version-1 record of a non-negative offset.
pub fn decode(bytes: &[u8]) -> Option<i64> {
    if bytes.len() != START_OFFSET_SIZE_BYTES || bytes[0..4] != MAGIC {
        return None;
    }
    let stored_crc = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
    if crc32c::crc32c(&bytes[..16]) != stored_crc {
        return None;
    }
    let version = u16::from_be_bytes(bytes[4..6].try_into().ok()?);
    let offset = i64::from_be_bytes(bytes[8..16].try_into().ok()?);
    (version == VERSION && offset >= 0).then_some(offset)
}

/// The recorded start offset, if any.
pub async fn read(disk: &Disk, dir: &Path) -> Option<i64> {
    let path = dir.join(START_OFFSET_FILE_NAME);
    if !disk.exists(&path) {
        return None;
    }
    let file = disk.open(&path, OpenOptions { create: false, truncate: false }).ok()?;
    let (result, bytes) = file.read_at(Vec::with_capacity(START_OFFSET_SIZE_BYTES + 1), 0).await;
    let decoded = result.ok().and_then(|_| decode(&bytes));
    if decoded.is_none() {
        tracing::error!(dir = %dir.display(), "log: ignoring a damaged log-start-offset file");
    }
    decoded
}

/// Records `offset` durably and atomically (see `replace.rs`).
async fn write(disk: &Disk, dir: &Path, offset: i64) -> std::io::Result<()> {
    let replaced = super::replace::replace_file(disk, dir, START_OFFSET_FILE_NAME, encode(offset));
    replaced.await.map_err(super::checkpoint::PersistError::into_io)
}

impl Log {
    /// DeleteRecords: makes `offset` the log start offset (records below it are gone for
    /// readers at once; whole segments below it are deleted), durably before it returns.
    /// `offset` must be at most the high watermark (`OffsetOutOfRange` otherwise); an offset
    /// at or below the current start changes nothing. Returns the log start offset after.
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let shared = &self.shared;
        // One persist at a time: two racing renames could leave the smaller offset on disk.
        while shared.start_offset_busy.get() {
            shared.start_offset_idle.notified().await;
        }
        {
            let state = shared.state.borrow();
            if let Some(error) = state.unusable() {
                return Err(error);
            }
            let (log_start_offset, high_watermark) = (state.log_start_offset, state.high_watermark);
            if offset < 0 || offset > high_watermark {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start_offset,
                    high_watermark,
                });
            }
            if offset <= log_start_offset {
                return Ok(log_start_offset);
            }
        }
        shared.start_offset_busy.set(true);
        let written = write(&shared.disk, &shared.dir, offset).await;
        shared.start_offset_busy.set(false);
        shared.start_offset_idle.notify_waiters();
        written?;
        {
            let mut state = shared.state.borrow_mut();
            // Only this function raises the start above the first segment, one call at a
            // time; retention may have moved it meanwhile, never past the high watermark.
            state.log_start_offset = state.log_start_offset.max(offset);
            state.check_invariants();
        }
        tracing::info!(dir = %shared.dir.display(), offset, "log: records deleted below");
        self.delete_segments_below_start().await?;
        Ok(self.log_start_offset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_bit_flip_is_refused() {
        let bytes = encode(1234);
        assert_eq!(decode(&bytes), Some(1234));
        assert_eq!(decode(&encode(0)), Some(0));
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode(&flipped), None, "bit {bit}");
        }
        assert_eq!(decode(&bytes[..19]), None);
    }
}
