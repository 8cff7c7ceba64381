//! The clients: producers sending unique values with acks=-1, consumers polling their assigned
//! partitions from offset 0, and after healing the liveness probe and the final drain. Each is
//! its own madsim node (so the network can cut one off) and records every operation.
//! Idempotent producers (`idempotent.rs`) and offset committers (`committer.rs`) are the
//! clients of the scenarios that need them. In a cluster every client sends each request to
//! the partition's leader (or admin requests to the controller) as Metadata names it, and
//! asks again after an error (`route.rs`); a consumer polls each leader with its own fetch.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::collections::HashMap; // tidy: allowed: the planted nondeterminism needs its order
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use madsim::runtime::Handle;
use madsim::task::NodeId;

use crate::checker::KAFKA_STORAGE_ERROR;
use crate::checker::{WatermarkObservation, WatermarkSource};
use crate::client::{self, ClientError, Connection, Fetched};
use crate::history::{Body, Offset, Op, OpType, Partition, PartitionRead, Process, Value};
use crate::plan::{Plan, Plant};
use crate::run::TOPIC;
use crate::run::{broker_address, liveness_bound_ms, now_ns, run_state, RunState, DRAIN_BOUND_MS};

mod committer;
mod idempotent;
mod route;

use route::{BrokerId, Router};

pub use committer::group_name;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(1_000);
const PRODUCE_TIMEOUT: Duration = Duration::from_millis(2_000);
const FETCH_TIMEOUT: Duration = Duration::from_millis(1_500);
const FETCH_MAX_WAIT_MS: i32 = 100;
/// Pause after a failed call before the next attempt.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Pause after an empty poll, so idle consumers do not spin.
const IDLE_POLL_PAUSE: Duration = Duration::from_millis(20);
/// In a cluster, a consumer asks ListOffsets for its partitions' latest offsets every this
/// many polls (the high-watermark property reads those answers too).
const LATEST_OFFSETS_EVERY_POLLS: u64 = 8;
/// Upper bound on sends per producer in one run (a runaway loop is a harness bug).
const SENDS_PER_PRODUCER_MAX: u64 = 1_000_000;
/// Process ids: producers from 0, consumers from 100, probers from 900 (one per partition),
/// the drain 999.
const CONSUMER_PROCESS_BASE: Process = 100;
const PROBE_PROCESS: Process = 900;
const DRAIN_PROCESS: Process = 999;

/// Client node addresses: 10.0.1.x.
fn client_ip(index: u32) -> IpAddr {
    let index = u8::try_from(index + 1).expect("fewer than 255 clients");
    IpAddr::V4(Ipv4Addr::new(10, 0, 1, index))
}

/// Node ids of the client nodes, so the nemesis can cut them off.
pub fn client_nodes() -> Vec<NodeId> {
    CLIENT_NODES.with(|nodes| nodes.borrow().clone())
}

thread_local! {
    static CLIENT_NODES: RefCell<Vec<NodeId>> = const { RefCell::new(Vec::new()) };
}

pub fn start_clients(handle: &Handle, plan: &Plan) {
    CLIENT_NODES.with(|nodes| nodes.borrow_mut().clear());
    let state = run_state();
    for producer in 0..plan.producers {
        state.clients_running.set(state.clients_running.get() + 1);
        spawn_client(handle, producer, format!("producer-{producer}"), move || {
            produce_loop(producer)
        });
    }
    for consumer in 0..plan.consumers {
        state.clients_running.set(state.clients_running.get() + 1);
        let index = plan.producers + consumer;
        spawn_client(handle, index, format!("consumer-{consumer}"), move || consume_loop(consumer));
    }
    for committer in 0..plan.committers {
        state.clients_running.set(state.clients_running.get() + 1);
        let index = plan.producers + plan.consumers + committer;
        spawn_client(handle, index, format!("committer-{committer}"), move || {
            committer::commit_loop(committer)
        });
    }
}

/// Starts the node that probes liveness, then drains every partition.
pub fn start_final_checks(handle: &Handle) {
    let plan = &run_state().plan;
    let index = plan.producers + plan.consumers + plan.committers;
    spawn_client(handle, index, "drain".to_string(), || async {
        probe_liveness().await;
        drain().await;
        run_state().drain_done.set(true);
    });
}

fn spawn_client<F, Fut>(handle: &Handle, index: u32, name: String, main: F)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let node = handle.create_node().name(name).ip(client_ip(index)).init(main).build();
    CLIENT_NODES.with(|nodes| nodes.borrow_mut().push(node.id()));
}

/// A connection that reconnects on demand and drops itself after a failure or a reset.
struct Session {
    name: String,
    address: SocketAddr,
    connection: Option<Connection>,
    reset_epoch: u64,
}

impl Session {
    fn new(name: String) -> Session {
        Session::to(name, broker_address())
    }

    /// A session with the broker at `address` (a group's coordinator, as FindCoordinator says).
    fn to(name: String, address: SocketAddr) -> Session {
        Session { name, address, connection: None, reset_epoch: 0 }
    }

    /// The live connection, connecting first if needed; `None` after a failed connect.
    async fn connection(&mut self, state: &RunState) -> Option<&mut Connection> {
        if self.reset_epoch != state.reset_epoch.get() {
            self.reset_epoch = state.reset_epoch.get();
            self.connection = None;
        }
        if self.connection.is_none() {
            match Connection::connect(self.address, &self.name, CONNECT_TIMEOUT).await {
                Ok(connection) => self.connection = Some(connection),
                Err(_) => {
                    madsim::time::sleep(RETRY_BACKOFF).await;
                    return None;
                }
            }
        }
        self.connection.as_mut()
    }

    /// Drops the connection after an error whose outcome is unknown.
    fn fail(&mut self) {
        self.connection = None;
    }
}

/// Errors after which a send definitely did not append anything (see docs/simulation.md).
/// In a cluster, KAFKA_STORAGE_ERROR is not one: the leader's own write or sync failed, but
/// its followers may hold the batch and a new leader commit it.
fn send_definitely_failed(error_code: i16, cluster: bool) -> bool {
    // CORRUPT_MESSAGE, UNKNOWN_TOPIC_OR_PARTITION, MESSAGE_TOO_LARGE, KAFKA_STORAGE_ERROR.
    matches!(error_code, 2 | 3 | 10) || (!cluster && error_code == KAFKA_STORAGE_ERROR)
}

/// Makes sure the topic exists (any client may create it; "already exists" is success). In
/// a cluster it asks the controller Metadata names, for the default replication factor.
async fn ensure_topic(router: &mut Router, state: &RunState) -> bool {
    let replication_factor = if router.is_cluster() { -1 } else { 1 };
    let partitions = state.plan.partitions;
    let Some(connection) = router.controller(state).await else { return false };
    let created =
        client::create_topic(connection, TOPIC, partitions, replication_factor, PRODUCE_TIMEOUT);
    match created.await {
        Ok(0 | 36) => true,
        Ok(_) => {
            // NOT_CONTROLLER, or the controller could not commit it yet.
            router.controller_failed(false);
            madsim::time::sleep(RETRY_BACKOFF).await;
            false
        }
        Err(_) => {
            router.controller_failed(true);
            madsim::time::sleep(RETRY_BACKOFF).await;
            false
        }
    }
}

/// Start delay of a producer; with the planted nondeterminism, from `HashMap` order.
fn start_delay(producer: u32, plan: &Plan) -> Duration {
    if plan.plant != Some(Plant::HashMapOrder) {
        return Duration::from_millis(u64::from(producer));
    }
    let order: HashMap<u32, ()> = (0..16).map(|key| (key, ())).collect(); // tidy: allowed
    let position = order.keys().position(|key| *key == producer).unwrap_or(0);
    Duration::from_millis(position as u64)
}

async fn produce_loop(producer: u32) {
    if run_state().plan.idempotent {
        return idempotent::produce_loop(producer).await;
    }
    let state = run_state();
    madsim::time::sleep(start_delay(producer, &state.plan)).await;
    let mut router = Router::new(format!("producer-{producer}"), &state);
    while !ensure_topic(&mut router, &state).await {
        if state.stop_producing.get() {
            break;
        }
    }
    let mut sequence: u64 = 0;
    while !state.stop_producing.get() {
        assert!(sequence < SENDS_PER_PRODUCER_MAX, "producer {producer} runaway");
        let (partition, values) = next_send(&state.plan, producer, &mut sequence);
        // The history holds the outcome; the producer just moves on to its next value.
        let _ = send(&mut router, &state, producer, partition, values).await;
        madsim::time::sleep(Duration::from_millis(state.plan.produce_interval_ms)).await;
    }
    drop(router);
    state.clients_running.set(state.clients_running.get() - 1);
}

/// The next send of a producer: a random partition and 1..=max fresh values.
fn next_send(plan: &Plan, producer: u32, sequence: &mut u64) -> (Partition, Vec<Value>) {
    let partition = (madsim::rand::random::<u32>() % plan.partitions as u32) as Partition;
    let spread = plan.records_per_send_max - plan.records_per_send_min;
    let count = plan.records_per_send_min + madsim::rand::random::<u32>() % (spread + 1);
    let values: Vec<Value> =
        (0..u64::from(count)).map(|index| value_id(producer, *sequence + index)).collect();
    *sequence += u64::from(count);
    (partition, values)
}

fn value_id(process: Process, sequence: u64) -> Value {
    assert!(sequence < 1 << 40);
    (u64::from(process) << 40) | sequence
}

/// One send operation: invoke, then ok / fail / info. `Ok` if acknowledged, else the broker's
/// error code (`None`: no answer).
async fn send(
    router: &mut Router,
    state: &RunState,
    process: Process,
    partition: Partition,
    values: Vec<Value>,
) -> Result<(), Option<i16>> {
    let body = |offsets: Vec<Offset>, error_code: i16| Body::Send {
        partition,
        values: values.clone(),
        offsets,
        error_code,
    };
    let invoked_ns = now_ns();
    let invoke =
        Op { process, op_type: OpType::Invoke, time_ns: invoked_ns, body: body(vec![], 0) };
    state.record(invoke);
    let batch = client::encode_values(
        &values,
        state.plan.record_bytes,
        tern::io::unix_time_ms(),
        client::ProducerStamp::NONE,
    );
    let result = match router.route(state, partition).await {
        None => Err(ClientError::Timeout),
        Some(connection) => {
            client::produce(connection, TOPIC, partition, batch, PRODUCE_TIMEOUT).await
        }
    };
    let (op_type, offsets, outcome) = match result {
        Ok((0, base_offset)) => {
            let offsets = (0..values.len() as i64).map(|index| base_offset + index).collect();
            state.produce_latencies_ns.borrow_mut().push(now_ns() - invoked_ns);
            (OpType::Ok, offsets, Ok(()))
        }
        Ok((code, _)) => {
            router.answered(partition, code);
            match send_definitely_failed(code, router.is_cluster()) {
                true => (OpType::Fail, vec![], Err(Some(code))),
                false => (OpType::Info, vec![], Err(Some(code))),
            }
        }
        Err(_) => {
            router.failed(partition);
            (OpType::Info, vec![], Err(None))
        }
    };
    let error_code = outcome.err().flatten().unwrap_or(0);
    state.record(Op { process, op_type, time_ns: now_ns(), body: body(offsets, error_code) });
    if op_type != OpType::Ok {
        madsim::time::sleep(RETRY_BACKOFF).await;
    }
    outcome
}

/// A consumer's reads as reported to the history, with the planted bugs applied.
fn reported_records(
    fetched: &Fetched,
    fetch_offset: Offset,
    plant: Option<Plant>,
) -> Vec<(Offset, Value)> {
    let records = fetched.records.iter().copied().filter(|(offset, _)| *offset >= fetch_offset);
    // Planted bugs pick "some" records by value, so every seed hits a few.
    let picked = |value: &Value| value % 37 == 5;
    match plant {
        Some(Plant::DropRead) => records.filter(|(_, value)| !picked(value)).collect(),
        Some(Plant::ReuseOffset) => records
            .map(
                |(offset, value)| {
                    if picked(&value) {
                        (offset - 1, value)
                    } else {
                        (offset, value)
                    }
                },
            )
            .collect(),
        _ => records.collect(),
    }
}

/// One poll: fetch `positions`, record it, advance them. Returns the records read. In a
/// cluster, one fetch (and one operation) per leader; partitions whose leader is unknown
/// wait for the next poll.
async fn poll(
    router: &mut Router,
    state: &RunState,
    process: Process,
    positions: &mut BTreeMap<Partition, Offset>,
    plant: Option<Plant>,
) -> Option<Vec<Fetched>> {
    if !router.is_cluster() {
        let asked: Vec<Partition> = positions.keys().copied().collect();
        return poll_broker(router, state, process, 1, &asked, positions, plant).await;
    }
    if positions.keys().any(|partition| router.leader(*partition).is_none()) {
        router.refresh(state).await;
    }
    let by_leader = by_leader(router, positions.keys().copied());
    if by_leader.is_empty() {
        madsim::time::sleep(RETRY_BACKOFF).await;
        return None;
    }
    let mut answers: Option<Vec<Fetched>> = None;
    for (leader, asked) in by_leader {
        let polled = poll_broker(router, state, process, leader, &asked, positions, plant).await;
        if let Some(polled) = polled {
            answers.get_or_insert_with(Vec::new).extend(polled);
        }
    }
    answers
}

/// `partitions` grouped by their known leader (those without one are left out).
fn by_leader(
    router: &Router,
    partitions: impl Iterator<Item = Partition>,
) -> BTreeMap<BrokerId, Vec<Partition>> {
    let mut groups: BTreeMap<BrokerId, Vec<Partition>> = BTreeMap::new();
    for partition in partitions {
        if let Some(leader) = router.leader(partition) {
            groups.entry(leader).or_default().push(partition);
        }
    }
    groups
}

/// One fetch of the `asked` partitions from `broker`, recorded as one poll operation.
async fn poll_broker(
    router: &mut Router,
    state: &RunState,
    process: Process,
    broker: BrokerId,
    asked: &[Partition],
    positions: &mut BTreeMap<Partition, Offset>,
    plant: Option<Plant>,
) -> Option<Vec<Fetched>> {
    state.record(Op {
        process,
        op_type: OpType::Invoke,
        time_ns: now_ns(),
        body: Body::Poll { reads: Vec::new() },
    });
    let asked: Vec<(Partition, Offset)> =
        asked.iter().map(|partition| (*partition, positions[partition])).collect();
    let invoked = state.next_sequence();
    let result = match router.session(broker).connection(state).await {
        None => Err(ClientError::Timeout),
        Some(connection) => {
            client::fetch(connection, TOPIC, &asked, FETCH_MAX_WAIT_MS, FETCH_TIMEOUT).await
        }
    };
    let answers = match result {
        Ok(answers) => answers,
        Err(_) => {
            for (partition, _) in &asked {
                router.failed(*partition);
            }
            router.session(broker).fail();
            state.record(Op {
                process,
                op_type: OpType::Info,
                time_ns: now_ns(),
                body: Body::Poll { reads: Vec::new() },
            });
            madsim::time::sleep(RETRY_BACKOFF).await;
            return None;
        }
    };
    let completed = state.next_sequence();
    let mut reads = Vec::with_capacity(answers.len());
    for fetched in &answers {
        let Some(position) = positions.get_mut(&fetched.partition) else { continue };
        router.answered(fetched.partition, fetched.error_code);
        if fetched.error_code == 0 {
            state.saw_watermark(WatermarkObservation {
                process,
                broker,
                partition: fetched.partition,
                high_watermark: fetched.high_watermark,
                source: WatermarkSource::Fetch,
                invoked,
                completed,
                time_ns: now_ns(),
            });
        }
        reads.push(read_of(state, fetched, position, plant));
    }
    state.record(Op {
        process,
        op_type: OpType::Ok,
        time_ns: now_ns(),
        body: Body::Poll { reads },
    });
    Some(answers)
}

/// One partition's answer as the history records it; advances the consumer's `position`.
fn read_of(
    state: &RunState,
    fetched: &Fetched,
    position: &mut Offset,
    plant: Option<Plant>,
) -> PartitionRead {
    if fetched.corrupt_batches > 0 {
        state.flag(
            "corrupt-served",
            format!(
                "p{} at {}: {} batches failed CRC",
                fetched.partition, position, fetched.corrupt_batches
            ),
        );
    }
    check_below_high_watermark(state, fetched);
    let records = reported_records(fetched, *position, plant);
    let fetch_offset = *position;
    if let Some(last) = fetched.records.iter().map(|(offset, _)| *offset).max() {
        *position = (*position).max(last + 1);
    }
    // Past control batches too (in a cluster, each new leader writes one).
    if let Some(next_offset) = fetched.next_offset {
        *position = (*position).max(next_offset);
    }
    PartitionRead {
        partition: fetched.partition,
        fetch_offset,
        records,
        error_code: fetched.error_code,
    }
}

/// In a cluster: ListOffsets (latest) of `partitions` from each one's leader, for the
/// high-watermark property. No history operation: it reads no records.
async fn observe_latest_offsets(
    router: &mut Router,
    state: &RunState,
    process: Process,
    partitions: &[Partition],
) {
    for (leader, asked) in by_leader(router, partitions.iter().copied()) {
        let invoked = state.next_sequence();
        let Some(connection) = router.session(leader).connection(state).await else { continue };
        let answers = match client::latest_offsets(connection, TOPIC, &asked, FETCH_TIMEOUT).await {
            Ok(answers) => answers,
            Err(_) => {
                router.session(leader).fail();
                continue;
            }
        };
        let completed = state.next_sequence();
        for (partition, error_code, offset) in answers {
            router.answered(partition, error_code);
            if error_code == 0 && asked.contains(&partition) {
                state.saw_watermark(WatermarkObservation {
                    process,
                    broker: leader,
                    partition,
                    high_watermark: offset,
                    source: WatermarkSource::ListOffsets,
                    invoked,
                    completed,
                    time_ns: now_ns(),
                });
            }
        }
    }
}

/// A consumer must never receive a record at or above the high watermark of the answer that
/// carries it: such a record is not durable (with replication: not committed), and a crash
/// can erase it and give its offset to another. Flagged here, where it is seen, because the
/// history alone finds it only when a crash strikes in that window and a later read of the
/// same offset disagrees.
fn check_below_high_watermark(state: &RunState, fetched: &Fetched) {
    let above = fetched.records.iter().map(|(offset, _)| *offset).max();
    if let Some(offset) = above.filter(|offset| *offset >= fetched.high_watermark) {
        state.flag(
            "read-above-high-watermark",
            format!(
                "p{}: a record at {offset} with the high watermark at {}",
                fetched.partition, fetched.high_watermark
            ),
        );
    }
}

async fn consume_loop(consumer: u32) {
    let state = run_state();
    let process = CONSUMER_PROCESS_BASE + consumer;
    let mut router = Router::new(format!("consumer-{consumer}"), &state);
    let mut positions: BTreeMap<Partition, Offset> = BTreeMap::new();
    for partition in (0..state.plan.partitions)
        .filter(|partition| *partition as u32 % state.plan.consumers == consumer)
    {
        positions.insert(partition, 0);
        state.record(Op {
            process,
            op_type: OpType::Ok,
            time_ns: now_ns(),
            body: Body::Seek { partition, offset: 0 },
        });
    }
    let partitions: Vec<Partition> = positions.keys().copied().collect();
    let mut rounds: u64 = 0;
    while !state.stop_consuming.get() {
        let answers = poll(&mut router, &state, process, &mut positions, state.plan.plant).await;
        if answers.is_some_and(|answers| answers.iter().all(|fetched| fetched.records.is_empty())) {
            madsim::time::sleep(IDLE_POLL_PAUSE).await;
        }
        rounds += 1;
        if router.is_cluster() && rounds.is_multiple_of(LATEST_OFFSETS_EVERY_POLLS) {
            observe_latest_offsets(&mut router, &state, process, &partitions).await;
        }
    }
    drop(router);
    state.clients_running.set(state.clients_running.get() - 1);
}

/// After healing: every partition must accept a write within the liveness bound, except one
/// whose detected loss (corruption in the fault log, KAFKA_STORAGE_ERROR from the broker) keeps
/// it refusing writes: on a single node the policy has no peer to repair it from.
async fn probe_liveness() {
    let state = run_state();
    let deadline_ns = now_ns() + liveness_bound_ms(&state.plan) * 1_000_000;
    if state.plan.is_cluster() {
        // Faults may have struck before any producer created the topic: creating it is part
        // of what a healed cluster must do in time (its controller elects and commits).
        let mut router = Router::new("probe".to_string(), &state);
        while now_ns() < deadline_ns && !ensure_topic(&mut router, &state).await {}
    }
    // One prober per partition, concurrently: a partition that stays down must not eat the
    // others' time.
    let probes: Vec<_> = (0..state.plan.partitions)
        .map(|partition| tern::io::spawn_local(probe_partition(partition, deadline_ns)))
        .collect();
    for probe in probes {
        probe.await;
    }
}

async fn probe_partition(partition: Partition, deadline_ns: u64) {
    let state = run_state();
    let process = PROBE_PROCESS + partition as Process;
    let mut router = Router::new(format!("probe-{partition}"), &state);
    let mut outcome = Err(None);
    let mut sequence = 0;
    while outcome.is_err() && now_ns() < deadline_ns {
        sequence += 1;
        let value = value_id(process, sequence);
        outcome = send(&mut router, &state, process, partition, vec![value]).await;
    }
    let corrupted = state.corruptions.borrow().iter().any(|fault| fault.partition == partition);
    match outcome {
        Ok(()) => {}
        Err(Some(KAFKA_STORAGE_ERROR)) if corrupted => {
            tracing::warn!(partition, "liveness: partition refuses writes after detected loss");
        }
        Err(error_code) => state.flag(
            "liveness",
            format!(
                "p{partition} accepted no write within {} ms after healing (last error \
                 {error_code:?})",
                liveness_bound_ms(&state.plan)
            ),
        ),
    }
}

/// The topic's partition count, as Metadata tells (the drain reads what the broker says exists).
async fn partition_count(router: &mut Router, state: &RunState, deadline_ns: u64) -> Option<i32> {
    while now_ns() < deadline_ns {
        if router.is_cluster() {
            if router.refresh(state).await {
                if let Some(count) = router.partition_count {
                    return i32::try_from(count).ok();
                }
            }
            madsim::time::sleep(RETRY_BACKOFF).await;
            continue;
        }
        let Some(connection) = router.session(1).connection(state).await else { continue };
        match client::topic_metadata(connection, TOPIC, FETCH_TIMEOUT).await {
            Ok((0, count)) => return i32::try_from(count).ok(),
            Ok(_) => madsim::time::sleep(RETRY_BACKOFF).await,
            Err(_) => router.session(1).fail(),
        }
    }
    None
}

/// The final drain: reads every partition from 0 to its high watermark.
async fn drain() {
    let state: Rc<RunState> = run_state();
    let deadline_ns = now_ns() + DRAIN_BOUND_MS * 1_000_000;
    let mut router = Router::new("drain".to_string(), &state);
    let partitions = partition_count(&mut router, &state, deadline_ns).await;
    if partitions != Some(state.plan.partitions) {
        let expected = state.plan.partitions;
        state.flag(
            "drain-incomplete",
            format!("metadata: {partitions:?} partitions, not {expected}"),
        );
    }
    for partition in 0..state.plan.partitions {
        state.record(Op {
            process: DRAIN_PROCESS,
            op_type: OpType::Ok,
            time_ns: now_ns(),
            body: Body::Seek { partition, offset: 0 },
        });
        let mut positions = BTreeMap::from([(partition, 0)]);
        let mut storage_errors = 0;
        loop {
            if now_ns() > deadline_ns {
                state.flag(
                    "drain-incomplete",
                    format!(
                        "p{partition} not drained by the deadline (at {})",
                        positions[&partition]
                    ),
                );
                break;
            }
            let Some(answers) =
                poll(&mut router, &state, DRAIN_PROCESS, &mut positions, None).await
            else {
                continue;
            };
            let Some(fetched) = answers.first() else { continue };
            if fetched.error_code == KAFKA_STORAGE_ERROR {
                // Detected loss answers this for good: a few tries, then the checker decides.
                storage_errors += 1;
                if storage_errors >= 5 {
                    break;
                }
                madsim::time::sleep(RETRY_BACKOFF).await;
                continue;
            }
            if fetched.error_code == 0
                && fetched.records.is_empty()
                && positions[&partition] >= fetched.high_watermark
            {
                break;
            }
            if fetched.error_code != 0 {
                madsim::time::sleep(RETRY_BACKOFF).await;
            }
        }
    }
}
