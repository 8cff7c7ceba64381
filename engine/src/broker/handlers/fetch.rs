//! Fetch: whole batches straight from the owning shards' logs, no record decoding.
//!
//! Limits follow KIP-74 as Kafka's `ReplicaManager.readFromLog` applies them: partitions are
//! read in request order, each up to the smaller of its `partition_max_bytes` and what is left
//! of the response's limit; until the first non-empty partition, a read returns at least one
//! whole batch even when it is larger than both, so a consumer can never be stuck behind a
//! large batch. Long-poll: while fewer than `min_bytes` are available and `max_wait_ms` has
//! not passed, the request waits for any of its partitions' high watermarks to move.
//! "Available" counts as Kafka does: Kafka serves exactly a partition's limit when data is
//! left behind it (the last batch cut short), so such a partition counts as its limit, though
//! Tern serves whole batches only and stops short of it.
//!
//! Memory: the response's limit is the smaller of the client's `max_bytes` and
//! `--fetch-max-bytes`. What it serves is not read here: a partition's answer larger than
//! `fetch_inline_read_max_bytes` (64 KiB) is planned (its batches found by their headers)
//! and read chunk by chunk as the socket drains (`broker/fetch_regions.rs`). Only smaller
//! answers are read now, within what the shard's memory budget grants at the moment
//! (`broker/memory.rs`), reserved *before* anything is read; past the grant, partitions are
//! planned instead. The work one
//! request causes is bounded too: one job per run of consecutive partitions on the same
//! shard, and one wait per shard while long-polling, however many partitions it names.
//!
//! Sessions (KIP-227) are declined: every fetch is a full fetch, and the answer's session id
//! is 0, which tells clients to keep sending full fetches. As Kafka's `FetchManager`, epoch
//! 0 (the first fetch of a session) and -1 (a sessionless fetch) are full fetches whatever
//! the session id; any other epoch names a session this broker does not have.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use kafka_protocol::messages::fetch_response::{
    FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};

use crate::broker::errors::log_error_code;
use crate::broker::fetch_regions::{ChunkError, RegionId, RegionLease};
use crate::broker::memory::Reservation;
use crate::broker::partition::Access;
use crate::broker::shard::{LeaderHint, PartitionUnavailable, Shard};
use crate::broker::topics::TopicSnapshot;
use crate::io;
use crate::log::region::ReadData;
use crate::protocol::error_code::ErrorCode;

use super::{hinted_brokers, str_bytes};

/// First fetch version that names topics by id instead of by name.
const TOPIC_ID_VERSION: i16 = 13;
/// Bound on a long-poll, whatever the client asks: a request never parks for longer.
const MAX_WAIT_MS_LIMIT: i32 = 5 * 60 * 1000;
/// KIP-227 session epochs that ask for a full fetch.
const INITIAL_SESSION_EPOCH: i32 = 0;
const FINAL_SESSION_EPOCH: i32 = -1;

/// One partition of the request, resolved against the topic registry.
#[derive(Clone)]
struct Target {
    topic_index: usize,
    name: Option<String>,
    partition: i32,
    fetch_offset: i64,
    partition_max_bytes: usize,
    /// KIP-320: -1 (no check) before Fetch v9.
    current_leader_epoch: i32,
}

/// A partition's record data: read already, or planned and read as it is sent.
pub enum Records {
    Bytes(Bytes),
    Region(RegionLease),
}

impl Records {
    pub fn size_bytes(&self) -> usize {
        match self {
            Records::Bytes(bytes) => bytes.len(),
            Records::Region(region) => region.size_bytes(),
        }
    }
}

/// A Fetch answer: the response body (its records fields left out) and each partition's
/// records in the body's order, topic by topic.
pub struct FetchAnswer {
    pub body: FetchResponse,
    pub records: Vec<Records>,
    /// The shard's memory granted for the records already read; released once the connection
    /// has charged the encoded answer.
    pub grant: Reservation,
}

impl FetchAnswer {
    /// The answer as one response body, its regions read whole into memory: for tools and the
    /// fuzz harness, which look at answers rather than send them.
    pub async fn read_whole(self) -> Result<FetchResponse, ChunkError> {
        let FetchAnswer { mut body, records, grant: _grant } = self;
        let partitions = body.responses.iter_mut().flat_map(|topic| topic.partitions.iter_mut());
        for (partition, records) in partitions.zip(records) {
            let bytes = match records {
                Records::Bytes(bytes) => bytes,
                Records::Region(region) => region.read_whole().await?,
            };
            partition.records = Some(bytes);
        }
        Ok(body)
    }
}

/// What one partition's owner answered, as it crosses back from the owner shard.
struct OwnerRead {
    error: ErrorCode,
    high_watermark: i64,
    log_start_offset: i64,
    records: OwnerRecords,
    /// What counts toward `min_bytes`: as Kafka, which cuts the last batch at the limit and
    /// so serves exactly the limit when more data is there, the limit this partition was
    /// given when data was left behind it; otherwise what was served.
    readable_bytes: usize,
    /// With NOT_LEADER_OR_FOLLOWER: the leader this broker's replica knows (KIP-951).
    leader_hint: Option<LeaderHint>,
}

enum OwnerRecords {
    Bytes(Bytes),
    Region(RegionId),
}

/// One partition's answer on the connection's shard (a region is released when dropped).
struct PartitionRead {
    error: ErrorCode,
    high_watermark: i64,
    log_start_offset: i64,
    records: Records,
    readable_bytes: usize,
    leader_hint: Option<LeaderHint>,
}

impl OwnerRead {
    fn refused(error: ErrorCode) -> OwnerRead {
        let (high_watermark, log_start_offset) = (-1, -1);
        let records = OwnerRecords::Bytes(Bytes::new());
        let leader_hint = None;
        OwnerRead {
            error,
            high_watermark,
            log_start_offset,
            records,
            readable_bytes: 0,
            leader_hint,
        }
    }

    fn unavailable(unavailable: PartitionUnavailable) -> OwnerRead {
        let leader_hint = unavailable.leader_hint();
        OwnerRead { leader_hint, ..OwnerRead::refused(unavailable.error_code()) }
    }

    fn on_connection_shard(self, shard: &Rc<Shard>) -> PartitionRead {
        let records = match self.records {
            OwnerRecords::Bytes(bytes) => Records::Bytes(bytes),
            OwnerRecords::Region(id) => Records::Region(RegionLease::new(shard, id)),
        };
        let OwnerRead {
            error, high_watermark, log_start_offset, readable_bytes, leader_hint, ..
        } = self;
        PartitionRead {
            error,
            high_watermark,
            log_start_offset,
            records,
            readable_bytes,
            leader_hint,
        }
    }
}

impl PartitionRead {
    fn refused(error: ErrorCode) -> PartitionRead {
        let (high_watermark, log_start_offset) = (-1, -1);
        let records = Records::Bytes(Bytes::new());
        let leader_hint = None;
        PartitionRead {
            error,
            high_watermark,
            log_start_offset,
            records,
            readable_bytes: 0,
            leader_hint,
        }
    }

    fn inline_bytes(&self) -> usize {
        match &self.records {
            Records::Bytes(bytes) => bytes.len(),
            Records::Region(_) => 0,
        }
    }
}

pub async fn handle(shard: &Rc<Shard>, request: FetchRequest, version: i16) -> FetchAnswer {
    if !is_full_fetch(request.session_epoch) {
        // No sessions are kept, so any incremental fetch names an unknown one.
        let error = ErrorCode::FetchSessionIdNotFound;
        let body = FetchResponse::default().with_error_code(error.code());
        return FetchAnswer { body, records: Vec::new(), grant: Reservation::default() };
    }
    let max_wait_ms = u64::try_from(request.max_wait_ms.clamp(0, MAX_WAIT_MS_LIMIT)).unwrap_or(0);
    let deadline = io::now() + Duration::from_millis(max_wait_ms);
    let targets = resolve_targets(shard, &request, version);
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let max_bytes = usize::try_from(request.max_bytes).ok().filter(|bytes| *bytes > 0);
    let wanted_bytes = max_bytes.unwrap_or(usize::MAX).min(shard.config.fetch_max_bytes);
    // A quarter of the budget stays free for requests and other answers.
    let keep_free_bytes = shard.memory.capacity_bytes() / 4;
    // Bounded: each turn waits for progress or for the deadline.
    loop {
        let mut grant = shard.memory.reserve_up_to(wanted_bytes, keep_free_bytes);
        let limit = Limit::new(wanted_bytes, grant.size_bytes());
        let reads = read_all(shard, &targets, limit).await;
        // What was read, which may be a batch more than granted (KIP-74), or less.
        grant.resize(reads.iter().map(PartitionRead::inline_bytes).sum());
        let available: usize = reads.iter().map(|read| read.readable_bytes).sum();
        let has_error = reads.iter().any(|read| read.error != ErrorCode::None);
        let remaining = deadline.duration_since(io::now());
        if available >= min_bytes || has_error || remaining.is_zero() || shard.is_shutting_down() {
            let (mut body, records) = build_response(&request, version, &targets, reads);
            body.node_endpoints = hinted_endpoints(shard, &body);
            return FetchAnswer { body, records, grant };
        }
        let seen: Vec<i64> = reads.iter().map(|read| read.high_watermark).collect();
        drop((reads, grant));
        wait_for_progress(shard, &targets, &seen, remaining).await;
    }
}

/// The endpoints of the leaders the body's hints name (KIP-951's NodeEndpoints, Fetch v16+;
/// older versions skip the field), from the cluster metadata this broker applied.
fn hinted_endpoints(shard: &Shard, body: &FetchResponse) -> Vec<NodeEndpoint> {
    let partitions = body.responses.iter().flat_map(|topic| topic.partitions.iter());
    let leaders = partitions.map(|partition| partition.current_leader.leader_id.0);
    hinted_brokers(shard, leaders)
        .into_iter()
        .map(|broker| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(broker.node_id))
                .with_host(str_bytes(&broker.host))
                .with_port(i32::from(broker.port))
        })
        .collect()
}

fn is_full_fetch(session_epoch: i32) -> bool {
    session_epoch == INITIAL_SESSION_EPOCH || session_epoch == FINAL_SESSION_EPOCH
}

fn resolve_targets(shard: &Shard, request: &FetchRequest, version: i16) -> Vec<Target> {
    let snapshot = shard.topics();
    let mut targets = Vec::new();
    for (topic_index, topic) in request.topics.iter().enumerate() {
        let name = if version >= TOPIC_ID_VERSION {
            snapshot.get_by_id(&topic.topic_id).map(|meta| meta.name.clone())
        } else {
            Some(topic.topic.to_string())
        };
        for partition in &topic.partitions {
            targets.push(Target {
                topic_index,
                name: name.clone(),
                partition: partition.partition,
                fetch_offset: partition.fetch_offset,
                partition_max_bytes: usize::try_from(partition.partition_max_bytes).unwrap_or(0),
                current_leader_epoch: partition.current_leader_epoch,
            });
        }
    }
    targets
}

/// Reads every target in request order within `limit_bytes` (KIP-74, see the module doc), in
/// two phases: every owner shard at once reports its partitions' watermarks (no I/O); then
/// only the partitions with data behind the fetch offset are read, in order, until the
/// limit is spent. An idle consumer of thousands of partitions costs one job per shard.
async fn read_all(shard: &Rc<Shard>, targets: &[Target], limit: Limit) -> Vec<PartitionRead> {
    let snapshot = shard.topics();
    let owners: Vec<Option<usize>> =
        targets.iter().map(|target| owner_of(shard, &snapshot, target)).collect();
    let mut reads = probe_all(shard, targets, &owners).await;
    let with_data: Vec<usize> = (0..targets.len())
        .filter(|index| {
            let read = &reads[*index];
            read.error == ErrorCode::None && targets[*index].fetch_offset < read.high_watermark
        })
        .collect();
    let mut limit = limit;
    let mut next = 0;
    // Each round reads at least one partition with data, or ends.
    while next < with_data.len() && (limit.remaining_bytes > 0 || limit.min_one_batch) {
        // Only partitions a shard answered for have data: they all have an owner.
        let Some(owner) = owners[with_data[next]] else { break };
        let run_length =
            with_data[next..].iter().take_while(|index| owners[**index] == Some(owner)).count();
        let run: Vec<usize> = with_data[next..next + run_length].to_vec();
        let run_targets = run.iter().map(|index| targets[*index].clone()).collect();
        let (run_reads, after) = read_run_on(shard, owner, run_targets, limit).await;
        for (index, read) in run.into_iter().zip(run_reads) {
            reads[index] = read;
        }
        limit = after;
        next += run_length;
    }
    reads
}

/// Every target's watermarks (or error), one job per owner shard, all shards at once.
async fn probe_all(
    shard: &Rc<Shard>,
    targets: &[Target],
    owners: &[Option<usize>],
) -> Vec<PartitionRead> {
    let mut reads: Vec<PartitionRead> = targets
        .iter()
        .map(|target| match target.name {
            Some(_) => PartitionRead::refused(ErrorCode::UnknownTopicOrPartition),
            None => PartitionRead::refused(ErrorCode::UnknownTopicId),
        })
        .collect();
    let mut by_owner: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (index, owner) in owners.iter().enumerate() {
        if let Some(owner) = owner {
            by_owner.entry(*owner).or_default().push(index);
        }
    }
    let nothing = Limit::new(0, 0);
    let probes = by_owner.into_iter().map(|(owner, indexes)| {
        let probe_targets = indexes.iter().map(|index| targets[*index].clone()).collect();
        read_run_on(shard, owner, probe_targets, nothing).map(move |(probed, _)| (indexes, probed))
    });
    for (indexes, probed) in futures_util::future::join_all(probes).await {
        for (index, read) in indexes.into_iter().zip(probed) {
            reads[index] = read;
        }
    }
    reads
}

/// What is left of a response's limit as partitions are read in order.
#[derive(Clone, Copy)]
struct Limit {
    remaining_bytes: usize,
    /// Until the first non-empty partition: serve at least one batch (KIP-74).
    min_one_batch: bool,
    /// What is left of the memory granted for answers read now rather than as they are sent.
    inline_remaining_bytes: usize,
}

impl Limit {
    fn new(limit_bytes: usize, inline_bytes: usize) -> Limit {
        let min_one_batch = limit_bytes > 0;
        Limit { remaining_bytes: limit_bytes, min_one_batch, inline_remaining_bytes: inline_bytes }
    }
}

fn owner_of(shard: &Shard, snapshot: &TopicSnapshot, target: &Target) -> Option<usize> {
    let name = target.name.as_deref()?;
    snapshot.has_partition(name, target.partition).then(|| shard.owner_of(name, target.partition))
}

/// Reads consecutive targets that `owner` holds, in one job on that shard.
async fn read_run_on(
    shard: &Rc<Shard>,
    owner: usize,
    run: Vec<Target>,
    limit: Limit,
) -> (Vec<PartitionRead>, Limit) {
    let count = run.len();
    let answer = shard
        .call_on(owner, move |owner| async move {
            let mut limit = limit;
            let mut reads = Vec::with_capacity(run.len());
            for target in &run {
                reads.push(read_partition(&owner, target, &mut limit).await);
            }
            (reads, limit)
        })
        .await;
    match answer {
        Some((reads, limit)) => {
            let reads = reads.into_iter().map(|read| read.on_connection_shard(shard)).collect();
            (reads, limit)
        }
        None => {
            let refused =
                (0..count).map(|_| PartitionRead::refused(ErrorCode::NotLeaderOrFollower));
            (refused.collect(), limit)
        }
    }
}

/// One partition on its owner shard, within what is left of the response's limit.
async fn read_partition(owner: &Shard, target: &Target, limit: &mut Limit) -> OwnerRead {
    let Some(name) = target.name.as_deref() else {
        return OwnerRead::refused(ErrorCode::UnknownTopicId);
    };
    let log = match owner.local_leader(name, target.partition, Access::Read) {
        Ok(leader) => match leader.check_epoch(target.current_leader_epoch) {
            Ok(()) => leader.log().clone(),
            Err(fenced) => return OwnerRead::refused(fenced),
        },
        Err(unavailable) => return OwnerRead::unavailable(unavailable),
    };
    let max_bytes = target.partition_max_bytes.min(limit.remaining_bytes);
    let inline_max_bytes =
        limit.inline_remaining_bytes.min(owner.config.fetch_inline_read_max_bytes);
    let offset = target.fetch_offset;
    match log.plan_read(offset, max_bytes, limit.min_one_batch, inline_max_bytes).await {
        Ok(read) => {
            let size_bytes = read.size_bytes();
            if size_bytes > 0 {
                limit.min_one_batch = false;
            }
            limit.remaining_bytes = limit.remaining_bytes.saturating_sub(size_bytes);
            // Only behind served batches: an empty read may be a filler at the end, which
            // must not end the long-poll (the client would ask again at once, for ever).
            let left_behind = size_bytes > 0 && read.next_offset < read.high_watermark;
            let readable_bytes = if left_behind { size_bytes.max(max_bytes) } else { size_bytes };
            let records = match read.data {
                ReadData::Bytes(bytes) => {
                    limit.inline_remaining_bytes =
                        limit.inline_remaining_bytes.saturating_sub(bytes.len());
                    OwnerRecords::Bytes(bytes)
                }
                ReadData::Region(region) => {
                    OwnerRecords::Region(owner.fetch_regions.insert(owner.id, log.clone(), region))
                }
            };
            OwnerRead {
                error: ErrorCode::None,
                high_watermark: read.high_watermark,
                log_start_offset: read.log_start_offset,
                records,
                readable_bytes,
                leader_hint: None,
            }
        }
        Err(error) => OwnerRead {
            error: log_error_code(&error),
            high_watermark: log.high_watermark(),
            log_start_offset: log.log_start_offset(),
            records: OwnerRecords::Bytes(Bytes::new()),
            readable_bytes: 0,
            leader_hint: None,
        },
    }
}

/// Waits until any partition's high watermark passes what this request has seen, or until
/// `remaining` has passed: one wait per owner shard, however many partitions.
async fn wait_for_progress(
    shard: &Rc<Shard>,
    targets: &[Target],
    seen: &[i64],
    remaining: Duration,
) {
    let snapshot = shard.topics();
    let mut by_owner: BTreeMap<usize, Vec<(String, i32, i64)>> = BTreeMap::new();
    for (target, seen) in targets.iter().zip(seen) {
        let Some(owner) = owner_of(shard, &snapshot, target) else { continue };
        let Some(name) = target.name.clone() else { continue };
        by_owner.entry(owner).or_default().push((name, target.partition, *seen));
    }
    let mut waits = Vec::new();
    for (owner, partitions) in by_owner {
        let wait = shard.call_on(owner, move |owner| async move {
            let waits: Vec<_> = partitions
                .iter()
                .filter_map(|(name, partition, seen)| {
                    let log = owner.local_log(name, *partition)?;
                    Some(log.wait_for_high_watermark_above(*seen).boxed_local())
                })
                .collect();
            if waits.is_empty() {
                return;
            }
            let _ = io::timeout(remaining, futures_util::future::select_all(waits)).await;
        });
        waits.push(wait.boxed_local());
    }
    if waits.is_empty() {
        io::sleep(remaining).await;
        return;
    }
    let _ = io::timeout(remaining, futures_util::future::select_all(waits)).await;
}

fn build_response(
    request: &FetchRequest,
    version: i16,
    targets: &[Target],
    reads: Vec<PartitionRead>,
) -> (FetchResponse, Vec<Records>) {
    let mut topics: Vec<FetchableTopicResponse> = request
        .topics
        .iter()
        .map(|topic| {
            let response = FetchableTopicResponse::default();
            if version >= TOPIC_ID_VERSION {
                response.with_topic_id(topic.topic_id)
            } else {
                response.with_topic(TopicName(str_bytes(topic.topic.as_str())))
            }
        })
        .collect();
    // Aborted transactions, as Kafka 4.4 (measured): a list (empty here) for a successful
    // read_committed read, null for a read_uncommitted one and for an error the read itself
    // met (offset out of range, storage); an empty list for a partition refused before any
    // read (unknown topic or partition: `FetchResponse.partitionResponse`).
    let read_committed = request.isolation_level != 0;
    // Targets are listed topic by topic, so the body's partitions follow the targets' order.
    let mut records = Vec::with_capacity(reads.len());
    for (target, read) in targets.iter().zip(reads) {
        let refused_before_reading =
            matches!(read.error, ErrorCode::UnknownTopicOrPartition | ErrorCode::UnknownTopicId);
        let listed = refused_before_reading || (read_committed && read.error == ErrorCode::None);
        let aborted = listed.then(Vec::new);
        let mut partition = PartitionData::default()
            .with_partition_index(target.partition)
            .with_error_code(read.error.code())
            .with_aborted_transactions(aborted);
        if let Some(hint) = read.leader_hint {
            // Encoded from Fetch v12 on (a tagged field); older versions skip it.
            partition.current_leader = LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(hint.leader_id))
                .with_leader_epoch(hint.leader_epoch);
        }
        partition = if read.error == ErrorCode::None {
            records.push(read.records);
            partition
                .with_high_watermark(read.high_watermark)
                .with_last_stable_offset(read.high_watermark)
                .with_log_start_offset(read.log_start_offset)
        } else {
            // As Kafka's `FetchResponse.partitionResponse(error)`: no watermarks with an error.
            records.push(Records::Bytes(Bytes::new()));
            partition.with_high_watermark(-1).with_last_stable_offset(-1).with_log_start_offset(-1)
        };
        topics[target.topic_index].partitions.push(partition);
    }
    (FetchResponse::default().with_session_id(0).with_responses(topics), records)
}
