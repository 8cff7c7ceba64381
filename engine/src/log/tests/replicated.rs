//! A replica's log (`CommitMode::Quorum`): byte-for-byte copies of the leader's batches,
//! commit by the replica, and `truncate_suffix` — which must leave a log that recovery turns
//! into a prefix of the old one, holding everything below the cut, whatever step a crash
//! interrupts.

use std::time::Duration;

use proptest::prelude::*;

use super::crash::run_as_task;
use super::*;
use crate::io::{block_on, CrashMode, DiskLatency};
use crate::log::idempotence::producer_batch_of;
use crate::log::leader_epochs::LeaderEpochs;
use crate::log::producers::ProducerStates;
use crate::log::region::ReadData;
use crate::log::{CommitMode, LogError};
use crate::record_batch::header_info;

fn replica_config() -> LogConfig {
    LogConfig { commit: CommitMode::Quorum, ..small_config() }
}

/// The leader's batches: `(records, epoch, producer)` each, placed back to back from 0.
/// Producer `Some(id)` makes an idempotent batch continuing that producer's sequence.
fn leader_batches(shapes: &[(usize, i32, Option<i64>)]) -> Vec<(i64, Vec<u8>)> {
    let mut offset = 0;
    let mut sequences = std::collections::BTreeMap::<i64, i32>::new();
    let mut batches = Vec::new();
    for (index, &(records, epoch, producer)) in shapes.iter().enumerate() {
        let stamp = match producer {
            Some(producer_id) => {
                let sequence = sequences.entry(producer_id).or_insert(0);
                let stamp =
                    ProducerStamp { producer_id, producer_epoch: 0, base_sequence: *sequence };
                *sequence += records as i32;
                stamp
            }
            None => ProducerStamp::NONE,
        };
        let values: Vec<Record> = (0..records)
            .map(|record| Record {
                value: Some(vec![(index % 251) as u8; 40 + record]),
                timestamp_delta: record as i64,
                ..Record::default()
            })
            .collect();
        let bytes = BytesMut::from(&encode_batch(&values, 1000 + index as i64, stamp)[..]);
        batches.push((offset, patched(&bytes, offset, epoch)));
        offset += records as i64;
    }
    batches
}

fn to_send(batches: &[(i64, Vec<u8>)]) -> Vec<BytesMut> {
    batches.iter().map(|(_, bytes)| BytesMut::from(&bytes[..])).collect()
}

/// Everything recovery kept, read through a local-commit open (its high watermark is the end).
async fn recovered(disk: &Disk) -> (Log, Vec<(i64, Vec<u8>)>) {
    let log = open(disk, &small_config()).await;
    let served = read_all(&log, 0, 1 << 20).await;
    (log, served)
}

/// The leader-epoch cache and the producer state are exactly those of the batches served.
fn check_derived_state(log: &Log, served: &[(i64, Vec<u8>)]) {
    let mut epochs = LeaderEpochs::new();
    let mut producers = ProducerStates::default();
    for (offset, bytes) in served {
        let info = header_info(bytes).expect("served batches have headers");
        epochs.assign(info.partition_leader_epoch, *offset);
        if let Some(batch) = producer_batch_of(&info) {
            producers.apply(&batch, info.base_offset, info.last_offset());
        }
    }
    assert_eq!(log.leader_epochs(), epochs, "epochs describe the log");
    assert_eq!(log.shared.state.borrow().producers, producers, "producers describe the log");
}

#[test]
fn a_follower_copies_commits_cuts_and_takes_the_new_leaders_batches() {
    block_on(async {
        let (_sim, disk) = sim(1);
        let log = open(&disk, &replica_config()).await;
        assert_eq!(log.high_watermark(), 0);
        let old = leader_batches(&[(2, 1, None), (3, 1, Some(7)), (2, 1, Some(7)), (1, 2, None)]);
        let info = log.append_replicated(to_send(&old)).unwrap().await.unwrap();
        assert_eq!((info.base_offset, info.last_offset), (0, 7));
        assert_eq!(log.durable_end_offset(), 8);
        assert_eq!(log.high_watermark(), 0, "durable is not committed");
        log.commit(5);
        assert_eq!(log.high_watermark(), 5);
        log.truncate_suffix(5).await.unwrap();
        assert_eq!((log.log_end_offset(), log.durable_end_offset()), (5, 5));
        // The new leader (epoch 3) has other batches from offset 5 on.
        let new = leader_batches(&[(2, 1, None), (3, 1, Some(7)), (4, 3, Some(7))]);
        log.append_replicated(to_send(&new[2..])).unwrap().await.unwrap();
        log.commit(9);
        let expected: Vec<_> = old[..2].iter().chain(&new[2..]).cloned().collect();
        assert_eq!(read_all(&log, 0, 1 << 20).await, expected);
        check_derived_state(&log, &expected);
        log.close().await.unwrap();
        let (log, served) = recovered(&disk).await;
        assert_eq!(served, expected);
        check_derived_state(&log, &served);
    });
}

#[test]
fn copies_that_do_not_continue_the_log_or_fail_their_crc_are_refused() {
    block_on(async {
        let (_sim, disk) = sim(2);
        let log = open(&disk, &replica_config()).await;
        let batches = leader_batches(&[(2, 1, None), (2, 1, None)]);
        let gap = log.append_replicated(to_send(&batches[1..])).map(|_| ());
        assert!(matches!(gap, Err(LogError::NotContiguous { expected_offset: 0, base_offset: 2 })));
        let mut rotten = to_send(&batches[..1]);
        let last = rotten[0].len() - 1;
        rotten[0][last] ^= 1;
        let rot = log.append_replicated(rotten).map(|_| ());
        assert!(matches!(rot, Err(LogError::InvalidBatch { .. })), "{rot:?}");
        assert_eq!(log.log_end_offset(), 0, "nothing admitted");
        log.append_replicated(to_send(&batches)).unwrap().await.unwrap();
        let inside = log.truncate_suffix(3).await;
        assert!(matches!(inside, Err(LogError::NotBatchBoundary { offset: 3 })), "{inside:?}");
        assert_eq!(log.log_end_offset(), 4, "nothing cut");
    });
}

#[test]
#[should_panic(expected = "below the high watermark")]
fn cutting_a_committed_batch_is_a_bug_that_stops_the_process() {
    block_on(async {
        let (_sim, disk) = sim(3);
        let log = open(&disk, &replica_config()).await;
        let batches = leader_batches(&[(2, 1, None), (2, 1, None)]);
        log.append_replicated(to_send(&batches)).unwrap().await.unwrap();
        log.commit(4);
        let _ = log.truncate_suffix(2).await;
    });
}

/// Builds a replica log of `shapes`, closes it (a producer snapshot and a checkpoint at its
/// end), re-opens it and starts cutting at batch `cut_batch` on a disk with latency; after
/// `crash_after_us` the machine crashes (anywhere among the cut's steps, or before or after).
/// Whatever recovery finds must be a prefix of the old log holding every batch below the
/// cut, with epochs and producers derived from it; cutting again and taking a new leader's
/// batches then works.
fn crash_during_truncation(
    shapes: Vec<(usize, i32, Option<i64>)>,
    cut_batch: usize,
    crash_after_us: u64,
    torn: bool,
    seed: u64,
) -> usize {
    run_as_task(async move {
        let (sim, disk) = sim(seed);
        let old = leader_batches(&shapes);
        let cut_batch = cut_batch % old.len();
        let cut = old[cut_batch].0;
        let log = open(&disk, &replica_config()).await;
        log.append_replicated(to_send(&old)).unwrap().await.unwrap();
        log.commit(cut);
        log.close().await.unwrap();
        let log = open(&disk, &replica_config()).await;
        sim.set_latency(DiskLatency { write_us_max: 1_000, sync_us_max: 3_000 });
        let cutting = crate::io::spawn_local({
            let log = log.clone();
            async move { log.truncate_suffix(cut).await }
        });
        crate::io::sleep(Duration::from_micros(crash_after_us)).await;
        crate::log::flush::go_offline(&log.shared, "simulated crash".to_string());
        drop(cutting);
        drop(log);
        sim.crash(if torn { CrashMode::Torn } else { CrashMode::DropUnsynced });
        sim.set_latency(DiskLatency::default());
        let (log, served) = recovered(&disk).await;
        let recovered_batches = served.len();
        assert_eq!(log.health().corrupt_from, None, "a cut is never loss");
        assert!(served.len() >= cut_batch, "a batch below the cut was lost");
        assert_eq!(served[..], old[..served.len()], "recovered a prefix of the old log");
        check_derived_state(&log, &served);
        log.close().await.unwrap();
        // The replica, restarted, cuts again and takes the new leader's batches.
        let log = open(&disk, &replica_config()).await;
        log.truncate_suffix(cut).await.unwrap();
        let mut new_shapes = shapes[..cut_batch].to_vec();
        let new_epoch = shapes.iter().map(|shape| shape.1).max().unwrap_or(0) + 1;
        new_shapes.extend([(2, new_epoch, Some(7)), (1, new_epoch, None)]);
        let new = leader_batches(&new_shapes);
        log.append_replicated(to_send(&new[cut_batch..])).unwrap().await.unwrap();
        log.close().await.unwrap();
        let (log, served) = recovered(&disk).await;
        assert_eq!(served, new);
        check_derived_state(&log, &served);
        recovered_batches
    })
}

/// The sweep lands crashes before, inside and after the cut: the property test's crashes
/// are not all on one side of it.
#[test]
fn crashes_land_before_during_and_after_a_cut() {
    let shapes: Vec<(usize, i32, Option<i64>)> =
        (0..12).map(|index: i32| (2, index / 4, Some(i64::from(index % 2)))).collect();
    let mut outcomes = std::collections::BTreeSet::new();
    for step in 0..80u64 {
        outcomes.insert(crash_during_truncation(
            shapes.clone(),
            5,
            step * 400,
            step % 2 == 0,
            step,
        ));
    }
    assert!(outcomes.contains(&12) && outcomes.contains(&5), "outcomes {outcomes:?}");
}

fn shapes() -> impl Strategy<Value = Vec<(usize, i32, Option<i64>)>> {
    let shape = (1usize..4, 0i32..2, prop::option::of(0i64..3));
    prop::collection::vec(shape, 2..24).prop_map(|shapes| {
        // Epochs never go down along a log.
        let mut epoch = 0;
        shapes
            .into_iter()
            .map(|(records, step, producer)| {
                epoch += step;
                (records, epoch, producer)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn a_crash_at_any_step_of_a_cut_recovers_a_prefix_holding_everything_below_it(
        shapes in shapes(),
        cut_batch in any::<usize>(),
        crash_after_us in 0u64..40_000,
        torn in any::<bool>(),
        seed in any::<u64>(),
    ) {
        crash_during_truncation(shapes, cut_batch, crash_after_us, torn, seed);
    }
}

/// A leader's produce is answered at commit, not at durability; consumers read up to the high
/// watermark, followers up to the log end (fillers and all, as the leader stores them).
#[test]
fn a_leader_answers_at_commit_and_serves_followers_past_the_high_watermark() {
    run_as_task(async {
        let (_sim, disk) = sim(4);
        let log = open(&disk, &replica_config()).await;
        let produced = crate::io::spawn_local(log.append(vec![batch(3, 10, 1000)], 4));
        log.wait_for_durable_above(0).await;
        assert_eq!((log.durable_end_offset(), log.high_watermark()), (3, 0));
        let consumer = log.plan_read(0, 1 << 20, true, usize::MAX).await.unwrap();
        assert!(matches!(&consumer.data, ReadData::Bytes(bytes) if bytes.is_empty()));
        let beyond = log.plan_read(1, 1 << 20, true, usize::MAX).await;
        assert!(matches!(beyond, Err(LogError::OffsetOutOfRange { .. })));
        let follower = log.plan_read_for_follower(0, 1 << 20, usize::MAX).await.unwrap();
        let ReadData::Bytes(bytes) = follower.data else { panic!("a small read is inline") };
        assert_eq!(split(&bytes), vec![(0, patched(&batch(3, 10, 1000), 0, 4))]);
        assert_eq!((follower.next_offset, follower.high_watermark), (3, 0));
        log.commit(3);
        let info = produced.await.expect("answered at commit");
        assert_eq!((info.base_offset, info.last_offset), (0, 2));
        assert_eq!(read_all(&log, 0, 1 << 20).await.len(), 1);
    });
}

/// A cut keeps the appends below it that still await their commit, and a later commit
/// answers them: the producer state the cut rebuilt holds them already. An assertion expected
/// every acknowledged append to lie above that state, and took a broker down when a former
/// leader's kept appends were committed after the cut (found by the simulator,
/// `five-broker-partition` seed 0).
#[test]
fn appends_kept_by_a_cut_are_answered_when_committed_later() {
    run_as_task(async {
        let (_sim, disk) = sim(5);
        let log = open(&disk, &replica_config()).await;
        let kept = crate::io::spawn_local(log.append(vec![batch(3, 10, 1000)], 4));
        let cut = crate::io::spawn_local(log.append(vec![batch(2, 10, 1001)], 4));
        log.wait_for_durable_above(4).await;
        log.truncate_suffix(3).await.unwrap();
        assert!(matches!(cut.await, Err(LogError::Truncated)));
        log.commit(3);
        let info = kept.await.expect("answered at commit");
        assert_eq!((info.base_offset, info.last_offset), (0, 2));
        let served = read_all(&log, 0, 1 << 20).await;
        assert_eq!(served.len(), 1);
        check_derived_state(&log, &served);
    });
}
