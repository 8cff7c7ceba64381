//! Elections over the simulated network: who wins, who cannot, and who must not disrupt.

use super::network::{node, Network};
use crate::replication::Role;

#[test]
fn three_nodes_elect_exactly_one_leader_that_the_others_follow() {
    let mut network = Network::new(3);
    network.elect(node(1));
    assert_eq!(network.leaders(), [node(1)]);
    for id in [node(2), node(3)] {
        let replica = network.replica(id);
        assert_eq!(
            (replica.role(), replica.epoch(), replica.leader()),
            (Role::Follower, 1, Some(node(1)))
        );
    }
    // The leader-change batch commits once the followers hold it durably.
    assert_eq!(network.replica(node(1)).high_watermark(), 1);
}

#[test]
fn elections_need_a_majority_of_live_voters() {
    // (voters, down, whether a leader is elected)
    let cases = [
        (3, vec![3], true),
        (3, vec![2, 3], false),
        (5, vec![4, 5], true),
        (5, vec![3, 4, 5], false),
    ];
    for (count, down, elected) in cases {
        let mut network = Network::new(count);
        for id in &down {
            network.crash(node(*id));
        }
        network.campaign(node(1));
        let context = format!("{count} voters, {down:?} down");
        assert_eq!(network.replica(node(1)).is_leader(), elected, "{context}");
        if !elected {
            // A pre-candidate that cannot win never bumps its epoch, however often it tries.
            network.run_for(10_000, 100);
            assert!(network.leaders().is_empty(), "{context}");
            assert_eq!(network.replica(node(1)).epoch(), 0, "{context}");
        }
    }
}

#[test]
fn randomised_timers_elect_one_leader_and_heartbeats_keep_it() {
    for count in [3, 5] {
        let mut network = Network::new(count);
        let deadlines: std::collections::BTreeSet<i64> =
            network.ids().iter().map(|id| network.replica(*id).election_deadline_ms()).collect();
        assert_eq!(deadlines.len(), count as usize, "every node draws its own timeout");
        network.run_for(3_000, 10);
        let leaders = network.leaders();
        assert_eq!(leaders.len(), 1, "{count} voters");
        let epoch = network.replica(leaders[0]).epoch();
        network.run_for(20_000, 10);
        assert_eq!(network.leaders(), leaders, "heartbeats prevent new elections");
        assert_eq!(network.replica(leaders[0]).epoch(), epoch);
    }
}

#[test]
fn a_leader_sends_heartbeats_every_interval() {
    let mut network = Network::new(3);
    network.elect(node(1));
    network.keep_readies = true;
    let start_ms = network.now_ms;
    network.run_for(1_000, 10);
    let heartbeats = network
        .sent
        .iter()
        .filter(|(_, envelope)| envelope.from == node(1) && envelope.to == node(2))
        .filter(|(_, envelope)| envelope.is_heartbeat())
        .map(|(at_ms, _)| at_ms - start_ms)
        .collect::<Vec<_>>();
    assert_eq!(heartbeats.len(), 10, "{heartbeats:?}");
    assert!(heartbeats.windows(2).all(|pair| pair[1] - pair[0] == 100), "{heartbeats:?}");
}

#[test]
fn a_partitioned_node_rejoining_with_pre_vote_disturbs_neither_leader_nor_epoch() {
    let mut network = Network::new(3);
    network.elect(node(1));
    network.isolate(node(3));
    network.run_for(10_000, 50);
    assert_eq!(network.replica(node(3)).epoch(), 1, "pre-votes never won, epoch never bumped");
    assert_eq!(network.replica(node(3)).role(), Role::PreCandidate);
    network.heal();
    network.run_for(3_000, 50);
    assert_eq!(network.leaders(), [node(1)]);
    for id in network.ids() {
        assert_eq!(network.replica(id).epoch(), 1, "{id:?}");
    }
    assert_eq!(network.replica(node(3)).leader(), Some(node(1)));
}

#[test]
fn without_pre_vote_a_rejoining_node_forces_a_new_epoch() {
    let mut network = Network::with(3, |config| config.pre_vote = false, |_| Default::default());
    network.elect(node(1));
    network.isolate(node(3));
    network.run_for(10_000, 50);
    let isolated_epoch = network.replica(node(3)).epoch();
    assert!(isolated_epoch > 3, "it campaigned alone, epoch after epoch: {isolated_epoch}");
    network.heal();
    network.run_for(5_000, 50);
    let leader = network.settle(10_000);
    assert!(network.replica(leader).epoch() > isolated_epoch, "the leader was deposed");
}

#[test]
fn a_leader_cut_off_from_the_majority_steps_down_by_check_quorum() {
    let mut network = Network::new(5);
    network.elect(node(1));
    network.partition(&[node(1), node(2)]);
    network.run_for(999, 1);
    assert!(network.replica(node(1)).is_leader(), "not before an election timeout");
    network.run_for(100, 1);
    assert_eq!(network.replica(node(1)).role(), Role::Follower);
    assert_eq!(network.replica(node(1)).epoch(), 1, "stepping down needs no new epoch");
    // The majority side elects a leader of its own.
    let leader = network.settle(10_000);
    assert!([node(3), node(4), node(5)].contains(&leader));
}

#[test]
fn a_restarted_node_keeps_its_epoch_and_rejoins_as_a_follower() {
    let mut network = Network::new(3);
    network.elect(node(1));
    network.propose(node(1), 2);
    network.run_for(200, 50);
    network.crash(node(2));
    network.run_for(2_000, 50);
    network.restart(node(2));
    assert_eq!(network.replica(node(2)).epoch(), 1, "from the persisted hard state");
    network.run_for(500, 50);
    assert_eq!(network.replica(node(2)).leader(), Some(node(1)));
    assert_eq!(network.node(node(2)).log, network.node(node(1)).log);
}
