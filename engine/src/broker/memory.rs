//! The shard's memory budget: request and response bytes held in the heap and not yet sent.
//!
//! Kafka bounds requests with a memory pool (`queued.max.request.bytes`): when it is spent, no
//! connection's socket is read. Tern extends the same pool to responses, because its fetch
//! answers live in the heap until the socket takes them (Kafka's are file regions). Three
//! kinds of bytes are charged here:
//! - a request frame, from the moment its size is known until its handler has finished;
//! - an encoded response, from encoding until the socket has taken all of it;
//! - fetched record data, reserved *before* it is read ([`MemoryBudget::reserve_up_to`]):
//!   Fetch may answer with less data, so it takes only what is free and leaves a quarter of
//!   the budget to everything else.
//!
//! Charges that cannot be refused (the bytes exist already) may overdraw the budget; readers
//! then pause ([`MemoryBudget::wait_until_available`]) until sends release it. So the bytes
//! held stay below the capacity plus one frame per connection that was admitted just before
//! the budget ran out, whatever the number of connections.

use std::cell::Cell;
use std::rc::Rc;

use crate::io::local::Notify;

/// One shard's budget. Shard-local (`Rc`), like everything a shard owns.
pub struct MemoryBudget {
    capacity_bytes: usize,
    reserved_bytes: Cell<usize>,
    /// The most ever reserved at once: what tests and the shutdown log report.
    reserved_bytes_max: Cell<usize>,
    /// Woken when the budget goes from exhausted to available.
    available: Notify,
}

impl MemoryBudget {
    pub fn new(capacity_bytes: usize) -> Rc<MemoryBudget> {
        assert!(capacity_bytes > 0, "a memory budget needs room for at least one byte");
        Rc::new(MemoryBudget {
            capacity_bytes,
            reserved_bytes: Cell::new(0),
            reserved_bytes_max: Cell::new(0),
            available: Notify::new(),
        })
    }

    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    pub fn reserved_bytes(&self) -> usize {
        self.reserved_bytes.get()
    }

    pub fn reserved_bytes_max(&self) -> usize {
        self.reserved_bytes_max.get()
    }

    pub fn is_exhausted(&self) -> bool {
        self.reserved_bytes.get() >= self.capacity_bytes
    }

    /// Waits until the budget is not exhausted (returns at once when it is not).
    pub async fn wait_until_available(&self) {
        // Bounded: each round waits for a release that ends an exhaustion.
        while self.is_exhausted() {
            let released = self.available.notified();
            if !self.is_exhausted() {
                return;
            }
            released.await;
        }
    }

    /// Charges `size_bytes` that exist (or must) whatever the budget says; callers pause
    /// before creating more while the budget is exhausted.
    pub fn charge(self: &Rc<Self>, size_bytes: usize) -> Reservation {
        self.add(size_bytes);
        Reservation { budget: Some(self.clone()), size_bytes }
    }

    /// Reserves up to `wanted_bytes` out of what is free beyond `keep_free_bytes`: possibly
    /// nothing. For data that can shrink to fit (fetched records).
    pub fn reserve_up_to(
        self: &Rc<Self>,
        wanted_bytes: usize,
        keep_free_bytes: usize,
    ) -> Reservation {
        let free_bytes = self
            .capacity_bytes
            .saturating_sub(keep_free_bytes)
            .saturating_sub(self.reserved_bytes.get());
        self.charge(wanted_bytes.min(free_bytes))
    }

    fn add(&self, size_bytes: usize) {
        let reserved = self.reserved_bytes.get().saturating_add(size_bytes);
        self.reserved_bytes.set(reserved);
        self.reserved_bytes_max.set(self.reserved_bytes_max.get().max(reserved));
    }

    fn release(&self, size_bytes: usize) {
        let before = self.reserved_bytes.get();
        assert!(before >= size_bytes, "released {size_bytes} bytes of {before} reserved");
        self.reserved_bytes.set(before - size_bytes);
        if before >= self.capacity_bytes && !self.is_exhausted() {
            self.available.notify_waiters();
        }
    }
}

/// Bytes charged to a budget; released when dropped.
#[derive(Default)]
pub struct Reservation {
    budget: Option<Rc<MemoryBudget>>,
    size_bytes: usize,
}

impl Reservation {
    pub fn size_bytes(&self) -> usize {
        self.size_bytes
    }

    /// Makes the reservation exactly `size_bytes`: gives back what was not used, or charges
    /// what was used beyond it (one batch over a fetch's grant, see KIP-74).
    pub fn resize(&mut self, size_bytes: usize) {
        let Some(budget) = &self.budget else {
            assert_eq!(size_bytes, 0, "an empty reservation cannot grow");
            return;
        };
        if size_bytes > self.size_bytes {
            budget.add(size_bytes - self.size_bytes);
        } else {
            budget.release(self.size_bytes - size_bytes);
        }
        self.size_bytes = size_bytes;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(budget) = self.budget.take() {
            budget.release(self.size_bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_overdraw_and_releases_return_the_bytes() {
        let budget = MemoryBudget::new(100);
        let first = budget.charge(60);
        assert!(!budget.is_exhausted());
        let second = budget.charge(60);
        assert!(budget.is_exhausted(), "a charge may overdraw");
        assert_eq!(budget.reserved_bytes(), 120);
        drop(first);
        assert!(!budget.is_exhausted());
        drop(second);
        assert_eq!((budget.reserved_bytes(), budget.reserved_bytes_max()), (0, 120));
    }

    #[test]
    fn reserve_up_to_takes_only_what_is_free_beyond_the_kept_part() {
        let budget = MemoryBudget::new(100);
        let held = budget.charge(30);
        let grant = budget.reserve_up_to(1000, 25);
        assert_eq!(grant.size_bytes(), 45);
        assert_eq!(budget.reserve_up_to(10, 25).size_bytes(), 0, "nothing left beyond 25");
        assert_eq!(budget.reserve_up_to(10, 0).size_bytes(), 10);
        drop((held, grant));
        assert_eq!(budget.reserved_bytes(), 0);
    }

    #[test]
    fn resize_gives_back_or_charges_the_difference() {
        let budget = MemoryBudget::new(100);
        let mut grant = budget.reserve_up_to(80, 0);
        grant.resize(20);
        assert_eq!(budget.reserved_bytes(), 20);
        grant.resize(130);
        assert_eq!(budget.reserved_bytes(), 130);
        drop(grant);
        assert_eq!(budget.reserved_bytes(), 0);
        let mut empty = Reservation::default();
        empty.resize(0);
    }

    #[test]
    fn waiters_wake_when_an_exhausted_budget_frees_up() {
        crate::io::block_on(async {
            let budget = MemoryBudget::new(10);
            let held = budget.charge(10);
            let waiter = {
                let budget = budget.clone();
                crate::io::spawn_local(async move { budget.wait_until_available().await })
            };
            crate::io::yield_now().await;
            drop(held);
            waiter.await;
            assert!(!budget.is_exhausted());
        });
    }
}
