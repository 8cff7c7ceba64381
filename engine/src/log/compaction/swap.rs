//! Swapping a cleaned segment in for the group it replaces, crash-safely (Kafka's
//! `.cleaned` / `.swap` scheme). File names, for a group of segments `B..E` (first base offset
//! `B`, end offset `E`):
//!
//! 1. `<B:020>.cleaned` and its indexes `<B>.index.cleaned`, `<B>.timeindex.cleaned` —
//!    written and fdatasync'd (`clean.rs`). Not yet part of the log.
//! 2. The group's `.index` / `.timeindex` files are removed (caches; they would describe the
//!    old bytes of `<B>.log`, and a missing index is rebuilt by a validating scan).
//! 3. `<B>.cleaned` is renamed to `<B:020>.<E:020>.swap`, directory fsync'd. **Commit point.**
//! 4. The group's `.log` files other than `<B>.log` are removed, directory fsync'd.
//! 5. `<B>.<E>.swap` is renamed over `<B>.log`, then `<B>.index.cleaned` and
//!    `<B>.timeindex.cleaned` (written and synced in step 1) over `<B>.index` and
//!    `<B>.timeindex`; directory fsync'd. The in-memory segments are replaced in the same
//!    synchronous step (no await between 2 and here).
//!
//! Recovery ([`finish_interrupted_swap`], before segments are listed): `.cleaned` files are
//! deleted (before the commit point the old segments are intact; after it, a missing index
//! is rebuilt, while a partly written one could pass validation and be trusted); a `.swap`
//! file is completed (steps 4–5 again, idempotent: every segment file with a base in `B..E`
//! but `<B>.log` and all their indexes removed, then the rename). A crash at any point thus
//! leaves either the old group or the new segment, each a complete, CRC-valid, contiguous
//! span `B..E`, with whole index files or none.

use std::path::Path;
use std::rc::Rc;

use super::super::error::LogError;
use super::super::flush;
use super::super::layout::{self, EntryKind, LOG_SUFFIX, OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX};
use super::super::state::Shared;
use super::{Cleaned, Hooks, Source};
use crate::io::Disk;

const CLEANED_SUFFIX: &str = ".cleaned";
const SWAP_SUFFIX: &str = ".swap";

pub fn cleaned_name(base_offset: i64) -> String {
    format!("{base_offset:020}{CLEANED_SUFFIX}")
}

/// The cleaned segment's index file with `suffix`, before it is renamed into place.
pub fn cleaned_index_name(base_offset: i64, suffix: &str) -> String {
    assert!(suffix == OFFSET_INDEX_SUFFIX || suffix == TIME_INDEX_SUFFIX);
    format!("{base_offset:020}.{suffix}{CLEANED_SUFFIX}")
}

/// Removes a cleaning's `.cleaned` files (segment and indexes), if present.
pub fn remove_cleaned(disk: &Disk, dir: &Path, base_offset: i64) -> std::io::Result<()> {
    remove_if_present(disk, &dir.join(cleaned_name(base_offset)))?;
    for suffix in [OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        remove_if_present(disk, &dir.join(cleaned_index_name(base_offset, suffix)))?;
    }
    Ok(())
}

pub fn swap_name(base_offset: i64, end_offset: i64) -> String {
    assert!(0 <= base_offset && base_offset < end_offset);
    format!("{base_offset:020}.{end_offset:020}{SWAP_SUFFIX}")
}

/// A leftover of an interrupted swap, judged by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leftover {
    Cleaned,
    Swap { base_offset: i64, end_offset: i64 },
}

fn leftover(name: &str) -> Option<Leftover> {
    let offset = |digits: &str| -> Option<i64> {
        let all_digits = digits.len() == 20 && digits.bytes().all(|byte| byte.is_ascii_digit());
        all_digits.then(|| digits.parse::<i64>().ok()).flatten()
    };
    if let Some(stem) = name.strip_suffix(CLEANED_SUFFIX) {
        let base = [OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX]
            .iter()
            .find_map(|suffix| stem.strip_suffix(suffix).and_then(|base| base.strip_suffix('.')))
            .unwrap_or(stem);
        return offset(base).map(|_| Leftover::Cleaned);
    }
    let stem = name.strip_suffix(SWAP_SUFFIX)?;
    let (base, end) = stem.split_once('.')?;
    let (base_offset, end_offset) = (offset(base)?, offset(end)?);
    (base_offset < end_offset).then_some(Leftover::Swap { base_offset, end_offset })
}

pub enum Swapped {
    Yes,
    /// Nothing changed: the `.cleaned` file was discarded.
    Unchanged,
    /// The log changed meanwhile (closed, offline, retention): discarded, try again later.
    Abandoned,
    /// A test hook stopped the swap part-way (as if the process had died).
    Stopped,
}

/// Swaps `cleaned` in for `group` (steps 2–5 and the index write).
pub async fn swap_in(
    shared: &Rc<Shared>,
    group: &[Source],
    cleaned: Cleaned,
    hooks: &mut Hooks,
) -> Result<Swapped, LogError> {
    let base_offset = group[0].base_offset;
    let end_offset = group[group.len() - 1].next_offset;
    if !cleaned.changed || !still_in_log(shared, group) {
        remove_cleaned(&shared.disk, &shared.dir, base_offset)?;
        return Ok(if cleaned.changed { Swapped::Abandoned } else { Swapped::Unchanged });
    }
    // From here to the in-memory replacement every call is synchronous: nothing else runs on
    // this shard meanwhile, so the log cannot change under the swap.
    match rename_into_place(shared, group, end_offset, hooks) {
        Ok(true) => {}
        Ok(false) => return Ok(Swapped::Stopped),
        Err(error) => {
            // Past step 2 the in-memory indexes no longer match the files, and past step 3
            // only recovery may finish the swap: go offline; re-opening recovers.
            flush::go_offline(shared, format!("log compaction swap failed: {error}"));
            return Err(LogError::Offline);
        }
    }
    let mut state = shared.state.borrow_mut();
    let Some(first) = state.segment_by_base(base_offset) else {
        unreachable!("checked synchronously above")
    };
    let mut segment = cleaned.segment;
    // Its index files were written (synced) with it and renamed into place with it.
    segment.offset_index.mark_persisted(segment.offset_index.entries().len());
    segment.time_index.mark_persisted(segment.time_index.entries().len());
    state.segments.splice(first..first + group.len(), [segment]);
    state.check_invariants();
    drop(state);
    if hooks.step() {
        return Ok(Swapped::Stopped);
    }
    Ok(Swapped::Yes)
}

/// True when the log is usable and still holds exactly the group's segments, as planned.
fn still_in_log(shared: &Shared, group: &[Source]) -> bool {
    let state = shared.state.borrow();
    if state.unusable().is_some() || state.closing || state.corrupt_from.is_some() {
        return false;
    }
    let Some(first) = state.segment_by_base(group[0].base_offset) else { return false };
    let last_sealed = state.segments.len() - 1;
    group.iter().enumerate().all(|(index, source)| {
        let position = first + index;
        position < last_sealed && {
            let segment = &state.segments[position];
            segment.base_offset == source.base_offset
                && segment.next_offset == source.next_offset
                && segment.size_bytes == source.size_bytes
                && !state.segments_to_seal.contains(&segment.base_offset)
        }
    })
}

/// Steps 2–5. `Ok(false)` when a test hook stopped it.
fn rename_into_place(
    shared: &Shared,
    group: &[Source],
    end_offset: i64,
    hooks: &mut Hooks,
) -> std::io::Result<bool> {
    let (disk, dir) = (&shared.disk, shared.dir.as_path());
    let base_offset = group[0].base_offset;
    for source in group {
        for suffix in [OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            remove_if_present(disk, &layout::segment_path(dir, source.base_offset, suffix))?;
        }
    }
    if hooks.step() {
        return Ok(false);
    }
    let swap_path = dir.join(swap_name(base_offset, end_offset));
    disk.rename(&dir.join(cleaned_name(base_offset)), &swap_path)?;
    disk.sync_dir(dir)?;
    if hooks.step() {
        return Ok(false);
    }
    for source in &group[1..] {
        remove_if_present(disk, &layout::segment_path(dir, source.base_offset, LOG_SUFFIX))?;
    }
    // Durable before the rename below: old segments reappearing behind the new `<B>.log`,
    // with no `.swap` left to say they are replaced, would overlap it.
    disk.sync_dir(dir)?;
    if hooks.step() {
        return Ok(false);
    }
    disk.rename(&swap_path, &layout::segment_path(dir, base_offset, LOG_SUFFIX))?;
    // Whole index files only: a crash before these renames leaves them to recovery's rebuild
    // (it deletes `.cleaned` files), never a partly written index it would trust.
    for suffix in [OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        let from = dir.join(cleaned_index_name(base_offset, suffix));
        disk.rename(&from, &layout::segment_path(dir, base_offset, suffix))?;
    }
    disk.sync_dir(dir)?;
    if hooks.step() {
        return Ok(false);
    }
    Ok(true)
}

fn remove_if_present(disk: &Disk, path: &Path) -> std::io::Result<()> {
    match disk.remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Recovery: discards unfinished `.cleaned` files and completes committed `.swap`s.
pub fn finish_interrupted_swap(disk: &Disk, dir: &Path) -> Result<(), LogError> {
    let names = disk.list_dir(dir)?;
    let mut changed = false;
    for name in &names {
        let Some(found) = leftover(name) else { continue };
        changed = true;
        let Leftover::Swap { base_offset, end_offset } = found else {
            tracing::info!(dir = %dir.display(), name, "log: discarding an unfinished compaction");
            remove_if_present(disk, &dir.join(name))?;
            continue;
        };
        tracing::info!(dir = %dir.display(), name, "log: completing an interrupted compaction");
        for other in &names {
            let base = match layout::classify(other) {
                EntryKind::Log { base_offset: base } if base == base_offset => continue,
                EntryKind::Log { base_offset: base }
                | EntryKind::OffsetIndex { base_offset: base }
                | EntryKind::TimeIndex { base_offset: base } => base,
                EntryKind::Checkpoint | EntryKind::Other => continue,
            };
            if (base_offset..end_offset).contains(&base) {
                remove_if_present(disk, &dir.join(other))?;
            }
        }
        // As in `rename_into_place`: removals durable before the `.swap` disappears.
        disk.sync_dir(dir)?;
        disk.rename(&dir.join(name), &layout::segment_path(dir, base_offset, LOG_SUFFIX))?;
    }
    if changed {
        disk.sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_names_round_trip_and_are_not_segments() {
        assert_eq!(leftover(&cleaned_name(42)), Some(Leftover::Cleaned));
        let swap = swap_name(42, 90);
        assert_eq!(swap, "00000000000000000042.00000000000000000090.swap");
        assert_eq!(leftover(&swap), Some(Leftover::Swap { base_offset: 42, end_offset: 90 }));
        assert_eq!(layout::classify(&swap), EntryKind::Other);
        assert_eq!(layout::classify(&cleaned_name(42)), EntryKind::Other);
        let index = cleaned_index_name(42, TIME_INDEX_SUFFIX);
        assert_eq!(index, "00000000000000000042.timeindex.cleaned");
        assert_eq!(leftover(&index), Some(Leftover::Cleaned));
        assert_eq!(layout::classify(&index), EntryKind::Other);
        for name in ["42.cleaned", "00000000000000000090.00000000000000000042.swap", "x.swap"] {
            assert_eq!(leftover(name), None, "{name}");
        }
    }
}
