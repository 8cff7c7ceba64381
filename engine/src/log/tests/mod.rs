//! Tests of the log against the simulated disk (`crate::io::SimDisk`), plus a few on the real
//! disk. Shared helpers live here; each file covers one behaviour.

use std::path::{Path, PathBuf};

use bytes::BytesMut;

use super::{Log, LogConfig};
use crate::io::{Disk, SimDisk};
use crate::record_batch::build::{encode_batch, ProducerStamp, Record};
use crate::record_batch::check_framing_and_crc;

mod basic;
mod compaction;
mod corruption;
mod crash;
mod delete_records;
mod faults;
mod idempotence;
mod leader_epochs;
mod misdirection;
mod model;
mod os_disk;
mod region;
mod replicated;

pub fn dir() -> PathBuf {
    PathBuf::from("/data/topic-0")
}

/// Small segments and a dense index so that tests cross every boundary quickly.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_size_bytes: 2048,
        index_interval_bytes: 200,
        checkpoint_interval_bytes: 1024,
        segment_age_ms: 1000,
        retention_age_ms: -1,
        ..LogConfig::default()
    }
}

/// An uncompressed batch of `records` records with `value_bytes`-byte values; record `i` has
/// timestamp `timestamp_ms + i`.
pub fn batch(records: usize, value_bytes: usize, timestamp_ms: i64) -> BytesMut {
    let records: Vec<Record> = (0..records)
        .map(|index| Record {
            value: Some(vec![(index % 251) as u8; value_bytes]),
            timestamp_delta: index as i64,
            ..Record::default()
        })
        .collect();
    BytesMut::from(&encode_batch(&records, timestamp_ms, ProducerStamp::NONE)[..])
}

pub fn sim(seed: u64) -> (SimDisk, Disk) {
    let sim = SimDisk::new(seed);
    (sim.clone(), Disk::Simulated(sim))
}

pub async fn open(disk: &Disk, config: &LogConfig) -> Log {
    match Log::open(disk.clone(), dir(), config.clone()).await {
        Ok(log) => log,
        Err(error) => panic!("open failed: {error}"),
    }
}

/// Splits served bytes into (base offset, batch bytes), asserting each batch is CRC-valid.
pub fn split(bytes: &[u8]) -> Vec<(i64, Vec<u8>)> {
    let mut batches = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let info = check_framing_and_crc(&bytes[position..]).expect("served batch is CRC-valid");
        batches.push((info.base_offset, bytes[position..position + info.size_bytes].to_vec()));
        position += info.size_bytes;
    }
    batches
}

/// Every batch from `from` to the high watermark, read in steps of `max_bytes`.
pub async fn read_all(log: &Log, from: i64, max_bytes: usize) -> Vec<(i64, Vec<u8>)> {
    let mut batches = Vec::new();
    let mut offset = from;
    // Each read returns at least one batch (min_one_batch) until the high watermark.
    while offset < log.high_watermark() {
        let read = log.read(offset, max_bytes, true).await.expect("read below the high watermark");
        let got = split(&read.bytes);
        assert!(!got.is_empty(), "min_one_batch read at {offset} returned nothing");
        let last = check_framing_and_crc(&got[got.len() - 1].1).expect("valid");
        assert_eq!(read.next_offset, last.next_offset(), "the read names the offset after it");
        offset = last.next_offset();
        batches.extend(got);
    }
    batches
}

/// Bytes of `batch` as the log stores it: base offset and leader epoch patched in.
pub fn patched(batch: &BytesMut, base_offset: i64, leader_epoch: i32) -> Vec<u8> {
    let mut bytes = batch.to_vec();
    crate::record_batch::patch_base_offset(&mut bytes, base_offset, leader_epoch);
    bytes
}

pub fn segment_log_path(base_offset: i64) -> PathBuf {
    super::layout::segment_path(&dir(), base_offset, super::layout::LOG_SUFFIX)
}

pub fn segment_bases(disk: &Disk, path: &Path) -> Vec<i64> {
    let names = disk.list_dir(path).expect("list");
    names
        .iter()
        .filter_map(|name| match super::layout::classify(name) {
            super::layout::EntryKind::Log { base_offset } => Some(base_offset),
            _ => None,
        })
        .collect()
}

/// A read as Fetch plans it and streams it: planned with `inline_max_bytes`, a region read in
/// chunks of `chunk_bytes` (grown when a batch is larger). Returns the bytes served and the
/// next offset, to compare with `Log::read`.
pub async fn read_streamed(
    log: &Log,
    offset: i64,
    max_bytes: usize,
    min_one_batch: bool,
    chunk_bytes: usize,
) -> (Vec<u8>, i64) {
    use super::region::{Chunk, ReadData, RegionCursor};
    let planned = log.plan_read(offset, max_bytes, min_one_batch, 0).await.expect("plan");
    let region = match planned.data {
        ReadData::Bytes(bytes) => return (bytes.to_vec(), planned.next_offset),
        ReadData::Region(region) => region,
    };
    assert_eq!(region.next_offset, planned.next_offset);
    let mut cursor = RegionCursor::new(region);
    let mut served = Vec::new();
    let mut buffer = Vec::with_capacity(chunk_bytes);
    // Each round serves a chunk or grows the buffer once for one batch.
    loop {
        let (result, returned) = cursor.next_chunk(log, buffer).await;
        buffer = returned;
        match result.expect("an intact region reads") {
            Chunk::Ready(size_bytes) => {
                assert!(size_bytes > 0 && size_bytes == buffer.len());
                served.extend_from_slice(&buffer);
            }
            Chunk::NeedCapacity(size_bytes) => {
                assert!(size_bytes > buffer.capacity());
                buffer = Vec::with_capacity(size_bytes);
            }
            Chunk::Done => break,
        }
    }
    assert_eq!(served.len(), cursor.size_bytes());
    (served, planned.next_offset)
}
