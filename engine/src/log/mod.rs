//! The partition log: segments, offset and time indexes, recovery, retention, group commit.
//!
//! Architecture invariant: the log never sees a socket and never touches the OS except through
//! `crate::io` files.
