//! Producer-id allocation for InitProducerId, shaped like Kafka's controller handing out
//! blocks of ids: shard 0 reserves a block of [`BLOCK_SIZE`] ids by durably recording the new
//! high-water mark in `<data_dir>/producer-ids` BEFORE handing out any id of the block, then
//! hands them out from memory. Other shards ask shard 0 (`Shard::call_on`). After a restart,
//! allocation resumes at the recorded mark: ids of a partly used block are skipped, never
//! reused. With a replicated controller, the block reservation becomes a controller record.
//!
//! File format (20 bytes, big-endian): magic `TRPI`, version u16 (1), reserved u16, high-water
//! mark i64 (every id below it may have been handed out), CRC32C u32 of bytes 0..16. Replaced
//! atomically (temporary file, fdatasync, rename, directory sync). A file that fails its
//! checks is never guessed around: allocation fails until an operator repairs it.

use std::cell::{Cell, RefCell};
use std::path::Path;

use crate::io::local::Notify;
use crate::io::Disk;

use super::topics::{read_whole_file, write_file_atomically};

pub const PRODUCER_IDS_FILE_NAME: &str = "producer-ids";
/// Ids reserved per durable write (Kafka's controller hands out blocks of 1000 too).
pub const BLOCK_SIZE: i64 = 1000;
const FILE_SIZE_BYTES: usize = 20;
const MAGIC: [u8; 4] = *b"TRPI";
const VERSION: u16 = 1;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProducerIdError {
    /// Reading or writing the file failed: retriable (COORDINATOR_LOAD_IN_PROGRESS).
    #[error("producer-id block file: {0}")]
    Io(#[from] std::io::Error),
    /// The file exists but is not a valid one: no id can be handed out safely.
    #[error("producer-id block file is damaged; refusing to guess the high-water mark")]
    Corrupt,
    #[error("producer ids are exhausted")]
    Exhausted,
}

pub fn encode(high_water_mark: i64) -> Vec<u8> {
    assert!(high_water_mark >= 0);
    let mut bytes = Vec::with_capacity(FILE_SIZE_BYTES);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&VERSION.to_be_bytes());
    bytes.extend_from_slice(&0u16.to_be_bytes());
    bytes.extend_from_slice(&high_water_mark.to_be_bytes());
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    bytes
}

pub fn decode(bytes: &[u8]) -> Option<i64> {
    if bytes.len() != FILE_SIZE_BYTES || bytes[0..4] != MAGIC {
        return None;
    }
    let crc = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
    let version = u16::from_be_bytes(bytes[4..6].try_into().ok()?);
    let high_water_mark = i64::from_be_bytes(bytes[8..16].try_into().ok()?);
    let valid = crc32c::crc32c(&bytes[..16]) == crc && version == VERSION && high_water_mark >= 0;
    valid.then_some(high_water_mark)
}

/// Shard 0's allocator. `next..block_end` are reserved and not yet handed out.
#[derive(Default)]
pub struct ProducerIds {
    range: RefCell<Option<(i64, i64)>>,
    /// A reservation (file write) is in flight; others wait for it.
    busy: Cell<bool>,
    idle: Notify,
}

impl ProducerIds {
    /// A fresh producer id, reserving (durably) a new block first when the current one is used.
    pub async fn allocate(&self, disk: &Disk, data_dir: &Path) -> Result<i64, ProducerIdError> {
        // Each round either takes an id, waits for the one reservation in flight, or makes it.
        loop {
            let range = *self.range.borrow();
            if let Some((next, block_end)) = range {
                if next < block_end {
                    *self.range.borrow_mut() = Some((next + 1, block_end));
                    return Ok(next);
                }
            }
            if self.busy.get() {
                self.idle.notified().await;
                continue;
            }
            self.busy.set(true);
            let reserved = self.reserve(disk, data_dir).await;
            self.busy.set(false);
            self.idle.notify_waiters();
            reserved?;
        }
    }

    /// Records `block_end + BLOCK_SIZE` as the new mark, then makes the block usable.
    async fn reserve(&self, disk: &Disk, data_dir: &Path) -> Result<(), ProducerIdError> {
        let known_end = self.range.borrow().map(|(_, block_end)| block_end);
        let block_start = match known_end {
            Some(block_end) => block_end,
            None => load(disk, data_dir).await?,
        };
        let block_end = block_start.checked_add(BLOCK_SIZE).ok_or(ProducerIdError::Exhausted)?;
        let path = data_dir.join(PRODUCER_IDS_FILE_NAME);
        write_file_atomically(disk, &path, encode(block_end)).await?;
        let previous = self.range.replace(Some((block_start, block_end)));
        assert!(previous.is_none_or(|(next, end)| next == end && end == block_start));
        tracing::info!(block_start, block_end, "reserved a block of producer ids");
        Ok(())
    }
}

/// The recorded high-water mark: 0 for a new data directory.
async fn load(disk: &Disk, data_dir: &Path) -> Result<i64, ProducerIdError> {
    let path = data_dir.join(PRODUCER_IDS_FILE_NAME);
    if !disk.exists(&path) {
        return Ok(0);
    }
    let bytes = read_whole_file(disk, &path).await?;
    decode(&bytes).ok_or_else(|| {
        tracing::error!(path = %path.display(), "producer-id block file is damaged");
        ProducerIdError::Corrupt
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{block_on, CrashMode, SimDisk};

    #[test]
    fn the_file_round_trips_and_damage_is_detected() {
        let bytes = encode(123_000);
        assert_eq!(decode(&bytes), Some(123_000));
        for position in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[position] ^= 0x10;
            assert_eq!(decode(&damaged), None, "flip at {position}");
        }
        assert_eq!(decode(&bytes[..19]), None);
    }

    #[test]
    fn ids_are_unique_and_never_reused_after_a_crash() {
        block_on(async {
            let sim = SimDisk::new(7);
            let disk = Disk::Simulated(sim.clone());
            let dir = Path::new("/data");
            disk.create_dir_all(dir).unwrap();
            let mut seen = std::collections::BTreeSet::new();
            for round in 0..3 {
                let ids = ProducerIds::default();
                for _ in 0..(BLOCK_SIZE + 5) {
                    let id = ids.allocate(&disk, dir).await.unwrap();
                    assert!(seen.insert(id), "id {id} handed out twice (round {round})");
                }
                sim.crash(CrashMode::DropUnsynced);
            }
            assert_eq!(*seen.iter().next_back().unwrap(), 5 * BLOCK_SIZE + 4);
            let path = dir.join(PRODUCER_IDS_FILE_NAME);
            let file = disk
                .open(&path, crate::io::OpenOptions { create: false, truncate: false })
                .unwrap();
            let (result, _) = file.write_all_at(vec![0xFF; 4], 8).await;
            result.unwrap();
            let ids = ProducerIds::default();
            assert!(matches!(ids.allocate(&disk, dir).await, Err(ProducerIdError::Corrupt)));
        });
    }
}
