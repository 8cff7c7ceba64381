//! `sim_schedule`: the fuzzer's bytes choose the seed and the fault schedule of a short
//! crash-scenario simulation (`tern_sim::plan::Plan::scheduled` documents the layout); any
//! checker anomaly is a crash. Build with `RUSTFLAGS="--cfg madsim"` (docs/fuzzing.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_sim::plan::Plan;
use tern_sim::run::run_plan;

fuzz_target!(|bytes: &[u8]| {
    let outcome = run_plan(Plan::scheduled(bytes), false);
    if outcome.failed() {
        panic!("{}\n{:?}", outcome.line(), outcome.report.examples);
    }
});
