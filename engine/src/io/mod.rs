//! THE I/O boundary: spawn, time, randomness, files, sockets.
//!
//! Nothing outside this module touches clocks, threads, files, sockets or randomness. Two
//! backends implement the same API, chosen at compile time:
//! - `uring` (default, Linux): one io_uring + one single-threaded executor per shard thread.
//! - `sim` (`--cfg madsim`): madsim tasks, time and network, plus [`SimDisk`].
//!
//! The API is completion-based with owned buffers ([`IoBuf`], [`IoBufMut`]): a buffer in flight
//! belongs to the kernel (or simulator) until its completion; dropping the future never frees it.
//! [`SimDisk`] is compiled in both configurations, so ordinary tests can crash a disk.
//!
//! # Contract for callers
//! - Reads fill the spare capacity (`bytes_init()..bytes_total()`) and grow the initialised
//!   length; writes send `[0..bytes_init())`. Pass `Vec::with_capacity(n)` to read `n` bytes.
//! - Dropping an I/O future cancels the operation (io_uring `ASYNC_CANCEL`), but it may already
//!   have happened: a dropped write may or may not have reached the file, a dropped read may have
//!   consumed bytes from a socket. Drop reads on a stream only when giving the stream up.
//! - [`Stream`] and [`File`] are cheap `Clone`s of one shared handle: give a stream's clones to a
//!   reader task and a writer task. Everything here is `!Send` except the [`mesh`] handles.
//! - Entry points: [`run_shards`] (the broker: a pinned thread per shard), [`block_on`] (tests
//!   and tools: one shard on this thread), [`run_shards_async`] (the same from async code; the
//!   only form usable inside a simulation). Under madsim, `Listener::bind` completes in the
//!   background: a bind error shows at the first `accept`.
//! - Directory operations on [`Disk`] are synchronous (rare, off the data path); file data
//!   operations on the `Os` disk are io_uring operations.
//!
//! Invariant: a broken internal invariant (a bug) aborts the process (`io::bug`), because one
//! unwinding shard would leave its siblings serving on broken shared assumptions.

mod buf;
mod fs;
pub mod local;
pub mod mesh;
mod net;
mod sim_disk;
mod time;

#[cfg(madsim)]
mod sim;
#[cfg(madsim)]
use sim as backend;
#[cfg(not(madsim))]
mod uring;
#[cfg(not(madsim))]
use uring as backend;

pub use buf::{Bounded, IoBuf, IoBufMut};
pub use fs::{Disk, File, OpenOptions};
#[cfg(not(madsim))]
pub use net::ensure_not_listening;
pub use net::{Listener, Stream};
pub use sim_disk::{CrashMode, DiskLatency, SimDisk, SECTOR_SIZE_BYTES};
pub use time::{timeout, yield_now, Elapsed, Instant};

pub use backend::{
    block_on, current_shard, now, random_u64, run_shards, run_shards_async, set_pin_shards, sleep,
    sleep_until, spawn_local, unix_time_ms, JoinHandle,
};
/// Test and fuzzing hooks of the io_uring backend (madsim seeds and tears down by itself).
#[cfg(not(madsim))]
pub use backend::{drop_spawned_tasks, seed_random};

/// A random (version 4) UUID from [`random_u64`]: topic ids, data-directory ids. In the
/// simulator the seed fixes it, like every other random choice.
pub fn random_uuid() -> uuid::Uuid {
    let bits = (u128::from(random_u64()) << 64) | u128::from(random_u64());
    uuid::Builder::from_random_bytes(bits.to_be_bytes()).into_uuid()
}

/// Reports a broken internal invariant and exits the process (thread-per-core rule).
#[cold]
pub(crate) fn bug(message: &str) -> ! {
    tracing::error!(message, "tern io: internal invariant broken; aborting");
    eprintln!("tern io: internal invariant broken: {message}; aborting");
    std::process::abort()
}

#[cfg(all(test, madsim))]
mod sim_tests;
#[cfg(all(test, not(madsim)))]
mod tests;
