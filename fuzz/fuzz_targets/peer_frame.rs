//! See `tern_fuzz::peer_frame` (fuzz/src/peer_frame.rs) for the properties.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tern_fuzz::peer_frame::run(data);
});
