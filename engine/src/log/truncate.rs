//! `truncate_suffix`: a follower cuts the divergent, uncommitted tail of its log (Raft's log
//! matching), so that the leader's batches can take those offsets.
//!
//! Crash safety: every step leaves a directory that recovery turns into a prefix of the old
//! log that still holds everything below the cut — either the old log or the cut one, or in
//! between (a torn cut is a shorter uncommitted tail, which the leader cuts again). So:
//! 1. producer snapshots beyond the cut are removed first (a snapshot must never describe
//!    batches the log no longer holds; an older one plus the batch headers rebuilds the same
//!    state);
//! 2. the recovery checkpoint is lowered to the cut, durably, so recovery scans (and so
//!    re-validates) everything from there instead of trusting indexes of bytes about to go;
//! 3. the write intent is reset to the cut (its range may cover batches about to go, and
//!    after the cut new batches take those offsets);
//! 4. later segments are removed, the cut segment is shortened and fdatasync'd, the
//!    directory is fsync'd;
//! 5. only then does memory follow: indexes, epochs, producer state (rebuilt from the log).
//!
//! Nothing committed is ever cut: the cut is at or above the high watermark (asserted; a
//! replica that asks for less is broken). Any I/O error takes the log offline: re-opening it
//! recovers one of the states above.

use super::checkpoint::{self, Checkpoint, PersistError};
use super::config::CommitMode;
use super::error::{LogError, LogStatus};
use super::flush;
use super::idempotence;
use super::intent::{self, Intent};
use super::partition::Log;
use super::producer_snapshot;
use super::reader::read_exactly;
use super::scan;
use super::segment::{self, IndexWrite, Segment};
use super::state::{LogPosition, Shared};

/// Bytes of a batch header that locate the next one: base offset (8) and length (4).
const LOCATE_PREFIX_BYTES: usize = 12;

impl Log {
    /// Cuts the log at `offset` (a batch boundary at or above the high watermark): batches
    /// at and above it are gone, durably, when this returns. Appends are refused meanwhile;
    /// appends at or above the cut still waiting for their commit fail with `Truncated`.
    pub async fn truncate_suffix(&self, offset: i64) -> Result<(), LogError> {
        let shared = &self.shared;
        {
            let mut state = shared.state.borrow_mut();
            assert_eq!(shared.config().commit, CommitMode::Quorum, "only a replica truncates");
            if let Some(error) = state.unusable() {
                return Err(error);
            }
            assert!(
                offset >= state.high_watermark && offset >= state.log_start_offset,
                "cut at {offset} below the high watermark {} (a committed batch)",
                state.high_watermark
            );
            if offset >= state.log_end_offset {
                return Ok(());
            }
            assert!(!state.truncating, "one truncation at a time");
            state.truncating = true;
        }
        let result = truncate(shared, offset).await;
        shared.state.borrow_mut().truncating = false;
        if let Err(error) = &result {
            if !matches!(error, LogError::NotBatchBoundary { .. }) {
                flush::go_offline(shared, format!("truncation at offset {offset} failed: {error}"));
            }
        }
        result
    }
}

async fn truncate(shared: &Shared, offset: i64) -> Result<(), LogError> {
    wait_for_flusher_idle(shared).await;
    if let Some(error) = shared.state.borrow().unusable() {
        return Err(error);
    }
    let cut = locate_cut(shared, offset).await?;
    remove_snapshots_beyond(shared, offset)?;
    lower_checkpoint(shared, cut).await?;
    reset_intent(shared, offset).await?;
    cut_files(shared, cut).await?;
    cut_memory(shared, cut);
    let write = {
        let state = shared.state.borrow();
        let index = state.segments.len() - 1;
        IndexWrite::below(&state.segments[index], cut.offset, cut.position_bytes)
    };
    let written = write.write(&shared.disk, &shared.dir).await.map_err(persist_error)?;
    {
        let mut state = shared.state.borrow_mut();
        let index = state.segments.len() - 1;
        written.mark_persisted(&mut state.segments[index]);
    }
    rebuild_producers(shared, offset).await?;
    shared.high_watermark_changed.notify_waiters();
    shared.durable_changed.notify_waiters();
    tracing::info!(dir = %shared.dir.display(), offset, "log: cut the uncommitted tail");
    Ok(())
}

fn persist_error(error: PersistError) -> LogError {
    LogError::Io(error.into_io())
}

/// Every admitted append is written and synced (or failed) when this returns; `truncating`
/// keeps new ones out, so the flusher runs dry.
async fn wait_for_flusher_idle(shared: &Shared) {
    loop {
        let idle = shared.flusher_idle.notified();
        if !shared.state.borrow().flusher_running {
            return;
        }
        idle.await;
    }
}

/// The byte position of the batch starting at `offset`, found by walking batch headers from
/// the offset index entry at or below it.
async fn locate_cut(shared: &Shared, offset: i64) -> Result<LogPosition, LogError> {
    let (file, segment_base_offset, mut position, end_bytes) = {
        let state = shared.state.borrow();
        assert_eq!(state.synced, state.written, "the flusher is idle");
        let Some(index) = state.segment_index_for(offset) else {
            unreachable!("offset {offset} >= log start has a segment")
        };
        let segment = &state.segments[index];
        let entry = segment.offset_index.lookup(segment.relative(offset));
        let position = u64::from(entry.position_bytes);
        (segment.file.clone(), segment.base_offset, position, segment.size_bytes)
    };
    let max_batch_bytes = scan::max_batch_bytes(shared.config().max_message_bytes) as u64;
    // Each round moves past one batch of at least a header: bounded by the segment's size.
    while position < end_bytes {
        let prefix = read_exactly(&file, position, LOCATE_PREFIX_BYTES).await?;
        let mut base = [0u8; 8];
        base.copy_from_slice(&prefix[..8]);
        let base_offset = i64::from_be_bytes(base);
        if base_offset == offset {
            return Ok(LogPosition { offset, segment_base_offset, position_bytes: position });
        }
        let length = i32::from_be_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
        let size_bytes = u64::try_from(i64::from(length) + 12).unwrap_or(0);
        let header_bytes = crate::record_batch::HEADER_SIZE_BYTES as u64;
        if base_offset > offset || size_bytes < header_bytes || size_bytes > max_batch_bytes {
            break;
        }
        position += size_bytes;
    }
    Err(LogError::NotBatchBoundary { offset })
}

fn remove_snapshots_beyond(shared: &Shared, offset: i64) -> Result<(), LogError> {
    let mut removed = false;
    for snapshot_offset in producer_snapshot::list(&shared.disk, &shared.dir)? {
        if snapshot_offset > offset {
            shared.disk.remove_file(&producer_snapshot::path(&shared.dir, snapshot_offset))?;
            removed = true;
        }
    }
    if removed {
        shared.disk.sync_dir(&shared.dir)?;
    }
    Ok(())
}

async fn lower_checkpoint(shared: &Shared, cut: LogPosition) -> Result<(), LogError> {
    if shared.state.borrow().checkpointed.offset <= cut.offset {
        return Ok(());
    }
    let checkpoint = Checkpoint {
        segment_base_offset: cut.segment_base_offset,
        recovery_offset: cut.offset,
        position_bytes: cut.position_bytes,
        clean_shutdown: false,
    };
    checkpoint::write(&shared.disk, &shared.dir, &checkpoint).await.map_err(persist_error)?;
    shared.state.borrow_mut().checkpointed = cut;
    Ok(())
}

async fn reset_intent(shared: &Shared, offset: i64) -> Result<(), LogError> {
    if !shared.disk.exists(&shared.dir.join(intent::INTENT_FILE_NAME)) {
        return Ok(());
    }
    let file = flush::intent_file(shared)?;
    let empty = Intent { start_offset: offset, end_offset: offset };
    intent::write(&file, &empty).await.map_err(persist_error)?;
    shared.state.borrow_mut().intent_outstanding = false;
    Ok(())
}

/// Removes the segments after the cut (newest first) and shortens the cut one, durably.
async fn cut_files(shared: &Shared, cut: LogPosition) -> Result<(), LogError> {
    let (later, file) = {
        let state = shared.state.borrow();
        let later: Vec<i64> = state
            .segments
            .iter()
            .map(|segment| segment.base_offset)
            .filter(|base_offset| *base_offset > cut.segment_base_offset)
            .collect();
        let Some(index) = state.segment_by_base(cut.segment_base_offset) else {
            unreachable!("the cut's segment exists")
        };
        (later, state.segments[index].file.clone())
    };
    for &base_offset in later.iter().rev() {
        segment::remove_files(&shared.disk, &shared.dir, base_offset);
    }
    file.set_len(cut.position_bytes).await?;
    file.sync_data().await?;
    shared.disk.sync_dir(&shared.dir)?;
    Ok(())
}

/// Memory follows the files: segments, indexes, positions, epochs, waiting appends.
fn cut_memory(shared: &Shared, cut: LogPosition) {
    let mut state = shared.state.borrow_mut();
    let Some(index) = state.segment_by_base(cut.segment_base_offset) else {
        unreachable!("the cut's segment exists")
    };
    state.segments.truncate(index + 1);
    state.segments[index].cut_to(cut.position_bytes, cut.offset);
    state.segments_to_seal.retain(|base_offset| *base_offset < cut.segment_base_offset);
    state.unsynced_files.clear();
    state.log_end_offset = cut.offset;
    state.written = cut;
    state.synced = cut;
    state.leader_epochs.truncate_from(cut.offset);
    state.max_timestamp = state
        .segments
        .iter()
        .filter_map(Segment::max_timestamp)
        .max_by_key(|&(_, timestamp_ms)| timestamp_ms);
    // Appends the cut reached were never committed: their producers retry at the leader.
    let kept = state.awaiting_commit.iter().take_while(|a| a.next_offset <= cut.offset).count();
    for append in state.awaiting_commit.drain(kept..) {
        let _ = append.done.send(Err(LogError::Truncated));
    }
    state.rollbacks += 1;
    assert!(matches!(state.status, LogStatus::Online | LogStatus::NoSpace));
}

/// Producer state is a function of the log: rebuilt for what remains, from the newest
/// snapshot at or below the cut plus the batch headers after it.
async fn rebuild_producers(shared: &Shared, offset: i64) -> Result<(), LogError> {
    let segments: Vec<Segment> = shared.state.borrow().segments.clone();
    let max_batch_bytes = scan::max_batch_bytes(shared.config().max_message_bytes);
    let (producers, snapshot_offset) =
        idempotence::rebuild(&shared.disk, &shared.dir, &segments, offset, max_batch_bytes).await?;
    let mut state = shared.state.borrow_mut();
    assert_eq!(state.log_end_offset, offset, "nothing was appended during the cut");
    state.producers_durable = producers.clone();
    state.producers = producers;
    state.producers_durable_offset = offset;
    state.snapshot_offset = snapshot_offset;
    state.check_invariants();
    Ok(())
}
