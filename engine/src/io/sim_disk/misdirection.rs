//! The faults of a disk that lies: phantom writes (reported done, never on the media),
//! misdirected writes (the right data at a wrong offset), misdirected reads (the bytes of a
//! wrong offset, once), and latency. TigerBeetle's storage fault model is the reference.
//!
//! Model. A phantom or misdirected write is decided *after* the write was synced, by a fault
//! injector choosing one of the file's latest synced writes ([`SimDisk::synced_writes`]): the
//! durable image gets back the bytes that write overwrote (zeros where it extended the file),
//! and, for a misdirected write, the written bytes land at the target offset instead. Why
//! after: the injector can then pick a write whose loss the policy can detect (one with
//! intact data behind it), where a decision at write time could not know what follows. The
//! page cache (`cached`) still shows the right bytes, as the OS's cache would, until a crash
//! or [`SimDisk::evict_cache`] drops it; that is when the lie becomes visible.
//!
//! Only writes with no later synced write overlapping them can be undone (undoing an older
//! one would also undo bytes that did reach the media), and a crash forgets them all.

use std::io;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::{
    consume_armed_failure, error, next_random, ranges_overlap, to_usize, write_into, Inode,
    SimDisk, SimFile, State, Unsynced, SECTOR_SIZE_BYTES,
};

/// Synced writes remembered per file: enough for the injector to choose from.
pub(super) const SYNCED_WRITES_KEPT_MAX: usize = 32;
/// A misdirected read is off by 1 to this many sectors.
const MISDIRECTED_READ_SECTORS_MAX: u64 = 8;

/// A write made durable by a sync, and what it overwrote on the media.
#[derive(Clone, Debug)]
pub(super) struct SyncedWrite {
    offset: u64,
    length: u64,
    /// The durable bytes it replaced that existed then; the rest of its range was beyond the
    /// durable end (zeros once the file grew).
    overwritten: Vec<u8>,
}

/// Delays of writes and syncs, uniform in `max / 2..=max` (zero: complete at once).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskLatency {
    pub write_us_max: u64,
    pub sync_us_max: u64,
}

/// Records a write about to be applied to the durable image (from `sync_data`).
pub(super) fn remember_synced(inode: &mut Inode, operation: &Unsynced) {
    match operation {
        Unsynced::SetLen { .. } => inode.synced_writes.clear(),
        Unsynced::Write { offset, data } => {
            let start = to_usize(*offset).min(inode.durable.len());
            let end = (to_usize(*offset) + data.len()).min(inode.durable.len());
            let overwritten = inode.durable[start..end].to_vec();
            // A write of the bytes already there (recovery writes its scanned tail back) has
            // nothing to lose: undoing it would change nothing, yet the fault log would call
            // its batches destroyed.
            if overwritten.len() == data.len() && overwritten == *data {
                return;
            }
            if inode.synced_writes.len() == SYNCED_WRITES_KEPT_MAX {
                inode.synced_writes.pop_front();
            }
            let length = data.len() as u64;
            inode.synced_writes.push_back(SyncedWrite { offset: *offset, length, overwritten });
        }
    }
}

/// The range to serve a read of `start..end` from: a wrong one of the same length, 1-8
/// sectors away, if a misdirected read is armed for this file and the file has room for one;
/// else the same. Same length, so one misdirected read is one wrong answer, not a short read
/// whose continuation reads right.
pub(super) fn maybe_misdirect_read(state: &mut State, id: u64, start: u64, end: u64) -> (u64, u64) {
    // The fault is transient: the read right after a misdirected one, of the same file, is
    // served right (what the broker's single re-read relies on; two in a row would be a
    // failing device, not a transient misdirection).
    if state.misdirected_last == Some(id) {
        state.misdirected_last = None;
        return (start, end);
    }
    let length = state.inodes.get(&id).map_or(0, |inode| inode.cached.len() as u64);
    let size = end - start;
    let fits = |wrong_start: u64| wrong_start + size <= length;
    let possible = start >= SECTOR_SIZE_BYTES || fits(start + SECTOR_SIZE_BYTES);
    if size == 0 || !possible {
        return (start, end);
    }
    if !consume_armed_failure(&state.entries, &mut state.misdirected_reads, id) {
        return (start, end);
    }
    let sectors = 1 + next_random(&mut state.rng_state) % MISDIRECTED_READ_SECTORS_MAX;
    let upward = next_random(&mut state.rng_state) % 2 == 0;
    let candidates = [sectors * SECTOR_SIZE_BYTES, SECTOR_SIZE_BYTES].map(|shift| {
        let above = Some(start + shift).filter(|above| fits(*above));
        let below = start.checked_sub(shift);
        if upward {
            above.or(below)
        } else {
            below.or(above)
        }
    });
    let Some(wrong_start) = candidates.into_iter().flatten().next() else {
        unreachable!("checked above that one sector away fits")
    };
    state.misdirected_last = Some(id);
    tracing::warn!(fault = "misdirected_read", offset = start, wrong_start, "sim disk");
    (wrong_start, wrong_start + size)
}

impl SimDisk {
    /// The next `count` reads of files under `path_prefix` return the bytes of an offset 1-8
    /// sectors away (a misdirected read: transient, a retry reads right).
    pub fn misdirect_next_reads(&self, path_prefix: &Path, count: u32) {
        tracing::warn!(
            fault = "misdirected_read_armed",
            path = %path_prefix.display(),
            count,
            "sim disk"
        );
        self.0.borrow_mut().misdirected_reads.push((path_prefix.to_path_buf(), count));
    }

    /// Byte ranges of the latest synced writes of `path` that a phantom or misdirected write
    /// fault can still undo (no later synced write overlaps them), oldest first.
    pub fn synced_writes(&self, path: &Path) -> Vec<Range<u64>> {
        let state = self.0.borrow();
        let Some(inode) = state.entries.get(path).and_then(|id| state.inodes.get(id)) else {
            return Vec::new();
        };
        undoable(inode).map(|write| write.offset..write.offset + write.length).collect()
    }

    /// Makes the synced write of `path` covering exactly `range` a phantom: it was reported
    /// done and never reached the media. False if no such undoable write exists.
    pub fn phantom_synced_write(&self, path: &Path, range: Range<u64>) -> bool {
        self.undo_synced_write(path, range.clone(), None)
    }

    /// Makes the synced write of `path` covering exactly `range` misdirected: its data landed
    /// at `target_offset` (inside the durable image), and `range` kept its old content.
    pub fn misdirect_synced_write(&self, path: &Path, range: Range<u64>, target: u64) -> bool {
        self.undo_synced_write(path, range, Some(target))
    }

    fn undo_synced_write(&self, path: &Path, range: Range<u64>, target: Option<u64>) -> bool {
        let mut state = self.0.borrow_mut();
        let Some(inode) = state.entries.get(path).copied().and_then(|id| state.inodes.get_mut(&id))
        else {
            return false;
        };
        let Some(write) = undoable(inode)
            .find(|write| write.offset == range.start && write.offset + write.length == range.end)
            .cloned()
        else {
            return false;
        };
        let durable_end = inode.durable.len() as u64;
        if target.is_some_and(|target| target + write.length > durable_end) {
            return false;
        }
        let end = range.end.min(durable_end);
        let data = inode.durable[to_usize(range.start.min(end))..to_usize(end)].to_vec();
        let mut old = write.overwritten.clone();
        old.resize(data.len(), 0);
        write_into(&mut inode.durable, range.start.min(end), &old);
        match target {
            None => tracing::warn!(fault = "phantom_write", path = %path.display(), ?range),
            Some(target) => {
                write_into(&mut inode.durable, target, &data);
                tracing::warn!(fault = "misdirected_write", path = %path.display(), ?range, target);
            }
        }
        inode.synced_writes.retain(|kept| kept.offset != write.offset);
        true
    }

    /// Drops the page cache of `path`: reads now see the media (durable image) with the
    /// unsynced writes still queued on top. Writes whose sync failed are gone from view too.
    pub fn evict_cache(&self, path: &Path) {
        let mut state = self.0.borrow_mut();
        let Some(inode) = state.entries.get(path).copied().and_then(|id| state.inodes.get_mut(&id))
        else {
            return;
        };
        let mut cached = inode.durable.clone();
        for operation in &inode.unsynced {
            super::apply(&mut cached, operation);
        }
        inode.cached = cached;
        tracing::warn!(fault = "cache_evicted", path = %path.display(), "sim disk");
    }

    /// Sets the delays of writes and syncs from now on.
    pub fn set_latency(&self, latency: DiskLatency) {
        tracing::warn!(fault = "disk_latency", ?latency, "sim disk");
        self.0.borrow_mut().latency = latency;
    }

    /// True if `path` has writes or truncations not yet synced (tests wait for this).
    pub fn has_unsynced(&self, path: &Path) -> bool {
        let state = self.0.borrow();
        let inode = state.entries.get(path).and_then(|id| state.inodes.get(id));
        inode.is_some_and(|inode| !inode.unsynced.is_empty())
    }
}

/// Synced writes that no later synced write overlaps, oldest first.
fn undoable(inode: &Inode) -> impl Iterator<Item = &SyncedWrite> {
    let writes = &inode.synced_writes;
    writes.iter().enumerate().filter_map(move |(index, write)| {
        let range = write.offset..write.offset + write.length;
        let overlapped = writes
            .iter()
            .skip(index + 1)
            .any(|later| ranges_overlap(&range, &(later.offset..later.offset + later.length)));
        (!overlapped && write.length > 0).then_some(write)
    })
}

/// Which operation a latency applies to.
#[derive(Clone, Copy)]
pub(crate) enum Delayed {
    Write,
    Sync,
}

impl SimFile {
    /// Waits the disk's latency for one operation of `kind` (nothing when none is set).
    pub(crate) async fn delay(&self, kind: Delayed) -> io::Result<()> {
        let delay_us = {
            let mut state = self.disk.0.borrow_mut();
            let max_us = match kind {
                Delayed::Write => state.latency.write_us_max,
                Delayed::Sync => state.latency.sync_us_max,
            };
            if max_us == 0 {
                return Ok(());
            }
            max_us / 2 + next_random(&mut state.rng_state) % (max_us - max_us / 2 + 1)
        };
        crate::io::sleep(Duration::from_micros(delay_us)).await;
        // A crash while the operation was in flight killed the process that issued it.
        self.with_inode(|_, _| Ok(())).map_err(|_| error(libc::EBADF))
    }
}
