//! The partition log: segments, offset and time indexes, recovery, retention, group commit.
//!
//! Architecture invariant: the log never sees a socket and never touches the OS except through
//! `crate::io` files.

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod layout;
pub mod offset_index;
pub mod record_timestamps;
pub mod retention;
pub mod scan;
pub mod time_index;

pub use config::{FlushPolicy, LogConfig};
pub use error::{LogError, LogHealth, LogStatus};
