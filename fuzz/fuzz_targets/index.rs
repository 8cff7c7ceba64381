//! See `tern_fuzz::index` (fuzz/src/index.rs) for the input layout and the properties.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tern_fuzz::index::run(data);
});
