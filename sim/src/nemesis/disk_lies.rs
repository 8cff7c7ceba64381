//! Faults of a disk that lies (TigerBeetle's storage fault model): phantom writes, misdirected
//! writes, and a slow disk. Misdirected reads are armed directly on the disk by the nemesis.
//!
//! Which files each may hit (docs/simulation.md has the table): phantom writes hit segments,
//! offset and time indexes and the recovery checkpoint of a partition; misdirected writes hit
//! segments and indexes (the checkpoint and the write intent are smaller than a sector, so no
//! other offset of theirs exists). Never the write intent (its phantom can make a torn,
//! unacknowledged group look like detected loss: an availability cost, see the docs), never
//! `topics.json` or `meta.json` (checksummed: damage makes the broker refuse to start, and a
//! single node would then stay down for good).
//!
//! In a segment, only a write with an intact durable batch behind it is undone, and a
//! misdirected write lands only on batches with one behind them: on a single node a lost final
//! batch cannot be told from a torn write (the same reason bit flips spare it). The offsets of
//! every destroyed batch go to the fault log the checker uses for `detected-loss`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use tern::io::{DiskLatency, SimDisk};

use super::{
    durable_batches, last_intact_batch, partition_dir, partition_of, random_between, sleep_ms,
};
use crate::checker::CorruptionFault;
use crate::plan::Plan;
use crate::run::run_state;

/// A random file of a random partition whose name ends with one of `suffixes`.
fn pick_file(disk: &SimDisk, plan: &Plan, suffixes: &[&str]) -> Option<PathBuf> {
    let partition = random_between(0, plan.partitions as u64 - 1) as i32;
    let directory = partition_dir(partition);
    let files: Vec<PathBuf> = disk
        .file_paths()
        .into_iter()
        .filter(|path| path.parent() == Some(directory.as_path()))
        .filter(|path| {
            let name = path.file_name().map(|name| name.to_string_lossy().into_owned());
            name.is_some_and(|name| suffixes.iter().any(|suffix| name.ends_with(suffix)))
        })
        .collect();
    if files.is_empty() {
        return None;
    }
    Some(files[random_between(0, files.len() as u64 - 1) as usize].clone())
}

/// Segments most of the time: they hold the acknowledged data.
fn pick_target(disk: &SimDisk, plan: &Plan, metadata: &[&str]) -> Option<PathBuf> {
    if random_between(0, 2) > 0 {
        pick_file(disk, plan, &[".log"])
    } else {
        pick_file(disk, plan, metadata)
    }
}

/// Offsets (first, last) of the durable batches of `image` overlapping `range`.
fn batches_in(image: &[u8], range: &Range<u64>) -> Option<(i64, i64)> {
    let hit: Vec<(i64, i64)> = durable_batches(image)
        .into_iter()
        .filter(|(position, size, _, _)| {
            (*position as u64) < range.end && range.start < (*position + *size) as u64
        })
        .map(|(_, _, first, last)| (first, last))
        .collect();
    Some((hit.first()?.0, hit.last()?.1))
}

/// Where a segment's final intact durable batch starts: nothing at or beyond it may be
/// destroyed (a batch that only frames right may be torn: see `last_intact_batch`).
fn final_batch_start(image: &[u8]) -> Option<u64> {
    let batches = durable_batches(image);
    last_intact_batch(image, &batches).map(|index| batches[index].0 as u64)
}

/// A synced write of `path` that may be undone, chosen at random.
fn undoable_write(disk: &SimDisk, path: &Path, below: u64) -> Option<Range<u64>> {
    let writes: Vec<Range<u64>> =
        disk.synced_writes(path).into_iter().filter(|write| write.end <= below).collect();
    if writes.is_empty() {
        return None;
    }
    Some(writes[random_between(0, writes.len() as u64 - 1) as usize].clone())
}

fn record_destroyed(path: &Path, (first_offset, last_offset): (i64, i64)) {
    let partition = partition_of(path);
    tracing::warn!(fault = "lost_batches", partition, first_offset, last_offset, "disk lied");
    run_state().corruptions.borrow_mut().push(CorruptionFault {
        partition,
        first_offset,
        last_offset,
    });
}

/// Half the time the page cache of the file is dropped too: the lie shows before any crash.
fn maybe_evict(disk: &SimDisk, path: &Path) {
    if random_between(0, 1) == 0 {
        disk.evict_cache(path);
    }
}

pub(super) fn phantom_write(disk: &SimDisk, plan: &Plan) {
    let Some(path) = pick_target(disk, plan, &[".index", ".timeindex", "recovery-point"]) else {
        return;
    };
    let is_segment = path.extension().is_some_and(|extension| extension == "log");
    let image = disk.durable_bytes(&path).unwrap_or_default();
    let below = if is_segment { final_batch_start(&image) } else { Some(u64::MAX) };
    let Some(write) = below.and_then(|below| undoable_write(disk, &path, below)) else { return };
    let destroyed = if is_segment {
        let Some(destroyed) = batches_in(&image, &write) else { return };
        Some(destroyed)
    } else {
        None
    };
    if disk.phantom_synced_write(&path, write) {
        destroyed.into_iter().for_each(|offsets| record_destroyed(&path, offsets));
        maybe_evict(disk, &path);
    }
}

pub(super) fn misdirected_write(disk: &SimDisk, plan: &Plan) {
    let Some(path) = pick_target(disk, plan, &[".index", ".timeindex"]) else { return };
    let is_segment = path.extension().is_some_and(|extension| extension == "log");
    let image = disk.durable_bytes(&path).unwrap_or_default();
    let end = if is_segment { final_batch_start(&image) } else { Some(image.len() as u64) };
    let Some(end) = end else { return };
    let Some(write) = undoable_write(disk, &path, end) else { return };
    let length = write.end - write.start;
    // Anywhere that ends by `end` and does not overlap the write itself.
    let Some(room) = end.checked_sub(length) else { return };
    let target = random_between(0, room);
    if target < write.end && write.start < target + length {
        return;
    }
    let target_range = target..target + length;
    let destroyed = if is_segment {
        let (Some(intended), Some(hit)) =
            (batches_in(&image, &write), batches_in(&image, &target_range))
        else {
            return;
        };
        vec![intended, hit]
    } else {
        Vec::new()
    };
    if disk.misdirect_synced_write(&path, write, target) {
        destroyed.into_iter().for_each(|offsets| record_destroyed(&path, offsets));
        maybe_evict(disk, &path);
    }
}

/// Writes up to 2 ms and syncs up to 50 ms for a while: a power failure then finds more
/// writes in flight, and group commit gathers more appends per sync.
pub(super) async fn slow_disk(disk: &SimDisk) {
    let latency = DiskLatency {
        write_us_max: random_between(0, 2_000),
        sync_us_max: random_between(1_000, 50_000),
    };
    disk.set_latency(latency);
    sleep_ms(random_between(200, 3_000)).await;
    disk.set_latency(DiskLatency::default());
}
