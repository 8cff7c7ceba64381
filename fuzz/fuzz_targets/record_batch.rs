//! Arbitrary bytes as a produce payload: splitting and validation never panic, and valid
//! batches stay valid after their base offset is patched. Body in `tern::protocol::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tern::protocol::fuzzing::record_batch(data);
});
