//! The Linux backend: one io_uring + one single-threaded executor per shard thread.
//!
//! - [`executor`]: the loop (tasks, wake-ups, one submit per turn), `block_on`, shutdown.
//! - [`op`]: in-flight operations owning their kernel-visible memory.
//! - [`timer`]: the per-shard timer heap driving the ring's wait timeout.
//! - [`file`], [`net`]: files and sockets as io_uring operations.

mod executor;
pub(crate) mod file;
pub(crate) mod net;
mod op;
mod timer;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::time::Instant;
use executor::{run_on, try_with_runtime, with_runtime, Runtime};

pub(crate) use op::Op;

/// The backend's clock.
pub fn now() -> Instant {
    Instant(std::time::Instant::now())
}

/// Wall-clock milliseconds since the Unix epoch (Kafka timestamps, time-based retention).
pub fn unix_time_ms() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(since_epoch) => i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX),
        // A clock before 1970 is a misconfigured host; report the epoch rather than crash.
        Err(_) => 0,
    }
}

thread_local! {
    static RANDOM_STATE: Cell<u64> = Cell::new(random_seed());
}

fn random_seed() -> u64 {
    let mut seed: u64 = 0;
    // SAFETY: getrandom writes at most 8 bytes into a live u64.
    let count = unsafe { libc::getrandom((&raw mut seed).cast(), 8, 0) };
    if count != 8 {
        // No entropy source: fall back to the clock (randomness here is for jitter, not crypto).
        seed = unix_time_ms() as u64 ^ (std::process::id() as u64) << 32;
    }
    seed
}

/// Restarts this thread's [`random_u64`] sequence from `seed`, so that what the broker draws
/// (member ids, topic ids, cluster ids) is the same on every run of a test or fuzz input.
pub fn seed_random(seed: u64) {
    RANDOM_STATE.with(|state| state.set(seed));
}

/// Drops every task spawned on this thread's runtime, as shutdown does, and lets the runtime
/// go on: a test or fuzz input that runs many short-lived brokers on one runtime ends each
/// without leaving its parked tasks (and the state they hold) behind. Call it only from the
/// future given to [`block_on`]; from a spawned task it is a bug (the task would drop itself).
pub fn drop_spawned_tasks() {
    with_runtime(|runtime| {
        if runtime.is_polling_task() {
            // Only the main future may do this: a task would drop itself mid-poll.
            super::bug("io::drop_spawned_tasks called from a spawned task");
        }
        runtime.drop_tasks()
    });
}

/// A fast, non-cryptographic random number (per-thread SplitMix64 seeded from the OS).
pub fn random_u64() -> u64 {
    RANDOM_STATE.with(|state| {
        let next = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// Completes once `duration` has passed (timer on this shard's heap; no SQE per sleep).
pub async fn sleep(duration: Duration) {
    let deadline = std::time::Instant::now().checked_add(duration);
    match deadline {
        Some(deadline) => Sleep { deadline, timer: None }.await,
        // An effectively infinite sleep.
        None => std::future::pending().await,
    }
}

/// Completes at `deadline`.
pub async fn sleep_until(deadline: Instant) {
    Sleep { deadline: deadline.0, timer: None }.await
}

struct Sleep {
    deadline: std::time::Instant,
    /// (runtime id, timer id) once registered.
    timer: Option<(u64, u64)>,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if std::time::Instant::now() >= self.deadline {
            self.cancel();
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        let timer = self.timer;
        let registered = with_runtime(|runtime| {
            let mut timers = runtime.timers.borrow_mut();
            match timer {
                Some((runtime_id, id)) if runtime_id == runtime.id => {
                    timers.update_waker(id, cx.waker());
                    (runtime_id, id)
                }
                _ => (runtime.id, timers.register(deadline, cx.waker().clone())),
            }
        });
        self.timer = Some(registered);
        Poll::Pending
    }
}

impl Sleep {
    fn cancel(&mut self) {
        if let Some((runtime_id, id)) = self.timer.take() {
            try_with_runtime(|runtime| {
                if runtime.id == runtime_id {
                    runtime.timers.borrow_mut().cancel(id);
                }
            });
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Index of the shard running on this thread (0 under `block_on` and outside any shard).
pub fn current_shard() -> usize {
    try_with_runtime(|runtime| runtime.shard).unwrap_or(0)
}

/// Runs a fresh one-shard runtime (ring + executor) on this thread until `future` completes.
/// Panics inside a running shard, or if io_uring cannot be set up (tests and tools only).
pub fn block_on<F: Future>(future: F) -> F::Output {
    let runtime = match Runtime::new(0) {
        Ok(runtime) => runtime,
        Err(error) => panic!("io::block_on: cannot set up io_uring: {error}"),
    };
    match run_on(runtime, || future) {
        Ok(output) => output,
        Err(error) => panic!("io::block_on: io_uring failed: {error}"),
    }
}

/// Runs `make(shard)` on each of `shard_count` threads, each pinned to a core and running its own
/// ring and executor; returns the outputs in shard order once all have completed.
///
/// A shard that panics takes the process down (thread-per-core rule: its siblings would go on
/// serving on broken shared assumptions).
pub fn run_shards<F, Fut>(shard_count: usize, make: F) -> io::Result<Vec<Fut::Output>>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    assert!(shard_count > 0, "run_shards needs at least one shard");
    let make = Arc::new(make);
    let cpus = allowed_cpus();
    let mut threads = Vec::with_capacity(shard_count);
    for shard in 0..shard_count {
        let (make, cpu) = (make.clone(), shard_cpu(&cpus, shard));
        let thread = std::thread::Builder::new()
            .name(format!("tern-shard-{shard}"))
            .spawn(move || shard_main(shard, cpu, &*make))?;
        threads.push(thread);
    }
    collect_outputs(threads.into_iter().map(|thread| thread.join().ok()))
}

/// The CPU shard `shard` is pinned to: the allowed CPUs in turn.
fn shard_cpu(cpus: &[usize], shard: usize) -> Option<usize> {
    cpus.get(shard % cpus.len().max(1)).copied()
}

/// A shard thread's whole life: pin, build its ring and executor, run `make(shard)`.
fn shard_main<F, Fut>(shard: usize, cpu: Option<usize>, make: &F) -> io::Result<Fut::Output>
where
    F: Fn(usize) -> Fut,
    Fut: Future + 'static,
{
    if let Some(cpu) = cpu {
        pin_to_cpu(cpu);
    }
    Runtime::new(shard).and_then(|runtime| run_on(runtime, || make(shard)))
}

/// Outputs in shard order, or the first shard error; `None` is a shard that panicked.
fn collect_outputs<T>(results: impl Iterator<Item = Option<io::Result<T>>>) -> io::Result<Vec<T>> {
    let mut outputs = Vec::new();
    let mut first_error = None;
    for result in results {
        match result {
            Some(Ok(output)) => outputs.push(output),
            Some(Err(error)) => first_error = first_error.or(Some(error)),
            None => super::bug("a shard thread panicked"),
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(outputs),
    }
}

/// Like [`run_shards`], but awaits the shard threads instead of blocking the calling thread
/// (the simulation backend runs shards as tasks; this keeps one calling convention for both).
pub async fn run_shards_async<F, Fut>(shard_count: usize, make: F) -> io::Result<Vec<Fut::Output>>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    assert!(shard_count > 0, "run_shards needs at least one shard");
    let make = Arc::new(make);
    let cpus = allowed_cpus();
    let mut replies = Vec::with_capacity(shard_count);
    for shard in 0..shard_count {
        let (make, cpu) = (make.clone(), shard_cpu(&cpus, shard));
        let (reply, replied) = super::mesh::reply_channel::<io::Result<Fut::Output>>();
        // Detached: the thread ends right after replying; the reply is what we wait for.
        drop(std::thread::Builder::new().name(format!("tern-shard-{shard}")).spawn(move || {
            // The caller stopped waiting: nobody wants the output.
            let _ = reply.send(shard_main(shard, cpu, &*make));
        })?);
        replies.push(replied);
    }
    let mut results = Vec::with_capacity(shard_count);
    for replied in replies {
        results.push(replied.await.ok());
    }
    collect_outputs(results.into_iter())
}

/// The CPUs this process may run on (respects cgroup/taskset restrictions).
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it and we check the result.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&cpu| libc::CPU_ISSET(cpu, &set)).collect()
    }
}

/// Whether `run_shards` pins each shard thread to its own CPU (the default). Pinning keeps a
/// shard's cache warm on dedicated cores; on a machine shared with the clients (a 2-core
/// benchmark box) it stops the scheduler from moving a shard off a busy core.
static PIN_SHARDS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Sets whether shards started afterwards are pinned to CPUs.
pub fn set_pin_shards(pin: bool) {
    PIN_SHARDS.store(pin, std::sync::atomic::Ordering::Relaxed);
}

fn pin_to_cpu(cpu: usize) {
    if !PIN_SHARDS.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    // SAFETY: as above; pins only the calling thread (pid 0).
    let result = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if result != 0 {
        // Not fatal: the shard still works, only without the cache locality.
        tracing::warn!(cpu, error = %io::Error::last_os_error(), "cannot pin shard thread");
    }
}

/// Spawns a task on the current shard; it runs interleaved with the others on this thread.
pub fn spawn_local<F: Future + 'static>(future: F) -> JoinHandle<F::Output> {
    let state = Rc::new(JoinState {
        result: RefCell::new(None),
        waiter: RefCell::new(None),
        aborted: Cell::new(false),
    });
    let task = TaskFuture { future, state: state.clone() };
    let task_waker = with_runtime(|runtime| runtime.spawn(Box::pin(task)));
    JoinHandle { state, task_waker }
}

struct JoinState<T> {
    result: RefCell<Option<T>>,
    waiter: RefCell<Option<Waker>>,
    aborted: Cell<bool>,
}

/// Wraps a spawned future: stores its output for the `JoinHandle`, stops early on abort.
struct TaskFuture<F: Future> {
    future: F,
    state: Rc<JoinState<F::Output>>,
}

impl<F: Future> Future for TaskFuture<F> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: `future` is structurally pinned: never moved out of this pinned struct.
        let this = unsafe { self.get_unchecked_mut() };
        if this.state.aborted.get() {
            // Wake a task awaiting the handle so that it does not hang silently.
            if let Some(waiter) = this.state.waiter.borrow_mut().take() {
                waiter.wake();
            }
            return Poll::Ready(());
        }
        // SAFETY: see above.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        let Poll::Ready(output) = future.poll(cx) else { return Poll::Pending };
        *this.state.result.borrow_mut() = Some(output);
        let waiter = this.state.waiter.borrow_mut().take();
        if let Some(waiter) = waiter {
            waiter.wake();
        }
        Poll::Ready(())
    }
}

/// Handle to a spawned task: await it for the output; `abort()` cancels it; dropping the handle
/// detaches the task (it keeps running).
pub struct JoinHandle<T> {
    state: Rc<JoinState<T>>,
    task_waker: Waker,
}

impl<T> JoinHandle<T> {
    /// Cancels the task: its future is dropped at its next scheduling (with its in-flight I/O).
    /// Awaiting the handle afterwards is a bug unless the task had already finished.
    pub fn abort(&self) {
        self.state.aborted.set(true);
        self.task_waker.wake_by_ref();
    }

    /// True once the task's output is available.
    pub fn is_finished(&self) -> bool {
        self.state.result.borrow().is_some()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if let Some(output) = self.state.result.borrow_mut().take() {
            return Poll::Ready(output);
        }
        if self.state.aborted.get() {
            super::bug("awaited the JoinHandle of an aborted task");
        }
        *self.state.waiter.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}
