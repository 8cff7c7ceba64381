//! A broker in a cluster: the controller (the metadata Raft group every broker votes in, and
//! the applier of its committed records), where partitions' replicas go, and how replica
//! messages travel between shards and brokers.
//!
//! Layout of a cluster broker (`docs/replication.md`):
//! - shard 0 runs the peer transport (one connection per broker pair, `peer/transport.rs`)
//!   and the controller (`controller.rs`) with its metadata log `__cluster_metadata-0`;
//! - each shard runs the replicated partitions it owns (`broker/partition/`), whose messages
//!   reach shard 0's transport through the shard's outbox and come back routed to the owner
//!   shard (`routing.rs`);
//! - every broker applies the committed metadata records (`image.rs`) and opens a replica for
//!   each partition the assignment gives it (`assignment.rs`);
//! - every broker tells the others which partitions it leads (`leadership.rs`), so that one
//!   hosting no replica of a partition still names its leader;
//! - a broker cut off from the controller quorum stops serving clients (`cut_off.rs`);
//! - the controller's leader fences a broker it cannot reach (`fencing.rs`).

pub mod assignment;
pub mod controller;
pub mod cut_off;
pub mod fencing;
pub mod forward;
pub mod image;
pub mod leadership;
pub mod routing;

pub use controller::{Controller, ProposeError, METADATA_PARTITION, METADATA_TOPIC};
