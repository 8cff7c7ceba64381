//! Crash test: random appends (some awaited, some not), crashes that drop or tear unsynced
//! writes, reopen. Every acknowledged batch survives byte-identical, offsets stay contiguous,
//! everything served is CRC-valid and is exactly what was appended at that offset.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use proptest::prelude::*;

use super::*;
use crate::io::{block_on, CrashMode, DiskLatency};
use crate::log::{AppendInfo, LogError};

type Pending = Pin<Box<dyn Future<Output = Result<AppendInfo, LogError>>>>;

#[derive(Debug, Clone)]
enum Op {
    AppendAndWait(Vec<(usize, usize)>),
    AppendNoWait(Vec<(usize, usize)>),
    Yield,
    Roll,
}

fn op() -> impl Strategy<Value = Op> {
    let shapes = || prop::collection::vec((1usize..4, 0usize..700), 1..3);
    prop_oneof![
        3 => shapes().prop_map(Op::AppendAndWait),
        4 => shapes().prop_map(Op::AppendNoWait),
        3 => Just(Op::Yield),
        1 => Just(Op::Roll),
    ]
}

/// What the test knows: every batch ever admitted (by offset) and which offsets must survive.
#[derive(Default)]
struct Truth {
    appended: BTreeMap<i64, Vec<u8>>,
    /// Batches that must be present after any crash (acknowledged, or recovered before).
    durable: BTreeMap<i64, Vec<u8>>,
    clock_ms: i64,
    /// Each process lifetime leads in a new epoch (as a restarted replica would).
    leader_epoch: i32,
}

fn admit(
    log: &Log,
    truth: &mut Truth,
    shapes: &[(usize, usize)],
) -> (Pending, Vec<(i64, Vec<u8>)>) {
    let mut offset = log.log_end_offset();
    let mut admitted = Vec::new();
    let batches: Vec<BytesMut> = shapes
        .iter()
        .map(|&(records, value_bytes)| {
            truth.clock_ms += 1;
            let bytes = batch(records, value_bytes, truth.clock_ms);
            admitted.push((offset, patched(&bytes, offset, truth.leader_epoch)));
            offset += records as i64;
            bytes
        })
        .collect();
    let pending: Pending = Box::pin(log.append(batches, truth.leader_epoch));
    for (offset, bytes) in &admitted {
        truth.appended.insert(*offset, bytes.clone());
    }
    (pending, admitted)
}

async fn run_epoch(log: &Log, truth: &mut Truth, ops: &[Op]) -> Vec<Pending> {
    let mut unawaited = Vec::new();
    for op in ops {
        match op {
            Op::AppendAndWait(shapes) => {
                let (pending, admitted) = admit(log, truth, shapes);
                match pending.await {
                    Ok(_) => truth.durable.extend(admitted),
                    Err(LogError::Corrupt { .. }) => {}
                    Err(error) => panic!("append failed: {error}"),
                }
            }
            Op::AppendNoWait(shapes) => unawaited.push(admit(log, truth, shapes).0),
            Op::Yield => crate::io::yield_now().await,
            Op::Roll => log.maybe_roll(truth.clock_ms + 10_000).await.expect("roll"),
        }
    }
    unawaited
}

/// After reopening: what is served is a contiguous run of appended batches from offset 0,
/// containing every durable batch.
async fn check_recovered(log: &Log, truth: &mut Truth) {
    let corrupt_from = log.health().corrupt_from;
    let visible_end = corrupt_from.unwrap_or(i64::MAX).min(log.high_watermark());
    if let Some(corrupt_from) = corrupt_from {
        // Only a torn *unacknowledged* region may look like loss.
        let last_durable = truth.durable.keys().next_back().copied().unwrap_or(-1);
        assert!(corrupt_from > last_durable, "acknowledged data at {corrupt_from} lost");
    }
    let mut served = Vec::new();
    let mut offset = 0;
    while offset < visible_end {
        let read = log.read(offset, 4096, true).await.expect("read below the visible end");
        let got = split(&read.bytes);
        assert!(!got.is_empty());
        for (base, bytes) in got {
            assert_eq!(base, offset, "offsets are contiguous");
            assert_eq!(truth.appended.get(&base), Some(&bytes), "served what was appended");
            offset = check_framing_and_crc(&bytes).expect("valid").next_offset();
            served.push((base, bytes));
        }
    }
    for (offset, bytes) in &truth.durable {
        assert!(served.contains(&(*offset, bytes.clone())), "durable batch {offset} missing");
    }
    check_leader_epochs(log, &served, visible_end);
    // What recovery kept is durable now: it must survive the next crash too.
    truth.durable = served.into_iter().collect();
    truth.appended.retain(|offset, _| *offset < visible_end);
}

/// The recovered leader-epoch cache is exactly the epoch boundaries of the batches served.
fn check_leader_epochs(log: &Log, served: &[(i64, Vec<u8>)], visible_end: i64) {
    let mut expected = crate::log::leader_epochs::LeaderEpochs::new();
    for (offset, bytes) in served {
        let epoch = i32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        expected.assign(epoch, *offset);
    }
    let mut cached = log.leader_epochs();
    cached.truncate_from(visible_end);
    assert_eq!(cached, expected, "the leader-epoch cache describes the log");
}

fn run(epochs: Vec<(Vec<Op>, bool)>, seed: u64) {
    run_as_task(async move {
        let (sim, disk) = sim(seed);
        let config = small_config();
        let mut truth = Truth { clock_ms: 1_000_000, ..Truth::default() };
        for (ops, torn) in epochs {
            let log = open(&disk, &config).await;
            check_recovered(&log, &mut truth).await;
            if log.health().corrupt_from.is_some() {
                return;
            }
            truth.leader_epoch += 1;
            let unawaited = run_epoch(&log, &mut truth, &ops).await;
            // The process dies: its log must not touch the disk again.
            crate::log::flush::go_offline(&log.shared, "simulated crash".to_string());
            drop(unawaited);
            drop(log);
            sim.crash(if torn { CrashMode::Torn } else { CrashMode::DropUnsynced });
        }
        let log = open(&disk, &config).await;
        check_recovered(&log, &mut truth).await;
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn acknowledged_batches_survive_crashes(
        epochs in prop::collection::vec((prop::collection::vec(op(), 1..30), any::<bool>()), 1..4),
        seed in any::<u64>(),
    ) {
        run(epochs, seed);
    }
}

/// Runs `body` as a spawned task: the executor polls the main future only once per turn, so a
/// spawned task is what lets the flusher stop between its write and its fdatasync.
pub fn run_as_task<F: Future + 'static>(body: F) -> F::Output {
    block_on(async move { crate::io::spawn_local(body).await })
}

/// Waits (bounded) until the flusher has written the group and is inside its fdatasync. Why
/// not one yield: madsim's scheduler may run the flusher twice in a row, and the same
/// madsim seed every iteration made it sync before the crash in every one of them; a sync that
/// takes simulated (or real) time holds the window open under either executor.
async fn wait_until_written_not_synced(sim: &SimDisk) {
    for _ in 0..1_000 {
        if sim.has_unsynced(&segment_log_path(0)) {
            return;
        }
        crate::io::sleep(std::time::Duration::from_micros(200)).await;
    }
    panic!("the flusher never wrote the group");
}

#[test]
fn a_torn_multi_batch_group_is_truncated_not_reported_as_loss() {
    let mut truncated = 0;
    for seed in 0..64u64 {
        truncated += run_as_task(async move {
            let (sim, disk) = sim(seed);
            sim.set_latency(DiskLatency { write_us_max: 0, sync_us_max: 10_000 });
            let config = small_config();
            let log = open(&disk, &config).await;
            let first = vec![batch(1, 100, 0)];
            log.append(first.clone(), 0).await.unwrap();
            let unacked: Vec<_> = (0..3).map(|_| log.append(vec![batch(2, 500, 0)], 0)).collect();
            wait_until_written_not_synced(&sim).await;
            crate::log::flush::go_offline(&log.shared, "simulated crash".to_string());
            drop(unacked);
            drop(log);
            sim.crash(CrashMode::Torn);
            let log = open(&disk, &config).await;
            assert_eq!(log.health().corrupt_from, None, "seed {seed}");
            let served = read_all(&log, 0, 1 << 20).await;
            assert_eq!(served[0], (0, patched(&first[0], 0, 0)));
            usize::from(served.len() < 4)
        });
    }
    assert!(truncated > 32, "only {truncated} of 64 crashes tore the group");
}

/// Found by the simulator (`single-broker-crash` seed 208, with disk latency): a process
/// crash left a written, never-synced append in the page cache; the restarted broker
/// recovered it as log, served it and counted it as synced, and a later power failure took it
/// back (and tore it in front of newer durable batches: detected loss, partition blocked).
#[test]
fn a_tail_recovered_from_the_page_cache_is_made_durable_before_it_is_served() {
    run_as_task(async {
        let (sim, disk) = sim(7);
        let config = small_config();
        sim.set_latency(DiskLatency { write_us_max: 0, sync_us_max: 10_000 });
        let log = open(&disk, &config).await;
        log.append(vec![batch(1, 100, 0)], 0).await.unwrap();
        let unacked = log.append(vec![batch(2, 300, 0)], 0);
        wait_until_written_not_synced(&sim).await;
        // The process dies; the machine does not: no crash of the disk.
        crate::log::flush::go_offline(&log.shared, "simulated process crash".to_string());
        drop(unacked);
        drop(log);
        sim.set_latency(DiskLatency::default());
        let log = open(&disk, &config).await;
        let served = read_all(&log, 0, 1 << 20).await;
        assert_eq!(served.len(), 2, "the page cache still held the second append");
        drop(log);
        sim.crash(CrashMode::DropUnsynced);
        let log = open(&disk, &config).await;
        let offsets = |batches: &[(i64, Vec<u8>)]| batches.iter().map(|b| b.0).collect::<Vec<_>>();
        let after = read_all(&log, 0, 1 << 20).await;
        assert_eq!(offsets(&after), offsets(&served), "served, so durable");
        assert!(after == served);
    });
}

/// Found by the simulator (`single-broker-crash` seed 103791, as `inconsistent-offsets`):
/// the reset of the write intent after a synced group was not synced, a power failure kept
/// the stale range over acknowledged batches, bit rot then hit the first of them, and with
/// nothing intact beyond the range recovery truncated both as a torn group: acknowledged
/// data lost and its offsets reused. The reset is now synced.
#[test]
fn a_stale_write_intent_never_turns_rot_in_acknowledged_batches_into_a_torn_tail() {
    block_on(async {
        let (sim, disk) = sim(9);
        let config = small_config();
        let log = open(&disk, &config).await;
        log.append(vec![batch(1, 100, 0)], 0).await.unwrap();
        let group = log.append(vec![batch(2, 100, 1)], 0);
        let also = log.append(vec![batch(2, 100, 2)], 0);
        let (first, second) = (group.await.unwrap(), also.await.unwrap());
        assert_eq!((first.base_offset, second.base_offset), (1, 3), "one group of two");
        crate::log::flush::go_offline(&log.shared, "simulated power failure".to_string());
        drop(log);
        sim.crash(CrashMode::DropUnsynced);
        let position = batch(1, 100, 0).len() as u64;
        sim.corrupt_durable(&segment_log_path(0), position + 70, 3);
        let log = open(&disk, &config).await;
        assert_eq!(log.health().corrupt_from, Some(1), "detected loss, not a torn tail");
        assert_eq!(log.high_watermark(), 5, "nothing truncated");
    });
}

/// Found by the simulator (`single-broker-idempotent` seed 21556, as `inconsistent-offsets`):
/// the data of a group of four batches was synced, the fdatasync of the write intent's reset
/// failed, and the group was acknowledged anyway. Bit rot then hit its first batch and a
/// power failure kept the stale range over it: recovery truncated the acknowledged group as
/// torn and reused its offsets. Now such a group is not acknowledged (its outcome is unknown
/// until recovery) and the log goes offline.
#[test]
fn a_group_whose_intent_reset_fails_is_not_acknowledged() {
    run_as_task(async {
        let (sim, disk) = sim(12);
        let config = small_config();
        sim.set_latency(DiskLatency { write_us_max: 0, sync_us_max: 10_000 });
        let log = open(&disk, &config).await;
        log.append(vec![batch(1, 100, 0)], 0).await.unwrap();
        let group: Vec<_> = (0..3).map(|_| log.append(vec![batch(2, 100, 1)], 0)).collect();
        // The group's intent is durable and its data written: fail the intent file's next
        // sync, the reset's.
        wait_until_written_not_synced(&sim).await;
        sim.fail_next_syncs(&dir().join(crate::log::intent::INTENT_FILE_NAME), 1);
        for append in group {
            let result = append.await;
            assert!(matches!(result, Err(LogError::Unconfirmed)), "{result:?}");
        }
        assert_eq!(log.high_watermark(), 1, "nothing of the group is visible");
        assert!(matches!(log.health().status, crate::log::LogStatus::Offline { .. }));
        sim.set_latency(DiskLatency::default());
    });
}

/// A log holding one acknowledged batch, then a process crash that leaves a written, never
/// synced batch in the page cache, then a restarted process whose recovery fdatasync fails
/// (EIO): it must refuse to open. Returns the acknowledged batch and the never-synced one.
async fn tail_whose_recovery_sync_failed(
    sim: &SimDisk,
    disk: &Disk,
    config: &LogConfig,
) -> ((i64, Vec<u8>), (i64, Vec<u8>)) {
    let log = open(disk, config).await;
    let first = vec![batch(1, 100, 0)];
    log.append(first.clone(), 0).await.unwrap();
    crate::log::flush::go_offline(&log.shared, "simulated process crash".to_string());
    drop(log);
    // The dead process's last group: written to the page cache, never synced.
    let first = (0, patched(&first[0], 0, 0));
    let tail = (1, patched(&batch(2, 300, 0), 1, 0));
    let file = disk.open(&segment_log_path(0), crate::io::OpenOptions::default()).unwrap();
    let (written, _) = file.write_all_at(tail.1.clone(), first.1.len() as u64).await;
    written.unwrap();
    assert!(sim.has_unsynced(&segment_log_path(0)));
    sim.fail_next_syncs(&dir(), 1);
    let reopened = Log::open(disk.clone(), dir(), config.clone()).await;
    assert!(reopened.is_err(), "recovery's fdatasync failed: the log must stay offline");
    // fsyncgate: the tail's pages are clean now, and still not on the media.
    assert!(!sim.has_unsynced(&segment_log_path(0)));
    (first, tail)
}

/// Found by the simulator (`single-broker-crash` seed 102017, before fix 7 changed its run):
/// after recovery's fdatasync of a dead process's tail failed, the next *process* restart
/// read the tail again from the page cache (clean, not durable), served it, synced nothing,
/// and acknowledged appends behind it; a power failure then left a hole below the checkpoint.
#[test]
fn a_tail_whose_recovery_sync_failed_is_durable_before_the_next_process_serves_it() {
    block_on(async {
        let (sim, disk) = sim(11);
        let config = small_config();
        let (first, tail) = tail_whose_recovery_sync_failed(&sim, &disk, &config).await;
        // Another process restart, on the same page cache.
        let log = open(&disk, &config).await;
        let mut served = read_all(&log, 0, 1 << 20).await;
        assert_eq!(served, vec![first, tail], "the page cache still held the tail");
        let behind = vec![batch(1, 100, 1)];
        let info = log.append(behind.clone(), 0).await.unwrap();
        served.push((info.base_offset, patched(&behind[0], info.base_offset, 0)));
        drop(log);
        sim.crash(CrashMode::DropUnsynced);
        let log = open(&disk, &config).await;
        assert_eq!(log.health().corrupt_from, None, "a hole below what was served");
        assert!(read_all(&log, 0, 1 << 20).await == served, "served or acknowledged: durable");
    });
}

/// The same story ending in a power failure instead: the tail was never durable nor served,
/// so it is gone, and nothing reports loss.
#[test]
fn a_tail_whose_recovery_sync_failed_vanishes_cleanly_in_a_power_failure() {
    block_on(async {
        let (sim, disk) = sim(12);
        let config = small_config();
        let (first, _) = tail_whose_recovery_sync_failed(&sim, &disk, &config).await;
        sim.crash(CrashMode::Torn);
        let log = open(&disk, &config).await;
        assert_eq!(log.health().corrupt_from, None);
        assert_eq!(read_all(&log, 0, 1 << 20).await, vec![first]);
        assert_eq!(log.append(vec![batch(1, 1, 0)], 0).await.unwrap().base_offset, 1);
    });
}
