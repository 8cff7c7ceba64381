//! The state shared by all clones of one `Log` (one shard, so `Rc<RefCell<..>>`), and the
//! small value types of the public API.
//!
//! Rule: a `RefCell` borrow of [`State`] is never held across an `.await`; code computes what
//! to do while borrowed, releases, awaits, then re-borrows and re-checks.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::PathBuf;

use super::config::LogConfig;
use super::error::{LogError, LogStatus};
use super::leader_epochs::LeaderEpochs;
use super::producers::{ProducerBatch, ProducerStates};
use super::segment::Segment;
use crate::io::local::{Notify, OneshotSender};
use crate::io::{Disk, File, Instant};
use crate::metrics::LatencyHistogram;

/// At most this many appends wait for the flusher; beyond it appends fail with
/// `LogError::Overloaded` (the broker bounds in-flight produce requests well below it).
pub const PENDING_APPENDS_MAX: usize = 4096;
/// At most this many bytes wait for the flusher.
pub const PENDING_BYTES_MAX: u64 = 256 << 20;

/// Result of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_start_offset: i64,
}

/// Result of a read: whole, CRC-checked batches, all below the high watermark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadInfo {
    pub bytes: bytes::Bytes,
    /// The offset after the last batch in `bytes`; the offset asked for when `bytes` is empty.
    /// Below `high_watermark` when the read stopped at its limit with data left behind.
    pub next_offset: i64,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// Latency histograms of one log (see [`crate::metrics`]).
#[derive(Clone, Default)]
pub struct LogLatency {
    /// Each fdatasync of a segment file.
    pub sync: LatencyHistogram,
    /// From `append` to its acknowledgement: waiting for the flusher, the write, the sync.
    pub append: LatencyHistogram,
}

/// A point in the log: the next offset and where it would start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPosition {
    pub offset: i64,
    pub segment_base_offset: i64,
    pub position_bytes: u64,
}

/// What an append's waiter receives.
pub type AppendResult = Result<AppendInfo, LogError>;

/// When an append is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOn {
    /// Once the high watermark (the commit index) covers it: a produce on the leader.
    Commit,
    /// Once it is durable here: a follower's copy of the leader's batches, which the leader
    /// counts toward its commit only after this.
    Durable,
}

/// One `append` call waiting for the flusher: its batches (offsets already patched in) and its
/// place in the log. It is written, synced and acknowledged — or failed — as a unit.
pub struct PendingAppend {
    pub base_offset: i64,
    /// Offset after the last batch.
    pub next_offset: i64,
    pub segment_base_offset: i64,
    pub position_bytes: u64,
    pub size_bytes: u64,
    pub batches: Vec<bytes::BytesMut>,
    /// (last offset of the batch, timestamp) of this append's largest timestamp.
    pub max_timestamp: Option<(i64, i64)>,
    /// The producer fields of this append's (only) batch, when it is idempotent.
    pub producer_batch: Option<ProducerBatch>,
    pub ack_on: AckOn,
    /// When `append` admitted it: the acknowledgement latency is measured from here.
    pub admitted_at: Instant,
    pub done: OneshotSender<Result<AppendInfo, LogError>>,
}

pub struct Shared {
    pub disk: Disk,
    pub dir: PathBuf,
    /// Replaced whole when the topic's configs change (`Log::set_config`); read through
    /// [`Shared::config`] where each setting is used, so a change applies from the next use.
    pub config_current: RefCell<LogConfig>,
    pub state: RefCell<State>,
    /// Notified when the high watermark moves, and when the log closes or goes offline.
    pub high_watermark_changed: Notify,
    /// Notified when `synced` moves (a replica reports its durable end to the leader).
    pub durable_changed: Notify,
    /// Notified when the flusher task exits.
    pub flusher_idle: Notify,
    /// The `write-intent` file, opened on first use.
    pub intent_file: RefCell<Option<File>>,
    /// Notified to cut the flusher's interval sleep short (on close).
    pub flusher_wake: Notify,
    /// Log compaction's memory of this log (see `compaction`).
    pub cleaner: RefCell<super::compaction::CleanerState>,
    /// Set while a new log start offset is being persisted (`start_offset.rs`): one at a time.
    pub start_offset_busy: std::cell::Cell<bool>,
    pub start_offset_idle: Notify,
}

impl Shared {
    /// The current configuration (a copy: a config change never lands mid-operation).
    pub fn config(&self) -> LogConfig {
        self.config_current.borrow().clone()
    }
}

pub struct State {
    /// Sorted by base offset, contiguous, never empty; the last one is active.
    pub segments: Vec<Segment>,
    pub log_start_offset: i64,
    /// The next offset `append` will assign.
    pub log_end_offset: i64,
    /// End of the data the flusher has written.
    pub written: LogPosition,
    /// End of the data covered by a successful fdatasync.
    pub synced: LogPosition,
    /// What reads may see: `synced.offset`, or `written.offset` under `FlushPolicy::IntervalMs`.
    pub high_watermark: i64,
    /// `CommitMode::Quorum`: the commit index the replica last gave (`Log::commit`). The high
    /// watermark follows it as far as this copy is durable: min(commit index, synced).
    pub commit_index: i64,
    pub status: LogStatus,
    pub corrupt_from: Option<i64>,
    /// Set by `close`/`delete`: new appends fail with `Closed`.
    pub closing: bool,
    pub closed: bool,
    /// `truncate_suffix` is cutting the log: appends are refused until it is done.
    pub truncating: bool,
    /// When `status` is `NoSpace`: when free space was last checked.
    pub no_space_checked_at: Option<Instant>,
    pub pending: VecDeque<PendingAppend>,
    /// Written (and synced, as the flush policy says) appends waiting for the high watermark
    /// to cover them (`flush::commit`); in offset order. Empty between flusher turns while the
    /// log is its own quorum.
    pub awaiting_commit: VecDeque<PendingAppend>,
    pub pending_bytes: u64,
    pub flusher_running: bool,
    /// Files written since their last fdatasync, in write order (synced oldest first, so a
    /// durable byte in a newer segment implies every older byte is durable too).
    pub unsynced_files: Vec<(i64, File)>,
    /// A segment file was created or removed since the directory was last synced.
    pub dir_dirty: bool,
    /// Sealed segments whose indexes are not yet fully persisted.
    pub segments_to_seal: Vec<i64>,
    /// A non-empty write intent may be on disk (see `intent.rs`).
    pub intent_outstanding: bool,
    /// Where the last recovery checkpoint points.
    pub checkpointed: LogPosition,
    /// Largest timestamp among acknowledged batches (KIP-734).
    pub max_timestamp: Option<(i64, i64)>,
    pub last_sync_at: Option<Instant>,
    /// fdatasync calls on segment files (group commit makes this smaller than appends).
    pub data_syncs: u64,
    /// Producer state of every admitted batch, durable or not (see `idempotence.rs`).
    pub producers: ProducerStates,
    /// Producer state of the acknowledged batches: the log below `producers_durable_offset`.
    pub producers_durable: ProducerStates,
    pub producers_durable_offset: i64,
    /// Times appends were rolled back (ENOSPC): duplicates waiting for an original fail.
    pub rollbacks: u64,
    /// Offset of the newest producer snapshot written or loaded (-1: none).
    pub snapshot_offset: i64,
    /// A producer snapshot is being written (one at a time).
    pub snapshot_busy: bool,
    /// First offset of each leader epoch in the log, durable or not (`leader_epochs.rs`).
    pub leader_epochs: LeaderEpochs,
    /// What the `leader-epochs` file holds (written when the durable epochs differ from it).
    pub leader_epochs_on_disk: LeaderEpochs,
    /// Duration of each fdatasync of a segment file.
    pub sync_latency: LatencyHistogram,
    /// From `append` to its acknowledgement (the log's share of a produce's latency).
    pub append_latency: LatencyHistogram,
}

impl State {
    pub fn active(&self) -> &Segment {
        self.segments.last().unwrap_or_else(|| unreachable!("a log always has a segment"))
    }

    pub fn active_mut(&mut self) -> &mut Segment {
        self.segments.last_mut().unwrap_or_else(|| unreachable!("a log always has a segment"))
    }

    /// Index of the segment that holds `offset` (the last one whose base is <= offset).
    pub fn segment_index_for(&self, offset: i64) -> Option<usize> {
        let after = self.segments.partition_point(|segment| segment.base_offset <= offset);
        after.checked_sub(1)
    }

    pub fn segment_by_base(&self, base_offset: i64) -> Option<usize> {
        self.segments.binary_search_by_key(&base_offset, |segment| segment.base_offset).ok()
    }

    /// Error for operations that need a working log (reads, retention); `None` when usable.
    pub fn unusable(&self) -> Option<LogError> {
        if self.closed {
            return Some(LogError::Closed);
        }
        match self.status {
            LogStatus::Offline { .. } => Some(LogError::Offline),
            LogStatus::Online | LogStatus::NoSpace => None,
        }
    }

    /// Invariants that hold whenever no borrow is active.
    pub fn check_invariants(&self) {
        assert!(!self.segments.is_empty());
        for pair in self.segments.windows(2) {
            assert_eq!(pair[0].next_offset, pair[1].base_offset, "segments are contiguous");
        }
        assert_eq!(self.active().next_offset, self.log_end_offset);
        // DeleteRecords may move the start inside (or past) the first segment until retention
        // deletes it.
        assert!(self.log_start_offset >= self.segments[0].base_offset);
        assert!(
            self.synced.offset <= self.written.offset && self.written.offset <= self.log_end_offset
        );
        assert!(
            self.high_watermark <= self.written.offset
                && self.high_watermark >= self.log_start_offset
        );
        assert!(self.pending.len() <= PENDING_APPENDS_MAX);
        assert!(self.producers_durable_offset <= self.log_end_offset);
        assert!(self.snapshot_offset <= self.log_end_offset);
        assert!(self
            .leader_epochs
            .latest()
            .is_none_or(|latest| latest.start_offset < self.log_end_offset));
    }
}

/// The position of `offset` when it is the end of segment `index` or the start of the next:
/// checkpoints prefer the start of the newer segment (it survives retention of the older).
pub fn normalized(state: &State, position: LogPosition) -> LogPosition {
    let Some(index) = state.segment_by_base(position.segment_base_offset) else { return position };
    match state.segments.get(index + 1) {
        Some(next) if next.base_offset == position.offset => LogPosition {
            offset: position.offset,
            segment_base_offset: next.base_offset,
            position_bytes: 0,
        },
        _ => position,
    }
}
