//! Planned reads sent chunk by chunk (`log/region.rs`): a region serves exactly what `read`
//! serves; a batch that fails its check while the region is read is never handed out and is
//! detected loss at exactly its offset; a misdirected read is read again, not loss.

use super::*;
use crate::io::block_on;
use crate::log::region::{Chunk, ReadData, RegionCursor};
use crate::log::LogError;

/// One segment, a dense index, checkpoints only at open and close.
fn config() -> LogConfig {
    LogConfig { segment_size_bytes: 1 << 20, checkpoint_interval_bytes: 1 << 30, ..small_config() }
}

/// `count` batches of 3 records with 500-byte values, one append each; the log is closed.
async fn build(disk: &Disk, count: usize) -> Vec<(i64, Vec<u8>)> {
    let log = open(disk, &config()).await;
    let mut acked = Vec::new();
    for index in 0..count {
        let batches = vec![batch(3, 500, 1_000 + index as i64)];
        let info = log.append(batches.clone(), 0).await.expect("append");
        acked.push((info.base_offset, patched(&batches[0], info.base_offset, 0)));
    }
    log.close().await.expect("close");
    acked
}

/// Reads a planned region chunk by chunk until it ends or fails: what was handed out, and the
/// error.
async fn drain(log: &Log, cursor: &mut RegionCursor) -> (Vec<u8>, Option<LogError>) {
    let mut served = Vec::new();
    let mut buffer = Vec::with_capacity(4096);
    // Each round hands out at least one batch or ends (batches fit the buffer).
    loop {
        let (result, returned) = cursor.next_chunk(log, buffer).await;
        buffer = returned;
        match result {
            Ok(Chunk::Ready(_)) => served.extend_from_slice(&buffer),
            Ok(Chunk::NeedCapacity(size)) => panic!("a {size}-byte batch in a 4 KiB buffer"),
            Ok(Chunk::Done) => return (served, None),
            Err(error) => return (served, Some(error)),
        }
    }
}

async fn plan_region(log: &Log, offset: i64, max_bytes: usize) -> RegionCursor {
    let planned = log.plan_read(offset, max_bytes, true, 0).await.expect("plan");
    match planned.data {
        ReadData::Region(region) => RegionCursor::new(region),
        ReadData::Bytes(bytes) => panic!("planned {} bytes inline", bytes.len()),
    }
}

#[test]
fn a_planned_region_serves_what_read_serves_across_an_index_jump() {
    block_on(async {
        let (_sim, disk) = sim(7);
        let acked = build(&disk, 200).await;
        let log = open(&disk, &config()).await;
        for (offset, max_bytes) in [(0, 1 << 20), (30, 50_000), (299, 12_345), (597, 1)] {
            let read = log.read(offset, max_bytes, true).await.expect("read");
            let mut cursor = plan_region(&log, offset, max_bytes).await;
            let (served, error) = drain(&log, &mut cursor).await;
            assert!(error.is_none(), "{error:?}");
            assert_eq!(served, read.bytes.to_vec(), "from {offset} within {max_bytes}");
        }
        let (whole, _) = read_streamed(&log, 0, 1 << 20, true, 1000).await;
        let expected: Vec<u8> = acked.iter().flat_map(|(_, bytes)| bytes.clone()).collect();
        assert_eq!(whole, expected);
    });
}

#[test]
fn a_batch_failing_its_check_mid_region_is_never_handed_out_and_is_detected_loss() {
    block_on(async {
        let (sim, disk) = sim(8);
        let acked = build(&disk, 40).await;
        // A bit in the records of batch 25: its header stays plausible, so only the CRC
        // check as the region is read can find it.
        let start: usize = acked[..25].iter().map(|(_, bytes)| bytes.len()).sum();
        sim.corrupt_durable(&segment_log_path(0), (start + 300) as u64, 3);
        let log = open(&disk, &config()).await;
        let mut cursor = plan_region(&log, 0, 1 << 20).await;
        let (served, error) = drain(&log, &mut cursor).await;
        let prefix: Vec<u8> = acked[..25].iter().flat_map(|(_, bytes)| bytes.clone()).collect();
        assert_eq!(served, prefix, "exactly the intact batches before it");
        let corrupt_offset = acked[25].0;
        assert!(matches!(error, Some(LogError::Corrupt { offset }) if offset == corrupt_offset));
        assert_eq!(log.health().corrupt_from, Some(corrupt_offset));
        // The client asks again: the intact prefix, then the error at the damaged offset.
        let (again, next_offset) = read_streamed(&log, 0, 1 << 20, true, 4096).await;
        assert_eq!((again, next_offset), (prefix, corrupt_offset));
        let refused = log.plan_read(corrupt_offset, 1 << 20, true, 0).await;
        assert!(matches!(refused, Err(LogError::Corrupt { offset }) if offset == corrupt_offset));
    });
}

#[test]
fn a_misdirected_read_while_a_region_is_read_is_read_again_not_loss() {
    block_on(async {
        let (sim, disk) = sim(9);
        let acked = build(&disk, 60).await;
        let log = open(&disk, &config()).await;
        let expected: Vec<u8> = acked.iter().flat_map(|(_, bytes)| bytes.clone()).collect();
        for round in 0..10 {
            let mut cursor = plan_region(&log, 0, 1 << 20).await;
            sim.misdirect_next_reads(&dir(), 1 + round % 2);
            let (served, error) = drain(&log, &mut cursor).await;
            assert!(error.is_none(), "round {round}: {error:?}");
            assert_eq!(served, expected, "round {round}");
        }
        assert_eq!(log.health().corrupt_from, None);
    });
}
