//! The checker on hand-written histories: a clean history passes, and each anomaly is found
//! by name (and only the anomalies the history really holds).

use super::*;
use crate::history::{Group, Op, PartitionRead};

/// Builds histories tersely: `send(process, partition, values, first_offset)` etc.
#[derive(Default)]
struct Builder {
    history: History,
}

impl Builder {
    fn op(&mut self, process: Process, op_type: OpType, body: Body) -> &mut Builder {
        let time_ns = self.history.ops.len() as u64;
        self.history.push(Op { process, op_type, time_ns, body });
        self
    }

    fn send_with(
        &mut self,
        process: Process,
        partition: Partition,
        values: &[Value],
        offsets: &[Offset],
    ) -> &mut Builder {
        let invoke =
            Body::Send { partition, values: values.to_vec(), offsets: Vec::new(), error_code: 0 };
        self.op(process, OpType::Invoke, invoke);
        let body = Body::Send {
            partition,
            values: values.to_vec(),
            offsets: offsets.to_vec(),
            error_code: 0,
        };
        self.op(process, OpType::Ok, body)
    }

    /// An acknowledged send of `values` at contiguous offsets from `first`.
    fn send(
        &mut self,
        process: Process,
        partition: Partition,
        values: &[Value],
        first: Offset,
    ) -> &mut Builder {
        let offsets: Vec<Offset> = (0..values.len() as i64).map(|index| first + index).collect();
        self.send_with(process, partition, values, &offsets)
    }

    fn failed_send(
        &mut self,
        process: Process,
        partition: Partition,
        value: Value,
        op_type: OpType,
    ) -> &mut Builder {
        let body =
            Body::Send { partition, values: vec![value], offsets: Vec::new(), error_code: 0 };
        self.op(process, OpType::Invoke, body.clone());
        self.op(process, op_type, body)
    }

    fn poll(
        &mut self,
        process: Process,
        partition: Partition,
        records: &[(Offset, Value)],
    ) -> &mut Builder {
        let fetch_offset = records.first().map_or(0, |record| record.0);
        let read =
            PartitionRead { partition, fetch_offset, records: records.to_vec(), error_code: 0 };
        self.op(process, OpType::Invoke, Body::Poll { reads: Vec::new() });
        self.op(process, OpType::Ok, Body::Poll { reads: vec![read] })
    }

    fn poll_error(
        &mut self,
        process: Process,
        partition: Partition,
        fetch_offset: Offset,
        error_code: i16,
    ) -> &mut Builder {
        let read = PartitionRead { partition, fetch_offset, records: Vec::new(), error_code };
        self.op(process, OpType::Invoke, Body::Poll { reads: Vec::new() });
        self.op(process, OpType::Ok, Body::Poll { reads: vec![read] })
    }

    fn seek(&mut self, process: Process, partition: Partition, offset: Offset) -> &mut Builder {
        self.op(process, OpType::Ok, Body::Seek { partition, offset })
    }

    /// A commit of (partition, offset) pairs for `group`, answered with error 0, or with
    /// `op_type` Info (no answer).
    fn commit(
        &mut self,
        process: Process,
        group: Group,
        offsets: &[(Partition, Offset)],
        op_type: OpType,
    ) -> &mut Builder {
        let offsets: Vec<(Partition, Offset, i16)> =
            offsets.iter().map(|(partition, offset)| (*partition, *offset, 0)).collect();
        self.op(process, OpType::Invoke, Body::Commit { group, offsets: offsets.clone() });
        self.op(process, op_type, Body::Commit { group, offsets })
    }

    /// An answered OffsetFetch: (partition, offset or -1, error code).
    fn fetch_offsets(
        &mut self,
        process: Process,
        group: Group,
        offsets: &[(Partition, Offset, i16)],
    ) -> &mut Builder {
        self.op(process, OpType::Invoke, Body::FetchOffsets { group, offsets: Vec::new() });
        self.op(process, OpType::Ok, Body::FetchOffsets { group, offsets: offsets.to_vec() })
    }

    fn check(&self) -> Report {
        check(&self.history, &Observations::default())
    }
}

/// Asserts that exactly `expected` properties fired.
fn assert_fired(report: &Report, expected: &[&str]) {
    let fired: Vec<&str> = report.counts.keys().copied().collect();
    let mut expected: Vec<&str> = expected.to_vec();
    expected.sort();
    let mut fired_sorted = fired.clone();
    fired_sorted.sort();
    assert_eq!(fired_sorted, expected, "examples: {:?}", report.examples);
}

/// Two producers, two consumers, a drain: everything acknowledged is read once, in order.
fn clean() -> Builder {
    let mut builder = Builder::default();
    builder
        .send(1, 0, &[10, 11], 0)
        .send(2, 0, &[20], 2)
        .send(1, 1, &[12], 0)
        .seek(100, 0, 0)
        .poll(100, 0, &[(0, 10), (1, 11)])
        .poll(100, 0, &[(2, 20)])
        .seek(101, 1, 0)
        .poll(101, 1, &[(0, 12)]);
    builder
}

#[test]
fn clean_history_passes() {
    let report = clean().check();
    assert!(report.is_valid(), "{:?}", report.examples);
    assert_eq!(report.acknowledged, 4);
    assert_eq!(report.summary(), "none");
}

#[test]
fn info_and_failed_sends_that_are_never_read_are_fine() {
    let mut builder = clean();
    builder.failed_send(1, 0, 30, OpType::Fail).failed_send(2, 0, 31, OpType::Info);
    assert!(builder.check().is_valid());
}

#[test]
fn an_info_send_may_be_read() {
    let mut builder = clean();
    builder.failed_send(1, 0, 30, OpType::Info).poll(100, 0, &[(3, 30)]);
    assert!(builder.check().is_valid());
}

#[test]
fn lost_write_is_an_acknowledged_value_below_a_read_offset() {
    let mut builder = Builder::default();
    builder.send(1, 0, &[10], 0).send(1, 0, &[11], 1).poll(100, 0, &[(1, 11)]);
    let report = builder.check();
    assert_fired(&report, &["lost-write"]);
    assert_eq!(report.counts["lost-write"], 1);
}

#[test]
fn unseen_is_an_acknowledged_value_never_read_with_nothing_read_beyond() {
    let mut builder = Builder::default();
    builder.send(1, 0, &[10], 0).send(1, 0, &[11], 1).poll(100, 0, &[(0, 10)]);
    assert_fired(&builder.check(), &["unseen"]);
}

#[test]
fn duplicate_is_one_value_at_two_offsets() {
    let mut builder = Builder::default();
    builder.send(1, 0, &[10], 0).poll(100, 0, &[(0, 10), (1, 10)]);
    assert_fired(&builder.check(), &["duplicate"]);
}

#[test]
fn inconsistent_offsets_is_one_offset_with_two_values() {
    let mut builder = Builder::default();
    builder.send(1, 0, &[10], 0).send(2, 0, &[20], 0).poll(100, 0, &[(0, 10)]).poll(
        101,
        0,
        &[(0, 20)],
    );
    // Producer 2's value landed where producer 1's did: both were acknowledged there.
    assert_fired(&builder.check(), &["inconsistent-offsets"]);
}

#[test]
fn g1a_is_a_read_of_a_definitely_failed_send() {
    let mut builder = clean();
    builder.failed_send(1, 0, 30, OpType::Fail).poll(100, 0, &[(3, 30)]);
    assert_fired(&builder.check(), &["G1a"]);
}

#[test]
fn nonmonotonic_poll_is_a_consumer_going_back_without_a_seek() {
    let mut builder = clean();
    builder.poll(100, 0, &[(1, 11), (2, 20)]);
    assert_fired(&builder.check(), &["nonmonotonic-poll"]);
}

#[test]
fn a_seek_allows_going_back() {
    let mut builder = clean();
    builder.seek(100, 0, 1).poll(100, 0, &[(1, 11), (2, 20)]);
    assert!(builder.check().is_valid());
}

#[test]
fn poll_skip_is_a_jump_over_an_observed_offset() {
    let mut builder = clean();
    builder.seek(102, 0, 0).poll(102, 0, &[(0, 10)]).poll(102, 0, &[(2, 20)]);
    assert_fired(&builder.check(), &["poll-skip"]);
}

#[test]
fn a_jump_over_offsets_nobody_observed_is_not_a_skip() {
    let mut builder = Builder::default();
    builder.send(1, 0, &[10], 0).send(1, 0, &[11], 5).poll(100, 0, &[(0, 10)]).poll(
        100,
        0,
        &[(5, 11)],
    );
    assert!(builder.check().is_valid());
}

#[test]
fn int_nonmonotonic_poll_is_going_back_inside_one_poll() {
    let mut builder = clean();
    builder.seek(102, 0, 0).poll(102, 0, &[(0, 10), (2, 20), (1, 11)]);
    let report = builder.check();
    assert_fired(&report, &["int-nonmonotonic-poll", "int-poll-skip"]);
}

#[test]
fn int_poll_skip_is_a_jump_inside_one_poll() {
    let mut builder = clean();
    builder.seek(102, 0, 0).poll(102, 0, &[(0, 10), (2, 20)]);
    assert_fired(&builder.check(), &["int-poll-skip"]);
}

#[test]
fn nonmonotonic_send_is_a_later_send_at_an_earlier_offset() {
    let mut builder = Builder::default();
    builder.send(1, 0, &[10], 1).send(1, 0, &[11], 0).poll(100, 0, &[(0, 11), (1, 10)]);
    assert_fired(&builder.check(), &["nonmonotonic-send"]);
}

#[test]
fn int_nonmonotonic_send_is_a_batch_whose_offsets_go_back() {
    let mut builder = Builder::default();
    builder.send_with(1, 0, &[10, 11], &[1, 0]).poll(100, 0, &[(0, 11), (1, 10)]);
    assert_fired(&builder.check(), &["int-nonmonotonic-send"]);
}

#[test]
fn int_send_skip_is_a_batch_jumping_over_an_observed_offset() {
    let mut builder = Builder::default();
    builder.send(2, 0, &[20], 1).send_with(1, 0, &[10, 11], &[0, 2]);
    builder.poll(100, 0, &[(0, 10), (1, 20), (2, 11)]);
    assert_fired(&builder.check(), &["int-send-skip"]);
}

#[test]
fn harness_anomalies_are_reported_by_name() {
    let observations = Observations {
        harness_anomalies: vec![("liveness", "p0 accepted no write".into())],
        ..Observations::default()
    };
    let report = check(&clean().history, &observations);
    assert_fired(&report, &["liveness"]);
}

fn corruption(partition: Partition, first_offset: Offset, last_offset: Offset) -> Observations {
    Observations {
        corruptions: vec![CorruptionFault { partition, first_offset, last_offset }],
        ..Observations::default()
    }
}

/// Offsets 0..4 acknowledged; batch 1..=2 corrupted at rest; the drain reads 0 and is refused
/// at 1.
fn corrupted_history() -> Builder {
    let mut builder = Builder::default();
    builder
        .send(1, 0, &[10], 0)
        .send(1, 0, &[11, 12], 1)
        .send(1, 0, &[13], 3)
        .seek(100, 0, 0)
        .poll(100, 0, &[(0, 10)]);
    builder
}

#[test]
fn reported_corruption_is_detected_loss_not_an_anomaly() {
    let mut builder = corrupted_history();
    builder.poll_error(100, 0, 1, KAFKA_STORAGE_ERROR);
    let report = check(&builder.history, &corruption(0, 1, 2));
    assert!(report.is_valid(), "{:?}", report.examples);
    assert_eq!((report.detected_loss, report.detected_loss_blocked), (2, 1));
}

#[test]
fn corruption_the_broker_never_reported_is_a_loss() {
    let builder = corrupted_history();
    let report = check(&builder.history, &corruption(0, 1, 2));
    assert_fired(&report, &["unseen"]);
    assert_eq!(report.counts["unseen"], 3);
}

#[test]
fn a_storage_error_without_corruption_in_the_fault_log_is_a_loss() {
    let mut builder = corrupted_history();
    builder.poll_error(100, 0, 1, KAFKA_STORAGE_ERROR);
    assert_fired(&builder.check(), &["unseen"]);
}

#[test]
fn skipping_a_corrupt_batch_silently_is_a_lost_write() {
    let mut builder = corrupted_history();
    builder.poll(100, 0, &[(3, 13)]);
    let report = check(&builder.history, &corruption(0, 1, 2));
    assert_fired(&report, &["lost-write", "poll-skip"]);
}

#[test]
fn fetched_offsets_at_or_above_every_acknowledged_commit_pass() {
    let mut builder = clean();
    builder
        .commit(200, 0, &[(0, 5), (1, 7)], OpType::Ok)
        .fetch_offsets(200, 0, &[(0, 5, 0), (1, 7, 0)])
        // An unanswered commit may or may not have happened: 9 or 5 are both fine for p0.
        .commit(200, 0, &[(0, 9)], OpType::Info)
        .fetch_offsets(200, 0, &[(0, 9, 0), (1, 7, 0)])
        .commit(200, 0, &[(0, 12)], OpType::Ok)
        .fetch_offsets(200, 0, &[(0, 12, 0), (1, 7, 0)])
        // Another group's offsets are its own; an error answers nothing.
        .fetch_offsets(201, 1, &[(0, -1, 0)])
        .fetch_offsets(200, 0, &[(0, -1, 15)]);
    assert_fired(&builder.check(), &[]);
}

#[test]
fn committed_offset_lost_is_a_fetch_without_an_acknowledged_commit() {
    let mut builder = clean();
    builder.commit(200, 0, &[(2, 30)], OpType::Ok).fetch_offsets(200, 0, &[(2, -1, 0)]);
    assert_fired(&builder.check(), &["committed-offset-lost"]);
}

#[test]
fn committed_offset_regressed_is_a_fetch_below_an_acknowledged_commit() {
    let mut builder = clean();
    builder
        .commit(200, 0, &[(2, 30)], OpType::Ok)
        .commit(200, 0, &[(2, 40)], OpType::Ok)
        .fetch_offsets(200, 0, &[(2, 30, 0)]);
    assert_fired(&builder.check(), &["committed-offset-regressed"]);
}

#[test]
fn committed_offset_regressed_is_also_a_fetch_below_an_earlier_fetch() {
    let mut builder = clean();
    builder
        .commit(200, 0, &[(2, 30)], OpType::Ok)
        .commit(200, 0, &[(2, 40)], OpType::Info)
        .fetch_offsets(200, 0, &[(2, 40, 0)])
        .fetch_offsets(200, 0, &[(2, 30, 0)]);
    assert_fired(&builder.check(), &["committed-offset-regressed"]);
}

#[test]
fn a_fetch_concurrent_with_a_commit_may_miss_it() {
    let mut builder = clean();
    let body = |offsets: Vec<(Partition, Offset, i16)>| Body::Commit { group: 0, offsets };
    builder
        .op(201, OpType::Invoke, Body::FetchOffsets { group: 0, offsets: Vec::new() })
        .op(200, OpType::Invoke, body(vec![(2, 30, 0)]))
        .op(200, OpType::Ok, body(vec![(2, 30, 0)]))
        .op(201, OpType::Ok, Body::FetchOffsets { group: 0, offsets: vec![(2, -1, 0)] });
    assert_fired(&builder.check(), &[]);
}

/// A high watermark answer: `(invoked, completed)` sequence numbers, from `broker`.
fn watermark(
    partition: Partition,
    high_watermark: Offset,
    (invoked, completed): (u64, u64),
    broker: i32,
) -> WatermarkObservation {
    WatermarkObservation {
        process: 100 + broker as Process,
        broker,
        partition,
        high_watermark,
        source: WatermarkSource::Fetch,
        invoked,
        completed,
        time_ns: completed,
    }
}

fn check_observed(observations: &Observations) -> Report {
    check(&clean().history, observations)
}

#[test]
fn high_watermarks_that_only_grow_pass() {
    let watermarks = vec![
        watermark(0, 3, (1, 2), 1),
        watermark(0, 3, (3, 4), 2),
        watermark(0, 5, (5, 8), 1),
        watermark(1, 1, (6, 7), 3),
        watermark(0, 7, (9, 10), 2),
    ];
    let observations = Observations { watermarks, ..Observations::default() };
    assert_fired(&check_observed(&observations), &[]);
}

#[test]
fn high_watermark_regressed_is_a_lower_one_after_a_higher_one_completed() {
    // A deposed leader that still answers, after its successor's answer was seen.
    let watermarks = vec![
        watermark(0, 3, (1, 2), 1),
        watermark(0, 9, (3, 4), 2),
        watermark(0, 5, (5, 6), 1),
        watermark(1, 2, (7, 8), 1),
    ];
    let observations = Observations { watermarks, ..Observations::default() };
    let report = check_observed(&observations);
    assert_fired(&report, &["high-watermark-regressed"]);
    assert_eq!(report.counts["high-watermark-regressed"], 1);
}

#[test]
fn concurrent_answers_may_report_high_watermarks_in_any_order() {
    // The second answer was invoked before the first completed: no order between them.
    let watermarks = vec![watermark(0, 9, (1, 4), 2), watermark(0, 5, (2, 6), 1)];
    let observations = Observations { watermarks, ..Observations::default() };
    assert_fired(&check_observed(&observations), &[]);
    // Other partitions are other histories.
    let watermarks = vec![watermark(0, 9, (1, 2), 2), watermark(1, 5, (3, 4), 1)];
    let observations = Observations { watermarks, ..Observations::default() };
    assert_fired(&check_observed(&observations), &[]);
}

fn leader(partition: Partition, epoch: i32, leader: i32, broker: i32) -> LeaderObservation {
    LeaderObservation { time_ns: 0, broker, partition, epoch, leader }
}

#[test]
fn one_leader_per_epoch_passes_whoever_names_it() {
    let leaders = vec![
        leader(0, 1, 2, 1),
        leader(0, 1, 2, 3),
        leader(0, 2, 3, 3),
        leader(1, 1, 1, 2),
        leader(0, 1, 2, 2),
    ];
    let observations = Observations { leaders, ..Observations::default() };
    assert_fired(&check_observed(&observations), &[]);
}

#[test]
fn two_leaders_in_epoch_is_two_leader_ids_for_one_partition_and_epoch() {
    let leaders =
        vec![leader(0, 4, 1, 1), leader(0, 4, 3, 3), leader(0, 4, 3, 2), leader(1, 4, 2, 1)];
    let observations = Observations { leaders, ..Observations::default() };
    let report = check_observed(&observations);
    assert_fired(&report, &["two-leaders-in-epoch"]);
    assert_eq!(report.counts["two-leaders-in-epoch"], 1, "one pair, reported once");
}

#[test]
fn watermarks_of_a_partition_with_reported_detected_loss_are_exempt() {
    let mut builder = clean();
    builder.poll_error(101, 0, 1, KAFKA_STORAGE_ERROR);
    let watermarks = vec![watermark(0, 9, (1, 2), 1), watermark(0, 5, (3, 4), 1)];
    let corruptions = vec![CorruptionFault { partition: 0, first_offset: 1, last_offset: 1 }];
    let observations = Observations { watermarks, corruptions, ..Observations::default() };
    let report = check(&builder.history, &observations);
    assert!(!report.counts.contains_key("high-watermark-regressed"), "{:?}", report.examples);
    // Unreported corruption exempts nothing.
    let observations = Observations { corruptions: observations.corruptions, ..check_pair() };
    assert_fired(&check_observed(&observations), &["high-watermark-regressed"]);
}

fn check_pair() -> Observations {
    let watermarks = vec![watermark(0, 9, (1, 2), 1), watermark(0, 5, (3, 4), 1)];
    Observations { watermarks, ..Observations::default() }
}
