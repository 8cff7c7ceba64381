//! The per-shard runtime: one io_uring, one single-threaded executor, one timer heap.
//!
//! Loop turn: move cross-thread wake-ups into the run queue, poll a bounded batch of ready tasks,
//! fire due timers, then ONE `submit_with_args` that both submits the batched SQEs and (only if
//! nothing is runnable) waits for a completion or the next timer deadline, then reap the CQ.
//!
//! Wakers are `Send + Sync` (std requires it): a wake-up from another thread pushes the task onto
//! the shard's mutex-protected wake list and, if the shard is blocked in the kernel, writes its
//! eventfd, on which the ring always has a read pending. That is how `mesh` channels and replies
//! wake a shard.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};

use super::op::OpTable;
use super::timer::Timers;

/// Submission queue entries per ring (the completion queue is twice as large).
const RING_ENTRIES: u32 = 1024;
/// Tasks polled per loop turn before the ring is looked at again (fairness with I/O).
const POLLS_PER_TURN_MAX: usize = 1024;
/// How long shutdown waits for cancelled operations before leaking their memory.
const SHUTDOWN_DRAIN_MS_MAX: u64 = 1000;
/// `user_data` of the eventfd read and of cancellation requests (never op slot indexes).
const USER_DATA_EVENTFD: u64 = u64::MAX;
const USER_DATA_CANCEL: u64 = u64::MAX - 1;
/// Task slot of the future given to `block_on`/`run_shards` (not in the task table).
const MAIN_SLOT: usize = usize::MAX;

static RUNTIME_ID_NEXT: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static RUNTIME: RefCell<Option<Rc<Runtime>>> = const { RefCell::new(None) };
}

/// Runs `action` with this thread's runtime; a missing runtime is a caller bug.
pub(crate) fn with_runtime<R>(action: impl FnOnce(&Runtime) -> R) -> R {
    match try_with_runtime(action) {
        Some(result) => result,
        None => panic!("tern::io used outside a shard: call it inside io::block_on/run_shards"),
    }
}

/// Runs `action` with this thread's runtime, if one is running.
pub(crate) fn try_with_runtime<R>(action: impl FnOnce(&Runtime) -> R) -> Option<R> {
    // Clone the Rc out so `action` may re-enter (spawn, submit) without a nested borrow.
    let runtime = RUNTIME.try_with(|slot| slot.borrow().clone()).ok().flatten()?;
    Some(action(&runtime))
}

/// The part of a shard other threads may touch: its wake list and its eventfd.
pub(crate) struct ShardShared {
    woken: Mutex<Vec<(usize, u64)>>,
    /// True while the shard is (about to be) blocked in the kernel; wakers then write the eventfd.
    sleeping: AtomicBool,
    eventfd: OwnedFd,
}

impl ShardShared {
    fn push(&self, slot: usize, generation: u64) {
        self.woken.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push((slot, generation));
        if self.sleeping.swap(false, Ordering::SeqCst) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to an eventfd we own.
            let written =
                unsafe { libc::write(self.eventfd.as_raw_fd(), (&raw const one).cast(), 8) };
            // An eventfd write only fails if the counter would overflow, which needs 2^64 wakes.
            debug_assert_eq!(written, 8);
        }
    }

    fn has_woken(&self) -> bool {
        !self.woken.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).is_empty()
    }
}

/// Waker of one task; `scheduled` keeps a task at most once in the wake list.
pub(crate) struct TaskWaker {
    slot: usize,
    generation: u64,
    scheduled: AtomicBool,
    shared: Arc<ShardShared>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            self.shared.push(self.slot, self.generation);
        }
    }
}

struct TaskSlot {
    generation: u64,
    /// `None` while the task is being polled.
    future: Option<Pin<Box<dyn Future<Output = ()>>>>,
    waker: Arc<TaskWaker>,
}

struct TaskTable {
    slots: Vec<Option<TaskSlot>>,
    free: Vec<usize>,
    generation_next: u64,
}

pub(crate) struct Runtime {
    pub(crate) id: u64,
    pub(crate) shard: usize,
    ring: RefCell<IoUring>,
    pub(crate) ops: RefCell<OpTable>,
    pub(crate) timers: RefCell<Timers>,
    tasks: RefCell<TaskTable>,
    run_queue: RefCell<VecDeque<(usize, u64)>>,
    shared: Arc<ShardShared>,
    main_waker: Arc<TaskWaker>,
    main_woken: Cell<bool>,
    /// Target of the pending eventfd read; freed only when no read is in flight.
    eventfd_buffer: *mut u64,
    eventfd_read_pending: Cell<bool>,
    shutting_down: Cell<bool>,
    /// Reused across turns to wake outside of any borrow.
    wakers: RefCell<Vec<Waker>>,
}

impl Runtime {
    pub(crate) fn new(shard: usize) -> io::Result<Runtime> {
        let ring = IoUring::builder().build(RING_ENTRIES)?;
        if !ring.params().is_feature_ext_arg() || !ring.params().is_feature_nodrop() {
            return Err(io::Error::other("io_uring lacks EXT_ARG/NODROP (kernel >= 5.11 needed)"));
        }
        // SAFETY: plain syscall; the result is checked before use.
        let raw_fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if raw_fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw_fd` is a fresh descriptor nobody else owns.
        let eventfd = unsafe { OwnedFd::from_raw_fd(raw_fd) };
        let shared = Arc::new(ShardShared {
            woken: Mutex::new(Vec::new()),
            sleeping: AtomicBool::new(false),
            eventfd,
        });
        let main_waker = Arc::new(TaskWaker {
            slot: MAIN_SLOT,
            generation: 0,
            scheduled: AtomicBool::new(false),
            shared: shared.clone(),
        });
        let runtime = Runtime {
            id: RUNTIME_ID_NEXT.fetch_add(1, Ordering::Relaxed),
            shard,
            ring: RefCell::new(ring),
            ops: RefCell::new(OpTable::new()),
            timers: RefCell::new(Timers::new()),
            tasks: RefCell::new(TaskTable {
                slots: Vec::new(),
                free: Vec::new(),
                generation_next: 0,
            }),
            run_queue: RefCell::new(VecDeque::new()),
            shared,
            main_waker,
            main_woken: Cell::new(true),
            eventfd_buffer: Box::into_raw(Box::new(0u64)),
            eventfd_read_pending: Cell::new(false),
            shutting_down: Cell::new(false),
            wakers: RefCell::new(Vec::new()),
        };
        runtime.arm_eventfd_read()?;
        Ok(runtime)
    }

    /// Pushes one SQE; flushes the submission queue first if it is full.
    ///
    /// # Safety
    /// Memory referenced by `entry` must stay valid until its completion is reaped.
    pub(crate) unsafe fn push_entry(&self, entry: &squeue::Entry) -> io::Result<()> {
        let mut ring = self.ring.borrow_mut();
        if ring.submission().is_full() {
            ring.submit()?;
        }
        // SAFETY: forwarded from the caller's contract.
        let pushed = unsafe { ring.submission().push(entry) };
        pushed.map_err(|_| io::Error::from_raw_os_error(libc::EAGAIN))
    }

    fn arm_eventfd_read(&self) -> io::Result<()> {
        debug_assert!(!self.eventfd_read_pending.get());
        let fd = types::Fd(self.shared.eventfd.as_raw_fd());
        let entry = opcode::Read::new(fd, self.eventfd_buffer.cast(), 8)
            .build()
            .user_data(USER_DATA_EVENTFD);
        // SAFETY: `eventfd_buffer` is freed only when no read is pending (see `Drop`).
        unsafe { self.push_entry(&entry)? };
        self.eventfd_read_pending.set(true);
        Ok(())
    }

    pub(crate) fn spawn(&self, future: Pin<Box<dyn Future<Output = ()>>>) -> Waker {
        let mut tasks = self.tasks.borrow_mut();
        let generation = tasks.generation_next;
        tasks.generation_next += 1;
        let slot = match tasks.free.pop() {
            Some(slot) => slot,
            None => {
                tasks.slots.push(None);
                tasks.slots.len() - 1
            }
        };
        debug_assert!(tasks.slots[slot].is_none());
        let waker = Arc::new(TaskWaker {
            slot,
            generation,
            scheduled: AtomicBool::new(true),
            shared: self.shared.clone(),
        });
        tasks.slots[slot] =
            Some(TaskSlot { generation, future: Some(future), waker: waker.clone() });
        self.run_queue.borrow_mut().push_back((slot, generation));
        Waker::from(waker)
    }

    fn poll_task(&self, slot: usize, generation: u64) {
        let (mut future, waker) = {
            let mut tasks = self.tasks.borrow_mut();
            match tasks.slots.get_mut(slot) {
                Some(Some(task)) if task.generation == generation => {
                    let Some(future) = task.future.take() else { return };
                    (future, task.waker.clone())
                }
                // A stale wake-up of a finished task.
                _ => return,
            }
        };
        // Cleared before polling so a wake during the poll schedules the task again.
        waker.scheduled.store(false, Ordering::Release);
        let waker = Waker::from(waker);
        let ready = future.as_mut().poll(&mut Context::from_waker(&waker)).is_ready();
        let mut tasks = self.tasks.borrow_mut();
        if !matches!(tasks.slots.get(slot), Some(Some(_))) {
            crate::io::bug("task slot vanished while it was polled");
        }
        if ready {
            tasks.slots[slot] = None;
            tasks.free.push(slot);
            drop(tasks);
            // Dropped outside the borrow: the future's drop may touch the runtime.
            drop(future);
        } else if let Some(Some(task)) = tasks.slots.get_mut(slot) {
            task.future = Some(future);
        }
    }

    fn drain_woken(&self) {
        let mut woken = self.shared.woken.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut run_queue = self.run_queue.borrow_mut();
        for (slot, generation) in woken.drain(..) {
            if slot == MAIN_SLOT {
                self.main_waker.scheduled.store(false, Ordering::Release);
                self.main_woken.set(true);
            } else {
                run_queue.push_back((slot, generation));
            }
        }
    }

    /// Polls at most `POLLS_PER_TURN_MAX` ready tasks.
    fn run_ready(&self) {
        self.drain_woken();
        for _ in 0..POLLS_PER_TURN_MAX {
            let Some((slot, generation)) = self.run_queue.borrow_mut().pop_front() else { break };
            self.poll_task(slot, generation);
            self.drain_woken();
        }
    }

    fn fire_timers(&self) {
        let mut wakers = self.wakers.borrow_mut();
        self.timers.borrow_mut().fire(Instant::now(), &mut wakers);
        for waker in wakers.drain(..) {
            waker.wake();
        }
    }

    /// The one kernel entry of a turn: submit, and block only if nothing is runnable.
    fn submit_and_wait(&self) -> io::Result<()> {
        let runnable = !self.run_queue.borrow().is_empty() || self.main_woken.get();
        if runnable {
            let mut ring = self.ring.borrow_mut();
            let submission = ring.submission();
            // Nothing to submit and nothing to flush: skip the syscall, just reap.
            if submission.is_empty() && !submission.cq_overflow() {
                return Ok(());
            }
            drop(submission);
            drop(ring);
            return self.submit(0, None);
        }
        self.shared.sleeping.store(true, Ordering::SeqCst);
        // Re-check after announcing sleep: a waker that pushed before saw `sleeping == false`.
        if self.shared.has_woken() {
            self.shared.sleeping.store(false, Ordering::SeqCst);
            return self.submit(0, None);
        }
        let deadline = self.timers.borrow_mut().next_deadline();
        let wait = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
        let result = self.submit(1, wait);
        self.shared.sleeping.store(false, Ordering::SeqCst);
        result
    }

    fn submit(&self, want: usize, wait: Option<Duration>) -> io::Result<()> {
        let ring = self.ring.borrow();
        let result = match wait {
            None => ring.submitter().submit_and_wait(want),
            Some(wait) => {
                let timespec = types::Timespec::from(wait);
                let args = types::SubmitArgs::new().timespec(&timespec);
                ring.submitter().submit_with_args(want, &args)
            }
        };
        match result {
            Ok(_) => Ok(()),
            Err(error) => match error.raw_os_error() {
                // Timed out, interrupted, or completions backed up: reap and go on.
                Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN) => Ok(()),
                _ => Err(error),
            },
        }
    }

    fn reap(&self) -> io::Result<()> {
        let mut wakers = self.wakers.borrow_mut();
        let mut eventfd_fired = false;
        {
            let mut ring = self.ring.borrow_mut();
            let mut ops = self.ops.borrow_mut();
            for cqe in ring.completion() {
                match cqe.user_data() {
                    USER_DATA_EVENTFD => eventfd_fired = true,
                    USER_DATA_CANCEL => {}
                    user_data => wakers.extend(ops.complete(user_data, cqe.result())),
                }
            }
        }
        for waker in wakers.drain(..) {
            waker.wake();
        }
        drop(wakers);
        if eventfd_fired {
            self.eventfd_read_pending.set(false);
            if !self.shutting_down.get() {
                self.arm_eventfd_read()?;
            }
        }
        Ok(())
    }

    /// One loop turn (see the module doc).
    fn turn(&self) -> io::Result<()> {
        self.run_ready();
        self.fire_timers();
        self.drain_woken();
        self.submit_and_wait()?;
        self.reap()
    }
}

/// Uninstalls the runtime and tears it down, also when the main future panics.
struct InstallGuard(Rc<Runtime>);

impl Drop for InstallGuard {
    fn drop(&mut self) {
        self.0.shutdown();
        let _ = RUNTIME.try_with(|slot| slot.borrow_mut().take());
    }
}

/// Installs `runtime` on this thread and drives the future made by `make` to completion.
pub(crate) fn run_on<Fut: Future>(
    runtime: Runtime,
    make: impl FnOnce() -> Fut,
) -> io::Result<Fut::Output> {
    let installed = RUNTIME.with(|slot| slot.borrow().is_some());
    if installed {
        panic!(
            "io::block_on/run_shards called inside a running shard \
             (nested runtimes would deadlock)"
        );
    }
    let runtime = Rc::new(runtime);
    RUNTIME.with(|slot| *slot.borrow_mut() = Some(runtime.clone()));
    let _guard = InstallGuard(runtime.clone());
    let mut main = std::pin::pin!(make());
    let main_waker = Waker::from(runtime.main_waker.clone());
    let output = loop {
        if runtime.main_woken.replace(false) {
            if let Poll::Ready(output) = main.as_mut().poll(&mut Context::from_waker(&main_waker)) {
                break output;
            }
        }
        runtime.turn()?;
    };
    // `main` (declared after `_guard`) is dropped first, inside the runtime; then the guard.
    Ok(output)
}

impl Runtime {
    /// Drops every task, cancels what is still in flight and waits (bounded) for the kernel to
    /// let go of the memory; whatever it still holds after that is leaked, never freed.
    fn shutdown(&self) {
        self.shutting_down.set(true);
        self.drop_tasks();
        self.cancel_in_flight();
        let deadline = Instant::now() + Duration::from_millis(SHUTDOWN_DRAIN_MS_MAX);
        while self.ops.borrow().in_flight() > 0 || self.eventfd_read_pending.get() {
            if Instant::now() >= deadline {
                tracing::error!("io ops still in flight at shard shutdown; leaking their memory");
                self.ops.borrow_mut().leak_pending();
                return;
            }
            let _ = self.submit(1, Some(Duration::from_millis(10)));
            let _ = self.reap();
        }
    }

    /// Drops every spawned task. Stale wake-ups of their slots are ignored (`poll_task` checks
    /// the generation), so the runtime goes on with whatever is spawned afterwards.
    pub(crate) fn drop_tasks(&self) {
        // Dropping a task may drop JoinHandles or wake others, never spawn a new task for long:
        // a few rounds suffice, bounded anyway.
        for _ in 0..16 {
            let futures: Vec<_> = {
                let mut tasks = self.tasks.borrow_mut();
                let futures = tasks.slots.iter_mut().flatten().filter_map(|t| t.future.take());
                let futures: Vec<_> = futures.collect();
                tasks.slots.clear();
                tasks.free.clear();
                futures
            };
            if futures.is_empty() {
                break;
            }
            drop(futures);
        }
    }

    /// True while a spawned task is being polled (its slot's future is out), or after one
    /// panicked out of its poll.
    pub(crate) fn is_polling_task(&self) -> bool {
        self.tasks.borrow().slots.iter().flatten().any(|task| task.future.is_none())
    }

    /// Asks the kernel to cancel the op with `user_data` (its completion still arrives).
    pub(crate) fn cancel(&self, user_data: u64) {
        let entry = opcode::AsyncCancel::new(user_data).build().user_data(USER_DATA_CANCEL);
        // SAFETY: a cancellation references no memory. If the SQ cannot take it, the op simply
        // runs to completion: cancellation is only an optimisation.
        let _ = unsafe { self.push_entry(&entry) };
    }

    fn cancel_in_flight(&self) {
        let mut user_datas = self.ops.borrow().pending_user_datas();
        if self.eventfd_read_pending.get() {
            user_datas.push(USER_DATA_EVENTFD);
        }
        for user_data in user_datas {
            let entry = opcode::AsyncCancel::new(user_data).build().user_data(USER_DATA_CANCEL);
            // SAFETY: a cancellation references no memory.
            if unsafe { self.push_entry(&entry) }.is_err() {
                break;
            }
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if !self.eventfd_read_pending.get() {
            // SAFETY: allocated by Box::into_raw in `new`; no read is in flight any more.
            drop(unsafe { Box::from_raw(self.eventfd_buffer) });
        }
    }
}
