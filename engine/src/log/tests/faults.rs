//! Storage faults: ENOSPC, fdatasync errors, and deterministic corruption cases.

use super::*;
use crate::io::{block_on, CrashMode, OpenOptions};
use crate::log::{LogError, LogStatus};

/// Lets the next append re-check free space now instead of after the re-check interval.
fn expire_no_space_check(log: &Log) {
    log.shared.state.borrow_mut().no_space_checked_at = None;
}

#[test]
fn enospc_fails_appends_keeps_the_log_intact_and_resumes_when_space_returns() {
    block_on(async {
        let (sim, disk) = sim(20);
        let config = small_config();
        let log = open(&disk, &config).await;
        let mut acked = Vec::new();
        for index in 0..10 {
            let batches = vec![batch(1, 100, 1000 + index)];
            let info = log.append(batches.clone(), 0).await.unwrap();
            acked.push((info.base_offset, patched(&batches[0], info.base_offset, 0)));
        }
        sim.set_capacity_bytes(Some(0));
        let failed = log.append(vec![batch(3, 100, 2000)], 0).await;
        assert!(matches!(failed, Err(LogError::NoSpace)), "{failed:?}");
        assert_eq!(log.health().status, LogStatus::NoSpace);
        assert_eq!((log.log_end_offset(), log.high_watermark()), (10, 10));
        assert!(matches!(log.append(vec![batch(1, 1, 0)], 0).await, Err(LogError::NoSpace)));
        expire_no_space_check(&log);
        assert!(matches!(log.append(vec![batch(1, 1, 0)], 0).await, Err(LogError::NoSpace)));
        // Reads keep working.
        assert_eq!(read_all(&log, 0, 1 << 20).await, acked);
        sim.set_capacity_bytes(None);
        expire_no_space_check(&log);
        let batches = vec![batch(2, 100, 3000)];
        let info = log.append(batches.clone(), 0).await.unwrap();
        assert_eq!(info.base_offset, 10);
        acked.push((10, patched(&batches[0], 10, 0)));
        assert_eq!(log.health().status, LogStatus::Online);
        assert_eq!(read_all(&log, 0, 1 << 20).await, acked);
        drop(log);
        sim.crash(CrashMode::Torn);
        let log = open(&disk, &config).await;
        assert_eq!(read_all(&log, 0, 1 << 20).await, acked);
    });
}

#[test]
fn enospc_in_the_middle_of_a_roll_rolls_back_the_new_segment() {
    block_on(async {
        let (sim, disk) = sim(21);
        let config = small_config();
        let log = open(&disk, &config).await;
        let mut acked = Vec::new();
        // Fill until just before a roll, then fail the append that rolls.
        while log.shared.state.borrow().active().size_bytes + 700 < config.segment_size_bytes {
            let batches = vec![batch(1, 300, 0)];
            let info = log.append(batches.clone(), 0).await.unwrap();
            acked.push((info.base_offset, patched(&batches[0], info.base_offset, 0)));
        }
        sim.set_capacity_bytes(Some(0));
        let first = log.append(vec![batch(1, 300, 0)], 0);
        let rolling = log.append(vec![batch(1, 900, 0)], 0);
        assert!(matches!(first.await, Err(LogError::NoSpace)));
        assert!(matches!(rolling.await, Err(LogError::NoSpace)));
        assert_eq!(log.log_end_offset(), acked.len() as i64);
        log.shared.state.borrow().check_invariants();
        sim.set_capacity_bytes(None);
        expire_no_space_check(&log);
        for _ in 0..5 {
            let batches = vec![batch(1, 900, 0)];
            let info = log.append(batches.clone(), 0).await.unwrap();
            acked.push((info.base_offset, patched(&batches[0], info.base_offset, 0)));
        }
        assert_eq!(read_all(&log, 0, 1 << 20).await, acked);
        log.close().await.unwrap();
        let log = open(&disk, &config).await;
        assert_eq!(read_all(&log, 0, 1 << 20).await, acked);
    });
}

#[test]
fn fsync_error_takes_the_log_offline_and_reopen_recovers_the_durable_prefix() {
    block_on(async {
        let (sim, disk) = sim(22);
        let config = small_config();
        let log = open(&disk, &config).await;
        let mut acked = Vec::new();
        for index in 0..8 {
            let batches = vec![batch(1, 100, index)];
            let info = log.append(batches.clone(), 0).await.unwrap();
            acked.push((info.base_offset, patched(&batches[0], info.base_offset, 0)));
        }
        sim.fail_next_syncs(&dir(), 1);
        let waiter = log.wait_for_high_watermark_above(100);
        assert!(matches!(log.append(vec![batch(1, 100, 9)], 0).await, Err(LogError::Offline)));
        waiter.await;
        assert!(matches!(log.health().status, LogStatus::Offline { .. }));
        assert!(matches!(log.read(0, 100, true).await, Err(LogError::Offline)));
        assert!(matches!(log.append(vec![batch(1, 1, 0)], 0).await, Err(LogError::Offline)));
        assert_eq!(log.high_watermark(), 8);
        drop(log);
        sim.crash(CrashMode::DropUnsynced);
        let log = open(&disk, &config).await;
        assert_eq!(log.health().status, LogStatus::Online);
        assert_eq!(read_all(&log, 0, 1 << 20).await, acked);
        assert_eq!(log.append(vec![batch(1, 1, 0)], 0).await.unwrap().base_offset, 8);
    });
}

/// Found by the simulator (`single-broker-crash`, a process crash after an fsync error): the
/// bytes of a failed fdatasync stayed in the page cache, a restart of the process (not of the
/// machine) recovered them as log, appends were acknowledged behind them, and a later power
/// failure lost the never-durable region: the acknowledged appends behind it became unreadable.
#[test]
fn a_failed_fsync_leaves_nothing_for_a_process_restart_to_resurrect() {
    block_on(async {
        let (sim, disk) = sim(23);
        let config = small_config();
        let log = open(&disk, &config).await;
        let mut acked = Vec::new();
        for index in 0..4 {
            let batches = vec![batch(1, 100, index)];
            let info = log.append(batches.clone(), 0).await.unwrap();
            acked.push((info.base_offset, patched(&batches[0], info.base_offset, 0)));
        }
        sim.fail_next_syncs(&dir(), 1);
        assert!(matches!(log.append(vec![batch(1, 100, 9)], 0).await, Err(LogError::Offline)));
        drop(log);
        // The process restarts on the same page cache: no crash of the disk.
        let log = open(&disk, &config).await;
        assert_eq!(read_all(&log, 0, 1 << 20).await, acked, "the failed append stays gone");
        for index in 10..14 {
            let batches = vec![batch(1, 100, index)];
            let info = log.append(batches.clone(), 0).await.unwrap();
            acked.push((info.base_offset, patched(&batches[0], info.base_offset, 0)));
        }
        drop(log);
        sim.crash(CrashMode::DropUnsynced);
        let log = open(&disk, &config).await;
        assert_eq!(log.health().status, LogStatus::Online);
        assert_eq!(read_all(&log, 0, 1 << 20).await, acked);
    });
}

/// Writes 12 single-record batches into one segment and closes the log; returns their bytes.
async fn one_segment(disk: &Disk) -> Vec<(i64, Vec<u8>)> {
    let config = LogConfig { segment_size_bytes: 1 << 20, ..small_config() };
    let log = open(disk, &config).await;
    let mut batches = Vec::new();
    for index in 0..12 {
        let bytes = vec![batch(2, 80, 1000 + index)];
        let info = log.append(bytes.clone(), 0).await.unwrap();
        batches.push((info.base_offset, patched(&bytes[0], info.base_offset, 0)));
    }
    log.close().await.unwrap();
    batches
}

fn position_of(batches: &[(i64, Vec<u8>)], index: usize) -> u64 {
    batches[..index].iter().map(|(_, bytes)| bytes.len() as u64).sum()
}

#[test]
fn bit_flip_in_the_middle_is_detected_loss_at_recovery_and_nothing_is_truncated() {
    block_on(async {
        let (sim, disk) = sim(23);
        let batches = one_segment(&disk).await;
        let file_len = sim.file_len(&segment_log_path(0)).unwrap();
        sim.corrupt_durable(&segment_log_path(0), position_of(&batches, 5) + 40, 3);
        disk.remove_file(&dir().join("recovery-point")).unwrap();
        let log = open(&disk, &LogConfig { segment_size_bytes: 1 << 20, ..small_config() }).await;
        let corrupt_offset = batches[5].0;
        assert_eq!(log.health().corrupt_from, Some(corrupt_offset));
        assert_eq!(sim.file_len(&segment_log_path(0)), Some(file_len));
        let mut served = Vec::new();
        let mut offset = 0;
        while offset < corrupt_offset {
            let read = log.read(offset, 1 << 20, true).await.unwrap();
            let got = split(&read.bytes);
            offset = got.last().map_or(corrupt_offset, |(base, _)| base + 2);
            served.extend(got);
        }
        assert_eq!(served, batches[..5].to_vec());
        for (offset, _) in &batches[5..] {
            let result = log.read(*offset, 1 << 20, true).await;
            assert!(
                matches!(result, Err(LogError::Corrupt { offset }) if offset == corrupt_offset)
            );
        }
        assert!(matches!(log.append(vec![batch(1, 1, 0)], 0).await, Err(LogError::Corrupt { .. })));
    });
}

#[test]
fn bit_flip_in_checkpointed_data_is_detected_on_read() {
    block_on(async {
        let (sim, disk) = sim(24);
        let batches = one_segment(&disk).await;
        sim.corrupt_durable(&segment_log_path(0), position_of(&batches, 7) + 70, 0);
        let log = open(&disk, &LogConfig { segment_size_bytes: 1 << 20, ..small_config() }).await;
        assert_eq!(log.health().corrupt_from, None, "the checkpoint vouches for the data");
        let read = log.read(0, 1 << 20, true).await.unwrap();
        assert_eq!(split(&read.bytes), batches[..7].to_vec());
        assert_eq!(log.health().corrupt_from, Some(batches[7].0));
        assert!(matches!(log.read(batches[9].0, 100, true).await, Err(LogError::Corrupt { .. })));
    });
}

#[test]
fn torn_final_batch_is_truncated() {
    block_on(async {
        let (sim, disk) = sim(25);
        let batches = one_segment(&disk).await;
        let file = disk.open(&segment_log_path(0), OpenOptions::default()).unwrap();
        let cut = position_of(&batches, 11) + 30;
        file.set_len(cut).await.unwrap();
        file.sync_data().await.unwrap();
        disk.remove_file(&dir().join("recovery-point")).unwrap();
        let log = open(&disk, &small_config()).await;
        assert_eq!(log.health().corrupt_from, None);
        assert_eq!(sim.file_len(&segment_log_path(0)), Some(position_of(&batches, 11)));
        assert_eq!(read_all(&log, 0, 1 << 20).await, batches[..11].to_vec());
        assert_eq!(log.append(vec![batch(1, 1, 0)], 0).await.unwrap().base_offset, batches[11].0);
    });
}

#[test]
fn durable_data_shorter_than_the_checkpoint_is_detected_loss() {
    block_on(async {
        let (_sim, disk) = sim(26);
        let batches = one_segment(&disk).await;
        let file = disk.open(&segment_log_path(0), OpenOptions::default()).unwrap();
        file.set_len(position_of(&batches, 9)).await.unwrap();
        file.sync_data().await.unwrap();
        let log = open(&disk, &small_config()).await;
        assert_eq!(log.health().corrupt_from, Some(batches[9].0));
        assert_eq!(read_all(&log, 0, 1 << 20).await.len(), 9);
    });
}

#[test]
fn a_latent_read_error_fails_that_read_but_keeps_the_log_online() {
    block_on(async {
        let (sim, disk) = sim(27);
        let batches = one_segment(&disk).await;
        let log = open(&disk, &LogConfig { segment_size_bytes: 1 << 20, ..small_config() }).await;
        let start = position_of(&batches, 6);
        sim.fail_reads(&segment_log_path(0), start..start + 1);
        let failed = log.read(batches[6].0, 1 << 20, true).await;
        assert!(matches!(failed, Err(LogError::Io(_))), "{failed:?}");
        assert_eq!(log.health().status, LogStatus::Online);
        assert_eq!(log.health().corrupt_from, None);
        let prefix = log.read(0, position_of(&batches, 3) as usize, true).await.unwrap();
        assert_eq!(split(&prefix.bytes), batches[..3].to_vec());
    });
}

#[test]
fn the_append_queue_is_bounded() {
    block_on(async {
        let (_sim, disk) = sim(28);
        let log = open(&disk, &LogConfig::default()).await;
        let limit = crate::log::state::PENDING_APPENDS_MAX;
        let queued: Vec<_> = (0..limit).map(|_| log.append(vec![batch(1, 0, 0)], 0)).collect();
        let refused = log.append(vec![batch(1, 0, 0)], 0).await;
        assert!(matches!(refused, Err(LogError::Overloaded { .. })), "{refused:?}");
        for append in queued {
            append.await.unwrap();
        }
        assert_eq!(log.high_watermark(), limit as i64);
        log.delete().await.unwrap();
        assert!(!disk.exists(&dir()));
    });
}
