//! Broker configuration: what `tern` is told on its command line, with Kafka's defaults.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::groups::CoordinatorConfig;
use crate::log::{FlushPolicy, LogConfig};

/// Kafka's `fetch.max.bytes` default: 55 MiB.
pub const FETCH_MAX_BYTES: usize = 55 * 1024 * 1024;
/// 128 MiB per shard: on this project's 2-core machines, a broker holds at most ~256 MiB of
/// unsent requests and answers, well under the 512 MiB the slow-reader test allows.
pub const MEMORY_BUDGET_BYTES_PER_SHARD: usize = 128 * 1024 * 1024;
/// One large fetch answer (up to a 1 MiB per-partition default across several partitions)
/// passes; a client that lets more pile up is no longer read.
pub const MAX_UNSENT_RESPONSE_BYTES_PER_CONNECTION: usize = 8 * 1024 * 1024;
/// Finite, unlike Kafka's (Int.MaxValue): a file descriptor each, and the soft
/// RLIMIT_NOFILE is raised at start to hold them.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Kafka's default: ten minutes.
pub const CONNECTIONS_MAX_IDLE_MS: u64 = 10 * 60 * 1000;

/// The node id of a new data directory when none is given: 1, as a single Kafka broker is in
/// Kafka's own quick start and in most tooling and client test suites (kafka-go's among them).
pub const DEFAULT_NODE_ID: i32 = 1;

/// Everything a broker needs to start. Built by the `tern` binary from its flags, or by tests.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Address every shard binds (SO_REUSEPORT spreads connections over the shards).
    pub listen: SocketAddr,
    /// host:port that clients are told to connect to (Metadata, DescribeCluster).
    pub advertised_host: String,
    pub advertised_port: u16,
    pub data_dir: PathBuf,
    pub shard_count: usize,
    /// This broker's id; None: the id stored in the data directory, or [`DEFAULT_NODE_ID`] for
    /// a new one.
    pub node_id: Option<i32>,
    /// Accept Kafka's internal, test-only topic configs (`internal.segment.bytes`).
    pub internal_topic_configs: bool,
    /// Create unknown topics when a Metadata request allows it (Kafka's auto.create.topics.enable).
    pub auto_create_topics: bool,
    /// Partition count of auto-created topics and of CreateTopics with num_partitions = -1.
    pub default_partitions: i32,
    /// Frames larger than this close the connection (Kafka's socket.request.max.bytes).
    pub max_request_bytes: usize,
    /// Per-connection bound on requests being processed while their responses are pending.
    /// Pipelining clients (librdkafka allows a million in flight) need it large: every
    /// request waiting here joins the next group commit instead of queueing in the socket.
    pub max_in_flight_requests_per_connection: usize,
    /// Per-connection bound on the bytes of those requests (memory held per connection).
    pub max_in_flight_bytes_per_connection: usize,
    /// Encoded answers a connection may have waiting for its socket before no more of its
    /// requests are read (a client that does not read its answers stops being read).
    pub max_unsent_response_bytes_per_connection: usize,
    /// Each shard's budget for request and response bytes held in memory and not yet sent
    /// (Kafka's `queued.max.request.bytes`, extended to responses): reads pause when it is
    /// spent, and fetches answer with less data.
    pub memory_budget_bytes_per_shard: usize,
    /// Upper bound on a Fetch answer's record bytes, whatever the client asks (Kafka's
    /// `fetch.max.bytes`).
    pub fetch_max_bytes: usize,
    /// A partition's Fetch answer up to this size is read when the request is handled (one
    /// read, within the memory budget); a larger one is read chunk by chunk as the socket
    /// drains (`fetch_regions.rs`). The simulator sets it to 0 on some seeds, so that every
    /// answer takes the streamed path under its faults.
    pub fetch_inline_read_max_bytes: usize,
    /// Client connections the broker accepts at once; more are closed at accept (Kafka's
    /// `max.connections`).
    pub max_connections: usize,
    /// A connection that moves no bytes for this long while waiting on its client is closed
    /// (Kafka's `connections.max.idle.ms`).
    pub connections_max_idle_ms: u64,
    /// Defaults for every partition log; topic configs override some of them.
    pub log: LogConfig,
    /// How often each shard applies retention and age-based segment rolls.
    pub retention_check_interval_ms: u64,
    /// Consumer-group limits and timeouts (session bounds, offsets retention).
    pub groups: CoordinatorConfig,
    /// How often each shard looks for a compacted log to clean (Kafka's
    /// `log.cleaner.backoff.ms`).
    pub log_cleaner_interval_ms: u64,
    /// Set when this broker is one of a cluster; `None` runs the single node of round 1.
    pub cluster: Option<ClusterConfig>,
}

/// How a broker joins its cluster: its peers, and the voters of the metadata Raft group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub node_id: i32,
    /// Where this broker accepts its peers' connections (shard 0 serves them).
    pub peer_listen: SocketAddr,
    /// Every broker of the cluster (this one included) and its peer address: each is a
    /// voter of the controller's metadata log (`--controller-voters`).
    pub voters: BTreeMap<i32, SocketAddr>,
    /// The partitions' and the controller's Raft timing (Kafka's defaults are slower:
    /// tests and the simulator shorten them).
    pub election_timeout_ms: i64,
    pub heartbeat_interval_ms: i64,
    /// A follower that has not reached its leader's log end for this long leaves the
    /// in-sync replicas (Kafka's replica.lag.time.max.ms, 30 s).
    pub replica_lag_time_max_ms: i64,
    /// How often a partition's preferred leader (its first replica), while another replica
    /// leads, asks for the leadership back (Kafka's auto.leader.rebalance.enable with
    /// leader.imbalance.check.interval.seconds). `None`: never. Not for the controller.
    pub leader_rebalance_interval_ms: Option<i64>,
    /// The controller's leader fences a broker it has not reached for this long (Kafka's
    /// broker.session.timeout.ms, 9 s): see `cluster/fencing.rs`.
    pub broker_session_timeout_ms: i64,
    /// Planted bugs, for the simulator only (`tern-sim --plant ack-before-durable`,
    /// `--plant commit-without-majority`, `--plant vote-twice`,
    /// `--plant vote-without-log-check`, `--plant serve-before-own-commit`,
    /// `--plant vote-before-sync`, `--plant wiped-replica-votes`): copied into every replica's
    /// [`ReplicaConfig`](crate::replication::ReplicaConfig), where each is documented. They
    /// prove the simulator's checker sees lost committed data. Never set them.
    pub planted_ack_before_durable: bool,
    pub planted_commit_without_majority: bool,
    pub planted_vote_twice: bool,
    pub planted_vote_without_log_check: bool,
    pub planted_serve_before_own_commit: bool,
    pub planted_vote_before_sync: bool,
    pub planted_wiped_replica_votes: bool,
}

impl ClusterConfig {
    /// The Raft settings of this broker's replica in a group of `voters` (a partition's
    /// replicas, or every broker for the controller).
    pub fn replica_config(
        &self,
        voters: Vec<crate::replication::NodeId>,
    ) -> crate::replication::ReplicaConfig {
        // Node ids were checked to be in 0..CLUSTER_NODE_IDS_MAX when the voters were parsed.
        let node_id = crate::replication::NodeId(self.node_id.unsigned_abs());
        crate::replication::ReplicaConfig {
            election_timeout_ms: self.election_timeout_ms,
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            replica_lag_time_max_ms: self.replica_lag_time_max_ms,
            leader_rebalance_interval_ms: self.leader_rebalance_interval_ms,
            planted_ack_before_durable: self.planted_ack_before_durable,
            planted_commit_without_majority: self.planted_commit_without_majority,
            planted_vote_twice: self.planted_vote_twice,
            planted_vote_without_log_check: self.planted_vote_without_log_check,
            planted_serve_before_own_commit: self.planted_serve_before_own_commit,
            planted_vote_before_sync: self.planted_vote_before_sync,
            planted_wiped_replica_votes: self.planted_wiped_replica_votes,
            ..crate::replication::ReplicaConfig::new(node_id, voters)
        }
    }
}

/// Node ids of a cluster: producer ids are made unique per broker by this many values of
/// their low bits (`producer_ids.rs`), so node ids stay below it.
pub const CLUSTER_NODE_IDS_MAX: i32 = 1024;

/// Why `--controller-voters` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VotersError {
    #[error("voter {0:?} is not of the form id@host:port")]
    Malformed(String),
    #[error("voter id {0} appears twice")]
    Duplicate(i32),
    #[error("node id {0} is outside 0..{CLUSTER_NODE_IDS_MAX}")]
    NodeIdOutOfRange(i32),
    #[error("this broker (node {0}) is not among the controller voters")]
    NotAVoter(i32),
}

/// Parses `1@127.0.0.1:19092,2@127.0.0.1:19093,...` and checks `node_id` is one of them.
pub fn parse_voters(spec: &str, node_id: i32) -> Result<BTreeMap<i32, SocketAddr>, VotersError> {
    let mut voters = BTreeMap::new();
    for entry in spec.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        let malformed = || VotersError::Malformed(entry.to_string());
        let (id, address) = entry.split_once('@').ok_or_else(malformed)?;
        let id: i32 = id.parse().map_err(|_| malformed())?;
        let address: SocketAddr = address.parse().map_err(|_| malformed())?;
        if !(0..CLUSTER_NODE_IDS_MAX).contains(&id) {
            return Err(VotersError::NodeIdOutOfRange(id));
        }
        if voters.insert(id, address).is_some() {
            return Err(VotersError::Duplicate(id));
        }
    }
    if !voters.contains_key(&node_id) {
        return Err(VotersError::NotAVoter(node_id));
    }
    Ok(voters)
}

impl BrokerConfig {
    /// A single-node broker on `listen` with data under `data_dir` and Kafka's defaults.
    pub fn single_node(listen: SocketAddr, data_dir: PathBuf) -> BrokerConfig {
        BrokerConfig {
            listen,
            advertised_host: listen.ip().to_string(),
            advertised_port: listen.port(),
            data_dir,
            shard_count: 1,
            node_id: None,
            internal_topic_configs: false,
            auto_create_topics: true,
            default_partitions: 1,
            max_request_bytes: 100 * 1024 * 1024,
            max_in_flight_requests_per_connection: 512,
            max_in_flight_bytes_per_connection: 64 * 1024 * 1024,
            max_unsent_response_bytes_per_connection: MAX_UNSENT_RESPONSE_BYTES_PER_CONNECTION,
            memory_budget_bytes_per_shard: MEMORY_BUDGET_BYTES_PER_SHARD,
            fetch_max_bytes: FETCH_MAX_BYTES,
            fetch_inline_read_max_bytes: 64 << 10,
            max_connections: MAX_CONNECTIONS,
            connections_max_idle_ms: CONNECTIONS_MAX_IDLE_MS,
            log: LogConfig::default(),
            retention_check_interval_ms: 5 * 60 * 1000,
            groups: CoordinatorConfig::default(),
            log_cleaner_interval_ms: 15 * 1000,
            cluster: None,
        }
    }

    pub fn flush_policy(&self) -> &FlushPolicy {
        &self.log.flush
    }
}
