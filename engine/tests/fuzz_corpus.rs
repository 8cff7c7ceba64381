//! Replays every committed fuzz seed (`fuzz/corpus/<target>/`) and every crash reproducer
//! (`fuzz/regressions/<target>/`) through the same functions the fuzz targets call, so they
//! are checked by `cargo test` on stable Rust, without libFuzzer.

use std::path::{Path, PathBuf};

use tern::protocol::fuzzing;

// The log-level targets' and the broker target's bodies live in the fuzz crate (they use only
// `tern`'s public API).
#[path = "../../fuzz/src/broker.rs"]
#[allow(dead_code)] // `run_persistent` serves the fuzzer, the rest the seed generator.
mod broker;
#[path = "../../fuzz/src/index.rs"]
mod index;
#[path = "../../fuzz/src/peer_frame.rs"]
mod peer_frame;
#[path = "../../fuzz/src/segment_recovery.rs"]
#[allow(dead_code)] // `Case::encode` serves the seed generator, `run_persistent` the fuzzer.
mod segment_recovery;
#[path = "../../fuzz/src/state_files.rs"]
#[allow(dead_code)] // The seed generator joins group-record inputs.
mod state_files;

/// Every file of `fuzz/<kind>/<target>/`, sorted; none when the directory does not exist.
fn files_in(kind: &str, target: &str) -> Vec<PathBuf> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz").join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&directory) else { return Vec::new() };
    let mut files: Vec<PathBuf> =
        entries.map(|entry| entry.expect("corpus entry").path()).collect();
    files.sort();
    files
}

fn seeds(target: &str) -> Vec<PathBuf> {
    let files = files_in("corpus", target);
    assert!(!files.is_empty(), "seed corpus fuzz/corpus/{target} is missing or empty");
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    let mut files = seeds(target);
    files.extend(files_in("regressions", target));
    for path in files {
        let data = std::fs::read(&path).expect("seed is readable");
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target} fails on {}", path.display());
    }
}

#[test]
fn request_frame_seeds_pass() {
    replay("request_frame", fuzzing::request_frame);
}

#[test]
fn record_batch_seeds_pass() {
    replay("record_batch", fuzzing::record_batch);
}

#[test]
fn segment_recovery_seeds_pass() {
    replay("segment_recovery", segment_recovery::run);
}

#[test]
fn index_seeds_pass() {
    replay("index", index::run);
}

#[test]
fn state_files_seeds_pass() {
    replay("state_files", state_files::run);
}

#[test]
fn peer_frame_seeds_pass() {
    replay("peer_frame", peer_frame::run);
}

#[test]
fn broker_seeds_pass() {
    replay("broker", broker::run);
}
