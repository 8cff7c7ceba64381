//! The time index of one segment: every time the segment's maximum timestamp grows, an entry
//! (timestamp, relative offset of the last record of that batch).
//!
//! File format (`.timeindex`): 12-byte entries, `timestamp_ms: i64 BE` then
//! `relative_offset: u32 BE`; both columns strictly increase. Because an entry is written on
//! every growth (not sparsely), the first entry with `timestamp_ms >= t` names exactly the
//! first batch whose max timestamp reaches `t`, and the last entry is the segment's maximum.
//! Like the offset index it is a cache: validated on load, rebuilt from the log when invalid.

use super::offset_index::IndexInvalid;

pub const ENTRY_SIZE_BYTES: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeIndexEntry {
    pub timestamp_ms: i64,
    /// Relative offset of the last record of the batch that raised the maximum.
    pub relative_offset: u32,
}

#[derive(Debug, Clone, Default)]
pub struct TimeIndex {
    entries: Vec<TimeIndexEntry>,
    persisted_entries: usize,
}

impl TimeIndex {
    pub fn new() -> TimeIndex {
        TimeIndex::default()
    }

    pub fn from_loaded(entries: Vec<TimeIndexEntry>) -> TimeIndex {
        TimeIndex { persisted_entries: entries.len(), entries }
    }

    /// Records a batch; adds an entry when its max timestamp exceeds the segment's maximum.
    /// Batches without timestamps (-1) never add entries.
    pub fn on_batch(&mut self, max_timestamp_ms: i64, last_relative_offset: u32) {
        if let Some(last) = self.entries.last() {
            assert!(last_relative_offset > last.relative_offset);
            if max_timestamp_ms <= last.timestamp_ms {
                return;
            }
        } else if max_timestamp_ms < 0 {
            return;
        }
        self.entries.push(TimeIndexEntry {
            timestamp_ms: max_timestamp_ms,
            relative_offset: last_relative_offset,
        });
    }

    /// The segment's largest timestamp and where it is.
    pub fn max(&self) -> Option<TimeIndexEntry> {
        self.entries.last().copied()
    }

    /// The entry of the first batch whose max timestamp is at least `timestamp_ms`.
    pub fn first_at_or_after(&self, timestamp_ms: i64) -> Option<TimeIndexEntry> {
        let index = self.entries.partition_point(|entry| entry.timestamp_ms < timestamp_ms);
        self.entries.get(index).copied()
    }

    /// Counts entries at or beyond `relative_offset` as not persisted (about to be cut).
    pub fn forget_persisted_from(&mut self, relative_offset: u64) {
        let keep = self
            .entries
            .partition_point(|entry| u64::from(entry.relative_offset) < relative_offset);
        self.persisted_entries = self.persisted_entries.min(keep);
    }

    /// Forgets entries of batches at or beyond `relative_offset` (an append rolled back).
    pub fn truncate_from(&mut self, relative_offset: u64) {
        let keep = self
            .entries
            .partition_point(|entry| u64::from(entry.relative_offset) < relative_offset);
        assert!(keep >= self.persisted_entries, "rolled back below persisted time index entries");
        self.entries.truncate(keep);
    }

    /// Entries not yet in the file for batches below `relative_offset_end`, with the file
    /// offset to write them at.
    pub fn unpersisted_below(&self, relative_offset_end: u64) -> (u64, Vec<u8>) {
        let end = self
            .entries
            .partition_point(|entry| u64::from(entry.relative_offset) < relative_offset_end);
        let start = self.persisted_entries.min(end);
        ((start * ENTRY_SIZE_BYTES) as u64, encode(&self.entries[start..end]))
    }

    pub fn mark_persisted(&mut self, entries: usize) {
        assert!(entries <= self.entries.len());
        self.persisted_entries = self.persisted_entries.max(entries);
    }

    pub fn persisted_entries(&self) -> usize {
        self.persisted_entries
    }

    pub fn entries(&self) -> &[TimeIndexEntry] {
        &self.entries
    }
}

pub fn encode(entries: &[TimeIndexEntry]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(entries.len() * ENTRY_SIZE_BYTES);
    for entry in entries {
        bytes.extend_from_slice(&entry.timestamp_ms.to_be_bytes());
        bytes.extend_from_slice(&entry.relative_offset.to_be_bytes());
    }
    bytes
}

/// Decodes and validates a time index file for a segment holding relative offsets below
/// `relative_offset_end`.
pub fn decode(bytes: &[u8], relative_offset_end: u64) -> Result<Vec<TimeIndexEntry>, IndexInvalid> {
    if bytes.len() % ENTRY_SIZE_BYTES != 0 {
        return Err(IndexInvalid::PartialEntry { size_bytes: bytes.len() });
    }
    let mut entries: Vec<TimeIndexEntry> = Vec::with_capacity(bytes.len() / ENTRY_SIZE_BYTES);
    for (index, chunk) in bytes.chunks_exact(ENTRY_SIZE_BYTES).enumerate() {
        let mut timestamp = [0u8; 8];
        timestamp.copy_from_slice(&chunk[..8]);
        let timestamp_ms = i64::from_be_bytes(timestamp);
        let relative_offset = u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]);
        let increasing = entries.last().is_none_or(|last| {
            timestamp_ms > last.timestamp_ms && relative_offset > last.relative_offset
        });
        if !increasing || timestamp_ms < 0 {
            return Err(IndexInvalid::NotIncreasing { entry: index });
        }
        if u64::from(relative_offset) >= relative_offset_end {
            return Err(IndexInvalid::OutsideSegment { entry: index });
        }
        entries.push(TimeIndexEntry { timestamp_ms, relative_offset });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_only_when_the_maximum_grows_and_lookup_is_exact() {
        let mut index = TimeIndex::new();
        for (timestamp_ms, last_relative_offset) in
            [(-1, 0), (100, 1), (90, 2), (150, 3), (150, 4), (200, 5)]
        {
            index.on_batch(timestamp_ms, last_relative_offset);
        }
        let stamps: Vec<i64> = index.entries().iter().map(|entry| entry.timestamp_ms).collect();
        assert_eq!(stamps, vec![100, 150, 200]);
        assert_eq!(index.first_at_or_after(0).unwrap().relative_offset, 1);
        assert_eq!(index.first_at_or_after(101).unwrap().relative_offset, 3);
        assert_eq!(index.first_at_or_after(200).unwrap().relative_offset, 5);
        assert_eq!(index.first_at_or_after(201), None);
        assert_eq!(index.max().unwrap().timestamp_ms, 200);
    }

    #[test]
    fn encode_decode_round_trip_and_validation() {
        let mut index = TimeIndex::new();
        for i in 0..5u32 {
            index.on_batch(1000 + i64::from(i), i * 2);
        }
        let bytes = encode(index.entries());
        assert_eq!(decode(&bytes, 10).unwrap(), index.entries());
        assert!(decode(&bytes, 8).is_err());
        assert!(decode(&bytes[..13], 10).is_err());
        let mut garbage = bytes.clone();
        garbage[12..24].copy_from_slice(&bytes[..12]);
        assert!(decode(&garbage, 10).is_err());
    }

    #[test]
    fn truncate_from_drops_rolled_back_batches() {
        let mut index = TimeIndex::new();
        index.on_batch(10, 0);
        index.on_batch(20, 5);
        index.mark_persisted(1);
        index.truncate_from(5);
        assert_eq!(index.max().unwrap().timestamp_ms, 10);
        let (file_offset, bytes) = index.unpersisted_below(100);
        assert_eq!((file_offset, bytes.len()), (12, 0));
    }
}
