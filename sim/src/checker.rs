//! The checker: Jepsen's Kafka workload properties over a [`History`], by name, with the
//! definitions of DESIGN.md ("Simulation"). Any anomaly fails the run; `detected-loss` is
//! reported apart (the storage-fault policy's honest answer to bit rot on a single node).
//!
//! Definitions (p: partition, o: offset, v: value; "observed" = acknowledged by a send or
//! returned by a poll):
//! - `lost-write`: v acknowledged at (p, a), never polled, though some poll returned (p, b > a).
//! - `unseen`: v acknowledged, never polled by the end of the final drain (which reads every
//!   partition to its high watermark after healing), and not a `lost-write`.
//! - `duplicate`: one value observed at two positions.
//! - `inconsistent-offsets`: one position observed with two values.
//! - `G1a`: a value whose send definitely failed is polled.
//! - `nonmonotonic-poll`: a consumer's poll of p starts at or before the last offset its previous
//!   poll of p returned (no seek in between); `int-nonmonotonic-poll`: inside one poll.
//! - `poll-skip`: a consumer's poll of p starts after last + 1 while some position strictly
//!   between was observed; `int-poll-skip`: inside one poll.
//! - `nonmonotonic-send`: a producer's acknowledged send to p lands at or before its previous
//!   one; `int-nonmonotonic-send` / `int-send-skip`: inside one send (one batch's offsets go back,
//!   or jump over an observed position).
//! - `liveness`: after healing, a partition accepted no write within the bound (the harness
//!   probes and reports it); `corrupt-served`: a fetched batch failed CRC32C at the client.
//! - `committed-offset-lost` / `committed-offset-regressed`: an OffsetFetch of (group, p),
//!   invoked after an OffsetCommit of o for it was acknowledged, or after an earlier fetch
//!   returned o, answers no offset / an offset below o (`offsets.rs`; committers commit
//!   increasing offsets, and a commit is visible only once durable).
//! - `high-watermark-regressed`: an answer (Fetch, ListOffsets latest) reports a lower high
//!   watermark for p than an answer that completed before it was invoked (`cluster.rs`).
//! - `two-leaders-in-epoch`: Metadata answers name two leaders for p in one leader epoch.
//! - `detected-loss`: an acknowledged, never-polled value at (p, a) where the fault log shows
//!   at-rest corruption of the batch holding a, and the broker answered KAFKA_STORAGE_ERROR to a
//!   fetch of p at an offset in [corrupt batch start, a]. Values behind the corrupt batch, which
//!   the policy keeps but refuses to serve ("at and beyond the corrupt offset"), are counted as
//!   `detected-loss-blocked`. Neither is an anomaly.

use std::collections::{BTreeMap, BTreeSet};

use crate::history::{Body, History, Offset, OpType, Partition, PartitionRead, Process, Value};

/// Every anomaly the checker can report, in report order.
pub const PROPERTIES: [&str; 20] = [
    "lost-write",
    "unseen",
    "duplicate",
    "inconsistent-offsets",
    "G1a",
    "nonmonotonic-poll",
    "poll-skip",
    "nonmonotonic-send",
    "int-nonmonotonic-poll",
    "int-poll-skip",
    "int-nonmonotonic-send",
    "int-send-skip",
    "committed-offset-lost",
    "committed-offset-regressed",
    "high-watermark-regressed",
    "two-leaders-in-epoch",
    "liveness",
    "corrupt-served",
    "read-above-high-watermark",
    "drain-incomplete",
];

/// KAFKA_STORAGE_ERROR: how the broker reports a fault of its disk.
pub const KAFKA_STORAGE_ERROR: i16 = 56;

/// Examples kept per property: enough to debug, bounded however broken the run.
const EXAMPLES_PER_PROPERTY_MAX: usize = 5;

/// At-rest corruption the fault injector applied: it hit the batch holding these offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorruptionFault {
    pub partition: Partition,
    pub first_offset: Offset,
    pub last_offset: Offset,
}

/// What the harness knows besides the history.
#[derive(Clone, Debug, Default)]
pub struct Observations {
    pub corruptions: Vec<CorruptionFault>,
    /// Anomalies the harness saw directly (`liveness`, `corrupt-served`, `drain-incomplete`).
    pub harness_anomalies: Vec<(&'static str, String)>,
    /// Leaders named by Metadata answers, high watermarks reported by fetches and
    /// ListOffsets (`cluster.rs`).
    pub leaders: Vec<LeaderObservation>,
    pub watermarks: Vec<WatermarkObservation>,
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub acknowledged: usize,
    /// Property → number of instances (only properties that fired).
    pub counts: BTreeMap<&'static str, usize>,
    /// Property → a few instances, described.
    pub examples: BTreeMap<&'static str, Vec<String>>,
    pub detected_loss: usize,
    pub detected_loss_blocked: usize,
    /// (group, partition) offsets acknowledged by OffsetCommit, and answered by OffsetFetch.
    pub offsets_committed: usize,
    pub offsets_fetched: usize,
}

impl Report {
    pub fn anomaly_count(&self) -> usize {
        self.counts.values().sum()
    }

    pub fn is_valid(&self) -> bool {
        self.counts.is_empty()
    }

    /// `name:count,...` in report order, or `none`.
    pub fn summary(&self) -> String {
        let fired: Vec<String> = PROPERTIES
            .iter()
            .filter_map(|name| self.counts.get(name).map(|count| format!("{name}:{count}")))
            .collect();
        if fired.is_empty() {
            "none".to_string()
        } else {
            fired.join(",")
        }
    }

    fn flag(&mut self, property: &'static str, example: String) {
        assert!(PROPERTIES.contains(&property), "unknown property {property}");
        *self.counts.entry(property).or_insert(0) += 1;
        let examples = self.examples.entry(property).or_default();
        if examples.len() < EXAMPLES_PER_PROPERTY_MAX {
            examples.push(example);
        }
    }
}

/// Everything the history says happened, indexed. Sorted vectors rather than maps of sets:
/// the reference workload observes ~200,000 (position, value) pairs per seed.
#[derive(Default)]
struct Index {
    /// Acknowledged values and where they landed, sorted by value.
    acknowledged: Vec<(Value, Partition, Offset)>,
    /// Values whose send definitely failed, sorted, deduplicated.
    definitely_failed: Vec<Value>,
    /// Values returned by polls, sorted, deduplicated.
    polled: Vec<Value>,
    /// Every (partition, offset, value) observed (acknowledged or polled), sorted, deduplicated.
    by_position: Vec<(Partition, Offset, Value)>,
    polled_offset_max: BTreeMap<Partition, Offset>,
    /// Fetch offsets at which the broker answered KAFKA_STORAGE_ERROR.
    storage_errors: BTreeMap<Partition, BTreeSet<Offset>>,
}

impl Index {
    fn build(history: &History) -> Index {
        let mut index = Index::default();
        for op in &history.ops {
            match (&op.body, op.op_type) {
                (Body::Send { partition, values, offsets, .. }, OpType::Ok) => {
                    assert_eq!(values.len(), offsets.len(), "an ok send has one offset per value");
                    for (value, offset) in values.iter().zip(offsets) {
                        index.acknowledged.push((*value, *partition, *offset));
                        index.by_position.push((*partition, *offset, *value));
                    }
                }
                (Body::Send { values, .. }, OpType::Fail) => {
                    index.definitely_failed.extend(values.iter().copied());
                }
                (Body::Poll { reads }, OpType::Ok) => index.add_poll(reads),
                _ => {}
            }
        }
        index.acknowledged.sort_unstable();
        for list in [&mut index.definitely_failed, &mut index.polled] {
            list.sort_unstable();
            list.dedup();
        }
        index.by_position.sort_unstable();
        index.by_position.dedup();
        index
    }

    fn add_poll(&mut self, reads: &[PartitionRead]) {
        for read in reads {
            if read.error_code == KAFKA_STORAGE_ERROR {
                self.storage_errors.entry(read.partition).or_default().insert(read.fetch_offset);
            }
            for (offset, value) in &read.records {
                self.polled.push(*value);
                self.by_position.push((read.partition, *offset, *value));
                let maximum = self.polled_offset_max.entry(read.partition).or_insert(*offset);
                *maximum = (*maximum).max(*offset);
            }
        }
    }

    fn was_polled(&self, value: Value) -> bool {
        self.polled.binary_search(&value).is_ok()
    }

    /// Whether some position strictly between `low` and `high` of `partition` was observed.
    fn observed_between(&self, partition: Partition, low: Offset, high: Offset) -> bool {
        if high <= low + 1 {
            return false;
        }
        let first_above =
            self.by_position.partition_point(|entry| *entry <= (partition, low, Value::MAX));
        self.by_position
            .get(first_above)
            .is_some_and(|(p, offset, _)| *p == partition && *offset < high)
    }
}

/// Checks `history` against every property; `observations` adds the fault log and what the
/// harness saw itself.
pub fn check(history: &History, observations: &Observations) -> Report {
    let index = Index::build(history);
    let mut report = Report { acknowledged: index.acknowledged.len(), ..Report::default() };
    check_positions(&index, &mut report);
    check_missing(&index, observations, &mut report);
    check_polls(history, &index, &mut report);
    check_sends(history, &index, &mut report);
    offsets::check(history, &mut report);
    // Behind reported detected loss a single node's recovered log may end anywhere above
    // the corrupt offset (it serves nothing there): its watermarks promise nothing.
    let exempt = detected_loss_partitions(&index, observations);
    let watermarks: Vec<WatermarkObservation> = observations
        .watermarks
        .iter()
        .filter(|observation| !exempt.contains(&observation.partition))
        .cloned()
        .collect();
    cluster::check_watermarks(&watermarks, &mut report);
    cluster::check_leaders(&observations.leaders, &mut report);
    for (property, example) in &observations.harness_anomalies {
        report.flag(property, example.clone());
    }
    report
}

fn check_positions(index: &Index, report: &mut Report) {
    let mut by_value: Vec<(Value, Partition, Offset)> = index
        .by_position
        .iter()
        .map(|(partition, offset, value)| (*value, *partition, *offset))
        .collect();
    by_value.sort_unstable();
    for run in by_value.chunk_by(|a, b| a.0 == b.0).filter(|run| run.len() > 1) {
        let positions: Vec<(Partition, Offset)> = run.iter().map(|(_, p, o)| (*p, *o)).collect();
        report.flag("duplicate", format!("value {} at {positions:?}", run[0].0));
    }
    let same_position =
        |a: &(Partition, Offset, Value), b: &(Partition, Offset, Value)| (a.0, a.1) == (b.0, b.1);
    for run in index.by_position.chunk_by(same_position).filter(|run| run.len() > 1) {
        let values: Vec<Value> = run.iter().map(|(_, _, value)| *value).collect();
        report.flag("inconsistent-offsets", format!("p{}@{} holds {values:?}", run[0].0, run[0].1));
    }
    for value in index.definitely_failed.iter().filter(|value| index.was_polled(**value)) {
        report.flag("G1a", format!("value {value} was polled though its send failed"));
    }
}

fn check_missing(index: &Index, observations: &Observations, report: &mut Report) {
    for (value, partition, offset) in &index.acknowledged {
        if index.was_polled(*value) {
            continue;
        }
        match detected(index, observations, *partition, *offset) {
            Some(true) => report.detected_loss += 1,
            Some(false) => report.detected_loss_blocked += 1,
            None => {
                let polled_max = index.polled_offset_max.get(partition).copied();
                let example = format!("value {value} acknowledged at p{partition}@{offset}");
                if polled_max.is_some_and(|maximum| maximum > *offset) {
                    report.flag("lost-write", example);
                } else {
                    report.flag("unseen", example);
                }
            }
        }
    }
}

/// Partitions where the fault log shows at-rest corruption and the broker reported it
/// (KAFKA_STORAGE_ERROR to a fetch at or above the corrupt batch).
fn detected_loss_partitions(index: &Index, observations: &Observations) -> BTreeSet<Partition> {
    let reported = |fault: &&CorruptionFault| {
        let errors = index.storage_errors.get(&fault.partition);
        errors.is_some_and(|errors| errors.range(fault.first_offset..).next().is_some())
    };
    observations.corruptions.iter().filter(reported).map(|fault| fault.partition).collect()
}

/// `Some(true)` if corruption destroyed (partition, offset) and the broker reported it,
/// `Some(false)` if the offset lies behind a reported corrupt batch, `None` otherwise.
fn detected(
    index: &Index,
    observations: &Observations,
    partition: Partition,
    offset: Offset,
) -> Option<bool> {
    let errors = index.storage_errors.get(&partition)?;
    let fault = observations.corruptions.iter().find(|fault| {
        fault.partition == partition
            && fault.first_offset <= offset
            && errors.range(fault.first_offset..=offset).next().is_some()
    })?;
    Some(offset <= fault.last_offset)
}

fn check_polls(history: &History, index: &Index, report: &mut Report) {
    let mut last_polled: BTreeMap<(Process, Partition), Offset> = BTreeMap::new();
    for op in &history.ops {
        match (&op.body, op.op_type) {
            (Body::Seek { partition, .. }, _) => {
                last_polled.remove(&(op.process, *partition));
            }
            (Body::Poll { reads }, OpType::Ok) => {
                for read in reads.iter().filter(|read| !read.records.is_empty()) {
                    let key = (op.process, read.partition);
                    check_one_poll(index, report, op.process, read, last_polled.get(&key));
                    let last = read.records.last().map(|(offset, _)| *offset);
                    last_polled.insert(key, last.expect("non-empty"));
                }
            }
            _ => {}
        }
    }
}

fn check_one_poll(
    index: &Index,
    report: &mut Report,
    process: Process,
    read: &PartitionRead,
    previous: Option<&Offset>,
) {
    let partition = read.partition;
    let first = read.records[0].0;
    if let Some(&last) = previous {
        let example = format!("process {process} p{partition}: polled {last}, then {first}");
        if first <= last {
            report.flag("nonmonotonic-poll", example);
        } else if index.observed_between(partition, last, first) {
            report.flag("poll-skip", example);
        }
    }
    for pair in read.records.windows(2) {
        let (earlier, later) = (pair[0].0, pair[1].0);
        let example = format!("process {process} p{partition}: {earlier} then {later} in one poll");
        if later <= earlier {
            report.flag("int-nonmonotonic-poll", example);
        } else if index.observed_between(partition, earlier, later) {
            report.flag("int-poll-skip", example);
        }
    }
}

fn check_sends(history: &History, index: &Index, report: &mut Report) {
    let mut last_sent: BTreeMap<(Process, Partition), Offset> = BTreeMap::new();
    for op in history.ops.iter().filter(|op| op.op_type == OpType::Ok) {
        let Body::Send { partition, offsets, .. } = &op.body else { continue };
        let (Some(&first), Some(&last)) = (offsets.first(), offsets.last()) else { continue };
        let key = (op.process, *partition);
        if let Some(&previous) = last_sent.get(&key) {
            if first <= previous {
                let example = format!(
                    "process {} p{partition}: sent to {previous}, then {first}",
                    op.process
                );
                report.flag("nonmonotonic-send", example);
            }
        }
        for pair in offsets.windows(2) {
            let example = format!("process {} p{partition}: one send at {pair:?}", op.process);
            if pair[1] <= pair[0] {
                report.flag("int-nonmonotonic-send", example);
            } else if index.observed_between(*partition, pair[0], pair[1]) {
                report.flag("int-send-skip", example);
            }
        }
        last_sent.insert(key, last);
    }
}

mod cluster;
mod offsets;
#[cfg(test)]
mod tests;

pub use cluster::{LeaderObservation, WatermarkObservation, WatermarkSource};
