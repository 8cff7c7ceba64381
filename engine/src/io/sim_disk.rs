//! An in-memory file system with a crash model and fault injection, for tests and the simulator.
//!
//! Model (deliberately simple, documented so tests know what they get):
//! - Each file (inode) has a DURABLE image and a list of UNSYNCED operations (writes, `set_len`).
//!   Reads see the cached view: durable plus unsynced, in order.
//! - `sync_data()` on a file makes that file's unsynced operations durable.
//! - Directory entries (create, rename, remove) are durable immediately: there is no need to
//!   `sync_dir` in this model (the `Os` disk does need it; callers should still call it).
//! - `crash()` throws away or tears the unsynced operations of every file; handles opened before
//!   the crash fail afterwards (`EBADF`), as the process that owned them is gone.
//! - A failed sync (see [`SimDisk::fail_next_syncs`]) keeps the data readable but it will never
//!   become durable: "fsyncgate" semantics, the page cache is marked clean while the disk lost it.
//! - Misdirected and phantom writes, misdirected reads and disk latency
//!   (`sim_disk/misdirection.rs`): a synced write can be made to have never reached the media
//!   (phantom) or to have landed at another offset (misdirected); the page cache keeps the
//!   right bytes until a crash or [`SimDisk::evict_cache`]. Armed reads return the bytes of a
//!   wrong offset once.
//!
//! Operations complete immediately unless a latency is set ([`SimDisk::set_latency`]): then a
//! write or sync completes after a seeded delay in the backend's time (simulated under madsim).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::ops::{Bound, Range};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::buf::{copy_into_spare, init_slice, IoBuf, IoBufMut};

mod misdirection;

pub(crate) use misdirection::Delayed;
pub use misdirection::DiskLatency;
use misdirection::{SyncedWrite, SYNCED_WRITES_KEPT_MAX};

/// Torn writes are decided per sector of this size.
pub const SECTOR_SIZE_BYTES: u64 = 512;
/// Largest simulated file: beyond it writes fail with EFBIG instead of exhausting memory.
pub const SIM_FILE_SIZE_BYTES_MAX: u64 = 1 << 34;
/// What `available_space_bytes` reports when no capacity is set.
const CAPACITY_UNLIMITED_BYTES: u64 = 1 << 40;

/// How unsynced data fares in [`SimDisk::crash`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced operation vanishes.
    DropUnsynced,
    /// Each unsynced write is, per 512-byte sector, applied or not (seeded), in a shuffled order;
    /// each unsynced `set_len` likewise applied or not.
    Torn,
}

#[derive(Clone, Debug)]
enum Unsynced {
    Write { offset: u64, data: Vec<u8> },
    SetLen { size_bytes: u64 },
}

#[derive(Default)]
struct Inode {
    durable: Vec<u8>,
    /// What reads see: `durable` with `unsynced` (and doomed writes) applied.
    cached: Vec<u8>,
    unsynced: Vec<Unsynced>,
    /// Byte ranges that fail reads with EIO (latent sector errors); they survive crashes.
    failing_reads: Vec<Range<u64>>,
    /// False once unlinked; open handles keep working, but the bytes no longer count as used.
    linked: bool,
    /// The latest writes made durable by a sync, oldest first (bounded): what a phantom or
    /// misdirected write fault can undo. Cleared by a durable `set_len` and by a crash.
    synced_writes: std::collections::VecDeque<SyncedWrite>,
}

struct State {
    directories: BTreeSet<PathBuf>,
    /// Directory entry -> inode id.
    entries: BTreeMap<PathBuf, u64>,
    inodes: BTreeMap<u64, Inode>,
    inode_id_next: u64,
    /// Bumped by every crash; handles from an older epoch are dead.
    crash_epoch: u64,
    capacity_bytes: Option<u64>,
    /// (path prefix, remaining failures) in insertion order.
    failing_syncs: Vec<(PathBuf, u32)>,
    /// Same for writes.
    failing_writes: Vec<(PathBuf, u32)>,
    /// Same for reads that return the bytes of a wrong offset (misdirected reads).
    misdirected_reads: Vec<(PathBuf, u32)>,
    /// Inode of the latest read that was misdirected, until the next read.
    misdirected_last: Option<u64>,
    latency: DiskLatency,
    rng_state: u64,
}

/// A whole in-memory file system. Cheap to clone (shared); `!Send` like everything in a shard.
#[derive(Clone)]
pub struct SimDisk(Rc<RefCell<State>>);

impl std::fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.0.borrow();
        f.debug_struct("SimDisk").field("files", &state.entries.len()).finish()
    }
}

fn error(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// SplitMix64: tiny, seedable, good enough to pick torn sectors reproducibly.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn apply(image: &mut Vec<u8>, operation: &Unsynced) {
    match operation {
        Unsynced::Write { offset, data } => write_into(image, *offset, data),
        Unsynced::SetLen { size_bytes } => image.resize(to_usize(*size_bytes), 0),
    }
}

fn write_into(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = to_usize(offset);
    let end = start + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[start..end].copy_from_slice(data);
}

fn to_usize(value: u64) -> usize {
    // The simulated disk lives in memory: anything not addressable is a test bug.
    usize::try_from(value).unwrap_or_else(|_| panic!("sim disk offset {value} not addressable"))
}

fn ranges_overlap(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

impl SimDisk {
    pub fn new(seed: u64) -> SimDisk {
        let mut directories = BTreeSet::new();
        directories.insert(PathBuf::from("/"));
        directories.insert(PathBuf::new());
        SimDisk(Rc::new(RefCell::new(State {
            directories,
            entries: BTreeMap::new(),
            inodes: BTreeMap::new(),
            inode_id_next: 1,
            crash_epoch: 0,
            capacity_bytes: None,
            failing_syncs: Vec::new(),
            failing_writes: Vec::new(),
            misdirected_reads: Vec::new(),
            misdirected_last: None,
            latency: DiskLatency::default(),
            rng_state: seed,
        })))
    }

    /// Loses or tears every unsynced operation of every file, as a power failure would.
    pub fn crash(&self, mode: CrashMode) {
        let mut state = self.0.borrow_mut();
        let unsynced_writes: usize = state.inodes.values().map(|inode| inode.unsynced.len()).sum();
        tracing::warn!(fault = "crash", ?mode, unsynced_writes, "sim disk: crash");
        state.crash_epoch += 1;
        let mut rng_state = state.rng_state;
        state.inodes.retain(|_, inode| inode.linked);
        for inode in state.inodes.values_mut() {
            let unsynced = std::mem::take(&mut inode.unsynced);
            // A phantom must show through this crash or never: what recovery read back from
            // the media afterwards was really there.
            inode.synced_writes.clear();
            if mode == CrashMode::Torn {
                tear_into(&mut inode.durable, &unsynced, &mut rng_state);
            }
            inode.cached = inode.durable.clone();
        }
        state.rng_state = rng_state;
    }

    /// Loses everything, durable or not: the node's disk is replaced by an empty one (an
    /// operator's `rm -rf`, a new disk). Handles opened before are dead, as after a crash;
    /// latency, capacity and armed faults stay (they belong to the slot, not the media).
    pub fn wipe(&self) {
        let mut state = self.0.borrow_mut();
        tracing::warn!(fault = "wipe", files = state.entries.len(), "sim disk: wiped");
        state.crash_epoch += 1;
        state.entries.clear();
        state.inodes.clear();
        state.directories.retain(|directory| directory.parent().is_none());
        state.misdirected_last = None;
        assert!(state.entries.is_empty() && state.directories.len() <= 2);
    }

    /// The next `count` `sync_data` calls on files under `path_prefix` fail with EIO; their
    /// unsynced writes stay readable but never become durable (discarded at the next crash).
    pub fn fail_next_syncs(&self, path_prefix: &Path, count: u32) {
        tracing::warn!(fault = "sync_eio_armed", path = %path_prefix.display(), count, "sim disk");
        self.0.borrow_mut().failing_syncs.push((path_prefix.to_path_buf(), count));
    }

    /// Disarms every failure armed by [`SimDisk::fail_next_syncs`],
    /// [`SimDisk::fail_next_writes`] or [`SimDisk::misdirect_next_reads`] that has not fired.
    pub fn clear_failing_syncs(&self) {
        let mut state = self.0.borrow_mut();
        state.failing_syncs.clear();
        state.failing_writes.clear();
        state.misdirected_reads.clear();
    }

    /// The next `count` writes to files under `path_prefix` fail with EIO and write nothing.
    pub fn fail_next_writes(&self, path_prefix: &Path, count: u32) {
        tracing::warn!(fault = "write_eio_armed", path = %path_prefix.display(), count, "sim disk");
        self.0.borrow_mut().failing_writes.push((path_prefix.to_path_buf(), count));
    }

    /// Total bytes of all files; a write growing past it fails with ENOSPC and writes nothing.
    pub fn set_capacity_bytes(&self, capacity_bytes: Option<u64>) {
        tracing::warn!(fault = "capacity", ?capacity_bytes, "sim disk: capacity set");
        self.0.borrow_mut().capacity_bytes = capacity_bytes;
    }

    /// Flips `bit` (0..8) of the durable byte at `offset` (bit rot at rest). Reads see it too,
    /// unless an unsynced write covers that byte.
    pub fn corrupt_durable(&self, path: &Path, offset: u64, bit: u8) {
        assert!(bit < 8, "bit index {bit} out of a byte");
        let mut state = self.0.borrow_mut();
        let Some(&id) = state.entries.get(path) else {
            panic!("corrupt_durable: no file {}", path.display());
        };
        let Some(inode) = state.inodes.get_mut(&id) else { return };
        let index = to_usize(offset);
        assert!(index < inode.durable.len(), "corrupt_durable past the durable end");
        tracing::warn!(fault = "corrupt_durable", path = %path.display(), offset, bit, "sim disk");
        inode.durable[index] ^= 1 << bit;
        let byte = offset..offset + 1;
        let covered = inode.unsynced.iter().any(|operation| match operation {
            Unsynced::Write { offset, data } => {
                ranges_overlap(&byte, &(*offset..*offset + data.len() as u64))
            }
            Unsynced::SetLen { .. } => true,
        });
        if !covered && index < inode.cached.len() {
            inode.cached[index] ^= 1 << bit;
        }
    }

    /// Reads of `path` overlapping `range` fail with EIO from now on (a latent sector error).
    pub fn fail_reads(&self, path: &Path, range: Range<u64>) {
        let mut state = self.0.borrow_mut();
        let Some(&id) = state.entries.get(path) else {
            panic!("fail_reads: no file {}", path.display());
        };
        if let Some(inode) = state.inodes.get_mut(&id) {
            tracing::warn!(fault = "latent_read_error", path = %path.display(), ?range, "sim disk");
            inode.failing_reads.push(range);
        }
    }

    /// Heals every latent sector error set by [`SimDisk::fail_reads`] (the simulator's heal
    /// phase: a rewritten or remapped sector reads again).
    pub fn clear_failing_reads(&self) {
        let mut state = self.0.borrow_mut();
        for inode in state.inodes.values_mut() {
            inode.failing_reads.clear();
        }
    }

    /// Paths of every linked file, in path order (for fault injectors picking a target).
    pub fn file_paths(&self) -> Vec<PathBuf> {
        self.0.borrow().entries.keys().cloned().collect()
    }

    /// Bytes used by linked files (what capacity is compared against).
    pub fn used_bytes(&self) -> u64 {
        used_bytes(&self.0.borrow())
    }

    /// Length of the cached view of `path` (what `File::len` reports), if it exists.
    pub fn file_len(&self, path: &Path) -> Option<u64> {
        let state = self.0.borrow();
        let id = state.entries.get(path)?;
        state.inodes.get(id).map(|inode| inode.cached.len() as u64)
    }

    /// The durable image of `path` (what survives a crash), if it exists.
    pub fn durable_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.0.borrow();
        let id = state.entries.get(path)?;
        state.inodes.get(id).map(|inode| inode.durable.clone())
    }
}

/// Applies a random subset of the sectors of `unsynced` to `durable`, in a shuffled order.
fn tear_into(durable: &mut Vec<u8>, unsynced: &[Unsynced], rng_state: &mut u64) {
    let mut pieces: Vec<Unsynced> = Vec::new();
    for operation in unsynced {
        match operation {
            Unsynced::SetLen { .. } => pieces.push(operation.clone()),
            Unsynced::Write { offset, data } => {
                let mut position = *offset;
                let end = *offset + data.len() as u64;
                while position < end {
                    let sector_end = (position / SECTOR_SIZE_BYTES + 1) * SECTOR_SIZE_BYTES;
                    let piece_end = sector_end.min(end);
                    let slice = &data[to_usize(position - offset)..to_usize(piece_end - offset)];
                    pieces.push(Unsynced::Write { offset: position, data: slice.to_vec() });
                    position = piece_end;
                }
            }
        }
    }
    // Fisher-Yates shuffle: the device may reorder writes that were never flushed.
    for index in (1..pieces.len()).rev() {
        let other = (next_random(rng_state) % (index as u64 + 1)) as usize;
        pieces.swap(index, other);
    }
    for piece in &pieces {
        if next_random(rng_state) % 2 == 0 {
            apply(durable, piece);
        }
    }
}

/// Directory operations (`Disk::Simulated`).
impl SimDisk {
    pub(crate) fn open(&self, path: &Path, create: bool, truncate: bool) -> io::Result<SimFile> {
        let mut state = self.0.borrow_mut();
        if state.directories.contains(path) {
            return Err(error(libc::EISDIR));
        }
        let parent = path.parent().unwrap_or(Path::new("/"));
        if !state.directories.contains(parent) {
            return Err(error(libc::ENOENT));
        }
        let id = match state.entries.get(path) {
            Some(&id) => id,
            None if create => {
                let id = state.inode_id_next;
                state.inode_id_next += 1;
                state.inodes.insert(id, Inode { linked: true, ..Inode::default() });
                state.entries.insert(path.to_path_buf(), id);
                id
            }
            None => return Err(error(libc::ENOENT)),
        };
        let crash_epoch = state.crash_epoch;
        drop(state);
        let file = SimFile { disk: self.clone(), inode_id: id, crash_epoch };
        if truncate {
            file.set_len(0)?;
        }
        Ok(file)
    }

    pub(crate) fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.0.borrow_mut();
        for ancestor in path.ancestors() {
            if state.entries.contains_key(ancestor) {
                return Err(error(libc::ENOTDIR));
            }
        }
        for ancestor in path.ancestors() {
            state.directories.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    pub(crate) fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let state = self.0.borrow();
        if !state.directories.contains(path) {
            return Err(error(libc::ENOENT));
        }
        // Paths order component by component, so a directory's descendants are the keys
        // right after it: listing one partition of many touches only its own files.
        let after = (Bound::Excluded(path), Bound::Unbounded);
        let directories = state.directories.range::<Path, _>(after);
        let files = state.entries.range::<Path, _>(after).map(|(candidate, _)| candidate);
        let mut names: Vec<String> = directories
            .take_while(|candidate| candidate.starts_with(path))
            .chain(files.take_while(|candidate| candidate.starts_with(path)))
            .filter(|candidate| candidate.parent() == Some(path))
            .filter_map(|candidate| candidate.file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    pub(crate) fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.0.borrow_mut();
        let Some(id) = state.entries.remove(path) else {
            return Err(error(libc::ENOENT));
        };
        if let Some(inode) = state.inodes.get_mut(&id) {
            inode.linked = false;
        }
        Ok(())
    }

    pub(crate) fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.0.borrow_mut();
        if !state.directories.contains(path) {
            return Err(error(libc::ENOENT));
        }
        let doomed: Vec<PathBuf> =
            state.entries.keys().filter(|entry| entry.starts_with(path)).cloned().collect();
        for entry in doomed {
            if let Some(id) = state.entries.remove(&entry) {
                if let Some(inode) = state.inodes.get_mut(&id) {
                    inode.linked = false;
                }
            }
        }
        state.directories.retain(|directory| !directory.starts_with(path));
        Ok(())
    }

    pub(crate) fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.0.borrow_mut();
        let parent = to.parent().unwrap_or(Path::new("/"));
        if !state.directories.contains(parent) {
            return Err(error(libc::ENOENT));
        }
        if let Some(id) = state.entries.remove(from) {
            if let Some(replaced) = state.entries.insert(to.to_path_buf(), id) {
                if let Some(inode) = state.inodes.get_mut(&replaced) {
                    inode.linked = false;
                }
            }
            return Ok(());
        }
        if !state.directories.contains(from) {
            return Err(error(libc::ENOENT));
        }
        let moved_directories: Vec<PathBuf> =
            state.directories.iter().filter(|d| d.starts_with(from)).cloned().collect();
        for directory in moved_directories {
            state.directories.remove(&directory);
            let suffix = directory.strip_prefix(from).unwrap_or(Path::new(""));
            state.directories.insert(to.join(suffix));
        }
        let moved_entries: Vec<PathBuf> =
            state.entries.keys().filter(|e| e.starts_with(from)).cloned().collect();
        for entry in moved_entries {
            if let Some(id) = state.entries.remove(&entry) {
                let suffix = entry.strip_prefix(from).unwrap_or(Path::new(""));
                state.entries.insert(to.join(suffix), id);
            }
        }
        Ok(())
    }

    pub(crate) fn sync_dir(&self, path: &Path) -> io::Result<()> {
        // Directory entries are durable immediately in this model; only check it exists.
        if self.0.borrow().directories.contains(path) {
            Ok(())
        } else {
            Err(error(libc::ENOENT))
        }
    }

    pub(crate) fn exists(&self, path: &Path) -> bool {
        let state = self.0.borrow();
        state.directories.contains(path) || state.entries.contains_key(path)
    }

    pub(crate) fn available_space_bytes(&self, _path: &Path) -> io::Result<u64> {
        let state = self.0.borrow();
        let capacity_bytes = state.capacity_bytes.unwrap_or(CAPACITY_UNLIMITED_BYTES);
        Ok(capacity_bytes.saturating_sub(used_bytes(&state)))
    }
}

/// Whether an armed failure covers inode `id`'s path; if so, one of its failures is used up.
fn consume_armed_failure(
    entries: &BTreeMap<PathBuf, u64>,
    armed: &mut [(PathBuf, u32)],
    id: u64,
) -> bool {
    // Finding the path walks every entry: only when a failure is armed.
    if armed.iter().all(|(_, remaining)| *remaining == 0) {
        return false;
    }
    let Some(path) = entries.iter().find(|(_, &entry)| entry == id).map(|(path, _)| path) else {
        return false;
    };
    let failing = armed
        .iter_mut()
        .find(|(prefix, remaining)| *remaining > 0 && path.starts_with(prefix.as_path()));
    match failing {
        Some((_, remaining)) => {
            *remaining -= 1;
            true
        }
        None => false,
    }
}

fn used_bytes(state: &State) -> u64 {
    state.inodes.values().filter(|inode| inode.linked).map(|inode| inode.cached.len() as u64).sum()
}

/// An open file on a [`SimDisk`]; every operation completes immediately.
#[derive(Clone)]
pub(crate) struct SimFile {
    disk: SimDisk,
    inode_id: u64,
    crash_epoch: u64,
}

impl SimFile {
    /// Runs `action` on this file's inode, failing if the handle predates a crash.
    fn with_inode<R>(
        &self,
        action: impl FnOnce(&mut State, u64) -> io::Result<R>,
    ) -> io::Result<R> {
        let mut state = self.disk.0.borrow_mut();
        if state.crash_epoch != self.crash_epoch || !state.inodes.contains_key(&self.inode_id) {
            return Err(error(libc::EBADF));
        }
        action(&mut state, self.inode_id)
    }

    pub(crate) fn read_at<B: IoBufMut>(&self, buf: &mut B, offset: u64) -> io::Result<usize> {
        let spare = (buf.bytes_total() - buf.bytes_init()) as u64;
        self.with_inode(|state, id| {
            let inode = state.inodes.get(&id).ok_or_else(|| error(libc::EBADF))?;
            let length = inode.cached.len() as u64;
            let start = offset.min(length);
            let end = offset.saturating_add(spare).min(length);
            if start < end
                && inode.failing_reads.iter().any(|bad| ranges_overlap(bad, &(start..end)))
            {
                tracing::warn!(fault = "read_eio", offset, "sim disk: failing read");
                return Err(error(libc::EIO));
            }
            let (start, end) = misdirection::maybe_misdirect_read(state, id, start, end);
            let Some(inode) = state.inodes.get(&id) else { return Err(error(libc::EBADF)) };
            Ok(copy_into_spare(buf, &inode.cached[to_usize(start)..to_usize(end)]))
        })
    }

    /// Writes `buf[start..bytes_init())` at `offset`, all of it or nothing.
    pub(crate) fn write_from<B: IoBuf>(
        &self,
        buf: &B,
        start: usize,
        offset: u64,
    ) -> io::Result<usize> {
        let data = &init_slice(buf)[start..];
        let end = offset.checked_add(data.len() as u64).ok_or_else(|| error(libc::EFBIG))?;
        self.grow_check(end)?;
        self.with_inode(|state, id| {
            if consume_armed_failure(&state.entries, &mut state.failing_writes, id) {
                tracing::warn!(fault = "write_eio", offset, "sim disk: failing write");
                return Err(error(libc::EIO));
            }
            let inode = state.inodes.get_mut(&id).ok_or_else(|| error(libc::EBADF))?;
            write_into(&mut inode.cached, offset, data);
            inode.unsynced.push(Unsynced::Write { offset, data: data.to_vec() });
            Ok(data.len())
        })
    }

    /// Fails with EFBIG past the simulated maximum file size, or with ENOSPC if growing this
    /// file to `end` would exceed the disk's capacity.
    fn grow_check(&self, end: u64) -> io::Result<()> {
        if end > SIM_FILE_SIZE_BYTES_MAX {
            return Err(error(libc::EFBIG));
        }
        self.with_inode(|state, id| {
            let Some(capacity_bytes) = state.capacity_bytes else { return Ok(()) };
            let length = state.inodes.get(&id).map_or(0, |inode| inode.cached.len() as u64);
            if end <= length {
                return Ok(());
            }
            if used_bytes(state) - length + end > capacity_bytes {
                tracing::warn!(fault = "enospc", capacity_bytes, "sim disk: out of space");
                return Err(error(libc::ENOSPC));
            }
            Ok(())
        })
    }

    pub(crate) fn sync_data(&self) -> io::Result<()> {
        self.with_inode(|state, id| {
            let failing = consume_armed_failure(&state.entries, &mut state.failing_syncs, id);
            let inode = state.inodes.get_mut(&id).ok_or_else(|| error(libc::EIO))?;
            if failing {
                tracing::warn!(fault = "sync_eio", "sim disk: failing sync, dropping writes");
                // The writes stay in `cached` (readable) but leave the unsynced list: a later sync
                // will not persist them and a crash discards them.
                inode.unsynced.clear();
                return Err(error(libc::EIO));
            }
            for operation in std::mem::take(&mut inode.unsynced) {
                misdirection::remember_synced(inode, &operation);
                apply(&mut inode.durable, &operation);
            }
            debug_assert!(inode.synced_writes.len() <= SYNCED_WRITES_KEPT_MAX);
            Ok(())
        })
    }

    pub(crate) fn len(&self) -> io::Result<u64> {
        self.with_inode(|state, id| {
            Ok(state.inodes.get(&id).map_or(0, |inode| inode.cached.len() as u64))
        })
    }

    pub(crate) fn set_len(&self, size_bytes: u64) -> io::Result<()> {
        self.grow_check(size_bytes)?;
        self.with_inode(|state, id| {
            let inode = state.inodes.get_mut(&id).ok_or_else(|| error(libc::EBADF))?;
            let operation = Unsynced::SetLen { size_bytes };
            apply(&mut inode.cached, &operation);
            inode.unsynced.push(operation);
            Ok(())
        })
    }
}
