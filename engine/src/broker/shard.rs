//! One shard of the broker: the partitions it owns, its copy of the topic registry, and the
//! mesh that carries work to other shards.
//!
//! Partition ownership is a pure function of (topic, partition, shard count), so every shard
//! knows where to send a request without asking anyone. Work for another shard travels as a
//! [`Job`] over a bounded mesh channel and runs there as a local task; its answer comes back
//! over a reply channel. Jobs from one sender are started in the order they were sent, which
//! keeps the offsets of one connection's pipelined produce requests in request order.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use crate::io::{self, local::Notify, mesh, Disk, Instant};
use crate::log::{Log, LogLatency};
use crate::metrics::LatencyHistogram;
use crate::protocol::error_code::ErrorCode;

use super::cluster::forward::Forwards;
use super::cluster::leadership::{self, HeardLeaders};
use super::cluster::routing::{self, PeerOutbox};
use super::cluster::{Controller, ProposeError};
use super::config::BrokerConfig;
use super::connection::ConnectionCount;
use super::fetch_regions::{RegionTable, SendBuffers};
use super::groups::GroupService;
use super::memory::MemoryBudget;
use super::partition::ticker::Ticker;
use super::partition::{Access, NotLeader, Partition, ReplicatedPartition};
use super::producer_ids::ProducerIds;
use super::topics::{self, BrokerEndpoint, TopicMeta, TopicSnapshot};

/// Work sent to another shard: a closure run there as a local task.
pub type Job = Box<dyn FnOnce(Rc<Shard>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// Bound on jobs queued for one shard; senders wait when it is full (backpressure).
pub const JOB_QUEUE_CAPACITY: usize = 4096;

/// Identity of the cluster this broker belongs to, fixed at first start.
/// Why partition work found no log to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionUnavailable {
    /// The owning shard holds no log for it (the topic is being created or deleted).
    NoLog,
    /// The owning shard is gone (shutdown).
    ShardGone,
    /// This broker's replica does not lead the partition (or stopped after a fault).
    NotLeader(NotLeader),
}

impl PartitionUnavailable {
    /// The Kafka error every partition API answers it with.
    pub fn error_code(self) -> ErrorCode {
        match self {
            PartitionUnavailable::NoLog => ErrorCode::UnknownTopicOrPartition,
            PartitionUnavailable::ShardGone => ErrorCode::NotLeaderOrFollower,
            PartitionUnavailable::NotLeader(NotLeader::Follower { .. }) => {
                ErrorCode::NotLeaderOrFollower
            }
            PartitionUnavailable::NotLeader(NotLeader::NotServing) => ErrorCode::OffsetNotAvailable,
            PartitionUnavailable::NotLeader(NotLeader::Stopped) => ErrorCode::KafkaStorageError,
            PartitionUnavailable::NotLeader(NotLeader::NotEnoughReplicas { .. }) => {
                ErrorCode::NotEnoughReplicas
            }
        }
    }
}

impl PartitionUnavailable {
    /// The leader a NOT_LEADER_OR_FOLLOWER answer names, when this broker's replica knows
    /// it: KIP-951's `CurrentLeader`, so a client moves at once instead of after a
    /// Metadata round trip.
    pub fn leader_hint(self) -> Option<LeaderHint> {
        match self {
            PartitionUnavailable::NotLeader(NotLeader::Follower {
                leader: Some(leader),
                epoch,
            }) => {
                let leader_id = i32::try_from(leader.0).ok()?;
                Some(LeaderHint { leader_id, leader_epoch: epoch })
            }
            _ => None,
        }
    }
}

/// Another broker that leads a partition, as a client's hint names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderHint {
    pub leader_id: i32,
    pub leader_epoch: i32,
}

#[derive(Debug, Clone)]
pub struct ClusterIdentity {
    pub cluster_id: String,
    pub node_id: i32,
    /// The data directory's id (`server.rs`): peers and the controller tell this broker's
    /// incarnations apart by it.
    pub directory_id: uuid::Uuid,
}

/// Key of a partition owned by a shard.
pub type PartitionKey = (String, i32);

/// A replicated partition as its local replica sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub leader: Option<i32>,
    pub epoch: i32,
    /// Known on the leader only (empty elsewhere).
    pub in_sync: Vec<i32>,
}

pub struct Shard {
    pub id: usize,
    pub config: Arc<BrokerConfig>,
    pub cluster: ClusterIdentity,
    pub disk: Disk,
    peers: Vec<mesh::Sender<Job>>,
    topics: RefCell<Arc<TopicSnapshot>>,
    partitions: RefCell<BTreeMap<PartitionKey, Partition>>,
    /// Shard 0 only: serialises registry changes (create/delete) across their awaits.
    registry_busy: Cell<bool>,
    registry_idle: Notify,
    /// Shard 0 only: the producer-id allocator (see `producer_ids.rs`).
    pub producer_ids: ProducerIds,
    shutting_down: Cell<bool>,
    pub shutdown_requested: Notify,
    /// Produce requests handled on this shard, from decode to response (acks=0 included).
    pub produce_latency: RefCell<LatencyHistogram>,
    /// The coordinator of the groups whose `__consumer_offsets` partitions this shard owns.
    pub groups: GroupService,
    /// Request and response bytes this shard holds and has not sent (`memory.rs`).
    pub memory: Rc<MemoryBudget>,
    /// Open client connections of the whole broker (shared by every shard).
    pub connections: Arc<ConnectionCount>,
    /// Planned fetch reads of this shard's partitions being sent (`fetch_regions.rs`).
    pub fetch_regions: RegionTable,
    /// Chunk buffers this shard's connections send fetched data through.
    pub send_buffers: SendBuffers,
    /// Shard 0 of a cluster broker: the controller and the peer transport.
    controller: OnceCell<Controller>,
    /// In a cluster: replica messages on their way to shard 0's transport.
    pub peer_outbox: PeerOutbox,
    /// In a cluster: the one timer of this shard's replicated partitions.
    pub replica_ticker: Rc<Ticker>,
    /// In a cluster: requests being forwarded to the controller's leader.
    pub forwards: Forwards,
    /// In a cluster: the leaders of this shard's partitions, as they announced themselves.
    pub heard_leaders: HeardLeaders,
    /// In a cluster: the broker is cut off from the controller quorum (`cluster/cut_off.rs`)
    /// and serves no client meanwhile.
    cut_off: Cell<bool>,
    /// Notified when `cut_off` changes.
    pub cut_off_changed: Notify,
}

/// Why a registry change was not published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// In a cluster, only the controller's leader changes the registry (NOT_CONTROLLER).
    #[error("this broker is not the controller")]
    NotController,
    /// The change was not stored (KAFKA_STORAGE_ERROR on a single node; in a cluster the
    /// metadata log failed, the change was refused, or it timed out).
    #[error("{0}")]
    Failed(String),
}

/// The heartbeat interval of this broker's replicas (a single node has none; its ticker is
/// never used).
fn replica_heartbeat_interval(config: &BrokerConfig) -> std::time::Duration {
    let interval_ms =
        config.cluster.as_ref().map_or(1_000, |cluster| cluster.heartbeat_interval_ms);
    std::time::Duration::from_millis(interval_ms.unsigned_abs())
}

/// The shard that owns `partition` of `topic`: FNV-1a over the name and index, so that it is
/// the same on every shard, every run and every machine.
pub fn owner_shard(topic: &str, partition: i32, shard_count: usize) -> usize {
    assert!(shard_count > 0);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in topic.as_bytes().iter().chain(partition.to_be_bytes().iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % shard_count as u64) as usize
}

impl Shard {
    pub fn new(
        id: usize,
        config: Arc<BrokerConfig>,
        cluster: ClusterIdentity,
        disk: Disk,
        peers: Vec<mesh::Sender<Job>>,
        topics: Arc<TopicSnapshot>,
        connections: Arc<ConnectionCount>,
    ) -> Rc<Shard> {
        let replica_ticker = Ticker::new(replica_heartbeat_interval(&config));
        assert_eq!(peers.len(), config.shard_count);
        assert!(id < config.shard_count);
        let groups = GroupService::new(config.groups.clone());
        let memory = MemoryBudget::new(config.memory_budget_bytes_per_shard);
        // A cluster broker serves clients once it is part of the cluster (`cut_off.rs`).
        let in_cluster = config.cluster.is_some();
        Rc::new(Shard {
            id,
            groups,
            config,
            cluster,
            disk,
            peers,
            topics: RefCell::new(topics),
            partitions: RefCell::new(BTreeMap::new()),
            registry_busy: Cell::new(false),
            registry_idle: Notify::new(),
            producer_ids: ProducerIds::default(),
            shutting_down: Cell::new(false),
            shutdown_requested: Notify::new(),
            produce_latency: RefCell::new(LatencyHistogram::new()),
            memory,
            connections,
            fetch_regions: RegionTable::default(),
            send_buffers: SendBuffers::default(),
            controller: OnceCell::new(),
            peer_outbox: PeerOutbox::default(),
            replica_ticker,
            forwards: Forwards::default(),
            heard_leaders: HeardLeaders::default(),
            cut_off: Cell::new(in_cluster),
            cut_off_changed: Notify::new(),
        })
    }

    pub fn shard_count(&self) -> usize {
        self.peers.len()
    }

    pub fn topics(&self) -> Arc<TopicSnapshot> {
        self.topics.borrow().clone()
    }

    /// Where clients reach this broker, and its data directory's id.
    pub fn own_endpoint(&self) -> BrokerEndpoint {
        BrokerEndpoint {
            node_id: self.cluster.node_id,
            host: self.config.advertised_host.clone(),
            port: self.config.advertised_port,
            directory_id: Some(self.cluster.directory_id),
        }
    }

    pub fn owner_of(&self, topic: &str, partition: i32) -> usize {
        owner_shard(topic, partition, self.shard_count())
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.get()
    }

    /// A partition this shard owns.
    pub fn local_partition(&self, topic: &str, partition: i32) -> Option<Partition> {
        debug_assert_eq!(self.owner_of(topic, partition), self.id);
        self.partitions.borrow().get(&(topic.to_string(), partition)).cloned()
    }

    /// The log of a partition this shard owns.
    pub fn local_log(&self, topic: &str, partition: i32) -> Option<Log> {
        self.local_partition(topic, partition).map(|partition| partition.log().clone())
    }

    /// The partition this shard owns, if this broker leads it: the one leadership check of
    /// partition work (reads, writes and offsets are served by leaders only).
    pub fn local_leader(
        &self,
        topic: &str,
        partition: i32,
        access: Access,
    ) -> Result<Partition, PartitionUnavailable> {
        let Some(found) = self.local_partition(topic, partition) else {
            // In a cluster, a partition of a known topic that another broker hosts.
            let hosted_elsewhere =
                self.config.cluster.is_some() && self.topics().has_partition(topic, partition);
            return Err(match hosted_elsewhere {
                true => {
                    // The leader's own news, if it reached this broker (KIP-951 hint).
                    let key = (topic.to_string(), partition);
                    let heard = self.heard_leaders.leader_of(&key, io::now());
                    let known = heard.and_then(|state| {
                        let leader = u32::try_from(state.leader?).ok()?;
                        let leader = Some(crate::replication::NodeId(leader));
                        Some(NotLeader::Follower { leader, epoch: state.epoch })
                    });
                    let unknown = NotLeader::Follower { leader: None, epoch: -1 };
                    PartitionUnavailable::NotLeader(known.unwrap_or(unknown))
                }
                false => PartitionUnavailable::NoLog,
            });
        };
        found.check_leader(access).map_err(PartitionUnavailable::NotLeader)?;
        Ok(found)
    }

    /// Leader, epoch and in-sync replicas of this shard's partitions, as its replicas know
    /// them and as their leaders announced them (Metadata gathers them from every shard).
    pub fn partition_states(&self) -> Vec<(PartitionKey, PartitionState)> {
        leadership::merged_states(self)
    }

    /// Leader, epoch and in-sync replicas of every replicated partition this shard hosts,
    /// as its replicas know them.
    pub fn hosted_partition_states(&self) -> Vec<(PartitionKey, PartitionState)> {
        let partitions = self.partitions.borrow();
        let replicated = partitions.iter().filter_map(|(key, partition)| match partition {
            Partition::Replicated(replicated) => Some((key, replicated)),
            Partition::Local(_) => None,
        });
        replicated
            .map(|(key, replicated)| {
                let node = |id: crate::replication::NodeId| i32::try_from(id.0).unwrap_or(-1);
                let state = PartitionState {
                    leader: replicated.leader().map(node),
                    epoch: replicated.epoch(),
                    in_sync: replicated.in_sync_replicas().into_iter().map(node).collect(),
                };
                (key.clone(), state)
            })
            .collect()
    }

    /// Whether the broker is cut off from the cluster (it then serves no client).
    pub fn is_cut_off(&self) -> bool {
        self.cut_off.get()
    }

    /// Told by shard 0's watch (`cluster/cut_off.rs`).
    pub fn set_cut_off(&self, cut_off: bool) {
        if self.cut_off.replace(cut_off) != cut_off {
            self.cut_off_changed.notify_waiters();
        }
    }

    /// Shard 0 of a cluster broker: its controller.
    pub fn controller(&self) -> Option<Controller> {
        self.controller.get().cloned()
    }

    /// Shard 0: installs the controller, once.
    pub fn set_controller(&self, controller: Controller) {
        assert_eq!(self.id, 0, "the controller lives on shard 0");
        assert!(self.controller.set(controller).is_ok(), "one controller per broker");
    }

    /// Runs `work` with a partition this broker leads, on the shard that owns it: the one way
    /// partition work crosses shards (owner lookup, then [`Shard::local_leader`]). Each caller
    /// maps [`PartitionUnavailable`] to its API's error ([`PartitionUnavailable::error_code`]).
    pub async fn on_partition<T, F, Fut>(
        self: &Rc<Self>,
        topic: &str,
        partition: i32,
        access: Access,
        work: F,
    ) -> Result<T, PartitionUnavailable>
    where
        T: Send + 'static,
        F: FnOnce(Partition) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        let owner = self.owner_of(topic, partition);
        let topic = topic.to_string();
        let answer = self
            .call_on(owner, move |owner| async move {
                let leader = owner.local_leader(&topic, partition, access)?;
                Ok(work(leader).await)
            })
            .await;
        answer.unwrap_or(Err(PartitionUnavailable::ShardGone))
    }

    /// [`Shard::on_partition`] for work that needs only the leader's log.
    pub async fn on_partition_log<T, F, Fut>(
        self: &Rc<Self>,
        topic: &str,
        partition: i32,
        work: F,
    ) -> Result<T, PartitionUnavailable>
    where
        T: Send + 'static,
        F: FnOnce(Log) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        // DeleteRecords and a produce error's log start: leader work that reads no watermark.
        let access = Access::Write;
        self.on_partition(topic, partition, access, move |leader| work(leader.log().clone())).await
    }

    /// Runs `work` on `shard` and returns its output; runs it right here when `shard` is us.
    /// `None` means the target shard is gone (shutdown).
    pub async fn call_on<T, F, Fut>(self: &Rc<Self>, shard: usize, work: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        if shard == self.id {
            // Spawned, not awaited inline, so that local and remote work start in the same
            // (send) order relative to other requests of the connection.
            return io::spawn_local(work(self.clone())).await.into();
        }
        let (reply, answer) = mesh::reply_channel::<T>();
        let job: Job = Box::new(move |target: Rc<Shard>| {
            Box::pin(async move {
                let output = work(target).await;
                let _ = reply.send(output);
            })
        });
        if self.peers[shard].send(job).await.is_err() {
            return None;
        }
        answer.await.ok()
    }

    /// Runs jobs sent by other shards until every sender is gone.
    pub async fn serve_jobs(self: Rc<Self>, mut jobs: mesh::Receiver<Job>) {
        while let Some(job) = jobs.recv().await {
            drop(io::spawn_local(job(self.clone())));
        }
    }

    /// Replaces this shard's topic view, opens/closes the partitions it owns to match, and
    /// hands changed topic configs to the logs already open.
    pub async fn apply_topics(self: &Rc<Self>, snapshot: Arc<TopicSnapshot>) {
        let previous = std::mem::replace(&mut *self.topics.borrow_mut(), snapshot.clone());
        for topic in previous.by_name.values() {
            let still_there = snapshot.get(&topic.name).is_some_and(|now| now.id == topic.id);
            if !still_there {
                self.delete_local_partitions(topic).await;
            }
        }
        for topic in snapshot.by_name.values() {
            self.open_local_partitions(topic, &snapshot.brokers).await;
        }
    }

    async fn open_local_partitions(
        self: &Rc<Self>,
        topic: &TopicMeta,
        brokers: &BTreeMap<i32, BrokerEndpoint>,
    ) {
        for partition in 0..topic.partition_count {
            if self.owner_of(&topic.name, partition) != self.id {
                continue;
            }
            let key = (topic.name.clone(), partition);
            let config = topic.log_config(&self.config.log);
            if let Some(open) = self.partitions.borrow().get(&key) {
                // AlterConfigs: the open log takes the topic's new settings.
                open.log().set_config(config);
                if let Partition::Replicated(replicated) = open {
                    replicated.set_min_insync_replicas(min_insync_replicas(topic));
                    let replicas = topic.replicas.get(partition.unsigned_abs() as usize);
                    let replicas = replicas.map(Vec::as_slice).unwrap_or_default();
                    tell_directories(replicated, replicas, brokers);
                }
                continue;
            }
            // A file name: every registry topic passed `validate_topic_name` (CreateTopics,
            // and `load_registry` again) — at most 249 ASCII characters of [a-zA-Z0-9._-],
            // not "." or "..", as Kafka — and partitions are below PARTITIONS_PER_TOPIC_MAX,
            // so the name fits NAME_MAX (255) and cannot climb out of the data directory.
            assert!(topics::validate_topic_name(&topic.name).is_ok(), "registry topic name");
            assert!((0..topics::PARTITIONS_PER_TOPIC_MAX).contains(&partition));
            let directory = self.config.data_dir.join(format!("{}-{}", topic.name, partition));
            let opened = match &self.config.cluster {
                None => Log::open(self.disk.clone(), directory, config).await.map(Partition::Local),
                Some(cluster) => {
                    let replicas = topic.replicas.get(partition.unsigned_abs() as usize);
                    let replicas = replicas.map(Vec::as_slice).unwrap_or_default();
                    if !replicas.contains(&cluster.node_id) {
                        continue;
                    }
                    let index = partition.unsigned_abs() as usize;
                    let own_directory = self.cluster.directory_id;
                    let replica_config = replica_config(cluster, own_directory, topic, index);
                    let sender = routing::partition_sender(self, &topic.name, partition);
                    let seed = io::random_u64();
                    ReplicatedPartition::open(
                        self.disk.clone(),
                        directory,
                        config,
                        replica_config,
                        seed,
                        sender,
                        &self.replica_ticker,
                    )
                    .await
                    .map(|replicated| {
                        replicated.set_min_insync_replicas(min_insync_replicas(topic));
                        tell_directories(&replicated, replicas, brokers);
                        Partition::Replicated(replicated)
                    })
                }
            };
            match opened {
                Ok(opened) => {
                    self.partitions.borrow_mut().insert(key, opened);
                }
                Err(error) => {
                    tracing::error!(topic = %topic.name, partition, %error,
                        "cannot open partition log; it stays offline");
                }
            }
        }
    }

    async fn delete_local_partitions(self: &Rc<Self>, topic: &TopicMeta) {
        let removed: Vec<Log> = {
            let mut partitions = self.partitions.borrow_mut();
            let keys: Vec<PartitionKey> =
                partitions.keys().filter(|(name, _)| *name == topic.name).cloned().collect();
            let removed = keys.iter().filter_map(|key| partitions.remove(key));
            removed
                .map(|partition| {
                    if let Partition::Replicated(replicated) = &partition {
                        replicated.stop();
                    }
                    partition.log().clone()
                })
                .collect()
        };
        for log in removed {
            if let Err(error) = log.delete().await {
                tracing::error!(topic = %topic.name, %error, "cannot delete partition log");
            }
        }
    }

    /// The logs of every partition this shard owns.
    /// The logs of a single node's partitions: the only ones retention and compaction touch.
    /// A replicated log keeps every segment for now: its replica cannot re-open a log whose
    /// start moved past offset 0 (no snapshot transfer brings a follower past it yet), and
    /// compaction rewrites each replica's batches on its own (a filler batch may span several
    /// leader epochs), which replication has not been tested against.
    fn single_node_logs(&self) -> Vec<Log> {
        let partitions = self.partitions.borrow();
        let logs = partitions.values().filter_map(|partition| match partition {
            Partition::Local(log) => Some(log.clone()),
            Partition::Replicated(_) => None,
        });
        logs.collect()
    }

    /// Shard 0 only: waits until no other registry change is in progress, then claims it.
    pub async fn lock_registry(&self) -> RegistryGuard<'_> {
        assert_eq!(self.id, 0, "only shard 0 changes the topic registry");
        while self.registry_busy.get() {
            self.registry_idle.notified().await;
        }
        self.registry_busy.set(true);
        RegistryGuard { shard: self }
    }

    /// Makes `snapshot` the registry (shard 0, holding the registry lock): on a single node
    /// stored in `topics.json` and published to every shard; in a cluster proposed to the
    /// controller as the records between the current registry and it, and answered once
    /// applied (the applier publishes it).
    pub async fn publish_registry(
        self: &Rc<Self>,
        _guard: &RegistryGuard<'_>,
        snapshot: Arc<TopicSnapshot>,
    ) -> Result<(), PublishError> {
        assert_eq!(self.id, 0, "only shard 0 changes the topic registry");
        if self.config.cluster.is_none() {
            let stored = topics::store_registry(&self.disk, &self.config.data_dir, &snapshot).await;
            stored.map_err(|error| PublishError::Failed(error.to_string()))?;
            self.broadcast_topics(snapshot).await;
            return Ok(());
        }
        let controller = self.controller().ok_or(PublishError::NotController)?;
        // The registrations are the applied image's: a handler's new registry carries none.
        let snapshot = with_directories_pinned(&snapshot, &self.topics().brokers);
        let records = crate::broker::cluster::image::records_between(&self.topics(), &snapshot);
        controller.propose(records).await.map_err(|error| match error {
            ProposeError::NotController => PublishError::NotController,
            other => PublishError::Failed(other.to_string()),
        })
    }

    /// Whether registry changes may start here: always on a single node; in a cluster, on
    /// the controller's leader once it has applied everything committed before its epoch.
    pub async fn may_change_registry(&self) -> bool {
        match self.controller() {
            None => self.config.cluster.is_none(),
            Some(controller) => controller.wait_caught_up().await,
        }
    }

    /// Sends a new topic view to every shard (including this one) and waits until each has
    /// opened or deleted its partitions.
    pub async fn broadcast_topics(self: &Rc<Self>, snapshot: Arc<TopicSnapshot>) {
        let mut pending = Vec::with_capacity(self.shard_count());
        for shard in 0..self.shard_count() {
            let snapshot = snapshot.clone();
            pending.push(self.call_on(shard, move |target| async move {
                target.apply_topics(snapshot).await;
            }));
        }
        futures_util::future::join_all(pending).await;
    }

    /// Periodic housekeeping: retention and age-based segment rolls of owned partitions.
    pub async fn run_retention(self: Rc<Self>) {
        let interval = std::time::Duration::from_millis(self.config.retention_check_interval_ms);
        while !self.is_shutting_down() {
            io::sleep(interval).await;
            let logs = self.single_node_logs();
            let now_ms = io::unix_time_ms();
            for log in logs {
                if let Err(error) = log.maybe_roll(now_ms).await {
                    tracing::warn!(%error, "segment roll failed");
                }
                if let Err(error) = log.apply_retention(now_ms).await {
                    tracing::warn!(%error, "retention failed");
                }
            }
        }
    }

    /// Log compaction: every interval, cleans this shard's compacted logs one at a time (each
    /// cleaning yields between batches, so appends and reads go on meanwhile).
    pub async fn run_cleaner(self: Rc<Self>) {
        let interval = std::time::Duration::from_millis(self.config.log_cleaner_interval_ms);
        while !self.is_shutting_down() {
            io::sleep(interval).await;
            let logs = self.single_node_logs();
            for log in logs {
                if self.is_shutting_down() {
                    return;
                }
                if !log.is_compacted() {
                    continue;
                }
                // Only sealed segments are cleaned: roll by segment.ms here too (not only every
                // retention check), so that a quiet compacted topic becomes cleanable.
                let now_ms = io::unix_time_ms();
                let rolled = log.maybe_roll(now_ms).await;
                if let Err(error) = rolled.and(log.compact(now_ms).await) {
                    tracing::warn!(?log, %error, "log compaction failed");
                }
            }
        }
    }

    /// Asks the shard to stop: it stops accepting, then closes its logs (see `server`).
    pub fn request_shutdown(&self) {
        if !self.shutting_down.replace(true) {
            self.shutdown_requested.notify_waiters();
        }
    }

    /// Controlled shutdown: every replicated partition this shard leads (and the controller's
    /// metadata partition, on shard 0) hands its leadership to another replica, and none of
    /// them campaigns again; completes once none leads here, or at `deadline`.
    pub async fn hand_over_leadership(&self, deadline: Instant) {
        let mut replicated: Vec<ReplicatedPartition> = self
            .partitions
            .borrow()
            .values()
            .filter_map(|partition| match partition {
                Partition::Replicated(replicated) => Some(replicated.clone()),
                Partition::Local(_) => None,
            })
            .collect();
        replicated.extend(self.controller().map(|controller| controller.metadata().clone()));
        let led = replicated.iter().filter(|partition| partition.is_leader()).count();
        let hand_overs = replicated.iter().map(|partition| partition.hand_over(deadline));
        futures_util::future::join_all(hand_overs).await;
        let still_led = replicated.iter().filter(|partition| partition.is_leader()).count();
        tracing::info!(shard = self.id, led, still_led, "leadership handed over for shutdown");
    }

    /// Flushes and closes every owned partition log. Called once, by the shard's main task.
    pub async fn close_partitions(&self) {
        assert!(self.is_shutting_down(), "partitions close only during shutdown");
        if let Some(controller) = self.controller() {
            controller.stop().await;
        }
        let logs: Vec<(PartitionKey, Log)> = std::mem::take(&mut *self.partitions.borrow_mut())
            .into_iter()
            .map(|(key, partition)| {
                if let Partition::Replicated(replicated) = &partition {
                    replicated.stop();
                }
                (key, partition.log().clone())
            })
            .collect();
        let mut latency = LogLatency::default();
        for ((topic, partition), log) in logs {
            if let Err(error) = log.close().await {
                tracing::error!(%topic, partition, %error, "closing partition log failed");
            }
            let log_latency = log.latency();
            if log_latency.append.count() > 0 {
                tracing::debug!(
                    %topic,
                    partition,
                    fdatasync = %log_latency.sync.summary(),
                    append = %log_latency.append.summary(),
                    "partition latency",
                );
            }
            latency.sync.merge(&log_latency.sync);
            latency.append.merge(&log_latency.append);
        }
        self.log_latency_summary(&latency);
        tracing::info!(shard = self.id, "shard stopped");
    }

    /// Where this shard's produce time went, for operators and benchmarks (`docs/benchmarks.md`).
    fn log_latency_summary(&self, latency: &LogLatency) {
        let produce = self.produce_latency.borrow();
        if produce.count() == 0 && latency.append.count() == 0 {
            return;
        }
        tracing::info!(
            shard = self.id,
            produce = %produce.summary(),
            append = %latency.append.summary(),
            fdatasync = %latency.sync.summary(),
            "shard latency since start",
        );
    }
}

/// The topic's min.insync.replicas (validated as a positive integer by CreateTopics and
/// AlterConfigs; 1, Kafka's default, otherwise).
fn min_insync_replicas(topic: &TopicMeta) -> usize {
    let value = topic.configs.get("min.insync.replicas").and_then(|value| value.parse().ok());
    value.unwrap_or(1)
}

/// Tells a replica where its peers' brokers run now (their registrations).
fn tell_directories(
    replicated: &ReplicatedPartition,
    replicas: &[i32],
    brokers: &BTreeMap<i32, BrokerEndpoint>,
) {
    for node in replicas {
        let Some(directory) = brokers.get(node).and_then(|broker| broker.directory_id) else {
            continue;
        };
        let node = crate::replication::NodeId(node.unsigned_abs());
        replicated.set_peer_directory(node, crate::replication::DirectoryId(directory.as_u128()));
    }
}

/// `snapshot` with every replica's registered directory recorded where none was (the first
/// voters of new partitions; older topics' replicas as their brokers run now).
fn with_directories_pinned(
    snapshot: &TopicSnapshot,
    brokers: &BTreeMap<i32, BrokerEndpoint>,
) -> TopicSnapshot {
    let topics = snapshot.by_name.values().cloned().map(|mut topic| {
        topic.pin_directories(brokers);
        topic
    });
    let mut pinned = TopicSnapshot::new(topics);
    pinned.brokers = snapshot.brokers.clone();
    pinned.fenced = snapshot.fenced.clone();
    pinned
}

/// A partition replica's settings in a cluster: its replicas, the first voters pinned to the
/// directories the topic recorded, and this broker's own directory.
fn replica_config(
    cluster: &crate::broker::config::ClusterConfig,
    own_directory: uuid::Uuid,
    topic: &TopicMeta,
    partition: usize,
) -> crate::replication::ReplicaConfig {
    use crate::replication::{DirectoryId, NodeId, Voter, VoterSet};
    let replicas = topic.replicas.get(partition).map(Vec::as_slice).unwrap_or_default();
    // Node ids of an applied assignment are non-negative and distinct (`image.rs` checks).
    let node = |id: &i32| NodeId(id.unsigned_abs());
    let voters = replicas.iter().enumerate().map(|(index, id)| Voter {
        node: node(id),
        directory: topic.replica_directory(partition, index).map(|d| DirectoryId(d.as_u128())),
    });
    let initial_voters = VoterSet::new(voters.collect());
    let initial_voters = initial_voters.unwrap_or_else(|| panic!("applied replicas {replicas:?}"));
    crate::replication::ReplicaConfig {
        directory: Some(DirectoryId(own_directory.as_u128())),
        initial_voters,
        ..cluster.replica_config(replicas.iter().map(node).collect())
    }
}

/// Releases the registry claim on drop, also when the change failed half-way.
pub struct RegistryGuard<'a> {
    shard: &'a Shard,
}

impl Drop for RegistryGuard<'_> {
    fn drop(&mut self) {
        self.shard.registry_busy.set(false);
        self.shard.registry_idle.notify_waiters();
    }
}

impl RegistryGuard<'_> {
    /// Publishes `snapshot` as this shard's view (shard 0's registry is its own view).
    pub fn current(&self) -> Arc<TopicSnapshot> {
        self.shard.topics()
    }
}
