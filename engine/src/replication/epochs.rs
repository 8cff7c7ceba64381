//! What a replica knows about its local log without holding any of its bytes: where each
//! leader epoch's run of batches starts (the log's own leader-epoch cache, [`LeaderEpochs`]),
//! where the log ends, and how much of it is durable ([`LocalLog`]).
//!
//! Raft compares logs by (term, index) of single entries; with epochs stamped in every batch
//! that is "the epoch of the batch holding offset x", which the history answers without a
//! read. [`LocalLog::end_offset_of`] is Kafka's OffsetsForLeaderEpoch answer, the basis of
//! the divergence hints (KIP-101, KIP-279).
//!
//! Invariants (asserted): epoch starts strictly increase in epoch and in offset; every start
//! lies below the log end (a run has at least one entry); durable end ≤ log end.

use super::message::{EntryMeta, NO_EPOCH};

pub use crate::log::leader_epochs::{EpochStart, LeaderEpochs};

/// The replica's view of its local log: epoch runs, log end, durable end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalLog {
    pub epochs: LeaderEpochs,
    /// The next offset to be written.
    pub log_end_offset: i64,
    /// Everything below this offset is fdatasync'd.
    pub durable_end_offset: i64,
}

impl LocalLog {
    pub fn new(epochs: LeaderEpochs, log_end_offset: i64, durable_end_offset: i64) -> LocalLog {
        let log = LocalLog { epochs, log_end_offset, durable_end_offset };
        log.check();
        log
    }

    /// The invariants in the module comment.
    pub fn check(&self) {
        assert!(0 <= self.durable_end_offset, "{self:?}");
        assert!(self.durable_end_offset <= self.log_end_offset, "{self:?}");
        let starts = self.epochs.entries();
        assert!(starts.last().is_none_or(|last| last.start_offset < self.log_end_offset));
        assert!(starts.windows(2).all(|pair| pair[0].epoch < pair[1].epoch), "{self:?}");
        assert!(starts.windows(2).all(|pair| pair[0].start_offset < pair[1].start_offset));
    }

    /// The epoch of the entry at `offset`: `None` below the first run or at/after the end.
    pub fn epoch_at(&self, offset: i64) -> Option<i32> {
        if offset >= self.log_end_offset {
            return None;
        }
        self.epochs.run_at(offset).map(|run| run.epoch)
    }

    /// The epoch of the last entry, [`NO_EPOCH`] for an empty log.
    pub fn last_epoch(&self) -> i32 {
        let last = self.epochs.last_epoch();
        assert!(last == NO_EPOCH || self.log_end_offset > 0);
        last
    }

    /// Kafka's OffsetsForLeaderEpoch: the start of the first run of an epoch greater than
    /// `epoch`, or the log end if there is none. Below it, every entry has an epoch ≤ `epoch`.
    pub fn end_offset_of(&self, epoch: i32) -> i64 {
        let end = self.epochs.next_start_after(epoch).unwrap_or(self.log_end_offset);
        assert!(end <= self.log_end_offset);
        end
    }

    /// Adds one batch at the log end.
    pub fn append(&mut self, entry: EntryMeta) {
        assert_eq!(entry.base_offset, self.log_end_offset, "append at the end: {entry:?}");
        assert!(entry.base_offset < entry.next_offset, "empty batch {entry:?}");
        assert!(entry.epoch >= self.last_epoch(), "epoch goes back: {entry:?} {self:?}");
        self.epochs.append(entry.epoch, entry.base_offset);
        self.log_end_offset = entry.next_offset;
        self.check();
    }

    /// Cuts the log at `offset`: it ends there, and so does its durable part at most.
    pub fn truncate_from(&mut self, offset: i64) {
        assert!(offset < self.log_end_offset, "truncate {offset} beyond {self:?}");
        self.epochs.truncate_from(offset);
        self.log_end_offset = offset;
        self.durable_end_offset = self.durable_end_offset.min(offset);
        self.check();
    }

    /// The driver synced the log up to `end_offset`. Returns whether the durable end moved.
    pub fn mark_durable(&mut self, end_offset: i64) -> bool {
        assert!(end_offset <= self.log_end_offset, "durable {end_offset} beyond {self:?}");
        let before = self.durable_end_offset;
        self.durable_end_offset = before.max(end_offset);
        assert!(self.durable_end_offset >= before);
        self.durable_end_offset > before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(starts: &[(i32, i64)]) -> LeaderEpochs {
        let mut history = LeaderEpochs::new();
        for &(epoch, start_offset) in starts {
            history.append(epoch, start_offset);
        }
        history
    }

    fn log(starts: &[(i32, i64)], log_end_offset: i64) -> LocalLog {
        LocalLog::new(history(starts), log_end_offset, 0)
    }

    #[test]
    fn epoch_at_is_the_epoch_of_the_run_holding_the_offset_within_the_log() {
        let log = log(&[(1, 2), (3, 5), (4, 9)], 12);
        let cases = [(-1, None), (0, None), (1, None), (2, Some(1)), (4, Some(1))];
        let more = [(5, Some(3)), (8, Some(3)), (9, Some(4)), (11, Some(4)), (12, None)];
        for (offset, expected) in cases.into_iter().chain(more) {
            assert_eq!(log.epoch_at(offset), expected, "offset {offset}");
        }
        assert_eq!(log.last_epoch(), 4);
        assert_eq!(LocalLog::new(LeaderEpochs::new(), 0, 0).last_epoch(), NO_EPOCH);
    }

    #[test]
    fn end_offset_of_is_the_start_of_the_next_greater_epoch_or_the_log_end() {
        let log = log(&[(1, 0), (3, 5), (4, 9)], 12);
        let cases = [(0, 0), (1, 5), (2, 5), (3, 9), (4, 12), (7, 12)];
        for (epoch, expected) in cases {
            assert_eq!(log.end_offset_of(epoch), expected, "epoch {epoch}");
        }
    }

    #[test]
    fn appending_the_last_epoch_again_keeps_one_run() {
        let mut log = log(&[], 0);
        for (base, next, epoch) in [(0, 3, 1), (3, 4, 1), (4, 6, 2)] {
            log.append(EntryMeta { base_offset: base, next_offset: next, epoch });
        }
        let expected =
            [EpochStart { epoch: 1, start_offset: 0 }, EpochStart { epoch: 2, start_offset: 4 }];
        assert_eq!(log.epochs.entries(), expected);
        assert_eq!(log.log_end_offset, 6);
    }

    #[test]
    #[should_panic(expected = "after")]
    fn an_epoch_going_back_is_a_bug() {
        history(&[(3, 0), (2, 5)]);
    }

    #[test]
    fn truncate_from_drops_runs_starting_at_or_after_the_cut() {
        let mut log = log(&[(1, 0), (3, 5), (4, 9)], 12);
        log.mark_durable(10);
        log.truncate_from(9);
        assert_eq!(
            (log.epochs.last_epoch(), log.log_end_offset, log.durable_end_offset),
            (3, 9, 9)
        );
        log.truncate_from(6);
        assert_eq!((log.epochs.last_epoch(), log.epoch_at(5), log.epoch_at(6)), (3, Some(3), None));
        log.truncate_from(5);
        assert_eq!((log.last_epoch(), log.log_end_offset), (1, 5));
        assert!(!log.mark_durable(4), "the durable end never goes back by a late sync report");
    }
}
