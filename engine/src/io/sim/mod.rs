//! The simulation backend (`--cfg madsim`): madsim's tasks, clock, randomness and network, with
//! the disk being a [`SimDisk`](crate::io::SimDisk) (the `Os` disk falls back to blocking std
//! calls, for tools only).
//!
//! Shards are tasks on the current madsim node; `current_shard()` follows each task because
//! every task spawned through `io` is wrapped so that it sets the shard index around its polls
//! (madsim runs one node's tasks on one thread, one poll at a time).

pub(crate) mod file;
pub(crate) mod net;
mod node_disks;

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::time::Instant;

/// The simulated clock (madsim intercepts the std clock inside a simulation).
pub fn now() -> Instant {
    match madsim::time::TimeHandle::try_current() {
        Some(handle) => Instant(handle.now_instant()),
        None => Instant(std::time::Instant::now()),
    }
}

/// Simulated wall-clock milliseconds since the Unix epoch.
pub fn unix_time_ms() -> i64 {
    let system_time = match madsim::time::TimeHandle::try_current() {
        Some(handle) => handle.now_time(),
        None => std::time::SystemTime::now(),
    };
    match system_time.duration_since(std::time::UNIX_EPOCH) {
        Ok(since_epoch) => i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// A random number from the simulation's seeded generator (reproducible from the seed).
pub fn random_u64() -> u64 {
    madsim::rand::random::<u64>()
}

pub async fn sleep(duration: Duration) {
    madsim::time::sleep(duration).await
}

pub async fn sleep_until(deadline: Instant) {
    madsim::time::sleep_until(deadline.0).await
}

thread_local! {
    /// Shard of the task being polled (set around every poll by `ShardScoped`).
    static CURRENT_SHARD: Cell<usize> = const { Cell::new(0) };
}

/// Index of the shard whose task is running (0 outside any shard).
pub fn current_shard() -> usize {
    CURRENT_SHARD.with(Cell::get)
}

/// Runs the inner future with `CURRENT_SHARD` set to `shard` during each poll.
struct ShardScoped<F> {
    shard: usize,
    future: F,
}

impl<F: Future> Future for ShardScoped<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned; it is never moved out.
        let this = unsafe { self.get_unchecked_mut() };
        let previous = CURRENT_SHARD.with(|current| current.replace(this.shard));
        // SAFETY: see above.
        let result = unsafe { Pin::new_unchecked(&mut this.future) }.poll(cx);
        CURRENT_SHARD.with(|current| current.set(previous));
        result
    }
}

/// Spawns a task on the current shard (a madsim task on the current node).
pub fn spawn_local<F: Future + 'static>(future: F) -> JoinHandle<F::Output> {
    let scoped = ShardScoped { shard: current_shard(), future };
    JoinHandle { inner: madsim::task::spawn_local(scoped) }
}

/// Handle to a spawned task: await it for the output; `abort()` cancels it; dropping the handle
/// detaches the task (it keeps running).
pub struct JoinHandle<T> {
    inner: madsim::task::JoinHandle<T>,
}

impl<T> JoinHandle<T> {
    /// Cancels the task. Awaiting the handle afterwards is a bug unless it had already finished.
    pub fn abort(&self) {
        self.inner.abort();
    }

    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match Pin::new(&mut self.inner).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(output)) => Poll::Ready(output),
            Poll::Ready(Err(_)) => super::bug("awaited the JoinHandle of an aborted task"),
        }
    }
}

/// Shards are tasks of one simulated node: there is nothing to pin.
pub fn set_pin_shards(_pin: bool) {}

/// Runs `future` in a fresh simulation (seed from `MADSIM_TEST_SEED`, else madsim's default).
/// Panics inside a running simulation; use `spawn_local`/`run_shards_async` there.
pub fn block_on<F: Future>(future: F) -> F::Output {
    if madsim::runtime::Handle::try_current().is_ok() {
        panic!("io::block_on called inside a running simulation (nested runtimes)");
    }
    madsim::runtime::Runtime::new().block_on(future)
}

/// Runs `make(shard)` for each shard as tasks on the current node and waits for all; the
/// simulation twin of the uring `run_shards`. Outside a simulation it starts a fresh one.
pub fn run_shards<F, Fut>(shard_count: usize, make: F) -> io::Result<Vec<Fut::Output>>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    if madsim::runtime::Handle::try_current().is_ok() {
        panic!("io::run_shards blocks: inside a simulation use io::run_shards_async");
    }
    block_on(run_shards_async(shard_count, make))
}

/// Runs `make(shard)` for each shard as concurrent tasks of the current node and returns their
/// outputs in shard order.
pub async fn run_shards_async<F, Fut>(shard_count: usize, make: F) -> io::Result<Vec<Fut::Output>>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    assert!(shard_count > 0, "run_shards needs at least one shard");
    let mut handles = Vec::with_capacity(shard_count);
    for shard in 0..shard_count {
        let scoped = ShardScoped { shard, future: make(shard) };
        handles.push(JoinHandle { inner: madsim::task::spawn_local(scoped) });
    }
    let mut outputs = Vec::with_capacity(shard_count);
    for handle in handles {
        outputs.push(handle.await);
    }
    Ok(outputs)
}
