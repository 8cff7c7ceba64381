//! An answer read as the socket drains: a [`FileRegion`] names whole batches in one segment
//! file, found by walking their headers (`read.rs`, `Log::plan_read`) and not yet CRC-checked;
//! a [`RegionCursor`] reads it chunk by chunk into a buffer its caller owns and reuses, and
//! checks every batch there (framing, CRC32C, the offsets the walk expects) before it hands
//! the batch's bytes out. So fetched data is copied once, into a bounded buffer, and bytes
//! that fail their check are never handed out. The caller has already sent the region's
//! length, so an error means it must give the answer up (close the connection); the client
//! asks again, and a re-plan then answers with an error code (detected loss) or fresh data.
//!
//! The region keeps its segment file open: retention or compaction may remove the segment
//! from the log meanwhile, and the bytes stay readable until the region is dropped.

use super::error::LogError;
use super::partition::Log;
use super::scan::{self, Expect, Judgement};
use crate::io::{Bounded, File};
use crate::record_batch::HEADER_SIZE_BYTES;

/// Whole batches of one segment: `[position, position + size_bytes)`, offsets
/// `[base_offset, next_offset)`.
pub struct FileRegion {
    pub(super) file: File,
    pub(super) position: u64,
    pub size_bytes: usize,
    pub base_offset: i64,
    pub next_offset: i64,
    /// Bytes of the segment from `position` on (a batch may be judged against them).
    pub(super) bytes_to_segment_end: u64,
    pub(super) max_batch_bytes: usize,
}

/// What one call of [`RegionCursor::next_chunk`] produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// The buffer holds this many bytes of whole, checked batches; the cursor moved past them.
    Ready(usize),
    /// The next batch is larger than the buffer: call again with at least this capacity.
    NeedCapacity(usize),
    /// The whole region has been handed out.
    Done,
}

/// How far a region has been read and checked.
pub struct RegionCursor {
    region: FileRegion,
    read_bytes: usize,
    expected_offset: i64,
}

impl RegionCursor {
    pub fn new(region: FileRegion) -> RegionCursor {
        let expected_offset = region.base_offset;
        RegionCursor { region, read_bytes: 0, expected_offset }
    }

    pub fn size_bytes(&self) -> usize {
        self.region.size_bytes
    }

    pub fn remaining_bytes(&self) -> usize {
        self.region.size_bytes - self.read_bytes
    }

    /// Reads the next whole batches that fit in `buffer`'s capacity into it, and checks them.
    /// A batch that fails its check is read again once (a misdirected read is transient)
    /// before it is declared detected loss (`LogError::Corrupt`, remembered by `log`).
    pub async fn next_chunk(
        &mut self,
        log: &Log,
        buffer: Vec<u8>,
    ) -> (Result<Chunk, LogError>, Vec<u8>) {
        let mut buffer = buffer;
        let mut failures = 0;
        // Bounded: each round returns, or counts one failed check of the same batch.
        loop {
            let (result, returned) = self.read_and_check(buffer).await;
            buffer = returned;
            match result {
                Ok(Checked::Chunk(chunk)) => return (Ok(chunk), buffer),
                Ok(Checked::Suspect) if failures + 1 < super::read::READ_ATTEMPTS_MAX => {
                    failures += 1;
                }
                Ok(Checked::Suspect) => {
                    let error = super::read::corrupt_at(&log.shared, self.expected_offset);
                    buffer.clear();
                    return (Err(error), buffer);
                }
                Ok(Checked::Stale) => {
                    tracing::info!(
                        dir = %log.shared.dir.display(),
                        offset = self.expected_offset,
                        "log: a planned read no longer matches its segment; giving it up",
                    );
                    buffer.clear();
                    return (Err(LogError::RegionStale { offset: self.expected_offset }), buffer);
                }
                Err(error) => {
                    buffer.clear();
                    return (Err(error.into()), buffer);
                }
            }
        }
    }

    async fn read_and_check(&mut self, buffer: Vec<u8>) -> (std::io::Result<Checked>, Vec<u8>) {
        let remaining_bytes = self.remaining_bytes();
        if remaining_bytes == 0 {
            // The walk that planned the region and the checks that read it agree (`check`).
            debug_assert_eq!(self.expected_offset, self.region.next_offset);
            return (Ok(Checked::Chunk(Chunk::Done)), buffer);
        }
        let wanted = remaining_bytes.min(buffer.capacity());
        if wanted < HEADER_SIZE_BYTES.min(remaining_bytes) {
            return (Ok(Checked::Chunk(Chunk::NeedCapacity(HEADER_SIZE_BYTES))), buffer);
        }
        let position = self.region.position + self.read_bytes as u64;
        let (result, bounded) =
            self.region.file.read_exact_at(Bounded::new(buffer, wanted), position).await;
        let mut buffer = bounded.into_inner();
        if let Err(error) = result {
            buffer.clear();
            return (Err(error), buffer);
        }
        let checked = self.check(&buffer);
        let served = match checked {
            Checked::Chunk(Chunk::Ready(size_bytes)) => size_bytes,
            _ => 0,
        };
        buffer.truncate(served);
        (Ok(checked), buffer)
    }

    /// Judges the batches at the start of `window` (read at the cursor) and moves past the
    /// whole, valid ones.
    fn check(&mut self, window: &[u8]) -> Checked {
        let remaining_bytes = self.remaining_bytes() as u64;
        let mut cursor = 0usize;
        // Each round moves past one batch (>= 61 bytes) or ends.
        while cursor < window.len() {
            let bytes_to_end = remaining_bytes - cursor as u64;
            let expect = Expect::Exactly(self.expected_offset);
            let max_batch_bytes = self.region.max_batch_bytes;
            match scan::judge(&window[cursor..], bytes_to_end, expect, max_batch_bytes) {
                Judgement::Valid(info) => {
                    cursor += info.size_bytes;
                    self.expected_offset = info.next_offset();
                }
                Judgement::NeedBytes(size_bytes) if cursor == 0 => {
                    return Checked::Chunk(Chunk::NeedCapacity(size_bytes));
                }
                Judgement::NeedBytes(_) => break,
                // Served first: the next call reads the bad batch afresh.
                Judgement::Invalid if cursor > 0 => break,
                Judgement::Invalid => return self.judge_failure(window),
            }
        }
        assert!(self.read_bytes + cursor <= self.region.size_bytes);
        if self.read_bytes + cursor == self.region.size_bytes
            && self.expected_offset != self.region.next_offset
        {
            // Whole batches, all checked, yet not the offsets the walk found: the segment
            // changed between the plan and this read.
            return Checked::Stale;
        }
        self.read_bytes += cursor;
        Checked::Chunk(Chunk::Ready(cursor))
    }

    /// Why the batch at the cursor failed: a batch that is intact but does not end where the
    /// plan said is a plan overtaken by a change of the segment (stale: a segment's bytes
    /// below the high watermark never change today, but truncation by a new leader will),
    /// anything else is suspect of corruption.
    fn judge_failure(&self, window: &[u8]) -> Checked {
        let position_in_segment = self.read_bytes as u64;
        let bytes_to_segment_end = self.region.bytes_to_segment_end - position_in_segment;
        let expect = Expect::Exactly(self.expected_offset);
        let window = &window[..window.len().min(bytes_to_segment_end as usize)];
        match scan::judge(window, bytes_to_segment_end, expect, self.region.max_batch_bytes) {
            Judgement::Valid(_) => Checked::Stale,
            Judgement::NeedBytes(_) | Judgement::Invalid => Checked::Suspect,
        }
    }
}

/// What one read of a chunk found.
enum Checked {
    Chunk(Chunk),
    /// The batch at the cursor fails its check: corruption, or a misdirected read.
    Suspect,
    /// The batch at the cursor is intact but not where the plan put it.
    Stale,
}

/// What a planned read serves: bytes already read and checked, or a region to read as it is
/// sent.
pub enum ReadData {
    Bytes(bytes::Bytes),
    Region(FileRegion),
}

/// A planned read ([`Log::plan_read`]): what it serves and the partition's watermarks.
pub struct PlannedRead {
    pub data: ReadData,
    /// The offset after the last batch served; the offset asked for when nothing is.
    pub next_offset: i64,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

impl PlannedRead {
    pub fn size_bytes(&self) -> usize {
        match &self.data {
            ReadData::Bytes(bytes) => bytes.len(),
            ReadData::Region(region) => region.size_bytes,
        }
    }
}

impl From<super::state::ReadInfo> for PlannedRead {
    fn from(info: super::state::ReadInfo) -> PlannedRead {
        PlannedRead {
            data: ReadData::Bytes(info.bytes),
            next_offset: info.next_offset,
            high_watermark: info.high_watermark,
            log_start_offset: info.log_start_offset,
        }
    }
}
