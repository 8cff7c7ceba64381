//! One segment: a `.log` file of batches plus its in-memory offset and time indexes, and the
//! persistence of those indexes to `.index` / `.timeindex`.

use std::io;
use std::path::Path;

use super::checkpoint::PersistError;
use super::layout::{self, LOG_SUFFIX, OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX};
use super::offset_index::{self, OffsetIndex};
use super::retention::SegmentSummary;
use super::time_index::{self, TimeIndex};
use crate::io::{Disk, File, OpenOptions};
use crate::record_batch::BatchInfo;

/// A segment never spans more offsets than this, so relative offsets always fit in a u32
/// (with room to spare for one more batch's `last_offset_delta`).
pub const SEGMENT_OFFSET_SPAN_MAX: i64 = i32::MAX as i64;

#[derive(Clone)]
pub struct Segment {
    pub base_offset: i64,
    pub file: File,
    /// Bytes of batches assigned to this segment (written, or being written by the flusher).
    pub size_bytes: u64,
    /// The offset after the last batch assigned to this segment.
    pub next_offset: i64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    /// Max timestamp of the first batch: age-based rolling measures from it (as Kafka does).
    pub first_timestamp_ms: Option<i64>,
}

impl Segment {
    /// Creates an empty segment file (truncating a stale one of the same name).
    pub fn create(
        disk: &Disk,
        dir: &Path,
        base_offset: i64,
        interval_bytes: u32,
    ) -> io::Result<Segment> {
        let path = layout::segment_path(dir, base_offset, LOG_SUFFIX);
        let file = disk.open(&path, OpenOptions { create: true, truncate: true })?;
        Ok(Segment::empty(file, base_offset, interval_bytes))
    }

    pub fn empty(file: File, base_offset: i64, interval_bytes: u32) -> Segment {
        Segment {
            base_offset,
            file,
            size_bytes: 0,
            next_offset: base_offset,
            offset_index: OffsetIndex::new(interval_bytes),
            time_index: TimeIndex::new(),
            first_timestamp_ms: None,
        }
    }

    /// Offset relative to this segment; callers guarantee the span bound.
    pub fn relative(&self, offset: i64) -> u32 {
        let relative = offset - self.base_offset;
        assert!(
            (0..=u32::MAX as i64).contains(&relative),
            "offset {offset} outside segment {}",
            self.base_offset
        );
        relative as u32
    }

    /// True when a batch ending at `last_offset` still fits this segment's relative offsets.
    pub fn can_hold_offset(&self, last_offset: i64) -> bool {
        last_offset - self.base_offset < SEGMENT_OFFSET_SPAN_MAX
    }

    /// Accounts for a batch placed at `position_bytes` (appended, or found by recovery).
    pub fn on_batch(&mut self, position_bytes: u64, info: &BatchInfo) {
        assert_eq!(position_bytes, self.size_bytes, "batches are placed back to back");
        assert_eq!(info.base_offset, self.next_offset, "offsets are contiguous in a segment");
        let position = u32::try_from(position_bytes).unwrap_or(u32::MAX);
        assert!(u64::from(position) == position_bytes, "segment position beyond u32");
        let size_bytes = info.size_bytes as u32;
        self.offset_index.on_batch(self.relative(info.base_offset), position, size_bytes);
        self.time_index.on_batch(info.max_timestamp, self.relative(info.last_offset()));
        self.first_timestamp_ms.get_or_insert(info.max_timestamp);
        self.size_bytes += info.size_bytes as u64;
        self.next_offset = info.next_offset();
    }

    /// Forgets everything from `position_bytes` / `offset` on, persisted index entries
    /// included (a replica cut its uncommitted tail; the index files are rewritten after).
    pub fn cut_to(&mut self, position_bytes: u64, offset: i64) {
        assert!(position_bytes <= self.size_bytes && offset <= self.next_offset);
        assert!(offset >= self.base_offset);
        self.offset_index.forget_persisted_from_position(position_bytes);
        self.time_index.forget_persisted_from((offset - self.base_offset) as u64);
        self.truncate_to(position_bytes, offset);
    }

    /// Like [`Segment::on_batch`] for a batch behind a corrupt region: offsets jump to it.
    pub fn skip_to(&mut self, position_bytes: u64, offset: i64) {
        assert!(position_bytes >= self.size_bytes && offset >= self.next_offset);
        self.size_bytes = position_bytes;
        self.next_offset = offset;
    }

    /// Forgets everything from `position_bytes` / `offset` on (an append rolled back).
    pub fn truncate_to(&mut self, position_bytes: u64, offset: i64) {
        assert!(position_bytes <= self.size_bytes && offset <= self.next_offset);
        assert!(offset >= self.base_offset);
        self.offset_index.truncate_to_position(position_bytes);
        self.time_index.truncate_from((offset - self.base_offset) as u64);
        self.size_bytes = position_bytes;
        self.next_offset = offset;
        if position_bytes == 0 {
            self.first_timestamp_ms = None;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.size_bytes == 0
    }

    /// (offset of the last record of the batch with the largest timestamp, that timestamp).
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let entry = self.time_index.max()?;
        Some((self.base_offset + i64::from(entry.relative_offset), entry.timestamp_ms))
    }

    pub fn summary(&self) -> SegmentSummary {
        SegmentSummary {
            base_offset: self.base_offset,
            next_offset: self.next_offset,
            size_bytes: self.size_bytes,
            max_timestamp_ms: self.max_timestamp().map(|(_, timestamp_ms)| timestamp_ms),
        }
    }
}

/// Index bytes of one segment still to be written, computed while the state is borrowed and
/// written after the borrow is released.
pub struct IndexWrite {
    pub base_offset: i64,
    offset_entries: usize,
    time_entries: usize,
    offset_file_offset: u64,
    offset_bytes: Vec<u8>,
    time_file_offset: u64,
    time_bytes: Vec<u8>,
}

impl IndexWrite {
    /// Index entries of batches below `offset_end` (which must be durable) at `position_end`.
    pub fn below(segment: &Segment, offset_end: i64, position_end: u64) -> IndexWrite {
        assert!(offset_end <= segment.next_offset && position_end <= segment.size_bytes);
        let (offset_file_offset, offset_bytes) =
            segment.offset_index.unpersisted_below(position_end);
        let relative_end = (offset_end - segment.base_offset) as u64;
        let (time_file_offset, time_bytes) = segment.time_index.unpersisted_below(relative_end);
        IndexWrite {
            base_offset: segment.base_offset,
            offset_entries: offset_file_offset as usize / offset_index::ENTRY_SIZE_BYTES
                + offset_bytes.len() / offset_index::ENTRY_SIZE_BYTES,
            time_entries: time_file_offset as usize / time_index::ENTRY_SIZE_BYTES
                + time_bytes.len() / time_index::ENTRY_SIZE_BYTES,
            offset_file_offset,
            offset_bytes,
            time_file_offset,
            time_bytes,
        }
    }

    /// Writes (and syncs) the entries; empty writes still truncate stale tails so a file never
    /// holds entries beyond what memory says is persisted.
    pub async fn write(self, disk: &Disk, dir: &Path) -> Result<IndexWrite, PersistError> {
        let pieces = [
            (OFFSET_INDEX_SUFFIX, self.offset_file_offset, &self.offset_bytes),
            (TIME_INDEX_SUFFIX, self.time_file_offset, &self.time_bytes),
        ];
        for (suffix, file_offset, bytes) in pieces {
            let path = layout::segment_path(dir, self.base_offset, suffix);
            let options = OpenOptions { create: true, truncate: false };
            let file = disk.open(&path, options).map_err(PersistError::Write)?;
            let end = file_offset + bytes.len() as u64;
            if !bytes.is_empty() {
                let (result, _) = file.write_all_at(bytes.clone(), file_offset).await;
                result.map_err(PersistError::Write)?;
            }
            if file.len().map_err(PersistError::Write)? != end {
                file.set_len(end).await.map_err(PersistError::Write)?;
            }
            file.sync_data().await.map_err(PersistError::Sync)?;
        }
        Ok(self)
    }

    /// After a successful [`IndexWrite::write`]: the segment's entries are now on disk.
    pub fn mark_persisted(&self, segment: &mut Segment) {
        assert_eq!(segment.base_offset, self.base_offset);
        segment.offset_index.mark_persisted(self.offset_entries);
        segment.time_index.mark_persisted(self.time_entries);
    }
}

/// Removes a segment's files, the `.log` first: a crash part-way leaves at worst orphan index
/// files, which the next open removes.
pub fn remove_files(disk: &Disk, dir: &Path, base_offset: i64) {
    for suffix in [LOG_SUFFIX, OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        let path = layout::segment_path(dir, base_offset, suffix);
        if let Err(error) = disk.remove_file(&path) {
            if error.kind() != io::ErrorKind::NotFound {
                tracing::warn!(
                    path = %path.display(),
                    %error,
                    "log: could not remove segment file",
                );
            }
        }
    }
}
