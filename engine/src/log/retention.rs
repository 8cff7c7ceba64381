//! Retention: which whole oldest segments to delete, by total size, by age and below the log
//! start offset.
//!
//! Kafka's rules: by age, a segment goes once its newest timestamp is more than
//! `retention_age_ms` old; by size, the oldest segment goes while the log would still hold at
//! least `retention_size_bytes` without it; by start offset, a segment goes once every offset
//! in it is below the log start offset (moved by DeleteRecords). Each deletes a prefix of the
//! segments, so the result is the longest prefix. The active (last) segment is never deleted,
//! nor any segment holding offsets at or above the high watermark (not yet durable, or not
//! yet visible).

use super::error::LogError;
use super::idempotence;
use super::partition::Log;
use super::producers::PRODUCER_EXPIRATION_MS_DEFAULT;
use super::segment::{self, Segment};

/// What retention needs to know about a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSummary {
    pub base_offset: i64,
    pub next_offset: i64,
    pub size_bytes: u64,
    /// Newest batch timestamp in the segment; `None` when no batch carries one.
    pub max_timestamp_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionLimits {
    /// -1 = unlimited.
    pub retention_size_bytes: i64,
    /// -1 = unlimited.
    pub retention_age_ms: i64,
}

impl RetentionLimits {
    pub const UNLIMITED: RetentionLimits =
        RetentionLimits { retention_size_bytes: -1, retention_age_ms: -1 };
}

/// How many of the oldest `segments` (sorted by base offset, last = active) to delete.
pub fn deletable_prefix(
    segments: &[SegmentSummary],
    limits: RetentionLimits,
    now_ms: i64,
    (log_start_offset, high_watermark): (i64, i64),
) -> usize {
    debug_assert!(segments.windows(2).all(|pair| pair[0].next_offset == pair[1].base_offset));
    let Some((_active, sealed)) = segments.split_last() else { return 0 };
    let candidates =
        sealed.iter().take_while(|segment| segment.next_offset <= high_watermark).count();
    let sealed = &sealed[..candidates];
    let by_age = if limits.retention_age_ms < 0 {
        0
    } else {
        sealed
            .iter()
            .take_while(|segment| expired(segment, limits.retention_age_ms, now_ms))
            .count()
    };
    let by_size = if limits.retention_size_bytes < 0 {
        0
    } else {
        let mut remaining_bytes: u64 = segments.iter().map(|segment| segment.size_bytes).sum();
        let retention_size_bytes = limits.retention_size_bytes as u64;
        let mut count = 0;
        for segment in sealed {
            if remaining_bytes - segment.size_bytes < retention_size_bytes {
                break;
            }
            remaining_bytes -= segment.size_bytes;
            count += 1;
        }
        count
    };
    let by_start =
        sealed.iter().take_while(|segment| segment.next_offset <= log_start_offset).count();
    let count = by_age.max(by_size).max(by_start);
    assert!(count < segments.len(), "retention must keep the active segment");
    count
}

fn expired(segment: &SegmentSummary, retention_age_ms: i64, now_ms: i64) -> bool {
    match segment.max_timestamp_ms {
        Some(max_timestamp_ms) => now_ms.saturating_sub(max_timestamp_ms) > retention_age_ms,
        // Without timestamps age cannot be judged; an empty segment holds nothing to keep.
        None => segment.size_bytes == 0,
    }
}

impl Log {
    /// Deletes whole oldest segments by size, by age and below the log start offset (never the
    /// active one, never data at or above the high watermark) and advances the log start
    /// offset. Returns how many.
    /// Also expires idle producers. Producer state in the deleted segments survives: a
    /// snapshot covering them is written first, and only segments it covers are deleted.
    pub async fn apply_retention(&self, now_ms: i64) -> Result<u32, LogError> {
        let config = self.shared.config();
        let limits = RetentionLimits {
            retention_size_bytes: config.retention_size_bytes,
            retention_age_ms: config.retention_age_ms,
        };
        {
            let mut state = self.shared.state.borrow_mut();
            if let Some(error) = state.unusable() {
                return Err(error);
            }
            idempotence::expire(&mut state, now_ms, PRODUCER_EXPIRATION_MS_DEFAULT);
        }
        self.delete_prefix(limits, now_ms).await
    }

    /// Deletes the whole segments that lie below the log start offset (after DeleteRecords).
    pub(crate) async fn delete_segments_below_start(&self) -> Result<u32, LogError> {
        self.delete_prefix(RetentionLimits::UNLIMITED, 0).await
    }

    async fn delete_prefix(&self, limits: RetentionLimits, now_ms: i64) -> Result<u32, LogError> {
        let shared = &self.shared;
        let deletable = |state: &super::state::State, covered_offset: i64| {
            let summaries: Vec<SegmentSummary> =
                state.segments.iter().map(Segment::summary).collect();
            let bounds = (state.log_start_offset, state.high_watermark);
            let count = deletable_prefix(&summaries, limits, now_ms, bounds);
            summaries[..count].iter().take_while(|s| s.next_offset <= covered_offset).count()
        };
        {
            let state = shared.state.borrow();
            if let Some(error) = state.unusable() {
                return Err(error);
            }
            if deletable(&state, i64::MAX) == 0 {
                return Ok(0);
            }
        }
        let covered_offset = idempotence::snapshot(shared).await;
        let removed: Vec<i64> = {
            let mut state = shared.state.borrow_mut();
            if let Some(error) = state.unusable() {
                return Err(error);
            }
            let count = deletable(&state, covered_offset);
            let removed: Vec<i64> =
                state.segments.drain(..count).map(|segment| segment.base_offset).collect();
            state.log_start_offset = state.log_start_offset.max(state.segments[0].base_offset);
            state.segments_to_seal.retain(|base| !removed.contains(base));
            state.unsynced_files.retain(|(base, _)| !removed.contains(base));
            state.check_invariants();
            removed
        };
        if removed.is_empty() {
            return Ok(0);
        }
        for &base_offset in &removed {
            segment::remove_files(&shared.disk, &shared.dir, base_offset);
        }
        shared.disk.sync_dir(&shared.dir)?;
        let log_start_offset = self.log_start_offset();
        tracing::info!(
            dir = %shared.dir.display(),
            segments = removed.len(),
            log_start_offset,
            "log: retention deleted segments",
        );
        Ok(removed.len() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Segments of 10 offsets and 100 bytes each, segment `i` stamped `i * 1000`.
    fn segments(count: i64) -> Vec<SegmentSummary> {
        (0..count)
            .map(|i| SegmentSummary {
                base_offset: i * 10,
                next_offset: i * 10 + 10,
                size_bytes: 100,
                max_timestamp_ms: Some(i * 1000),
            })
            .collect()
    }

    fn check(size: i64, age: i64, now_ms: i64, high_watermark: i64, expected: usize) {
        let limits = RetentionLimits { retention_size_bytes: size, retention_age_ms: age };
        let bounds = (0, high_watermark);
        assert_eq!(deletable_prefix(&segments(5), limits, now_ms, bounds), expected);
    }

    #[test]
    fn by_size_keeps_at_least_the_limit() {
        check(-1, -1, 0, 50, 0);
        check(500, -1, 0, 50, 0);
        check(400, -1, 0, 50, 1);
        check(350, -1, 0, 50, 1);
        check(0, -1, 0, 50, 4);
    }

    #[test]
    fn by_age_deletes_segments_older_than_the_limit() {
        check(-1, 1500, 3000, 50, 2); // segments stamped 0 and 1000 are > 1500 ms old
        check(-1, 0, 1_000_000, 50, 4);
        check(-1, 1500, 1000, 50, 0);
    }

    #[test]
    fn never_deletes_the_active_segment_or_beyond_the_high_watermark() {
        check(0, 0, 1_000_000, 25, 2);
        check(0, 0, 1_000_000, 0, 0);
        let limits = RetentionLimits { retention_size_bytes: 0, retention_age_ms: 0 };
        assert_eq!(deletable_prefix(&segments(1), limits, 1_000_000, (0, 10)), 0);
        assert_eq!(deletable_prefix(&[], limits, 1_000_000, (0, 10)), 0);
    }

    #[test]
    fn by_start_offset_deletes_segments_wholly_below_it() {
        let unlimited = RetentionLimits::UNLIMITED;
        let check = |start: i64, high_watermark: i64, expected: usize| {
            let bounds = (start, high_watermark);
            assert_eq!(deletable_prefix(&segments(5), unlimited, 0, bounds), expected, "{start}");
        };
        check(0, 50, 0);
        check(9, 50, 0);
        check(10, 50, 1);
        check(35, 50, 3);
        check(50, 50, 4); // never the active segment
        check(35, 20, 2); // never beyond the high watermark
    }
}
