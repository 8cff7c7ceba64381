//! The nemesis of a cluster: faults aimed at one broker (often a partition's leader, as
//! the latest Metadata answer named it), at several at once, or at the links between them.
//! Every fault event names its brokers (`broker=N`, node ids as in the cluster).
//!
//! Faults that destroy acknowledged data at rest (bit flips, lying writes) are not applied:
//! a replica whose log is corrupt must be repaired from its peers (Protocol-Aware
//! Recovery), which is not built; until then such a replica would vote and serve on a log
//! it cannot trust (docs/simulation.md).

use std::cell::Cell;

use madsim::net::NetSim;
use madsim::runtime::Handle;
use madsim::task::NodeId;
use tern::io::{DiskLatency, SimDisk};

use super::{
    broker_disk, claim_lifecycle, latency_spike, packet_loss, random_between, random_partition_dir,
    release_lifecycle, reset_connections, restore_latency, sleep_ms,
};
use crate::plan::{FaultKind, Plan};
use crate::run::run_state;
use crate::workload::client_nodes;

thread_local! {
    /// The index of the broker whose disk this run wipes, once chosen: every wipe of a run
    /// hits that one broker.
    static WIPED: Cell<Option<usize>> = const { Cell::new(None) };
}

/// A new run: no broker chosen for wipes yet.
pub(super) fn forget_wiped() {
    WIPED.with(|wiped| wiped.set(None));
}

/// The cluster's broker id of the node at `index` of the brokers (broker 1 first).
fn broker_id(index: usize) -> usize {
    index + 1
}

fn random_index(brokers: &[NodeId]) -> usize {
    random_between(0, brokers.len() as u64 - 1) as usize
}

/// The broker that the latest Metadata answer named leader of a random partition; a random
/// broker when none was named yet.
fn leader_index(brokers: &[NodeId], plan: &Plan) -> usize {
    let partition = random_between(0, plan.partitions as u64 - 1) as i32;
    let leader = run_state().latest_leader(partition);
    let index = leader.and_then(|id| usize::try_from(id - 1).ok());
    match index.filter(|index| *index < brokers.len()) {
        Some(index) => index,
        None => random_index(brokers),
    }
}

/// Half the time a partition's leader, otherwise any broker.
fn leader_or_any(brokers: &[NodeId], plan: &Plan) -> usize {
    if random_between(0, 1) == 0 {
        leader_index(brokers, plan)
    } else {
        random_index(brokers)
    }
}

pub(super) async fn apply(handle: &Handle, brokers: &[NodeId], plan: &Plan, kind: FaultKind) {
    match kind {
        FaultKind::Crash => {
            let index = random_index(brokers);
            power_cycle(handle, brokers, index, random_between(10, 1_000)).await;
        }
        FaultKind::LeaderCrash => {
            let index = leader_index(brokers, plan);
            power_cycle(handle, brokers, index, random_between(10, 1_000)).await;
        }
        FaultKind::ProcessCrash => {
            let index = random_index(brokers);
            process_cycle(handle, brokers, plan, index, random_between(1, 300)).await;
        }
        FaultKind::PowerOutage => power_outage(handle, brokers, plan).await,
        FaultKind::RollingRestart => rolling_restart(handle, brokers, plan).await,
        FaultKind::Pause => pause(handle, brokers, leader_or_any(brokers, plan)).await,
        FaultKind::DiskLatency => slow_disks(brokers, plan).await,
        FaultKind::SyncEio | FaultKind::WriteEio | FaultKind::Enospc => {
            failing_disk(handle, brokers, plan, kind).await;
        }
        FaultKind::ConnectionReset => reset_connections(),
        FaultKind::Loss => packet_loss().await,
        FaultKind::Latency => latency_spike().await,
        FaultKind::PartitionBoth | FaultKind::PartitionRequests | FaultKind::PartitionResponses => {
            cut_a_client(brokers, kind).await;
        }
        FaultKind::PartitionMinority => partition_minority(brokers, plan).await,
        FaultKind::PartitionMajoritiesRing => majorities_ring(brokers).await,
        FaultKind::PartitionOneWay => one_way(brokers).await,
        FaultKind::FlappingLinks => flapping_links(brokers).await,
        FaultKind::Wipe => wipe(handle, brokers, plan).await,
        FaultKind::Corrupt
        | FaultKind::ReadEio
        | FaultKind::PhantomWrite
        | FaultKind::MisdirectedWrite
        | FaultKind::MisdirectedRead => {
            unreachable!("{kind:?} destroys data at rest: not a cluster fault yet")
        }
    }
}

/// A power failure of one broker (unsynced writes dropped or torn), restarted `down_ms`
/// later.
async fn power_cycle(handle: &Handle, brokers: &[NodeId], index: usize, down_ms: u64) {
    let node = brokers[index];
    claim_lifecycle(node).await;
    tracing::warn!(fault = "kill", broker = broker_id(index), down_ms, "broker power failure");
    handle.kill(node);
    sleep_ms(down_ms).await;
    handle.restart(node);
    release_lifecycle(node);
}

/// One broker loses power and comes back on an empty disk: a new directory id, no log, no
/// vote. Every wipe of a run hits the same broker, so at most one replica of a partition
/// (and one voter of the controller) has lost its data at any time; two of three would lose
/// acknowledged records by design. Half the time a partition's leader loses power at the
/// same moment and comes back only after several election timeouts: meanwhile the third
/// replica (perhaps behind) and the wiped one are the only ones up, the election that the
/// wiped replica must not decide.
async fn wipe(handle: &Handle, brokers: &[NodeId], plan: &Plan) {
    let index = WIPED.with(Cell::get).unwrap_or_else(|| random_index(brokers));
    WIPED.with(|wiped| wiped.set(Some(index)));
    let leader = leader_index(brokers, plan);
    let with_leader = leader != index && random_between(0, 1) == 0;
    let mut victims = vec![index];
    if with_leader {
        victims.push(leader);
    }
    victims.sort_unstable();
    // Ascending claims: see `claim_lifecycle`.
    for victim in &victims {
        claim_lifecycle(brokers[*victim]).await;
    }
    tracing::warn!(fault = "wipe", broker = broker_id(index), with_leader, "disk wiped");
    for victim in &victims {
        handle.kill(brokers[*victim]);
    }
    broker_disk(brokers[index], plan).wipe();
    sleep_ms(random_between(10, 300)).await;
    handle.restart(brokers[index]);
    release_lifecycle(brokers[index]);
    if with_leader {
        let timeout_ms = plan.election_timeout_ms;
        sleep_ms(random_between(2 * timeout_ms, 5 * timeout_ms)).await;
        tracing::warn!(fault = "restart", broker = broker_id(leader), "leader back");
        handle.restart(brokers[leader]);
        release_lifecycle(brokers[leader]);
    }
}

/// A process crash of one broker (its page cache survives), restarted `down_ms` later.
async fn process_cycle(
    handle: &Handle,
    brokers: &[NodeId],
    plan: &Plan,
    index: usize,
    down_ms: u64,
) {
    let node = brokers[index];
    claim_lifecycle(node).await;
    tracing::warn!(fault = "process_crash", broker = broker_id(index), down_ms, "broker");
    exit_and_restart(handle, node, plan, down_ms).await;
}

/// The process of `node` (whose lifecycle the caller claimed) ends, its page cache
/// surviving, and starts again `down_ms` later.
async fn exit_and_restart(handle: &Handle, node: NodeId, plan: &Plan, down_ms: u64) {
    SimDisk::spare_disk_at_next_kill(node, plan.seed);
    handle.kill(node);
    sleep_ms(down_ms).await;
    handle.restart(node);
    release_lifecycle(node);
}

/// One broker's disk (half the time every broker's: a slow storage array) takes
/// milliseconds per write and sync for a while.
async fn slow_disks(brokers: &[NodeId], plan: &Plan) {
    let slowed: Vec<usize> = if random_between(0, 1) == 0 {
        let index = random_index(brokers);
        tracing::warn!(fault = "slow_disk", broker = broker_id(index), "disk");
        vec![index]
    } else {
        tracing::warn!(fault = "slow_disks", "every broker's disk");
        (0..brokers.len()).collect()
    };
    let latency = DiskLatency {
        write_us_max: random_between(0, 2_000),
        sync_us_max: random_between(1_000, 50_000),
    };
    for index in &slowed {
        broker_disk(brokers[*index], plan).set_latency(latency);
    }
    sleep_ms(random_between(200, 3_000)).await;
    for index in &slowed {
        broker_disk(brokers[*index], plan).set_latency(plan.disk_latency());
    }
}

/// A majority of the brokers (sometimes all) lose power at once; each comes back after its
/// own delay, so the first to return may hold the oldest log. Half the time a partition's
/// leader, if it lost power, comes back last: the others elect a leader without it.
async fn power_outage(handle: &Handle, brokers: &[NodeId], plan: &Plan) {
    let count = random_between(brokers.len() as u64 / 2 + 1, brokers.len() as u64) as usize;
    let mut chosen = shuffled(brokers.len());
    chosen.truncate(count);
    chosen.sort_unstable();
    // Ascending claims: see `claim_lifecycle`.
    for index in &chosen {
        claim_lifecycle(brokers[*index]).await;
    }
    let mut comebacks: Vec<(u64, usize)> =
        chosen.iter().map(|index| (random_between(10, 1_500), *index)).collect();
    let leader = leader_index(brokers, plan);
    if random_between(0, 1) == 0 {
        let last_ms = comebacks.iter().map(|(down_ms, _)| *down_ms).max().unwrap_or(0);
        for (down_ms, index) in &mut comebacks {
            if *index == leader {
                *down_ms = last_ms + random_between(100, 1_000);
            }
        }
    }
    let names: Vec<usize> = chosen.iter().map(|index| broker_id(*index)).collect();
    tracing::warn!(fault = "power_outage", brokers = ?names, "brokers lose power at once");
    for index in &chosen {
        handle.kill(brokers[*index]);
    }
    comebacks.sort_unstable();
    let mut slept_ms = 0;
    for (down_ms, index) in comebacks {
        sleep_ms(down_ms - slept_ms).await;
        slept_ms = down_ms;
        tracing::warn!(fault = "restart", broker = broker_id(index), down_ms, "power back");
        handle.restart(brokers[index]);
        release_lifecycle(brokers[index]);
    }
}

/// A controlled shutdown of one broker (SIGTERM: its partitions' leadership handed over,
/// then a clean exit; killed if it has not exited within 10 s), restarted `down_ms` later.
async fn graceful_cycle(
    handle: &Handle,
    brokers: &[NodeId],
    plan: &Plan,
    index: usize,
    down_ms: u64,
) {
    let node = brokers[index];
    claim_lifecycle(node).await;
    let broker = broker_id(index) as i32;
    tracing::warn!(fault = "graceful_restart", broker, down_ms, "broker shut down (SIGTERM)");
    if crate::run::request_shutdown(broker) {
        // Each round sleeps 10 ms: at most 1,000 rounds.
        for _ in 0..1_000 {
            if !crate::run::is_serving(broker) {
                break;
            }
            sleep_ms(10).await;
        }
    }
    exit_and_restart(handle, node, plan, down_ms).await;
}

/// Every broker in turn, from a random one: killed (process crash or power failure) or shut
/// down cleanly (SIGTERM), and restarted, with a pause between brokers.
async fn rolling_restart(handle: &Handle, brokers: &[NodeId], plan: &Plan) {
    let first = random_index(brokers);
    tracing::warn!(fault = "rolling_restart", first = broker_id(first), "brokers in turn");
    for step in 0..brokers.len() {
        let index = (first + step) % brokers.len();
        let down_ms = random_between(10, 300);
        match random_between(0, 2) {
            0 => process_cycle(handle, brokers, plan, index, down_ms).await,
            1 => power_cycle(handle, brokers, index, down_ms).await,
            _ => graceful_cycle(handle, brokers, plan, index, down_ms).await,
        }
        sleep_ms(random_between(300, 1_500)).await;
    }
}

async fn pause(handle: &Handle, brokers: &[NodeId], index: usize) {
    let node = brokers[index];
    claim_lifecycle(node).await;
    let paused_ms = random_between(50, 3_000);
    tracing::warn!(fault = "pause", broker = broker_id(index), paused_ms, "broker paused");
    handle.pause(node);
    sleep_ms(paused_ms).await;
    handle.resume(node);
    tracing::warn!(fault = "resume", broker = broker_id(index), "broker resumed");
    release_lifecycle(node);
}

/// One broker's disk fails the next syncs or writes of a partition, or fills up, for a
/// while; then the broker restarts: a replica whose log operation failed stops (as a crash
/// would) until its log is re-opened.
async fn failing_disk(handle: &Handle, brokers: &[NodeId], plan: &Plan, kind: FaultKind) {
    let index = random_index(brokers);
    let disk = broker_disk(brokers[index], plan);
    tracing::warn!(fault = "failing_disk", broker = broker_id(index), ?kind, "disk");
    match kind {
        FaultKind::SyncEio => {
            disk.fail_next_syncs(&random_partition_dir(plan), random_between(1, 3) as u32)
        }
        FaultKind::WriteEio => {
            disk.fail_next_writes(&random_partition_dir(plan), random_between(1, 3) as u32)
        }
        _ => disk.set_capacity_bytes(Some(disk.used_bytes() + random_between(0, 64 << 10))),
    }
    sleep_ms(random_between(100, 1_500)).await;
    disk.clear_failing_syncs();
    disk.set_capacity_bytes(None);
    power_cycle(handle, brokers, index, random_between(10, 300)).await;
}

/// A client loses one broker: both ways, requests only, or answers only.
async fn cut_a_client(brokers: &[NodeId], kind: FaultKind) {
    let clients = client_nodes();
    let client = clients[random_between(0, clients.len() as u64 - 1) as usize];
    let index = random_index(brokers);
    let broker = brokers[index];
    tracing::warn!(fault = "partition", ?kind, %client, broker = broker_id(index), "client");
    let links: Vec<(NodeId, NodeId)> = match kind {
        FaultKind::PartitionBoth => vec![(client, broker), (broker, client)],
        FaultKind::PartitionRequests => vec![(client, broker)],
        _ => vec![(broker, client)],
    };
    clog_for(&links, random_between(200, 3_000)).await;
}

/// Clogs `links` (source, destination) for `duration_ms`, then unclogs them.
async fn clog_for(links: &[(NodeId, NodeId)], duration_ms: u64) {
    let net = NetSim::current();
    for (source, destination) in links {
        net.clog_link(*source, *destination);
    }
    sleep_ms(duration_ms).await;
    for (source, destination) in links {
        net.unclog_link(*source, *destination);
    }
}

/// Both directions of every link between `side` and the other brokers.
fn links_across(brokers: &[NodeId], side: &[usize]) -> Vec<(NodeId, NodeId)> {
    let mut links = Vec::new();
    for inside in side {
        for outside in (0..brokers.len()).filter(|index| !side.contains(index)) {
            links.push((brokers[*inside], brokers[outside]));
            links.push((brokers[outside], brokers[*inside]));
        }
    }
    links
}

/// 0..count in a random order.
fn shuffled(count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count).collect();
    for index in (1..count).rev() {
        order.swap(index, random_between(0, index as u64) as usize);
    }
    order
}

/// A minority (half the time holding a partition's leader) cut off from the majority.
async fn partition_minority(brokers: &[NodeId], plan: &Plan) {
    let size = random_between(1, (brokers.len() as u64 - 1) / 2) as usize;
    let mut minority = vec![leader_or_any(brokers, plan)];
    for index in shuffled(brokers.len()) {
        if minority.len() < size && !minority.contains(&index) {
            minority.push(index);
        }
    }
    let names: Vec<usize> = minority.iter().map(|index| broker_id(*index)).collect();
    tracing::warn!(fault = "partition_minority", minority = ?names, "brokers split");
    clog_for(&links_across(brokers, &minority), random_between(300, 3_000)).await;
}

/// Every broker reaches its two neighbours on a random ring and no one else (five
/// brokers: each sees a majority of its own); three brokers: a bridge, the two ends cut.
async fn majorities_ring(brokers: &[NodeId]) {
    let ring = shuffled(brokers.len());
    let count = ring.len();
    let mut links = Vec::new();
    for (position, index) in ring.iter().enumerate() {
        for (other_position, other) in ring.iter().enumerate() {
            let distance = position.abs_diff(other_position);
            let neighbours = distance <= 1 || distance == count - 1;
            // Three brokers are all neighbours on a ring: cut the ends of a path instead.
            let bridge_ends = count == 3 && distance == 2;
            if index != other && (!neighbours || bridge_ends) {
                links.push((brokers[*index], brokers[*other]));
            }
        }
    }
    let names: Vec<usize> = ring.iter().map(|index| broker_id(*index)).collect();
    tracing::warn!(fault = "majorities_ring", ring = ?names, "brokers see their neighbours");
    clog_for(&links, random_between(300, 3_000)).await;
}

/// One broker's messages to its peers are dropped, or theirs to it.
async fn one_way(brokers: &[NodeId]) {
    let index = random_index(brokers);
    let outbound = random_between(0, 1) == 0;
    let others = (0..brokers.len()).filter(|other| *other != index);
    let links: Vec<(NodeId, NodeId)> = others
        .map(|other| match outbound {
            true => (brokers[index], brokers[other]),
            false => (brokers[other], brokers[index]),
        })
        .collect();
    tracing::warn!(fault = "one_way", broker = broker_id(index), outbound, "peer links");
    clog_for(&links, random_between(300, 3_000)).await;
}

/// The links of one broker to its peers, or of one pair, are cut and restored every
/// 20-300 ms for 1-3 s.
async fn flapping_links(brokers: &[NodeId]) {
    let index = random_index(brokers);
    let links = if random_between(0, 1) == 0 {
        links_across(brokers, &[index])
    } else {
        let other =
            (index + 1 + random_between(0, brokers.len() as u64 - 2) as usize) % brokers.len();
        vec![(brokers[index], brokers[other]), (brokers[other], brokers[index])]
    };
    let until_ms = random_between(1_000, 3_000);
    tracing::warn!(fault = "flapping", broker = broker_id(index), links = links.len(), "links");
    let mut elapsed_ms = 0;
    // Each round clogs then unclogs: bounded by `until_ms`.
    while elapsed_ms < until_ms {
        let (down_ms, up_ms) = (random_between(20, 300), random_between(20, 300));
        clog_for(&links, down_ms).await;
        sleep_ms(up_ms).await;
        elapsed_ms += down_ms + up_ms;
    }
}

/// Undoes every network and disk fault on every broker; nothing restarts (every fault that
/// stops a replica ended with its broker's restart).
pub(super) fn heal(brokers: &[NodeId], plan: &Plan) {
    for broker in brokers {
        let disk = broker_disk(*broker, plan);
        disk.clear_failing_syncs();
        disk.clear_failing_reads();
        disk.set_capacity_bytes(None);
        disk.set_latency(plan.disk_latency());
    }
    let net = NetSim::current();
    net.update_config(|config| config.packet_loss_rate = 0.0);
    restore_latency();
    let clients = client_nodes();
    for node in brokers.iter().chain(&clients) {
        net.unclog_node(*node);
        for other in brokers.iter().chain(&clients) {
            net.unclog_link(*node, *other);
        }
    }
}
