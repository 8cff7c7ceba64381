//! Bodies of the log-level fuzz targets. Each module uses only `tern`'s public API and `std`,
//! so `engine/tests/fuzz_corpus.rs` includes the same files by path and replays the committed
//! corpora on stable Rust (the protocol targets' bodies live in `tern::protocol::fuzzing`; these
//! stay out of the engine because `protocol` must not depend on `log` or `io`).

pub mod broker;
pub mod broker_seeds;
pub mod index;
pub mod segment_recovery;
pub mod peer_frame;
pub mod state_files;
