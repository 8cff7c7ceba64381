//! Buffered sequential reading of a segment file, for recovery's scans: one large read per
//! chunk instead of one per batch header.

use std::io;

use super::scan::{self, Expect, Judgement};
use super::segment::SEGMENT_OFFSET_SPAN_MAX;
use crate::io::File;
use crate::record_batch::{BatchInfo, HEADER_SIZE_BYTES};

/// Bytes read at a time (more when one batch is larger).
pub const CHUNK_BYTES: usize = 1 << 20;

/// Reads exactly `size_bytes` at `position` (fewer only if the file ends: then an error).
pub async fn read_exactly(file: &File, position: u64, size_bytes: usize) -> io::Result<Vec<u8>> {
    let mut buffer = Vec::with_capacity(size_bytes);
    // Each round reads at least one byte or fails, so this is bounded by `size_bytes`.
    while buffer.len() < size_bytes {
        let filled = buffer.len();
        let (result, returned) = file.read_at(buffer, position + filled as u64).await;
        buffer = returned;
        match result {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    buffer.truncate(size_bytes);
    Ok(buffer)
}

pub struct SegmentReader {
    file: File,
    len_bytes: u64,
    buffer: Vec<u8>,
    buffer_start: u64,
    max_batch_bytes: usize,
}

impl SegmentReader {
    pub fn new(file: File, len_bytes: u64, max_batch_bytes: usize) -> SegmentReader {
        SegmentReader { file, len_bytes, buffer: Vec::new(), buffer_start: 0, max_batch_bytes }
    }

    pub fn len_bytes(&self) -> u64 {
        self.len_bytes
    }

    /// Forgets the buffered bytes, so the next judgement reads the file again (a misdirected
    /// read returned the bytes of a wrong offset; a second read is right).
    pub fn invalidate(&mut self) {
        self.buffer.clear();
        self.buffer_start = 0;
    }

    /// [`SegmentReader::judge_at`], and when the bytes are not a valid batch, once more from
    /// the file: recovery truncates or reports loss on this answer, so one misdirected read
    /// must not decide it.
    pub async fn judge_at_twice(&mut self, position: u64, expect: Expect) -> io::Result<Judgement> {
        let judgement = self.judge_at(position, expect).await?;
        if let Judgement::Valid(_) = judgement {
            return Ok(judgement);
        }
        self.invalidate();
        self.judge_at(position, expect).await
    }

    /// The bytes from `position` on: at least `min_bytes` of them unless the file ends first.
    pub async fn window(&mut self, position: u64, min_bytes: usize) -> io::Result<&[u8]> {
        assert!(position <= self.len_bytes);
        let available = self.len_bytes - position;
        let want = (min_bytes as u64).min(available);
        let buffer_end = self.buffer_start + self.buffer.len() as u64;
        if position < self.buffer_start || position + want > buffer_end {
            let size = (CHUNK_BYTES.max(min_bytes) as u64).min(available) as usize;
            self.buffer = read_exactly(&self.file, position, size).await?;
            self.buffer_start = position;
        }
        Ok(&self.buffer[(position - self.buffer_start) as usize..])
    }

    /// The `size_bytes` bytes at `position` exactly as the last judgement saw them (no new
    /// read: a fresh read could be misdirected). Only for a batch just judged valid there.
    pub fn judged_bytes(&self, position: u64, size_bytes: usize) -> &[u8] {
        let start = position.checked_sub(self.buffer_start).map(|start| start as usize);
        let start = start.filter(|start| start + size_bytes <= self.buffer.len());
        let Some(start) = start else { unreachable!("batch at {position} not in the buffer") };
        &self.buffer[start..start + size_bytes]
    }

    /// Judges the batch at `position` (see [`scan::judge`]), reading as much as it needs.
    pub async fn judge_at(&mut self, position: u64, expect: Expect) -> io::Result<Judgement> {
        let bytes_to_eof = self.len_bytes - position;
        let max_batch_bytes = self.max_batch_bytes;
        let mut need = HEADER_SIZE_BYTES;
        // Two rounds suffice: the header tells the size, the second window holds it.
        for _ in 0..3 {
            let window = self.window(position, need).await?;
            match scan::judge(window, bytes_to_eof, expect, max_batch_bytes) {
                Judgement::NeedBytes(bytes) => {
                    assert!(bytes > need, "judge asked for no more bytes");
                    need = bytes;
                }
                judgement => return Ok(judgement),
            }
        }
        unreachable!("judge_at did not converge")
    }

    /// Whether the batch `info` found at `position` is there when read again. A misdirected
    /// read can show a real batch at a wrong position (then recovery would report loss that is
    /// not there), but a misdirected confirmation must not hide a real one either (then
    /// recovery would truncate it): only two fresh reads that both disagree reject the find.
    async fn confirm(
        &mut self,
        position: u64,
        min_offset: i64,
        info: BatchInfo,
    ) -> io::Result<bool> {
        for _ in 0..2 {
            self.invalidate();
            if self.judge_at(position, Expect::AtLeast(min_offset)).await? == Judgement::Valid(info)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The first intact batch at or after `from` whose base offset is at least `min_offset`:
    /// what decides whether a bad batch is a torn tail (none) or corruption (some). Bounded by
    /// the file length; a cheap magic-byte filter runs before each CRC. A batch whose offsets
    /// do not fit in the segment based at `segment_base_offset` was never written there (an
    /// append never spans that far), so it is not intact: taking it would report loss where
    /// there is a torn tail, and move the log end to an offset from garbage.
    pub async fn find_intact(
        &mut self,
        from: u64,
        min_offset: i64,
        segment_base_offset: i64,
    ) -> io::Result<Option<(u64, BatchInfo)>> {
        const MAGIC_POSITION: usize = 16;
        let mut position = from;
        while position + HEADER_SIZE_BYTES as u64 <= self.len_bytes {
            let window = self.window(position, HEADER_SIZE_BYTES).await?;
            if window[MAGIC_POSITION] as i8 == crate::record_batch::MAGIC_V2 {
                if let Judgement::Valid(info) =
                    self.judge_at(position, Expect::AtLeast(min_offset)).await?
                {
                    // `judge` rules out overflow, and base offsets are never negative.
                    let span = info.last_offset() - segment_base_offset;
                    if span < SEGMENT_OFFSET_SPAN_MAX
                        && self.confirm(position, min_offset, info).await?
                    {
                        return Ok(Some((position, info)));
                    }
                }
            }
            position += 1;
        }
        Ok(None)
    }
}
