//! One replica stepped message by message: what it answers, what it persists, what it asks
//! of its log. (Raft paper §5 rules as etcd's `raft_paper_test.go` lists them.)

use super::network::ModelLog;
use super::*;
use crate::replication::{AppendResponse, Divergence, LogOp, Role, VoteResponse};

const FAR_MS: i64 = 10_000;

fn vote_responses(ready: &Ready<Payload>) -> Vec<(NodeId, VoteResponse)> {
    let responses = ready.messages.iter().filter_map(|(to, message)| match message {
        Message::VoteResponse(response) => Some((*to, *response)),
        _ => None,
    });
    responses.collect()
}

fn append_responses(ready: &Ready<Payload>) -> Vec<(NodeId, AppendResponse)> {
    let responses = ready.messages.iter().filter_map(|(to, message)| match message {
        Message::AppendResponse(response) => Some((*to, *response)),
        _ => None,
    });
    responses.collect()
}

/// A candidate of `epoch` 1 (no pre-vote) among `count` voters.
fn candidate(id: u32, count: u32) -> Replica<Payload> {
    let mut replica =
        replica_with(id, count, &ModelLog::default(), HardState::default(), |config| {
            config.pre_vote = false;
        });
    replica.handle_tick(FAR_MS);
    assert_eq!(replica.role(), Role::Candidate);
    replica
}

/// Replica 1 of 3 leading epoch 1 (voted in by 2), its leader-change batch at offset 0.
fn leader() -> Replica<Payload> {
    let mut replica = candidate(1, 3);
    let granted = VoteResponse { epoch: 1, granted: true, pre_vote: false };
    replica.handle_message(NodeId(2), Message::VoteResponse(granted), FAR_MS);
    assert!(replica.is_leader());
    replica.handle_appended(0, 1, 1);
    drain(&mut replica);
    replica
}

#[test]
fn a_replica_starts_as_a_follower_without_a_leader() {
    let mut replica = replica(2, 3);
    assert_eq!((replica.role(), replica.epoch(), replica.leader()), (Role::Follower, 0, None));
    assert_eq!(replica.high_watermark(), 0);
    assert!(replica.poll_ready().is_none(), "nothing to say before its timer fires");
    replica.handle_tick(999);
    assert!(replica.poll_ready().is_none(), "the timer is at least the base timeout");
}

#[test]
fn any_message_of_a_higher_epoch_makes_the_replica_a_follower_of_that_epoch() {
    let rejected_vote = VoteResponse { epoch: 5, granted: false, pre_vote: false };
    let rejected_pre_vote = VoteResponse { epoch: 5, granted: false, pre_vote: true };
    let append_response = AppendResponse {
        epoch: 5,
        success: false,
        matched_end_offset: 0,
        durable_end_offset: 0,
        log_end_offset: 0,
        rejected_prev_offset: 0,
        divergence: None,
        leader_clock_ms: 0,
    };
    // (message, the leader it makes known, whether a leader steps down for it too)
    let messages: [(Message<Payload>, Option<NodeId>, bool); 5] = [
        (vote_request(5, 2, 0, NO_EPOCH), None, false),
        (Message::VoteResponse(rejected_vote), None, true),
        (Message::VoteResponse(rejected_pre_vote), None, true),
        (heartbeat(5, 2), Some(NodeId(2)), true),
        (Message::AppendResponse(append_response), None, true),
    ];
    for (message, leader, leaders_too) in messages {
        let mut replicas = vec![replica(1, 3), candidate(1, 3)];
        if leaders_too {
            replicas.push(self::leader());
        }
        for mut replica in replicas {
            let before = replica.role();
            replica.handle_message(NodeId(2), message.clone(), FAR_MS);
            let context = format!("{before:?} given {message:?}");
            assert_eq!((replica.role(), replica.epoch()), (Role::Follower, 5), "{context}");
            assert_eq!(replica.leader(), leader, "{context}");
            let hard_state = drain(&mut replica).hard_state.map(|state| state.epoch);
            assert_eq!(hard_state, Some(5), "the new epoch is persisted: {context}");
        }
    }
}

#[test]
fn a_leader_ignores_a_higher_epoch_vote_request_while_it_has_a_quorum() {
    let mut leader = leader();
    leader.handle_message(NodeId(2), vote_request(5, 2, 9, 1), FAR_MS);
    assert_eq!((leader.role(), leader.epoch()), (Role::Leader, 1), "check-quorum lease");
    let refused = VoteResponse { epoch: 1, granted: false, pre_vote: false };
    assert_eq!(vote_responses(&drain(&mut leader)), [(NodeId(2), refused)]);
}

#[test]
fn messages_of_a_stale_epoch_are_rejected_or_dropped() {
    let hard_state = HardState { epoch: 3, voted_for: None };
    let mut replica = replica_with(1, 3, &ModelLog::default(), hard_state, |_| {});
    replica.handle_message(NodeId(2), heartbeat(2, 2), 10);
    replica.handle_message(NodeId(3), vote_request(2, 3, 5, 2), 10);
    replica.handle_message(NodeId(3), pre_vote_request(2, 3, 5, 2), 10);
    let granted = VoteResponse { epoch: 2, granted: true, pre_vote: false };
    replica.handle_message(NodeId(3), Message::VoteResponse(granted), 10);
    let ready = drain(&mut replica);
    assert_eq!(ready.hard_state, None, "nothing changed");
    let appends = append_responses(&ready);
    assert_eq!(appends.len(), 1, "the stale leader learns our epoch");
    assert_eq!((appends[0].0, appends[0].1.epoch, appends[0].1.success), (NodeId(2), 3, false));
    let votes = vote_responses(&ready);
    let expected_vote = VoteResponse { epoch: 3, granted: false, pre_vote: false };
    let expected_pre_vote = VoteResponse { pre_vote: true, ..expected_vote };
    assert_eq!(votes, [(NodeId(3), expected_vote), (NodeId(3), expected_pre_vote)]);
    assert_eq!((replica.epoch(), replica.leader(), replica.role()), (3, None, Role::Follower));
}

#[test]
fn a_candidate_votes_for_itself_and_persists_that_before_asking() {
    let mut replica = candidate(1, 3);
    let ready = drain(&mut replica);
    assert_eq!(ready.hard_state, Some(HardState { epoch: 1, voted_for: Some(NodeId(1)) }));
    let expected = VoteRequest {
        epoch: 1,
        candidate: NodeId(1),
        log_end_offset: 0,
        last_epoch: NO_EPOCH,
        pre_vote: false,
        transfer: false,
    };
    let expected = [2, 3].map(|to| (NodeId(to), Message::VoteRequest(expected)));
    assert_eq!(ready.messages, expected);
    // Another timeout: a new epoch, a new vote for itself.
    replica.handle_tick(3 * FAR_MS);
    let ready = drain(&mut replica);
    assert_eq!(ready.hard_state, Some(HardState { epoch: 2, voted_for: Some(NodeId(1)) }));
}

#[test]
fn a_candidate_with_a_majority_of_rejections_returns_to_follower() {
    let mut replica = candidate(1, 3);
    let rejected = VoteResponse { epoch: 1, granted: false, pre_vote: false };
    replica.handle_message(NodeId(2), Message::VoteResponse(rejected), FAR_MS);
    assert_eq!(replica.role(), Role::Candidate, "one rejection of three decides nothing");
    replica.handle_message(NodeId(3), Message::VoteResponse(rejected), FAR_MS);
    assert_eq!((replica.role(), replica.epoch()), (Role::Follower, 1));
}

#[test]
fn a_replica_grants_one_vote_per_epoch() {
    let mut replica = replica(1, 3);
    let cases = [(2, true), (3, false), (2, true)];
    for (candidate, granted) in cases {
        replica.handle_message(NodeId(candidate), vote_request(1, candidate, 0, NO_EPOCH), 10);
        let ready = drain(&mut replica);
        let response = VoteResponse { epoch: 1, granted, pre_vote: false };
        assert_eq!(vote_responses(&ready), [(NodeId(candidate), response)], "{candidate}");
    }
    assert_eq!(replica.hard_state(), HardState { epoch: 1, voted_for: Some(NodeId(2)) });
}

#[test]
fn a_vote_needs_a_log_at_least_as_up_to_date_by_last_epoch_then_log_end() {
    // The voter's log: epoch 1 at 0..3, epoch 2 at 3..5 (last epoch 2, log end 5).
    let log = ModelLog::from_batches(&[(3, 1), (2, 2)]);
    let cases = [
        ((1, 9), false),
        ((2, 4), false),
        ((2, 5), true),
        ((2, 6), true),
        ((3, 1), true),
        ((NO_EPOCH, 0), false),
    ];
    for ((last_epoch, log_end_offset), granted) in cases {
        for pre_vote in [false, true] {
            let mut voter =
                replica_with(1, 3, &log, HardState { epoch: 2, voted_for: None }, |_| {});
            let request = vote_request(3, 2, log_end_offset, last_epoch);
            let request =
                if pre_vote { pre_vote_request(3, 2, log_end_offset, last_epoch) } else { request };
            // Once its quiet time after a restart (an election timeout) is over.
            voter.handle_message(NodeId(2), request, 1_000);
            let responses = vote_responses(&drain(&mut voter));
            let context = format!("candidate ({last_epoch}, {log_end_offset}) pre_vote {pre_vote}");
            assert_eq!(responses.len(), 1, "{context}");
            assert_eq!(responses[0].1.granted, granted, "{context}");
        }
    }
}

#[test]
fn a_granted_vote_is_persisted_in_the_same_ready_as_the_answer() {
    let mut replica = replica(1, 3);
    replica.handle_message(NodeId(3), vote_request(4, 3, 0, NO_EPOCH), 10);
    let ready = replica.poll_ready().expect("a vote answer");
    assert_eq!(ready.hard_state, Some(HardState { epoch: 4, voted_for: Some(NodeId(3)) }));
    let granted = VoteResponse { epoch: 4, granted: true, pre_vote: false };
    assert_eq!(ready.messages, [(NodeId(3), Message::VoteResponse(granted))]);
    assert!(replica.poll_ready().is_none());
}

#[test]
fn a_restarted_replica_does_not_vote_twice_in_an_epoch() {
    let mut replica = replica(1, 3);
    replica.handle_message(NodeId(2), vote_request(1, 2, 0, NO_EPOCH), 10);
    let persisted = drain(&mut replica).hard_state.expect("the vote is persisted");
    drop(replica);
    let mut restarted = replica_with(1, 3, &ModelLog::default(), persisted, |_| {});
    restarted.handle_message(NodeId(3), vote_request(1, 3, 0, NO_EPOCH), 10);
    restarted.handle_message(NodeId(2), vote_request(1, 2, 0, NO_EPOCH), 10);
    let granted =
        vote_responses(&drain(&mut restarted)).iter().map(|(_, r)| r.granted).collect::<Vec<_>>();
    assert_eq!(granted, [false, true], "only the candidate voted for before the crash");
}

#[test]
fn a_restart_adopts_the_epoch_of_the_last_log_entry_without_a_vote() {
    let log = ModelLog::from_batches(&[(2, 1), (1, 4)]);
    let stale = HardState { epoch: 2, voted_for: Some(NodeId(3)) };
    let mut replica = replica_with(1, 3, &log, stale, |_| {});
    assert_eq!(replica.hard_state(), HardState { epoch: 4, voted_for: None });
    assert_eq!(drain(&mut replica).hard_state, Some(HardState { epoch: 4, voted_for: None }));
}

#[test]
fn candidates_step_down_on_an_append_from_the_leader_of_their_epoch() {
    let mut replica = candidate(1, 3);
    replica.handle_message(NodeId(2), heartbeat(1, 2), FAR_MS);
    assert_eq!(
        (replica.role(), replica.epoch(), replica.leader()),
        (Role::Follower, 1, Some(NodeId(2)))
    );
    assert_eq!(replica.hard_state().voted_for, Some(NodeId(1)), "its vote stands");
    // A pre-candidate likewise.
    let mut pre_candidate = self::replica(1, 3);
    pre_candidate.handle_tick(FAR_MS);
    assert_eq!((pre_candidate.role(), pre_candidate.epoch()), (Role::PreCandidate, 0));
    pre_candidate.handle_message(NodeId(3), heartbeat(0, 3), FAR_MS);
    assert_eq!((pre_candidate.role(), pre_candidate.leader()), (Role::Follower, Some(NodeId(3))));
}

#[test]
fn a_pre_vote_changes_no_epoch_on_either_side() {
    let mut pre_candidate = replica(1, 3);
    pre_candidate.handle_tick(FAR_MS);
    let ready = drain(&mut pre_candidate);
    assert_eq!(ready.hard_state, None, "a pre-candidate persists nothing");
    assert_eq!(pre_candidate.epoch(), 0);
    let asked = pre_vote_request(1, 1, 0, NO_EPOCH);
    assert_eq!(ready.messages, [(NodeId(2), asked.clone()), (NodeId(3), asked.clone())]);
    let mut voter = replica(2, 3);
    voter.handle_message(NodeId(1), asked, FAR_MS);
    let ready = drain(&mut voter);
    assert_eq!(ready.hard_state, None, "a pre-vote is not a vote");
    let granted = VoteResponse { epoch: 1, granted: true, pre_vote: true };
    assert_eq!(vote_responses(&ready), [(NodeId(1), granted)]);
    assert_eq!((voter.epoch(), voter.hard_state().voted_for), (0, None));
    // With a majority of pre-votes the candidate runs for real in epoch 1.
    pre_candidate.handle_message(NodeId(2), Message::VoteResponse(granted), FAR_MS);
    assert_eq!((pre_candidate.role(), pre_candidate.epoch()), (Role::Candidate, 1));
}

#[test]
fn a_pre_vote_is_refused_while_the_leader_is_heard_from() {
    let mut voter = replica(2, 3);
    voter.handle_message(NodeId(1), heartbeat(0, 1), 1_000);
    voter.handle_message(NodeId(3), pre_vote_request(1, 3, 0, NO_EPOCH), 1_500);
    let refused = VoteResponse { epoch: 0, granted: false, pre_vote: true };
    assert_eq!(vote_responses(&drain(&mut voter)), [(NodeId(3), refused)]);
    // An election timeout after the leader's last message, the lease is over.
    voter.handle_message(NodeId(3), pre_vote_request(1, 3, 0, NO_EPOCH), 2_000);
    let granted = VoteResponse { epoch: 1, granted: true, pre_vote: true };
    assert_eq!(vote_responses(&drain(&mut voter)), [(NodeId(3), granted)]);
    assert_eq!(voter.epoch(), 0);
}

/// A group that never had a leader elects its preferred replica (the first voter) within a
/// few heartbeats; it keeps retrying that fast while nobody answers, and once any epoch is
/// known its timers are whole election timeouts like everyone's.
#[test]
fn a_new_groups_preferred_replica_runs_within_heartbeats_and_only_it() {
    for seed in 0..20 {
        let fresh = |node_id| {
            let config = super::network::config(node_id, 3);
            let summary = ModelLog::default().summary(0);
            Replica::<Payload>::new(config, HardState::default(), summary, seed, 0)
        };
        let mut preferred = fresh(1);
        assert!((100..200).contains(&preferred.election_deadline_ms()), "seed {seed}");
        assert!((1_000..2_000).contains(&fresh(3).election_deadline_ms()), "seed {seed}");
        preferred.handle_tick(200);
        assert_eq!(preferred.role(), Role::PreCandidate);
        drain(&mut preferred);
        let retry_ms = preferred.election_deadline_ms();
        assert!((300..400).contains(&retry_ms), "seed {seed}: unanswered, it runs again soon");
        let mut later = fresh(1);
        later.handle_message(NodeId(2), vote_request(3, 2, 0, NO_EPOCH), 0);
        drain(&mut later);
        let deadline_ms = later.election_deadline_ms();
        assert!((1_000..2_000).contains(&deadline_ms), "seed {seed}: an epoch is known");
    }
}

#[test]
fn election_timeouts_are_randomised_within_one_to_two_timeouts() {
    let mut deadlines = std::collections::BTreeSet::new();
    for seed in 0..50 {
        let config = super::network::config(2, 3);
        let replica: Replica<Payload> =
            Replica::new(config, HardState::default(), ModelLog::default().summary(0), seed, 0);
        let deadline_ms = replica.election_deadline_ms();
        assert!((1_000..2_000).contains(&deadline_ms), "seed {seed}: {deadline_ms}");
        deadlines.insert(deadline_ms);
    }
    assert!(deadlines.len() > 40, "seeds draw different timeouts: {deadlines:?}");
}

#[test]
fn a_follower_rejects_an_append_whose_prev_it_does_not_hold_with_a_hint() {
    // Epoch 1 at 0..3, epoch 2 at 3..5.
    let log = ModelLog::from_batches(&[(3, 1), (2, 2)]);
    let hard_state = HardState { epoch: 3, voted_for: None };
    // (prev offset, prev epoch) -> (log end, hint)
    let cases = [
        ((7, 3), Some(Divergence { epoch: 2, epoch_start_offset: 3 })),
        ((4, 3), Some(Divergence { epoch: 2, epoch_start_offset: 3 })),
        ((2, 2), Some(Divergence { epoch: 1, epoch_start_offset: 0 })),
    ];
    for ((prev_offset, prev_epoch), divergence) in cases {
        let mut follower = replica_with(1, 3, &log, hard_state, |_| {});
        let entries = [(prev_offset + 1, prev_offset + 2, 3)];
        follower.handle_message(
            NodeId(2),
            append(3, 2, (prev_offset, prev_epoch), 0, &entries),
            10,
        );
        let ready = drain(&mut follower);
        assert!(ready.log_ops.is_empty(), "a rejected append changes no log: {prev_offset}");
        let expected = AppendResponse {
            epoch: 3,
            success: false,
            matched_end_offset: 0,
            durable_end_offset: 0,
            log_end_offset: 5,
            rejected_prev_offset: prev_offset,
            divergence,
            leader_clock_ms: 0,
        };
        assert_eq!(append_responses(&ready), [(NodeId(2), expected)]);
        assert_eq!(follower.leader(), Some(NodeId(2)), "a rejection still follows the leader");
    }
}

#[test]
fn a_follower_cuts_a_conflicting_uncommitted_tail_and_appends_the_leaders_batches() {
    // Epoch 1 at 0..2, epoch 2 at 2..4 (uncommitted), epoch 2 at 4..6.
    let log = ModelLog::from_batches(&[(2, 1), (2, 2), (2, 2)]);
    let mut follower = replica_with(1, 3, &log, HardState { epoch: 3, voted_for: None }, |_| {});
    // The leader holds epoch 1 at 0..2 and 2..4, then epoch 3.
    let request = append(3, 2, (1, 1), 2, &[(2, 4, 1), (4, 5, 3)]);
    follower.handle_message(NodeId(2), request, 10);
    let ready = drain(&mut follower);
    let appended = vec![
        EntryMeta { base_offset: 2, next_offset: 4, epoch: 1 },
        EntryMeta { base_offset: 4, next_offset: 5, epoch: 3 },
    ];
    let expected = vec![
        LogOp::Truncate { from_offset: 2 },
        LogOp::Append { entries: appended, payload: vec![2, 4], voter_changes: vec![] },
        LogOp::Commit { high_watermark: 2 },
    ];
    assert_eq!(ready.log_ops, expected);
    assert!(append_responses(&ready).is_empty(), "no answer before the batches are durable");
    assert_eq!((follower.log_end_offset(), follower.durable_end_offset()), (5, 2));
    follower.handle_durable(5);
    let acknowledged = append_responses(&drain(&mut follower));
    assert_eq!(acknowledged.len(), 1);
    let response = acknowledged[0].1;
    assert_eq!(
        (response.success, response.matched_end_offset, response.durable_end_offset),
        (true, 5, 5)
    );
}

#[test]
fn a_follower_keeps_batches_it_already_holds_and_answers_a_resend_at_once() {
    let log = ModelLog::from_batches(&[(2, 1), (1, 1)]);
    let mut follower = replica_with(1, 3, &log, HardState { epoch: 1, voted_for: None }, |_| {});
    follower.handle_message(
        NodeId(2),
        append(1, 2, (-1, NO_EPOCH), 3, &[(0, 2, 1), (2, 3, 1)]),
        10,
    );
    let ready = drain(&mut follower);
    assert_eq!(ready.log_ops, [LogOp::Commit { high_watermark: 3 }], "nothing to write");
    let response = append_responses(&ready)[0].1;
    assert_eq!((response.matched_end_offset, response.durable_end_offset), (3, 3));
}

#[test]
fn a_follower_acknowledges_only_what_is_durable() {
    let mut follower = replica(1, 3);
    follower.handle_message(
        NodeId(2),
        append(1, 2, (-1, NO_EPOCH), 0, &[(0, 1, 1), (1, 3, 1)]),
        10,
    );
    assert!(append_responses(&drain(&mut follower)).is_empty());
    follower.handle_durable(1);
    let partial = append_responses(&drain(&mut follower));
    assert_eq!((partial[0].1.matched_end_offset, partial[0].1.durable_end_offset), (3, 1));
    // A heartbeat meanwhile is answered at once, with what is durable so far.
    follower.handle_message(NodeId(2), append(1, 2, (2, 1), 0, &[]), 20);
    let heartbeat = append_responses(&drain(&mut follower));
    assert_eq!((heartbeat[0].1.matched_end_offset, heartbeat[0].1.durable_end_offset), (3, 1));
    follower.handle_durable(3);
    let complete = append_responses(&drain(&mut follower));
    assert_eq!((complete[0].1.matched_end_offset, complete[0].1.durable_end_offset), (3, 3));
    follower.handle_durable(3);
    assert!(drain(&mut follower).messages.is_empty(), "nothing new, nothing said");
}

#[test]
fn a_follower_commits_what_the_leader_committed_and_it_verified() {
    let mut follower = replica(1, 3);
    follower.handle_message(
        NodeId(2),
        append(1, 2, (-1, NO_EPOCH), 0, &[(0, 2, 1), (2, 4, 1)]),
        10,
    );
    assert_eq!(follower.high_watermark(), 0);
    // The leader has committed 6, but only 4 are verified here.
    follower.handle_message(NodeId(2), append(1, 2, (3, 1), 6, &[]), 20);
    assert_eq!(follower.high_watermark(), 4);
    // A heartbeat with an older commit does not move it back.
    follower.handle_message(NodeId(2), append(1, 2, (1, 1), 2, &[]), 30);
    assert_eq!(follower.high_watermark(), 4);
    let commits: Vec<_> = drain(&mut follower)
        .log_ops
        .into_iter()
        .filter(|op| matches!(op, LogOp::Commit { .. }))
        .collect();
    assert_eq!(commits, [LogOp::Commit { high_watermark: 4 }]);
}

#[test]
fn malformed_or_impossible_messages_are_ignored() {
    let log = ModelLog::from_batches(&[(2, 1), (2, 1)]);
    let mut follower = replica_with(1, 3, &log, HardState { epoch: 2, voted_for: None }, |_| {});
    follower.handle_message(NodeId(2), append(2, 2, (3, 1), 2, &[]), 10);
    assert_eq!(follower.high_watermark(), 2);
    drain(&mut follower);
    let junk = [
        (2, append(2, 2, (1, 1), 0, &[(3, 4, 2)])), // not contiguous
        (2, append(2, 2, (1, 1), 0, &[(2, 3, 3)])), // entry above the leader's epoch
        (2, append(2, 2, (1, 1), 0, &[(2, 2, 2)])), // empty batch
        (3, append(2, 2, (1, 1), 0, &[])),          // sender is not the leader named
        (2, append(2, 2, (-1, NO_EPOCH), 0, &[(0, 2, 2)])), // rewrites a committed batch
        (2, append(2, 2, (1, 1), 0, &[(2, 5, 1)])), // batch boundaries do not line up
        (2, vote_request(3, 3, 0, NO_EPOCH)),       // candidate is not the sender
        (9, heartbeat(2, 9)),                       // not a voter
        (1, heartbeat(2, 1)),                       // from itself
        (2, append(2, 2, (i64::MAX, 1), 0, &[])),   // offsets out of range
    ];
    for (from, message) in junk {
        follower.handle_message(NodeId(from), message.clone(), 20);
        let ready = drain(&mut follower);
        assert!(ready.log_ops.is_empty() && ready.messages.is_empty(), "{message:?}");
        assert_eq!((follower.epoch(), follower.log_end_offset()), (2, 4), "{message:?}");
    }
}

#[test]
fn a_single_voter_leads_at_once_and_commits_on_its_own_durability() {
    let config = ReplicaConfig::new(NodeId(1), vec![NodeId(1)]);
    let mut replica: Replica<Payload> =
        Replica::new(config, HardState::default(), ModelLog::default().summary(0), 1, 0);
    assert!(replica.is_leader());
    let ready = drain(&mut replica);
    assert_eq!(ready.hard_state, Some(HardState { epoch: 1, voted_for: Some(NodeId(1)) }));
    assert_eq!(ready.log_ops, [LogOp::AppendLeaderChange { epoch: 1 }]);
    replica.handle_appended(0, 1, 1);
    replica.handle_appended(1, 4, 1);
    assert_eq!(replica.high_watermark(), 0, "nothing is durable yet");
    replica.handle_durable(1);
    assert_eq!(replica.high_watermark(), 1);
    replica.handle_durable(4);
    assert_eq!(replica.high_watermark(), 4);
    assert_eq!(replica.in_sync_replicas(0), [NodeId(1)]);
}

#[test]
fn a_leader_does_not_count_its_own_unsynced_batches() {
    let mut leader = leader();
    leader.handle_appended(1, 3, 1);
    let acknowledged = AppendResponse {
        epoch: 1,
        success: true,
        matched_end_offset: 3,
        durable_end_offset: 3,
        log_end_offset: 3,
        rejected_prev_offset: -1,
        divergence: None,
        leader_clock_ms: 0,
    };
    leader.handle_message(NodeId(2), Message::AppendResponse(acknowledged), FAR_MS);
    assert_eq!(leader.high_watermark(), 0, "one durable copy of three");
    leader.handle_durable(1);
    assert_eq!(leader.high_watermark(), 1, "the leader-change batch is on two");
    leader.handle_durable(3);
    assert_eq!(leader.high_watermark(), 3);
}

#[test]
fn a_leader_counts_only_the_durable_part_of_an_acknowledgement() {
    let mut leader = leader();
    leader.handle_appended(1, 3, 1);
    leader.handle_durable(3);
    let in_memory = AppendResponse {
        epoch: 1,
        success: true,
        matched_end_offset: 3,
        durable_end_offset: 1,
        log_end_offset: 3,
        rejected_prev_offset: -1,
        divergence: None,
        leader_clock_ms: 0,
    };
    leader.handle_message(NodeId(2), Message::AppendResponse(in_memory), FAR_MS);
    assert_eq!(leader.high_watermark(), 1);
    leader.handle_message(NodeId(3), Message::AppendResponse(in_memory), FAR_MS);
    assert_eq!(leader.high_watermark(), 1, "held in memory by all, durable on a majority to 1");
}

fn answer_dated(leader_clock_ms: i64) -> Message<Payload> {
    Message::AppendResponse(AppendResponse {
        epoch: 1,
        success: true,
        matched_end_offset: 1,
        durable_end_offset: 1,
        log_end_offset: 1,
        rejected_prev_offset: -1,
        divergence: None,
        leader_clock_ms,
    })
}

#[test]
fn a_leader_reads_under_a_lease_counted_from_when_its_answered_appends_were_sent() {
    // Election timeout 1,000 ms: the lease lasts half of it after the append was sent.
    let mut leader = leader();
    assert!(!leader.has_read_lease(FAR_MS), "no follower has answered yet");
    leader.handle_message(NodeId(2), answer_dated(FAR_MS + 100), FAR_MS + 150);
    assert!(leader.has_read_lease(FAR_MS + 150), "two of three promised at FAR_MS + 100");
    assert!(leader.has_read_lease(FAR_MS + 599));
    assert!(!leader.has_read_lease(FAR_MS + 600), "expired half a timeout after sending");
    // An answer to an old append, held up (a pause, a slow link), renews nothing.
    leader.handle_message(NodeId(3), answer_dated(FAR_MS + 200), FAR_MS + 2_600);
    assert!(!leader.has_read_lease(FAR_MS + 2_600));
    // An echo from the future counts as sent now, no later.
    leader.handle_message(NodeId(3), answer_dated(FAR_MS + 90_000), FAR_MS + 3_000);
    assert!(leader.has_read_lease(FAR_MS + 3_499));
    assert!(!leader.has_read_lease(FAR_MS + 3_500));
}

#[test]
fn a_follower_echoes_the_latest_leader_clock_in_every_answer() {
    let mut follower = replica(1, 3);
    let dated = |message: Message<Payload>, leader_clock_ms| match message {
        Message::AppendRequest(mut request) => {
            request.header.leader_clock_ms = leader_clock_ms;
            Message::AppendRequest(request)
        }
        other => panic!("{other:?}"),
    };
    follower.handle_message(NodeId(2), dated(append(1, 2, (-1, NO_EPOCH), 0, &[]), 700), 10);
    let answers = append_responses(&drain(&mut follower));
    assert_eq!(answers.iter().map(|(_, a)| a.leader_clock_ms).collect::<Vec<_>>(), [700]);
    // A reordered, older append does not move the echo back; a rejection carries it too.
    follower.handle_message(NodeId(2), dated(append(1, 2, (4, 1), 0, &[]), 650), 20);
    let answers = append_responses(&drain(&mut follower));
    assert_eq!(answers.len(), 1);
    assert!(!answers[0].1.success);
    assert_eq!(answers[0].1.leader_clock_ms, 700);
}

#[test]
fn a_restarted_replica_grants_no_vote_for_an_election_timeout() {
    // It may have promised a leader, before it stopped, to vote for nobody else for that long.
    let log = ModelLog::from_batches(&[(3, 1)]);
    for (now_ms, granted) in [(0, false), (999, false), (1_000, true)] {
        for pre_vote in [false, true] {
            let mut voter =
                replica_with(1, 3, &log, HardState { epoch: 1, voted_for: None }, |_| {});
            let request =
                if pre_vote { pre_vote_request(2, 2, 3, 1) } else { vote_request(2, 2, 3, 1) };
            voter.handle_message(NodeId(2), request, now_ms);
            let responses = vote_responses(&drain(&mut voter));
            let context = format!("at {now_ms} ms, pre_vote {pre_vote}");
            assert_eq!(responses.len(), 1, "{context}");
            assert_eq!(responses[0].1.granted, granted, "{context}");
        }
    }
    // A replica that never saw an epoch never promised anything: it votes at once.
    let mut fresh = replica(1, 3);
    fresh.handle_message(NodeId(2), vote_request(1, 2, 0, NO_EPOCH), 0);
    let responses = vote_responses(&drain(&mut fresh));
    assert!(responses.len() == 1 && responses[0].1.granted, "{responses:?}");
}
