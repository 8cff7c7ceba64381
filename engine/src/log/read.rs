//! Reads for fetch and ListOffsets: whole batches from one segment, only below the high
//! watermark (and below detected loss), each CRC-checked before it is served.

use std::rc::Rc;

use bytes::Bytes;

use super::error::LogError;
use super::partition::Log;
use super::reader::read_exactly;
use super::record_timestamps;
use super::scan::{self, Expect, Judgement};
use super::state::{ReadInfo, Shared};
use crate::io::File;
use crate::protocol::record_batch::{self, HEADER_SIZE_BYTES};

/// Bytes read per step while walking headers from an index entry to the wanted batch.
const LOCATE_WINDOW_BYTES: u64 = 64 << 10;

struct ReadPlan {
    file: File,
    /// Where the sparse index says to start looking, and the base offset of the batch there.
    start_position: u64,
    start_offset: i64,
    /// Bytes of the segment (anything beyond is not ours to parse).
    end_position: u64,
    target_offset: i64,
    /// Batches at or beyond this offset are never served: min(high watermark, corrupt_from).
    visible_end_offset: i64,
    high_watermark: i64,
    log_start_offset: i64,
    max_batch_bytes: usize,
}

enum Planned {
    Empty(ReadInfo),
    Read(ReadPlan),
}

impl Log {
    /// Whole batches starting with the one containing `offset`, below the high watermark, up to
    /// `max_bytes` (at least one whole batch when `min_one_batch`). Never serves bytes that fail
    /// CRC: a bad batch is detected loss (`LogError::Corrupt`, and `corrupt_from` is set).
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadInfo, LogError> {
        let plan = match plan_read(&self.shared, offset)? {
            Planned::Empty(info) => return Ok(info),
            Planned::Read(plan) => plan,
        };
        let (position, base_offset) = locate(&self.shared, &plan).await?;
        let bytes =
            collect(&self.shared, &plan, position, base_offset, max_bytes, min_one_batch).await?;
        Ok(ReadInfo {
            bytes,
            high_watermark: plan.high_watermark,
            log_start_offset: plan.log_start_offset,
        })
    }

    /// The first batch whose max timestamp is at least `timestamp_ms` (found exactly through
    /// the time index), and in it the first record reaching the timestamp: `(offset,
    /// timestamp)`. Compressed batches answer with the batch's base offset and max timestamp
    /// (Tern never decompresses). `None` when no visible batch reaches the timestamp.
    pub async fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let Some(offset) = offset_by_time_index(&self.shared, timestamp_ms)? else {
            return Ok(None);
        };
        let plan = match plan_read(&self.shared, offset)? {
            Planned::Empty(_) => return Ok(None),
            Planned::Read(plan) => plan,
        };
        let (position, base_offset) = locate(&self.shared, &plan).await?;
        let bytes = collect(&self.shared, &plan, position, base_offset, 0, true).await?;
        let Ok(info) = record_batch::check_framing_and_crc(&bytes) else {
            unreachable!("collect serves only CRC-valid batches")
        };
        Ok(Some(record_timestamps::first_record_at_or_after(&bytes, &info, timestamp_ms)))
    }
}

fn offset_by_time_index(shared: &Shared, timestamp_ms: i64) -> Result<Option<i64>, LogError> {
    let state = shared.state.borrow();
    if let Some(error) = state.unusable() {
        return Err(error);
    }
    let visible_end = state.high_watermark.min(state.corrupt_from.unwrap_or(i64::MAX));
    for segment in &state.segments {
        if let Some(entry) = segment.time_index.first_at_or_after(timestamp_ms) {
            let offset = segment.base_offset + i64::from(entry.relative_offset);
            return Ok((offset < visible_end).then_some(offset));
        }
    }
    Ok(None)
}

fn plan_read(shared: &Shared, offset: i64) -> Result<Planned, LogError> {
    let state = shared.state.borrow();
    if let Some(error) = state.unusable() {
        return Err(error);
    }
    let (high_watermark, log_start_offset) = (state.high_watermark, state.log_start_offset);
    if offset < log_start_offset || offset > high_watermark {
        return Err(LogError::OffsetOutOfRange { offset, log_start_offset, high_watermark });
    }
    if let Some(corrupt_from) = state.corrupt_from.filter(|corrupt_from| offset >= *corrupt_from) {
        return Err(LogError::Corrupt { offset: corrupt_from });
    }
    if offset == high_watermark {
        return Ok(Planned::Empty(ReadInfo {
            bytes: Bytes::new(),
            high_watermark,
            log_start_offset,
        }));
    }
    let Some(index) = state.segment_index_for(offset) else {
        unreachable!("offset {offset} >= log start has a segment")
    };
    let segment = &state.segments[index];
    let entry = segment.offset_index.lookup(segment.relative(offset));
    Ok(Planned::Read(ReadPlan {
        file: segment.file.clone(),
        start_position: u64::from(entry.position_bytes),
        start_offset: segment.base_offset + i64::from(entry.relative_offset),
        end_position: segment.size_bytes,
        target_offset: offset,
        visible_end_offset: high_watermark.min(state.corrupt_from.unwrap_or(i64::MAX)),
        high_watermark,
        log_start_offset,
        max_batch_bytes: scan::max_batch_bytes(shared.config.max_message_bytes),
    }))
}

/// Detected loss found by a read: remembered, logged loudly, reported.
fn corrupt_at(shared: &Shared, offset: i64) -> LogError {
    tracing::error!(dir = %shared.dir.display(), offset, "log: DETECTED LOSS: batch fails its check on read");
    let mut state = shared.state.borrow_mut();
    let corrupt_from = state.corrupt_from.get_or_insert(offset);
    *corrupt_from = (*corrupt_from).min(offset);
    LogError::Corrupt { offset: *corrupt_from }
}

/// Walks batch headers from the index entry to the batch containing the target offset:
/// `(position, base offset)` of that batch. Headers must be contiguous (the CRC does not cover
/// the base offset, so this is what catches a damaged one).
async fn locate(shared: &Rc<Shared>, plan: &ReadPlan) -> Result<(u64, i64), LogError> {
    let mut position = plan.start_position;
    let mut expected_offset = plan.start_offset;
    // Each round advances by at least one batch header (61 bytes) or ends.
    loop {
        if position + HEADER_SIZE_BYTES as u64 > plan.end_position {
            return Err(corrupt_at(shared, plan.target_offset));
        }
        let size = LOCATE_WINDOW_BYTES.min(plan.end_position - position) as usize;
        let window = read_exactly(&plan.file, position, size).await?;
        let mut cursor = 0usize;
        while cursor + HEADER_SIZE_BYTES <= window.len() {
            let rest = &window[cursor..];
            let size_bytes = record_batch::batch_size_from_prefix(rest)
                .ok()
                .filter(|size| *size <= plan.max_batch_bytes);
            let (Some(size_bytes), Ok(header)) = (size_bytes, record_batch::header(rest)) else {
                return Err(corrupt_at(shared, plan.target_offset));
            };
            let base_offset = header.base_offset.get();
            let last_offset_delta = header.last_offset_delta.get();
            if base_offset != expected_offset || last_offset_delta < 0 {
                return Err(corrupt_at(shared, expected_offset));
            }
            let last_offset = base_offset.saturating_add(i64::from(last_offset_delta));
            expected_offset = last_offset.saturating_add(1);
            if last_offset >= plan.target_offset {
                return Ok((position + cursor as u64, base_offset));
            }
            cursor += size_bytes;
        }
        position += cursor as u64;
        if cursor == 0 {
            return Err(corrupt_at(shared, plan.target_offset));
        }
    }
}

/// Reads whole batches from `position`, CRC-checking each; stops at the visible end, at
/// `max_bytes` (unless the first batch alone is bigger and `min_one_batch`), or before a bad
/// batch (serving the good prefix and remembering the loss).
async fn collect(
    shared: &Rc<Shared>,
    plan: &ReadPlan,
    position: u64,
    base_offset: i64,
    max_bytes: usize,
    min_one_batch: bool,
) -> Result<Bytes, LogError> {
    if base_offset >= plan.visible_end_offset {
        return Ok(Bytes::new());
    }
    let available = plan.end_position - position;
    let prefix =
        read_exactly(&plan.file, position, (HEADER_SIZE_BYTES as u64).min(available) as usize)
            .await?;
    let first_size = record_batch::batch_size_from_prefix(&prefix)
        .ok()
        .filter(|size| *size <= plan.max_batch_bytes);
    let Some(first_size) = first_size else { return Err(corrupt_at(shared, base_offset)) };
    if first_size > max_bytes && !min_one_batch {
        return Ok(Bytes::new());
    }
    let want = (max_bytes.max(first_size) as u64).min(available) as usize;
    let buffer = read_exactly(&plan.file, position, want).await?;
    let mut cursor = 0usize;
    let mut expected_offset = base_offset;
    // Each round serves one batch (>= 61 bytes) or ends.
    while cursor < buffer.len() && expected_offset < plan.visible_end_offset {
        let bytes_to_end = available - cursor as u64;
        match scan::judge(
            &buffer[cursor..],
            bytes_to_end,
            Expect::Exactly(expected_offset),
            plan.max_batch_bytes,
        ) {
            Judgement::Valid(info) => {
                if cursor > 0 && cursor + info.size_bytes > max_bytes {
                    break;
                }
                cursor += info.size_bytes;
                expected_offset = info.next_offset();
            }
            Judgement::NeedBytes(_) => break,
            Judgement::Invalid if cursor == 0 => return Err(corrupt_at(shared, expected_offset)),
            Judgement::Invalid => {
                let _ = corrupt_at(shared, expected_offset);
                break;
            }
        }
    }
    Ok(Bytes::from(buffer).slice(..cursor))
}
