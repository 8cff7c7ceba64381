//! `segment_recovery` target: arbitrary bytes become a segment file (plus, optionally, index
//! files, a recovery checkpoint, a write intent and a second, later segment) on a `SimDisk`; `Log::open` recovers it and
//! everything from the log start to the high watermark is read back.
//!
//! Properties (DESIGN.md's storage-fault policy, docs/storage.md "Recovery on open"):
//! - nothing panics; every served batch passes `check_framing_and_crc`, offsets contiguous;
//! - the served log is exactly the intact prefix of the input, computed here independently
//!   (framing, CRC32C, offset contiguity from 0 and across the segment boundary, at least one
//!   record, increasing offsets inside the segment's span);
//! - a bad batch with an intact batch behind it (beyond the write intent's range, when the
//!   intent covers the bad offset) is detected loss: `corrupt_from` is its offset, reads there
//!   answer `Corrupt`, and no intact batch behind it is truncated; a bad spot with nothing
//!   intact behind it is a torn tail, truncated (also behind detected loss), and a later
//!   segment behind a torn tail is deleted (a roll that never became durable); "behind"
//!   reaches into the later segment, and a segment boundary the offsets do not continue
//!   across is a bad spot like a bad batch; segments whose offsets overlap behind detected
//!   loss must make recovery refuse to open;
//! - opening again yields the same log (recovery's own checkpoint and indexes are right).
//!
//! A checkpoint that passes its CRC yet vouches for bytes that are not intact (only a bug or
//! an adversary can write one) weakens the properties to "no panic, serve only CRC-valid
//! contiguous batches that are in the file". Index files, whatever they hold, do not: the
//! index is a cache and must never change what is served.
//!
//! Shared by the cargo-fuzz target and `engine/tests/fuzz_corpus.rs` (included by path), so it
//! uses only `tern`'s public API and `std`.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex, OnceLock};

use tern::io::{block_on, Disk, OpenOptions, SimDisk};
use tern::log::checkpoint::{self, Checkpoint};
use tern::log::intent::{self, Intent};
use tern::log::{Log, LogConfig, LogError};
use tern::record_batch::{self, BatchInfo, HEADER_SIZE_BYTES, MAGIC_V2};

/// Inputs are cut to this many segment bytes: far beyond what the fuzzer explores, and below
/// the log's largest batch so that limit never decides anything here.
pub const SEGMENT_BYTES_MAX: usize = 256 << 10;
/// Segment offset span limit of the log (`segment.rs`): a batch ending beyond it is not intact.
const SEGMENT_OFFSET_SPAN_MAX: i64 = i32::MAX as i64;
const MAGIC_POSITION: usize = 16;

const FLAG_OFFSET_INDEX: u8 = 1;
const FLAG_TIME_INDEX: u8 = 2;
const FLAG_CHECKPOINT: u8 = 4;
const FLAG_INTENT: u8 = 8;
const FLAG_LATER_SEGMENT: u8 = 16;

pub fn partition_dir() -> PathBuf {
    PathBuf::from("/data/topic-0")
}

fn file_path(suffix: &str) -> PathBuf {
    segment_file_path(0, suffix)
}

fn segment_file_path(base_offset: u32, suffix: &str) -> PathBuf {
    partition_dir().join(format!("{base_offset:020}.{suffix}"))
}

/// Small index interval so that index entries (and their validation) are exercised.
pub fn config() -> LogConfig {
    LogConfig { index_interval_bytes: 128, checkpoint_interval_bytes: 1024, ..LogConfig::default() }
}

/// How the recovery checkpoint is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointInput {
    /// These bytes as the file (ignored by recovery unless they pass magic, version and CRC).
    Raw(Vec<u8>),
    /// A true checkpoint at the end of the first `batches` intact batches.
    AtIntactBatch { batches: u8, clean_shutdown: bool },
    /// A CRC-valid checkpoint with arbitrary fields.
    Fields { recovery_offset: i64, position_bytes: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntentInput {
    Raw(Vec<u8>),
    /// A CRC-valid intent for `[start_offset, start_offset + offsets)`.
    Fields {
        start_offset: u32,
        offsets: u32,
    },
}

/// One fuzz case, decoded from the raw input (see [`Case::decode`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Case {
    pub offset_index: Option<Vec<u8>>,
    pub time_index: Option<Vec<u8>>,
    pub checkpoint: Option<CheckpointInput>,
    pub intent: Option<IntentInput>,
    /// A second segment file `(base offset, bytes)`, as a roll leaves it (ignored at base 0).
    pub later_segment: Option<(u32, Vec<u8>)>,
    pub segment: Vec<u8>,
}

/// Takes structured pieces off the front of the input; missing bytes read as zero, so every
/// input decodes.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn bytes(&mut self, count: usize) -> Vec<u8> {
        let count = count.min(self.0.len());
        let (taken, rest) = self.0.split_at(count);
        self.0 = rest;
        taken.to_vec()
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut array = [0u8; N];
        let taken = self.bytes(N);
        array[..taken.len()].copy_from_slice(&taken);
        array
    }

    fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    /// A u16-length-prefixed byte string.
    fn chunk(&mut self) -> Vec<u8> {
        let length = u16::from_be_bytes(self.array());
        self.bytes(usize::from(length))
    }
}

impl Case {
    /// Input layout: a flags byte (bit 0 `.index`, 1 `.timeindex`, 2 checkpoint, 3 intent,
    /// 4 later segment); then for each flagged file in that order its encoding (a
    /// u16-BE-length-prefixed chunk for raw files; checkpoint and intent start with a kind
    /// byte; the later segment with its u32 BE base offset); the rest is the first segment.
    /// So `[0] ++ segment` is a bare segment, which is what the seed corpus mostly holds.
    pub fn decode(data: &[u8]) -> Case {
        let mut input = Input(data);
        let flags = input.u8();
        let mut case = Case::default();
        if flags & FLAG_OFFSET_INDEX != 0 {
            case.offset_index = Some(input.chunk());
        }
        if flags & FLAG_TIME_INDEX != 0 {
            case.time_index = Some(input.chunk());
        }
        if flags & FLAG_CHECKPOINT != 0 {
            case.checkpoint = Some(match input.u8() % 3 {
                0 => CheckpointInput::Raw(input.chunk()),
                1 => {
                    let batches = input.u8();
                    CheckpointInput::AtIntactBatch { batches, clean_shutdown: input.u8() & 1 == 1 }
                }
                _ => CheckpointInput::Fields {
                    recovery_offset: i64::from_be_bytes(input.array()),
                    position_bytes: u64::from_be_bytes(input.array()),
                },
            });
        }
        if flags & FLAG_INTENT != 0 {
            case.intent = Some(match input.u8() % 2 {
                0 => IntentInput::Raw(input.chunk()),
                _ => IntentInput::Fields {
                    start_offset: u32::from_be_bytes(input.array()),
                    offsets: u32::from_be_bytes(input.array()),
                },
            });
        }
        if flags & FLAG_LATER_SEGMENT != 0 {
            let base_offset = u32::from_be_bytes(input.array());
            case.later_segment = Some((base_offset, input.chunk()));
        }
        case.segment = input.bytes(SEGMENT_BYTES_MAX);
        case
    }

    /// The inverse of [`Case::decode`] (for the seed generator).
    pub fn encode(&self) -> Vec<u8> {
        let mut flags = 0;
        let mut body = Vec::new();
        fn chunk(body: &mut Vec<u8>, bytes: &[u8]) {
            let length = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
            body.extend_from_slice(&length.to_be_bytes());
            body.extend_from_slice(&bytes[..usize::from(length)]);
        }
        if let Some(bytes) = &self.offset_index {
            flags |= FLAG_OFFSET_INDEX;
            chunk(&mut body, bytes);
        }
        if let Some(bytes) = &self.time_index {
            flags |= FLAG_TIME_INDEX;
            chunk(&mut body, bytes);
        }
        if let Some(checkpoint) = &self.checkpoint {
            flags |= FLAG_CHECKPOINT;
            match checkpoint {
                CheckpointInput::Raw(bytes) => {
                    body.push(0);
                    chunk(&mut body, bytes);
                }
                CheckpointInput::AtIntactBatch { batches, clean_shutdown } => {
                    body.extend_from_slice(&[1, *batches, u8::from(*clean_shutdown)]);
                }
                CheckpointInput::Fields { recovery_offset, position_bytes } => {
                    body.push(2);
                    body.extend_from_slice(&recovery_offset.to_be_bytes());
                    body.extend_from_slice(&position_bytes.to_be_bytes());
                }
            }
        }
        if let Some(intent) = &self.intent {
            flags |= FLAG_INTENT;
            match intent {
                IntentInput::Raw(bytes) => {
                    body.push(0);
                    chunk(&mut body, bytes);
                }
                IntentInput::Fields { start_offset, offsets } => {
                    body.push(1);
                    body.extend_from_slice(&start_offset.to_be_bytes());
                    body.extend_from_slice(&offsets.to_be_bytes());
                }
            }
        }
        if let Some((base_offset, bytes)) = &self.later_segment {
            flags |= FLAG_LATER_SEGMENT;
            body.extend_from_slice(&base_offset.to_be_bytes());
            chunk(&mut body, bytes);
        }
        let mut bytes = vec![flags];
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&self.segment);
        bytes
    }
}

/// The intact prefix of the first segment from offset 0: what a checkpoint may vouch for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    /// Byte ranges of the prefix's batches, back to back from 0.
    pub batches: Vec<Range<usize>>,
    /// Base offset of each of those batches.
    pub base_offsets: Vec<i64>,
    /// The offset after the prefix.
    pub next_offset: i64,
}

pub fn intact_prefix(segment: &[u8]) -> Prefix {
    let file = SegmentFile { base_offset: 0, bytes: segment };
    let (batches, base_offsets, _, next_offset) = contiguous_from(file, 0, 0);
    Prefix { batches, base_offsets, next_offset }
}

/// One segment file as the oracle reads it.
#[derive(Debug, Clone, Copy)]
pub struct SegmentFile<'a> {
    pub base_offset: i64,
    pub bytes: &'a [u8],
}

/// The oracle's verdict on a whole log directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Opens(ExpectedLog),
    /// Segments whose offsets overlap behind detected loss: no order can be trusted.
    Refuses,
}

/// What recovery must arrive at, derived from the storage-fault policy alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedLog {
    /// Served from offset 0: every batch before the first bad spot, `(base offset, bytes)`.
    pub served: Vec<(i64, Vec<u8>)>,
    /// Detected loss: the offset of the first bad spot with an intact batch behind it.
    pub corrupt_from: Option<i64>,
    /// The log end offset (high watermark) recovery arrives at, beyond detected loss.
    pub log_end_offset: i64,
    /// Each segment file's length after recovery; `None` for a file deleted as never durable.
    pub kept_bytes: Vec<Option<usize>>,
}

/// The batch at `bytes[0..]` if it is one the log could have written into the segment based
/// at `segment_base_offset`: framed, magic 2, CRC32C-valid, at least one record (or none and
/// no record bytes: compaction's filler), offsets increasing and inside the segment's span.
fn intact_at(bytes: &[u8], segment_base_offset: i64) -> Option<BatchInfo> {
    let info = record_batch::check_framing_and_crc(bytes).ok()?;
    let last_offset = info.base_offset.checked_add(i64::from(info.last_offset_delta))?;
    let filler = info.records_count == 0 && info.size_bytes == HEADER_SIZE_BYTES;
    let plausible = (info.records_count > 0 || filler)
        && info.last_offset_delta >= 0
        && info.base_offset >= 0
        && last_offset - segment_base_offset < SEGMENT_OFFSET_SPAN_MAX;
    plausible.then_some(info)
}

/// Walks the segments from the first one's start, independently of the log's recovery code:
/// contiguous batches, then at each bad spot (a bad batch, or a segment boundary the offsets do
/// not continue across) the policy's choice between detected loss (an intact batch behind it,
/// in this segment or a later one; inside the write intent only beyond its range) and a torn
/// tail (nothing intact behind: truncate, delete later segments).
pub fn expected_log(segments: &[SegmentFile], intent: Option<Intent>) -> Verdict {
    assert!(
        !segments.is_empty() && segments.windows(2).all(|w| w[0].base_offset < w[1].base_offset)
    );
    let mut kept_bytes: Vec<Option<usize>> = segments.iter().map(|s| Some(s.bytes.len())).collect();
    let (mut index, mut position, mut next_offset) = (0, 0, segments[0].base_offset);
    let (mut served, mut corrupt_from) = (Vec::new(), None);
    // Each round ends a segment or moves forward behind a bad spot: bounded by total length.
    loop {
        let segment = segments[index];
        let (ranges, base_offsets, end, next) = contiguous_from(segment, position, next_offset);
        if corrupt_from.is_none() {
            let batches = ranges.into_iter().map(|range| segment.bytes[range].to_vec());
            served.extend(base_offsets.into_iter().zip(batches));
        }
        (position, next_offset) = (end, next);
        if position == segment.bytes.len() {
            match segments.get(index + 1) {
                None => break,
                Some(following) if following.base_offset == next_offset => {
                    (index, position) = (index + 1, 0);
                    continue;
                }
                Some(_) => {}
            }
        }
        let min_offset = match intent {
            Some(intent) if intent.covers(next_offset) => intent.end_offset,
            _ => next_offset,
        };
        let found = intact_behind(segment, position + 1, min_offset)
            .map(|(start, base_offset)| (index, start, base_offset))
            .or_else(|| {
                (index + 1..segments.len()).find_map(|later| {
                    intact_behind(segments[later], 0, min_offset)
                        .map(|(start, base_offset)| (later, start, base_offset))
                })
            });
        let Some((target, start, base_offset)) = found else {
            kept_bytes[index] = Some(position);
            kept_bytes[index + 1..].iter_mut().for_each(|kept| *kept = None);
            break;
        };
        corrupt_from.get_or_insert(next_offset);
        let overlaps = target > index
            && (segments[index + 1].base_offset < next_offset
                || base_offset < segments[target].base_offset);
        if overlaps {
            return Verdict::Refuses;
        }
        (index, position, next_offset) = (target, start, base_offset);
    }
    Verdict::Opens(ExpectedLog { served, corrupt_from, log_end_offset: next_offset, kept_bytes })
}

type Run = (Vec<Range<usize>>, Vec<i64>, usize, i64);

/// The run of intact, offset-contiguous batches starting at `position` with `offset`: their
/// ranges, base offsets, and the position and offset after them.
fn contiguous_from(segment: SegmentFile, mut position: usize, mut offset: i64) -> Run {
    let (mut batches, mut base_offsets) = (Vec::new(), Vec::new());
    // Each round consumes one batch of at least 61 bytes: bounded by the segment length.
    while let Some(info) = intact_at(&segment.bytes[position..], segment.base_offset) {
        if info.base_offset != offset {
            break;
        }
        batches.push(position..position + info.size_bytes);
        base_offsets.push(info.base_offset);
        position += info.size_bytes;
        offset = info.next_offset();
    }
    (batches, base_offsets, position, offset)
}

/// The first intact batch at or after `from` whose base offset is at least `min_offset`.
fn intact_behind(segment: SegmentFile, from: usize, min_offset: i64) -> Option<(usize, i64)> {
    let bytes = segment.bytes;
    (from..bytes.len().saturating_sub(HEADER_SIZE_BYTES - 1))
        .filter(|&start| bytes[start + MAGIC_POSITION] as i8 == MAGIC_V2)
        .filter_map(|start| {
            intact_at(&bytes[start..], segment.base_offset).map(|info| (start, info.base_offset))
        })
        .find(|&(_, base_offset)| base_offset >= min_offset)
}

/// What reading a recovered log from its start to its high watermark gave.
#[derive(Debug)]
struct Served {
    batches: Vec<(i64, Vec<u8>)>,
    error: Option<LogError>,
    high_watermark: i64,
    corrupt_from: Option<i64>,
}

/// Reads from the log start to the high watermark, `max_bytes` per read (1: one batch per
/// read, so every batch is located through the offset index); checks framing, CRC and
/// contiguity of everything served.
async fn read_all(log: &Log, max_bytes: usize) -> Served {
    let mut batches = Vec::new();
    let mut offset = log.log_start_offset();
    let high_watermark = log.high_watermark();
    let mut error = None;
    // Each successful read serves at least one batch and moves `offset` forward.
    while offset < high_watermark {
        let read = match log.read(offset, max_bytes, true).await {
            Ok(read) => read,
            Err(failure) => {
                error = Some(failure);
                break;
            }
        };
        assert!(!read.bytes.is_empty(), "a read below the high watermark served nothing");
        let mut position = 0;
        while position < read.bytes.len() {
            let rest = &read.bytes[position..];
            let info = record_batch::check_framing_and_crc(rest)
                .unwrap_or_else(|failure| panic!("served a bad batch at {offset}: {failure}"));
            assert_eq!(info.base_offset, offset, "served offsets must be contiguous");
            assert!(info.last_offset_delta >= 0 && info.records_count >= 0);
            batches.push((info.base_offset, rest[..info.size_bytes].to_vec()));
            position += info.size_bytes;
            offset = info.next_offset();
        }
    }
    let corrupt_from = log.health().corrupt_from;
    Served { batches, error, high_watermark, corrupt_from }
}

async fn write_file(disk: &Disk, path: &Path, bytes: &[u8]) {
    let file = disk.open(path, OpenOptions { create: true, truncate: true }).expect("sim open");
    let (result, _) = file.write_all_at(bytes.to_vec(), 0).await;
    result.expect("sim write");
    file.sync_data().await.expect("sim sync");
}

/// The checkpoint and intent the case writes (if any), and whether the oracle's strong
/// properties apply (no file vouches for anything but intact batches).
fn side_files(case: &Case, intact: &Prefix) -> (Option<Vec<u8>>, Option<Vec<u8>>, bool) {
    let mut trustworthy = true;
    let checkpoint_bytes = case.checkpoint.as_ref().map(|input| match input {
        CheckpointInput::Raw(bytes) => bytes.clone(),
        CheckpointInput::AtIntactBatch { batches, clean_shutdown } => {
            let count = usize::from(*batches).min(intact.batches.len());
            let (position_bytes, recovery_offset) = match count.checked_sub(1) {
                Some(last) => (
                    intact.batches[last].end as u64,
                    intact.base_offsets.get(count).copied().unwrap_or(intact.next_offset),
                ),
                None => (0, 0),
            };
            checkpoint::encode(&Checkpoint {
                segment_base_offset: 0,
                recovery_offset,
                position_bytes,
                clean_shutdown: *clean_shutdown,
            })
        }
        CheckpointInput::Fields { recovery_offset, position_bytes } => {
            // A negative recovery offset would not pass `checkpoint::decode` either.
            checkpoint::encode(&Checkpoint {
                segment_base_offset: 0,
                recovery_offset: (*recovery_offset).max(0),
                position_bytes: *position_bytes,
                clean_shutdown: false,
            })
        }
    });
    if let Some(decoded) = checkpoint_bytes.as_deref().and_then(checkpoint::decode) {
        trustworthy &= vouches_for_intact(&decoded, intact);
    }
    let intent_bytes = case.intent.as_ref().map(|input| match input {
        IntentInput::Raw(bytes) => bytes.clone(),
        IntentInput::Fields { start_offset, offsets } => {
            let start_offset = i64::from(*start_offset);
            intent::encode(&Intent { start_offset, end_offset: start_offset + i64::from(*offsets) })
        }
    });
    (checkpoint_bytes, intent_bytes, trustworthy)
}

/// True when `checkpoint` is ignored (another segment) or names the start or a batch boundary
/// of the intact prefix with the offset that follows it there.
fn vouches_for_intact(checkpoint: &Checkpoint, intact: &Prefix) -> bool {
    if checkpoint.segment_base_offset != 0 {
        return true;
    }
    if checkpoint.position_bytes == 0 {
        return checkpoint.recovery_offset == 0;
    }
    let boundary =
        intact.batches.iter().position(|range| range.end as u64 == checkpoint.position_bytes);
    boundary.is_some_and(|index| {
        let next = intact.base_offsets.get(index + 1).copied().unwrap_or(intact.next_offset);
        next == checkpoint.recovery_offset
    })
}

/// One input, on a fresh runtime (the replay tests).
pub fn run(data: &[u8]) {
    let case = Case::decode(data);
    block_on(check(&case));
}

/// Inputs to the worker thread, and a signal back when each is done.
type Worker = (mpsc::Sender<Vec<u8>>, Mutex<mpsc::Receiver<()>>);

/// One input, on a runtime that lives as long as the fuzzer: the fuzz target's body.
/// `block_on` per input sets up an io_uring per input; the kernel frees rings
/// asynchronously, and at a few thousand inputs a second setup fails with ENOMEM.
/// A panic on the worker thread aborts the process (libfuzzer-sys's panic hook), so
/// libFuzzer still records the input being run as the crash.
pub fn run_persistent(data: &[u8]) {
    static WORKER: OnceLock<Worker> = OnceLock::new();
    let (inputs, done) = WORKER.get_or_init(|| {
        let (input_sender, input_receiver) = mpsc::channel::<Vec<u8>>();
        let (done_sender, done_receiver) = mpsc::channel();
        std::thread::spawn(move || {
            block_on(async {
                // Each round runs one input; ends when the fuzzer (the sender) is gone.
                while let Ok(data) = input_receiver.recv() {
                    check(&Case::decode(&data)).await;
                    if done_sender.send(()).is_err() {
                        return;
                    }
                }
            })
        });
        (input_sender, Mutex::new(done_receiver))
    });
    inputs.send(data.to_vec()).expect("the worker runs until the process ends");
    let done = done.lock().expect("one fuzzing thread");
    done.recv().expect("the worker finishes every input or aborts the process");
}

pub async fn check(case: &Case) {
    let prefix = intact_prefix(&case.segment);
    let (checkpoint_bytes, intent_bytes, trustworthy) = side_files(case, &prefix);
    let intent = intent_bytes.as_deref().and_then(intent::decode);
    let later_segment = case.later_segment.as_ref().filter(|(base_offset, _)| *base_offset > 0);
    let mut segments = vec![SegmentFile { base_offset: 0, bytes: &case.segment }];
    if let Some((base_offset, bytes)) = later_segment {
        segments.push(SegmentFile { base_offset: i64::from(*base_offset), bytes });
    }
    let verdict = expected_log(&segments, intent);
    let sim = SimDisk::new(0x5EED);
    let disk = Disk::Simulated(sim.clone());
    let dir = partition_dir();
    disk.create_dir_all(&dir).expect("sim mkdir");
    let mut files = vec![
        (segment_file_path(0, "log"), Some(case.segment.clone())),
        (file_path("index"), case.offset_index.clone()),
        (file_path("timeindex"), case.time_index.clone()),
        (dir.join("recovery-point"), checkpoint_bytes),
        (dir.join(intent::INTENT_FILE_NAME), intent_bytes),
    ];
    if let Some((base_offset, bytes)) = later_segment {
        files.push((segment_file_path(*base_offset, "log"), Some(bytes.clone())));
    }
    for (path, bytes) in &files {
        if let Some(bytes) = bytes {
            write_file(&disk, path, bytes).await;
        }
    }
    let first = match Log::open(disk.clone(), dir.clone(), config()).await {
        Ok(log) => read_all(&log, 1).await,
        Err(error) => {
            assert!(
                !trustworthy || verdict == Verdict::Refuses,
                "recovery refused a log it can open: {error}"
            );
            return;
        }
    };
    served_only_file_bytes(&first, segments.iter().map(|segment| segment.bytes));
    if trustworthy {
        match &verdict {
            Verdict::Opens(expected) => check_policy(&sim, &segments, expected, &first),
            Verdict::Refuses => panic!("recovery opened segments whose offsets overlap"),
        }
    }
    let log = Log::open(disk.clone(), dir, config()).await.expect("second open");
    // The same reads as the first time for untrusted cases: only recovery may differ.
    let second = read_all(&log, if trustworthy { 4096 } else { 1 }).await;
    assert_eq!(first.batches, second.batches, "a second recovery serves the same log");
    assert_eq!(first.corrupt_from, second.corrupt_from);
    assert_eq!(first.high_watermark, second.high_watermark);
}

/// Whatever recovery believed, it may only serve batches that are really in the files.
fn served_only_file_bytes<'a>(served: &Served, segments: impl Iterator<Item = &'a [u8]>) {
    let segments: Vec<&[u8]> = segments.collect();
    for (offset, batch) in &served.batches {
        let found = segments
            .iter()
            .any(|segment| segment.windows(batch.len()).any(|window| window == &batch[..]));
        assert!(found, "served a batch at {offset} that is in no segment file");
    }
}

fn check_policy(sim: &SimDisk, segments: &[SegmentFile], expected: &ExpectedLog, served: &Served) {
    for (segment, kept) in segments.iter().zip(&expected.kept_bytes) {
        let base_offset = u32::try_from(segment.base_offset).expect("fuzz bases are u32");
        let file_len = sim.file_len(&segment_file_path(base_offset, "log"));
        assert_eq!(
            file_len,
            kept.map(|bytes| bytes as u64),
            "segment {base_offset}: only a torn tail behind the last intact batch is truncated, \
             and only segments behind it are deleted"
        );
    }
    assert_eq!(served.high_watermark, expected.log_end_offset);
    assert_eq!(served.batches, expected.served, "the whole intact prefix is served");
    match expected.corrupt_from {
        None => {
            assert!(served.error.is_none(), "{:?}", served.error);
            assert_eq!(served.corrupt_from, None);
        }
        Some(offset) => {
            assert!(
                matches!(served.error, Some(LogError::Corrupt { offset: at }) if at == offset),
                "reads at the lost offset {offset} must fail: {:?}",
                served.error
            );
            assert_eq!(served.corrupt_from, Some(offset), "detected loss is reported");
        }
    }
}
