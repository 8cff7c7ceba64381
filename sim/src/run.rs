//! Runs one (scenario, seed): builds the madsim runtime with per-node disks, starts the broker
//! node (or a cluster's 3 or 5 broker nodes, broker `i` at 10.0.0.`i`, every one a voter of
//! the controller) and the client nodes, lets the nemesis strike, heals, probes liveness,
//! drains, checks.
//!
//! Shared state of a run lives in a thread-local [`RunState`]: a simulation runs on one thread,
//! and madsim's node `init` closures must be `Send + Sync`, which an `Rc` is not.

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use madsim::runtime::{Handle, Runtime};
use madsim::task::NodeId;
use tern::broker::config::ClusterConfig;
use tern::broker::{Broker, BrokerConfig, ShutdownHandle};
use tern::io::{Disk, SimDisk};
use tern::log::FlushPolicy;
use tracing_subscriber::layer::SubscriberExt;

use crate::checker::{
    self, CorruptionFault, LeaderObservation, Observations, Report, WatermarkObservation,
};
use crate::history::{History, Op, Partition};
use crate::plan::{Plan, Plant, Scenario};
use crate::trace::{self, Trace, TraceLayer};
use crate::{nemesis, workload};

pub const TOPIC: &str = "jepsen";
pub const DATA_DIR: &str = "/data";
pub const BROKER_PORT: u16 = 9092;
/// Simulated time allowed after healing for every partition to accept a write (liveness).
pub const LIVENESS_BOUND_MS: u64 = 10_000;
/// Simulated time the final drain may take before the run is declared stuck.
pub const DRAIN_BOUND_MS: u64 = 60_000;
/// Whole-run bound in simulated time: a run past it is a hang, reported as a failure.
const RUN_BOUND_S: u64 = 600;

/// Where brokers accept their peers (a cluster only).
pub const PEER_PORT: u16 = 19092;
/// A cluster's brokers may take this much longer than a single node to accept a write after
/// healing: an election (pre-vote, vote) per partition and for the controller, each up to
/// twice the election timeout, after a partition healed or a broker restarted.
pub const CLUSTER_LIVENESS_BOUND_MS: u64 = 15_000;

/// The single broker of the older scenarios, and broker 1 of a cluster.
pub fn broker_ip() -> IpAddr {
    broker_ip_of(1)
}

pub fn broker_address() -> SocketAddr {
    broker_address_of(1)
}

/// Broker `id` (1-based, its node id in a cluster) lives at 10.0.0.`id`.
pub fn broker_ip_of(id: i32) -> IpAddr {
    let last = u8::try_from(id).ok().filter(|last| *last >= 1).expect("broker ids are 1..=254");
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

pub fn broker_address_of(id: i32) -> SocketAddr {
    SocketAddr::new(broker_ip_of(id), BROKER_PORT)
}

fn peer_address_of(id: i32) -> SocketAddr {
    SocketAddr::new(broker_ip_of(id), PEER_PORT)
}

thread_local! {
    /// madsim node of each broker, in broker id order (broker 1 first).
    static BROKER_NODES: RefCell<Vec<NodeId>> = const { RefCell::new(Vec::new()) };
}

/// madsim node of each broker, in broker id order (broker `i + 1` at index `i`).
pub fn broker_nodes() -> Vec<NodeId> {
    BROKER_NODES.with(|nodes| nodes.borrow().clone())
}

thread_local! {
    /// Each running broker's shutdown handle (its SIGTERM), by broker id; removed when its
    /// `serve` returns.
    static SHUTDOWN_HANDLES: RefCell<std::collections::BTreeMap<i32, ShutdownHandle>> =
        const { RefCell::new(std::collections::BTreeMap::new()) };
}

/// Asks broker `broker` to shut down as SIGTERM does (a controlled shutdown); false if it
/// is not serving.
pub fn request_shutdown(broker: i32) -> bool {
    let handle = SHUTDOWN_HANDLES.with(|handles| handles.borrow().get(&broker).cloned());
    handle.map(|handle| handle.shutdown()).is_some()
}

/// Whether broker `broker` is serving (started, and not shut down).
pub fn is_serving(broker: i32) -> bool {
    SHUTDOWN_HANDLES.with(|handles| handles.borrow().contains_key(&broker))
}

/// State shared by the supervisor and every client task of one run.
pub struct RunState {
    pub plan: Plan,
    pub history: RefCell<History>,
    pub stop_producing: Cell<bool>,
    pub stop_consuming: Cell<bool>,
    /// Bumped by the nemesis: clients drop their connection when they see a new value.
    pub reset_epoch: Cell<u64>,
    /// Acknowledged sends' latency, invoke to ok.
    pub produce_latencies_ns: RefCell<Vec<u64>>,
    pub harness_anomalies: RefCell<Vec<(&'static str, String)>>,
    pub corruptions: RefCell<Vec<CorruptionFault>>,
    /// Client tasks still running (producers and consumers).
    pub clients_running: Cell<u32>,
    pub drain_done: Cell<bool>,
    /// Idempotent producers: attempts after the first, and local epoch bumps.
    pub produce_retries: Cell<u64>,
    pub epoch_bumps: Cell<u64>,
    /// Every partition leader a Metadata answer named, and every high watermark a fetch or
    /// ListOffsets answer reported (the checker's cluster properties).
    pub leaders_seen: RefCell<Vec<LeaderObservation>>,
    pub watermarks_seen: RefCell<Vec<WatermarkObservation>>,
    /// Metadata requests clients made (a cluster's clients refresh leaders with them).
    pub metadata_requests: Cell<u64>,
    /// Hands out the sequence numbers that order observations in real time.
    pub sequence: Cell<u64>,
}

thread_local! {
    static RUN: RefCell<Option<Rc<RunState>>> = const { RefCell::new(None) };
}

/// The current run's state (clients and supervisor call this).
pub fn run_state() -> Rc<RunState> {
    RUN.with(|run| run.borrow().clone()).expect("inside a run")
}

/// Simulated nanoseconds since the runtime started.
pub fn now_ns() -> u64 {
    madsim::time::TimeHandle::try_current().map_or(0, |time| time.elapsed().as_nanos() as u64)
}

impl RunState {
    fn new(plan: Plan) -> RunState {
        RunState {
            plan,
            history: RefCell::new(History::default()),
            stop_producing: Cell::new(false),
            stop_consuming: Cell::new(false),
            reset_epoch: Cell::new(0),
            produce_latencies_ns: RefCell::new(Vec::new()),
            harness_anomalies: RefCell::new(Vec::new()),
            corruptions: RefCell::new(Vec::new()),
            clients_running: Cell::new(0),
            drain_done: Cell::new(false),
            produce_retries: Cell::new(0),
            epoch_bumps: Cell::new(0),
            leaders_seen: RefCell::new(Vec::new()),
            watermarks_seen: RefCell::new(Vec::new()),
            metadata_requests: Cell::new(0),
            sequence: Cell::new(0),
        }
    }

    pub fn record(&self, op: Op) {
        trace::record("op", op.describe().as_bytes());
        self.history.borrow_mut().push(op);
    }

    /// A Metadata answer named `leader` for `partition` in `epoch`; the nemesis aims its
    /// leader faults at the latest such leader.
    pub fn saw_leader(&self, observation: LeaderObservation) {
        self.leaders_seen.borrow_mut().push(observation);
    }

    /// The leader of `partition` in the highest epoch any Metadata answer named.
    pub fn latest_leader(&self, partition: Partition) -> Option<i32> {
        let seen = self.leaders_seen.borrow();
        let of_partition = seen.iter().filter(|seen| seen.partition == partition);
        of_partition.max_by_key(|seen| (seen.epoch, seen.time_ns)).map(|seen| seen.leader)
    }

    /// The next number of a total order of the simulation's events (it runs on one thread):
    /// taken when a request is sent and when its answer arrives.
    pub fn next_sequence(&self) -> u64 {
        self.sequence.set(self.sequence.get() + 1);
        self.sequence.get()
    }

    pub fn saw_watermark(&self, observation: WatermarkObservation) {
        self.watermarks_seen.borrow_mut().push(observation);
    }

    pub fn flag(&self, property: &'static str, example: String) {
        tracing::error!(property, %example, "harness anomaly");
        self.harness_anomalies.borrow_mut().push((property, example));
    }
}

/// Everything one seed produced.
#[derive(Debug)]
pub struct SeedOutcome {
    pub scenario: Scenario,
    pub seed: u64,
    pub plan: Plan,
    pub report: Report,
    pub trace: Trace,
    pub committed_per_second: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub history: History,
    pub simulated_ms: u64,
    pub produce_retries: u64,
    pub epoch_bumps: u64,
    /// A cluster's: distinct (partition, leader epoch) pairs Metadata answers named, high
    /// watermarks observed, Metadata requests made.
    pub leader_epochs_seen: usize,
    pub watermarks_seen: usize,
    pub metadata_requests: u64,
}

impl SeedOutcome {
    pub fn failed(&self) -> bool {
        !self.report.is_valid()
    }

    /// The one line per seed that scripts read (the newer scenarios add their own counts).
    pub fn line(&self) -> String {
        let mut line = self.common_line();
        if self.plan.idempotent {
            line += &format!(" retries={} epoch-bumps={}", self.produce_retries, self.epoch_bumps);
        }
        if self.plan.is_cluster() {
            line += &format!(
                " brokers={} leader-epochs={} watermarks={} metadata={}",
                self.plan.brokers,
                self.leader_epochs_seen,
                self.watermarks_seen,
                self.metadata_requests
            );
        }
        if self.plan.committers > 0 {
            let report = &self.report;
            line += &format!(
                " offsets-committed={} offsets-fetched={}",
                report.offsets_committed, report.offsets_fetched
            );
        }
        line
    }

    fn common_line(&self) -> String {
        format!(
            "seed={} scenario={} acked={} anomalies={} [{}] detected-loss={}+{} faults={} \
             ({}) committed/s={:.0} p50={:.1}ms p99={:.1}ms sim={:.1}s trace-hash={:016x}",
            self.seed,
            self.scenario.name(),
            self.report.acknowledged,
            self.report.anomaly_count(),
            self.report.summary(),
            self.report.detected_loss,
            self.report.detected_loss_blocked,
            self.trace.fault_counts.values().sum::<u64>(),
            self.plan.faults_summary(),
            self.committed_per_second,
            self.latency_p50_ms,
            self.latency_p99_ms,
            self.simulated_ms as f64 / 1000.0,
            self.trace.hash,
        )
    }

    pub fn replay_command(&self) -> String {
        let plant =
            self.plan.plant.map(|plant| format!(" --plant {}", plant.name())).unwrap_or_default();
        format!(
            "RUSTFLAGS=\"--cfg madsim\" cargo run --release -p tern-sim --target-dir target/sim -- \
             run --scenario {} --seeds 1 --seed {}{plant} --verbose",
            self.scenario.name(),
            self.seed
        )
    }
}

/// Runs `scenario` with `seed` in a fresh simulation on this thread.
pub fn run_seed(scenario: Scenario, seed: u64, plant: Option<Plant>) -> SeedOutcome {
    run_seed_with(scenario, seed, plant, false)
}

/// [`run_seed`], keeping every hashed trace item in `trace.dump` if `dump_trace`.
pub fn run_seed_with(
    scenario: Scenario,
    seed: u64,
    plant: Option<Plant>,
    dump_trace: bool,
) -> SeedOutcome {
    run_plan(Plan::new(scenario, seed, plant), dump_trace)
}

/// Runs `plan` (a seed's, or a fuzzer's schedule) in a fresh simulation on this thread.
pub fn run_plan(plan: Plan, dump_trace: bool) -> SeedOutcome {
    warm_up_process_state();
    let (scenario, seed) = (plan.scenario, plan.seed);
    let state = Rc::new(RunState::new(plan.clone()));
    RUN.with(|run| *run.borrow_mut() = Some(state.clone()));
    trace::begin(dump_trace);
    // The subscriber must be in place before the runtime exists: madsim opens a span per node
    // as it creates the node, and a span opened under another subscriber is unknown to this one.
    let subscriber = tracing_subscriber::registry().with(TraceLayer { now_ns });
    let simulated_ms = tracing::subscriber::with_default(subscriber, || {
        let runtime = new_runtime(seed);
        let simulated_ms = runtime.block_on(supervise(plan.clone()));
        // Inside the subscriber: dropping the runtime closes the spans madsim opened in it.
        drop(runtime);
        simulated_ms
    });
    let trace = trace::finish();
    RUN.with(|run| *run.borrow_mut() = None);
    let history = std::mem::take(&mut *state.history.borrow_mut());
    let observations = Observations {
        corruptions: state.corruptions.borrow().clone(),
        harness_anomalies: state.harness_anomalies.borrow().clone(),
        leaders: std::mem::take(&mut *state.leaders_seen.borrow_mut()),
        watermarks: std::mem::take(&mut *state.watermarks_seen.borrow_mut()),
    };
    let report = checker::check(&history, &observations);
    let mut leader_epochs: Vec<(Partition, i32)> =
        observations.leaders.iter().map(|seen| (seen.partition, seen.epoch)).collect();
    leader_epochs.sort_unstable();
    leader_epochs.dedup();
    let mut latencies = std::mem::take(&mut *state.produce_latencies_ns.borrow_mut());
    latencies.sort_unstable();
    let percentile_ms = |fraction: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = ((latencies.len() - 1) as f64 * fraction).round() as usize;
        latencies[index] as f64 / 1e6
    };
    SeedOutcome {
        scenario,
        seed,
        committed_per_second: report.acknowledged as f64 / (plan.workload_ms as f64 / 1000.0),
        latency_p50_ms: percentile_ms(0.50),
        latency_p99_ms: percentile_ms(0.99),
        history,
        plan,
        report,
        trace,
        simulated_ms,
        produce_retries: state.produce_retries.get(),
        epoch_bumps: state.epoch_bumps.get(),
        leader_epochs_seen: leader_epochs.len(),
        watermarks_seen: observations.watermarks.len(),
        metadata_requests: state.metadata_requests.get(),
    }
}

/// Initialises, outside any simulation, the lazy per-thread state that would otherwise be
/// initialised inside the first run of a process only: std's `HashMap` keys come from
/// `getrandom`, which madsim answers from the simulation's generator, so the first run would
/// draw one number more than every later run and a replayed seed would not match its batch run.
fn warm_up_process_state() {
    drop(std::collections::hash_map::RandomState::new());
}

fn new_runtime(seed: u64) -> Runtime {
    let mut config = madsim::Config::default();
    // madsim's default 1-10 ms link latency, stated: the network scenario changes it at run time.
    config.net.send_latency = Duration::from_millis(1)..Duration::from_millis(10);
    let mut runtime = Runtime::with_seed_and_config(seed, config);
    SimDisk::install_node_disks(&runtime);
    runtime.set_time_limit(Duration::from_secs(RUN_BOUND_S));
    runtime
}

/// The supervisor: node 0's task. Returns the simulated milliseconds the run took.
async fn supervise(plan: Plan) -> u64 {
    let handle = Handle::current();
    let brokers = start_brokers(&handle, &plan);
    workload::start_clients(&handle, &plan);
    let state = run_state();
    madsim::time::sleep(Duration::from_millis(plan.fault_start_ms)).await;
    let fault_window = Duration::from_millis(plan.fault_end_ms - plan.fault_start_ms);
    nemesis::run(&handle, &brokers, &plan, fault_window).await;
    nemesis::heal(&handle, &brokers, &plan).await;
    let elapsed_ms = now_ns() / 1_000_000;
    if elapsed_ms < plan.workload_ms {
        madsim::time::sleep(Duration::from_millis(plan.workload_ms - elapsed_ms)).await;
    }
    state.stop_producing.set(true);
    // Consumers keep polling a little so they see the producers' last writes.
    madsim::time::sleep(Duration::from_millis(500)).await;
    state.stop_consuming.set(true);
    wait_until(|| state.clients_running.get() == 0, 30_000).await;
    workload::start_final_checks(&handle);
    let drained =
        wait_until(|| state.drain_done.get(), liveness_bound_ms(&plan) * 2 + DRAIN_BOUND_MS).await;
    if !drained {
        state.flag("drain-incomplete", "the final drain did not finish in time".into());
    }
    let simulated_ms = now_ns() / 1_000_000;
    tear_down(&handle, &brokers).await;
    simulated_ms
}

/// Simulated time allowed after healing for every partition to accept a write.
pub fn liveness_bound_ms(plan: &Plan) -> u64 {
    if plan.is_cluster() {
        CLUSTER_LIVENESS_BOUND_MS
    } else {
        LIVENESS_BOUND_MS
    }
}

/// Kills every node and lets the executor drop their tasks. madsim does not drop the tasks of
/// a runtime that is dropped while they are pending, so without this every seed leaked its
/// broker, its disk images and its clients (~3 MB a seed: 10,000 seeds ran out of memory).
/// The trace stops first: tearing down is not part of the run.
async fn tear_down(handle: &Handle, brokers: &[NodeId]) {
    trace::pause();
    for broker in brokers {
        SimDisk::spare_disk_at_next_kill(*broker, run_state().plan.seed);
        handle.kill(*broker);
    }
    for client in workload::client_nodes() {
        handle.kill(client);
    }
    madsim::time::sleep(Duration::from_millis(1)).await;
}

/// Polls `condition` every 10 ms of simulated time, at most `bound_ms`.
async fn wait_until(condition: impl Fn() -> bool, bound_ms: u64) -> bool {
    for _ in 0..bound_ms / 10 {
        if condition() {
            return true;
        }
        madsim::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

fn broker_config(plan: &Plan, broker: i32) -> BrokerConfig {
    let mut config = BrokerConfig::single_node(broker_address_of(broker), DATA_DIR.into());
    config.shard_count = 2;
    config.auto_create_topics = false;
    // Small segments, so rolls, several segments and checkpoints happen within seconds.
    config.log.segment_size_bytes = 64 << 10;
    // Half the seeds read every fetch answer as it is sent, chunk by chunk, under the faults.
    if plan.seed.is_multiple_of(2) {
        config.fetch_inline_read_max_bytes = 0;
    }
    match plan.plant {
        Some(Plant::AckBeforeSync) => config.log.flush = FlushPolicy::IntervalMs(500),
        Some(Plant::NoDedup) => config.log.planted_no_duplicate_detection = true,
        Some(Plant::ServeAboveHighWatermark) => {
            config.log.planted_serve_above_high_watermark = true
        }
        Some(Plant::CommitBeforeSync) => config.groups.planted_commit_before_sync = true,
        Some(Plant::NoProducerStateOnFollower) => {
            config.log.planted_no_producer_state_on_follower = true
        }
        _ => {}
    }
    if plan.is_cluster() {
        config.node_id = Some(broker);
        config.cluster = Some(cluster_config(plan, broker));
    }
    config
}

/// Broker `broker`'s place in the cluster: every broker is a voter of the controller.
fn cluster_config(plan: &Plan, broker: i32) -> ClusterConfig {
    let brokers = i32::try_from(plan.brokers).expect("a few brokers");
    let voters = (1..=brokers).map(|id| (id, peer_address_of(id))).collect();
    let mut cluster = ClusterConfig {
        node_id: broker,
        peer_listen: peer_address_of(broker),
        voters,
        election_timeout_ms: plan.election_timeout_ms as i64,
        heartbeat_interval_ms: plan.heartbeat_interval_ms as i64,
        // Kafka's 30 s: longer than a run's faults, so the in-sync replicas stay a majority
        // (min.insync.replicas is not exercised here).
        replica_lag_time_max_ms: 30_000,
        // Often enough that preferred leaders take their partitions back within a run.
        leader_rebalance_interval_ms: Some(2_000),
        // Kafka's ratio of session timeout to election timeout (9 s to 1 s, rounded down).
        broker_session_timeout_ms: 4 * plan.election_timeout_ms as i64,
        planted_ack_before_durable: false,
        planted_commit_without_majority: false,
        planted_vote_twice: false,
        planted_vote_without_log_check: false,
        planted_serve_before_own_commit: false,
        planted_vote_before_sync: false,
        planted_wiped_replica_votes: false,
    };
    match plan.plant {
        Some(Plant::AckBeforeDurable) => cluster.planted_ack_before_durable = true,
        Some(Plant::CommitWithoutMajority) => cluster.planted_commit_without_majority = true,
        Some(Plant::VoteTwice) => cluster.planted_vote_twice = true,
        Some(Plant::VoteWithoutLogCheck) => cluster.planted_vote_without_log_check = true,
        Some(Plant::ServeBeforeOwnCommit) => cluster.planted_serve_before_own_commit = true,
        Some(Plant::VoteBeforeSync) => cluster.planted_vote_before_sync = true,
        Some(Plant::WipedReplicaVotes) => cluster.planted_wiped_replica_votes = true,
        _ => {}
    }
    cluster
}

/// Starts every broker node (broker 1 first): a single node, or a cluster's brokers.
fn start_brokers(handle: &Handle, plan: &Plan) -> Vec<NodeId> {
    let brokers = i32::try_from(plan.brokers).expect("a few brokers");
    let nodes: Vec<NodeId> =
        (1..=brokers).map(|broker| start_broker(handle, plan, broker)).collect();
    BROKER_NODES.with(|list| *list.borrow_mut() = nodes.clone());
    nodes
}

fn start_broker(handle: &Handle, plan: &Plan, broker: i32) -> NodeId {
    let config = broker_config(plan, broker);
    let seed = plan.seed;
    let name = if plan.is_cluster() { format!("broker-{broker}") } else { "broker".to_string() };
    let node = handle
        .create_node()
        .name(name)
        .ip(broker_ip_of(broker))
        .init(move || {
            let config = config.clone();
            async move {
                let disk = Disk::Simulated(SimDisk::of_current_node(seed));
                match Broker::open(config, disk).await {
                    Ok(served) => {
                        let shutdown = served.shutdown_handle();
                        SHUTDOWN_HANDLES
                            .with(|handles| handles.borrow_mut().insert(broker, shutdown));
                        if let Err(error) = served.serve().await {
                            tracing::error!(%error, "broker stopped");
                        }
                        SHUTDOWN_HANDLES.with(|handles| handles.borrow_mut().remove(&broker));
                    }
                    Err(error) => tracing::error!(%error, "broker failed to start"),
                }
            }
        })
        .build();
    SimDisk::set_torn_crash_percent(node.id(), seed, plan.torn_crash_percent);
    if plan.is_cluster() {
        SimDisk::of_node_or_create(node.id(), seed).set_latency(plan.disk_latency());
    }
    node.id()
}
