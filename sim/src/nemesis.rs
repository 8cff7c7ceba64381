//! The nemesis: one fault at a time during the fault window, drawn from the plan's enabled
//! kinds with madsim's seeded randomness; then `heal`, which undoes every fault. Every fault is
//! a `tracing` event with a `fault` field (the disk logs its own), so the trace hash covers it
//! and a failing seed's report lists it. A cluster's faults (aimed at one broker, at several,
//! at the links between them) are in `cluster.rs`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use madsim::net::NetSim;
use madsim::runtime::Handle;
use madsim::task::NodeId;
use tern::io::SimDisk;
use tern::record_batch::check_framing_and_crc;

use crate::checker::CorruptionFault;
use crate::plan::{FaultKind, Plan, Plant};
use crate::run::{now_ns, run_state, DATA_DIR, TOPIC};
use crate::workload::{client_nodes, group_name};

mod cluster;
mod disk_lies;

/// Size of a record batch v2 header; `lastOffsetDelta` is at byte 23, the length at 8.
const BATCH_HEADER_BYTES: usize = 61;
/// Upper bound on faults in one window (the mean interval keeps far below it).
const FAULTS_PER_RUN_MAX: u32 = 1_000;

fn random_between(low: u64, high: u64) -> u64 {
    assert!(low <= high);
    low + madsim::rand::random::<u64>() % (high - low + 1)
}

async fn sleep_ms(milliseconds: u64) {
    madsim::time::sleep(Duration::from_millis(milliseconds)).await;
}

fn broker_disk(broker: NodeId, plan: &Plan) -> SimDisk {
    SimDisk::of_node_or_create(broker, plan.seed)
}

/// Faults in progress at once, at most: overlapping faults (a crash inside an ENOSPC window,
/// a restart while a sector fails reads) find more than one at a time.
const FAULTS_CONCURRENT_MAX: u32 = 3;

thread_local! {
    /// Faults in progress, and the broker nodes being killed, restarted or paused (those
    /// never overlap on one node: a restart must follow its own kill).
    static ACTIVE_FAULTS: Cell<u32> = const { Cell::new(0) };
    static LIFECYCLE_BUSY: RefCell<BTreeSet<NodeId>> = const { RefCell::new(BTreeSet::new()) };
}

/// Applies faults until `window` has passed, then waits for those in progress to end.
pub async fn run(handle: &Handle, brokers: &[NodeId], plan: &Plan, window: Duration) {
    ACTIVE_FAULTS.with(|active| active.set(0));
    LIFECYCLE_BUSY.with(|busy| busy.borrow_mut().clear());
    cluster::forget_wiped();
    if plan.fault_kinds.is_empty() {
        madsim::time::sleep(window).await;
        return;
    }
    let end_ns = now_ns() + window.as_nanos() as u64;
    // A fuzzer-chosen schedule, or random pauses and kinds (swarm testing), drawn in this
    // order so that a seed's run does not depend on whether schedules exist.
    let scheduled = plan.schedule.as_deref();
    for index in 0..FAULTS_PER_RUN_MAX as usize {
        let delay_ms = match scheduled {
            Some(faults) => match faults.get(index) {
                Some(fault) => fault.delay_ms,
                None => break,
            },
            None => random_between(0, 2 * plan.fault_interval_mean_ms),
        };
        sleep_ms(delay_ms).await;
        if now_ns() >= end_ns {
            break;
        }
        if ACTIVE_FAULTS.with(Cell::get) >= FAULTS_CONCURRENT_MAX {
            continue;
        }
        let kind = match scheduled {
            Some(faults) => faults[index].kind,
            None => {
                let kinds = &plan.fault_kinds;
                kinds[random_between(0, kinds.len() as u64 - 1) as usize]
            }
        };
        ACTIVE_FAULTS.with(|active| active.set(active.get() + 1));
        let (handle, plan, brokers) = (handle.clone(), plan.clone(), brokers.to_vec());
        drop(tern::io::spawn_local(async move {
            apply(&handle, &brokers, &plan, kind).await;
            ACTIVE_FAULTS.with(|active| active.set(active.get() - 1));
        }));
    }
    // Every fault ends by itself within seconds; the bound only guards against a harness bug.
    for _ in 0..10_000 {
        if ACTIVE_FAULTS.with(Cell::get) == 0 {
            return;
        }
        sleep_ms(10).await;
    }
    panic!("faults still in progress long after the fault window");
}

/// Waits until no kill, restart or pause of `broker` is in progress, then claims its
/// lifecycle. A fault that claims several brokers claims them in ascending order (and
/// holds no other), so two such faults never wait for each other in a cycle.
async fn claim_lifecycle(broker: NodeId) {
    for _ in 0..100_000 {
        if LIFECYCLE_BUSY.with(|busy| busy.borrow_mut().insert(broker)) {
            return;
        }
        sleep_ms(10).await;
    }
    panic!("the broker's lifecycle stayed busy");
}

fn release_lifecycle(broker: NodeId) {
    LIFECYCLE_BUSY.with(|busy| busy.borrow_mut().remove(&broker));
}

async fn apply(handle: &Handle, brokers: &[NodeId], plan: &Plan, kind: FaultKind) {
    if plan.is_cluster() {
        return cluster::apply(handle, brokers, plan, kind).await;
    }
    let broker = brokers[0];
    let disk = broker_disk(broker, plan);
    match kind {
        FaultKind::Crash => {
            crash_and_restart(handle, broker, random_between(10, 1_000)).await;
        }
        FaultKind::ProcessCrash => process_crash(handle, broker, plan).await,
        FaultKind::SyncEio | FaultKind::WriteEio => {
            failing_io(handle, broker, &disk, plan, kind).await;
        }
        FaultKind::Enospc => {
            let headroom_bytes = random_between(0, 64 << 10);
            disk.set_capacity_bytes(Some(disk.used_bytes() + headroom_bytes));
            sleep_ms(random_between(100, 2_000)).await;
            disk.set_capacity_bytes(None);
        }
        FaultKind::Corrupt => corrupt_a_batch(&disk, plan),
        FaultKind::ReadEio => latent_read_error(&disk, plan).await,
        FaultKind::PhantomWrite => disk_lies::phantom_write(&disk, plan),
        FaultKind::MisdirectedWrite => disk_lies::misdirected_write(&disk, plan),
        FaultKind::MisdirectedRead => {
            let directory = random_partition_dir(plan);
            disk.misdirect_next_reads(&directory, random_between(1, 4) as u32);
            // Half the time the reads that meet them are recovery's: power-cycle now.
            if random_between(0, 1) == 0 {
                crash_and_restart(handle, broker, random_between(10, 300)).await;
            }
        }
        FaultKind::DiskLatency => disk_lies::slow_disk(&disk).await,
        FaultKind::Loss => packet_loss().await,
        FaultKind::Latency => latency_spike().await,
        FaultKind::PartitionBoth | FaultKind::PartitionRequests | FaultKind::PartitionResponses => {
            partition_a_client(kind, broker).await;
        }
        FaultKind::Pause => pause_and_resume(handle, broker).await,
        FaultKind::ConnectionReset => reset_connections(),
        FaultKind::LeaderCrash
        | FaultKind::PowerOutage
        | FaultKind::RollingRestart
        | FaultKind::PartitionMinority
        | FaultKind::PartitionMajoritiesRing
        | FaultKind::PartitionOneWay
        | FaultKind::FlappingLinks
        | FaultKind::Wipe => unreachable!("{kind:?} is a cluster fault"),
    }
}

fn reset_connections() {
    tracing::warn!(fault = "connection_reset", "every client drops its connection");
    let state = run_state();
    state.reset_epoch.set(state.reset_epoch.get() + 1);
}

/// The process dies, the machine does not: the page cache (unsynced writes) survives, as
/// after a SIGKILL; the node's sockets close.
async fn process_crash(handle: &Handle, broker: NodeId, plan: &Plan) {
    claim_lifecycle(broker).await;
    tracing::warn!(fault = "process_crash", "broker process killed and restarted");
    SimDisk::spare_disk_at_next_kill(broker, plan.seed);
    handle.kill(broker);
    sleep_ms(random_between(1, 300)).await;
    handle.restart(broker);
    release_lifecycle(broker);
}

/// The next one to three syncs or writes of one partition fail with EIO; then a restart, as
/// the policy keeps the partition offline until it is re-opened.
async fn failing_io(handle: &Handle, broker: NodeId, disk: &SimDisk, plan: &Plan, kind: FaultKind) {
    let directory = random_partition_dir(plan);
    let count = random_between(1, 3) as u32;
    if kind == FaultKind::SyncEio {
        disk.fail_next_syncs(&directory, count);
    } else {
        disk.fail_next_writes(&directory, count);
    }
    sleep_ms(random_between(100, 1_500)).await;
    disk.clear_failing_syncs();
    crash_and_restart(handle, broker, random_between(10, 300)).await;
}

/// One sector of a segment fails every read for 100 ms to 2 s, then heals.
async fn latent_read_error(disk: &SimDisk, plan: &Plan) {
    if let Some((path, length)) = pick_segment(disk, plan) {
        let sector = random_between(0, length.saturating_sub(1) / 512);
        disk.fail_reads(&path, sector * 512..(sector + 1) * 512);
        sleep_ms(random_between(100, 2_000)).await;
        tracing::warn!(fault = "latent_read_error_healed", "sim disk: sectors readable again");
        disk.clear_failing_reads();
    }
}

async fn packet_loss() {
    let rate = random_between(5, 40) as f64 / 100.0;
    tracing::warn!(fault = "packet_loss", rate, "network");
    NetSim::current().update_config(|config| config.packet_loss_rate = rate);
    sleep_ms(random_between(200, 2_000)).await;
    NetSim::current().update_config(|config| config.packet_loss_rate = 0.0);
}

async fn latency_spike() {
    let high_ms = random_between(50, 1_500);
    tracing::warn!(fault = "latency_spike", high_ms, "network");
    let latency = Duration::from_millis(high_ms / 4)..Duration::from_millis(high_ms);
    NetSim::current().update_config(|config| config.send_latency = latency);
    sleep_ms(random_between(200, 2_000)).await;
    restore_latency();
}

/// Stops every task of the broker node for 50 ms to 3 s (madsim's `Handle::pause`: tasks
/// woken meanwhile wait; packets still arrive), then resumes it. Holds the lifecycle: a kill
/// of a paused node would drop its parked tasks, and a restart would un-pause it early.
async fn pause_and_resume(handle: &Handle, broker: NodeId) {
    claim_lifecycle(broker).await;
    let paused_ms = random_between(50, 3_000);
    tracing::warn!(fault = "pause", paused_ms, "broker process paused");
    handle.pause(broker);
    sleep_ms(paused_ms).await;
    handle.resume(broker);
    tracing::warn!(fault = "resume", "broker process resumed");
    release_lifecycle(broker);
}

fn restore_latency() {
    let latency = Duration::from_millis(1)..Duration::from_millis(10);
    NetSim::current().update_config(|config| config.send_latency = latency);
}

async fn partition_a_client(kind: FaultKind, broker: NodeId) {
    let clients = client_nodes();
    let client = clients[random_between(0, clients.len() as u64 - 1) as usize];
    let net = NetSim::current();
    tracing::warn!(fault = "partition", ?kind, client = %client, "network");
    match kind {
        FaultKind::PartitionBoth => net.clog_node(client),
        FaultKind::PartitionRequests => net.clog_link(client, broker),
        _ => net.clog_link(broker, client),
    }
    sleep_ms(random_between(200, 3_000)).await;
    match kind {
        FaultKind::PartitionBoth => net.unclog_node(client),
        FaultKind::PartitionRequests => net.unclog_link(client, broker),
        _ => net.unclog_link(broker, client),
    }
}

/// A power failure: kill (the disk plugin drops or tears unsynced writes), wait, restart.
async fn crash_and_restart(handle: &Handle, broker: NodeId, down_ms: u64) {
    claim_lifecycle(broker).await;
    tracing::warn!(fault = "kill", down_ms, "broker");
    handle.kill(broker);
    sleep_ms(down_ms).await;
    handle.restart(broker);
    release_lifecycle(broker);
}

/// Undoes every fault; restarts the broker in the crash scenario so partitions taken offline
/// by a failed fsync or a read error come back (the policy recovers them at re-open).
pub async fn heal(handle: &Handle, brokers: &[NodeId], plan: &Plan) {
    if plan.fault_kinds.is_empty() {
        return;
    }
    tracing::warn!(fault = "heal", "every fault undone");
    if plan.is_cluster() {
        return cluster::heal(brokers, plan);
    }
    let broker = brokers[0];
    let disk = broker_disk(broker, plan);
    disk.clear_failing_syncs();
    disk.clear_failing_reads();
    disk.set_capacity_bytes(None);
    if plan.fault_kinds.contains(&FaultKind::DiskLatency) {
        disk.set_latency(tern::io::DiskLatency::default());
    }
    let net = NetSim::current();
    net.update_config(|config| config.packet_loss_rate = 0.0);
    restore_latency();
    for client in client_nodes() {
        net.unclog_node(client);
        net.unclog_link(client, broker);
        net.unclog_link(broker, client);
    }
    let disk_faults = plan.fault_kinds.iter().any(|kind| {
        matches!(
            kind,
            FaultKind::Crash
                | FaultKind::SyncEio
                | FaultKind::WriteEio
                | FaultKind::ReadEio
                | FaultKind::Enospc
                | FaultKind::Corrupt
                | FaultKind::PhantomWrite
                | FaultKind::MisdirectedWrite
                | FaultKind::MisdirectedRead
                | FaultKind::DiskLatency
        )
    });
    if disk_faults {
        crash_and_restart(handle, broker, 100).await;
    }
}

fn partition_dir(partition: i32) -> PathBuf {
    Path::new(DATA_DIR).join(format!("{TOPIC}-{partition}"))
}

/// The directory of a random partition of the topic or, when the plan has committers, of the
/// `__consumer_offsets` partition of one of their groups (one draw either way, so plans
/// without committers draw as they always did).
fn random_partition_dir(plan: &Plan) -> PathBuf {
    let choices = plan.partitions as u64 + u64::from(plan.committers);
    let choice = random_between(0, choices - 1);
    if choice < plan.partitions as u64 {
        return partition_dir(choice as i32);
    }
    let group = group_name((choice - plan.partitions as u64) as u32);
    let partition = tern::broker::groups::group_partition(&group);
    Path::new(DATA_DIR).join(format!("{}-{partition}", tern::broker::groups::OFFSETS_TOPIC))
}

/// A random segment of a random partition: (path, cached length).
fn pick_segment(disk: &SimDisk, plan: &Plan) -> Option<(PathBuf, u64)> {
    let directory = random_partition_dir(plan);
    let segments: Vec<PathBuf> = disk
        .file_paths()
        .into_iter()
        .filter(|path| path.parent() == Some(directory.as_path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
        .collect();
    if segments.is_empty() {
        return None;
    }
    let path = segments[random_between(0, segments.len() as u64 - 1) as usize].clone();
    let length = disk.file_len(&path)?;
    (length > 0).then_some((path, length))
}

/// Complete batches of a durable segment image: (byte position, size, base offset, last offset).
fn durable_batches(image: &[u8]) -> Vec<(usize, usize, i64, i64)> {
    let mut batches = Vec::new();
    let mut position = 0;
    while position + BATCH_HEADER_BYTES <= image.len() {
        let header = &image[position..];
        let base_offset = i64::from_be_bytes(header[0..8].try_into().expect("8 bytes"));
        let length = i32::from_be_bytes(header[8..12].try_into().expect("4 bytes"));
        let last_offset_delta = i32::from_be_bytes(header[23..27].try_into().expect("4 bytes"));
        let Some(size) = usize::try_from(length).ok().map(|length| length + 12) else { break };
        if size < BATCH_HEADER_BYTES || position + size > image.len() {
            break;
        }
        batches.push((position, size, base_offset, base_offset + i64::from(last_offset_delta)));
        position += size;
    }
    batches
}

/// Index of the last batch of `batches` (framed in `image`) that recovery would find intact
/// behind a damaged one: CRC32C valid. Framing alone is not enough: a power failure applies
/// the sectors of unsynced writes at random, so a batch that frames right may be torn (never
/// acknowledged), and recovery rightly truncates a damaged batch with only torn ones behind
/// it. Counting a torn batch as intact let bit rot hit the last acknowledged batch of a
/// segment, which recovery then truncated and whose offsets were reused (seed 1504 of
/// 1000..3999, as `inconsistent-offsets`): an injector that broke its own promise.
fn last_intact_batch(image: &[u8], batches: &[(usize, usize, i64, i64)]) -> Option<usize> {
    batches.iter().rposition(|(position, size, _, _)| {
        check_framing_and_crc(&image[*position..*position + *size]).is_ok()
    })
}

/// How many leading batches have an intact batch with higher offsets behind them.
fn batches_before_the_last_intact(image: &[u8], batches: &[(usize, usize, i64, i64)]) -> usize {
    let Some(last) = last_intact_batch(image, batches) else { return 0 };
    let base_offset = batches[last].2;
    batches[..last].iter().take_while(|(_, _, _, last_offset)| *last_offset < base_offset).count()
}

/// Flips one bit in a durable batch that has an intact durable batch behind it (a flip in the
/// final batch is indistinguishable from a torn write; see docs/simulation.md), and records
/// which offsets it destroyed.
fn corrupt_a_batch(disk: &SimDisk, plan: &Plan) {
    let Some((path, _)) = pick_segment(disk, plan) else { return };
    let Some(image) = disk.durable_bytes(&path) else { return };
    let batches = durable_batches(&image);
    // Only batches with an intact one behind them, unless planted: see the function's comment.
    let eligible = if plan.plant == Some(Plant::CorruptTail) {
        batches.len()
    } else {
        batches_before_the_last_intact(&image, &batches)
    };
    if eligible == 0 {
        return;
    }
    let chosen = random_between(0, eligible as u64 - 1) as usize;
    let (position, size, first_offset, last_offset) = batches[chosen];
    let byte = position as u64 + random_between(0, size as u64 - 1);
    let bit = random_between(0, 7) as u8;
    let partition = partition_of(&path);
    tracing::warn!(
        fault = "corrupt",
        partition,
        first_offset,
        last_offset,
        byte,
        bit,
        "bit rot in a durable batch"
    );
    disk.corrupt_durable(&path, byte, bit);
    run_state().corruptions.borrow_mut().push(CorruptionFault {
        partition,
        first_offset,
        last_offset,
    });
}

fn partition_of(segment: &Path) -> i32 {
    let directory =
        segment.parent().and_then(Path::file_name).map(|name| name.to_string_lossy().into_owned());
    let directory = directory.expect("segments live in a partition directory");
    let index = directory.rsplit('-').next().and_then(|number| number.parse().ok());
    index.expect("partition directory ends with its index")
}
