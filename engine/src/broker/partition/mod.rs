//! A replicated partition: its log and its Raft replica on the owning shard, and the driver
//! between them (`replication/` decides, this module does: disk, clock, messages).
//!
//! One driver task per partition takes inputs one at a time — peer messages (a bounded
//! inbox), ticks (one [`Ticker`] per shard), the log's durability moving — steps the
//! replica, and carries out each `Ready` completely before the next input, in the replica's
//! order: the hard state made durable first (`replica_state.rs`), then the log operations (a
//! follower's copies, cuts, the commit index, reads for peers), then the messages. A produce
//! on the leader appends and tells the replica at once, synchronously, so the replica's view
//! of the log and the log never disagree.
//!
//! Any failed log operation stops the partition's replica (as if its process had crashed):
//! the log is offline by then, and re-opening it recovers a state Raft accepts.
//!
//! A single node's partitions are `Partition::Local` (their `Log` alone); a cluster's are
//! `Partition::Replicated`, opened by each shard for the partitions assigned to its broker.

pub mod replica_state;
#[cfg(test)]
mod tests;
pub mod ticker;
pub mod voters_file;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::io::local::Notify;
use crate::io::{Disk, Instant};
use crate::log::region::ReadData;
use crate::log::{AppendInfo, CommitMode, Log, LogConfig, LogError};
use crate::protocol::error_code::ErrorCode;
use crate::record_batch;
use crate::replication::{
    DirectoryId, EntryMeta, LogOp, LogSummary, Message, NodeId, PeerRead, Ready, Replica,
    ReplicaConfig, VoterChange, VoterSet,
};

use self::ticker::Ticker;

/// A replica message carrying record batches as they lie in the leader's log.
pub type PeerMessage = Message<Bytes>;
/// How the driver hands a message to the transport (best effort: Raft tolerates loss).
pub type Sender = Rc<dyn Fn(NodeId, PeerMessage)>;

/// Peer messages waiting for the driver; beyond it new ones are dropped (and retried by
/// their sender's next heartbeat), so a flood cannot grow the broker.
pub const INBOX_MESSAGES_MAX: usize = 1024;
/// How often a hand-over looks whether leadership has moved.
const HAND_OVER_POLL: Duration = Duration::from_millis(5);

/// Why partition work was refused here before anything was read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotLeader {
    /// NOT_LEADER_OR_FOLLOWER, with the leader this replica knows (if any) and its epoch as
    /// the client's hint (KIP-951).
    Follower { leader: Option<NodeId>, epoch: i32 },
    /// This replica leads but may not serve yet: its own epoch's first batch is not
    /// committed (its high watermark may be below what the previous leader let consumers
    /// see), or, for reads, it holds no read lease. Reads answer OFFSET_NOT_AVAILABLE (78,
    /// KIP-207: retried, metadata kept), writes NOT_LEADER_OR_FOLLOWER.
    NotServing,
    /// The replica stopped after a storage fault (KAFKA_STORAGE_ERROR).
    Stopped,
    /// Fewer replicas are in sync than max(majority, min.insync.replicas) ask
    /// (NOT_ENOUGH_REPLICAS): nothing was written.
    NotEnoughReplicas { in_sync: usize, required: usize },
}

/// When a produce is answered (Kafka's `acks`; acks=0 is carried out as 1, unanswered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// acks=1: once the leader holds the batch durably. A failover before a majority holds
    /// it may still cut it, as Kafka's acks=1 may lose it.
    Leader,
    /// acks=all (-1): once committed (the high watermark covers it).
    All,
}

/// What partition work does for a client, for the leadership check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Fetch, ListOffsets, OffsetForLeaderEpoch, group state: needs the read lease.
    Read,
    /// Produce and appends of the group coordinator.
    Write,
}

/// A partition a shard owns: where partition work runs, and where leadership is checked.
#[derive(Clone)]
pub enum Partition {
    /// A single node's log: its own quorum and its own leader, in epoch
    /// [`SINGLE_NODE_LEADER_EPOCH`].
    Local(Log),
    /// A log replicated by its Raft replica.
    Replicated(ReplicatedPartition),
}

/// The leader epoch of every partition of a single node (its batches are stamped with it).
pub const SINGLE_NODE_LEADER_EPOCH: i32 = 0;
/// A request's `current_leader_epoch` when the client asks for no fencing.
const NO_EPOCH_GIVEN: i32 = -1;

impl Partition {
    pub fn log(&self) -> &Log {
        match self {
            Partition::Local(log) => log,
            Partition::Replicated(replicated) => replicated.log(),
        }
    }

    /// The epoch this replica leads (or follows) in.
    pub fn leader_epoch(&self) -> i32 {
        match self {
            Partition::Local(_) => SINGLE_NODE_LEADER_EPOCH,
            Partition::Replicated(replicated) => replicated.epoch(),
        }
    }

    /// KIP-320's fencing of a client's `current_leader_epoch` (-1: not checked): an older
    /// epoch than this leader's is FENCED_LEADER_EPOCH (the client's metadata is stale), a
    /// newer one UNKNOWN_LEADER_EPOCH (this broker has not caught up yet).
    pub fn check_epoch(&self, current_leader_epoch: i32) -> Result<(), ErrorCode> {
        let epoch = self.leader_epoch();
        match current_leader_epoch {
            NO_EPOCH_GIVEN => Ok(()),
            given if given < epoch => Err(ErrorCode::FencedLeaderEpoch),
            given if given > epoch => Err(ErrorCode::UnknownLeaderEpoch),
            _ => Ok(()),
        }
    }

    /// `Ok` when this replica may do `access` for clients: produce, fetch and offsets are
    /// served by leaders only.
    pub fn check_leader(&self, access: Access) -> Result<(), NotLeader> {
        match self {
            Partition::Local(_) => Ok(()),
            Partition::Replicated(replicated) if replicated.is_stopped() => Err(NotLeader::Stopped),
            Partition::Replicated(replicated) if replicated.is_serving(access) => Ok(()),
            Partition::Replicated(replicated) if replicated.is_leader() => {
                Err(NotLeader::NotServing)
            }
            Partition::Replicated(replicated) => {
                Err(NotLeader::Follower { leader: replicated.leader(), epoch: replicated.epoch() })
            }
        }
    }

    /// A client's produce: appended at once in the leader's epoch, answered as `acks` asks
    /// (a single node's durable append is its commit).
    pub fn produce(
        &self,
        batches: Vec<BytesMut>,
        acks: Acks,
    ) -> Result<impl Future<Output = Result<AppendInfo, LogError>> + 'static, NotLeader> {
        match self {
            Partition::Local(log) => Ok(futures_util::future::Either::Left(
                log.append(batches, SINGLE_NODE_LEADER_EPOCH),
            )),
            Partition::Replicated(replicated) => {
                Ok(futures_util::future::Either::Right(replicated.produce(batches, acks)?))
            }
        }
    }
}

/// One partition's log and replica, driven together. Cheap to clone; lives on one shard.
#[derive(Clone)]
pub struct ReplicatedPartition {
    inner: Rc<Inner>,
}

struct Inner {
    log: Log,
    disk: Disk,
    dir: PathBuf,
    replica: RefCell<Replica<Bytes>>,
    inbox: RefCell<VecDeque<(NodeId, PeerMessage)>>,
    /// Inputs that carry no data: coalesced, never queued.
    tick_due: Cell<bool>,
    durable_moved: Cell<bool>,
    ready_due: Cell<bool>,
    wake: Notify,
    send: Sender,
    started_at: Instant,
    stopped: Cell<bool>,
    /// The topic's min.insync.replicas (1 unless set).
    min_insync_replicas: Cell<usize>,
    /// The epoch this replica last led and the offset of its leader-change batch there.
    led_from: Cell<Option<(i32, i64)>>,
    /// The epoch this replica led when the driver last looked (None: not leading): when it
    /// changes, appends still waiting for their commit are answered (`abandon_appends`).
    leading_epoch: Cell<Option<i32>>,
    /// What `replica-voters` holds (`voters_file.rs`).
    voter_changes: RefCell<Vec<VoterChange>>,
    /// A leader's voters batch is being recorded at the log end (`append_voters`).
    voters_writing: Cell<bool>,
}

impl ReplicatedPartition {
    /// Opens (recovers) the log in `dir` as a replica's log, reads the hard state, and starts
    /// the driver.
    pub async fn open(
        disk: Disk,
        dir: PathBuf,
        log_config: LogConfig,
        config: ReplicaConfig,
        random_seed: u64,
        send: Sender,
        ticker: &Rc<Ticker>,
    ) -> Result<ReplicatedPartition, LogError> {
        let log_config = LogConfig { commit: CommitMode::Quorum, ..log_config };
        let log = Log::open(disk.clone(), dir.clone(), log_config).await?;
        let hard_state = replica_state::read(&disk, &dir).await.map_err(|error| {
            tracing::error!(dir = %dir.display(), %error, "partition: replica state unreadable");
            LogError::Offline
        })?;
        if !replicable_from_zero(&log) {
            // The replica has no way yet to bring a follower past a leader's log start (no
            // snapshot transfer): refuse rather than let its assertions stop the process.
            tracing::error!(
                dir = %dir.display(),
                log_start_offset = log.log_start_offset(),
                "partition: a log whose epochs do not start at offset 0 cannot be replicated yet"
            );
            return Err(LogError::Offline);
        }
        let voter_changes = voters_file::read(&disk, &dir, log.log_end_offset()).await;
        let voter_changes = voter_changes.map_err(|error| {
            tracing::error!(dir = %dir.display(), %error, "partition: voters unreadable");
            LogError::Offline
        })?;
        let summary = LogSummary {
            epochs: log.leader_epochs(),
            log_end_offset: log.log_end_offset(),
            durable_end_offset: log.durable_end_offset(),
            high_watermark: 0,
            voter_changes: voter_changes.clone(),
        };
        let started_at = crate::io::now();
        let heartbeat = Duration::from_millis(config.heartbeat_interval_ms.unsigned_abs());
        assert!(ticker.interval() <= heartbeat, "a tick at least every heartbeat interval");
        let replica = Replica::new(config, hard_state, summary, random_seed, 0);
        let inner = Rc::new(Inner {
            log,
            disk,
            dir,
            replica: RefCell::new(replica),
            inbox: RefCell::new(VecDeque::new()),
            tick_due: Cell::new(false),
            durable_moved: Cell::new(false),
            ready_due: Cell::new(true),
            wake: Notify::new(),
            send,
            started_at,
            stopped: Cell::new(false),
            min_insync_replicas: Cell::new(1),
            led_from: Cell::new(None),
            leading_epoch: Cell::new(None),
            voter_changes: RefCell::new(voter_changes),
            voters_writing: Cell::new(false),
        });
        drop(crate::io::spawn_local(drive(Rc::clone(&inner))));
        ticker.register(&inner);
        drop(crate::io::spawn_local(watch_durable(Rc::downgrade(&inner))));
        Ok(ReplicatedPartition { inner })
    }

    /// A message from `from`. An append's batches must be exactly the entries it names
    /// (checked here: the replica trusts the payload to match); anything else is dropped.
    pub fn deliver(&self, from: NodeId, message: PeerMessage) {
        if let Message::AppendRequest(request) = &message {
            if entries_of(&request.payload).as_deref() != Some(&request.entries[..]) {
                tracing::warn!(?from, "partition: an append whose batches are not its entries");
                return;
            }
        }
        let mut inbox = self.inner.inbox.borrow_mut();
        if inbox.len() >= INBOX_MESSAGES_MAX {
            tracing::debug!(?from, "partition: inbox full; dropping a peer message");
            return;
        }
        inbox.push_back((from, message));
        drop(inbox);
        self.inner.wake.notify_waiters();
    }

    /// A client's produce on the leader: appended in the leader's epoch now (offsets assigned
    /// synchronously), answered once the high watermark covers it — or, for
    /// [`Acks::Leader`], once this leader holds it durably, if that comes first.
    pub fn produce(
        &self,
        batches: Vec<BytesMut>,
        acks: Acks,
    ) -> Result<impl Future<Output = Result<AppendInfo, LogError>> + 'static, NotLeader> {
        let inner = &self.inner;
        if inner.stopped.get() {
            return Err(NotLeader::Stopped);
        }
        let epoch = {
            let replica = inner.replica.borrow();
            if !replica.is_leader() {
                return Err(NotLeader::Follower {
                    leader: replica.leader(),
                    epoch: replica.epoch(),
                });
            }
            if !replica.accepts_writes() || inner.voters_writing.get() {
                // Handing leadership over: the target catches up with a log end that stands
                // still. The client's retry finds the new leader. Or a voters batch is being
                // recorded at the log end (`append_voters`): the retry comes after it.
                return Err(NotLeader::NotServing);
            }
            replica.epoch()
        };
        // min.insync.replicas binds acks=all only, as in Kafka.
        let (in_sync, required) = (self.in_sync_replicas().len(), self.required_in_sync());
        if acks == Acks::All && in_sync < required {
            return Err(NotLeader::NotEnoughReplicas { in_sync, required });
        }
        let base_offset = inner.log.log_end_offset();
        let committed = append_as_leader(inner, batches, epoch);
        let next_offset = inner.log.log_end_offset();
        inner.ready_due.set(true);
        inner.wake.notify_waiters();
        // Nothing new appended (an idempotent retry's duplicate, or refused): its answer is
        // the original's, which the commit gives.
        if acks == Acks::All || next_offset == base_offset {
            return Ok(futures_util::future::Either::Left(committed));
        }
        let appended = (epoch, base_offset, next_offset);
        let durable = durable_on_leader(Rc::clone(inner), appended);
        Ok(futures_util::future::Either::Right(async move {
            futures_util::pin_mut!(committed, durable);
            futures_util::future::select(committed, durable).await.factor_first().0
        }))
    }

    pub fn log(&self) -> &Log {
        &self.inner.log
    }

    pub fn is_leader(&self) -> bool {
        !self.inner.stopped.get() && self.inner.replica.borrow().is_leader()
    }

    /// Whether clients are served here: this replica leads and its own leader-change batch
    /// is committed. Before that its high watermark may be below what the previous leader
    /// let consumers see (the new leader learns the commit index only by committing in its
    /// own epoch): answering then would move the high watermark backwards for a client.
    /// Reads also need the read lease (a majority answered appends sent within half an
    /// election timeout: `Replica::has_read_lease`): a deposed leader that does not know
    /// it yet would serve a stale high watermark. Writes do not: a deposed leader's append
    /// never commits, so it is never acknowledged — and a leader whose links lag (answers
    /// late, yet a majority still answering) keeps taking writes.
    pub fn is_serving(&self, access: Access) -> bool {
        if !self.is_leader() {
            return false;
        }
        if access == Access::Write && !self.inner.replica.borrow().accepts_writes() {
            return false;
        }
        let leased = || self.inner.replica.borrow().has_read_lease(now_ms(&self.inner));
        if access == Access::Read && !leased() {
            return false;
        }
        // The planted bug serves reads before the commit that makes the high watermark
        // trustworthy.
        if access == Access::Read
            && self.inner.replica.borrow().config().planted_serve_before_own_commit
        {
            return true;
        }
        match self.inner.led_from.get() {
            Some((epoch, offset)) => epoch == self.epoch() && self.log().high_watermark() > offset,
            None => false,
        }
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.inner.replica.borrow().leader()
    }

    pub fn epoch(&self) -> i32 {
        self.inner.replica.borrow().epoch()
    }

    /// The voters in force (`replication/membership.rs`).
    pub fn voters(&self) -> VoterSet {
        self.inner.replica.borrow().voters().clone()
    }

    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.get()
    }

    /// Sets the topic's min.insync.replicas (from its configs; at open and on AlterConfigs).
    pub fn set_min_insync_replicas(&self, min_insync_replicas: usize) {
        self.inner.min_insync_replicas.set(min_insync_replicas.max(1));
    }

    /// In-sync replicas a produce needs: max(majority, min.insync.replicas). A value below a
    /// majority changes nothing (Raft commits on a majority anyway); above the replica count
    /// every produce is refused, as Kafka refuses it.
    pub fn required_in_sync(&self) -> usize {
        let voters = self.inner.replica.borrow().voters().len();
        (voters / 2 + 1).max(self.inner.min_insync_replicas.get())
    }

    /// Whether the in-sync replicas still meet [`Self::required_in_sync`] (checked again once
    /// a produce is committed: NOT_ENOUGH_REPLICAS_AFTER_APPEND otherwise).
    pub fn has_enough_in_sync(&self) -> bool {
        self.in_sync_replicas().len() >= self.required_in_sync()
    }

    /// On the leader: the replicas that reached its log end within replica.lag.time.max.ms
    /// (itself included); empty elsewhere.
    pub fn in_sync_replicas(&self) -> Vec<NodeId> {
        let now_ms = now_ms(&self.inner);
        self.inner.replica.borrow().in_sync_replicas(now_ms)
    }

    /// Leader: how far replica `node`'s log is durable (`Replica::peer_durable_end_offset`).
    pub fn peer_durable_end_offset(&self, node: NodeId) -> Option<i64> {
        self.inner.replica.borrow().peer_durable_end_offset(node)
    }

    /// Asks the leader to hand its leadership to this replica (`Replica::request_leadership`);
    /// The broker of replica `node` runs on `directory` (as it registered): the replica
    /// learns it, and a leader replaces a voter whose directory is gone
    /// (`replication/membership.rs`). Telling it again changes nothing.
    pub fn set_peer_directory(&self, node: NodeId, directory: DirectoryId) {
        let inner = &self.inner;
        if inner.stopped.get() {
            return;
        }
        let now_ms = now_ms(inner);
        inner.replica.borrow_mut().handle_peer_directory(node, directory, now_ms);
        inner.ready_due.set(true);
        inner.wake.notify_waiters();
    }

    /// false when this replica does not follow a known leader.
    pub fn request_leadership(&self) -> bool {
        let inner = &self.inner;
        if inner.stopped.get() {
            return false;
        }
        let now_ms = now_ms(inner);
        let asked = inner.replica.borrow_mut().request_leadership(now_ms);
        inner.ready_due.set(true);
        inner.wake.notify_waiters();
        asked
    }

    /// The broker is going away: hand leadership to another replica and never campaign again
    /// (`Replica::retire`). If this replica led, completes once another one leads and told
    /// it so, when no follower is there to hand to, or at `deadline`.
    pub async fn hand_over(&self, deadline: Instant) {
        let inner = &self.inner;
        if inner.stopped.get() {
            return;
        }
        let led = self.is_leader();
        let now_ms = now_ms(inner);
        inner.replica.borrow_mut().retire(now_ms);
        inner.ready_due.set(true);
        inner.wake.notify_waiters();
        // Each round sleeps a little, bounded by the deadline.
        while led && crate::io::now() < deadline {
            let (moved, stuck) = {
                let replica = inner.replica.borrow();
                let moved = replica.leader().is_some_and(|leader| leader != replica.node_id());
                // No transfer under way: no follower answered lately (they may be gone).
                (moved, replica.is_leader() && replica.transfer_target().is_none())
            };
            if moved || stuck || inner.stopped.get() {
                return;
            }
            crate::io::sleep(HAND_OVER_POLL).await;
        }
    }

    /// Stops the driver (its tasks end at their next wake-up); the log stays open.
    pub fn stop(&self) {
        self.inner.stopped.set(true);
        self.inner.wake.notify_waiters();
    }
}

/// Whether the replica can take this log: its epoch history starts at offset 0 (or the log is
/// empty from 0), as `Replica::new` requires.
fn replicable_from_zero(log: &Log) -> bool {
    match log.leader_epochs().entries().first() {
        Some(first) => first.start_offset == 0,
        None => log.log_end_offset() == 0,
    }
}

/// Appends on the leader and reports the batches to the replica in the same turn.
fn append_as_leader(
    inner: &Inner,
    batches: Vec<BytesMut>,
    epoch: i32,
) -> impl Future<Output = Result<AppendInfo, LogError>> + 'static {
    let base_offset = inner.log.log_end_offset();
    let appended = inner.log.append(batches, epoch);
    let next_offset = inner.log.log_end_offset();
    if next_offset > base_offset {
        inner.replica.borrow_mut().handle_appended(base_offset, next_offset, epoch);
    }
    appended
}

/// Completes once this leader holds `base_offset..next_offset`, appended in `epoch`,
/// durably; never if a new leader cut them (the commit then answers, with an error).
async fn durable_on_leader(
    inner: Rc<Inner>,
    (epoch, base_offset, next_offset): (i32, i64, i64),
) -> Result<AppendInfo, LogError> {
    assert!(base_offset < next_offset);
    inner.log.wait_for_durable_above(next_offset - 1).await;
    inner.log.check_usable()?;
    // Offsets of our epoch hold only our batches: still there, and durable.
    let ours = inner.replica.borrow().epoch_at(base_offset) == Some(epoch);
    if !ours || inner.log.durable_end_offset() < next_offset {
        return std::future::pending().await;
    }
    let log_start_offset = inner.log.log_start_offset();
    Ok(AppendInfo { base_offset, last_offset: next_offset - 1, log_start_offset })
}

fn now_ms(inner: &Inner) -> i64 {
    i64::try_from(crate::io::now().duration_since(inner.started_at).as_millis()).unwrap_or(i64::MAX)
}

/// The driver: one input at a time, each `Ready` carried out before the next input.
async fn drive(inner: Rc<Inner>) {
    // Each round handles an input or waits for one; it ends when the partition stops.
    while !inner.stopped.get() {
        let woken = inner.wake.notified();
        if !step(&inner) {
            woken.await;
            continue;
        }
        abandon_appends(&inner);
        loop {
            let ready = inner.replica.borrow_mut().poll_ready();
            let Some(ready) = ready else { break };
            if let Err(error) = apply(&inner, ready).await {
                tracing::error!(dir = %inner.dir.display(), %error, "partition: replica stopped");
                inner.stopped.set(true);
                return;
            }
        }
    }
}

/// When this replica's leadership ended (or moved to a new epoch), answers the appends it
/// took as leader that still wait for their commit: their clients retry at the new leader
/// now rather than when their requests time out.
fn abandon_appends(inner: &Inner) {
    let leading = {
        let replica = inner.replica.borrow();
        replica.is_leader().then(|| replica.epoch())
    };
    let previous = inner.leading_epoch.replace(leading);
    if previous.is_none() || previous == leading {
        return;
    }
    let abandoned = inner.log.abandon_awaiting_commit();
    if abandoned > 0 {
        let dir = inner.dir.display();
        let what = "partition: no longer leading; uncommitted appends answered";
        tracing::info!(%dir, abandoned, "{what}");
    }
}

/// Feeds the replica one pending input; false when there was none.
fn step(inner: &Inner) -> bool {
    let now_ms = now_ms(inner);
    let message = inner.inbox.borrow_mut().pop_front();
    let mut replica = inner.replica.borrow_mut();
    if let Some((from, message)) = message {
        replica.handle_message(from, message, now_ms);
    } else if inner.durable_moved.replace(false) {
        replica.handle_durable(inner.log.durable_end_offset());
    } else if inner.tick_due.replace(false) {
        replica.handle_tick(now_ms);
    } else if !inner.ready_due.replace(false) {
        return false;
    }
    true
}

async fn apply(inner: &Inner, ready: Ready<Bytes>) -> Result<(), LogError> {
    // The planted bug answers (votes included) before the vote is durable: a power failure
    // or a failed write in between forgets a vote already given.
    let vote_before_sync = inner.replica.borrow().config().planted_vote_before_sync;
    let Ready { hard_state, messages, log_ops } = ready;
    if let Some(hard_state) = hard_state.filter(|_| !vote_before_sync) {
        replica_state::write(&inner.disk, &inner.dir, &hard_state).await?;
    }
    for op in log_ops {
        match op {
            LogOp::AppendLeaderChange { epoch } => append_leader_change(inner, epoch)?,
            LogOp::AppendVoters { epoch, voters } => append_voters(inner, epoch, voters).await?,
            LogOp::Append { entries, payload, voter_changes } => {
                let batches = batches_for(&entries, &payload)?;
                record_voter_changes(inner, voter_changes).await?;
                // Durability comes back through the watcher, not this future.
                drop(inner.log.append_replicated(batches)?);
            }
            LogOp::Truncate { from_offset } => {
                inner.log.truncate_suffix(from_offset).await?;
                forget_voter_changes_from(inner, from_offset).await?;
            }
            LogOp::Commit { high_watermark } => {
                // A log that went offline by itself (a failed write or sync cut its unsynced
                // tail) may end below what the replica counts: stop rather than commit.
                inner.log.check_usable()?;
                inner.log.commit(high_watermark);
            }
            LogOp::ReadForPeer(read) => send_append(inner, read).await,
        }
    }
    for (peer, message) in messages {
        if let Message::TimeoutNow(timeout_now) = &message {
            let (dir, epoch) = (inner.dir.display(), timeout_now.epoch);
            tracing::info!(%dir, epoch, to = peer.0, "partition: handing leadership over");
        }
        (inner.send)(peer, message);
    }
    if let Some(hard_state) = hard_state.filter(|_| vote_before_sync) {
        replica_state::write(&inner.disk, &inner.dir, &hard_state).await?;
    }
    Ok(())
}

/// Records voters batches about to be written at the log end: the file first, so that it
/// lists every voters batch the log holds (`voters_file.rs`).
async fn record_voter_changes(inner: &Inner, changes: Vec<VoterChange>) -> Result<(), LogError> {
    if changes.is_empty() {
        return Ok(());
    }
    let log_end_offset = inner.log.log_end_offset();
    assert!(changes.iter().all(|change| change.offset >= log_end_offset), "{changes:?}");
    let recorded = {
        let mut recorded = inner.voter_changes.borrow_mut();
        recorded.retain(|change| change.offset < log_end_offset);
        recorded.extend(changes);
        recorded.clone()
    };
    if recorded.len() > voters_file::CHANGES_MAX {
        tracing::error!(dir = %inner.dir.display(), "partition: too many voter changes");
        return Err(LogError::Offline);
    }
    voters_file::write(&inner.disk, &inner.dir, &recorded).await?;
    Ok(())
}

/// After a truncation at `from_offset`: the voters batches it cut are gone.
async fn forget_voter_changes_from(inner: &Inner, from_offset: i64) -> Result<(), LogError> {
    let recorded = {
        let mut recorded = inner.voter_changes.borrow_mut();
        let before = recorded.len();
        recorded.retain(|change| change.offset < from_offset);
        (recorded.len() < before).then(|| recorded.clone())
    };
    if let Some(recorded) = recorded {
        voters_file::write(&inner.disk, &inner.dir, &recorded).await?;
    }
    Ok(())
}

/// A leader's voters batch (`replication/membership.rs`): recorded, appended, reported.
/// While the record is written nothing else may take its offset: produce is refused
/// meanwhile (`NotServing`, which clients retry), and nothing else appends as leader. If the
/// replica changed its mind meanwhile (it stepped down, or started handing over), the
/// record is taken back and nothing is appended.
async fn append_voters(inner: &Inner, epoch: i32, voters: VoterSet) -> Result<(), LogError> {
    let base_offset = inner.log.log_end_offset();
    let change = VoterChange { offset: base_offset, voters: voters.clone() };
    inner.voters_writing.set(true);
    let recorded = record_voter_changes(inner, vec![change]).await;
    let still = inner.replica.borrow().may_append_voters(epoch);
    if recorded.is_err() || !still || inner.log.log_end_offset() != base_offset {
        let forgotten = forget_voter_changes_from(inner, base_offset).await;
        inner.voters_writing.set(false);
        inner.replica.borrow_mut().abandon_voters_change();
        return recorded.and(forgotten);
    }
    inner.voters_writing.set(false);
    let described: Vec<(i32, u128)> = voters
        .voters()
        .iter()
        .map(|voter| (voter.node.0 as i32, voter.directory.map_or(0, |directory| directory.0)))
        .collect();
    let batch = record_batch::build::encode_voters(&described, crate::io::unix_time_ms());
    tracing::info!(dir = %inner.dir.display(), epoch, base_offset, ?voters, "partition: voters");
    // Not through append_as_leader: the replica hears of it as a voters batch.
    let appended = inner.log.append(vec![BytesMut::from(&batch[..])], epoch);
    if inner.log.log_end_offset() != base_offset + 1 {
        // Refused at admission (the log is offline or full): this replica cannot lead.
        return Err(inner.log.check_usable().err().unwrap_or(LogError::NoSpace));
    }
    inner.replica.borrow_mut().handle_appended_voters(base_offset, epoch, voters);
    drop(appended);
    Ok(())
}

/// A new leader's first batch: the entry of its own epoch whose commit commits the rest.
fn append_leader_change(inner: &Inner, epoch: i32) -> Result<(), LogError> {
    let (leader, voters) = {
        let replica = inner.replica.borrow();
        let voters: Vec<i32> =
            replica.voters().voters().iter().map(|voter| voter.node.0 as i32).collect();
        (replica.node_id().0 as i32, voters)
    };
    let batch =
        record_batch::build::encode_leader_change(leader, &voters, crate::io::unix_time_ms());
    let base_offset = inner.log.log_end_offset();
    tracing::info!(dir = %inner.dir.display(), epoch, base_offset, "partition: leading");
    inner.led_from.set(Some((epoch, base_offset)));
    drop(append_as_leader(inner, vec![BytesMut::from(&batch[..])], epoch));
    if inner.log.log_end_offset() == base_offset {
        // Refused at admission (the log is offline or full): this replica cannot lead.
        return Err(inner.log.check_usable().err().unwrap_or(LogError::NoSpace));
    }
    Ok(())
}

/// The request's batches from the first of `entries` on, checked against them.
fn batches_for(entries: &[EntryMeta], payload: &Bytes) -> Result<Vec<BytesMut>, LogError> {
    let mut batches = Vec::with_capacity(entries.len());
    let mut position = 0;
    let first = entries.first().map_or(i64::MAX, |entry| entry.base_offset);
    // Each round consumes one batch of at least a header: bounded by the payload.
    while position < payload.len() {
        let info = record_batch::header_info(&payload[position..])
            .map_err(|_| LogError::InvalidBatch { size_bytes: payload.len() - position })?;
        let end = position + info.size_bytes;
        if info.base_offset >= first {
            batches.push(BytesMut::from(&payload[position..end.min(payload.len())]));
        }
        position = end;
    }
    if batches.len() != entries.len() {
        return Err(LogError::InvalidBatch { size_bytes: payload.len() });
    }
    Ok(batches)
}

/// The entries (offsets and epoch of each batch) of a run of whole batches; `None` if the
/// bytes are not whole batches.
pub fn entries_of(bytes: &[u8]) -> Option<Vec<EntryMeta>> {
    let mut entries = Vec::new();
    let mut position = 0;
    // Each round consumes one batch of at least a header: bounded by the bytes.
    while position < bytes.len() {
        let info = record_batch::header_info(&bytes[position..]).ok()?;
        if info.size_bytes < record_batch::HEADER_SIZE_BYTES || info.last_offset_delta < 0 {
            return None;
        }
        entries.push(EntryMeta {
            base_offset: info.base_offset,
            next_offset: info.next_offset(),
            epoch: info.partition_leader_epoch,
        });
        position = position.checked_add(info.size_bytes)?;
    }
    (position == bytes.len()).then_some(entries)
}

/// Reads what the replica asked for and sends the append it builds from it.
async fn send_append(inner: &Inner, read: PeerRead) {
    let max_bytes = read.max_bytes as usize;
    let planned = inner.log.plan_read_for_follower(read.start_offset, max_bytes, usize::MAX).await;
    let bytes = match planned.map(|planned| planned.data) {
        Ok(ReadData::Bytes(bytes)) => bytes,
        Ok(ReadData::Region(_)) => unreachable!("a read with no inline limit is inline"),
        Err(error) => {
            tracing::warn!(dir = %inner.dir.display(), %error, "partition: read for a peer");
            return;
        }
    };
    let Some(entries) = entries_of(&bytes) else {
        unreachable!("the log serves whole, checked batches")
    };
    let message = inner.replica.borrow().build_append(&read, entries, bytes);
    if let Some(message) = message {
        (inner.send)(read.peer, message);
    }
}

/// Tells the driver each time the log's durable end moves (up, or down with a cut), and
/// stops the replica when the log goes offline by itself (a failed write or sync): its tail
/// was cut below what the replica counts, as a crash would cut it, and only re-opening the
/// log (a restart) gives the replica a log it can trust.
async fn watch_durable(inner: std::rc::Weak<Inner>) {
    loop {
        let changed = {
            let Some(inner) = inner.upgrade() else { return };
            if inner.stopped.get() {
                return;
            }
            if let Err(error) = inner.log.check_usable() {
                tracing::error!(dir = %inner.dir.display(), %error, "partition: replica stopped");
                inner.stopped.set(true);
                inner.wake.notify_waiters();
                return;
            }
            inner.log.wait_for_durable_change(inner.log.durable_end_offset())
        };
        changed.await;
        let Some(inner) = inner.upgrade() else { return };
        inner.durable_moved.set(true);
        inner.wake.notify_waiters();
    }
}
