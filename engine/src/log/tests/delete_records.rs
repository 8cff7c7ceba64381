//! DeleteRecords (`Log::delete_records_before`): the start moves inside a segment, whole
//! segments below it go, it survives a crash, and a changed config applies to the open log.

use super::*;
use crate::io::{block_on, CrashMode};
use crate::log::LogError;

async fn appended(log: &Log, count: i64) {
    for index in 0..count {
        log.append(vec![batch(1, 60, 1000 + index)], 0).await.unwrap();
    }
}

#[test]
fn the_start_moves_whole_segments_below_go_and_it_survives_a_crash() {
    block_on(async {
        let (sim, disk) = sim(21);
        let log = open(&disk, &small_config()).await;
        appended(&log, 100).await;
        let bases_before = segment_bases(&disk, &dir());
        assert!(bases_before.len() > 3, "{bases_before:?}");
        let refused = log.delete_records_before(101).await;
        assert!(matches!(refused, Err(LogError::OffsetOutOfRange { .. })), "{refused:?}");
        assert_eq!(log.delete_records_before(45).await.unwrap(), 45);
        assert_eq!(log.log_start_offset(), 45);
        assert!(matches!(log.read(44, 100, true).await, Err(LogError::OffsetOutOfRange { .. })));
        assert_eq!(split(&log.read(45, 100, true).await.unwrap().bytes)[0].0, 45);
        let bases = segment_bases(&disk, &dir());
        assert!(bases.len() < bases_before.len(), "{bases:?}");
        assert!(bases[0] <= 45 && bases.get(1).is_none_or(|next| *next > 45), "{bases:?}");
        // Below the start: nothing changes; the answer is the start.
        assert_eq!(log.delete_records_before(10).await.unwrap(), 45);
        // The process dies without closing; only what was synced is there.
        crate::log::flush::go_offline(&log.shared, "simulated crash".to_string());
        drop(log);
        sim.crash(CrashMode::DropUnsynced);
        let log = open(&disk, &small_config()).await;
        assert_eq!(log.log_start_offset(), 45);
        assert!(matches!(log.read(44, 100, true).await, Err(LogError::OffsetOutOfRange { .. })));
        assert_eq!(log.high_watermark(), 100);
        // Up to the high watermark: every sealed segment goes, the log stays appendable.
        assert_eq!(log.delete_records_before(100).await.unwrap(), 100);
        assert_eq!(segment_bases(&disk, &dir()).len(), 1);
        assert_eq!(log.append(vec![batch(1, 1, 0)], 0).await.unwrap().base_offset, 100);
        log.close().await.unwrap();
        let log = open(&disk, &small_config()).await;
        assert_eq!((log.log_start_offset(), log.high_watermark()), (100, 101));
    });
}

#[test]
fn a_damaged_start_offset_file_falls_back_to_the_first_segment() {
    block_on(async {
        let (_sim, disk) = sim(22);
        let log = open(&disk, &small_config()).await;
        appended(&log, 40).await;
        log.delete_records_before(5).await.unwrap();
        log.close().await.unwrap();
        let path = dir().join(crate::log::start_offset::START_OFFSET_FILE_NAME);
        let options = crate::io::OpenOptions { create: false, truncate: false };
        let file = disk.open(&path, options).unwrap();
        let (written, _) = file.write_all_at(vec![0xff; 4], 8).await;
        written.unwrap();
        file.sync_data().await.unwrap();
        let log = open(&disk, &small_config()).await;
        assert_eq!(log.log_start_offset(), segment_bases(&disk, &dir())[0]);
    });
}

#[test]
fn a_changed_config_applies_to_the_open_log() {
    block_on(async {
        let (_sim, disk) = sim(23);
        let large = LogConfig { segment_size_bytes: 1 << 20, ..small_config() };
        let log = open(&disk, &large).await;
        appended(&log, 40).await;
        assert_eq!(segment_bases(&disk, &dir()).len(), 1);
        log.set_config(small_config());
        appended(&log, 40).await;
        assert!(segment_bases(&disk, &dir()).len() > 1);
        let strict = LogConfig { max_message_bytes: 100, ..small_config() };
        log.set_config(strict);
        let too_big = log.append(vec![batch(1, 200, 0)], 0).await;
        assert!(matches!(too_big, Err(LogError::BatchTooLarge { .. })), "{too_big:?}");
    });
}
