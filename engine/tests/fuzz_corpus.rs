//! Replays every committed fuzz seed (`fuzz/corpus/<target>/`) through the same functions
//! the fuzz targets call, so the corpora (and any crash reproducer added to them) are
//! checked by `cargo test` on stable Rust, without libFuzzer.

use std::path::{Path, PathBuf};

use tern::protocol::fuzzing;

fn seeds(target: &str) -> Vec<PathBuf> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let entries = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("seed corpus {} missing: {error}", directory.display()));
    let mut files: Vec<PathBuf> =
        entries.map(|entry| entry.expect("corpus entry").path()).collect();
    files.sort();
    assert!(!files.is_empty(), "seed corpus {} is empty", directory.display());
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    for path in seeds(target) {
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
