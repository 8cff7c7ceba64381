//! Single-shard synchronisation primitives: `Rc`-based, `!Send`, no OS involvement.
//!
//! They live in `io` because they are part of the executor's contract (wakers), but they never
//! block a thread: everything here only parks and wakes tasks of the current shard.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Wakes every task waiting in [`Notify::notified`] at the time of [`Notify::notify_waiters`].
#[derive(Default)]
pub struct Notify {
    /// Incremented by every `notify_waiters`; a waiter completes once it differs from its snapshot.
    generation: Cell<u64>,
    /// Waiters by id; a `BTreeMap` so that wake order is deterministic (creation order).
    waiters: RefCell<BTreeMap<u64, Waker>>,
    waiter_id_next: Cell<u64>,
}

impl Notify {
    pub fn new() -> Self {
        Self::default()
    }

    /// Completes on the first `notify_waiters()` after this call (not after the first poll), so a
    /// notification between creating and awaiting the future is not lost.
    pub fn notified(&self) -> Notified<'_> {
        let id = self.waiter_id_next.get();
        self.waiter_id_next.set(id + 1);
        Notified { notify: self, generation: self.generation.get(), id }
    }

    pub fn notify_waiters(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        // Take the map first: a woken waker may run code that registers new waiters.
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for (_, waker) in waiters {
            waker.wake();
        }
    }
}

/// Future returned by [`Notify::notified`].
pub struct Notified<'a> {
    notify: &'a Notify,
    generation: u64,
    id: u64,
}

impl Future for Notified<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.generation {
            self.notify.waiters.borrow_mut().remove(&self.id);
            return Poll::Ready(());
        }
        self.notify.waiters.borrow_mut().insert(self.id, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        self.notify.waiters.borrow_mut().remove(&self.id);
    }
}

/// The sender half of a oneshot was dropped without sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canceled;

impl std::fmt::Display for Canceled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("oneshot sender dropped without sending")
    }
}

impl std::error::Error for Canceled {}

struct OneshotState<T> {
    value: Option<T>,
    sender_alive: bool,
    receiver_alive: bool,
    receiver_waker: Option<Waker>,
}

/// A single-value channel between tasks of one shard.
pub fn oneshot<T>() -> (OneshotSender<T>, OneshotReceiver<T>) {
    let state = Rc::new(RefCell::new(OneshotState {
        value: None,
        sender_alive: true,
        receiver_alive: true,
        receiver_waker: None,
    }));
    (OneshotSender { state: state.clone() }, OneshotReceiver { state })
}

pub struct OneshotSender<T> {
    state: Rc<RefCell<OneshotState<T>>>,
}

impl<T> OneshotSender<T> {
    /// Hands `value` to the receiver; gives it back if the receiver is gone.
    pub fn send(self, value: T) -> Result<(), T> {
        let mut state = self.state.borrow_mut();
        if !state.receiver_alive {
            return Err(value);
        }
        debug_assert!(state.value.is_none());
        state.value = Some(value);
        if let Some(waker) = state.receiver_waker.take() {
            waker.wake();
        }
        Ok(())
    }

    /// True once the receiver was dropped: the result would be thrown away.
    pub fn is_closed(&self) -> bool {
        !self.state.borrow().receiver_alive
    }
}

impl<T> Drop for OneshotSender<T> {
    fn drop(&mut self) {
        let mut state = self.state.borrow_mut();
        state.sender_alive = false;
        if let Some(waker) = state.receiver_waker.take() {
            waker.wake();
        }
    }
}

/// Resolves to the sent value, or `Canceled` if the sender was dropped without sending.
pub struct OneshotReceiver<T> {
    state: Rc<RefCell<OneshotState<T>>>,
}

impl<T> Future for OneshotReceiver<T> {
    type Output = Result<T, Canceled>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.state.borrow_mut();
        if let Some(value) = state.value.take() {
            return Poll::Ready(Ok(value));
        }
        if !state.sender_alive {
            return Poll::Ready(Err(Canceled));
        }
        state.receiver_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<T> Drop for OneshotReceiver<T> {
    fn drop(&mut self) {
        self.state.borrow_mut().receiver_alive = false;
    }
}
