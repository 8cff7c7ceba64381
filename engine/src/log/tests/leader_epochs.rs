//! The leader-epoch cache across restarts: written before the checkpoint that relies on it,
//! rebuilt from batch headers when its file is missing or damaged. (Crashes: `crash.rs`
//! checks the recovered cache against the batches served after every crash.)

use super::*;
use crate::io::block_on;
use crate::log::leader_epochs::{self, EpochStart, LeaderEpochs, LEADER_EPOCHS_FILE_NAME};

/// Appends three epochs' batches across several segments; returns the expected cache.
async fn append_in_three_epochs(log: &Log) -> LeaderEpochs {
    let mut expected = LeaderEpochs::new();
    for (epoch, batches) in [(0, 4), (2, 5), (5, 3)] {
        expected.assign(epoch, log.log_end_offset());
        for index in 0..batches {
            log.append(vec![batch(2, 300, 1000 + index)], epoch).await.unwrap();
        }
    }
    assert_eq!(expected.entries().len(), 3);
    assert_eq!(log.leader_epochs(), expected);
    expected
}

fn starts(epochs: &LeaderEpochs) -> Vec<(i32, i64)> {
    epochs
        .entries()
        .iter()
        .map(|EpochStart { epoch, start_offset }| (*epoch, *start_offset))
        .collect()
}

#[test]
fn the_cache_is_written_before_a_clean_shutdown_and_answers_kafkas_questions() {
    block_on(async {
        let (_sim, disk) = sim(1);
        let log = open(&disk, &small_config()).await;
        let expected = append_in_three_epochs(&log).await;
        log.close().await.unwrap();
        let recorded = leader_epochs::read(&disk, &dir()).await;
        assert_eq!(recorded.as_ref(), Some(&expected), "the file holds every durable epoch");
        let log = open(&disk, &small_config()).await;
        assert_eq!(log.leader_epochs(), expected);
        assert_eq!(starts(&expected), vec![(0, 0), (2, 8), (5, 18)]);
        assert_eq!(log.end_offset_for_epoch(0), Some((0, 8)));
        assert_eq!(log.end_offset_for_epoch(1), Some((0, 8)), "no batches in epoch 1");
        assert_eq!(log.end_offset_for_epoch(2), Some((2, 18)));
        assert_eq!(log.end_offset_for_epoch(5), Some((5, 24)), "the current one: its end");
        assert_eq!(log.end_offset_for_epoch(6), None);
    });
}

#[test]
fn a_missing_or_damaged_cache_file_is_rebuilt_from_the_batch_headers() {
    for damage in [false, true] {
        block_on(async {
            let (sim, disk) = sim(2);
            let log = open(&disk, &small_config()).await;
            let expected = append_in_three_epochs(&log).await;
            log.close().await.unwrap();
            assert!(segment_bases(&disk, &dir()).len() > 2, "several trusted segments");
            let path = dir().join(LEADER_EPOCHS_FILE_NAME);
            if damage {
                sim.corrupt_durable(&path, 20, 5);
            } else {
                disk.remove_file(&path).unwrap();
            }
            let log = open(&disk, &small_config()).await;
            assert_eq!(log.leader_epochs(), expected, "damaged: {damage}");
            // The next checkpoint records it again.
            log.append(vec![batch(1, 10, 5000)], 7).await.unwrap();
            log.close().await.unwrap();
            let recorded = leader_epochs::read(&disk, &dir()).await.expect("rewritten");
            assert_eq!(starts(&recorded).last(), Some(&(7, 24)));
        });
    }
}
