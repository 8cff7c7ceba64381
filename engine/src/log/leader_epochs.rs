//! The leader-epoch cache: for each leader epoch, the first offset written in it (Kafka's
//! `leader-epoch-checkpoint`, KIP-101). It answers OffsetForLeaderEpoch ("where did epoch E
//! end?"), which consumers use to detect truncation (KIP-320) and replicas use to find where
//! their logs diverge; the replica reads each entry's epoch (its Raft term) from it.
//!
//! It is a cache of the log: every batch carries its epoch (partitionLeaderEpoch), so the
//! cache can always be rebuilt from batch headers. The file only spares recovery that walk:
//! it covers every epoch that starts below the checkpoint's recovery offset (`flush.rs`
//! writes it before the checkpoint that relies on it), and recovery takes the epochs that
//! start in the scanned tail from the batches themselves (`recovery.rs`).
//!
//! Format (`leader-epochs`, big-endian): magic `TRLE`, version u16 (1), reserved u16, count
//! u32, then `count` entries of (epoch i32, start offset i64), then CRC32C u32 of everything
//! before it. Replaced atomically (temporary file, fdatasync, rename, directory fsync).

use std::path::Path;

use super::checkpoint::PersistError;
use crate::io::{Disk, OpenOptions};

pub const LEADER_EPOCHS_FILE_NAME: &str = "leader-epochs";
const MAGIC: [u8; 4] = *b"TRLE";
const VERSION: u16 = 1;
const HEADER_SIZE_BYTES: usize = 12;
const ENTRY_SIZE_BYTES: usize = 12;
/// A bound on what a file may claim, so a damaged count cannot ask for a huge buffer. Each
/// leader change adds one entry and retention drops the old ones (`trim_below`), so a real
/// log holds a handful.
pub const ENTRIES_MAX: usize = 65_536;

/// The first offset of one leader epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochStart {
    pub epoch: i32,
    pub start_offset: i64,
}

/// Epoch starts, strictly increasing in both epoch and offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochs {
    entries: Vec<EpochStart>,
}

impl LeaderEpochs {
    pub fn new() -> LeaderEpochs {
        LeaderEpochs::default()
    }

    /// `None` unless `entries` is strictly increasing in both columns, epochs non-negative.
    pub fn from_entries(entries: Vec<EpochStart>) -> Option<LeaderEpochs> {
        let ordered = entries.windows(2).all(|pair| {
            pair[0].epoch < pair[1].epoch && pair[0].start_offset < pair[1].start_offset
        });
        let valid = entries.iter().all(|entry| entry.epoch >= 0 && entry.start_offset >= 0);
        (ordered && valid && entries.len() <= ENTRIES_MAX).then_some(LeaderEpochs { entries })
    }

    pub fn entries(&self) -> &[EpochStart] {
        &self.entries
    }

    pub fn latest(&self) -> Option<EpochStart> {
        self.entries.last().copied()
    }

    /// Records that a batch of `epoch` was written at `offset`. Only a newer epoch at a later
    /// offset starts an entry: a batch of an older epoch after a newer one (a compaction
    /// filler, a follower's copy of an old batch) does not move the boundaries, and neither
    /// does a header that breaks the order (recovery feeds headers read from disk, which may
    /// be damaged: found by the `segment_recovery` fuzz target, reproducer
    /// `leader-epoch-behind-a-newer-start.bin`). Appends keep their own order by assertion.
    pub fn assign(&mut self, epoch: i32, offset: i64) {
        let newer =
            self.latest().is_none_or(|latest| epoch > latest.epoch && offset > latest.start_offset);
        if epoch < 0 || offset < 0 || !newer {
            return;
        }
        if self.entries.len() == ENTRIES_MAX {
            // Bounded like everything else: the oldest boundary goes (its offsets then answer
            // "no epoch known", as below the log start).
            self.entries.remove(0);
        }
        self.entries.push(EpochStart { epoch, start_offset: offset });
        self.check();
    }

    /// The epoch of the last entry, -1 (Kafka's "no epoch") for an empty cache.
    pub fn last_epoch(&self) -> i32 {
        self.latest().map_or(-1, |latest| latest.epoch)
    }

    /// Records that `epoch` begins at `start_offset`, where an older epoch must not follow a
    /// newer one (a replica's own view: a batch of an older epoch after a newer one is a bug
    /// there). Nothing if it is already the latest epoch.
    pub fn append(&mut self, epoch: i32, start_offset: i64) {
        assert!(epoch >= 0 && start_offset >= 0, "epoch {epoch} at {start_offset}");
        if let Some(latest) = self.latest() {
            if latest.epoch == epoch {
                return;
            }
            assert!(latest.epoch < epoch, "epoch {epoch} after {latest:?}");
            assert!(latest.start_offset < start_offset, "offset {start_offset} after {latest:?}");
        }
        self.entries.push(EpochStart { epoch, start_offset });
    }

    /// The epoch run holding `offset` (the caller bounds it by the log end); `None` below
    /// the first start.
    pub fn run_at(&self, offset: i64) -> Option<EpochStart> {
        let covering = self.entries.partition_point(|entry| entry.start_offset <= offset);
        let run = covering.checked_sub(1).map(|index| self.entries[index]);
        assert!(run.is_none_or(|run| run.start_offset <= offset));
        run
    }

    /// The start of the first run of an epoch greater than `epoch`, if any: below it every
    /// batch has an epoch <= `epoch`.
    pub fn next_start_after(&self, epoch: i32) -> Option<i64> {
        let index = self.entries.partition_point(|entry| entry.epoch <= epoch);
        assert!(index == 0 || self.entries[index - 1].epoch <= epoch);
        self.entries.get(index).map(|entry| entry.start_offset)
    }

    /// Forgets the epochs that start at or after `offset` (the log was cut there).
    pub fn truncate_from(&mut self, offset: i64) {
        let keep = self.entries.partition_point(|entry| entry.start_offset < offset);
        self.entries.truncate(keep);
        assert!(self.latest().is_none_or(|latest| latest.start_offset < offset));
    }

    /// Drops the epochs that ended before `log_start_offset`, keeping the one that covers it.
    pub fn trim_below(&mut self, log_start_offset: i64) {
        let covering = self.entries.partition_point(|entry| entry.start_offset <= log_start_offset);
        if covering > 1 {
            self.entries.drain(..covering - 1);
        }
        self.check();
    }

    /// The epoch of the batch at `offset`: that of the last epoch starting at or below it.
    pub fn epoch_at(&self, offset: i64) -> Option<i32> {
        self.run_at(offset).map(|run| run.epoch)
    }

    /// OffsetForLeaderEpoch's answer as Kafka's `LeaderEpochFileCache.endOffsetFor` gives it:
    /// (the largest epoch <= `epoch`, the first offset after it), where the current epoch ends
    /// at `end_offset`. `None` (answered as -1, -1) for an epoch above every known one, a
    /// negative epoch, or an empty cache.
    pub fn end_offset_for(&self, epoch: i32, end_offset: i64) -> Option<(i32, i64)> {
        let latest = self.latest()?;
        if epoch < 0 {
            return None;
        }
        if epoch == latest.epoch {
            return Some((latest.epoch, end_offset));
        }
        let next_start = self.next_start_after(epoch)?;
        match self.entries.iter().rev().find(|entry| entry.epoch <= epoch) {
            Some(floor) => Some((floor.epoch, next_start)),
            // Older than every epoch known: it ended where the first known one starts.
            None => Some((epoch, next_start)),
        }
    }

    fn check(&self) {
        debug_assert!(LeaderEpochs::from_entries(self.entries.clone()).is_some(), "{self:?}");
    }
}

pub fn encode(epochs: &LeaderEpochs) -> Vec<u8> {
    let count = epochs.entries.len();
    assert!(count <= ENTRIES_MAX, "{count} leader epochs");
    let mut bytes = Vec::with_capacity(HEADER_SIZE_BYTES + count * ENTRY_SIZE_BYTES + 4);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&VERSION.to_be_bytes());
    bytes.extend_from_slice(&0u16.to_be_bytes());
    bytes.extend_from_slice(&(count as u32).to_be_bytes());
    for entry in &epochs.entries {
        bytes.extend_from_slice(&entry.epoch.to_be_bytes());
        bytes.extend_from_slice(&entry.start_offset.to_be_bytes());
    }
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    bytes
}

/// `None` for anything but an intact version-1 file of well-ordered entries.
pub fn decode(bytes: &[u8]) -> Option<LeaderEpochs> {
    if bytes.len() < HEADER_SIZE_BYTES + 4 || bytes[0..4] != MAGIC {
        return None;
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
        return None;
    }
    let version = u16::from_be_bytes(body[4..6].try_into().ok()?);
    let count = usize::try_from(u32::from_be_bytes(body[8..12].try_into().ok()?)).ok()?;
    if version != VERSION || count > ENTRIES_MAX {
        return None;
    }
    if body.len() != HEADER_SIZE_BYTES + count * ENTRY_SIZE_BYTES {
        return None;
    }
    let entries = body[HEADER_SIZE_BYTES..]
        .chunks_exact(ENTRY_SIZE_BYTES)
        .map(|entry| {
            let mut start_offset = [0u8; 8];
            start_offset.copy_from_slice(&entry[4..12]);
            EpochStart {
                epoch: i32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]),
                start_offset: i64::from_be_bytes(start_offset),
            }
        })
        .collect();
    LeaderEpochs::from_entries(entries)
}

/// The recorded epochs, if the file is there and intact.
pub async fn read(disk: &Disk, dir: &Path) -> Option<LeaderEpochs> {
    let path = dir.join(LEADER_EPOCHS_FILE_NAME);
    if !disk.exists(&path) {
        return None;
    }
    let file = disk.open(&path, OpenOptions { create: false, truncate: false }).ok()?;
    let size_bytes = usize::try_from(file.len().ok()?).ok()?;
    if size_bytes > HEADER_SIZE_BYTES + ENTRIES_MAX * ENTRY_SIZE_BYTES + 4 {
        tracing::error!(dir = %dir.display(), size_bytes, "log: ignoring an oversized epochs file");
        return None;
    }
    let bytes = super::reader::read_exactly(&file, 0, size_bytes).await;
    let decoded = bytes.ok().and_then(|bytes| decode(&bytes));
    if decoded.is_none() {
        tracing::error!(dir = %dir.display(), "log: ignoring a damaged leader-epochs file");
    }
    decoded
}

/// Records `epochs` durably and atomically (see `replace.rs`).
pub async fn write(disk: &Disk, dir: &Path, epochs: &LeaderEpochs) -> Result<(), PersistError> {
    super::replace::replace_file(disk, dir, LEADER_EPOCHS_FILE_NAME, encode(epochs)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn epochs(entries: &[(i32, i64)]) -> LeaderEpochs {
        let entries = entries
            .iter()
            .map(|&(epoch, start_offset)| EpochStart { epoch, start_offset })
            .collect();
        LeaderEpochs::from_entries(entries).expect("well-ordered test entries")
    }

    #[test]
    fn only_a_newer_epoch_starts_an_entry() {
        let mut cache = LeaderEpochs::new();
        cache.assign(0, 0);
        cache.assign(0, 5);
        cache.assign(3, 10);
        cache.assign(2, 12); // an older batch after a newer one moves nothing
        cache.assign(9, 10); // nor does a newer epoch that does not start later (damage)
        cache.assign(4, 20);
        assert_eq!(cache, epochs(&[(0, 0), (3, 10), (4, 20)]));
        assert_eq!(cache.epoch_at(9), Some(0));
        assert_eq!(cache.epoch_at(10), Some(3));
        assert_eq!(cache.epoch_at(1000), Some(4));
        assert_eq!(epochs(&[(2, 5)]).epoch_at(4), None);
    }

    #[test]
    fn end_offsets_are_kafkas_answers() {
        let cache = epochs(&[(1, 0), (3, 10), (5, 20)]);
        let check = |epoch, expected| assert_eq!(cache.end_offset_for(epoch, 30), expected);
        check(5, Some((5, 30))); // the current epoch ends at the log end
        check(3, Some((3, 20)));
        check(4, Some((3, 20))); // an epoch without batches: the one before it
        check(1, Some((1, 10)));
        check(0, Some((0, 0))); // before every known epoch: where the first one starts
        check(6, None);
        check(-1, None);
        assert_eq!(LeaderEpochs::new().end_offset_for(0, 7), None);
    }

    #[test]
    fn truncation_and_trimming_keep_what_covers_the_remaining_log() {
        let mut cache = epochs(&[(1, 0), (3, 10), (5, 20)]);
        cache.truncate_from(20);
        assert_eq!(cache, epochs(&[(1, 0), (3, 10)]));
        cache.truncate_from(11);
        assert_eq!(cache, epochs(&[(1, 0), (3, 10)]));
        let mut trimmed = epochs(&[(1, 0), (3, 10), (5, 20)]);
        trimmed.trim_below(15);
        assert_eq!(trimmed, epochs(&[(3, 10), (5, 20)]));
        trimmed.trim_below(20);
        assert_eq!(trimmed, epochs(&[(5, 20)]));
    }

    #[test]
    fn disordered_entries_are_refused() {
        let entry = |epoch, start_offset| EpochStart { epoch, start_offset };
        assert!(LeaderEpochs::from_entries(vec![entry(2, 0), entry(1, 5)]).is_none());
        assert!(LeaderEpochs::from_entries(vec![entry(1, 5), entry(2, 5)]).is_none());
        assert!(LeaderEpochs::from_entries(vec![entry(-1, 0)]).is_none());
    }

    proptest! {
        #[test]
        fn round_trips_and_every_bit_flip_is_refused(
            steps in prop::collection::vec((0i32..4, 1i64..100), 0..20),
            flip in any::<prop::sample::Index>(),
        ) {
            let mut cache = LeaderEpochs::new();
            let (mut epoch, mut offset) = (0, 0);
            for (epoch_step, offset_step) in steps {
                cache.assign(epoch, offset);
                epoch += epoch_step;
                offset += offset_step;
            }
            let bytes = encode(&cache);
            prop_assert_eq!(decode(&bytes), Some(cache));
            let mut damaged = bytes.clone();
            let bit = flip.index(damaged.len() * 8);
            damaged[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(decode(&damaged), None);
            prop_assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
        }
    }
}
