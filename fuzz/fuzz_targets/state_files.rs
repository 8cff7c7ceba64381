//! See `tern_fuzz::state_files` (fuzz/src/state_files.rs) for the input layout and the properties.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tern_fuzz::state_files::run(data);
});
