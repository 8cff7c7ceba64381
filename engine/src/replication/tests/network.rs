//! A tiny deterministic world for replicas: each node has an in-memory log model (batches
//! with a durable prefix) and a persisted hard state; a message queue delivers one message
//! at a time (or until quiet); links can be cut, nodes crashed and restarted, time advanced.
//! The harness is the driver: it applies every [`Ready`] as the contract in `mod.rs` says,
//! and after every step runs the [`Checker`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::checker::Checker;
use crate::replication::{
    DirectoryId, EntryMeta, HardState, LeaderEpochs, LogOp, LogSummary, Message, NodeId, PeerRead,
    Ready, Replica, ReplicaConfig, Voter, VoterChange, VoterSet,
};

/// One value per batch of an append request.
pub type Payload = Vec<u64>;

/// The leader-change control batch's value.
pub const CONTROL_VALUE: u64 = 0;

/// Voters batches have values from here on: `Network::voter_sets` holds each one's set (what
/// a real driver would parse from the batch's record).
pub const VOTERS_VALUE_BASE: u64 = 1 << 40;

/// Model bytes of a batch: this much per offset.
pub const BYTES_PER_OFFSET: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub base_offset: i64,
    pub next_offset: i64,
    pub epoch: i32,
    pub value: u64,
}

impl Batch {
    pub fn meta(&self) -> EntryMeta {
        EntryMeta {
            base_offset: self.base_offset,
            next_offset: self.next_offset,
            epoch: self.epoch,
        }
    }
}

/// A node's log: batches, of which those below `durable_end_offset` survive a crash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelLog {
    pub batches: Vec<Batch>,
    pub durable_end_offset: i64,
}

impl ModelLog {
    /// A log of `(offsets, epoch)` batches from offset 0, all durable.
    pub fn from_batches(batches: &[(i64, i32)]) -> ModelLog {
        let mut log = ModelLog::default();
        for (index, &(count, epoch)) in batches.iter().enumerate() {
            let base_offset = log.end_offset();
            let value = 1_000_000 + index as u64;
            log.append(Batch { base_offset, next_offset: base_offset + count, epoch, value });
        }
        log.durable_end_offset = log.end_offset();
        log
    }

    pub fn end_offset(&self) -> i64 {
        self.batches.last().map_or(0, |batch| batch.next_offset)
    }

    pub fn append(&mut self, batch: Batch) {
        assert_eq!(batch.base_offset, self.end_offset(), "{batch:?} at the end of {self:?}");
        assert!(batch.base_offset < batch.next_offset);
        self.batches.push(batch);
    }

    pub fn truncate_from(&mut self, offset: i64) {
        let keep = self.batches.partition_point(|batch| batch.base_offset < offset);
        self.batches.truncate(keep);
        assert_eq!(self.end_offset(), offset, "truncation at a batch boundary");
        self.durable_end_offset = self.durable_end_offset.min(offset);
    }

    /// The batch holding `offset`.
    pub fn batch_at(&self, offset: i64) -> Option<&Batch> {
        let index = self.batches.partition_point(|batch| batch.next_offset <= offset);
        self.batches.get(index).filter(|batch| batch.base_offset <= offset)
    }

    /// Whole batches from the one holding `start_offset`, within `max_bytes` (at least one).
    pub fn read_from(&self, start_offset: i64, max_bytes: u32) -> Vec<Batch> {
        let first = self.batches.partition_point(|batch| batch.next_offset <= start_offset);
        let mut read = Vec::new();
        let mut bytes = 0;
        for batch in &self.batches[first..] {
            let size = (batch.next_offset - batch.base_offset) as u32 * BYTES_PER_OFFSET;
            if !read.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            read.push(*batch);
        }
        read
    }

    /// A crash loses whatever was not synced.
    pub fn crash(&mut self) {
        let keep =
            self.batches.partition_point(|batch| batch.next_offset <= self.durable_end_offset);
        self.batches.truncate(keep);
        self.durable_end_offset = self.end_offset();
    }

    pub fn epochs(&self) -> LeaderEpochs {
        let mut epochs = LeaderEpochs::new();
        for batch in &self.batches {
            epochs.append(batch.epoch, batch.base_offset);
        }
        epochs
    }

    pub fn summary(&self, high_watermark: i64) -> LogSummary {
        self.summary_with(high_watermark, &BTreeMap::new())
    }

    /// The summary, with the voters batches found by their values in `voter_sets`.
    pub fn summary_with(&self, high_watermark: i64, voter_sets: &VoterSets) -> LogSummary {
        let voter_changes = self
            .batches
            .iter()
            .filter_map(|batch| {
                let voters = voter_sets.get(&batch.value)?.clone();
                Some(VoterChange { offset: batch.base_offset, voters })
            })
            .collect();
        LogSummary {
            epochs: self.epochs(),
            log_end_offset: self.end_offset(),
            durable_end_offset: self.durable_end_offset,
            high_watermark,
            voter_changes,
        }
    }
}

pub struct Node {
    /// `None` while crashed.
    pub replica: Option<Replica<Payload>>,
    pub log: ModelLog,
    /// What the driver made durable from the Readies.
    pub hard_state: HardState,
    pub config: ReplicaConfig,
    /// Sync every append at once (else the test calls [`Network::sync`]).
    pub auto_durable: bool,
    pub restarts: u64,
}

#[derive(Debug, Clone)]
pub struct Envelope {
    pub from: NodeId,
    pub to: NodeId,
    pub message: Message<Payload>,
}

impl Envelope {
    /// An append request without batches.
    pub fn is_heartbeat(&self) -> bool {
        matches!(&self.message, Message::AppendRequest(request) if request.entries.is_empty())
    }

    pub fn is_append_rejection(&self) -> bool {
        matches!(&self.message, Message::AppendResponse(response) if !response.success)
    }
}

/// Each voters batch's set, by the batch's value.
pub type VoterSets = BTreeMap<u64, VoterSet>;

pub struct Network {
    pub nodes: BTreeMap<NodeId, Node>,
    pub voter_sets: VoterSets,
    pub queue: VecDeque<Envelope>,
    pub now_ms: i64,
    /// Directed links that drop everything.
    pub blocked: BTreeSet<(NodeId, NodeId)>,
    pub checker: Checker,
    /// Every Ready any node produced, oldest first (for tests that look at the order).
    pub readies: Vec<(NodeId, Ready<Payload>)>,
    /// Every message sent, with the time (kept only with `keep_readies`).
    pub sent: Vec<(i64, Envelope)>,
    pub keep_readies: bool,
    next_value: u64,
}

pub fn node(id: u32) -> NodeId {
    NodeId(id)
}

/// The data directory of node `id` after `wipes` wipes.
pub fn directory(id: u32, wipes: u64) -> Option<DirectoryId> {
    Some(DirectoryId(u128::from(id) * 1_000 + u128::from(wipes)))
}

/// The test configuration: election timeout 1000 ms, heartbeat 100 ms, 10 offsets per append.
pub fn config(id: u32, count: u32) -> ReplicaConfig {
    let voters = (1..=count).map(NodeId).collect();
    let mut config = ReplicaConfig::new(NodeId(id), voters);
    config.max_append_bytes = 10 * BYTES_PER_OFFSET;
    config
}

impl Network {
    pub fn new(count: u32) -> Network {
        Network::with(count, |_| {}, |_| Default::default())
    }

    /// `count` nodes with configs adjusted by `adjust`, each starting from the log and the
    /// persisted hard state `state` gives.
    pub fn with(
        count: u32,
        adjust: impl Fn(&mut ReplicaConfig),
        state: impl Fn(NodeId) -> (ModelLog, HardState),
    ) -> Network {
        let mut network = Network {
            nodes: BTreeMap::new(),
            voter_sets: BTreeMap::new(),
            queue: VecDeque::new(),
            now_ms: 0,
            blocked: BTreeSet::new(),
            checker: Checker::new(count as usize),
            readies: Vec::new(),
            sent: Vec::new(),
            keep_readies: false,
            next_value: 1,
        };
        for id in 1..=count {
            let mut config = config(id, count);
            adjust(&mut config);
            let (log, hard_state) = state(NodeId(id));
            let node =
                Node { replica: None, log, hard_state, config, auto_durable: true, restarts: 0 };
            network.nodes.insert(NodeId(id), node);
        }
        // Every node exists before any starts: each learns the others' directories.
        for id in 1..=count {
            network.start(NodeId(id), 0);
        }
        network
    }

    /// (Re)creates a node's replica from its persisted state and its log.
    fn start(&mut self, id: NodeId, high_watermark: i64) {
        let now_ms = self.now_ms;
        let node = self.nodes.get_mut(&id).unwrap_or_else(|| panic!("no node {id:?}"));
        let high_watermark = high_watermark.min(node.log.end_offset());
        let summary = node.log.summary_with(high_watermark, &self.voter_sets);
        let seed = u64::from(id.0) * 7_919 + node.restarts * 104_729;
        let replica = Replica::new(node.config.clone(), node.hard_state, summary, seed, now_ms);
        node.replica = Some(replica);
        self.checker.restarted(id);
        // As a broker's driver learns them from the cluster's registrations.
        let directories: Vec<(NodeId, DirectoryId)> = self
            .nodes
            .iter()
            .filter(|(other, _)| **other != id)
            .filter_map(|(other, node)| Some((*other, node.config.directory?)))
            .collect();
        let replica = self.node_mut(id).replica.as_mut().expect("just started");
        for (other, directory) in directories {
            replica.handle_peer_directory(other, directory, now_ms);
        }
        self.process(id);
    }

    /// `count` nodes, each on its own data directory, the voters pinned to them.
    pub fn pinned(count: u32) -> Network {
        let voters = (1..=count).map(|id| Voter { node: NodeId(id), directory: directory(id, 0) });
        let voters = VoterSet::new(voters.collect()).expect("voters");
        Network::with(
            count,
            |config| {
                config.directory = directory(config.node_id.0, 0);
                config.initial_voters = voters.clone();
            },
            |_| Default::default(),
        )
    }

    /// The node's disk is replaced: it restarts with an empty log, no hard state and a new
    /// data directory, which every other node's driver learns.
    pub fn wipe(&mut self, id: NodeId) {
        self.wipe_unannounced(id);
        self.announce_directory(id);
    }

    /// [`Network::wipe`], before any other node has learned the new directory.
    pub fn wipe_unannounced(&mut self, id: NodeId) {
        let node = self.node_mut(id);
        node.replica = None;
        node.log = ModelLog::default();
        node.hard_state = HardState::default();
        node.restarts += 1;
        let restarts = node.restarts;
        let new_directory = directory(id.0, restarts);
        node.config.directory = new_directory;
        self.checker.wiped();
        self.start(id, 0);
    }

    /// 1 leads and commits a batch with 2 while 3 is cut off; then 1 crashes and the links
    /// heal: 3 lacks a committed batch that only 1 (down) and 2 hold.
    pub fn commit_without_three_then_crash_one(&mut self) {
        self.elect(node(1));
        self.isolate(node(3));
        self.propose(node(1), 1);
        self.deliver_all();
        self.crash(node(1));
        self.heal();
    }

    /// Whether every node runs and every one's voters are all nodes on their current
    /// directories (no wipe is still being repaired).
    pub fn voters_on_current_directories(&self) -> bool {
        let current = self
            .nodes
            .iter()
            .map(|(id, node)| Voter { node: *id, directory: node.config.directory });
        let Some(current) = VoterSet::new(current.collect()) else { return false };
        self.nodes
            .values()
            .all(|node| node.replica.as_ref().is_some_and(|replica| replica.voters() == &current))
    }

    /// Every other live node's driver learns `id`'s directory.
    pub fn announce_directory(&mut self, id: NodeId) {
        let now_ms = self.now_ms;
        let directory = self.node(id).config.directory.expect("a node with a directory");
        for other in self.ids().into_iter().filter(|other| *other != id) {
            if let Some(replica) = self.node_mut(other).replica.as_mut() {
                replica.handle_peer_directory(id, directory, now_ms);
            }
            self.process(other);
        }
    }

    pub fn node(&self, id: NodeId) -> &Node {
        self.nodes.get(&id).unwrap_or_else(|| panic!("no node {id:?}"))
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        self.nodes.get_mut(&id).unwrap_or_else(|| panic!("no node {id:?}"))
    }

    pub fn replica(&self, id: NodeId) -> &Replica<Payload> {
        self.node(id).replica.as_ref().unwrap_or_else(|| panic!("{id:?} is down"))
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Live nodes that think they lead.
    pub fn leaders(&self) -> Vec<NodeId> {
        let live = self.nodes.iter().filter_map(|(id, node)| Some((*id, node.replica.as_ref()?)));
        live.filter(|(_, replica)| replica.is_leader()).map(|(id, _)| id).collect()
    }

    /// Applies every Ready of `id` as a driver would, then checks the world.
    pub fn process(&mut self, id: NodeId) {
        let mut outgoing = Vec::new();
        let voter_sets = &mut self.voter_sets;
        let keep_readies = self.keep_readies;
        let mut kept = Vec::new();
        let node = self.nodes.get_mut(&id).unwrap_or_else(|| panic!("no node {id:?}"));
        for _ in 0..1_000 {
            let Some(replica) = node.replica.as_mut() else { break };
            let Some(ready) = replica.poll_ready() else { break };
            if keep_readies {
                kept.push(ready.clone());
            }
            if let Some(hard_state) = ready.hard_state {
                node.hard_state = hard_state;
            }
            for op in ready.log_ops {
                apply(replica, &mut node.log, op, &mut outgoing, voter_sets);
            }
            outgoing.extend(ready.messages);
            let end_offset = node.log.end_offset();
            if node.auto_durable && node.log.durable_end_offset < end_offset {
                node.log.durable_end_offset = end_offset;
                replica.handle_durable(end_offset);
            }
        }
        assert!(node.replica.as_mut().is_none_or(|replica| replica.poll_ready().is_none()));
        self.readies.extend(kept.into_iter().map(|ready| (id, ready)));
        for (to, message) in outgoing {
            let envelope = Envelope { from: id, to, message };
            if keep_readies {
                self.sent.push((self.now_ms, envelope.clone()));
            }
            if !self.blocked.contains(&(id, to)) {
                self.queue.push_back(envelope);
            }
        }
        self.checker.check(&self.nodes, self.now_ms);
    }

    /// Delivers the message at `index` of the queue (dropped if its target is down).
    pub fn deliver_at(&mut self, index: usize) {
        let Some(envelope) = self.queue.remove(index) else { panic!("no message {index}") };
        let now_ms = self.now_ms;
        let blocked = self.blocked.contains(&(envelope.from, envelope.to));
        let Some(replica) = self.node_mut(envelope.to).replica.as_mut() else { return };
        if !blocked {
            replica.handle_message(envelope.from, envelope.message, now_ms);
            self.process(envelope.to);
        }
    }

    /// Delivers the oldest message; false if there was none.
    pub fn deliver_one(&mut self) -> bool {
        if self.queue.is_empty() {
            return false;
        }
        self.deliver_at(0);
        true
    }

    /// Delivers until no message is in flight.
    pub fn deliver_all(&mut self) {
        for _ in 0..100_000 {
            if !self.deliver_one() {
                return;
            }
        }
        panic!("the network did not go quiet: {} messages queued", self.queue.len());
    }

    /// Ticks one node at the current time.
    pub fn tick(&mut self, id: NodeId) {
        let now_ms = self.now_ms;
        if let Some(replica) = self.node_mut(id).replica.as_mut() {
            replica.handle_tick(now_ms);
            self.process(id);
        }
    }

    pub fn tick_all(&mut self) {
        for id in self.ids() {
            self.tick(id);
        }
    }

    /// Advances time by `duration_ms` in steps of `step_ms`, ticking every node and
    /// delivering everything at each step.
    pub fn run_for(&mut self, duration_ms: i64, step_ms: i64) {
        let end_ms = self.now_ms + duration_ms;
        while self.now_ms < end_ms {
            self.now_ms = (self.now_ms + step_ms).min(end_ms);
            self.tick_all();
            self.deliver_all();
        }
    }

    /// Makes `id` campaign (its timer fires; nobody else is ticked) and delivers everything.
    pub fn campaign(&mut self, id: NodeId) {
        let replica = self.replica(id);
        self.now_ms = self.now_ms.max(replica.election_deadline_ms());
        self.tick(id);
        self.deliver_all();
    }

    /// `campaign`, and asserts that `id` won.
    pub fn elect(&mut self, id: NodeId) {
        self.campaign(id);
        assert!(self.replica(id).is_leader(), "{:?}", self.replica(id));
    }

    /// A client batch of `count` offsets on the leader `id`; returns it.
    pub fn propose(&mut self, id: NodeId, count: i64) -> Batch {
        let value = self.next_value;
        self.next_value += 1;
        let node = self.node_mut(id);
        let replica = node.replica.as_mut().unwrap_or_else(|| panic!("{id:?} is down"));
        assert!(replica.accepts_writes(), "{id:?} is not a leader taking writes");
        let base_offset = node.log.end_offset();
        let batch =
            Batch { base_offset, next_offset: base_offset + count, epoch: replica.epoch(), value };
        node.log.append(batch);
        replica.handle_appended(batch.base_offset, batch.next_offset, batch.epoch);
        self.process(id);
        batch
    }

    /// The leader `id` starts handing its leadership to `target` (if it can); returns
    /// whether it started.
    pub fn transfer(&mut self, id: NodeId, target: NodeId) -> bool {
        let now_ms = self.now_ms;
        let replica = self.node_mut(id).replica.as_mut();
        let started = replica.is_some_and(|replica| replica.transfer_leadership(target, now_ms));
        self.process(id);
        started
    }

    /// `id` is going away (controlled shutdown).
    pub fn retire(&mut self, id: NodeId) {
        let now_ms = self.now_ms;
        if let Some(replica) = self.node_mut(id).replica.as_mut() {
            replica.retire(now_ms);
        }
        self.process(id);
    }

    /// Syncs `id`'s log to its end.
    pub fn sync(&mut self, id: NodeId) {
        let end_offset = self.node(id).log.end_offset();
        self.sync_to(id, end_offset);
    }

    /// Syncs `id`'s log below `end_offset`.
    pub fn sync_to(&mut self, id: NodeId, end_offset: i64) {
        let node = self.node_mut(id);
        assert!(end_offset <= node.log.end_offset());
        node.log.durable_end_offset = node.log.durable_end_offset.max(end_offset);
        if let Some(replica) = node.replica.as_mut() {
            replica.handle_durable(end_offset);
        }
        self.process(id);
    }

    /// Cuts every link to and from `id`.
    pub fn isolate(&mut self, id: NodeId) {
        for other in self.ids() {
            if other != id {
                self.blocked.insert((id, other));
                self.blocked.insert((other, id));
            }
        }
    }

    /// Splits the nodes into `side` and the rest.
    pub fn partition(&mut self, side: &[NodeId]) {
        for a in self.ids() {
            for b in self.ids() {
                if side.contains(&a) != side.contains(&b) {
                    self.blocked.insert((a, b));
                }
            }
        }
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// The node's process dies: unsynced log suffix lost, hard state kept.
    pub fn crash(&mut self, id: NodeId) {
        let node = self.node_mut(id);
        node.replica = None;
        node.log.crash();
        self.checker.check(&self.nodes, self.now_ms);
    }

    /// Restarts a crashed node (with a checkpointed high watermark of 0).
    pub fn restart(&mut self, id: NodeId) {
        let node = self.node_mut(id);
        assert!(node.replica.is_none(), "{id:?} is running");
        node.restarts += 1;
        self.start(id, 0);
    }

    /// Runs until some live node leads and a new batch it proposes is committed on it, within
    /// `bound_ms`; returns the leader.
    pub fn settle(&mut self, bound_ms: i64) -> NodeId {
        let end_ms = self.now_ms + bound_ms;
        while self.now_ms < end_ms {
            self.run_for(50, 50);
            let Some(leader) =
                self.leaders().into_iter().max_by_key(|id| self.replica(*id).epoch())
            else {
                continue;
            };
            if !self.replica(leader).accepts_writes() {
                continue;
            }
            if self.replica(leader).epoch_at(self.replica(leader).high_watermark() - 1)
                != Some(self.replica(leader).epoch())
            {
                continue;
            }
            let batch = self.propose(leader, 1);
            self.run_for(300, 50);
            let still = self.node(leader).replica.as_ref().is_some_and(|r| r.is_leader());
            if still && self.replica(leader).high_watermark() >= batch.next_offset {
                return leader;
            }
        }
        panic!("no leader committed a new batch within {bound_ms} ms");
    }
}

/// Applies one log operation to the model log (the driver's part).
fn apply(
    replica: &mut Replica<Payload>,
    log: &mut ModelLog,
    op: LogOp<Payload>,
    outgoing: &mut Vec<(NodeId, Message<Payload>)>,
    voter_sets: &mut VoterSets,
) {
    match op {
        LogOp::AppendLeaderChange { epoch } => {
            let base_offset = log.end_offset();
            let next_offset = base_offset + 1;
            log.append(Batch { base_offset, next_offset, epoch, value: CONTROL_VALUE });
            replica.handle_appended(base_offset, next_offset, epoch);
        }
        LogOp::AppendVoters { epoch, voters } => {
            let base_offset = log.end_offset();
            let value = VOTERS_VALUE_BASE + voter_sets.len() as u64;
            voter_sets.insert(value, voters.clone());
            log.append(Batch { base_offset, next_offset: base_offset + 1, epoch, value });
            replica.handle_appended_voters(base_offset, epoch, voters);
        }
        LogOp::Append { entries, payload, .. } => {
            assert!(entries.len() <= payload.len());
            let values = &payload[payload.len() - entries.len()..];
            for (entry, value) in entries.iter().zip(values) {
                let EntryMeta { base_offset, next_offset, epoch } = *entry;
                log.append(Batch { base_offset, next_offset, epoch, value: *value });
            }
        }
        LogOp::Truncate { from_offset } => log.truncate_from(from_offset),
        LogOp::Commit { high_watermark } => {
            assert!(high_watermark <= log.end_offset());
        }
        LogOp::ReadForPeer(read) => read_for_peer(replica, log, read, outgoing),
    }
}

fn read_for_peer(
    replica: &Replica<Payload>,
    log: &ModelLog,
    read: PeerRead,
    outgoing: &mut Vec<(NodeId, Message<Payload>)>,
) {
    let batches = log.read_from(read.start_offset, read.max_bytes);
    let entries = batches.iter().map(Batch::meta).collect();
    let payload = batches.iter().map(|batch| batch.value).collect();
    if let Some(message) = replica.build_append(&read, entries, payload) {
        outgoing.push((read.peer, message));
    }
}
