//! The flusher: group commit. One task per log, spawned on demand, that writes queued appends,
//! runs ONE fdatasync covering every append that queued up meanwhile, acknowledges them, and
//! then persists sealed segments' indexes and the recovery checkpoint.
//!
//! Raft-shaped: local durability (`on_durable`: `synced` moves) and commit (`commit`: the high
//! watermark, the commit index, moves and the appends it covers are acknowledged) are two
//! events. A log that is its own quorum (one replica) commits right after each sync
//! (`commit_local`); a replicated partition's replica will commit what a majority holds.
//!
//! Storage-fault policy (DESIGN.md): a write failing with ENOSPC rolls the failed appends (and
//! every append queued behind them) back, truncates their bytes and sets `NoSpace`; any other
//! write error and every fdatasync error take the log offline. Nothing is ever acknowledged
//! unless the policy's durability condition holds, asserted right where the ack is sent.

use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;

use super::checkpoint::{self, Checkpoint, PersistError};
use super::config::{CommitMode, FlushPolicy};
use super::error::{is_no_space, LogError, LogStatus};
use super::intent::{self, Intent};
use super::leader_epochs;
use super::segment::{self, IndexWrite};
use super::state::{self, AckOn, AppendInfo, LogPosition, PendingAppend, Shared, State};
use crate::io::File;

/// Starts the flusher unless it is running. Called with the state borrowed (synchronously).
pub fn ensure_flusher(shared: &Rc<Shared>, state: &mut State) {
    if state.flusher_running {
        // It may be sleeping out a flush interval; new appends are acknowledged after their
        // write, not after the interval.
        shared.flusher_wake.notify_waiters();
        return;
    }
    state.flusher_running = true;
    // Detached: the task holds its own `Rc` and ends when there is nothing left to do.
    drop(crate::io::spawn_local(run(Rc::clone(shared))));
}

enum Next {
    Turn,
    SleepFor(Duration),
    Exit,
}

async fn run(shared: Rc<Shared>) {
    loop {
        turn(&shared).await;
        match next(&shared) {
            Next::Turn => {}
            Next::SleepFor(duration) => {
                // `close` wakes the flusher early so the final sync does not wait out the interval.
                let _ = crate::io::timeout(duration, shared.flusher_wake.notified()).await;
            }
            Next::Exit => {
                shared.flusher_idle.notify_waiters();
                return;
            }
        }
    }
}

/// One round: write what is queued, sync as the policy says, acknowledge, persist metadata.
async fn turn(shared: &Rc<Shared>) {
    let mut group = take_group(shared);
    if !group.is_empty() {
        let intent_written = match record_intent(shared, &group).await {
            Ok(written) => written,
            Err(PersistError::Write(error)) => {
                // Rewriting the 28-byte file in place needs no space, so nothing stale remains.
                on_write_error(shared, group, error, false).await;
                return;
            }
            Err(PersistError::Sync(error)) => {
                go_offline(shared, format!("fdatasync of the write intent failed: {error}"));
                fail_group(group, || LogError::Offline);
                return;
            }
        };
        if let Err(error) = write_group(shared, &mut group).await {
            on_write_error(shared, group, error, intent_written).await;
            return;
        }
        // io_uring yields here anyway (the sync is another submission); the simulated disk
        // completes instantly, so yield explicitly to give tests and the simulator the same
        // "written but not yet synced" interleavings.
        crate::io::yield_now().await;
        let mut state = shared.state.borrow_mut();
        let last = &group[group.len() - 1];
        state.written = LogPosition {
            offset: last.next_offset,
            segment_base_offset: last.segment_base_offset,
            position_bytes: last.position_bytes + last.size_bytes,
        };
    }
    match shared.config().flush {
        FlushPolicy::EveryAppend => {
            if group.is_empty() {
            } else {
                match sync_all(shared).await {
                    Ok(()) => {
                        await_commit(shared, group);
                        commit_local(shared);
                    }
                    Err(SyncFailure::Data) => fail_group(group, || LogError::Offline),
                    Err(SyncFailure::IntentReset) => fail_group(group, || LogError::Unconfirmed),
                }
            }
        }
        FlushPolicy::IntervalMs(interval_ms) => {
            await_commit(shared, group);
            commit_local(shared);
            if sync_due(shared, interval_ms) {
                // An error has taken the log offline; nothing more to do this turn.
                let _ = sync_all(shared).await;
            }
        }
    }
    seal_and_checkpoint(shared).await;
}

/// Decides, atomically with the queue check, whether the flusher goes on.
fn next(shared: &Shared) -> Next {
    let mut state = shared.state.borrow_mut();
    if let LogStatus::Offline { .. } = state.status {
        fail_pending(&mut state, || LogError::Offline);
    } else if !state.pending.is_empty() {
        return Next::Turn;
    } else if let FlushPolicy::IntervalMs(interval_ms) = shared.config().flush {
        if state.written.offset > state.synced.offset {
            let since_sync = state.last_sync_at.map_or(Duration::MAX, |at| at.elapsed());
            let interval = Duration::from_millis(interval_ms);
            if state.closing || since_sync >= interval {
                return Next::Turn;
            }
            return Next::SleepFor(interval - since_sync);
        }
    }
    state.flusher_running = false;
    Next::Exit
}

/// Before a group of two or more batches, durably records its offset range (see `intent.rs`:
/// it lets recovery tell a torn group from corrupted acknowledged data). True if written.
/// The range starts at the synced end, not at the group: under `FlushPolicy::IntervalMs`
/// earlier, still unsynced groups can be torn too.
async fn record_intent(shared: &Shared, group: &[PendingAppend]) -> Result<bool, PersistError> {
    let (synced, unsynced_before) = {
        let state = shared.state.borrow();
        (state.synced.offset, usize::from(state.written.offset > state.synced.offset))
    };
    let batches: usize = group.iter().map(|append| append.batches.len()).sum();
    if batches + unsynced_before < 2 {
        return Ok(false);
    }
    assert!(synced <= group[0].base_offset);
    let range = Intent { start_offset: synced, end_offset: group[group.len() - 1].next_offset };
    let file = intent_file(shared).map_err(PersistError::Write)?;
    intent::write(&file, &range).await?;
    shared.state.borrow_mut().intent_outstanding = true;
    Ok(true)
}

/// The log's handle on the `write-intent` file (opened once: no open() per group).
pub fn intent_file(shared: &Shared) -> std::io::Result<File> {
    let mut cached = shared.intent_file.borrow_mut();
    if let Some(file) = cached.as_ref() {
        return Ok(file.clone());
    }
    let file = intent::open(&shared.disk, &shared.dir)?;
    // The intent is useless if its directory entry can vanish in a crash.
    shared.disk.sync_dir(&shared.dir)?;
    *cached = Some(file.clone());
    Ok(file)
}

fn fail_group(group: Vec<PendingAppend>, make_error: impl Fn() -> LogError) {
    for append in group {
        let _ = append.done.send(Err(make_error()));
    }
}

fn take_group(shared: &Shared) -> Vec<PendingAppend> {
    let mut state = shared.state.borrow_mut();
    state.pending_bytes = 0;
    let group: Vec<PendingAppend> = state.pending.drain(..).collect();
    if let Some(first) = group.first() {
        assert_eq!(first.base_offset, state.written.offset, "appends are written in offset order");
    }
    group
}

/// Writes the group: one write per run of appends in the same segment.
async fn write_group(shared: &Shared, group: &mut [PendingAppend]) -> std::io::Result<()> {
    let mut start = 0;
    while start < group.len() {
        let segment_base_offset = group[start].segment_base_offset;
        let run_length = group[start..]
            .iter()
            .take_while(|append| append.segment_base_offset == segment_base_offset)
            .count();
        let run = &mut group[start..start + run_length];
        let position_bytes = run[0].position_bytes;
        let buffer = concatenate(run);
        let file = file_to_write(shared, segment_base_offset);
        let (result, _) = file.write_all_at(buffer, position_bytes).await;
        result?;
        start += run_length;
    }
    Ok(())
}

/// The run's batches as one buffer (one copy per group; a lone batch is not copied).
fn concatenate(run: &mut [PendingAppend]) -> BytesMut {
    for pair in run.windows(2) {
        assert_eq!(pair[0].position_bytes + pair[0].size_bytes, pair[1].position_bytes);
    }
    if run.len() == 1 && run[0].batches.len() == 1 {
        return std::mem::take(&mut run[0].batches[0]);
    }
    let size_bytes: u64 = run.iter().map(|append| append.size_bytes).sum();
    let mut buffer = BytesMut::with_capacity(size_bytes as usize);
    for append in run.iter_mut() {
        for batch in append.batches.drain(..) {
            buffer.extend_from_slice(&batch);
        }
    }
    assert_eq!(buffer.len() as u64, size_bytes);
    buffer
}

/// The segment's file, remembered as needing a sync.
fn file_to_write(shared: &Shared, segment_base_offset: i64) -> File {
    let mut state = shared.state.borrow_mut();
    let index = state.segment_by_base(segment_base_offset);
    let Some(index) = index else { unreachable!("a queued append's segment exists") };
    let file = state.segments[index].file.clone();
    if !state.unsynced_files.iter().any(|(base, _)| *base == segment_base_offset) {
        state.unsynced_files.push((segment_base_offset, file.clone()));
    }
    file
}

fn sync_due(shared: &Shared, interval_ms: u64) -> bool {
    let state = shared.state.borrow();
    let since_sync = state.last_sync_at.map_or(Duration::MAX, |at| at.elapsed());
    state.written.offset > state.synced.offset
        && (state.closing || since_sync >= Duration::from_millis(interval_ms))
}

/// Why [`sync_all`] failed. Either way the log is offline (never retried: "fsyncgate").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncFailure {
    /// A data or directory sync failed: the unsynced tail was cut off, nothing of it is
    /// acknowledged.
    Data,
    /// The data is durable, but the write intent over it could not be reset durably: a stale
    /// range over acknowledged batches would let recovery take rot in them for a torn group
    /// (seed 103791's loss), so the group is not acknowledged; whether it is in the log is
    /// unknown to its producers until the log is recovered.
    IntentReset,
}

/// fdatasync every written file, oldest first, then the directory if segments came or went,
/// then the write intent's reset. On error the log goes offline (never retried: "fsyncgate").
pub async fn sync_all(shared: &Shared) -> Result<(), SyncFailure> {
    let (files, dir_dirty, target) = {
        let mut state = shared.state.borrow_mut();
        let dir_dirty = std::mem::replace(&mut state.dir_dirty, false);
        (std::mem::take(&mut state.unsynced_files), dir_dirty, state.written)
    };
    for (base_offset, file) in files {
        let started_at = crate::io::now();
        if let Err(error) = file.sync_data().await {
            go_offline(shared, format!("fdatasync of segment {base_offset} failed: {error}"));
            discard_unsynced_tail(shared).await;
            return Err(SyncFailure::Data);
        }
        let mut state = shared.state.borrow_mut();
        state.data_syncs += 1;
        state.sync_latency.record(crate::io::now().duration_since(started_at));
    }
    if dir_dirty {
        if let Err(error) = shared.disk.sync_dir(&shared.dir) {
            go_offline(shared, format!("fsync of the partition directory failed: {error}"));
            return Err(SyncFailure::Data);
        }
    }
    if let Err(error) = clear_intent_after_sync(shared, target.offset).await {
        go_offline(shared, format!("resetting the write intent failed: {error:?}"));
        return Err(SyncFailure::IntentReset);
    }
    on_durable(shared, target);
    commit_local(shared);
    Ok(())
}

/// Local durability, one event: everything up to `target` is fdatasync'd (data, directory,
/// the intent's reset). It moves `synced`, never the high watermark: that is `commit`'s.
fn on_durable(shared: &Shared, target: LogPosition) {
    let mut state = shared.state.borrow_mut();
    assert!(target.offset >= state.synced.offset, "durability never goes back");
    assert!(target.offset <= state.written.offset, "durable beyond what was written");
    state.synced = target;
    state.last_sync_at = Some(crate::io::now());
}

/// A log that is its own quorum (one replica: today's single node) commits what it holds:
/// what is durable, or under `FlushPolicy::IntervalMs` what is written (acknowledged before
/// its sync by that policy's choice). A replicated partition's replica will call [`commit`]
/// instead, with the offset a majority holds durably.
fn commit_local(shared: &Shared) {
    if shared.config().commit == CommitMode::Quorum {
        acknowledge_durable(shared);
        let (commit_index, synced) = {
            let state = shared.state.borrow();
            (state.commit_index, state.synced.offset)
        };
        commit(shared, commit_index.min(synced));
        shared.durable_changed.notify_waiters();
        return;
    }
    let offset = {
        let state = shared.state.borrow();
        match shared.config().flush {
            FlushPolicy::EveryAppend => state.synced.offset,
            FlushPolicy::IntervalMs(_) => state.written.offset,
        }
    };
    commit(shared, offset);
    // Its own quorum: whatever waited is covered now.
    assert!(shared.state.borrow().awaiting_commit.is_empty(), "a local commit left acks waiting");
}

/// A replicated log answers a follower's copies once they are durable; they wait behind any
/// earlier append that waits for its commit (answers go out in offset order).
fn acknowledge_durable(shared: &Shared) {
    let group: Vec<PendingAppend> = {
        let mut state = shared.state.borrow_mut();
        let synced = state.synced.offset;
        let durable = state
            .awaiting_commit
            .iter()
            .take_while(|append| append.ack_on == AckOn::Durable && append.next_offset <= synced)
            .count();
        state.awaiting_commit.drain(..durable).collect()
    };
    if !group.is_empty() {
        acknowledge(shared, group);
    }
}

/// Appends written (and, as the policy says, synced) wait here for the commit that covers them.
fn await_commit(shared: &Shared, group: Vec<PendingAppend>) {
    let mut state = shared.state.borrow_mut();
    for append in group {
        let last = state.awaiting_commit.back().map_or(i64::MIN, |last| last.next_offset);
        assert!(append.base_offset >= last, "appends await their commit in offset order");
        state.awaiting_commit.push_back(append);
    }
}

/// Moves the high watermark (the commit index) up to `offset` and acknowledges, in offset
/// order, every append it now covers. Never above the synced offset under
/// `FlushPolicy::EveryAppend` (asserted again per acknowledgement), never above the written.
pub fn commit(shared: &Shared, offset: i64) {
    let mut state = shared.state.borrow_mut();
    let every_append = shared.config().flush == FlushPolicy::EveryAppend;
    assert!(!every_append || offset <= state.synced.offset, "commit above the synced offset");
    assert!(offset <= state.written.offset, "commit above the written offset");
    let moved = offset > state.high_watermark;
    state.high_watermark = state.high_watermark.max(offset);
    let covered = state
        .awaiting_commit
        .iter()
        .take_while(|append| append.next_offset <= state.high_watermark)
        .count();
    let group: Vec<PendingAppend> = state.awaiting_commit.drain(..covered).collect();
    drop(state);
    if !group.is_empty() {
        acknowledge(shared, group);
    } else if moved {
        shared.high_watermark_changed.notify_waiters();
    }
}

/// After a failed fdatasync the page cache still holds the bytes that never reached the disk,
/// marked clean by the kernel ("fsyncgate"). Cut them off (the log is offline already): else a
/// restart of the process, not of the machine, would recover them as log and acknowledge
/// appends behind a region that a later power failure loses. Found by the simulator; see the
/// regression test `a_failed_fsync_leaves_nothing_for_a_process_restart_to_resurrect`.
async fn discard_unsynced_tail(shared: &Shared) {
    // Through the open handles, never by path: a log whose disk crashed under it (its handles
    // now fail) must not touch the files of the log re-opened in its place. Later segments are
    // emptied, not removed; recovery deletes them as segments that never became durable.
    let (synced, files): (LogPosition, Vec<(i64, File)>) = {
        let state = shared.state.borrow();
        let files = state
            .segments
            .iter()
            .filter(|segment| segment.base_offset >= state.synced.segment_base_offset)
            .map(|segment| (segment.base_offset, segment.file.clone()))
            .collect();
        (state.synced, files)
    };
    for (base_offset, file) in files {
        let keep_bytes =
            if base_offset == synced.segment_base_offset { synced.position_bytes } else { 0 };
        // The cut is synced too (best effort): when the failed sync was another file's, this
        // segment's unsynced writes are still queued for the disk, and a power failure that
        // persisted them but not the cut would bring back appends already failed.
        let cut = match file.set_len(keep_bytes).await {
            Ok(()) => file.sync_data().await,
            Err(error) => Err(error),
        };
        if let Err(error) = cut {
            tracing::error!(
                dir = %shared.dir.display(),
                base_offset,
                %error,
                "log: could not cut the unsynced tail durably; its bytes may come back",
            );
        }
    }
}

/// Everything the intent covered is durable now: reset it, durably, before anything it covers
/// is acknowledged. Why synced: a stale range left by a crash would cover acknowledged
/// batches, and if at-rest corruption later hit one of them with nothing intact beyond the
/// range, recovery would truncate it as a torn group (found by the simulator, seed 103791).
/// Why before the acknowledgement: a reset that failed left such a range on disk, with the
/// group acknowledged (found by the simulator, `single-broker-idempotent` seed 21556).
async fn clear_intent_after_sync(shared: &Shared, synced_offset: i64) -> Result<(), PersistError> {
    if !shared.state.borrow().intent_outstanding {
        return Ok(());
    }
    let empty = Intent { start_offset: synced_offset, end_offset: synced_offset };
    let file = intent_file(shared).map_err(PersistError::Write)?;
    intent::write(&file, &empty).await?;
    shared.state.borrow_mut().intent_outstanding = false;
    Ok(())
}

/// Answers appends that `commit` covered, in offset order.
fn acknowledge(shared: &Shared, group: Vec<PendingAppend>) {
    let mut state = shared.state.borrow_mut();
    let every_append = shared.config().flush == FlushPolicy::EveryAppend;
    let now = crate::io::now();
    for append in group {
        // THE durability invariant: no append is acknowledged above the synced offset.
        assert!(
            !every_append || append.next_offset <= state.synced.offset,
            "ack of offsets up to {} above the synced offset {}",
            append.next_offset - 1,
            state.synced.offset
        );
        if let Some((offset, timestamp_ms)) = append.max_timestamp {
            if state.max_timestamp.is_none_or(|(_, max_ms)| timestamp_ms > max_ms) {
                state.max_timestamp = Some((offset, timestamp_ms));
            }
        }
        assert!(append.next_offset <= state.synced.offset || !every_append, "ack above durable");
        assert!(
            append.ack_on == AckOn::Durable || append.next_offset <= state.high_watermark,
            "acknowledged above the commit"
        );
        // A cut of a replicated log (`truncate.rs`) rebuilds the producer state of all it
        // keeps, appends still awaiting their commit included: those are in it already.
        // Acks go in offset order (`await_commit` queues them so).
        if append.next_offset > state.producers_durable_offset {
            if let Some(batch) = &append.producer_batch {
                state.producers_durable.apply(batch, append.base_offset, append.next_offset - 1);
            }
            state.producers_durable_offset = append.next_offset;
        }
        state.append_latency.record(now.duration_since(append.admitted_at));
        let info = AppendInfo {
            base_offset: append.base_offset,
            last_offset: append.next_offset - 1,
            log_start_offset: state.log_start_offset,
        };
        // The caller may have stopped waiting; the data is durable either way.
        let _ = append.done.send(Ok(info));
    }
    drop(state);
    shared.high_watermark_changed.notify_waiters();
}

/// Rolls back the failed group and everything queued behind it, then truncates their bytes.
async fn on_write_error(
    shared: &Shared,
    group: Vec<PendingAppend>,
    error: std::io::Error,
    intent_written: bool,
) {
    // A replicated log cannot roll an append back and go on: its replica already counts the
    // batches (a leader reported them, a follower took them), so any failed write takes it
    // offline, which stops the replica until the log is re-opened.
    let no_space = is_no_space(&error) && shared.config().commit == CommitMode::Local;
    let to = LogPosition {
        offset: group[0].base_offset,
        segment_base_offset: group[0].segment_base_offset,
        position_bytes: group[0].position_bytes,
    };
    let (file, removed) = {
        let mut state = shared.state.borrow_mut();
        let rolled_back = rollback(&mut state, to);
        restore_producers_below(&mut state, to.offset);
        state.rollbacks += 1;
        let make_error = || if no_space { LogError::NoSpace } else { LogError::Offline };
        for append in group {
            let _ = append.done.send(Err(make_error()));
        }
        fail_pending(&mut state, make_error);
        rolled_back
    };
    // Duplicates waiting for a rolled-back original must fail now.
    shared.high_watermark_changed.notify_waiters();
    if no_space {
        tracing::warn!(
            dir = %shared.dir.display(),
            offset = to.offset,
            "log: disk full; appends fail until space is free",
        );
        let mut state = shared.state.borrow_mut();
        state.status = LogStatus::NoSpace;
        state.no_space_checked_at = Some(crate::io::now());
    } else {
        go_offline(shared, format!("write at offset {} failed: {error}", to.offset));
    }
    for base_offset in removed {
        segment::remove_files(&shared.disk, &shared.dir, base_offset);
    }
    // The failed group's offsets will be reused: its intent must not outlive it.
    let empty = Intent { start_offset: to.offset, end_offset: to.offset };
    if intent_written {
        let written = match intent_file(shared) {
            Ok(file) => intent::write(&file, &empty).await,
            Err(error) => Err(PersistError::Write(error)),
        };
        if let Err(error) = written {
            go_offline(shared, format!("resetting the write intent failed: {error:?}"));
        }
    }
    match file.set_len(to.position_bytes).await {
        // The truncation becomes durable with the next sync, before anything behind it is acked.
        Ok(()) => {
            let mut state = shared.state.borrow_mut();
            state.unsynced_files.push((to.segment_base_offset, file));
        }
        Err(error) => go_offline(shared, format!("truncating a failed append failed: {error}")),
    }
}

/// The producer state of the log below `offset`, where a failed write cut it: that of the
/// acknowledged batches (see `idempotence.rs`) and, in a replicated log, of the batches
/// written since that still await their commit (or a follower's, their sync).
fn restore_producers_below(state: &mut State, offset: i64) {
    let mut producers = state.producers_durable.clone();
    let mut next_offset = state.producers_durable_offset;
    let written = |append: &&PendingAppend| {
        // Below `producers_durable_offset`: kept by a cut, whose rebuild holds them already.
        append.next_offset > state.producers_durable_offset && append.next_offset <= offset
    };
    for append in state.awaiting_commit.iter().filter(written) {
        assert_eq!(append.base_offset, next_offset, "written appends follow the acknowledged");
        if let Some(batch) = &append.producer_batch {
            producers.apply(batch, append.base_offset, append.next_offset - 1);
        }
        next_offset = append.next_offset;
    }
    assert_eq!(next_offset, offset, "below a failed write, every append is written");
    state.producers = producers;
}

/// Forgets everything from `to` on: later segments and the target segment's tail.
fn rollback(state: &mut State, to: LogPosition) -> (File, Vec<i64>) {
    assert_eq!(state.written.offset, to.offset, "only unwritten appends are rolled back");
    let Some(index) = state.segment_by_base(to.segment_base_offset) else {
        unreachable!("the failed append's segment exists")
    };
    let removed: Vec<i64> =
        state.segments.drain(index + 1..).map(|segment| segment.base_offset).collect();
    state.segments_to_seal.retain(|base_offset| *base_offset < to.segment_base_offset);
    state.unsynced_files.retain(|(base_offset, _)| !removed.contains(base_offset));
    state.dir_dirty |= !removed.is_empty();
    let segment = &mut state.segments[index];
    segment.truncate_to(to.position_bytes, to.offset);
    let file = segment.file.clone();
    state.log_end_offset = to.offset;
    state.leader_epochs.truncate_from(to.offset);
    state.check_invariants();
    (file, removed)
}

fn fail_pending(state: &mut State, make_error: impl Fn() -> LogError) {
    state.pending_bytes = 0;
    for append in state.pending.drain(..) {
        let _ = append.done.send(Err(make_error()));
    }
}

/// Takes the log offline: every read and write fails until it is re-opened.
pub fn go_offline(shared: &Shared, reason: String) {
    tracing::error!(dir = %shared.dir.display(), %reason, "log: storage fault; partition offline");
    {
        let mut state = shared.state.borrow_mut();
        if !matches!(state.status, LogStatus::Offline { .. }) {
            state.status = LogStatus::Offline { reason };
        }
        fail_pending(&mut state, || LogError::Offline);
    }
    shared.high_watermark_changed.notify_waiters();
    shared.durable_changed.notify_waiters();
}

/// Persists the indexes of sealed (fully durable) segments, and, when due, the active
/// segment's durable index entries followed by the recovery checkpoint.
/// A producer snapshot follows each checkpoint, so that opening the log replays about as
/// much as recovery scans.
pub async fn seal_and_checkpoint(shared: &Shared) {
    let Some((writes, synced)) = plan_persistence(shared, false) else { return };
    persist(shared, writes, synced, false).await;
    if shared.state.borrow().unusable().is_none() {
        super::idempotence::snapshot(shared).await;
    }
}

/// What to persist: index writes and the checkpoint position; `None` when nothing is due.
pub fn plan_persistence(shared: &Shared, force: bool) -> Option<(Vec<IndexWrite>, LogPosition)> {
    let mut state = shared.state.borrow_mut();
    if state.unusable().is_some() && !state.closing {
        return None;
    }
    let synced = state.synced;
    let mut writes = Vec::new();
    let sealable: Vec<i64> = state.segments_to_seal.clone();
    for base_offset in sealable {
        let Some(index) = state.segment_by_base(base_offset) else { continue };
        let segment = &state.segments[index];
        if segment.next_offset <= synced.offset && index + 1 < state.segments.len() {
            writes.push(IndexWrite::below(segment, segment.next_offset, segment.size_bytes));
            state.segments_to_seal.retain(|base| *base != base_offset);
        }
    }
    let since_checkpoint = bytes_between(&state, state.checkpointed, synced);
    let due = force
        || !writes.is_empty()
        || since_checkpoint >= shared.config().checkpoint_interval_bytes;
    if !due || state.checkpointed == synced && writes.is_empty() {
        return None;
    }
    let index = state.segment_by_base(synced.segment_base_offset)?;
    writes.push(IndexWrite::below(&state.segments[index], synced.offset, synced.position_bytes));
    Some((writes, state::normalized(&state, synced)))
}

/// Durable bytes between two log positions (approximate across segments: counts whole
/// segments in between).
fn bytes_between(state: &State, from: LogPosition, to: LogPosition) -> u64 {
    if from.segment_base_offset == to.segment_base_offset {
        return to.position_bytes.saturating_sub(from.position_bytes);
    }
    state
        .segments
        .iter()
        .filter(|segment| {
            segment.base_offset >= from.segment_base_offset
                && segment.base_offset < to.segment_base_offset
        })
        .map(|segment| segment.size_bytes)
        .sum::<u64>()
        + to.position_bytes
}

/// Writes the planned index entries, then the checkpoint. A failed write just skips this
/// checkpoint (indexes are a cache); a failed fdatasync takes the log offline.
pub async fn persist(shared: &Shared, writes: Vec<IndexWrite>, synced: LogPosition, clean: bool) {
    for write in writes {
        match write.write(&shared.disk, &shared.dir).await {
            Ok(written) => {
                let mut state = shared.state.borrow_mut();
                if let Some(index) = state.segment_by_base(written.base_offset) {
                    written.mark_persisted(&mut state.segments[index]);
                }
            }
            Err(error) => return persist_failed(shared, error),
        }
    }
    // The checkpoint vouches for the epochs below it (recovery reads them from the file).
    if let Err(error) = persist_leader_epochs(shared, synced.offset).await {
        return persist_failed(shared, error);
    }
    let checkpoint = Checkpoint {
        segment_base_offset: synced.segment_base_offset,
        recovery_offset: synced.offset,
        position_bytes: synced.position_bytes,
        clean_shutdown: clean,
    };
    match checkpoint::write(&shared.disk, &shared.dir, &checkpoint).await {
        Ok(()) => shared.state.borrow_mut().checkpointed = synced,
        Err(error) => persist_failed(shared, error),
    }
}

/// Writes the epochs that start below `synced_offset` to the `leader-epochs` file when they
/// differ from what it holds.
async fn persist_leader_epochs(shared: &Shared, synced_offset: i64) -> Result<(), PersistError> {
    let durable = {
        let state = shared.state.borrow();
        let mut durable = state.leader_epochs.clone();
        durable.truncate_from(synced_offset);
        durable.trim_below(state.log_start_offset);
        if durable == state.leader_epochs_on_disk {
            return Ok(());
        }
        durable
    };
    leader_epochs::write(&shared.disk, &shared.dir, &durable).await?;
    shared.state.borrow_mut().leader_epochs_on_disk = durable;
    Ok(())
}

fn persist_failed(shared: &Shared, error: PersistError) {
    match error {
        PersistError::Write(error) => {
            tracing::warn!(
                dir = %shared.dir.display(),
                %error,
                "log: could not persist indexes or checkpoint; will retry",
            );
        }
        PersistError::Sync(error) => {
            go_offline(shared, format!("fdatasync of an index or the checkpoint failed: {error}"));
        }
    }
}
