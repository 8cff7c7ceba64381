//! Leadership transfer and retiring (controlled shutdown) over the simulated network: the
//! hand-over costs no election timeout, waits for the target to catch up with writes
//! stopped, gives up or steps down when the target does not take over, and a retiring
//! replica never leads again. The checker's read-lease property runs after every step.

use super::network::{node, Network};
use super::{drain, heartbeat, replica, vote_request};
use crate::replication::{Message, Role, TimeoutNow, VoteRequest, VoteResponse};

/// Three nodes, node 1 leading epoch 1 with `batches` committed batches of 2 offsets.
fn led_by_one(batches: usize) -> Network {
    let mut network = Network::new(3);
    network.elect(node(1));
    for _ in 0..batches {
        network.propose(node(1), 2);
    }
    network.deliver_all();
    network
}

#[test]
fn a_leader_hands_over_to_a_caught_up_follower_without_waiting_for_an_election_timeout() {
    let mut network = led_by_one(3);
    let committed = network.replica(node(1)).high_watermark();
    let before_ms = network.now_ms;
    assert!(network.transfer(node(1), node(2)));
    assert!(!network.replica(node(1)).accepts_writes(), "writes stop at once");
    network.deliver_all();
    // No time passed: the target campaigned on TimeoutNow, the others voted at once.
    assert_eq!(network.now_ms, before_ms);
    assert_eq!(network.leaders(), [node(2)]);
    assert_eq!(network.replica(node(2)).epoch(), 2);
    for id in [node(1), node(3)] {
        let replica = network.replica(id);
        assert_eq!((replica.role(), replica.leader()), (Role::Follower, Some(node(2))));
    }
    // The new leader commits its own epoch and everything before it.
    assert!(network.replica(node(2)).high_watermark() > committed);
    let batch = network.propose(node(2), 1);
    network.run_for(200, 100);
    assert_eq!(network.replica(node(1)).high_watermark(), batch.next_offset);
}

#[test]
fn a_transfer_waits_until_the_target_holds_the_whole_log() {
    let mut network = led_by_one(1);
    // Node 3 misses two batches.
    network.partition(&[node(3)]);
    network.propose(node(1), 2);
    network.propose(node(1), 2);
    network.deliver_all();
    assert!(network.transfer(node(1), node(3)));
    network.deliver_all();
    let sent_timeout_now = |network: &Network| {
        network.queue.iter().any(|envelope| matches!(envelope.message, Message::TimeoutNow(_)))
    };
    assert!(!sent_timeout_now(&network));
    assert_eq!(network.replica(node(1)).transfer_target(), Some(node(3)));
    assert!(!network.replica(node(1)).accepts_writes());
    // The leader's heartbeats bring node 3 up to date; then it is told to campaign.
    network.heal();
    network.run_for(300, 50);
    assert_eq!(network.leaders(), [node(3)]);
    let leader_end = network.replica(node(3)).log_end_offset();
    assert_eq!(network.replica(node(1)).log_end_offset(), leader_end);
}

#[test]
fn a_transfer_to_a_target_that_never_catches_up_is_abandoned_and_writes_resume() {
    let mut network = led_by_one(1);
    network.partition(&[node(3)]);
    network.propose(node(1), 2);
    network.deliver_all();
    assert!(network.transfer(node(1), node(3)));
    assert!(!network.transfer(node(1), node(2)), "one transfer at a time");
    network.run_for(900, 100);
    assert!(!network.replica(node(1)).accepts_writes());
    network.run_for(200, 100);
    let leader = network.replica(node(1));
    assert_eq!((leader.is_leader(), leader.epoch()), (true, 1));
    assert!(leader.accepts_writes(), "the transfer was given up after an election timeout");
    assert!(leader.has_read_lease(network.now_ms), "no TimeoutNow left: the lease stands");
    network.propose(node(1), 1);
}

#[test]
fn a_leader_whose_timeout_now_was_lost_serves_no_reads_and_steps_down() {
    let mut network = led_by_one(2);
    assert!(network.replica(node(1)).has_read_lease(network.now_ms));
    assert!(network.transfer(node(1), node(2)));
    // The TimeoutNow is lost with its target's process.
    network.crash(node(2));
    network.deliver_all();
    assert!(!network.replica(node(1)).has_read_lease(network.now_ms), "given up at sending");
    network.run_for(1_100, 100);
    assert!(!network.replica(node(1)).is_leader(), "stepped down after an election timeout");
    network.restart(node(2));
    let leader = network.settle(10_000);
    assert!(network.replica(leader).epoch() >= 2);
}

#[test]
fn voters_still_hearing_from_the_leader_grant_only_a_transfer_vote() {
    let mut follower = replica(3, 3);
    follower.handle_message(node(1), heartbeat(1, 1), 10);
    drain(&mut follower);
    // A candidate of epoch 2 that the leader did not hand over to is refused ...
    follower.handle_message(node(2), vote_request(2, 2, 0, 1), 20);
    let refused = VoteResponse { epoch: 1, granted: false, pre_vote: false };
    assert_eq!(drain(&mut follower).messages, [(node(2), Message::VoteResponse(refused))]);
    assert_eq!((follower.epoch(), follower.leader()), (1, Some(node(1))));
    // ... and granted when it campaigns on the leader's TimeoutNow.
    let Message::VoteRequest(request) = vote_request(2, 2, 0, 1) else { unreachable!() };
    let transfer = Message::VoteRequest(VoteRequest { transfer: true, ..request });
    follower.handle_message(node(2), transfer, 30);
    let granted = VoteResponse { epoch: 2, granted: true, pre_vote: false };
    assert_eq!(drain(&mut follower).messages, [(node(2), Message::VoteResponse(granted))]);
}

#[test]
fn a_timeout_now_from_anyone_but_the_current_leader_is_ignored() {
    let mut follower = replica(3, 3);
    follower.handle_message(node(1), heartbeat(1, 1), 10);
    drain(&mut follower);
    let from_two = Message::TimeoutNow(TimeoutNow { epoch: 1, leader: node(2) });
    follower.handle_message(node(2), from_two, 20);
    let stale = Message::TimeoutNow(TimeoutNow { epoch: 0, leader: node(1) });
    follower.handle_message(node(1), stale, 30);
    assert_eq!((follower.role(), follower.epoch()), (Role::Follower, 1));
    let current = Message::TimeoutNow(TimeoutNow { epoch: 1, leader: node(1) });
    follower.handle_message(node(1), current, 40);
    assert_eq!((follower.role(), follower.epoch()), (Role::Candidate, 2));
    let ready = drain(&mut follower);
    let transfer_votes = ready.messages.iter().filter(|(_, message)| {
        matches!(message, Message::VoteRequest(request) if request.transfer && !request.pre_vote)
    });
    assert_eq!(transfer_votes.count(), 2);
}

#[test]
fn a_retiring_leader_hands_over_to_the_follower_furthest_along_and_never_leads_again() {
    let mut network = led_by_one(1);
    network.partition(&[node(3)]);
    network.propose(node(1), 2);
    network.deliver_all();
    network.heal();
    network.retire(node(1));
    assert_eq!(network.replica(node(1)).transfer_target(), Some(node(2)));
    network.deliver_all();
    assert_eq!(network.leaders(), [node(2)]);
    // The new leader fails: the retiring node votes, but never campaigns.
    network.crash(node(2));
    network.run_for(10_000, 100);
    assert_eq!(network.leaders(), [node(3)]);
    assert_eq!(network.replica(node(1)).leader(), Some(node(3)));
    assert!(network.replica(node(1)).is_retiring());
}

#[test]
fn a_retiring_leader_tries_another_follower_when_a_transfer_is_given_up() {
    let mut network = led_by_one(1);
    network.partition(&[node(3)]);
    network.propose(node(1), 2);
    network.deliver_all();
    // A transfer to the cut-off node 3 is under way when the broker starts shutting down.
    assert!(network.transfer(node(1), node(3)));
    network.retire(node(1));
    assert_eq!(network.replica(node(1)).transfer_target(), Some(node(3)), "not overridden");
    network.run_for(1_100, 100);
    assert_eq!(network.leaders(), [node(2)], "given up on node 3, handed over to node 2");
}

#[test]
fn a_retiring_leader_whose_timeout_now_was_lost_leaves_the_election_to_the_others() {
    let mut network = Network::new(5);
    network.elect(node(1));
    network.propose(node(1), 2);
    network.deliver_all();
    network.retire(node(1));
    assert_eq!(network.replica(node(1)).transfer_target(), Some(node(2)), "lowest id of equals");
    network.crash(node(2));
    network.run_for(5_000, 100);
    let leaders = network.leaders();
    assert_eq!(leaders.len(), 1);
    assert!(leaders[0] != node(1) && leaders[0] != node(2), "{leaders:?}");
}

#[test]
fn a_caught_up_follower_that_asks_for_the_leadership_gets_it() {
    let mut network = led_by_one(2);
    let now_ms = network.now_ms;
    let asked = network.node_mut(node(3)).replica.as_mut().map(|r| r.request_leadership(now_ms));
    assert_eq!(asked, Some(true));
    network.process(node(3));
    network.deliver_all();
    assert_eq!(network.leaders(), [node(3)]);
    // A leader does not ask itself.
    let now_ms = network.now_ms;
    let asked = network.node_mut(node(3)).replica.as_mut().map(|r| r.request_leadership(now_ms));
    assert_eq!(asked, Some(false));
}

#[test]
fn a_lagging_follower_asking_for_the_leadership_is_ignored() {
    let mut network = led_by_one(1);
    network.partition(&[node(3)]);
    network.propose(node(1), 2);
    network.run_for(500, 100);
    network.heal();
    let now_ms = network.now_ms;
    let asked = network.node_mut(node(3)).replica.as_mut().map(|r| r.request_leadership(now_ms));
    assert_eq!(asked, Some(true));
    network.process(node(3));
    network.deliver_one();
    let leader = network.replica(node(1));
    assert!(leader.accepts_writes() && leader.transfer_target().is_none(), "{leader:?}");
}

#[test]
fn the_preferred_leader_takes_its_leadership_back_after_a_failover_heals() {
    let rebalance = |config: &mut crate::replication::ReplicaConfig| {
        config.leader_rebalance_interval_ms = Some(3_000);
    };
    let mut network = Network::with(3, rebalance, |_| Default::default());
    network.elect(node(1));
    assert!(network.replica(node(1)).is_preferred_leader());
    network.crash(node(1));
    let failover = network.settle(10_000);
    assert_ne!(failover, node(1));
    network.restart(node(1));
    network.run_for(8_000, 100);
    assert_eq!(network.leaders(), [node(1)], "the first voter leads again");
    // Without the setting, the leadership stays where the failover put it.
    let mut network = Network::new(3);
    network.elect(node(1));
    network.crash(node(1));
    let failover = network.settle(10_000);
    network.restart(node(1));
    network.run_for(8_000, 100);
    assert_eq!(network.leaders(), [failover]);
}

#[test]
#[should_panic(expected = "reads on a lease in epoch 1")]
fn the_checker_catches_a_leader_that_keeps_its_read_lease_through_a_transfer() {
    let planted = |config: &mut crate::replication::ReplicaConfig| {
        config.planted_lease_through_transfer = true;
    };
    let mut network = Network::with(3, planted, |_| Default::default());
    network.elect(node(1));
    network.propose(node(1), 2);
    network.deliver_all();
    // Node 2's vote request never reaches node 1, which leads on and reads on its lease.
    network.blocked.insert((node(2), node(1)));
    assert!(network.transfer(node(1), node(2)));
    network.deliver_all();
}
