//! See `tern_fuzz::segment_recovery` (fuzz/src/segment_recovery.rs) for the input layout and the properties.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tern_fuzz::segment_recovery::run_persistent(data);
});
