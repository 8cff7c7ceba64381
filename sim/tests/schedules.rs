//! Fuzzer-chosen fault schedules (`sim/fuzz`, target `sim_schedule`): every committed corpus
//! input and every regression input replays here, on stable Rust, through the same
//! `Plan::scheduled` + `run_plan` the fuzz target runs, and must pass the checker.
#![cfg(madsim)]

use std::path::Path;

use tern_sim::plan::{FaultKind, Plan, ScheduledFault};
use tern_sim::run::run_plan;

fn replay_dir(relative: &str) -> usize {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let Ok(entries) = std::fs::read_dir(&directory) else { return 0 };
    let mut paths: Vec<_> = entries.filter_map(|entry| entry.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in &paths {
        let bytes = std::fs::read(path).expect("readable input");
        let outcome = run_plan(Plan::scheduled(&bytes), false);
        assert!(!outcome.failed(), "{}: {}", path.display(), outcome.line());
    }
    paths.len()
}

#[test]
fn every_committed_schedule_passes_the_checker() {
    let replayed =
        replay_dir("fuzz/corpus/sim_schedule") + replay_dir("fuzz/regressions/sim_schedule");
    assert!(replayed >= 5, "the seed corpus is committed");
}

#[test]
fn a_schedule_is_decoded_from_its_bytes_and_replays_the_same() {
    let mut bytes = 7u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(&[50, 30, 7, 20, 0, 255]);
    let plan = Plan::scheduled(&bytes);
    assert_eq!((plan.seed, plan.torn_crash_percent), (7, 50));
    let schedule = plan.schedule.clone().expect("a schedule");
    let expected = [
        ScheduledFault { delay_ms: 480, kind: FaultKind::PhantomWrite },
        ScheduledFault { delay_ms: 320, kind: FaultKind::Crash },
    ];
    assert_eq!(schedule, expected, "pairs of (delay / 16 ms, kind); an odd byte is ignored");
    assert_eq!(plan.fault_kinds, vec![FaultKind::Crash, FaultKind::PhantomWrite]);
    let first = run_plan(plan.clone(), false);
    let second = run_plan(plan, false);
    assert!(!first.failed(), "{}", first.line());
    assert_eq!(first.trace.hash, second.trace.hash);
}
