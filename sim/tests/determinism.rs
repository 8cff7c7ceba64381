//! Determinism: one seed, one trace. The hash covers every frame a client sent or received,
//! every fault and every client operation (not the configuration), so two seeds hash apart,
//! and a planted dependence on `HashMap` order is caught.
#![cfg(madsim)]

use tern_sim::plan::{Plant, Scenario};
use tern_sim::run::{run_seed, run_seed_with};

/// Where two runs' traces first differ, for the failure message.
fn first_divergence(scenario: Scenario, seed: u64, plant: Option<Plant>) -> String {
    let first = run_seed_with(scenario, seed, plant, true);
    let second = run_seed_with(scenario, seed, plant, true);
    let pairs = first.trace.dump.iter().zip(&second.trace.dump);
    match pairs.enumerate().find(|(_, (a, b))| a != b) {
        Some((index, (a, b))) => format!("item {index}:\n  {a:.300}\n  {b:.300}"),
        None => "no divergence in the dumped items".to_string(),
    }
}

#[test]
fn the_same_seed_gives_the_same_trace_hash() {
    let scenarios = [
        Scenario::SingleBrokerCrash,
        Scenario::SingleBrokerNetwork,
        Scenario::SingleBrokerIdempotent,
        Scenario::CoordinatorCrash,
        Scenario::ThreeBrokerCrash,
        Scenario::ThreeBrokerPartition,
        Scenario::FiveBrokerPartition,
        Scenario::FiveBrokerCrash,
        Scenario::ThreeBrokerIdempotent,
    ];
    for scenario in scenarios {
        for seed in [3, 11] {
            let first = run_seed(scenario, seed, None);
            let second = run_seed(scenario, seed, None);
            assert!(first.trace.events > 1_000, "a trace this short hashes little");
            assert_eq!(
                first.trace.hash,
                second.trace.hash,
                "{} seed {seed} is not deterministic; first divergence: {}",
                scenario.name(),
                first_divergence(scenario, seed, None)
            );
            assert_eq!(first.report.acknowledged, second.report.acknowledged);
        }
    }
}

#[test]
fn different_seeds_give_different_trace_hashes() {
    let mut hashes: Vec<u64> =
        (0..6).map(|seed| run_seed(Scenario::SingleBrokerNetwork, seed, None).trace.hash).collect();
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(hashes.len(), 6, "two seeds share a trace hash");
}

#[test]
fn planted_hashmap_order_nondeterminism_is_caught() {
    let seed = 5;
    let first = run_seed(Scenario::SingleBrokerCrash, seed, Some(Plant::HashMapOrder));
    let second = run_seed(Scenario::SingleBrokerCrash, seed, Some(Plant::HashMapOrder));
    assert_ne!(
        first.trace.hash, second.trace.hash,
        "the determinism check missed a HashMap-order dependence"
    );
}
