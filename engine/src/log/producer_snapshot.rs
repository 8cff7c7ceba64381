//! Producer-state snapshots (`<offset:020>.snapshot`): the producer state of a partition as
//! of `offset` (every batch below it applied, none at or above it), so that opening the log
//! replays only the batch headers from that offset on instead of the whole log.
//!
//! Format (big-endian):
//! ```text
//! offset size field
//!      0    4 magic "TRPS"
//!      4    2 version (1)
//!      6    2 reserved (0)
//!      8    8 offset               the state covers every batch below it
//!     16    4 producer_count       at most PRODUCERS_MAX
//!     20      producers, ascending by id, each:
//!               8 producer_id, 2 epoch, 8 last_timestamp_ms, 1 batch_count (1..=5),
//!               batch_count × (4 first_sequence, 4 last_sequence, 8 first_offset,
//!                              8 last_offset, 8 max_timestamp_ms)
//!    end-4    4 crc32c of every byte before it
//! ```
//! Written whole to a temporary file, fdatasync'd, renamed into place, directory synced: a
//! snapshot file is complete or absent. One that fails any check (magic, version, CRC, exact
//! length, counts, offsets ordered and below `offset`) is ignored and an older one (or the
//! start of the log) is used instead: snapshots are a cache of what the log already says.

use std::path::{Path, PathBuf};

use super::producers::PRODUCERS_MAX;
use super::producers::{BatchMeta, ProducerEntry, ProducerStates, BATCHES_RETAINED};
use crate::io::{Disk, OpenOptions};

pub const SNAPSHOT_SUFFIX: &str = "snapshot";
/// Snapshots kept per partition (the newest, and one older in case the newest is damaged).
pub const SNAPSHOTS_KEPT: usize = 2;
const MAGIC: [u8; 4] = *b"TRPS";
const VERSION: u16 = 1;
const HEADER_BYTES: usize = 20;
const PRODUCER_BYTES: usize = 19;
const BATCH_BYTES: usize = 32;
const CRC_BYTES: usize = 4;

/// Encodes `states` as of `offset`.
pub fn encode(states: &ProducerStates, offset: i64) -> Vec<u8> {
    assert!(offset >= 0 && states.len() <= PRODUCERS_MAX);
    let capacity =
        HEADER_BYTES + states.len() * (PRODUCER_BYTES + BATCHES_RETAINED * BATCH_BYTES) + CRC_BYTES;
    let mut bytes = Vec::with_capacity(capacity);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&VERSION.to_be_bytes());
    bytes.extend_from_slice(&0u16.to_be_bytes());
    bytes.extend_from_slice(&offset.to_be_bytes());
    bytes.extend_from_slice(&(states.len() as u32).to_be_bytes());
    for (producer_id, entry) in states.iter() {
        assert!(!entry.batches.is_empty() && entry.batches.len() <= BATCHES_RETAINED);
        bytes.extend_from_slice(&producer_id.to_be_bytes());
        bytes.extend_from_slice(&entry.epoch.to_be_bytes());
        bytes.extend_from_slice(&entry.last_timestamp_ms.to_be_bytes());
        bytes.push(entry.batches.len() as u8);
        for meta in &entry.batches {
            assert!(meta.last_offset < offset, "a snapshot holds only batches below its offset");
            bytes.extend_from_slice(&meta.first_sequence.to_be_bytes());
            bytes.extend_from_slice(&meta.last_sequence.to_be_bytes());
            bytes.extend_from_slice(&meta.first_offset.to_be_bytes());
            bytes.extend_from_slice(&meta.last_offset.to_be_bytes());
            bytes.extend_from_slice(&meta.max_timestamp_ms.to_be_bytes());
        }
    }
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    bytes
}

/// A cursor over untrusted bytes: every read is bounds-checked.
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let slice = self.bytes.get(self.position..self.position.checked_add(N)?)?;
        self.position += N;
        slice.try_into().ok()
    }
    fn i16(&mut self) -> Option<i16> {
        self.take::<2>().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take::<4>().map(i32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take::<8>().map(i64::from_be_bytes)
    }
}

/// `(offset, states)`, or `None` for anything but an intact version-1 snapshot.
pub fn decode(bytes: &[u8]) -> Option<(i64, ProducerStates)> {
    let body_end = bytes.len().checked_sub(CRC_BYTES)?;
    let stored_crc = u32::from_be_bytes(bytes[body_end..].try_into().ok()?);
    if body_end < HEADER_BYTES || crc32c::crc32c(&bytes[..body_end]) != stored_crc {
        return None;
    }
    let mut cursor = Cursor { bytes: &bytes[..body_end], position: 0 };
    let magic = cursor.take::<4>()?;
    let version = u16::from_be_bytes(cursor.take::<2>()?);
    let _reserved = cursor.take::<2>()?;
    let offset = cursor.i64()?;
    let count = u32::from_be_bytes(cursor.take::<4>()?) as usize;
    if magic != MAGIC || version != VERSION || offset < 0 || count > PRODUCERS_MAX {
        return None;
    }
    let mut states = ProducerStates::default();
    let mut previous_id = -1;
    for _ in 0..count {
        let producer_id = cursor.i64()?;
        if producer_id <= previous_id {
            return None;
        }
        previous_id = producer_id;
        let entry = decode_entry(&mut cursor, offset)?;
        states.insert_entry(producer_id, entry);
    }
    (cursor.position == body_end).then_some((offset, states))
}

fn decode_entry(cursor: &mut Cursor<'_>, offset: i64) -> Option<ProducerEntry> {
    let epoch = cursor.i16()?;
    let last_timestamp_ms = cursor.i64()?;
    let batch_count = usize::from(cursor.take::<1>()?[0]);
    if batch_count == 0 || batch_count > BATCHES_RETAINED {
        return None;
    }
    let mut batches = std::collections::VecDeque::with_capacity(batch_count);
    let mut previous_last_offset = -1;
    for _ in 0..batch_count {
        let meta = BatchMeta {
            first_sequence: cursor.i32()?,
            last_sequence: cursor.i32()?,
            first_offset: cursor.i64()?,
            last_offset: cursor.i64()?,
            max_timestamp_ms: cursor.i64()?,
        };
        let plausible = meta.first_sequence >= 0
            && meta.last_sequence >= 0
            && meta.first_offset > previous_last_offset
            && meta.last_offset >= meta.first_offset
            && meta.last_offset < offset;
        if !plausible {
            return None;
        }
        previous_last_offset = meta.last_offset;
        batches.push_back(meta);
    }
    Some(ProducerEntry { epoch, batches, last_timestamp_ms })
}

pub fn path(dir: &Path, offset: i64) -> PathBuf {
    super::layout::segment_path(dir, offset, SNAPSHOT_SUFFIX)
}

/// Offsets of the snapshot files in `dir`, ascending. Leftover temporary files are removed.
pub fn list(disk: &Disk, dir: &Path) -> std::io::Result<Vec<i64>> {
    let mut offsets = Vec::new();
    for name in disk.list_dir(dir)? {
        let Some((stem, suffix)) = name.split_once('.') else { continue };
        let Ok(offset) = stem.parse::<i64>() else { continue };
        if stem.len() != 20 || offset < 0 {
            continue;
        }
        match suffix {
            SNAPSHOT_SUFFIX => offsets.push(offset),
            "snapshot.tmp" => disk.remove_file(&dir.join(&name))?,
            _ => {}
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

/// Reads and decodes one snapshot; `None` when unreadable or invalid.
pub async fn read(disk: &Disk, dir: &Path, offset: i64) -> Option<ProducerStates> {
    let file =
        disk.open(&path(dir, offset), OpenOptions { create: false, truncate: false }).ok()?;
    let size_bytes = usize::try_from(file.len().ok()?).ok()?;
    let limit_bytes = HEADER_BYTES
        + PRODUCERS_MAX * (PRODUCER_BYTES + BATCHES_RETAINED * BATCH_BYTES)
        + CRC_BYTES;
    if size_bytes > limit_bytes {
        return None;
    }
    let bytes = super::reader::read_exactly(&file, 0, size_bytes).await.ok()?;
    let (decoded_offset, states) = decode(&bytes)?;
    (decoded_offset == offset).then_some(states)
}

/// Writes a snapshot atomically (temporary file, fdatasync, rename, directory sync), then
/// removes all but the newest [`SNAPSHOTS_KEPT`].
pub async fn write(disk: &Disk, dir: &Path, bytes: Vec<u8>, offset: i64) -> std::io::Result<()> {
    let target = path(dir, offset);
    let temporary = target.with_extension("snapshot.tmp");
    let file = disk.open(&temporary, OpenOptions { create: true, truncate: true })?;
    let (result, _) = file.write_all_at(bytes, 0).await;
    result?;
    file.sync_data().await?;
    drop(file);
    disk.rename(&temporary, &target)?;
    disk.sync_dir(dir)?;
    let offsets = list(disk, dir)?;
    let stale = offsets.len().saturating_sub(SNAPSHOTS_KEPT);
    for &old in &offsets[..stale] {
        disk.remove_file(&path(dir, old))?;
    }
    Ok(())
}
