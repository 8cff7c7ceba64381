//! `Log`: the handle to one partition's log, the API the broker codes against.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;

use bytes::BytesMut;

use super::append::{self, Admitted};
use super::checkpoint::PersistError;
use super::config::{CommitMode, FlushPolicy, LogConfig};
use super::error::{LogError, LogHealth, LogStatus};
use super::flush;
use super::idempotence;
use super::intent::{self, Intent};
use super::leader_epochs::LeaderEpochs;
use super::producers::ProducerStates;
use super::recovery;
use super::scan;
use super::segment::IndexWrite;
use super::start_offset;
use super::state::{AppendInfo, LogLatency, LogPosition, Shared, State};
use crate::io::local::Notify;
use crate::io::Disk;
use crate::metrics::LatencyHistogram;

/// One partition's log. Cheap to clone (shared); lives on one shard (`!Send`).
#[derive(Clone)]
pub struct Log {
    pub(crate) shared: Rc<Shared>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").field("dir", &self.shared.dir).finish_non_exhaustive()
    }
}

impl Log {
    /// Opens (creating the directory if missing) and recovers the log in `dir`.
    pub async fn open(disk: Disk, dir: PathBuf, config: LogConfig) -> Result<Log, LogError> {
        config.assert_valid();
        let recovered = recovery::recover(&disk, &dir, &config).await?;
        let segments = recovered.segments;
        let last = segments.last().unwrap_or_else(|| unreachable!("recovery yields a segment"));
        let end = LogPosition {
            offset: last.next_offset,
            segment_base_offset: last.base_offset,
            position_bytes: last.size_bytes,
        };
        let max_batch_bytes = scan::max_batch_bytes(config.max_message_bytes);
        let replay_end = recovered.corrupt_from.unwrap_or(end.offset);
        let (producers, snapshot_offset) =
            idempotence::rebuild(&disk, &dir, &segments, replay_end, max_batch_bytes).await?;
        let producers = Producers { live: producers, snapshot_offset, replay_end };
        let mut state = recovered_state(segments, end, recovered.corrupt_from, producers);
        state.leader_epochs = recovered.leader_epochs;
        state.leader_epochs_on_disk = recovered.leader_epochs_on_disk;
        if let Some(recorded) = start_offset::read(&disk, &dir).await {
            // Never above the recovered end: the recorded start was at most the (durable)
            // high watermark, so only a damaged log could end below it.
            state.log_start_offset = state.log_start_offset.max(recorded.min(end.offset));
        }
        if config.commit == CommitMode::Quorum {
            // Nothing is known committed until the replica learns it (from a quorum).
            state.high_watermark = state.log_start_offset;
            state.commit_index = state.log_start_offset;
        }
        state.check_invariants();
        let shared = Shared {
            disk,
            dir,
            config_current: RefCell::new(config),
            state: RefCell::new(state),
            high_watermark_changed: Notify::new(),
            durable_changed: Notify::new(),
            flusher_idle: Notify::new(),
            flusher_wake: Notify::new(),
            intent_file: RefCell::new(None),
            cleaner: RefCell::default(),
            start_offset_busy: std::cell::Cell::new(false),
            start_offset_idle: Notify::new(),
        };
        let log = Log { shared: Rc::new(shared) };
        // After detected loss the intent stays, like the old checkpoint, so that the next
        // recovery judges the same bytes the same way (without it, intact batches inside the
        // torn group's range would count, and could end the log elsewhere).
        let stale_intent = recovered.intent.filter(|_| recovered.corrupt_from.is_none());
        if let Some(stale) = stale_intent {
            // The torn group (if any) is gone; its offsets will be reused.
            let empty = Intent { start_offset: end.offset, end_offset: end.offset };
            tracing::debug!(?stale, "log: resetting the write intent after recovery");
            let file = flush::intent_file(&log.shared)?;
            intent::write(&file, &empty).await.map_err(|error| match error {
                PersistError::Write(error) | PersistError::Sync(error) => LogError::Io(error),
            })?;
        }
        log.finish_recovery(recovered.indexes_to_write).await?;
        Ok(log)
    }

    /// Writes rebuilt indexes and a fresh checkpoint, so the next recovery starts here.
    /// Skipped after detected loss: the old checkpoint makes the next open re-detect it.
    async fn finish_recovery(&self, mut indexes_to_write: Vec<i64>) -> Result<(), LogError> {
        indexes_to_write.sort_unstable();
        indexes_to_write.dedup();
        let writes: Vec<IndexWrite> = {
            let state = self.shared.state.borrow();
            if state.corrupt_from.is_some() {
                return Ok(());
            }
            indexes_to_write
                .iter()
                .filter_map(|&base| state.segment_by_base(base))
                .map(|index| {
                    let segment = &state.segments[index];
                    IndexWrite::below(segment, segment.next_offset, segment.size_bytes)
                })
                .collect()
        };
        let end = self.shared.state.borrow().synced;
        flush::persist(&self.shared, writes, end, false).await;
        match self.shared.state.borrow().status.clone() {
            LogStatus::Offline { .. } => Err(LogError::Offline),
            LogStatus::Online | LogStatus::NoSpace => Ok(()),
        }
    }

    /// Appends one produce request's batches (already validated v2 batches) for this
    /// partition. Offsets are assigned and patched in (with `leader_epoch`) synchronously,
    /// when this is CALLED, in call order; the future resolves once the batches are durable
    /// (per the flush policy). Not an `async fn` precisely so the assignment is not deferred
    /// to the first poll.
    pub fn append(
        &self,
        batches: Vec<BytesMut>,
        leader_epoch: i32,
    ) -> impl Future<Output = Result<AppendInfo, LogError>> + 'static {
        let admitted = append::admit(&self.shared, batches, leader_epoch);
        let shared = Rc::clone(&self.shared);
        async move {
            match admitted {
                Ok(Admitted::Queued(receiver)) => receiver.await.unwrap_or(Err(LogError::Closed)),
                Ok(Admitted::Duplicate { original, rollbacks_seen }) => {
                    idempotence::wait_for_original(shared, original, rollbacks_seen).await
                }
                Err(error) => Err(error),
            }
        }
    }

    pub fn high_watermark(&self) -> i64 {
        self.shared.state.borrow().high_watermark
    }

    pub fn log_end_offset(&self) -> i64 {
        self.shared.state.borrow().log_end_offset
    }

    pub fn log_start_offset(&self) -> i64 {
        self.shared.state.borrow().log_start_offset
    }

    /// Completes when the high watermark exceeds `offset`, or the log closes or goes offline.
    pub fn wait_for_high_watermark_above(&self, offset: i64) -> impl Future<Output = ()> + 'static {
        let shared = Rc::clone(&self.shared);
        async move {
            // Each round either returns or waits for a notification: no busy loop.
            loop {
                let notified = shared.high_watermark_changed.notified();
                {
                    let state = shared.state.borrow();
                    if state.high_watermark > offset || state.unusable().is_some() {
                        return;
                    }
                }
                notified.await;
            }
        }
    }

    /// The first offset of each leader epoch in the log (the replica's terms).
    pub fn leader_epochs(&self) -> LeaderEpochs {
        self.shared.state.borrow().leader_epochs.clone()
    }

    /// OffsetForLeaderEpoch: (the largest epoch <= `epoch`, the offset where it ended), the
    /// current epoch ending at the high watermark (nothing above it was served). `None` for
    /// an epoch above every known one (answered UNDEFINED, as Kafka does).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let state = self.shared.state.borrow();
        let (found_epoch, end_offset) =
            state.leader_epochs.end_offset_for(epoch, state.high_watermark)?;
        // An epoch whose batches are not all committed yet ends, as far as readers know, at
        // the high watermark.
        Some((found_epoch, end_offset.min(state.high_watermark)))
    }

    /// (offset, timestamp) of the largest timestamp acknowledged so far (KIP-734). The offset
    /// is that of the last record of the batch holding it.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.shared.state.borrow().max_timestamp
    }

    pub fn health(&self) -> LogHealth {
        let state = self.shared.state.borrow();
        LogHealth { status: state.status.clone(), corrupt_from: state.corrupt_from }
    }

    /// Rolls the active segment when its first batch is older than `segment_age_ms` (size
    /// rolls happen in `append`).
    pub async fn maybe_roll(&self, now_ms: i64) -> Result<(), LogError> {
        let mut state = self.shared.state.borrow_mut();
        if let Some(error) = state.unusable() {
            return Err(error);
        }
        if state.status != LogStatus::Online || state.closing || state.corrupt_from.is_some() {
            return Ok(());
        }
        let active = state.active();
        let due = active.first_timestamp_ms.is_some_and(|first_ms| {
            now_ms.saturating_sub(first_ms) > self.shared.config().segment_age_ms
        });
        if !due || active.is_empty() {
            return Ok(());
        }
        append::roll(&self.shared, &mut state)?;
        flush::ensure_flusher(&self.shared, &mut state);
        Ok(())
    }

    /// Flushes, syncs and writes a clean-shutdown checkpoint. Appends after this fail with
    /// `Closed`.
    pub async fn close(&self) -> Result<(), LogError> {
        self.shared.state.borrow_mut().closing = true;
        self.wait_for_flusher().await;
        let offline = matches!(self.shared.state.borrow().status, LogStatus::Offline { .. });
        let result =
            if offline { Err(LogError::Offline) } else { self.write_clean_checkpoint().await };
        if result.is_ok() && self.shared.state.borrow().corrupt_from.is_none() {
            // The next open then replays nothing.
            idempotence::snapshot(&self.shared).await;
        }
        self.shared.state.borrow_mut().closed = true;
        self.shared.high_watermark_changed.notify_waiters();
        self.shared.durable_changed.notify_waiters();
        result
    }

    async fn wait_for_flusher(&self) {
        self.shared.flusher_wake.notify_waiters();
        // Each round waits for the flusher to exit; `closing` keeps it from being restarted.
        loop {
            let idle = self.shared.flusher_idle.notified();
            if !self.shared.state.borrow().flusher_running {
                return;
            }
            idle.await;
        }
    }

    async fn write_clean_checkpoint(&self) -> Result<(), LogError> {
        let written = self.shared.state.borrow().written;
        if self.shared.state.borrow().synced != written {
            flush::sync_all(&self.shared).await.map_err(|_| LogError::Offline)?;
        }
        if self.shared.state.borrow().corrupt_from.is_some() {
            return Ok(());
        }
        let writes: Vec<IndexWrite> = {
            let state = self.shared.state.borrow();
            state
                .segments
                .iter()
                .map(|segment| IndexWrite::below(segment, segment.next_offset, segment.size_bytes))
                .collect()
        };
        let synced = self.shared.state.borrow().synced;
        self.clear_intent(synced.offset).await?;
        let position = super::state::normalized(&self.shared.state.borrow(), synced);
        flush::persist(&self.shared, writes, position, true).await;
        match self.shared.state.borrow().status {
            LogStatus::Offline { .. } => Err(LogError::Offline),
            LogStatus::Online | LogStatus::NoSpace => Ok(()),
        }
    }

    /// A clean shutdown leaves no write intent behind (see `intent.rs`).
    async fn clear_intent(&self, synced_offset: i64) -> Result<(), LogError> {
        let path = self.shared.dir.join(intent::INTENT_FILE_NAME);
        if !self.shared.disk.exists(&path) {
            return Ok(());
        }
        let empty = Intent { start_offset: synced_offset, end_offset: synced_offset };
        let file = flush::intent_file(&self.shared)?;
        match intent::write(&file, &empty).await {
            Ok(()) => Ok(()),
            Err(PersistError::Write(error)) => Err(LogError::Io(error)),
            Err(PersistError::Sync(error)) => {
                flush::go_offline(&self.shared, format!("fdatasync of the write intent: {error}"));
                Err(LogError::Offline)
            }
        }
    }

    /// The process dies (tests): the log never touches its files again; what is not durable
    /// is whatever the disk's crash leaves of it.
    #[cfg(test)]
    pub fn halt(&self) {
        flush::go_offline(&self.shared, "halted: a simulated crash".to_string());
    }

    /// Closes the log and removes its directory.
    pub async fn delete(self) -> Result<(), LogError> {
        self.shared.state.borrow_mut().closing = true;
        self.wait_for_flusher().await;
        self.shared.state.borrow_mut().closed = true;
        self.shared.high_watermark_changed.notify_waiters();
        self.shared.durable_changed.notify_waiters();
        self.shared.disk.remove_dir_all(&self.shared.dir)?;
        Ok(())
    }

    /// fdatasync calls made on segment files so far (group commit makes this far smaller
    /// than the number of appends).
    pub fn data_sync_count(&self) -> u64 {
        self.shared.state.borrow().data_syncs
    }

    /// Latency histograms of this log since it was opened.
    pub fn latency(&self) -> LogLatency {
        let state = self.shared.state.borrow();
        LogLatency { sync: state.sync_latency.clone(), append: state.append_latency.clone() }
    }

    /// Applies a changed topic config (AlterConfigs) to the open log. Each setting is read
    /// where it is used, so the change takes effect at the next append (max message size,
    /// segment size, index interval), roll (segment age), retention check or cleaning.
    pub fn set_config(&self, config: LogConfig) {
        config.assert_valid();
        let mut current = self.shared.config_current.borrow_mut();
        // Topic configs never change who commits: that is the broker's choice at open.
        let config = LogConfig { commit: current.commit, ..config };
        if *current != config {
            tracing::info!(dir = %self.shared.dir.display(), "log: configuration changed");
            *current = config;
        }
    }

    pub fn flush_policy(&self) -> FlushPolicy {
        self.shared.config().flush
    }
}

/// What `Log::open` learned about producers (see `idempotence.rs`).
struct Producers {
    live: ProducerStates,
    snapshot_offset: i64,
    replay_end: i64,
}

/// The state of a freshly recovered log ending at `end`.
fn recovered_state(
    segments: Vec<super::segment::Segment>,
    end: LogPosition,
    corrupt_from: Option<i64>,
    producers: Producers,
) -> State {
    let max_timestamp = segments
        .iter()
        .filter_map(|segment| segment.max_timestamp())
        .max_by_key(|&(_, timestamp_ms)| timestamp_ms);
    State {
        log_start_offset: segments[0].base_offset,
        log_end_offset: end.offset,
        written: end,
        synced: end,
        high_watermark: end.offset,
        commit_index: end.offset,
        status: LogStatus::Online,
        corrupt_from,
        closing: false,
        closed: false,
        truncating: false,
        no_space_checked_at: None,
        pending: VecDeque::new(),
        awaiting_commit: VecDeque::new(),
        pending_bytes: 0,
        flusher_running: false,
        unsynced_files: Vec::new(),
        dir_dirty: false,
        segments_to_seal: Vec::new(),
        intent_outstanding: false,
        checkpointed: LogPosition { offset: -1, segment_base_offset: -1, position_bytes: 0 },
        max_timestamp,
        last_sync_at: None,
        data_syncs: 0,
        producers_durable: producers.live.clone(),
        producers: producers.live,
        producers_durable_offset: producers.replay_end.max(producers.snapshot_offset),
        rollbacks: 0,
        snapshot_offset: producers.snapshot_offset,
        snapshot_busy: false,
        leader_epochs: LeaderEpochs::new(),
        leader_epochs_on_disk: LeaderEpochs::new(),
        sync_latency: LatencyHistogram::new(),
        append_latency: LatencyHistogram::new(),
        segments,
    }
}
