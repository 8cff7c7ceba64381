//! The controller: a Raft group over the metadata log `__cluster_metadata-0`, whose voters
//! are every broker of `--controller-voters`, and on every broker the applier that turns its
//! committed records into the shards' topic view (`image.rs`). Like KRaft, the metadata is a
//! replicated log; unlike Kafka, partition leadership is not in it: each partition elects its
//! own leader in its own Raft group.
//!
//! Changes are proposed only by the controller's leader (request handlers on other brokers
//! answer NOT_CONTROLLER, and clients retry on the controller that Metadata names). A
//! proposal is one batch of records, answered once every record of it is committed *and*
//! applied here — so a client that sees its topic created finds it on this broker at once,
//! and on the others as soon as they apply the same record.
//!
//! Brokers register themselves without asking: each peer's hello carries its client
//! endpoint and data-directory id, and the leader writes a `RegisterBroker` record for any
//! endpoint its image does not hold yet (its own included) — so a broker back with a wiped
//! directory is registered again under its new id, and every broker logs it.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::assignment;
use super::fencing::{Fencing, PeerSight};
use super::image::{self, ClusterImage, MetadataRecord};
use super::routing;
use crate::broker::config::ClusterConfig;
use crate::broker::groups;
use crate::broker::partition::{Acks, ReplicatedPartition};
use crate::broker::peer::transport::PeerTransport;
use crate::broker::peer::{Addressed, Hello, PartitionMessage};
use crate::broker::server::StartError;
use crate::broker::shard::Shard;
use crate::broker::topics::BrokerEndpoint;
use crate::io::{self, local::Notify, Listener};
use crate::log::{LogConfig, LogError};
use crate::record_batch;
use crate::replication::NodeId;

pub const METADATA_TOPIC: &str = "__cluster_metadata";
pub const METADATA_PARTITION: i32 = 0;
/// Bytes of the metadata log read per apply round.
const APPLY_READ_BYTES: usize = 1 << 20;
/// Offsets of rejected proposals remembered for their proposers (older ones are forgotten:
/// a proposer waits far less than this many proposals).
const REJECTED_REMEMBERED_MAX: usize = 1024;
/// How often the leader looks for brokers to register.
const REGISTER_INTERVAL_MS: u64 = 200;
/// A proposal not applied within this is answered REQUEST_TIMED_OUT-like (the record may
/// still commit later; the client's retry then finds the topic).
pub const PROPOSE_TIMEOUT_MS: u64 = 15_000;
/// Kafka's offsets.topic.replication.factor (3), capped by the brokers there are.
const OFFSETS_TOPIC_REPLICATION_FACTOR_MAX: usize = 3;
/// A log read that failed is retried after this.
const APPLY_RETRY_MS: u64 = 500;

/// Why a proposal was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("this broker does not lead the controller")]
    NotController,
    #[error("the metadata record was refused when applied: {0}")]
    Rejected(String),
    #[error("the metadata log failed: {0}")]
    Log(String),
    #[error("the proposal was not applied in time")]
    TimedOut,
}

/// The controller on shard 0. Cheap to clone.
#[derive(Clone)]
pub struct Controller {
    inner: Rc<Inner>,
}

struct Inner {
    node_id: i32,
    own_endpoint: BrokerEndpoint,
    metadata: ReplicatedPartition,
    transport: PeerTransport,
    image: RefCell<ClusterImage>,
    applied_changed: Notify,
    /// (batch base offset, reason) of proposals refused at apply.
    rejected: RefCell<VecDeque<(i64, String)>>,
    /// Voters of the metadata group: once this many brokers are registered, the leader
    /// creates `__consumer_offsets` over them.
    voter_count: usize,
    /// What peers' hellos said (shared with the transport's hello handler, which runs
    /// before this controller exists: a hello is heard once per connection).
    heard: Rc<RefCell<Heard>>,
    /// The leader's clocks of unreachable brokers (`fencing.rs`).
    fencing: RefCell<Fencing>,
    broker_session_timeout: Duration,
    stopped: Cell<bool>,
}

/// What the peers' hellos said, and whom to tell at once.
#[derive(Default)]
struct Heard {
    /// Each peer's client endpoint and data directory, from its latest hello.
    endpoints: BTreeMap<i32, BrokerEndpoint>,
    /// The metadata replica, once open. It is told a peer's directory while that peer's hello
    /// is handled, so before any frame of the connection: a vote from a broker that came back
    /// on a wiped directory is never counted as the old directory's (`membership.rs`).
    metadata: Option<ReplicatedPartition>,
}

impl Heard {
    fn hear(&mut self, endpoint: BrokerEndpoint) {
        if let Some(metadata) = &self.metadata {
            tell_directory(metadata, &endpoint);
        }
        self.endpoints.insert(endpoint.node_id, endpoint);
    }

    /// From now on, hellos are told to `metadata`, and so is every one heard before.
    fn tell_from_now_on(&mut self, metadata: &ReplicatedPartition) {
        for endpoint in self.endpoints.values() {
            tell_directory(metadata, endpoint);
        }
        self.metadata = Some(metadata.clone());
    }
}

fn tell_directory(metadata: &ReplicatedPartition, endpoint: &BrokerEndpoint) {
    let Some(directory) = endpoint.directory_id else { return };
    let directory = crate::replication::DirectoryId(directory.as_u128());
    metadata.set_peer_directory(node(endpoint.node_id), directory);
}

impl Controller {
    /// Binds the peer listener, opens the metadata log as a voter, and starts the transport,
    /// the applier and the registrar. Runs on shard 0.
    pub async fn start(
        shard: &Rc<Shard>,
        cluster: &ClusterConfig,
    ) -> Result<Controller, StartError> {
        assert_eq!(shard.id, 0, "the controller runs on shard 0");
        let listener = Listener::bind(cluster.peer_listen)
            .map_err(|source| StartError::Listen { address: cluster.peer_listen, source })?;
        let own_endpoint = shard.own_endpoint();
        let heard = Rc::new(RefCell::new(Heard::default()));
        let transport = start_transport(shard, cluster, listener, &own_endpoint, &heard);
        let metadata = open_metadata(shard, cluster, &transport).await.map_err(|error| {
            StartError::Shards(std::io::Error::other(format!("metadata log: {error}")))
        })?;
        heard.borrow_mut().tell_from_now_on(&metadata);
        let inner = Rc::new(Inner {
            node_id: cluster.node_id,
            voter_count: cluster.voters.len(),
            own_endpoint,
            metadata,
            transport,
            image: RefCell::new(ClusterImage::default()),
            applied_changed: Notify::new(),
            rejected: RefCell::new(VecDeque::new()),
            heard,
            fencing: RefCell::new(Fencing::default()),
            broker_session_timeout: Duration::from_millis(
                cluster.broker_session_timeout_ms.unsigned_abs(),
            ),
            stopped: Cell::new(false),
        });
        drop(io::spawn_local(apply_committed(Rc::downgrade(shard), Rc::clone(&inner))));
        drop(io::spawn_local(register_brokers(Rc::downgrade(&inner))));
        tracing::info!(node_id = cluster.node_id, peer_listen = %cluster.peer_listen,
            voters = ?cluster.voters.keys().collect::<Vec<_>>(), "controller started");
        Ok(Controller { inner })
    }

    pub fn node_id(&self) -> i32 {
        self.inner.node_id
    }

    /// Whether this broker leads the metadata group (and so answers admin requests).
    pub fn is_leader(&self) -> bool {
        self.inner.metadata.is_leader()
    }

    /// The controller's leader as this broker knows it (Metadata's controller id).
    pub fn leader(&self) -> Option<i32> {
        let leader = self.inner.metadata.leader()?;
        i32::try_from(leader.0).ok()
    }

    /// The metadata partition (peer messages for it are delivered here).
    pub fn metadata(&self) -> &ReplicatedPartition {
        &self.inner.metadata
    }

    /// Hands a replica message to the transport (shard 0 only).
    pub fn send(&self, to: NodeId, message: Addressed) {
        self.inner.transport.send(to, message);
    }

    /// Waits (bounded) until this leader has applied every record of earlier epochs, so a
    /// change it computes from its image starts from everything committed. False when it does
    /// not lead (or did not catch up in time).
    pub async fn wait_caught_up(&self) -> bool {
        let deadline = deadline_after(PROPOSE_TIMEOUT_MS);
        // Each round waits for the image to move or the deadline: bounded by the deadline.
        loop {
            if !self.is_leader() {
                return false;
            }
            if self.is_caught_up() {
                return true;
            }
            let changed = self.inner.applied_changed.notified();
            if !wait_until(changed, deadline).await {
                return false;
            }
        }
    }

    fn is_caught_up(&self) -> bool {
        let epochs = self.inner.metadata.log().leader_epochs();
        let epoch = self.inner.metadata.epoch();
        let Some(start) = epochs.entries().iter().rev().find(|entry| entry.epoch == epoch) else {
            return false;
        };
        self.inner.image.borrow().next_offset > start.start_offset
    }

    /// Appends `records` as one batch and waits until they are committed and applied here.
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Result<(), ProposeError> {
        if records.is_empty() {
            return Ok(());
        }
        let batch = image::encode_records(&records, io::unix_time_ms());
        let produced = self.inner.metadata.produce(vec![BytesMut::from(&batch[..])], Acks::All);
        let appended = produced.map_err(|_| ProposeError::NotController)?;
        let deadline = deadline_after(PROPOSE_TIMEOUT_MS);
        let appended = with_deadline(appended, deadline).await.ok_or(ProposeError::TimedOut)?;
        let info = appended.map_err(|error| match error {
            LogError::Truncated | LogError::CommitAbandoned => ProposeError::NotController,
            other => ProposeError::Log(other.to_string()),
        })?;
        // Each round waits for the image to move or the deadline: bounded by the deadline.
        while self.inner.image.borrow().next_offset <= info.base_offset {
            let changed = self.inner.applied_changed.notified();
            if !wait_until(changed, deadline).await {
                return Err(ProposeError::TimedOut);
            }
        }
        let rejected = self.inner.rejected.borrow();
        match rejected.iter().find(|(offset, _)| *offset == info.base_offset) {
            Some((_, reason)) => Err(ProposeError::Rejected(reason.clone())),
            None => Ok(()),
        }
    }

    /// Stops the applier, the registrar, the metadata replica and the transport, and closes
    /// the metadata log. Called once, at shutdown.
    pub async fn stop(&self) {
        self.inner.stopped.set(true);
        self.inner.applied_changed.notify_waiters();
        // The hello handler holds the replica; the replica's sender holds the transport.
        self.inner.heard.borrow_mut().metadata = None;
        self.inner.metadata.stop();
        self.inner.transport.stop();
        if let Err(error) = self.inner.metadata.log().close().await {
            tracing::error!(%error, "closing the metadata log failed");
        }
    }
}

fn start_transport(
    shard: &Rc<Shard>,
    cluster: &ClusterConfig,
    listener: Listener,
    own_endpoint: &BrokerEndpoint,
    heard: &Rc<RefCell<Heard>>,
) -> PeerTransport {
    let hello = Hello {
        node_id: node(cluster.node_id),
        kafka_host: own_endpoint.host.clone(),
        kafka_port: own_endpoint.port,
        directory_id: shard.cluster.directory_id.into_bytes(),
    };
    let peers = cluster
        .voters
        .iter()
        .filter(|(id, _)| **id != cluster.node_id)
        .map(|(id, address)| (node(*id), *address))
        .collect();
    let for_frames = Rc::downgrade(shard);
    let heard = Rc::clone(heard);
    PeerTransport::start(
        hello,
        listener,
        peers,
        Rc::new(move |frame| {
            if let Some(shard) = for_frames.upgrade() {
                routing::deliver_frame(&shard, frame);
            }
        }),
        Rc::new(move |hello: Hello| {
            // The transport accepts only the voters' ids, which fit an i32.
            let Ok(node_id) = i32::try_from(hello.node_id.0) else { return };
            let endpoint = BrokerEndpoint {
                node_id,
                host: hello.kafka_host,
                port: hello.kafka_port,
                directory_id: Some(uuid::Uuid::from_bytes(hello.directory_id)),
            };
            heard.borrow_mut().hear(endpoint);
        }),
    )
}

/// Node ids were checked to be in 0..CLUSTER_NODE_IDS_MAX when the voters were parsed.
fn node(id: i32) -> NodeId {
    NodeId(id.unsigned_abs())
}

async fn open_metadata(
    shard: &Rc<Shard>,
    cluster: &ClusterConfig,
    transport: &PeerTransport,
) -> Result<ReplicatedPartition, LogError> {
    let directory = shard.config.data_dir.join(format!("{METADATA_TOPIC}-{METADATA_PARTITION}"));
    // Every record is applied from offset 0 at each start: nothing may age out of it.
    let log_config =
        LogConfig { retention_age_ms: -1, retention_size_bytes: -1, ..shard.config.log.clone() };
    let voters = cluster.voters.keys().map(|id| node(*id)).collect();
    // The controller has no preferred leader (as KRaft's has none). Its first voters are
    // not pinned: nothing outside this directory records theirs. The leader pins them, one
    // voters batch each, once it has heard every peer's hello (`membership.rs`).
    let replica_config = crate::replication::ReplicaConfig {
        leader_rebalance_interval_ms: None,
        directory: Some(crate::replication::DirectoryId(shard.cluster.directory_id.as_u128())),
        ..cluster.replica_config(voters)
    };
    let transport = transport.clone();
    let sender = Rc::new(move |to: NodeId, message| {
        let topic = METADATA_TOPIC.to_string();
        let message = PartitionMessage::Replica(message);
        transport.send(to, Addressed { topic, partition: METADATA_PARTITION, message });
    });
    let seed = io::random_u64();
    ReplicatedPartition::open(
        shard.disk.clone(),
        directory,
        log_config,
        replica_config,
        seed,
        sender,
        &shard.replica_ticker,
    )
    .await
}

/// Applies committed records as the high watermark moves, and publishes each changed image
/// to every shard. Ends when the controller stops.
async fn apply_committed(shard: Weak<Shard>, inner: Rc<Inner>) {
    // Each round applies what is committed or waits for more; it ends at stop.
    while !inner.stopped.get() {
        let next_offset = inner.image.borrow().next_offset;
        let log = inner.metadata.log().clone();
        if let Err(error) = log.check_usable() {
            // Offline after a storage fault (its replica stopped too): nothing more commits
            // here until a restart re-opens it, and waiting on it would return at once.
            tracing::error!(%error, next_offset, "controller: the metadata log is unusable");
            return;
        }
        if log.high_watermark() <= next_offset {
            let moved = log.wait_for_high_watermark_above(next_offset);
            let stopped = inner.applied_changed.notified();
            futures_util::pin_mut!(moved, stopped);
            futures_util::future::select(moved, stopped).await;
            continue;
        }
        let before = inner.image.borrow().clone();
        if let Err(error) = apply_some(&inner, next_offset).await {
            tracing::error!(%error, next_offset, "controller: cannot read the metadata log");
            io::sleep(Duration::from_millis(APPLY_RETRY_MS)).await;
            continue;
        }
        let image = inner.image.borrow().clone();
        let brokers_changed = image.brokers != before.brokers || image.fenced != before.fenced;
        if image.topics != before.topics || brokers_changed {
            let Some(shard) = shard.upgrade() else { return };
            shard.broadcast_topics(Arc::new(image.snapshot())).await;
        }
        inner.applied_changed.notify_waiters();
    }
}

/// Reads committed batches from `next_offset` and applies their records.
async fn apply_some(inner: &Inner, next_offset: i64) -> Result<(), LogError> {
    let read = inner.metadata.log().read(next_offset, APPLY_READ_BYTES, true).await?;
    let mut position = 0;
    // Each round consumes one batch: bounded by the bytes read.
    while position < read.bytes.len() {
        let info = record_batch::header_info(&read.bytes[position..])
            .map_err(|_| LogError::InvalidBatch { size_bytes: read.bytes.len() - position })?;
        let end = position + info.size_bytes;
        if !info.is_control {
            apply_batch(inner, read.bytes.slice(position..end), info.base_offset);
        }
        inner.image.borrow_mut().next_offset = info.next_offset();
        position = end;
    }
    Ok(())
}

/// Applies one batch's records at or above the image's next offset; a batch whose records
/// do not all apply is remembered as rejected (its earlier records stay applied, as on every
/// broker).
fn apply_batch(inner: &Inner, mut batch: Bytes, base_offset: i64) {
    let set = match kafka_protocol::records::RecordBatchDecoder::decode(&mut batch) {
        Ok(set) => set,
        Err(error) => {
            tracing::error!(%error, base_offset, "controller: undecodable metadata batch skipped");
            return reject(inner, base_offset, error.to_string());
        }
    };
    let next_offset = inner.image.borrow().next_offset;
    for record in set.records.into_iter().filter(|record| record.offset >= next_offset) {
        let decoded = image::decode_record(record.key.as_deref(), record.value.as_deref());
        let outcome = match decoded {
            None => continue,
            Some(Err(error)) => Err(error.to_string()),
            Some(Ok(metadata)) => {
                tracing::info!(offset = record.offset, ?metadata, "controller: applying");
                inner.image.borrow_mut().apply(metadata).map_err(|error| error.to_string())
            }
        };
        if let Err(reason) = outcome {
            tracing::warn!(offset = record.offset, %reason, "controller: metadata record skipped");
            reject(inner, base_offset, reason);
        }
    }
}

fn reject(inner: &Inner, base_offset: i64, reason: String) {
    let mut rejected = inner.rejected.borrow_mut();
    if rejected.len() == REJECTED_REMEMBERED_MAX {
        rejected.pop_front();
    }
    rejected.push_back((base_offset, reason));
}

/// On the leader: registers every broker whose endpoint the image lacks or has changed.
async fn register_brokers(inner: Weak<Inner>) {
    // Each round sleeps an interval: ends when the controller is dropped or stops.
    loop {
        io::sleep(Duration::from_millis(REGISTER_INTERVAL_MS)).await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.stopped.get() {
            return;
        }
        let controller = Controller { inner };
        if !controller.is_leader() || !controller.is_caught_up() {
            controller.inner.fencing.borrow_mut().reset();
            continue;
        }
        let mut records = unregistered(&controller.inner);
        if records.is_empty() {
            records.extend(offsets_topic(&controller.inner));
        }
        if records.is_empty() {
            records = fencing_due(&controller.inner);
        }
        if records.is_empty() {
            continue;
        }
        if let Err(error) = controller.propose(records).await {
            tracing::warn!(%error, "controller: registering brokers failed; will retry");
        }
    }
}

/// The fence and unfence records due now (`fencing.rs`), from what the leader sees of every
/// other registered broker: its peer connection, and how far its metadata log is durable.
fn fencing_due(inner: &Inner) -> Vec<MetadataRecord> {
    let image = inner.image.borrow();
    let high_watermark = inner.metadata.log().high_watermark();
    let others = image.brokers.keys().copied().filter(|node_id| *node_id != inner.node_id);
    let sight = others
        .map(|node_id| {
            let peer = node(node_id);
            let durable = inner.metadata.peer_durable_end_offset(peer);
            let connected = inner.transport.is_connected(peer);
            let caught_up = durable.is_some_and(|end| end >= high_watermark);
            (node_id, PeerSight { connected, caught_up })
        })
        .collect();
    let session_timeout = inner.broker_session_timeout;
    let mut fencing = inner.fencing.borrow_mut();
    fencing.due(&image, inner.node_id, &sight, session_timeout, io::now())
}

fn unregistered(inner: &Inner) -> Vec<MetadataRecord> {
    let image = inner.image.borrow();
    let heard = inner.heard.borrow();
    let own = std::iter::once(&inner.own_endpoint);
    own.chain(heard.endpoints.values())
        .filter(|endpoint| image.brokers.get(&endpoint.node_id) != Some(*endpoint))
        .map(|endpoint| MetadataRecord::RegisterBroker(endpoint.clone()))
        .collect()
}

/// `__consumer_offsets`, once every voter is registered and if it does not exist yet: Kafka
/// creates it at the first FindCoordinator; creating it here, as soon as the brokers are
/// known, spreads its replicas over all of them and needs no forwarding from other brokers.
fn offsets_topic(inner: &Inner) -> Option<MetadataRecord> {
    let image = inner.image.borrow();
    if image.topics.contains_key(groups::OFFSETS_TOPIC) || image.brokers.len() < inner.voter_count {
        return None;
    }
    let brokers: Vec<i32> = image.brokers.keys().copied().collect();
    let factor = brokers.len().min(OFFSETS_TOPIC_REPLICATION_FACTOR_MAX);
    let partitions = groups::OFFSETS_TOPIC_PARTITIONS;
    let replicas = assignment::assign(groups::OFFSETS_TOPIC, &brokers, 0, partitions, factor);
    let id = io::random_uuid();
    let mut topic = groups::offsets_topic(id, replicas);
    // Its first voters are pinned like any topic's (`Shard::publish_registry`).
    topic.pin_directories(&image.brokers);
    Some(MetadataRecord::PutTopic { topic })
}

/// Awaits `notified` unless `deadline` passes first; false on the deadline.
async fn wait_until(
    notified: impl std::future::Future<Output = ()>,
    deadline: io::Instant,
) -> bool {
    with_deadline(notified, deadline).await.is_some()
}

async fn with_deadline<T>(
    work: impl std::future::Future<Output = T>,
    deadline: io::Instant,
) -> Option<T> {
    let remaining = deadline.duration_since(io::now());
    let timer = io::sleep(remaining);
    futures_util::pin_mut!(work, timer);
    match futures_util::future::select(work, timer).await {
        futures_util::future::Either::Left((output, _)) => Some(output),
        futures_util::future::Either::Right(_) => None,
    }
}

fn deadline_after(duration_ms: u64) -> io::Instant {
    let now = io::now();
    now.checked_add(Duration::from_millis(duration_ms)).unwrap_or(now)
}
