//! Raft's safety properties, checked over the whole simulated world after every step:
//! - election safety: at most one leader per epoch, ever;
//! - leader completeness: a node that becomes leader of epoch e holds every batch committed
//!   (anywhere, before) with an epoch below e;
//! - state machine safety: every node's batches below its high watermark are the committed
//!   prefix (one committed history, never rewritten);
//! - durability: every committed batch is in the durable log of a majority (so no crash of a
//!   minority loses it, and nothing truncated it);
//! - a node's high watermark never goes back (within one incarnation);
//! - a read lease is exclusive: a leader holding one leads the newest epoch ever led (no
//!   later leader can have been elected while it serves reads; with check-quorum on);
//! - the replica's view of its log (end, durable end, epochs) is the log model's.

use std::collections::{BTreeMap, BTreeSet};

use super::network::{Batch, Node};
use crate::replication::NodeId;

pub struct Checker {
    voters: usize,
    /// The leader of each epoch, ever.
    leaders: BTreeMap<i32, NodeId>,
    /// Epochs whose leader was checked for completeness when first seen.
    complete_epochs: BTreeSet<i32>,
    /// The committed prefix as batches, from offset 0.
    committed: Vec<Batch>,
    high_watermarks: BTreeMap<NodeId, i64>,
    /// Disks lost so far: each may have held a copy of a committed batch.
    wipes: usize,
}

impl Checker {
    pub fn new(voters: usize) -> Checker {
        Checker {
            voters,
            leaders: BTreeMap::new(),
            complete_epochs: BTreeSet::new(),
            committed: Vec::new(),
            high_watermarks: BTreeMap::new(),
            wipes: 0,
        }
    }

    pub fn committed_end_offset(&self) -> i64 {
        self.committed.last().map_or(0, |batch| batch.next_offset)
    }

    /// A node's disk was replaced: durability counts one copy fewer from now on.
    pub fn wiped(&mut self) {
        self.wipes += 1;
    }

    /// A new incarnation may start from a lower (checkpointed) high watermark.
    pub fn restarted(&mut self, id: NodeId) {
        self.high_watermarks.remove(&id);
    }

    pub fn check(&mut self, nodes: &BTreeMap<NodeId, Node>, now_ms: i64) {
        for (id, node) in nodes {
            let Some(replica) = node.replica.as_ref() else { continue };
            replica.check_invariants();
            assert_eq!(replica.log_end_offset(), node.log.end_offset(), "{id:?} log end");
            assert_eq!(replica.durable_end_offset(), node.log.durable_end_offset, "{id:?}");
            assert_eq!(replica.epochs(), &node.log.epochs(), "{id:?} epochs");
            let high_watermark = replica.high_watermark();
            let last = self.high_watermarks.insert(*id, high_watermark).unwrap_or(0);
            assert!(high_watermark >= last, "{id:?} high watermark {last} -> {high_watermark}");
            if replica.is_leader() {
                self.check_leader(*id, replica.epoch(), &node.log.batches);
            }
            self.check_committed_prefix(*id, &node.log.batches, high_watermark);
        }
        self.check_durability(nodes);
        self.check_read_leases(nodes, now_ms);
    }

    fn check_read_leases(&self, nodes: &BTreeMap<NodeId, Node>, now_ms: i64) {
        let newest_epoch = self.leaders.keys().next_back().copied();
        for (id, node) in nodes {
            let Some(replica) = node.replica.as_ref() else { continue };
            if replica.config().check_quorum && replica.has_read_lease(now_ms) {
                let epoch = replica.epoch();
                assert_eq!(newest_epoch, Some(epoch), "{id:?} reads on a lease in epoch {epoch}");
            }
        }
    }

    fn check_leader(&mut self, id: NodeId, epoch: i32, batches: &[Batch]) {
        let leader = *self.leaders.entry(epoch).or_insert(id);
        assert_eq!(leader, id, "two leaders in epoch {epoch}: {leader:?} and {id:?}");
        // Completeness at the first sighting only: a stale leader may lack later commits.
        if self.complete_epochs.insert(epoch) {
            for committed in self.committed.iter().filter(|batch| batch.epoch < epoch) {
                let held = batches.iter().any(|batch| batch == committed);
                assert!(held, "leader {id:?} of epoch {epoch} lacks committed {committed:?}");
            }
        }
    }

    fn check_committed_prefix(&mut self, id: NodeId, batches: &[Batch], high_watermark: i64) {
        for (index, batch) in batches.iter().enumerate() {
            if batch.base_offset >= high_watermark {
                break;
            }
            assert!(batch.next_offset <= high_watermark, "{id:?}: hw inside {batch:?}");
            match self.committed.get(index) {
                Some(committed) => {
                    assert_eq!(committed, batch, "{id:?} disagrees on committed batch {index}")
                }
                None => {
                    assert_eq!(batch.base_offset, self.committed_end_offset());
                    self.committed.push(*batch);
                }
            }
        }
    }

    fn check_durability(&self, nodes: &BTreeMap<NodeId, Node>) {
        let quorum = (self.voters / 2 + 1).saturating_sub(self.wipes);
        for committed in &self.committed {
            let holders = nodes
                .values()
                .filter(|node| committed.next_offset <= node.log.durable_end_offset)
                .filter(|node| node.log.batch_at(committed.base_offset) == Some(committed))
                .count();
            assert!(holders >= quorum, "committed {committed:?} durable on {holders} nodes only");
        }
    }
}
