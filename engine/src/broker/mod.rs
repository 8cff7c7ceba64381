//! The broker: request handlers, topic registry, shard routing and connections.
//!
//! Architecture invariant: the broker reaches the OS only through `crate::io`; partition data
//! only through `crate::log`; bytes on the wire only through `crate::protocol`.

pub mod cluster;
pub mod config;
pub mod connection;
pub mod errors;
pub mod fetch_regions;
pub mod groups;
pub mod handlers;
pub mod memory;
pub mod metadata_file;
pub mod partition;
pub mod peer;
pub mod producer_ids;
pub mod server;
pub mod shard;
pub mod topic_configs;
pub mod topics;

pub use config::BrokerConfig;
pub use server::{Broker, ShutdownHandle, StartError};
