//! Rewriting one group of segments into a `.cleaned` file: every batch is kept as it is,
//! rewritten with fewer records, or (when no record survives) folded into a filler batch
//! spanning its offsets. The output is built with `Segment::on_batch`, which asserts the batch
//! offsets stay contiguous, and its indexes come from the same calls.

use std::rc::Rc;

use super::super::error::LogError;
use super::super::layout::{OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX};
use super::super::scan;
use super::super::segment::Segment;
use super::super::state::Shared;
use super::super::{offset_index, time_index};
use super::key_map::{BatchStream, KeyMap};
use super::{Cleaned, Hooks, Source};
use crate::io::{File, OpenOptions};
use crate::record_batch::rewrite::{self, DecodedBatch, FillerSpan};
use crate::record_batch::{check_framing_and_crc, BatchInfo};

/// Output bytes buffered before one write to the `.cleaned` file.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// What becomes of one batch.
enum Verdict {
    KeepAll,
    KeepSome(Vec<usize>),
    RemoveAll,
}

/// Which records of `decoded` survive. Records at or beyond the map's end were not judged by
/// this cleaning and survive, as do control batches.
fn judge(decoded: &DecodedBatch, map: &KeyMap, horizon_ms: i64) -> Verdict {
    if decoded.info.is_control {
        return Verdict::KeepAll;
    }
    let keep: Vec<usize> = decoded
        .records
        .iter()
        .enumerate()
        .filter(|(_, record)| {
            let offset = decoded.offset(record);
            if offset >= map.end_offset {
                return true;
            }
            let Some(key) = decoded.key(record) else { return false };
            let superseded = map.latest(key).is_some_and(|latest| latest > offset);
            let expired_tombstone =
                record.value_is_null() && decoded.timestamp_ms(record) < horizon_ms;
            !superseded && !expired_tombstone
        })
        .map(|(index, _)| index)
        .collect();
    match keep.len() {
        0 => Verdict::RemoveAll,
        count if count == decoded.records.len() => Verdict::KeepAll,
        _ => Verdict::KeepSome(keep),
    }
}

/// Accumulates the cleaned segment: buffered writes, the pending filler, the new indexes.
struct Writer {
    file: File,
    segment: Segment,
    buffer: Vec<u8>,
    written_bytes: u64,
    filler: Option<FillerSpan>,
    /// Largest batch recovery and reads accept (see `scan::max_batch_bytes`).
    max_batch_bytes: usize,
    /// The output outgrew u32 positions: nothing more is appended, the group is not swapped.
    overflow: bool,
}

impl Writer {
    fn remove(&mut self, info: &BatchInfo) {
        let filler = self.filler.get_or_insert(FillerSpan {
            base_offset: info.base_offset,
            last_offset: info.last_offset(),
            max_timestamp_ms: info.max_timestamp,
            partition_leader_epoch: info.partition_leader_epoch,
        });
        let contiguous =
            filler.base_offset == info.base_offset || filler.last_offset + 1 == info.base_offset;
        assert!(contiguous, "a filler spans consecutive batches");
        filler.last_offset = info.last_offset();
        filler.max_timestamp_ms = filler.max_timestamp_ms.max(info.max_timestamp);
        filler.partition_leader_epoch = info.partition_leader_epoch;
    }

    fn push(&mut self, batch: &[u8]) {
        if let Some(span) = self.filler.take() {
            self.append(&rewrite::filler(span));
        }
        self.append(batch);
    }

    fn append(&mut self, batch: &[u8]) {
        let info = check_framing_and_crc(batch).expect("the cleaner writes valid batches");
        assert_eq!(info.size_bytes, batch.len());
        let position = self.segment.size_bytes;
        // Index positions are u32. Only recompression could grow a group past them (its input
        // is a segment's worth); then the cleaning of this group is given up.
        if self.overflow || position + batch.len() as u64 > u64::from(u32::MAX) {
            self.overflow = true;
            return;
        }
        self.segment.on_batch(position, &info);
        self.buffer.extend_from_slice(batch);
    }

    async fn flush(&mut self) -> Result<(), LogError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let buffer = std::mem::take(&mut self.buffer);
        let length = buffer.len() as u64;
        let (result, mut buffer) = self.file.write_all_at(buffer, self.written_bytes).await;
        result?;
        self.written_bytes += length;
        buffer.clear();
        self.buffer = buffer;
        Ok(())
    }
}

/// Rewrites `group` into `<base>.cleaned`, synced. `None` when a test hook stopped it. On
/// error the `.cleaned` file is removed (recovery would remove it too).
pub async fn clean_group(
    shared: &Rc<Shared>,
    group: &[Source],
    map: &KeyMap,
    horizon_ms: i64,
    hooks: &mut Hooks,
) -> Result<Option<Cleaned>, LogError> {
    let path = shared.dir.join(super::swap::cleaned_name(group[0].base_offset));
    let file = shared.disk.open(&path, OpenOptions { create: true, truncate: true })?;
    let mut result = write_cleaned(shared, file, group, map, horizon_ms).await;
    if let Ok(cleaned) = &result {
        if let Err(error) = write_indexes(shared, &cleaned.segment).await {
            result = Err(error);
        }
    }
    if result.is_err() {
        let base_offset = group[0].base_offset;
        if let Err(error) = super::swap::remove_cleaned(&shared.disk, &shared.dir, base_offset) {
            tracing::warn!(path = %path.display(), %error, "log: cannot remove .cleaned files");
        }
    }
    let cleaned = result?;
    if hooks.step() {
        return Ok(None);
    }
    Ok(Some(cleaned))
}

async fn write_cleaned(
    shared: &Rc<Shared>,
    file: File,
    group: &[Source],
    map: &KeyMap,
    horizon_ms: i64,
) -> Result<Cleaned, LogError> {
    let base_offset = group[0].base_offset;
    let interval_bytes = shared.config().index_interval_bytes;
    let mut writer = Writer {
        segment: Segment::empty(file.clone(), base_offset, interval_bytes),
        file,
        buffer: Vec::with_capacity(WRITE_BUFFER_BYTES),
        written_bytes: 0,
        filler: None,
        max_batch_bytes: scan::max_batch_bytes(shared.config().max_message_bytes),
        overflow: false,
    };
    for source in group {
        let mut stream = BatchStream::new(shared, source);
        // Each round consumes one batch of a segment of bounded size.
        while let Some((bytes, info)) = stream.next().await? {
            clean_batch(&mut writer, &bytes, &info, map, horizon_ms);
            if writer.buffer.len() >= WRITE_BUFFER_BYTES {
                writer.flush().await?;
            }
            crate::io::yield_now().await;
        }
    }
    if let Some(span) = writer.filler.take() {
        writer.append(&rewrite::filler(span));
    }
    if writer.overflow {
        return Err(LogError::Io(std::io::Error::other("cleaned segment beyond 4 GiB")));
    }
    writer.flush().await?;
    writer.file.sync_data().await?;
    let last = &group[group.len() - 1];
    assert_eq!(writer.segment.next_offset, last.next_offset, "a group keeps its offset span");
    assert_eq!(writer.segment.size_bytes, writer.written_bytes);
    // Removing records always shrinks a segment (a filler is never larger than what it
    // replaces; rewritten fillers and emptied batches come out identical). A recompressed
    // batch of exactly the old size is only a cleaning skipped, never a wrong one.
    let changed = group.len() > 1 || writer.written_bytes != group[0].size_bytes;
    Ok(Cleaned { segment: writer.segment, changed })
}

/// Writes the cleaned segment's whole indexes to their `.cleaned` names, synced.
async fn write_indexes(shared: &Shared, segment: &Segment) -> Result<(), LogError> {
    let pieces = [
        (OFFSET_INDEX_SUFFIX, offset_index::encode(segment.offset_index.entries())),
        (TIME_INDEX_SUFFIX, time_index::encode(segment.time_index.entries())),
    ];
    for (suffix, bytes) in pieces {
        let name = super::swap::cleaned_index_name(segment.base_offset, suffix);
        let options = OpenOptions { create: true, truncate: true };
        let file = shared.disk.open(&shared.dir.join(name), options)?;
        if !bytes.is_empty() {
            let (result, _) = file.write_all_at(bytes, 0).await;
            result?;
        }
        file.sync_data().await?;
    }
    Ok(())
}

fn clean_batch(writer: &mut Writer, bytes: &[u8], info: &BatchInfo, map: &KeyMap, horizon_ms: i64) {
    // A CRC-valid batch whose records do not decode (a producer's malformed compressed batch:
    // Tern does not decompress on produce) is kept as it is: never remove what is not understood.
    let Ok(decoded) = rewrite::decode(bytes) else {
        writer.push(bytes);
        return;
    };
    match judge(&decoded, map, horizon_ms) {
        Verdict::KeepAll => writer.push(bytes),
        // Kafka keeps a producer's last batch, emptied, so its last sequence survives.
        Verdict::RemoveAll if info.producer_id >= 0 => {
            if map.producer_has_later_batch(info.producer_id, info.last_offset()) {
                writer.remove(info);
            } else {
                writer.push(&rewrite::emptied(bytes));
            }
        }
        Verdict::RemoveAll => writer.remove(info),
        Verdict::KeepSome(keep) => match rewrite::encode_subset(bytes, &decoded, &keep) {
            // Recompressed with another level than the producer's, a subset could come out
            // larger than recovery and reads accept: keeping the batch as it was is always safe
            // (compaction promises the latest record per key, not the absence of older ones).
            Ok(rewritten) if rewritten.len() <= writer.max_batch_bytes => writer.push(&rewritten),
            Ok(_) | Err(_) => writer.push(bytes),
        },
    }
}
