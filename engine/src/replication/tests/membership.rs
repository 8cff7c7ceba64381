//! Voters and learners: a replica whose data directory was wiped comes back as a learner, the
//! leader removes its old pair and adds the new one once it caught up, one change at a time,
//! and until then the new replica neither votes nor counts (`replication/membership.rs`).

use super::network::{directory, node, Network};
use crate::replication::{AppendRequest, LogOp, Message, Voter, VoterChange, VoterSet, NO_EPOCH};

fn pinned_to(voters: &[(u32, u64)]) -> VoterSet {
    let voters =
        voters.iter().map(|&(id, wipes)| Voter { node: node(id), directory: directory(id, wipes) });
    VoterSet::new(voters.collect()).expect("voters")
}

/// Three pinned nodes led by 1, with a batch of `offsets` offsets committed everywhere.
fn led_by_one_with_a_committed_batch(offsets: i64) -> Network {
    let mut network = Network::pinned(3);
    network.elect(node(1));
    network.propose(node(1), offsets);
    network.run_for(300, 50);
    network
}

#[test]
fn a_wiped_replica_is_a_learner_until_the_leader_has_replaced_its_old_pair() {
    let mut network = Network::pinned(3);
    network.elect(node(1));
    for _ in 0..5 {
        network.propose(node(1), 3);
    }
    network.run_for(300, 50);
    network.wipe(node(2));
    assert!(!network.replica(node(2)).is_voter(), "a new directory is not the voter's");
    network.run_for(2_000, 50);
    let expected = pinned_to(&[(1, 0), (2, 1), (3, 0)]);
    for id in network.ids() {
        let replica = network.replica(id);
        assert_eq!(replica.voters(), &expected, "{id:?}");
        assert!(replica.is_voter());
    }
    // Remove, then add: two voters batches, both committed, each after the other.
    let leader = network.replica(node(1));
    let changes: Vec<u64> =
        network.voter_sets.keys().map(|value| value - super::network::VOTERS_VALUE_BASE).collect();
    assert_eq!(changes, [0, 1], "one removal and one addition");
    assert!(leader.high_watermark() == leader.log_end_offset());
    assert_eq!(network.settle(2_000), node(1));
}

/// Docs' counter-example: a batch committed on 1 and 2 only; 2 loses its disk; 1 goes down.
/// 3, without the batch, campaigns; the wiped 2 must not elect it.
fn stale_candidate_asks_a_wiped_replica(network: &mut Network, announced: bool) {
    network.commit_without_three_then_crash_one();
    network.wipe_unannounced(node(2));
    if announced {
        network.announce_directory(node(2));
    }
    network.now_ms += 10_000;
    network.campaign(node(3));
}

#[test]
fn a_wiped_replica_grants_no_vote_so_a_stale_candidate_cannot_win() {
    // Whether or not 3 has learned 2's new directory: 2 itself knows it is a learner.
    for announced in [false, true] {
        let mut network = Network::pinned(3);
        stale_candidate_asks_a_wiped_replica(&mut network, announced);
        assert!(network.leaders().is_empty(), "{:?}", network.replica(node(3)));
        network.run_for(5_000, 50);
        assert!(network.leaders().is_empty(), "nobody with the batch can be elected yet");
        network.restart(node(1));
        let leader = network.settle(5_000);
        assert_eq!(leader, node(1), "only 1 holds the committed batch");
    }
}

#[test]
#[should_panic(expected = "lacks committed")]
fn the_checker_catches_a_wiped_replica_that_votes() {
    let mut network = Network::pinned(3);
    for id in [1, 2, 3] {
        network.node_mut(node(id)).config.planted_wiped_replica_votes = true;
    }
    // 3 has not heard of 2's new directory: only 2's own check could refuse.
    stale_candidate_asks_a_wiped_replica(&mut network, false);
}

#[test]
fn a_learner_acknowledgement_commits_nothing() {
    let mut network = led_by_one_with_a_committed_batch(2);
    network.crash(node(3));
    network.wipe(node(2));
    network.run_for(300, 50);
    // The old pair of 2 is removed (the new set {1, 3} takes effect at once) but 3 is down:
    // nothing commits, however much the learner 2 holds (until check-quorum steps 1 down).
    let stuck = network.replica(node(1)).high_watermark();
    network.propose(node(1), 1);
    network.run_for(300, 50);
    assert_eq!(network.node(node(2)).log.end_offset(), network.node(node(1)).log.end_offset());
    assert_eq!(network.replica(node(1)).high_watermark(), stuck);
    assert_eq!(network.replica(node(1)).voters(), &pinned_to(&[(1, 0), (3, 0)]));
    network.restart(node(3));
    assert_eq!(network.settle(5_000), node(1));
    network.run_for(2_000, 50);
    assert_eq!(network.replica(node(3)).voters(), &pinned_to(&[(1, 0), (2, 1), (3, 0)]));
}

#[test]
fn unpinned_voters_are_pinned_to_the_directories_their_nodes_run_on() {
    let mut network = Network::with(
        3,
        |config| config.directory = directory(config.node_id.0, 0),
        |_| Default::default(),
    );
    network.elect(node(2));
    network.run_for(3_000, 50);
    for id in network.ids() {
        assert_eq!(network.replica(id).voters(), &pinned_to(&[(1, 0), (2, 0), (3, 0)]));
    }
    assert_eq!(network.voter_sets.len(), 3, "one voter at a time");
}

/// `super::append`'s request from leader 1 in epoch 1 from offset 0, naming a voters batch
/// of `voters` at `offset`.
fn append_naming_voters(
    entries: &[(i64, i64, i32)],
    offset: i64,
    voters: VoterSet,
) -> Message<super::Payload> {
    let Message::AppendRequest(request) = super::append(1, 1, (-1, NO_EPOCH), 0, entries) else {
        unreachable!("append builds an append request")
    };
    let voter_changes = vec![VoterChange { offset, voters }];
    Message::AppendRequest(AppendRequest { voter_changes, ..request })
}

#[test]
fn a_truncated_voters_batch_takes_its_set_back() {
    let mut replica = super::replica(2, 3);
    let initial = replica.voters().clone();
    let reduced = initial.without(node(2)).expect("two voters left");
    let request = append_naming_voters(&[(0, 1, 1), (1, 2, 1)], 1, reduced.clone());
    replica.handle_message(node(1), request, 0);
    assert_eq!(replica.voters(), &reduced, "in force once in the log, committed or not");
    assert!(!replica.is_voter());
    // A leader of epoch 2 that never had it overwrites offset 1.
    replica.handle_message(node(3), super::append(2, 3, (0, 1), 0, &[(1, 2, 2)]), 10);
    assert_eq!(replica.voters(), &initial);
    assert!(replica.is_voter());
}

#[test]
fn a_voters_batch_that_names_no_single_offset_entry_is_ignored() {
    let mut replica = super::replica(2, 3);
    let reduced = replica.voters().without(node(3)).expect("two voters left");
    replica.handle_message(node(1), append_naming_voters(&[(0, 3, 1)], 0, reduced), 0);
    assert_eq!(replica.log_end_offset(), 0, "a malformed append changes nothing");
    let outsider = VoterSet::new(vec![Voter { node: node(9), directory: None }]).expect("set");
    replica.handle_message(node(1), append_naming_voters(&[(0, 1, 1)], 0, outsider), 0);
    assert_eq!(replica.log_end_offset(), 0, "a set naming another broker is not taken");
}

#[test]
fn a_voters_batch_the_driver_could_not_append_in_time_is_abandoned_and_proposed_again() {
    let mut network = led_by_one_with_a_committed_batch(1);
    network.wipe_unannounced(node(2));
    let new_directory = network.node(node(2)).config.directory.expect("pinned");
    let now_ms = network.now_ms;
    let leader = network.node_mut(node(1)).replica.as_mut().expect("running");
    leader.handle_peer_directory(node(2), new_directory, now_ms);
    let ready = leader.poll_ready().expect("the removal");
    assert!(ready.log_ops.iter().any(|op| matches!(op, LogOp::AppendVoters { .. })));
    let epoch = leader.epoch();
    assert!(leader.may_append_voters(epoch));
    // While its driver records the batch, the leader starts handing over: no append now.
    assert!(leader.transfer_leadership(node(3), now_ms));
    assert!(!leader.may_append_voters(epoch));
    leader.abandon_voters_change();
    network.process(node(1));
    network.announce_directory(node(2));
    network.run_for(3_000, 50);
    for id in network.ids() {
        assert_eq!(network.replica(id).voters(), &pinned_to(&[(1, 0), (2, 1), (3, 0)]), "{id:?}");
    }
}
