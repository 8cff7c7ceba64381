//! The recovery checkpoint (`recovery-point` file): how far the log is known to be durable and
//! indexed, so recovery scans only what lies after it.
//!
//! Format (36 bytes, big-endian):
//! ```text
//! offset size field
//!      0    4 magic "TRCP"
//!      4    2 version (1)
//!      6    2 flags (bit 0: clean shutdown)
//!      8    8 segment_base_offset   segment holding the recovery point
//!     16    8 recovery_offset       every batch below it is durable, and so are the index
//!                                   entries of batches below it
//!     24    8 position_bytes        byte position of `recovery_offset` in that segment
//!     32    4 crc32c of bytes 0..32
//! ```
//! It is rewritten in place and synced. A torn or stale-format checkpoint fails its CRC and is
//! ignored, which only makes recovery scan more (all segments).

use std::path::Path;

use super::layout;
use crate::io::{Disk, OpenOptions};

pub const CHECKPOINT_SIZE_BYTES: usize = 36;
const MAGIC: [u8; 4] = *b"TRCP";
const VERSION: u16 = 1;
const FLAG_CLEAN_SHUTDOWN: u16 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub segment_base_offset: i64,
    pub recovery_offset: i64,
    pub position_bytes: u64,
    pub clean_shutdown: bool,
}

pub fn encode(checkpoint: &Checkpoint) -> Vec<u8> {
    assert!(checkpoint.segment_base_offset >= 0);
    assert!(checkpoint.recovery_offset >= checkpoint.segment_base_offset);
    let flags = if checkpoint.clean_shutdown { FLAG_CLEAN_SHUTDOWN } else { 0 };
    let mut bytes = Vec::with_capacity(CHECKPOINT_SIZE_BYTES);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&VERSION.to_be_bytes());
    bytes.extend_from_slice(&flags.to_be_bytes());
    bytes.extend_from_slice(&checkpoint.segment_base_offset.to_be_bytes());
    bytes.extend_from_slice(&checkpoint.recovery_offset.to_be_bytes());
    bytes.extend_from_slice(&checkpoint.position_bytes.to_be_bytes());
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    debug_assert_eq!(bytes.len(), CHECKPOINT_SIZE_BYTES);
    bytes
}

/// `None` for anything but an intact version-1 checkpoint.
pub fn decode(bytes: &[u8]) -> Option<Checkpoint> {
    if bytes.len() != CHECKPOINT_SIZE_BYTES || bytes[0..4] != MAGIC {
        return None;
    }
    let stored_crc = u32::from_be_bytes(bytes[32..36].try_into().ok()?);
    if crc32c::crc32c(&bytes[..32]) != stored_crc {
        return None;
    }
    let version = u16::from_be_bytes(bytes[4..6].try_into().ok()?);
    let flags = u16::from_be_bytes(bytes[6..8].try_into().ok()?);
    let checkpoint = Checkpoint {
        segment_base_offset: i64::from_be_bytes(bytes[8..16].try_into().ok()?),
        recovery_offset: i64::from_be_bytes(bytes[16..24].try_into().ok()?),
        position_bytes: u64::from_be_bytes(bytes[24..32].try_into().ok()?),
        clean_shutdown: flags & FLAG_CLEAN_SHUTDOWN != 0,
    };
    let plausible = version == VERSION
        && checkpoint.segment_base_offset >= 0
        && checkpoint.recovery_offset >= checkpoint.segment_base_offset;
    plausible.then_some(checkpoint)
}

/// Why persisting (an index or the checkpoint) failed. A failed write only means "not
/// persisted this time"; a failed fdatasync is never retried as if nothing happened.
#[derive(Debug)]
pub enum PersistError {
    Write(std::io::Error),
    Sync(std::io::Error),
}

impl PersistError {
    /// The I/O error, for callers that handle a failed write and a failed sync alike.
    pub fn into_io(self) -> std::io::Error {
        match self {
            PersistError::Write(error) | PersistError::Sync(error) => error,
        }
    }
}

/// Reads the checkpoint; `None` when missing, unreadable or invalid (recovery then scans all).
pub async fn read(disk: &Disk, dir: &Path) -> Option<Checkpoint> {
    let path = dir.join(layout::CHECKPOINT_FILE_NAME);
    if !disk.exists(&path) {
        return None;
    }
    let file = match disk.open(&path, OpenOptions { create: false, truncate: false }) {
        Ok(file) => file,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "log: cannot open the checkpoint");
            return None;
        }
    };
    let (result, bytes) = file.read_at(Vec::with_capacity(CHECKPOINT_SIZE_BYTES + 1), 0).await;
    match result {
        Ok(_) => decode(&bytes),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "log: cannot read the checkpoint");
            None
        }
    }
}

/// Rewrites the checkpoint in place and syncs it.
pub async fn write(disk: &Disk, dir: &Path, checkpoint: &Checkpoint) -> Result<(), PersistError> {
    let path = dir.join(layout::CHECKPOINT_FILE_NAME);
    let options = OpenOptions { create: true, truncate: false };
    let file = disk.open(&path, options).map_err(PersistError::Write)?;
    let (result, _) = file.write_all_at(encode(checkpoint), 0).await;
    result.map_err(PersistError::Write)?;
    file.sync_data().await.map_err(PersistError::Sync)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_any_bit_flip_is_rejected() {
        let checkpoint = Checkpoint {
            segment_base_offset: 100,
            recovery_offset: 150,
            position_bytes: 4096,
            clean_shutdown: true,
        };
        let bytes = encode(&checkpoint);
        assert_eq!(decode(&bytes), Some(checkpoint));
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode(&flipped), None, "bit {bit}");
        }
        assert_eq!(decode(&bytes[..35]), None);
    }
}
