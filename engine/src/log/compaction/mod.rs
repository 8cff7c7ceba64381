//! Log compaction (`cleanup.policy=compact`): keep the latest record per key.
//!
//! Architecture invariant: the cleaner never assigns an offset and never changes what a batch
//! spans. A batch with some records removed keeps its base offset and `lastOffsetDelta` (as
//! Kafka's cleaner does); a run of batches with every record removed becomes one *filler*: an
//! empty batch spanning exactly their offsets. So batch offsets stay contiguous, and recovery
//! and reads keep checking contiguity (which is what catches a damaged base offset, since the
//! CRC does not cover it) for compacted logs exactly as for the others.
//!
//! One cleaning of a log (`Log::compact`):
//! 1. Plan: the cleanable segments are the sealed ones wholly below the high watermark, below
//!    the segment the latest recovery checkpoint points into (so recovery treats them as
//!    trusted, and a checkpoint never points into a rewritten file), and older than
//!    `min.compaction.lag.ms`. Clean only if their dirty bytes (from the first offset the
//!    previous cleaning did not cover) reach `min.cleanable.dirty.ratio` of them.
//! 2. Key map (`key_map.rs`): key -> latest offset over the dirty part, within a byte budget;
//!    when full it stops at a batch boundary and cleaning covers only up to there.
//! 3. Groups of consecutive cleanable segments (at most `segment.bytes` of input each) are each
//!    rewritten into one new segment (`clean.rs`) and swapped in (`swap.rs`), oldest first.
//!    A record is removed when a later record of its key is in the map, when it has no key, or
//!    when it is a tombstone older than `delete.retention.ms`; records at or beyond the map's
//!    end, and control batches, are kept as they are.
//!
//! The cleaner runs on its log's shard, in the background of appends and reads: it yields
//! after every batch, holds no `State` borrow across an await, and re-checks before a swap that
//! the segments it cleaned are still the log's. Crash safety: see `swap.rs`.

mod clean;
mod key_map;
mod swap;

use std::rc::Rc;

use super::error::LogError;
use super::partition::Log;
use super::segment::{Segment, SEGMENT_OFFSET_SPAN_MAX};
use super::state::{Shared, State};
use crate::io::File;

pub use swap::finish_interrupted_swap;

/// What the cleaner remembers about one log between cleanings (in memory: after a restart the
/// whole log counts as dirty once, which costs one extra cleaning, never correctness).
#[derive(Debug, Default)]
pub struct CleanerState {
    /// Offsets below this were covered by a completed cleaning's key map.
    pub first_dirty_offset: i64,
    /// A cleaning is in progress (one at a time per log).
    pub running: bool,
}

/// What one call of [`Log::compact`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanOutcome {
    /// New segments swapped in (each replaced one or more old ones).
    pub segments_swapped: u32,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Below this offset, the log is now compacted (the key map's end); 0 when nothing ran.
    pub cleaned_up_to_offset: i64,
}

/// Test hook: stop (as if the process died) after this many durable steps of a cleaning.
#[derive(Debug, Default, Clone, Copy)]
pub struct Hooks {
    pub stop_after_steps: Option<u32>,
    pub steps: u32,
}

impl Hooks {
    /// Counts a durable step; true when the test wants the cleaning to stop here.
    fn step(&mut self) -> bool {
        self.steps += 1;
        self.stop_after_steps.is_some_and(|stop| self.steps >= stop)
    }
}

/// A segment to clean, as it was when the cleaning was planned.
#[derive(Clone)]
pub struct Source {
    pub base_offset: i64,
    pub next_offset: i64,
    pub size_bytes: u64,
    pub file: File,
}

impl Log {
    /// True when this log is compacted (`cleanup.policy` includes `compact`).
    pub fn is_compacted(&self) -> bool {
        self.shared.config().compaction.enabled
    }

    /// Cleans this log if it is compacted and dirty enough (see the module docs). `now_ms` is
    /// wall-clock time: it judges `min.compaction.lag.ms` and `delete.retention.ms`.
    pub async fn compact(&self, now_ms: i64) -> Result<CleanOutcome, LogError> {
        self.compact_with(now_ms, &mut Hooks::default()).await
    }

    pub(crate) async fn compact_with(
        &self,
        now_ms: i64,
        hooks: &mut Hooks,
    ) -> Result<CleanOutcome, LogError> {
        let shared = &self.shared;
        if !shared.config().compaction.enabled || shared.cleaner.borrow().running {
            return Ok(CleanOutcome::default());
        }
        let _running = Running::start(shared);
        run(shared, now_ms, hooks).await
    }
}

/// Marks a cleaning in progress until dropped, also when the cleaning's future is dropped.
struct Running<'a>(&'a Shared);

impl<'a> Running<'a> {
    fn start(shared: &'a Shared) -> Running<'a> {
        let mut cleaner = shared.cleaner.borrow_mut();
        assert!(!cleaner.running, "one cleaning at a time per log");
        cleaner.running = true;
        Running(shared)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.cleaner.borrow_mut().running = false;
    }
}

async fn run(
    shared: &Rc<Shared>,
    now_ms: i64,
    hooks: &mut Hooks,
) -> Result<CleanOutcome, LogError> {
    let Some((sources, first_dirty_offset)) = plan(shared, now_ms)? else {
        return Ok(CleanOutcome::default());
    };
    let budget_bytes = shared.config().compaction.key_map_budget_bytes;
    let map = key_map::build(shared, &sources, first_dirty_offset, budget_bytes).await?;
    if map.end_offset <= first_dirty_offset {
        tracing::warn!(
            dir = %shared.dir.display(),
            first_dirty_offset,
            budget_bytes,
            "log: compaction key map cannot hold one batch's keys; not cleaning",
        );
        return Ok(CleanOutcome::default());
    }
    let covered: Vec<Source> =
        sources.into_iter().filter(|source| source.base_offset < map.end_offset).collect();
    let horizon_ms = now_ms.saturating_sub(shared.config().compaction.delete_retention_ms);
    let mut outcome = CleanOutcome { cleaned_up_to_offset: map.end_offset, ..Default::default() };
    for group in groups(&covered, shared.config().segment_size_bytes) {
        let cleaned = clean::clean_group(shared, group, &map, horizon_ms, hooks).await?;
        let Some(cleaned) = cleaned else { return Ok(outcome) };
        let before: u64 = group.iter().map(|source| source.size_bytes).sum();
        let after = cleaned.segment.size_bytes;
        match swap::swap_in(shared, group, cleaned, hooks).await? {
            swap::Swapped::Yes => {
                outcome.segments_swapped += 1;
                outcome.bytes_before += before;
                outcome.bytes_after += after;
            }
            swap::Swapped::Unchanged => {}
            swap::Swapped::Stopped => return Ok(outcome),
            // The log changed under the cleaner (closed, deleted, retention): try again later.
            swap::Swapped::Abandoned => return Ok(outcome),
        }
    }
    shared.cleaner.borrow_mut().first_dirty_offset = map.end_offset;
    tracing::info!(
        dir = %shared.dir.display(),
        cleaned_up_to_offset = map.end_offset,
        segments_swapped = outcome.segments_swapped,
        bytes_before = outcome.bytes_before,
        bytes_after = outcome.bytes_after,
        "log: compacted",
    );
    Ok(outcome)
}

/// The cleanable segments and the first dirty offset, when the dirty ratio asks for a cleaning.
fn plan(shared: &Shared, now_ms: i64) -> Result<Option<(Vec<Source>, i64)>, LogError> {
    let state = shared.state.borrow();
    if let Some(error) = state.unusable() {
        return Err(error);
    }
    if state.closing || state.corrupt_from.is_some() {
        return Ok(None);
    }
    let config = shared.config().compaction;
    let lag_horizon_ms = now_ms.saturating_sub(config.min_compaction_lag_ms);
    let count = cleanable_count(&state, lag_horizon_ms);
    let sources: Vec<Source> = state.segments[..count]
        .iter()
        .map(|segment| Source {
            base_offset: segment.base_offset,
            next_offset: segment.next_offset,
            size_bytes: segment.size_bytes,
            file: segment.file.clone(),
        })
        .collect();
    let first_dirty_offset = shared.cleaner.borrow().first_dirty_offset.max(state.log_start_offset);
    let sizes: Vec<(i64, u64)> =
        sources.iter().map(|source| (source.next_offset, source.size_bytes)).collect();
    if !dirty_enough(&sizes, first_dirty_offset, config.min_cleanable_dirty_ratio_ppm) {
        return Ok(None);
    }
    Ok(Some((sources, first_dirty_offset)))
}

/// How many of the oldest segments the cleaner may rewrite now.
fn cleanable_count(state: &State, lag_horizon_ms: i64) -> usize {
    let limit_offset = state.high_watermark.min(state.synced.offset);
    let checkpointed_base = state.checkpointed.segment_base_offset;
    let Some((_active, sealed)) = state.segments.split_last() else { return 0 };
    sealed
        .iter()
        .take_while(|segment| {
            segment.next_offset <= limit_offset
                && segment.base_offset < checkpointed_base
                && !state.segments_to_seal.contains(&segment.base_offset)
                && segment.max_timestamp().is_none_or(|(_, max_ms)| max_ms <= lag_horizon_ms)
        })
        .count()
}

/// True when the dirty bytes (segments ending above `first_dirty_offset`) are at least
/// `ratio_ppm` millionths of all of `segments` (`(next_offset, size_bytes)` each), and not 0.
pub fn dirty_enough(segments: &[(i64, u64)], first_dirty_offset: i64, ratio_ppm: u32) -> bool {
    let total_bytes: u64 = segments.iter().map(|(_, size_bytes)| size_bytes).sum();
    let dirty_bytes: u64 = segments
        .iter()
        .filter(|(next_offset, _)| *next_offset > first_dirty_offset)
        .map(|(_, size_bytes)| size_bytes)
        .sum();
    assert!(dirty_bytes <= total_bytes);
    dirty_bytes > 0
        && u128::from(dirty_bytes) * 1_000_000 >= u128::from(ratio_ppm) * u128::from(total_bytes)
}

/// Splits `sources` into runs rewritten as one segment each: at most `group_bytes_max` of
/// input (at least one segment) and an offset span a segment can hold.
pub fn groups(sources: &[Source], group_bytes_max: u64) -> Vec<&[Source]> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < sources.len() {
        let mut end = start + 1;
        let mut size_bytes = sources[start].size_bytes;
        while end < sources.len()
            && size_bytes + sources[end].size_bytes <= group_bytes_max
            && sources[end].next_offset - sources[start].base_offset < SEGMENT_OFFSET_SPAN_MAX
        {
            size_bytes += sources[end].size_bytes;
            end += 1;
        }
        groups.push(&sources[start..end]);
        start = end;
    }
    assert_eq!(groups.iter().map(|group| group.len()).sum::<usize>(), sources.len());
    groups
}

/// The result of rewriting one group: a synced `.cleaned` file and its in-memory segment.
pub struct Cleaned {
    pub segment: Segment,
    /// False when every batch was kept as it was (nothing to swap).
    pub changed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dirty_ratio_counts_segments_ending_above_the_first_dirty_offset() {
        let segments = [(10, 100), (20, 100), (30, 200)];
        assert!(dirty_enough(&segments, 0, 1_000_000));
        assert!(dirty_enough(&segments, 10, 500_000));
        assert!(dirty_enough(&segments, 20, 500_000));
        assert!(!dirty_enough(&segments, 20, 500_001));
        assert!(!dirty_enough(&segments, 30, 0));
        assert!(!dirty_enough(&[], 0, 0));
    }
}
