//! `tern`: a Kafka-compatible broker. With no arguments it serves a single node on
//! 127.0.0.1:9092 with its data under ./tern-data.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tern::broker::{config, Broker, BrokerConfig};
use tern::log::FlushPolicy;

/// Tern: a Kafka-compatible log broker (thread-per-core, io_uring, fdatasync before ack).
#[derive(Parser, Debug)]
#[command(version, about, long_about = None, args_conflicts_with_subcommands = true)]
struct Arguments {
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to accept Kafka clients on. Every shard listens on it (SO_REUSEPORT).
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: SocketAddr,
    /// host:port clients are told to connect to (Metadata). Defaults to --listen.
    #[arg(long)]
    advertise: Option<String>,
    /// Directory holding this broker's topics, partitions and identity. Created if missing.
    #[arg(long, default_value = "./tern-data")]
    data_dir: PathBuf,
    /// Number of shards (threads, one per core, each with its own io_uring). Default: cores.
    #[arg(long)]
    shards: Option<usize>,
    /// Test-only: accept Kafka's internal topic configs (`internal.segment.bytes`, segments
    /// smaller than segment.bytes' 1 MiB minimum).
    #[arg(long, hide = true)]
    internal_topic_configs: bool,
    /// This broker's node id, recorded in the data directory at first start. Default: the id
    /// the data directory records, or 1 for a new one.
    #[arg(long)]
    node_id: Option<i32>,
    /// Pin each shard's thread to its own CPU. Best on cores dedicated to tern; turn it off
    /// when the broker shares a few cores with its clients.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pin_shards: bool,
    /// Log filter when RUST_LOG is unset (error, warn, info, debug, trace, or a filter string).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Create unknown topics named in Metadata requests (Kafka's auto.create.topics.enable).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    auto_create_topics: bool,
    /// Partition count of auto-created topics (Kafka's num.partitions).
    #[arg(long, default_value_t = 1)]
    default_partitions: i32,
    /// Requests larger than this close the connection (Kafka's socket.request.max.bytes).
    #[arg(long, default_value_t = 100 * 1024 * 1024)]
    max_request_bytes: usize,
    /// Upper bound on the record bytes of one Fetch answer, whatever the client asks
    /// (Kafka's fetch.max.bytes).
    #[arg(long, default_value_t = config::FETCH_MAX_BYTES)]
    fetch_max_bytes: usize,
    /// Client connections accepted at once; more are closed at accept (Kafka's
    /// max.connections). The soft open-files limit is raised at start to fit them.
    #[arg(long, default_value_t = config::MAX_CONNECTIONS)]
    max_connections: usize,
    /// Close a connection that moved no bytes for this long (Kafka's connections.max.idle.ms).
    #[arg(long, default_value_t = config::CONNECTIONS_MAX_IDLE_MS)]
    connections_max_idle_ms: u64,
    /// Each shard's budget for request and response bytes held and not yet sent: past it,
    /// sockets are not read and fetches answer with less data.
    #[arg(long, default_value_t = config::MEMORY_BUDGET_BYTES_PER_SHARD)]
    memory_budget_bytes_per_shard: usize,
    /// Answers a connection may leave unread before its requests stop being read.
    #[arg(long, default_value_t = config::MAX_UNSENT_RESPONSE_BYTES_PER_CONNECTION)]
    max_unsent_response_bytes_per_connection: usize,
    /// Relax durability: acknowledge after the write and fdatasync at most every N ms.
    /// Without it (the default) every acknowledged record has been fdatasync'd.
    #[arg(long)]
    flush_interval_ms: Option<u64>,
    /// Roll a new segment file when the active one reaches this size (Kafka's log.segment.bytes).
    #[arg(long, default_value_t = 1024 * 1024 * 1024)]
    segment_bytes: u64,
    /// Delete whole segments older than this; -1 keeps them forever (log.retention.ms).
    #[arg(long, default_value_t = 7 * 24 * 3600 * 1000)]
    retention_ms: i64,
    /// Delete oldest segments while a partition is larger than this; -1: no limit.
    #[arg(long, default_value_t = -1)]
    retention_bytes: i64,
    /// Smallest session.timeout.ms a group member may ask for (group.min.session.timeout.ms).
    #[arg(long, default_value_t = 6000)]
    group_min_session_timeout_ms: i32,
    /// How long the first rebalance of a new group waits for more members
    /// (group.initial.rebalance.delay.ms).
    #[arg(long, default_value_t = 3000)]
    group_initial_rebalance_delay_ms: i32,
    /// Committed offsets of a group expire this long after it became empty
    /// (offsets.retention.minutes).
    #[arg(long, default_value_t = 7 * 24 * 60)]
    offsets_retention_minutes: i64,
    /// How often each shard looks for a compacted topic's partition to clean
    /// (Kafka's log.cleaner.backoff.ms).
    #[arg(long, default_value_t = 15_000)]
    log_cleaner_interval_ms: u64,
    /// How often each shard applies retention and age-based rolls to its partitions
    /// (Kafka's log.retention.check.interval.ms).
    #[arg(long, default_value_t = 300_000)]
    retention_check_interval_ms: u64,
    /// Join a cluster: every broker of it as id@host:port of its --peer-listen address, this
    /// one included (each is a voter of the controller's metadata log). Needs --node-id and
    /// --peer-listen. Without it, tern is the single node it always was.
    #[arg(long, requires_all = ["node_id", "peer_listen"])]
    controller_voters: Option<String>,
    /// Address this broker accepts its peers' replication connections on (a cluster only).
    #[arg(long, requires = "controller_voters")]
    peer_listen: Option<SocketAddr>,
    /// Raft election timeout of partitions and the controller: a follower that hears no
    /// leader for a random time in [t, 2t) starts an election.
    #[arg(long, default_value_t = 1000)]
    election_timeout_ms: i64,
    /// How often a Raft leader heartbeats its followers (well below the election timeout).
    #[arg(long, default_value_t = 100)]
    heartbeat_interval_ms: i64,
    /// A follower that has not caught up with its leader for this long leaves the in-sync
    /// replicas (Kafka's replica.lag.time.max.ms): it then counts for no min.insync.replicas.
    #[arg(long, default_value_t = 30_000)]
    replica_lag_time_max_ms: i64,
    /// How often a partition's preferred leader (its first replica) asks for the leadership
    /// back while another replica leads, as Kafka's auto.leader.rebalance.enable does every
    /// leader.imbalance.check.interval.seconds (300 s). 0 turns it off.
    #[arg(long, default_value_t = 300_000)]
    leader_rebalance_interval_ms: i64,
    /// The controller fences a broker it has not reached for this long (Kafka's
    /// broker.session.timeout.ms): Metadata stops listing it and new partitions are not
    /// placed on it, until it is back and has caught up with the metadata log.
    #[arg(long, default_value_t = 9_000)]
    broker_session_timeout_ms: i64,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Starts a local cluster for trying it out: N `tern` processes on 127.0.0.1 (Kafka ports
    /// from --base-port, peer ports from --base-port + 10000), data under --data-dir/node-N.
    /// Ctrl-C stops them all.
    DevCluster {
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        #[arg(long, default_value_t = 9092)]
        base_port: u16,
        #[arg(long, default_value = "./tern-cluster")]
        data_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let arguments = Arguments::parse();
    if let Some(Command::DevCluster { nodes, base_port, data_dir }) = &arguments.command {
        return dev_cluster(*nodes, *base_port, data_dir);
    }
    init_tracing(&arguments.log_level);
    let config = match build_config(&arguments) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("tern: {message}");
            return ExitCode::from(2);
        }
    };
    tern::io::set_pin_shards(arguments.pin_shards);
    raise_open_files_limit(config.max_connections);
    block_shutdown_signals();
    let broker = match Broker::prepare(config.clone()) {
        Ok(broker) => broker,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        listen = %config.listen, data_dir = %config.data_dir.display(), shards = config.shard_count,
        cluster_id = broker.cluster_id(), "tern starting"
    );
    let shutdown = broker.shutdown_handle();
    std::thread::Builder::new()
        .name("tern-signals".into())
        .spawn(move || wait_for_signals(shutdown))
        .expect("spawn the signal thread");
    match broker.run() {
        Ok(()) => {
            tracing::info!("tern stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "tern failed");
            ExitCode::FAILURE
        }
    }
}

/// `tern dev-cluster`: the brokers as child processes of this one, stopped together.
fn dev_cluster(nodes: u16, base_port: u16, data_dir: &std::path::Path) -> ExitCode {
    let peer_base = base_port.checked_add(10_000);
    let fits = peer_base.and_then(|peer| peer.checked_add(nodes));
    if nodes == 0 || nodes > 9 || fits.is_none() {
        eprintln!("tern dev-cluster: --nodes must be 1..=9 and the ports must fit below 65536");
        return ExitCode::from(2);
    }
    let peer_base = peer_base.unwrap_or_default();
    let voters: Vec<String> =
        (1..=nodes).map(|id| format!("{id}@127.0.0.1:{}", peer_base + id - 1)).collect();
    let Ok(executable) = std::env::current_exe() else {
        eprintln!("tern dev-cluster: cannot find the tern executable");
        return ExitCode::FAILURE;
    };
    let mut children = Vec::new();
    for id in 1..=nodes {
        let node_dir = data_dir.join(format!("node-{id}"));
        let spawned = std::process::Command::new(&executable)
            .args(["--node-id", &id.to_string()])
            .args(["--listen", &format!("127.0.0.1:{}", base_port + id - 1)])
            .args(["--peer-listen", &format!("127.0.0.1:{}", peer_base + id - 1)])
            .args(["--controller-voters", &voters.join(",")])
            .args(["--shards", "1", "--pin-shards", "false"])
            .arg("--data-dir")
            .arg(&node_dir)
            .spawn();
        match spawned {
            Ok(child) => children.push(child),
            Err(error) => eprintln!("tern dev-cluster: cannot start node {id}: {error}"),
        }
    }
    let bootstrap: Vec<String> =
        (1..=nodes).map(|id| format!("127.0.0.1:{}", base_port + id - 1)).collect();
    eprintln!("tern dev-cluster: {nodes} brokers; bootstrap {}", bootstrap.join(","));
    block_shutdown_signals();
    wait_for_one_signal();
    for child in &children {
        // SAFETY: kill(2) on our own children's pids.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    }
    for mut child in children {
        let _ = child.wait();
    }
    ExitCode::SUCCESS
}

fn wait_for_one_signal() {
    let mut signal: libc::c_int = 0;
    // SAFETY: as in `wait_for_signals`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigwait(&set, &mut signal);
    }
}

fn build_config(arguments: &Arguments) -> Result<BrokerConfig, String> {
    let mut config = BrokerConfig::single_node(arguments.listen, arguments.data_dir.clone());
    if let Some(advertise) = &arguments.advertise {
        let (host, port) = advertise
            .rsplit_once(':')
            .ok_or_else(|| format!("--advertise {advertise}: expected host:port"))?;
        config.advertised_host = host.to_string();
        config.advertised_port =
            port.parse().map_err(|_| format!("--advertise {advertise}: bad port"))?;
    } else if arguments.listen.ip().is_unspecified() {
        config.advertised_host = "localhost".into();
    }
    config.shard_count = arguments
        .shards
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    if config.shard_count == 0 || config.shard_count > 1024 {
        return Err("--shards must be between 1 and 1024".into());
    }
    if arguments.default_partitions <= 0 {
        return Err("--default-partitions must be positive".into());
    }
    config.node_id = arguments.node_id;
    config.internal_topic_configs = arguments.internal_topic_configs;
    config.auto_create_topics = arguments.auto_create_topics;
    config.default_partitions = arguments.default_partitions;
    config.max_request_bytes = arguments.max_request_bytes;
    connection_limits(arguments, &mut config)?;
    config.log.segment_size_bytes = arguments.segment_bytes;
    config.log.retention_age_ms = arguments.retention_ms;
    config.log.retention_size_bytes = arguments.retention_bytes;
    if arguments.log_cleaner_interval_ms == 0 {
        return Err("--log-cleaner-interval-ms must be positive".into());
    }
    config.log_cleaner_interval_ms = arguments.log_cleaner_interval_ms;
    if arguments.retention_check_interval_ms == 0 {
        return Err("--retention-check-interval-ms must be positive".into());
    }
    config.retention_check_interval_ms = arguments.retention_check_interval_ms;
    if let Some(interval_ms) = arguments.flush_interval_ms {
        config.log.flush = FlushPolicy::IntervalMs(interval_ms);
    }
    let groups = &mut config.groups;
    if arguments.group_min_session_timeout_ms <= 0
        || arguments.group_min_session_timeout_ms > groups.max_session_timeout_ms
    {
        return Err("--group-min-session-timeout-ms must be in 1..=1800000".into());
    }
    groups.min_session_timeout_ms = arguments.group_min_session_timeout_ms;
    if arguments.group_initial_rebalance_delay_ms < 0 {
        return Err("--group-initial-rebalance-delay-ms must not be negative".into());
    }
    groups.initial_rebalance_delay_ms = arguments.group_initial_rebalance_delay_ms;
    if arguments.offsets_retention_minutes <= 0 {
        return Err("--offsets-retention-minutes must be positive".into());
    }
    groups.offsets_retention_ms = arguments.offsets_retention_minutes * 60 * 1000;
    config.cluster = cluster_config(arguments)?;
    Ok(config)
}

fn cluster_config(arguments: &Arguments) -> Result<Option<config::ClusterConfig>, String> {
    let (Some(spec), Some(peer_listen), Some(node_id)) =
        (&arguments.controller_voters, arguments.peer_listen, arguments.node_id)
    else {
        return Ok(None);
    };
    let voters = config::parse_voters(spec, node_id)
        .map_err(|error| format!("--controller-voters {spec}: {error}"))?;
    let (election_timeout_ms, heartbeat_interval_ms) =
        (arguments.election_timeout_ms, arguments.heartbeat_interval_ms);
    if heartbeat_interval_ms <= 0 || election_timeout_ms < 2 * heartbeat_interval_ms {
        return Err("--election-timeout-ms must be at least twice a positive \
                    --heartbeat-interval-ms"
            .into());
    }
    if arguments.replica_lag_time_max_ms <= 0 {
        return Err("--replica-lag-time-max-ms must be positive".into());
    }
    if arguments.leader_rebalance_interval_ms < 0 {
        return Err("--leader-rebalance-interval-ms must be 0 (off) or positive".into());
    }
    let leader_rebalance_interval_ms =
        Some(arguments.leader_rebalance_interval_ms).filter(|interval_ms| *interval_ms > 0);
    if arguments.broker_session_timeout_ms < election_timeout_ms {
        return Err("--broker-session-timeout-ms must be at least --election-timeout-ms".into());
    }
    Ok(Some(config::ClusterConfig {
        node_id,
        peer_listen,
        voters,
        election_timeout_ms,
        heartbeat_interval_ms,
        replica_lag_time_max_ms: arguments.replica_lag_time_max_ms,
        leader_rebalance_interval_ms,
        broker_session_timeout_ms: arguments.broker_session_timeout_ms,
        planted_ack_before_durable: false,
        planted_commit_without_majority: false,
        planted_vote_twice: false,
        planted_vote_without_log_check: false,
        planted_serve_before_own_commit: false,
        planted_vote_before_sync: false,
        planted_wiped_replica_votes: false,
    }))
}

fn connection_limits(arguments: &Arguments, config: &mut BrokerConfig) -> Result<(), String> {
    if arguments.fetch_max_bytes == 0 {
        return Err("--fetch-max-bytes must be positive".into());
    }
    if arguments.max_connections == 0 {
        return Err("--max-connections must be positive".into());
    }
    if arguments.connections_max_idle_ms == 0 {
        return Err("--connections-max-idle-ms must be positive".into());
    }
    if arguments.memory_budget_bytes_per_shard < 1024 * 1024 {
        return Err("--memory-budget-bytes-per-shard must be at least 1 MiB".into());
    }
    config.fetch_max_bytes = arguments.fetch_max_bytes;
    config.max_connections = arguments.max_connections;
    config.connections_max_idle_ms = arguments.connections_max_idle_ms;
    config.memory_budget_bytes_per_shard = arguments.memory_budget_bytes_per_shard;
    config.max_unsent_response_bytes_per_connection =
        arguments.max_unsent_response_bytes_per_connection;
    Ok(())
}

/// Raises the soft open-files limit to the hard one: every connection, segment and index is a
/// descriptor, and the common soft default (1024) would refuse clients long before
/// `--max-connections`. Says so when even the hard limit is too low.
fn raise_open_files_limit(max_connections: usize) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    let raised = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        let wanted = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0
    };
    let open_files_max = if raised { limit.rlim_max } else { limit.rlim_cur };
    tracing::info!(open_files_max, "open-files limit");
    // Room for the connections plus segments, indexes and the process's own files.
    let needed = (max_connections as u64).saturating_add(1024);
    if open_files_max < needed {
        tracing::warn!(
            open_files_max,
            max_connections,
            "the open-files limit is below --max-connections plus room for logs: \
             connections will be refused with EMFILE first (raise `ulimit -n`)"
        );
    }
}

fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

/// SIGINT and SIGTERM are blocked in every thread (the shards inherit the mask) and taken by
/// one thread with sigwait, so a signal never interrupts a shard mid-operation.
fn block_shutdown_signals() {
    // SAFETY: plain libc signal-mask calls on a zeroed, then initialised, sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn wait_for_signals(shutdown: tern::broker::ShutdownHandle) {
    let mut received = 0;
    loop {
        let mut signal: libc::c_int = 0;
        // SAFETY: as above; sigwait only writes the signal number.
        let result = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigwait(&set, &mut signal)
        };
        if result != 0 {
            continue;
        }
        received += 1;
        if received == 1 {
            tracing::info!(signal, "shutting down: flushing and closing partitions");
            shutdown.shutdown();
        } else {
            tracing::warn!(signal, "second signal: exiting without a clean shutdown");
            std::process::exit(130);
        }
    }
}
