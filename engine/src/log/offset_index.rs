//! The sparse offset index of one segment: relative offset -> byte position.
//!
//! File format (`.index`): a sequence of 8-byte entries, `relative_offset: u32 BE` then
//! `position: u32 BE`, where `relative_offset` is a batch's base offset minus the segment's base
//! offset and `position` the byte position of that batch in the `.log` file. An entry is added
//! before a batch once at least `index_interval_bytes` were appended since the previous entry
//! (position 0 is implied and never stored). Both columns strictly increase. The index is a
//! cache of the log: it is validated on load and rebuilt from the log when invalid.

pub const ENTRY_SIZE_BYTES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetIndexEntry {
    pub relative_offset: u32,
    pub position_bytes: u32,
}

/// Why an index file was rejected (it is then rebuilt from the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexInvalid {
    PartialEntry { size_bytes: usize },
    NotIncreasing { entry: usize },
    OutsideSegment { entry: usize },
}

/// The in-memory index of one segment, plus how much of it is already in the `.index` file.
#[derive(Debug, Clone)]
pub struct OffsetIndex {
    entries: Vec<OffsetIndexEntry>,
    interval_bytes: u32,
    /// Bytes appended since the last entry (or since position 0).
    bytes_since_entry: u64,
    /// Entries `..persisted_entries` are written (and synced) to the `.index` file.
    persisted_entries: usize,
}

impl OffsetIndex {
    pub fn new(interval_bytes: u32) -> OffsetIndex {
        assert!(interval_bytes > 0);
        OffsetIndex {
            entries: Vec::new(),
            interval_bytes,
            bytes_since_entry: 0,
            persisted_entries: 0,
        }
    }

    /// An index whose first `persisted` entries came from the index file; the caller continues
    /// with [`OffsetIndex::on_batch`] from `end_position_bytes`.
    pub fn from_loaded(
        interval_bytes: u32,
        entries: Vec<OffsetIndexEntry>,
        end_position_bytes: u64,
    ) -> OffsetIndex {
        let persisted_entries = entries.len();
        let mut index =
            OffsetIndex { entries, interval_bytes, bytes_since_entry: 0, persisted_entries };
        index.bytes_since_entry = end_position_bytes - index.last_position_bytes();
        debug_assert!(index
            .entries
            .iter()
            .all(|entry| u64::from(entry.position_bytes) < end_position_bytes));
        index
    }

    /// Records a batch of `size_bytes` at `position_bytes`; adds an entry when due.
    pub fn on_batch(&mut self, relative_offset: u32, position_bytes: u32, size_bytes: u32) {
        if let Some(last) = self.entries.last() {
            assert!(relative_offset > last.relative_offset && position_bytes > last.position_bytes);
        }
        if self.bytes_since_entry >= u64::from(self.interval_bytes) && position_bytes > 0 {
            self.entries.push(OffsetIndexEntry { relative_offset, position_bytes });
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += u64::from(size_bytes);
    }

    /// Where to start scanning for the batch containing `relative_offset`: the last entry at
    /// or before it (a batch starts there), or the segment start.
    pub fn lookup(&self, relative_offset: u32) -> OffsetIndexEntry {
        let after = self.entries.partition_point(|entry| entry.relative_offset <= relative_offset);
        let start = OffsetIndexEntry { relative_offset: 0, position_bytes: 0 };
        after.checked_sub(1).map_or(start, |index| self.entries[index])
    }

    /// Forgets the entries of batches at or beyond `position_bytes` (an append rolled back).
    pub fn truncate_to_position(&mut self, position_bytes: u64) {
        let keep =
            self.entries.partition_point(|entry| u64::from(entry.position_bytes) < position_bytes);
        assert!(keep >= self.persisted_entries, "rolled back below persisted index entries");
        self.entries.truncate(keep);
        self.bytes_since_entry = position_bytes - self.last_position_bytes();
    }

    /// Counts entries at or beyond `position_bytes` as not persisted (they are about to be
    /// cut; the file is rewritten to match).
    pub fn forget_persisted_from_position(&mut self, position_bytes: u64) {
        let keep =
            self.entries.partition_point(|entry| u64::from(entry.position_bytes) < position_bytes);
        self.persisted_entries = self.persisted_entries.min(keep);
    }

    fn last_position_bytes(&self) -> u64 {
        self.entries.last().map_or(0, |entry| u64::from(entry.position_bytes))
    }

    pub fn entries(&self) -> &[OffsetIndexEntry] {
        &self.entries
    }

    /// Entries not yet in the file that point below `position_bytes` (only durable data may be
    /// indexed on disk), with the file offset to write them at.
    pub fn unpersisted_below(&self, position_bytes: u64) -> (u64, Vec<u8>) {
        let end =
            self.entries.partition_point(|entry| u64::from(entry.position_bytes) < position_bytes);
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
}

pub fn encode(entries: &[OffsetIndexEntry]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(entries.len() * ENTRY_SIZE_BYTES);
    for entry in entries {
        bytes.extend_from_slice(&entry.relative_offset.to_be_bytes());
        bytes.extend_from_slice(&entry.position_bytes.to_be_bytes());
    }
    bytes
}

/// Decodes and validates an index file for a segment of `segment_size_bytes` holding relative
/// offsets below `relative_offset_end`.
pub fn decode(
    bytes: &[u8],
    segment_size_bytes: u64,
    relative_offset_end: u64,
) -> Result<Vec<OffsetIndexEntry>, IndexInvalid> {
    if bytes.len() % ENTRY_SIZE_BYTES != 0 {
        return Err(IndexInvalid::PartialEntry { size_bytes: bytes.len() });
    }
    let mut entries: Vec<OffsetIndexEntry> = Vec::with_capacity(bytes.len() / ENTRY_SIZE_BYTES);
    for (index, chunk) in bytes.chunks_exact(ENTRY_SIZE_BYTES).enumerate() {
        let relative_offset = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let position_bytes = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        let increasing = entries.last().is_none_or(|last| {
            relative_offset > last.relative_offset && position_bytes > last.position_bytes
        });
        if !increasing || position_bytes == 0 {
            return Err(IndexInvalid::NotIncreasing { entry: index });
        }
        if u64::from(position_bytes) >= segment_size_bytes
            || u64::from(relative_offset) >= relative_offset_end
        {
            return Err(IndexInvalid::OutsideSegment { entry: index });
        }
        entries.push(OffsetIndexEntry { relative_offset, position_bytes });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_of(batches: &[(u32, u32, u32)], interval_bytes: u32) -> OffsetIndex {
        let mut index = OffsetIndex::new(interval_bytes);
        for &(relative_offset, position_bytes, size_bytes) in batches {
            index.on_batch(relative_offset, position_bytes, size_bytes);
        }
        index
    }

    #[test]
    fn entries_every_interval_and_lookup_finds_the_entry_at_or_before() {
        // Batches of 100 bytes holding 10 offsets each, interval 250 bytes.
        let batches: Vec<_> = (0..10).map(|i| (i * 10, i * 100, 100)).collect();
        let index = index_of(&batches, 250);
        let positions: Vec<u32> =
            index.entries().iter().map(|entry| entry.position_bytes).collect();
        assert_eq!(positions, vec![300, 600, 900]);
        let position = |relative_offset| index.lookup(relative_offset).position_bytes;
        assert_eq!((position(0), position(29), position(30), position(95)), (0, 0, 300, 900));
        assert_eq!(index.lookup(35).relative_offset, 30);
    }

    #[test]
    fn encode_decode_round_trip_and_validation() {
        let batches: Vec<_> = (0..10).map(|i| (i * 10, i * 100, 100)).collect();
        let index = index_of(&batches, 1);
        let bytes = encode(index.entries());
        assert_eq!(decode(&bytes, 1000, 100).unwrap(), index.entries());
        assert!(matches!(decode(&bytes[..5], 1000, 100), Err(IndexInvalid::PartialEntry { .. })));
        assert!(matches!(decode(&bytes, 900, 100), Err(IndexInvalid::OutsideSegment { .. })));
        assert!(matches!(decode(&bytes, 1000, 90), Err(IndexInvalid::OutsideSegment { .. })));
        let mut swapped = bytes.clone();
        swapped[8..16].copy_from_slice(&bytes[16..24]);
        assert!(matches!(decode(&swapped, 1000, 100), Err(IndexInvalid::NotIncreasing { .. })));
    }

    #[test]
    fn truncation_and_persistence_bookkeeping() {
        let batches: Vec<_> = (0..10).map(|i| (i * 10, i * 100, 100)).collect();
        let mut index = index_of(&batches, 1);
        let (file_offset, bytes) = index.unpersisted_below(500);
        assert_eq!((file_offset, bytes.len()), (0, 4 * ENTRY_SIZE_BYTES));
        index.mark_persisted(4);
        let (file_offset, bytes) = index.unpersisted_below(1000);
        assert_eq!((file_offset, bytes.len()), (32, 5 * ENTRY_SIZE_BYTES));
        index.truncate_to_position(700);
        assert_eq!(index.entries().len(), 6);
        index.on_batch(70, 700, 100);
        assert_eq!(index.entries().len(), 7);
    }
}
