//! The cluster's properties, over what clients observed besides their sends and polls:
//! - `high-watermark-regressed`: per partition, an answer (Fetch's high watermark,
//!   ListOffsets' latest offset) reports a lower high watermark than an answer that
//!   completed before it was invoked, whichever consumers and brokers they came from. A
//!   committed offset never becomes uncommitted, and a leader serves only once it has
//!   committed an entry of its own epoch, above everything committed before it.
//! - `two-leaders-in-epoch`: Metadata answers name two different leaders for one partition
//!   and one leader epoch (Raft's election safety: at most one leader per epoch).
//!
//! Real-time order is by sequence numbers the harness hands out in the order the
//! simulation performed events (one thread, so a total order): an answer precedes another
//! if it completed before the other was invoked. Concurrent answers are not compared.

use std::collections::BTreeMap;

use super::Report;
use crate::history::{Offset, Partition, Process};

/// A partition's leader as one Metadata answer named it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderObservation {
    pub time_ns: u64,
    /// The broker that answered.
    pub broker: i32,
    pub partition: Partition,
    pub epoch: i32,
    pub leader: i32,
}

/// Which answer reported a high watermark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatermarkSource {
    Fetch,
    ListOffsets,
}

/// A high watermark one answer without error reported for a partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatermarkObservation {
    pub process: Process,
    /// The broker that answered.
    pub broker: i32,
    pub partition: Partition,
    pub high_watermark: Offset,
    pub source: WatermarkSource,
    /// Sequence numbers of the request's invocation and of its answer's arrival.
    pub invoked: u64,
    pub completed: u64,
    pub time_ns: u64,
}

pub(super) fn check_watermarks(watermarks: &[WatermarkObservation], report: &mut Report) {
    let mut by_partition: BTreeMap<Partition, Vec<&WatermarkObservation>> = BTreeMap::new();
    for observation in watermarks {
        assert!(observation.invoked < observation.completed, "{observation:?}");
        by_partition.entry(observation.partition).or_default().push(observation);
    }
    for (partition, mut by_invocation) in by_partition {
        let mut by_completion = by_invocation.clone();
        by_completion.sort_by_key(|observation| observation.completed);
        by_invocation.sort_by_key(|observation| observation.invoked);
        // The highest watermark among answers completed before the current invocation.
        let mut highest: Option<&WatermarkObservation> = None;
        let mut next = 0;
        for observation in by_invocation {
            while by_completion.get(next).is_some_and(|c| c.completed < observation.invoked) {
                let candidate = by_completion[next];
                if highest.is_none_or(|high| candidate.high_watermark > high.high_watermark) {
                    highest = Some(candidate);
                }
                next += 1;
            }
            let Some(high) = highest else { continue };
            if high.high_watermark > observation.high_watermark {
                report.flag("high-watermark-regressed", regression(partition, high, observation));
            }
        }
    }
}

fn regression(
    partition: Partition,
    high: &WatermarkObservation,
    low: &WatermarkObservation,
) -> String {
    format!(
        "p{partition}: {:?} from broker {} to process {} said {} at {:.3}s; then {:?} from \
         broker {} to process {} said {} at {:.3}s",
        high.source,
        high.broker,
        high.process,
        high.high_watermark,
        high.time_ns as f64 / 1e9,
        low.source,
        low.broker,
        low.process,
        low.high_watermark,
        low.time_ns as f64 / 1e9
    )
}

pub(super) fn check_leaders(leaders: &[LeaderObservation], report: &mut Report) {
    let mut named: BTreeMap<(Partition, i32), &LeaderObservation> = BTreeMap::new();
    let mut flagged: Vec<(Partition, i32, i32)> = Vec::new();
    for observation in leaders {
        let key = (observation.partition, observation.epoch);
        let first = *named.entry(key).or_insert(observation);
        let pair = (observation.partition, observation.epoch, observation.leader);
        if first.leader == observation.leader || flagged.contains(&pair) {
            continue;
        }
        flagged.push(pair);
        report.flag(
            "two-leaders-in-epoch",
            format!(
                "p{} epoch {}: broker {} named leader {} at {:.3}s, broker {} named {} at {:.3}s",
                observation.partition,
                observation.epoch,
                first.broker,
                first.leader,
                first.time_ns as f64 / 1e9,
                observation.broker,
                observation.leader,
                observation.time_ns as f64 / 1e9
            ),
        );
    }
}
