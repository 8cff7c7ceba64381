//! One timer for all the replicated partitions of a shard. Each partition's driver needs a
//! tick every half heartbeat interval (heartbeats, election timers, check-quorum); a timer
//! per partition would mean 10,000 timers for 10,000 partitions, each firing at its own
//! phase, and their heartbeats leaving one by one. One ticker per shard wakes every driver
//! at the same instant instead, so their heartbeats to one peer leave in the same turn and
//! the transport carries them in one frame.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::Duration;

use super::Inner;

/// Registered partitions of a shard; ticks them while any is alive.
pub struct Ticker {
    interval: Duration,
    partitions: RefCell<Vec<Weak<Inner>>>,
    running: Cell<bool>,
}

impl Ticker {
    /// A ticker for partitions whose heartbeat interval is `heartbeat_interval`.
    pub fn new(heartbeat_interval: Duration) -> Rc<Ticker> {
        // Two ticks per heartbeat interval, so a heartbeat is late by at most half of one.
        let interval = (heartbeat_interval / 2).max(Duration::from_millis(1));
        Rc::new(Ticker {
            interval,
            partitions: RefCell::new(Vec::new()),
            running: Cell::new(false),
        })
    }

    /// Ticks `inner` from now on until it stops; starts the timer if it is not running.
    pub(super) fn register(self: &Rc<Self>, inner: &Rc<Inner>) {
        self.partitions.borrow_mut().push(Rc::downgrade(inner));
        if !self.running.replace(true) {
            drop(crate::io::spawn_local(run(Rc::downgrade(self))));
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Partitions ticked now (the ones that stopped are forgotten at the next tick).
    pub fn registered(&self) -> usize {
        self.partitions.borrow().len()
    }

    /// One tick: every live partition's driver is woken; stopped ones are forgotten.
    /// Returns whether any is left.
    fn tick(&self) -> bool {
        let mut partitions = self.partitions.borrow_mut();
        partitions.retain(|partition| {
            let Some(inner) = partition.upgrade() else { return false };
            if inner.stopped.get() {
                return false;
            }
            inner.tick_due.set(true);
            inner.wake.notify_waiters();
            true
        });
        !partitions.is_empty()
    }
}

/// The timer: ends when no partition is left (the next registration starts it again) or
/// the ticker is dropped.
async fn run(ticker: Weak<Ticker>) {
    loop {
        let Some(interval) = ticker.upgrade().map(|ticker| ticker.interval) else { return };
        crate::io::sleep(interval).await;
        let Some(ticker) = ticker.upgrade() else { return };
        if !ticker.tick() {
            ticker.running.set(false);
            return;
        }
    }
}
