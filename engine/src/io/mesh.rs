//! Cross-shard channels: bounded lock-free queues whose receiver lives on one shard.
//!
//! A send from any thread pushes onto a `crossbeam` `ArrayQueue` (bounded, lock-free) and wakes
//! the receiving task through its `Waker`. Executor wakers are thread-safe: waking a task of a
//! shard that is blocked in `io_uring_enter` writes that shard's eventfd, on which its ring always
//! has a read pending, so the ring returns and the receiver runs. Under madsim the same code runs
//! with madsim's wakers.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use futures_util::task::AtomicWaker;

pub use super::local::Canceled;

/// Backoff of a sender waiting for room: doubles from the first to the last value.
const SEND_BACKOFF_US_FIRST: u64 = 20;
const SEND_BACKOFF_US_MAX: u64 = 1000;

struct Shared<T> {
    queue: ArrayQueue<T>,
    receiver_waker: AtomicWaker,
    senders: AtomicUsize,
    receiver_alive: AtomicBool,
}

/// A bounded channel of at most `capacity` queued values.
pub fn channel<T: Send + 'static>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "a mesh channel needs room for at least one value");
    let shared = Arc::new(Shared {
        queue: ArrayQueue::new(capacity),
        receiver_waker: AtomicWaker::new(),
        senders: AtomicUsize::new(1),
        receiver_alive: AtomicBool::new(true),
    });
    (Sender { shared: shared.clone() }, Receiver { shared })
}

/// Why `try_send` did not enqueue; the value comes back.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    Full(T),
    Disconnected(T),
}

impl<T> TrySendError<T> {
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(value) | TrySendError::Disconnected(value) => value,
        }
    }
}

impl<T> std::fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("mesh channel full"),
            TrySendError::Disconnected(_) => f.write_str("mesh channel receiver dropped"),
        }
    }
}

impl<T: std::fmt::Debug> std::error::Error for TrySendError<T> {}

/// Sending half: `Clone + Send + Sync`, usable from any shard or thread.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Sender { shared: self.shared.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last sender: let the receiver see the end of the stream.
            self.shared.receiver_waker.wake();
        }
    }
}

impl<T> Sender<T> {
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        if !self.shared.receiver_alive.load(Ordering::Acquire) {
            return Err(TrySendError::Disconnected(value));
        }
        self.shared.queue.push(value).map_err(TrySendError::Full)?;
        self.shared.receiver_waker.wake();
        Ok(())
    }

    /// Enqueues `value`, waiting with a bounded backoff while the queue is full; gives it back
    /// if the receiver is dropped.
    pub async fn send(&self, value: T) -> Result<(), T> {
        let mut value = value;
        let mut backoff_us = SEND_BACKOFF_US_FIRST;
        loop {
            match self.try_send(value) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected(returned)) => return Err(returned),
                Err(TrySendError::Full(returned)) => value = returned,
            }
            super::sleep(Duration::from_micros(backoff_us)).await;
            backoff_us = (backoff_us * 2).min(SEND_BACKOFF_US_MAX);
        }
    }

    /// True once the receiver was dropped.
    pub fn is_closed(&self) -> bool {
        !self.shared.receiver_alive.load(Ordering::Acquire)
    }
}

/// Receiving half: `Send`, so it can be moved into its shard at start; then used there only.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// The next value; `None` once every sender is dropped and the queue is empty.
    pub async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    pub fn try_recv(&mut self) -> Option<T> {
        self.shared.queue.pop()
    }

    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(value) = self.shared.queue.pop() {
            return Poll::Ready(Some(value));
        }
        self.shared.receiver_waker.register(cx.waker());
        // Re-check after registering: a push between the first pop and `register` woke nobody.
        if let Some(value) = self.shared.queue.pop() {
            return Poll::Ready(Some(value));
        }
        if self.shared.senders.load(Ordering::Acquire) == 0 {
            // Senders are gone, but one may have pushed just before dropping.
            return Poll::Ready(self.shared.queue.pop());
        }
        Poll::Pending
    }

    pub fn len(&self) -> usize {
        self.shared.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shared.queue.is_empty()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.receiver_alive.store(false, Ordering::Release);
    }
}

struct ReplyShared<T> {
    value: Mutex<Option<T>>,
    waker: AtomicWaker,
    sender_alive: AtomicBool,
    receiver_alive: AtomicBool,
}

/// A cross-shard oneshot for replies: send from any thread; await on the requesting shard.
pub fn reply_channel<T: Send>() -> (ReplySender<T>, ReplyReceiver<T>) {
    let shared = Arc::new(ReplyShared {
        value: Mutex::new(None),
        waker: AtomicWaker::new(),
        sender_alive: AtomicBool::new(true),
        receiver_alive: AtomicBool::new(true),
    });
    (ReplySender { shared: shared.clone() }, ReplyReceiver { shared })
}

pub struct ReplySender<T> {
    shared: Arc<ReplyShared<T>>,
}

impl<T> ReplySender<T> {
    /// Delivers the reply; gives it back if the requester stopped waiting.
    pub fn send(self, value: T) -> Result<(), T> {
        if !self.shared.receiver_alive.load(Ordering::Acquire) {
            return Err(value);
        }
        *self.shared.value.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(value);
        self.shared.waker.wake();
        Ok(())
    }

    pub fn is_closed(&self) -> bool {
        !self.shared.receiver_alive.load(Ordering::Acquire)
    }
}

impl<T> Drop for ReplySender<T> {
    fn drop(&mut self) {
        self.shared.sender_alive.store(false, Ordering::Release);
        self.shared.waker.wake();
    }
}

/// Resolves to the reply, or `Canceled` if the sender was dropped without replying.
pub struct ReplyReceiver<T> {
    shared: Arc<ReplyShared<T>>,
}

impl<T> ReplyReceiver<T> {
    fn take(&self) -> Option<T> {
        self.shared.value.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
    }
}

impl<T> Future for ReplyReceiver<T> {
    type Output = Result<T, Canceled>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(value) = self.take() {
            return Poll::Ready(Ok(value));
        }
        self.shared.waker.register(cx.waker());
        if let Some(value) = self.take() {
            return Poll::Ready(Ok(value));
        }
        if !self.shared.sender_alive.load(Ordering::Acquire) {
            // The sender stores before it drops, so a final look decides.
            return Poll::Ready(self.take().ok_or(Canceled));
        }
        Poll::Pending
    }
}

impl<T> Drop for ReplyReceiver<T> {
    fn drop(&mut self) {
        self.shared.receiver_alive.store(false, Ordering::Release);
    }
}

macro_rules! opaque_debug {
    ($($name:ident),*) => {$(
        impl<T> std::fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(stringify!($name))
            }
        }
    )*};
}

opaque_debug!(Sender, Receiver, ReplySender, ReplyReceiver);
