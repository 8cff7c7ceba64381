//! Recovery on open: find the segments, trust what the checkpoint covers, scan the rest batch
//! by batch, and apply the storage-fault policy to whatever is not a clean log.
//!
//! - A bad batch (torn, CRC-invalid, or not contiguous) with NO intact batch anywhere behind it
//!   is a torn tail that was never acknowledged: the file is truncated to the last good batch
//!   (set_len + fdatasync) and later segments (created by a roll whose data never became
//!   durable) are deleted.
//! - A bad batch WITH an intact batch behind it is detected loss of acknowledged data: nothing
//!   is truncated or skipped on disk, the intact prefix is served, `corrupt_from` is set.
//!   ("Intact behind" = a batch that passes CRC with a base offset at or above the one
//!   expected, found by scanning forward byte by byte, then through later segments.)
//! - Exception: a bad batch inside the range of the write intent (`intent.rs`) with intact
//!   batches behind it only *within* that range is a torn, never-synced group: truncated too.
//! - Every judgement that leads to truncation or to reported loss is made on bytes read twice
//!   (a misdirected read returns the bytes of a wrong offset once; see `reader.rs`).
//! - Segments before the checkpoint are trusted; their index files are loaded and validated,
//!   and a segment whose indexes are missing or invalid is re-scanned to rebuild them.
//! - Everything scanned after the checkpoint is written back in place and fdatasync'd before
//!   the log serves it (`TailRewrite`): it may be a dead process's unsynced tail.

use std::path::Path;

use super::checkpoint::{self, Checkpoint};
use super::config::LogConfig;
use super::error::LogError;
use super::intent::{self, Intent};
use super::layout::{self, EntryKind, OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX};
use super::leader_epochs::{self, LeaderEpochs};
use super::offset_index::{self, OffsetIndex};
use super::reader::{read_exactly, SegmentReader, CHUNK_BYTES};
use super::scan::{self, Expect, Judgement};
use super::segment::{self, Segment};
use super::time_index::{self, TimeIndex};
use crate::io::{Disk, File, OpenOptions};
use crate::record_batch;

pub struct Recovered {
    /// Never empty; contiguous.
    pub segments: Vec<Segment>,
    pub corrupt_from: Option<i64>,
    /// Base offsets of segments whose in-memory indexes differ from their files.
    pub indexes_to_write: Vec<i64>,
    pub checkpoint: Option<Checkpoint>,
    /// The write intent found on disk (reset by the caller once recovery is done).
    pub intent: Option<Intent>,
    /// The first offset of each leader epoch in the recovered log.
    pub leader_epochs: LeaderEpochs,
    /// What the `leader-epochs` file holds (empty when it is missing or damaged).
    pub leader_epochs_on_disk: LeaderEpochs,
}

pub async fn recover(disk: &Disk, dir: &Path, config: &LogConfig) -> Result<Recovered, LogError> {
    disk.create_dir_all(dir)?;
    super::compaction::finish_interrupted_swap(disk, dir)?;
    let bases = list_segments(disk, dir)?;
    let checkpoint = checkpoint::read(disk, dir)
        .await
        .filter(|checkpoint| bases.contains(&checkpoint.segment_base_offset));
    let interval_bytes = config.index_interval_bytes;
    let intent = intent::read(disk, dir).await;
    let mut recovered = Recovered {
        intent,
        segments: Vec::new(),
        corrupt_from: None,
        indexes_to_write: Vec::new(),
        checkpoint,
        leader_epochs: LeaderEpochs::new(),
        leader_epochs_on_disk: LeaderEpochs::new(),
    };
    for &base_offset in &bases {
        let path = layout::segment_path(dir, base_offset, layout::LOG_SUFFIX);
        let file = disk.open(&path, OpenOptions { create: false, truncate: false })?;
        recovered.segments.push(Segment::empty(file, base_offset, interval_bytes));
    }
    if recovered.segments.is_empty() {
        recovered.segments.push(Segment::create(disk, dir, 0, interval_bytes)?);
        disk.sync_dir(dir)?;
        return Ok(recovered);
    }
    let first_scanned = match checkpoint {
        Some(checkpoint) => bases.partition_point(|base| *base < checkpoint.segment_base_offset),
        None => 0,
    };
    for index in 0..first_scanned {
        load_trusted(disk, dir, config, &mut recovered, index).await?;
    }
    let start = start_of_scan(disk, dir, config, &mut recovered, first_scanned).await?;
    let recorded = leader_epochs::read(disk, dir).await;
    recovered.leader_epochs_on_disk = recorded.clone().unwrap_or_default();
    recovered.leader_epochs = trusted_epochs(dir, &recovered, start, recorded).await?;
    scan_tail(disk, dir, config, &mut recovered, start).await?;
    check_checkpoint_reached(dir, &mut recovered);
    let end_offset = recovered.segments.last().map_or(0, |segment| segment.next_offset);
    recovered.leader_epochs.truncate_from(end_offset);
    // After a process crash (not a power failure) the page cache still holds what the dead
    // process wrote and never synced, and the scan read it as log. It is served from now on
    // and counted as synced, so make it durable first: else a later power failure could take
    // back records consumers saw, or tear them in front of newer durable ones. The scan wrote
    // every batch it accepted back in place (see `TailRewrite`), so this sync has them all to
    // persist, even pages a failed sync of an earlier recovery left clean but not durable.
    for segment in &recovered.segments[first_scanned.min(recovered.segments.len())..] {
        segment.file.sync_data().await?;
    }
    Ok(recovered)
}

/// Segment base offsets, sorted; removes index files whose `.log` is gone.
fn list_segments(disk: &Disk, dir: &Path) -> Result<Vec<i64>, LogError> {
    let names = disk.list_dir(dir)?;
    let mut bases: Vec<i64> = names
        .iter()
        .filter_map(|name| match layout::classify(name) {
            EntryKind::Log { base_offset } => Some(base_offset),
            _ => None,
        })
        .collect();
    bases.sort_unstable();
    for name in &names {
        let orphan = match layout::classify(name) {
            EntryKind::OffsetIndex { base_offset } | EntryKind::TimeIndex { base_offset } => {
                bases.binary_search(&base_offset).is_err()
            }
            _ => false,
        };
        if orphan {
            tracing::info!(dir = %dir.display(), name, "log: removing an orphan index file");
            disk.remove_file(&dir.join(name))?;
        }
    }
    Ok(bases)
}

/// Reads and validates a segment's index files for a segment of `size_bytes` holding
/// offsets below `offset_end`; `None` when either is missing or invalid.
async fn load_indexes(
    disk: &Disk,
    dir: &Path,
    base_offset: i64,
    size_bytes: u64,
    offset_end: i64,
) -> Option<(Vec<offset_index::OffsetIndexEntry>, Vec<time_index::TimeIndexEntry>)> {
    let relative_end = u64::try_from(offset_end - base_offset).ok()?;
    let offset_bytes =
        read_whole(disk, &layout::segment_path(dir, base_offset, OFFSET_INDEX_SUFFIX)).await?;
    let time_bytes =
        read_whole(disk, &layout::segment_path(dir, base_offset, TIME_INDEX_SUFFIX)).await?;
    let offsets = offset_index::decode(&offset_bytes, size_bytes, relative_end);
    let times = time_index::decode(&time_bytes, relative_end);
    match (offsets, times) {
        (Ok(offsets), Ok(times)) => Some((offsets, times)),
        (offsets, times) => {
            tracing::info!(
                dir = %dir.display(),
                base_offset,
                ?offsets,
                ?times,
                "log: index invalid; rebuilding",
            );
            None
        }
    }
}

async fn read_whole(disk: &Disk, path: &Path) -> Option<Vec<u8>> {
    if !disk.exists(path) {
        return None;
    }
    let file = disk.open(path, OpenOptions { create: false, truncate: false }).ok()?;
    let len_bytes = usize::try_from(file.len().ok()?).ok()?;
    read_exactly(&file, 0, len_bytes).await.ok()
}

/// A segment wholly before the checkpoint: durable, so only its indexes need loading (or
/// rebuilding, which re-validates it).
async fn load_trusted(
    disk: &Disk,
    dir: &Path,
    config: &LogConfig,
    recovered: &mut Recovered,
    index: usize,
) -> Result<(), LogError> {
    let next_base = recovered.segments[index + 1].base_offset;
    let segment = &mut recovered.segments[index];
    let len_bytes = segment.file.len()?;
    if let Some((offsets, times)) =
        load_indexes(disk, dir, segment.base_offset, len_bytes, next_base).await
    {
        segment.offset_index =
            OffsetIndex::from_loaded(config.index_interval_bytes, offsets, len_bytes);
        segment.time_index = TimeIndex::from_loaded(times);
        segment.size_bytes = len_bytes;
        segment.next_offset = next_base;
        return Ok(());
    }
    recovered.indexes_to_write.push(segment.base_offset);
    let mut reader = SegmentReader::new(
        segment.file.clone(),
        len_bytes,
        scan::max_batch_bytes(config.max_message_bytes),
    );
    let mut cursor = Cursor { index, position: 0, expected_offset: segment.base_offset };
    loop {
        let segment = &mut recovered.segments[index];
        // Trusted data is durable: nothing to rewrite.
        if let Stop::End = scan_segment(&mut reader, segment, &mut cursor, None, None).await? {
            if segment.next_offset == next_base {
                return Ok(());
            }
        }
        // Inside trusted (durable, once valid) data every bad batch is loss, whatever follows.
        mark_corrupt(dir, recovered, cursor.expected_offset);
        let segment = &mut recovered.segments[index];
        let base_offset = segment.base_offset;
        match reader.find_intact(cursor.position + 1, cursor.expected_offset, base_offset).await? {
            Some((position, info)) if info.base_offset < next_base => {
                segment.skip_to(position, info.base_offset);
                cursor = Cursor { index, position, expected_offset: info.base_offset };
            }
            _ if segment.next_offset > next_base => {
                return Err(LogError::Corrupt { offset: next_base });
            }
            _ => {
                segment.skip_to(len_bytes, next_base);
                return Ok(());
            }
        }
    }
}

/// Where the scan of possibly-undurable data begins: the checkpoint, if its segment's indexes
/// load; else the start of that segment.
async fn start_of_scan(
    disk: &Disk,
    dir: &Path,
    config: &LogConfig,
    recovered: &mut Recovered,
    index: usize,
) -> Result<Cursor, LogError> {
    let segment = &mut recovered.segments[index];
    let base_offset = segment.base_offset;
    let from_start = Cursor { index, position: 0, expected_offset: base_offset };
    recovered.indexes_to_write.push(base_offset);
    let Some(checkpoint) = recovered.checkpoint else { return Ok(from_start) };
    let len_bytes = segment.file.len()?;
    if checkpoint.position_bytes > len_bytes || checkpoint.position_bytes == 0 {
        return Ok(from_start);
    }
    // The files may hold entries beyond the checkpoint (written just before a crash): keep
    // only those the checkpoint vouches for, by position AND by offset, since the scan goes on
    // adding entries above both (a damaged entry may be below in one column only).
    let span_end = base_offset + segment::SEGMENT_OFFSET_SPAN_MAX;
    let loaded = load_indexes(disk, dir, base_offset, len_bytes, span_end).await;
    let Some((offsets, times)) = loaded else { return Ok(from_start) };
    let position = checkpoint.position_bytes;
    let relative_end = checkpoint.recovery_offset - base_offset;
    let offsets: Vec<_> = offsets
        .into_iter()
        .filter(|entry| {
            u64::from(entry.position_bytes) < position
                && i64::from(entry.relative_offset) < relative_end
        })
        .collect();
    let times: Vec<_> =
        times.into_iter().filter(|entry| i64::from(entry.relative_offset) < relative_end).collect();
    segment.offset_index = OffsetIndex::from_loaded(config.index_interval_bytes, offsets, position);
    segment.time_index = TimeIndex::from_loaded(times);
    segment.size_bytes = position;
    segment.next_offset = checkpoint.recovery_offset;
    segment.first_timestamp_ms = first_batch_timestamp(segment).await;
    Ok(Cursor { index, position, expected_offset: checkpoint.recovery_offset })
}

/// The epochs that start before the scan: from the `leader-epochs` file, which covers them
/// (see `leader_epochs.rs`); when it is missing or damaged (a directory written before it
/// existed), from the batch headers of the trusted segments.
async fn trusted_epochs(
    dir: &Path,
    recovered: &Recovered,
    start: Cursor,
    recorded: Option<LeaderEpochs>,
) -> Result<LeaderEpochs, LogError> {
    if let Some(mut trusted) = recorded {
        trusted.truncate_from(start.expected_offset);
        return Ok(trusted);
    }
    let mut epochs = LeaderEpochs::new();
    for (index, segment) in recovered.segments[..=start.index].iter().enumerate() {
        let end_bytes = if index == start.index { start.position } else { segment.size_bytes };
        walk_epochs(&segment.file, end_bytes, &mut epochs).await?;
    }
    tracing::info!(dir = %dir.display(), ?epochs, "log: leader epochs rebuilt from the log");
    Ok(epochs)
}

/// Feeds the epoch of every batch header in `file` below `end_bytes` to `epochs`, reading a
/// chunk at a time. The bytes are trusted (durable, below the checkpoint); a header that does
/// not fit stops the walk, which only costs boundaries, never a wrong one.
async fn walk_epochs(
    file: &File,
    end_bytes: u64,
    epochs: &mut LeaderEpochs,
) -> Result<(), LogError> {
    const PREFIX_BYTES: u64 = 16; // base offset, batch length, partition leader epoch
    let mut position = 0u64;
    // Each round reads one chunk and moves past at least one batch (>= 61 bytes) or stops.
    while position + PREFIX_BYTES <= end_bytes {
        let chunk_bytes = (end_bytes - position).min(CHUNK_BYTES as u64) as usize;
        let chunk = read_exactly(file, position, chunk_bytes).await?;
        let mut within = 0usize;
        while within + PREFIX_BYTES as usize <= chunk.len() {
            let prefix = &chunk[within..within + PREFIX_BYTES as usize];
            let base_offset = i64::from_be_bytes(prefix[0..8].try_into().unwrap_or([0xff; 8]));
            let length = i32::from_be_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
            let epoch = i32::from_be_bytes([prefix[12], prefix[13], prefix[14], prefix[15]]);
            let size_bytes = i64::from(length) + 12;
            if base_offset < 0 || size_bytes < record_batch::HEADER_SIZE_BYTES as i64 {
                return Ok(());
            }
            if epochs.latest().is_none_or(|latest| base_offset > latest.start_offset) {
                epochs.assign(epoch, base_offset);
            }
            within += size_bytes as usize;
        }
        position += within as u64;
    }
    Ok(())
}

/// Only steers age-based rolling, so an unreadable header just means "unknown".
async fn first_batch_timestamp(segment: &Segment) -> Option<i64> {
    let header = read_exactly(&segment.file, 0, record_batch::HEADER_SIZE_BYTES).await.ok()?;
    record_batch::header(&header).ok().map(|header| header.max_timestamp.get())
}

/// Where a scan is: segment, byte position, and the base offset the next batch must have.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    index: usize,
    position: u64,
    expected_offset: i64,
}

enum Stop {
    /// Reached the end of the file after a valid batch (or at the start).
    End,
    /// The batch at `cursor.position` is not a valid next batch.
    Bad,
}

/// Accepts valid contiguous batches from the cursor on, feeding the segment's indexes, and
/// hands each accepted batch's bytes to `rewrite` when given.
async fn scan_segment(
    reader: &mut SegmentReader,
    segment: &mut Segment,
    cursor: &mut Cursor,
    mut rewrite: Option<&mut TailRewrite>,
    mut epochs: Option<&mut LeaderEpochs>,
) -> Result<Stop, LogError> {
    // Each round consumes one batch (>= 61 bytes) or stops: bounded by the file length.
    let stop = loop {
        if cursor.position == reader.len_bytes() {
            break Stop::End;
        }
        let judgement =
            reader.judge_at_twice(cursor.position, Expect::Exactly(cursor.expected_offset)).await?;
        let Judgement::Valid(info) = judgement else { break Stop::Bad };
        if !segment.can_hold_offset(info.last_offset()) {
            break Stop::Bad;
        }
        if let Some(rewrite) = rewrite.as_deref_mut() {
            let bytes = reader.judged_bytes(cursor.position, info.size_bytes);
            rewrite.push(cursor.position, bytes).await?;
        }
        if let Some(epochs) = epochs.as_deref_mut() {
            epochs.assign(info.partition_leader_epoch, info.base_offset);
        }
        segment.on_batch(cursor.position, &info);
        cursor.position += info.size_bytes as u64;
        cursor.expected_offset = info.next_offset();
    };
    if let Some(rewrite) = rewrite {
        rewrite.flush().await?;
    }
    Ok(stop)
}

/// Writes the batches the scan accepted back where it read them, so that recovery's fdatasync
/// persists them whatever state their pages are in.
///
/// Why (the simulator's seed 102017): when recovery's fdatasync of a tail left in the page
/// cache by a crashed process fails, the kernel marks those pages clean although they never
/// reached the disk ("fsyncgate"). The next *process* restart reads them again, and its own
/// fdatasync succeeds having nothing dirty to write: the tail would be served, and appends
/// acknowledged behind it, while a power failure can still take it back (a hole below the
/// checkpoint). Rewriting makes the pages dirty again, so a successful sync means durable.
///
/// Why not the alternatives: cutting the tail on a failed recovery sync (as the flusher cuts
/// its own unsynced tail) cannot work here, because recovery does not know where the durable
/// part ends: the checkpoint lags the last acknowledged append, and everything between them
/// may be acknowledged data. A durable "tail untrusted" marker would need the same rewrite at
/// the next open, and its own write can fail like the sync did. So every open rewrites what it
/// scanned: after a crash about the bytes since the checkpoint (`checkpoint_interval_bytes`),
/// the whole log only if the checkpoint is lost; after a clean shutdown nothing.
///
/// The bytes written are exactly the ones the scan judged valid (CRC32C, framing, the expected
/// base offset at that position), taken from the buffer it judged, never from a fresh read:
/// a misdirected read during a separate rewrite pass would write the wrong place's bytes back
/// over acknowledged data (tried once: seed 2771 lost data that way).
struct TailRewrite {
    file: File,
    /// File position of `bytes[0]`.
    start: u64,
    bytes: Vec<u8>,
}

impl TailRewrite {
    fn new(file: File) -> TailRewrite {
        TailRewrite { file, start: 0, bytes: Vec::new() }
    }

    /// Queues `batch`, read at `position`; writes the queue first when it would not stay one
    /// contiguous run of at most a chunk.
    async fn push(&mut self, position: u64, batch: &[u8]) -> Result<(), LogError> {
        let contiguous = self.start + self.bytes.len() as u64 == position;
        if !contiguous || self.bytes.len() + batch.len() > CHUNK_BYTES {
            self.flush().await?;
            self.start = position;
        }
        self.bytes.extend_from_slice(batch);
        Ok(())
    }

    /// Writes the queued bytes in place (not synced: `recover` syncs every scanned segment).
    async fn flush(&mut self) -> Result<(), LogError> {
        if self.bytes.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.bytes);
        let size_bytes = bytes.len() as u64;
        let (result, mut bytes) = self.file.write_all_at(bytes, self.start).await;
        result?;
        self.start += size_bytes;
        bytes.clear();
        self.bytes = bytes;
        Ok(())
    }
}

fn mark_corrupt(dir: &Path, recovered: &mut Recovered, offset: i64) {
    tracing::error!(
        dir = %dir.display(),
        offset,
        "log: DETECTED LOSS: a CRC-invalid or missing batch with intact batches behind it; \
         serving only the prefix below this offset"
    );
    let corrupt_from = recovered.corrupt_from.get_or_insert(offset);
    *corrupt_from = (*corrupt_from).min(offset);
}

/// Scans from `start` to the end of the log, applying the torn-tail / detected-loss policy.
async fn scan_tail(
    disk: &Disk,
    dir: &Path,
    config: &LogConfig,
    recovered: &mut Recovered,
    start: Cursor,
) -> Result<(), LogError> {
    let max_batch_bytes = scan::max_batch_bytes(config.max_message_bytes);
    let mut cursor = start;
    // Each round finishes a segment or resumes behind a corrupt region further on: bounded by
    // the segments' total length.
    loop {
        let segment = &mut recovered.segments[cursor.index];
        let len_bytes = segment.file.len()?;
        let mut reader = SegmentReader::new(segment.file.clone(), len_bytes, max_batch_bytes);
        let mut rewrite = TailRewrite::new(segment.file.clone());
        let epochs = Some(&mut recovered.leader_epochs);
        let stop =
            scan_segment(&mut reader, segment, &mut cursor, Some(&mut rewrite), epochs).await?;
        let next = cursor.index + 1;
        if let Stop::End = stop {
            if next == recovered.segments.len() {
                return Ok(());
            }
            if recovered.segments[next].base_offset == cursor.expected_offset {
                recovered.indexes_to_write.push(recovered.segments[next].base_offset);
                cursor =
                    Cursor { index: next, position: 0, expected_offset: cursor.expected_offset };
                continue;
            }
        }
        let mut behind = find_intact_behind(config, recovered, &mut reader, cursor).await?;
        if behind.is_none() {
            // Truncating destroys bytes: a misdirected read must not have hidden an intact
            // batch from the search, so search once more with fresh reads.
            reader.invalidate();
            behind = find_intact_behind(config, recovered, &mut reader, cursor).await?;
        }
        match behind {
            Some(resume) => {
                mark_corrupt(dir, recovered, cursor.expected_offset);
                skip_corrupt_region(recovered, cursor, resume)?;
                cursor = resume;
            }
            None => return truncate_torn_tail(disk, dir, recovered, cursor).await,
        }
    }
}

/// The first intact batch behind the bad spot at `cursor`: later in its segment, or in a
/// later segment. Inside the range of the write intent only batches beyond the range count:
/// intact batches of a torn, never-synced group prove nothing.
async fn find_intact_behind(
    config: &LogConfig,
    recovered: &Recovered,
    reader: &mut SegmentReader,
    cursor: Cursor,
) -> Result<Option<Cursor>, LogError> {
    let min_offset = match recovered.intent {
        Some(intent) if intent.covers(cursor.expected_offset) => intent.end_offset,
        _ => cursor.expected_offset,
    };
    let base_offset = recovered.segments[cursor.index].base_offset;
    let found = reader.find_intact(cursor.position + 1, min_offset, base_offset).await?;
    if let Some((position, info)) = found {
        return Ok(Some(Cursor {
            index: cursor.index,
            position,
            expected_offset: info.base_offset,
        }));
    }
    let max_batch_bytes = scan::max_batch_bytes(config.max_message_bytes);
    for index in cursor.index + 1..recovered.segments.len() {
        let file = recovered.segments[index].file.clone();
        let len_bytes = file.len()?;
        let mut later = SegmentReader::new(file, len_bytes, max_batch_bytes);
        let base_offset = recovered.segments[index].base_offset;
        if let Some((position, info)) = later.find_intact(0, min_offset, base_offset).await? {
            return Ok(Some(Cursor { index, position, expected_offset: info.base_offset }));
        }
    }
    Ok(None)
}

/// Keeps the corrupt bytes on disk and makes the in-memory segments jump over them.
fn skip_corrupt_region(
    recovered: &mut Recovered,
    from: Cursor,
    to: Cursor,
) -> Result<(), LogError> {
    for index in from.index..to.index {
        let next_base = recovered.segments[index + 1].base_offset;
        let segment = &mut recovered.segments[index];
        let len_bytes = segment.file.len()?;
        if next_base < segment.next_offset {
            // Overlapping segments: no offset order can be trusted; refuse to open.
            return Err(LogError::Corrupt { offset: next_base });
        }
        segment.skip_to(len_bytes, next_base);
        recovered.indexes_to_write.push(next_base);
    }
    let target = &mut recovered.segments[to.index];
    if to.expected_offset < target.next_offset {
        return Err(LogError::Corrupt { offset: to.expected_offset });
    }
    target.skip_to(to.position, to.expected_offset);
    Ok(())
}

/// Nothing intact behind the bad spot: it was never acknowledged. Truncate it durably and
/// delete the later segments (rolled to, but never made durable).
async fn truncate_torn_tail(
    disk: &Disk,
    dir: &Path,
    recovered: &mut Recovered,
    cursor: Cursor,
) -> Result<(), LogError> {
    let segment = &recovered.segments[cursor.index];
    assert_eq!(segment.size_bytes, cursor.position);
    let len_bytes = segment.file.len()?;
    if len_bytes > cursor.position {
        tracing::warn!(
            dir = %dir.display(),
            base_offset = segment.base_offset,
            from_bytes = cursor.position,
            to_bytes = len_bytes,
            "log: truncating a torn tail (never acknowledged)"
        );
        segment.file.set_len(cursor.position).await?;
        segment.file.sync_data().await?;
    }
    let removed: Vec<Segment> = recovered.segments.drain(cursor.index + 1..).collect();
    for segment in &removed {
        tracing::warn!(
            dir = %dir.display(),
            base_offset = segment.base_offset,
            "log: removing a segment that never became durable",
        );
        segment::remove_files(disk, dir, segment.base_offset);
    }
    if !removed.is_empty() {
        disk.sync_dir(dir)?;
    }
    recovered.indexes_to_write.retain(|base| *base <= recovered.segments[cursor.index].base_offset);
    Ok(())
}

/// The checkpoint promised durability up to its offset; ending below it is detected loss.
fn check_checkpoint_reached(dir: &Path, recovered: &mut Recovered) {
    let Some(checkpoint) = recovered.checkpoint else { return };
    let Some(last) = recovered.segments.last() else { return };
    if last.next_offset < checkpoint.recovery_offset {
        mark_corrupt(dir, recovered, last.next_offset);
    }
}
