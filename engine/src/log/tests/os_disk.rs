//! The key behaviours once more on the real disk (`Disk::Os`: io_uring files in a temporary
//! directory under /tmp), so nothing depends on the simulator's semantics alone.

use super::*;
use crate::io::block_on;
use crate::log::LogError;

/// A fresh directory under /tmp, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let unique = crate::io::random_u64();
        TempDir(PathBuf::from(format!("/tmp/tern-log-test-{name}-{unique:016x}")))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = Disk::Os.remove_dir_all(&self.0);
    }
}

async fn open_os(dir: &TempDir, config: &LogConfig) -> Log {
    match Log::open(Disk::Os, dir.0.join("topic-0"), config.clone()).await {
        Ok(log) => log,
        Err(error) => panic!("open on the OS disk failed: {error}"),
    }
}

#[test]
fn os_disk_append_roll_read_reopen_and_retention() {
    block_on(async {
        let temp = TempDir::new("basic");
        let config = LogConfig { retention_size_bytes: 4000, ..small_config() };
        let log = open_os(&temp, &config).await;
        let appends: Vec<_> =
            (0..40).map(|index| log.append(vec![batch(2, 60, 1000 + index)], 0)).collect();
        let mut expected = Vec::new();
        for (index, append) in appends.into_iter().enumerate() {
            let info = append.await.expect("append");
            let bytes = batch(2, 60, 1000 + index as i64);
            expected.push((info.base_offset, patched(&bytes, info.base_offset, 0)));
        }
        assert!(log.data_sync_count() < 40, "group commit on io_uring");
        assert_eq!(read_all(&log, 0, 500).await, expected);
        assert_eq!(log.offset_for_timestamp(1010).await.expect("lookup"), Some((19, 1010)));
        log.close().await.expect("close");
        let log = open_os(&temp, &config).await;
        assert_eq!(read_all(&log, 0, 1 << 20).await, expected);
        let deleted = log.apply_retention(0).await.expect("retention");
        assert!(deleted > 0);
        let start = log.log_start_offset();
        let kept: Vec<_> =
            expected.iter().filter(|(offset, _)| *offset >= start).cloned().collect();
        assert_eq!(read_all(&log, start, 1 << 20).await, kept);
        assert!(matches!(log.read(0, 10, true).await, Err(LogError::OffsetOutOfRange { .. })));
        log.delete().await.expect("delete");
        assert!(!Disk::Os.exists(&temp.0.join("topic-0")));
    });
}

#[test]
fn os_disk_recovery_truncates_a_torn_tail_and_rebuilds_indexes() {
    block_on(async {
        let temp = TempDir::new("recovery");
        let config = small_config();
        let log = open_os(&temp, &config).await;
        let mut expected = Vec::new();
        for index in 0..30 {
            let bytes = vec![batch(1, 90, index)];
            let info = log.append(bytes.clone(), 4).await.expect("append");
            expected.push((info.base_offset, patched(&bytes[0], info.base_offset, 4)));
        }
        // No close: as after a process kill. Then tear the active segment's tail by hand.
        let dir = temp.0.join("topic-0");
        let bases = segment_bases(&Disk::Os, &dir);
        let active = *bases.last().expect("segments");
        drop(log);
        let path = super::super::layout::segment_path(&dir, active, "log");
        let file = Disk::Os.open(&path, crate::io::OpenOptions::default()).expect("open");
        let len = file.len().expect("len");
        let (result, _) = file.write_all_at(vec![0xEE; 40], len).await;
        result.expect("write garbage");
        for base in &bases {
            let index = super::super::layout::segment_path(&dir, *base, "index");
            let _ = Disk::Os.remove_file(&index);
        }
        let log = open_os(&temp, &config).await;
        assert_eq!(log.health().corrupt_from, None);
        assert_eq!(
            Disk::Os.open(&path, crate::io::OpenOptions::default()).unwrap().len().unwrap(),
            len
        );
        assert_eq!(read_all(&log, 0, 1 << 20).await, expected);
        assert_eq!(log.append(vec![batch(1, 1, 0)], 4).await.expect("append").base_offset, 30);
    });
}
