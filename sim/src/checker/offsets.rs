//! Committed offsets: once an OffsetCommit of o for (group, partition) is acknowledged, every
//! OffsetFetch invoked afterwards answers an offset ≥ o; and once a fetch answered o, every
//! fetch invoked after it answers ≥ o. The second rule holds because the workload's
//! committers commit increasing offsets per (group, partition) and the coordinator makes a
//! commit visible only once it is durable: a value once seen can only be overtaken. Both
//! hold across restarts of the coordinator; a fetch answering no offset at all is
//! `committed-offset-lost`, a lower one `committed-offset-regressed`.
//!
//! "Invoked afterwards" is by history order: a fetch concurrent with a commit is judged
//! against what had completed when the fetch was invoked.

use std::collections::BTreeMap;

use super::Report;
use crate::history::{Body, Group, History, Offset, OpType, Partition, Process};

type Floors = BTreeMap<(Group, Partition), Offset>;

/// What a fetch must not go below: acknowledged commits and earlier fetches.
#[derive(Default, Clone)]
struct Bounds {
    committed: Floors,
    fetched: Floors,
}

pub(super) fn check(history: &History, report: &mut Report) {
    let mut completed = Bounds::default();
    // Per process, the bounds as they were when its pending fetch was invoked.
    let mut pending: BTreeMap<Process, Bounds> = BTreeMap::new();
    for op in &history.ops {
        match (&op.body, op.op_type) {
            (Body::FetchOffsets { .. }, OpType::Invoke) => {
                pending.insert(op.process, completed.clone());
            }
            (Body::FetchOffsets { group, offsets }, OpType::Ok) => {
                let bounds = pending.remove(&op.process).unwrap_or_default();
                for &(partition, offset, error_code) in offsets {
                    if error_code != 0 {
                        continue;
                    }
                    report.offsets_fetched += 1;
                    check_fetched(report, &bounds, (*group, partition), offset);
                    if offset >= 0 {
                        raise(&mut completed.fetched, (*group, partition), offset);
                    }
                }
            }
            (Body::FetchOffsets { .. }, _) => {
                pending.remove(&op.process);
            }
            (Body::Commit { group, offsets }, OpType::Ok) => {
                for &(partition, offset, error_code) in offsets {
                    if error_code == 0 {
                        report.offsets_committed += 1;
                        raise(&mut completed.committed, (*group, partition), offset);
                    }
                }
            }
            _ => {}
        }
    }
}

fn raise(floors: &mut Floors, key: (Group, Partition), offset: Offset) {
    let floor = floors.entry(key).or_insert(offset);
    *floor = (*floor).max(offset);
}

fn check_fetched(report: &mut Report, bounds: &Bounds, key: (Group, Partition), offset: Offset) {
    let (group, partition) = key;
    let sources = [("a commit of", &bounds.committed), ("an earlier fetch of", &bounds.fetched)];
    for (source, floors) in sources {
        let Some(&floor) = floors.get(&key) else { continue };
        if offset >= floor {
            continue;
        }
        let example = format!(
            "group {group} p{partition}: fetched {offset} after {source} {floor} had completed"
        );
        if offset < 0 {
            report.flag("committed-offset-lost", example);
        } else {
            report.flag("committed-offset-regressed", example);
        }
        return;
    }
}
