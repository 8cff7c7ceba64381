//! Tern: a Kafka-compatible log broker.
//!
//! The crate is layered; each layer is a folder and may use only the layers below it:
//!
//! - [`io`]: THE boundary to the operating system (io_uring shards) or the simulator (madsim).
//!   Nothing else touches clocks, threads, files, sockets or randomness.
//! - [`protocol`]: Kafka wire format: framing, headers, API dispatch tables, record-batch v2 view.
//! - [`log`]: the partition log: segments, indexes, recovery, retention, group commit.
//! - [`replication`]: (later) sans-IO Raft replica per partition.
//! - [`metrics`]: latency histograms (pure data), summarised in the log at shutdown.
//! - [`broker`]: request handlers, topic registry, shard routing, connection handling.
//!
//! See `docs/architecture.md` for the code map and the invariants of each layer.

pub mod broker;
pub mod io;
pub mod log;
pub mod metrics;
pub mod protocol;
pub mod replication;
