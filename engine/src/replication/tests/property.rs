//! Random faults against 3–5 replicas: messages delivered out of order, dropped or
//! duplicated; partitions; crashes that lose unsynced data; slow disks; time passing. The
//! checker asserts safety after every step; after healing everything, a leader must be
//! elected and commit a new batch within bounded simulated time (liveness).

use proptest::prelude::*;

use super::network::{node, Network};

#[derive(Debug, Clone)]
enum Op {
    /// Delivers the message at this index (modulo the queue): reordering.
    Deliver(usize),
    DeliverAll,
    Drop(usize),
    Duplicate(usize),
    /// Time passes by this many ms and every live node ticks.
    Advance(i64),
    /// The newest leader appends a batch of this many offsets.
    Propose(i64),
    Isolate(u32),
    /// Nodes whose bit is set form one side.
    Partition(u32),
    Heal,
    Crash(u32),
    Restart(u32),
    /// The node's disk catches up with its writes.
    Sync(u32),
    /// The node's disk syncs every write at once (true) or only on `Sync` (false).
    FastDisk(u32, bool),
    /// The newest leader hands its leadership to this node.
    Transfer(u32),
    /// This node asks its leader for the leadership.
    AskForLeadership(u32),
    /// This node's disk is replaced (only when every replica runs and every voter is on its
    /// node's current directory: one lost disk at a time, as Raft tolerates).
    Wipe(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => any::<usize>().prop_map(Op::Deliver),
        6 => Just(Op::DeliverAll),
        3 => any::<usize>().prop_map(Op::Drop),
        2 => any::<usize>().prop_map(Op::Duplicate),
        15 => (1i64..800).prop_map(Op::Advance),
        8 => (1i64..4).prop_map(Op::Propose),
        2 => (1u32..=5).prop_map(Op::Isolate),
        2 => any::<u32>().prop_map(Op::Partition),
        3 => Just(Op::Heal),
        2 => (1u32..=5).prop_map(Op::Crash),
        3 => (1u32..=5).prop_map(Op::Restart),
        4 => (1u32..=5).prop_map(Op::Sync),
        2 => ((1u32..=5), any::<bool>()).prop_map(|(id, fast)| Op::FastDisk(id, fast)),
        2 => (1u32..=5).prop_map(Op::Transfer),
        2 => (1u32..=5).prop_map(Op::AskForLeadership),
        1 => (1u32..=5).prop_map(Op::Wipe),
    ]
}

/// Bounds the messages in flight, as a real network's buffers would.
const QUEUE_MAX: usize = 2_000;

fn apply(network: &mut Network, count: u32, op: Op) {
    let member = |id: u32| node((id - 1) % count + 1);
    let queued = network.queue.len();
    match op {
        Op::Deliver(index) if queued > 0 => network.deliver_at(index % queued),
        Op::DeliverAll => network.deliver_all(),
        Op::Drop(index) if queued > 0 => drop(network.queue.remove(index % queued)),
        Op::Duplicate(index) if queued > 0 && queued < QUEUE_MAX => {
            let copy = network.queue[index % queued].clone();
            network.queue.push_back(copy);
        }
        Op::Advance(duration_ms) => {
            network.now_ms += duration_ms;
            network.tick_all();
        }
        Op::Propose(offsets) => {
            let leaders = network.leaders();
            if let Some(leader) = leaders.into_iter().max_by_key(|id| network.replica(*id).epoch())
            {
                if network.replica(leader).accepts_writes() {
                    network.propose(leader, offsets);
                }
            }
        }
        Op::AskForLeadership(id) => {
            let now_ms = network.now_ms;
            if let Some(replica) = network.node_mut(member(id)).replica.as_mut() {
                replica.request_leadership(now_ms);
                network.process(member(id));
            }
        }
        Op::Transfer(id) => {
            let leaders = network.leaders();
            if let Some(leader) = leaders.into_iter().max_by_key(|id| network.replica(*id).epoch())
            {
                network.transfer(leader, member(id));
            }
        }
        Op::Isolate(id) => network.isolate(member(id)),
        Op::Partition(mask) => {
            let side: Vec<_> =
                network.ids().into_iter().filter(|id| mask & (1 << id.0) != 0).collect();
            network.partition(&side);
        }
        Op::Heal => network.heal(),
        Op::Crash(id) if network.node(member(id)).replica.is_some() => network.crash(member(id)),
        Op::Restart(id) if network.node(member(id)).replica.is_none() => {
            network.restart(member(id))
        }
        Op::Sync(id) => network.sync(member(id)),
        Op::FastDisk(id, fast) => network.node_mut(member(id)).auto_durable = fast,
        Op::Wipe(id) if network.voters_on_current_directories() => network.wipe(member(id)),
        Op::Deliver(_)
        | Op::Drop(_)
        | Op::Duplicate(_)
        | Op::Crash(_)
        | Op::Restart(_)
        | Op::Wipe(_) => {}
    }
    while network.queue.len() > QUEUE_MAX {
        network.queue.pop_front();
    }
}

fn run(count: u32, ops: Vec<Op>) {
    let mut network = Network::pinned(count);
    for op in ops {
        apply(&mut network, count, op);
    }
    network.heal();
    for id in network.ids() {
        if network.node(id).replica.is_none() {
            network.restart(id);
        }
        network.node_mut(id).auto_durable = true;
        network.sync(id);
    }
    let leader = network.settle(30_000);
    // Every committed batch survived: the checker saw it durable on a majority throughout.
    assert!(network.replica(leader).high_watermark() >= network.checker.committed_end_offset());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn replicas_stay_safe_under_random_faults_and_recover_after_healing(
        count in 3u32..=5,
        ops in prop::collection::vec(op(), 1..500),
    ) {
        run(count, ops);
    }
}
