//! Tern: a Kafka-compatible log broker.
//!
//! The crate is layered; each layer is a folder and may use only the layers below it:
//!
//! - [`io`]: THE boundary to the operating system (io_uring shards) or the simulator (madsim).
//!   Nothing else touches clocks, threads, files, sockets or randomness.
//! - [`record_batch`]: the record batch v2 view (header, CRC32C, framing, building, conversion,
//!   compaction rewrites): what the log stores and the wire carries; knows neither.
//! - [`protocol`]: Kafka wire format: framing, headers, API dispatch tables.
//! - [`log`]: the partition log: segments, indexes, recovery, retention, group commit.
//! - [`replication`]: the sans-IO Raft replica per partition (epochs as terms, offsets as
//!   entries); pure, no `io`. Its driver is not built yet.
//! - [`metrics`]: latency histograms (pure data), summarised in the log at shutdown.
//! - [`broker`]: request handlers, topic registry, shard routing, connection handling.
//!
//! See `docs/architecture.md` for the code map and the invariants of each layer.

pub mod broker;
pub mod io;
pub mod log;
pub mod metrics;
pub mod protocol;
pub mod record_batch;
pub mod replication;
