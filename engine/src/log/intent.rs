//! The write intent (`write-intent` file): which offsets the group being written covers.
//!
//! Why: a crash tears unsynced writes sector by sector in any order, so a group of several
//! batches written with one fdatasync can come back as "a CRC-invalid batch with intact batches
//! behind it" although none of it was ever acknowledged. Without more information recovery
//! must call that detected loss (the storage-fault policy), which would leave the partition
//! refusing reads and writes after an ordinary power failure. So before writing a group of two
//! or more batches, the flusher durably records the group's offset range here. Recovery then
//! treats a bad batch inside that range as a torn tail (truncate) unless an intact batch
//! *beyond* the range exists — which proves the group was synced, since later groups are
//! written only after it — in which case it is detected loss as usual.
//!
//! A single-batch group needs no intent: tearing it leaves nothing intact behind it.
//!
//! Format (28 bytes, big-endian): magic `TRWI`, version u16 (1), reserved u16,
//! `start_offset` i64, `end_offset` i64 (exclusive), CRC32C u32 of bytes 0..24. An empty range
//! (start == end) means "no group in flight". Rewritten in place; fdatasync'd before the group's
//! data is written, and reset to empty after recovery and after a failed group, so a stale
//! range never covers offsets that are later reused.

use std::path::Path;

use super::checkpoint::PersistError;
use crate::io::{Disk, File, OpenOptions};

pub const INTENT_FILE_NAME: &str = "write-intent";
pub const INTENT_SIZE_BYTES: usize = 28;
const MAGIC: [u8; 4] = *b"TRWI";
const VERSION: u16 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intent {
    pub start_offset: i64,
    pub end_offset: i64,
}

impl Intent {
    pub fn covers(&self, offset: i64) -> bool {
        self.start_offset <= offset && offset < self.end_offset
    }
}

pub fn encode(intent: &Intent) -> Vec<u8> {
    assert!(intent.start_offset >= 0 && intent.start_offset <= intent.end_offset);
    let mut bytes = Vec::with_capacity(INTENT_SIZE_BYTES);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&VERSION.to_be_bytes());
    bytes.extend_from_slice(&0u16.to_be_bytes());
    bytes.extend_from_slice(&intent.start_offset.to_be_bytes());
    bytes.extend_from_slice(&intent.end_offset.to_be_bytes());
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    debug_assert_eq!(bytes.len(), INTENT_SIZE_BYTES);
    bytes
}

/// `None` for anything but an intact, non-empty version-1 intent.
pub fn decode(bytes: &[u8]) -> Option<Intent> {
    if bytes.len() != INTENT_SIZE_BYTES || bytes[0..4] != MAGIC {
        return None;
    }
    let stored_crc = u32::from_be_bytes(bytes[24..28].try_into().ok()?);
    if crc32c::crc32c(&bytes[..24]) != stored_crc {
        return None;
    }
    let version = u16::from_be_bytes(bytes[4..6].try_into().ok()?);
    let intent = Intent {
        start_offset: i64::from_be_bytes(bytes[8..16].try_into().ok()?),
        end_offset: i64::from_be_bytes(bytes[16..24].try_into().ok()?),
    };
    let plausible =
        version == VERSION && 0 <= intent.start_offset && intent.start_offset < intent.end_offset;
    plausible.then_some(intent)
}

pub async fn read(disk: &Disk, dir: &Path) -> Option<Intent> {
    let path = dir.join(INTENT_FILE_NAME);
    if !disk.exists(&path) {
        return None;
    }
    let file = disk.open(&path, OpenOptions { create: false, truncate: false }).ok()?;
    let (result, bytes) = file.read_at(Vec::with_capacity(INTENT_SIZE_BYTES + 1), 0).await;
    result.ok()?;
    decode(&bytes)
}

/// Opens (creating) the intent file; the log keeps the handle for its lifetime.
pub fn open(disk: &Disk, dir: &Path) -> std::io::Result<File> {
    disk.open(&dir.join(INTENT_FILE_NAME), OpenOptions { create: true, truncate: false })
}

/// Records `intent` durably (write + fdatasync).
pub async fn write(file: &File, intent: &Intent) -> Result<(), PersistError> {
    write_unsynced(file, intent).await.map_err(PersistError::Write)?;
    file.sync_data().await.map_err(PersistError::Sync)
}

/// Rewrites the intent without waiting for durability (only for resets to "nothing in
/// flight", whose loss in a crash is harmless).
pub async fn write_unsynced(file: &File, intent: &Intent) -> std::io::Result<()> {
    let (result, _) = file.write_all_at(encode(intent), 0).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_empty_ranges_and_bit_flips() {
        let intent = Intent { start_offset: 10, end_offset: 25 };
        let bytes = encode(&intent);
        assert_eq!(decode(&bytes), Some(intent));
        assert!(intent.covers(10) && intent.covers(24) && !intent.covers(25) && !intent.covers(9));
        assert_eq!(decode(&encode(&Intent { start_offset: 7, end_offset: 7 })), None);
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode(&flipped), None, "bit {bit}");
        }
    }
}
