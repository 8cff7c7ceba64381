//! Reads for fetch and ListOffsets: whole batches from one segment, only below the high
//! watermark (and below detected loss), each CRC-checked before it is served.
//!
//! A batch that fails its check (CRC32C, framing, or a base offset other than the one the
//! walk expects) is re-read once before it is declared detected loss: a misdirected read (the
//! bytes of a wrong offset) is transient and a second read gets the right bytes, while
//! corruption on the media fails both. Bytes that failed are never served either way.

use std::rc::Rc;

use bytes::Bytes;

use super::error::LogError;
use super::partition::Log;
use super::reader::read_exactly;
use super::record_timestamps;
use super::region::{FileRegion, PlannedRead, ReadData};
use super::scan::{self, Expect, Judgement};
use super::state::{ReadInfo, Shared};
use crate::io::File;
use crate::record_batch::{self, BatchInfo, HEADER_SIZE_BYTES};

/// Least bytes read per step while walking headers from an index entry to the wanted batch.
const LOCATE_WINDOW_BYTES: usize = 64 << 10;
/// Most bytes read per step: the first step also tries to cover the whole answer.
const LOCATE_WINDOW_BYTES_MAX: usize = 16 << 20;
/// Bytes read per step while walking headers toward the end of a planned read: an index
/// interval's worth of batches, so that one read usually finds the last batch that fits.
const HEADER_WINDOW_BYTES: usize = 8 << 10;
/// Reads of a batch that fails its check before it counts as detected loss: the first
/// failure may be a misdirected read, two in a row are the media.
pub(super) const READ_ATTEMPTS_MAX: u32 = 2;

/// Why one attempt at a read failed.
enum Failure {
    Log(LogError),
    /// The bytes read at `offset` failed their check: corruption, or a misdirected read.
    Suspect {
        offset: i64,
    },
}

impl From<LogError> for Failure {
    fn from(error: LogError) -> Failure {
        Failure::Log(error)
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Failure {
        Failure::Log(error.into())
    }
}

/// Runs `attempt` until it succeeds, fails for another reason, or has found the same kind of
/// bad bytes `READ_ATTEMPTS_MAX` times (then: detected loss at the last offset found).
async fn with_reread<T, Fut>(
    shared: &Rc<Shared>,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, LogError>
where
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let mut suspect_offset = None;
    for _ in 0..READ_ATTEMPTS_MAX {
        match attempt().await {
            Ok(value) => {
                if let Some(offset) = suspect_offset {
                    tracing::warn!(
                        dir = %shared.dir.display(),
                        offset,
                        "log: a batch failed its check once and read right again \
                         (a misdirected read?)",
                    );
                }
                return Ok(value);
            }
            Err(Failure::Log(error)) => return Err(error),
            Err(Failure::Suspect { offset }) => suspect_offset = Some(offset),
        }
    }
    let Some(offset) = suspect_offset else { unreachable!("READ_ATTEMPTS_MAX > 0") };
    Err(corrupt_at(shared, offset))
}

/// How far a read may go: what its reader may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadLimit {
    /// Consumers: the high watermark. Nothing a crash or a new leader can take back.
    HighWatermark,
    /// A leader reading for its followers: the written end of its log (the Raft log is
    /// replicated before it is committed; the quorum commits it).
    LogEnd,
}

struct ReadPlan {
    file: File,
    /// Where the sparse index says to start looking, and the base offset of the batch there.
    start_position: u64,
    start_offset: i64,
    segment_base_offset: i64,
    /// Bytes of the segment (anything beyond is not ours to parse).
    end_position: u64,
    target_offset: i64,
    /// Batches at or beyond this offset are never served: min(the read's limit, corrupt_from).
    visible_end_offset: i64,
    high_watermark: i64,
    log_start_offset: i64,
    max_batch_bytes: usize,
    /// Bytes the first read fetches: enough to reach the target from the index entry and
    /// usually to hold the whole answer, so a fetch costs one read.
    window_bytes: usize,
}

/// Bound on the fillers one read steps over (cleaning merges a run of them into one, so there
/// is at most about one per cleaned segment); past it the filler is served, which the protocol
/// allows.
const FILLER_SKIPS_MAX: usize = 64;

/// A compaction filler: zero records, no producer, header only (`rewrite::filler`). A
/// producer's emptied last batch keeps its producer id and is served, as Kafka serves it.
fn is_filler(info: &BatchInfo) -> bool {
    info.records_count == 0 && info.producer_id == -1 && info.size_bytes == HEADER_SIZE_BYTES
}

/// The offset after `bytes` when they are exactly one filler batch.
fn lone_filler_next_offset(bytes: &[u8]) -> Option<i64> {
    let info = record_batch::check_framing_and_crc(bytes).ok()?;
    (info.size_bytes == bytes.len() && is_filler(&info)).then(|| info.next_offset())
}

/// The batch holding the target offset, with the bytes already read from its start on.
struct Located {
    position: u64,
    base_offset: i64,
    window: Bytes,
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
        with_reread(&self.shared, || self.read_once(offset, max_bytes, min_one_batch)).await
    }

    async fn read_once(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadInfo, Failure> {
        let plan = match plan_read(&self.shared, offset, max_bytes, ReadLimit::HighWatermark)? {
            Planned::Empty(info) => return Ok(info),
            Planned::Read(plan) => plan,
        };
        if max_bytes == 0 && !min_one_batch {
            // Nothing may be served (a fetch whose limit is spent): the watermarks, no I/O.
            let (high_watermark, log_start_offset) = (plan.high_watermark, plan.log_start_offset);
            let next_offset = offset;
            return Ok(ReadInfo {
                bytes: Bytes::new(),
                next_offset,
                high_watermark,
                log_start_offset,
            });
        }
        let located = locate(&self.shared, &plan).await?;
        let (bytes, end_offset) =
            collect(&self.shared, &plan, located, max_bytes, min_one_batch).await?;
        Ok(ReadInfo {
            next_offset: if bytes.is_empty() { offset } else { end_offset },
            bytes,
            high_watermark: plan.high_watermark,
            log_start_offset: plan.log_start_offset,
        })
    }

    /// [`Log::read`] that serves no compaction filler: a read landing on one starts again after
    /// it (at most `FILLER_SKIPS_MAX` times), and `collect` stops before one. Kafka's cleaner
    /// removes such batches, and some clients cannot step over a batch of zero records:
    /// kafka-go's Reader re-fetches the same offset for ever when an answer holds no record.
    pub async fn read_skipping_fillers(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadInfo, LogError> {
        // Planned with no size limit on what is read at once: every answer comes back as bytes.
        let planned = self.plan_read(offset, max_bytes, min_one_batch, usize::MAX).await?;
        let ReadData::Bytes(bytes) = planned.data else {
            unreachable!("a plan that may read everything at once reads it")
        };
        let PlannedRead { next_offset, high_watermark, log_start_offset, .. } = planned;
        Ok(ReadInfo { bytes, next_offset, high_watermark, log_start_offset })
    }

    /// Plans a read that serves no compaction filler (see [`Log::read_skipping_fillers`]),
    /// without reading what it serves unless that is at most `inline_max_bytes` (then it is
    /// read and checked, as `read` does): a larger answer is a [`FileRegion`] of whole
    /// batches, found by walking their headers, which `region.rs` reads and checks chunk by
    /// chunk as it is sent.
    pub async fn plan_read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        inline_max_bytes: usize,
    ) -> Result<PlannedRead, LogError> {
        let requested = offset;
        let mut offset = offset;
        let limit = ReadLimit::HighWatermark;
        let mut planned =
            self.plan_read_at(offset, max_bytes, min_one_batch, inline_max_bytes, limit).await?;
        for _skip in 0..FILLER_SKIPS_MAX {
            let ReadData::Bytes(bytes) = &planned.data else { break };
            let Some(next_offset) = lone_filler_next_offset(bytes) else { break };
            if next_offset >= planned.high_watermark {
                let data = ReadData::Bytes(Bytes::new());
                return Ok(PlannedRead { data, next_offset: requested, ..planned });
            }
            offset = next_offset;
            planned = self
                .plan_read_at(offset, max_bytes, min_one_batch, inline_max_bytes, limit)
                .await?;
        }
        Ok(planned)
    }

    /// What a leader sends a follower from `offset` on: whole batches up to its log end
    /// (not the high watermark), at least one, compaction fillers included (the follower's
    /// copy is byte for byte), planned as [`Log::plan_read`] plans (a region when large).
    pub async fn plan_read_for_follower(
        &self,
        offset: i64,
        max_bytes: usize,
        inline_max_bytes: usize,
    ) -> Result<PlannedRead, LogError> {
        self.plan_read_at(offset, max_bytes, true, inline_max_bytes, ReadLimit::LogEnd).await
    }

    async fn plan_read_at(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        inline_max_bytes: usize,
        limit: ReadLimit,
    ) -> Result<PlannedRead, LogError> {
        with_reread(&self.shared, || {
            self.plan_read_once(offset, max_bytes, min_one_batch, inline_max_bytes, limit)
        })
        .await
    }

    async fn plan_read_once(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        inline_max_bytes: usize,
        limit: ReadLimit,
    ) -> Result<PlannedRead, Failure> {
        let plan = match plan_read(&self.shared, offset, max_bytes.min(inline_max_bytes), limit)? {
            Planned::Empty(info) => return Ok(PlannedRead::from(info)),
            Planned::Read(plan) => plan,
        };
        let empty = PlannedRead {
            data: ReadData::Bytes(Bytes::new()),
            next_offset: offset,
            high_watermark: plan.high_watermark,
            log_start_offset: plan.log_start_offset,
        };
        if max_bytes == 0 && !min_one_batch {
            return Ok(empty);
        }
        let located = locate(&self.shared, &plan).await?;
        let end = find_end(&self.shared, &plan, &located, max_bytes, min_one_batch).await?;
        let size_bytes = (end.position - located.position) as usize;
        if size_bytes == 0 {
            return Ok(empty);
        }
        // A lone filler is always read: `plan_read` must see it to step over it.
        if size_bytes <= inline_max_bytes.max(HEADER_SIZE_BYTES) {
            let (bytes, end_offset) =
                collect(&self.shared, &plan, located, size_bytes, min_one_batch).await?;
            let next_offset = if bytes.is_empty() { offset } else { end_offset };
            return Ok(PlannedRead { data: ReadData::Bytes(bytes), next_offset, ..empty });
        }
        let region = FileRegion {
            file: plan.file.clone(),
            position: located.position,
            size_bytes,
            base_offset: located.base_offset,
            next_offset: end.next_offset,
            bytes_to_segment_end: plan.end_position - located.position,
            max_batch_bytes: plan.max_batch_bytes,
        };
        Ok(PlannedRead { data: ReadData::Region(region), next_offset: end.next_offset, ..empty })
    }

    /// The first batch whose max timestamp is at least `timestamp_ms` (found exactly through
    /// the time index), and in it the first record reaching the timestamp: `(offset,
    /// timestamp)`. Compressed batches answer with the batch's base offset and max timestamp
    /// (Tern never decompresses). `None` when no visible batch reaches the timestamp.
    pub async fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        with_reread(&self.shared, || self.offset_for_timestamp_once(timestamp_ms)).await
    }

    async fn offset_for_timestamp_once(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, Failure> {
        let Some(offset) = offset_by_time_index(&self.shared, timestamp_ms)? else {
            return Ok(None);
        };
        let plan = match plan_read(&self.shared, offset, 0, ReadLimit::HighWatermark)? {
            Planned::Empty(_) => return Ok(None),
            Planned::Read(plan) => plan,
        };
        let located = locate(&self.shared, &plan).await?;
        let (bytes, _) = collect(&self.shared, &plan, located, 0, true).await?;
        let Ok(info) = record_batch::check_framing_and_crc(&bytes) else {
            unreachable!("collect serves only CRC-valid batches")
        };
        let log_start_offset = plan.log_start_offset;
        Ok(Some(record_timestamps::first_record_at_or_after_from(
            &bytes,
            &info,
            timestamp_ms,
            log_start_offset,
        )))
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
            // Never below the log start offset, which DeleteRecords may move into a batch.
            let offset = (segment.base_offset + i64::from(entry.relative_offset))
                .max(state.log_start_offset);
            return Ok((offset < visible_end).then_some(offset));
        }
    }
    Ok(None)
}

fn plan_read(
    shared: &Shared,
    offset: i64,
    max_bytes: usize,
    limit: ReadLimit,
) -> Result<Planned, LogError> {
    let state = shared.state.borrow();
    if let Some(error) = state.unusable() {
        return Err(error);
    }
    let (high_watermark, log_start_offset) = (state.high_watermark, state.log_start_offset);
    // Only bytes the flusher has written: reading into space reserved by appends still in
    // flight would hit the end of the file.
    let written = state.written;
    // The planted bug serves consumers what only followers may see.
    let limit =
        if shared.config().planted_serve_above_high_watermark { ReadLimit::LogEnd } else { limit };
    let limit_offset = match limit {
        ReadLimit::HighWatermark => high_watermark,
        ReadLimit::LogEnd => written.offset,
    };
    assert!(limit_offset >= high_watermark, "a read limit below the high watermark");
    if offset < log_start_offset || offset > limit_offset {
        return Err(LogError::OffsetOutOfRange { offset, log_start_offset, high_watermark });
    }
    if let Some(corrupt_from) = state.corrupt_from.filter(|corrupt_from| offset >= *corrupt_from) {
        return Err(LogError::Corrupt { offset: corrupt_from });
    }
    if offset == limit_offset {
        return Ok(Planned::Empty(ReadInfo {
            bytes: Bytes::new(),
            next_offset: offset,
            high_watermark,
            log_start_offset,
        }));
    }
    let Some(index) = state.segment_index_for(offset) else {
        unreachable!("offset {offset} >= log start has a segment")
    };
    let segment = &state.segments[index];
    let entry = segment.offset_index.lookup(segment.relative(offset));
    let end_position = match segment.base_offset.cmp(&written.segment_base_offset) {
        std::cmp::Ordering::Less => segment.size_bytes,
        std::cmp::Ordering::Equal => written.position_bytes,
        std::cmp::Ordering::Greater => 0,
    };
    Ok(Planned::Read(ReadPlan {
        file: segment.file.clone(),
        start_position: u64::from(entry.position_bytes),
        start_offset: segment.base_offset + i64::from(entry.relative_offset),
        segment_base_offset: segment.base_offset,
        end_position,
        target_offset: offset,
        visible_end_offset: limit_offset.min(state.corrupt_from.unwrap_or(i64::MAX)),
        high_watermark,
        log_start_offset,
        max_batch_bytes: scan::max_batch_bytes(shared.config().max_message_bytes),
        window_bytes: (2 * shared.config().index_interval_bytes as usize)
            .saturating_add(max_bytes)
            .clamp(LOCATE_WINDOW_BYTES, LOCATE_WINDOW_BYTES_MAX),
    }))
}

/// Detected loss found by a read: remembered, logged loudly, reported.
pub(super) fn corrupt_at(shared: &Shared, offset: i64) -> LogError {
    tracing::error!(
        dir = %shared.dir.display(),
        offset,
        "log: DETECTED LOSS: batch fails its check on read",
    );
    let mut state = shared.state.borrow_mut();
    let corrupt_from = state.corrupt_from.get_or_insert(offset);
    *corrupt_from = (*corrupt_from).min(offset);
    LogError::Corrupt { offset: *corrupt_from }
}

/// Where a walk of batch headers ended.
enum Walk {
    Found(Located),
    /// The headers do not lead to the target; loss at `offset` unless a retry finds it.
    Broken {
        offset: i64,
    },
}

/// The batch containing the target offset, found from the index entry. The offset index is a
/// cache: an entry that does not lead to its batch (a flipped bit in the `.index` file) is no
/// loss of data, so the walk is retried from the segment start before loss is reported.
async fn locate(shared: &Rc<Shared>, plan: &ReadPlan) -> Result<Located, Failure> {
    let offset = match walk(plan, plan.start_position, plan.start_offset).await? {
        Walk::Found(located) => return Ok(located),
        Walk::Broken { offset } => offset,
    };
    if plan.start_position == 0 {
        return Err(Failure::Suspect { offset });
    }
    tracing::warn!(
        dir = %shared.dir.display(),
        offset = plan.target_offset,
        "log: offset index entry does not lead to its batch; walking from the segment start",
    );
    match walk(plan, 0, plan.segment_base_offset).await? {
        Walk::Found(located) => Ok(located),
        Walk::Broken { offset } => Err(Failure::Suspect { offset }),
    }
}

/// Walks batch headers from `position` (where a batch with `expected_offset` starts) to the
/// batch containing the target offset. Headers must be contiguous (the CRC does not cover the
/// base offset, so this is what catches a damaged one).
async fn walk(
    plan: &ReadPlan,
    mut position: u64,
    mut expected_offset: i64,
) -> Result<Walk, LogError> {
    // Each round advances by at least one batch header (61 bytes) or ends.
    loop {
        if position + HEADER_SIZE_BYTES as u64 > plan.end_position {
            return Ok(Walk::Broken { offset: plan.target_offset });
        }
        let size = (plan.window_bytes as u64).min(plan.end_position - position) as usize;
        let window = match read_exactly(&plan.file, position, size).await {
            Ok(window) => window,
            // A latent sector error somewhere in the window: step header by header, so only the
            // bytes this read really needs can fail it.
            Err(_) if size > HEADER_SIZE_BYTES => {
                read_exactly(&plan.file, position, HEADER_SIZE_BYTES).await?
            }
            Err(error) => return Err(error.into()),
        };
        let mut cursor = 0usize;
        while cursor + HEADER_SIZE_BYTES <= window.len() {
            let rest = &window[cursor..];
            let size_bytes = record_batch::batch_size_from_prefix(rest)
                .ok()
                .filter(|size| *size <= plan.max_batch_bytes);
            let (Some(size_bytes), Ok(header)) = (size_bytes, record_batch::header(rest)) else {
                return Ok(Walk::Broken { offset: plan.target_offset });
            };
            let base_offset = header.base_offset.get();
            let last_offset_delta = header.last_offset_delta.get();
            if base_offset != expected_offset || last_offset_delta < 0 {
                return Ok(Walk::Broken { offset: expected_offset });
            }
            let last_offset = base_offset.saturating_add(i64::from(last_offset_delta));
            expected_offset = last_offset.saturating_add(1);
            if last_offset >= plan.target_offset {
                let window = Bytes::from(window).slice(cursor..);
                let position = position + cursor as u64;
                return Ok(Walk::Found(Located { position, base_offset, window }));
            }
            cursor += size_bytes;
        }
        position += cursor as u64;
        if cursor == 0 {
            return Ok(Walk::Broken { offset: plan.target_offset });
        }
    }
}

/// Reads `size_bytes` from `position`; on an I/O error falls back to the first batch's header
/// alone (a latent sector error further on must not fail what can be served).
async fn read_answer(plan: &ReadPlan, position: u64, size_bytes: usize) -> Result<Bytes, Failure> {
    match read_exactly(&plan.file, position, size_bytes).await {
        Ok(buffer) => Ok(Bytes::from(buffer)),
        Err(_) if size_bytes > HEADER_SIZE_BYTES => {
            Ok(Bytes::from(read_exactly(&plan.file, position, HEADER_SIZE_BYTES).await?))
        }
        Err(error) => Err(error.into()),
    }
}

/// Reads whole batches from `position`, CRC-checking each; stops at the visible end, at
/// `max_bytes` (unless the first batch alone is bigger and `min_one_batch`), or before a bad
/// batch (serving the good prefix, and remembering the loss once a re-read of the bad batch
/// fails too: one misdirected read never marks intact data as lost). Returns the bytes and
/// the offset after the last batch in them.
async fn collect(
    shared: &Rc<Shared>,
    plan: &ReadPlan,
    located: Located,
    max_bytes: usize,
    min_one_batch: bool,
) -> Result<(Bytes, i64), Failure> {
    let Located { position, base_offset, window } = located;
    if base_offset >= plan.visible_end_offset {
        return Ok((Bytes::new(), base_offset));
    }
    let available = plan.end_position - position;
    let first_want = (max_bytes.max(HEADER_SIZE_BYTES) as u64).min(available) as usize;
    let mut buffer = if window.len() >= first_want {
        window
    } else {
        read_answer(plan, position, first_want).await?
    };
    let first_size = record_batch::batch_size_from_prefix(&buffer)
        .ok()
        .filter(|size| *size <= plan.max_batch_bytes && *size as u64 <= available);
    let Some(first_size) = first_size else { return Err(Failure::Suspect { offset: base_offset }) };
    if first_size > max_bytes && !min_one_batch {
        return Ok((Bytes::new(), base_offset));
    }
    if first_size > buffer.len() {
        buffer = Bytes::from(read_exactly(&plan.file, position, first_size).await?);
    }
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
                // A filler is served alone (`read_skipping_fillers` steps over it), never
                // behind other batches.
                let filler = is_filler(&info);
                if cursor > 0 && (filler || cursor + info.size_bytes > max_bytes) {
                    break;
                }
                cursor += info.size_bytes;
                expected_offset = info.next_offset();
                if filler {
                    break;
                }
            }
            Judgement::NeedBytes(_) => break,
            Judgement::Invalid if cursor == 0 => {
                return Err(Failure::Suspect { offset: expected_offset })
            }
            Judgement::Invalid => {
                let bad_position = position + cursor as u64;
                if still_bad(plan, bad_position, expected_offset, available - cursor as u64).await {
                    let _ = corrupt_at(shared, expected_offset);
                }
                break;
            }
        }
    }
    Ok((buffer.slice(..cursor), expected_offset))
}

/// Reads the batch at `position` again (header, then the whole batch) and judges it: true if
/// it is still not the batch expected there. An I/O error proves nothing: false.
async fn still_bad(
    plan: &ReadPlan,
    position: u64,
    expected_offset: i64,
    bytes_to_end: u64,
) -> bool {
    let header_bytes = (HEADER_SIZE_BYTES as u64).min(bytes_to_end) as usize;
    let Ok(header) = read_exactly(&plan.file, position, header_bytes).await else { return false };
    let expect = Expect::Exactly(expected_offset);
    match scan::judge(&header, bytes_to_end, expect, plan.max_batch_bytes) {
        Judgement::NeedBytes(size_bytes) => {
            let Ok(whole) = read_exactly(&plan.file, position, size_bytes).await else {
                return false;
            };
            !matches!(
                scan::judge(&whole, bytes_to_end, expect, plan.max_batch_bytes),
                Judgement::Valid(_)
            )
        }
        Judgement::Valid(_) => false,
        Judgement::Invalid => true,
    }
}

/// Where a planned read ends: the position after its last batch, and that batch's next offset.
struct End {
    position: u64,
    next_offset: i64,
}

/// Walks batch headers from the located batch to the last one the read serves: below the
/// visible end, within the segment, within `max_bytes` (the first batch whatever its size
/// when `min_one_batch`), a filler only alone. Headers must be contiguous; CRCs are checked
/// when the bytes are read (`collect`, or `region.rs` as they are sent). Where the answer
/// reaches beyond what is read, the walk jumps once through the offset index to the last
/// indexed batch within reach, so a large answer costs a few small reads, not one per batch.
async fn find_end(
    shared: &Shared,
    plan: &ReadPlan,
    located: &Located,
    max_bytes: usize,
    min_one_batch: bool,
) -> Result<End, Failure> {
    let start = located.position;
    let limit_position = start.saturating_add(max_bytes as u64);
    let (mut position, mut expected_offset) = (start, located.base_offset);
    let (mut window, mut window_start) = (located.window.clone(), start);
    let mut jumped = false;
    // Each round steps over one batch (>= 61 bytes) or reads a window at `position`; a window
    // read is followed by a step, so this is bounded by the segment's bytes.
    while expected_offset < plan.visible_end_offset
        && position + HEADER_SIZE_BYTES as u64 <= plan.end_position
    {
        let in_window = (position - window_start) as usize;
        if in_window + HEADER_SIZE_BYTES > window.len() {
            if !jumped {
                jumped = true;
                if let Some(jump) = index_jump(shared, plan, position, limit_position).await? {
                    (position, expected_offset, window, window_start) = jump;
                    continue;
                }
            }
            window = read_header_window(plan, position).await?;
            window_start = position;
            continue;
        }
        let step = step_over(plan, &window[in_window..], position, expected_offset)?;
        let first = position == start;
        if step.filler {
            if first {
                (position, expected_offset) = (position + step.size_bytes as u64, step.next_offset);
            }
            break;
        }
        let fits = position + step.size_bytes as u64 <= limit_position;
        if !(fits || first && min_one_batch) {
            break;
        }
        (position, expected_offset) = (position + step.size_bytes as u64, step.next_offset);
    }
    Ok(End { position, next_offset: expected_offset })
}

/// One batch as its header describes it.
struct Step {
    size_bytes: usize,
    next_offset: i64,
    filler: bool,
}

/// The header at the start of `bytes` (at `position`), which must be the batch with
/// `expected_offset`, framed within the segment.
fn step_over(
    plan: &ReadPlan,
    bytes: &[u8],
    position: u64,
    expected_offset: i64,
) -> Result<Step, Failure> {
    let suspect = Failure::Suspect { offset: expected_offset };
    let size_bytes = record_batch::batch_size_from_prefix(bytes)
        .ok()
        .filter(|size| *size <= plan.max_batch_bytes)
        .filter(|size| position + *size as u64 <= plan.end_position);
    let (Some(size_bytes), Ok(header)) = (size_bytes, record_batch::header(bytes)) else {
        return Err(suspect);
    };
    let last_offset_delta = header.last_offset_delta.get();
    if header.base_offset.get() != expected_offset
        || header.magic != record_batch::MAGIC_V2
        || last_offset_delta < 0
    {
        return Err(suspect);
    }
    let filler = header.records_count.get() == 0
        && header.producer_id.get() == -1
        && size_bytes == HEADER_SIZE_BYTES;
    let next_offset =
        expected_offset.saturating_add(i64::from(last_offset_delta)).saturating_add(1);
    Ok(Step { size_bytes, next_offset, filler })
}

/// Up to `HEADER_WINDOW_BYTES` of the segment from `position` (at least a header; a latent
/// sector error past the header must not fail the walk).
async fn read_header_window(plan: &ReadPlan, position: u64) -> Result<Bytes, Failure> {
    let size = (HEADER_WINDOW_BYTES as u64).min(plan.end_position - position) as usize;
    read_answer(plan, position, size).await
}

/// The last indexed batch after `position` that starts within `limit_position` and below the
/// visible end, with a window read there: `(position, offset, window, window_start)`. The
/// index is a cache (and the segment may have been replaced since the plan): a target whose
/// header is not the batch the index names is no jump, and the walk goes on step by step.
async fn index_jump(
    shared: &Shared,
    plan: &ReadPlan,
    position: u64,
    limit_position: u64,
) -> Result<Option<(u64, i64, Bytes, u64)>, Failure> {
    let target = {
        let state = shared.state.borrow();
        let segment =
            state.segments.iter().find(|segment| segment.base_offset == plan.segment_base_offset);
        segment.and_then(|segment| {
            let entries = segment.offset_index.entries();
            let offset_of = |relative: u32| segment.base_offset + i64::from(relative);
            let by_position =
                entries.partition_point(|entry| u64::from(entry.position_bytes) <= limit_position);
            let by_offset = entries.partition_point(|entry| {
                offset_of(entry.relative_offset) < plan.visible_end_offset
            });
            let entry = entries[..by_position.min(by_offset)].last()?;
            Some((u64::from(entry.position_bytes), offset_of(entry.relative_offset)))
        })
    };
    let Some((target_position, target_offset)) = target else { return Ok(None) };
    if target_position <= position || target_position + HEADER_SIZE_BYTES as u64 > plan.end_position
    {
        return Ok(None);
    }
    let window = read_header_window(plan, target_position).await?;
    let leads = step_over(plan, &window, target_position, target_offset).is_ok();
    Ok(leads.then_some((target_position, target_offset, window, target_position)))
}
