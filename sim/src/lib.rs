//! `tern-sim`: runs Tern's broker code on madsim under injected faults and checks what its
//! clients saw. Build with `RUSTFLAGS="--cfg madsim"`; see docs/simulation.md.
//!
//! - [`history`], [`checker`]: the Jepsen-style history and its properties (pure; also built
//!   without madsim so the checker's unit tests run anywhere).
//! - [`plan`]: a scenario as a function of the seed (swarm fault rates); pure.
//! - [`trace`]: the trace hash over delivered frames, faults and client operations.
//! - `client`, `workload`, `nemesis`, `run` (cfg(madsim)): the Kafka client, the producers and
//!   consumers, the fault injector, and the runner of one seed.

pub mod checker;
pub mod history;
pub mod plan;
pub mod trace;

#[cfg(madsim)]
pub mod client;
#[cfg(madsim)]
pub mod nemesis;
#[cfg(madsim)]
pub mod run;
#[cfg(madsim)]
pub mod workload;
