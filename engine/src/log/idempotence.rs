//! The log's side of idempotent producers: the check at admission, the wait of a duplicate
//! for its original's durability, the rebuild of producer state at open, and snapshots.
//!
//! The log keeps two copies of the state (`producers.rs`):
//! - `State::producers` (live): every admitted batch, durable or not. Admission decides
//!   against it, so a retry of a batch that has an offset but is not yet synced (group
//!   commit) is recognised as a duplicate.
//! - `State::producers_durable`: only acknowledged batches, so exactly the state of the log
//!   below `producers_durable_offset`. Snapshots are taken from it, and when a write fails
//!   (ENOSPC) and its appends are rolled back, the live copy is reset to it: a batch whose
//!   write failed never makes its retry look like a duplicate.
//!
//! A duplicate is answered with its original's offsets once the high watermark covers them,
//! never earlier (no ack of non-durable data), and fails if a rollback happened meanwhile.

use std::path::Path;
use std::rc::Rc;

use super::config::LogConfig;
use super::error::LogError;
use super::producer_snapshot;
use super::producers::{BatchMeta, Decision, ProducerBatch, ProducerStates};
use super::reader::SegmentReader;
use super::scan::{Expect, Judgement};
use super::segment::Segment;
use super::state::{AppendInfo, Shared, State};
use crate::io::Disk;
use crate::record_batch::{BatchInfo, HEADER_SIZE_BYTES};

/// The producer fields of an appended batch, `None` for a non-idempotent one.
pub fn producer_batch_of(info: &BatchInfo) -> Option<ProducerBatch> {
    (info.producer_id >= 0).then_some(ProducerBatch {
        producer_id: info.producer_id,
        epoch: info.producer_epoch,
        first_sequence: info.base_sequence,
        records_delta: info.last_offset_delta,
        max_timestamp_ms: info.max_timestamp,
    })
}

/// Checks an append's batches. Idempotent batches travel alone (Kafka allows exactly one
/// batch per partition in a produce request since v3), so a duplicate is the whole append.
pub fn check(state: &State, infos: &[BatchInfo]) -> Result<Option<Decided>, LogError> {
    let mut producer_batches = infos.iter().filter_map(producer_batch_of);
    let Some(batch) = producer_batches.next() else { return Ok(None) };
    if infos.len() > 1 {
        return Err(LogError::InvalidProducerBatch {
            reason: "an idempotent batch must be the only batch of its partition",
        });
    }
    if batch.first_sequence < 0 || batch.records_delta < 0 {
        return Err(LogError::InvalidProducerBatch { reason: "negative base sequence" });
    }
    match state.producers.check(&batch)? {
        Decision::Append => Ok(Some(Decided::Append(batch))),
        Decision::Duplicate(meta) => Ok(Some(Decided::Duplicate(meta))),
    }
}

/// `decided`, unless the simulator planted `LogConfig::planted_no_duplicate_detection`: then
/// a retry is appended as if it were new.
pub fn planted(
    decided: Option<Decided>,
    infos: &[BatchInfo],
    config: &LogConfig,
) -> Option<Decided> {
    match decided {
        Some(Decided::Duplicate(_)) if config.planted_no_duplicate_detection => {
            infos.iter().find_map(producer_batch_of).map(Decided::Append)
        }
        other => other,
    }
}

pub enum Decided {
    Append(ProducerBatch),
    Duplicate(BatchMeta),
}

/// Answers a duplicate once its original is durable (high watermark past it), with the
/// original's offsets; fails if the log rolled appends back since `rollbacks_seen` (the
/// original may be gone, and its offsets reused) or became unusable.
pub async fn wait_for_original(
    shared: Rc<Shared>,
    original: BatchMeta,
    rollbacks_seen: u64,
) -> Result<AppendInfo, LogError> {
    // Each round returns or waits for a notification (rollbacks notify too): no busy loop.
    loop {
        let notified = shared.high_watermark_changed.notified();
        {
            let state = shared.state.borrow();
            if let Some(error) = state.unusable() {
                return Err(error);
            }
            if state.rollbacks != rollbacks_seen {
                return Err(LogError::NoSpace);
            }
            if state.high_watermark > original.last_offset {
                return Ok(AppendInfo {
                    base_offset: original.first_offset,
                    last_offset: original.last_offset,
                    log_start_offset: state.log_start_offset,
                });
            }
        }
        notified.await;
    }
}

/// The producer state of the recovered log: the newest valid snapshot at or below the log
/// end, then every batch header from its offset up to `end_offset` (the log end, or the
/// first corrupt offset). Snapshots beyond the log end describe a lost tail: deleted.
/// Returns the state and the offset of the snapshot used (-1: none).
pub async fn rebuild(
    disk: &Disk,
    dir: &Path,
    segments: &[Segment],
    end_offset: i64,
    max_batch_bytes: usize,
) -> Result<(ProducerStates, i64), LogError> {
    let log_end = segments.last().map_or(0, |segment| segment.next_offset);
    let mut from_offset = segments.first().map_or(0, |segment| segment.base_offset);
    let mut states = ProducerStates::default();
    let mut snapshot_offset = -1;
    let offsets = producer_snapshot::list(disk, dir)?;
    for &offset in offsets.iter().rev() {
        if offset > log_end {
            tracing::info!(dir = %dir.display(), offset, "log: removing a snapshot past the end");
            disk.remove_file(&producer_snapshot::path(dir, offset))?;
            continue;
        }
        match producer_snapshot::read(disk, dir, offset).await {
            Some(loaded) => {
                states = loaded;
                snapshot_offset = offset;
                from_offset = from_offset.max(offset);
                break;
            }
            None => tracing::warn!(dir = %dir.display(), offset, "log: ignoring a bad snapshot"),
        }
    }
    for segment in segments.iter().filter(|segment| segment.next_offset > from_offset) {
        replay_segment(segment, from_offset, end_offset, max_batch_bytes, &mut states).await?;
    }
    Ok((states, snapshot_offset))
}

/// Applies the producer fields of `segment`'s batches in `[from_offset, end_offset)`. Each
/// batch is judged whole (framing, CRC, offsets after the previous batch's) and read again
/// before it is refused (a misdirected read): a header alone is not evidence. A bit flip in a
/// corrupt batch's base offset once made it look like a batch below `end_offset`, and an
/// older batch became a producer's latest. The first batch that is not valid ends the replay:
/// recovery validated everything below `end_offset`, so that is where the log ends.
async fn replay_segment(
    segment: &Segment,
    from_offset: i64,
    end_offset: i64,
    max_batch_bytes: usize,
    states: &mut ProducerStates,
) -> Result<(), LogError> {
    let mut position = if from_offset > segment.base_offset {
        let relative = u32::try_from(from_offset - segment.base_offset).unwrap_or(u32::MAX);
        u64::from(segment.offset_index.lookup(relative).position_bytes)
    } else {
        0
    };
    let mut reader = SegmentReader::new(segment.file.clone(), segment.size_bytes, max_batch_bytes);
    let mut next_offset = segment.base_offset;
    // Each round advances by a whole batch (at least the header size): bounded by the file.
    while position + HEADER_SIZE_BYTES as u64 <= segment.size_bytes {
        let judgement = reader.judge_at_twice(position, Expect::AtLeast(next_offset)).await?;
        let Judgement::Valid(info) = judgement else { break };
        if info.base_offset >= end_offset {
            break;
        }
        if info.base_offset >= from_offset {
            // Produce refuses negative sequences, but the disk is not trusted: a CRC-valid
            // batch with impossible producer fields (found by fuzzing) is skipped, not applied.
            let valid =
                |batch: &ProducerBatch| batch.first_sequence >= 0 && batch.records_delta >= 0;
            if let Some(batch) = producer_batch_of(&info).filter(valid) {
                states.apply(&batch, info.base_offset, info.last_offset());
            }
        }
        next_offset = info.next_offset();
        position += info.size_bytes as u64;
    }
    Ok(())
}

/// Writes a snapshot of the durable producer state, unless one is being written or the
/// newest already covers it. A failure is logged and harmless: the log still holds the
/// state. Returns the offset the newest snapshot covers afterwards.
pub async fn snapshot(shared: &Shared) -> i64 {
    let (bytes, offset) = {
        let mut state = shared.state.borrow_mut();
        if state.snapshot_busy || state.snapshot_offset == state.producers_durable_offset {
            return state.snapshot_offset;
        }
        state.snapshot_busy = true;
        let offset = state.producers_durable_offset;
        (producer_snapshot::encode(&state.producers_durable, offset), offset)
    };
    let written = producer_snapshot::write(&shared.disk, &shared.dir, bytes, offset).await;
    let mut state = shared.state.borrow_mut();
    state.snapshot_busy = false;
    match written {
        Ok(()) => state.snapshot_offset = state.snapshot_offset.max(offset),
        Err(error) => {
            tracing::warn!(dir = %shared.dir.display(), %error, "log: producer snapshot failed");
        }
    }
    state.snapshot_offset
}

/// Forgets producers idle for `expiration_ms` (Kafka's `producer.id.expiration.ms`).
pub fn expire(state: &mut State, now_ms: i64, expiration_ms: i64) {
    let expired = state.producers.expire(now_ms, expiration_ms);
    state.producers_durable.expire(now_ms, expiration_ms);
    if expired > 0 {
        tracing::debug!(expired, "log: expired idle producers");
    }
}
