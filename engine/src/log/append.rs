//! Admitting an append: checks, offset assignment (synchronous, in call order), size-based
//! rolling, and handing the batches to the flusher (see `flush.rs`) that makes them durable.

use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;

use super::error::{is_no_space, LogError, LogStatus};
use super::flush;
use super::idempotence::{self, Decided};
use super::producers::BatchMeta;
use super::producers::ProducerBatch;
use super::segment::Segment;
use super::state::{
    AckOn, AppendInfo, AppendResult, PendingAppend, Shared, State, PENDING_APPENDS_MAX,
    PENDING_BYTES_MAX,
};
use crate::io::local::{oneshot, OneshotReceiver};
use crate::record_batch;

/// While the disk is full, free space is re-checked at most this often.
pub const NO_SPACE_RECHECK_INTERVAL: Duration = Duration::from_millis(1000);

/// What `admit` learned from the batch headers.
struct Shape {
    infos: Vec<record_batch::BatchInfo>,
    size_bytes: u64,
    /// Sum of (last_offset_delta + 1): the offsets this append will take.
    offset_count: i64,
}

/// What became of an admitted append.
pub enum Admitted {
    /// Queued for the flusher: the receiver gets the acknowledgement.
    Queued(OneshotReceiver<Result<AppendInfo, LogError>>),
    /// A retry of an idempotent batch already admitted: nothing is written; it is answered
    /// with the original's offsets once those are durable.
    Duplicate { original: BatchMeta, rollbacks_seen: u64 },
}

/// Assigns offsets and queues the batches, or recognises a duplicate.
/// Runs synchronously: offsets are assigned in call order.
pub fn admit(
    shared: &Rc<Shared>,
    mut batches: Vec<BytesMut>,
    leader_epoch: i32,
) -> Result<Admitted, LogError> {
    assert!(!batches.is_empty(), "an append holds at least one batch");
    let shape = shape_of(&batches, shared.config().max_message_bytes)?;
    let mut state = shared.state.borrow_mut();
    check_accepting(shared, &mut state, shape.size_bytes)?;
    if state.pending.len() >= PENDING_APPENDS_MAX
        || state.pending_bytes + shape.size_bytes > PENDING_BYTES_MAX
    {
        return Err(LogError::Overloaded { pending_appends: state.pending.len() });
    }
    let decided = idempotence::check(&state, &shape.infos)?;
    let producer_batch = match idempotence::planted(decided, &shape.infos, &shared.config()) {
        Some(Decided::Duplicate(original)) => {
            tracing::debug!(
                dir = %shared.dir.display(),
                first_offset = original.first_offset,
                first_sequence = original.first_sequence,
                "log: duplicate batch; answering with the original offsets",
            );
            let rollbacks_seen = state.rollbacks;
            return Ok(Admitted::Duplicate { original, rollbacks_seen });
        }
        Some(Decided::Append(batch)) => Some(batch),
        None => None,
    };
    roll_if_full(shared, &mut state, &shape)?;
    let mut shape = shape;
    let mut next_offset = state.log_end_offset;
    for (batch, info) in batches.iter_mut().zip(&mut shape.infos) {
        record_batch::patch_base_offset(batch, next_offset, leader_epoch);
        info.base_offset = next_offset;
        info.partition_leader_epoch = leader_epoch;
        next_offset = info.next_offset();
    }
    let placed = Placed { batches, shape, producer_batch, ack_on: AckOn::Commit };
    let receiver = place(shared, &mut state, placed);
    Ok(Admitted::Queued(receiver))
}

/// Admits a follower's copy of the leader's batches, byte for byte at the leader's offsets:
/// nothing is patched, the first batch must start at the log end and each next one where the
/// previous ended. The bytes came over the network, so every batch is checked whole (framing
/// and CRC32C) here; compaction fillers (no records) are accepted as the leader stores them.
/// Each batch is queued as its own append (its own producer fields); one receiver per batch.
pub fn admit_replicated(
    shared: &Rc<Shared>,
    batches: Vec<BytesMut>,
) -> Result<Vec<OneshotReceiver<AppendResult>>, LogError> {
    let mut state = shared.state.borrow_mut();
    let config = shared.config();
    let max_message_bytes = config.max_message_bytes;
    let mut shapes = Vec::with_capacity(batches.len());
    let mut expected_offset = state.log_end_offset;
    for batch in &batches {
        let shape = replicated_shape_of(batch, max_message_bytes)?;
        let base_offset = shape.infos[0].base_offset;
        if base_offset != expected_offset {
            return Err(LogError::NotContiguous { expected_offset, base_offset });
        }
        expected_offset += shape.offset_count;
        shapes.push(shape);
    }
    let size_bytes: u64 = shapes.iter().map(|shape| shape.size_bytes).sum();
    check_accepting(shared, &mut state, size_bytes)?;
    if state.pending.len() + batches.len() > PENDING_APPENDS_MAX
        || state.pending_bytes + size_bytes > PENDING_BYTES_MAX
    {
        return Err(LogError::Overloaded { pending_appends: state.pending.len() });
    }
    let mut receivers = Vec::with_capacity(batches.len());
    for (batch, shape) in batches.into_iter().zip(shapes) {
        roll_if_full(shared, &mut state, &shape)?;
        // The planted bug leaves the copy out of the producer state a new leader dedups by.
        let producer_batch = idempotence::producer_batch_of(&shape.infos[0])
            .filter(|_| !config.planted_no_producer_state_on_follower);
        let placed = Placed { batches: vec![batch], shape, producer_batch, ack_on: AckOn::Durable };
        receivers.push(place(shared, &mut state, placed));
    }
    Ok(receivers)
}

/// One replicated batch's shape, after checking it whole.
fn replicated_shape_of(batch: &[u8], max_message_bytes: u32) -> Result<Shape, LogError> {
    let invalid = || LogError::InvalidBatch { size_bytes: batch.len() };
    if batch.len() > max_message_bytes as usize {
        return Err(LogError::BatchTooLarge { size_bytes: batch.len(), max_message_bytes });
    }
    let info = record_batch::check_framing_and_crc(batch).map_err(|_| invalid())?;
    if info.size_bytes != batch.len() || info.base_offset < 0 || info.last_offset_delta < 0 {
        return Err(invalid());
    }
    let offset_count = i64::from(info.last_offset_delta) + 1;
    Ok(Shape { infos: vec![info], size_bytes: batch.len() as u64, offset_count })
}

/// Batches ready to take their place at the log end: offsets (and epochs) already in them.
struct Placed {
    batches: Vec<BytesMut>,
    shape: Shape,
    producer_batch: Option<ProducerBatch>,
    ack_on: AckOn,
}

/// Puts `placed` at the log end (indexes, epochs, producer state) and queues it for the
/// flusher. The batches' base offsets must continue the log (asserted).
fn place(shared: &Rc<Shared>, state: &mut State, placed: Placed) -> OneshotReceiver<AppendResult> {
    let Placed { batches, shape, producer_batch, ack_on } = placed;
    let base_offset = state.log_end_offset;
    let segment_base_offset = state.active().base_offset;
    let position_bytes = state.active().size_bytes;
    let mut max_timestamp: Option<(i64, i64)> = None;
    for info in &shape.infos {
        assert_eq!(info.base_offset, state.log_end_offset, "batches continue the log");
        state.leader_epochs.assign(info.partition_leader_epoch, info.base_offset);
        let segment = state.active_mut();
        let position = segment.size_bytes;
        segment.on_batch(position, info);
        state.log_end_offset = info.next_offset();
        if max_timestamp.is_none_or(|(_, timestamp_ms)| info.max_timestamp > timestamp_ms) {
            max_timestamp = Some((info.last_offset(), info.max_timestamp));
        }
    }
    assert_eq!(state.log_end_offset, base_offset + shape.offset_count);
    if let Some(batch) = &producer_batch {
        let last_offset = state.log_end_offset - 1;
        state.producers.apply(batch, base_offset, last_offset);
    }
    let (done, receiver) = oneshot();
    state.pending_bytes += shape.size_bytes;
    let next_offset = state.log_end_offset;
    state.pending.push_back(PendingAppend {
        base_offset,
        next_offset,
        segment_base_offset,
        position_bytes,
        size_bytes: shape.size_bytes,
        batches,
        max_timestamp,
        producer_batch,
        ack_on,
        admitted_at: crate::io::now(),
        done,
    });
    flush::ensure_flusher(shared, state);
    receiver
}

/// Sizes from the headers; the broker validated the batches, we re-check what we rely on.
fn shape_of(batches: &[BytesMut], max_message_bytes: u32) -> Result<Shape, LogError> {
    let mut shape =
        Shape { infos: Vec::with_capacity(batches.len()), size_bytes: 0, offset_count: 0 };
    for batch in batches {
        if batch.len() > max_message_bytes as usize {
            return Err(LogError::BatchTooLarge { size_bytes: batch.len(), max_message_bytes });
        }
        let info = info_of(batch)?;
        shape.size_bytes += batch.len() as u64;
        shape.offset_count += i64::from(info.last_offset_delta) + 1;
        shape.infos.push(info);
    }
    Ok(shape)
}

/// The header of one already-validated batch. A batch that fails here was not validated by
/// the caller: that is a broker bug, but the bytes came from the network, so it is an error.
fn info_of(batch: &[u8]) -> Result<record_batch::BatchInfo, LogError> {
    let invalid = || LogError::InvalidBatch { size_bytes: batch.len() };
    let info = record_batch::header_info(batch).map_err(|_| invalid())?;
    debug_assert!(
        record_batch::check_framing_and_crc(batch).is_ok(),
        "append of an unvalidated batch"
    );
    if info.size_bytes != batch.len() || info.records_count <= 0 {
        return Err(invalid());
    }
    Ok(info)
}

/// Refuses appends the log cannot take now; leaves `NoSpace` once space is free again.
fn check_accepting(shared: &Shared, state: &mut State, size_bytes: u64) -> Result<(), LogError> {
    if state.closing || state.closed {
        return Err(LogError::Closed);
    }
    if state.truncating {
        return Err(LogError::Truncated);
    }
    if let Some(offset) = state.corrupt_from {
        return Err(LogError::Corrupt { offset });
    }
    match state.status {
        LogStatus::Online => Ok(()),
        LogStatus::Offline { .. } => Err(LogError::Offline),
        LogStatus::NoSpace => {
            let now = crate::io::now();
            let due = state.no_space_checked_at.is_none_or(|checked_at| {
                now.duration_since(checked_at) >= NO_SPACE_RECHECK_INTERVAL
            });
            if !due {
                return Err(LogError::NoSpace);
            }
            state.no_space_checked_at = Some(now);
            // An error from statfs says nothing about space: let the write itself find out.
            let free = shared
                .disk
                .available_space_bytes(&shared.dir)
                .map_or(true, |available_bytes| available_bytes >= size_bytes);
            if !free {
                return Err(LogError::NoSpace);
            }
            tracing::info!(
                dir = %shared.dir.display(),
                "log: space is free again; resuming appends",
            );
            state.status = LogStatus::Online;
            Ok(())
        }
    }
}

/// Rolls before an append that would overflow the active segment's bytes or offsets. An
/// append never spans segments.
fn roll_if_full(shared: &Shared, state: &mut State, shape: &Shape) -> Result<(), LogError> {
    let active = state.active();
    let last_offset = state.log_end_offset + shape.offset_count - 1;
    let too_big = active.size_bytes + shape.size_bytes > shared.config().segment_size_bytes;
    if active.is_empty() || (!too_big && active.can_hold_offset(last_offset)) {
        return Ok(());
    }
    roll(shared, state)
}

/// Starts a new active segment at the log end offset.
pub fn roll(shared: &Shared, state: &mut State) -> Result<(), LogError> {
    let base_offset = state.log_end_offset;
    assert!(!state.active().is_empty() && state.active().next_offset == base_offset);
    let interval_bytes = shared.config().index_interval_bytes;
    let segment = match Segment::create(&shared.disk, &shared.dir, base_offset, interval_bytes) {
        Ok(segment) => segment,
        Err(error) if is_no_space(&error) => return Err(LogError::NoSpace),
        Err(error) => return Err(LogError::Io(error)),
    };
    let sealed = state.active().base_offset;
    state.segments_to_seal.push(sealed);
    state.segments.push(segment);
    state.dir_dirty = true;
    tracing::debug!(dir = %shared.dir.display(), base_offset, "log: rolled a new segment");
    Ok(())
}
