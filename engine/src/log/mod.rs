//! The partition log: segments, offset and time indexes, recovery, retention, group commit.
//!
//! Architecture invariant: the log never sees a socket and never touches the OS except through
//! `crate::io` files (so the same code runs on io_uring and on the simulated disk).
//!
//! # On-disk format (one directory per partition, given by the caller)
//!
//! - `<base_offset:020>.log` — a segment: record batches (v2) back to back, exactly as the
//!   producer sent them except for the base offset and partitionLeaderEpoch, patched in place
//!   (both lie outside the CRC32C range), until compaction rewrites a batch with fewer
//!   records. `base_offset` is the offset of its first batch. Offsets are contiguous within
//!   and across segments (a batch's base offset is the previous batch's last offset + 1),
//!   compacted logs included: compaction keeps every batch's offset span and replaces a run
//!   of fully removed batches by one empty *filler* batch (zero records, exactly the 61-byte
//!   header) spanning it (see `compaction/`). A segment holds at most `segment_size_bytes`
//!   (unless one append alone is bigger) and less than 2^31 offsets; an append never spans
//!   two segments.
//! - `<base_offset:020>.index` — sparse offset index: 8-byte entries `relative_offset: u32 BE,
//!   position: u32 BE` (batch base offset minus segment base offset; byte position in the
//!   `.log`), one per `index_interval_bytes` of log, both columns strictly increasing.
//! - `<base_offset:020>.timeindex` — time index: 12-byte entries `timestamp_ms: i64 BE,
//!   relative_offset: u32 BE`, one each time a batch raises the segment's max timestamp
//!   (relative offset of that batch's last record).
//! - `recovery-point` — 36 bytes: magic `TRCP`, version u16 (1), flags u16 (bit 0: clean
//!   shutdown), segment base offset i64, recovery offset i64, byte position u64, CRC32C u32
//!   (all BE). Everything below the recovery offset is durable and its index entries are too.
//!   Written at every roll (after the sealed segment's indexes), every
//!   `checkpoint_interval_bytes` of durable data, at open and on close.
//!
//! - `write-intent` — 28 bytes: magic `TRWI`, version u16 (1), reserved u16, start offset i64,
//!   end offset i64, CRC32C u32 (all BE): the offset range of the multi-batch group being
//!   written, fdatasync'd before its data, so recovery can tell a torn group from corruption.
//! - `<offset:020>.snapshot` — idempotent-producer state as of `offset`, versioned and
//!   CRC32C-protected, written atomically; the newest two are kept (format and rules in
//!   `producer_snapshot.rs`; the state itself in `producers.rs`, its use in `idempotence.rs`).
//!
//! - `leader-epochs` — the first offset of each leader epoch (`leader_epochs.rs`), covering
//!   every epoch that starts below the checkpoint; the rest is read from batch headers.
//! - `log-start-offset` — 20 bytes: magic `TRLS`, version u16 (1), reserved u16, offset i64,
//!   CRC32C u32 (all BE): the log start offset DeleteRecords set, replaced atomically before
//!   the request is answered (`start_offset.rs`). The start is the larger of it and the first
//!   segment's base offset.
//! - `<base_offset:020>.cleaned`, `<base_offset:020>.<end_offset:020>.swap` — compaction's
//!   output before and after its commit point; recovery deletes the first and completes the
//!   second (`compaction/swap.rs`).
//!
//! Indexes are caches of the log: written only for durable data (and synced before the
//! checkpoint that vouches for them), validated on load (entries increasing, inside the
//! segment), and rebuilt from the log whenever missing or invalid.
//!
//! # Durability and faults
//!
//! - Offsets are assigned (and patched into the batches) synchronously when `Log::append` is
//!   called; the flusher task (`flush.rs`) writes queued appends, runs one fdatasync for all of
//!   them (group commit), and only then acknowledges them and moves the high watermark
//!   (`FlushPolicy::EveryAppend`; `IntervalMs` acknowledges after the write, documented as
//!   relaxed). Files are synced oldest segment first.
//! - ENOSPC on a write: the failed appends and everything queued behind them fail with
//!   `NoSpace`, their bytes are truncated away, the log answers `NoSpace` to appends until
//!   free space is seen again (checked at most once a second), reads keep working.
//! - Any other write error, and any fdatasync error (data, index, checkpoint, intent): the log
//!   goes offline until re-opened; re-opening recovers from what is durable.
//! - Recovery (`recovery.rs`) truncates torn tails and reports (never truncates, never skips)
//!   a bad batch with intact batches behind it as detected loss (`LogHealth::corrupt_from`,
//!   `LogError::Corrupt`). The write intent keeps a torn multi-batch group from looking like
//!   such loss. Reads CRC-check every batch they serve and report loss the same way.
//!
//! DESIGN.md's storage-fault policy is the authority.

mod append;
pub mod checkpoint;
pub(crate) mod compaction;
pub mod config;
pub mod error;
mod flush;
mod idempotence;
pub mod intent;
pub mod layout;
pub mod leader_epochs;
pub mod offset_index;
mod partition;
pub mod producer_snapshot;
pub mod producers;
mod read;
mod reader;
pub mod record_timestamps;
mod recovery;
pub mod region;
pub mod replace;
mod replicated;
pub mod retention;
pub mod scan;
mod segment;
pub mod start_offset;
mod state;
pub mod time_index;
mod truncate;

#[cfg(test)]
mod tests;

pub use compaction::CleanOutcome;
pub use config::{CommitMode, CompactionConfig, FlushPolicy, LogConfig};
pub use error::{LogError, LogHealth, LogStatus};
pub use partition::Log;
pub use read::ReadLimit;
pub use state::{AppendInfo, LogLatency, ReadInfo};
