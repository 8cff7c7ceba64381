//! In-flight io_uring operations: a slot per operation that owns the kernel-visible memory.
//!
//! An [`Op`] owns a `Box<D>` holding everything the kernel reads or writes through raw pointers
//! (the buffer, a `sockaddr`, ...). The box's address is what goes into the SQE, so moving the
//! `Op` never moves that memory. If the `Op` is dropped before its CQE arrives, the box is moved
//! into the reactor's slot, which is marked *abandoned*; the box is freed only when the CQE
//! arrives (or leaked at shutdown if it never does). So there is no use-after-free whatever the
//! caller does with the future.

use std::any::Any;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use io_uring::squeue;

use super::executor::{with_runtime, Runtime};

/// Upper bound on operations in flight per shard; beyond it new operations fail (EAGAIN)
/// rather than letting the slot table and the completion queue grow without bound.
pub(crate) const OPS_IN_FLIGHT_MAX: usize = 16 * 1024;

pub(crate) enum OpSlot {
    Free,
    /// Submitted; the waker of the task that last polled it.
    Waiting(Option<Waker>),
    /// The CQE arrived with this result; the owning `Op` has not picked it up yet.
    Completed(i32),
    /// The `Op` was dropped in flight; the memory waits for the CQE.
    Abandoned(#[allow(dead_code)] Box<dyn Any>),
}

/// The table of operation slots of one shard. An SQE's `user_data` is the slot index in the low
/// 32 bits and the slot's generation in the high 32 bits, so a cancellation aimed at an op whose
/// slot was since reused cannot hit the new op.
pub(crate) struct OpTable {
    slots: Vec<OpSlot>,
    generations: Vec<u32>,
    free: Vec<usize>,
    in_flight: usize,
}

impl OpTable {
    pub(crate) fn new() -> Self {
        OpTable { slots: Vec::new(), generations: Vec::new(), free: Vec::new(), in_flight: 0 }
    }

    /// The `user_data` of the op currently in slot `index`.
    pub(crate) fn user_data(&self, index: usize) -> u64 {
        u64::from(self.generations[index]) << 32 | index as u64
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn allocate(&mut self) -> Option<usize> {
        if self.in_flight >= OPS_IN_FLIGHT_MAX {
            return None;
        }
        self.in_flight += 1;
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(OpSlot::Free);
                self.generations.push(0);
                self.slots.len() - 1
            }
        };
        debug_assert!(matches!(self.slots[index], OpSlot::Free));
        self.slots[index] = OpSlot::Waiting(None);
        self.generations[index] = self.generations[index].wrapping_add(1);
        Some(index)
    }

    fn release(&mut self, index: usize) {
        debug_assert!(!matches!(self.slots[index], OpSlot::Free));
        self.slots[index] = OpSlot::Free;
        self.free.push(index);
        self.in_flight -= 1;
    }

    /// Records a completion; returns the waker to wake, and frees abandoned memory.
    pub(crate) fn complete(&mut self, user_data: u64, result: i32) -> Option<Waker> {
        let index = (user_data & 0xFFFF_FFFF) as usize;
        let generation = (user_data >> 32) as u32;
        if self.generations.get(index) != Some(&generation) {
            crate::io::bug(&format!("completion for unknown op {user_data:#x}"));
        }
        let slot = &mut self.slots[index];
        match std::mem::replace(slot, OpSlot::Completed(result)) {
            OpSlot::Waiting(waker) => waker,
            OpSlot::Abandoned(memory) => {
                // The kernel is done with it: now it may be freed.
                drop(memory);
                self.release(index);
                None
            }
            OpSlot::Free | OpSlot::Completed(_) => {
                crate::io::bug(&format!("second completion for op slot {index}"))
            }
        }
    }

    /// `user_data` of the ops whose CQE has not arrived yet (for cancellation at shutdown).
    pub(crate) fn pending_user_datas(&self) -> Vec<u64> {
        let pending = |(index, slot): (usize, &OpSlot)| match slot {
            OpSlot::Waiting(_) | OpSlot::Abandoned(_) => Some(self.user_data(index)),
            OpSlot::Free | OpSlot::Completed(_) => None,
        };
        self.slots.iter().enumerate().filter_map(pending).collect()
    }

    /// Forgets (leaks) the memory of operations the kernel may still touch; used at shutdown when
    /// cancellation did not complete in time. Leaking is the only safe choice.
    pub(crate) fn leak_pending(&mut self) {
        for slot in &mut self.slots {
            if let OpSlot::Abandoned(_) = slot {
                if let OpSlot::Abandoned(memory) = std::mem::replace(slot, OpSlot::Free) {
                    std::mem::forget(memory);
                }
            }
        }
    }
}

/// A submitted operation; resolves to the raw CQE result and the memory it owned.
pub(crate) struct Op<D: 'static> {
    index: usize,
    /// Which runtime's slot table `index` refers to (a future may outlive its `block_on`).
    runtime_id: u64,
    data: Option<Box<D>>,
    /// The slot belongs to this thread's ring: an `Op` must never move to another thread.
    _not_send: std::marker::PhantomData<std::rc::Rc<()>>,
}

impl<D: 'static> Op<D> {
    /// Pushes the SQE built by `build` (from pointers into the boxed `data`) onto the ring.
    /// Fails without submitting if the shard has too many operations in flight.
    pub(crate) fn submit(
        data: D,
        build: impl FnOnce(&mut D) -> squeue::Entry,
    ) -> Result<Op<D>, (io::Error, D)> {
        let mut data = Box::new(data);
        let entry = build(&mut data);
        with_runtime(|runtime| {
            let Some(index) = runtime.ops.borrow_mut().allocate() else {
                let error = io::Error::from_raw_os_error(libc::EAGAIN);
                return Err((error, *data));
            };
            let entry = entry.user_data(runtime.ops.borrow().user_data(index));
            // SAFETY: every pointer in `entry` points into `data`'s heap memory (or buffers it
            // owns), which this `Op` or, once dropped, the slot keeps alive until the CQE.
            if let Err(error) = unsafe { runtime.push_entry(&entry) } {
                runtime.ops.borrow_mut().release(index);
                return Err((error, *data));
            }
            Ok(Op {
                index,
                runtime_id: runtime.id,
                data: Some(data),
                _not_send: Default::default(),
            })
        })
    }
}

impl<D: 'static> Future for Op<D> {
    type Output = (i32, D);
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(i32, D)> {
        let index = self.index;
        let runtime_id = self.runtime_id;
        let result = with_runtime(|runtime: &Runtime| {
            if runtime.id != runtime_id {
                crate::io::bug("io op polled outside the runtime that submitted it");
            }
            let mut ops = runtime.ops.borrow_mut();
            match &mut ops.slots[index] {
                OpSlot::Completed(result) => {
                    let result = *result;
                    ops.release(index);
                    Some(result)
                }
                OpSlot::Waiting(waker) => {
                    if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *waker = Some(cx.waker().clone());
                    }
                    None
                }
                OpSlot::Free | OpSlot::Abandoned(_) => {
                    crate::io::bug(&format!("op slot {index} polled in a wrong state"))
                }
            }
        });
        match result {
            None => Poll::Pending,
            Some(result) => {
                let Some(data) = self.data.take() else {
                    crate::io::bug("op polled after completion");
                };
                Poll::Ready((result, *data))
            }
        }
    }
}

impl<D: 'static> Drop for Op<D> {
    fn drop(&mut self) {
        let Some(data) = self.data.take() else { return };
        let index = self.index;
        let mut data = Some(data);
        let runtime_id = self.runtime_id;
        let handed_over = super::executor::try_with_runtime(|runtime| {
            if runtime.id != runtime_id {
                return false;
            }
            let mut ops = runtime.ops.borrow_mut();
            match &ops.slots[index] {
                OpSlot::Completed(_) => ops.release(index),
                OpSlot::Waiting(_) => {
                    if let Some(data) = data.take() {
                        ops.slots[index] = OpSlot::Abandoned(data);
                    }
                    let user_data = ops.user_data(index);
                    drop(ops);
                    // Best effort: a recv that has not started must not eat later data. If the
                    // op completes first, the cancellation finds nothing (generation mismatch).
                    runtime.cancel(user_data);
                    return true;
                }
                OpSlot::Free | OpSlot::Abandoned(_) => {
                    crate::io::bug(&format!("op slot {index} dropped in a wrong state"))
                }
            }
            true
        });
        if handed_over != Some(true) {
            // No runtime any more (thread teardown): the kernel might still use the memory.
            std::mem::forget(data);
            tracing::error!("io op dropped outside its runtime; leaking its buffer");
        }
    }
}
