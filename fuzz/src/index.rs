//! `index` target: arbitrary bytes as a segment's `.index` and `.timeindex` files, decoded and
//! validated the way recovery loads them, then looked up.
//!
//! Properties: no panic; what decodes re-encodes to the same bytes, with both columns strictly
//! increasing and every entry inside the segment; an offset lookup answers the last entry at or
//! before the wanted offset and never a position at or past the segment length; a time lookup
//! answers the first entry reaching the timestamp and never an offset past the segment's end.
//!
//! Shared by the cargo-fuzz target and `engine/tests/fuzz_corpus.rs` (included by path).

use tern::log::offset_index::{self, OffsetIndex, OffsetIndexEntry};
use tern::log::time_index::{self, TimeIndex, TimeIndexEntry};

/// Bytes of the parameters in front of the index files.
const PARAMETERS_BYTES: usize = 10;
/// Bytes of one lookup key: relative offset (u32 BE) and timestamp (i64 BE).
const LOOKUP_BYTES: usize = 12;

/// Input layout: segment size (u32 BE), relative offset end (u32 BE), index interval (u16 BE,
/// 0 read as 1); `.index` (u16 BE length, bytes); `.timeindex` (likewise); then lookup keys.
pub fn run(data: &[u8]) {
    let Some((parameters, rest)) = data.split_at_checked(PARAMETERS_BYTES) else { return };
    let segment_size_bytes = u64::from(u32::from_be_bytes(parameters[0..4].try_into().unwrap()));
    let relative_offset_end = u64::from(u32::from_be_bytes(parameters[4..8].try_into().unwrap()));
    let interval_bytes = u32::from(u16::from_be_bytes([parameters[8], parameters[9]])).max(1);
    let (offset_bytes, rest) = chunk(rest);
    let (time_bytes, lookups) = chunk(rest);
    let offsets = offset_index::decode(offset_bytes, segment_size_bytes, relative_offset_end);
    let times = time_index::decode(time_bytes, relative_offset_end);
    let keys: Vec<(u32, i64)> = lookups
        .chunks_exact(LOOKUP_BYTES)
        .map(|key| {
            let relative_offset = u32::from_be_bytes(key[0..4].try_into().unwrap());
            (relative_offset, i64::from_be_bytes(key[4..12].try_into().unwrap()))
        })
        .collect();
    if let Ok(entries) = offsets {
        check_offset_index(&entries, offset_bytes, segment_size_bytes, relative_offset_end);
        let index = OffsetIndex::from_loaded(interval_bytes, entries.clone(), segment_size_bytes);
        for &(relative_offset, _) in &keys {
            check_offset_lookup(&index, &entries, relative_offset, segment_size_bytes);
        }
    }
    if let Ok(entries) = times {
        check_time_index(&entries, time_bytes, relative_offset_end);
        let index = TimeIndex::from_loaded(entries.clone());
        assert_eq!(index.max(), entries.last().copied());
        for &(_, timestamp_ms) in &keys {
            check_time_lookup(&index, &entries, timestamp_ms, relative_offset_end);
        }
    }
}

/// A u16-BE-length-prefixed piece of `bytes` (shorter if the input ends) and the rest.
fn chunk(bytes: &[u8]) -> (&[u8], &[u8]) {
    let Some((length, rest)) = bytes.split_at_checked(2) else { return (&[], &[]) };
    let length = usize::from(u16::from_be_bytes([length[0], length[1]])).min(rest.len());
    rest.split_at(length)
}

fn check_offset_index(entries: &[OffsetIndexEntry], bytes: &[u8], size: u64, end: u64) {
    assert_eq!(offset_index::encode(entries), bytes, "a valid index re-encodes to itself");
    for pair in entries.windows(2) {
        assert!(pair[0].relative_offset < pair[1].relative_offset);
        assert!(pair[0].position_bytes < pair[1].position_bytes);
    }
    for entry in entries {
        assert!(entry.position_bytes > 0 && u64::from(entry.position_bytes) < size);
        assert!(u64::from(entry.relative_offset) < end);
    }
}

fn check_offset_lookup(
    index: &OffsetIndex,
    entries: &[OffsetIndexEntry],
    relative_offset: u32,
    segment_size_bytes: u64,
) {
    let found = index.lookup(relative_offset);
    let start = OffsetIndexEntry { relative_offset: 0, position_bytes: 0 };
    let linear = entries
        .iter()
        .rev()
        .find(|entry| entry.relative_offset <= relative_offset)
        .copied()
        .unwrap_or(start);
    assert_eq!(found, linear, "lookup({relative_offset}) is the last entry at or before it");
    let inside = found.position_bytes == 0 || u64::from(found.position_bytes) < segment_size_bytes;
    assert!(inside, "lookup({relative_offset}) points past the segment: {found:?}");
}

fn check_time_index(entries: &[TimeIndexEntry], bytes: &[u8], end: u64) {
    assert_eq!(time_index::encode(entries), bytes, "a valid time index re-encodes to itself");
    for pair in entries.windows(2) {
        assert!(pair[0].timestamp_ms < pair[1].timestamp_ms);
        assert!(pair[0].relative_offset < pair[1].relative_offset);
    }
    for entry in entries {
        assert!(entry.timestamp_ms >= 0 && u64::from(entry.relative_offset) < end);
    }
}

fn check_time_lookup(index: &TimeIndex, entries: &[TimeIndexEntry], timestamp_ms: i64, end: u64) {
    let found = index.first_at_or_after(timestamp_ms);
    let linear = entries.iter().find(|entry| entry.timestamp_ms >= timestamp_ms).copied();
    assert_eq!(found, linear, "first_at_or_after({timestamp_ms})");
    if let Some(entry) = found {
        assert!(u64::from(entry.relative_offset) < end, "time lookup past the segment: {entry:?}");
    }
}
