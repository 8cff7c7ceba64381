//! The driver of one shard's [`Coordinator`]: it supplies the time, parks JoinGroup and
//! SyncGroup requests until their barrier answers them, appends the coordinator's records to
//! the shard's `__consumer_offsets` partitions, runs the session/rebalance timer, and rebuilds
//! the groups from those partitions at startup.
//!
//! Durability: an OffsetCommit (and DeleteGroups, OffsetDelete) is answered only after its
//! records are durable (the log's normal group-commit path); only then do the offsets become
//! visible to OffsetFetch. Group metadata records (a new generation, an emptied group) are
//! appended in the background: losing the last one in a crash only makes members rejoin.
//!
//! Rebuild reads every owned partition from its start (there is no compaction yet, so this
//! is the whole history) before the coordinator answers anything but
//! COORDINATOR_LOAD_IN_PROGRESS. A partition that could not be rebuilt (its log stayed
//! offline at open, or a read failed) is *unavailable*: its groups are answered
//! COORDINATOR_NOT_AVAILABLE, never from the partial state — an OffsetFetch would otherwise
//! answer "no committed offset" and the consumer would reset to `auto.offset.reset`. The
//! timer retries a failed rebuild while the log is open; an offline log waits for a restart.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::future::join_all;

use super::coordinator::{
    CommitRequest, Coordinator, CoordinatorConfig, GroupError, JoinRequest, JoinResult, Ready,
    Reply, SyncRequest, SyncResult, Ticket,
};
use super::records::{GroupRecord, OffsetValue, RecordError};
use super::{group_partition, OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS};
use crate::broker::errors::write_error_code;
use crate::broker::partition::{Access, Acks, Partition};
use crate::broker::shard::Shard;
use crate::io::{self, local};
use crate::log::{Log, LogError};
use crate::protocol::error_code::ErrorCode;
use crate::record_batch::{self, build};

/// How often sessions, rebalance timeouts and retention are checked.
const TICK_INTERVAL_MS: u64 = 100;
/// Bytes of records per batch appended to `__consumer_offsets`, well below the topic's
/// max.message.bytes (one commit may span several batches of one append, which is written
/// and synced as a unit).
const RECORD_BYTES_PER_BATCH_MAX: usize = 512 * 1024;
/// Bytes read per step while rebuilding.
const REBUILD_READ_BYTES: usize = 1 << 20;

pub struct GroupService {
    coordinator: RefCell<Coordinator>,
    waiters: RefCell<BTreeMap<Ticket, local::OneshotSender<Ready>>>,
    loaded: Cell<bool>,
    /// Owned `__consumer_offsets` partitions whose groups could not be rebuilt.
    unavailable: RefCell<BTreeSet<i32>>,
    /// In a cluster: groups follow the leaders of their `__consumer_offsets` partitions.
    in_cluster: Cell<bool>,
    /// In a cluster: the owned partitions this shard coordinates, each with the epoch its
    /// replica led in when their groups were rebuilt.
    led: RefCell<BTreeMap<i32, i32>>,
}

/// What a commit's partitions end up as: the stored value, or why not.
pub type CommitOutcome = Vec<((String, i32), Result<OffsetValue, CommitError>)>;

/// Why records of the coordinator were not made durable: the log refused or failed them, or
/// a record could not be encoded (a string past its int16 length; the parser's bounds keep
/// request strings below it, so this is a second line of defence, not a path clients take).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("__consumer_offsets record not encodable: {0}")]
    Record(#[from] RecordError),
    /// In a cluster, this broker's replica no longer leads the partition (NOT_COORDINATOR).
    #[error("not the leader of the __consumer_offsets partition")]
    NotLeader,
}

/// A commit fails in the coordinator's rules, or in the log that should make it durable
/// (carried as the Kafka code the storage-fault policy gives it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitError {
    Group(GroupError),
    Log(ErrorCode),
}

impl GroupService {
    pub fn new(config: CoordinatorConfig) -> GroupService {
        GroupService {
            coordinator: RefCell::new(Coordinator::new(config, io::random_u64())),
            waiters: RefCell::new(BTreeMap::new()),
            loaded: Cell::new(false),
            unavailable: RefCell::new(BTreeSet::new()),
            in_cluster: Cell::new(false),
            led: RefCell::new(BTreeMap::new()),
        }
    }

    /// In a cluster, nothing is rebuilt at start: each `__consumer_offsets` partition's
    /// groups are rebuilt when this broker's replica starts serving as its leader, and
    /// forgotten when it stops (`follow_leadership`).
    pub fn start_in_cluster(&self) {
        assert!(!self.is_loaded(), "groups start once");
        self.in_cluster.set(true);
        self.loaded.set(true);
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.get()
    }

    /// Whether the groups of `__consumer_offsets` partition `partition` were rebuilt (or are
    /// still loading, which `with` answers). `false`: answer COORDINATOR_NOT_AVAILABLE.
    pub fn serves(&self, shard: &Shard, partition: i32) -> bool {
        if !self.in_cluster.get() {
            return !self.unavailable.borrow().contains(&partition);
        }
        let led_epoch = self.led.borrow().get(&partition).copied();
        led_epoch.is_some_and(|epoch| serving_epoch(shard, partition) == Some(epoch))
    }

    /// Runs `operation` on the coordinator (not while loading), then delivers what it readied.
    pub fn with<T>(
        &self,
        shard: &Rc<Shard>,
        operation: impl FnOnce(&mut Coordinator, i64) -> T,
    ) -> Result<T, GroupError> {
        if !self.is_loaded() {
            return Err(GroupError::LoadInProgress);
        }
        let output = operation(&mut self.coordinator.borrow_mut(), io::unix_time_ms());
        self.flush(shard);
        Ok(output)
    }

    /// Runs a join or sync; a delayed answer's waiter is registered BEFORE the answers the
    /// call readied are delivered, since the call may ready its own answer.
    async fn barrier<T>(
        &self,
        shard: &Rc<Shard>,
        operation: impl FnOnce(&mut Coordinator, i64) -> Reply<T>,
    ) -> Result<Ready, GroupError>
    where
        Ready: From<T>,
    {
        if !self.is_loaded() {
            return Err(GroupError::LoadInProgress);
        }
        let reply = operation(&mut self.coordinator.borrow_mut(), io::unix_time_ms());
        let receiver = match reply {
            Reply::Now(value) => {
                self.flush(shard);
                return Ok(Ready::from(value));
            }
            Reply::Later(ticket) => {
                let (sender, receiver) = local::oneshot();
                self.waiters.borrow_mut().insert(ticket, sender);
                receiver
            }
        };
        self.flush(shard);
        receiver.await.map_err(|_| GroupError::CoordinatorNotAvailable)
    }

    pub async fn join(&self, shard: &Rc<Shard>, request: JoinRequest) -> JoinResult {
        let member_id = request.member_id.clone();
        let answer = self.barrier(shard, |coordinator, now_ms| coordinator.join(request, now_ms));
        match answer.await {
            Ok(Ready::Join(result)) => result,
            Ok(Ready::Sync(_)) => unreachable!("a join ticket is answered by a join result"),
            Err(error) => JoinResult::failed(error, member_id),
        }
    }

    pub async fn sync(&self, shard: &Rc<Shard>, request: SyncRequest) -> SyncResult {
        let answer = self.barrier(shard, |coordinator, now_ms| coordinator.sync(request, now_ms));
        match answer.await {
            Ok(Ready::Sync(result)) => result,
            Ok(Ready::Join(_)) => unreachable!("a sync ticket is answered by a sync result"),
            Err(error) => SyncResult {
                error: Some(error),
                protocol_type: None,
                protocol_name: None,
                assignment: Bytes::new(),
            },
        }
    }

    /// Delivers readied answers and starts appending the coordinator's records.
    fn flush(&self, shard: &Rc<Shard>) {
        let (ready, records) = {
            let mut coordinator = self.coordinator.borrow_mut();
            (coordinator.take_ready(), coordinator.take_records())
        };
        for (ticket, answer) in ready {
            // No waiter: the request was abandoned (its connection closed).
            if let Some(sender) = self.waiters.borrow_mut().remove(&ticket) {
                drop(sender.send(answer));
            }
        }
        if !records.is_empty() {
            let appended = append_records(shard, records);
            drop(io::spawn_local(async move {
                if let Err(error) = appended.await {
                    tracing::warn!(%error, "group metadata record not written");
                }
            }));
        }
    }

    /// OffsetCommit: validate, append, wait until durable, then apply and answer.
    pub async fn commit(
        &self,
        shard: &Rc<Shard>,
        request: CommitRequest,
    ) -> Result<CommitOutcome, GroupError> {
        let group_id = request.group_id.clone();
        let prepared =
            self.with(shard, |coordinator, now_ms| coordinator.prepare_commit(request, now_ms))??;
        let records: Vec<GroupRecord> = prepared
            .iter()
            .filter_map(|((topic, partition), value)| {
                let value = value.as_ref().ok()?.clone();
                Some(offset_record(&group_id, topic, *partition, value))
            })
            .collect();
        let planted = self.coordinator.borrow().config().planted_commit_before_sync;
        let written = match records.is_empty() {
            true => Ok(()),
            false if planted => {
                drop(io::spawn_local(append_records(shard, records)));
                Ok(())
            }
            false => append_records(shard, records).await.map_err(|error| {
                tracing::warn!(group = %group_id, %error, "offset commit not written");
                write_error_code(&error)
            }),
        };
        let mut durable = Vec::new();
        let outcome = prepared
            .into_iter()
            .map(|(key, value)| {
                let value = match (value, &written) {
                    (Err(error), _) => Err(CommitError::Group(error)),
                    (Ok(_), Err(code)) => Err(CommitError::Log(*code)),
                    (Ok(value), Ok(())) => {
                        durable.push((key.clone(), value.clone()));
                        Ok(value)
                    }
                };
                (key, value)
            })
            .collect();
        self.coordinator.borrow_mut().apply_commit(&group_id, durable, io::unix_time_ms());
        Ok(outcome)
    }

    /// Appends `records` (tombstones of DeleteGroups/OffsetDelete) and waits until durable.
    pub async fn write(
        &self,
        shard: &Rc<Shard>,
        records: Vec<GroupRecord>,
    ) -> Result<(), WriteError> {
        if records.is_empty() {
            return Ok(());
        }
        append_records(shard, records).await
    }

    /// The timer: sessions, rebalance timeouts, retention; also drops waiters whose request
    /// was abandoned (connection closed), which keeps the waiter map bounded.
    pub async fn run_timer(shard: Rc<Shard>) {
        let interval = Duration::from_millis(TICK_INTERVAL_MS);
        while !shard.is_shutting_down() {
            io::sleep(interval).await;
            let service = &shard.groups;
            if !service.is_loaded() {
                continue;
            }
            match service.in_cluster.get() {
                true => service.follow_leadership(&shard).await,
                false => service.retry_unavailable(&shard).await,
            }
            service.coordinator.borrow_mut().tick(io::unix_time_ms());
            service.flush(&shard);
            service.waiters.borrow_mut().retain(|_, sender| !sender.is_closed());
        }
    }

    /// In a cluster: rebuilds the groups of each owned partition whose replica now serves as
    /// leader (in a new epoch), and forgets those of partitions it no longer leads.
    async fn follow_leadership(&self, shard: &Rc<Shard>) {
        for partition in 0..OFFSETS_TOPIC_PARTITIONS {
            if shard.owner_of(OFFSETS_TOPIC, partition) != shard.id {
                continue;
            }
            let serving = serving_epoch(shard, partition);
            let led = self.led.borrow().get(&partition).copied();
            if serving == led {
                continue;
            }
            if led.is_some() {
                self.unload(partition);
            }
            let Some(epoch) = serving else { continue };
            let Some(log) = shard.local_log(OFFSETS_TOPIC, partition) else { continue };
            match self.load_partition(&log).await {
                // Leadership may have moved during the rebuild: checked again next tick.
                Ok(records) => {
                    tracing::info!(partition, epoch, records, "coordinating a partition's groups");
                    self.led.borrow_mut().insert(partition, epoch);
                }
                Err(error) => tracing::warn!(partition, %error, "rebuilding groups failed"),
            }
        }
    }

    fn unload(&self, partition: i32) {
        self.led.borrow_mut().remove(&partition);
        let groups = self.coordinator.borrow_mut().unload_partition(partition);
        // Parked joins and syncs of any group here are answered COORDINATOR_NOT_AVAILABLE
        // (their senders dropped): members of other groups just rejoin.
        self.waiters.borrow_mut().clear();
        tracing::info!(partition, groups, "no longer coordinating a partition's groups");
    }

    /// Rebuilds again the partitions whose rebuild failed while their log is open (a read
    /// error that has passed). Replaying from the start over a partial rebuild gives the
    /// full state: every record sets or removes its key, the last one wins.
    async fn retry_unavailable(&self, shard: &Rc<Shard>) {
        let partitions: Vec<i32> = self.unavailable.borrow().iter().copied().collect();
        for partition in partitions {
            let Some(log) = shard.local_log(OFFSETS_TOPIC, partition) else { continue };
            if self.load_partition(&log).await.is_ok() {
                tracing::info!(partition, "__consumer_offsets partition rebuilt after a failure");
                self.unavailable.borrow_mut().remove(&partition);
            }
        }
    }

    /// Rebuilds the groups of every `__consumer_offsets` partition this shard owns.
    pub async fn load(&self, shard: &Rc<Shard>) {
        assert!(!self.is_loaded(), "groups are loaded once");
        let mut records_loaded = 0usize;
        for partition in 0..OFFSETS_TOPIC_PARTITIONS {
            if shard.owner_of(OFFSETS_TOPIC, partition) != shard.id {
                continue;
            }
            let Some(log) = shard.local_log(OFFSETS_TOPIC, partition) else {
                tracing::error!(partition, "__consumer_offsets partition is offline");
                self.unavailable.borrow_mut().insert(partition);
                continue;
            };
            match self.load_partition(&log).await {
                Ok(count) => records_loaded += count,
                Err(error) => {
                    tracing::error!(partition, %error, "rebuilding groups failed");
                    self.unavailable.borrow_mut().insert(partition);
                }
            }
        }
        let groups = self.coordinator.borrow().group_count();
        tracing::info!(shard = shard.id, groups, records_loaded, "consumer groups loaded");
        self.loaded.set(true);
    }

    async fn load_partition(&self, log: &Log) -> Result<usize, LogError> {
        let mut offset = log.log_start_offset();
        let mut count = 0;
        while offset < log.high_watermark() {
            let read = log.read(offset, REBUILD_READ_BYTES, true).await?;
            if read.bytes.is_empty() {
                break;
            }
            let mut position = 0;
            while position < read.bytes.len() {
                let info = match record_batch::header_info(&read.bytes[position..]) {
                    Ok(info) => info,
                    Err(error) => {
                        tracing::error!(%error, offset, "unreadable __consumer_offsets batch");
                        return Ok(count);
                    }
                };
                let batch = read.bytes.slice(position..position + info.size_bytes);
                // A replicated partition's leader-change batches hold no group records.
                if !info.is_control {
                    count += self.load_batch(batch, offset);
                }
                position += info.size_bytes;
                offset = info.next_offset();
            }
        }
        Ok(count)
    }

    /// Applies one batch's records (those at or above `from_offset`).
    fn load_batch(&self, mut batch: Bytes, from_offset: i64) -> usize {
        let set = match kafka_protocol::records::RecordBatchDecoder::decode(&mut batch) {
            Ok(set) => set,
            Err(error) => {
                tracing::error!(%error, "undecodable __consumer_offsets batch skipped");
                return 0;
            }
        };
        let now_ms = io::unix_time_ms();
        let mut coordinator = self.coordinator.borrow_mut();
        let mut count = 0;
        for record in set.records.into_iter().filter(|record| record.offset >= from_offset) {
            let Some(key) = record.key.as_deref() else { continue };
            match GroupRecord::decode(key, record.value.as_deref()) {
                Ok(Some(record)) => {
                    coordinator.load(record, now_ms);
                    count += 1;
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "bad __consumer_offsets record skipped"),
            }
        }
        count
    }
}

impl From<JoinResult> for Ready {
    fn from(result: JoinResult) -> Ready {
        Ready::Join(result)
    }
}

impl From<SyncResult> for Ready {
    fn from(result: SyncResult) -> Ready {
        Ready::Sync(result)
    }
}

fn offset_record(group_id: &str, topic: &str, partition: i32, value: OffsetValue) -> GroupRecord {
    use super::records::{GroupKey, GroupValue};
    GroupRecord {
        key: GroupKey::Offset { group: group_id.into(), topic: topic.into(), partition },
        value: Some(GroupValue::Offset(value)),
    }
}

/// Appends records to their groups' `__consumer_offsets` partitions (all owned by this
/// shard). The offsets are assigned now, in call order; the future resolves when durable.
/// Nothing is appended when any record cannot be encoded.
fn append_records(
    shard: &Rc<Shard>,
    records: Vec<GroupRecord>,
) -> impl std::future::Future<Output = Result<(), WriteError>> + 'static {
    let mut by_partition: BTreeMap<i32, Vec<GroupRecord>> = BTreeMap::new();
    for record in records {
        by_partition.entry(group_partition(record.key.group())).or_default().push(record);
    }
    let now_ms = io::unix_time_ms();
    let encoded: Result<Vec<_>, RecordError> = by_partition
        .into_iter()
        .map(|(partition, records)| Ok((partition, encode_batches(&records, now_ms)?)))
        .collect();
    let mut appends = Vec::new();
    let mut missing = false;
    let mut not_leader = false;
    let refused = encoded.map(|encoded| {
        for (partition, batches) in encoded {
            assert_eq!(shard.owner_of(OFFSETS_TOPIC, partition), shard.id, "coordinator placement");
            let Some(found) = shard.local_partition(OFFSETS_TOPIC, partition) else {
                missing = true;
                continue;
            };
            // Through the partition: a replicated one appends only as the serving leader.
            match found.produce(batches, Acks::All) {
                Ok(appended) => appends.push(appended),
                Err(_) => not_leader = true,
            }
        }
    });
    async move {
        refused?;
        if missing {
            return Err(WriteError::Log(LogError::Closed));
        }
        if not_leader {
            return Err(WriteError::NotLeader);
        }
        let outcomes = join_all(appends).await;
        outcomes.into_iter().try_for_each(|outcome| outcome.map(|_| ()).map_err(WriteError::Log))
    }
}

/// Uncompressed v2 batches of at most [`RECORD_BYTES_PER_BATCH_MAX`] bytes of records each
/// (a single larger record gets a batch of its own).
/// The epoch a partition's replica serves clients in, if it does (a cluster's leader).
fn serving_epoch(shard: &Shard, partition: i32) -> Option<i32> {
    match shard.local_partition(OFFSETS_TOPIC, partition)? {
        Partition::Replicated(replicated) if replicated.is_serving(Access::Read) => {
            Some(replicated.epoch())
        }
        _ => None,
    }
}

fn encode_batches(records: &[GroupRecord], now_ms: i64) -> Result<Vec<BytesMut>, RecordError> {
    let mut batches = Vec::new();
    let mut pending: Vec<build::Record> = Vec::new();
    let mut pending_bytes = 0;
    for record in records {
        let (key, value) = record.encode()?;
        let size_bytes = key.len() + value.as_ref().map_or(0, Vec::len);
        if !pending.is_empty() && pending_bytes + size_bytes > RECORD_BYTES_PER_BATCH_MAX {
            batches.push(encode_batch(&pending, now_ms));
            pending.clear();
            pending_bytes = 0;
        }
        pending_bytes += size_bytes;
        pending.push(build::Record { key: Some(key), value, ..Default::default() });
    }
    if !pending.is_empty() {
        batches.push(encode_batch(&pending, now_ms));
    }
    assert_eq!(batches.is_empty(), records.is_empty());
    Ok(batches)
}

fn encode_batch(records: &[build::Record], now_ms: i64) -> BytesMut {
    let batch = build::encode_batch(records, now_ms, build::ProducerStamp::NONE);
    BytesMut::from(&batch[..])
}

#[cfg(test)]
mod tests;
