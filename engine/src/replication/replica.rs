//! One partition replica as a Raft state machine with no I/O: messages, time and log events
//! in ([`Replica::handle_message`], [`Replica::handle_tick`], [`Replica::handle_appended`],
//! [`Replica::handle_durable`]); a [`Ready`] out (hard state to persist, messages to send,
//! log operations). The driver owns the log, the disk, the clock and the sockets; the
//! replica only decides. The contract between them is in `replication/mod.rs`.
//!
//! The submodules split the roles: `election` (pre-vote, votes, becoming a leader),
//! `leader` (progress per follower, commit, in-sync replicas, heartbeats, check-quorum),
//! `follower` (log matching, truncation, durable acknowledgements) and `transfer` (handing
//! leadership to another voter; retiring for a controlled shutdown).
//!
//! Invariants (asserted after every input, [`Replica::check_invariants`]): the high
//! watermark never moves back and never passes the log end; a leader or candidate has voted
//! for itself in its epoch; only a leader has leadership state; the epoch is at least the
//! epoch of the last log entry; a follower never truncates below its high watermark.

mod election;
mod follower;
mod leader;
mod membership;
mod transfer;

use std::collections::BTreeMap;

use super::epochs::{LeaderEpochs, LocalLog};
use super::membership::{DirectoryId, VoterChange, VoterHistory, VoterSet};
use super::message::{AppendResponse, EntryMeta, Message, NodeId, VoteResponse};

/// Static settings of one replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaConfig {
    pub node_id: NodeId,
    /// The data directory this replica runs on (`None`: not known, as in tests that never
    /// wipe a directory). A replica is a voter only if its (node, directory) pair is one.
    pub directory: Option<DirectoryId>,
    /// Every replica of the partition, this one included, in assignment order (the first is
    /// the preferred leader). Voters and learners alike; messages come from these only.
    pub replicas: Vec<NodeId>,
    /// The voters before any voters batch in the log: the assignment's, pinned to the
    /// directories its brokers had registered (`membership.rs`).
    pub initial_voters: VoterSet,
    /// The base election timeout; each timer draws its length from `[t, 2t)`.
    pub election_timeout_ms: i64,
    pub heartbeat_interval_ms: i64,
    /// Kafka's replica.lag.time.max.ms: a follower that has not reached the leader's log end
    /// for this long leaves the in-sync replicas.
    pub replica_lag_time_max_ms: i64,
    /// Ask "would you vote for me?" before bumping the epoch (Raft thesis §9.6).
    pub pre_vote: bool,
    /// A leader that has not heard from a majority within an election timeout steps down.
    pub check_quorum: bool,
    /// How many bytes of batches the driver reads for one append request (at least one batch).
    pub max_append_bytes: u32,
    /// Kafka's leader.imbalance.check.interval.seconds, per replica: this often the preferred
    /// leader (the first voter), while it follows another, asks that leader for the
    /// leadership back (`transfer.rs`). `None`: never.
    pub leader_rebalance_interval_ms: Option<i64>,
    /// A planted bug, for tests and the simulator only: a follower acknowledges appended
    /// batches as durable before they are fdatasync'd. It proves the checkers see lost
    /// committed data. Never set it.
    pub planted_ack_before_durable: bool,
    /// A planted bug, for tests and the simulator only: a leader's commit index counts only
    /// its own durable log, as if it alone were a majority. It acknowledges writes that a
    /// leader elected without it overwrites. Never set it.
    pub planted_commit_without_majority: bool,
    /// A planted bug, for tests and the simulator only: a follower grants its vote to any
    /// candidate of the epoch, forgetting the one it already gave, so two candidates can win
    /// one epoch. Never set it.
    pub planted_vote_twice: bool,
    /// A planted bug, for tests and the simulator only: a voter grants (pre-)votes without
    /// checking that the candidate's log is at least as up to date as its own, so a replica
    /// missing committed entries can be elected and overwrite them. Never set it.
    pub planted_vote_without_log_check: bool,
    /// A planted bug, for tests only: a leader keeps its read lease after it sends
    /// TimeoutNow, although the voters it handed over to no longer keep their promise; it
    /// serves reads while a new leader commits. Never set it.
    pub planted_lease_through_transfer: bool,
    /// A planted bug, for the simulator only (read by the partition driver, not the replica):
    /// a new leader serves clients before its own leader-change batch is committed, while its
    /// high watermark may still be below what the previous leader let consumers see. Never
    /// set it.
    pub planted_serve_before_own_commit: bool,
    /// A planted bug, for the simulator only (read by the partition driver, not the replica):
    /// the driver sends a `Ready`'s messages before it makes the `Ready`'s hard state
    /// durable, so a vote can be answered and then forgotten by a power failure, and given
    /// again in the same epoch. Never set it.
    pub planted_vote_before_sync: bool,
    /// A planted bug, for tests and the simulator only: a replica whose data directory is not
    /// its voter's (a wiped and restarted broker) votes and campaigns as if it were, having
    /// forgotten every vote its old self gave, and candidates count its vote as its old
    /// self's. Never set it.
    pub planted_wiped_replica_votes: bool,
}

impl ReplicaConfig {
    /// Kafka-like defaults for `node_id` among `replicas`, all of them voters, none pinned to
    /// a directory.
    pub fn new(node_id: NodeId, replicas: Vec<NodeId>) -> ReplicaConfig {
        ReplicaConfig {
            node_id,
            directory: None,
            initial_voters: VoterSet::unpinned(&replicas),
            replicas,
            election_timeout_ms: 1_000,
            heartbeat_interval_ms: 100,
            replica_lag_time_max_ms: 30_000,
            pre_vote: true,
            check_quorum: true,
            max_append_bytes: 1024 * 1024,
            leader_rebalance_interval_ms: None,
            planted_ack_before_durable: false,
            planted_commit_without_majority: false,
            planted_vote_twice: false,
            planted_vote_without_log_check: false,
            planted_lease_through_transfer: false,
            planted_serve_before_own_commit: false,
            planted_vote_before_sync: false,
            planted_wiped_replica_votes: false,
        }
    }

    fn check(&self) {
        assert!(self.replicas.contains(&self.node_id), "{:?} is not a replica", self.node_id);
        let mut replicas = self.replicas.clone();
        replicas.sort();
        replicas.dedup();
        assert_eq!(replicas.len(), self.replicas.len(), "duplicate replicas {:?}", self.replicas);
        assert!(self.voters_are_replicas(&self.initial_voters), "{self:?}");
        assert!(self.heartbeat_interval_ms > 0 && self.election_timeout_ms > 0);
        assert!(self.heartbeat_interval_ms < self.election_timeout_ms, "{self:?}");
        assert!(self.replica_lag_time_max_ms > 0 && self.max_append_bytes > 0);
        assert!(self.leader_rebalance_interval_ms.is_none_or(|interval_ms| interval_ms > 0));
    }

    /// Every voter of `voters` is a replica.
    fn voters_are_replicas(&self, voters: &VoterSet) -> bool {
        voters.voters().iter().all(|voter| self.replicas.contains(&voter.node))
    }
}

/// What must survive a crash before a vote or an epoch change is acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HardState {
    pub epoch: i32,
    pub voted_for: Option<NodeId>,
}

/// What the local log holds when the replica is created (after recovery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSummary {
    pub epochs: LeaderEpochs,
    pub log_end_offset: i64,
    pub durable_end_offset: i64,
    /// A high watermark known to be committed (a checkpoint), at most the log end; 0 if
    /// unknown. It is otherwise only learned from a leader or computed as leader.
    pub high_watermark: i64,
    /// The voters batches of the log, in offset order (`membership.rs`).
    pub voter_changes: Vec<VoterChange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Follower,
    /// Asking for pre-votes: would a majority vote for it in the next epoch?
    PreCandidate,
    Candidate,
    Leader,
}

/// The leader asks its driver to read batches for `peer` and send them in `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRead {
    pub peer: NodeId,
    pub epoch: i32,
    /// Read whole batches from the one holding this offset (it may start below it).
    pub start_offset: i64,
    /// Stop before this many bytes, but read at least one batch if there is one (KIP-74).
    pub max_bytes: u32,
}

/// A log operation for the driver, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOp<P> {
    /// New leader: append a control batch (Kafka's LeaderChange) of `epoch` at the log end,
    /// then report it with [`Replica::handle_appended`].
    AppendLeaderChange { epoch: i32 },
    /// Leader: append a voters control batch (one record: `voters`) of `epoch` at the log
    /// end, then report it with [`Replica::handle_appended_voters`].
    AppendVoters { epoch: i32, voters: VoterSet },
    /// Follower: append `entries` (a suffix of an append request's batches, at the log end)
    /// from `payload` (that request's bytes: skip its batches before the first entry).
    /// `voter_changes`: the voters batches among them, to be recorded before they are
    /// written (`broker/partition/voters_file.rs`).
    Append { entries: Vec<EntryMeta>, payload: P, voter_changes: Vec<VoterChange> },
    /// Follower: cut the log so it ends at `from_offset` (a batch boundary, never below the
    /// high watermark).
    Truncate { from_offset: i64 },
    /// The high watermark moved up: batches below it are committed and may be served.
    Commit { high_watermark: i64 },
    /// Leader: read batches for a peer and send [`Replica::build_append`]'s request.
    ReadForPeer(PeerRead),
}

/// One batch of output. Handle it in this order: make `hard_state` durable, apply
/// `log_ops` in order, then send `messages` (and the appends that `ReadForPeer` builds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready<P> {
    pub hard_state: Option<HardState>,
    pub messages: Vec<(NodeId, Message<P>)>,
    pub log_ops: Vec<LogOp<P>>,
}

/// A leader's view of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Progress {
    /// The next offset to send from.
    next_offset: i64,
    /// The follower's log matches ours and is durable below this offset.
    durable_end_offset: i64,
    /// An append is out and not yet answered (one at a time, re-sent each heartbeat).
    awaiting_response: bool,
    last_sent_ms: i64,
    /// Our log end when we last sent.
    log_end_at_send_offset: i64,
    /// The last time any answer came (check-quorum).
    last_heard_ms: i64,
    /// The latest of our clocks the follower echoed (`AppendResponse::leader_clock_ms`): it
    /// promised not to vote for another leader for an election timeout after that.
    lease_from_ms: Option<i64>,
    /// The last time the follower held everything we had (in-sync replicas).
    caught_up_ms: Option<i64>,
    /// The high watermark in the last append we sent: a follower told a lower one is sent
    /// the new one as soon as it is idle (`leader.rs`), not a heartbeat later.
    high_watermark_sent: i64,
}

/// A follower's view of its current leader's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Following {
    /// Our log is verified to match the leader's below this offset (in this epoch).
    verified_end_offset: i64,
    /// The durable matched end we last told the leader.
    reported_durable_end_offset: i64,
    /// We appended batches and owe the leader an answer once they are durable.
    ack_owed: bool,
    /// The latest `AppendHeader::leader_clock_ms` from the leader, echoed in our answers.
    leader_clock_ms: i64,
}

/// The sans-IO Raft replica of one partition; `P` is the driver's opaque batch payload.
pub struct Replica<P> {
    config: ReplicaConfig,
    random: SplitMix64,
    role: Role,
    epoch: i32,
    voted_for: Option<NodeId>,
    leader: Option<NodeId>,
    log: LocalLog,
    /// The voter sets of the log; the latest is in force.
    voters: VoterHistory,
    /// Each peer's data directory, as the driver last reported it
    /// ([`Replica::handle_peer_directory`]); messages from a peer are its current one's.
    peer_directories: BTreeMap<NodeId, DirectoryId>,
    /// A voters batch was asked for and not reported appended yet.
    voters_change_pending: bool,
    high_watermark: i64,
    now_ms: i64,
    election_deadline_ms: i64,
    /// When the current leader last reached us (pre-vote and vote leases).
    leader_contact_ms: Option<i64>,
    /// A restarted replica that may have acknowledged a leader before it stopped grants no
    /// vote before this: it forgot when it last heard from that leader, whose read lease
    /// may count on its promise (`Leader::has_read_lease`).
    votes_quiet_until_ms: i64,
    /// This round's answers, while a (pre-)candidate.
    votes: BTreeMap<NodeId, bool>,
    /// Progress per follower, while leader.
    progress: BTreeMap<NodeId, Progress>,
    /// A leadership hand-over under way, while leader.
    transfer: Option<transfer::Transfer>,
    /// Going away (controlled shutdown): hands leadership over, never campaigns.
    retiring: bool,
    /// When the preferred leader next asks for the leadership back, if it follows another.
    rebalance_due_ms: i64,
    following: Following,
    /// The hard state last handed to the driver (or given at creation).
    persisted: HardState,
    messages: Vec<(NodeId, Message<P>)>,
    log_ops: Vec<LogOp<P>>,
}

impl<P> Replica<P> {
    /// A replica over the recovered log. A single voter becomes leader at once.
    pub fn new(
        config: ReplicaConfig,
        persisted: HardState,
        log: LogSummary,
        random_seed: u64,
        now_ms: i64,
    ) -> Replica<P> {
        config.check();
        assert!(persisted.epoch >= 0, "{persisted:?}");
        let local = LocalLog::new(log.epochs, log.log_end_offset, log.durable_end_offset);
        let voters = VoterHistory::new(config.initial_voters.clone(), log.voter_changes);
        assert!(voters.latest_offset().is_none_or(|offset| offset < local.log_end_offset));
        assert!(voters.changes().iter().all(|change| config.voters_are_replicas(&change.voters)));
        assert!(local.epochs.entries().first().is_none_or(|first| first.start_offset == 0));
        assert!((0..=local.log_end_offset).contains(&log.high_watermark), "{local:?}");
        // A log entry of a later epoch than the hard state means we followed that epoch's
        // leader without voting in it (a vote is persisted before it is sent).
        let (epoch, voted_for) = if local.last_epoch() > persisted.epoch {
            (local.last_epoch(), None)
        } else {
            (persisted.epoch, persisted.voted_for)
        };
        let mut replica = Replica {
            random: SplitMix64(random_seed),
            role: Role::Follower,
            epoch,
            voted_for,
            leader: None,
            log: local,
            voters,
            peer_directories: BTreeMap::new(),
            voters_change_pending: false,
            high_watermark: log.high_watermark,
            now_ms,
            election_deadline_ms: now_ms,
            leader_contact_ms: None,
            // Epochs start at 1: a replica still in epoch 0 never acknowledged a leader.
            votes_quiet_until_ms: if epoch > 0 {
                now_ms + config.election_timeout_ms
            } else {
                now_ms
            },
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            transfer: None,
            retiring: false,
            rebalance_due_ms: now_ms + config.leader_rebalance_interval_ms.unwrap_or(0),
            following: Following::new(log.high_watermark),
            persisted,
            messages: Vec::new(),
            log_ops: Vec::new(),
            config,
        };
        replica.reset_election_timer(now_ms);
        if replica.voters().len() == 1 && replica.is_voter() {
            replica.start_election(now_ms);
        }
        replica.check_invariants();
        replica
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    pub fn config(&self) -> &ReplicaConfig {
        &self.config
    }

    /// The current epoch and vote (what the next [`Ready`] persists if it changed).
    pub fn hard_state(&self) -> HardState {
        HardState { epoch: self.epoch, voted_for: self.voted_for }
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset
    }

    pub fn durable_end_offset(&self) -> i64 {
        self.log.durable_end_offset
    }

    pub fn epochs(&self) -> &LeaderEpochs {
        &self.log.epochs
    }

    /// The epoch of the local entry at `offset`, if the log holds it.
    pub fn epoch_at(&self, offset: i64) -> Option<i32> {
        self.log.epoch_at(offset)
    }

    /// When the election timer fires next (for a driver that sleeps until the next tick).
    pub fn election_deadline_ms(&self) -> i64 {
        self.election_deadline_ms
    }

    /// A message from a peer. Malformed or stale messages are ignored or rejected.
    pub fn handle_message(&mut self, from: NodeId, message: Message<P>, now_ms: i64) {
        self.advance_clock(now_ms);
        let known = from != self.config.node_id && self.config.replicas.contains(&from);
        let fits = known && message.is_well_formed(from) && self.voters_fit(&message);
        if fits && self.observe_epoch(from, &message, now_ms) {
            assert!(message.epoch() >= self.epoch, "stale messages stop at observe_epoch");
            match message {
                Message::VoteRequest(request) => self.handle_vote_request(request, now_ms),
                Message::VoteResponse(response) => self.handle_vote_response(from, response),
                Message::AppendRequest(request) => self.handle_append_request(request, now_ms),
                Message::AppendResponse(response) => {
                    self.handle_append_response(from, response, now_ms)
                }
                Message::TimeoutNow(timeout_now) => {
                    self.handle_timeout_now(from, timeout_now, now_ms)
                }
                Message::LeadershipRequest(_) => self.handle_leadership_request(from, now_ms),
            }
        }
        self.check_invariants();
    }

    /// Time passed: election timer, heartbeats, check-quorum.
    pub fn handle_tick(&mut self, now_ms: i64) {
        self.advance_clock(now_ms);
        if self.role == Role::Leader {
            self.tick_leader(now_ms);
        } else if self.role == Role::Follower && now_ms < self.election_deadline_ms {
            self.tick_rebalance(now_ms);
        } else if now_ms >= self.election_deadline_ms && (self.retiring || !self.is_voter()) {
            // A learner never campaigns (`membership.rs`); nor does a retiring replica.
            self.reset_election_timer(now_ms);
        } else if now_ms >= self.election_deadline_ms {
            self.start_election(now_ms);
        }
        self.check_invariants();
    }

    /// The local log is fdatasync'd below `end_offset` (leader and follower alike). A sync
    /// issued before a [`LogOp::Truncate`] covers at most the truncation point.
    pub fn handle_durable(&mut self, end_offset: i64) {
        let moved = self.log.mark_durable(end_offset);
        if moved && self.role == Role::Leader {
            self.advance_leader_commit();
        } else if moved && self.role == Role::Follower && self.following.ack_owed {
            let following = &self.following;
            let durable_matched = following.verified_end_offset.min(end_offset);
            if durable_matched > following.reported_durable_end_offset {
                self.acknowledge_durable();
            }
        }
        self.check_invariants();
    }

    /// The next batch of output, if there is any.
    pub fn poll_ready(&mut self) -> Option<Ready<P>> {
        let hard_state = self.hard_state();
        let changed = hard_state != self.persisted;
        if !changed && self.messages.is_empty() && self.log_ops.is_empty() {
            return None;
        }
        assert!(hard_state.epoch >= self.persisted.epoch, "the epoch never goes back");
        self.persisted = hard_state;
        Some(Ready {
            hard_state: changed.then_some(hard_state),
            messages: std::mem::take(&mut self.messages),
            log_ops: std::mem::take(&mut self.log_ops),
        })
    }

    /// The replica's own invariants (the module comment's list).
    pub fn check_invariants(&self) {
        self.log.check();
        assert!((0..=self.log.log_end_offset).contains(&self.high_watermark), "{self:?}");
        assert!(self.epoch >= self.log.last_epoch(), "{self:?}");
        let leading = self.role == Role::Leader;
        assert_eq!(leading, self.leader == Some(self.config.node_id), "{self:?}");
        assert!(leading || self.progress.is_empty(), "{self:?}");
        assert!(leading || self.transfer.is_none(), "{self:?}");
        if let Some(transfer) = self.transfer {
            assert!(self.progress.contains_key(&transfer.target), "{self:?}");
        }
        if matches!(self.role, Role::Leader | Role::Candidate) {
            assert_eq!(self.voted_for, Some(self.config.node_id), "{self:?}");
        }
        if self.role != Role::Follower {
            assert!(self.is_voter(), "a learner never campaigns or leads: {self:?}");
        }
        assert!(self.voters.latest_offset().is_none_or(|at| at < self.log.log_end_offset));
        assert!(self.role == Role::Leader || !self.voters_change_pending, "{self:?}");
        for progress in self.progress.values() {
            assert!(progress.next_offset <= self.log.log_end_offset, "{self:?}");
            assert!(progress.durable_end_offset <= self.log.log_end_offset, "{self:?}");
        }
        let following = &self.following;
        assert!(following.verified_end_offset <= self.log.log_end_offset, "{self:?}");
        assert!(following.reported_durable_end_offset <= following.verified_end_offset);
    }

    fn advance_clock(&mut self, now_ms: i64) {
        assert!(now_ms >= self.now_ms, "time goes back: {now_ms} < {}", self.now_ms);
        self.now_ms = now_ms;
    }

    /// Adopts a higher epoch, answers a lower one; returns whether to handle the message.
    fn observe_epoch(&mut self, from: NodeId, message: &Message<P>, now_ms: i64) -> bool {
        let epoch = message.epoch();
        if epoch < self.epoch {
            self.reject_stale(from, message);
            return false;
        }
        if epoch == self.epoch {
            return true;
        }
        match message {
            // Asking or granting a pre-vote changes nobody's epoch.
            Message::VoteRequest(request) if request.pre_vote => true,
            Message::VoteResponse(response) if response.pre_vote && response.granted => true,
            Message::VoteRequest(request)
                if self.config.check_quorum && !request.transfer && self.in_lease(now_ms) =>
            {
                // A live leader exists: a disruptive candidate does not move our epoch (one
                // the leader handed over to is not disruptive: `transfer.rs`).
                self.send_vote_response(from, self.epoch, false, request.pre_vote);
                false
            }
            Message::AppendRequest(request) => {
                self.become_follower(epoch, Some(request.header.leader), now_ms);
                true
            }
            _ => {
                self.become_follower(epoch, None, now_ms);
                true
            }
        }
    }

    /// A stale leader or candidate learns our epoch; stale answers are dropped.
    fn reject_stale(&mut self, from: NodeId, message: &Message<P>) {
        assert!(message.epoch() < self.epoch);
        match message {
            Message::VoteRequest(request) => {
                self.send_vote_response(from, self.epoch, false, request.pre_vote)
            }
            Message::AppendRequest(request) => {
                let rejection = self.rejection(request.header.prev_offset, None);
                self.send(from, Message::AppendResponse(rejection));
            }
            Message::VoteResponse(_)
            | Message::AppendResponse(_)
            | Message::TimeoutNow(_)
            | Message::LeadershipRequest(_) => {}
        }
    }

    fn send_vote_response(&mut self, to: NodeId, epoch: i32, granted: bool, pre_vote: bool) {
        assert!(epoch >= self.epoch);
        assert!(pre_vote || epoch == self.epoch, "a real vote answers in our epoch");
        self.send(to, Message::VoteResponse(VoteResponse { epoch, granted, pre_vote }));
    }

    fn send(&mut self, to: NodeId, message: Message<P>) {
        assert_ne!(to, self.config.node_id, "no messages to self");
        assert!(self.config.replicas.contains(&to), "{to:?} is not a replica");
        self.messages.push((to, message));
    }

    /// An append rejection carrying our log end and, given, what we hold at the compared
    /// offset.
    fn rejection(
        &self,
        prev_offset: i64,
        divergence: Option<super::message::Divergence>,
    ) -> AppendResponse {
        AppendResponse {
            epoch: self.epoch,
            success: false,
            matched_end_offset: 0,
            durable_end_offset: 0,
            log_end_offset: self.log.log_end_offset,
            rejected_prev_offset: prev_offset,
            divergence,
            leader_clock_ms: self.following.leader_clock_ms,
        }
    }

    /// Whether a live leader is known: we lead, or ours reached us within an election
    /// timeout.
    fn in_lease(&self, now_ms: i64) -> bool {
        if now_ms < self.votes_quiet_until_ms {
            return true;
        }
        match self.role {
            Role::Leader => true,
            Role::Follower => {
                let contact = self.leader_contact_ms;
                let timeout_ms = self.config.election_timeout_ms;
                self.leader.is_some() && contact.is_some_and(|at| now_ms - at < timeout_ms)
            }
            Role::PreCandidate | Role::Candidate => false,
        }
    }

    fn reset_election_timer(&mut self, now_ms: i64) {
        let timeout_ms = self.election_timeout_now_ms();
        let jitter_ms = (self.random.next() % timeout_ms as u64) as i64;
        assert!((0..timeout_ms).contains(&jitter_ms));
        self.election_deadline_ms = now_ms + timeout_ms + jitter_ms;
    }

    /// The base of the next election timer. A group that never had a leader (epoch 0, an
    /// empty log: a partition just created) elects its preferred replica (the first voter)
    /// within a few heartbeats, where Kafka's controller names the leader at once: only the
    /// preferred replica runs that early, so it wins without a split vote, and it retries
    /// that fast while its peers are still opening their replicas (with pre-vote, a round
    /// that nobody answers changes no epoch). Every other timer is a whole election timeout.
    fn election_timeout_now_ms(&self) -> i64 {
        let never_led = self.epoch == 0 && self.log.log_end_offset == 0;
        let preferred = self.config.replicas.first() == Some(&self.config.node_id);
        if never_led && preferred {
            self.config.heartbeat_interval_ms
        } else {
            self.config.election_timeout_ms
        }
    }

    /// Steps down (or stays) as a follower in `epoch`, which is at least ours.
    fn become_follower(&mut self, epoch: i32, leader: Option<NodeId>, now_ms: i64) {
        assert!(epoch >= self.epoch, "epoch {epoch} < {}", self.epoch);
        assert_ne!(leader, Some(self.config.node_id));
        if epoch > self.epoch {
            self.epoch = epoch;
            self.voted_for = None;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.leader_contact_ms = None;
        self.votes.clear();
        self.progress.clear();
        self.transfer = None;
        self.voters_change_pending = false;
        self.following = Following::new(self.high_watermark);
        self.reset_election_timer(now_ms);
    }

    fn quorum(&self) -> usize {
        self.voters().quorum()
    }

    /// Every other replica, voter or learner.
    fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.config.replicas.iter().copied().filter(|replica| *replica != self.config.node_id)
    }

    /// Whether the latest voters batch of the log is committed (or there is none).
    fn voters_committed(&self) -> bool {
        self.voters.latest_offset().is_none_or(|offset| offset < self.high_watermark)
    }

    fn push_commit(&mut self, high_watermark: i64) {
        assert!(high_watermark > self.high_watermark, "the high watermark only moves up");
        assert!(high_watermark <= self.log.log_end_offset);
        self.high_watermark = high_watermark;
        self.log_ops.push(LogOp::Commit { high_watermark });
    }
}

/// Everything but the queued output (whose payloads need not be `Debug`).
impl<P> std::fmt::Debug for Replica<P> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Replica")
            .field("node_id", &self.config.node_id)
            .field("role", &self.role)
            .field("epoch", &self.epoch)
            .field("voted_for", &self.voted_for)
            .field("leader", &self.leader)
            .field("log", &self.log)
            .field("voters", &self.voters)
            .field("peer_directories", &self.peer_directories)
            .field("high_watermark", &self.high_watermark)
            .field("now_ms", &self.now_ms)
            .field("election_deadline_ms", &self.election_deadline_ms)
            .field("votes", &self.votes)
            .field("progress", &self.progress)
            .field("transfer", &self.transfer)
            .field("retiring", &self.retiring)
            .field("following", &self.following)
            .field("queued_messages", &self.messages.len())
            .field("queued_log_ops", &self.log_ops.len())
            .finish()
    }
}

impl Following {
    /// A committed prefix matches every later leader (Raft's leader completeness).
    fn new(high_watermark: i64) -> Following {
        Following {
            verified_end_offset: high_watermark,
            reported_durable_end_offset: 0,
            ack_owed: false,
            leader_clock_ms: 0,
        }
    }
}

/// SplitMix64: a tiny deterministic generator for election jitter (no crate, no OS
/// randomness: the seed fixes the run).
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }
}
