//! Per-shard timers: a min-heap of deadlines driving the ring's wait timeout.
//!
//! One heap per shard instead of one `IORING_OP_TIMEOUT` per sleep: a sleep costs no SQE, and the
//! loop passes the earliest deadline to `submit_and_wait` (EXT_ARG timespec), so there is exactly
//! one kernel entry per loop turn however many timers exist.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::task::Waker;
use std::time::Instant;

/// Upper bound on live timers per shard; more is a leak (a bug), not load.
pub(crate) const TIMERS_LIVE_MAX: usize = 1 << 20;

pub(crate) struct Timers {
    /// Deadlines, possibly of cancelled timers (skipped lazily, compacted when they dominate).
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    live: BTreeMap<u64, (Instant, Option<Waker>)>,
    id_next: u64,
}

impl Timers {
    pub(crate) fn new() -> Self {
        Timers { heap: BinaryHeap::new(), live: BTreeMap::new(), id_next: 0 }
    }

    pub(crate) fn register(&mut self, deadline: Instant, waker: Waker) -> u64 {
        if self.live.len() >= TIMERS_LIVE_MAX {
            crate::io::bug("too many live timers on one shard (leaked sleeps?)");
        }
        let id = self.id_next;
        self.id_next += 1;
        self.heap.push(Reverse((deadline, id)));
        self.live.insert(id, (deadline, Some(waker)));
        id
    }

    pub(crate) fn update_waker(&mut self, id: u64, waker: &Waker) {
        if let Some((_, slot)) = self.live.get_mut(&id) {
            if !slot.as_ref().is_some_and(|current| current.will_wake(waker)) {
                *slot = Some(waker.clone());
            }
        }
    }

    pub(crate) fn cancel(&mut self, id: u64) {
        self.live.remove(&id);
        // Cancelled entries stay in the heap until popped; rebuild once they dominate so the
        // heap stays O(live timers) even with many short-lived timeouts.
        if self.heap.len() > 2 * self.live.len() + 64 {
            self.heap =
                self.live.iter().map(|(&id, &(deadline, _))| Reverse((deadline, id))).collect();
        }
    }

    /// Wakes every timer whose deadline is at or before `now`; returns how many.
    pub(crate) fn fire(&mut self, now: Instant, wakers: &mut Vec<Waker>) {
        while let Some(&Reverse((deadline, id))) = self.heap.peek() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            if let Some((_, Some(waker))) = self.live.get_mut(&id).map(|(d, w)| (d, w.take())) {
                wakers.push(waker);
            }
        }
    }

    /// The earliest deadline of a live timer.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&Reverse((deadline, id))) = self.heap.peek() {
            if self.live.get(&id).is_some_and(|(_, waker)| waker.is_some()) {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }
}
