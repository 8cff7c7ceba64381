//! Log replication over the simulated network: commit, durability, divergent followers,
//! partitions, crashes and the in-sync replicas.

use super::network::{node, Batch, ModelLog, Network};
use crate::replication::{HardState, Message, NodeId};

fn epoch_of(network: &Network, id: NodeId) -> i32 {
    network.replica(id).epoch()
}

fn values(network: &Network, id: NodeId) -> Vec<u64> {
    network.node(id).log.batches.iter().map(|batch| batch.value).collect()
}

#[test]
fn a_batch_commits_once_a_majority_holds_it_durably_and_not_before() {
    let mut network = Network::new(3);
    for id in [node(2), node(3)] {
        network.node_mut(id).auto_durable = false;
    }
    network.elect(node(1));
    assert_eq!(network.replica(node(1)).high_watermark(), 0, "held in memory, not durable");
    network.sync(node(2));
    network.deliver_all();
    assert_eq!(network.replica(node(1)).high_watermark(), 1, "leader and follower 2 durable");
    let batch = network.propose(node(1), 2);
    network.run_for(500, 50);
    assert_eq!(network.node(node(3)).log.end_offset(), 3, "replicated everywhere");
    assert_eq!(network.replica(node(1)).high_watermark(), 1, "but durable on the leader only");
    network.sync(node(3));
    network.deliver_all();
    assert_eq!(network.replica(node(1)).high_watermark(), batch.next_offset);
}

#[test]
fn the_leaders_own_unsynced_batch_does_not_count_toward_the_quorum() {
    let mut network = Network::new(3);
    network.node_mut(node(3)).auto_durable = false;
    network.elect(node(1));
    network.node_mut(node(1)).auto_durable = false;
    let batch = network.propose(node(1), 1);
    network.run_for(300, 50);
    assert_eq!(network.replica(node(1)).high_watermark(), 1, "only follower 2 holds it durably");
    network.sync(node(1));
    network.deliver_all();
    assert_eq!(network.replica(node(1)).high_watermark(), batch.next_offset);
}

/// A commit reaches the followers one round trip after it, not a heartbeat later: brokers
/// apply a created topic (the controller's group) and serve new records that much sooner.
#[test]
fn followers_learn_the_high_watermark_one_round_trip_after_the_commit() {
    let mut network = Network::new(3);
    network.elect(node(1));
    let batch = network.propose(node(1), 2);
    network.deliver_all();
    for id in network.ids() {
        assert_eq!(network.replica(id).high_watermark(), batch.next_offset, "{id:?}");
    }
}

/// Raft paper, Figure 8. Five nodes; S1 leads epoch 4 and brings its epoch-2 batch at
/// offset 1 to a majority, durably, while its own epoch-4 batch is durable on fewer.
fn figure_8() -> Network {
    let logs = [
        vec![(1, 1), (1, 2)],
        vec![(1, 1), (1, 2)],
        vec![(1, 1)],
        vec![(1, 1)],
        vec![(1, 1), (1, 3)],
    ];
    let mut network = Network::with(
        5,
        |_| {},
        |id| {
            let log = ModelLog::from_batches(&logs[id.0 as usize - 1]);
            (log, HardState { epoch: 3, voted_for: None })
        },
    );
    network.isolate(node(5));
    for id in [node(2), node(3), node(4)] {
        network.node_mut(id).auto_durable = false;
    }
    network.elect(node(1));
    assert_eq!(epoch_of(&network, node(1)), 4);
    network.sync_to(node(3), 2);
    network.run_for(300, 50);
    let epoch_2_batch = network.node(node(1)).log.batches[1];
    assert_eq!(epoch_2_batch.epoch, 2);
    for id in [node(1), node(2), node(3)] {
        let log = &network.node(id).log;
        assert_eq!(log.batch_at(1), Some(&epoch_2_batch), "{id:?}");
        assert!(log.durable_end_offset >= 2, "{id:?} holds it durably");
    }
    network
}

#[test]
fn a_leader_does_not_commit_an_earlier_epoch_batch_by_counting_replicas() {
    let mut network = figure_8();
    assert_eq!(network.replica(node(1)).high_watermark(), 0, "Raft §5.4.2");
    // And rightly so: S5 may still win and overwrite it.
    for id in [node(1), node(2), node(3), node(4)] {
        network.crash(id);
    }
    network.heal();
    for id in [node(2), node(3), node(4)] {
        network.restart(id);
        network.node_mut(id).auto_durable = true;
    }
    // S5 learns epoch 4 from the refusals, then wins epoch 5 with S2, S3 and S4.
    network.campaign(node(5));
    network.campaign(node(5));
    assert!(network.replica(node(5)).is_leader());
    assert_eq!(network.settle(20_000), node(5));
    for id in [node(2), node(3), node(4)] {
        assert_eq!(network.node(id).log.batches[1].epoch, 3, "{id:?} took S5's batch");
    }
}

#[test]
fn an_earlier_epoch_batch_commits_with_the_leaders_own_batch() {
    let mut network = figure_8();
    network.sync(node(2));
    network.sync(node(3));
    network.run_for(200, 50);
    assert_eq!(network.replica(node(1)).high_watermark(), 3, "offsets 1 (epoch 2) and 2 (epoch 4)");
    // Now S5 can never win: a majority holds a later epoch than its last.
    network.crash(node(1));
    network.heal();
    for id in [node(2), node(3), node(4)] {
        network.node_mut(id).auto_durable = true;
        network.sync(id);
    }
    let leader = network.settle(20_000);
    assert_ne!(leader, node(5));
    network.run_for(500, 50);
    assert_eq!(network.node(node(5)).log.batches[1].epoch, 2, "S5 took the committed batch");
}

#[test]
fn a_leader_brings_every_divergent_follower_to_its_log_in_at_most_one_rejection() {
    // Raft paper, Figure 7 (etcd's TestLeaderSyncFollowerLog): the leader's log in epochs,
    // one offset per batch, and six followers' logs.
    let leader_log = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let followers: [&[i32]; 7] = [
        &[1, 1, 1, 4, 4, 5, 5, 6, 6],
        &[1, 1, 1, 4],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
        &[1, 1, 1, 4, 4, 4, 4],
        &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
        &[],
    ];
    let batches = |epochs: &[i32]| epochs.iter().map(|epoch| (1, *epoch)).collect::<Vec<_>>();
    for follower_log in followers {
        let mut network = Network::with(
            3,
            |_| {},
            |id| {
                let epochs = if id == node(2) { follower_log } else { &leader_log[..] };
                (ModelLog::from_batches(&batches(epochs)), HardState { epoch: 7, voted_for: None })
            },
        );
        network.keep_readies = true;
        network.elect(node(1));
        assert_eq!(epoch_of(&network, node(1)), 8);
        let context = format!("follower {follower_log:?}");
        assert_eq!(network.node(node(2)).log, network.node(node(1)).log, "{context}");
        let rejections = network
            .sent
            .iter()
            .filter(|(_, envelope)| envelope.from == node(2))
            .filter(|(_, envelope)| envelope.is_append_rejection())
            .count();
        assert!(rejections <= 1, "{context}: {rejections} rejections");
    }
}

#[test]
fn a_partitioned_leaders_uncommitted_batches_are_discarded_after_the_heal() {
    let mut network = Network::new(5);
    network.elect(node(1));
    let committed = network.propose(node(1), 1);
    network.run_for(300, 50);
    network.partition(&[node(1), node(2)]);
    let lost: Vec<Batch> = (0..2).map(|_| network.propose(node(1), 2)).collect();
    network.run_for(1_100, 50);
    assert!(!network.replica(node(1)).is_leader(), "check-quorum stepped it down");
    let leader = network.settle(10_000);
    network.heal();
    network.run_for(2_000, 50);
    let expected = values(&network, leader);
    assert!(expected.contains(&committed.value));
    for id in network.ids() {
        assert_eq!(values(&network, id), expected, "{id:?} converged on the new leader's log");
        for batch in &lost {
            assert!(!values(&network, id).contains(&batch.value), "{id:?} kept {batch:?}");
        }
    }
}

#[test]
fn in_sync_replicas_shrink_when_a_follower_lags_and_grow_back_when_it_catches_up() {
    let mut network =
        Network::with(3, |config| config.replica_lag_time_max_ms = 2_000, |_| Default::default());
    network.elect(node(1));
    network.run_for(300, 50);
    let all = vec![node(1), node(2), node(3)];
    assert_eq!(network.replica(node(1)).in_sync_replicas(network.now_ms), all);
    network.isolate(node(3));
    for _ in 0..15 {
        network.propose(node(1), 1);
        network.run_for(100, 50);
    }
    let now_ms = network.now_ms;
    assert_eq!(network.replica(node(1)).in_sync_replicas(now_ms), all, "within the lag time");
    for _ in 0..10 {
        network.propose(node(1), 1);
        network.run_for(100, 50);
    }
    let now_ms = network.now_ms;
    assert_eq!(network.replica(node(1)).in_sync_replicas(now_ms), [node(1), node(2)]);
    assert!(network.replica(node(2)).in_sync_replicas(now_ms).is_empty(), "leaders only");
    network.heal();
    network.run_for(500, 50);
    assert_eq!(network.replica(node(1)).in_sync_replicas(network.now_ms), all);
}

#[test]
fn a_crashed_follower_loses_only_unsynced_batches_and_catches_up() {
    let mut network = Network::new(3);
    network.elect(node(1));
    network.node_mut(node(3)).auto_durable = false;
    for _ in 0..3 {
        network.propose(node(1), 2);
    }
    network.run_for(300, 50);
    assert_eq!(network.replica(node(1)).high_watermark(), 7, "leader and node 2 are durable");
    network.crash(node(3));
    assert_eq!(network.node(node(3)).log.end_offset(), 1, "the unsynced suffix is gone");
    network.restart(node(3));
    network.node_mut(node(3)).auto_durable = true;
    network.run_for(500, 50);
    assert_eq!(network.node(node(3)).log, network.node(node(1)).log);
}

#[test]
fn a_lagging_follower_is_sent_bounded_appends() {
    let mut network = Network::new(3);
    network.elect(node(1));
    network.isolate(node(3));
    for _ in 0..30 {
        network.propose(node(1), 1);
    }
    network.run_for(500, 50);
    network.heal();
    network.keep_readies = true;
    network.run_for(2_000, 50);
    assert_eq!(network.node(node(3)).log, network.node(node(1)).log);
    for (_, envelope) in &network.sent {
        if let Message::AppendRequest(request) = &envelope.message {
            let offsets: i64 = request.entries.iter().map(|e| e.next_offset - e.base_offset).sum();
            assert!(offsets <= 10, "max_append_bytes bounds an append: {offsets} offsets");
        }
    }
}

#[test]
#[should_panic(expected = "durable on 1 nodes only")]
fn the_checker_catches_followers_that_acknowledge_before_syncing() {
    let mut network =
        Network::with(3, |config| config.planted_ack_before_durable = true, |_| Default::default());
    for id in [node(2), node(3)] {
        network.node_mut(id).auto_durable = false;
    }
    network.elect(node(1));
}

#[test]
#[should_panic(expected = "durable on 1 nodes only")]
fn the_checker_catches_a_leader_that_commits_without_a_majority() {
    let mut network = Network::with(
        3,
        |config| config.planted_commit_without_majority = true,
        |_| Default::default(),
    );
    network.elect(node(1));
    network.isolate(node(1));
    network.propose(node(1), 1);
    network.run_for(500, 50);
}

#[test]
#[should_panic(expected = "lacks committed")]
fn the_checker_catches_voters_that_skip_the_log_check() {
    let mut network = Network::with(
        3,
        |config| config.planted_vote_without_log_check = true,
        |_| Default::default(),
    );
    network.commit_without_three_then_crash_one();
    // Long after node 2 last heard its leader, node 3 (without the batch) asks for its vote.
    network.now_ms += 10_000;
    network.campaign(node(3));
}

#[test]
#[should_panic(expected = "two leaders in epoch")]
fn the_checker_catches_a_follower_that_votes_twice_in_an_epoch() {
    let mut network =
        Network::with(3, |config| config.planted_vote_twice = true, |_| Default::default());
    // Two timers fire before any message moves: both campaign in the same epoch.
    for id in [node(1), node(2)] {
        network.now_ms = network.now_ms.max(network.replica(id).election_deadline_ms());
    }
    network.tick(node(1));
    network.tick(node(2));
    network.deliver_all();
}
