//! See `tern_fuzz::broker` (fuzz/src/broker.rs) for the input layout and the properties.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tern_fuzz::broker::run_persistent(data);
});
