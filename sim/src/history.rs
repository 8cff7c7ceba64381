//! The history of every client operation in a run, in the order the simulation performed them:
//! Jepsen's shape (an `invoke` then exactly one of `ok`, `fail`, `info` per operation), with
//! Kafka's micro-operations (a send of values to one partition, a poll of several partitions).
//!
//! Pure data: the checker reads it, the trace hash covers it, nothing here touches madsim.

use std::fmt::Write as _;

/// A client process (a producer, consumer, prober or the final drain). One operation at a time.
pub type Process = u32;
pub type Partition = i32;
pub type Offset = i64;
/// A unique value: no two sends in a run ever carry the same one.
pub type Value = u64;
/// A consumer group, by index (`group-N` on the wire).
pub type Group = u32;

/// Jepsen's completion types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpType {
    Invoke,
    /// Definitely happened (for a send: acknowledged with these offsets).
    Ok,
    /// Definitely did not happen (for a send: the broker refused it with an error that
    /// guarantees nothing was appended).
    Fail,
    /// Unknown outcome (timeout, connection lost, an ambiguous error).
    Info,
}

/// One partition's part of a poll: records in the order the fetch returned them, or the error
/// the broker answered when asked at `fetch_offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionRead {
    pub partition: Partition,
    pub fetch_offset: Offset,
    pub records: Vec<(Offset, Value)>,
    /// Kafka error code for this partition (0: none).
    pub error_code: i16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Values sent in one batch to one partition; on `Ok`, `offsets[i]` is where `values[i]`
    /// landed (base offset + i, as the produce response tells); `error_code` is the broker's
    /// answer (0 on `Ok`, and on `Info` when no answer came).
    Send { partition: Partition, values: Vec<Value>, offsets: Vec<Offset>, error_code: i16 },
    /// A fetch of the consumer's assigned partitions from its positions.
    Poll { reads: Vec<PartitionRead> },
    /// The consumer moved its position explicitly (start, or a deliberate reset): the
    /// monotonicity properties start afresh for that partition.
    Seek { partition: Partition, offset: Offset },
    /// An OffsetCommit of `group` (outside the group protocol: generation -1), one entry per
    /// partition: (partition, committed offset, error code). A commit is `Ok` when the request
    /// was answered (each partition's error code says whether it was stored), `Info` when no
    /// answer came.
    Commit { group: Group, offsets: Vec<(Partition, Offset, i16)> },
    /// An OffsetFetch of `group`: (partition, committed offset or -1 for none, error code).
    FetchOffsets { group: Group, offsets: Vec<(Partition, Offset, i16)> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub process: Process,
    pub op_type: OpType,
    /// Simulated nanoseconds since the run started.
    pub time_ns: u64,
    pub body: Body,
}

/// Every operation of a run, in order. Bounded by the workload's own bounds (records per
/// producer, polls per consumer), asserted by the recorder.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub ops: Vec<Op>,
}

/// Upper bound on operations in one run: far above any scenario's workload, so hitting it is
/// a runaway loop in a client, not a large test.
pub const HISTORY_OPS_MAX: usize = 4_000_000;

impl History {
    pub fn push(&mut self, op: Op) {
        assert!(self.ops.len() < HISTORY_OPS_MAX, "history exceeds {HISTORY_OPS_MAX} operations");
        self.ops.push(op);
    }
}

impl Op {
    /// A compact, stable text form: what the trace hash covers and what reports quote.
    pub fn describe(&self) -> String {
        let mut text = format!("p{} {:?} ", self.process, self.op_type);
        match &self.body {
            Body::Send { partition, values, offsets, error_code } => {
                let _ = write!(
                    text,
                    "send p={partition} values={values:?} offsets={offsets:?} err={error_code}"
                );
            }
            Body::Poll { reads } => {
                text.push_str("poll");
                for read in reads {
                    let _ = write!(
                        text,
                        " [p={} at={} err={} {:?}]",
                        read.partition, read.fetch_offset, read.error_code, read.records
                    );
                }
            }
            Body::Seek { partition, offset } => {
                let _ = write!(text, "seek p={partition} to={offset}");
            }
            Body::Commit { group, offsets } => {
                let _ = write!(text, "commit group={group} {offsets:?}");
            }
            Body::FetchOffsets { group, offsets } => {
                let _ = write!(text, "fetch-offsets group={group} {offsets:?}");
            }
        }
        text
    }
}
