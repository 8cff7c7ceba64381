//! Scenario tests of the replica, without a runtime: `messages` steps one replica message by
//! message; `election` and `log_replication` run several over the simulated network of
//! `network` (Raft paper, etcd and raft-rs scenarios, ported as behaviours); `property`
//! drives random faults. The `checker` asserts Raft's safety properties after every step
//! of every networked test.

mod checker;
mod election;
mod log_replication;
mod membership;
mod messages;
mod network;
mod property;
mod transfer;

use super::{
    AppendHeader, AppendRequest, EntryMeta, HardState, Message, NodeId, Ready, Replica,
    ReplicaConfig, VoteRequest, NO_EPOCH,
};
use network::{config, ModelLog, Payload};

/// A lone replica `id` of `count` voters over `log`, as restarted with `hard_state`.
fn replica_with(
    id: u32,
    count: u32,
    log: &ModelLog,
    hard_state: HardState,
    adjust: impl Fn(&mut ReplicaConfig),
) -> Replica<Payload> {
    let mut config = config(id, count);
    adjust(&mut config);
    Replica::new(config, hard_state, log.summary(0), u64::from(id), 0)
}

fn replica(id: u32, count: u32) -> Replica<Payload> {
    replica_with(id, count, &ModelLog::default(), HardState::default(), |_| {})
}

/// Everything the replica has to say, in one Ready (hard state: the last one).
fn drain(replica: &mut Replica<Payload>) -> Ready<Payload> {
    let mut all = Ready { hard_state: None, messages: Vec::new(), log_ops: Vec::new() };
    while let Some(ready) = replica.poll_ready() {
        all.hard_state = ready.hard_state.or(all.hard_state);
        all.messages.extend(ready.messages);
        all.log_ops.extend(ready.log_ops);
    }
    all
}

fn vote_request(
    epoch: i32,
    candidate: u32,
    log_end_offset: i64,
    last_epoch: i32,
) -> Message<Payload> {
    Message::VoteRequest(VoteRequest {
        epoch,
        candidate: NodeId(candidate),
        log_end_offset,
        last_epoch,
        pre_vote: false,
        transfer: false,
    })
}

fn pre_vote_request(
    epoch: i32,
    candidate: u32,
    log_end_offset: i64,
    last_epoch: i32,
) -> Message<Payload> {
    let Message::VoteRequest(request) = vote_request(epoch, candidate, log_end_offset, last_epoch)
    else {
        unreachable!()
    };
    Message::VoteRequest(VoteRequest { pre_vote: true, ..request })
}

/// An append from `leader` in `epoch` after `(prev_offset, prev_epoch)` with batches
/// `(base, next, epoch)` whose values are their base offsets.
fn append(
    epoch: i32,
    leader: u32,
    prev: (i64, i32),
    leader_commit: i64,
    entries: &[(i64, i64, i32)],
) -> Message<Payload> {
    let (prev_offset, prev_epoch) = prev;
    let leader = NodeId(leader);
    let header =
        AppendHeader { epoch, leader, prev_offset, prev_epoch, leader_commit, leader_clock_ms: 0 };
    let entries: Vec<EntryMeta> = entries
        .iter()
        .map(|&(base_offset, next_offset, epoch)| EntryMeta { base_offset, next_offset, epoch })
        .collect();
    let payload = entries.iter().map(|entry| entry.base_offset as u64).collect();
    Message::AppendRequest(AppendRequest { header, entries, payload, voter_changes: vec![] })
}

/// A heartbeat from the start of the log.
fn heartbeat(epoch: i32, leader: u32) -> Message<Payload> {
    append(epoch, leader, (-1, NO_EPOCH), 0, &[])
}
