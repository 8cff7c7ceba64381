//! Appends, reads, rolling, indexes, timestamps, retention, group commit, close/reopen.

use super::*;
use crate::io::block_on;
use crate::log::{LogError, LogStatus};

#[test]
fn appends_get_contiguous_offsets_and_read_back_byte_identical() {
    block_on(async {
        let (_sim, disk) = sim(1);
        let log = open(&disk, &small_config()).await;
        let first = log.append(vec![batch(3, 10, 1000), batch(2, 10, 1001)], 7).await.unwrap();
        assert_eq!((first.base_offset, first.last_offset, first.log_start_offset), (0, 4, 0));
        let second = log.append(vec![batch(1, 10, 1002)], 7).await.unwrap();
        assert_eq!((second.base_offset, second.last_offset), (5, 5));
        assert_eq!((log.high_watermark(), log.log_end_offset(), log.log_start_offset()), (6, 6, 0));
        let got = read_all(&log, 0, 1 << 20).await;
        let expected = vec![
            (0, patched(&batch(3, 10, 1000), 0, 7)),
            (3, patched(&batch(2, 10, 1001), 3, 7)),
            (5, patched(&batch(1, 10, 1002), 5, 7)),
        ];
        assert_eq!(got, expected);
        // A read inside a batch starts with the whole batch containing the offset.
        let inside = log.read(4, 1 << 20, true).await.unwrap();
        assert_eq!(split(&inside.bytes)[0].0, 3);
        assert_eq!(inside.high_watermark, 6);
    });
}

#[test]
fn read_bounds_high_watermark_out_of_range_and_max_bytes() {
    block_on(async {
        let (_sim, disk) = sim(2);
        let log = open(&disk, &small_config()).await;
        for index in 0..5 {
            log.append(vec![batch(1, 100, 1000 + index)], 0).await.unwrap();
        }
        let size = batch(1, 100, 0).len();
        let at_end = log.read(5, 1000, true).await.unwrap();
        assert!(at_end.bytes.is_empty());
        assert_eq!(at_end.next_offset, 5, "nothing served: the offset asked for");
        assert!(matches!(log.read(6, 1000, true).await, Err(LogError::OffsetOutOfRange { .. })));
        assert!(matches!(log.read(-1, 1000, true).await, Err(LogError::OffsetOutOfRange { .. })));
        let two = log.read(0, size * 2 + 1, true).await.unwrap();
        assert_eq!(split(&two.bytes).len(), 2);
        assert_eq!(two.next_offset, 2, "the limit left data behind: below the high watermark");
        assert_eq!(split(&log.read(0, 1, true).await.unwrap().bytes).len(), 1);
        let none = log.read(1, 1, false).await.unwrap();
        assert!(none.bytes.is_empty());
        assert_eq!(none.next_offset, 1);
        assert_eq!(log.read(3, 1 << 20, true).await.unwrap().next_offset, 5);
    });
}

#[test]
fn size_based_roll_keeps_appends_whole_and_reads_cross_segments() {
    block_on(async {
        let (_sim, disk) = sim(3);
        let config = small_config();
        let log = open(&disk, &config).await;
        let mut expected = Vec::new();
        for index in 0..40 {
            let batches = vec![batch(2, 50, 1000 + index), batch(1, 30, 1000 + index)];
            let info = log.append(batches.clone(), 1).await.unwrap();
            expected.push((info.base_offset, patched(&batches[0], info.base_offset, 1)));
            expected.push((info.base_offset + 2, patched(&batches[1], info.base_offset + 2, 1)));
        }
        let bases = segment_bases(&disk, &dir());
        assert!(bases.len() > 3, "segments: {bases:?}");
        assert_eq!(read_all(&log, 0, 300).await, expected);
        assert_eq!(read_all(&log, 0, 1 << 20).await, expected);
        for (offset, _) in &expected {
            let got = split(&log.read(*offset, 1, true).await.unwrap().bytes);
            assert_eq!(got[0].0, *offset);
        }
    });
}

#[test]
fn close_and_reopen_keeps_everything_and_continues_offsets() {
    block_on(async {
        let (_sim, disk) = sim(4);
        let config = small_config();
        let log = open(&disk, &config).await;
        for index in 0..30 {
            log.append(vec![batch(2, 40, 1000 + index)], 0).await.unwrap();
        }
        let before = read_all(&log, 0, 1 << 20).await;
        log.close().await.unwrap();
        assert!(matches!(log.append(vec![batch(1, 1, 0)], 0).await, Err(LogError::Closed)));
        let log = open(&disk, &config).await;
        assert_eq!(log.high_watermark(), 60);
        assert_eq!(read_all(&log, 0, 1 << 20).await, before);
        assert_eq!(log.append(vec![batch(1, 1, 5000)], 0).await.unwrap().base_offset, 60);
    });
}

#[test]
fn group_commit_one_sync_covers_appends_queued_meanwhile() {
    block_on(async {
        let (_sim, disk) = sim(5);
        let log = open(&disk, &LogConfig::default()).await;
        let syncs_before = log.data_sync_count();
        // All 50 are admitted (offsets assigned) before the flusher runs once.
        let appends: Vec<_> =
            (0..50).map(|index| log.append(vec![batch(1, 10, index)], 0)).collect();
        for (index, append) in appends.into_iter().enumerate() {
            assert_eq!(append.await.unwrap().base_offset, index as i64);
        }
        let syncs = log.data_sync_count() - syncs_before;
        assert!((1..5).contains(&syncs), "{syncs} syncs for 50 appends");
    });
}

#[test]
fn offsets_are_assigned_at_call_time_in_call_order() {
    block_on(async {
        let (_sim, disk) = sim(6);
        let log = open(&disk, &LogConfig::default()).await;
        let first = log.append(vec![batch(3, 1, 0)], 0);
        let second = log.append(vec![batch(2, 1, 0)], 0);
        assert_eq!(log.log_end_offset(), 5);
        assert_eq!(second.await.unwrap().base_offset, 3);
        assert_eq!(first.await.unwrap().base_offset, 0);
    });
}

#[test]
fn offset_for_timestamp_finds_first_record_at_or_after() {
    block_on(async {
        let (_sim, disk) = sim(7);
        let log = open(&disk, &small_config()).await;
        // Batch i holds 3 records stamped 1000*i + {0,1,2}; timestamps go down once.
        for (index, base_ms) in [1000, 2000, 1500, 3000, 4000].iter().enumerate() {
            log.append(vec![batch(3, 200, *base_ms)], 0).await.unwrap();
            assert_eq!(log.log_end_offset(), 3 * (index as i64 + 1));
        }
        assert_eq!(log.offset_for_timestamp(0).await.unwrap(), Some((0, 1000)));
        assert_eq!(log.offset_for_timestamp(1001).await.unwrap(), Some((1, 1001)));
        assert_eq!(log.offset_for_timestamp(1003).await.unwrap(), Some((3, 2000)));
        assert_eq!(log.offset_for_timestamp(2002).await.unwrap(), Some((5, 2002)));
        assert_eq!(log.offset_for_timestamp(3001).await.unwrap(), Some((10, 3001)));
        assert_eq!(log.offset_for_timestamp(4002).await.unwrap(), Some((14, 4002)));
        assert_eq!(log.offset_for_timestamp(4003).await.unwrap(), None);
        assert_eq!(log.max_timestamp(), Some((14, 4002)));
    });
}

#[test]
fn missing_or_garbage_indexes_are_rebuilt() {
    block_on(async {
        let (sim, disk) = sim(8);
        let config = small_config();
        let log = open(&disk, &config).await;
        for index in 0..60 {
            log.append(vec![batch(1, 60, 1000 + index)], 0).await.unwrap();
        }
        let expected = read_all(&log, 0, 1 << 20).await;
        let expected_time = log.offset_for_timestamp(1030).await.unwrap();
        log.close().await.unwrap();
        let names = disk.list_dir(&dir()).unwrap();
        let mut damaged = 0;
        for (index, name) in names.iter().enumerate() {
            let path = dir().join(name);
            if name.ends_with(".index") && index % 2 == 0 {
                disk.remove_file(&path).unwrap();
                damaged += 1;
            } else if name.ends_with(".timeindex") || name.ends_with(".index") {
                let file = disk.open(&path, crate::io::OpenOptions::default()).unwrap();
                let (result, _) = file.write_all_at(vec![0xAB; 13], 0).await;
                result.unwrap();
                file.sync_data().await.unwrap();
                damaged += 1;
            }
        }
        assert!(damaged > 4);
        let _ = sim;
        let log = open(&disk, &config).await;
        assert_eq!(read_all(&log, 0, 1 << 20).await, expected);
        for (offset, _) in &expected {
            assert_eq!(split(&log.read(*offset, 1, true).await.unwrap().bytes)[0].0, *offset);
        }
        assert_eq!(log.offset_for_timestamp(1030).await.unwrap(), expected_time);
        assert_eq!(log.health().corrupt_from, None);
    });
}

#[test]
fn retention_by_size_deletes_oldest_segments_and_advances_log_start() {
    block_on(async {
        let (_sim, disk) = sim(9);
        let config = LogConfig { retention_size_bytes: 3000, ..small_config() };
        let log = open(&disk, &config).await;
        for index in 0..100 {
            log.append(vec![batch(1, 60, 1000 + index)], 0).await.unwrap();
        }
        let segments_before = segment_bases(&disk, &dir()).len();
        let deleted = log.apply_retention(0).await.unwrap();
        assert!(deleted > 0);
        let bases = segment_bases(&disk, &dir());
        assert_eq!(bases.len(), segments_before - deleted as usize);
        assert_eq!(log.log_start_offset(), bases[0]);
        assert!(matches!(log.read(0, 100, true).await, Err(LogError::OffsetOutOfRange { .. })));
        let rest = read_all(&log, log.log_start_offset(), 1 << 20).await;
        assert_eq!(rest.last().unwrap().0, 99);
        let kept_bytes: usize = rest.iter().map(|(_, bytes)| bytes.len()).sum();
        assert!((3000..3000 + 2048).contains(&kept_bytes), "{kept_bytes}");
        assert_eq!(log.append(vec![batch(1, 1, 0)], 0).await.unwrap().log_start_offset, bases[0]);
    });
}

#[test]
fn retention_by_age_and_age_based_roll() {
    block_on(async {
        let (_sim, disk) = sim(10);
        let config =
            LogConfig { retention_age_ms: 10_000, segment_size_bytes: 1 << 20, ..small_config() };
        let log = open(&disk, &config).await;
        for round in 0..3i64 {
            for index in 0..5 {
                log.append(vec![batch(1, 10, round * 100_000 + index)], 0).await.unwrap();
            }
            log.maybe_roll(round * 100_000 + 5_000).await.unwrap();
        }
        // Batches are stamped 0.., 100_000.., 200_000..; rolled after each round.
        assert_eq!(segment_bases(&disk, &dir()), vec![0, 5, 10, 15]);
        assert_eq!(log.apply_retention(205_000).await.unwrap(), 2);
        assert_eq!(log.log_start_offset(), 10);
        // The newest sealed segment is within retention; the active one is never deleted.
        assert_eq!(log.apply_retention(205_000).await.unwrap(), 0);
        assert_eq!(log.apply_retention(i64::MAX / 2).await.unwrap(), 1);
        assert_eq!(log.log_start_offset(), 15);
        assert_eq!(log.health().status, LogStatus::Online);
    });
}

#[test]
fn wait_for_high_watermark_completes_after_an_append() {
    block_on(async {
        let (_sim, disk) = sim(11);
        let log = open(&disk, &LogConfig::default()).await;
        let waiter = log.wait_for_high_watermark_above(0);
        let append = log.append(vec![batch(1, 1, 0)], 0);
        waiter.await;
        assert!(log.high_watermark() > 0);
        append.await.unwrap();
        let closed = log.wait_for_high_watermark_above(100);
        log.close().await.unwrap();
        closed.await;
    });
}

#[test]
fn interval_flush_acknowledges_after_the_write_and_syncs_at_most_every_interval() {
    block_on(async {
        let (_sim, disk) = sim(12);
        let config =
            LogConfig { flush: crate::log::FlushPolicy::IntervalMs(60_000), ..small_config() };
        let log = open(&disk, &config).await;
        let mut expected = Vec::new();
        for index in 0..20 {
            let bytes = vec![batch(1, 30, index)];
            let info = log.append(bytes.clone(), 0).await.unwrap();
            expected.push((info.base_offset, patched(&bytes[0], info.base_offset, 0)));
            assert_eq!(log.high_watermark(), index + 1, "acknowledged data is visible");
        }
        assert!(log.data_sync_count() <= 2, "{} syncs", log.data_sync_count());
        log.close().await.unwrap();
        let log = open(&disk, &config).await;
        assert_eq!(read_all(&log, 0, 1 << 20).await, expected);
    });
}

#[test]
fn reads_while_appends_are_in_flight_serve_exactly_the_visible_batches() {
    block_on(async {
        let (_sim, disk) = sim(13);
        let log = open(&disk, &small_config()).await;
        let first = vec![batch(2, 100, 0)];
        log.append(first.clone(), 0).await.unwrap();
        let in_flight: Vec<_> = (0..5).map(|_| log.append(vec![batch(1, 300, 1)], 0)).collect();
        assert_eq!(log.log_end_offset(), 7);
        let read = log.read(0, 1 << 20, true).await.unwrap();
        assert_eq!(read.high_watermark, 2);
        assert_eq!(split(&read.bytes), vec![(0, patched(&first[0], 0, 0))]);
        for append in in_flight {
            append.await.unwrap();
        }
        assert_eq!(read_all(&log, 0, 1 << 20).await.len(), 6);
    });
}
