//! Planted bugs: a checker that never fired is not evidence. Each test plants one known bug
//! and asserts that the simulator finds it, by the right property, within at most 100 seeds of
//! the CI seed set, and prints the replay command.
#![cfg(madsim)]

use tern_sim::plan::{Plant, Scenario};
use tern_sim::run::run_seed;

/// The bound on seeds searched per planted bug.
const SEEDS_MAX: u64 = 100;

/// Runs seeds until one fails; asserts one of `expected` fired there.
fn find(plant: Plant, scenario: Scenario, expected: &[&str]) {
    for seed in 0..SEEDS_MAX {
        let outcome = run_seed(scenario, seed, Some(plant));
        if !outcome.failed() {
            continue;
        }
        println!("{}\nreplay: {}", outcome.line(), outcome.replay_command());
        let fired: Vec<&str> = outcome.report.counts.keys().copied().collect();
        assert!(
            expected.iter().any(|property| fired.contains(property)),
            "{} was found as {fired:?}, expected one of {expected:?}",
            plant.name()
        );
        return;
    }
    panic!("{} not found in {SEEDS_MAX} seeds", plant.name());
}

#[test]
fn planted_ack_before_sync_is_found_as_lost_acknowledged_writes() {
    find(
        Plant::AckBeforeSync,
        Scenario::SingleBrokerCrash,
        &["lost-write", "unseen", "inconsistent-offsets"],
    );
}

#[test]
fn planted_dropped_read_is_found_as_a_poll_skip() {
    find(Plant::DropRead, Scenario::SingleBrokerNetwork, &["poll-skip", "int-poll-skip"]);
}

#[test]
fn planted_reused_offset_is_found_as_inconsistent_offsets() {
    find(Plant::ReuseOffset, Scenario::SingleBrokerNetwork, &["inconsistent-offsets", "duplicate"]);
}

#[test]
fn planted_missing_duplicate_detection_is_found_as_a_duplicate() {
    find(Plant::NoDedup, Scenario::SingleBrokerIdempotent, &["duplicate"]);
}

#[test]
fn planted_commit_before_sync_is_found_as_a_lost_or_regressed_committed_offset() {
    find(
        Plant::CommitBeforeSync,
        Scenario::CoordinatorCrash,
        &["committed-offset-regressed", "committed-offset-lost"],
    );
}

#[test]
fn planted_serve_above_high_watermark_is_found_as_a_read_above_it() {
    find(
        Plant::ServeAboveHighWatermark,
        Scenario::SingleBrokerCrash,
        &["read-above-high-watermark", "inconsistent-offsets"],
    );
}

#[test]
fn planted_ack_before_durable_is_found_as_lost_committed_writes() {
    // A batch committed on a follower's unsynced acknowledgement vanishes when that follower
    // and the leader lose power together and the others elect a leader without it: its
    // offsets are reused (two values at one position, a consumer's reads skipping one) and
    // the high watermark a consumer saw goes back.
    find(
        Plant::AckBeforeDurable,
        Scenario::ThreeBrokerCrash,
        &[
            "lost-write",
            "unseen",
            "inconsistent-offsets",
            "high-watermark-regressed",
            "poll-skip",
            "int-poll-skip",
        ],
    );
}

#[test]
fn planted_commit_without_a_majority_is_found_as_lost_committed_writes() {
    // A leader cut off with a minority keeps acknowledging alone; the majority's new leader
    // overwrites those offsets.
    find(
        Plant::CommitWithoutMajority,
        Scenario::ThreeBrokerPartition,
        &["lost-write", "unseen", "inconsistent-offsets", "high-watermark-regressed"],
    );
}

#[test]
fn planted_vote_twice_is_found_as_two_leaders_in_one_epoch() {
    // Two candidates of one epoch both win when a follower votes for each: Metadata answers
    // from different brokers name both.
    find(Plant::VoteTwice, Scenario::ThreeBrokerPartition, &["two-leaders-in-epoch"]);
}

#[test]
fn planted_vote_without_a_log_check_is_found_as_lost_committed_writes() {
    // A replica missing committed entries wins an election (its voters skip the log
    // comparison) and overwrites them on the followers that had not learned the commit yet:
    // their offsets are reused.
    find(
        Plant::VoteWithoutLogCheck,
        Scenario::ThreeBrokerCrash,
        &[
            "lost-write",
            "unseen",
            "inconsistent-offsets",
            "high-watermark-regressed",
            "poll-skip",
            "int-poll-skip",
        ],
    );
}

#[test]
fn planted_follower_without_producer_state_is_found_as_a_duplicate() {
    // A retry whose first attempt was replicated reaches the new leader after a failover;
    // its copy left no producer state there, so the retry is appended again.
    find(Plant::NoProducerStateOnFollower, Scenario::ThreeBrokerIdempotent, &["duplicate"]);
}

// No test for `vote-before-sync`: found as two-leaders-in-epoch in 1 seed of 300
// (`three-broker-crash` seed 153), too rarely for the CI bound (docs/simulation.md).

#[test]
fn a_failing_seed_prints_a_replay_command_that_reproduces_it() {
    let seed = 3;
    let outcome = run_seed(Scenario::SingleBrokerCrash, seed, Some(Plant::AckBeforeSync));
    assert!(outcome.failed(), "{}", outcome.line());
    let command = outcome.replay_command();
    for part in
        ["--scenario single-broker-crash", "--seeds 1", "--seed 3", "--plant ack-before-sync"]
    {
        assert!(command.contains(part), "{command} lacks {part}");
    }
    let replayed = run_seed(Scenario::SingleBrokerCrash, seed, Some(Plant::AckBeforeSync));
    assert_eq!(replayed.trace.hash, outcome.trace.hash);
    assert_eq!(replayed.report.counts, outcome.report.counts);
}

#[test]
fn planted_wiped_replica_votes_is_found_as_lost_committed_writes() {
    // A broker back on a wiped disk votes as the voter it was, with the leader down: the
    // third replica, behind, is elected by it and overwrites what the leader and the old
    // disk had acknowledged (two values at one offset, a consumer's reads skipping one).
    find(
        Plant::WipedReplicaVotes,
        Scenario::ThreeBrokerWipe,
        &[
            "lost-write",
            "unseen",
            "inconsistent-offsets",
            "high-watermark-regressed",
            "two-leaders-in-epoch",
        ],
    );
}
