//! Arbitrary bytes through the request frame decoder and request decoder: no panic, no
//! unbounded allocation. The body lives in `tern::protocol::fuzzing` so a stable test can
//! replay the corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tern::protocol::fuzzing::request_frame(data);
});
