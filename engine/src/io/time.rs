//! Monotonic time as the rest of the engine sees it; the clock itself belongs to the backend.
//!
//! Under io_uring an [`Instant`] wraps `std::time::Instant`; under madsim the same type reads the
//! simulated clock, so code outside `io` cannot tell them apart.

use std::future::Future;
use std::ops::Add;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

/// A point on the monotonic clock of the current backend.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub(crate) std::time::Instant);

impl Instant {
    /// Time from `earlier` to `self`; zero if `earlier` is later (never panics).
    pub fn duration_since(&self, earlier: Instant) -> Duration {
        self.0.saturating_duration_since(earlier.0)
    }

    /// Time since `self`, by the backend's clock.
    pub fn elapsed(&self) -> Duration {
        super::now().duration_since(*self)
    }

    pub fn checked_add(&self, duration: Duration) -> Option<Instant> {
        self.0.checked_add(duration).map(Instant)
    }

    pub fn checked_sub(&self, duration: Duration) -> Option<Instant> {
        self.0.checked_sub(duration).map(Instant)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Panics on overflow, like `std::time::Instant`; use `checked_add` for untrusted durations.
    fn add(self, duration: Duration) -> Instant {
        Instant(self.0 + duration)
    }
}

/// The deadline of a [`timeout`] passed before the future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(_: Elapsed) -> std::io::Error {
        std::io::Error::from(std::io::ErrorKind::TimedOut)
    }
}

/// Runs `future` for at most `duration`; dropping it (with its in-flight I/O) on expiry.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    let mut future = pin!(future);
    let mut deadline = pin!(super::sleep(duration));
    std::future::poll_fn(|context| {
        // The future first: a result that is ready at the deadline still counts.
        if let Poll::Ready(output) = future.as_mut().poll(context) {
            return Poll::Ready(Ok(output));
        }
        if deadline.as_mut().poll(context).is_ready() {
            return Poll::Ready(Err(Elapsed));
        }
        Poll::Pending
    })
    .await
}

/// Lets other ready tasks of this shard run before continuing.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|context| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        context.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}
